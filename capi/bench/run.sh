#!/usr/bin/env bash
# Builds libkds in release mode and the C benchmark (bench.c: kds.h vs seed_port.h, the 2012
# design), and runs it: `bash capi/bench/run.sh` (full, about a minute) or
# `bash capi/bench/run.sh --quick` (smoke run, figures meaningless). Output: a TSV table on
# stdout, also saved to target/capi-bench/results.tsv.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --locked --release -p kds-capi
out=target/capi-bench
mkdir -p "$out"
cc -std=gnu11 -O2 -Wall -Wextra -Werror -Iinclude -Icapi/bench capi/bench/bench.c capi/bench/forms_2013.c \
    target/release/libkds.a -lpthread -ldl -lm -o "$out/bench"
"$out/bench" "$@" | tee "$out/results.tsv"
