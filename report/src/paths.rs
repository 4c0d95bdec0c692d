//! The report's "paths" section (issue 9): every way a user takes a set, from the `paths`
//! group of `benches/kds/paths.rs`, and the targets for them.

use super::{ns, ratio, verdict, x, Data};
use std::fmt::Write;

const KS: [usize; 3] = [1, 4, 8];
const QUEUED: [usize; 2] = [10, 1000];
const LF: &str = "lock-free";
const REF: &str = "reference";
const PL: &str = "parking_lot RwLock";

/// Writes the section into `md` and the issue 9 target rows into `targets`.
pub fn section(d: &Data, md: &mut String, targets: &mut String) -> std::fmt::Result {
    let t = |engine: &str, what: &str| d.per_iter("paths", engine, what);
    writeln!(md, "## 7. Every path a user takes (issue 9)\n")?;
    writeln!(
        md,
        "One thread, k fresh exclusive resources, uncontended; time per operation, acquire \
         to release. `one-liner`: `ResourceSet::new().exclusive(..)…wait()` and drop (its \
         parking_lot peer sorts the k locks by address per use, then takes the write \
         guards); `one-liner owned`: the same ending in `wait_owned()`; `one-liner from_iter`: \
         `ResourceSet::from_iter([(&r, Access::Exclusive), ..]).wait_owned()`, an owned set \
         built in place; `build from_iter`: building that set alone; `one-liner borrowed`: \
         `BorrowedSet::new().exclusive(..)…wait()`, a set and guard that borrow the resources \
         (it sorts its entries at the request); `build borrowed`: building that set alone; `lock`: a prepared set's `lock()`; `build`: building the set alone; \
         `on_grant direct`: a prepared set's `on_grant(Dispatch::Direct, ..)`, the callback \
         dropping its guard; `acquire`: `acquire()` polled once with a no-op waker (the \
         future minus the executor).\n"
    )?;
    writeln!(
        md,
        "| path | k | lock-free | reference | parking_lot sorted | lock-free / reference | lock-free / parking_lot | lock-free / its `lock` |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|---|")?;
    for path in [
        "one-liner",
        "one-liner owned",
        "one-liner from_iter",
        "one-liner borrowed",
        "build",
        "build from_iter",
        "build borrowed",
        "lock",
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

    // Targets 1 to 3 of issue 9.
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
    for k in KS {
        let one = t(LF, &format!("one-liner k={k}"));
        let pl = t(PL, &format!("one-liner k={k}"));
        for (how, v) in [
            ("wait", one),
            ("wait_owned", t(LF, &format!("one-liner owned k={k}"))),
            (
                "from_iter(..).wait_owned",
                t(LF, &format!("one-liner from_iter k={k}")),
            ),
            (
                "BorrowedSet::wait",
                t(LF, &format!("one-liner borrowed k={k}")),
            ),
        ] {
            if let Some(r) = ratio(v, pl) {
                writeln!(
                    targets,
                    "| one-liner k={k} (`{how}`): ≤ 2 × sorted parking_lot | {r:.2}× | {} |",
                    verdict(r <= 2.0)
                )?;
            }
        }
        for (how, build, whole) in [
            ("ResourceSet", "build", "one-liner"),
            (
                "ResourceSet` by `from_iter",
                "build from_iter",
                "one-liner from_iter",
            ),
            ("BorrowedSet", "build borrowed", "one-liner borrowed"),
        ] {
            let build = t(LF, &format!("{build} k={k}"));
            if let (Some(b), Some(o)) = (build, t(LF, &format!("{whole} k={k}"))) {
                let take = o - b;
                writeln!(
                    targets,
                    "| one-liner k={k}: building a `{how}` costs less than taking it | build {} vs wait + drop {} | {} |",
                    ns(Some(b)),
                    ns(Some(take)),
                    verdict(b < take)
                )?;
            }
        }
    }
    for path in ["pipeline", "cancel"] {
        let (short, long) = (
            t(LF, &format!("{path} {}", QUEUED[0])),
            t(LF, &format!("{path} {}", QUEUED[1])),
        );
        if let Some(r) = ratio(long, short) {
            writeln!(
                targets,
                "| {path}: behind {} ≤ 2 × behind {} | {r:.2}× | {} |",
                QUEUED[1],
                QUEUED[0],
                verdict(r <= 2.0)
            )?;
        }
        for n in QUEUED {
            let what = format!("{path} {n}");
            if let Some(r) = ratio(t(LF, &what), t(REF, &what)) {
                writeln!(
                    targets,
                    "| {what}: lock-free below reference | {r:.2}× | {} |",
                    verdict(r < 1.0)
                )?;
            }
        }
    }
    Ok(())
}
