#!/usr/bin/env bash
# The behaviour suite under Miri (undefined behaviour and data races in the unsafe code), on
# both engines, with iteration counts shrunk under cfg(miri).
#
# Flags: Tree Borrows, because crossbeam-epoch's own intrusive list trips Stacked Borrows
# (an error inside crossbeam-epoch's internal.rs, not in kds); permissive provenance, since
# crossbeam-epoch stores pointers as integers; and leaks ignored, because the epoch
# collector's global garbage is never freed at process exit.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup component add miri rust-src --toolchain nightly
export MIRIFLAGS="${MIRIFLAGS:--Zmiri-tree-borrows -Zmiri-permissive-provenance -Zmiri-ignore-leaks}"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/miri}
cargo +nightly miri test --test behaviour "$@"
# The request pool: a pooled request is emptied, reused in place, and never taken while held.
[ $# -gt 0 ] || cargo +nightly miri test --lib -- lockfree::pool::tests
# The C front end's in-place sets and their lent guards (capi/src/set.rs), every release party.
[ $# -gt 0 ] || cargo +nightly miri test -p kds-capi --lib set::tests
# The packed set entry (src/engine/entry.rs) and the entry list that keeps its heap list's
# address in a slot (src/entries.rs) keep their pointers' provenance: their unit tests pass
# under strict provenance and both aliasing models (crossbeam-epoch's tagged pointers do not,
# hence the permissive flag above).
if [ $# -eq 0 ]; then
    for model in "" "-Zmiri-tree-borrows"; do
        MIRIFLAGS="-Zmiri-strict-provenance $model" cargo +nightly miri test --lib -- entry::tests entries::tests
    done
fi
