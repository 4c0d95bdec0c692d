#!/usr/bin/env bash
# Regenerates docs/benchmarks.md and docs/bench/*.svg: runs every workload of
# benches/kds/main.rs on every engine and peer (about 15 minutes on 2 vCPUs; run it on an idle
# machine), then the report generator. Extra arguments go to criterion (e.g. a filter).
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf target/criterion target/kds-bench
cargo bench --locked --bench kds -- "$@"
cargo run --locked --release --example bench_report
