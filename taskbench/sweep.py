#!/usr/bin/env python3
"""METG and per-task overhead of kds against Task Bench's OpenMP and StarPU drivers.

For each pattern, width and runtime: the per-task overhead at zero work (`-kernel empty`:
elapsed x workers / tasks, in core-microseconds), and METG(50 %): the smallest task
granularity (elapsed x workers / tasks) at which the run still reaches half the machine's
peak FLOP/s. Peak: the best FLOP/s of any runtime on a trivial graph of long tasks, measured
first in the same run. Kernel iterations are searched by powers of two (bisection, since
efficiency grows with the work per task); METG is interpolated between the two bracketing
powers, on a log scale. Every point is the median of --reps runs.

Two graph lengths, both reported (some runtimes' cost per task grows with the graph's
length): Task Bench's default --steps (1000), and the length that makes each run take about
--target seconds (0.2), found from the first.

Peers come from a Task Bench checkout built outside this repository (TASK_BENCH_DIR, see
taskbench/README.md); without one, kds runs alone and the report says so.

  python3 taskbench/sweep.py [--quick] [--out FILE] [--patterns a,b] [--widths 2,8]
"""

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KDS = os.path.join(ROOT, "target", "release", "kds-taskbench")

# (label, -type, radix)
PATTERNS = [
    ("trivial", "trivial", None),
    ("no_comm", "no_comm", None),
    ("stencil_1d", "stencil_1d", None),
    ("stencil_1d_periodic", "stencil_1d_periodic", None),
    ("nearest r3", "nearest", 3),
    ("nearest r5", "nearest", 5),
    ("spread r3", "spread", 3),
    ("spread r5", "spread", 5),
    ("fft", "fft", None),
    ("tree", "tree", None),
    ("random_nearest", "random_nearest", 3),
]


def graph_flags(kind, radix, width, steps):
    flags = ["-type", kind, "-width", str(width), "-steps", str(steps)]
    if radix is not None:
        flags += ["-radix", str(radix)]
    if kind == "spread":
        # Task Bench allows a period of at most ceil(width / radix); its default is 3.
        flags += ["-period", str(min(3, -(-width // radix)))]
    return flags


class Runtime:
    def __init__(self, name, argv, env=None):
        self.name, self.argv, self.env = name, argv, env or {}

    def run(self, flags, timeout):
        env = dict(os.environ, **self.env)
        try:
            p = subprocess.run(self.argv + flags, env=env, capture_output=True, text=True,
                               timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        m_t = re.search(r"Elapsed Time ([0-9.e+-]+) seconds", p.stdout)
        m_n = re.search(r"Total Tasks (\d+)", p.stdout)
        m_f = re.search(r"Total FLOPs (\d+)", p.stdout)
        if p.returncode != 0 or not (m_t and m_n and m_f):
            sys.stderr.write(f"{self.name} {' '.join(flags)}: failed (rc {p.returncode})\n"
                             f"{p.stdout[-400:]}{p.stderr[-400:]}\n")
            return None
        return float(m_t.group(1)), int(m_n.group(1)), int(m_f.group(1))


def runtimes(workers, tb):
    w = str(workers)
    # kds: a pool thread submits, throttled at 64 tasks in flight per worker and running
    # tasks while throttled (OpenMP's single-producer model: no thread beyond the workers);
    # and, for comparison, the main thread submitting to kds Workers.
    pool = ["-runner", "pool", "-submitter", "pool", "-worker", w]
    out = [
        Runtime("kds lock-free", [KDS, "-engine", "lock-free"] + pool),
        Runtime("kds reference", [KDS, "-engine", "reference"] + pool),
        Runtime("kds lock-free, Workers", [KDS, "-engine", "lock-free", "-runner", "workers", "-worker", w]),
    ]
    if tb:
        out.append(Runtime("OpenMP (libgomp)", [os.path.join(tb, "openmp", "main"), "-worker", w],
                           {"OMP_NUM_THREADS": w}))
        out.append(Runtime("StarPU", [os.path.join(tb, "starpu", "main"), "-core", w],
                           {"STARPU_NCPU": w, "STARPU_NCUDA": "0", "STARPU_NOPENCL": "0",
                            "STARPU_SILENT": "1", "STARPU_FXT_TRACE": "0",
                            "STARPU_WORKERS_NOBIND": "1",
                            # Without it, StarPU binds its MPI thread onto worker 0's core and
                            # Open MPI's start-up can spin for ever there (most runs on 2 cores).
                            "STARPU_MPI_NOBIND": "1"}))
    return out


def median_run(rt, flags, reps, timeout):
    results = [rt.run(flags, timeout) for _ in range(reps)]
    if any(r is None for r in results):
        return None
    t = statistics.median(r[0] for r in results)
    return t, results[0][1], results[0][2]


def metg(rt, kind, radix, width, steps, workers, peak, args, target=None):
    """Returns (metg_us, steps_used, points) or (None, ..) if 50 % is never reached."""
    cache = {}

    def probe(e):
        if e in cache:
            return cache[e]
        s = steps
        kernel = ["-kernel", "compute_bound", "-iter", str(2 ** e)]
        r = median_run(rt, graph_flags(kind, radix, width, s) + kernel, args.reps, args.timeout)
        if r and target:
            # The length that takes about `target` seconds at this granularity.
            s = max(10, min(args.max_steps, round(steps * target / max(r[0], 1e-6))))
            r = median_run(rt, graph_flags(kind, radix, width, s) + kernel, args.reps,
                           args.timeout)
        if r is None:
            cache[e] = None
            return None
        t, tasks, flops = r
        cache[e] = (t * workers / tasks * 1e6, flops / t / peak, s)
        return cache[e]

    lo, hi = 0, args.max_exp
    top = probe(hi)
    if top is None or top[1] < 0.5:
        return None, cache
    bottom = probe(lo)
    if bottom and bottom[1] >= 0.5:
        return bottom[0], cache
    while hi - lo > 1:
        mid = (lo + hi) // 2
        r = probe(mid)
        if r is None:
            return None, cache
        if r[1] >= 0.5:
            hi = mid
        else:
            lo = mid
    (g0, e0, _), (g1, e1, _) = probe(lo), probe(hi)
    if e1 == e0:
        return g1, cache
    # Interpolate log(granularity) linearly in efficiency between the bracketing points.
    f = (0.5 - e0) / (e1 - e0)
    return math.exp(math.log(g0) + f * (math.log(g1) - math.log(g0))), cache


def overhead(rt, kind, radix, width, steps, workers, args, target=None):
    flags = lambda s: graph_flags(kind, radix, width, s) + ["-kernel", "empty"]
    r = median_run(rt, flags(steps), args.reps, args.timeout)
    if r and target:
        s = max(10, min(args.max_steps, round(steps * target / max(r[0], 1e-6))))
        r = median_run(rt, flags(s), args.reps, args.timeout)
    if r is None:
        return None
    t, tasks, _ = r
    return t * workers / tasks * 1e6


def fmt(x, digits=3):
    if x is None:
        return "—"
    if x >= 100:
        return f"{x:.0f}"
    return f"{x:.{digits}g}"


COLOURS = ["#1b9e77", "#7570b3", "#66a61e", "#d95f02", "#e7298a", "#a6761d"]


def svg_chart(records, runtimes, patterns, widths, caption):
    """METG per pattern and runtime (log scale), one panel per width, Task Bench's length."""
    bar, gap, left, top = 7, 6, 150, 40
    plot_w = 520
    group_h = bar * len(runtimes) + gap
    panel_h = group_h * len(patterns) + 30
    height = top + panel_h * len(widths) + 20 * len(runtimes) + 30
    lo, hi = 0.5, 1000.0
    x = lambda v: left + plot_w * (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + plot_w + 40}" '
           f'height="{height}" font-family="sans-serif" font-size="11">',
           f'<text x="10" y="16" font-size="13">METG(50 %), µs per task, 2 workers '
           f'(log scale; shorter is better)</text>',
           f'<text x="10" y="30" font-size="9">{caption[:140]}</text>']
    y0 = top
    for width in widths:
        out.append(f'<text x="10" y="{y0 + 12}" font-weight="bold">width {width}</text>')
        for tick in [1, 3, 10, 30, 100, 300, 1000]:
            out.append(f'<line x1="{x(tick):.1f}" y1="{y0 + 16}" x2="{x(tick):.1f}" '
                       f'y2="{y0 + panel_h - 10}" stroke="#ddd"/>'
                       f'<text x="{x(tick):.1f}" y="{y0 + panel_h}" text-anchor="middle">{tick}</text>')
        for i, pat in enumerate(patterns):
            gy = y0 + 18 + i * group_h
            out.append(f'<text x="{left - 6}" y="{gy + group_h / 2 + 3:.1f}" '
                       f'text-anchor="end">{pat}</text>')
            for j, rt in enumerate(runtimes):
                m = [r["metg_us"] for r in records if r["width"] == width and r["pattern"] == pat
                     and r["runtime"] == rt and r["length"] == "steps"]
                if not m or m[0] is None:
                    continue
                v = min(max(m[0], lo), hi)
                out.append(f'<rect x="{left}" y="{gy + j * bar}" width="{x(v) - left:.1f}" '
                           f'height="{bar - 1}" fill="{COLOURS[j % len(COLOURS)]}"/>')
        y0 += panel_h
    for j, rt in enumerate(runtimes):
        out.append(f'<rect x="{left}" y="{y0 + 10 + j * 20}" width="12" height="12" '
                   f'fill="{COLOURS[j % len(COLOURS)]}"/><text x="{left + 18}" '
                   f'y="{y0 + 20 + j * 20}">{rt}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="one rep, 100 steps, two patterns (a smoke run)")
    ap.add_argument("--patterns", default=None, help="comma-separated labels (default: all)")
    ap.add_argument("--widths", default="2,8")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--target", type=float, default=0.2, help="seconds per run in the second length")
    ap.add_argument("--no-target", action="store_true", help="skip the second length")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--max-exp", type=int, default=16, help="largest iteration count, as a power of 2")
    ap.add_argument("--max-steps", type=int, default=100000)
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--runtimes", default=None, help="comma-separated name prefixes to keep")
    ap.add_argument("--out", default=None, help="write the markdown report here too")
    ap.add_argument("--json", default=None, help="write every figure here (JSON)")
    ap.add_argument("--svg", default=None, help="write a METG chart here (SVG)")
    args = ap.parse_args()
    if args.quick:
        args.reps, args.steps, args.no_target, args.max_exp = 1, 100, True, 12
        args.patterns = args.patterns or "trivial,stencil_1d"
    tb = os.environ.get("TASK_BENCH_DIR")
    if tb and not (os.access(os.path.join(tb, "openmp", "main"), os.X_OK)
                   and os.access(os.path.join(tb, "starpu", "main"), os.X_OK)):
        sys.exit(f"TASK_BENCH_DIR={tb}: openmp/main and starpu/main are not built there "
                 "(see taskbench/README.md)")
    subprocess.run(["cargo", "build", "--locked", "--release", "-p", "kds-taskbench"], cwd=ROOT,
                   check=True)
    rts = runtimes(args.workers, tb)
    if args.runtimes:
        keep = args.runtimes.split(",")
        rts = [r for r in rts if any(r.name.startswith(k) for k in keep)]
    patterns = PATTERNS
    if args.patterns:
        want = args.patterns.split(",")
        patterns = [p for p in PATTERNS if p[0] in want]
    widths = [int(w) for w in args.widths.split(",")]
    lines = []
    records = []

    def say(s=""):
        print(s, flush=True)
        lines.append(s)

    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    say(f"Run of {started}: `python3 taskbench/sweep.py {' '.join(sys.argv[1:])}`, "
        f"{args.workers} workers, median of {args.reps}, {os.cpu_count()} CPUs.")
    if not tb:
        say("No TASK_BENCH_DIR: kds alone (the peers need a Task Bench checkout, "
            "taskbench/README.md).")
    # Peak: the best FLOP/s of any runtime on long independent tasks.
    peak = 0.0
    for rt in rts:
        flops_s = []
        for width in widths:
            r = median_run(rt, graph_flags("trivial", None, width, 100)
                           + ["-kernel", "compute_bound", "-iter", str(2 ** args.max_exp)],
                           args.reps, args.timeout)
            if r:
                flops_s.append(r[2] / r[0])
        best = max(flops_s, default=0.0)
        say(f"- peak of {rt.name}: {best / 1e9:.2f} GFLOP/s")
        peak = max(peak, best)
    say(f"- peak used (the best): {peak / 1e9:.2f} GFLOP/s")
    say()
    lengths = [("steps", None)] + ([] if args.no_target else [("target", args.target)])
    for width in widths:
        for name, target in lengths:
            if target:
                say(f"### Width {width}, each run about {target} s long (steps chosen per point)")
            else:
                say(f"### Width {width}, {args.steps} steps")
            say()
            head = "| pattern | " + " | ".join(
                f"{rt.name}: METG µs / overhead core-µs" for rt in rts) + " |"
            say(head)
            say("|---" * (len(rts) + 1) + "|")
            for label, kind, radix in patterns:
                cells = []
                for rt in rts:
                    m, probes = metg(rt, kind, radix, width, args.steps, args.workers,
                                     peak, args, target)
                    o = overhead(rt, kind, radix, width, args.steps, args.workers, args, target)
                    cells.append(f"{fmt(m)} / {fmt(o)}")
                    records.append({"width": width, "length": name, "pattern": label,
                                    "runtime": rt.name, "metg_us": m, "overhead_core_us": o,
                                    # iterations (log2) -> [granularity µs, efficiency, steps]
                                    "probes": {e: v for e, v in sorted(probes.items()) if v}})
                say(f"| {label} | " + " | ".join(cells) + " |")
            say()
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"run": lines[0], "peak_flops": peak, "records": records}, f, indent=1)
    if args.svg:
        with open(args.svg, "w") as f:
            f.write(svg_chart(records, [rt.name for rt in rts], [p[0] for p in patterns], widths,
                              lines[0]))


if __name__ == "__main__":
    main()
