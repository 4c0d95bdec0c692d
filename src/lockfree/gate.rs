//! A resource's *gate*: one atomic word that counts the links in its queue and the sets that
//! hold it on the **fast path**, and that every operation on the resource meets on.
//!
//! The fast path: a request whose resources all have empty queues takes each
//! resource with one CAS on its gate, in the fixed resource order, and holds the set without
//! allocating or queueing anything; it releases each with one `fetch_sub`. If any resource has
//! a link queued, or a conflicting fast holder, the attempt gives back what it took and the
//! request goes the queued way (`enqueue`). A fast holder counts as ahead of every link queued
//! after it (rule 2): a link waits for the holders that were there when it was reserved.
//!
//! Async sets (`on_grant` with direct dispatch, `acquire()`) with the Wait policy take the
//! fast path too. Rule 8 tells sync holders from async ones (only sync sets make a resource
//! sync-locked), so the word counts them apart:
//!
//! | bits    | meaning |
//! |---------|---------|
//! | 0       | `EXCL`: a fast holder holds the resource exclusively |
//! | 1       | `EXCL_ASYNC`: that exclusive holder is an async set |
//! | 2..17   | `SHARED_SYNC`: number of sync fast holders holding it shared |
//! | 17..32  | `SHARED_ASYNC`: number of async fast holders holding it shared |
//! | 32..64  | `LINK`: links reserved on the resource and not yet removed |
//!
//! Why it is sound (the argument is in `docs/design.md`, "The fast path"):
//! - a fast acquisition succeeds only while `LINK` is 0, and every enqueue reserves its link
//!   (`LINK += 1`, one RMW that also reads the holders) *before* the link can be seen, so
//!   holders never join a resource that has a live link, and only leave it;
//! - the gate is the resource's meeting point (the role a `changes` counter would play):
//!   every operation that changes what a scan would decide — a commit, a removal, a fast
//!   release — does one RMW on it after its change and before its scan, so of two racing
//!   operations the later one sees the earlier one's change and no wake-up is lost.

use crate::engine::Holder;
use crate::sync::{AtomicU64, Ordering};

const EXCL: u64 = 1;
const EXCL_ASYNC: u64 = 1 << 1;
const SHARED_SYNC: u64 = 1 << 2;
const SHARED_SYNC_MAX: u64 = ((1 << 15) - 1) * SHARED_SYNC;
const SHARED_ASYNC: u64 = 1 << 17;
const SHARED_ASYNC_MAX: u64 = ((1 << 15) - 1) * SHARED_ASYNC;
const HOLDS: u64 = (1 << 32) - 1;
const LINK: u64 = 1 << 32;

impl Holder {
    /// The bits one hold of this holder in mode `exclusive` adds to the word.
    #[inline]
    fn hold(self, exclusive: bool) -> u64 {
        match (exclusive, self) {
            (true, Holder::Sync) => EXCL,
            (true, Holder::Async) => EXCL | EXCL_ASYNC,
            (false, Holder::Sync) => SHARED_SYNC,
            (false, Holder::Async) => SHARED_ASYNC,
        }
    }

    /// The field of the shared count of this holder, full.
    #[inline]
    fn shared_max(self) -> u64 {
        match self {
            Holder::Sync => SHARED_SYNC_MAX,
            Holder::Async => SHARED_ASYNC_MAX,
        }
    }
}

/// The ordering of the gate's meeting-point RMWs; a test-only injected bug weakens it.
pub(super) const MEET: Ordering = if cfg!(kds_bug = "relaxed_changes") {
    Ordering::Relaxed
} else {
    Ordering::AcqRel
};

/// See the module docs.
#[derive(Default)]
pub(crate) struct Gate(AtomicU64);

/// Whether fast holders in `word` keep a link of mode `exclusive` from triggering.
#[inline]
fn holders_block(word: u64, exclusive: bool) -> bool {
    if exclusive {
        word & HOLDS != 0
    } else {
        word & EXCL != 0
    }
}

impl Gate {
    /// Takes the resource on the fast path if no link is queued and no holder conflicts.
    #[inline]
    pub(super) fn try_hold(&self, exclusive: bool, holder: Holder) -> bool {
        // Relaxed: only a first guess for the CAS below, which checks it.
        let mut word = self.0.load(Ordering::Relaxed);
        loop {
            let links_queued = word >> 32 != 0 && !cfg!(kds_bug = "fast_ignores_links");
            if links_queued || holders_block(word, exclusive) {
                return false;
            }
            if !exclusive && word & holder.shared_max() == holder.shared_max() {
                return false; // the count would overflow: take the queued way
            }
            // No carry: an exclusive hold finds the holder bits clear; a shared one, its count
            // below its maximum.
            let new = word + holder.hold(exclusive);
            // Acquire: like a lock, see what the previous holder (fast or queued) did before
            // its release. Relaxed on failure: retried.
            match self
                .0
                .compare_exchange_weak(word, new, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(now) => word = now,
            }
        }
    }

    /// Gives back a fast hold; `true` if links are queued, which the caller must then scan
    /// for (the holder may have been all that kept them waiting).
    #[inline]
    pub(super) fn unhold(&self, exclusive: bool, holder: Holder) -> bool {
        let hold = holder.hold(exclusive);
        // AcqRel: Release publishes the holder's use of the resource; this RMW is also the
        // meeting point with racing enqueues (see the module docs).
        let before = self.0.fetch_sub(hold, MEET);
        debug_assert!(
            if exclusive {
                before & (EXCL | EXCL_ASYNC) == hold
            } else {
                before & holder.shared_max() != 0
            },
            "unhold without a hold"
        );
        before >> 32 != 0 && !cfg!(kds_bug = "fast_release_no_scan")
    }

    /// Reserves one link before it is appended; returns the word before, for
    /// [`Gate::reserved_behind_holders`].
    pub(super) fn reserve(&self) -> u64 {
        // AcqRel: meeting point; and no fast hold can start after this until the link's
        // removal gives the reservation back.
        self.0.fetch_add(LINK, MEET)
    }

    /// Gives back a link's reservation (after the link was marked removed).
    pub(super) fn unreserve(&self) {
        // AcqRel: meeting point (this RMW comes after the removal, before the remover's scan),
        // and Release to the fast acquirer that may come next.
        let before = self.0.fetch_sub(LINK, MEET);
        debug_assert!(before >> 32 != 0, "unreserve without a reservation");
    }

    /// A meeting-point RMW that changes nothing: done after a commit, before its scan.
    pub(super) fn meet(&self) {
        // AcqRel: see the module docs.
        self.0.fetch_add(0, MEET);
    }

    /// Whether fast holders now keep a link of mode `exclusive` from triggering. Read by
    /// scans after they saw the link, hence after its reservation: holders can only have
    /// left since, so a `false` is final.
    pub(super) fn blocks(&self, exclusive: bool) -> bool {
        // Acquire: pairs with `unhold`'s release, so a trigger after a `false` comes after the
        // holders' use of the resource.
        holders_block(self.0.load(Ordering::Acquire), exclusive)
    }

    /// Whether a sync fast holder holds the resource, which makes it sync-locked (rule 8).
    pub(super) fn held_by_sync(&self) -> bool {
        // Acquire: as in `blocks`.
        let w = self.0.load(Ordering::Acquire);
        w & (EXCL | EXCL_ASYNC) == EXCL || w & SHARED_SYNC_MAX != 0
    }

    /// Links reserved now (a snapshot that may change at once).
    pub(super) fn links_reserved(&self) -> u64 {
        // Relaxed: only chooses whether a cancel tidies its queue; either choice is correct.
        self.0.load(Ordering::Relaxed) >> 32
    }

    /// The links reserved in a word returned by `reserve`.
    pub(super) fn links_in(word: u64) -> u64 {
        word >> 32
    }

    /// Whether the word returned by `reserve` had holders in the way of mode `exclusive`.
    pub(super) fn reserved_behind_holders(word: u64, exclusive: bool) -> bool {
        holders_block(word, exclusive)
    }

    /// (exclusive holder, shared holders, reserved links), for `Debug`.
    pub(super) fn snapshot(&self) -> (bool, u64, u64) {
        // Relaxed: a diagnostic snapshot.
        let w = self.0.load(Ordering::Relaxed);
        let shared = (w & SHARED_SYNC_MAX) / SHARED_SYNC + (w & SHARED_ASYNC_MAX) / SHARED_ASYNC;
        (w & EXCL != 0, shared, w >> 32)
    }
}
