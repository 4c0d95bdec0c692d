//! `struct kds_resource_set`, `kds_waitall`, `kds_async_waitall` and
//! `kds_resource_set_release`.
//!
//! ## Two kinds of set
//!
//! A set is *boxed* when it is held from the moment its pointer is published: one made by
//! `kds_waitall`, or by `kds_async_waitall` whose direct callback was granted at once (the
//! common case). Its request is built in place in the set's own allocation (from a per-thread
//! cache), straight from the C arrays; the engine's fast path takes it there, and the guard
//! borrows it ([`kds::ResourceSet::lock_interruptible`], [`kds::ResourceSet::try_grant_now`]):
//! nothing is copied, counted or allocated. Releasing it drops the guard in place.
//!
//! A boxed set from `kds_async_waitall` has two parties for a while: **A**, the call, which
//! publishes the set to `*pprset` (with its guard stored) and then runs the user's callback
//! inside the call, and **R**, the one `kds_resource_set_release` call that took the pointer
//! out of `*pprset` (with an atomic exchange: a racing second call finds NULL and does
//! nothing), which may run meanwhile, on another thread or inside the callback. A publishes
//! with `IN_CALL` set and clears it, with one RMW, once the call no longer touches the set.
//! R releases the guard whenever it comes (A never touches the guard after publishing);
//! whichever of the two comes second (R seeing no `IN_CALL`, or A seeing `RELEASED`) gives
//! the allocation back to the cache.
//!
//! Every other `kds_async_waitall` set (one that queues, or whose callback runs on a worker)
//! is an `Arc` with three parties that may run at once:
//!
//! - **A**, the call: it publishes the set to `*pprset` *before* it enqueues (so a direct
//!   callback that runs inside the call already sees its set, as the seed promises), then
//!   stores the [`kds::Pending`] the enqueue returns;
//! - **G**, the grant closure, run once by kds when the set is granted (on the granting
//!   thread, or on the callback object's worker): it stores the guard, then runs the user's
//!   callback;
//! - **R**, as above.
//!
//! They meet on one atomic byte, each setting its own bit with one `fetch_or` and reading the
//! others' bits from its result, so for each pair exactly one of them saw the other's bit:
//!
//! | bit | set by | meaning | who then owns what |
//! |-----|--------|---------|--------------------|
//! | `RUNNING` | G, after storing the guard | the callback started | R, if it sees `RUNNING`, takes the guard and drops it (releases the set); else G, seeing `RELEASED`, drops it and skips the callback |
//! | `RELEASED` | R | the user released (or cancelled) the set | |
//! | `PENDING_READY` | A, after storing the `Pending` | the request can be cancelled | R, if it sees `PENDING_READY`, cancels; else A, seeing `RELEASED`, cancels |
//! | `DONE` | G, after the user's callback returned | the callback is over | a `release_sync` R that saw `RUNNING` without `DONE` waits for it (below) |
//!
//! A cancel that comes too late (kds granted the set meanwhile) is harmless: G runs, sees
//! `RELEASED`, and drops the guard without calling the user. So a release that wins the race
//! against a grant whose callback has not started suppresses the callback (as the seed's
//! `cancel_work_sync` did); once the callback has started, a release releases the resources at
//! once. Memory is an `Arc` shared by the C pointer, A (during the call) and G's closure,
//! also kept in a per-thread cache.
//!
//! ## `release_sync`: waiting for a running callback
//!
//! `kds_resource_set_release_sync` is R as above, and then, if the callback has started and
//! not returned on *another* thread, a wait for its return. The callback's end is one RMW
//! right after the user's function returns: G's `DONE` for an `Arc` set; for a boxed set, A's
//! clearing of `IN_CALL`, which A does as soon as `try_grant_now_scoped` returns, before the
//! direct callbacks that the callback's own requests and releases queued run (they wait in the
//! returned scope: a wait for them could wait for ever, and this way the bit costs no RMW of
//! its own). "Another thread" is read from `runner`, the [`thread_tag`] that G (before
//! `RUNNING`) or A (before publishing) wrote: on the runner's own thread, R runs inside that
//! callback (or inside a callback nested in it), where waiting would wait for itself, so R
//! returns like a plain release. The wait is a hand-over on the same byte:
//!
//! | bit | set by | meaning |
//! |-----|--------|---------|
//! | `DONE` | G, right after the user's callback returned (boxed sets: `IN_CALL` cleared) | the callback is over |
//! | `SYNC_WAITER` | R, after storing a [`SyncWaiter`] in `waiter` (boxed sets: in its `RELEASED` RMW) | R waits for the callback's end |
//!
//! Of R's `SYNC_WAITER` RMW and the RMW that ends the callback, one sees the other: if R's
//! sees the end, R goes on; else the ending side sees `SYNC_WAITER`, takes the waiter out of
//! the cell and wakes it ([`wake`]). R waits on its own `SyncWaiter`, never on the set, so
//! whoever recycles a boxed set (A, which sees `RELEASED` when it clears `IN_CALL`; or R, if
//! A had left before R's RMW) never races a reader; a waiter left in the cell is dropped with
//! it. A set that was granted but whose callback has not started (queued on a worker, or in a
//! trampoline) needs no wait: G will see `RELEASED` and skip the callback. R delivers the
//! direct callbacks its thread owes before it blocks (`kds::flush_before_blocking`).
//!
//! ## What keeps a resource alive
//!
//! A set borrows its resources from the C structs ([`kds::ResourceSet::assume_static`]): a
//! set granted at once takes no reference count, only the engine's one atomic operation per
//! resource to take it and one to give it back. What keeps a borrowed resource alive while
//! such a set holds it is `kds_resource_term` (see [`crate::resource`]): it frees a resource
//! only once nothing holds it and every release that was running meanwhile has finished
//! ([`crate::releasing`]). Requests that queue hold handles of their own, as in Rust.

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
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{LocalKey, Thread};
use std::time::Duration;

/// A boxed set (module docs): held from birth, its guard borrowing its own `request`.
const BOXED: u8 = 1;
/// Arc sets: G stored the guard in `guard` and starts the user callback.
const RUNNING: u8 = 2;
/// R took the set from `*pprset`.
const RELEASED: u8 = 4;
/// Arc sets: A stored the `Pending` in `pending`.
const PENDING_READY: u8 = 8;
/// Boxed sets from `kds_async_waitall`: A is still inside the call.
const IN_CALL: u8 = 16;
/// Arc sets: G's user callback has returned (a boxed set's end is its `IN_CALL` cleared).
const DONE: u8 = 32;
/// A `release_sync` (R) waits for `DONE`, its [`SyncWaiter`] in `waiter`.
const SYNC_WAITER: u8 = 64;

/// A `release_sync` waiting for a callback's end: woken by the party that sets `DONE`.
struct SyncWaiter {
    /// The waiting thread (`None` while its locals are being destroyed: it then polls).
    thread: Option<Thread>,
    /// Set by the waker, after which it touches nothing of R's but this `Arc`.
    woken: AtomicBool,
}

/// `struct kds_resource_set`: one request (opaque in C). See the module docs for the
/// protocols.
pub struct kds_resource_set {
    state: AtomicU8,
    /// The held set. Boxed: from publication, a guard lent by `request`. Arc: written by G
    /// before `RUNNING`; then taken by whichever of G and R the state word names.
    guard: UnsafeCell<Option<kds::Guard<'static>>>,
    /// Arc sets only: written by A before `PENDING_READY`; then taken by whichever of A and R
    /// the state word names (or dropped with the set).
    pending: UnsafeCell<Option<kds::Pending>>,
    /// Boxed sets only: the request, rebuilt in place by each call that takes the allocation
    /// from the cache ([`build_in`]). `'static` on the contract of `build_in`: it is never
    /// changed or dropped while a guard borrows it.
    request: UnsafeCell<kds::ResourceSet<'static>>,
    /// The [`thread_tag`] of the thread that runs the user callback: written by A before it
    /// publishes a boxed set, by G before it sets `RUNNING`; read by a `release_sync` after its
    /// RMW saw that, to tell whether it is itself inside that callback (where it must not
    /// wait). Relaxed: those RMWs order it.
    runner: AtomicUsize,
    /// A waiting `release_sync`: written by R before it sets `SYNC_WAITER`; then taken by
    /// the party whose `DONE` RMW saw `SYNC_WAITER` (it wakes R); else left for whoever
    /// recycles the set, or taken back by R if it is that party.
    waiter: UnsafeCell<Option<Arc<SyncWaiter>>>,
}

// SAFETY: `state` and `runner` are atomic. Each `UnsafeCell` has one writer at a time, handed
// over by the RMWs on `state` and `*pprset` (AcqRel, so the hand-over also publishes the
// cell's contents). The waiter cell is R's until R's RMW sets SYNC_WAITER, then the waker's
// if its DONE RMW saw the bit, else the recycler's (R touches the set no more after its RMW,
// unless that RMW showed it the set is its to recycle). Arc sets: the guard cell is G's until G sets RUNNING, then R's if R's fetch_or
// saw RUNNING, else still G's; the pending cell is A's until A sets PENDING_READY, then R's
// if R saw PENDING_READY, else still A's. Boxed sets: every cell is A's until A publishes the
// pointer; then the guard cell is R's, and `request` is only read (by A's `try_grant_now`
// and by the guard R drops) until whichever of A and R comes second takes the allocation
// back. `Guard`, `Pending` and `ResourceSet` are `Send` (asserted below), so moving them
// between those threads is sound.
unsafe impl Sync for kds_resource_set {}

const _: () = {
    const fn send<T: Send>() {}
    send::<kds::Guard<'static>>();
    send::<kds::Pending>();
    send::<kds::ResourceSet<'static>>();
    send::<Arc<SyncWaiter>>();
};

thread_local! {
    /// Only its address is used: [`thread_tag`].
    static TAG: u8 = const { 0 };
}

/// A word that names the calling thread among the live ones (the address of one of its
/// thread-locals, so a `lea` off the thread pointer, no call): a callback's runner compared
/// with a `release_sync`'s caller. A thread's tag may be reused only after it has ended, and a
/// runner cannot end while its callback runs.
#[inline(always)]
fn thread_tag() -> usize {
    TAG.with(|t| t as *const u8 as usize)
}

/// How many entries a `kds::ResourceSet` keeps inline (`docs/design.md`): a cached request
/// with more has a heap list, dropped when the set is recycled.
const INLINE_ENTRIES: usize = 8;

/// Boxed set allocations kept per thread for reuse (one is taken and given back at every
/// `kds_waitall`; a thread that releases sets that others requested keeps up to this many).
const KEEP: usize = 16;

thread_local! {
    /// Boxed sets, unpublished, their state `BOXED` and their guard `None`, ready for
    /// [`new_boxed`]. What is kept is the allocations themselves (a C pointer is a `Box`'s).
    #[allow(clippy::vec_box)]
    static BOXED_SETS: RefCell<Vec<Box<kds_resource_set>>> = const { RefCell::new(Vec::new()) };
}

/// A boxed set (from this thread's cache if it has one), unpublished, as a raw pointer: it is
/// used through that pointer only (its `request` is lent to its guard), until
/// [`recycle`] takes it back. Async sets are `Arc`s (module docs): both point at the struct
/// itself, so a release reads `state` before it knows which it has.
#[inline]
fn new_boxed() -> *mut kds_resource_set {
    let set = take_cached(&BOXED_SETS).unwrap_or_else(|| {
        Box::new(kds_resource_set {
            state: AtomicU8::new(BOXED),
            guard: UnsafeCell::new(None),
            pending: UnsafeCell::new(None),
            request: UnsafeCell::new(kds::ResourceSet::new()),
            runner: AtomicUsize::new(0),
            waiter: UnsafeCell::new(None),
        })
    });
    Box::into_raw(set)
}

/// Takes back a boxed set whose guard is gone, for this thread's cache.
///
/// # Safety
///
/// `set` is from [`new_boxed`], its guard cell is `None`, and nothing else uses it any more.
#[inline]
unsafe fn recycle(set: *mut kds_resource_set) {
    // SAFETY: made by `Box::into_raw` (`new_boxed`), and no longer used elsewhere (contract).
    let mut set = unsafe { Box::from_raw(set) };
    *set.state.get_mut() = BOXED;
    if set.waiter.get_mut().is_some() {
        // A release_sync that saw DONE left its waiter here (it never comes back for it).
        drop_waiter(&mut set);
    }
    let request = set.request.get_mut();
    if request.len() > INLINE_ENTRIES {
        // Past its inline room a set keeps its entries in a heap list (up to `MAX_SET_LEN`):
        // not kept in a cached allocation. (The next call rebuilds the request anyway.)
        *request = kds::ResourceSet::new();
    }
    keep_cached(&BOXED_SETS, set);
}

/// Drops a waiter left in a set being recycled (rare: out of line).
#[cold]
#[inline(never)]
fn drop_waiter(set: &mut kds_resource_set) {
    drop(set.waiter.get_mut().take());
}

/// Releases a boxed set that R alone holds (marked as running, see [`released`]) and takes
/// it back.
///
/// # Safety
///
/// `set` is a published boxed set that only the caller uses now.
#[inline]
unsafe fn free_boxed(set: *mut kds_resource_set) {
    // SAFETY: the caller alone uses the set; the guard borrows `request`, not this cell.
    released(unsafe { &mut *(*set).guard.get() });
    // SAFETY: the guard is gone, and so is every other user (contract).
    unsafe { recycle(set) };
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
            request: UnsafeCell::new(kds::ResourceSet::new()),
            runner: AtomicUsize::new(0),
            waiter: UnsafeCell::new(None),
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
    drop(last.waiter.get_mut().take());
    keep_cached(&ASYNC_SETS, set);
}

/// Builds the request of the boxed set `set` in place from the C arguments: a
/// `kds::ResourceSet` with the `policy` that borrows the handles in the C structs without
/// counts ([`kds::ResourceSet::assume_static`]; see the module docs), returned as `'static`.
///
/// # Safety
///
/// `set` is an unpublished set from [`new_boxed`] that only the caller uses. If `n > 0`:
/// `bitmap` is NULL or readable for `ceil(n / BITS_PER_LONG)` words, `list` is NULL or
/// readable for `n` pointers, each NULL or a `struct kds_resource` as [`resource::handle`]
/// requires, during the call.
///
/// The returned reference, and every guard made from it, must be gone before the set is
/// given back ([`recycle`]): the request lives in the allocation, which is rebuilt by the next
/// call that takes it. Its resources are `'static` on the C contract: a resource is freed
/// only by `kds_resource_term`, and only once nothing holds it and every release running
/// meanwhile has finished (`resource::term`); requests that queue hold handles of their own.
#[inline(always)]
unsafe fn build_in(
    set: *mut kds_resource_set,
    policy: kds::Locked,
    n: c_int,
    bitmap: *const c_ulong,
    list: *const *mut kds_resource,
) -> Result<&'static kds::ResourceSet<'static>, c_int> {
    // SAFETY: the caller alone uses `set`, and no guard borrows its request now (contract).
    let request = unsafe { &mut *(*set).request.get() };
    // SAFETY: the resources outlive the request on the C contract (see above).
    *request = unsafe { kds::ResourceSet::new().assume_static() }.locked(policy);
    let n = usize::try_from(n).map_err(|_| EINVAL)?;
    if n > kds::MAX_SET_LEN {
        return Err(EINVAL);
    }
    if n > 0 {
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
            request.extend([(res, access)]); // in place: `access(..)` moves the whole set
        }
    }
    // SAFETY: the allocation stays put until `recycle`, which the caller calls only once
    // every borrow of the request is gone (contract).
    Ok(unsafe { &*(*set).request.get() })
}

/// [`build_in`] for a new set from [`new_boxed`] that the caller alone uses: on bad arguments
/// the set goes back to the cache and the errno is returned.
///
/// # Safety
///
/// As [`build_in`].
#[inline(always)]
unsafe fn build_in_new(
    set: *mut kds_resource_set,
    policy: kds::Locked,
    n: c_int,
    bitmap: *const c_ulong,
    list: *const *mut kds_resource,
) -> Result<&'static kds::ResourceSet<'static>, c_int> {
    // SAFETY: the caller's contract is `build_in`'s.
    let built = unsafe { build_in(set, policy, n, bitmap, list) };
    if built.is_err() {
        // SAFETY: unpublished, no guard: ours alone.
        unsafe { recycle(set) };
    }
    built
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

/// G: runs when kds grants an async set (once; see the module docs). Inlined into the grant
/// closure: it is the hand-off's path from the grant to the user's callback.
#[inline(always)]
fn on_granted(
    set: Arc<kds_resource_set>,
    guard: kds::Guard<'static>,
    user_cb: unsafe extern "C" fn(*mut c_void, *mut c_void),
    p1: CPtr,
    p2: CPtr,
) {
    // SAFETY: the guard cell is G's until G sets RUNNING (module docs). A write, not an
    // assignment: the cell is `None` until here, nothing to drop.
    unsafe { set.guard.get().write(Some(guard)) };
    // Relaxed: published by the RMW below.
    set.runner.store(thread_tag(), Ordering::Relaxed);
    // AcqRel: publish the guard to R (Release); see R's RELEASED bit and what it did (Acquire).
    let prev = set.state.fetch_or(RUNNING, Ordering::AcqRel);
    if prev & RELEASED != 0 {
        // Released before its callback started: R saw no RUNNING, so the guard is still ours.
        // SAFETY: as just said, no one else touches the guard cell.
        released(unsafe { &mut *set.guard.get() });
        drop_async(set);
        return;
    }
    // SAFETY: the user's function, called with the user's parameters from the thread the
    // callback object's dispatch mode names, as kds.h documents.
    unsafe { user_cb(p1.0, p2.0) };
    callback_done(&set);
    // After the callback, not before: its reference count's RMW is no part of the hand-off
    // (and a callback that releases its set cannot be the last reference, so the cache still
    // gets the allocation from here).
    drop_async(set);
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
    no_unwind(-EFAULT, move || {
        // SAFETY: the caller's contract is this function's.
        unsafe {
            async_waitall(
                pprset,
                flags,
                cb,
                callback_parameter,
                callback_extra_parameter,
                number_resources,
                exclusive_access_bitmap,
                resource_list,
            )
        }
    })
}

/// The shipped kernels' 7-argument `kds_async_waitall` (`KDS_API_VERSION 2013` in
/// `include/kds.h`, which names this symbol for it): `int kds_async_waitall(struct
/// kds_resource_set **pprset, struct kds_callback *cb, void *callback_parameter, void
/// *callback_extra_parameter, int number_resources, unsigned long *exclusive_access_bitmap,
/// struct kds_resource **resource_list)`. Those kernels had no flags: a request waits in line
/// (`KDS_FLAG_LOCKED_WAIT`). Otherwise [`kds_async_waitall`], the same body inlined.
///
/// # Safety
///
/// As [`kds_async_waitall`].
#[no_mangle]
pub unsafe extern "C" fn kds_async_waitall_2013(
    pprset: *mut *mut kds_resource_set,
    cb: *mut kds_callback,
    callback_parameter: *mut c_void,
    callback_extra_parameter: *mut c_void,
    number_resources: c_int,
    exclusive_access_bitmap: *mut c_ulong,
    resource_list: *mut *mut kds_resource,
) -> c_int {
    no_unwind(-EFAULT, move || {
        // SAFETY: the caller's contract is this function's, and [`kds_async_waitall`]'s.
        unsafe {
            async_waitall(
                pprset,
                KDS_FLAG_LOCKED_WAIT,
                cb,
                callback_parameter,
                callback_extra_parameter,
                number_resources,
                exclusive_access_bitmap,
                resource_list,
            )
        }
    })
}

/// The body of both `kds_async_waitall` forms, inlined into each export's `no_unwind`
/// closure (with the flags a constant in the 2013 form's).
///
/// # Safety
///
/// As [`kds_async_waitall`].
#[inline(always)]
#[allow(clippy::too_many_arguments)] // the seed's signature
unsafe fn async_waitall(
    pprset: *mut *mut kds_resource_set,
    flags: c_ulong,
    cb: *mut kds_callback,
    callback_parameter: *mut c_void,
    callback_extra_parameter: *mut c_void,
    number_resources: c_int,
    exclusive_access_bitmap: *mut c_ulong,
    resource_list: *mut *mut kds_resource,
) -> c_int {
    {
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
        let set = new_boxed();
        // SAFETY: `set` is new and ours; the caller's contract for the arrays. `request` and
        // the guard made from it are gone before `recycle` (the guard with the set).
        let request = match unsafe {
            build_in_new(
                set,
                policy,
                number_resources,
                exclusive_access_bitmap,
                resource_list,
            )
        } {
            Ok(request) => request,
            Err(e) => return -e,
        };
        // SAFETY: non-null, and accessed by others only through this library (contract).
        let slot = unsafe { slot(pprset) };
        let (p1, p2) = (CPtr(callback_parameter), CPtr(callback_extra_parameter));
        let user_cb = target.user_cb;
        if matches!(target.dispatch, kds::Dispatch::Direct) {
            // Relaxed: the set is unpublished; the swap that publishes it is Release. The
            // callback, if granted now, runs on this thread (a release_sync reads `runner`).
            // SAFETY: `set` is live (ours until published).
            unsafe {
                (*set).state.store(BOXED | IN_CALL, Ordering::Relaxed);
                (*set).runner.store(thread_tag(), Ordering::Relaxed);
            }
            let ran = request.try_grant_now_scoped(move |guard| {
                // SAFETY: the guard cell is A's until the set is published, just below. A
                // write, not an assignment: the cell is `None` (`recycle`), nothing to drop.
                unsafe { (*set).guard.get().write(Some(guard)) };
                // AcqRel: Release publishes the set and its guard to R; Acquire is the
                // exchange's other half (the old pointer is the caller's, not read here).
                slot.swap(set, Ordering::AcqRel);
                // SAFETY: the user's function and parameters, called on this thread for a
                // direct callback object, as kds.h documents.
                unsafe { user_cb(p1.0, p2.0) };
            });
            if let Some(((), queued_callbacks)) = ran {
                // The callback has returned, the call no longer borrows the set, and the
                // direct callbacks it queued have not run yet (they wait in the scope): so
                // this RMW is also the callback's end for a release_sync (module docs).
                // AcqRel: Release hands the set to R (this call no longer touches it once the
                // bit is clear) and publishes the callback's effects; Acquire sees R's
                // release of the guard and its waiter if R came first.
                // SAFETY: R recycles the set only after seeing IN_CALL clear, so it is live.
                let prev = unsafe { (*set).state.fetch_and(!IN_CALL, Ordering::AcqRel) };
                if prev & RELEASED != 0 {
                    if prev & SYNC_WAITER != 0 {
                        // SAFETY: R registered in its RELEASED RMW, which we saw.
                        unsafe { wake(set) };
                    }
                    // SAFETY: R released the guard and left the set to us (a release_sync
                    // touches it no more once its RMW saw IN_CALL).
                    unsafe { recycle(set) };
                }
                drop(queued_callbacks); // they run now
                return 0;
            }
            // Not granted at once: never published.
            // SAFETY: `set` is still ours alone.
            unsafe { (*set).state.store(BOXED, Ordering::Relaxed) };
        }
        let out = queued(slot, request, target.dispatch, user_cb, p1, p2);
        // SAFETY: unpublished and without guard; `request` is no longer used (the engine's
        // request, if any, was made from a copy of it).
        unsafe { recycle(set) };
        out
    }
}

/// The rest of `kds_async_waitall` (A, module docs): an `Arc` set whose grant closure is G.
fn queued(
    slot: &AtomicPtr<kds_resource_set>,
    request: &kds::ResourceSet<'static>,
    dispatch: kds::Dispatch,
    user_cb: unsafe extern "C" fn(*mut c_void, *mut c_void),
    p1: CPtr,
    p2: CPtr,
) -> c_int {
    let set = new_async();
    let for_grant = Arc::clone(&set);
    let raw = Arc::into_raw(Arc::clone(&set)) as *mut kds_resource_set;
    // Publish before enqueueing, so a callback that runs at once sees its set. AcqRel:
    // Release publishes the new set to R; Acquire is for the old value we may restore.
    let old = slot.swap(raw, Ordering::AcqRel);
    let granted = request.on_grant(dispatch, move |guard| {
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
    no_unwind(err_ptr(EFAULT), move || {
        let (set, wait) = (new_boxed(), kds::Locked::Wait);
        // SAFETY: `set` is new and ours; the caller's contract for the arrays. `request` and
        // the guard made from it are gone before `recycle` (the guard with the set).
        let request = match unsafe {
            build_in_new(
                set,
                wait,
                number_resources,
                exclusive_access_bitmap,
                resource_list,
            )
        } {
            Ok(request) => request,
            Err(e) => return err_ptr(e),
        };
        // `c_ulong` is 32 bits on some targets: widen, which is the identity on this one.
        #[allow(clippy::useless_conversion)]
        let millis = u64::from(timeout);
        // The guard goes straight into the set, never through a `Result` (a guard is a
        // set's size, and each move of it is a copy).
        let hold = |guard| {
            // SAFETY: unpublished: ours alone. A write, not an assignment: the cell is `None`
            // (`recycle`), nothing to drop.
            unsafe { (*set).guard.get().write(Some(guard)) };
        };
        let outcome = if timeout == 0 {
            // Never blocks, so never looks at the interrupt: a probe leaves one pending for
            // the next wait that has to block.
            request.try_lock().map(hold).map_err(|e| match e {
                kds::Error::WouldBlock => kds::Error::Timeout,
                e => e,
            })
        } else {
            let timeout = (timeout != KDS_WAIT_BLOCKING).then(|| Duration::from_millis(millis));
            with_thread_interrupt(|intr| match request.lock_interruptible(timeout, intr) {
                Ok(guard) => {
                    hold(guard);
                    Ok(())
                }
                Err(kds::Error::Interrupted) => {
                    intr.clear(); // the interrupt is consumed, like a delivered signal
                    Err(kds::Error::Interrupted)
                }
                Err(e) => Err(e),
            })
        };
        match outcome {
            Ok(()) => set,
            Err(e) => {
                // SAFETY: unpublished, no guard: ours alone.
                unsafe { recycle(set) };
                match e {
                    kds::Error::Timeout => std::ptr::null_mut(),
                    kds::Error::Interrupted => err_ptr(EINTR),
                    e => err_ptr(errno_of(e)),
                }
            }
        }
    })
}

/// `void kds_resource_set_release(struct kds_resource_set **pprset)`: release the set in
/// `*pprset` if it is held, cancel it if it is pending, and set `*pprset` to NULL, atomically:
/// of several calls racing with the same `pprset` (a cancellation path and a completion
/// path), exactly one does the work and all leave `*pprset == NULL`. A NULL `pprset`, a NULL
/// or an error pointer in `*pprset` is ignored (and `*pprset` becomes NULL). Releasing may
/// grant other sets and run their direct callbacks on this thread before it returns. It never
/// waits for a callback running on another thread: see [`kds_resource_set_release_sync`].
///
/// # Safety
///
/// `pprset` is NULL or a valid, aligned pointer that other threads access only through this
/// library while any of them may, and `*pprset` is NULL, an error pointer or a set from
/// `kds_waitall`/`kds_async_waitall` that no other `pprset` holds.
#[no_mangle]
pub unsafe extern "C" fn kds_resource_set_release(pprset: *mut *mut kds_resource_set) {
    // SAFETY: the caller's contract is `release`'s.
    no_unwind((), move || unsafe { release::<false>(pprset) })
}

/// `void kds_resource_set_release_sync(struct kds_resource_set **pprset)`: as
/// [`kds_resource_set_release`], and before it returns, the set's callback is not running
/// and never will: one that has not started never runs (also one already queued on a worker),
/// and one running on another thread is waited for. Called from inside that callback (on the
/// thread running it) it cannot wait for it: it releases the set and returns, like
/// `kds_resource_set_release`. Before it blocks it delivers the direct callbacks this thread
/// owes (as `kds_waitall` does), so it never waits for itself.
///
/// # Safety
///
/// As [`kds_resource_set_release`].
#[no_mangle]
pub unsafe extern "C" fn kds_resource_set_release_sync(pprset: *mut *mut kds_resource_set) {
    // SAFETY: the caller's contract is `release`'s.
    no_unwind((), move || unsafe { release::<true>(pprset) })
}

/// R: the body of both release calls. `SYNC`: `release_sync` (wait for a running callback).
///
/// # Safety
///
/// As [`kds_resource_set_release`].
#[inline(always)]
unsafe fn release<const SYNC: bool>(pprset: *mut *mut kds_resource_set) {
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
    // Acquire: BOXED was written before the set was published and never changes while it
    // is; IN_CALL is cleared by A's Release RMW, after which A no longer touches the set.
    // SAFETY: a set pointer points at a live set made in this module (a `Box` or an `Arc`,
    // both at the struct itself), which the swap gave to this caller alone.
    let state = unsafe { (*raw).state.load(Ordering::Acquire) };
    if state & BOXED != 0 {
        if state & IN_CALL == 0 {
            // SAFETY: a published boxed set that no one else uses any more.
            unsafe { free_boxed(raw) };
            return;
        }
        // A is still inside kds_async_waitall (maybe this is its callback): release now,
        // and leave the allocation to whichever of us comes second.
        // SAFETY: the guard cell is R's once published (module docs).
        released(unsafe { &mut *(*raw).guard.get() });
        // Relaxed: A wrote it before the publication our swap acquired.
        // SAFETY: live until one of us recycles it, below.
        let inside = unsafe { (*raw).runner.load(Ordering::Relaxed) } == thread_tag();
        if SYNC && !inside {
            // SAFETY: a published boxed set that A is still inside; ours to release.
            unsafe { release_boxed_sync(raw) };
            return;
        }
        // AcqRel: Release hands the released set to A; Acquire sees A's last accesses.
        // SAFETY: A recycles the set only after seeing RELEASED, so it is live.
        let prev = unsafe { (*raw).state.fetch_or(RELEASED, Ordering::AcqRel) };
        if prev & IN_CALL == 0 {
            // SAFETY: A has left and its guard is gone: ours alone.
            unsafe { recycle(raw) };
        }
        return;
    }
    // SAFETY: any other set is a reference made by `Arc::into_raw` in `kds_async_waitall`.
    let set = unsafe { Arc::from_raw(raw as *const kds_resource_set) };
    // AcqRel: see G's guard and A's Pending if their bits are set; publish RELEASED.
    let prev = set.state.fetch_or(RELEASED, Ordering::AcqRel);
    if prev & RUNNING != 0 {
        // SAFETY: G stored the guard before RUNNING and never touches it again.
        released(unsafe { &mut *set.guard.get() });
        // Relaxed: G wrote it before RUNNING, which our RMW acquired.
        if SYNC && prev & DONE == 0 && set.runner.load(Ordering::Relaxed) != thread_tag() {
            wait_for_done(&set);
        }
    } else if prev & PENDING_READY != 0 {
        // SAFETY: A stored the Pending before PENDING_READY and never touches it again.
        let pending = unsafe { (*set.pending.get()).take() };
        if let Some(pending) = pending {
            // Too late (false) is fine: G will see RELEASED and drop the guard.
            pending.cancel();
        }
    }
    // Else A is still inside kds_async_waitall: it will see RELEASED and cancel. In both of
    // these cases G, if it runs, sees RELEASED and never calls the user (module docs).
    drop_async(set);
}

/// `release_sync` of a boxed set whose direct callback A may still be running on another
/// thread (module docs): registers a waiter with `RELEASED`, and waits for A to clear
/// `IN_CALL` (right after the callback) unless it came first. The guard is already released.
///
/// # Safety
///
/// `raw` is a published boxed set with `IN_CALL` seen, taken from `*pprset` by this caller,
/// whose guard this caller has released; not yet marked `RELEASED`.
#[cold]
#[inline(never)]
unsafe fn release_boxed_sync(raw: *mut kds_resource_set) {
    let waiter = new_waiter();
    // SAFETY: the waiter cell is R's until its RMW below (module docs); the set is live
    // until RELEASED is set.
    unsafe { *(*raw).waiter.get() = Some(Arc::clone(&waiter)) };
    // AcqRel: Release publishes the waiter to A; Acquire sees the callback's effects and A's
    // last accesses if A left the call first.
    // SAFETY: live, as just said.
    let prev = unsafe {
        (*raw)
            .state
            .fetch_or(RELEASED | SYNC_WAITER, Ordering::AcqRel)
    };
    if prev & IN_CALL == 0 {
        // A left before our RMW and saw neither bit: the set is ours (its waiter cell too).
        // SAFETY: the guard is gone (released above), and A no longer touches the set.
        unsafe { recycle(raw) };
    } else {
        // A's IN_CALL RMW, right after the callback, will see SYNC_WAITER and wake us; A
        // recycles the set then (it sees RELEASED). We touch the set no more.
        wait_woken(&waiter);
    }
}

/// `release_sync` of an Arc set whose callback G started on another thread and had not
/// finished (by our RMW): registers a waiter, and waits for G's `DONE` unless it came first.
#[cold]
#[inline(never)]
fn wait_for_done(set: &kds_resource_set) {
    let waiter = new_waiter();
    // SAFETY: the waiter cell is R's until its RMW below (module docs).
    unsafe { *set.waiter.get() = Some(Arc::clone(&waiter)) };
    // AcqRel: Release publishes the waiter to G; Acquire sees the callback's effects if it
    // finished first.
    let prev = set.state.fetch_or(SYNC_WAITER, Ordering::AcqRel);
    if prev & DONE != 0 {
        // G's DONE came first and saw no waiter: the cell is ours again (and the set is
        // alive: our reference).
        // SAFETY: as just said, G does not touch the cell.
        drop(unsafe { (*set.waiter.get()).take() });
        return;
    }
    wait_woken(&waiter);
}

/// A waiter for this thread.
fn new_waiter() -> Arc<SyncWaiter> {
    Arc::new(SyncWaiter {
        // `None` while this thread's locals are being destroyed (`thread::current` panics
        // then): the wait polls instead of parking.
        thread: std::panic::catch_unwind(std::thread::current).ok(),
        woken: AtomicBool::new(false),
    })
}

/// R's wait for the waker. Delivers first what this thread owes (direct callbacks queued
/// while it runs one): the callback waited for may need one of them to run.
fn wait_woken(waiter: &SyncWaiter) {
    kds::flush_before_blocking();
    // Acquire: pairs with the waker's Release; the callback's end comes before.
    while !waiter.woken.load(Ordering::Acquire) {
        if waiter.thread.is_some() && !cfg!(miri) {
            // Spurious wake-ups loop; an unpark that came first returns at once.
            std::thread::park();
        } else {
            std::thread::yield_now();
        }
    }
}

/// The end of G's user callback: sets `DONE`, and wakes a `release_sync` that waits for it.
/// (Always an RMW: such a release_sync learns from its `RELEASED` RMW that the callback runs,
/// and registers with a second one, so a `RELEASED` seen here does not say nobody waits.)
#[inline(always)]
fn callback_done(set: &kds_resource_set) {
    // AcqRel: Release publishes the callback's end (and everything it did) to a release_sync
    // that sees DONE; Acquire sees its waiter if it registered first.
    let prev = set.state.fetch_or(DONE, Ordering::AcqRel);
    if prev & SYNC_WAITER != 0 {
        // SAFETY: R registered before our RMW, which saw it; live (the caller's reference).
        unsafe { wake(set) };
    }
}

/// Wakes the `release_sync` waiting on `set`: the caller's RMW that ends the callback (`DONE`,
/// or a boxed set's `IN_CALL` clear) saw `SYNC_WAITER`, and so the waiter stored before it.
///
/// # Safety
///
/// `set` is live during the call, and this caller's RMW that ends the callback saw
/// `SYNC_WAITER`.
#[cold]
#[inline(never)]
unsafe fn wake(set: *const kds_resource_set) {
    // SAFETY: the waiter cell is the waker's now (module docs).
    let waiter = unsafe { (*(*set).waiter.get()).take() };
    if let Some(waiter) = waiter {
        // Release: R's Acquire load sees the callback's end. After this R may go on; we keep
        // our own reference to the waiter for the unpark.
        waiter.woken.store(true, Ordering::Release);
        if let Some(thread) = &waiter.thread {
            thread.unpark();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::callback::{kds_callback_init, kds_callback_term};
    use crate::resource::{kds_resource_init, kds_resource_term};
    use std::mem::MaybeUninit;

    /// Runs `f` with one live resource and a direct callback object for `cb`, then checks
    /// the resource is free and terminates both.
    fn with_resource(
        cb: unsafe extern "C" fn(*mut c_void, *mut c_void),
        f: impl FnOnce(*mut kds_resource, *mut kds_callback),
    ) {
        let mut r = MaybeUninit::<kds_resource>::zeroed();
        let mut c = MaybeUninit::<kds_callback>::zeroed();
        let (r, c) = (r.as_mut_ptr(), c.as_mut_ptr());
        // SAFETY: zeroed storage of the right types, used by this thread only.
        unsafe {
            kds_resource_init(r);
            assert_eq!(kds_callback_init(c, 1, Some(cb)), 0);
        }
        f(r, c);
        let mut list = [r];
        let mut excl: c_ulong = 1;
        // SAFETY: a live resource and arrays of one.
        unsafe {
            let mut probe = kds_waitall(1, &mut excl, list.as_mut_ptr(), 0);
            assert!(
                !probe.is_null() && !is_err(probe),
                "the resource is left free"
            );
            kds_resource_set_release(&mut probe);
            kds_callback_term(c);
            kds_resource_term(r);
        }
    }

    /// The callback of the tests below: `p1` is the set's `*pprset`; if `p2` is non-null it
    /// first waits until another thread has released the set, then releases it itself
    /// (which then finds NULL).
    unsafe extern "C" fn release_own(pprset: *mut c_void, wait: *mut c_void) {
        // SAFETY: the tests pass the `*pprset` word, only accessed atomically meanwhile.
        let slot = unsafe { AtomicPtr::from_ptr(pprset as *mut *mut kds_resource_set) };
        assert!(
            !slot.load(Ordering::Acquire).is_null() || !wait.is_null(),
            "published first"
        );
        while !wait.is_null() && !slot.load(Ordering::Acquire).is_null() {
            std::thread::yield_now();
        }
        // SAFETY: as above.
        unsafe { kds_resource_set_release(pprset as *mut *mut kds_resource_set) };
    }

    /// Boxed sets (a `kds_waitall` set, a `kds_async_waitall` set granted at once) and an Arc
    /// set, each released by its holder, by its own callback inside the request call, and by
    /// another thread while that call is still running the callback. Under Miri this checks
    /// the in-place request and its lent guard against the aliasing model.
    #[test]
    fn boxed_and_arc_sets_release_from_every_party() {
        with_resource(release_own, |r, cb| {
            let mut list = [r];
            let mut excl: c_ulong = 1;
            let (n, bm, ls) = (1, &mut excl as *mut c_ulong, list.as_mut_ptr());
            // SAFETY: live resource and callback, arrays of one, `pprset` words on the stack
            // that only this library touches while it may.
            unsafe {
                // Sync, twice (the second reuses the cached allocation and its request).
                for _ in 0..2 {
                    let mut held = kds_waitall(n, bm, ls, KDS_WAIT_BLOCKING);
                    assert!(!held.is_null() && !is_err(held));
                    assert!(
                        kds_waitall(n, bm, ls, 0).is_null(),
                        "busy: a probe gets NULL"
                    );
                    kds_resource_set_release(&mut held);
                    assert!(held.is_null());
                }
                // Async, granted at once: its callback releases it inside the call.
                // One raw pointer for the word, passed twice (`pprset`, the callback's `p1`).
                let mut own: *mut kds_resource_set = std::ptr::null_mut();
                let own = &mut own as *mut *mut kds_resource_set;
                let (p, none) = (own as *mut c_void, std::ptr::null_mut());
                let flags = KDS_FLAG_LOCKED_WAIT;
                assert_eq!(kds_async_waitall(own, flags, cb, p, none, n, bm, ls), 0);
                assert!((*own).is_null());
                // Async, granted at once, released by another thread while its callback runs.
                let mut shared: *mut kds_resource_set = std::ptr::null_mut();
                let word = AtomicPtr::from_ptr(&mut shared);
                let done = AtomicBool::new(false);
                std::thread::scope(|s| {
                    s.spawn(|| {
                        while word.load(Ordering::Acquire).is_null() {
                            std::thread::yield_now();
                        }
                        kds_resource_set_release(word.as_ptr());
                        done.store(true, Ordering::Release);
                    });
                    let p = word.as_ptr() as *mut c_void;
                    let wait = 1usize as *mut c_void;
                    assert_eq!(
                        kds_async_waitall(word.as_ptr(), flags, cb, p, wait, n, bm, ls),
                        0
                    );
                });
                assert!(done.load(Ordering::Acquire) && word.load(Ordering::Acquire).is_null());
                // Async, queued behind a holder: an Arc set, granted (and released by its
                // callback) inside the holder's release.
                let mut holder = kds_waitall(n, bm, ls, KDS_WAIT_BLOCKING);
                let mut queued: *mut kds_resource_set = std::ptr::null_mut();
                let queued = &mut queued as *mut *mut kds_resource_set;
                let p = queued as *mut c_void;
                assert_eq!(kds_async_waitall(queued, flags, cb, p, none, n, bm, ls), 0);
                assert!(!(*queued).is_null(), "pending, published");
                kds_resource_set_release(&mut holder);
                assert!((*queued).is_null(), "granted and released by its callback");
            }
        });
    }

    /// The callback of `release_races_the_call`: spins a varying while, so that the release
    /// on the other thread comes during the call or after it.
    unsafe extern "C" fn linger(_: *mut c_void, _: *mut c_void) {
        static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let k = CALLS.fetch_add(1, Ordering::Relaxed);
        let spins = if cfg!(miri) { k % 3 } else { (k * 7919) % 4000 };
        for _ in 0..spins {
            std::hint::spin_loop();
        }
    }

    /// A set granted at once, released by another thread as soon as it is published, with
    /// nobody waiting for anybody: the release comes during the callback (then whichever of
    /// the call and the release comes second recycles the allocation) or after the call.
    /// Natively the three orders each happen; under Miri every seed reaches the middle one.
    /// (From the review of the in-place sets.)
    #[test]
    fn release_races_the_call() {
        with_resource(linger, |r, cb| {
            let mut list = [r];
            let mut excl: c_ulong = 1;
            let (n, bm, ls) = (1, &mut excl as *mut c_ulong, list.as_mut_ptr());
            let none = std::ptr::null_mut();
            for _ in 0..if cfg!(miri) { 20 } else { 5000 } {
                let word = AtomicPtr::new(std::ptr::null_mut::<kds_resource_set>());
                std::thread::scope(|s| {
                    s.spawn(|| {
                        while word.load(Ordering::Acquire).is_null() {
                            std::hint::spin_loop();
                        }
                        // SAFETY: the word is accessed only through this library meanwhile.
                        unsafe { kds_resource_set_release(word.as_ptr()) };
                    });
                    let flags = KDS_FLAG_LOCKED_WAIT;
                    // SAFETY: live resource and callback, arrays of one, the word as above.
                    let rc = unsafe {
                        kds_async_waitall(word.as_ptr(), flags, cb, none, none, n, bm, ls)
                    };
                    assert_eq!(rc, 0);
                });
                assert!(word.load(Ordering::Acquire).is_null());
            }
        });
    }

    /// Sets over the inline room (a heap list in the in-place request), a build that fails
    /// half way (a partial list left in the cached allocation), and every resource terminated
    /// and its C storage freed while cached allocations still hold stale requests naming
    /// them: the later calls rebuild over them without reading them. (From the review.)
    #[test]
    fn spilled_requests_and_terminated_resources() {
        const N: usize = 12;
        let mut rs: Vec<MaybeUninit<kds_resource>> =
            (0..N).map(|_| MaybeUninit::zeroed()).collect();
        let mut c = MaybeUninit::<kds_callback>::zeroed();
        let (c, none) = (c.as_mut_ptr(), std::ptr::null_mut());
        let flags = KDS_FLAG_LOCKED_WAIT;
        // SAFETY: zeroed storage of the right types, used by this thread only; arrays of N.
        unsafe {
            for r in rs.iter_mut() {
                kds_resource_init(r.as_mut_ptr());
            }
            assert_eq!(kds_callback_init(c, 1, Some(linger)), 0);
            let mut list: Vec<*mut kds_resource> = rs.iter_mut().map(|r| r.as_mut_ptr()).collect();
            let (n, ls) = (N as c_int, list.as_mut_ptr());
            let mut bm: c_ulong = 0b1010_1010_1010;
            let mut s = std::ptr::null_mut();
            assert_eq!(
                kds_async_waitall(&mut s, flags, c, none, none, n, &mut bm, ls),
                0
            );
            assert!(!s.is_null());
            assert!(kds_waitall(n, &mut bm, ls, 0).is_null(), "held");
            kds_resource_set_release(&mut s);
            let mut h = kds_waitall(n, &mut bm, ls, KDS_WAIT_BLOCKING);
            assert!(!h.is_null() && !is_err(h));
            kds_resource_set_release(&mut h);
            let saved = list[10];
            list[10] = std::ptr::null_mut();
            assert!(is_err(kds_waitall(
                n,
                &mut bm,
                list.as_mut_ptr(),
                KDS_WAIT_BLOCKING
            )));
            list[10] = saved;
            let mut s = std::ptr::null_mut();
            assert_eq!(
                kds_async_waitall(&mut s, flags, c, none, none, n, &mut bm, list.as_mut_ptr()),
                0
            );
            kds_resource_set_release(&mut s);
            for r in rs.iter_mut() {
                kds_resource_term(r.as_mut_ptr());
            }
            drop(rs);
            let mut r2 = MaybeUninit::<kds_resource>::zeroed();
            kds_resource_init(r2.as_mut_ptr());
            let mut l2 = [r2.as_mut_ptr()];
            let mut one: c_ulong = 1;
            for _ in 0..3 {
                let mut h = kds_waitall(1, &mut one, l2.as_mut_ptr(), KDS_WAIT_BLOCKING);
                assert!(!h.is_null() && !is_err(h));
                let mut s = std::ptr::null_mut();
                assert_eq!(
                    kds_async_waitall(&mut s, flags, c, none, none, 1, &mut one, l2.as_mut_ptr()),
                    0
                );
                assert!(!s.is_null(), "queued behind the sync set");
                kds_resource_set_release(&mut h);
                kds_resource_set_release(&mut s);
                let mut probe = kds_waitall(1, &mut one, l2.as_mut_ptr(), 0);
                assert!(!probe.is_null() && !is_err(probe), "free again");
                kds_resource_set_release(&mut probe);
            }
            kds_callback_term(c);
            kds_resource_term(r2.as_mut_ptr());
        }
    }

    /// What the `release_sync` tests' callback does: marks its start, spins while `hold`,
    /// marks its end; with `own` non-null, release_syncs its own set (`*own`) first.
    struct Slow {
        started: AtomicBool,
        hold: AtomicBool,
        finished: AtomicBool,
        /// The address of the set's `*pprset` word, or 0.
        own_slot: usize,
    }

    unsafe extern "C" fn slow(p1: *mut c_void, _: *mut c_void) {
        // SAFETY: the tests pass a `Slow` that outlives every callback (they drain them).
        let s = unsafe { &*(p1 as *const Slow) };
        if s.own_slot != 0 {
            let slot = s.own_slot as *mut *mut kds_resource_set;
            // Inside its own callback: releases, never waits for itself.
            // SAFETY: the slot the test's request wrote, accessed only through the library.
            unsafe { kds_resource_set_release_sync(slot) };
            // SAFETY: as above.
            let word = unsafe { AtomicPtr::from_ptr(slot) };
            assert!(word.load(Ordering::Acquire).is_null());
        }
        s.started.store(true, Ordering::SeqCst);
        while s.hold.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        s.finished.store(true, Ordering::SeqCst);
    }

    fn new_slow(own_slot: usize) -> Slow {
        Slow {
            started: AtomicBool::new(false),
            hold: AtomicBool::new(own_slot == 0),
            finished: AtomicBool::new(false),
            own_slot,
        }
    }

    fn none_ptr() -> *mut c_void {
        std::ptr::null_mut()
    }

    /// `release_sync` waits for a callback running on another thread: a direct one granted
    /// at once inside another thread's `kds_async_waitall` (a boxed set, `IN_CALL`), and one
    /// on a worker (an `Arc` set, `RUNNING` without `DONE`); called from its own callback,
    /// on either kind, it releases and returns. Under Miri this checks the waiter hand-over
    /// (the `waiter` cell, `SYNC_WAITER`, `DONE`) for data races.
    #[test]
    fn release_sync_waits_for_a_running_callback() {
        let mut r = MaybeUninit::<kds_resource>::zeroed();
        let mut direct = MaybeUninit::<kds_callback>::zeroed();
        let mut worker = MaybeUninit::<kds_callback>::zeroed();
        let (r, direct, worker) = (r.as_mut_ptr(), direct.as_mut_ptr(), worker.as_mut_ptr());
        // SAFETY: zeroed storage of the right types; the library is the only other user.
        unsafe {
            kds_resource_init(r);
            assert_eq!(kds_callback_init(direct, 1, Some(slow)), 0);
            assert_eq!(kds_callback_init(worker, 0, Some(slow)), 0);
        }
        let mut list = [r];
        let mut excl: c_ulong = 1;
        let (bm, ls) = (&mut excl as *mut c_ulong, list.as_mut_ptr());
        let none = none_ptr();
        let flags = KDS_FLAG_LOCKED_WAIT;
        // Addresses, to cross to the requesting thread (raw pointers are not `Send`).
        let (bmu, lsu) = (bm as usize, ls as usize);
        for cb in [direct, worker] {
            let slow = new_slow(0);
            let word = AtomicPtr::new(std::ptr::null_mut::<kds_resource_set>());
            let (cbu, pu) = (cb as usize, &slow as *const Slow as usize);
            std::thread::scope(|sc| {
                // The request (for the direct callback object, its callback runs in here).
                sc.spawn(|| {
                    let (cb, p) = (cbu as *mut kds_callback, pu as *mut c_void);
                    let (bm, ls) = (bmu as *mut c_ulong, lsu as *mut *mut kds_resource);
                    // SAFETY: live resource and callback, arrays of one, the word accessed
                    // only through the library meanwhile.
                    let rc = unsafe {
                        kds_async_waitall(word.as_ptr(), flags, cb, p, none_ptr(), 1, bm, ls)
                    };
                    assert_eq!(rc, 0);
                });
                while !slow.started.load(Ordering::SeqCst) {
                    std::thread::yield_now();
                }
                sc.spawn(|| {
                    for _ in 0..50 {
                        std::thread::yield_now();
                    }
                    slow.hold.store(false, Ordering::SeqCst);
                });
                // SAFETY: as above.
                unsafe { kds_resource_set_release_sync(word.as_ptr()) };
                assert!(
                    slow.finished.load(Ordering::SeqCst),
                    "returned while it ran"
                );
                assert!(word.load(Ordering::Acquire).is_null());
            });
        }
        // From its own callback: a boxed set (direct, granted at once) and an Arc set (worker).
        for cb in [direct, worker] {
            let mut own: *mut kds_resource_set = std::ptr::null_mut();
            let slot = &mut own as *mut *mut kds_resource_set;
            let slow = new_slow(slot as usize);
            let p = &slow as *const Slow as *mut c_void;
            // SAFETY: as above; `slot` outlives the callback (drained below).
            unsafe {
                assert_eq!(kds_async_waitall(slot, flags, cb, p, none, 1, bm, ls), 0);
            }
            while !slow.finished.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
            // SAFETY: the word, accessed only through the library (done with it now).
            assert!(unsafe { AtomicPtr::from_ptr(slot) }
                .load(Ordering::Acquire)
                .is_null());
        }
        // SAFETY: every callback has run (the worker's is drained by its term).
        unsafe {
            kds_callback_term(worker);
            kds_callback_term(direct);
            let mut probe = kds_waitall(1, bm, ls, 0);
            assert!(!probe.is_null() && !is_err(probe), "left free");
            kds_resource_set_release(&mut probe);
            assert_eq!(crate::resource::kds_resource_term(r), 0);
        }
    }

    /// The state bits are distinct single bits.
    #[test]
    fn state_bits() {
        let all = [
            BOXED,
            RUNNING,
            RELEASED,
            PENDING_READY,
            IN_CALL,
            DONE,
            SYNC_WAITER,
        ];
        for (i, a) in all.iter().enumerate() {
            assert_eq!(a.count_ones(), 1);
            for b in &all[i + 1..] {
                assert_eq!(a & b, 0);
            }
        }
    }
}
