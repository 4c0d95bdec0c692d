//! [`Waiter`]: how the client of one request waits for its grant, stored in the request.
//!
//! Each waiter has a one-word state, `EMPTY -> PARKED -> DELIVERED` (or `EMPTY ->
//! DELIVERED`): the granting thread and the blocked thread meet on one read-modify-write of
//! that word, so a wake-up cannot be lost and no store-load fence is needed.
//!
//! A waiter is generic over the request `R` that holds it (each engine's own request type),
//! and knows nothing of guards: a callback receives the granted request (`Arc<R>`), and the
//! front end's closure turns it into a guard.

use crate::sync::{thread, AtomicU8, Ordering, Thread, UnsafeCell};
use crate::worker::Dispatch;
use atomic_waker::AtomicWaker;
use std::sync::Arc;

/// A request type whose grant can be delivered: each engine's request, which holds its
/// client's [`Waiter`].
pub(crate) trait Waited: Send + Sync + Sized + 'static {
    /// The waiter stored in the request.
    fn waiter(&self) -> &Waiter<Self>;
}

/// The grant callback of an async request: called with the granted request.
pub(crate) type Callback<R> = Box<dyn FnOnce(Arc<R>) + Send + 'static>;

pub(super) const EMPTY: u8 = 0;
pub(super) const PARKED: u8 = 1;
pub(super) const DELIVERED: u8 = 2;

/// How the client of one request waits for its grant.
pub(crate) struct Waiter<R> {
    /// `EMPTY`, `PARKED` (a thread is or is about to be parked) or `DELIVERED`.
    pub(super) state: AtomicU8,
    pub(super) kind: Kind<R>,
    /// When the grant was delivered (feature `timeline`; zero-sized without it).
    pub(crate) stamp: crate::timeline::Stamp,
}

pub(super) enum Kind<R> {
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
        f: UnsafeCell<Option<Callback<R>>>,
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
unsafe impl<R> Sync for Waiter<R> {}

impl<R> Waiter<R> {
    /// A waiter for a blocking (or try-) acquisition on the calling thread.
    pub(crate) fn thread() -> Self {
        Waiter {
            state: AtomicU8::new(EMPTY),
            kind: Kind::Thread(UnsafeCell::new(None)),
            stamp: Default::default(),
        }
    }

    /// A waiter for a future.
    pub(crate) fn future() -> Self {
        Waiter {
            state: AtomicU8::new(EMPTY),
            kind: Kind::Future(AtomicWaker::new()),
            stamp: Default::default(),
        }
    }

    /// A waiter that runs `f` with the granted request.
    pub(crate) fn callback(dispatch: Dispatch, f: Callback<R>) -> Self {
        Waiter {
            state: AtomicU8::new(EMPTY),
            kind: Kind::Callback {
                direct: matches!(dispatch, Dispatch::Direct),
                dispatch: UnsafeCell::new(Some(dispatch)),
                f: UnsafeCell::new(Some(f)),
            },
            stamp: Default::default(),
        }
    }

    /// Whether the grant has been delivered.
    #[inline]
    pub(crate) fn is_delivered(&self) -> bool {
        // Acquire: pairs with the deliverer's AcqRel swap, so the holder sees the engine's
        // grant (and everything released before it) once it sees DELIVERED.
        self.state.load(Ordering::Acquire) == DELIVERED
    }

    /// Whether a thread waits (a sync set): its grant needs no delivery when the enqueue
    /// itself grants it, the caller holds the set at once.
    pub(crate) fn is_thread(&self) -> bool {
        matches!(self.kind, Kind::Thread(_))
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
    /// The request's grant will never be delivered: the engine's `cancel` returned `true` for
    /// it, or its `enqueue` refused it. (Then no deliverer can be reading the callback cell.)
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
