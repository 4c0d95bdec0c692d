//! The concurrent check: a decoded [`Workload`] runs on 2–4 threads against both engines in
//! turn, with every way of requesting a set (blocking, timed, interruptible and non-blocking
//! waits, direct, worker and pool callbacks, cancellations racing grants, futures) and every
//! locked policy. Invariants checked while it runs and at the end:
//!
//! - mutual exclusion: shadow counters per resource, entered on every grant (sets with
//!   `Locked::Ignore`, which may overlap the sync sets ahead of them by design, are left out);
//! - exactly once: a callback whose `cancel` returned `true` never runs, one whose `cancel`
//!   returned `false` runs, and every callback that was not cancelled runs once;
//! - no stall: every callback has run within [`STALL`] of the threads finishing, and the
//!   threads finish within [`STALL`] (otherwise the queues are dumped and the process aborts,
//!   which a fuzzer reports as a crash);
//! - everything is free at the end: all resources can be taken exclusively at once;
//! - nothing is leaked: callback closures and future wakers own handles of their sets'
//!   resources, and once the workload's handles are dropped every resource must be gone (a
//!   closure or waker kept past its use would make a cycle).
//!
//! Timed and interruptible waits take timeouts from the whole `Duration` range, up to ones
//! too long to add to `Instant::now()` (`Duration::MAX`), and no timeout at all.

use crate::differential::Policy;
use crate::executor::{block_on, owning_waker};
use crate::support::{merged_modes, Shadow};
use arbitrary::Arbitrary;
use kds::generic::{Guard, Resource, ResourceSet};
use kds::harness::WeakResource;
use kds::reference::Reference;
use kds::{Access, Dispatch, Engine, Error, Interrupt, LockFree, Locked, Worker};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// Threads used: 2 to this many.
pub const MAX_THREADS: usize = 4;
/// Steps per thread, at most.
pub const MAX_STEPS: usize = 12;
/// Resources, at most.
pub const MAX_RESOURCES: usize = 8;
/// How long a workload may take to finish, and its callbacks to run, before it is a stall.
pub const STALL: Duration = Duration::from_secs(20);

/// A decoded fuzz input for the concurrent check.
#[derive(Debug, Clone, Arbitrary)]
pub struct Workload {
    /// Number of resources (1 to `MAX_RESOURCES`).
    pub resources: u8,
    /// Steps of each thread (2 to `MAX_THREADS` threads; missing ones are empty).
    pub threads: Vec<Vec<Step>>,
}

impl Workload {
    /// Decodes a workload: resource and thread counts, then (thread, step) pairs until the
    /// bytes run out. `None` only for an input too short for the header.
    pub fn decode(bytes: &[u8]) -> Option<Workload> {
        let mut u = arbitrary::Unstructured::new(bytes);
        let resources: u8 = u.arbitrary().ok()?;
        let threads = 2 + u.arbitrary::<u8>().ok()? as usize % (MAX_THREADS - 1);
        let mut steps = vec![Vec::new(); threads];
        while !u.is_empty() {
            let Ok((t, step)) = u.arbitrary::<(u8, Step)>() else {
                break;
            };
            if steps[t as usize % threads].len() < MAX_STEPS {
                steps[t as usize % threads].push(step);
            }
        }
        Some(Workload {
            resources,
            threads: steps,
        })
    }
}

/// One request made by a thread, used for a while and released.
#[derive(Debug, Clone, Arbitrary)]
pub struct Step {
    /// How the set is requested.
    pub how: ConcHow,
    /// Locked policy of async requests.
    pub policy: Policy,
    /// (resource index, exclusive), duplicates allowed.
    pub entries: Vec<(u8, bool)>,
    /// How long the set is held, in spin-loop rounds (>= 200 also yields).
    pub hold: u8,
}

/// How a thread requests a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
pub enum ConcHow {
    /// `wait()`.
    Wait,
    /// `wait_timeout(hold µs)`.
    WaitTimeout,
    /// `wait_interruptible(1 ms)`, interrupted by other threads' `FireInterrupt`.
    WaitInterruptible,
    /// `try_acquire()`.
    Try,
    /// `on_grant(Dispatch::Direct)`.
    Direct,
    /// `on_grant(Dispatch::Worker)`.
    Worker,
    /// `on_grant(Dispatch::Pool)`.
    Pool,
    /// `on_grant(Dispatch::Direct)` and `cancel()` at once, racing the grant.
    DirectCancelled,
    /// `on_grant(Dispatch::Worker)` and `cancel()` at once, racing the grant.
    WorkerCancelled,
    /// `acquire()`, driven by a parking `block_on`.
    Future,
    /// Fire the shared interrupt (and clear it again).
    FireInterrupt,
    /// `lock()`: the scoped guard (the sync fast path without reference counts).
    Lock,
    /// The same entries built into a set where it is used (the one-liner): `wait()`, or
    /// `wait_timeout` for odd holds.
    OneLiner,
}

/// Runs `workload` on the lock-free engine, then on the reference; panics with a report on
/// any broken invariant. The `concurrent` fuzz target calls this.
pub fn run(workload: &Workload) {
    for result in [run_on::<LockFree>(workload), run_on::<Reference>(workload)] {
        if let Err(e) = result {
            panic!("concurrent check failed: {e}\nworkload: {workload:#?}");
        }
    }
}

struct Shared<E: Engine> {
    resources: Vec<Resource<E>>,
    shadow: Shadow,
    violations: Mutex<Vec<String>>,
    expected_callbacks: AtomicUsize,
    ran_callbacks: AtomicUsize,
    interrupt: Interrupt,
}

impl<E: Engine> Shared<E> {
    fn violation(&self, what: String) {
        self.violations.lock().unwrap().push(what);
    }

    /// Holds a granted set for `hold` rounds inside the shadow counters.
    fn use_set(&self, entries: &[(usize, bool)], ignore: bool, hold: u8) {
        let check = !ignore;
        if check {
            if let Err(what) = self.shadow.enter(entries) {
                self.violation(what);
            }
        }
        for _ in 0..hold % 64 {
            std::hint::spin_loop();
        }
        if hold >= 200 {
            thread::yield_now();
        }
        if check {
            self.shadow.leave(entries);
        }
    }
}

/// The entries of `step`, merged as the set merges them (exclusive wins).
fn entries(step: &Step, resources: usize) -> Vec<(usize, bool)> {
    merged_modes(
        step.entries
            .iter()
            .take(8)
            .map(|&(r, x)| (r as usize % resources, x)),
    )
}

fn worker() -> Worker {
    static WORKER: OnceLock<Worker> = OnceLock::new();
    WORKER
        .get_or_init(|| Worker::spawn("kds-fuzz-worker").expect("spawn the fuzz worker"))
        .clone()
}

fn one_step<E: Engine>(sh: &Arc<Shared<E>>, step: &Step) {
    let entries = entries(step, sh.resources.len());
    let mut set = ResourceSet::<E>::new().locked(step.policy.into());
    for &(r, x) in &entries {
        let access = if x { Access::Exclusive } else { Access::Shared };
        set = set.access(&sh.resources[r], access);
    }
    let ignore = Locked::from(step.policy) == Locked::Ignore;
    let hold = step.hold;
    let blocking = |r: Result<Guard<'_, E>, Error>, allowed: &[Error]| match r {
        Ok(g) => {
            // Sync sets always wait (rule 8): check them whatever their policy field says.
            sh.use_set(&entries, false, hold);
            drop(g);
        }
        Err(e) if allowed.contains(&e) => {}
        Err(e) => sh.violation(format!("{:?} returned {e}", step.how)),
    };
    match step.how {
        ConcHow::Wait => blocking(set.wait(), &[]),
        ConcHow::WaitTimeout => {
            let timeout = match hold % 8 {
                0 => Duration::MAX,
                1 => Duration::from_nanos(1),
                2 => Duration::from_secs(u64::MAX / 2),
                _ => Duration::from_micros(hold.into()),
            };
            blocking(set.wait_timeout(timeout), &[Error::Timeout])
        }
        ConcHow::WaitInterruptible => {
            let timeout = match hold % 4 {
                0 => Some(Duration::MAX),
                1 => None,
                _ => Some(Duration::from_millis(1)),
            };
            blocking(
                set.wait_interruptible(timeout, &sh.interrupt),
                &[Error::Timeout, Error::Interrupted],
            )
        }
        ConcHow::Try => blocking(set.try_acquire(), &[Error::WouldBlock]),
        ConcHow::Lock => match set.lock() {
            Ok(g) => {
                sh.use_set(&entries, false, hold);
                drop(g);
            }
            Err(e) => sh.violation(format!("lock() returned {e}")),
        },
        ConcHow::OneLiner => {
            let one_liner = entries
                .iter()
                .fold(ResourceSet::<E>::new(), |set, &(r, x)| {
                    let access = if x { Access::Exclusive } else { Access::Shared };
                    set.access(&sh.resources[r], access)
                });
            let timed = hold % 2 == 1;
            let result = if timed {
                one_liner.wait_timeout(Duration::from_micros(hold.into()))
            } else {
                one_liner.wait()
            };
            match result {
                Ok(g) => {
                    sh.use_set(&entries, false, hold);
                    drop(g);
                }
                Err(Error::Timeout) if timed => {}
                Err(e) => sh.violation(format!("the one-liner returned {e}")),
            }
        }
        ConcHow::FireInterrupt => {
            sh.interrupt.interrupt();
            thread::yield_now();
            sh.interrupt.clear();
        }
        ConcHow::Future => match block_on(set.acquire(), &owning_waker(&set)) {
            Ok(g) => {
                sh.use_set(&entries, ignore, hold);
                drop(g);
            }
            Err(Error::Busy) if Locked::from(step.policy) == Locked::Fail => {}
            Err(e) => sh.violation(format!("future returned {e}")),
        },
        ConcHow::Direct
        | ConcHow::Worker
        | ConcHow::Pool
        | ConcHow::DirectCancelled
        | ConcHow::WorkerCancelled => {
            let dispatch = match step.how {
                ConcHow::Direct | ConcHow::DirectCancelled => Dispatch::Direct,
                ConcHow::Pool => Dispatch::Pool,
                _ => Dispatch::Worker(worker()),
            };
            let cancel = matches!(
                step.how,
                ConcHow::DirectCancelled | ConcHow::WorkerCancelled
            );
            let ran = Arc::new(AtomicBool::new(false));
            let cancelled = Arc::new(AtomicBool::new(false));
            let (sh2, ran2, cancelled2, entries2, owns) = (
                Arc::clone(sh),
                Arc::clone(&ran),
                Arc::clone(&cancelled),
                entries.clone(),
                set.clone().into_owned(),
            );
            sh.expected_callbacks.fetch_add(1, SeqCst);
            let pending = set.on_grant(dispatch, move |g| {
                let _owns = owns;
                if ran2.swap(true, SeqCst) {
                    sh2.violation("a callback ran twice".into());
                }
                if cancelled2.load(SeqCst) {
                    sh2.violation("a callback ran after cancel() returned true".into());
                }
                sh2.use_set(&entries2, ignore, hold);
                drop(g);
                sh2.ran_callbacks.fetch_add(1, SeqCst);
            });
            match pending {
                Ok(p) if cancel => {
                    if p.cancel() {
                        cancelled.store(true, SeqCst);
                        if ran.load(SeqCst) {
                            sh.violation("cancel() returned true after the callback ran".into());
                        }
                        sh.expected_callbacks.fetch_sub(1, SeqCst);
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    sh.expected_callbacks.fetch_sub(1, SeqCst);
                    if !(e == Error::Busy && Locked::from(step.policy) == Locked::Fail) {
                        sh.violation(format!("on_grant returned {e}"));
                    }
                }
            }
        }
    }
}

/// Runs `workload` on engine `E`; `Err` describes the violations.
pub fn run_on<E: Engine>(workload: &Workload) -> Result<(), String> {
    let n = (workload.resources as usize % MAX_RESOURCES).max(1);
    let sh = Arc::new(Shared::<E> {
        resources: (0..n).map(|_| Resource::new()).collect(),
        shadow: Shadow::new(n),
        violations: Mutex::new(Vec::new()),
        expected_callbacks: AtomicUsize::new(0),
        ran_callbacks: AtomicUsize::new(0),
        interrupt: Interrupt::new(),
    });
    let threads = workload.threads.len().clamp(2, MAX_THREADS);
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let dump = {
        let sh = Arc::clone(&sh);
        move || format!("{}: queues {:#?}", E::NAME, sh.resources)
    };
    let watchdog = thread::spawn(move || {
        if done_rx.recv_timeout(STALL) == Err(mpsc::RecvTimeoutError::Timeout) {
            eprintln!(
                "STALL: the workload did not finish in {STALL:?}\n{}",
                dump()
            );
            std::process::abort();
        }
    });
    thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let steps = workload.threads.get(t).map(Vec::as_slice).unwrap_or(&[]);
                let sh = &sh;
                s.spawn(move || {
                    for step in steps.iter().take(MAX_STEPS) {
                        one_step(sh, step);
                    }
                })
            })
            .collect();
        // Joined one by one (the scope's own wait returns before a thread's locals are torn
        // down): a fuzzer's leak check after this run must not see a thread's delivery queue
        // still waiting for its thread-local destructor.
        for h in handles {
            if h.join().is_err() {
                sh.violation("a workload thread panicked".into());
            }
        }
    });
    // Callbacks queued on the worker or the pool may still be running.
    let deadline = Instant::now() + STALL;
    while sh.ran_callbacks.load(SeqCst) != sh.expected_callbacks.load(SeqCst) {
        if Instant::now() > deadline {
            break;
        }
        thread::sleep(Duration::from_micros(100));
    }
    let _ = done_tx.send(());
    let _ = watchdog.join();
    let mut problems = std::mem::take(&mut *sh.violations.lock().unwrap());
    let (ran, expected) = (
        sh.ran_callbacks.load(SeqCst),
        sh.expected_callbacks.load(SeqCst),
    );
    if ran != expected {
        problems.push(format!(
            "{ran} callbacks ran, {expected} expected; queues {:#?}",
            sh.resources
        ));
    }
    if let Err(held) = sh.shadow.all_free() {
        problems.push(held);
    }
    let mut all = ResourceSet::<E>::new();
    for r in &sh.resources {
        all = all.exclusive(r);
    }
    if let Err(e) = all.try_acquire() {
        problems.push(format!(
            "resources not free at the end ({e}): {:#?}",
            sh.resources
        ));
    }
    drop(all);
    let made: Vec<_> = sh.resources.iter().map(WeakResource::new).collect();
    drop(sh);
    if let Err(alive) = crate::wait_all_gone(&made) {
        problems.push(format!(
            "resources {alive:?} still alive after the workload's handles were dropped (a cycle)"
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}: {}", E::NAME, problems.join("\n")))
    }
}
