//! `struct kds_resource_set`, `kds_waitall`, `kds_async_waitall` and
//! `kds_resource_set_release`.
//!
//! ## One state word, three parties, no lock
//!
//! A set made by `kds_waitall` (*sync*) is granted when the call returns: it holds its
//! [`kds::Guard`] from birth, and releasing it drops the guard.
//!
//! A set made by `kds_async_waitall` (*async*) has three parties that may run at once:
//!
//! - **A**, the `kds_async_waitall` call: it publishes the set to `*pprset` *before* it
//!   enqueues (so a direct callback that runs inside the call already sees its set, as the
//!   seed promises), then stores the [`kds::Pending`] the enqueue returns;
//! - **G**, the grant closure, run once by kds when the set is granted (on the granting
//!   thread, or on the callback object's worker): it stores the guard, then runs the user's
//!   callback;
//! - **R**, the one `kds_resource_set_release` call that took the pointer out of `*pprset`
//!   with an atomic exchange (a racing second call finds NULL and does nothing, so exactly one
//!   does the work and both leave `*pprset == NULL`).
//!
//! They meet on one atomic byte, each setting its own bit with one `fetch_or` and reading the
//! others' bits from its result, so for each pair exactly one of them saw the other's bit:
//!
//! | bit | set by | meaning | who then owns what |
//! |-----|--------|---------|--------------------|
//! | `RUNNING` | G, after storing the guard | the callback started | R, if it sees `RUNNING`, takes the guard and drops it (releases the set); else G, seeing `RELEASED`, drops it and skips the callback |
//! | `RELEASED` | R | the user released (or cancelled) the set | |
//! | `PENDING_READY` | A, after storing the `Pending` | the request can be cancelled | R, if it sees `PENDING_READY`, cancels; else A, seeing `RELEASED`, cancels |
//!
//! A cancel that comes too late (kds granted the set meanwhile) is harmless: G runs, sees
//! `RELEASED`, and drops the guard without calling the user. So a release that wins the race
//! against a grant whose callback has not started suppresses the callback (as the seed's
//! `cancel_work_sync` did); once the callback has started, a release releases the resources at
//! once. Memory is an `Arc` shared by the C pointer, A (during the call) and G's closure.
//!
//! ## What a call costs
//!
//! A set borrows its resources from the C structs ([`kds::ResourceSet::assume_static`]): a
//! set granted at once takes no reference count, only the engine's one atomic operation per
//! resource. What keeps a borrowed resource alive while such a set holds it is
//! `kds_resource_term` (see [`crate::resource`]): it frees a resource only once nothing holds
//! it and every release that was running meanwhile has finished ([`crate::releasing`]).
//! Requests that queue hold handles of their own, as in Rust. A sync set's allocation comes
//! from a small per-thread cache ([`new_sync`], [`free_sync`]) instead of `malloc`, and so
//! does an async set's `Arc` (three parties share it: [`new_async`], [`drop_async`]).

use crate::abi::{
    err_ptr, errno_of, is_err, no_unwind, CPtr, EFAULT, EINTR, EINVAL, KDS_FLAG_LOCKED_ACTION,
    KDS_FLAG_LOCKED_FAIL, KDS_FLAG_LOCKED_IGNORE, KDS_FLAG_LOCKED_WAIT, KDS_WAIT_BLOCKING,
};
use crate::callback::{self, kds_callback};
use crate::interrupt::with_thread_interrupt;
use crate::releasing::released;
use crate::resource::{self, kds_resource};
use std::cell::{RefCell, UnsafeCell};
use std::ffi::{c_int, c_ulong, c_void};
use std::sync::atomic::{AtomicPtr, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::LocalKey;
use std::time::Duration;

/// Made by `kds_waitall`: the guard is in `guard` from the start; nobody else takes part.
const SYNC: u8 = 1;
/// G stored the guard in `guard` and starts the user callback.
const RUNNING: u8 = 2;
/// R took the set from `*pprset`.
const RELEASED: u8 = 4;
/// A stored the `Pending` in `pending`.
const PENDING_READY: u8 = 8;

/// `struct kds_resource_set`: one request (opaque in C). See the module docs for the
/// protocol.
pub struct kds_resource_set {
    state: AtomicU8,
    /// The held set. Sync: from birth. Async: written by G before `RUNNING`; then taken by
    /// whichever of G and R the state word names.
    guard: UnsafeCell<Option<kds::Guard<'static>>>,
    /// Async only: written by A before `PENDING_READY`; then taken by whichever of A and R
    /// the state word names (or dropped with the set).
    pending: UnsafeCell<Option<kds::Pending>>,
}

// SAFETY: `state` is atomic. Each `UnsafeCell` has one writer at a time, handed over by the
// `fetch_or`s on `state` (AcqRel, so the hand-over also publishes the cell's contents): the
// guard cell is G's until G sets RUNNING, then R's if R's fetch_or saw RUNNING, else still
// G's; the pending cell is A's until A sets PENDING_READY, then R's if R saw PENDING_READY,
// else still A's. Sync sets have a single owner, the C pointer. `Guard` and `Pending` are
// `Send` (asserted below), so moving them between those threads is sound.
unsafe impl Sync for kds_resource_set {}

const _: () = {
    const fn send<T: Send>() {}
    send::<kds::Guard<'static>>();
    send::<kds::Pending>();
};

/// Sync set allocations kept per thread for reuse (a sync set is one small allocation, taken
/// and given back at every `kds_waitall`; a thread that releases sets that others requested
/// keeps up to this many).
const KEEP: usize = 16;

thread_local! {
    /// Empty sync sets, ready for [`new_sync`]. Boxed: the allocations themselves are what
    /// is kept (a C pointer is the `Box`'s).
    #[allow(clippy::vec_box)]
    static SYNC_SETS: RefCell<Vec<Box<kds_resource_set>>> = const { RefCell::new(Vec::new()) };
}

/// A sync set holding `guard` (a `Box`, from this thread's cache if it has one), as the C
/// pointer. Async sets are `Arc`s (see the module docs): both point at the struct itself, so
/// a release reads `state` before it knows which it has.
#[inline]
fn new_sync(guard: kds::Guard<'static>) -> *mut kds_resource_set {
    let set = match take_cached(&SYNC_SETS) {
        Some(mut set) => {
            // Cached sets are empty (`free_sync`): nothing is dropped here.
            *set.guard.get_mut() = Some(guard);
            set
        }
        None => Box::new(kds_resource_set {
            state: AtomicU8::new(SYNC),
            guard: UnsafeCell::new(Some(guard)),
            pending: UnsafeCell::new(None),
        }),
    };
    Box::into_raw(set)
}

/// Releases a sync set (marked as running, see [`released`]) and caches its allocation.
#[inline]
fn free_sync(mut set: Box<kds_resource_set>) {
    released(set.guard.get_mut());
    keep_cached(&SYNC_SETS, set);
}

/// An allocation from this thread's `cache`, if it has one (none while the thread's locals
/// are being destroyed).
#[inline]
fn take_cached<T: 'static>(cache: &'static LocalKey<RefCell<Vec<T>>>) -> Option<T> {
    cache
        .try_with(|c| c.try_borrow_mut().ok()?.pop())
        .ok()
        .flatten()
}

/// Keeps `item` in this thread's `cache` if it has room (else, or while the thread's locals
/// are being destroyed, `item` is dropped: freed).
#[inline]
fn keep_cached<T: 'static>(cache: &'static LocalKey<RefCell<Vec<T>>>, item: T) {
    let _ = cache.try_with(|c| {
        if let Ok(mut c) = c.try_borrow_mut() {
            if c.len() < KEEP {
                c.push(item);
            }
        }
    });
}

thread_local! {
    /// Empty async sets, each unique (no other reference), ready for [`new_async`].
    static ASYNC_SETS: RefCell<Vec<Arc<kds_resource_set>>> = const { RefCell::new(Vec::new()) };
}

/// A new async set (from this thread's cache if it has one).
#[inline]
fn new_async() -> Arc<kds_resource_set> {
    // Cached sets are unique and empty, their state 0 (`drop_async`).
    take_cached(&ASYNC_SETS).unwrap_or_else(|| {
        Arc::new(kds_resource_set {
            state: AtomicU8::new(0),
            guard: UnsafeCell::new(None),
            pending: UnsafeCell::new(None),
        })
    })
}

/// Drops one reference to an async set; the last one caches the allocation for
/// [`new_async`]. By then the set is empty: G or R took the guard and released it
/// ([`released`]), A or R took the `Pending`.
#[inline]
fn drop_async(mut set: Arc<kds_resource_set>) {
    // Relaxed: only a hint that this may be the last reference (`get_mut` proves it); a
    // last reference missed this way is freed instead of cached.
    if Arc::strong_count(&set) != 1 {
        return;
    }
    let Some(last) = Arc::get_mut(&mut set) else {
        return;
    };
    *last.state.get_mut() = 0;
    released(last.guard.get_mut());
    drop(last.pending.get_mut().take());
    keep_cached(&ASYNC_SETS, set);
}

/// Reads the C arguments of a request into a `kds::ResourceSet` that borrows the handles in
/// the C structs without counts ([`kds::ResourceSet::assume_static`]; see the module docs).
///
/// # Safety
///
/// If `n > 0`: `bitmap` is NULL or readable for `ceil(n / BITS_PER_LONG)` words, `list` is
/// NULL or readable for `n` pointers, each NULL or a `struct kds_resource` as
/// [`resource::handle`] requires, during the call.
///
/// The set is `'static` on the C contract: a resource is freed only by `kds_resource_term`,
/// and only once nothing holds it and every release running meanwhile has finished
/// (`resource::term`). Requests that queue hold handles of their own. A sync set's guard
/// copies the entries as they are (no counts: the set does not own them); an async set is
/// also marked with [`kds::ResourceSet::assume_static`], so that the guard its callback
/// receives takes none either.
#[inline(always)]
unsafe fn build_set(
    n: c_int,
    bitmap: *const c_ulong,
    list: *const *mut kds_resource,
) -> Result<kds::ResourceSet<'static>, c_int> {
    let n = usize::try_from(n).map_err(|_| EINVAL)?;
    if n > kds::MAX_SET_LEN {
        return Err(EINVAL);
    }
    let mut set = kds::ResourceSet::new();
    if n == 0 {
        return Ok(set);
    }
    if bitmap.is_null() || list.is_null() {
        return Err(EFAULT);
    }
    let bits = c_ulong::BITS as usize;
    for i in 0..n {
        // SAFETY: `i < n`, and both arrays are readable that far (caller's contract).
        let (res, word) = unsafe { (*list.add(i), *bitmap.add(i / bits)) };
        // SAFETY: the pointer comes from the caller's list (caller's contract).
        let res = unsafe { resource::handle(res) }?;
        let access = if word >> (i % bits) & 1 != 0 {
            kds::Access::Exclusive
        } else {
            kds::Access::Shared
        };
        set.extend([(res, access)]); // in place: `set = set.access(..)` moves the whole set
    }
    Ok(set)
}

/// The `*pprset` word as an atomic.
///
/// # Safety
///
/// `pprset` is non-null, aligned, valid for the returned lifetime, and every concurrent
/// access to `*pprset` goes through this library (atomically).
unsafe fn slot<'a>(pprset: *mut *mut kds_resource_set) -> &'a AtomicPtr<kds_resource_set> {
    // SAFETY: the caller's contract is `AtomicPtr::from_ptr`'s.
    unsafe { AtomicPtr::from_ptr(pprset) }
}

/// G: runs when kds grants an async set (once; see the module docs).
fn on_granted(
    set: Arc<kds_resource_set>,
    guard: kds::Guard<'static>,
    user_cb: unsafe extern "C" fn(*mut c_void, *mut c_void),
    p1: CPtr,
    p2: CPtr,
) {
    // SAFETY: the guard cell is G's until G sets RUNNING (module docs).
    unsafe { *set.guard.get() = Some(guard) };
    // AcqRel: publish the guard to R (Release); see R's RELEASED bit and what it did (Acquire).
    let prev = set.state.fetch_or(RUNNING, Ordering::AcqRel);
    if prev & RELEASED != 0 {
        // Released before its callback started: R saw no RUNNING, so the guard is still ours.
        // SAFETY: as just said, no one else touches the guard cell.
        released(unsafe { &mut *set.guard.get() });
        drop_async(set);
        return;
    }
    drop_async(set);
    // SAFETY: the user's function, called with the user's parameters from the thread the
    // callback object's dispatch mode names, as kds.h documents.
    unsafe { user_cb(p1.0, p2.0) };
}

/// `int kds_async_waitall(struct kds_resource_set **pprset, unsigned long flags, struct
/// kds_callback *cb, void *callback_parameter, void *callback_extra_parameter, int
/// number_resources, unsigned long *exclusive_access_bitmap, struct kds_resource
/// **resource_list)`: request the set; `cb`'s function runs with the two parameters once all
/// of it is granted (before this call returns, for a direct `cb` and free resources, unless
/// this call is itself made inside a direct callback: then right after that callback
/// returns). `*pprset` is set before the callback can run. 0, or `-EFAULT` (NULL `pprset`,
/// `cb`, or arrays/entries when `number_resources > 0`), `-EINVAL` (negative or too large
/// count, unknown flags, an uninitialized or terminated `cb` or resource), `-EBUSY`
/// (`KDS_FLAG_LOCKED_FAIL` and a resource is sync-locked); on error nothing is queued and
/// `*pprset` is as before.
///
/// # Safety
///
/// `pprset` is NULL or a valid, aligned pointer that other threads access only through this
/// library while any of them may; `cb` and the arrays as [`kds_waitall`] and
/// [`kds_callback_init`](callback::kds_callback_init) require.
#[no_mangle]
#[allow(clippy::too_many_arguments)] // the seed's signature
pub unsafe extern "C" fn kds_async_waitall(
    pprset: *mut *mut kds_resource_set,
    flags: c_ulong,
    cb: *mut kds_callback,
    callback_parameter: *mut c_void,
    callback_extra_parameter: *mut c_void,
    number_resources: c_int,
    exclusive_access_bitmap: *mut c_ulong,
    resource_list: *mut *mut kds_resource,
) -> c_int {
    no_unwind(-EFAULT, || {
        if pprset.is_null() {
            return -EFAULT;
        }
        // SAFETY: the caller's contract for `cb`.
        let target = match unsafe { callback::target(cb) } {
            Ok(t) => t,
            Err(e) => return -e,
        };
        if flags & !KDS_FLAG_LOCKED_ACTION != 0 {
            return -EINVAL;
        }
        let policy = match flags & KDS_FLAG_LOCKED_ACTION {
            KDS_FLAG_LOCKED_FAIL => kds::Locked::Fail,
            KDS_FLAG_LOCKED_IGNORE => kds::Locked::Ignore,
            KDS_FLAG_LOCKED_WAIT => kds::Locked::Wait,
            _ => return -EINVAL,
        };
        // SAFETY: the caller's contract for the arrays.
        let request =
            match unsafe { build_set(number_resources, exclusive_access_bitmap, resource_list) } {
                // SAFETY: see `build_set`.
                Ok(set) => unsafe { set.assume_static() }.locked(policy),
                Err(e) => return -e,
            };

        let set = new_async();
        let for_grant = Arc::clone(&set);
        let raw = Arc::into_raw(Arc::clone(&set)) as *mut kds_resource_set;
        // SAFETY: non-null, and accessed by others only through this library (contract).
        let slot = unsafe { slot(pprset) };
        // Publish before enqueueing, so a callback that runs at once sees its set. AcqRel:
        // Release publishes the new set to R; Acquire is for the old value we may restore.
        let old = slot.swap(raw, Ordering::AcqRel);
        let (p1, p2) = (CPtr(callback_parameter), CPtr(callback_extra_parameter));
        let user_cb = target.user_cb;
        let granted = request.on_grant(target.dispatch, move |guard| {
            on_granted(for_grant, guard, user_cb, p1, p2)
        });
        match granted {
            Ok(pending) => {
                // SAFETY: the pending cell is A's until A sets PENDING_READY (module docs).
                unsafe { *set.pending.get() = Some(pending) };
                // AcqRel: publish the Pending to R; see whether R came first.
                let prev = set.state.fetch_or(PENDING_READY, Ordering::AcqRel);
                if prev & RELEASED != 0 {
                    // R came first and saw no PENDING_READY: cancelling is ours to do. If it
                    // is too late, G sees RELEASED and drops the guard.
                    // SAFETY: as just said, the pending cell is still A's.
                    if let Some(pending) = unsafe { (*set.pending.get()).take() } {
                        pending.cancel();
                    }
                }
                drop_async(set);
                0
            }
            Err(e) => {
                // Nothing was queued and the closure is gone. Withdraw the publication,
                // unless a racing release already took it (then it drops that reference).
                // AcqRel/Acquire: as the swap above.
                if slot
                    .compare_exchange(raw, old, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    // SAFETY: the reference made by `into_raw` above, taken back exactly once.
                    drop(unsafe { Arc::from_raw(raw) });
                }
                -errno_of(e)
            }
        }
    })
}

/// `struct kds_resource_set *kds_waitall(int number_resources, unsigned long
/// *exclusive_access_bitmap, struct kds_resource **resource_list, unsigned long timeout)`:
/// block until the set is granted (the held set), `timeout` milliseconds pass (NULL; 0 =
/// don't block, `KDS_WAIT_BLOCKING` = for ever) or the thread's interrupt is raised
/// (`KDS_ERR(-EINTR)`); other errors as error pointers: `-EFAULT`, `-EINVAL` as for
/// [`kds_async_waitall`]. On NULL or an error nothing is left queued. Bit `i` of the bitmap
/// (Linux `test_bit` order) makes resource `i` exclusive. A resource named twice is taken
/// once, exclusive winning; `number_resources == 0` gives a held empty set at once.
///
/// # Safety
///
/// If `number_resources > 0`: `exclusive_access_bitmap` is NULL or readable for
/// `ceil(number_resources / BITS_PER_LONG)` words, `resource_list` NULL or readable for
/// `number_resources` pointers, each NULL or an initialized (or zero-filled, or terminated)
/// `struct kds_resource` that is not initialized or terminated during the call.
#[no_mangle]
pub unsafe extern "C" fn kds_waitall(
    number_resources: c_int,
    exclusive_access_bitmap: *mut c_ulong,
    resource_list: *mut *mut kds_resource,
    timeout: c_ulong,
) -> *mut kds_resource_set {
    no_unwind(err_ptr(EFAULT), || {
        // SAFETY: the caller's contract for the arrays.
        let request =
            match unsafe { build_set(number_resources, exclusive_access_bitmap, resource_list) } {
                Ok(set) => set,
                Err(e) => return err_ptr(e),
            };
        // `c_ulong` is 32 bits on some targets: widen, which is the identity on this one.
        #[allow(clippy::useless_conversion)]
        let millis = u64::from(timeout);
        let outcome = if timeout == 0 {
            // Never blocks, so never looks at the interrupt: a probe leaves one pending for
            // the next wait that has to block.
            request.try_acquire().map_err(|e| match e {
                kds::Error::WouldBlock => kds::Error::Timeout,
                e => e,
            })
        } else {
            let timeout = (timeout != KDS_WAIT_BLOCKING).then(|| Duration::from_millis(millis));
            with_thread_interrupt(|intr| {
                let r = request.wait_interruptible(timeout, intr);
                if r.as_ref().err() == Some(&kds::Error::Interrupted) {
                    intr.clear(); // the interrupt is consumed, like a delivered signal
                }
                r
            })
        };
        match outcome {
            Ok(guard) => new_sync(guard),
            Err(kds::Error::Timeout) => std::ptr::null_mut(),
            Err(kds::Error::Interrupted) => err_ptr(EINTR),
            Err(e) => err_ptr(errno_of(e)),
        }
    })
}

/// `void kds_resource_set_release(struct kds_resource_set **pprset)`: release the set in
/// `*pprset` if it is held, cancel it if it is pending, and set `*pprset` to NULL, atomically:
/// of several calls racing with the same `pprset` (a cancellation path and a completion
/// path), exactly one does the work and all leave `*pprset == NULL`. A NULL `pprset`, a NULL
/// or an error pointer in `*pprset` is ignored (and `*pprset` becomes NULL). Releasing may
/// grant other sets and run their direct callbacks on this thread before it returns.
///
/// # Safety
///
/// `pprset` is NULL or a valid, aligned pointer that other threads access only through this
/// library while any of them may, and `*pprset` is NULL, an error pointer or a set from
/// `kds_waitall`/`kds_async_waitall` that no other `pprset` holds.
#[no_mangle]
pub unsafe extern "C" fn kds_resource_set_release(pprset: *mut *mut kds_resource_set) {
    no_unwind((), || {
        if pprset.is_null() {
            return;
        }
        // SAFETY: non-null, and accessed by others only through this library (contract).
        let slot = unsafe { slot(pprset) };
        // AcqRel: exactly one racing caller gets the pointer; Acquire sees A's publication.
        let raw = slot.swap(std::ptr::null_mut(), Ordering::AcqRel);
        if raw.is_null() || is_err(raw) {
            return;
        }
        // Relaxed: SYNC is written before the set is shared and never changes; the swap above
        // (or the C code's own hand-over of the pointer) ordered that write before this read.
        // SAFETY: a set pointer points at a live set made in this module (a `Box` or an `Arc`,
        // both at the struct itself), which the swap gave to this caller alone.
        if unsafe { (*raw).state.load(Ordering::Relaxed) } & SYNC != 0 {
            // SAFETY: a SYNC set is made by `Box::into_raw` in `new_sync`, and is ours alone.
            free_sync(unsafe { Box::from_raw(raw) });
            return;
        }
        // SAFETY: any other set is a reference made by `Arc::into_raw` in `kds_async_waitall`.
        let set = unsafe { Arc::from_raw(raw as *const kds_resource_set) };
        // AcqRel: see G's guard and A's Pending if their bits are set; publish RELEASED.
        let prev = set.state.fetch_or(RELEASED, Ordering::AcqRel);
        if prev & RUNNING != 0 {
            // SAFETY: G stored the guard before RUNNING and never touches it again.
            released(unsafe { &mut *set.guard.get() });
        } else if prev & PENDING_READY != 0 {
            // SAFETY: A stored the Pending before PENDING_READY and never touches it again.
            let pending = unsafe { (*set.pending.get()).take() };
            if let Some(pending) = pending {
                // Too late (false) is fine: G will see RELEASED and drop the guard.
                pending.cancel();
            }
        }
        // Else A is still inside kds_async_waitall: it will see RELEASED and cancel.
        drop_async(set);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The state bits are distinct single bits.
    #[test]
    fn state_bits() {
        let all = [SYNC, RUNNING, RELEASED, PENDING_READY];
        for (i, a) in all.iter().enumerate() {
            assert_eq!(a.count_ones(), 1);
            for b in &all[i + 1..] {
                assert_eq!(a & b, 0);
            }
        }
    }
}
