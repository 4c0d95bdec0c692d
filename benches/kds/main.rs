//! `cargo bench`: kds's lock-free engine against the mutex reference and the peers a Rust user
//! would pick instead, on every workload of issue 4, in one run. Two more peers are honest
//! baselines: `seed-minimal` (`seed_minimal.rs`), a lean port of the 2012 seed's global-mutex
//! design that shares nothing with kds, and `wait-die` (`wait_die.rs`), the kernel's
//! ww_mutex + `drm_exec` retry loop (exclusive only).
//!
//! 1. `uncontended`: acquire + release of k = 1, 2, 4, 8 resources (all exclusive; mixed).
//! 2. `disjoint`: 1, 2, 4, 8 threads, each on its own two resources.
//! 3. `contended`: 8 and 64 resources, sets of 2 and 4, 10/50/100 % exclusive, 2 and 8
//!    threads: throughput, and grant-wait latency p50/p99/max (`target/kds-bench/`).
//! 4. `handoff`: release on one thread to the start of the next set's use, per waiter kind.
//! 5. memory: bytes and allocations (a counting allocator; `target/kds-bench/rows.tsv`).
//! 6. `counters-*`: perf counters per operation on selected workloads (hardware counters
//!    where exposed, else software task-clock and context switches, said so).
//!
//! `KDS_BENCH_QUICK=1` shrinks every measurement (a smoke run, figures meaningless).
//! `examples/bench_report.rs` turns the results into `docs/benchmarks.md`; `bash
//! benches/report.sh` runs both.

mod alloc;
mod mix;
mod paths;
mod peers;
mod perf;
mod record;
mod seed_minimal;
mod wait_die;

use criterion::measurement::{Measurement, WallTime};
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput};
use kds::reference::Reference;
use kds::LockFree;
use mix::{hold, Mix};
use peers::{Kds, ParkingLot, Peer, StdRwLock, Tokio};
use seed_minimal::SeedMinimal;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use wait_die::WaitDie;

#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;

type LF = Kds<LockFree>;
type Ref = Kds<Reference>;

fn quick() -> bool {
    std::env::var_os("KDS_BENCH_QUICK").is_some()
}

fn configure<M: Measurement>(c: Criterion<M>) -> Criterion<M> {
    if quick() {
        c.warm_up_time(Duration::from_millis(20))
            .measurement_time(Duration::from_millis(50))
            .sample_size(10)
    } else {
        c.warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2))
            .sample_size(20)
    }
}

/// Measures `f` with `meter` (wall time or a perf counter).
fn measure<M: Measurement>(meter: &M, f: impl FnOnce()) -> M::Value {
    let start = meter.start();
    f();
    meter.end(start)
}

/// The small deterministic generator for the workloads' random sets (`mix.rs`), shared with
/// the tests.
#[path = "../../tests/support/mod.rs"]
mod support;

// ---------------------------------------------------------------------------------------
// 1. uncontended

fn uncontended_one<P: Peer, M: Measurement>(
    g: &mut BenchmarkGroup<M>,
    meter: &M,
    k: usize,
    mixed: bool,
) {
    let res: Vec<P::Res> = (0..k).map(|_| P::resource()).collect();
    let entries: Vec<(&P::Res, bool)> = res
        .iter()
        .enumerate()
        .map(|(i, r)| (r, !mixed || i % 2 == 0))
        .collect();
    let set = P::set(&entries);
    let param = format!("k={k} {}", if mixed { "mixed" } else { "exclusive" });
    g.bench_function(BenchmarkId::new(P::NAME, param), |b| {
        b.iter_custom(|iters| {
            measure(meter, || {
                for _ in 0..iters {
                    P::with(&set, || black_box(()));
                }
            })
        })
    });
}

fn uncontended<M: Measurement>(
    c: &mut Criterion<M>,
    name: &str,
    meter: &M,
    ks: &[usize],
    mixes: &[bool],
) {
    let mut g = c.benchmark_group(name);
    for &mixed in mixes {
        for &k in ks {
            uncontended_one::<LF, M>(&mut g, meter, k, mixed);
            uncontended_one::<Ref, M>(&mut g, meter, k, mixed);
            uncontended_one::<ParkingLot, M>(&mut g, meter, k, mixed);
            uncontended_one::<StdRwLock, M>(&mut g, meter, k, mixed);
            uncontended_one::<Tokio, M>(&mut g, meter, k, mixed);
            uncontended_one::<SeedMinimal, M>(&mut g, meter, k, mixed);
            uncontended_one::<WaitDie, M>(&mut g, meter, k, mixed);
        }
    }
    g.finish();
}

// ---------------------------------------------------------------------------------------
// 2. disjoint scaling

fn disjoint_one<P: Peer, M: Measurement>(g: &mut BenchmarkGroup<M>, meter: &M, threads: usize) {
    let sets: Vec<P::Set> = (0..threads)
        .map(|_| {
            let (a, b) = (P::resource(), P::resource());
            P::set(&[(&a, true), (&b, true)])
        })
        .collect();
    g.throughput(Throughput::Elements(threads as u64));
    g.bench_function(BenchmarkId::new(P::NAME, format!("T={threads}")), |b| {
        b.iter_custom(|iters| {
            measure(meter, || {
                std::thread::scope(|s| {
                    for set in &sets {
                        s.spawn(move || {
                            for _ in 0..iters {
                                P::with(set, || black_box(()));
                            }
                        });
                    }
                })
            })
        })
    });
}

fn disjoint<M: Measurement>(c: &mut Criterion<M>, name: &str, meter: &M, ts: &[usize]) {
    let mut g = c.benchmark_group(name);
    for &t in ts {
        disjoint_one::<LF, M>(&mut g, meter, t);
        disjoint_one::<Ref, M>(&mut g, meter, t);
        disjoint_one::<ParkingLot, M>(&mut g, meter, t);
        disjoint_one::<StdRwLock, M>(&mut g, meter, t);
        disjoint_one::<Tokio, M>(&mut g, meter, t);
        disjoint_one::<SeedMinimal, M>(&mut g, meter, t);
        disjoint_one::<WaitDie, M>(&mut g, meter, t);
    }
    g.finish();
}

// ---------------------------------------------------------------------------------------
// 3. contended mixes

fn contended_one<P: Peer, M: Measurement>(
    g: &mut BenchmarkGroup<M>,
    meter: &M,
    mix: Mix,
    group: &str,
) {
    let res: Vec<P::Res> = (0..mix.resources).map(|_| P::resource()).collect();
    let sets = mix::sets::<P>(&res, mix);
    let id = BenchmarkId::new(P::NAME, mix.param());
    let lat_id = format!("{group}/{}/{}", P::NAME, mix.param());
    g.throughput(Throughput::Elements(mix.threads as u64));
    g.bench_function(id, |b| {
        b.iter_custom(|iters| measure(meter, || contended_run::<P>(&sets, iters, Some(&lat_id))))
    });
}

/// One thread per entry of `sets`, each locking its sets in turn `iters` times; every 8th
/// grant wait is recorded under `lat_id`.
fn contended_run<P: Peer>(sets: &[Vec<P::Set>], iters: u64, lat_id: Option<&str>) {
    let barrier = Barrier::new(sets.len());
    std::thread::scope(|s| {
        for mine in sets {
            let barrier = &barrier;
            s.spawn(move || {
                let mut waits = Vec::with_capacity(iters as usize / 8 + 1);
                barrier.wait();
                for i in 0..iters as usize {
                    let set = &mine[i % 256];
                    if i % 8 == 0 && lat_id.is_some() {
                        let t0 = Instant::now();
                        P::with(set, || {
                            waits.push(t0.elapsed().as_nanos() as u64);
                            hold();
                        });
                    } else {
                        P::with(set, hold);
                    }
                }
                if let Some(id) = lat_id {
                    record::latencies(id, &waits);
                }
            });
        }
    })
}

fn contended<M: Measurement>(c: &mut Criterion<M>, name: &str, meter: &M, mixes: &[Mix]) {
    let mut g = c.benchmark_group(name);
    for &mix in mixes {
        contended_one::<LF, M>(&mut g, meter, mix, name);
        contended_one::<Ref, M>(&mut g, meter, mix, name);
        contended_one::<ParkingLot, M>(&mut g, meter, mix, name);
        contended_one::<StdRwLock, M>(&mut g, meter, mix, name);
        contended_one::<Tokio, M>(&mut g, meter, mix, name);
        contended_one::<SeedMinimal, M>(&mut g, meter, mix, name);
        contended_one::<WaitDie, M>(&mut g, meter, mix, name);
    }
    g.finish();
}

// ---------------------------------------------------------------------------------------
// 4. hand-off latency

/// Nanoseconds since a process-wide origin, comparable across threads.
fn now_ns() -> u64 {
    static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// How long the holder waits after the waiter announced itself, so that the waiter is
/// queued (and parked, for the blocking kinds) before the release.
const SETTLE: Duration = Duration::from_micros(50);

/// How long the holder waits for the "spinning" blocking hand-off: the waiter is queued but
/// still inside its spin window (a few microseconds) when the release comes.
const SPINNING: Duration = Duration::from_micros(2);

/// How long a worker is left idle before an "idle worker" hand-off: past its spin window, so
/// it has parked.
const IDLE: Duration = Duration::from_micros(100);

fn spin_for(d: Duration) {
    let until = Instant::now() + d;
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

/// A waiter on another thread, blocked by `wait` (sync) or `block_on` (future); the holder
/// releases at t0, the waiter stamps t1 when its set is granted.
fn handoff_threaded(
    g: &mut BenchmarkGroup<WallTime>,
    peer: &str,
    kind: &str,
    settle: Duration,
    hold_then_release: impl Fn(&dyn Fn()) + Sync,
    wait_then_use: impl Fn(&dyn Fn()) + Sync,
) {
    let id = format!("handoff/{peer}/{kind}");
    g.bench_function(BenchmarkId::new(peer, kind), |b| {
        b.iter_custom(|iters| {
            let t0 = AtomicU64::new(0);
            let ready = AtomicUsize::new(0);
            let done = AtomicUsize::new(0);
            let mut lat = Vec::with_capacity(iters as usize);
            std::thread::scope(|s| {
                let waiter = s.spawn(|| {
                    let mut mine = Vec::with_capacity(iters as usize);
                    for i in 1..=iters as usize {
                        while ready.load(SeqCst) != i {
                            std::hint::spin_loop();
                        }
                        let t1 = std::cell::Cell::new(0);
                        wait_then_use(&|| t1.set(now_ns()));
                        mine.push(t1.get() - t0.load(SeqCst));
                        done.store(i, SeqCst);
                    }
                    mine
                });
                for i in 1..=iters as usize {
                    hold_then_release(&|| {
                        ready.store(i, SeqCst);
                        spin_for(settle);
                        t0.store(now_ns(), SeqCst);
                    });
                    while done.load(SeqCst) != i {
                        std::hint::spin_loop();
                    }
                }
                lat = waiter.join().unwrap();
            });
            record::latencies(&id, &lat);
            Duration::from_nanos(lat.iter().sum())
        })
    });
}

/// `settle`: `SETTLE` for a waiter parked before the release ("blocking"), `SPINNING` for
/// one still in its spin window ("blocking, spinning").
fn handoff_blocking<P: Peer>(g: &mut BenchmarkGroup<WallTime>, kind: &str, settle: Duration) {
    let r = P::resource();
    let set = P::set(&[(&r, true)]);
    handoff_threaded(
        g,
        P::NAME,
        kind,
        settle,
        |before_release| P::with(&set, before_release),
        |stamp| P::with(&set, stamp),
    );
}

fn handoff_future<E: kds::Engine>(g: &mut BenchmarkGroup<WallTime>) {
    let r = kds::generic::Resource::<E>::new();
    let set = kds::generic::ResourceSet::new().exclusive(&r);
    handoff_threaded(
        g,
        E::NAME,
        "future",
        SETTLE,
        |before_release| {
            let guard = set.wait().unwrap();
            before_release();
            drop(guard);
        },
        |stamp| {
            let guard = futures_executor::block_on(set.acquire()).unwrap();
            stamp();
            drop(guard);
        },
    );
}

fn handoff_future_tokio(g: &mut BenchmarkGroup<WallTime>) {
    let r = Arc::new(tokio::sync::RwLock::new(()));
    handoff_threaded(
        g,
        Tokio::NAME,
        "future",
        SETTLE,
        |before_release| {
            let guard = futures_executor::block_on(r.write());
            before_release();
            drop(guard);
        },
        |stamp| {
            let guard = futures_executor::block_on(r.write());
            stamp();
            drop(guard);
        },
    );
}

/// A callback waiter: registered while the set is held; the release at t0 grants it, and
/// the callback stamps t1 (inline for direct dispatch, on the worker thread otherwise).
///
/// `idle`: the worker (or thread) has done nothing for 100 µs before each grant, so a worker
/// has parked; otherwise it ran the previous callback a few microseconds before.
fn handoff_callback<E: kds::Engine>(
    g: &mut BenchmarkGroup<WallTime>,
    worker: Option<&kds::Worker>,
    idle: bool,
) {
    let kind = match (worker.is_some(), idle) {
        (true, false) => "worker callback",
        (true, true) => "worker callback, idle worker",
        (false, _) => "direct callback",
    };
    let id = format!("handoff/{}/{kind}", E::NAME);
    let r = kds::generic::Resource::<E>::new();
    let set = kds::generic::ResourceSet::new().exclusive(&r);
    g.bench_function(BenchmarkId::new(E::NAME, kind), |b| {
        b.iter_custom(|iters| {
            let mut lat = Vec::with_capacity(iters as usize);
            for _ in 0..iters {
                if idle {
                    spin_for(IDLE);
                }
                let held = set.wait().unwrap();
                let t0 = Arc::new(AtomicU64::new(0));
                let t1 = Arc::new(AtomicU64::new(0));
                let done = Arc::new(AtomicBool::new(false));
                let (t1c, donec) = (t1.clone(), done.clone());
                let dispatch = match worker {
                    Some(w) => kds::Dispatch::Worker(w.clone()),
                    None => kds::Dispatch::Direct,
                };
                let _pending = set
                    .on_grant(dispatch, move |guard| {
                        t1c.store(now_ns(), SeqCst);
                        drop(guard);
                        donec.store(true, SeqCst);
                    })
                    .unwrap();
                t0.store(now_ns(), SeqCst);
                drop(held);
                while !done.load(SeqCst) {
                    std::hint::spin_loop();
                }
                lat.push(t1.load(SeqCst) - t0.load(SeqCst));
            }
            record::latencies(&id, &lat);
            Duration::from_nanos(lat.iter().sum())
        })
    });
}

fn handoff(c: &mut Criterion<WallTime>) {
    let worker = kds::Worker::spawn("kds-bench-worker").expect("worker");
    let mut g = c.benchmark_group("handoff");
    for (kind, settle) in [("blocking", SETTLE), ("blocking, spinning", SPINNING)] {
        handoff_blocking::<LF>(&mut g, kind, settle);
        handoff_blocking::<Ref>(&mut g, kind, settle);
        handoff_blocking::<ParkingLot>(&mut g, kind, settle);
        handoff_blocking::<StdRwLock>(&mut g, kind, settle);
        handoff_blocking::<SeedMinimal>(&mut g, kind, settle);
        handoff_blocking::<WaitDie>(&mut g, kind, settle);
    }
    handoff_callback::<LockFree>(&mut g, None, false);
    handoff_callback::<Reference>(&mut g, None, false);
    for idle in [false, true] {
        handoff_callback::<LockFree>(&mut g, Some(&worker), idle);
        handoff_callback::<Reference>(&mut g, Some(&worker), idle);
    }
    handoff_future::<LockFree>(&mut g);
    handoff_future::<Reference>(&mut g);
    handoff_future_tokio(&mut g);
    g.finish();
}

// ---------------------------------------------------------------------------------------
// 5. memory

fn memory_of<P: Peer>() {
    const N: u64 = 1000;
    let (_, b0) = alloc::snapshot();
    let res: Vec<P::Res> = (0..N).map(|_| P::resource()).collect();
    let (_, b1) = alloc::snapshot();
    // The Vec holding the handles is not the resources' memory.
    let vec_bytes = (N as usize * std::mem::size_of::<P::Res>()) as u64;
    let per_res = (b1 - b0 - vec_bytes) as f64 / N as f64;
    record::row("memory", P::NAME, "-", "heap bytes per resource", per_res);
    record::row(
        "memory",
        P::NAME,
        "-",
        "handle bytes per resource",
        std::mem::size_of::<P::Res>() as f64,
    );
    for k in [1usize, 4, 8] {
        let entries: Vec<(&P::Res, bool)> = res.iter().take(k).map(|r| (r, true)).collect();
        let (_, s0) = alloc::snapshot();
        let set = P::set(&entries);
        let (_, s1) = alloc::snapshot();
        let param = format!("k={k}");
        record::row(
            "memory",
            P::NAME,
            &param,
            "heap bytes per prepared set",
            (s1 - s0) as f64,
        );
        let (mut acq_n, mut acq_b, mut rel_n) = (0, 0, 0);
        for _ in 0..N {
            let before = alloc::snapshot();
            let mut mid = before;
            P::with(&set, || mid = alloc::snapshot());
            let after = alloc::snapshot();
            acq_n += mid.0 - before.0;
            acq_b += mid.1 - before.1;
            rel_n += after.0 - mid.0;
        }
        let per = |x: u64| x as f64 / N as f64;
        record::row(
            "memory",
            P::NAME,
            &param,
            "allocations per acquire",
            per(acq_n),
        );
        record::row(
            "memory",
            P::NAME,
            &param,
            "heap bytes per acquire",
            per(acq_b),
        );
        record::row(
            "memory",
            P::NAME,
            &param,
            "allocations per release",
            per(rel_n),
        );
    }
}

fn memory() {
    memory_of::<LF>();
    memory_of::<Ref>();
    memory_of::<ParkingLot>();
    memory_of::<StdRwLock>();
    memory_of::<Tokio>();
    memory_of::<SeedMinimal>();
    memory_of::<WaitDie>();
}

// ---------------------------------------------------------------------------------------

/// Context switches per operation, counted directly (a criterion measurement cannot hold the
/// zero counts that uncontended runs give): the contended mix and 8 disjoint threads.
fn context_switches_of<P: Peer>() {
    let Some(meter) = perf::Perf::open(perf::Metric::ContextSwitches) else {
        return;
    };
    let ops: u64 = if quick() { 2_000 } else { 50_000 };
    for (resources, k, exclusive_pct, threads) in [(8, 2, 50, 8), (8, 4, 50, 2), (64, 2, 50, 8)] {
        let mix = Mix {
            resources,
            k,
            exclusive_pct,
            threads,
        };
        let res: Vec<P::Res> = (0..mix.resources).map(|_| P::resource()).collect();
        let sets = mix::sets::<P>(&res, mix);
        let n = measure(&meter, || contended_run::<P>(&sets, ops, None));
        let per_op = n as f64 / (ops * mix.threads as u64) as f64;
        record::row(
            "context switches",
            P::NAME,
            &mix.param(),
            "context switches per op",
            per_op,
        );
    }
    let disjoint: Vec<Vec<P::Set>> = (0..8)
        .map(|_| {
            let (a, b) = (P::resource(), P::resource());
            vec![P::set(&[(&a, true), (&b, true)])]
        })
        .collect();
    let n = measure(&meter, || {
        std::thread::scope(|s| {
            for mine in &disjoint {
                s.spawn(move || {
                    for _ in 0..ops {
                        P::with(&mine[0], || black_box(()));
                    }
                });
            }
        })
    });
    let per_op = n as f64 / (ops * 8) as f64;
    record::row(
        "context switches",
        P::NAME,
        "disjoint T=8",
        "context switches per op",
        per_op,
    );
}

/// Perf counters per operation through criterion: cycles, instructions and cache misses
/// where the CPU exposes them, else the task clock (said so, and noted in the report).
fn counters() {
    let mut metrics = vec![perf::Metric::Cycles];
    if perf::Perf::open(perf::Metric::Cycles).map(|p| p.metric()) == Some(perf::Metric::Cycles) {
        metrics.extend([perf::Metric::Instructions, perf::Metric::CacheMisses]);
    }
    for wanted in metrics {
        let (Some(meter), Some(crit)) = (perf::Perf::open(wanted), perf::Perf::open(wanted)) else {
            continue;
        };
        let name = format!("counters-{}", meter.metric().name());
        let mut c = configure(Criterion::default().with_measurement(crit)).configure_from_args();
        uncontended(
            &mut c,
            &format!("{name}-uncontended"),
            &meter,
            &[1, 8],
            &[false],
        );
        let mix = Mix {
            resources: 8,
            k: 2,
            exclusive_pct: 50,
            threads: 8,
        };
        contended(&mut c, &format!("{name}-contended"), &meter, &[mix]);
    }
    context_switches_of::<LF>();
    context_switches_of::<Ref>();
    context_switches_of::<ParkingLot>();
    context_switches_of::<StdRwLock>();
    context_switches_of::<Tokio>();
    context_switches_of::<SeedMinimal>();
    context_switches_of::<WaitDie>();
}

fn main() {
    let mut c = configure(Criterion::default()).configure_from_args();
    uncontended(
        &mut c,
        "uncontended",
        &WallTime,
        &[1, 2, 4, 8],
        &[false, true],
    );
    disjoint(&mut c, "disjoint", &WallTime, &[1, 2, 4, 8]);
    contended(&mut c, "contended", &WallTime, &mix::all(&[2, 4, 8]));
    handoff(&mut c);
    paths::paths(&mut c);
    memory();
    counters();
    c.final_summary();
    record::save().expect("write target/kds-bench");
}
