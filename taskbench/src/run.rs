//! Runs a task graph on kds: one resource set per task, submitted in program order.
//!
//! Each point keeps two output buffers, one per step parity, and each buffer is a kds
//! resource. Task (t, p) takes its own buffer of step t exclusive and the buffers of step t − 1
//! it reads shared, and is submitted with `on_grant`; its callback runs the kernel on a pool
//! thread or a `Worker`. Per-resource FIFO order does the rest: the writer of (p, t) waits for
//! the readers of (p, t − 2) submitted before it (the buffer it overwrites) and the readers of
//! (p, t) wait for it (`docs/taskgraph.md`).
//!
//! Like Task Bench's own check, each task compares what it reads with what its dependencies
//! wrote (their step and point): a set granted out of order reads a buffer of the wrong step,
//! and the run reports it.

use crate::graph::Graph;
use crate::kernel::Kernel;
use kds::generic::{Resource, ResourceSet};
use kds::{Dispatch, Engine, Worker};
use smallvec::SmallVec;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

/// Where task callbacks run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runner {
    /// rayon's global pool (`Dispatch::Pool`); its size is the worker count.
    Pool,
    /// This many kds `Worker`s (`Dispatch::Worker`); point p's tasks go to worker p mod n.
    Workers(usize),
}

/// How many output buffers (resources) each point has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Buffers {
    /// One per step parity: what the graph needs (the driver's mapping).
    Double,
    /// One: a wrong mapping, for tests of the check. The writer of (p, t) is submitted before
    /// the readers of (p, t − 1) that come after it in the step, so they read step t's output
    /// and the check must report it.
    Single,
}

impl Buffers {
    /// Buffers (resources) per point.
    fn per_point(self) -> usize {
        match self {
            Buffers::Double => 2,
            Buffers::Single => 1,
        }
    }
}

/// What a run did.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// From the first submission to the end of the last task.
    pub elapsed: Duration,
    /// From the first submission to the last (the submitting thread's share of `elapsed`).
    pub submit: Duration,
    /// Tasks run.
    pub tasks: u64,
    /// Dependencies (edges) in the graph.
    pub edges: u64,
    /// FLOPs of all tasks together.
    pub flops: u64,
    /// Reads that saw another step's or point's output, and tasks run twice or never: 0 in
    /// a correct schedule.
    pub violations: u64,
}

/// One output buffer: the (step, point) of the task that last wrote it.
struct Buffer {
    step: AtomicI64,
    point: AtomicI64,
}

struct Shared {
    graph: Graph,
    kernel: Kernel,
    /// `2 * width` buffers, parity × point (or `width`, with [`Buffers::Single`]).
    buffers: Vec<Buffer>,
    mapping: Buffers,
    violations: AtomicU64,
    /// Tasks finished.
    done: AtomicU64,
    /// The `done` count at which the submitting thread wants waking (`u64::MAX`: none).
    wake_at: AtomicU64,
    main: Thread,
}

impl Shared {
    fn buffer(&self, t: usize, p: usize) -> &Buffer {
        &self.buffers[slot(self.mapping, self.graph.width, t, p)]
    }

    /// Task (t, p), reading `deps` (its dependencies, as submitted): check the inputs, run
    /// the kernel, write the output.
    fn task(&self, t: usize, p: usize, deps: &[u32]) {
        let mut bad = 0;
        for &q in deps {
            // Step t − 1's buffer (the same parity as t + 1's).
            let b = self.buffer(t + 1, q as usize);
            // Relaxed: kds orders this read after the writer's release (the grant).
            let seen = (
                b.step.load(Ordering::Relaxed),
                b.point.load(Ordering::Relaxed),
            );
            if seen != (t as i64 - 1, q as i64) {
                bad += 1;
            }
        }
        if bad > 0 {
            // Relaxed: a count read after every task has finished (see `finish`).
            self.violations.fetch_add(bad, Ordering::Relaxed);
        }
        std::hint::black_box(self.kernel.run());
        let out = self.buffer(t, p);
        // The buffer must hold step t − 2's output (or nothing, if the point was not there
        // yet): else two tasks wrote it out of order.
        // Relaxed: as above, kds orders the accesses to one buffer.
        let before = out.step.swap(t as i64, Ordering::Relaxed);
        let expected = match t.checked_sub(2) {
            Some(s) if self.graph.points(s).contains(&p) => s as i64,
            _ => -1,
        };
        if before != expected {
            // Relaxed: as above.
            self.violations.fetch_add(1, Ordering::Relaxed);
        }
        // Relaxed: as above.
        out.point.store(p as i64, Ordering::Relaxed);
    }

    /// One task done (its set released): wakes the submitting thread if it waits for this
    /// count.
    fn finish(&self) {
        // SeqCst: with the SeqCst store of `wake_at` and load of `done` in `wait_for`, one of
        // the two sides sees the other (no lost wake-up); the RMW also publishes this task's
        // writes to the submitter's load.
        let done = self.done.fetch_add(1, Ordering::SeqCst) + 1;
        // SeqCst: see above.
        if done == self.wake_at.load(Ordering::SeqCst) {
            self.main.unpark();
        }
    }

    /// Blocks the submitting thread until `count` tasks have finished.
    fn wait_for(&self, count: u64) {
        // SeqCst: see `finish`.
        self.wake_at.store(count, Ordering::SeqCst);
        // SeqCst: see `finish`; it also sees the finished tasks' writes.
        while self.done.load(Ordering::SeqCst) < count {
            thread::park();
        }
        // Relaxed: only `finish` reads it, and a stale value costs at most a spurious unpark.
        self.wake_at.store(u64::MAX, Ordering::Relaxed);
    }
}

/// Submits the graph's tasks in program order: returns how many were submitted, and why
/// not all if so.
fn submit_all<E: Engine>(
    graph: &Graph,
    resources: &[Resource<E>],
    workers: &[Worker],
    shared: &Arc<Shared>,
    options: Options,
) -> (u64, Result<(), kds::Error>) {
    let width = graph.width;
    let mapping = options.mapping;
    let mut deps = Vec::new();
    let mut submitted = 0;
    for t in 0..graph.steps {
        for p in graph.points(t) {
            if let Some(window) = options.window {
                let window = window.max(2);
                // Relaxed: a heuristic; the waits synchronize.
                if submitted - shared.done.load(Ordering::Relaxed) >= window {
                    let target = submitted - window / 2;
                    match options.submitter {
                        Submitter::Caller => shared.wait_for(target),
                        // Acquire: a progress check; the final `wait_for` is what
                        // synchronizes with the tasks for the check.
                        Submitter::PoolThread => {
                            while shared.done.load(Ordering::Acquire) < target {
                                if rayon::yield_now() != Some(rayon::Yield::Executed) {
                                    thread::yield_now();
                                }
                            }
                        }
                    }
                }
            }
            graph.dependencies(t, p, &mut deps);
            let mut set = ResourceSet::new().exclusive(&resources[slot(mapping, width, t, p)]);
            for &q in &deps {
                // Step t − 1's buffer. With one buffer per point, q = p names the task's own
                // resource again: kds merges the two, exclusive winning.
                set = set.shared(&resources[slot(mapping, width, t + 1, q)]);
            }
            let dispatch = match options.runner {
                Runner::Pool => Dispatch::Pool,
                Runner::Workers(_) => Dispatch::Worker(workers[p % workers.len()].clone()),
            };
            let task = Arc::clone(shared);
            let inputs: SmallVec<[u32; 6]> = deps.iter().map(|&q| q as u32).collect();
            let granted = set.on_grant(dispatch, move |guard| {
                task.task(t, p, &inputs);
                drop(guard);
                task.finish();
            });
            if let Err(e) = granted {
                return (submitted, Err(e));
            }
            submitted += 1;
        }
    }
    (submitted, Ok(()))
}

/// The buffer (and resource) of point `p` at step `t`.
fn slot(mapping: Buffers, width: usize, t: usize, p: usize) -> usize {
    match mapping {
        Buffers::Double => (t % 2) * width + p,
        Buffers::Single => p,
    }
}

/// How a run submits its tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// Where the callbacks run.
    pub runner: Runner,
    /// The buffers per point.
    pub mapping: Buffers,
    /// At most this many tasks submitted and not finished: past it, the submitting thread
    /// waits until half of them have finished (as libgomp throttles task creation, and
    /// StarPU's `STARPU_LIMIT_MAX_SUBMITTED_TASKS`). `None`: the whole graph at once.
    pub window: Option<u64>,
    /// Who submits the tasks.
    pub submitter: Submitter,
}

/// The thread that submits a run's tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Submitter {
    /// The calling thread, beside the workers (StarPU's way: one thread more than workers);
    /// throttled, it parks until the tasks in flight have halved.
    Caller,
    /// One of the pool's threads ([`Runner::Pool`] only), as OpenMP's `single` producer:
    /// throttled, it runs tasks itself (`rayon::yield_now`) until they have halved, and
    /// once everything is submitted it works as the others do. No thread more than workers.
    PoolThread,
}

impl Options {
    /// The driver's defaults on `runner`: double buffers, the whole graph submitted at once.
    pub fn on(runner: Runner) -> Options {
        Options {
            runner,
            mapping: Buffers::Double,
            window: None,
            submitter: Submitter::Caller,
        }
    }
}

/// Runs `graph` with `kernel` on engine `E`: submits every task from this thread, in
/// program order, and returns when the last one has finished. Pool runs use rayon's global
/// pool as it is (size it with `rayon::ThreadPoolBuilder::build_global` first).
pub fn run<E: Engine>(
    graph: &Graph,
    kernel: Kernel,
    runner: Runner,
) -> Result<Outcome, kds::Error> {
    run_with::<E>(graph, kernel, Options::on(runner))
}

/// [`run`] with chosen [`Options`] (tests use [`Buffers::Single`] to see the check fail).
pub fn run_with<E: Engine>(
    graph: &Graph,
    kernel: Kernel,
    options: Options,
) -> Result<Outcome, kds::Error> {
    let Options {
        runner,
        mapping,
        submitter,
        ..
    } = options;
    let in_pool = submitter == Submitter::PoolThread;
    if in_pool && runner != Runner::Pool {
        return Err(kds::Error::BadSet("a pool thread submits only to the pool"));
    }
    let width = graph.width;
    let slots = mapping.per_point() * width;
    let resources: Vec<Resource<E>> = (0..slots).map(|_| Resource::new()).collect();
    let workers: Vec<Worker> = match runner {
        Runner::Pool => Vec::new(),
        Runner::Workers(n) => (0..n.max(1))
            .map(|i| Worker::spawn(&format!("taskbench-{i}")))
            .collect::<Result<_, _>>()?,
    };
    let tasks = graph.tasks();
    let shared = Arc::new(Shared {
        graph: *graph,
        kernel,
        buffers: (0..slots)
            .map(|_| Buffer {
                step: AtomicI64::new(-1),
                point: AtomicI64::new(-1),
            })
            .collect(),
        mapping,
        violations: AtomicU64::new(0),
        done: AtomicU64::new(0),
        wake_at: AtomicU64::new(u64::MAX),
        main: thread::current(),
    });
    let start = Instant::now();
    let submission = || submit_all(graph, &resources, &workers, &shared, options);
    let (submitted, outcome) = if in_pool {
        rayon::scope(|_| submission())
    } else {
        submission()
    };
    let submit = start.elapsed();
    // Refused midway: wait only for what was submitted.
    shared.wait_for(submitted);
    let elapsed = start.elapsed();
    outcome?;
    // Every point of the last step holds its own output: no task lost or run twice.
    let last = graph.steps - 1;
    let mut violations = shared.violations.load(Ordering::Relaxed);
    for p in graph.points(last) {
        let b = shared.buffer(last, p);
        // Relaxed: every task has finished (`wait_for` saw them).
        if (
            b.step.load(Ordering::Relaxed),
            b.point.load(Ordering::Relaxed),
        ) != (last as i64, p as i64)
        {
            violations += 1;
        }
    }
    Ok(Outcome {
        elapsed,
        submit,
        tasks,
        edges: graph.edges(),
        flops: tasks * kernel.flops(),
        violations,
    })
}
