//! kds-torture: a locktorture-style stress test of both engines.
//!
//! `cargo run --release --bin kds-torture -- [--threads 8] [--resources 16] [--seconds 30]
//! [--engine both|lockfree|reference] [--stall-seconds 10]`
//!
//! Each thread loops over random sets of 1-8 resources with random modes and random
//! operations: blocking waits (`wait` and the scoped `lock`), timed waits, interruptible waits (interrupted by a helper
//! thread), `try_acquire`, async requests with direct, worker and pool callbacks (some
//! cancelled at once), and futures, with random Locked policies and random hold times.
//! Shadow counters check mutual exclusion on every grant (sets with `Locked::Ignore`, which
//! may legitimately overlap the sync sets ahead of them, are left out of that check),
//! callbacks check exactly-once delivery against `cancel`, and at the end every resource must
//! be free. A watchdog reports a stall (no operation completed for `--stall-seconds` while
//! threads are working) with a dump of the queues. Prints operations per second per kind and
//! the longest blocking wait; exits 1 on any violation, 2 on a stall.

use kds::generic::{Guard, Resource, ResourceSet};
use kds::{Access, Dispatch, Engine, Error, Interrupt, Locked, Worker};
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

const KINDS: [&str; 7] = [
    "wait",
    "wait_timeout",
    "wait_interruptible",
    "try_acquire",
    "callback",
    "cancel",
    "future",
];

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
            "--threads" => c.threads = number(value()?)?.max(1) as usize,
            "--resources" => c.resources = number(value()?)?.max(1) as usize,
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
    shadow: Vec<AtomicIsize>,
    ops: [AtomicU64; 7],
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
        for &(i, exclusive) in modes {
            let c = &self.shadow[i];
            if exclusive {
                let was = c.swap(-1, SeqCst);
                if was != 0 {
                    self.violation(format!(
                        "exclusive grant of resource {i} while held ({was})"
                    ));
                }
            } else if c.fetch_add(1, SeqCst) < 0 {
                self.violation(format!(
                    "shared grant of resource {i} while held exclusively"
                ));
            }
        }
        let until = Instant::now() + hold;
        while Instant::now() < until {
            std::hint::spin_loop();
        }
        for &(i, exclusive) in modes {
            let c = &self.shadow[i];
            if exclusive {
                c.store(0, SeqCst);
            } else {
                c.fetch_sub(1, SeqCst);
            }
        }
    }

    fn done(&self, kind: usize) {
        self.ops[kind].fetch_add(1, SeqCst);
        self.progress.fetch_add(1, SeqCst);
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A minimal executor for the future path: park until woken.
struct ThreadWaker(thread::Thread);
impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}
fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        thread::park_timeout(Duration::from_millis(100));
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
    picked.sort();
    let mut modes: Vec<(usize, bool)> = Vec::new();
    for (i, e) in picked {
        match modes.last_mut() {
            Some(last) if last.0 == i => last.1 |= e,
            _ => modes.push((i, e)),
        }
    }
    let hold = Duration::from_micros(rng.below(20));
    let policy = match rng.below(6) {
        0 => Locked::Fail,
        1 => Locked::Ignore,
        _ => Locked::Wait,
    };
    let kind = rng.below(KINDS.len() as u64) as usize;
    let checked = |guard: Guard<E>| {
        sh.use_set(&modes, hold);
        drop(guard);
    };
    match kind {
        // Half the plain waits use the scoped `lock()` guard instead of `wait()`.
        0 if rng.below(2) == 0 => {
            let start = Instant::now();
            match set.lock() {
                Ok(g) => {
                    let waited = start.elapsed().as_nanos() as u64;
                    sh.longest_wait_ns.fetch_max(waited, SeqCst);
                    sh.use_set(&modes, hold);
                    drop(g);
                }
                Err(e) => sh.violation(format!("lock failed: {e}")),
            }
        }
        0..=2 => {
            let start = Instant::now();
            let result = match kind {
                0 => set.wait(),
                1 => set.wait_timeout(Duration::from_micros(rng.below(500))),
                _ => {
                    if rng.below(4) == 0 {
                        interrupt.interrupt();
                    }
                    let r = set.wait_interruptible(Some(Duration::from_millis(50)), interrupt);
                    interrupt.clear();
                    r
                }
            };
            match result {
                Ok(g) => {
                    let waited = start.elapsed().as_nanos() as u64;
                    sh.longest_wait_ns.fetch_max(waited, SeqCst);
                    checked(g);
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
            let requested = set.clone().locked(policy).on_grant(dispatch, move |g| {
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
        _ => {
            let ignore = policy == Locked::Ignore;
            match block_on(set.clone().locked(policy).acquire()) {
                Ok(g) if ignore => drop(g),
                Ok(g) => checked(g),
                Err(Error::Busy) if policy == Locked::Fail => {}
                Err(e) => sh.violation(format!("future failed: {e}")),
            }
        }
    }
    sh.done(kind);
}

/// Runs one engine; returns (violations, stalled).
fn run<E: Engine>(name: &str, c: &Config) -> (usize, bool) {
    let sh = Arc::new(Shared::<E> {
        resources: (0..c.resources).map(|_| Resource::new()).collect(),
        shadow: (0..c.resources).map(|_| AtomicIsize::new(0)).collect(),
        ops: Default::default(),
        violations: AtomicUsize::new(0),
        progress: AtomicU64::new(0),
        longest_wait_ns: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        worker: Worker::spawn("kds-torture-worker").expect("worker thread"),
    });
    let start = Instant::now();
    let handles: Vec<_> = (0..c.threads)
        .map(|t| {
            let sh = sh.clone();
            thread::spawn(move || {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (t as u64 + 1).wrapping_mul(0x2545_f491));
                let interrupt = Interrupt::new();
                while !sh.stop.load(SeqCst) {
                    one_op(&sh, &mut rng, &interrupt);
                }
            })
        })
        .collect();
    let stalled = Arc::new(Mutex::new(false));
    let mut last = (0, Instant::now());
    while start.elapsed() < Duration::from_secs(c.seconds) {
        thread::sleep(Duration::from_millis(200));
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
            *stalled.lock().unwrap() = true;
            break;
        }
    }
    sh.stop.store(true, SeqCst);
    if *stalled.lock().unwrap() {
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
        "  longest blocking wait {:.3} ms; violations {}",
        sh.longest_wait_ns.load(SeqCst) as f64 / 1e6,
        sh.violations.load(SeqCst)
    );
    (sh.violations.load(SeqCst), false)
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
