#!/usr/bin/env bash
# Loom models of the lock-free engine. Optional first argument: an injected bug
# (see docs/verification.md), e.g. `bash .ci/loom.sh skip_help`; further arguments go to the
# test binary (e.g. a model name).
set -euo pipefail
cd "$(dirname "$0")/.."
bug=${1:-}
shift || true
flags="--cfg kds_loom --cfg crossbeam_loom"
[ -n "$bug" ] && flags="$flags --cfg kds_bug=\"$bug\""
export RUSTFLAGS="$flags"
export LOOM_MAX_PREEMPTIONS=${LOOM_MAX_PREEMPTIONS:-2}
export LOOM_MAX_BRANCHES=${LOOM_MAX_BRANCHES:-20000}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/loom}
cargo test --release --features loom --test ${LOOM_TEST:-loom_engine} -- --test-threads=1 "$@"
