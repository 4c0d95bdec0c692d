//! Latency samples and the per-mode table.

/// Samples in nanoseconds.
#[derive(Default, Clone)]
pub struct Samples(Vec<u64>);

impl Samples {
    /// Adds one sample.
    pub fn push(&mut self, ns: u64) {
        self.0.push(ns);
    }

    /// (median, p99, max), or `None` without samples.
    pub fn summary(&self) -> Option<(u64, u64, u64)> {
        if self.0.is_empty() {
            return None;
        }
        let mut v = self.0.clone();
        v.sort_unstable();
        let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        Some((at(0.5), at(0.99), *v.last().unwrap()))
    }

    /// "median / p99 / max" in microseconds, or "-".
    pub fn cell(&self) -> String {
        match self.summary() {
            None => "-".into(),
            Some((m, p, x)) => format!("{} / {} / {}", us(m), us(p), us(x)),
        }
    }
}

fn us(ns: u64) -> String {
    let us = ns as f64 / 1000.0;
    if us < 100.0 {
        format!("{us:.1}")
    } else {
        format!("{us:.0}")
    }
}

/// What one mode's run measured and found.
#[derive(Default)]
pub struct Report {
    /// The mode's name.
    pub mode: &'static str,
    /// Why it did not run, if it did not.
    pub skipped: Option<String>,
    /// Frames that reached the screen.
    pub landed: usize,
    /// Render release -> the display side has the buffer (KDS grant callback running, or
    /// the control thread woken).
    pub grant: Samples,
    /// Render release -> flip queued (the flip ioctl returned).
    pub queued: Samples,
    /// Flip queued -> flip event.
    pub flip: Samples,
    /// Render release -> flip event (end to end; comparable across every mode).
    pub on_screen: Samples,
    /// Flip event -> next flip event.
    pub interval: Samples,
    /// Vblanks without a new frame between two flips (sum).
    pub missed: u64,
    /// Flips that had to wait for the previous one to complete before being queued.
    pub deferred: usize,
    /// Failed checks.
    pub errors: Vec<String>,
}

/// Prints the reports side by side.
pub fn print_table(reports: &[Report]) {
    let head = [
        "mode",
        "frames",
        "missed",
        "deferred",
        "release->grant us",
        "release->flip queued us",
        "queued->flip event us",
        "release->on screen us",
        "frame interval us",
        "checks",
    ];
    let rows: Vec<Vec<String>> = reports
        .iter()
        .map(|r| match &r.skipped {
            Some(why) => {
                let mut row = vec![r.mode.to_string(), format!("skipped: {why}")];
                row.resize(head.len(), String::new());
                row
            }
            None => vec![
                r.mode.to_string(),
                r.landed.to_string(),
                r.missed.to_string(),
                r.deferred.to_string(),
                r.grant.cell(),
                r.queued.cell(),
                r.flip.cell(),
                r.on_screen.cell(),
                r.interval.cell(),
                if r.errors.is_empty() {
                    "pass".into()
                } else {
                    format!("FAIL ({})", r.errors.len())
                },
            ],
        })
        .collect();
    let mut width: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for row in &rows {
        if row[2].is_empty() {
            continue; // a skipped row spans the columns
        }
        for (w, c) in width.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::from("|");
        for (c, w) in cells.iter().zip(&width) {
            s.push_str(&format!(" {c:<w$} |"));
        }
        println!("{s}");
    };
    line(&head.iter().map(|h| h.to_string()).collect::<Vec<_>>());
    line(&width.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>());
    for row in &rows {
        line(row);
    }
    println!("(latencies: median / p99 / max)");
}
