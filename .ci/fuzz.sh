#!/usr/bin/env bash
# Runs each fuzz target for a while (default 60 s each; `bash .ci/fuzz.sh 1800` for a
# campaign), seeded with the checked-in corpus, which it never writes to: new inputs go to a
# scratch corpus under fuzz/target/. Crashes land in fuzz/artifacts/<target>/ and fail the run.
#
#   differential: lock-free engine vs mutex reference vs the spec's model, step by step
#   concurrent:   2-4 threads per engine, mutual exclusion / exactly-once / no-stall checks
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=${*:-differential concurrent}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --version 0.13.2
for t in $targets; do
    scratch=fuzz/target/scratch-corpus/$t
    mkdir -p "$scratch"
    case $t in
        differential) extra=(-timeout=10 -max_len=2048) ;;
        concurrent) extra=(-timeout=60 -max_len=1024 -rss_limit_mb=8192) ;;
        *) extra=() ;;
    esac
    log=fuzz/target/fuzz-$t.log
    echo "--- fuzz target $t for ${seconds}s (full log: $log)"
    rc=0
    cargo +nightly fuzz run --fuzz-dir fuzz "$t" "$scratch" "fuzz/corpus/$t" -- \
        -max_total_time="$seconds" -print_final_stats=1 "${extra[@]}" >"$log" 2>&1 || rc=$?
    grep -E '^(#[0-9]+ +DONE|Done|stat::|==[0-9]+==ERROR|SUMMARY|thread .* panicked|STALL|differential check failed|concurrent check failed)' "$log" || true
    if [ "$rc" -ne 0 ]; then
        tail -n 80 "$log"
        exit "$rc"
    fi
done
