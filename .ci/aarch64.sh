#!/usr/bin/env bash
# The ARM64 build: cross-compiles the crate and its test suite for aarch64-unknown-linux-gnu
# and runs the suite under qemu-user (behaviour suite on both engines, doc-free unit tests,
# the fuzz harness on fewer generated inputs, the torture binary's unit tests) and the C
# ABI's C tests against libkds built for aarch64, then checks that the benchmarks build for
# aarch64 (run them on a board: docs/hwtest.md).
# Installs what it needs: the rustup target, Debian's cross gcc and qemu-user.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
target=aarch64-unknown-linux-gnu
need=()
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
if ((${#need[@]})); then
    echo "=== installing ${need[*]}"
    sudo=$([ "$(id -u)" = 0 ] || echo sudo)
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
rustup target list --installed | grep -x "$target" >/dev/null || rustup target add "$target"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
# Emulation is some ten times slower: fewer generated fuzz inputs (the corpus still runs).
export KDS_FUZZ_CASES=300
echo "=== the test suite for $target under qemu-user"
cargo test --locked -p kds --target "$target" --lib --bins --tests
echo "=== the C ABI for $target: libkds cross-built, every C test cross-compiled and run under qemu-user"
# The drivers kds.h serves are ARM drivers: the library, the header's two forms (the
# 2013 form's symbol redirect) and the C tests, on the ISA they run on. About 20 s.
cargo build --locked --release -p kds-capi --target "$target"
out=target/capi-$target
mkdir -p "$out"
for srcs in tests/c/*.c "tests/c/forms/main_2012.c tests/c/forms/driver_2013.c"; do
    first=${srcs%% *}
    name=$(basename "$first" .c)
    [ "$name" = main_2012 ] && name=forms
    # shellcheck disable=SC2086 # a program's sources, split on purpose
    aarch64-linux-gnu-gcc -std=gnu11 -O1 -g -Wall -Wextra -Werror -Iinclude -Itests/c $srcs \
        "target/$target/release/libkds.a" -lpthread -ldl -lm -o "$out/$name"
    timeout 600 qemu-aarch64 -L /usr/aarch64-linux-gnu "$out/$name"
done
echo "=== the benchmarks build for $target"
cargo bench --locked -p kds --target "$target" --no-run
