//! [`DmaBufPending`]: a callback request, from its kds place through its fence wait to its
//! delivery, and its cancel.
//!
//! A request is in one phase at a time, kept under a small mutex (each step around it is a
//! system call or a kds call, so the mutex costs nothing that shows):
//!
//! - `Queued`: kds has not delivered its grant to us. Cancel asks kds first; if kds says
//!   too late, the grant is on its way to `granted`, which will find `CancelRequested`.
//! - `Fencing`: we hold the kds grant and the reactor waits for the sync files. Cancel takes
//!   the reactor's closure back (which releases the set) or finds it fired.
//! - `Delivered`, `Cancelled`: final.

use crate::buffer::{pending_fences, DmaBuf};
use crate::error::Error;
use crate::guard::DmaBufGuard;
use crate::reactor::{ready_now, Delivering, Reactor, Token};
use kds::{Access, Dispatch, Guard, Pending, ResourceSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

/// An async dma-buf request whose callback has not necessarily run yet.
///
/// As with [`kds::Pending`], dropping it does not cancel the request.
pub struct DmaBufPending {
    shared: Arc<Shared>,
}

struct Shared {
    phase: Mutex<Phase>,
}

enum Phase {
    /// Queued in kds (the `Pending`, once `on_grant` has returned it).
    Queued(Option<Pending>),
    /// Granted by kds, waiting for fences in the reactor.
    Fencing(Token),
    /// Granted by kds while a cancel was under way: `granted` releases it.
    CancelRequested,
    /// The callback runs (or ran, or has its error).
    Delivered,
    /// Withdrawn: the callback will never run.
    Cancelled,
}

type Callback = Box<dyn FnOnce(Result<DmaBufGuard<'static>, Error>) + Send>;

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl DmaBufPending {
    pub(crate) fn request<F>(
        set: &ResourceSet<'_>,
        bufs: Vec<(DmaBuf, Access)>,
        dispatch: Dispatch,
        callback: F,
    ) -> Result<DmaBufPending, Error>
    where
        F: FnOnce(Result<DmaBufGuard<'static>, Error>) + Send + 'static,
    {
        let shared = Arc::new(Shared {
            phase: Mutex::new(Phase::Queued(None)),
        });
        let (s, d) = (shared.clone(), dispatch.clone());
        let callback: Callback = Box::new(callback);
        let pending = set.on_grant(dispatch, move |guard| granted(s, d, guard, bufs, callback))?;
        // The grant may have been delivered already (a direct callback, at once); then the
        // phase has moved on and kds's handle is of no further use.
        if let Phase::Queued(slot) = &mut *shared.lock() {
            *slot = Some(pending);
        }
        Ok(DmaBufPending { shared })
    }

    /// Withdraws the request. `true`: the callback will never run. Nothing stays queued: the
    /// set's kds place is given up, or, if kds had granted it already, its grant is released
    /// (at once if it was waiting for fences, whose sync files are closed; else by the thread
    /// delivering the kds grant, which finds the request withdrawn). `false`: too late, the
    /// callback runs or ran.
    pub fn cancel(self) -> bool {
        let queued = match &mut *self.shared.lock() {
            Phase::Queued(slot) => slot.take(),
            _ => None,
        };
        if let Some(pending) = queued {
            if pending.cancel() {
                *self.shared.lock() = Phase::Cancelled;
                return true;
            }
        }
        let mut phase = self.shared.lock();
        match &*phase {
            Phase::Queued(_) => {
                // kds granted it, and `granted` has not run yet: it will release the set.
                *phase = Phase::CancelRequested;
                true
            }
            Phase::Fencing(token) => {
                let taken = Reactor::get().ok().and_then(|r| r.cancel(*token));
                match taken {
                    Some(ready) => {
                        *phase = Phase::Cancelled;
                        drop(phase);
                        drop(ready); // releases the set: may run others' direct callbacks
                        true
                    }
                    None => false, // fired: the callback is on its way
                }
            }
            Phase::CancelRequested | Phase::Cancelled => true,
            Phase::Delivered => false,
        }
    }

    /// Whether the callback has been released to run (kds granted the set and its fences
    /// signalled, or the fence wait failed). A snapshot.
    pub fn is_granted(&self) -> bool {
        matches!(*self.shared.lock(), Phase::Delivered)
    }

    /// Whether kds has granted the set and it now waits for its buffers' fences (it holds
    /// its place: later requests queue behind it). A snapshot.
    pub fn is_waiting_for_fences(&self) -> bool {
        matches!(*self.shared.lock(), Phase::Fencing(_))
    }
}

/// The kds grant arrived (on the thread `dispatch` names): deliver now if the fences have
/// signalled, else hand the wait to the reactor.
fn granted(
    shared: Arc<Shared>,
    dispatch: Dispatch,
    guard: Guard<'static>,
    bufs: Vec<(DmaBuf, Access)>,
    callback: Callback,
) {
    let mut phase = shared.lock();
    if matches!(*phase, Phase::CancelRequested) {
        *phase = Phase::Cancelled;
        drop(phase);
        drop(guard);
        return;
    }
    let mut fences = match pending_fences(&bufs) {
        Ok(f) => f,
        Err(e) => return fail(phase, guard, callback, e),
    };
    let ordered = matches!(dispatch, Dispatch::Worker(_));
    if fences.is_empty() && ordered && Reactor::started().is_some_and(|r| r.busy()) {
        // Ready at once, but sets that became ready before it may still be on their way
        // through the reactor to this worker: queue behind them (see `Reactor::busy`). Only
        // for a worker, which promises grant order: a direct callback runs on whichever
        // thread completes its grant, as in kds (and must not be moved onto the reactor
        // thread, where a callback that waits for another delivery would wait for ever).
        match ready_now() {
            Ok(fd) => fences.push(fd),
            Err(e) => return fail(phase, guard, callback, e),
        }
    }
    if fences.is_empty() {
        *phase = Phase::Delivered;
        drop(phase);
        callback(Ok(DmaBufGuard::new(guard, bufs)));
        return;
    }
    let reactor = match Reactor::get() {
        Ok(r) => r,
        Err(e) => return fail(phase, guard, callback, e),
    };
    // What the delivery needs, in a slot that the reactor's closure shares with this
    // function: should the reactor refuse the wait, the callback is still here to be told.
    let slot = Arc::new(Mutex::new(Some((guard, bufs, callback))));
    let (s, taken) = (shared.clone(), slot.clone());
    // Runs on the reactor thread once every fence has signalled, unless cancelled first
    // (then dropping it drops the slot's last handle: the guard releases the set).
    let ready = Box::new(move |delivering: Delivering| {
        *s.lock() = Phase::Delivered;
        let parts = taken.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((guard, bufs, callback)) = parts {
            let guard = DmaBufGuard::new(guard, bufs);
            dispatch.run(move || {
                // Delivered once the callback starts: later grants may go ahead of nothing.
                drop(delivering);
                callback(Ok(guard));
            });
        }
    });
    match reactor.watch(fences, ready) {
        Ok(token) => {
            // The phase lock is held: a reactor that fired already waits for it in `ready`
            // and then moves the phase on to `Delivered`.
            *phase = Phase::Fencing(token);
        }
        Err((e, ready)) => {
            drop(ready);
            let parts = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some((guard, _, callback)) = parts {
                fail(phase, guard, callback, e);
            }
        }
    }
}

/// The fence wait could not start: release the set, then hand the callback the error.
fn fail(mut phase: MutexGuard<'_, Phase>, guard: Guard<'static>, callback: Callback, e: Error) {
    *phase = Phase::Delivered;
    drop(phase);
    drop(guard);
    callback(Err(e));
}

impl fmt::Debug for DmaBufPending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let phase = match &*self.shared.lock() {
            Phase::Queued(_) => "queued",
            Phase::Fencing(_) => "waiting for fences",
            Phase::CancelRequested | Phase::Cancelled => "cancelled",
            Phase::Delivered => "granted",
        };
        f.debug_struct("DmaBufPending")
            .field("phase", &phase)
            .finish()
    }
}
