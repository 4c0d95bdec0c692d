//! The two-phase, multi-resource enqueue (spec rule 1) with helping.
//!
//! Phase 1 appends the request's links, in the fixed resource order (by address), as
//! *tentative* links: a link whose request is `UNDECIDED` may only be last in its queue, and
//! nobody appends behind it. Whoever finds such a link at the end of a queue it wants to
//! append to *helps* that request: runs the same phase 1 and 2 for it, then retries. Phase 2
//! is one CAS on the request's state word (`UNDECIDED -> COMMITTED`, or `FAILED` for a Locked::Fail
//! set that met a sync-locked resource): that CAS is the linearization point at which all k
//! links enter their queues at once. No link is ever behind a tentative one, so every queue
//! orders committed sets by their commit CAS, and the orders agree (rule 1).
//!
//! Helping terminates: a request found tentative on resource `r` has installed everything
//! below `r` and only needs resources above it, so a chain of helping only climbs the
//! resource order and cannot cycle.
//!
//! CAS count per enqueue of k resources, uncontended: k appends + 1 decision = k + 1 (a
//! one-resource `Locked::Wait` set: 1, its append is its commit), the count of Guerraoui,
//! Kogan, Marathe and Zablotchi's multi-word CAS and one above their lower bound of k.
//!
//! ## Sources
//!
//! - Timothy L. Harris, Keir Fraser, Ian A. Pratt, "A Practical Multi-word Compare-and-Swap
//!   Operation", DISC 2002 (LNCS 2508, pp. 265-279): a descriptor installed in each word in a
//!   fixed order, one CAS on the descriptor's status to decide, and helping by whoever meets
//!   an undecided descriptor. Departures: what is installed is a link appended to a queue,
//!   not a descriptor swapped into a word, so nothing is rolled back or replaced after the
//!   decision; a failed (`Locked::Fail`) request's links are marked removed instead.
//! - Rachid Guerraoui, Alex Kogan, Virendra J. Marathe, Igor Zablotchi, "Efficient
//!   Multi-word Compare and Swap", DISC 2020 (LIPIcs 179, 4:1-4:19; arXiv 2008.02527): k + 1
//!   CASes per k-word operation when uncontended, and a lower bound of k. Departure: kds has
//!   no values to compare, only queue positions to take, so its k + 1 are k appends and the
//!   decision.

use super::queue::{
    scan, sync_link_ahead, try_append, Link, Tail, SYNC_NO, SYNC_UNKNOWN, SYNC_YES, TRIG_EARLY,
};
use super::request::{Request, COMMITTED, FAILED};
use crate::sync::epoch::Guard as Pin;
use crate::sync::Ordering;
use crate::Locked;

/// Runs (or helps) the enqueue of `req` to its end: all links installed, the request decided,
/// and, if committed, its forced links triggered and its queues scanned. Idempotent.
///
/// `true` only for the `owner` of a request granted by its enqueue without any scan (a
/// one-link request granted by its very append, `Request::pre_grant`, or a request whose
/// links were all triggered early): its delivery is then the caller's, not queued.
pub(super) fn run(req: &Request, owner: bool, pin: &Pin) -> bool {
    if req.decided_by_append() {
        // One link, decided by its append: never tentative, so only its owner runs this.
        if install(req, &req.links[0], true, pin) == Some(true) {
            return true; // nothing else can have been enabled by an append
        }
    } else {
        for link in &req.links {
            match install(req, link, false, pin) {
                None => break, // decided by a helper
                Some(true) => req.trigger_early(link),
                Some(false) => {}
            }
        }
    }
    let (phase, granted_here) = match req.phase() {
        0 => req.decide(must_fail(req, pin)),
        phase => (phase, false),
    };
    if phase == FAILED {
        for link in &req.links {
            // Whoever marks a link first gives back its reservation and, like every other
            // removal, scans if a link is behind. One can be: between the FAILED decision and
            // this mark, the link is an ordinary last link (its request gone) to appenders.
            // And the removal of a shared link just ahead may have skipped its scan because
            // this one looked live and shared (`lockfree::remove`): this scan is the one that
            // rule counts on (`docs/design.md`, "Release").
            let marked = req.mark_removed(link);
            if marked.first {
                let core = link.core(pin);
                core.gate.unreserve(); // the meeting-point RMW before the scan
                if marked.behind && !cfg!(kds_bug = "failed_no_scan") {
                    scan(core, pin);
                }
            }
        }
        return false;
    }
    debug_assert_eq!(phase, COMMITTED);
    if req.kind.policy == Locked::Ignore && !cfg!(kds_bug = "no_ignore_force") {
        for link in &req.links {
            // Acquire: the first writer's decision, made before the commit.
            if link.saw_sync.load(Ordering::Acquire) == SYNC_YES {
                req.trigger(link);
            }
        }
    }
    if granted_here {
        // Every link was triggered early: nothing to scan. The owner delivers its own grant;
        // a helper queues it.
        return req.finish_grant_by(owner);
    }
    for link in &req.links {
        // Acquire: an early-triggered link needs no scan (the decision counted it).
        if link.trig.load(Ordering::Acquire) == TRIG_EARLY {
            continue;
        }
        let core = link.core(pin);
        core.gate.meet();
        scan(core, pin);
    }
    false
}

/// Appends one link, helping whatever tentative request stands in the way. `None` when the
/// request turned out to be decided already (by a helper); else whether the link was eligible
/// when appended (`false` if a helper appended it).
fn install(req: &Request, link: &Link, committed: bool, pin: &Pin) -> Option<bool> {
    loop {
        match try_append(req, link, committed, pin) {
            Tail::Installed => return Some(false),
            Tail::Appended { eligible } => return Some(eligible),
            Tail::Decided => return None,
            Tail::Blocked(other) => {
                let began = crate::timeline::now();
                run(other, false, pin);
                crate::timeline::helped(began);
            }
        }
    }
}

/// For the Fail and Ignore policies: records, per link, whether its resource is sync-locked
/// now, that is whether a live sync link is ahead of it (all links are installed and last, so
/// none can enter), and says whether a Fail request must fail. The first recorded answer per
/// link wins, so every helper decides alike.
fn must_fail(req: &Request, pin: &Pin) -> bool {
    if req.kind.policy == Locked::Wait {
        return false;
    }
    let mut fail = false;
    for link in &req.links {
        // Acquire: an answer, once recorded, is final.
        let recorded = link.saw_sync.load(Ordering::Acquire);
        if recorded != SYNC_UNKNOWN {
            fail |= recorded == SYNC_YES;
            continue;
        }
        // A sync fast holder makes the resource sync-locked; an async one does not.
        let answer = if link.core(pin).gate.held_by_sync() || sync_link_ahead(link, pin) {
            SYNC_YES
        } else {
            SYNC_NO
        };
        // AcqRel/Acquire: first writer wins; losers read the winner's answer.
        let saw = match link.saw_sync.compare_exchange(
            SYNC_UNKNOWN,
            answer,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => answer,
            Err(first) => first,
        };
        fail |= saw == SYNC_YES;
    }
    fail && req.kind.policy == Locked::Fail
}
