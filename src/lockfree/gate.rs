//! A resource's *gate*: one atomic word that counts the links in its queue and the sets that
//! hold it on the **fast path**, and that every operation on the resource meets on.
//!
//! The fast path: a blocking (sync) request whose resources all have empty queues takes each
//! resource with one CAS on its gate, in the fixed resource order, and holds the set without
//! allocating or queueing anything; it releases each with one `fetch_sub`. If any resource has
//! a link queued, or a conflicting fast holder, the attempt gives back what it took and the
//! request goes the queued way (`enqueue`). A fast holder counts as ahead of every link queued
//! after it (rule 2): a link waits for the holders that were there when it was reserved.
//!
//! | bits    | meaning |
//! |---------|---------|
//! | 0       | `EXCL`: a fast holder holds the resource exclusively |
//! | 1..32   | `SHARED`: number of fast holders holding it shared |
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

use crate::sync::{AtomicU64, Ordering};

const EXCL: u64 = 1;
const SHARED: u64 = 1 << 1;
const HOLDS: u64 = (1 << 32) - 1;
const SHARED_MAX: u64 = HOLDS & !EXCL;
const LINK: u64 = 1 << 32;

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
    pub(super) fn try_hold(&self, exclusive: bool) -> bool {
        // Relaxed: only a first guess for the CAS below, which checks it.
        let mut word = self.0.load(Ordering::Relaxed);
        loop {
            let links_queued = word >> 32 != 0 && !cfg!(kds_bug = "fast_ignores_links");
            if links_queued || holders_block(word, exclusive) {
                return false;
            }
            let new = if exclusive {
                word | EXCL
            } else if word & SHARED_MAX == SHARED_MAX {
                return false; // the count would overflow: take the queued way
            } else {
                word + SHARED
            };
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
    pub(super) fn unhold(&self, exclusive: bool) -> bool {
        let hold = if exclusive { EXCL } else { SHARED };
        // AcqRel: Release publishes the holder's use of the resource; this RMW is also the
        // meeting point with racing enqueues (see the module docs).
        let before = self.0.fetch_sub(hold, MEET);
        debug_assert!(
            before & if exclusive { EXCL } else { SHARED_MAX } != 0,
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

    /// Whether a fast holder holds the resource: only sync sets take the fast path, so this
    /// means the resource is sync-locked (rule 8).
    pub(super) fn held(&self) -> bool {
        // Acquire: as in `blocks`.
        self.0.load(Ordering::Acquire) & HOLDS != 0
    }

    /// Whether the word returned by `reserve` had holders in the way of mode `exclusive`.
    pub(super) fn reserved_behind_holders(word: u64, exclusive: bool) -> bool {
        holders_block(word, exclusive)
    }

    /// (exclusive holder, shared holders, reserved links), for `Debug`.
    pub(super) fn snapshot(&self) -> (bool, u64, u64) {
        // Relaxed: a diagnostic snapshot.
        let w = self.0.load(Ordering::Relaxed);
        (w & EXCL != 0, (w & SHARED_MAX) >> 1, w >> 32)
    }
}
