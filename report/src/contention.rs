//! The contended mixes of issue 18, from `benches/contention.rs` (`target/kds-bench/
//! contention.tsv` and `contention-busy.tsv`): the lock-free engine, the reference and
//! `seed-minimal` taking turns in one process, and the targets for them.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

/// One engine's figures in one mix: median Mops/s, p99 grant wait (µs), preempted holds,
/// involuntary context switches and slow releases per 1,000 operations, CPU µs per operation.
#[derive(Clone, Copy, Default)]
struct Cell {
    mops: f64,
    p99_us: f64,
    preempted: f64,
    switches: f64,
    slow_releases: f64,
    cpu_us: f64,
}

/// Mix name -> engine -> figures, in the file's order of mixes.
type Table = Vec<(String, BTreeMap<String, Cell>)>;

fn load(file: &Path) -> Table {
    let Ok(text) = std::fs::read_to_string(file) else {
        return Vec::new();
    };
    let mut table: Table = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 9 {
            continue;
        }
        let num = |i: usize| f[i].parse::<f64>().unwrap_or(f64::NAN);
        let cell = Cell {
            mops: num(3),
            p99_us: num(4),
            preempted: num(5),
            switches: num(6),
            slow_releases: num(7),
            cpu_us: num(8),
        };
        if table.last().map(|(m, _)| m.as_str()) != Some(f[0]) {
            table.push((f[0].to_owned(), BTreeMap::new()));
        }
        table
            .last_mut()
            .expect("just pushed")
            .1
            .insert(f[2].to_owned(), cell);
    }
    table
}

const LF: &str = "lock-free";
const REF: &str = "reference";
const SEED: &str = "seed-minimal";

/// How many mixes of `rows` meet `ok(lock-free, other)`, of how many, and the worst ratio.
struct Count {
    met: usize,
    of: usize,
    worst: Option<(f64, String)>,
}

fn count(rows: &[&(String, BTreeMap<String, Cell>)], other: &str, min: f64) -> Count {
    let mut c = Count {
        met: 0,
        of: 0,
        worst: None,
    };
    for (mix, cells) in rows {
        let (Some(lf), Some(o)) = (cells.get(LF), cells.get(other)) else {
            continue;
        };
        let r = lf.mops / o.mops;
        c.of += 1;
        if r >= min {
            c.met += 1;
        }
        if c.worst.as_ref().is_none_or(|w| r < w.0) {
            c.worst = Some((r, mix.clone()));
        }
    }
    c
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "**met**"
    } else {
        "**missed**"
    }
}

/// Writes the section into `md` and issue 18's contention targets into `targets`.
pub fn section(target: &Path, md: &mut String, targets: &mut String) -> std::fmt::Result {
    let dir = target.join("kds-bench");
    let quiet = load(&dir.join("contention.tsv"));
    let busy = load(&dir.join("contention-busy.tsv"));
    if quiet.is_empty() && busy.is_empty() {
        return Ok(());
    }
    writeln!(md, "## Contended mixes, engines taking turns (issue 18)\n")?;
    writeln!(md, "`cargo bench --bench contention` (and `-- --busy --threads 2`): each mix runs the lock-free engine, the reference and `seed-minimal` in turn, round after round in one process (5 rounds of 300 ms each), so machine noise moves all three alike; median throughput over the rounds, p99 of every 8th grant wait over all rounds. \"Preempted\": holds that took over 10 µs (a hold needs about 100 ns), per 1,000 operations; \"slow releases\": releases that took over 10 µs (a preempted releaser, a wake-up, the epoch's deferred work), per 1,000 operations; \"switches\": involuntary context switches of the worker threads per 1,000 operations; CPU: the worker threads' CPU time per operation (Linux schedstat). \"Busy\": an unrelated process spins on one core for the whole run. Where the time goes (`--features timeline`): `docs/benchmarks-analysis.md`.\n")?;
    for (name, table) in [("quiet machine", &quiet), ("one core busy", &busy)] {
        if table.is_empty() {
            continue;
        }
        writeln!(md, "### {name}\n")?;
        writeln!(md, "| mix | lock-free Mops/s | reference | seed-minimal | LF / ref | LF / seed | p99 wait µs LF / ref / seed | preempted LF / ref / seed | slow releases LF / ref / seed | switches LF / ref / seed | CPU µs per op LF / ref / seed |")?;
        writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|")?;
        for (mix, cells) in table.iter() {
            let get = |e: &str| cells.get(e).copied().unwrap_or_default();
            let (l, r, s) = (get(LF), get(REF), get(SEED));
            writeln!(
                md,
                "| {mix} | {:.3} | {:.3} | {:.3} | {:.2}× | {:.2}× | {:.1} / {:.1} / {:.1} | {:.1} / {:.1} / {:.1} | {:.1} / {:.1} / {:.1} | {:.0} / {:.0} / {:.0} | {:.1} / {:.1} / {:.1} |",
                l.mops, r.mops, s.mops, l.mops / r.mops, l.mops / s.mops,
                l.p99_us, r.p99_us, s.p99_us, l.preempted, r.preempted, s.preempted,
                l.slow_releases, r.slow_releases, s.slow_releases,
                l.switches, r.switches, s.switches, l.cpu_us, r.cpu_us, s.cpu_us
            )?;
        }
        writeln!(md)?;
    }
    let all: Vec<_> = quiet.iter().collect();
    let t2: Vec<_> = quiet.iter().filter(|(m, _)| m.ends_with("T=2")).collect();
    let busy2: Vec<_> = busy.iter().collect();
    let row = |targets: &mut String, what: &str, c: Count| -> std::fmt::Result {
        if c.of == 0 {
            return Ok(());
        }
        let worst = c
            .worst
            .map_or("–".into(), |(r, m)| format!("worst {r:.2}× ({m})"));
        writeln!(
            targets,
            "| {what} | {} of {} mixes, {worst} | {} |",
            c.met,
            c.of,
            verdict(c.met == c.of)
        )
    };
    for (what, rows, other, min) in [
        (
            "every mix, lock-free ≥ 1.0 × reference (engines alternating)",
            &all,
            REF,
            1.0,
        ),
        ("every mix, lock-free ≥ 1.0 × seed-minimal", &all, SEED, 1.0),
        ("T = 2, lock-free ≥ 1.3 × reference", &t2, REF, 1.3),
        (
            "T = 2 with one core busy, lock-free ≥ 1.0 × reference",
            &busy2,
            REF,
            1.0,
        ),
        (
            "T = 2 with one core busy, lock-free ≥ 1.0 × seed-minimal",
            &busy2,
            SEED,
            1.0,
        ),
    ] {
        row(
            targets,
            &format!("issue 18: {what}"),
            count(rows, other, min),
        )?;
    }
    let p99_ok = t2
        .iter()
        .filter(|(_, c)| match (c.get(LF), c.get(REF)) {
            (Some(l), Some(r)) => l.p99_us <= r.p99_us,
            _ => false,
        })
        .count();
    if !t2.is_empty() {
        writeln!(
            targets,
            "| issue 18: T = 2, lock-free p99 grant wait no higher than the reference's | {p99_ok} of {} mixes | {} |",
            t2.len(),
            verdict(p99_ok == t2.len())
        )?;
    }
    Ok(())
}
