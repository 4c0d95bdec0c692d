//! The fuzz harness: the code behind the cargo-fuzz targets in `fuzz/`, in a crate of its own
//! (not shipped with the library), so the same checks also run on stable inside
//! `cargo test --workspace` (`tests/harness.rs`) with inputs from a seeded generator and
//! from the checked-in corpus. It uses the library's public API, and `kds::harness` (the one
//! door to internals) to check that resources are freed.
//!
//! - [`model`]: a plain executable model of the spec, one `Vec` per queue.
//! - [`differential`]: one thread, one script, three implementations (lock-free engine, mutex
//!   reference, model) compared after every step.
//! - [`concurrent`]: 2–4 threads on each engine, invariants checked with shadow counters.
//!
//! Inputs are decoded with [`arbitrary`] (`Script::decode`, `Workload::decode`: a header,
//! then operations one by one until the bytes run out), so any byte string is an input.

pub mod concurrent;
pub mod differential;
pub mod executor;
pub mod model;

/// The generator and shadow counters shared with the behaviour suite and the torture run.
#[path = "../../tests/support/mod.rs"]
pub mod support;

/// Decodes `bytes` as a differential script and runs it (the `differential` target's body);
/// panics with the step log on any disagreement. Returns what the script exercised.
pub fn differential_bytes(bytes: &[u8]) -> differential::Coverage {
    match differential::Script::decode(bytes).map(|s| differential::check(&s)) {
        None => differential::Coverage::default(),
        Some(Ok(coverage)) => coverage,
        Some(Err(report)) => panic!("{report}"),
    }
}

/// Decodes `bytes` as a concurrent workload and runs it (the `concurrent` target's body).
pub fn concurrent_bytes(bytes: &[u8]) {
    if let Some(workload) = concurrent::Workload::decode(bytes) {
        concurrent::run(&workload);
    }
}

/// Waits until every resource in `made` is gone, which it must be once every handle and set
/// of them is dropped (rule 10: nothing leaked; a waker or callback that kept a handle past
/// its use would make a cycle). Resources of a released set can still be on their way out:
/// the lock-free engine gives them back through the epoch collector (pinning and flushing
/// here lets it advance), a pool callback may still be dropping its closure. `Err`: the
/// indices still alive after two seconds.
pub(crate) fn wait_all_gone(made: &[kds::harness::WeakResource]) -> Result<(), Vec<usize>> {
    let alive = || -> Vec<usize> { (0..made.len()).filter(|&i| made[i].is_alive()).collect() };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let left = alive();
        if left.is_empty() {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(left);
        }
        kds::harness::flush_deferred_frees();
        std::thread::yield_now();
    }
}
