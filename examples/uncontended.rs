//! Quick side-by-side figures, lock-free engine vs the mutex reference in the same run:
//! uncontended acquire + release of a set of k exclusive resources on one thread, and the same
//! (k = 2) on T threads that share no resource (where a global lock convoys).
//!
//! `cargo run --release --example uncontended [-- ROUNDS]`
//!
//! For each k in 1, 2, 4, 8 and each engine it times batches of the one-liner,
//! `ResourceSet::new().exclusive(..)…wait()` + drop, on one thread and prints the median of 15
//! batches in ns per acquire+release, and the ratio lock-free / reference (below 1 means the
//! lock-free engine is faster). The full benchmark suite with criterion and counters is
//! `cargo bench` (`benches/`).

use kds::generic::{Resource, ResourceSet};
use kds::reference::Reference;
use kds::{Engine, LockFree};
use std::hint::black_box;
use std::time::Instant;

fn median_ns<E: Engine>(k: usize, rounds: u32) -> f64 {
    let resources: Vec<Resource<E>> = (0..k).map(|_| Resource::new()).collect();
    let one_liner = || {
        resources
            .iter()
            .fold(ResourceSet::new(), |s, r| s.exclusive(r))
            .wait()
    };
    let mut batches: Vec<f64> = (0..15)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..rounds {
                drop(black_box(one_liner().expect("uncontended wait")));
            }
            start.elapsed().as_nanos() as f64 / f64::from(rounds)
        })
        .collect();
    batches.sort_by(f64::total_cmp);
    batches[batches.len() / 2]
}

/// Million acquire+release per second in total, T threads each on its own k resources.
fn disjoint_mops<E: Engine>(threads: usize, k: usize, rounds: u32) -> f64 {
    let resources: Vec<Vec<Resource<E>>> = (0..threads)
        .map(|_| (0..k).map(|_| Resource::new()).collect())
        .collect();
    let sets: Vec<ResourceSet<'_, E>> = resources
        .iter()
        .map(|mine| mine.iter().fold(ResourceSet::new(), |s, r| s.exclusive(r)))
        .collect();
    let start = Instant::now();
    std::thread::scope(|scope| {
        for set in &sets {
            scope.spawn(move || {
                for _ in 0..rounds {
                    drop(black_box(set.wait().expect("disjoint wait")));
                }
            });
        }
    });
    (threads as f64 * f64::from(rounds)) / start.elapsed().as_secs_f64() / 1e6
}

fn median(mut runs: Vec<f64>) -> f64 {
    runs.sort_by(f64::total_cmp);
    runs[runs.len() / 2]
}

fn main() {
    let rounds: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    // Warm up both engines (thread-locals, epoch, allocator).
    median_ns::<LockFree>(4, rounds / 10);
    median_ns::<Reference>(4, rounds / 10);
    println!("uncontended acquire+release, all exclusive, median of 15 batches of {rounds}");
    println!(
        "{:>3} {:>14} {:>14} {:>8}",
        "k", "lock-free ns", "reference ns", "ratio"
    );
    for k in [1, 2, 4, 8] {
        let lf = median_ns::<LockFree>(k, rounds);
        let rf = median_ns::<Reference>(k, rounds);
        println!("{k:>3} {lf:>14.1} {rf:>14.1} {:>8.2}", lf / rf);
    }

    println!();
    println!("disjoint sets of k = 2, T threads, median of 5 runs of {rounds} per thread");
    println!(
        "{:>3} {:>14} {:>14} {:>8}",
        "T", "lock-free Mops", "reference Mops", "ratio"
    );
    for t in [1, 2, 4, 8] {
        let lf = median(
            (0..5)
                .map(|_| disjoint_mops::<LockFree>(t, 2, rounds / 4))
                .collect(),
        );
        let rf = median(
            (0..5)
                .map(|_| disjoint_mops::<Reference>(t, 2, rounds / 4))
                .collect(),
        );
        println!("{t:>3} {lf:>14.2} {rf:>14.2} {:>8.2}", lf / rf);
    }
}
