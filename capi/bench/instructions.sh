#!/usr/bin/env bash
# Instructions per request + release of each uncontended C row of capi/bench (kds.h in its
# 2012 form, in its 2013 form (7-argument kds_async_waitall, kds_resource_set_release_sync),
# and the seed port), under callgrind: counts, unlike times, do not move with this VM's noise.
# One line per row: `workload  kds  kds2013  seed  kds/seed  kds2013/kds`. ITERS (default 20000) sets the
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
cc -std=gnu11 -O2 -g -Wall -Wextra -Werror -Iinclude -Icapi/bench capi/bench/bench.c capi/bench/forms_2013.c \
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
printf 'workload\tkds\tkds2013\tseed\tkds/seed\tkds2013/kds\n'
for r in "${rows[@]}"; do
    k=$(count kds "$r")
    f=$(count kds2013 "$r")
    s=$(count seed "$r")
    awk -v r="$r" -v k="$k" -v f="$f" -v s="$s" \
        'BEGIN { printf "%s\t%d\t%d\t%d\t%.2f\t%.3f\n", r, k, f, s, k / s, f / k }'
done
if [ "$#" -eq 0 ] && command -v gdb >/dev/null; then
    trace() { # impl -> "instructions locked"
        gdb -q -batch -ex "py impl = \"$1\"" -x capi/bench/handoff_trace.py "$out/bench" 2>&1 |
            sed -n 's/^HANDOFF //p'
    }
    read -r ki kl <<<"$(trace kds)"
    read -r fi fl <<<"$(trace kds2013)"
    read -r si sl <<<"$(trace seed)"
    [ -n "${ki:-}" ] && [ -n "${fi:-}" ] && [ -n "${si:-}" ] ||
        { echo "handoff trace failed (gdb)" >&2; exit 1; }
    awk -v ki="$ki" -v fi="$fi" -v si="$si" \
        'BEGIN { printf "handoff direct callback (release to callback)\t%d\t%d\t%d\t%.2f\t%.3f\n", ki, fi, si, ki / si, fi / ki }'
    printf 'handoff direct callback: locked RMWs\t%d\t%d\t%d\n' "$kl" "$fl" "$sl"
fi
