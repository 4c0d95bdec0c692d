//! The fuzz targets' checks on stable, inside `cargo test`: the differential check (lock-free
//! engine vs mutex reference vs the spec's model) and the concurrent invariant check, on
//! inputs from a seeded generator and on every input checked in under `fuzz/corpus/` and
//! `fuzz/regressions/`.
//!
//! `KDS_FUZZ_CASES=n` changes the number of generated inputs; `KDS_FUZZ_SEED=s` the seed.

use kds_fuzzing::differential::Coverage;
use kds_fuzzing::support::Rng;
use kds_fuzzing::{concurrent_bytes, differential_bytes};
use std::path::Path;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn cases(default: u64) -> u64 {
    if cfg!(miri) {
        return 2;
    }
    env("KDS_FUZZ_CASES", default)
}

fn each_input<T>(dir: &str, f: fn(&[u8]) -> T) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(dir);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return 0;
    };
    let mut n = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        eprintln!("{}", path.display());
        f(&bytes);
        n += 1;
    }
    n
}

#[test]
fn differential_generated_inputs() {
    let seed = env("KDS_FUZZ_SEED", 0x6b64_735f_6469_6666);
    let mut gen = Rng::new(seed);
    let mut total = Coverage::default();
    for case in 0..cases(2000) {
        let len = 16 + (gen.next_u64() % 1500) as usize;
        let input = gen.bytes(len);
        eprintln!("differential case {case} (seed {seed:#x})");
        total += differential_bytes(&input);
    }
    eprintln!("{total:?}");
    // The generator must reach every kind of outcome, or the check proves little.
    if !cfg!(miri) {
        let c = total;
        for (what, n) in [
            ("hand-offs", c.handoffs),
            ("sync give-ups", c.sync_gave_up),
            ("cancels", c.cancelled),
            ("late cancels", c.cancel_too_late),
            ("Fail refusals", c.refused),
            ("Ignore grants over a sync holder", c.forced),
        ] {
            assert!(n >= 10, "generated scripts reached only {n} {what}: {c:?}");
        }
    }
}

#[test]
fn concurrent_generated_inputs() {
    let seed = env("KDS_FUZZ_SEED", 0x6b64_735f_636f_6e63);
    let mut gen = Rng::new(seed);
    for case in 0..cases(150) {
        let len = 16 + (gen.next_u64() % 600) as usize;
        let input = gen.bytes(len);
        eprintln!("concurrent case {case} (seed {seed:#x})");
        concurrent_bytes(&input);
    }
}

#[test]
fn differential_corpus_and_regressions() {
    let n = each_input("fuzz/corpus/differential", differential_bytes)
        + each_input("fuzz/regressions/differential", differential_bytes);
    assert!(n > 0, "no checked-in differential inputs found");
}

#[test]
fn concurrent_corpus_and_regressions() {
    let n = each_input("fuzz/corpus/concurrent", concurrent_bytes)
        + each_input("fuzz/regressions/concurrent", concurrent_bytes);
    assert!(n > 0, "no checked-in concurrent inputs found");
}

/// Spec rule 3's example through the harness: shared S1 held, exclusive E queued, shared S2
/// queued behind E; cancelling E hands S2 its grant in the same step.
#[test]
fn differential_script_cancel_from_the_middle() {
    use kds_fuzzing::differential::{check, How, Op, Policy, Script};
    let request = |exclusive| Op::Request {
        how: How::Callback,
        policy: Policy::Wait,
        entries: vec![(0, exclusive)],
    };
    let script = Script {
        initial_resources: 1,
        ops: vec![request(false), request(true), request(false), Op::Cancel(1)],
    };
    let c = check(&script).unwrap();
    assert_eq!((c.requests, c.cancelled), (3, 1));
    // S2 by the cancel; then tear-down releases S1 and S2 (no further hand-off).
    assert_eq!(c.handoffs, 1, "{c:?}");
}

/// The one-step sync paths through the harness: a one-liner and a `lock()` (guards
/// dropped at once) are granted on free resources, refused with `WouldBlock` behind a held
/// set without being left queued, and granted again once it is released.
#[test]
fn differential_script_one_liner_and_lock() {
    use kds_fuzzing::differential::{check, How, Op, Policy, Script};
    let request = |how, entries| Op::Request {
        how,
        policy: Policy::Wait,
        entries,
    };
    let script = Script {
        initial_resources: 2,
        ops: vec![
            // Named twice and in reverse: merged and sorted, exclusive winning.
            request(
                How::OneLinerReleased,
                vec![(1, false), (0, false), (1, true)],
            ),
            request(How::LockReleased, vec![(1, true), (0, true)]),
            request(How::Callback, vec![(0, false)]), // held by its callback
            request(How::OneLinerReleased, vec![(0, true), (1, true)]),
            request(How::LockReleased, vec![(1, false), (0, true)]),
            request(How::LockReleased, vec![(0, false)]), // shared with shared: granted
            Op::Release(2),
            request(How::OneLinerReleased, vec![(0, true)]),
            request(How::LockReleased, vec![(0, true), (1, false)]),
        ],
    };
    let c = check(&script).unwrap();
    assert_eq!(c.requests, 8, "{c:?}");
    assert_eq!(
        c.sync_gave_up, 2,
        "two refusals behind the callback's hold: {c:?}"
    );
}
