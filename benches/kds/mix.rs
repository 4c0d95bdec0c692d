//! The contended mixes (issue 4's, issue 18's T = 4 column), shared by `benches/kds` and
//! `benches/contention.rs`: which sets each thread locks, and what it does while holding one.

use crate::peers::Peer;
use crate::support::Rng;

/// `threads` threads lock sets of `k` distinct resources out of `resources`, each entry
/// exclusive with probability `exclusive_pct` %.
#[derive(Clone, Copy)]
pub struct Mix {
    pub resources: usize,
    pub k: usize,
    pub exclusive_pct: u64,
    pub threads: usize,
}

impl Mix {
    /// `R=8 k=2 x=50% T=2`: the name in reports.
    pub fn param(&self) -> String {
        format!(
            "R={} k={} x={}% T={}",
            self.resources, self.k, self.exclusive_pct, self.threads
        )
    }
}

/// Every mix of R ∈ {8, 64}, k ∈ {2, 4}, x ∈ {10, 50, 100} % and the given thread counts.
pub fn all(threads: &[usize]) -> Vec<Mix> {
    let mut v = Vec::new();
    for resources in [8, 64] {
        for k in [2, 4] {
            for exclusive_pct in [10, 50, 100] {
                for &threads in threads {
                    v.push(Mix {
                        resources,
                        k,
                        exclusive_pct,
                        threads,
                    });
                }
            }
        }
    }
    v
}

/// Busy work while a set is held (about 100 ns).
pub fn hold() {
    for _ in 0..32 {
        std::hint::spin_loop();
    }
}

/// Per thread, 256 random sets of `mix.k` distinct resources out of `res` (the same draw in
/// every bench and run).
pub fn sets<P: Peer>(res: &[P::Res], mix: Mix) -> Vec<Vec<P::Set>> {
    (0..mix.threads)
        .map(|t| {
            let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15 ^ ((t as u64 + 1) * 0x1234_5678));
            (0..256)
                .map(|_| {
                    let mut picked: Vec<usize> = Vec::new();
                    while picked.len() < mix.k {
                        let r = rng.below(mix.resources as u64) as usize;
                        if !picked.contains(&r) {
                            picked.push(r);
                        }
                    }
                    let entries: Vec<(&P::Res, bool)> = picked
                        .iter()
                        .map(|&r| (&res[r], rng.below(100) < mix.exclusive_pct))
                        .collect();
                    P::set(&entries)
                })
                .collect()
        })
        .collect()
}
