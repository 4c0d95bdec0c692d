//! [`Worker`] and [`Dispatch`]: where a grant callback runs.
//!
//! This module knows nothing of sets or engines: a worker runs [`Job`]s, which the grant
//! delivery (`delivery`) makes of granted requests.

use crate::backoff::spin_then_yield;
use crate::error::Error;
use crate::sync::hand_off_deferred_frees;
use std::cell::Cell;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

/// A granted request whose callback a worker runs (the delivery implements it for every
/// engine's requests). A job catches its callback's panics itself.
pub(crate) trait Job: Send + Sync {
    /// Runs the grant callback on this thread.
    fn run(self: Arc<Self>);
}

/// Where an async set's grant callback runs (spec rule 9).
///
/// - `Direct` costs nothing extra and runs soonest, but runs on whichever thread completed
///   the grant (maybe a release in another client's code path): keep such callbacks short and
///   non-blocking, like an interrupt handler; queue a page flip, send on a channel.
/// - `Worker` runs callbacks one at a time, in grant order, on a thread you own: the place for
///   work that takes a while or must not run on other clients' threads.
/// - `Pool` spreads callbacks over rayon's global pool, in no particular order.
///
/// ```
/// use kds::{Dispatch, Resource, ResourceSet};
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
///
/// let buffer = Resource::new();
/// let ran = Arc::new(AtomicBool::new(false));
/// let flag = ran.clone();
/// // Everything free: a direct callback runs before `on_grant` returns.
/// ResourceSet::new().shared(&buffer).on_grant(Dispatch::Direct, move |guard| {
///     flag.store(true, Ordering::SeqCst);
///     drop(guard);
/// })?;
/// assert!(ran.load(Ordering::SeqCst));
/// # Ok::<(), kds::Error>(())
/// ```
#[derive(Clone, Debug)]
pub enum Dispatch {
    /// On the thread whose operation completed the grant: inside `on_grant` when everything
    /// is free at once, else inside the release or cancel that freed the last resource
    /// (the seed's direct callbacks). Chains of direct callbacks run in a loop, not
    /// recursively.
    Direct,
    /// On a dedicated [`Worker`] thread, in grant order (the review's `kthread_worker`).
    Worker(Worker),
    /// On rayon's global thread pool (the seed's deferred workqueue callbacks).
    Pool,
}

impl Dispatch {
    /// Runs `job` where this dispatch runs grant callbacks: `Direct` here and now (a panic
    /// reaches the caller), `Worker` on the worker after the jobs it already has, `Pool` on
    /// rayon's pool. On a worker or the pool a panic in `job` is caught, as a grant
    /// callback's is. For grants that a layer above kds completes later, on a thread of its
    /// own: `kds-dmabuf` delivers a set whose buffers' fences were pending this way, once
    /// they signal, to the dispatch its client chose.
    ///
    /// ```
    /// use kds::{Dispatch, Worker};
    /// use std::sync::mpsc;
    ///
    /// let worker = Worker::spawn("display")?;
    /// let (tx, rx) = mpsc::channel();
    /// Dispatch::Worker(worker).run(move || tx.send(std::thread::current().name().map(String::from)).unwrap());
    /// assert_eq!(rx.recv().unwrap().as_deref(), Some("display"));
    /// # Ok::<(), kds::Error>(())
    /// ```
    pub fn run(&self, job: impl FnOnce() + Send + 'static) {
        match self {
            Dispatch::Direct => job(),
            Dispatch::Worker(worker) => worker.send(Arc::new(ClosureJob(Mutex::new(Some(job))))),
            Dispatch::Pool => spawn_on_pool(move || {
                contain_panic(job);
                finish_pool_job();
            }),
        }
    }
}

/// A closure run once as a worker's job ([`Dispatch::run`]).
struct ClosureJob<F>(Mutex<Option<F>>);

impl<F: FnOnce() + Send> Job for ClosureJob<F> {
    fn run(self: Arc<Self>) {
        let job = self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(job) = job {
            contain_panic(job);
        }
    }
}

/// Runs `job`, catching its panic (and one from dropping the panic's payload, which is then
/// leaked): a worker or pool thread outlives the jobs it runs.
fn contain_panic(job: impl FnOnce()) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(job)) {
        if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
            std::mem::forget(again);
        }
    }
}

/// A dedicated callback thread: grants dispatched to it run one at a time, in the order they
/// were granted.
///
/// Clones share the thread. The thread ends once every clone is dropped and every request
/// that names it has been delivered, cancelled or refused (a delivered request keeps no
/// handle of it). After a callback it waits up to about 20 µs for the next one without
/// parking (spinning, then yielding), so back-to-back grants reach it in well under a
/// microsecond; after that it blocks, burning no CPU while idle.
///
/// ```
/// use kds::{Dispatch, Resource, ResourceSet, Worker};
/// use std::sync::mpsc;
///
/// let gpu = Worker::spawn("gpu-jobs")?;
/// let (done, results) = mpsc::channel();
/// let buffers: Vec<Resource> = (0..3).map(|_| Resource::new()).collect();
/// for (i, b) in buffers.iter().enumerate() {
///     let done = done.clone();
///     ResourceSet::new().exclusive(b).on_grant(Dispatch::Worker(gpu.clone()), move |guard| {
///         // ... run job i on the buffer ...
///         drop(guard);
///         done.send(i).unwrap();
///     })?;
/// }
/// let mut order: Vec<usize> = (0..3).map(|_| results.recv().unwrap()).collect();
/// order.sort();
/// assert_eq!(order, [0, 1, 2]);
/// # Ok::<(), kds::Error>(())
/// ```
#[derive(Clone)]
pub struct Worker {
    inner: Arc<WorkerInner>,
}

struct WorkerInner {
    name: String,
    jobs: mpsc::Sender<Arc<dyn Job>>,
}

impl Worker {
    /// Starts a worker thread named `name`.
    ///
    /// `Err(Error::Spawn(ErrorKind::InvalidInput))` if `name` contains a NUL byte (a thread
    /// name cannot), `Err(Error::Spawn(kind))` if the system refuses the thread.
    pub fn spawn(name: &str) -> Result<Worker, Error> {
        if name.contains('\0') {
            return Err(Error::Spawn(std::io::ErrorKind::InvalidInput));
        }
        let (jobs, queue) = mpsc::channel::<Arc<dyn Job>>();
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                // Ends when every sender (every Worker clone) is gone.
                loop {
                    let job = match queue.try_recv() {
                        Ok(job) => job,
                        Err(mpsc::TryRecvError::Disconnected) => break,
                        Err(mpsc::TryRecvError::Empty) => {
                            // Just ran a job: the next grant often follows within
                            // microseconds, so wait a little without parking first.
                            let mut next = Err(mpsc::TryRecvError::Empty);
                            spin_then_yield(
                                || {
                                    next = queue.try_recv();
                                    !matches!(next, Err(mpsc::TryRecvError::Empty))
                                },
                                None,
                                true, // a worker's next job is its own to wait for
                            );
                            match next {
                                Ok(job) => job,
                                Err(mpsc::TryRecvError::Disconnected) => break,
                                Err(mpsc::TryRecvError::Empty) => {
                                    // Going idle: let other threads run what this one
                                    // deferred, then park until the next job.
                                    hand_off_deferred_frees();
                                    match queue.recv() {
                                        Ok(job) => job,
                                        Err(mpsc::RecvError) => break,
                                    }
                                }
                            }
                        }
                    };
                    job.run();
                }
            })
            .map_err(|e| Error::Spawn(e.kind()))?;
        Ok(Worker {
            inner: Arc::new(WorkerInner {
                name: name.to_owned(),
                jobs,
            }),
        })
    }

    /// The thread's name, as given to [`spawn`](Self::spawn).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    pub(crate) fn send(&self, job: Arc<dyn Job>) {
        // The thread catches every panic of the jobs it runs (`delivery::contain`), so it
        // lives as long as any sender. Should it have died all the same, the job runs here
        // rather than being lost with its granted set.
        if let Err(mpsc::SendError(job)) = self.inner.jobs.send(job) {
            job.run();
        }
    }
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("name", &self.inner.name)
            .finish()
    }
}

/// Ends a kds job on the pool (a `Dispatch::Pool` callback): hands this thread's deferred
/// frees to the global collector, since a pool thread may idle for long after it. But first
/// it runs the jobs queued on this thread's own deque (often the grants this job's release
/// dispatched), here, so that one hand-off follows a whole chain of them: handing off a bag
/// of one or two frees after every job cost a quarter of a job graph's time (a 2 KiB bag
/// allocated, copied and freed per job). Only then: a job left queued could be stolen, and
/// this thread would idle holding the frees. A kds job run by that loop returns at once (the
/// outer one hands off), so the loop never nests.
pub(crate) fn finish_pool_job() {
    std::thread_local! {
        static DRAINING: Cell<bool> = const { Cell::new(false) };
    }
    if DRAINING.with(|d| d.replace(true)) {
        return; // run by an outer job's loop below, which hands off
    }
    // Reset even if a job unwinds (rayon aborts then, unless the application set a handler).
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            DRAINING.with(|d| d.set(false));
        }
    }
    let _reset = Reset;
    while rayon::yield_local() == Some(rayon::Yield::Executed) {}
    hand_off_deferred_frees();
}

/// Runs `job` on rayon's global pool, or on a thread of its own if that pool cannot start
/// (rayon would panic, and the job, holding a granted request, would be lost). Used for
/// `Dispatch::Pool` and for grants made while a thread's locals are torn down, which must not
/// run on the granting thread (the reference engine may still hold its lock there).
pub(crate) fn spawn_on_pool(job: impl FnOnce() + Send + 'static) {
    static POOL_STARTS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let pool = *POOL_STARTS.get_or_init(|| catch_unwind(rayon::current_num_threads).is_ok());
    if pool {
        rayon::spawn(job);
    } else {
        // If even this fails, the system cannot start a thread; the job is dropped with it.
        let _ = std::thread::Builder::new()
            .name("kds-deferred".into())
            .spawn(job);
    }
}
