#!/usr/bin/env bash
# Instructions per operation of each uncontended request path (benches/instructions.rs), under
# callgrind: counts, unlike times, do not move with this VM's noise. One line per probe:
# `probe  instructions/op`. Optional arguments: probe names (default: all); ITERS (default
# 20000) sets the iterations.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
iters=${ITERS:-20000}
bin=$(cargo bench --locked --bench instructions --no-run --message-format=json 2>/dev/null |
    sed -n 's/.*"executable":"\([^"]*instructions[^"]*\)".*/\1/p' | tail -n 1)
[ -x "$bin" ] || { echo "could not build benches/instructions.rs" >&2; exit 1; }
probes=("$@")
[ ${#probes[@]} -gt 0 ] || mapfile -t probes < <("$bin" list)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for p in "${probes[@]}"; do
    valgrind --tool=callgrind --callgrind-out-file="$out/cg" --toggle-collect='*measured*' \
        "$bin" probe "$p" "$iters" >/dev/null 2>&1
    total=$(callgrind_annotate "$out/cg" 2>/dev/null | sed -n 's/^ *\([0-9,]*\) .*PROGRAM TOTALS.*/\1/p' | tr -d ,)
    awk -v p="$p" -v t="$total" -v n="$iters" 'BEGIN { printf "%-28s %8.0f\n", p, t / n }'
done
