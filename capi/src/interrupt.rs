//! Interrupting `kds_waitall` from another thread: this library's stand-in for the kernel's
//! signals (an extension; the seed's `kds_waitall` returned `-ERESTARTSYS` on a signal).
//!
//! Every thread has one [`kds::Interrupt`], which each of its `kds_waitall` calls waits on.
//! `kds_interrupt_get` hands out a counted reference to the calling thread's interrupt;
//! another thread `kds_interrupt_raise`s it: the blocked `kds_waitall` (or the next one that
//! has to block) returns `KDS_ERR(-EINTR)` with nothing left queued, which consumes the
//! interrupt. A wait that is granted without blocking leaves a raised interrupt pending, like
//! a pending signal. `kds_interrupt_clear` withdraws it.

use crate::abi::no_unwind;

thread_local! {
    /// The calling thread's interrupt.
    static THREAD_INTERRUPT: kds::Interrupt = kds::Interrupt::new();
}

/// Runs `f` with the calling thread's interrupt (a fresh one while the thread's locals are
/// being destroyed).
#[inline]
pub(crate) fn with_thread_interrupt<T>(f: impl FnOnce(&kds::Interrupt) -> T) -> T {
    match THREAD_INTERRUPT.try_with(|i| i as *const kds::Interrupt) {
        // SAFETY: this thread's local lives until the thread's locals are destroyed, which
        // cannot happen during this call on this thread (`try_with` answered: not yet).
        Ok(mine) => f(unsafe { &*mine }),
        Err(_) => f(&kds::Interrupt::new()),
    }
}

/// `struct kds_interrupt`: a counted reference to one thread's interrupt (opaque in C).
pub struct kds_interrupt {
    interrupt: kds::Interrupt,
}

/// `struct kds_interrupt *kds_interrupt_get(void)`: a new reference to the calling thread's
/// interrupt, for another thread to raise; give it back with `kds_interrupt_put`. It stays
/// valid after the thread exits (raising it then does nothing). NULL if the thread is exiting.
#[no_mangle]
pub extern "C" fn kds_interrupt_get() -> *mut kds_interrupt {
    no_unwind(std::ptr::null_mut(), || {
        THREAD_INTERRUPT
            .try_with(|i| {
                Box::into_raw(Box::new(kds_interrupt {
                    interrupt: i.clone(),
                }))
            })
            .unwrap_or(std::ptr::null_mut())
    })
}

/// `void kds_interrupt_put(struct kds_interrupt *intr)`: give a reference back. NULL is
/// ignored.
///
/// # Safety
///
/// `intr` is NULL or was returned by `kds_interrupt_get` and not yet put; nothing uses it
/// during or after the call.
#[no_mangle]
pub unsafe extern "C" fn kds_interrupt_put(intr: *mut kds_interrupt) {
    no_unwind((), || {
        if !intr.is_null() {
            // SAFETY: made by `Box::into_raw` in `kds_interrupt_get`, put once (contract).
            drop(unsafe { Box::from_raw(intr) });
        }
    })
}

/// `void kds_interrupt_raise(struct kds_interrupt *intr)`: interrupt the owning thread's
/// blocked `kds_waitall`, or its next one that has to block. NULL is ignored.
///
/// # Safety
///
/// `intr` is NULL or a reference from `kds_interrupt_get` not yet put.
#[no_mangle]
pub unsafe extern "C" fn kds_interrupt_raise(intr: *mut kds_interrupt) {
    no_unwind((), || {
        // SAFETY: NULL or a live box (caller's contract); only shared access.
        if let Some(intr) = unsafe { intr.as_ref() } {
            intr.interrupt.interrupt();
        }
    })
}

/// `void kds_interrupt_clear(struct kds_interrupt *intr)`: withdraw a raised interrupt that
/// no wait has consumed yet. NULL is ignored.
///
/// # Safety
///
/// `intr` is NULL or a reference from `kds_interrupt_get` not yet put.
#[no_mangle]
pub unsafe extern "C" fn kds_interrupt_clear(intr: *mut kds_interrupt) {
    no_unwind((), || {
        // SAFETY: NULL or a live box (caller's contract); only shared access.
        if let Some(intr) = unsafe { intr.as_ref() } {
            intr.interrupt.clear();
        }
    })
}
