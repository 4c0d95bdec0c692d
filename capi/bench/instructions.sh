#!/usr/bin/env bash
# Instructions per request + release of each uncontended C row of capi/bench (kds.h and the
# seed port), under callgrind: counts, unlike times, do not move with this VM's noise.
# One line per row: `workload  kds  seed  kds/seed`. ITERS (default 20000) sets the
# iterations; arguments (default: every uncontended row) pick rows by name. Then, where gdb
# is installed and no rows were named, the direct-callback hand-off stepped under gdb
# (handoff_trace.py): instructions, and locked read-modify-writes, from the release's entry
# to the callback's.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
iters=${ITERS:-20000}
cargo build --locked --release -p kds-capi >&2
out=target/capi-bench
mkdir -p "$out"
cc -std=gnu11 -O2 -g -Wall -Wextra -Werror -Iinclude -Icapi/bench capi/bench/bench.c \
    target/release/libkds.a -lpthread -ldl -lm -o "$out/bench"
rows=("$@")
[ ${#rows[@]} -gt 0 ] || rows=("sync k=1" "sync k=4" "sync k=8" "async direct k=1" \
    "async direct k=4" "async direct k=8")
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
count() { # impl row -> instructions per iteration
    valgrind --tool=callgrind --callgrind-out-file="$scratch/cg" \
        --toggle-collect='measured_uncontended' \
        "$out/bench" --impl "$1" --only "uncontended $2" --runs 1 --iters "$iters" >/dev/null 2>&1
    total=$(callgrind_annotate "$scratch/cg" 2>/dev/null |
        sed -n 's/^ *\([0-9,]*\) .*PROGRAM TOTALS.*/\1/p' | tr -d ,)
    awk -v t="$total" -v n="$iters" 'BEGIN { printf "%.0f", t / n }'
}
printf 'workload\tkds\tseed\tkds/seed\n'
for r in "${rows[@]}"; do
    k=$(count kds "$r")
    s=$(count seed "$r")
    awk -v r="$r" -v k="$k" -v s="$s" 'BEGIN { printf "%s\t%d\t%d\t%.2f\n", r, k, s, k / s }'
done
if [ "$#" -eq 0 ] && command -v gdb >/dev/null; then
    trace() { # impl -> "instructions locked"
        gdb -q -batch -ex "py impl = \"$1\"" -x capi/bench/handoff_trace.py "$out/bench" 2>&1 |
            sed -n 's/^HANDOFF //p'
    }
    read -r ki kl <<<"$(trace kds)"
    read -r si sl <<<"$(trace seed)"
    [ -n "${ki:-}" ] && [ -n "${si:-}" ] || { echo "handoff trace failed (gdb)" >&2; exit 1; }
    awk -v ki="$ki" -v si="$si" 'BEGIN { printf "handoff direct callback (release to callback)\t%d\t%d\t%.2f\n", ki, si, ki / si }'
    printf 'handoff direct callback: locked RMWs\t%d\t%d\n' "$kl" "$sl"
fi
