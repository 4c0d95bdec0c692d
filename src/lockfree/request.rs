//! A request (one set) in the lock-free engine: its links and its one-word state.
//!
//! All racing parties on a request meet on `state`, one atomic word:
//!
//! | bits            | meaning |
//! |-----------------|---------|
//! | `COUNT` (0..20) | links not yet triggered |
//! | `PHASE` (20..22)| `UNDECIDED` (being enqueued), `COMMITTED` (in its queues), `FAILED` (Locked::Fail refused it) |
//! | `GRANTED` (22)  | the last trigger happened; set by that trigger, once |
//! | `CANCELLED` (23)| cancelled before the grant; set by `cancel`, once |
//! | `RELEASED` (24) | released after the grant; set by `release`, once |
//!
//! `GRANTED` and `CANCELLED` exclude each other: whichever CAS lands first wins (rule 5).
//! Once `CANCELLED` or `RELEASED` is set, every scan treats all the request's links as gone,
//! at once: that bit is the linearization point of a cancel or release; marking the links
//! afterwards only lets them be unlinked.

use super::queue::{
    Core, Link, Presence, QueueRef, MARK, TRIG_DONE, TRIG_EARLY, TRIG_PENDING, TRIG_SEALED,
};
use crate::access::Locked;
use crate::delivery::{self, Waited, Waiter};
use crate::engine::{Entry, SetKind, MAX_SET_LEN};
use crate::sync::epoch::Guard as Pin;
use crate::sync::{AtomicBool, AtomicUsize, Ordering};
use smallvec::SmallVec;
use std::sync::Arc;

const COUNT_BITS: u32 = 20;
const COUNT: usize = (1 << COUNT_BITS) - 1;
const PHASE: usize = 3 << COUNT_BITS;
const UNDECIDED: usize = 0;
pub(super) const COMMITTED: usize = 1 << COUNT_BITS;
pub(super) const FAILED: usize = 2 << COUNT_BITS;
const GRANTED: usize = 1 << (COUNT_BITS + 2);
const CANCELLED: usize = 1 << (COUNT_BITS + 3);
const RELEASED: usize = 1 << (COUNT_BITS + 4);

const _: () = assert!(MAX_SET_LEN <= COUNT);

/// One set's request.
pub struct Request {
    /// This request's own address, with the provenance of its `Arc` allocation (from
    /// `Weak::as_ptr`), for rebuilding an `Arc` from `&self`: a pointer derived from a shared
    /// reference may not be used to free the allocation.
    this: *const Request,
    /// See the module docs.
    state: AtomicUsize,
    /// Links still physically in a queue; the engine's `QueueRef` is dropped when it hits 0.
    links_in_queue: AtomicUsize,
    /// Whether `drop_resources` has run.
    resources_dropped: AtomicBool,
    pub(super) kind: SetKind,
    /// One link per resource, in the fixed install order (`Engine::order_key`).
    pub(super) links: SmallVec<[Link; 4]>,
    waiter: Waiter<Request>,
}

// SAFETY: `this` is only an address of this very request (used to rebuild an `Arc` to it);
// every other field is Send + Sync (links: see their impls; the waiter is Sync).
unsafe impl Send for Request {}
// SAFETY: as for Send: `this` is never written after construction.
unsafe impl Sync for Request {}

impl Request {
    /// Builds the request: one allocation (plus one for the links if there are more than 4),
    /// or none when this thread's pool has one (`pool`).
    pub(super) fn new(
        entries: &[Entry<'_, Core>],
        kind: SetKind,
        waiter: Waiter<Request>,
    ) -> Arc<Request> {
        let k = entries.len();
        // A one-link request with no policy to evaluate is decided by its single append.
        let phase = if k == 0 {
            COMMITTED | GRANTED
        } else if k == 1 && kind.policy == Locked::Wait {
            COMMITTED
        } else {
            UNDECIDED
        };
        #[cfg(not(kds_loom))]
        if let Some(mut pooled) = super::pool::take() {
            let req = Arc::get_mut(&mut pooled).expect("a pooled request is unique");
            let this = req.this;
            *req.state.get_mut() = phase | k;
            *req.links_in_queue.get_mut() = k;
            *req.resources_dropped.get_mut() = false;
            req.kind = kind;
            req.links.extend(links(this, entries, phase));
            req.waiter = waiter;
            return pooled;
        }
        Arc::new_cyclic(|me| Request {
            this: me.as_ptr(),
            state: AtomicUsize::new(phase | k),
            links_in_queue: AtomicUsize::new(k),
            resources_dropped: AtomicBool::new(false),
            kind,
            links: links(me.as_ptr(), entries, phase).collect(),
            waiter,
        })
    }

    /// Empties a request that nobody else can reach, before its allocation is pooled: drops
    /// what it holds (its resources if still held, its links, the client's waiter).
    #[cfg(not(kds_loom))]
    pub(super) fn empty(&mut self) {
        self.drop_resources();
        self.links.clear();
        self.waiter = Waiter::thread();
    }

    /// A one-link `Locked::Wait` request: committed from the start, its append is its
    /// linearization point, and it is never tentative (so never helped).
    pub(super) fn decided_by_append(&self) -> bool {
        self.links.len() == 1 && self.kind.policy == Locked::Wait
    }

    #[inline]
    fn load(&self) -> usize {
        // Acquire: whoever reads the state sees what was done before it was written.
        self.state.load(Ordering::Acquire)
    }

    pub(super) fn is_undecided(&self) -> bool {
        self.load() & PHASE == UNDECIDED
    }

    /// `COMMITTED`, `FAILED` or 0 (undecided).
    pub(super) fn phase(&self) -> usize {
        self.load() & PHASE
    }

    pub(super) fn is_granted(&self) -> bool {
        self.load() & GRANTED != 0
    }

    pub(super) fn presence(&self) -> Presence {
        let state = self.load();
        match state & PHASE {
            UNDECIDED => Presence::Undecided,
            FAILED => Presence::Gone,
            _ if state & (CANCELLED | RELEASED) != 0 => Presence::Gone,
            _ => Presence::Live,
        }
    }

    /// Decides an undecided request: `COMMITTED`, or `FAILED` when `fail`. First decision
    /// wins; returns the phase in force, and whether this call's CAS granted the request (all
    /// its links were triggered early): then the caller delivers the grant.
    ///
    /// Every link's early trigger is settled first: `TRIG_PENDING -> TRIG_SEALED` unless its
    /// installer got `TRIG_EARLY` in before. After that the flags never change before the
    /// decision, so every helper computes the same count of early triggers.
    pub(super) fn decide(&self, fail: bool) -> (usize, bool) {
        let mut early = 0;
        for link in &self.links {
            // Acquire: an early trigger, once there, is final; skip the CAS.
            if link.trig.load(Ordering::Acquire) == TRIG_EARLY {
                early += 1;
                continue;
            }
            // AcqRel: the settled flag is the same for every decider.
            let settled = match link.trig.compare_exchange(
                TRIG_PENDING,
                TRIG_SEALED,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => TRIG_SEALED,
                Err(now) => now,
            };
            if settled != TRIG_SEALED {
                early += 1;
            }
        }
        let mut state = self.load();
        while state & PHASE == UNDECIDED {
            let new = if fail {
                state | FAILED
            } else {
                let left = (state & COUNT) - early;
                (state & !COUNT) | COMMITTED | left | if left == 0 { GRANTED } else { 0 }
            };
            // AcqRel: publish the installs (Release) to whoever reads the decision.
            match self
                .state
                .compare_exchange(state, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return (new & PHASE, new & GRANTED != 0),
                Err(now) => state = now,
            }
        }
        (state & PHASE, false)
    }

    /// Records that the installer of `link` (a tentative link of this request) found it
    /// eligible when its append landed; loses to a decider that sealed it first.
    pub(super) fn trigger_early(&self, link: &Link) {
        // AcqRel/Relaxed: races only with `decide`'s sealing CAS on the same flag.
        let _ = link.trig.compare_exchange(
            TRIG_PENDING,
            TRIG_EARLY,
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
    }

    /// Triggers `link` (one of ours) if nobody has; the trigger that completes the set grants
    /// it and queues its delivery on this thread.
    pub(super) fn trigger(&self, link: &Link) {
        // AcqRel: exactly one thread wins the flag.
        // AcqRel: exactly one thread moves the link from SEALED to DONE.
        if link
            .trig
            .compare_exchange(TRIG_SEALED, TRIG_DONE, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        let mut state = self.load();
        loop {
            if state & (CANCELLED | GRANTED) != 0 || state & PHASE != COMMITTED {
                return;
            }
            debug_assert!(state & COUNT > 0, "more triggers than links");
            let mut new = state - 1;
            if new & COUNT == 0 {
                new |= GRANTED;
            }
            // AcqRel: the grant must see every release that enabled it, and publish them to
            // the holder (through the delivery).
            match self
                .state
                .compare_exchange(state, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    if new & GRANTED != 0 {
                        self.push_grant();
                    }
                    return;
                }
                Err(now) => state = now,
            }
        }
    }

    /// Grants a one-link request before its append publishes it, because the append walk saw
    /// its link eligible (`queue::try_append`). Undone by `undo_pre_grant` if the append fails.
    pub(super) fn pre_grant(&self, link: &Link) {
        debug_assert!(self.decided_by_append());
        // Relaxed: not yet published; the append CAS (Release) publishes both.
        link.trig.store(TRIG_DONE, Ordering::Relaxed);
        self.state.store(COMMITTED | GRANTED, Ordering::Relaxed);
    }

    /// Takes back `pre_grant` after a failed append (still unpublished).
    pub(super) fn undo_pre_grant(&self, link: &Link) {
        // Relaxed: still not published.
        link.trig.store(TRIG_SEALED, Ordering::Relaxed);
        self.state.store(COMMITTED | 1, Ordering::Relaxed);
    }

    /// After this thread's decision CAS granted the request: `true` (the caller delivers) for
    /// the owner, else the delivery is queued on this thread.
    pub(super) fn finish_grant_by(&self, owner: bool) -> bool {
        if !owner {
            self.push_grant();
        }
        owner
    }

    /// Queues the delivery of this request's grant on this thread.
    pub(super) fn push_grant(&self) {
        // SAFETY: `this` points to this request inside its `Arc` allocation, which is alive and
        // owned by at least one `Arc` (the owner's, or the engine's `QueueRef` while a link is
        // queued; that one is released only after the pin that reached this request ends), so
        // adding a strong count and taking it as an `Arc` is sound.
        let arc = unsafe {
            Arc::increment_strong_count(self.this);
            Arc::from_raw(self.this)
        };
        delivery::push(arc);
    }

    /// Cancels unless granted: `true` if cancelled now.
    pub(super) fn try_cancel(&self) -> bool {
        let mut state = self.load();
        loop {
            if state & GRANTED != 0 && !cfg!(kds_bug = "cancel_ignores_grant") {
                return false;
            }
            // AcqRel: meets `trigger`'s CAS on this word (exactly one of them wins).
            match self.state.compare_exchange(
                state,
                state | CANCELLED,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(now) => state = now,
            }
        }
    }

    /// Marks the release of a granted request: from now on every scan treats its links as
    /// gone (the linearization point of the release).
    pub(super) fn set_released(&self) {
        // AcqRel: order the set's use of its resources before the release (Release), and meet
        // the scans that read this word.
        let before = self.state.fetch_or(RELEASED, Ordering::AcqRel);
        debug_assert!(
            before & GRANTED != 0 && before & RELEASED == 0,
            "bad release"
        );
    }

    /// Marks `link` removed (logical deletion, so scans can unlink it). `behind`: a link was
    /// queued behind it, so its queue must be rescanned; if nothing was behind it, any later
    /// append sees the mark (its CAS reads this RMW's value), so no rescan is needed. `first`:
    /// this call set the mark (only the first marker gives back the link's reservation).
    pub(super) fn mark_removed(&self, link: &Link) -> Marked {
        // SAFETY: the unprotected guard only scopes the returned pointer, which is compared
        // with null and never dereferenced.
        let unpinned = unsafe { crate::sync::epoch::unprotected() };
        // AcqRel: one RMW on the word appenders CAS; see the doc comment.
        let before = link.next.fetch_or(MARK, Ordering::AcqRel, unpinned);
        Marked {
            first: before.tag() & MARK == 0,
            behind: !before.is_null(),
        }
    }

    /// `mark_removed`, pinned before the mark: also returns the link that was behind, which
    /// stays allocated while `pin` lasts.
    pub(super) fn mark_removed_pinned<'g>(
        &self,
        link: &Link,
        pin: &'g Pin,
    ) -> (Marked, Option<&'g Link>) {
        // AcqRel: as in `mark_removed`.
        let before = link.next.fetch_or(MARK, Ordering::AcqRel, pin);
        // SAFETY: the link was live until this mark, so it was in its queue and so was its
        // successor (unlinking it would have changed this very word); we were pinned before
        // the mark, so that successor stays allocated while the pin lasts (see `retire`).
        let next = unsafe { before.with_tag(0).as_ref() };
        let marked = Marked {
            first: before.tag() & MARK == 0,
            behind: !before.is_null(),
        };
        (marked, next)
    }

    /// Hands one strong count of `self` to the queues (released by the last `retire`, which
    /// rebuilds it from `this`).
    pub(super) fn take_queue_ref(self: &Arc<Self>) {
        let _ = Arc::into_raw(Arc::clone(self));
    }

    /// Adds a strong count for a tail hint (`queue::set_hint`), given back as a `QueueRef`.
    /// Called by whoever just appended one of this request's links: a queued link keeps the
    /// engine's queue reference alive, so the count is not zero.
    pub(super) fn add_ref(&self) {
        // SAFETY: `this` points to this request inside its live `Arc` allocation, whose strong
        // count is at least one (the queue reference: the caller is pinned and one of our
        // links is in a queue, so the last `retire` and its deferred release are still ahead).
        unsafe { Arc::increment_strong_count(self.this) };
    }

    /// The engine's queue reference (or a hint's count), as a `QueueRef` to give back.
    pub(super) fn queue_ref(&self) -> QueueRef {
        QueueRef(self.this)
    }

    /// One of our links left its queue for good; `true` if it was the last.
    pub(super) fn unlinked_one(&self) -> bool {
        // A one-link request's only unlink is its last: no read-modify-write needed.
        // AcqRel: the last decrement sees all earlier ones before the request is freed.
        self.links.len() == 1 || self.links_in_queue.fetch_sub(1, Ordering::AcqRel) == 1
    }

    /// Gives back the strong counts the links hold on their resources. Idempotent. Called,
    /// through `Pin::defer`, once the set is released, cancelled or refused: a helper pinned
    /// before that may still read `link.core` (see `Link::core`).
    pub(super) fn drop_resources(&self) {
        // Relaxed: never called concurrently. The owner calls it once (directly, or through a
        // deferred closure that holds an `Arc`), and `Drop` runs after every `Arc` is gone.
        if self.resources_dropped.load(Ordering::Relaxed) {
            return;
        }
        self.resources_dropped.store(true, Ordering::Relaxed);
        for link in &self.links {
            // SAFETY: `link.core` came from `Arc::into_raw` in `Request::new`, and the flag
            // above makes this the only place it is given back.
            drop(unsafe { Arc::from_raw(link.core) });
        }
    }

    /// Gives the resources back once every thread pinned now has unpinned: a helper that saw
    /// this request tentative may still read its `link.core`. (A request that was never
    /// tentative, `decided_by_append`, is read by its owner only and drops them at once.)
    pub(super) fn drop_resources_later(self: &Arc<Self>, pin: &Pin) {
        let me = Arc::clone(self);
        pin.defer(move || me.drop_resources());
    }
}

/// The links of a request at `this` over `entries`, in their order. A committed request's
/// links are never tentative: no early trigger to settle.
fn links<'a>(
    this: *const Request,
    entries: &'a [Entry<'_, Core>],
    phase: usize,
) -> impl Iterator<Item = Link> + 'a {
    entries.iter().map(move |entry| {
        // The link owns one strong count of its core (see `drop_resources`).
        let core = Arc::into_raw(entry.to_arc());
        let link = Link::new(this, core, entry.is_exclusive());
        if phase & PHASE == COMMITTED {
            // Relaxed: not yet published (the append CAS publishes it).
            link.trig.store(TRIG_SEALED, Ordering::Relaxed);
        }
        link
    })
}

/// What `Request::mark_removed` found.
pub(super) struct Marked {
    /// This call set the mark.
    pub(super) first: bool,
    /// A link was queued behind.
    pub(super) behind: bool,
}

impl Drop for Request {
    fn drop(&mut self) {
        self.drop_resources();
    }
}

impl Waited for Request {
    fn waiter(&self) -> &Waiter<Request> {
        &self.waiter
    }
}
