#!/usr/bin/env bash
# Regenerates docs/benchmarks.md and docs/bench/*.svg: runs every workload of
# benches/kds/main.rs on every engine and peer and the contended mixes of benches/contention.rs
# (about 25 minutes on 2 vCPUs; run it on an idle machine), the instruction counts of benches/instructions.sh (where valgrind is installed),
# then the report generator (the workspace member `kds-bench-report`). Extra arguments go to
# criterion (e.g. a filter).
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf target/criterion target/kds-bench
cargo bench --locked --bench kds -- "$@"
# Issue 18's contended mixes, the three engines taking turns (about 5 minutes).
cargo bench --locked --bench contention -- --rounds 5 --ms 300
cargo bench --locked --bench contention -- --rounds 5 --ms 300 --busy --threads 2
if command -v valgrind >/dev/null; then
    mkdir -p target/kds-bench
    bash benches/instructions.sh >target/kds-bench/instructions.txt
else
    echo "report: valgrind not found, no instruction counts (apt-get install valgrind)" >&2
fi
cargo run --locked --release -p kds-bench-report
