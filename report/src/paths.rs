//! The report's "paths" section: every way a user takes a set, from the `paths` group of
//! `benches/kds/paths.rs`, the instruction counts of `benches/instructions.sh` when the run
//! made them (`target/kds-bench/instructions.txt`), and the targets of issues 9 and 17.

use super::{ns, ratio, verdict, x, Data};
use std::fmt::Write;
use std::path::Path;

const KS: [usize; 3] = [1, 4, 8];
/// Queue lengths of `pipeline N` and `cancel N` (issue 18's sweep).
const QUEUED: [usize; 4] = [10, 100, 1000, 10000];
/// The short and the long queue that the targets compare.
const SHORT: usize = 10;
const LONG: usize = 1000;
const LF: &str = "lock-free";
const REF: &str = "reference";
const PL: &str = "parking_lot RwLock";

/// The callgrind counts `benches/instructions.sh` wrote: probe name -> instructions per
/// operation.
fn instructions(target: &Path) -> Vec<(String, f64)> {
    let Ok(text) = std::fs::read_to_string(target.join("kds-bench/instructions.txt")) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_owned(), it.next()?.parse().ok()?))
        })
        .collect()
}

/// Writes the section into `md` and the target rows of issues 9 and 17 into `targets`.
pub fn section(d: &Data, target: &Path, md: &mut String, targets: &mut String) -> std::fmt::Result {
    let t = |engine: &str, what: &str| d.per_iter("paths", engine, what);
    writeln!(md, "## 7. Every path a user takes (issues 9 and 17)\n")?;
    writeln!(
        md,
        "One thread, k fresh exclusive resources, uncontended; time per operation, acquire \
         to release. `one-liner`: the README's idiom, `ResourceSet::new().exclusive(&a)…wait()` \
         and drop, written out: the set built where it is used, its guard borrowing the \
         resources (its parking_lot peer sorts the k locks by address per use, then takes \
         the write guards); `one-liner fold`: the same set built by value in a loop \
         (`fold`, or `set = set.exclusive(r)` in a `for` loop: the set is copied at each \
         step); `one-liner from_iter`: the same set built in place by \
         `ResourceSet::from_iter([(&r, mode), ..])` (or `extend`); \
         `one-liner into_owned`: the one-liner's guard made owned (`wait()?.into_owned()`); \
         `build`: building the set alone; `lock`: a prepared set's `lock()`; `wait`: a \
         prepared set's `wait()`; `owned wait`: a prepared owned set's `wait()` (a guard \
         owning handles); `on_grant direct`: a prepared set's `on_grant(Dispatch::Direct, \
         ..)`, the callback dropping its guard; `acquire`: `acquire()` polled once with a \
         no-op waker (the future minus the executor).\n"
    )?;
    writeln!(
        md,
        "| path | k | lock-free | reference | parking_lot sorted | lock-free / reference | lock-free / parking_lot | lock-free / its `lock` |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|---|")?;
    for path in [
        "one-liner",
        "one-liner fold",
        "one-liner from_iter",
        "one-liner into_owned",
        "build",
        "lock",
        "wait",
        "owned wait",
        "on_grant direct",
        "acquire",
    ] {
        for k in KS {
            let what = format!("{path} k={k}");
            let lf = t(LF, &what);
            let lock = t(LF, &format!("lock k={k}"));
            writeln!(
                md,
                "| {path} | {k} | {} | {} | {} | {} | {} | {} |",
                ns(lf),
                ns(t(REF, &what)),
                ns(t(PL, &what)),
                x(ratio(lf, t(REF, &what))),
                x(ratio(lf, t(PL, &what))),
                if path == "lock" {
                    "–".into()
                } else {
                    x(ratio(lf, lock))
                },
            )?;
        }
    }
    writeln!(
        md,
        "\nLong queues, one resource: `pipeline N`: N sets queued behind the holder; each \
         operation appends one set at the tail and releases the holder (the queue stays N \
         long). `cancel N`: N sets queued behind a holder that keeps it; each operation \
         appends one set and cancels it (a waiter timing out at the tail).\n"
    )?;
    writeln!(
        md,
        "| workload | lock-free | reference | lock-free / reference |"
    )?;
    writeln!(md, "|---|---|---|---|")?;
    for path in ["pipeline", "cancel"] {
        for n in QUEUED {
            let what = format!("{path} {n}");
            writeln!(
                md,
                "| {what} | {} | {} | {} |",
                ns(t(LF, &what)),
                ns(t(REF, &what)),
                x(ratio(t(LF, &what), t(REF, &what)))
            )?;
        }
    }
    writeln!(md)?;

    let counts = instructions(target);
    let count = |probe: &str| counts.iter().find(|(p, _)| p == probe).map(|&(_, n)| n);
    if !counts.is_empty() {
        writeln!(
            md,
            "Instructions per operation, the same paths under callgrind (`bash \
             benches/instructions.sh`; counts do not move with the machine's noise). `idiom`: \
             the one-liner written out, `ResourceSet::new().exclusive(&a)…wait()` and drop; \
             `fold`: the same built in a loop; `lock`, `wait`: a prepared set; sorted \
             `parking_lot`: as above.\n"
        )?;
        writeln!(
            md,
            "| path | k | lock-free | reference | idiom / `lock` (lock-free) |"
        )?;
        writeln!(md, "|---|---|---|---|---|")?;
        for path in ["idiom", "fold", "lock", "wait", "on_grant", "acquire"] {
            for k in KS {
                let lf = count(&format!("lock-free/{path}-{k}"));
                let lock = count(&format!("lock-free/lock-{k}"));
                writeln!(
                    md,
                    "| {path} | {k} | {} | {} | {} |",
                    lf.map_or("–".into(), |n| format!("{n:.0}")),
                    count(&format!("reference/{path}-{k}"))
                        .map_or("–".into(), |n| format!("{n:.0}")),
                    if path == "idiom" {
                        x(ratio(lf, lock))
                    } else {
                        "–".into()
                    },
                )?;
            }
        }
        for k in KS {
            writeln!(
                md,
                "| sorted parking_lot | {k} | {} | | |",
                count(&format!("parking_lot/sorted-{k}"))
                    .map_or("–".into(), |n| format!("{n:.0}"))
            )?;
        }
        writeln!(
            md,
            "\nThe queued paths under callgrind, one resource, direct callbacks (`pipeline-N`: \
             append behind N waiting sets and release the head; `cancel-N`: append behind a \
             holder and N waiting sets, then cancel; `shared-N`: N shared holders granted \
             through the queue, append one more shared set and release the oldest).\n"
        )?;
        writeln!(
            md,
            "| probe | lock-free | reference | lock-free / reference |"
        )?;
        writeln!(md, "|---|---|---|---|")?;
        // `shared-N`: N shared holders granted through the queue; a step appends one more
        // and releases the oldest.
        let probes = ["pipeline", "cancel"]
            .iter()
            .flat_map(|path| QUEUED.map(|n| format!("{path}-{n}")))
            .chain([40, 40000].map(|n| format!("shared-{n}")));
        for probe in probes {
            let (lf, rf) = (
                count(&format!("lock-free/{probe}")),
                count(&format!("reference/{probe}")),
            );
            writeln!(
                md,
                "| {probe} | {} | {} | {} |",
                lf.map_or("–".into(), |n| format!("{n:.0}")),
                rf.map_or("–".into(), |n| format!("{n:.0}")),
                x(ratio(lf, rf))
            )?;
        }
        writeln!(md)?;
    }

    // Issue 17: the one-liner is the fast path.
    for k in KS {
        let what = format!("one-liner k={k}");
        let pl = t(PL, &what);
        if let Some(r) = ratio(t(LF, &what), pl) {
            writeln!(
                targets,
                "| one-liner k={k}: ≤ 1.5 × sorted parking_lot | {r:.2}× | {} |",
                verdict(r <= 1.5)
            )?;
        }
        for (how, path) in [
            ("built by value in a loop, `fold`", "one-liner fold"),
            ("built in place, `from_iter`", "one-liner from_iter"),
        ] {
            if let Some(r) = ratio(t(LF, &format!("{path} k={k}")), pl) {
                writeln!(
                    targets,
                    "| one-liner k={k} ({how}): ≤ 1.5 × sorted parking_lot | {r:.2}× | {} |",
                    verdict(r <= 1.5)
                )?;
            }
        }
        let (idiom, lock) = (
            count(&format!("lock-free/idiom-{k}")),
            count(&format!("lock-free/lock-{k}")),
        );
        if let Some(r) = ratio(idiom, lock) {
            writeln!(
                targets,
                "| one-liner k={k}: ≤ 2 × `lock()`'s instructions | {:.0} vs {:.0}: {r:.2}× | {} |",
                idiom.unwrap_or(0.0),
                lock.unwrap_or(0.0),
                verdict(r <= 2.0)
            )?;
        }
    }
    // Issue 9: the async paths against the reference and the prepared `lock()`.
    for path in ["on_grant direct", "acquire"] {
        for k in KS {
            let what = format!("{path} k={k}");
            let lf = t(LF, &what);
            if let Some(r) = ratio(lf, t(REF, &what)) {
                writeln!(
                    targets,
                    "| {path} k={k}: lock-free ≤ 0.5 × reference | {r:.2}× | {} |",
                    verdict(r <= 0.5)
                )?;
            }
            if let Some(r) = ratio(lf, t(LF, &format!("lock k={k}"))) {
                writeln!(
                    targets,
                    "| {path} k={k}: ≤ 3 × the prepared `lock()` | {r:.2}× | {} |",
                    verdict(r <= 3.0)
                )?;
            }
        }
    }
    // Issue 18: a request and a release beside 40,000 shared holders ≤ 2 × beside 40.
    if let Some(r) = ratio(
        count("lock-free/shared-40000"),
        count("lock-free/shared-40"),
    ) {
        writeln!(
            targets,
            "| shared crowd: request + release beside 40,000 holders ≤ 2 × beside 40 (instructions) | {r:.2}× | {} |",
            verdict(r <= 2.0)
        )?;
    }
    // Issue 18: long queues cost what short ones do; the queued step against the reference.
    for path in ["pipeline", "cancel"] {
        let (short, long) = (
            t(LF, &format!("{path} {SHORT}")),
            t(LF, &format!("{path} {LONG}")),
        );
        let limit = if path == "cancel" { 1.2 } else { 2.0 };
        if let Some(r) = ratio(long, short) {
            writeln!(
                targets,
                "| {path}: behind {LONG} ≤ {limit} × behind {SHORT} (time) | {r:.2}× | {} |",
                verdict(r <= limit)
            )?;
        }
        let (short, long) = (
            count(&format!("lock-free/{path}-{SHORT}")),
            count(&format!("lock-free/{path}-{LONG}")),
        );
        if let Some(r) = ratio(long, short) {
            writeln!(
                targets,
                "| {path}: behind {LONG} ≤ {limit} × behind {SHORT} (instructions) | {r:.2}× | {} |",
                verdict(r <= limit)
            )?;
        }
        // Issue 18: a pipeline step at most half the reference's; a cancel below it.
        let (limit, what) = if path == "pipeline" {
            (0.5, "≤ 0.5 × reference")
        } else {
            (1.0, "below reference")
        };
        for n in [SHORT, LONG] {
            let name = format!("{path} {n}");
            if let Some(r) = ratio(t(LF, &name), t(REF, &name)) {
                writeln!(
                    targets,
                    "| {name}: lock-free {what} (time) | {r:.2}× | {} |",
                    verdict(if limit < 1.0 { r <= limit } else { r < limit })
                )?;
            }
            let probe = |engine: &str| count(&format!("{engine}/{path}-{n}"));
            if let Some(r) = ratio(probe(LF), probe(REF)) {
                writeln!(
                    targets,
                    "| {name}: lock-free {what} (instructions) | {r:.2}× | {} |",
                    verdict(if limit < 1.0 { r <= limit } else { r < limit })
                )?;
            }
        }
    }
    Ok(())
}
