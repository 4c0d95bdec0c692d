//! `cargo +nightly fuzz run differential`: one script of operations, run step by step on the
//! lock-free engine, the mutex reference and the spec's model, compared after every step
//! (`kds_fuzzing::differential`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kds_fuzzing::differential_bytes(data);
});
