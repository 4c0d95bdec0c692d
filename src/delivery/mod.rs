//! Grant delivery: how a grant that an engine decided reaches its client.
//!
//! Engines never run user code. When an engine operation grants a request it pushes the
//! request onto the calling thread's *delivery queue* ([`push`]); the front end drains that
//! queue with [`flush`] after the engine operation has returned, that is when the engine holds
//! nothing another client needs (spec rule 9). Draining is a trampoline: a direct callback
//! that releases a set, whose release grants the next set, only pushes that grant onto the
//! queue that the outer `flush` is already draining, so a chain of direct callbacks runs in a
//! loop and the stack does not grow with the chain.
//!
//! This layer sits beside the engine interface, below the engines: it is generic over the
//! request type ([`Waited`]) and knows no engine and no front-end type. A callback is handed
//! the granted request; the front end's closure makes the guard of it.

mod waiter;

pub(crate) use waiter::{Waited, Waiter};

use crate::sync::{thread_local, Ordering};
use crate::worker::{finish_pool_job, spawn_on_pool, Dispatch, Job};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use waiter::{Kind, DELIVERED, PARKED};

/// A granted request on a thread's delivery queue (every engine's request, through the
/// blanket impl below).
pub(crate) trait Deliver: Send + Sync {
    /// Deliver the grant (wake the thread or future, or dispatch the callback).
    fn deliver(self: Arc<Self>);
    /// Whether delivering runs user code on the delivering thread (a direct callback).
    fn is_direct(&self) -> bool;
}

impl<R: Waited> Deliver for R {
    fn deliver(self: Arc<Self>) {
        deliver(self);
    }
    fn is_direct(&self) -> bool {
        self.waiter().is_direct()
    }
}

impl<R: Waited> Job for R {
    fn run(self: Arc<Self>) {
        run_callback(self);
    }
}

/// After the engine's `cancel` returned `true` for `req` (or its `enqueue` refused it): drops
/// what the client left in its waiter, and delivers the grants this thread owes, even if that
/// drop panics (a closure capturing something whose `Drop` panics): the sets that the cancel
/// enabled must not wait for this thread's next kds call. The panic is then resumed.
///
/// # Safety
///
/// As for [`Waiter::forget_client`]: `req`'s grant will never be delivered.
pub(crate) unsafe fn withdrawn<R: Waited>(req: &R) {
    // SAFETY: the caller's contract is `forget_client`'s.
    let dropped = catch_unwind(AssertUnwindSafe(|| unsafe { req.waiter().forget_client() }));
    flush();
    if let Err(panic) = dropped {
        std::panic::resume_unwind(panic);
    }
}

/// Deliver the grant of `req`, on the thread whose engine operation completed it.
fn deliver<R: Waited>(req: Arc<R>) {
    let waiter = req.waiter();
    match &waiter.kind {
        Kind::Thread(cell) => {
            crate::timeline::delivering(&waiter.stamp);
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
                Some(Dispatch::Direct) => run_callback(req),
                // The request keeps no handle of the worker: dropping the last one lets the
                // thread end once it has run the job (see `Worker`).
                Some(Dispatch::Worker(worker)) => worker.send(req),
                Some(Dispatch::Pool) => spawn_on_pool(move || {
                    run_callback(req);
                    finish_pool_job();
                }),
                None => debug_assert!(false, "a grant delivered twice"),
            }
        }
    }
}

/// Run the grant callback of `req` on this thread. A panicking callback is caught: its guard
/// is dropped while unwinding, which releases the set, and the engine stays usable; the panic
/// message has already been printed by the panic hook.
fn run_callback<R: Waited>(req: Arc<R>) {
    let waiter = req.waiter();
    let Kind::Callback { f: cell, .. } = &waiter.kind else {
        return;
    };
    // SAFETY: only the thread the deliverer of this request's (exactly-once) grant picked
    // gets here, once, so nothing else reads or writes the cell at the same time (see
    // `unsafe impl Sync`).
    let f = cell.with_mut(|slot| unsafe { (*slot).take() });
    if let Some(f) = f {
        // The front end's closure makes the guard of `req` before it calls the user's.
        contain(move || f(req));
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

/// Engines call this for every grant they decide. Generic, so whether the grant runs a
/// direct callback is read before the request becomes a `dyn Deliver`.
pub(crate) fn push<R: Deliver + 'static>(req: Arc<R>) {
    let direct = req.is_direct();
    let mut req = Some(req as Arc<dyn Deliver>);
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
        spawn_on_pool(move || {
            req.deliver();
            flush();
        });
    }
}

/// What [`next`] found to deliver.
enum Next {
    /// A wake-up (or any grant, inside the trampoline).
    Grant(Arc<dyn Deliver>),
    /// The first direct callback of a trampoline that this call has just entered.
    Entered(Arc<dyn Deliver>),
    /// Nothing this call may deliver.
    Nothing,
}

/// Pops the next grant this thread may deliver now, in one borrow of its queue: wake-ups
/// first; then, if `in_trampoline` (this call runs the trampoline), a direct callback, or
/// else, if no outer call runs the trampoline, a direct callback and the trampoline entered
/// with it. Inside the trampoline, an empty queue leaves it (`draining` false) in the same
/// borrow.
fn next(in_trampoline: bool) -> Next {
    QUEUE
        .try_with(|q| {
            let mut q = q.borrow_mut();
            if let Some(next) = q.wakes.pop_front() {
                return Next::Grant(next);
            }
            if in_trampoline {
                return match q.callbacks.pop_front() {
                    Some(next) => Next::Grant(next),
                    None => {
                        q.draining = false;
                        Next::Nothing
                    }
                };
            }
            if q.draining {
                return Next::Nothing;
            }
            match q.callbacks.pop_front() {
                Some(next) => {
                    q.draining = true;
                    Next::Entered(next)
                }
                None => Next::Nothing,
            }
        })
        .unwrap_or(Next::Nothing)
}

/// Pops the next grant, wake-ups first, direct callbacks too (`flush_before_blocking`).
fn pop() -> Option<Arc<dyn Deliver>> {
    QUEUE
        .try_with(|q| {
            let mut q = q.borrow_mut();
            q.wakes.pop_front().or_else(|| q.callbacks.pop_front())
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
/// `flush` on this thread is already running them (then it will: the trampoline). One borrow
/// of the queue per grant, the trampoline entered and left in the same borrows.
pub(crate) fn flush() {
    let first = loop {
        match next(false) {
            Next::Grant(next) => deliver_one(next),
            Next::Entered(first) => break first,
            Next::Nothing => return,
        }
    };
    // Leaves the trampoline if a delivery unwinds (`deliver_one` contains panics, so only a
    // panic it could not contain); the loop's last `next` leaves it otherwise.
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            let _ = QUEUE.try_with(|q| q.borrow_mut().draining = false);
        }
    }
    let reset = Reset;
    deliver_one(first);
    while let Next::Grant(next) = next(true) {
        deliver_one(next);
    }
    std::mem::forget(reset);
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

/// The trampoline of a direct callback that
/// [`ResourceSet::try_grant_now_scoped`](crate::ResourceSet::try_grant_now_scoped) ran on this
/// thread, kept open after it: while it lives, the direct callbacks granted on this thread
/// wait in its queue, as they do inside a callback (a wait that blocks delivers them first);
/// dropping it leaves the trampoline and runs them, with the wake-ups queued meanwhile.
///
/// It belongs to its thread (not `Send`). Drop it soon: the sets whose callbacks it holds
/// are granted, and their callbacks wait for it.
#[must_use = "dropping it runs the direct callbacks that were queued, at once"]
pub struct CallbackScope {
    _scope: DirectScope,
    /// This thread's trampoline: not `Send` or `Sync`.
    _not_send: std::marker::PhantomData<*const ()>,
}

impl CallbackScope {
    pub(crate) fn new(scope: DirectScope) -> Self {
        CallbackScope {
            _scope: scope,
            _not_send: std::marker::PhantomData,
        }
    }
}

impl std::fmt::Debug for CallbackScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackScope").finish_non_exhaustive()
    }
}

impl Drop for DirectScope {
    #[inline]
    fn drop(&mut self) {
        // Leaves the trampoline and sees, in the same borrow, whether anything was queued
        // meanwhile (usually not: then there is nothing to flush).
        let queued = QUEUE
            .try_with(|q| {
                let mut q = q.borrow_mut();
                q.draining = false;
                !(q.wakes.is_empty() && q.callbacks.is_empty())
            })
            .unwrap_or(false);
        if queued {
            // Even while unwinding: every delivery runs inside its own catch (`contain`).
            flush();
        }
    }
}

/// Before this thread blocks (a wait or a future inside a direct callback): deliver
/// everything queued here, direct callbacks included, since the outer `flush` that would run
/// them cannot run while we block. The stack then grows with the nesting of blocking calls
/// inside callbacks, which the caller controls.
pub(crate) fn flush_before_blocking() {
    while let Some(next) = pop() {
        deliver_one(next);
    }
}
