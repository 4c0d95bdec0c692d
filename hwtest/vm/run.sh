#!/usr/bin/env bash
# Real DRM page flips for kds-hwtest: boots a Debian 6.1 kernel under QEMU (TCG) with vkms
# (built out of tree: Debian does not ship it) and vgem, runs the kds-hwtest binary on
# /dev/dri/card0 inside the guest, prints its table and exits non-zero on any failed check.
#
#   bash hwtest/vm/run.sh x86_64|aarch64 [-- extra kds-hwtest arguments]
#
# From a clean Debian bookworm machine (root; Debian's mirrors and crates.io reachable): it
# installs what it needs with apt-get, downloads the kernel packages with `apt-get download`
# (nothing is installed from them: they are unpacked under the cache), builds vkms, builds
# kds-hwtest statically for the guest, packs a busybox initramfs and boots it.
# Everything downloaded or built goes to hwtest/vm/.cache/ (git-ignored; override with
# KDS_HWTEST_CACHE), so a second run only rebuilds the initramfs and boots.
# Environment: KDS_HWTEST_FRAMES (default 120 per mode), KDS_HWTEST_TIMEOUT (guest, s; 600).
set -euo pipefail

ARCH=${1:-x86_64}
shift || true
[ "${1:-}" = "--" ] && shift
EXTRA=("$@")

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE_TOP=${KDS_HWTEST_CACHE:-$HERE/.cache}
CACHE=$CACHE_TOP/$ARCH
FRAMES=${KDS_HWTEST_FRAMES:-120}
GUEST_TIMEOUT=${KDS_HWTEST_TIMEOUT:-600}

case $ARCH in
x86_64)
    DEB_ARCH=amd64 KARCH=x86 CROSS= CONSOLE=ttyS0
    QEMU=qemu-system-x86_64 QEMU_PKG=qemu-system-x86
    RUST_TARGET=x86_64-unknown-linux-gnu
    QEMU_ARGS=(-machine pc -cpu max)
    ;;
aarch64 | arm64)
    ARCH=aarch64 CACHE=$CACHE_TOP/aarch64
    DEB_ARCH=arm64 KARCH=arm64 CROSS=aarch64-linux-gnu- CONSOLE=ttyAMA0
    QEMU=qemu-system-aarch64 QEMU_PKG=qemu-system-arm
    RUST_TARGET=aarch64-unknown-linux-gnu
    QEMU_ARGS=(-machine virt -cpu cortex-a57)
    ;;
*)
    echo "usage: bash hwtest/vm/run.sh x86_64|aarch64 [-- kds-hwtest args]" >&2
    exit 2
    ;;
esac

T0=$(date +%s%N)
LAST=$T0
step() {
    local now
    now=$(date +%s%N)
    printf '[vm %s +%5.1fs, at %5.1fs] %s\n' "$ARCH" \
        "$(awk -v a="$now" -v b="$LAST" 'BEGIN{print (a-b)/1e9}')" \
        "$(awk -v a="$now" -v b="$T0" 'BEGIN{print (a-b)/1e9}')" "$*"
    LAST=$now
}
mkdir -p "$CACHE" "$CACHE_TOP/common"

# --- 1. host tools -----------------------------------------------------------------------
APT_UPDATED=
apt_update() {
    if [ -z "$APT_UPDATED" ]; then
        apt-get update -qq
        APT_UPDATED=1
    fi
}
need=()
command -v "$QEMU" >/dev/null || need+=("$QEMU_PKG")
[ -x /bin/busybox ] && /bin/busybox --list | grep -qx cpio || need+=(busybox-static)
command -v make >/dev/null || need+=(make)
command -v gcc-12 >/dev/null || need+=(gcc-12)
dpkg -s libc6-dev >/dev/null 2>&1 || need+=(libc6-dev)
command -v xz >/dev/null || need+=(xz-utils)
command -v gzip >/dev/null || need+=(gzip)
if [ "$ARCH" = aarch64 ]; then
    command -v aarch64-linux-gnu-gcc-12 >/dev/null || need+=(gcc-aarch64-linux-gnu gcc-12-aarch64-linux-gnu)
    dpkg -s libc6-dev-arm64-cross >/dev/null 2>&1 || need+=(libc6-dev-arm64-cross)
fi
if [ ${#need[@]} -gt 0 ]; then
    step "installing ${need[*]}"
    apt_update
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
step "host tools ready"

# --- 2. kernel packages (downloaded, unpacked under the cache) ---------------------------
KROOT=$CACHE/root
if [ ! -f "$CACHE/kernel.env" ]; then
    apt_update
    if [ "$DEB_ARCH" != "$(dpkg --print-architecture)" ] &&
        ! dpkg --print-foreign-architectures | grep -qx "$DEB_ARCH"; then
        dpkg --add-architecture "$DEB_ARCH"
        APT_UPDATED=
        apt_update
    fi
    # The kernel ABI name the metapackage points at, e.g. 6.1.0-56.
    KABI=$(apt-cache depends "linux-image-$DEB_ARCH:$DEB_ARCH" |
        sed -n "s/.*Depends: linux-image-\([0-9.]*-[0-9]*\)-$DEB_ARCH.*/\1/p" | head -1)
    [ -n "$KABI" ] || { echo "cannot find linux-image-$DEB_ARCH in apt" >&2; exit 1; }
    KVER=$KABI-$DEB_ARCH
    step "downloading the $KVER kernel packages"
    rm -rf "$CACHE/debs" "$KROOT"
    mkdir -p "$CACHE/debs" "$KROOT"
    (cd "$CACHE/debs" && apt-get download -qq \
        "linux-image-$KVER:$DEB_ARCH" "linux-headers-$KVER:$DEB_ARCH" \
        "linux-headers-$KABI-common" "linux-kbuild-6.1:$(dpkg --print-architecture)" 2>&1 |
        grep -v "^W: Download is performed unsandboxed" || true)
    if [ "$ARCH" = aarch64 ]; then
        (cd "$CACHE/debs" && apt-get download -qq "busybox-static:arm64" 2>&1 |
            grep -v "^W: Download is performed unsandboxed" || true)
    fi
    for d in "$CACHE"/debs/*.deb; do dpkg-deb -x "$d" "$KROOT"; done
    # The headers' Makefile includes the common headers by absolute path: point it here.
    echo "include $KROOT/usr/src/linux-headers-$KABI-common/Makefile" \
        >"$KROOT/usr/src/linux-headers-$KVER/Makefile"
    echo "KVER=$KVER" >"$CACHE/kernel.env.tmp"
    echo "KABI=$KABI" >>"$CACHE/kernel.env.tmp"
    mv "$CACHE/kernel.env.tmp" "$CACHE/kernel.env"
    step "kernel packages unpacked"
fi
# shellcheck disable=SC1091
. "$CACHE/kernel.env"
VMLINUZ=$KROOT/boot/vmlinuz-$KVER
MODDIR=$KROOT/lib/modules/$KVER/kernel/drivers/gpu/drm

# --- 3. vkms, out of tree ---------------------------------------------------------------
SRC=$CACHE_TOP/common/vkms-src
if [ ! -f "$SRC/vkms_drv.c" ]; then
    apt_update
    step "downloading linux-source-6.1 (for drivers/gpu/drm/vkms)"
    rm -rf "$CACHE_TOP/common/src"
    mkdir -p "$CACHE_TOP/common/src"
    (cd "$CACHE_TOP/common" && apt-get download -qq linux-source-6.1 2>&1 |
        grep -v "^W: Download is performed unsandboxed" || true)
    dpkg-deb -x "$CACHE_TOP"/common/linux-source-6.1_*.deb "$CACHE_TOP/common/src"
    tar -xJf "$CACHE_TOP"/common/src/usr/src/linux-source-6.1.tar.xz \
        -C "$CACHE_TOP/common" linux-source-6.1/drivers/gpu/drm/vkms
    rm -rf "$SRC" "$CACHE_TOP/common/src" "$CACHE_TOP"/common/linux-source-6.1_*.deb
    mv "$CACHE_TOP/common/linux-source-6.1/drivers/gpu/drm/vkms" "$SRC"
    rm -rf "$CACHE_TOP/common/linux-source-6.1"
    step "vkms sources extracted"
fi
VKMS=$CACHE/vkms
if [ ! -f "$VKMS/vkms.ko" ]; then
    rm -rf "$VKMS"
    cp -r "$SRC" "$VKMS"
    step "building vkms for $KVER"
    make -s -C "$KROOT/usr/src/linux-headers-$KVER" M="$VKMS" ARCH="$KARCH" \
        CROSS_COMPILE="$CROSS" CONFIG_DRM_VKMS=m modules 2>&1 |
        grep -v "Skipping BTF generation" || true
    [ -f "$VKMS/vkms.ko" ] || { echo "vkms did not build" >&2; exit 1; }
    step "vkms built"
fi

# --- 4. kds-hwtest, static, for the guest -----------------------------------------------
if [ "$ARCH" = aarch64 ] && ! rustup target list --installed | grep -qx "$RUST_TARGET"; then
    step "adding the rust target $RUST_TARGET"
    (cd "$ROOT" && rustup target add "$RUST_TARGET")
fi
step "building kds-hwtest for $RUST_TARGET (static)"
(cd "$ROOT" && CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build -q -p kds-hwtest --release --target "$RUST_TARGET")
BIN=$ROOT/target/$RUST_TARGET/release/kds-hwtest
step "kds-hwtest built"
# kds-dmabuf's test binaries: `vgem` (real dma-bufs, the guest's vgem) and the simulated
# ones (`sim`, `reactor_leaks`), which then also run on the guest's kernel and architecture.
DMABUF_TESTS=$(cd "$ROOT" && CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    RUSTFLAGS="-C target-feature=+crt-static" \
    cargo test -q -p kds-dmabuf --release --target "$RUST_TARGET" --tests --no-run \
    --message-format=json | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["target"]["name"] + "=" + m["executable"])
')
[ -n "$DMABUF_TESTS" ] || { echo "no kds-dmabuf test binaries were built" >&2; exit 1; }
step "kds-dmabuf tests built: $(printf '%s\n' "$DMABUF_TESTS" | cut -d= -f1 | tr '\n' ' ')"

# --- 5. initramfs ------------------------------------------------------------------------
IR=$CACHE/initramfs
rm -rf "$IR" "$CACHE/initramfs.cpio.gz"
mkdir -p "$IR"/{bin,dev,proc,sys,lib/modules}
if [ "$ARCH" = aarch64 ]; then
    cp "$KROOT/bin/busybox" "$IR/bin/busybox"
else
    cp /bin/busybox "$IR/bin/busybox"
fi
cp "$MODDIR/drm.ko" "$MODDIR/drm_kms_helper.ko" "$MODDIR/drm_shmem_helper.ko" \
    "$MODDIR/vgem/vgem.ko" "$VKMS/vkms.ko" "$IR/lib/modules/"
cp "$BIN" "$IR/kds-hwtest"
mkdir -p "$IR/dmabuf-tests"
printf '%s\n' "$DMABUF_TESTS" | while IFS== read -r name exe; do cp "$exe" "$IR/dmabuf-tests/$name"; done
ARGS="--device /dev/dri/card0 --frames $FRAMES"
for a in "${EXTRA[@]}"; do ARGS="$ARGS '$a'"; done
cat >"$IR/init" <<INIT
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
echo 3 >/proc/sys/kernel/printk
# vkms first so that it is card0; vgem (implicit-sync mode) comes next.
for m in drm drm_kms_helper drm_shmem_helper vkms vgem; do
    insmod /lib/modules/\$m.ko || echo "KDS-HWTEST: insmod \$m failed"
done
i=0
while [ ! -e /dev/dri/card0 ] && [ \$i -lt 50 ]; do sleep 0.1; i=\$((i+1)); done
echo "KDS-HWTEST: kernel \$(uname -r) \$(uname -m), \$(nproc) CPUs; \$(ls /dev/dri | tr '\n' ' ')"
echo KDS-HWTEST-BEGIN
/kds-hwtest $ARGS
echo "KDS-HWTEST-EXIT=\$?"
for t in /dmabuf-tests/*; do
    echo "KDS-DMABUF-TEST \$(basename \$t):"
    \$t --test-threads=1 --nocapture 2>&1
    echo "KDS-DMABUF-TEST-EXIT \$(basename \$t)=\$?"
done
poweroff -f
INIT
chmod +x "$IR/init"
(cd "$IR" && find . | /bin/busybox cpio -o -H newc 2>/dev/null) | gzip -1 >"$CACHE/initramfs.cpio.gz"
step "initramfs packed ($(du -h "$CACHE/initramfs.cpio.gz" | cut -f1))"

# --- 6. boot -----------------------------------------------------------------------------
LOG=$CACHE/console.log
step "booting $KVER under $QEMU (TCG)"
set +e
timeout "$GUEST_TIMEOUT" "$QEMU" -accel tcg "${QEMU_ARGS[@]}" -smp 2 -m 1024 \
    -nographic -no-reboot -monitor none -serial stdio -display none \
    -kernel "$VMLINUZ" -initrd "$CACHE/initramfs.cpio.gz" \
    -append "console=$CONSOLE panic=-1 quiet loglevel=3" </dev/null 2>&1 |
    tr -d '\r' >"$LOG"
QEMU_RC=${PIPESTATUS[0]}
set -e
step "guest finished (qemu exit $QEMU_RC)"
sed -n '/^KDS-HWTEST/,$p' "$LOG" | grep -v '^KDS-HWTEST-BEGIN' | sed '/reboot: Power down/d'
RC=$(sed -n 's/^KDS-HWTEST-EXIT=\([0-9]*\).*/\1/p' "$LOG" | tail -1)
if [ -z "$RC" ]; then
    echo "vm run: the guest did not report an exit status (qemu exit $QEMU_RC); console:" >&2
    tail -40 "$LOG" >&2
    exit 1
fi
if [ "$RC" != 0 ] || ! grep -q 'RESULT PASS' "$LOG"; then
    echo "vm run $ARCH: FAILED (kds-hwtest exit $RC); full console log: $LOG" >&2
    exit 1
fi
# Every kds-dmabuf test binary ran and passed, and the vgem one found vgem.
for name in $(printf '%s\n' "$DMABUF_TESTS" | cut -d= -f1); do
    if ! grep -qx "KDS-DMABUF-TEST-EXIT $name=0" "$LOG"; then
        echo "vm run $ARCH: kds-dmabuf test '$name' FAILED or did not run; console log: $LOG" >&2
        exit 1
    fi
done
if grep -q '^SKIPPED: no vgem' "$LOG"; then
    echo "vm run $ARCH: the kds-dmabuf vgem tests found no vgem device in the guest" >&2
    exit 1
fi
echo "vm run $ARCH: PASS in $(awk -v a="$(date +%s%N)" -v b="$T0" 'BEGIN{printf "%.1f", (a-b)/1e9}') s (console log: $LOG)"
