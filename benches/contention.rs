//! The contended mixes of issue 18, side by side in one process: the lock-free engine, the
//! mutex reference and `seed-minimal` (the lean port of the 2012 design), taking turns round
//! by round, so that a noisy machine moves all three alike. Per mix: median throughput over
//! the rounds, the ratios, the p99 grant wait, what the OS did to the threads (holds that took
//! a hundred times their length: the holder was preempted; releases that took over 10 µs;
//! involuntary context switches), and the worker threads' CPU time per operation.
//!
//! ```text
//! cargo bench --bench contention -- [--rounds 5] [--ms 200] [--threads 2,4,8] [--busy] [--only R=8]
//! cargo bench --bench contention --features timeline -- ...   # plus where each grant's time went
//! ```
//!
//! `--busy` starts an unrelated process that spins on one core for the whole run (the machine a
//! compositor shares with other work). With `--features timeline` each kds engine's line is
//! followed by the breakdown of `kds::timeline` (see its docs): grants delivered to spinning vs
//! parked waiters and how long each took to run, the time from a release to the grants it
//! completed, CPU burnt spinning, and time spent helping tentative sets. The instrumentation
//! perturbs what it measures: take throughput from a run without the feature.
//!
//! Writes `target/kds-bench/contention.tsv` (one row per mix and engine) for the report.

#[allow(dead_code)]
#[path = "kds/mix.rs"]
mod mix;
#[allow(dead_code)]
#[path = "kds/peers.rs"]
mod peers;
#[path = "kds/seed_minimal.rs"]
mod seed_minimal;
#[path = "../tests/support/mod.rs"]
mod support;

use kds::reference::Reference;
use kds::LockFree;
use mix::{hold, Mix};
use peers::{Kds, Peer};
use seed_minimal::SeedMinimal;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// A hold that took this long was preempted (it needs about 100 ns).
const PREEMPTED: Duration = Duration::from_micros(10);

/// One engine's run of one mix.
#[derive(Default, Clone)]
struct Run {
    ops: u64,
    secs: f64,
    /// Every 8th grant wait, ns.
    waits: Vec<u64>,
    /// Holds (the closure alone) longer than `PREEMPTED`: the holder was preempted.
    preempted: u64,
    /// Releases that took longer than `PREEMPTED` (the releaser was preempted, or it paid
    /// for a wake-up or for the epoch's deferred work).
    slow_releases: u64,
    /// Involuntary context switches of the worker threads.
    nivcsw: u64,
    /// CPU time of the worker threads, ns.
    cpu_ns: u64,
}

/// The calling thread's involuntary context switches so far (Linux; 0 elsewhere).
fn nivcsw() -> u64 {
    std::fs::read_to_string("/proc/thread-self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("nonvoluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// CPU time the calling thread has run, ns (Linux's schedstat; 0 elsewhere).
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// Runs `mix` on `P` for `dur`: every thread locks its sets in turn until told to stop.
fn run<P: Peer>(mix: Mix, dur: Duration) -> Run {
    let res: Vec<P::Res> = (0..mix.resources).map(|_| P::resource()).collect();
    let sets = mix::sets::<P>(&res, mix);
    let barrier = Barrier::new(mix.threads + 1);
    let stop = AtomicBool::new(false);
    let mut total = Run::default();
    let (runs, secs) = std::thread::scope(|s| {
        let handles: Vec<_> = sets
            .iter()
            .map(|mine| {
                let (barrier, stop) = (&barrier, &stop);
                s.spawn(move || {
                    let mut r = Run::default();
                    let before = nivcsw();
                    barrier.wait();
                    let cpu_before = cpu_ns();
                    let mut i = 0usize;
                    // Relaxed: a stop request, nothing published through it.
                    while !stop.load(Relaxed) {
                        let set = &mine[i % 256];
                        let t0 = Instant::now();
                        let (t1, t2) = P::with(set, || {
                            let t1 = Instant::now();
                            hold();
                            (t1, Instant::now())
                        });
                        if t2 - t1 > PREEMPTED {
                            r.preempted += 1;
                        }
                        if t2.elapsed() > PREEMPTED {
                            r.slow_releases += 1;
                        }
                        if i % 8 == 0 {
                            r.waits.push((t1 - t0).as_nanos() as u64);
                        }
                        i += 1;
                    }
                    r.ops = i as u64;
                    r.cpu_ns = cpu_ns() - cpu_before;
                    r.nivcsw = nivcsw() - before;
                    r
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        std::thread::sleep(dur);
        stop.store(true, Relaxed);
        let runs: Vec<Run> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        (runs, start.elapsed().as_secs_f64())
    });
    for r in runs {
        total.ops += r.ops;
        total.waits.extend(r.waits);
        total.preempted += r.preempted;
        total.slow_releases += r.slow_releases;
        total.nivcsw += r.nivcsw;
        total.cpu_ns += r.cpu_ns;
    }
    total.secs = secs;
    total
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn p99(v: &mut [u64]) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    v[(v.len() * 99 / 100).min(v.len() - 1)]
}

/// One engine's figures over the rounds of a mix.
#[derive(Default)]
struct Tally {
    mops: Vec<f64>,
    all: Run,
    #[cfg(feature = "timeline")]
    timeline: Vec<kds::timeline::Timeline>,
}

impl Tally {
    fn add(&mut self, r: Run) {
        self.mops.push(r.ops as f64 / r.secs / 1e6);
        self.all.ops += r.ops;
        self.all.secs += r.secs;
        self.all.waits.extend(r.waits);
        self.all.preempted += r.preempted;
        self.all.slow_releases += r.slow_releases;
        self.all.nivcsw += r.nivcsw;
        self.all.cpu_ns += r.cpu_ns;
    }
}

/// Who runs: the three engines, and with `--ab-spin` the lock-free engine again under other
/// waiting policies: as before issue 18 (every blocked thread spins, then yields, before it
/// parks), with the spin cap but always yielding, with no spinning at all (every waiter
/// parks at once, as `seed-minimal`), and as before issue 19's second pass (spinning even
/// while more than twice the cores are blocked). Engine 3 is the lock-free engine with that
/// last limit off.
fn contestants(ab_spin: bool) -> Vec<(&'static str, usize, Option<usize>, Option<bool>)> {
    let mut v = vec![
        ("lock-free", 0, None, None),
        ("reference", 1, None, None),
        ("seed-minimal", 2, None, None),
    ];
    if ab_spin {
        v.push((
            "lock-free, as before issue 18",
            3,
            Some(usize::MAX),
            Some(true),
        ));
        v.push(("lock-free, cap, always yield", 0, None, Some(true)));
        v.push(("lock-free, no spinning", 0, Some(0), None));
        v.push(("lock-free, spins when overcrowded", 3, None, None));
    }
    v
}

fn run_engine(
    engine: usize,
    cap: Option<usize>,
    yields: Option<bool>,
    mix: Mix,
    dur: Duration,
) -> Run {
    kds::harness::set_spin_cap(cap);
    kds::harness::set_spin_yields(yields);
    kds::harness::set_park_when_overcrowded(engine != 3);
    match engine {
        0 | 3 => run::<Kds<LockFree>>(mix, dur),
        1 => run::<Kds<Reference>>(mix, dur),
        _ => run::<SeedMinimal>(mix, dur),
    }
}

struct Args {
    rounds: usize,
    dur: Duration,
    threads: Vec<usize>,
    busy: bool,
    ab_spin: bool,
    only: Option<String>,
}

fn args() -> Args {
    let mut a = Args {
        rounds: 5,
        dur: Duration::from_millis(200),
        threads: vec![2, 4, 8],
        busy: false,
        ab_spin: false,
        only: None,
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < v.len() {
        let next = v.get(i + 1).cloned().unwrap_or_default();
        match v[i].as_str() {
            "--rounds" => a.rounds = next.parse().expect("--rounds N"),
            "--ms" => a.dur = Duration::from_millis(next.parse().expect("--ms N")),
            "--threads" => {
                a.threads = next
                    .split(',')
                    .map(|t| t.parse().expect("--threads 2,4,8"))
                    .collect()
            }
            "--only" => a.only = Some(next),
            "--busy" => {
                a.busy = true;
                i += 1;
                continue;
            }
            "--ab-spin" => {
                a.ab_spin = true;
                i += 1;
                continue;
            }
            _ => {
                i += 1; // `--bench` from cargo, and anything else
                continue;
            }
        }
        i += 2;
    }
    if std::env::var_os("KDS_BENCH_QUICK").is_some() {
        a.rounds = 1;
        a.dur = Duration::from_millis(20);
    }
    a
}

/// An unrelated process spinning on one core until killed.
struct Spinner(std::process::Child);

impl Spinner {
    fn start() -> Spinner {
        let exe = std::env::current_exe().expect("own path");
        Spinner(
            std::process::Command::new(exe)
                .arg("--spin-forever")
                .spawn()
                .expect("start the spinning process"),
        )
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    if std::env::args().any(|a| a == "--spin-forever") {
        loop {
            std::hint::spin_loop();
        }
    }
    let a = args();
    let mixes: Vec<Mix> = mix::all(&a.threads)
        .into_iter()
        .filter(|m| {
            a.only
                .as_ref()
                .map_or(true, |o| m.param().contains(o.as_str()))
        })
        .collect();
    let _spinner = a.busy.then(Spinner::start);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "contended mixes: {} rounds of {} ms per engine, engines alternating; {} cores{}",
        a.rounds,
        a.dur.as_millis(),
        cores,
        if a.busy {
            ", one core kept busy by a spinning process"
        } else {
            ""
        }
    );
    let who = contestants(a.ab_spin);
    println!();
    let names: Vec<&str> = who.iter().map(|w| w.0).collect();
    println!(
        "| mix | Mops/s: {} | LF/ref | LF/seed | p99 wait (µs) | preempted holds per 1k ops | slow releases per 1k ops | invol. switches per 1k ops | CPU µs per op |",
        names.join(" | ")
    );
    println!(
        "|---|{}---|---|---|---|---|---|---|",
        "---|".repeat(who.len())
    );
    let mut tsv = String::new();
    for mix in mixes {
        let mut t: Vec<Tally> = who.iter().map(|_| Tally::default()).collect();
        for round in 0..a.rounds {
            for j in 0..who.len() {
                let e = (round + j) % who.len();
                #[cfg(feature = "timeline")]
                kds::timeline::reset();
                let r = run_engine(who[e].1, who[e].2, who[e].3, mix, a.dur);
                #[cfg(feature = "timeline")]
                t[e].timeline.push(kds::timeline::snapshot());
                t[e].add(r);
            }
        }
        kds::harness::set_spin_cap(None);
        kds::harness::set_spin_yields(None);
        kds::harness::set_park_when_overcrowded(true);
        let med: Vec<f64> = t.iter_mut().map(|t| median(&mut t.mops)).collect();
        let p99s: Vec<f64> = t
            .iter_mut()
            .map(|t| p99(&mut t.all.waits) as f64 / 1e3)
            .collect();
        let per_k = |t: &Tally, n: u64| n as f64 * 1e3 / t.all.ops.max(1) as f64;
        let list = |f: &dyn Fn(usize) -> String| -> String {
            (0..who.len()).map(f).collect::<Vec<_>>().join(" / ")
        };
        println!(
            "| {} | {} | {:.2}× | {:.2}× | {} | {} | {} | {} | {} |",
            mix.param(),
            list(&|e| format!("{:.3}", med[e])).replace(" / ", " | "),
            med[0] / med[1],
            med[0] / med[2],
            list(&|e| format!("{:.1}", p99s[e])),
            list(&|e| format!("{:.1}", per_k(&t[e], t[e].all.preempted))),
            list(&|e| format!("{:.1}", per_k(&t[e], t[e].all.slow_releases))),
            list(&|e| format!("{:.0}", per_k(&t[e], t[e].all.nivcsw))),
            list(&|e| format!(
                "{:.2}",
                t[e].all.cpu_ns as f64 / 1e3 / t[e].all.ops.max(1) as f64
            )),
        );
        for (e, w) in who.iter().enumerate() {
            tsv.push_str(&format!(
                "{}\t{}\t{}\t{:.4}\t{:.2}\t{:.3}\t{:.3}\t{:.3}\t{:.3}\n",
                mix.param(),
                if a.busy { "busy" } else { "quiet" },
                w.0,
                med[e],
                p99s[e],
                per_k(&t[e], t[e].all.preempted),
                per_k(&t[e], t[e].all.nivcsw),
                per_k(&t[e], t[e].all.slow_releases),
                t[e].all.cpu_ns as f64 / 1e3 / t[e].all.ops.max(1) as f64,
            ));
        }
        #[cfg(feature = "timeline")]
        for (e, w) in who.iter().enumerate() {
            if w.1 != 2 {
                print_timeline(w.0, &t[e], who.len());
            }
        }
    }
    let dir = std::path::Path::new(
        &std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into()),
    )
    .join("kds-bench");
    let _ = std::fs::create_dir_all(&dir);
    let file = dir.join(if a.busy {
        "contention-busy.tsv"
    } else {
        "contention.tsv"
    });
    std::fs::write(&file, tsv).expect("write the contention table");
}

/// The timeline of one engine over a mix's rounds, per 1,000 operations.
#[cfg(feature = "timeline")]
fn print_timeline(name: &str, t: &Tally, columns: usize) {
    let ops = t.all.ops.max(1) as f64;
    let sum =
        |f: &dyn Fn(&kds::timeline::Timeline) -> u64| -> u64 { t.timeline.iter().map(f).sum() };
    let max = |f: &dyn Fn(&kds::timeline::Timeline) -> u64| -> u64 {
        t.timeline.iter().map(f).max().unwrap_or(0)
    };
    let spinning = sum(&|x| x.spinning.count);
    let parked = sum(&|x| x.parked.count);
    println!(
        "| ↳ {name}: grants per 1k ops: {:.0} to spinning waiters (p50 {} ns), {:.0} to parked (p50 {} µs); release → delivery p50 {} ns; spinning {:.1} µs per op, {:.0}% of windows won; helping {:.1} per 1k ops, {:.0} ns each |{}",
        spinning as f64 * 1e3 / ops,
        max(&|x| x.spinning.p50_ns),
        parked as f64 * 1e3 / ops,
        max(&|x| x.parked.p50_ns) / 1000,
        max(&|x| x.release_to_delivery.p50_ns),
        sum(&|x| x.spin.total_ns) as f64 / 1e3 / ops,
        100.0 * sum(&|x| x.spin_won) as f64 / sum(&|x| x.spin.count).max(1) as f64,
        sum(&|x| x.help.count) as f64 * 1e3 / ops,
        sum(&|x| x.help.total_ns).checked_div(sum(&|x| x.help.count)).unwrap_or(0),
        " |".repeat(columns + 7),
    );
}
