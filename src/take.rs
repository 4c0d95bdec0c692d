//! Taking a set, the steps every request path shares: the fast attempt, the engine request,
//! its enqueue (with the delivery of what that granted), and the blocking wait.
//!
//! These work on entries and on the engine's requests only; the callers (`set.rs`,
//! `future.rs`) make guards of what they return.

use crate::backoff::{spin_then_yield, Waiting};
use crate::delivery::{self, flush, Waited, Waiter};
use crate::engine::{Engine, Enqueued, Entry, Holder, SetKind, MAX_SET_LEN};
use crate::error::Error;
use crate::interrupt::Interrupt;
use crate::sync::{park_timeout, thread};
use crate::timeline;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Takes `entries` on the engine's fast path for `holder`, if the engine has one and every
/// resource is free: `true` if held (release with `Ops::release_fast`). A set over
/// `MAX_SET_LEN` is left to the queued way, which refuses it.
#[inline]
pub(crate) fn take_fast<E: Engine>(entries: &[Entry<'_, E::Core>], holder: Holder) -> bool {
    if !E::FAST_PATH || entries.len() > MAX_SET_LEN {
        return false;
    }
    if E::try_fast(entries, holder) {
        return true;
    }
    // A failed attempt may have granted sets queued behind its transient holds.
    flush();
    false
}

/// The engine's request for `entries` (in set order), or `Error::BadSet` for a set over
/// [`MAX_SET_LEN`].
pub(crate) fn new_request<E: Engine>(
    entries: &[Entry<'_, E::Core>],
    kind: SetKind,
    waiter: Waiter<E::Request>,
) -> Result<Arc<E::Request>, Error> {
    if entries.len() > MAX_SET_LEN {
        return Err(Error::BadSet("more than MAX_SET_LEN resources in one set"));
    }
    Ok(E::new_request(entries, kind, waiter))
}

/// Enqueues `req` and delivers what that granted. `Ok(true)`: `req` itself is granted
/// already (for a thread waiter, nothing more happens: the caller holds the set).
pub(crate) fn enqueue<E: Engine>(req: &Arc<E::Request>) -> Result<bool, Error> {
    let enqueued = E::enqueue(req);
    if enqueued == Ok(Enqueued::GrantedNow) && !req.waiter().is_thread() {
        delivery::push(Arc::clone(req));
    }
    flush();
    enqueued.map(|e| e == Enqueued::GrantedNow)
}

/// The deadline `timeout` from now, or none if that instant cannot be represented (the wait
/// then has no deadline: it would outlast the process anyway). Never panics.
pub(crate) fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// The queued way of `try_acquire` (after the fast path, if any, refused): enqueue a sync
/// request, and cancel it unless granted at once. The granted request, or `WouldBlock`.
#[inline(never)]
pub(crate) fn try_queued<E: Engine>(
    entries: &[Entry<'_, E::Core>],
) -> Result<Arc<E::Request>, Error> {
    let req = new_request::<E>(entries, SetKind::SYNC, Waiter::thread())?;
    if enqueue::<E>(&req)? || E::is_granted(&req) || !E::cancel(&req) {
        return Ok(req);
    }
    flush();
    Err(Error::WouldBlock)
}

/// The queued way of a blocking wait (after the fast path, if any, refused): enqueue a sync
/// request and block until it is granted (the granted request), the deadline passes
/// (`Timeout`) or `interrupt` fires (`Interrupted`); on an error nothing is left queued.
#[inline(never)]
pub(crate) fn wait_queued<E: Engine>(
    entries: &[Entry<'_, E::Core>],
    deadline: Option<Instant>,
    interrupt: Option<&Interrupt>,
) -> Result<Arc<E::Request>, Error> {
    let req = new_request::<E>(entries, SetKind::SYNC, Waiter::thread())?;
    if enqueue::<E>(&req)? {
        return Ok(req);
    }
    let waiter = req.waiter();
    // Inside a direct callback, grants this thread owes others must go out before it
    // blocks (one of them may be what frees our set).
    delivery::flush_before_blocking();
    let waiting = Waiting::enter();
    let spin_began = timeline::now();
    let won = spin_then_yield(|| waiter.is_delivered(), deadline, waiting.crowded());
    timeline::spun(spin_began, won);
    if won {
        timeline::running(&waiter.stamp, false);
        return Ok(req);
    }
    let mut parked = false;
    let me = thread::current();
    if let Some(int) = interrupt {
        int.register(&me);
    }
    let outcome = loop {
        if !waiter.announce_park() || waiter.is_delivered() {
            break None;
        }
        if interrupt.is_some_and(Interrupt::is_interrupted) {
            break Some(Error::Interrupted);
        }
        parked = true;
        match deadline {
            None => thread::park(),
            Some(deadline) => {
                let now = Instant::now();
                if now >= deadline {
                    break Some(Error::Timeout);
                }
                park_timeout(deadline - now);
            }
        }
    };
    if let Some(int) = interrupt {
        int.unregister(&me);
    }
    match outcome {
        None => {
            timeline::running(&waiter.stamp, parked);
            Ok(req)
        }
        Some(err) => {
            waiter.withdraw_park();
            if E::cancel(&req) {
                flush();
                Err(err)
            } else {
                // Too late to cancel: the set is granted and ours (spec rule 7).
                Ok(req)
            }
        }
    }
}
