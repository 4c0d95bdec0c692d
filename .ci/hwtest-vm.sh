#!/usr/bin/env bash
# CI: kds-hwtest on real DRM page flips (vkms) in QEMU/TCG guests: x86_64 always, then
# aarch64 unless KDS_HWTEST_ARCHES says otherwise or the time budget is spent.
#   bash .ci/hwtest-vm.sh                       # x86_64, then aarch64
#   KDS_HWTEST_ARCHES=x86_64 bash .ci/hwtest-vm.sh
#   KDS_HWTEST_BUDGET_S=300 bash .ci/hwtest-vm.sh   # skip aarch64 if x86_64 took longer
# Downloads and builds are cached under hwtest/vm/.cache/ (see docs/hwtest.md).
set -euo pipefail
cd "$(dirname "$0")/.."
ARCHES=${KDS_HWTEST_ARCHES:-x86_64 aarch64}
BUDGET=${KDS_HWTEST_BUDGET_S:-900}
start=$(date +%s)
status=0
for arch in $ARCHES; do
    elapsed=$(($(date +%s) - start))
    if [ "$arch" != x86_64 ] && [ "$elapsed" -ge "$BUDGET" ]; then
        echo "hwtest-vm: skipping $arch: ${elapsed}s used of a ${BUDGET}s budget"
        continue
    fi
    t=$(date +%s)
    if bash hwtest/vm/run.sh "$arch"; then
        echo "hwtest-vm: $arch passed in $(($(date +%s) - t))s"
    else
        echo "hwtest-vm: $arch FAILED after $(($(date +%s) - t))s"
        status=1
    fi
done
echo "hwtest-vm: total $(($(date +%s) - start))s"
exit $status
