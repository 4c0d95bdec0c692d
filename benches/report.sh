#!/usr/bin/env bash
# Regenerates docs/benchmarks.md and docs/bench/*.svg: runs every workload of
# benches/kds/main.rs on every engine and peer (about 15 minutes on 2 vCPUs; run it on an idle
# machine), the instruction counts of benches/instructions.sh (where valgrind is installed),
# then the report generator (the workspace member `kds-bench-report`). Extra arguments go to
# criterion (e.g. a filter).
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf target/criterion target/kds-bench
cargo bench --locked --bench kds -- "$@"
if command -v valgrind >/dev/null; then
    mkdir -p target/kds-bench
    bash benches/instructions.sh >target/kds-bench/instructions.txt
else
    echo "report: valgrind not found, no instruction counts (apt-get install valgrind)" >&2
fi
cargo run --locked --release -p kds-bench-report
