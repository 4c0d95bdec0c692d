//! `struct kds_callback`: the user's grant function and where it runs.
//!
//! *Direct* callbacks run on the thread whose call completed the grant ([`kds::Dispatch::Direct`]).
//! *Deferred* callbacks run on a [`kds::Worker`] thread that the callback object owns (the
//! seed used a kernel workqueue): one thread per `kds_callback`, running callbacks one at a
//! time in grant order. `kds_callback_term` drains it: every callback granted before the call
//! has returned when it returns.
//!
//! Draining uses the worker's FIFO order: an empty set is granted at once, so a request for
//! one, dispatched to the worker, is a sentinel that runs after every callback queued before
//! it. The worker's thread id, learnt the same way at init, tells `kds_callback_term` that it
//! is running *on* that worker (inside one of its callbacks), where draining would wait for
//! itself: it then skips the wait.

use crate::abi::{no_unwind, CALLBACK_PRIVATE_WORDS, EFAULT, EINVAL, ENOMEM};
use std::ffi::{c_int, c_void};
use std::mem::{align_of, offset_of, size_of};
use std::ptr::addr_of_mut;
use std::sync::mpsc;
use std::thread::{self, ThreadId};

/// The user's callback: `void (*)(void *callback_parameter, void *callback_extra_parameter)`.
pub type kds_callback_fn = Option<unsafe extern "C" fn(*mut c_void, *mut c_void)>;

/// Marker of a live callback object ("kdsC").
const LIVE: usize = 0x6b64_7343;
/// Marker written by `kds_callback_term` ("kdsc").
const DEAD: usize = 0x6b64_7363;

/// `struct kds_callback`: embed it by value, initialize it with `kds_callback_init`. Its
/// first two fields are the kernel's, readable from C (`cb->user_cb`, `cb->direct`: drivers
/// read them); the rest is `kds_private_`.
#[repr(C)]
pub struct kds_callback {
    /// The user's function (never NULL while live). Public in C, read-only there.
    user_cb: kds_callback_fn,
    /// The `direct` argument of `kds_callback_init`, as given (nonzero: direct dispatch;
    /// what runs where is decided by `deferred`). Public in C, read-only there.
    direct: c_int,
    /// [`LIVE`] between init and term.
    marker: usize,
    /// Deferred dispatch: the worker (a `Box::into_raw`); NULL for direct dispatch.
    deferred: *mut Deferred,
}

const _: () = {
    // The C declaration: `kds_callback_fn user_cb; int direct;` then CALLBACK_PRIVATE_WORDS
    // pointers. The int takes a pointer's room, padding included, on LP64 and ILP32 alike.
    let word = size_of::<*mut ()>();
    assert!(size_of::<kds_callback>() == (2 + CALLBACK_PRIVATE_WORDS) * word);
    assert!(align_of::<kds_callback>() == align_of::<*mut ()>());
    assert!(offset_of!(kds_callback, user_cb) == 0);
    assert!(offset_of!(kds_callback, direct) == word);
    assert!(offset_of!(kds_callback, marker) == 2 * word);
};

/// A deferred callback object's worker.
struct Deferred {
    worker: kds::Worker,
    thread: ThreadId,
}

/// Runs a no-op on `worker` after everything queued on it so far, and returns the id of the
/// worker's thread once it has run; `None` if the worker is gone.
fn sentinel(worker: &kds::Worker) -> Option<ThreadId> {
    let (tx, rx) = mpsc::sync_channel(1);
    // An empty set is granted at once; a worker-dispatched grant is queued on the worker even
    // when this thread is inside a direct callback (only direct callbacks are deferred then).
    let pending = kds::ResourceSet::new()
        .on_grant(kds::Dispatch::Worker(worker.clone()), move |guard| {
            drop(guard);
            let _ = tx.send(thread::current().id());
        })
        .ok()?;
    drop(pending); // dropping a Pending does not cancel it
    rx.recv().ok()
}

/// What `kds_async_waitall` needs from a callback object.
pub(crate) struct Target {
    /// The user's function.
    pub(crate) user_cb: unsafe extern "C" fn(*mut c_void, *mut c_void),
    /// Where it runs.
    pub(crate) dispatch: kds::Dispatch,
}

/// The user function and dispatch of `*cb`, or the errno for why there are none.
///
/// # Safety
///
/// `cb` is NULL or points to a `struct kds_callback` that was initialized (or zero-filled, or
/// terminated) and is not initialized or terminated during the call.
pub(crate) unsafe fn target(cb: *const kds_callback) -> Result<Target, c_int> {
    if cb.is_null() {
        return Err(EFAULT);
    }
    // SAFETY: non-null and readable (caller's contract); only read here.
    let cb = unsafe { &*cb };
    if cb.marker != LIVE {
        return Err(EINVAL);
    }
    let user_cb = cb.user_cb.ok_or(EINVAL)?;
    let dispatch = if cb.deferred.is_null() {
        kds::Dispatch::Direct
    } else {
        // SAFETY: a live deferred object owns this box until `kds_callback_term`, which the
        // caller does not run concurrently.
        kds::Dispatch::Worker(unsafe { &*cb.deferred }.worker.clone())
    };
    Ok(Target { user_cb, dispatch })
}

/// `int kds_callback_init(struct kds_callback *cb, int direct, kds_callback_fn user_cb)`:
/// `direct` nonzero runs `user_cb` on the thread that completes the grant; zero runs it on a
/// worker thread owned by `*cb`. 0, or `-EFAULT` (`cb` NULL), `-EINVAL` (`user_cb` NULL),
/// `-ENOMEM` (no worker thread).
///
/// # Safety
///
/// `cb` is NULL or points to writable storage of a `struct kds_callback` that no other thread
/// uses during the call; `user_cb`, if not NULL, is a function that may be called with the
/// parameters given to `kds_async_waitall` from the thread the dispatch mode says.
#[no_mangle]
pub unsafe extern "C" fn kds_callback_init(
    cb: *mut kds_callback,
    direct: c_int,
    user_cb: kds_callback_fn,
) -> c_int {
    no_unwind(-EFAULT, || {
        if cb.is_null() {
            return -EFAULT;
        }
        if user_cb.is_none() {
            return -EINVAL;
        }
        let deferred = if direct != 0 {
            std::ptr::null_mut()
        } else {
            let Ok(worker) = kds::Worker::spawn("kds-callback") else {
                return -ENOMEM;
            };
            let Some(thread) = sentinel(&worker) else {
                return -ENOMEM;
            };
            Box::into_raw(Box::new(Deferred { worker, thread }))
        };
        // SAFETY: `cb` is valid for writes and ours during the call (caller's contract). Raw
        // writes: the old contents may be uninitialized.
        unsafe {
            addr_of_mut!((*cb).user_cb).write(user_cb);
            addr_of_mut!((*cb).direct).write(direct);
            addr_of_mut!((*cb).deferred).write(deferred);
            addr_of_mut!((*cb).marker).write(LIVE);
        }
        0
    })
}

/// `void kds_callback_term(struct kds_callback *cb)`: for a deferred object, wait until every
/// callback granted before the call has run (unless called from one of them), then let the
/// worker thread go. Requests still pending keep their own reference to the worker: their
/// callbacks still run when granted (release them first to be sure none does). NULL, a
/// terminated or a zero-filled struct is ignored.
///
/// # Safety
///
/// `cb` is NULL or points to a `struct kds_callback` that was initialized (or zero-filled, or
/// terminated), that no other thread uses during the call.
#[no_mangle]
pub unsafe extern "C" fn kds_callback_term(cb: *mut kds_callback) {
    no_unwind((), || {
        if cb.is_null() {
            return;
        }
        // SAFETY: valid and exclusively ours during the call (caller's contract).
        let cb = unsafe { &mut *cb };
        if cb.marker != LIVE {
            return;
        }
        cb.marker = DEAD;
        let deferred = std::mem::replace(&mut cb.deferred, std::ptr::null_mut());
        if deferred.is_null() {
            return;
        }
        // SAFETY: made by `Box::into_raw` in init, owned by this live object, and taken out
        // of it above, so it is freed exactly once.
        let deferred = unsafe { Box::from_raw(deferred) };
        if thread::current().id() != deferred.thread {
            let _ = sentinel(&deferred.worker);
        }
    })
}
