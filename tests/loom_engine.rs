//! Loom models of the lock-free engine's protocol steps (spec rules 1-9).
//!
//! Run: `bash .ci/loom.sh` (or `RUSTFLAGS="--cfg kds_loom --cfg crossbeam_loom"
//! LOOM_MAX_PREEMPTIONS=2 cargo test --release --features loom --test loom_engine`).
//! Each model is shown able to fail by a known bug injected with `--cfg kds_bug="..."`;
//! `docs/verification.md` records which model catches which bug.
#![cfg(kds_loom)]

use kds::{Dispatch, Guard, Interrupt, Locked, Resource, ResourceSet};
use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use loom::sync::Mutex;
use loom::thread;
use std::sync::Arc;

/// Holds the guards that direct callbacks received, and counts grants per request.
#[derive(Default)]
struct Held {
    guards: Mutex<Vec<Guard<'static>>>,
    grants: AtomicUsize,
}

impl Held {
    /// An async request whose direct callback keeps its guard in `self`.
    fn request(self: &Arc<Self>, set: ResourceSet<'_>) -> kds::Pending {
        let me = self.clone();
        set.on_grant(Dispatch::Direct, move |g| {
            me.grants.fetch_add(1, SeqCst);
            me.guards.lock().unwrap().push(g);
        })
        .expect("request refused")
    }

    fn grants(&self) -> usize {
        self.grants.load(SeqCst)
    }

    fn release_all(&self) {
        let guards: Vec<Guard<'static>> = self.guards.lock().unwrap().drain(..).collect();
        drop(guards);
    }
}

/// Two rival sets, each held by a `Held`: exactly one is granted now; releasing it grants the
/// other, which is then released too.
fn one_then_the_other(h1: &Held, h2: &Held) {
    assert_eq!(h1.grants() + h2.grants(), 1, "both or neither granted");
    h1.release_all();
    h2.release_all();
    assert_eq!(h1.grants() + h2.grants(), 2);
    h1.release_all();
    h2.release_all();
}

/// Runs `body` under loom on a spawned thread, then collects the epoch garbage there: the
/// engine then never touches crossbeam-epoch's per-thread handle from the model's main
/// thread or during loom's teardown of its lazy statics, which loom forbids.
///
/// The tail hint stays off (its atomics would multiply every model's interleavings), and so
/// does the async fast path (async requests on free resources would never queue, and the
/// models of the queued protocol would no longer model it).
fn model<F: Fn() + Send + Sync + 'static>(body: F) {
    kds::harness::loom_hint_min(u64::MAX);
    kds::harness::loom_async_fast(false);
    run_model(body);
}

/// As `model`, with the tail hint on from two reserved links (the models of long queues).
fn model_with_hint<F: Fn() + Send + Sync + 'static>(body: F) {
    kds::harness::loom_hint_min(2);
    kds::harness::loom_async_fast(false);
    run_model(body);
    kds::harness::loom_hint_min(u64::MAX);
}

/// As `model`, with async requests taking the fast path when their resources are free.
fn model_with_async_fast<F: Fn() + Send + Sync + 'static>(body: F) {
    kds::harness::loom_hint_min(u64::MAX);
    kds::harness::loom_async_fast(true);
    run_model(body);
    kds::harness::loom_async_fast(false);
}

fn run_model<F: Fn() + Send + Sync + 'static>(body: F) {
    let body = Arc::new(body);
    loom::model(move || {
        let body = body.clone();
        thread::spawn(move || {
            body();
            for _ in 0..6 {
                crossbeam_epoch::pin().flush();
            }
        })
        .join()
        .unwrap();
    });
}

/// The resource is free, and its gate is back to zero: no reservation and no fast hold left
/// over (a leaked reservation would still let `try_acquire` succeed through the queue, but
/// would disable the fast path for good).
fn free(r: &Resource) -> bool {
    let dump = format!("{r:?}");
    let clean = dump.contains("reserved_links: 0")
        && dump.contains("fast_exclusive: false")
        && dump.contains("fast_shared: 0");
    assert!(clean, "gate not back to zero: {dump}");
    ResourceSet::new().exclusive(r).try_acquire().is_ok()
}

/// Rule 1: two sets crossing two resources, enqueued concurrently in opposite orders: both
/// are granted (one after the other), no deadlock, never both at once.
#[test]
fn crossing_sets_both_granted() {
    model(|| {
        let (a, b) = (Resource::new(), Resource::new());
        let (h1, h2) = (Arc::new(Held::default()), Arc::new(Held::default()));
        let t = {
            let (a, b, h1) = (a.clone(), b.clone(), h1.clone());
            thread::spawn(move || h1.request(ResourceSet::new().exclusive(&a).exclusive(&b)))
        };
        let _p2 = h2.request(ResourceSet::new().exclusive(&b).exclusive(&a));
        let _p1 = t.join().unwrap();
        // Exactly one holds both now; releasing it grants the other.
        one_then_the_other(&h1, &h2);
        assert!(free(&a) && free(&b));
    });
}

/// Rule 3: an enqueue racing the release that frees its resource is granted.
#[test]
fn enqueue_racing_release_no_lost_wakeup() {
    model(|| {
        let (a, b) = (Resource::new(), Resource::new());
        let hold = ResourceSet::new()
            .exclusive(&a)
            .try_acquire()
            .unwrap()
            .into_owned(); // moves to another thread
        let held = Arc::new(Held::default());
        let t = thread::spawn(move || drop(hold));
        let _p = held.request(ResourceSet::new().exclusive(&a).shared(&b));
        t.join().unwrap();
        assert_eq!(held.grants(), 1, "lost wake-up: free set not granted");
        held.release_all();
        assert!(free(&a) && free(&b));
    });
}

/// Rule 5: cancel racing the grant: exactly one of "cancelled" and "callback ran", and
/// nothing left queued.
#[test]
fn cancel_racing_grant_exactly_once() {
    model(|| {
        let a = Resource::new();
        let hold = ResourceSet::new()
            .exclusive(&a)
            .try_acquire()
            .unwrap()
            .into_owned(); // moves to another thread
        let held = Arc::new(Held::default());
        let p = held.request(ResourceSet::new().exclusive(&a));
        let t = thread::spawn(move || drop(hold));
        let cancelled = p.cancel();
        t.join().unwrap();
        assert_eq!(
            held.grants(),
            usize::from(!cancelled),
            "cancelled={cancelled}"
        );
        held.release_all();
        assert!(free(&a));
    });
}

/// Rule 7: an interrupted wait racing the grant returns either the guard or the error,
/// never both, and leaves nothing queued.
#[test]
fn interrupt_racing_grant() {
    model(|| {
        let a = Resource::new();
        let hold = ResourceSet::new().exclusive(&a).try_acquire().unwrap();
        let int = Interrupt::new();
        let waiter = {
            let (a, int) = (a.clone(), int.clone());
            thread::spawn(move || {
                ResourceSet::new()
                    .exclusive(&a)
                    .wait_interruptible(None, &int)
                    .map(Guard::into_owned)
            })
        };
        int.interrupt();
        drop(hold);
        match waiter.join().unwrap() {
            Ok(g) => drop(g),
            Err(e) => assert_eq!(e, kds::Error::Interrupted),
        }
        assert!(free(&a));
    });
}

/// Rules 2 and 3: two shared holders release concurrently; the exclusive set queued behind
/// them is granted exactly once, after both.
#[test]
fn shared_shared_exclusive_handoff() {
    model(|| {
        let a = Resource::new();
        let s1 = ResourceSet::new()
            .shared(&a)
            .try_acquire()
            .unwrap()
            .into_owned(); // moves to another thread
        let s2 = ResourceSet::new().shared(&a).try_acquire().unwrap();
        let held = Arc::new(Held::default());
        let _p = held.request(ResourceSet::new().exclusive(&a));
        assert_eq!(held.grants(), 0);
        let t = thread::spawn(move || drop(s1));
        drop(s2);
        t.join().unwrap();
        assert_eq!(held.grants(), 1);
        held.release_all();
        assert!(free(&a));
    });
}

/// Rule 3's own example: shared S1 held, exclusive E pending, shared S2 enqueued while E is
/// cancelled: S2 must be granted once E is gone.
#[test]
fn cancel_exclusive_between_shared() {
    model(|| {
        let a = Resource::new();
        let s1 = ResourceSet::new().shared(&a).try_acquire().unwrap();
        let e_held = Arc::new(Held::default());
        let e = e_held.request(ResourceSet::new().exclusive(&a));
        let s2_held = Arc::new(Held::default());
        let t = {
            let (a, s2_held) = (a.clone(), s2_held.clone());
            thread::spawn(move || s2_held.request(ResourceSet::new().shared(&a)))
        };
        assert!(e.cancel());
        let _s2 = t.join().unwrap();
        assert_eq!(s2_held.grants(), 1, "S2 not granted after E was cancelled");
        assert_eq!(e_held.grants(), 0);
        drop(s1);
        s2_held.release_all();
        assert!(free(&a));
    });
}

/// Rule 8, Ignore: an async Ignore set on a sync-held resource is triggered at once (the
/// sync holder never releases here, so nobody else can grant it), while another async set
/// enqueues concurrently; that set waits, whether it lands ahead of or behind the Ignore
/// link. (Checking `is_granted` right after the request returns would be too strong: a
/// grant by a concurrent release is still in flight then.)
#[test]
fn ignore_policy_with_concurrent_enqueue() {
    model(|| {
        let a = Resource::new();
        let sync = ResourceSet::new().exclusive(&a).try_acquire().unwrap();
        let ignore = Arc::new(Held::default());
        let waiting = Arc::new(Held::default());
        let t = {
            let (a, ignore) = (a.clone(), ignore.clone());
            thread::spawn(move || {
                ignore.request(ResourceSet::new().exclusive(&a).locked(Locked::Ignore))
            })
        };
        let _w = waiting.request(ResourceSet::new().exclusive(&a));
        let _i = t.join().unwrap();
        assert_eq!(
            ignore.grants(),
            1,
            "Ignore set waited for a sync-locked resource"
        );
        assert_eq!(waiting.grants(), 0);
        drop(sync);
        ignore.release_all();
        assert_eq!(waiting.grants(), 1);
        waiting.release_all();
        assert!(free(&a));
    });
}

/// A one-link exclusive set appended while a two-resource set is still tentative on the same
/// resource: never both granted (the early-grant path must count a tentative link as ahead).
#[test]
fn single_link_vs_tentative_multi_link() {
    model(|| {
        let (r, s) = (Resource::new(), Resource::new());
        let h1 = Arc::new(Held::default());
        let h2 = Arc::new(Held::default());
        let t = {
            let (r, s, h1) = (r.clone(), s.clone(), h1.clone());
            thread::spawn(move || h1.request(ResourceSet::new().exclusive(&r).exclusive(&s)))
        };
        let _q = h2.request(ResourceSet::new().exclusive(&r));
        let _x = t.join().unwrap();
        assert_eq!(
            h1.grants() + h2.grants(),
            1,
            "two exclusive holders of one resource"
        );
        h1.release_all();
        h2.release_all();
        h1.release_all();
        h2.release_all();
        assert!(free(&r) && free(&s));
    });
}

/// A future granted on one thread while it is dropped on another: the set ends up either
/// cancelled or released, never held by nobody.
#[test]
fn future_woken_and_dropped_concurrently() {
    use std::future::Future;
    use std::task::{Context, Poll, Wake, Waker};
    struct CountWaker(AtomicUsize);
    impl Wake for CountWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, SeqCst);
        }
    }
    model(|| {
        let a = Resource::new();
        let hold = ResourceSet::new()
            .exclusive(&a)
            .try_acquire()
            .unwrap()
            .into_owned(); // moves to another thread
        let counter = Arc::new(CountWaker(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let mut fut = Box::pin(ResourceSet::new().exclusive(&a).acquire());
        assert!(matches!(
            fut.as_mut().poll(&mut Context::from_waker(&waker)),
            Poll::Pending
        ));
        let t = thread::spawn(move || drop(hold));
        drop(fut);
        t.join().unwrap();
        assert!(counter.0.load(SeqCst) <= 1);
        assert!(free(&a), "dropped future left its set queued or held");
    });
}

/// Rule 3 on the queued path: an enqueue racing the release of a *queued* holder (granted
/// through the queue, not the fast path) is granted.
#[test]
fn enqueue_racing_queued_release_no_lost_wakeup() {
    model(|| {
        let a = Resource::new();
        let first = Arc::new(Held::default());
        let _p1 = first.request(ResourceSet::new().exclusive(&a));
        assert_eq!(first.grants(), 1);
        let second = Arc::new(Held::default());
        let t = {
            let first = first.clone();
            thread::spawn(move || first.release_all())
        };
        let _p2 = second.request(ResourceSet::new().exclusive(&a));
        t.join().unwrap();
        assert_eq!(second.grants(), 1, "lost wake-up after a queued release");
        second.release_all();
        assert!(free(&a));
    });
}

/// The fast path against the queues (rules 1 and 2): a sync set taking `a` exclusively and
/// `b` shared on the fast path races an async set queueing `queued(a, b)`, which names `a`
/// exclusively. Never both hold `a` at once; whichever wins, the queued set is granted in the
/// end and nothing stays queued or held.
fn fast_pair_racing_queued(queued_set: for<'a> fn(&'a Resource, &'a Resource) -> ResourceSet<'a>) {
    model(move || {
        let (a, b) = (Resource::new(), Resource::new());
        let queued = Arc::new(Held::default());
        let t = {
            let (a, b) = (a.clone(), b.clone());
            let queued = queued.clone();
            thread::spawn(move || {
                let g = ResourceSet::new().exclusive(&a).shared(&b).try_acquire();
                // Mutual exclusion on `a`: the queued set cannot hold it now.
                if g.is_ok() {
                    assert_eq!(queued.grants(), 0, "fast holder and queued set both hold a");
                }
            }) // the fast guard is dropped inside the thread
        };
        let _p = queued.request(queued_set(&a, &b));
        t.join().unwrap();
        assert_eq!(
            queued.grants(),
            1,
            "queued set not granted after the fast holder left"
        );
        queued.release_all();
        assert!(free(&a) && free(&b));
    });
}

/// A fast attempt on two resources racing a set queueing on both (two links).
#[test]
fn fast_hold_racing_queued_set() {
    fast_pair_racing_queued(|a, b| ResourceSet::new().exclusive(b).exclusive(a));
}

/// `fast_hold_racing_queued_set` shrunk to finish at preemption bound 2 (issue 9): the fast
/// set still takes two resources (so its all-or-nothing give-back is in play), the queued set
/// names one.
#[test]
fn fast_pair_racing_one_link_set() {
    fast_pair_racing_queued(|a, _| ResourceSet::new().exclusive(a));
}

/// Rule 3 for a blocked thread behind a fast holder: the fast release must find and wake
/// the waiter that queued (and parked) behind it.
#[test]
fn fast_release_wakes_blocked_waiter() {
    model(|| {
        let a = Resource::new();
        let hold = ResourceSet::new().shared(&a).try_acquire().unwrap();
        let t = {
            let a = a.clone();
            thread::spawn(move || {
                let g = ResourceSet::new().exclusive(&a).wait().unwrap();
                drop(g);
            })
        };
        drop(hold);
        t.join().unwrap();
        assert!(free(&a));
    });
}

/// The fast path's give-back: a fast attempt on {a, b} holds `a` for a moment, finds `b` held
/// through the queue and gives `a` back, while an async set queues on `a` behind that
/// transient hold. The give-back must wake it.
#[test]
fn fast_rollback_wakes_set_queued_behind() {
    model(|| {
        let (a, b) = (Resource::new(), Resource::new());
        let holder = Arc::new(Held::default());
        let _ph = holder.request(ResourceSet::new().exclusive(&b));
        let t = {
            let (a, b) = (a.clone(), b.clone());
            thread::spawn(move || {
                let r = ResourceSet::new().exclusive(&a).exclusive(&b).try_acquire();
                assert_eq!(r.unwrap_err(), kds::Error::WouldBlock);
            })
        };
        let queued = Arc::new(Held::default());
        let _pq = queued.request(ResourceSet::new().exclusive(&a));
        t.join().unwrap();
        assert_eq!(
            queued.grants(),
            1,
            "lost wake-up behind a given-back fast hold"
        );
        queued.release_all();
        holder.release_all();
        assert!(free(&a) && free(&b));
    });
}

/// Rule 8, Fail policy, racing the release of a sync (fast) holder: the request is either
/// refused with `Busy` (nothing queued) or accepted and then granted; never stuck.
#[test]
fn fail_policy_racing_sync_release() {
    model(|| {
        let a = Resource::new();
        let hold = ResourceSet::new()
            .exclusive(&a)
            .try_acquire()
            .unwrap()
            .into_owned(); // moves to another thread
        let t = thread::spawn(move || drop(hold));
        let h = Arc::new(Held::default());
        let me = h.clone();
        let r = ResourceSet::new()
            .exclusive(&a)
            .locked(Locked::Fail)
            .on_grant(Dispatch::Direct, move |g| {
                me.grants.fetch_add(1, SeqCst);
                me.guards.lock().unwrap().push(g);
            });
        t.join().unwrap();
        match r {
            Ok(_pending) => assert_eq!(h.grants(), 1, "accepted Fail set never granted"),
            Err(e) => assert_eq!(e, kds::Error::Busy),
        }
        h.release_all();
        assert!(free(&a));
    });
}

/// Long queues (the tail hint, used under loom from two reserved links on): an exclusive set
/// appended from the hint while the hinted set is cancelled and the holder ahead releases.
/// The append must not count the unseen queue ahead as free (never granted while the holder
/// holds), must not lose its wake-up, and nothing stays queued.
#[test]
fn append_from_hint_racing_cancel_and_release() {
    model_with_hint(|| {
        let a = Resource::new();
        let first = Arc::new(Held::default());
        let _p1 = first.request(ResourceSet::new().exclusive(&a));
        assert_eq!(first.grants(), 1);
        // Two links reserved: this append sets the hint to `hinted`'s link.
        let hinted = Arc::new(Held::default());
        let p2 = hinted.request(ResourceSet::new().exclusive(&a));
        let released = Arc::new(AtomicUsize::new(0));
        let t = {
            let (first, released) = (first.clone(), released.clone());
            thread::spawn(move || {
                assert!(p2.cancel(), "granted while the first set holds");
                released.store(1, SeqCst);
                first.release_all();
            })
        };
        let third = Arc::new(Held::default());
        let _p3 = {
            let (third, released) = (third.clone(), released.clone());
            ResourceSet::new()
                .exclusive(&a)
                .on_grant(Dispatch::Direct, move |g| {
                    assert_eq!(
                        released.load(SeqCst),
                        1,
                        "granted while the first set holds"
                    );
                    third.grants.fetch_add(1, SeqCst);
                    third.guards.lock().unwrap().push(g);
                })
                .unwrap()
        };
        t.join().unwrap();
        assert_eq!(third.grants(), 1, "lost wake-up behind the hint");
        assert_eq!(hinted.grants(), 0);
        third.release_all();
        assert!(free(&a));
    });
}

/// Rule 8 with async fast holders: a direct callback's set taken on the fast path races a
/// Fail request on the same resource. An async holder never makes the resource sync-locked,
/// so the Fail request is never refused; both are granted, one after the other.
#[test]
fn async_fast_hold_racing_fail_request() {
    model_with_async_fast(|| {
        let a = Resource::new();
        let (h1, h2) = (Arc::new(Held::default()), Arc::new(Held::default()));
        let t = {
            let (a, h1) = (a.clone(), h1.clone());
            thread::spawn(move || h1.request(ResourceSet::new().exclusive(&a)))
        };
        let _p2 = h2.request(ResourceSet::new().exclusive(&a).locked(Locked::Fail));
        let _p1 = t.join().unwrap();
        one_then_the_other(&h1, &h2);
        assert!(free(&a));
    });
}

/// Long queues and helping: a one-link set appends from the tail hint while the hinted link
/// belongs to a two-resource set that is still tentative. The appender must help that set
/// (never append behind a tentative link), and the two are granted one after the other once
/// the holder releases.
#[test]
fn append_from_hint_helps_a_tentative_set() {
    model_with_hint(|| {
        let (a, b) = (Resource::new(), Resource::new());
        let first = Arc::new(Held::default());
        let _p1 = first.request(ResourceSet::new().exclusive(&a));
        let (h2, h3) = (Arc::new(Held::default()), Arc::new(Held::default()));
        let t = {
            let (a, b, h2) = (a.clone(), b.clone(), h2.clone());
            thread::spawn(move || h2.request(ResourceSet::new().exclusive(&a).exclusive(&b)))
        };
        let _p3 = h3.request(ResourceSet::new().exclusive(&a));
        let _p2 = t.join().unwrap();
        assert_eq!(
            h2.grants() + h3.grants(),
            0,
            "granted while the first set holds"
        );
        first.release_all();
        one_then_the_other(&h2, &h3);
        assert!(free(&a) && free(&b));
    });
}

/// Long queues, waiters that give up: behind a holder and a waiter that stays, the waiter
/// after it and the hinted one at the tail are cancelled, then the holder releases, while a
/// new set appends from the hint, possibly behind the removed last link. The two removed
/// links left inside the queue reach the sweep limit (2 under loom), so one of the operations
/// sweeps the queue while the others walk it (the release's scan stops at the waiter that
/// stays, so only the sweep can unlink them). The waiter that stays is granted, the new set is
/// not yet, no removed link is left between them, and both are granted in turn.
#[test]
fn append_behind_removed_tail_racing_sweep() {
    model_with_hint(|| {
        let a = Resource::new();
        let first = Arc::new(Held::default());
        let _p1 = first.request(ResourceSet::new().exclusive(&a));
        let stays = Arc::new(Held::default());
        let _p0 = stays.request(ResourceSet::new().exclusive(&a));
        let (w1, w2) = (Arc::new(Held::default()), Arc::new(Held::default()));
        let p1 = w1.request(ResourceSet::new().exclusive(&a));
        let p2 = w2.request(ResourceSet::new().exclusive(&a));
        let t = {
            let first = first.clone();
            thread::spawn(move || {
                assert!(
                    p1.cancel() && p2.cancel(),
                    "granted while the first set holds"
                );
                first.release_all();
            })
        };
        let third = Arc::new(Held::default());
        let _p3 = third.request(ResourceSet::new().exclusive(&a));
        t.join().unwrap();
        assert_eq!(stays.grants(), 1, "lost wake-up");
        assert_eq!(third.grants() + w1.grants() + w2.grants(), 0);
        let dump = format!("{a:?}");
        assert!(
            dump.contains("live_links: 2, removed_links: 0"),
            "removed links left in the queue: {dump}"
        );
        stays.release_all();
        assert_eq!(third.grants(), 1, "lost wake-up behind the removed tail");
        third.release_all();
        assert!(free(&a));
    });
}

/// Long queues, a crowd of readers: behind two shared holders (the second is the tail hint, a
/// shared link the trigger rule triggered), a shared set appends from the hint (eligible at
/// its append if no exclusive link is between, issue 18) while an exclusive set appends and
/// the holders release. Never both the new shared set and the exclusive one at once; each is
/// granted once, in queue order; no lost wake-up.
#[test]
fn shared_append_from_triggered_hint_racing_exclusive() {
    model_with_hint(|| {
        let a = Resource::new();
        let (s1, s2) = (Arc::new(Held::default()), Arc::new(Held::default()));
        let _p1 = s1.request(ResourceSet::new().shared(&a));
        let _p2 = s2.request(ResourceSet::new().shared(&a));
        assert_eq!(
            s1.grants() + s2.grants(),
            2,
            "a shared crowd is granted at once"
        );
        let e = Arc::new(Held::default());
        let t = {
            let (a, e, s1) = (a.clone(), e.clone(), s1.clone());
            thread::spawn(move || {
                let p = e.request(ResourceSet::new().exclusive(&a));
                s1.release_all();
                p
            })
        };
        let s3 = Arc::new(Held::default());
        let _p3 = s3.request(ResourceSet::new().shared(&a));
        s2.release_all();
        let _pe = t.join().unwrap();
        assert_eq!(
            e.grants() + s3.grants(),
            1,
            "both or neither of the exclusive set and the reader behind the crowd"
        );
        e.release_all();
        s3.release_all();
        assert_eq!(e.grants() + s3.grants(), 2, "lost wake-up");
        e.release_all();
        s3.release_all();
        assert!(free(&a));
    });
}

/// Rules 5 and 8 meeting the shared-crowd rule: a Fail request refused while its shared link
/// is right behind a shared holder's link, racing an exclusive set appended behind it and that
/// holder's release. The release skips its scan while the refused link still looks live and
/// shared; the refused request's own removal must then scan, or the exclusive set is never
/// granted (the torture stall of issue 18's second pass; `kds_bug = "failed_no_scan"`).
#[test]
fn fail_refusal_racing_shared_release_and_exclusive_append() {
    model(|| {
        let (r, s) = (Resource::new(), Resource::new());
        // `s` is sync-locked throughout, so the Fail request is always refused.
        let sync_hold = ResourceSet::new().exclusive(&s).try_acquire().unwrap();
        let x = Arc::new(Held::default());
        let _px = x.request(ResourceSet::new().shared(&r));
        assert_eq!(x.grants(), 1);
        // The exclusive set appends (behind the refused link, if it is still there), then the
        // shared holder ahead releases. On their own thread, so that one preemption (of the
        // refused request, between its decision and its marks) is enough.
        let z = Arc::new(Held::default());
        let t = {
            let (r, x, z) = (r.clone(), x.clone(), z.clone());
            thread::spawn(move || {
                let pz = z.request(ResourceSet::new().exclusive(&r));
                x.release_all();
                pz
            })
        };
        let refused = ResourceSet::new()
            .shared(&r)
            .exclusive(&s)
            .locked(Locked::Fail)
            .on_grant(Dispatch::Direct, drop)
            .map(drop);
        assert_eq!(refused, Err(kds::Error::Busy));
        let _pz = t.join().unwrap();
        assert_eq!(
            z.grants(),
            1,
            "the exclusive set was never granted: a lost scan"
        );
        z.release_all();
        drop(sync_hold);
        assert!(free(&r) && free(&s));
    });
}
