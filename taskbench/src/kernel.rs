//! Task Bench's compute-bound kernel: 64 doubles, each iteration `a = a * a + a` on every one
//! (2 × 64 FLOPs), then their product (64 more). Task Bench builds it with AVX2 and FMA where
//! the CPU has them (16 four-wide fused multiply-adds per iteration); so does this one, chosen
//! at run time, so that a task of N iterations is the same work for kds as for the peers.

use std::hint::black_box;

/// What a task computes (Task Bench's `-kernel`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// Nothing: the per-task overhead alone.
    Empty,
    /// `iterations` rounds of the compute-bound loop.
    ComputeBound {
        /// Rounds of 64 multiply-adds.
        iterations: u64,
    },
}

impl Kernel {
    /// FLOPs per task, as Task Bench counts them.
    pub fn flops(self) -> u64 {
        match self {
            Kernel::Empty => 0,
            Kernel::ComputeBound { iterations } => 2 * 64 * iterations + 64,
        }
    }

    /// Runs the kernel once; returns its result (so that it is not optimized away).
    pub fn run(self) -> f64 {
        match self {
            Kernel::Empty => 0.0,
            Kernel::ComputeBound { iterations } => black_box(compute(black_box(iterations))),
        }
    }
}

/// Which instructions the compute-bound kernel uses on this machine.
pub fn isa() -> &'static str {
    if fma_available() {
        "avx2+fma (as Task Bench's -mavx2 -mfma build)"
    } else if cfg!(target_arch = "aarch64") {
        "scalar fused multiply-add (aarch64)"
    } else {
        "scalar multiply and add (no AVX2/FMA: compare with a Task Bench built the same way)"
    }
}

fn fma_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

fn compute(iterations: u64) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if fma_available() {
        // SAFETY: the CPU has AVX2 and FMA (checked just above), all that `compute_fma`'s
        // target features require.
        return unsafe { compute_fma(iterations) };
    }
    let mut a = [1.2345f64; 64];
    for _ in 0..iterations {
        for x in a.iter_mut() {
            *x = if cfg!(target_arch = "aarch64") {
                x.mul_add(*x, *x)
            } else {
                *x * *x + *x
            };
        }
    }
    a.iter().product()
}

/// 16 vectors of 4 doubles, each iteration one fused multiply-add on each.
///
/// # Safety
///
/// The CPU must have AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn compute_fma(iterations: u64) -> f64 {
    use std::arch::x86_64::{_mm256_fmadd_pd, _mm256_set_pd, _mm256_storeu_pd};
    let mut a = [_mm256_set_pd(1.0, 2.0, 3.0, 4.0); 16];
    for _ in 0..iterations {
        for v in a.iter_mut() {
            *v = _mm256_fmadd_pd(*v, *v, *v);
        }
    }
    let mut out = [0f64; 64];
    for (i, v) in a.iter().enumerate() {
        // SAFETY: `out[4 * i..]` has room for the 4 doubles written (i < 16, 64 doubles).
        unsafe { _mm256_storeu_pd(out.as_mut_ptr().add(4 * i), *v) };
    }
    out.iter().product()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flops_and_results() {
        assert_eq!(Kernel::ComputeBound { iterations: 10 }.flops(), 1344);
        assert_eq!(Kernel::Empty.flops(), 0);
        // One iteration of x*x + x from (1, 2, 3, 4) on the vector path, or 1.2345 on the
        // scalar one: finite and not the starting product.
        let r = Kernel::ComputeBound { iterations: 1 }.run();
        assert!(r.is_finite() && r > 1.0, "{r}");
    }
}
