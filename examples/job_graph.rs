//! A job graph on kds: `cargo run --release --example job_graph`.
//!
//! A 1-D heat-diffusion stencil over `CELLS` cells for `STEPS` steps, as a task runtime would
//! run it: one job per cell and step, each taking the cell's buffer of its step exclusive and
//! the neighbours' buffers of the previous step shared, submitted in program order with
//! `on_grant(Dispatch::Pool, ..)`. Nothing else orders the jobs: per-resource FIFO order turns
//! program order into the dependency order (a reader waits for the writer submitted before it,
//! a writer for the readers submitted before it), so the parallel result equals the
//! sequential one, bit for bit. Each cell has two buffers (one per step parity), as in any
//! double-buffered stencil: with one, a cell's writer would be queued before the later
//! cells of the same step that must still read its old value. `docs/taskgraph.md` has the
//! argument, and `kds-taskbench` the same pattern on Task Bench's graphs.

use kds::{Dispatch, Resource, ResourceSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

const CELLS: usize = 16;
const STEPS: usize = 200;

/// The new temperature of a cell from its neighbourhood (clipped at the ends).
fn diffuse(left: f64, here: f64, right: f64) -> f64 {
    here + 0.25 * (left - 2.0 * here + right)
}

fn initial(i: usize) -> f64 {
    if i == CELLS / 2 {
        100.0
    } else {
        0.0
    }
}

/// Buffers shared by the jobs: `[parity][cell]`, an f64 in an atomic (no `unsafe` needed; kds
/// orders every access, so Relaxed suffices).
struct Grid {
    cells: [Vec<AtomicU64>; 2],
    remaining: AtomicUsize,
    main: thread::Thread,
}

impl Grid {
    fn get(&self, step: usize, i: usize) -> f64 {
        // Relaxed: the job holds this buffer through kds, whose grant ordered the writer first.
        f64::from_bits(self.cells[step % 2][i].load(Ordering::Relaxed))
    }
    fn set(&self, step: usize, i: usize, v: f64) {
        // Relaxed: as in `get`.
        self.cells[step % 2][i].store(v.to_bits(), Ordering::Relaxed);
    }
}

fn main() -> Result<(), kds::Error> {
    // One resource per buffer: buffers[parity][cell].
    let buffers: [Vec<Resource>; 2] = [
        (0..CELLS).map(|_| Resource::new()).collect(),
        (0..CELLS).map(|_| Resource::new()).collect(),
    ];
    let grid = Arc::new(Grid {
        cells: [
            (0..CELLS)
                .map(|i| AtomicU64::new(initial(i).to_bits()))
                .collect(),
            (0..CELLS).map(|_| AtomicU64::new(0)).collect(),
        ],
        remaining: AtomicUsize::new(CELLS * STEPS),
        main: thread::current(),
    });

    // Submit every job in program order; none blocks the submitting thread.
    for step in 1..=STEPS {
        for i in 0..CELLS {
            let (lo, hi) = (i.saturating_sub(1), (i + 1).min(CELLS - 1));
            let mut set = ResourceSet::new().exclusive(&buffers[step % 2][i]);
            for neighbour in &buffers[(step - 1) % 2][lo..=hi] {
                set = set.shared(neighbour);
            }
            let grid = grid.clone();
            set.on_grant(Dispatch::Pool, move |guard| {
                let prev = step - 1;
                let v = diffuse(grid.get(prev, lo), grid.get(prev, i), grid.get(prev, hi));
                grid.set(step, i, v);
                // This job's buffers go to the jobs queued behind it.
                drop(guard);
                // AcqRel: the last job sees every job's writes, and the main thread (Acquire)
                // sees them all.
                if grid.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                    grid.main.unpark();
                }
            })?;
        }
    }
    // Wait for the graph to drain.
    // Acquire: see every job's writes.
    while grid.remaining.load(Ordering::Acquire) != 0 {
        thread::park();
    }

    // The same computation, sequentially.
    let mut expected: Vec<f64> = (0..CELLS).map(initial).collect();
    for _ in 1..=STEPS {
        expected = (0..CELLS)
            .map(|i| {
                let (lo, hi) = (i.saturating_sub(1), (i + 1).min(CELLS - 1));
                diffuse(expected[lo], expected[i], expected[hi])
            })
            .collect();
    }
    for (i, want) in expected.iter().enumerate() {
        let got = grid.get(STEPS, i);
        assert_eq!(got.to_bits(), want.to_bits(), "cell {i}: {got} != {want}");
    }
    println!(
        "job_graph: {} jobs over {} buffers ran in dependency order on the pool; \
         the result equals the sequential one (centre cell {:.3})",
        CELLS * STEPS,
        2 * CELLS,
        grid.get(STEPS, CELLS / 2)
    );
    Ok(())
}
