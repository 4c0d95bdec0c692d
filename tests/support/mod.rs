//! Helpers shared by the behaviour suite, the fuzz harness (`kds-fuzzing` re-exports them as
//! `kds_fuzzing::support`) and the torture run (`kds-torture`): a pseudo-random generator,
//! shadow counters that check mutual exclusion, and the merging of a set's modes. Written
//! once, here, inside the published package so that its tests build from it.
#![allow(dead_code)] // each user takes what it needs

use std::sync::atomic::{AtomicIsize, Ordering::SeqCst};

/// xorshift64*: a small, fixed, dependency-free pseudo-random generator. The same seed gives
/// the same sequence on every machine, so generated inputs and schedules can be replayed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed` (any value; zero is mapped to a nonzero state).
    pub fn new(seed: u64) -> Rng {
        Rng(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

/// A set's resources and modes as named, `(resource index, exclusive)`, merged as a set merges
/// them: each resource once, exclusive winning (spec rule 11), in index order.
pub fn merged_modes(named: impl IntoIterator<Item = (usize, bool)>) -> Vec<(usize, bool)> {
    let mut modes: Vec<(usize, bool)> = named.into_iter().collect();
    modes.sort();
    let mut merged: Vec<(usize, bool)> = Vec::with_capacity(modes.len());
    for (i, exclusive) in modes {
        match merged.last_mut() {
            Some(last) if last.0 == i => last.1 |= exclusive,
            _ => merged.push((i, exclusive)),
        }
    }
    merged
}

/// Shadow counters of a group of resources: per resource, the number of shared holders, or
/// -1 while an exclusive holder has it. A granted set enters them and leaves them before its
/// release; a grant that breaks mutual exclusion (spec rule 2) is caught at its entry.
pub struct Shadow(Vec<AtomicIsize>);

impl Shadow {
    /// Counters for `n` resources, all free.
    pub fn new(n: usize) -> Shadow {
        Shadow((0..n).map(|_| AtomicIsize::new(0)).collect())
    }

    /// A granted set with `modes` (merged: see [`merged_modes`]) starts using its resources.
    /// `Err` names each resource it may not hold now.
    pub fn enter(&self, modes: &[(usize, bool)]) -> Result<(), String> {
        let mut wrong = Vec::new();
        for &(i, exclusive) in modes {
            let counter = &self.0[i];
            if exclusive {
                let was = counter.swap(-1, SeqCst);
                if was != 0 {
                    wrong.push(format!(
                        "exclusive grant of resource {i} while held ({was})"
                    ));
                }
            } else if counter.fetch_add(1, SeqCst) < 0 {
                wrong.push(format!(
                    "shared grant of resource {i} while held exclusively"
                ));
            }
        }
        if wrong.is_empty() {
            Ok(())
        } else {
            Err(wrong.join("; "))
        }
    }

    /// The set that entered with `modes` stops using its resources (before its release).
    pub fn leave(&self, modes: &[(usize, bool)]) {
        for &(i, exclusive) in modes {
            if exclusive {
                self.0[i].store(0, SeqCst);
            } else {
                self.0[i].fetch_sub(1, SeqCst);
            }
        }
    }

    /// `Err` names each resource whose counter is not back at 0 (a holder never left).
    pub fn all_free(&self) -> Result<(), String> {
        let held: Vec<String> = (0..self.0.len())
            .filter(|&i| self.0[i].load(SeqCst) != 0)
            .map(|i| format!("shadow counter of resource {i} not back to 0"))
            .collect();
        if held.is_empty() {
            Ok(())
        } else {
            Err(held.join("; "))
        }
    }
}
