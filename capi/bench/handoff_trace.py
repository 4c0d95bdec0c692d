# gdb script (run by capi/bench/instructions.sh): steps one direct-callback hand-off of
# capi/bench's "handoff direct callback" row instruction by instruction, from the entry of the
# release that grants the queued set to the entry of its callback (stamp_cb), and prints
# `HANDOFF instructions locked`: every instruction executed, and those that are a locked
# read-modify-write on x86_64 (a lock prefix, or an xchg with memory). Invoked as
#   gdb -q -batch -ex 'py impl = "kds"' -x capi/bench/handoff_trace.py target/capi-bench/bench
# with impl "kds" (the release: kds_resource_set_release), "kds2013" (the 2013 form's calls:
# kds_resource_set_release_sync) or "seed" (sp_release).
import re

import gdb

release = {
    "kds": "kds_resource_set_release",
    "kds2013": "kds_resource_set_release_sync",
    "seed": "sp_release",
}[impl]  # noqa: F821
gdb.execute("set pagination off")
gdb.execute("set confirm off")
gdb.execute("break stamp_cb")
gdb.execute("run --impl %s --only 'handoff direct' --runs 1 > /dev/null 2>&1" % impl)  # noqa: F821
# Warm: let 100 hand-offs pass (caches, the per-thread pools and sets reused).
for _ in range(100):
    gdb.execute("continue", to_string=True)
gdb.execute("delete")
target = int(gdb.parse_and_eval("(long)&stamp_cb"))
gdb.execute("break " + release)
gdb.execute("continue", to_string=True)  # the release inside this callback
gdb.execute("continue", to_string=True)  # the next iteration's release of the holder
gdb.execute("delete")
executed = locked = 0
while True:
    frame = gdb.selected_frame()
    pc = frame.pc()
    if pc == target:
        break
    asm = frame.architecture().disassemble(pc)[0]["asm"]
    executed += 1
    if re.match(r"lock\b", asm) or re.match(r"xchg\s+%\w+,.*\(", asm):
        locked += 1
    gdb.execute("stepi", to_string=True)
print("HANDOFF %d %d" % (executed, locked))
gdb.execute("kill")
