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
use std::cell::RefCell;
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
    remaining: AtomicU64,
    main: Thread,
}

impl Shared {
    fn buffer(&self, t: usize, p: usize) -> &Buffer {
        &self.buffers[slot(self.mapping, self.graph.width, t, p)]
    }

    /// Task (t, p): check the inputs, run the kernel, write the output.
    fn task(&self, t: usize, p: usize) {
        thread_local! {
            static DEPS: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
        }
        DEPS.with(|deps| {
            let mut deps = deps.borrow_mut();
            self.graph.dependencies(t, p, &mut deps);
            let mut bad = 0;
            for &q in deps.iter() {
                let b = self.buffer(t + 1, q); // step t − 1's parity
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
        });
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

    /// One task done (its set released): the last one wakes the submitting thread.
    fn finish(&self) {
        // AcqRel: the last task's Acquire sees every earlier task's writes (their Release),
        // and the submitter's Acquire load sees them all.
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.main.unpark();
        }
    }
}

/// The buffer (and resource) of point `p` at step `t`.
fn slot(mapping: Buffers, width: usize, t: usize, p: usize) -> usize {
    match mapping {
        Buffers::Double => (t % 2) * width + p,
        Buffers::Single => p,
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
    run_mapped::<E>(graph, kernel, runner, Buffers::Double)
}

/// [`run`] with a chosen buffer mapping (tests use [`Buffers::Single`] to see the check fail).
pub fn run_mapped<E: Engine>(
    graph: &Graph,
    kernel: Kernel,
    runner: Runner,
    mapping: Buffers,
) -> Result<Outcome, kds::Error> {
    let width = graph.width;
    let slots = match mapping {
        Buffers::Double => 2 * width,
        Buffers::Single => width,
    };
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
        remaining: AtomicU64::new(tasks),
        main: thread::current(),
    });
    let mut deps = Vec::new();
    let mut submitted = 0;
    let start = Instant::now();
    let mut outcome = Ok(());
    'submit: for t in 0..graph.steps {
        for p in graph.points(t) {
            graph.dependencies(t, p, &mut deps);
            let mut set = ResourceSet::new().exclusive(&resources[slot(mapping, width, t, p)]);
            for &q in &deps {
                let input = slot(mapping, width, t + 1, q); // step t − 1's
                if mapping == Buffers::Double || q != p {
                    set = set.shared(&resources[input]);
                }
            }
            let dispatch = match runner {
                Runner::Pool => Dispatch::Pool,
                Runner::Workers(_) => Dispatch::Worker(workers[p % workers.len()].clone()),
            };
            let task = Arc::clone(&shared);
            let granted = set.on_grant(dispatch, move |guard| {
                task.task(t, p);
                drop(guard);
                task.finish();
            });
            if let Err(e) = granted {
                outcome = Err(e);
                break 'submit;
            }
            submitted += 1;
        }
    }
    let submit = start.elapsed();
    if submitted < tasks {
        // Refused midway: wait only for what was submitted.
        // AcqRel: as in `finish`.
        if shared
            .remaining
            .fetch_sub(tasks - submitted, Ordering::AcqRel)
            == tasks - submitted
        {
            shared.main.unpark();
        }
    }
    // Acquire: see every task's writes (see `finish`).
    while shared.remaining.load(Ordering::Acquire) != 0 {
        thread::park();
    }
    let elapsed = start.elapsed();
    outcome?;
    // Every point of the last step holds its own output: no task lost or run twice.
    let last = graph.steps - 1;
    let mut violations = shared.violations.load(Ordering::Relaxed);
    for p in graph.points(last) {
        let b = shared.buffer(last, p);
        // Relaxed: every task has finished (the Acquire load above).
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
