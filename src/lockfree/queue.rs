//! One resource's lock-free FIFO queue of links, and the trigger scan over it.
//!
//! The queue is a singly linked list hanging off a permanent stub node in the resource's
//! [`Core`]. Links are appended at the end (a CAS of the last node's `next` from null) and
//! removed by *logical deletion*: the `MARK` tag on a link's own `next` pointer (Harris's
//! marking, see Sources). A marked link is unlinked physically by whichever scan meets it, with a CAS
//! of its predecessor's unmarked `next`; a marked link that is last stays until something is
//! appended behind it. A marked link's `next` never changes again once non-null, and no
//! `next` pointer ever returns to null, so a stale appender can never link a node twice.
//!
//! | `next` tag | meaning |
//! |------------|---------|
//! | `0`        | this link is live (queued, triggered or held) |
//! | `MARK`     | this link is removed (released, cancelled or failed) |
//!
//! **Long queues.** An append must find the last node. On a queue with `hint_min()` or more
//! links reserved, appends start from the core's *tail hint* (the link appended last, or one
//! a little older) instead of the stub, so an append costs O(1) however many sets wait. The
//! hint owns a strong count of its link's request, given back through the epoch when the hint
//! moves on, so a pinned reader can always read the hinted link; the walk trusts it only while
//! the link is live (unmarked), and a live link is in its queue. An append that starts from
//! the hint did not see what is ahead of it, so it counts the queue ahead as busy (`eligible`
//! false): the scan that follows every non-eligible append triggers it if it may run.
//!
//! ## Sources
//!
//! - Timothy L. Harris, "A Pragmatic Implementation of Non-Blocking Linked-Lists", DISC 2001
//!   (LNCS 2180, pp. 300-314): deletion by marking a node's own `next` before unlinking it,
//!   and unlinking by whoever meets a marked node. Departures: this list is a FIFO queue, not
//!   a sorted set (nodes are only appended at the end, never inserted), a marked last node
//!   stays until something is appended behind it, and appends may start from a tail hint.
//! - Keir Fraser, "Practical lock-freedom", PhD thesis, University of Cambridge, Technical
//!   Report UCAM-CL-TR-579, 2004: epoch-based reclamation, through `crossbeam-epoch`; an
//!   unlinked node is freed once every thread pinned when it was unlinked has moved on.

use super::gate::Gate;
use super::request::Request;
use crate::sync::epoch::{Atomic, Guard as Pin, Shared};
use crate::sync::{AtomicU8, AtomicUsize, Ordering};
use std::fmt;
use std::ptr;
use std::sync::Arc;

/// Tag bit on `Link::next`: this link is removed.
pub(super) const MARK: usize = 1;

/// `Link::trig` of a tentative link: not yet triggered, request undecided.
pub(super) const TRIG_PENDING: u8 = 0;
/// The installer found the link eligible when its append landed (before the decision): it is
/// counted as triggered by the decision CAS.
pub(super) const TRIG_EARLY: u8 = 1;
/// The decision found it not triggered early: a scan (or the Ignore policy) triggers it.
pub(super) const TRIG_SEALED: u8 = 2;
/// Triggered after the decision.
pub(super) const TRIG_DONE: u8 = 3;

/// `Link::saw_sync`: not yet decided.
pub(super) const SYNC_UNKNOWN: u8 = 0;
/// `Link::saw_sync`: the resource was sync-locked when the request was decided.
pub(super) const SYNC_YES: u8 = 1;
/// `Link::saw_sync`: it was not.
pub(super) const SYNC_NO: u8 = 2;

/// One set's entry in one resource's queue. Links live inline in their [`Request`].
pub(crate) struct Link {
    /// The next link in this resource's queue; tag `MARK` when this link is removed.
    pub(super) next: Atomic<Link>,
    /// The request this link belongs to; null for a resource's stub.
    pub(super) request: *const Request,
    /// The resource; owns one strong count of its `Arc<Core>` until the request drops its
    /// resources (see `Request::drop_resources`). Null for a stub.
    pub(super) core: *const Core,
    pub(super) exclusive: bool,
    /// `TRIG_PENDING`, `TRIG_EARLY`, `TRIG_SEALED` or `TRIG_DONE` (see `Request::decide`).
    pub(super) trig: AtomicU8,
    /// For async requests with a Fail or Ignore policy: whether the resource was sync-locked
    /// at decision time (first writer wins).
    pub(super) saw_sync: AtomicU8,
    /// What the link's reservation (`Gate::reserve`) found: `BEHIND_HOLDERS`, fast holders
    /// were in its way (its append cannot trigger it, only a scan after they left);
    /// `LONG_QUEUE`, `hint_min()` or more links were reserved (its appends use the tail
    /// hint). Written by the owner before the request's first append publishes it.
    pub(super) reserved: AtomicU8,
}

// SAFETY: the raw pointers are shared references in all but name: `request` points to the
// request that contains this link (alive while the link is reachable, see `retire`), and
// `core` to a resource kept alive by the request or by the epoch (see `Request::drop_resources`).
// Everything else is atomic.
unsafe impl Send for Link {}
// SAFETY: as for Send; no field is mutated through `&Link` except atomics.
unsafe impl Sync for Link {}

impl Link {
    pub(super) fn new(request: *const Request, core: *const Core, exclusive: bool) -> Link {
        Link {
            next: Atomic::null(),
            request,
            core,
            exclusive,
            trig: AtomicU8::new(TRIG_PENDING),
            saw_sync: AtomicU8::new(SYNC_UNKNOWN),
            reserved: AtomicU8::new(0),
        }
    }

    /// The request of a link (`None` for a stub).
    #[inline]
    pub(super) fn request(&self) -> Option<&Request> {
        // SAFETY: a link's request contains the link, so it is alive as long as `self` is.
        unsafe { self.request.as_ref() }
    }

    /// The resource of a link of a request the caller owns and has not finished (not yet
    /// dropped its resources): the owner's own links, read without a pin.
    #[inline]
    pub(super) fn own_core(&self) -> &Core {
        // SAFETY: the link's request owns one strong count of this core until
        // `Request::drop_resources`, which the owner calls only after its last use of
        // `own_core`; the caller's borrow of the link (inside its request) is shorter.
        unsafe { &*self.core }
    }

    /// The resource of a (non-stub) link.
    #[inline]
    pub(super) fn core<'g>(&self, _pin: &'g Pin) -> &'g Core {
        // SAFETY: the caller is pinned, and a request's resources are dropped only through
        // `Pin::defer` after the request is finished (`Request::drop_resources`), so a core
        // reachable from a link while pinned outlives the pin.
        unsafe { &*self.core }
    }
}

/// A resource's state in the lock-free engine.
///
/// Aligned to 128 bytes so two resources never share a cache line (nor the adjacent-line
/// prefetch pair): sets with no resource in common touch no common line but the epoch's.
#[repr(align(128))]
pub struct Core {
    /// The permanent head of the queue; never marked, never unlinked.
    pub(super) stub: Link,
    /// Links reserved and fast holders; also the meeting point: every operation does a
    /// read-modify-write on it after it changes the queue's state and before it scans, so of
    /// two racing operations the later one's scan sees the earlier one's change (no lost
    /// wake-up without a store-load fence). See [`Gate`].
    pub(crate) gate: Gate,
    /// The tail hint (see the module docs): null, or a link of this queue appended while
    /// the queue was long; owns one strong count of that link's request (a [`QueueRef`]).
    pub(super) hint: Atomic<Link>,
    /// How many removed links may have been left inside the queue (with a successor) where no
    /// walk may pass soon: cancels on a long queue, and appends behind a removed last link.
    /// Over-counts (a walk may have unlinked some); when it reaches `sweep_limit` one of those
    /// operations sweeps the whole queue (`note_lingering`), so they stay bounded.
    pub(super) lingering: AtomicUsize,
    /// Creation order, the install order under loom (see `Engine::order_key`).
    #[cfg(kds_loom)]
    pub(super) id: usize,
}

impl Default for Core {
    fn default() -> Self {
        Core {
            stub: Link::new(ptr::null(), ptr::null(), false),
            gate: Gate::default(),
            hint: Atomic::null(),
            lingering: AtomicUsize::new(0),
            #[cfg(kds_loom)]
            id: {
                // A plain std counter: loom models replay, and only the relative order of the
                // cores one model creates matters.
                static NEXT: std::sync::atomic::AtomicUsize =
                    std::sync::atomic::AtomicUsize::new(0);
                NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            },
        }
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        // Only removed links can still be here (every live link's request holds this core),
        // typically the last one. The list dies with the core: retire each link.
        #[cfg(not(kds_loom))]
        let pin = &crate::sync::epoch::pin();
        // Under loom a core can be dropped from crossbeam-epoch's own teardown (a deferred
        // `drop_resources`), where loom forbids touching the default collector. The models
        // drop their resources only after joining every thread, so nothing else runs then.
        // SAFETY: loom models only (see above): no other thread can reach these links.
        #[cfg(kds_loom)]
        let pin = unsafe { crate::sync::epoch::unprotected() };
        // Acquire: see the fields of the node this points to (published by its append).
        let mut cur = self.stub.next.load(Ordering::Acquire, pin);
        // SAFETY: nodes reachable from the stub are alive while pinned (see `retire`).
        while let Some(node) = unsafe { cur.as_ref() } {
            cur = node.next.load(Ordering::Acquire, pin);
            retire(node, pin);
        }
        // Acquire: as above. Nobody else can reach this core any more (see above), so the
        // hint's count can be given back; through the epoch, after the retires above.
        let hint = self.hint.load(Ordering::Acquire, pin);
        // SAFETY: the hint owns a count of its link's request, so the link is alive.
        if let Some(link) = unsafe { hint.as_ref() } {
            let hint_ref = link
                .request()
                .expect("a hint is never the stub")
                .queue_ref();
            pin.defer(move || hint_ref.release());
        }
    }
}

impl fmt::Debug for Core {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pin = &crate::sync::epoch::pin();
        let (mut live, mut removed) = (0usize, 0usize);
        // Each link in queue order, for a stall's dump: `X`/`S` (exclusive, shared), `-` if
        // removed; its trigger flag (`p`ending, `e`arly, `s`ealed, `t`riggered); its request:
        // `U`ndecided, `L`ive or `G`one, `+` if granted, `d` if the grant was delivered.
        let mut links = String::new();
        // Acquire: see the fields of the node this points to (published by its append).
        let mut cur = self.stub.next.load(Ordering::Acquire, pin);
        // SAFETY: nodes reachable from the stub are alive while pinned (see `retire`).
        while let Some(node) = unsafe { cur.as_ref() } {
            cur = node.next.load(Ordering::Acquire, pin);
            if cur.tag() & MARK == 0 {
                live += 1;
            } else {
                removed += 1;
            }
            let req = node.request().expect("only the stub has no request");
            links.push_str(if node.exclusive { " X" } else { " S" });
            if cur.tag() & MARK != 0 {
                links.push('-');
            }
            // Acquire: as above (a diagnostic read).
            links.push(match node.trig.load(Ordering::Acquire) {
                TRIG_PENDING => 'p',
                TRIG_EARLY => 'e',
                TRIG_SEALED => 's',
                _ => 't',
            });
            links.push(match req.presence() {
                Presence::Undecided => 'U',
                Presence::Live => 'L',
                Presence::Gone => 'G',
            });
            if req.is_granted() {
                links.push('+');
            }
            if crate::delivery::Waited::waiter(req).is_delivered() {
                links.push('d');
            }
        }
        let (exclusive, shared, reserved) = self.gate.snapshot();
        f.debug_struct("Queue")
            .field("live_links", &live)
            .field("removed_links", &removed)
            .field("reserved_links", &reserved)
            .field("fast_exclusive", &exclusive)
            .field("fast_shared", &shared)
            .field("links", &links.trim_start())
            .finish()
    }
}

/// Whether a live link of a sync set is ahead of `link` in its queue (rule 8: the resource
/// is sync-locked). Called while `link` is tentative, so it is last and nothing can enter
/// ahead of it: the answer can only go from `true` to `false` over time.
pub(super) fn sync_link_ahead(link: &Link, pin: &Pin) -> bool {
    // Acquire: see the fields of the node this points to (published by its append).
    let mut cur = link.core(pin).stub.next.load(Ordering::Acquire, pin);
    // SAFETY: nodes reachable from the stub are alive while pinned (see `retire`).
    while let Some(node) = unsafe { cur.as_ref() } {
        if ptr::eq(node, link) {
            return false;
        }
        // Acquire: see the fields of the node this points to (published by its append).
        let next = node.next.load(Ordering::Acquire, pin);
        if next.tag() & MARK == 0 {
            let other = node.request().expect("only the stub has no request");
            if other.kind.sync && matches!(other.presence(), Presence::Live) {
                return true;
            }
        }
        cur = next;
    }
    false
}

/// What one append attempt found.
pub(super) enum Tail<'g> {
    /// `link` is already in the queue (a helper put it there).
    Installed,
    /// The last node belongs to this undecided request: help it first.
    Blocked(&'g Request),
    /// Appended; `eligible`: the trigger rule held for the link at the moment of the append.
    Appended {
        /// Nothing live (for an exclusive link) or nothing live and exclusive (for a shared
        /// link) was ahead when the CAS landed; stays true (see `scan`).
        eligible: bool,
    },
    /// `req` was decided meanwhile: stop.
    Decided,
}

/// Appends `link` (of `req`) at the end of its resource's queue, unlinking removed links met
/// on the way (Harris's marking: module docs, Sources). `committed` is true for a one-link request that is decided by
/// this very append (`Request::decided_by_append`), false for a tentative install.
///
/// Order of the checks matters for stale helpers: the last node is found *before* the
/// request's phase is read, so if the CAS succeeds, the link was not yet in the queue (a link
/// already installed would have had the request decided before anything was appended behind
/// it).
pub(super) fn try_append<'g>(
    req: &Request,
    link: &Link,
    committed: bool,
    pin: &'g Pin,
) -> Tail<'g> {
    let core = link.core(pin);
    // Relaxed: written by the owner before the request was published (see the field).
    let reserved = link.reserved.load(Ordering::Relaxed);
    let long = reserved & LONG_QUEUE != 0;
    'restart: loop {
        let Start {
            mut pred,
            mut cur,
            from_hint,
        } = walk_start(core, long, pin);
        if ptr::eq(pred, link) {
            return Tail::Installed;
        }
        // Starting from the hint, the queue ahead is unseen: count it as busy (safe side).
        let busy = from_hint && !cfg!(kds_bug = "hint_ahead_free");
        // Unless the hinted link is a shared link that was triggered by the trigger rule: then
        // no live exclusive link was ahead of it, and none can be ever after (links only leave
        // from ahead of it), so a shared link appended behind it is eligible when no live
        // exclusive link lies between (a shared crowd grows at O(1) per request).
        let exclusive_ahead_hint = busy && !triggered_shared(pred);
        let (mut any_ahead, mut exclusive_ahead) = (busy, exclusive_ahead_hint);
        let mut walked = 0;
        // SAFETY: nodes reachable from the stub (or from a live hinted link, which is in the
        // queue) are alive while pinned (see `retire`).
        while let Some(node) = unsafe { cur.as_ref() } {
            if ptr::eq(node, link) {
                return Tail::Installed;
            }
            walked += 1;
            // Acquire: see the fields of the node this points to (published by its append).
            let next = node.next.load(Ordering::Acquire, pin);
            if next.tag() & MARK != 0 && !next.is_null() {
                match unlink(pred, cur, next, pin) {
                    Some(succ) => {
                        cur = succ;
                        continue;
                    }
                    None => continue 'restart,
                }
            }
            if next.tag() & MARK == 0 {
                let other = node.request().expect("only the stub has no request");
                match other.presence() {
                    // A tentative link (necessarily last) may be committed by the time our CAS
                    // lands: count it as ahead, so `eligible` can only err on the safe side.
                    Presence::Undecided if cfg!(kds_bug = "undecided_not_ahead") => {}
                    Presence::Live | Presence::Undecided => {
                        any_ahead = true;
                        exclusive_ahead |= node.exclusive;
                    }
                    Presence::Gone => {}
                }
            }
            pred = node;
            cur = next;
        }
        // `pred` is the last node; `cur` is its (null) next, with its MARK.
        if let Some(other) = pred.request() {
            if !ptr::eq(other, req) && other.is_undecided() && !cfg!(kds_bug = "skip_help") {
                return Tail::Blocked(other);
            }
        }
        if !committed && !req.is_undecided() {
            return Tail::Decided;
        }
        let eligible = reserved & BEHIND_HOLDERS == 0
            && if link.exclusive {
                !any_ahead
            } else {
                !exclusive_ahead
            };
        if committed && eligible {
            // Not yet published: the one-link request is granted by the append itself.
            req.pre_grant(link);
        }
        // Keep `pred`'s own MARK: appending behind a removed last link is allowed.
        let new = Shared::from(link as *const Link).with_tag(cur.tag());
        // AcqRel: publish the link and request fields (Release); order after the walk.
        match pred
            .next
            .compare_exchange(cur, new, Ordering::AcqRel, Ordering::Acquire, pin)
        {
            Ok(_) => {
                if long {
                    let behind_removed = cur.tag() & MARK != 0;
                    // Also when appended behind a removed link (the hint itself, perhaps):
                    // a removed hint stops being usable once something is behind it.
                    if !from_hint || walked >= HINT_STRIDE || behind_removed {
                        set_hint(core, link, pin);
                    }
                    if behind_removed {
                        // Appended behind a removed last link, which now has a successor and
                        // will be unlinked by the next walk from the stub that passes it.
                        note_lingering(core, pin);
                    }
                }
                return Tail::Appended { eligible };
            }
            Err(_) => {
                if committed && eligible {
                    req.undo_pre_grant(link);
                }
            }
        }
    }
}

/// An append that started from the tail hint moves the hint to its own link only when it
/// walked this many links past it: moving it costs a reference count each way and an epoch
/// deferral, walking a link a load. So appends from the hint walk fewer than this many links.
const HINT_STRIDE: usize = 4;

/// Links reserved on a queue (the new one included) from which appends use and keep up the
/// tail hint. Below it an append walks from the stub and sees exactly what is ahead (an
/// early grant needs that).
#[cfg(not(kds_loom))]
pub(super) fn hint_min() -> u64 {
    8
}

/// Under loom the models choose (`kds::loom_hint_min`): the tail hint's extra atomics would
/// multiply the interleavings of every model, so only the models of the hint turn it on.
#[cfg(kds_loom)]
pub(super) fn hint_min() -> u64 {
    // Relaxed: set by the model before it starts any thread.
    LOOM_HINT_MIN.load(std::sync::atomic::Ordering::Relaxed)
}

/// See `hint_min` (a plain std atomic: configuration, not part of the model).
#[cfg(kds_loom)]
pub(crate) static LOOM_HINT_MIN: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(u64::MAX);

/// Whether `core`'s queue is long now: `hint_min()` links reserved, counting one just given
/// back (a cancelled link's). Never under loom unless the model turned the hint on (so the
/// other models do not pay for this load).
pub(super) fn long_now(core: &Core) -> bool {
    let min = hint_min();
    min != u64::MAX && core.gate.links_reserved() + 1 >= min
}

/// `Link::reserved`: fast holders were in the link's way when it was reserved.
pub(super) const BEHIND_HOLDERS: u8 = 1;
/// `Link::reserved`: the queue was long (`hint_min`) when the link was reserved.
pub(super) const LONG_QUEUE: u8 = 2;

/// Where an append's walk starts.
struct Start<'g> {
    /// The first node of the walk (not examined by it): the stub, or the hinted link.
    pred: &'g Link,
    /// `pred`'s `next`, as read.
    cur: Shared<'g, Link>,
    /// `pred` is the hinted link: the queue ahead of it was not seen.
    from_hint: bool,
}

/// Whether `link` (a hinted link) is shared and was triggered by the trigger rule: early at its
/// append, or by a scan. Not for the Ignore policy, whose forced triggers ignore the queue.
fn triggered_shared(link: &Link) -> bool {
    if link.exclusive {
        return false;
    }
    let Some(req) = link.request() else {
        return false;
    };
    // Acquire: a trigger, once there, is final (`TRIG_EARLY` / `TRIG_DONE` never go back).
    let trig = link.trig.load(Ordering::Acquire);
    let triggered = trig == TRIG_EARLY || trig == TRIG_DONE || cfg!(kds_bug = "hint_untriggered");
    triggered && req.kind.policy != crate::access::Locked::Ignore
}

/// Whether `node` is live (unmarked) and shared: then a shared link removed just ahead of it
/// needs no scan (see `lockfree::remove`).
pub(super) fn live_shared(node: &Link, pin: &Pin) -> bool {
    // Acquire: pairs with the follower's own removal (its mark), see `lockfree::remove`.
    let live = node.next.load(Ordering::Acquire, pin).tag() & MARK == 0;
    live && (!node.exclusive || cfg!(kds_bug = "shared_skip_any"))
}

/// The stub; or, on a `long` queue, the hinted link if it is still in the queue: live, or
/// removed but still last.
fn walk_start<'g>(core: &'g Core, long: bool, pin: &'g Pin) -> Start<'g> {
    if long {
        // Acquire: see the hinted link's fields (published by its append, before `set_hint`).
        let hint = core.hint.load(Ordering::Acquire, pin);
        // SAFETY: the hint owns a strong count of its link's request, and a hint that is
        // replaced gives its count back only through the epoch, after this pin ends.
        if let Some(hinted) = unsafe { hint.as_ref() } {
            // Acquire: see the fields of the node this points to (published by its append).
            let next = hinted.next.load(Ordering::Acquire, pin);
            // Unmarked: the link is live, so it is in the queue, and so is `next` (unlinking
            // `next` would first have changed this very word). Marked with a null `next`: the
            // link was removed (a waiter that gave up at the tail) but never had a successor,
            // and an unlink needs one (`unlink`), so it was never unlinked: it is still the
            // last node, and an append may land behind it.
            if next.tag() & MARK == 0 || next.is_null() {
                return Start {
                    pred: hinted,
                    cur: next,
                    from_hint: true,
                };
            }
        }
    }
    // Acquire: see the fields of the node this points to (published by its append).
    let cur = core.stub.next.load(Ordering::Acquire, pin);
    Start {
        pred: &core.stub,
        cur,
        from_hint: false,
    }
}

/// Makes `link` (just appended to `core`'s queue) the tail hint; the replaced hint's count is
/// given back once every thread pinned now has unpinned.
fn set_hint(core: &Core, link: &Link, pin: &Pin) {
    let req = link.request().expect("only the stub has no request");
    // The new hint's own count (given back by the next `set_hint` or by `Core::drop`).
    req.add_ref();
    // AcqRel: Release publishes the link's fields to hint readers; Acquire to read the old
    // hinted link's request.
    let old = core
        .hint
        .swap(Shared::from(link as *const Link), Ordering::AcqRel, pin);
    // SAFETY: the old hint owned a count of its request, which is ours to give back now.
    if let Some(old) = unsafe { old.as_ref() } {
        let old_ref = old.request().expect("a hint is never the stub").queue_ref();
        pin.defer(move || old_ref.release());
    }
}

/// Unlinks the removed node `cur` (whose `next` is `next`, marked and non-null) from `pred`
/// and retires it. `Some(successor)` on success; `None` if `pred` changed (it was removed or
/// unlinked, or its successor changed): restart from the stub.
fn unlink<'g>(
    pred: &Link,
    cur: Shared<'g, Link>,
    next: Shared<'g, Link>,
    pin: &'g Pin,
) -> Option<Shared<'g, Link>> {
    let succ = next.with_tag(0);
    // AcqRel on success: order the unlink before retiring; Acquire on failure: the restart
    // reads the new list.
    pred.next
        .compare_exchange(
            cur.with_tag(0),
            succ,
            Ordering::AcqRel,
            Ordering::Acquire,
            pin,
        )
        .ok()?;
    // SAFETY: `cur` was reached from the stub while pinned, so it is alive (see `retire`).
    retire(unsafe { cur.deref() }, pin);
    Some(succ)
}

/// Counts one removed link left inside `core`'s long queue where no walk may pass soon
/// (scans stop at the first link that must wait, appends start from the tail hint): a waiter
/// that gave up behind a holder, or a removed last link an append landed behind. When the
/// count reaches `sweep_limit`, this call sweeps the queue. A sweep walks the whole queue, but
/// only once per `sweep_limit` (at least half the live links) such removals, so each costs
/// O(1) amortized, and at most about `sweep_limit` removed links stay in a queue.
pub(super) fn note_lingering(core: &Core, pin: &Pin) {
    // Relaxed: a heuristic count that decides only when to tidy (any choice is correct); the
    // sweep's own walk reads the queue with Acquire loads.
    let n = core.lingering.fetch_add(1, Ordering::Relaxed) + 1;
    if n >= sweep_limit(core)
        && !cfg!(kds_bug = "no_sweep")
        // Relaxed: as above; of racing callers at most one resets it and sweeps.
        && core
            .lingering
            .compare_exchange(n, 0, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        sweep(core, pin);
    }
}

/// How many lingering removed links trigger a sweep: half the links reserved (the live ones),
/// and at least `hint_min()`.
fn sweep_limit(core: &Core) -> usize {
    let half = core.gate.links_reserved() / 2;
    half.max(hint_min()).try_into().unwrap_or(usize::MAX)
}

/// Walks `core`'s whole queue from the stub, unlinking every removed link that has a
/// successor (a removed last link stays, as everywhere).
fn sweep(core: &Core, pin: &Pin) {
    'restart: loop {
        let mut pred: &Link = &core.stub;
        // Acquire: see the fields of the node this points to (published by its append).
        let mut cur = pred.next.load(Ordering::Acquire, pin);
        // SAFETY: nodes reachable from the stub are alive while pinned (see `retire`).
        while let Some(node) = unsafe { cur.as_ref() } {
            // Acquire: see the fields of the node this points to (published by its append).
            let next = node.next.load(Ordering::Acquire, pin);
            if next.tag() & MARK != 0 && !next.is_null() {
                match unlink(pred, cur, next, pin) {
                    Some(succ) => {
                        cur = succ;
                        continue;
                    }
                    None => continue 'restart,
                }
            }
            pred = node;
            cur = next;
        }
        return;
    }
}

/// Re-applies the trigger rule (spec rule 2) to `core`'s queue: triggers every link that may
/// now use the resource, unlinking removed links met on the way.
///
/// The caller must have done its meeting-point RMW on `core.gate` after its own change to the
/// queue.
pub(super) fn scan(core: &Core, pin: &Pin) {
    'restart: loop {
        let mut pred: &Link = &core.stub;
        // Acquire: see the fields of the node this points to (published by its append).
        let mut cur = pred.next.load(Ordering::Acquire, pin);
        let mut any_ahead = false;
        let mut exclusive_ahead = false;
        // SAFETY: nodes reachable from the stub are alive while pinned (see `retire`).
        while let Some(node) = unsafe { cur.as_ref() } {
            // Acquire: see the fields of the node this points to (published by its append).
            let next = node.next.load(Ordering::Acquire, pin);
            if next.tag() & MARK != 0 {
                if next.is_null() {
                    return; // removed and last: stays until something is appended
                }
                match unlink(pred, cur, next, pin) {
                    Some(succ) => {
                        cur = succ;
                        continue;
                    }
                    None => continue 'restart,
                }
            }
            let req = node.request().expect("only the stub has no request");
            match req.presence() {
                Presence::Undecided => return, // tentative and last
                Presence::Gone => {}           // cancelled or failed: links being marked
                Presence::Live => {
                    // Fast holders are ahead of every link (they took the resource while its
                    // queue was empty); read after seeing the link, so after its reservation.
                    let eligible = if node.exclusive {
                        !any_ahead
                    } else {
                        !exclusive_ahead
                    } && !core.gate.blocks(node.exclusive);
                    if !eligible {
                        // Every link behind has a live exclusive link, or a live link and is
                        // exclusive itself, ahead of it: nothing further can trigger.
                        return;
                    }
                    // Acquire: cheap check before the RMW in `trigger`.
                    if node.trig.load(Ordering::Acquire) == TRIG_SEALED {
                        req.trigger(node);
                    }
                    any_ahead = true;
                    exclusive_ahead |= node.exclusive;
                    if node.exclusive {
                        return;
                    }
                }
            }
            pred = node;
            cur = next;
        }
        return;
    }
}

/// How a scan treats a link, from its request's state.
pub(super) enum Presence {
    /// Not yet enqueued (tentative, necessarily the last link).
    Undecided,
    /// Enqueued and not cancelled: it counts for the trigger rule.
    Live,
    /// Cancelled, or failed (Locked::Fail): logically gone already.
    Gone,
}

/// A link was just unlinked from its queue (or its queue died): drop its request's queue
/// reference once the last of the request's links is out, after every pinned thread that
/// might still reach it has unpinned.
pub(super) fn retire(link: &Link, pin: &Pin) {
    let req = link.request().expect("only the stub has no request");
    if req.unlinked_one() {
        let queue_ref = req.queue_ref();
        pin.defer(move || queue_ref.release());
    }
}

/// A strong count of a request in raw form: the engine's own, held while any of its links is
/// in a queue (see `Request::take_queue_ref`), or a tail hint's (see `set_hint`).
pub(super) struct QueueRef(pub(super) *const Request);

// SAFETY: a `QueueRef` is an owned `Arc<Request>` count in raw form; `Request` is Send + Sync.
unsafe impl Send for QueueRef {}

impl QueueRef {
    /// Drops the reference.
    fn release(self) {
        // SAFETY: `self.0` is the request's `this` (its address with the allocation's
        // provenance), and a `QueueRef` stands for one strong count leaked for it: the
        // queues' (`Request::take_queue_ref`, given back once, by the last link's `retire`)
        // or a tail hint's (`Request::add_ref`, given back once, by the `set_hint` that
        // replaces it or by `Core::drop`).
        let req = unsafe { Arc::from_raw(self.0) };
        // Often the last reference: its allocation goes to this thread's pool.
        #[cfg(not(kds_loom))]
        super::pool::give_back(req);
        #[cfg(kds_loom)]
        drop(req);
    }
}
