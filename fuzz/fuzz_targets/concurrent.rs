//! `cargo +nightly fuzz run concurrent`: a workload on 2-4 threads, on each engine in turn,
//! with mutual exclusion, exactly-once and no-stall invariants checked
//! (`kds_fuzzing::concurrent`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kds_fuzzing::concurrent_bytes(data);
});
