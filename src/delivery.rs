//! Grant delivery: how a grant that an engine decided reaches its client.
//!
//! Engines never run user code. When an engine operation grants a request it pushes the
//! request onto the calling thread's *delivery queue*; the front end drains that queue with
//! [`flush`] after the engine operation has returned, that is when the engine holds nothing
//! another client needs (spec rule 9). Draining is a trampoline: a direct callback that
//! releases a set, whose release grants the next set, only pushes that grant onto the queue
//! that the outer `flush` is already draining, so a chain of direct callbacks runs in a loop
//! and the stack does not grow with the chain.
//!
//! Each waiter has a one-word state, `EMPTY -> PARKED -> DELIVERED` (or `EMPTY ->
//! DELIVERED`): the granting thread and the blocked thread meet on one read-modify-write of
//! that word, so a wake-up cannot be lost and no store-load fence is needed.

use crate::engine::{Engine, Enqueued};
use crate::guard::Guard;
use crate::sync::{thread, thread_local, AtomicU8, Ordering, Thread, UnsafeCell};
use crate::worker::Dispatch;
use atomic_waker::AtomicWaker;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

/// A request whose grant can be delivered; implemented by each engine's request type.
pub trait Deliver: Send + Sync {
    /// Deliver the grant (wake the thread or future, or dispatch the callback).
    fn deliver(self: Arc<Self>);
    /// Run the grant callback here (on a worker or pool thread).
    fn run_callback(self: Arc<Self>);
    /// Whether delivering runs user code on the delivering thread (a direct callback).
    fn is_direct(&self) -> bool;
}

/// The grant callback of an async request.
pub type Callback<E> = Box<dyn FnOnce(Guard<E>) + Send + 'static>;

const EMPTY: u8 = 0;
const PARKED: u8 = 1;
const DELIVERED: u8 = 2;

/// How the client of one request waits for its grant.
pub struct Waiter<E: Engine> {
    /// `EMPTY`, `PARKED` (a thread is or is about to be parked) or `DELIVERED`.
    state: AtomicU8,
    kind: Kind<E>,
}

enum Kind<E: Engine> {
    /// A blocked thread (sync sets). The handle is stored by the waiting thread itself, only
    /// when it is about to park, before it publishes `PARKED`.
    Thread(UnsafeCell<Option<Thread>>),
    /// A future's waker.
    Future(AtomicWaker),
    /// A callback and where it runs. The deliverer takes the dispatch (a `Worker` handle is
    /// given up once the job is sent) and whoever runs the callback takes the closure, so a
    /// request that outlives its grant (a removed link lingering in a queue) keeps nothing
    /// the client handed in.
    Callback {
        /// Whether the callback runs on the delivering thread (`Dispatch::Direct`).
        direct: bool,
        /// Taken exactly once, by the delivering thread.
        dispatch: UnsafeCell<Option<Dispatch>>,
        /// Taken exactly once, by the thread that runs the callback.
        f: UnsafeCell<Option<Callback<E>>>,
    },
}

// SAFETY: the dispatch and callback cells are written only at construction. The dispatch is
// taken only by the one thread that delivers the grant, which the engine's exactly-once grant
// makes unique (rule 5); the callback only by the thread that runs it, which that deliverer
// picks (itself, or the one worker or pool job it hands the request to, through a channel or
// spawn that orders the two). Both are taken instead by `forget_client` when no grant can ever
// be delivered (a cancel that won against the grant on the request's state word, or a refused
// enqueue), so never while a deliverer may touch them. The thread cell is written only by the
// waiting thread while `state` is `EMPTY` (before its CAS to `PARKED`, Release, or after its
// CAS from `PARKED` back to `EMPTY` in `withdraw_park`), and taken by the deliverer only
// after its swap saw `PARKED` (Acquire). Every other field is Sync. The callback and the
// dispatch are `Send`.
unsafe impl<E: Engine> Sync for Waiter<E> {}

impl<E: Engine> Waiter<E> {
    /// A waiter for a blocking (or try-) acquisition on the calling thread.
    pub(crate) fn thread() -> Self {
        Waiter {
            state: AtomicU8::new(EMPTY),
            kind: Kind::Thread(UnsafeCell::new(None)),
        }
    }

    /// A waiter for a future.
    pub(crate) fn future() -> Self {
        Waiter {
            state: AtomicU8::new(EMPTY),
            kind: Kind::Future(AtomicWaker::new()),
        }
    }

    /// A waiter that runs `f` with the guard.
    pub(crate) fn callback(dispatch: Dispatch, f: Callback<E>) -> Self {
        Waiter {
            state: AtomicU8::new(EMPTY),
            kind: Kind::Callback {
                direct: matches!(dispatch, Dispatch::Direct),
                dispatch: UnsafeCell::new(Some(dispatch)),
                f: UnsafeCell::new(Some(f)),
            },
        }
    }

    /// Whether the grant has been delivered.
    #[inline]
    pub(crate) fn is_delivered(&self) -> bool {
        // Acquire: pairs with the deliverer's AcqRel swap, so the holder sees the engine's
        // grant (and everything released before it) once it sees DELIVERED.
        self.state.load(Ordering::Acquire) == DELIVERED
    }

    /// Announce that the calling (waiting) thread is about to park. `false`: already
    /// delivered, do not park.
    pub(crate) fn announce_park(&self) -> bool {
        // Acquire: see the grant if it is delivered.
        match self.state.load(Ordering::Acquire) {
            DELIVERED => false,
            PARKED => true,
            _ => {
                if let Kind::Thread(cell) = &self.kind {
                    // SAFETY: state is EMPTY, so no deliverer reads the cell (it reads it only
                    // after seeing PARKED), and only this waiting thread writes it.
                    cell.with_mut(|slot| unsafe { *slot = Some(thread::current()) });
                }
                // AcqRel: publish the handle (Release) and meet the deliverer's swap on this
                // one word; failure means DELIVERED.
                self.state
                    .compare_exchange(EMPTY, PARKED, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            }
        }
    }

    /// Withdraw a park announcement before the waiter stops waiting by itself (timeout or
    /// interrupt), so a late delivery does not unpark the thread for nothing.
    pub(crate) fn withdraw_park(&self) {
        // Relaxed failure: a failed CAS means DELIVERED, which the caller does not read.
        let withdrawn = self
            .state
            .compare_exchange(PARKED, EMPTY, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok();
        if let (true, Kind::Thread(cell)) = (withdrawn, &self.kind) {
            // SAFETY: the state is EMPTY again, so no deliverer reads the cell (it reads it
            // only after its swap saw PARKED), and only this waiting thread writes it. The
            // handle is not left in a request that may linger in a queue.
            drop(cell.with_mut(|slot| unsafe { (*slot).take() }));
        }
    }

    /// Whether delivery runs a callback on the delivering thread.
    pub(crate) fn is_direct(&self) -> bool {
        matches!(self.kind, Kind::Callback { direct: true, .. })
    }

    /// Drops what the client left in the waiter (a callback closure, a future's waker) once
    /// the grant can never be delivered: a cancelled or refused request may stay allocated
    /// while a removed link of it lingers in a queue, and a closure that captured a handle of
    /// that very resource would otherwise keep the resource, and so the request, alive for
    /// ever (a reference cycle; the concurrent fuzz target found it).
    ///
    /// # Safety
    ///
    /// The request's grant will never be delivered: `Engine::cancel` returned `true` for it,
    /// or `Engine::enqueue` refused it. (Then no deliverer can be reading the callback cell.)
    pub(crate) unsafe fn forget_client(&self) {
        match &self.kind {
            Kind::Callback { dispatch, f, .. } => {
                // SAFETY: only a deliverer takes the dispatch, and by the caller's contract
                // there is none; the request's owner (our caller) is the only one left.
                let dispatch = dispatch.with_mut(|slot| unsafe { (*slot).take() });
                // SAFETY: likewise, only the thread a deliverer picks takes the callback.
                let callback = f.with_mut(|slot| unsafe { (*slot).take() });
                drop((dispatch, callback));
            }
            Kind::Future(_) => drop(self.take_waker()),
            Kind::Thread(_) => {}
        }
    }

    /// Register a future's waker (no-op for other waiters).
    pub(crate) fn register_waker(&self, waker: &std::task::Waker) {
        if let Kind::Future(w) = &self.kind {
            w.register(waker);
        }
    }

    /// Drops a future's registered waker (no-op for other waiters). A future calls it once it
    /// resolves: the waker is never needed again, and a waker that holds a handle of the very
    /// resource the request lingers on would otherwise make a reference cycle (issue 8).
    /// It returns the waker rather than dropping it, so the caller can make the guard first:
    /// a waker whose drop panics must not leave a granted set without a guard to release it.
    pub(crate) fn take_waker(&self) -> Option<std::task::Waker> {
        match &self.kind {
            Kind::Future(w) => w.take(),
            _ => None,
        }
    }
}

/// After `Engine::cancel` returned `true` for `req` (or `Engine::enqueue` refused it): drops
/// what the client left in its waiter, and delivers the grants this thread owes, even if that
/// drop panics (a closure capturing something whose `Drop` panics): the sets that the cancel
/// enabled must not wait for this thread's next kds call. The panic is then resumed.
///
/// # Safety
///
/// As for [`Waiter::forget_client`]: `req`'s grant will never be delivered.
pub(crate) unsafe fn withdrawn<E: Engine>(req: &E::Request) {
    // SAFETY: the caller's contract is `forget_client`'s.
    let dropped = catch_unwind(AssertUnwindSafe(|| unsafe {
        E::waiter(req).forget_client()
    }));
    flush();
    if let Err(panic) = dropped {
        std::panic::resume_unwind(panic);
    }
}

/// Enqueues `req` and delivers what that granted. `Ok(true)`: `req` itself is granted
/// already (for a thread waiter, nothing more happens: the caller holds the set).
pub(crate) fn enqueue<E: Engine>(req: &Arc<E::Request>) -> Result<bool, crate::Error> {
    let enqueued = E::enqueue(req);
    if enqueued == Ok(Enqueued::GrantedNow) && !matches!(E::waiter(req).kind, Kind::Thread(_)) {
        push(Arc::clone(req) as Arc<dyn Deliver>);
    }
    flush();
    enqueued.map(|e| e == Enqueued::GrantedNow)
}

/// Deliver the grant of `req`, on the thread whose engine operation completed it.
pub(crate) fn deliver<E: Engine>(req: Arc<E::Request>) {
    let waiter = E::waiter(&req);
    match &waiter.kind {
        Kind::Thread(cell) => {
            // AcqRel: publish the grant to the waiter and see whether it parked (one word).
            if waiter.state.swap(DELIVERED, Ordering::AcqRel) == PARKED {
                // SAFETY: the waiter wrote the handle before publishing PARKED, which this
                // swap read, and never touches it again (see `unsafe impl Sync`); taking it
                // leaves nothing of the thread in a request that outlives its grant.
                let thread = cell.with_mut(|slot| unsafe { (*slot).take() });
                if let Some(thread) = thread {
                    thread.unpark();
                }
            }
        }
        Kind::Future(waker) => {
            // Release: the future's Acquire load of DELIVERED sees the grant.
            waiter.state.store(DELIVERED, Ordering::Release);
            waker.wake();
        }
        Kind::Callback { dispatch, .. } => {
            // Release: `Pending::is_granted` readers see the grant.
            waiter.state.store(DELIVERED, Ordering::Release);
            // SAFETY: this thread delivers the request's exactly-once grant: nothing else
            // takes the dispatch (see `unsafe impl Sync`).
            match dispatch.with_mut(|slot| unsafe { (*slot).take() }) {
                Some(Dispatch::Direct) => run_callback::<E>(req),
                // The request keeps no handle of the worker: dropping the last one lets the
                // thread end once it has run the job (see `Worker`).
                Some(Dispatch::Worker(worker)) => worker.send(req),
                Some(Dispatch::Pool) => on_pool(move || {
                    run_callback::<E>(req);
                    // A pool thread may idle for long after this job.
                    crate::lockfree::hand_off_deferred_frees();
                }),
                None => debug_assert!(false, "a grant delivered twice"),
            }
        }
    }
}

/// Run the grant callback of `req` on this thread. A panicking callback is caught: its guard
/// is dropped while unwinding, which releases the set, and the engine stays usable; the panic
/// message has already been printed by the panic hook.
pub(crate) fn run_callback<E: Engine>(req: Arc<E::Request>) {
    let waiter = E::waiter(&req);
    let Kind::Callback { f: cell, .. } = &waiter.kind else {
        return;
    };
    // SAFETY: only the thread the deliverer of this request's (exactly-once) grant picked
    // gets here, once, so nothing else reads or writes the cell at the same time (see
    // `unsafe impl Sync`).
    let f = cell.with_mut(|slot| unsafe { (*slot).take() });
    if let Some(f) = f {
        let guard = Guard::from_granted(req);
        contain(move || f(guard));
    }
    flush();
}

/// Runs `f`, catching a panic (the panic hook has reported it). A payload whose own `Drop`
/// panics must not take down the thread that delivers grants (a `Worker` thread whose later
/// jobs would be lost): each payload is dropped inside a catch of its own, and only a chain of
/// more than eight payloads that all panic on drop is leaked.
pub(crate) fn contain(f: impl FnOnce()) {
    let mut caught = catch_unwind(AssertUnwindSafe(f)).err();
    for _ in 0..8 {
        match caught.take() {
            None => return,
            Some(payload) => caught = catch_unwind(AssertUnwindSafe(move || drop(payload))).err(),
        }
    }
    std::mem::forget(caught);
}

/// Runs `job` on rayon's global pool, or on a thread of its own if that pool cannot start
/// (rayon would panic, and the job, holding a granted request, would be lost). Used for
/// `Dispatch::Pool` and for grants made while a thread's locals are torn down, which must not
/// run on the granting thread (the reference engine may still hold its lock there).
fn on_pool(job: impl FnOnce() + Send + 'static) {
    static POOL_STARTS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let pool = *POOL_STARTS.get_or_init(|| catch_unwind(rayon::current_num_threads).is_ok());
    if pool {
        rayon::spawn(job);
    } else {
        // If even this fails, the system cannot start a thread; the job is dropped with it.
        let _ = std::thread::Builder::new()
            .name("kds-deferred".into())
            .spawn(job);
    }
}

/// This thread's grants waiting for delivery. Wake-ups (threads, futures, workers, the pool)
/// run no user code here and are delivered by every `flush`, even a nested one; direct
/// callbacks are delivered only by the outermost `flush` (the trampoline) or before this
/// thread blocks.
struct Queue {
    wakes: VecDeque<Arc<dyn Deliver>>,
    callbacks: VecDeque<Arc<dyn Deliver>>,
    draining: bool,
}

thread_local! {
    static QUEUE: RefCell<Queue> = RefCell::new(Queue {
        wakes: VecDeque::new(),
        callbacks: VecDeque::new(),
        draining: false,
    });
}

/// Engines call this for every grant they decide.
pub(crate) fn push(req: Arc<dyn Deliver>) {
    let direct = req.is_direct();
    let mut req = Some(req);
    let queued = QUEUE.try_with(|q| {
        let mut q = q.borrow_mut();
        let req = req.take().expect("pushed once");
        if direct {
            q.callbacks.push_back(req);
        } else {
            q.wakes.push_back(req);
        }
    });
    if queued.is_err() {
        // This thread's locals are being torn down (a guard dropped in a thread-local
        // destructor): deliver from the pool instead, never lose the grant.
        let req = req.take().expect("not queued");
        on_pool(move || {
            req.deliver();
            flush();
        });
    }
}

/// Pops the next grant: wake-ups first; callbacks only if `callbacks` is set.
fn pop(callbacks: bool) -> Option<Arc<dyn Deliver>> {
    QUEUE
        .try_with(|q| {
            let mut q = q.borrow_mut();
            q.wakes.pop_front().or_else(|| {
                if callbacks {
                    q.callbacks.pop_front()
                } else {
                    None
                }
            })
        })
        .ok()
        .flatten()
}

/// Delivers one grant. A panic (a waker's, say) is caught, so the rest of the queue is still
/// delivered; the panic hook has already reported it.
fn deliver_one(next: Arc<dyn Deliver>) {
    contain(move || next.deliver());
}

/// Delivers every wake-up queued on this thread, and every direct callback unless an outer
/// `flush` on this thread is already running them (then it will: the trampoline).
pub(crate) fn flush() {
    while let Some(next) = pop(false) {
        deliver_one(next);
    }
    let start = QUEUE
        .try_with(|q| {
            let mut q = q.borrow_mut();
            let start = !q.draining && !q.callbacks.is_empty();
            q.draining |= start;
            start
        })
        .unwrap_or(false);
    if !start {
        return;
    }
    // Reset `draining` even if a delivery unwinds.
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            let _ = QUEUE.try_with(|q| q.borrow_mut().draining = false);
        }
    }
    let _reset = Reset;
    while let Some(next) = pop(true) {
        deliver_one(next);
    }
}

/// Enters the trampoline to run a direct callback on this thread now (an async set granted
/// at once on the fast path): `None` if this thread is already running direct callbacks
/// (the caller then queues its grant, so a chain of callbacks loops instead of nesting) or is
/// tearing down its locals. Dropping the returned scope leaves the trampoline, even while
/// unwinding, and delivers what was queued meanwhile (direct callbacks of sets that the
/// callback's releases and requests granted).
pub(crate) fn enter_direct() -> Option<DirectScope> {
    let entered = QUEUE
        .try_with(|q| {
            let mut q = q.borrow_mut();
            let enter = !q.draining;
            q.draining = true;
            enter
        })
        .unwrap_or(false);
    // Made only when entered: dropping a `DirectScope` leaves the trampoline.
    if entered {
        Some(DirectScope)
    } else {
        None
    }
}

/// See [`enter_direct`].
pub(crate) struct DirectScope;

impl Drop for DirectScope {
    fn drop(&mut self) {
        let _ = QUEUE.try_with(|q| q.borrow_mut().draining = false);
        // Even while unwinding: every delivery runs inside its own catch (`contain`).
        flush();
    }
}

/// Before this thread blocks (a wait or a future inside a direct callback): deliver
/// everything queued here, direct callbacks included, since the outer `flush` that would run
/// them cannot run while we block. The stack then grows with the nesting of blocking calls
/// inside callbacks, which the caller controls.
pub(crate) fn flush_before_blocking() {
    while let Some(next) = pop(true) {
        deliver_one(next);
    }
}
