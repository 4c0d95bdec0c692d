//! The one place the engine gets its atomics, cells, thread parking and epoch from.
//!
//! Under `--cfg kds_loom` (plus `--cfg crossbeam_loom` for the epoch crate) everything here is
//! loom's model-checked version; otherwise it is std's. Engine code imports from `crate::sync`
//! only, so the same code runs under the model checker (house style, after tokio's
//! `loom/mod.rs` and crossbeam-epoch's `primitive` module).

#[cfg(not(kds_loom))]
mod imp {
    pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
    pub(crate) use std::sync::Mutex;
    pub(crate) use std::thread::{self, Thread};

    /// Park for at most `dur` (spurious wake-ups allowed; callers re-check).
    #[inline]
    pub(crate) fn park_timeout(dur: std::time::Duration) {
        std::thread::park_timeout(dur);
    }

    /// Spin-loop hint; loom's version yields to the scheduler.
    #[inline]
    pub(crate) fn spin_loop() {
        std::hint::spin_loop();
    }

    /// `UnsafeCell` with loom's closure-based API, so the same code compiles under loom.
    #[derive(Debug)]
    pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        pub(crate) const fn new(data: T) -> UnsafeCell<T> {
            UnsafeCell(std::cell::UnsafeCell::new(data))
        }
        #[inline]
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }

    macro_rules! kds_thread_local {
        ($($tt:tt)*) => { std::thread_local!($($tt)*); };
    }
    pub(crate) use kds_thread_local as thread_local;
}

#[cfg(kds_loom)]
mod imp {
    pub(crate) use loom::cell::UnsafeCell;
    pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
    pub(crate) use loom::sync::Mutex;
    pub(crate) use loom::thread::{self, Thread};

    /// Loom has no timed park: a yield, which callers treat as a spurious wake-up.
    #[inline]
    pub(crate) fn park_timeout(_dur: std::time::Duration) {
        loom::thread::yield_now();
    }

    /// Spin-loop hint: under loom, a yield so the model explores other threads.
    #[inline]
    pub(crate) fn spin_loop() {
        loom::thread::yield_now();
    }

    macro_rules! kds_thread_local {
        ($($tt:tt)*) => { loom::thread_local!($($tt)*); };
    }
    pub(crate) use kds_thread_local as thread_local;
}

pub(crate) use imp::*;

/// Reference counting stays std's even under loom: std's `Arc` is well tested, and only std's
/// supports `Arc<dyn Trait>`, which the grant delivery queue needs.
pub(crate) use std::sync::Arc;

/// Epoch-based reclamation (crossbeam-epoch, which has its own loom mode).
pub(crate) use crossbeam_epoch as epoch;

/// Hands this thread's deferred frees (a released multi-resource set gives its resources back
/// through the epoch collector) to the global collector, where any thread can run them. A
/// thread that goes idle after kds work calls it (a `Worker` before it blocks, a pool job
/// after its callback): otherwise its last few dozen deferred frees, and the resources they
/// hold, would wait in its thread-local bag until it next touches kds. A no-op (one pin) when
/// the bag is empty.
pub(crate) fn hand_off_deferred_frees() {
    epoch::pin().flush();
}
