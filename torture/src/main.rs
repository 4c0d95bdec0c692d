//! kds-torture: a locktorture-style stress test of both engines.
//!
//! `cargo run --release -p kds-torture -- [--threads 8] [--resources 16] [--seconds 30]
//! [--engine both|lockfree|reference] [--stall-seconds 10]`
//!
//! Each thread loops over random sets of 1-8 resources with random modes and random
//! operations: blocking waits (`wait` and the scoped `lock`), timed waits and interruptible
//! waits with timeouts across the whole `Duration` range (interrupted by other threads),
//! `try_acquire`, async requests with direct, worker and pool callbacks (some cancelled at
//! once), and futures (some dropped while queued or once granted), with random Locked
//! policies and random hold times. Sets are built where they are used and borrow their
//! resources; a quarter of them also name fresh resources of their own (the set then owns
//! handles of all its resources, `into_owned`), and every callback closure and future waker
//! owns handles of its set's resources, as a client that owns the buffers it waits for does.
//!
//! Checks: shadow counters check mutual exclusion on every grant (sets with
//! `Locked::Ignore`, which may legitimately overlap the sync sets ahead of them, are left out
//! of that check), callbacks check exactly-once delivery against `cancel`, and at the end
//! every resource must be free. A watchdog reports a stall (no operation completed for
//! `--stall-seconds` while threads are working) with a dump of the queues. The **memory
//! soak** (`heap.rs`): a counting global allocator samples the live heap every tick, and the
//! run fails if it keeps growing after warm-up, or if the heap is not back to where it was
//! once the engine's run is over and everything is dropped (a reference cycle). Prints
//! operations per second per kind, the longest blocking wait and the live-heap figures; exits
//! 1 on any violation, 2 on a stall.

mod heap;

use kds::generic::{Guard, Resource, ResourceSet};
use kds::{Access, Dispatch, Engine, Error, Interrupt, Locked, Worker};
use kds_fuzzing::executor::{block_on, owning_waker};
use kds_fuzzing::support::{merged_modes, Rng, Shadow};
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll};
use std::thread;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: heap::Counting = heap::Counting;

const KINDS: [&str; 8] = [
    "wait",
    "wait_timeout",
    "wait_interruptible",
    "try_acquire",
    "callback",
    "cancel",
    "future",
    "future_dropped",
];

/// The most threads and resources a run takes: more is refused with a clear message rather
/// than failing deep inside (thread spawn, allocation).
const MAX_THREADS: u64 = 1024;
const MAX_RESOURCES: u64 = 1 << 20;

/// The sampling period of the watchdog and the live heap.
const TICK: Duration = Duration::from_millis(200);

struct Config {
    threads: usize,
    resources: usize,
    seconds: u64,
    stall_seconds: u64,
    engines: Vec<String>,
}

fn parse_args() -> Result<Config, String> {
    let mut c = Config {
        threads: 8,
        resources: 16,
        seconds: 30,
        stall_seconds: 10,
        engines: vec!["lockfree".into(), "reference".into()],
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        let number = |v: String| v.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--threads" => c.threads = number(value()?)?.clamp(1, MAX_THREADS) as usize,
            "--resources" => c.resources = number(value()?)?.clamp(1, MAX_RESOURCES) as usize,
            "--seconds" => c.seconds = number(value()?)?,
            "--stall-seconds" => c.stall_seconds = number(value()?)?.max(1),
            "--engine" => {
                c.engines = match value()?.as_str() {
                    "both" => vec!["lockfree".into(), "reference".into()],
                    e @ ("lockfree" | "reference") => vec![e.into()],
                    e => return Err(format!("unknown engine {e}")),
                }
            }
            _ => return Err(format!("unknown argument {flag}")),
        }
    }
    Ok(c)
}

/// Everything the threads share in one run.
struct Shared<E: Engine> {
    resources: Vec<Resource<E>>,
    /// Per resource: number of shared holders, or -1 for an exclusive holder.
    shadow: Shadow,
    ops: [AtomicU64; KINDS.len()],
    violations: AtomicUsize,
    progress: AtomicU64,
    longest_wait_ns: AtomicU64,
    stop: AtomicBool,
    worker: Worker,
}

impl<E: Engine> Shared<E> {
    fn violation(&self, what: String) {
        if self.violations.fetch_add(1, SeqCst) < 10 {
            eprintln!("VIOLATION: {what}");
        }
    }

    /// Enter and leave the shadow counters for a granted set, holding it `hold` meanwhile.
    fn use_set(&self, modes: &[(usize, bool)], hold: Duration) {
        if let Err(what) = self.shadow.enter(modes) {
            self.violation(what);
        }
        let until = Instant::now() + hold;
        while Instant::now() < until {
            std::hint::spin_loop();
        }
        self.shadow.leave(modes);
    }

    fn done(&self, kind: usize) {
        self.ops[kind].fetch_add(1, SeqCst);
        self.progress.fetch_add(1, SeqCst);
    }
}

/// A timeout from anywhere in the `Duration` range: zero, a few nanoseconds, the short
/// timeouts a driver uses, and ones too long to add to `Instant::now()`.
fn any_timeout(rng: &mut Rng) -> Duration {
    match rng.below(8) {
        0 => Duration::ZERO,
        1 => Duration::from_nanos(1 + rng.below(1000)),
        2 => Duration::MAX,
        3 => Duration::from_secs(u64::MAX / 2 + rng.below(u64::MAX / 2)),
        _ => Duration::from_micros(rng.below(500)),
    }
}

fn one_op<E: Engine>(sh: &Arc<Shared<E>>, rng: &mut Rng, interrupt: &Interrupt) {
    let k = 1 + rng.below(8) as usize;
    let mut set = ResourceSet::<E>::new();
    let mut picked = Vec::new();
    for _ in 0..k {
        let i = rng.below(sh.resources.len() as u64) as usize;
        let exclusive = rng.below(2) == 0;
        let access = if exclusive {
            Access::Exclusive
        } else {
            Access::Shared
        };
        set = set.access(&sh.resources[i], access);
        picked.push((i, exclusive));
    }
    // A quarter of the sets also take resources of their own, dropped with the set after
    // the operation: a cycle that keeps a resource alive shows as a growing heap. Such a set
    // owns handles of all its resources (the fresh ones have no other).
    if rng.below(4) == 0 {
        for _ in 0..1 + rng.below(2) {
            let access = if rng.below(2) == 0 {
                Access::Exclusive
            } else {
                Access::Shared
            };
            let fresh = Resource::new();
            set = set.into_owned().access(&fresh, access).into_owned();
        }
    }
    let modes = merged_modes(picked);
    let hold = Duration::from_micros(rng.below(20));
    let policy = match rng.below(6) {
        0 => Locked::Fail,
        1 => Locked::Ignore,
        _ => Locked::Wait,
    };
    let kind = rng.below(KINDS.len() as u64) as usize;
    let checked = |guard: Guard<'_, E>| {
        sh.use_set(&modes, hold);
        drop(guard);
    };
    // A blocking request granted after waiting since `start`: record the wait, use the set.
    let granted_after = |start: Instant| {
        let waited = start.elapsed().as_nanos() as u64;
        sh.longest_wait_ns.fetch_max(waited, SeqCst);
        sh.use_set(&modes, hold);
    };
    match kind {
        // A third of the plain waits use the scoped `lock()` guard instead of `wait()`.
        0 if rng.below(3) == 0 => {
            let start = Instant::now();
            match set.lock() {
                Ok(g) => {
                    granted_after(start);
                    drop(g);
                }
                Err(e) => sh.violation(format!("lock failed: {e}")),
            }
        }
        // Another third the one-liner of the same resources, named in reverse (the set
        // keeps them in order as it is built).
        0 if rng.below(2) == 0 => {
            let start = Instant::now();
            let one_liner = modes
                .iter()
                .rev()
                .fold(ResourceSet::<E>::new(), |set, &(i, x)| {
                    let access = if x { Access::Exclusive } else { Access::Shared };
                    set.access(&sh.resources[i], access)
                });
            match one_liner.wait() {
                Ok(g) => {
                    granted_after(start);
                    drop(g);
                }
                Err(e) => sh.violation(format!("the one-liner's wait failed: {e}")),
            }
        }
        0..=2 => {
            let start = Instant::now();
            let result = match kind {
                0 => set.wait(),
                1 => set.wait_timeout(any_timeout(rng)),
                _ => {
                    if rng.below(4) == 0 {
                        interrupt.interrupt();
                    }
                    let timeout = (rng.below(4) != 0).then(|| any_timeout(rng));
                    let r = set.wait_interruptible(timeout, interrupt);
                    interrupt.clear();
                    r
                }
            };
            match result {
                Ok(g) => {
                    granted_after(start);
                    drop(g);
                }
                Err(Error::Timeout | Error::Interrupted) if kind != 0 => {}
                Err(e) => sh.violation(format!("{} failed: {e}", KINDS[kind])),
            }
        }
        3 => match set.try_acquire() {
            Ok(g) => checked(g),
            Err(Error::WouldBlock) => {}
            Err(e) => sh.violation(format!("try_acquire failed: {e}")),
        },
        4 | 5 => {
            let dispatch = match rng.below(3) {
                0 => Dispatch::Direct,
                1 => Dispatch::Worker(sh.worker.clone()),
                _ => Dispatch::Pool,
            };
            let ignore = policy == Locked::Ignore;
            let (tx, rx) = mpsc::channel();
            let sh2 = sh.clone();
            let modes2 = modes.clone();
            let ran = Arc::new(AtomicUsize::new(0));
            let ran2 = ran.clone();
            // The closure owns handles of its set's resources (see `kds_fuzzing::executor`).
            let owns = set.clone().into_owned();
            let requested = set.clone().locked(policy).on_grant(dispatch, move |g| {
                let _owns = owns;
                if ran2.fetch_add(1, SeqCst) != 0 {
                    sh2.violation("callback ran twice".into());
                }
                if !ignore {
                    sh2.use_set(&modes2, hold);
                }
                drop(g);
                let _ = tx.send(());
            });
            match requested {
                Err(Error::Busy) if policy == Locked::Fail => {}
                Err(e) => sh.violation(format!("on_grant failed: {e}")),
                Ok(pending) => {
                    if kind == 5 && pending.cancel() {
                        thread::sleep(Duration::from_micros(50));
                        if ran.load(SeqCst) != 0 {
                            sh.violation("a cancelled callback ran".into());
                        }
                    } else if rx.recv_timeout(Duration::from_secs(60)).is_err() {
                        sh.violation("a callback never ran".into());
                    }
                }
            }
        }
        6 => {
            let ignore = policy == Locked::Ignore;
            match block_on(set.clone().locked(policy).acquire(), &owning_waker(&set)) {
                Ok(g) if ignore => drop(g),
                Ok(g) => checked(g),
                Err(Error::Busy) if policy == Locked::Fail => {}
                Err(e) => sh.violation(format!("future failed: {e}")),
            }
        }
        _ => {
            // Polled once, then dropped: while queued (a cancel), or after a short while, by
            // when it may have been granted unpolled (a release).
            let ignore = policy == Locked::Ignore;
            let waker = owning_waker(&set);
            let mut fut = pin!(set.clone().locked(policy).acquire());
            match fut.as_mut().poll(&mut Context::from_waker(&waker)) {
                Poll::Ready(Ok(g)) if ignore => drop(g),
                Poll::Ready(Ok(g)) => checked(g),
                Poll::Ready(Err(Error::Busy)) if policy == Locked::Fail => {}
                Poll::Ready(Err(e)) => sh.violation(format!("future failed: {e}")),
                Poll::Pending => {
                    if rng.below(2) == 0 {
                        let until = Instant::now() + Duration::from_micros(rng.below(50));
                        while Instant::now() < until {
                            std::hint::spin_loop();
                        }
                    }
                }
            }
        }
    }
    sh.done(kind);
}

/// Runs one engine; returns (violations, stalled).
fn run<E: Engine>(name: &str, c: &Config) -> (usize, bool) {
    let baseline = quiescent_heap();
    let worker = match Worker::spawn("kds-torture-worker") {
        Ok(w) => w,
        Err(e) => {
            eprintln!("kds-torture: {e}");
            return (1, false);
        }
    };
    let sh = Arc::new(Shared::<E> {
        resources: (0..c.resources).map(|_| Resource::new()).collect(),
        shadow: Shadow::new(c.resources),
        ops: Default::default(),
        violations: AtomicUsize::new(0),
        progress: AtomicU64::new(0),
        longest_wait_ns: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        worker,
    });
    let start = Instant::now();
    let mut handles = Vec::new();
    for t in 0..c.threads {
        let sh2 = sh.clone();
        let spawned = thread::Builder::new().spawn(move || {
            let mut rng =
                Rng::new(0x9e37_79b9_7f4a_7c15 ^ (t as u64 + 1).wrapping_mul(0x2545_f491));
            let interrupt = Interrupt::new();
            while !sh2.stop.load(SeqCst) {
                one_op(&sh2, &mut rng, &interrupt);
            }
        });
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => {
                sh.violation(format!("could not start torture thread {t}: {e}"));
                break;
            }
        }
    }
    let mut stalled = false;
    let mut heap_samples = Vec::new();
    let mut last = (0, Instant::now());
    while start.elapsed() < Duration::from_secs(c.seconds) {
        thread::sleep(TICK);
        heap_samples.push(heap::live());
        let now = sh.progress.load(SeqCst);
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(c.stall_seconds) {
            eprintln!(
                "STALL: no operation completed for {} s; queues:",
                c.stall_seconds
            );
            for (i, r) in sh.resources.iter().enumerate() {
                eprintln!("  resource {i}: {r:?}");
            }
            stalled = true;
            break;
        }
    }
    sh.stop.store(true, SeqCst);
    if stalled {
        return (sh.violations.load(SeqCst), true);
    }
    for h in handles {
        if h.join().is_err() {
            sh.violation("a torture thread panicked".into());
        }
    }
    let secs = start.elapsed().as_secs_f64();
    // Callbacks on the pool or worker may still be finishing their release.
    thread::sleep(Duration::from_millis(100));
    for (i, r) in sh.resources.iter().enumerate() {
        if ResourceSet::new().exclusive(r).try_acquire().is_err() {
            sh.violation(format!("resource {i} not free at the end: {r:?}"));
        }
    }
    let total: u64 = sh.ops.iter().map(|o| o.load(SeqCst)).sum();
    println!(
        "{name}: {total} operations in {secs:.1} s ({:.0} ops/s)",
        total as f64 / secs
    );
    for (kind, ops) in KINDS.iter().zip(&sh.ops) {
        println!(
            "  {kind:<20} {:>10.0} ops/s",
            ops.load(SeqCst) as f64 / secs
        );
    }
    println!(
        "  longest blocking wait {:.3} ms",
        sh.longest_wait_ns.load(SeqCst) as f64 / 1e6,
    );
    // The soak, part 1: the live heap levels off once warm (the first quarter of the run,
    // at least a second, is warm-up).
    let warmup = (heap_samples.len() / 4).max(5);
    match heap::judge(&heap_samples, warmup) {
        None => println!("  live heap: run too short to judge its growth"),
        Some(v) => {
            println!(
                "  live heap after warm-up: {:.1} KiB -> {:.1} KiB (median of first / last quarter; allowance {:.0} KiB): {}",
                v.warm as f64 / 1024.0,
                v.last as f64 / 1024.0,
                heap::allowance(v.warm) as f64 / 1024.0,
                if v.growing { "GROWING" } else { "flat" }
            );
            if v.growing {
                sh.violation("the live heap keeps growing: a leak".into());
            }
        }
    }
    // The soak, part 2: once everything is dropped, the heap is back where it started; what
    // is left is kept alive by a cycle (or never freed).
    let mut violations = sh.violations.load(SeqCst);
    drop(sh);
    let left = quiescent_heap() - baseline;
    println!(
        "  live heap once everything is dropped: {:+.1} KiB against the start (allowance {:.0} KiB)",
        left as f64 / 1024.0,
        END_ALLOWANCE as f64 / 1024.0
    );
    if left > END_ALLOWANCE {
        eprintln!("VIOLATION: {left} bytes still live after the run: a leak or a cycle");
        violations += 1;
    }
    println!("  violations {violations}");
    (violations, false)
}

/// What may stay live after an engine's run, against the heap before it: the epoch
/// collector's own bookkeeping (the records of exited threads, garbage-queue nodes that are
/// themselves epoch-reclaimed), measured at 20-90 KiB whatever the run's length or thread
/// count on the lock-free engine and about 2 KiB on the reference. A cycle through a client's
/// waker or closure leaves a resource and a request per operation that hits it: megabytes in
/// a 30-second run.
const END_ALLOWANCE: isize = 256 << 10;

/// The live heap once deferred work has settled: pool and worker callbacks finished,
/// threads gone, and the epoch collector's garbage freed. Each pin-and-flush lets the epoch
/// advance and collects a few bags of garbage (nothing else is pinned now), so it repeats
/// until the heap has not shrunk for a while.
fn quiescent_heap() -> isize {
    // Start rayon's pool (used by pool callbacks) before the first figure, so it counts in
    // the baseline rather than as something left behind.
    rayon::join(|| (), || ());
    let mut least = heap::live();
    let mut calm = 0;
    for _ in 0..10_000 {
        kds::harness::flush_deferred_frees();
        thread::sleep(Duration::from_micros(200));
        let now = heap::live();
        if now < least {
            (least, calm) = (now, 0);
        } else {
            calm += 1;
            if calm == 100 {
                break;
            }
        }
    }
    least
}

fn main() {
    let c = match parse_args() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kds-torture: {e}");
            std::process::exit(64);
        }
    };
    println!(
        "kds-torture: {} threads, {} resources, {} s per engine",
        c.threads, c.resources, c.seconds
    );
    let (mut violations, mut stalled) = (0, false);
    for engine in &c.engines {
        let (v, s) = match engine.as_str() {
            "lockfree" => run::<kds::LockFree>("lock-free", &c),
            _ => run::<kds::reference::Reference>("reference", &c),
        };
        violations += v;
        stalled |= s;
    }
    if stalled {
        std::process::exit(2);
    }
    if violations > 0 {
        eprintln!("kds-torture: {violations} violations");
        std::process::exit(1);
    }
}
