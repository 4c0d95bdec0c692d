//! The memory soak: a counting global allocator that tracks the live heap, and the judgement
//! of whether it keeps growing once the run is warm.
//!
//! A leak in kds (a reference cycle through a client's waker or callback, a request nobody
//! frees) grows the live heap with every operation that hits it; the memory in flight (queued
//! requests, epoch garbage, wake-up queues) is bounded by the number of threads and
//! resources. So after a warm-up the live heap of a correct engine levels off, and a leaking
//! one climbs: [`judge`] compares the median of the first and last quarters of the samples
//! taken after warm-up.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};

/// Bytes allocated and not yet freed, by anyone in the process.
static LIVE: AtomicIsize = AtomicIsize::new(0);

/// The global allocator of `kds-torture`: `System`, counting live bytes.
pub struct Counting;

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so
// `System`'s guarantees carry over; the counting is one atomic add, which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded from our caller, who upholds `GlobalAlloc::alloc`'s contract.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            add(layout.size() as isize);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            add(layout.size() as isize);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, i.e. from `System`, with this layout.
        unsafe { System.dealloc(ptr, layout) };
        add(-(layout.size() as isize));
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded from our caller, who upholds `GlobalAlloc::realloc`'s contract.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            add(new_size as isize - layout.size() as isize);
        }
        p
    }
}

fn add(bytes: isize) {
    // Relaxed: a statistic; no other memory is published through it.
    LIVE.fetch_add(bytes, Relaxed);
}

/// The live heap now, in bytes.
pub fn live() -> isize {
    // Relaxed: see `add`.
    LIVE.load(Relaxed)
}

/// How much the live heap may grow between the first and the last quarter after warm-up
/// before the run counts as leaking: 256 KiB, or a quarter of the warm level if that is more
/// (in-flight memory moves with the scheduler's mood).
pub fn allowance(warm: isize) -> isize {
    (256 << 10).max(warm / 4)
}

/// The verdict on a run's samples of the live heap (in time order, one per tick).
#[derive(Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Median of the first quarter after warm-up, bytes.
    pub warm: isize,
    /// Median of the last quarter, bytes.
    pub last: isize,
    /// Whether `last` exceeds `warm` by more than [`allowance`].
    pub growing: bool,
}

/// Judges `samples` (the first `warmup` of them are ignored); `None` if fewer than 8 samples
/// remain after warm-up, too few to say.
pub fn judge(samples: &[isize], warmup: usize) -> Option<Verdict> {
    let after = samples.get(warmup..).filter(|s| s.len() >= 8)?;
    let quarter = after.len() / 4;
    let median = |part: &[isize]| {
        let mut v = part.to_vec();
        v.sort_unstable();
        v[v.len() / 2]
    };
    let warm = median(&after[..quarter]);
    let last = median(&after[after.len() - quarter..]);
    Some(Verdict {
        warm,
        last,
        growing: last - warm > allowance(warm),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_level_heap_with_noise_is_not_growing() {
        let samples: Vec<isize> = (0..100).map(|i| 1_000_000 + (i * 7919 % 50_000)).collect();
        let v = judge(&samples, 10).unwrap();
        assert!(!v.growing, "{v:?}");
    }

    #[test]
    fn a_steady_climb_is_growing() {
        // 500 bytes per operation at 1,000 operations per tick.
        let samples: Vec<isize> = (0..100).map(|i| 1_000_000 + i * 500_000).collect();
        let v = judge(&samples, 10).unwrap();
        assert!(v.growing, "{v:?}");
    }

    #[test]
    fn a_warm_up_climb_is_forgiven() {
        let samples: Vec<isize> = (0..100).map(|i| 1_000_000 * i.min(10)).collect();
        assert!(!judge(&samples, 10).unwrap().growing);
        assert!(
            judge(&samples[..15], 10).is_none(),
            "too few samples to judge"
        );
    }
}
