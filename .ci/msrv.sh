#!/usr/bin/env bash
# The MSRV check: builds the library and runs the behaviour suite (both engines) on the
# `rust-version` that Cargo.toml declares, through the small crate in tests/msrv/ (the main
# crate's dev-dependencies need newer compilers than the library does).
set -euo pipefail
cd "$(dirname "$0")/.."
msrv=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
[ -n "$msrv" ] || { echo "no rust-version in Cargo.toml" >&2; exit 1; }
grep -q "^rust-version = \"$msrv\"" tests/msrv/Cargo.toml ||
    { echo "tests/msrv/Cargo.toml does not declare rust-version $msrv" >&2; exit 1; }
toolchain=$msrv
[[ $toolchain == *.*.* ]] || toolchain=$msrv.0
rustup toolchain list | grep "^$toolchain" >/dev/null || rustup toolchain install "$toolchain" --profile minimal
echo "--- library and behaviour suite on Rust $toolchain (the declared rust-version)"
cargo "+$toolchain" test --locked --manifest-path tests/msrv/Cargo.toml
