//! The lock-free engine: per-resource lock-free FIFO queues, and a two-phase multi-resource
//! enqueue with helping, so sets are ordered alike on every queue without any global lock.
//!
//! - [`gate`]: one resource's gate word: links reserved, fast-path holders, and the meeting
//!   point of racing operations; the fast path for sync sets on resources with empty queues.
//! - [`queue`]: one resource's queue (a list with Harris's logical deletion) and the
//!   trigger scan that applies the trigger rule to it.
//! - [`request`]: one set's links and its one-word state (decision, trigger count, grant vs
//!   cancel).
//! - [`enqueue`]: the multi-word enqueue (install tentative links in resource order, help
//!   whoever is in the way, decide with one CAS).
//! - `pool`: a per-thread pool of request allocations (the queued path's steady state
//!   allocates nothing).
//!
//! Memory: links live inside their request (one allocation per request); a request stays
//! allocated while any of its links is still physically in a queue (or is a resource's tail
//! hint), and is freed through `crossbeam-epoch` after the last one is unlinked. `docs/design.md` gives the argument for
//! rules 1 to 5. The published work each part follows, and where it departs, is named at the
//! top of `queue.rs` (Harris 2001, Fraser 2004) and `enqueue.rs` (Harris, Fraser and Pratt
//! 2002; Guerraoui, Kogan, Marathe and Zablotchi 2020).

mod enqueue;
mod gate;
#[cfg(not(kds_loom))]
mod pool;
mod queue;
mod request;

use queue::Core;
use request::Request;

use crate::delivery::Waiter;
use crate::engine::{Engine, Enqueued, Entry, Holder, Ops, SetKind};
use crate::error::Error;
use crate::sync::epoch;
use std::fmt;
use std::sync::Arc;

/// The lock-free engine (a type-level marker); `kds::*` uses it. Name it where code is
/// generic over the [`Engine`](crate::Engine):
///
/// ```
/// let r: kds::generic::Resource<kds::LockFree> = kds::Resource::new(); // the same type
/// assert_eq!(<kds::LockFree as kds::Engine>::NAME, "lock-free");
/// # drop(r);
/// ```
#[derive(Debug)]
pub struct LockFree;

impl Engine for LockFree {
    const NAME: &'static str = "lock-free";
}

// Crate-private parameter types in a sealed trait: see `engine::sealed`.
#[allow(private_interfaces)]
impl Ops for LockFree {
    type Core = Core;
    type Request = Request;
    const FAST_PATH: bool = true;

    fn new_request(
        entries: &[Entry<'_, Core>],
        kind: SetKind,
        waiter: Waiter<Request>,
    ) -> Arc<Request> {
        Request::new(entries, kind, waiter)
    }

    fn enqueue(req: &Arc<Request>) -> Result<Enqueued, Error> {
        if req.links.is_empty() {
            // An empty set is created GRANTED (`Request::new`).
            return Ok(Enqueued::GrantedNow);
        }
        // Reserve every link on its resource's gate before any of them can be seen: from now
        // on no fast hold starts there, and the word tells whether holders are in the way.
        for link in &req.links {
            // Our own, unpublished link: the request holds its core, so no pin is needed.
            let core = link.own_core();
            let before = core.gate.reserve();
            let mut reserved = 0;
            if gate::Gate::reserved_behind_holders(before, link.exclusive) {
                reserved |= queue::BEHIND_HOLDERS;
            }
            if gate::Gate::links_in(before) + 1 >= queue::hint_min() {
                reserved |= queue::LONG_QUEUE;
            }
            if reserved != 0 {
                // Relaxed: published by the first append (Release).
                link.reserved
                    .store(reserved, crate::sync::Ordering::Relaxed);
            }
        }
        let pin = &epoch::pin();
        req.take_queue_ref();
        if enqueue::run(req, true, pin) {
            return Ok(Enqueued::GrantedNow);
        }
        if req.phase() == request::FAILED {
            req.drop_resources_later(pin);
            return Err(Error::Busy);
        }
        Ok(Enqueued::Queued)
    }

    unsafe fn release(req: &Arc<Request>) {
        if !req.decided_by_append() {
            // One link needs no release bit: its mark alone removes it at once.
            req.set_released();
        }
        remove(req, false);
    }

    fn cancel(req: &Arc<Request>) -> bool {
        if !req.try_cancel() {
            return false;
        }
        remove(req, true);
        true
    }

    #[inline(always)]
    fn try_fast(entries: &[Entry<'_, Core>], holder: Holder) -> bool {
        if holder == Holder::Async && !async_fast_enabled() {
            return false;
        }
        for (i, entry) in entries.iter().enumerate() {
            if !entry.core().gate.try_hold(entry.is_exclusive(), holder) {
                // SAFETY: `entries[..i]` were just taken by this attempt, with `holder`.
                unsafe { give_back(&entries[..i], holder) };
                return false;
            }
        }
        true
    }

    #[inline(always)]
    unsafe fn release_fast(entries: &[Entry<'_, Core>], holder: Holder) -> bool {
        let mut pin = None;
        for entry in entries {
            let core = entry.core();
            // The caller's contract: this entry is held by `holder` (one hold to give back).
            if core.gate.unhold(entry.is_exclusive(), holder) {
                // Links are queued: this hold may have been all that kept them waiting.
                scan_after_unhold(core, &mut pin);
            }
        }
        pin.is_some()
    }

    fn is_granted(req: &Request) -> bool {
        req.is_granted()
    }

    #[cfg(kds_loom)]
    fn order_key(core: &Core) -> usize {
        core.id
    }

    fn fmt_core(core: &Core, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(core, f)
    }
}

/// Loom models only: appends use the tail hint on queues with `n` or more links reserved
/// (default: never, so that the models of other steps keep their size).
#[cfg(kds_loom)]
pub fn loom_hint_min(n: u64) {
    // Relaxed: set before the model starts its threads.
    queue::LOOM_HINT_MIN.store(n, std::sync::atomic::Ordering::Relaxed);
}

/// Loom models only: whether async sets take the fast path (default: yes). The models of the
/// queued protocol turn it off, or their async requests on free resources would never queue.
#[cfg(kds_loom)]
pub fn loom_async_fast(on: bool) {
    // Relaxed: set before the model starts its threads.
    LOOM_ASYNC_FAST.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// See [`loom_async_fast`] (a plain std atomic: configuration, not part of the model).
#[cfg(kds_loom)]
static LOOM_ASYNC_FAST: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Whether async sets may take the fast path: always, except in loom models that say no.
#[inline]
fn async_fast_enabled() -> bool {
    #[cfg(kds_loom)]
    {
        // Relaxed: set before the model starts its threads.
        LOOM_ASYNC_FAST.load(std::sync::atomic::Ordering::Relaxed)
    }
    #[cfg(not(kds_loom))]
    {
        true
    }
}

/// A fast attempt that failed gives back what it took, all or nothing (out of line: the
/// contended case). Links may have queued behind those holds meanwhile; `release_fast` scans
/// for them.
///
/// # Safety
///
/// As for `release_fast`: `entries` were just taken by `try_fast` for `holder`.
#[cold]
#[inline(never)]
unsafe fn give_back(entries: &[Entry<'_, Core>], holder: Holder) {
    // SAFETY: the caller's contract.
    unsafe { LockFree::release_fast(entries, holder) };
}

/// The scan after a fast hold was given back on a resource where links are queued (out of
/// line: uncontended, nothing is queued). Pins on the first call of a release.
#[cold]
#[inline(never)]
fn scan_after_unhold(core: &Core, pin: &mut Option<epoch::Guard>) {
    queue::scan(core, pin.get_or_insert_with(epoch::pin));
}

/// Removes a released or cancelled request's links, then re-applies the trigger rule on each
/// queue where something waits behind them (rules 3 and 6). A cancelled link left inside a long
/// queue is counted (`queue::note_lingering`), and every so many of them a sweep unlinks them
/// all, so waiters that give up while a holder keeps the resource do not pile up in its queue.
///
/// A shared link followed by a live shared link needs no scan either: its removal cannot
/// enable anything (a shared link waits only for exclusive ones ahead; an exclusive one behind
/// still has that live shared link ahead). If the follower is removed meanwhile, its own
/// removal scans and sees this one (`docs/design.md`, "Release"). So a crowd of shared holders
/// leaves at O(1) each; the link stays in its queue and counts as lingering.
///
/// Pins only when it must walk a queue, read a successor or defer a free: releasing a one-link
/// exclusive set with nothing queued behind it, the common uncontended case, reads no other
/// node and frees nothing shared, so it costs one `fetch_or` and no pin.
fn remove(req: &Arc<Request>, cancelled: bool) {
    // Pinned before any shared link is marked, to read the link behind it.
    let mut pin = req.links.iter().any(|l| !l.exclusive).then(epoch::pin);
    for link in &req.links {
        let (marked, next) = match &pin {
            Some(pin) if !link.exclusive => req.mark_removed_pinned(link, pin),
            _ => (req.mark_removed(link), None),
        };
        debug_assert!(marked.first, "a link removed twice");
        // The request still holds its cores (they are dropped below), so no pin is needed
        // to reach this one. The unreserve is the meeting-point RMW before the scan.
        let core = link.own_core();
        core.gate.unreserve();
        // Read after the unreserve: if the follower's removal came first on the gate, its mark
        // is seen here (and we scan); if it comes later, its scan sees our mark.
        let shared_next = match (next, &pin) {
            (Some(next), Some(pin)) => queue::live_shared(next, pin),
            _ => false,
        };
        if marked.behind && !cfg!(kds_bug = "skip_release_scan") {
            let pin = pin.get_or_insert_with(epoch::pin);
            if shared_next {
                queue::note_lingering(core, pin);
                continue;
            }
            queue::scan(core, pin);
            if cancelled && queue::long_now(core) {
                // On a long queue no walk from the stub may pass here for a while (the scan
                // stopped at the first waiting link, appends start from the tail hint): count
                // the link as lingering, so that a sweep bounds how many do.
                queue::note_lingering(core, pin);
            }
        }
    }
    if req.decided_by_append() {
        req.drop_resources();
    } else {
        req.drop_resources_later(pin.get_or_insert_with(epoch::pin));
    }
}
