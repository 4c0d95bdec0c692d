#!/usr/bin/env bash
# The behaviour suite (both engines), and kds-dmabuf's simulated-buffer tests, under AddressSanitizer (with LeakSanitizer) and
# ThreadSanitizer. Nightly only; ThreadSanitizer also rebuilds std instrumented (rust-src).
set -euo pipefail
cd "$(dirname "$0")/.."
rustup component add rust-src --toolchain nightly
target=x86_64-unknown-linux-gnu
# No backtraces: under ThreadSanitizer, symbolizing one takes seconds, and the tests whose
# callbacks panic on purpose then miss their time bounds (a worker's next job "never ran"
# within 10 s when RUST_BACKTRACE=1 was inherited from the caller's shell).
export RUST_BACKTRACE=0

echo "=== AddressSanitizer + LeakSanitizer"
RUSTFLAGS="-Zsanitizer=address" RUSTDOCFLAGS="-Zsanitizer=address" \
    CARGO_TARGET_DIR=target/asan cargo +nightly test --target "$target" --test behaviour
# kds-dmabuf's request paths on simulated buffers: the reactor thread, cancels racing
# deliveries, descriptors closed on every ending.
RUSTFLAGS="-Zsanitizer=address" \
    CARGO_TARGET_DIR=target/asan cargo +nightly test --target "$target" -p kds-dmabuf --test sim --test reactor_leaks

echo "=== ThreadSanitizer"
# crossbeam_sanitize: crossbeam-epoch's own switch for sanitizer runs (smaller bags, eager
# collection), so reclamation races are more likely to show.
RUSTFLAGS="-Zsanitizer=thread --cfg crossbeam_sanitize" RUSTDOCFLAGS="-Zsanitizer=thread" \
    TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1}" \
    CARGO_TARGET_DIR=target/tsan cargo +nightly test -Zbuild-std --target "$target" --test behaviour
RUSTFLAGS="-Zsanitizer=thread --cfg crossbeam_sanitize" \
    TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1}" \
    CARGO_TARGET_DIR=target/tsan cargo +nightly test -Zbuild-std --target "$target" -p kds-dmabuf --test sim --test reactor_leaks
