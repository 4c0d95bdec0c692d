//! Figures the report needs beyond criterion's own estimates: grant-wait and hand-off
//! latency samples (for p50/p99/max), memory figures, and notes such as counter fallbacks.
//! Written as tab-separated files under `target/kds-bench/` when the bench ends, read by
//! `examples/bench_report.rs`.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Mutex;

static LATENCY: Mutex<BTreeMap<String, Vec<u64>>> = Mutex::new(BTreeMap::new());
static ROWS: Mutex<Vec<String>> = Mutex::new(Vec::new());
static NOTES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Adds latency samples (ns) for benchmark `id` ("group/peer/param").
pub fn latencies(id: &str, samples: &[u64]) {
    let mut map = LATENCY.lock().unwrap();
    map.entry(id.to_owned())
        .or_default()
        .extend_from_slice(samples);
}

/// A free-form figure row: table, peer, parameter, metric, value.
pub fn row(table: &str, peer: &str, param: &str, metric: &str, value: f64) {
    ROWS.lock()
        .unwrap()
        .push(format!("{table}\t{peer}\t{param}\t{metric}\t{value}"));
}

/// A note for the report (printed once).
pub fn note(text: String) {
    let mut notes = NOTES.lock().unwrap();
    if !notes.contains(&text) {
        notes.push(text);
    }
}

/// Writes the tables; percentiles are computed here so the files stay small.
pub fn save() -> std::io::Result<()> {
    let dir = std::path::Path::new(
        &std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into()),
    )
    .join("kds-bench");
    std::fs::create_dir_all(&dir)?;
    let mut f = std::fs::File::create(dir.join("latency.tsv"))?;
    for (id, v) in LATENCY.lock().unwrap().iter_mut() {
        v.sort_unstable();
        let at = |q: f64| v[((v.len() - 1) as f64 * q) as usize];
        writeln!(
            f,
            "{id}\t{}\t{}\t{}\t{}",
            v.len(),
            at(0.5),
            at(0.99),
            v[v.len() - 1]
        )?;
    }
    let mut f = std::fs::File::create(dir.join("rows.tsv"))?;
    for r in ROWS.lock().unwrap().iter() {
        writeln!(f, "{r}")?;
    }
    let mut f = std::fs::File::create(dir.join("notes.txt"))?;
    for n in NOTES.lock().unwrap().iter() {
        writeln!(f, "{n}")?;
    }
    Ok(())
}
