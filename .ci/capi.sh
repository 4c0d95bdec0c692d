#!/usr/bin/env bash
# The C ABI (capi/, include/kds.h, tests/c/) beyond `cargo test`: every C test under
# AddressSanitizer (with LeakSanitizer) and under valgrind, then the install layout: install
# into a scratch prefix with capi/install.sh and build and run a C program with
# `pkg-config --cflags --libs kds`, dynamically and statically linked, and a smoke run of the C
# benchmark (capi/bench). About a minute on the 2-core CI machine once the crate is built
# (valgrind takes most of it).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

need=()
command -v valgrind >/dev/null || need+=(valgrind)
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v cc >/dev/null || need+=(gcc)
if ((${#need[@]})); then
    echo "=== installing ${need[*]}"
    sudo=$([ "$(id -u)" = 0 ] || echo sudo)
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

cargo build --locked -p kds-capi
lib=target/debug/libkds.a
out=target/capi-ci
rm -rf "$out"
mkdir -p "$out/asan" "$out/plain"
cflags=(-std=gnu11 -O1 -g -Wall -Wextra -Werror -Iinclude -Itests/c)
# The Rust staticlib goes after the objects; -fsanitize=address puts the ASan runtime first.
libs=(-lpthread -ldl -lm)

# Each C test is one source file, except tests/c/forms: one program of two translation units,
# one per header form (KDS_API_VERSION 2012 and 2013), linked against the one library.
programs=(tests/c/*.c "tests/c/forms/main_2012.c tests/c/forms/driver_2013.c")
name_of() { local first=${1%% *}; basename "$(dirname "$first")/$(basename "$first" .c)" | sed 's/^main_2012$/forms/'; }

echo "=== C tests under AddressSanitizer + LeakSanitizer (and stack use after return)"
for srcs in "${programs[@]}"; do
    name=$(name_of "$srcs")
    # shellcheck disable=SC2086 # a program's sources, split on purpose
    cc "${cflags[@]}" -fsanitize=address -fno-omit-frame-pointer $srcs "$lib" "${libs[@]}" \
        -o "$out/asan/$name"
    ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:detect_stack_use_after_return=1 "$out/asan/$name"
done

echo "=== C tests under valgrind (memcheck, leak check)"
# capi/valgrind.supp hides only "possibly lost" blocks that are the process's state at exit
# (worker threads still finishing, epoch garbage not yet collected); see the file.
for srcs in "${programs[@]}"; do
    name=$(name_of "$srcs")
    # shellcheck disable=SC2086 # a program's sources, split on purpose
    cc "${cflags[@]}" $srcs "$lib" "${libs[@]}" -o "$out/plain/$name"
    valgrind -q --error-exitcode=1 --leak-check=full --num-callers=40 \
        --suppressions=capi/valgrind.supp "$out/plain/$name"
done

echo "=== install layout and pkg-config"
prefix=$(pwd)/$out/prefix
bash capi/install.sh "$prefix"
test -f "$prefix/include/kds.h"
test -f "$prefix/lib/libkds.a"
test -L "$prefix/lib/libkds.so"
test -f "$prefix/lib/pkgconfig/kds.pc"
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
echo "pkg-config --cflags --libs kds: $(pkg-config --cflags --libs kds)"
# The test sources include "common.h", which includes <kds.h> from the installed prefix.
cc -Wall -Werror -Itests/c -o "$out/installed-dynamic" tests/c/egl_render_target.c \
    $(pkg-config --cflags --libs kds) -lpthread
LD_LIBRARY_PATH=$prefix/lib "$out/installed-dynamic"
LD_LIBRARY_PATH=$prefix/lib ldd "$out/installed-dynamic" | grep "libkds.so.0 => $prefix/lib" >/dev/null
cc -Wall -Werror -Itests/c -o "$out/installed-static" tests/c/lcd_flip.c \
    $(pkg-config --cflags kds) "$prefix/lib/libkds.a" \
    $(pkg-config --static --libs-only-l kds | sed 's/-lkds //')
"$out/installed-static"
echo "=== C benchmark, smoke run (figures meaningless; keeps capi/bench building and running)"
bash capi/bench/run.sh --quick >/dev/null
echo "=== C ABI checks passed"
