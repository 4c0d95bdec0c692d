#!/usr/bin/env bash
# Builds libkds in release mode and installs the C library:
#   PREFIX/include/kds.h
#   PREFIX/lib/libkds.a, PREFIX/lib/libkds.so.VERSION (+ libkds.so.0, libkds.so links)
#   PREFIX/lib/pkgconfig/kds.pc
# Usage: capi/install.sh PREFIX   (LIBDIR=... overrides PREFIX/lib; DESTDIR is honoured).
# Then: cc app.c $(pkg-config --cflags --libs kds), with PKG_CONFIG_PATH=PREFIX/lib/pkgconfig
# if PREFIX is not a default location. With cargo-c installed, `cargo cinstall -p kds-capi
# --prefix PREFIX` gives the same layout.
set -euo pipefail
prefix=${1:?usage: capi/install.sh PREFIX}
libdir=${LIBDIR:-$prefix/lib}
includedir=$prefix/include
dest=${DESTDIR:-}
cd "$(dirname "$0")/.."

version=$(sed -n 's/^version = "\(.*\)"/\1/p' capi/Cargo.toml | head -n1)
major=${version%%.*}

cargo build --locked --release -p kds-capi
target=${CARGO_TARGET_DIR:-target}/release

install -d "$dest$includedir" "$dest$libdir/pkgconfig"
install -m 644 include/kds.h "$dest$includedir/kds.h"
install -m 644 "$target/libkds.a" "$dest$libdir/libkds.a"
install -m 755 "$target/libkds.so" "$dest$libdir/libkds.so.$version"
ln -sf "libkds.so.$version" "$dest$libdir/libkds.so.$major"
ln -sf "libkds.so.$major" "$dest$libdir/libkds.so"
sed -e "s|@PREFIX@|$prefix|" -e "s|@LIBDIR@|$libdir|" -e "s|@INCLUDEDIR@|$includedir|" \
    -e "s|@VERSION@|$version|" capi/kds.pc.in > "$dest$libdir/pkgconfig/kds.pc"
chmod 644 "$dest$libdir/pkgconfig/kds.pc"
echo "installed libkds $version under $dest$prefix"
