// The behaviour suite, included once per engine (see tests/behaviour.rs). The names
// `Resource`, `ResourceSet`, `Guard`, ... are the engine's, from the `use` in front.

use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// An async request whose direct callback parks its guard here, so a test can see which sets
/// are granted after each step and release them one by one.
struct Slot {
    guard: Arc<Mutex<Option<Guard>>>,
    grants: Arc<AtomicUsize>,
    pending: Option<Pending>,
}

impl Slot {
    fn new(set: &ResourceSet) -> Slot {
        Slot::try_new(set).expect("request refused")
    }

    fn try_new(set: &ResourceSet) -> Result<Slot, Error> {
        let guard = Arc::new(Mutex::new(None));
        let grants = Arc::new(AtomicUsize::new(0));
        let (g, n) = (guard.clone(), grants.clone());
        let pending = set.on_grant(Dispatch::Direct, move |guard| {
            n.fetch_add(1, SeqCst);
            *g.lock().unwrap() = Some(guard);
        })?;
        Ok(Slot { guard, grants, pending: Some(pending) })
    }

    fn granted(&self) -> bool {
        let n = self.grants.load(SeqCst);
        assert!(n <= 1, "granted {n} times");
        n == 1
    }

    fn release(&self) {
        let guard = self.guard.lock().unwrap().take().expect("release of a set not granted");
        drop(guard);
    }

    fn cancel(&mut self) -> bool {
        self.pending.take().unwrap().cancel()
    }
}

fn res(n: usize) -> Vec<Resource> {
    (0..n).map(|_| Resource::new()).collect()
}

/// `resource` is free for an exclusive user right now (and nothing is left queued on it).
fn is_free(resource: &Resource) -> bool {
    ResourceSet::new().exclusive(resource).try_acquire().is_ok()
}

// ---- Rule 1: atomic enqueue ----

#[test]
fn rule1_sets_are_ordered_alike_on_every_resource() {
    let r = res(2);
    let h0 = Slot::new(&ResourceSet::new().exclusive(&r[0]));
    let h1 = Slot::new(&ResourceSet::new().exclusive(&r[1]));
    // Built in opposite orders; each needs both.
    let x = Slot::new(&ResourceSet::new().exclusive(&r[0]).exclusive(&r[1]));
    let y = Slot::new(&ResourceSet::new().exclusive(&r[1]).exclusive(&r[0]));
    h1.release();
    assert!(!x.granted() && !y.granted());
    h0.release();
    // X is ahead of Y on both resources: X first, then Y, never a deadlock.
    assert!(x.granted() && !y.granted());
    x.release();
    assert!(y.granted());
    y.release();
    assert!(is_free(&r[0]) && is_free(&r[1]));
}

#[test]
fn rule1_crossing_sets_on_threads_never_deadlock() {
    let r = Arc::new(res(2));
    let rounds = if cfg!(miri) { 20 } else { 2000 };
    let handles: Vec<_> = (0..2)
        .map(|t| {
            let r = r.clone();
            thread::spawn(move || {
                let (a, b) = if t == 0 { (&r[0], &r[1]) } else { (&r[1], &r[0]) };
                for _ in 0..rounds {
                    let g = ResourceSet::new().exclusive(a).exclusive(b).wait().unwrap();
                    drop(g);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert!(is_free(&r[0]) && is_free(&r[1]));
}

// ---- Rule 2: the trigger rule ----

#[test]
fn rule2_shared_links_trigger_together_exclusive_waits_for_all() {
    let r = res(1);
    let s1 = Slot::new(&ResourceSet::new().shared(&r[0]));
    let s2 = Slot::new(&ResourceSet::new().shared(&r[0]));
    assert!(s1.granted() && s2.granted());
    let e = Slot::new(&ResourceSet::new().exclusive(&r[0]));
    assert!(!e.granted());
    s1.release();
    assert!(!e.granted(), "exclusive granted while a shared holder remains");
    s2.release();
    assert!(e.granted());
    e.release();
}

#[test]
fn rule2_a_set_is_granted_only_when_all_links_trigger() {
    let r = res(3);
    let hold = Slot::new(&ResourceSet::new().shared(&r[2]));
    let want = Slot::new(&ResourceSet::new().shared(&r[0]).exclusive(&r[1]).exclusive(&r[2]));
    assert!(!want.granted());
    // Its free links are triggered, and block others behind them.
    assert!(ResourceSet::new().exclusive(&r[1]).try_acquire().is_err());
    hold.release();
    assert!(want.granted());
    want.release();
    assert!(r.iter().all(is_free));
}

// ---- Rule 3: no lost wake-up ----

#[test]
fn rule3_cancelling_a_pending_exclusive_between_shared_links_triggers_those_behind() {
    let r = res(1);
    let s1 = Slot::new(&ResourceSet::new().shared(&r[0]));
    let mut e = Slot::new(&ResourceSet::new().exclusive(&r[0]));
    let s2 = Slot::new(&ResourceSet::new().shared(&r[0]));
    assert!(s1.granted() && !e.granted() && !s2.granted());
    assert!(e.cancel());
    assert!(s2.granted(), "S2 must be triggered as soon as E is cancelled");
    assert!(!e.granted());
    s1.release();
    s2.release();
    assert!(is_free(&r[0]));
}

#[test]
fn rule3_release_of_one_resource_grants_a_multi_resource_set_at_once() {
    let r = res(2);
    let a = Slot::new(&ResourceSet::new().exclusive(&r[0]));
    let b = Slot::new(&ResourceSet::new().shared(&r[1]));
    let both = Slot::new(&ResourceSet::new().exclusive(&r[0]).exclusive(&r[1]));
    b.release();
    assert!(!both.granted());
    a.release();
    assert!(both.granted());
    both.release();
}

// ---- Rule 4: FIFO, no overtaking ----

#[test]
fn rule4_shared_never_overtakes_a_queued_exclusive() {
    let r = res(1);
    let s1 = Slot::new(&ResourceSet::new().shared(&r[0]));
    let e = Slot::new(&ResourceSet::new().exclusive(&r[0]));
    let s2 = Slot::new(&ResourceSet::new().shared(&r[0]));
    assert!(!s2.granted(), "a reader overtook a queued writer");
    s1.release();
    assert!(e.granted() && !s2.granted());
    e.release();
    assert!(s2.granted());
    s2.release();
}

#[test]
fn rule4_grants_follow_queue_order() {
    let r = res(1);
    let first = Slot::new(&ResourceSet::new().exclusive(&r[0]));
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut pendings = Vec::new();
    for i in 0..10 {
        let order = order.clone();
        pendings.push(
            ResourceSet::new()
                .exclusive(&r[0])
                .on_grant(Dispatch::Direct, move |g| {
                    order.lock().unwrap().push(i);
                    drop(g);
                })
                .unwrap(),
        );
    }
    first.release();
    assert_eq!(*order.lock().unwrap(), (0..10).collect::<Vec<_>>());
    assert!(pendings.iter().all(|p| p.is_granted()));
}

/// A long queue (long enough for the lock-free engine's tail hint) of shared and exclusive
/// sets, some cancelled while queued: grants still follow the queue, a run of shared sets is
/// granted together, and nothing is left queued.
#[test]
fn rule4_long_queue_with_cancels_keeps_fifo() {
    let r = res(2);
    let first = Slot::new(&ResourceSet::new().exclusive(&r[0]));
    let mut queue: Vec<(bool, Slot)> = (0..40)
        .map(|i| {
            let set = match i % 4 {
                0 | 1 => ResourceSet::new().shared(&r[0]),
                2 => ResourceSet::new().exclusive(&r[0]).shared(&r[1]),
                _ => ResourceSet::new().exclusive(&r[0]),
            };
            (i % 4 >= 2, Slot::new(&set))
        })
        .collect();
    for (i, (_, slot)) in queue.iter_mut().enumerate() {
        if i % 5 == 0 {
            assert!(slot.cancel(), "set {i} granted while the first set holds");
        }
    }
    let mut waiting: Vec<(bool, Slot)> = queue
        .into_iter()
        .enumerate()
        .filter_map(|(i, q)| (i % 5 != 0).then_some(q))
        .collect();
    assert!(waiting.iter().all(|(_, s)| !s.granted()));
    first.release();
    while !waiting.is_empty() {
        // The head of the queue: one exclusive set, or the run of shared sets up to the next
        // exclusive one.
        let run = if waiting[0].0 { 1 } else { waiting.iter().take_while(|(x, _)| !x).count() };
        for (i, (_, slot)) in waiting.iter().enumerate() {
            assert_eq!(slot.granted(), i < run, "set {i} of {} in the queue", waiting.len());
        }
        for (_, slot) in waiting.drain(..run) {
            slot.release();
        }
    }
    assert!(is_free(&r[0]) && is_free(&r[1]));
}

// ---- Rule 5: exactly once ----

#[test]
fn rule5_cancel_before_grant_wins_and_callback_never_runs() {
    let r = res(1);
    let h = Slot::new(&ResourceSet::new().exclusive(&r[0]));
    let mut w = Slot::new(&ResourceSet::new().exclusive(&r[0]));
    assert!(w.cancel());
    h.release();
    assert!(!w.granted());
    assert!(is_free(&r[0]));
}

#[test]
fn rule5_cancel_after_grant_reports_too_late() {
    let r = res(1);
    let mut w = Slot::new(&ResourceSet::new().exclusive(&r[0]));
    assert!(w.granted());
    assert!(!w.cancel());
    assert!(!is_free(&r[0]), "a too-late cancel must not release the set");
    w.release();
    assert!(is_free(&r[0]));
}

#[test]
fn rule5_grant_racing_cancel_is_exactly_once() {
    let rounds = if cfg!(miri) { 10 } else { 3000 };
    for _ in 0..rounds {
        let r = res(1);
        let hold = ResourceSet::new().exclusive(&r[0]).wait().unwrap();
        let ran = Arc::new(AtomicUsize::new(0));
        let ran2 = ran.clone();
        let p = ResourceSet::new()
            .exclusive(&r[0])
            .on_grant(Dispatch::Direct, move |g| {
                ran2.fetch_add(1, SeqCst);
                drop(g);
            })
            .unwrap();
        let t = thread::spawn(move || drop(hold));
        let cancelled = p.cancel();
        t.join().unwrap();
        assert_eq!(ran.load(SeqCst), usize::from(!cancelled), "cancel={cancelled}");
        assert!(is_free(&r[0]));
    }
}

// ---- Rule 6: release ----

#[test]
fn rule6_guard_release_and_drop_both_release() {
    let r = res(1);
    let g = ResourceSet::new().exclusive(&r[0]).wait().unwrap();
    assert!(!is_free(&r[0]));
    g.release();
    assert!(is_free(&r[0]));
    let g = ResourceSet::new().exclusive(&r[0]).wait().unwrap();
    drop(g);
    assert!(is_free(&r[0]));
}

// ---- Rule 7: sync waits ----

#[test]
fn rule7_wait_blocks_until_release_on_another_thread() {
    let r = res(1);
    let g = ResourceSet::new().exclusive(&r[0]).wait().unwrap();
    let released = Arc::new(AtomicBool::new(false));
    let (r0, rel) = (r[0].clone(), released.clone());
    let t = thread::spawn(move || {
        let g2 = ResourceSet::new().exclusive(&r0).wait().unwrap();
        assert!(rel.load(SeqCst), "granted before the holder released");
        drop(g2);
    });
    thread::sleep(Duration::from_millis(20));
    released.store(true, SeqCst);
    drop(g);
    t.join().unwrap();
}

/// `wait_owned` (the one-liner's consuming `wait`): holds the set like `wait`, free at once
/// or after blocking, until the guard is dropped.
#[test]
fn rule7_wait_owned_holds_like_wait() {
    let r = res(2);
    let g = ResourceSet::new().exclusive(&r[0]).shared(&r[1]).wait_owned().unwrap();
    assert!(!is_free(&r[0]) && !is_free(&r[1]));
    let released = Arc::new(AtomicBool::new(false));
    let (r0, rel) = (r[0].clone(), released.clone());
    let t = thread::spawn(move || {
        let g2 = ResourceSet::new().exclusive(&r0).wait_owned().unwrap();
        assert!(rel.load(SeqCst), "granted before the holder released");
        g2
    });
    thread::sleep(Duration::from_millis(20));
    released.store(true, SeqCst);
    drop(g);
    let g2 = t.join().unwrap();
    assert!(!is_free(&r[0]) && is_free(&r[1]));
    let handle = r[0].clone();
    drop(r);
    assert!(!is_free(&handle), "still held by the guard");
    drop(g2);
    assert!(is_free(&handle));
}

/// `BorrowedSet` (the one-liner that borrows its resources): merges duplicates, holds like
/// `wait`, sync-locks, blocks behind a holder and queues in FIFO order behind a waiter
/// (it must not barge onto the fast path while a set waits), and times out cleanly.
#[test]
fn rule7_borrowed_set_holds_like_wait() {
    let r = res(3);
    // Named in reverse and twice: sorted and merged at the request, exclusive winning.
    let mut set = BorrowedSet::new();
    set.shared(&r[2]).shared(&r[1]).exclusive(&r[1]);
    set.shared(&r[0]);
    let g = set.wait().unwrap();
    assert!(!is_free(&r[0]) && !is_free(&r[1]) && !is_free(&r[2]));
    // The set is not used up: requested again, it waits like any other request (rule 7).
    assert_eq!(set.try_acquire().unwrap_err(), Error::WouldBlock);
    assert_eq!(
        BorrowedSet::new().shared(&r[1]).try_acquire().unwrap_err(),
        Error::WouldBlock,
        "r[1] was merged as shared"
    );
    assert!(BorrowedSet::new().shared(&r[0]).shared(&r[2]).try_acquire().is_ok());
    // A sync holder sync-locks its resources (rule 8).
    let fail = ResourceSet::new().shared(&r[0]).locked(Locked::Fail);
    assert_eq!(Slot::try_new(&fail).err(), Some(Error::Busy));
    // Blocking: a second borrowed wait on another thread gets in only after the release.
    let released = Arc::new(AtomicBool::new(false));
    let (r1, rel) = (r[1].clone(), released.clone());
    let t = thread::spawn(move || {
        let g2 = BorrowedSet::new().exclusive(&r1).wait().unwrap();
        assert!(rel.load(SeqCst), "granted before the holder released");
        drop(g2);
    });
    thread::sleep(Duration::from_millis(20));
    assert_eq!(
        BorrowedSet::new().exclusive(&r[1]).wait_timeout(Duration::from_millis(2)).unwrap_err(),
        Error::Timeout
    );
    released.store(true, SeqCst);
    g.release();
    t.join().unwrap();
    assert!(is_free(&r[0]) && is_free(&r[1]) && is_free(&r[2]));
}

/// A borrowed set waits behind a queued set (FIFO, rule 4) even when the holder is gone by
/// the time it asks: the fast path refuses a resource with a queue.
#[test]
fn rule4_borrowed_set_does_not_overtake_a_queued_set() {
    let r = res(1);
    let holder = Slot::new(&ResourceSet::new().shared(&r[0]));
    let queued = Slot::new(&ResourceSet::new().exclusive(&r[0]));
    assert!(holder.granted() && !queued.granted());
    assert_eq!(
        BorrowedSet::new().shared(&r[0]).try_acquire().unwrap_err(),
        Error::WouldBlock,
        "a shared borrowed set overtook the queued exclusive one"
    );
    holder.release();
    assert!(queued.granted());
    queued.release();
    let owned = BorrowedSet::new().exclusive(&r[0]).to_owned();
    assert!(owned.try_acquire().is_ok());
    assert!(is_free(&r[0]));
}

#[test]
fn rule7_timeout_cancels_and_leaves_nothing_queued() {
    let r = res(1);
    let s = Slot::new(&ResourceSet::new().shared(&r[0]));
    let err = ResourceSet::new().exclusive(&r[0]).wait_timeout(Duration::from_millis(5));
    assert_eq!(err.unwrap_err(), Error::Timeout);
    // Were the timed-out exclusive link still queued, this shared set would wait behind it.
    let s2 = Slot::new(&ResourceSet::new().shared(&r[0]));
    assert!(s2.granted());
    s.release();
    s2.release();
    assert!(is_free(&r[0]));
}

#[test]
fn rule7_zero_timeout_on_free_set_is_granted() {
    let r = res(1);
    let g = ResourceSet::new().exclusive(&r[0]).wait_timeout(Duration::ZERO).unwrap();
    drop(g);
}

#[test]
fn rule7_interrupt_from_another_thread_cancels() {
    interrupted_from_another_thread(None);
}

/// A held resource, a waiter on another thread with `timeout`, interrupted: `Interrupted`,
/// and nothing left queued.
fn interrupted_from_another_thread(timeout: Option<Duration>) {
    let r = res(1);
    let hold = ResourceSet::new().exclusive(&r[0]).wait().unwrap();
    let int = Interrupt::new();
    let (r0, int2) = (r[0].clone(), int.clone());
    let t = thread::spawn(move || {
        ResourceSet::new().exclusive(&r0).wait_interruptible(timeout, &int2).map(drop)
    });
    thread::sleep(Duration::from_millis(20));
    int.interrupt();
    assert_eq!(t.join().unwrap().unwrap_err(), Error::Interrupted);
    drop(hold);
    assert!(is_free(&r[0]));
}

#[test]
fn rule7_already_interrupted_wait_returns_at_once_unless_free() {
    let r = res(1);
    let int = Interrupt::new();
    int.interrupt();
    assert!(int.is_interrupted());
    // Free: granted at once even though interrupted.
    drop(ResourceSet::new().exclusive(&r[0]).wait_interruptible(None, &int).unwrap());
    let hold = ResourceSet::new().exclusive(&r[0]).wait().unwrap();
    let e = ResourceSet::new().exclusive(&r[0]).wait_interruptible(None, &int);
    assert_eq!(e.unwrap_err(), Error::Interrupted);
    int.clear();
    let e = ResourceSet::new()
        .exclusive(&r[0])
        .wait_interruptible(Some(Duration::from_millis(2)), &int);
    assert_eq!(e.unwrap_err(), Error::Timeout);
    drop(hold);
    assert!(is_free(&r[0]));
}

#[test]
fn rule7_timeouts_racing_grants_never_lose_a_set() {
    let r = Arc::new(res(2));
    let rounds = if cfg!(miri) { 10 } else { 400 };
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let r = r.clone();
            thread::spawn(move || {
                let mut ok = 0;
                for i in 0..rounds {
                    let set = if (t + i) % 2 == 0 {
                        ResourceSet::new().exclusive(&r[0]).shared(&r[1])
                    } else {
                        ResourceSet::new().exclusive(&r[1]).exclusive(&r[0])
                    };
                    match set.wait_timeout(Duration::from_micros(50)) {
                        Ok(g) => {
                            ok += 1;
                            drop(g)
                        }
                        Err(e) => assert_eq!(e, Error::Timeout),
                    }
                }
                ok
            })
        })
        .collect();
    let ok: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(ok > 0);
    assert!(is_free(&r[0]) && is_free(&r[1]));
}

#[test]
fn try_acquire_would_block_leaves_nothing_queued() {
    let r = res(1);
    let s = Slot::new(&ResourceSet::new().shared(&r[0]));
    assert_eq!(ResourceSet::new().exclusive(&r[0]).try_acquire().unwrap_err(), Error::WouldBlock);
    let s2 = Slot::new(&ResourceSet::new().shared(&r[0]));
    assert!(s2.granted(), "the refused exclusive link was left in the queue");
    let g = ResourceSet::new().shared(&r[0]).try_acquire().unwrap();
    drop(g);
    s.release();
    s2.release();
    assert!(is_free(&r[0]));
}

// ---- Rule 8: sync-locked resources and the locked policy ----

#[test]
fn rule8_fail_policy_is_busy_while_a_sync_set_holds() {
    let r = res(2);
    let sync = ResourceSet::new().shared(&r[0]).wait().unwrap();
    let set = ResourceSet::new().exclusive(&r[1]).shared(&r[0]).locked(Locked::Fail);
    assert_eq!(Slot::try_new(&set).err(), Some(Error::Busy));
    // Nothing was enqueued: r[1] is free.
    assert!(is_free(&r[1]));
    let fut = futures_executor::block_on(set.acquire());
    assert_eq!(fut.err(), Some(Error::Busy));
    drop(sync);
    // Sync-locking ended with the last sync link.
    let ok = Slot::new(&set);
    assert!(ok.granted());
    ok.release();
}

/// Only sync sets sync-lock: a resource held by an async set (a direct callback's guard, or a
/// future's, both granted at once) is not sync-locked, so a Fail request queues behind it.
#[test]
fn rule8_async_holders_do_not_sync_lock() {
    let r = res(1);
    let callback_holder = Slot::new(&ResourceSet::new().shared(&r[0]));
    assert!(callback_holder.granted());
    let future_holder =
        futures_executor::block_on(ResourceSet::new().shared(&r[0]).acquire()).unwrap();
    let fail = ResourceSet::new().exclusive(&r[0]).locked(Locked::Fail);
    let queued = Slot::try_new(&fail).expect("async holders made the resource sync-locked");
    assert!(!queued.granted());
    callback_holder.release();
    assert!(!queued.granted());
    drop(future_holder);
    assert!(queued.granted());
    // A sync holder still sync-locks, next to an async one.
    queued.release();
    let async_shared = Slot::new(&ResourceSet::new().shared(&r[0]));
    let sync_shared = ResourceSet::new().shared(&r[0]).wait().unwrap();
    assert_eq!(Slot::try_new(&fail).err(), Some(Error::Busy));
    drop(sync_shared);
    let after = Slot::try_new(&fail).expect("sync-locking ended with the sync holder");
    async_shared.release();
    assert!(after.granted());
    after.release();
    assert!(is_free(&r[0]));
}

#[test]
fn rule8_fail_policy_is_busy_while_a_sync_set_waits() {
    let r = res(1);
    let async_holder = Slot::new(&ResourceSet::new().exclusive(&r[0]));
    let r0 = r[0].clone();
    let t = thread::spawn(move || drop(ResourceSet::new().exclusive(&r0).wait().unwrap()));
    // Wait until the sync waiter is queued (a Fail request says so).
    let fail = ResourceSet::new().shared(&r[0]).locked(Locked::Fail);
    let mut tries = 0;
    loop {
        match Slot::try_new(&fail) {
            Err(Error::Busy) => break,
            Ok(mut s) => {
                assert!(s.cancel());
                tries += 1;
                assert!(tries < 10_000, "sync waiter never showed up");
                thread::sleep(Duration::from_millis(1));
            }
            Err(e) => panic!("{e}"),
        }
    }
    async_holder.release();
    t.join().unwrap();
    let s = Slot::new(&fail);
    assert!(s.granted());
    s.release();
}

#[test]
fn rule8_wait_policy_waits_behind_sync_sets() {
    let r = res(1);
    let sync = ResourceSet::new().exclusive(&r[0]).wait().unwrap();
    let w = Slot::new(&ResourceSet::new().exclusive(&r[0]).locked(Locked::Wait));
    assert!(!w.granted());
    drop(sync);
    assert!(w.granted());
    w.release();
}

#[test]
fn rule8_ignore_policy_triggers_at_once_but_blocks_later_sets() {
    let r = res(2);
    let sync = ResourceSet::new().exclusive(&r[0]).wait().unwrap();
    let ign = Slot::new(&ResourceSet::new().exclusive(&r[0]).shared(&r[1]).locked(Locked::Ignore));
    assert!(ign.granted(), "Ignore must not wait for a sync-locked resource");
    let later = Slot::new(&ResourceSet::new().shared(&r[0]));
    drop(sync);
    assert!(!later.granted(), "a later set must wait behind the Ignore link");
    ign.release();
    assert!(later.granted());
    later.release();
    assert!(r.iter().all(is_free));
}

#[test]
fn rule8_ignore_policy_waits_on_resources_not_sync_locked() {
    let r = res(2);
    let async_holder = Slot::new(&ResourceSet::new().exclusive(&r[1]));
    let sync = ResourceSet::new().exclusive(&r[0]).wait().unwrap();
    let ign = Slot::new(&ResourceSet::new().exclusive(&r[0]).exclusive(&r[1]).locked(Locked::Ignore));
    // r[0] is sync-locked (ignored), r[1] is held by an async set (waited for).
    assert!(!ign.granted());
    async_holder.release();
    assert!(ign.granted());
    ign.release();
    drop(sync);
    assert!(r.iter().all(is_free));
}

// ---- Rule 9: callbacks ----

#[test]
fn rule9_direct_callback_runs_inside_on_grant_when_free() {
    let r = res(1);
    let me = thread::current().id();
    let ran_here = Arc::new(AtomicBool::new(false));
    let flag = ran_here.clone();
    let p = ResourceSet::new()
        .exclusive(&r[0])
        .on_grant(Dispatch::Direct, move |g| {
            flag.store(thread::current().id() == me, SeqCst);
            drop(g);
        })
        .unwrap();
    assert!(ran_here.load(SeqCst));
    assert!(p.is_granted());
    assert!(!p.cancel());
}

#[test]
fn rule9_worker_callbacks_run_on_the_worker_in_grant_order() {
    let r = res(1);
    let w = Worker::spawn("kds-test-worker").unwrap();
    assert_eq!(w.name(), "kds-test-worker");
    let hold = ResourceSet::new().exclusive(&r[0]).wait().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    for i in 0..20 {
        let tx = tx.clone();
        ResourceSet::new()
            .exclusive(&r[0])
            .on_grant(Dispatch::Worker(w.clone()), move |g| {
                let name = thread::current().name().map(str::to_owned);
                tx.send((i, name)).unwrap();
                drop(g);
            })
            .unwrap();
    }
    drop(hold);
    for i in 0..20 {
        let (got, name) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(got, i);
        assert_eq!(name.as_deref(), Some("kds-test-worker"));
    }
}

#[test]
fn rule9_pool_callbacks_run() {
    let r = res(1);
    let (tx, rx) = std::sync::mpsc::channel();
    let _p = ResourceSet::new()
        .shared(&r[0])
        .on_grant(Dispatch::Pool, move |g| {
            tx.send(()).unwrap();
            drop(g);
        })
        .unwrap();
    rx.recv_timeout(Duration::from_secs(10)).unwrap();
}

#[test]
fn rule9_callback_may_release_request_and_cancel() {
    let r = res(2);
    let hold = ResourceSet::new().exclusive(&r[0]).wait().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (r0, r1, l) = (r[0].clone(), r[1].clone(), log.clone());
    let _p = ResourceSet::new()
        .exclusive(&r[0])
        .on_grant(Dispatch::Direct, move |g| {
            l.lock().unwrap().push("first");
            // Request another set from inside the callback, and cancel a third.
            let l2 = l.clone();
            let _ = ResourceSet::new()
                .exclusive(&r1)
                .on_grant(Dispatch::Direct, move |g2| {
                    l2.lock().unwrap().push("nested");
                    drop(g2);
                })
                .unwrap();
            let blocked = ResourceSet::new()
                .exclusive(&r0)
                .on_grant(Dispatch::Direct, |_| panic!("must have been cancelled"))
                .unwrap();
            assert!(blocked.cancel());
            drop(g);
        })
        .unwrap();
    drop(hold);
    assert_eq!(*log.lock().unwrap(), vec!["first", "nested"]);
    assert!(r.iter().all(is_free));
}

#[test]
fn rule9_long_direct_callback_chain_does_not_grow_the_stack() {
    // Run on a small stack: a recursive delivery would overflow long before the end.
    let n = if cfg!(miri) { 50 } else { 10_000 };
    let t = thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || {
            let r = Resource::new();
            let hold = ResourceSet::new().exclusive(&r).wait().unwrap();
            let ran = Arc::new(AtomicUsize::new(0));
            for _ in 0..n {
                let ran = ran.clone();
                let _ = ResourceSet::new()
                    .exclusive(&r)
                    .on_grant(Dispatch::Direct, move |g| {
                        ran.fetch_add(1, SeqCst);
                        drop(g); // grants the next one: a chain of n direct callbacks
                    })
                    .unwrap();
            }
            drop(hold);
            assert_eq!(ran.load(SeqCst), n);
            assert!(is_free(&r));
        })
        .unwrap();
    t.join().unwrap();
}

/// A direct callback that requests the next set, free at once, from inside itself: the next
/// callback must wait for this one to return (the trampoline), not run nested in it.
#[test]
fn rule9_callbacks_that_request_free_sets_do_not_nest() {
    fn next(r: Arc<Resource>, left: usize, depth: Arc<AtomicUsize>, max: Arc<AtomicUsize>) {
        let (d, m) = (depth.clone(), max.clone());
        let rr = r.clone();
        let p = ResourceSet::new()
            .exclusive(&r)
            .on_grant(Dispatch::Direct, move |g| {
                let now = d.fetch_add(1, SeqCst) + 1;
                m.fetch_max(now, SeqCst);
                drop(g);
                if left > 0 {
                    next(rr, left - 1, d.clone(), m);
                }
                d.fetch_sub(1, SeqCst);
            })
            .unwrap();
        assert!(p.is_granted(), "a free set is granted inside on_grant");
    }
    let n = if cfg!(miri) { 50 } else { 10_000 };
    let t = thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || {
            let r = Arc::new(Resource::new());
            let (depth, max) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
            next(r.clone(), n, depth.clone(), max.clone());
            assert_eq!(depth.load(SeqCst), 0, "every callback ran to its end");
            assert_eq!(max.load(SeqCst), 1, "callbacks nested");
            assert!(is_free(&r));
        })
        .unwrap();
    t.join().unwrap();
}

#[test]
fn rule9_panicking_callback_releases_its_set() {
    let r = res(1);
    let hold = ResourceSet::new().exclusive(&r[0]).wait().unwrap();
    let _p = ResourceSet::new()
        .exclusive(&r[0])
        .on_grant(Dispatch::Direct, |_g| panic!("callback panics on purpose"))
        .unwrap();
    let after = Slot::new(&ResourceSet::new().exclusive(&r[0]));
    drop(hold); // runs the panicking callback here; must not unwind into us
    assert!(after.granted(), "the panicking callback's set was not released");
    after.release();
    // A worker survives a panicking callback too.
    let w = Worker::spawn("kds-panic").unwrap();
    let _ = ResourceSet::new()
        .exclusive(&r[0])
        .on_grant(Dispatch::Worker(w.clone()), |_g| panic!("worker callback panics on purpose"))
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let _ = ResourceSet::new()
        .exclusive(&r[0])
        .on_grant(Dispatch::Worker(w), move |g| {
            tx.send(()).unwrap();
            drop(g)
        })
        .unwrap();
    rx.recv_timeout(Duration::from_secs(10)).unwrap();
}

#[test]
fn rule9_blocking_wait_inside_a_direct_callback_is_granted() {
    // The inner set is free: its grant must not wait for the callback to return.
    let r = res(2);
    let hold = ResourceSet::new().exclusive(&r[0]).wait().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let r1 = r[1].clone();
    let _p = ResourceSet::new()
        .exclusive(&r[0])
        .on_grant(Dispatch::Direct, move |g| {
            let start = std::time::Instant::now();
            let inner = ResourceSet::new().exclusive(&r1).wait_timeout(Duration::from_secs(30));
            tx.send((inner.is_ok(), start.elapsed())).unwrap();
            drop(g);
        })
        .unwrap();
    drop(hold); // runs the callback here
    let (ok, took) = rx.recv_timeout(Duration::from_secs(60)).unwrap();
    assert!(ok && took < Duration::from_secs(10), "inner wait hung for {took:?}");
    assert!(r.iter().all(is_free));
}

#[test]
fn rule9_callback_that_releases_then_waits_for_the_thread_it_woke() {
    // The callback's release grants thread T's wait on x; T then releases y, which the
    // callback waits for. T's wake-up must not be held back until the callback returns.
    let r = res(3);
    let (x, y, z) = (r[0].clone(), r[1].clone(), r[2].clone());
    let gx = ResourceSet::new().exclusive(&x).wait().unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let t = {
        let (x, y) = (x.clone(), y.clone());
        thread::spawn(move || {
            let gy = ResourceSet::new().exclusive(&y).wait().unwrap();
            ready_tx.send(()).unwrap();
            let gx = ResourceSet::new().exclusive(&x).wait_timeout(Duration::from_secs(30));
            drop(gy);
            gx.is_ok()
        })
    };
    ready_rx.recv().unwrap();
    let hz = ResourceSet::new().exclusive(&z).wait().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let gx = Mutex::new(Some(gx));
    let _p = ResourceSet::new()
        .exclusive(&z)
        .on_grant(Dispatch::Direct, move |g| {
            drop(gx.lock().unwrap().take());
            let start = std::time::Instant::now();
            let gy = ResourceSet::new().exclusive(&y).wait_timeout(Duration::from_secs(30));
            tx.send((gy.is_ok(), start.elapsed())).unwrap();
            drop(g);
        })
        .unwrap();
    drop(hz);
    let (ok, took) = rx.recv_timeout(Duration::from_secs(60)).unwrap();
    assert!(t.join().unwrap());
    assert!(ok && took < Duration::from_secs(10), "callback's wait hung for {took:?}");
    assert!(r.iter().all(is_free));
}

// ---- Rule 10: lifetimes ----

#[test]
fn rule10_dropping_handles_while_sets_use_them_is_safe() {
    let r = res(2);
    let held = Slot::new(&ResourceSet::new().exclusive(&r[0]).shared(&r[1]));
    let waiting = Slot::new(&ResourceSet::new().exclusive(&r[0]).exclusive(&r[1]));
    let keep = r[1].clone();
    drop(r);
    assert!(held.granted() && !waiting.granted());
    held.release();
    assert!(waiting.granted());
    waiting.release();
    assert!(is_free(&keep));
}

#[test]
fn rule10_many_resources_created_and_dropped() {
    for _ in 0..if cfg!(miri) { 10 } else { 10_000 } {
        let r = Resource::new();
        drop(ResourceSet::new().exclusive(&r).wait().unwrap());
        let s = Slot::new(&ResourceSet::new().shared(&r));
        drop(r);
        s.release();
    }
}

// ---- Rule 11: bad input ----

#[test]
fn rule11_duplicate_resource_merges_exclusive_wins() {
    let r = res(1);
    let set = ResourceSet::new().shared(&r[0]).exclusive(&r[0]).shared(&r[0]);
    assert_eq!(set.len(), 1);
    let g = set.wait().unwrap(); // must not wait for itself
    let s = Slot::new(&ResourceSet::new().shared(&r[0]));
    assert!(!s.granted(), "the merged link must be exclusive");
    drop(g);
    assert!(s.granted());
    s.release();
    let both = ResourceSet::new().shared(&r[0]).access(&r[0], Access::Shared);
    assert_eq!(both.len(), 1);
}

#[test]
fn rule11_from_iter_and_extend_merge_and_order_like_the_builder() {
    let r = res(3);
    // Named out of order, r[0] three times: one exclusive link on r[0], a shared one on r[1].
    let set = ResourceSet::from_iter([
        (&r[1], Access::Shared),
        (&r[0], Access::Shared),
        (&r[0], Access::Exclusive),
        (&r[0], Access::Shared),
    ]);
    let built = ResourceSet::new().exclusive(&r[0]).shared(&r[1]);
    assert_eq!(set.len(), 2);
    // Same entries in the same (engine) order as the by-value builder: the order rule 1's
    // install order rests on.
    assert_eq!(format!("{set:?}"), format!("{built:?}"));
    let g = set.wait_owned().unwrap(); // must not wait for itself
    assert!(
        ResourceSet::new().shared(&r[1]).try_acquire().is_ok(),
        "r[1] must be held shared"
    );
    let s = Slot::new(&ResourceSet::new().shared(&r[0]));
    assert!(!s.granted(), "the merged link on r[0] must be exclusive");
    drop(g);
    assert!(s.granted());
    s.release();
    // Extending a built set merges into its entries and keeps them in order.
    let mut grown = ResourceSet::new().shared(&r[2]).shared(&r[1]);
    grown.extend([(&r[2], Access::Exclusive), (&r[0], Access::Exclusive)]);
    grown.extend(std::iter::empty());
    let expected = ResourceSet::new()
        .exclusive(&r[0])
        .shared(&r[1])
        .exclusive(&r[2]);
    assert_eq!(format!("{grown:?}"), format!("{expected:?}"));
    let g = grown.wait().unwrap();
    assert_eq!(
        ResourceSet::new().shared(&r[2]).try_acquire().unwrap_err(),
        Error::WouldBlock,
        "the merged link on r[2] must be exclusive"
    );
    drop(g);
}

#[test]
fn rule11_empty_set_is_granted_at_once() {
    let set = ResourceSet::new();
    assert!(set.is_empty());
    drop(set.wait().unwrap());
    drop(set.try_acquire().unwrap());
    drop(set.wait_timeout(Duration::ZERO).unwrap());
    let s = Slot::new(&set);
    assert!(s.granted());
    s.release();
    drop(futures_executor::block_on(set.acquire()).unwrap());
}

#[test]
#[cfg_attr(miri, ignore = "creates 65 537 resources")]
fn rule11_too_large_a_set_is_refused_with_bad_set() {
    let r = res(kds::MAX_SET_LEN + 1);
    let set = r.iter().fold(ResourceSet::new(), |s, x| s.exclusive(x));
    assert_eq!(set.len(), kds::MAX_SET_LEN + 1);
    assert!(matches!(set.wait(), Err(Error::BadSet(_))));
    assert!(matches!(set.try_acquire(), Err(Error::BadSet(_))));
    assert!(matches!(Slot::try_new(&set).err(), Some(Error::BadSet(_))));
    assert!(matches!(futures_executor::block_on(set.acquire()), Err(Error::BadSet(_))));
    // Nothing was queued.
    assert!(is_free(&r[0]) && is_free(&r[kds::MAX_SET_LEN]));
}

// ---- Futures ----

#[test]
fn future_resolves_after_release_on_another_thread() {
    let r = res(1);
    let hold = ResourceSet::new().exclusive(&r[0]).wait().unwrap();
    let set = ResourceSet::new().exclusive(&r[0]);
    let t = thread::spawn(move || {
        thread::sleep(Duration::from_millis(10));
        drop(hold);
    });
    let g = futures_executor::block_on(set.acquire()).unwrap();
    t.join().unwrap();
    drop(g);
    assert!(is_free(&r[0]));
}

#[test]
fn dropping_a_pending_future_unqueues_it() {
    use std::future::Future;
    use std::task::{Context, Poll};
    let r = res(1);
    let s = Slot::new(&ResourceSet::new().shared(&r[0]));
    let mut fut = Box::pin(ResourceSet::new().exclusive(&r[0]).acquire());
    let waker = futures_executor::block_on(futures_util_waker());
    let mut cx = Context::from_waker(&waker);
    assert!(matches!(fut.as_mut().poll(&mut cx), Poll::Pending));
    // Queued: a new shared set waits behind it.
    let s2 = Slot::new(&ResourceSet::new().shared(&r[0]));
    assert!(!s2.granted());
    drop(fut);
    assert!(s2.granted(), "dropping the future must un-queue its set");
    s.release();
    s2.release();
    // A future never polled queued nothing.
    let unpolled = ResourceSet::new().exclusive(&r[0]).acquire();
    assert!(is_free(&r[0]));
    drop(unpolled);
}

#[test]
fn dropping_a_future_granted_but_not_polled_releases() {
    use std::future::Future;
    use std::task::{Context, Poll};
    let r = res(1);
    let hold = Slot::new(&ResourceSet::new().exclusive(&r[0]));
    let mut fut = Box::pin(ResourceSet::new().exclusive(&r[0]).acquire());
    let waker = futures_executor::block_on(futures_util_waker());
    let mut cx = Context::from_waker(&waker);
    assert!(matches!(fut.as_mut().poll(&mut cx), Poll::Pending));
    hold.release(); // grants the future's set; nobody polls it
    assert!(!is_free(&r[0]));
    drop(fut);
    assert!(is_free(&r[0]), "a granted, dropped future must release its set");
}

/// The current task's waker (a no-op outside an executor).
async fn futures_util_waker() -> std::task::Waker {
    std::future::poll_fn(|cx| std::task::Poll::Ready(cx.waker().clone())).await
}

// ---- Many threads ----

/// Shadow counters per resource: >0 shared holders, -1 an exclusive holder.
fn torture(threads: usize, resources: usize, rounds: usize) {
    let r = Arc::new(res(resources));
    let shadow = Arc::new((0..resources).map(|_| AtomicIsize::new(0)).collect::<Vec<_>>());
    let worker = Worker::spawn("kds-torture").unwrap();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (r, shadow, worker) = (r.clone(), shadow.clone(), worker.clone());
            thread::spawn(move || {
                let mut seed = 0x9e37_79b9_u64.wrapping_mul(t as u64 + 1);
                let mut rand = move || {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed
                };
                for _ in 0..rounds {
                    let k = 1 + rand() as usize % 3;
                    let mut set = ResourceSet::new();
                    let mut picked = Vec::new();
                    for _ in 0..k {
                        let i = rand() as usize % r.len();
                        let excl = rand() % 2 == 0;
                        set = set.access(&r[i], if excl { Access::Exclusive } else { Access::Shared });
                        picked.push((i, excl));
                    }
                    // Merge duplicates as the set does: exclusive wins.
                    picked.sort();
                    let mut modes: Vec<(usize, bool)> = Vec::new();
                    for (i, e) in picked {
                        match modes.last_mut() {
                            Some(last) if last.0 == i => last.1 |= e,
                            _ => modes.push((i, e)),
                        }
                    }
                    let check = {
                        let shadow = shadow.clone();
                        move |modes: &[(usize, bool)], enter: bool| {
                            for &(i, e) in modes {
                                let c = &shadow[i];
                                if enter {
                                    if e {
                                        assert_eq!(c.swap(-1, SeqCst), 0, "exclusive shared");
                                    } else {
                                        assert!(c.fetch_add(1, SeqCst) >= 0, "shared with exclusive");
                                    }
                                } else if e {
                                    assert_eq!(c.swap(0, SeqCst), -1);
                                } else {
                                    assert!(c.fetch_sub(1, SeqCst) >= 1);
                                }
                            }
                        }
                    };
                    match rand() % 5 {
                        0 | 1 => {
                            let g = set.wait().unwrap();
                            check(&modes, true);
                            check(&modes, false);
                            drop(g);
                        }
                        2 => {
                            if let Ok(g) = set.wait_timeout(Duration::from_micros(rand() % 200)) {
                                check(&modes, true);
                                check(&modes, false);
                                drop(g);
                            }
                        }
                        3 => {
                            let (tx, rx) = std::sync::mpsc::channel();
                            let dispatch = if rand() % 2 == 0 {
                                Dispatch::Direct
                            } else {
                                Dispatch::Worker(worker.clone())
                            };
                            let modes2 = modes.clone();
                            let check2 = check.clone();
                            let p = set
                                .on_grant(dispatch, move |g| {
                                    check2(&modes2, true);
                                    check2(&modes2, false);
                                    drop(g);
                                    let _ = tx.send(());
                                })
                                .unwrap();
                            if rand() % 2 == 0 && p.cancel() {
                                assert!(rx.try_recv().is_err());
                            } else {
                                rx.recv().unwrap();
                            }
                        }
                        _ => {
                            let g = futures_executor::block_on(set.acquire()).unwrap();
                            check(&modes, true);
                            check(&modes, false);
                            drop(g);
                        }
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert!(r.iter().all(is_free));
}

#[test]
fn many_threads_on_few_resources_keep_mutual_exclusion() {
    torture(6, 3, if cfg!(miri) { 10 } else { 1500 });
}

#[test]
fn many_threads_on_many_resources() {
    torture(4, 16, if cfg!(miri) { 10 } else { 1500 });
}

/// A callback closure of a cancelled request is dropped at once, with what it captured. A
/// closure holding a handle of its own resource used to keep the cancelled request (lingering
/// in that resource's queue) and so the resource alive for ever: a reference cycle that the
/// concurrent fuzz target found as a leak.
#[test]
fn cancelled_or_refused_callback_closure_is_dropped_at_once() {
    let r = res(1).remove(0);
    let held = ResourceSet::new().exclusive(&r).wait().unwrap();
    let captured = Arc::new(());
    let (c, handle) = (captured.clone(), r.clone());
    let pending = ResourceSet::new()
        .exclusive(&r)
        .on_grant(Dispatch::Direct, move |_g| drop((c, handle)))
        .unwrap();
    assert_eq!(Arc::strong_count(&captured), 2);
    assert!(pending.cancel());
    assert_eq!(Arc::strong_count(&captured), 1, "cancelled closure kept alive");
    // Refused by Locked::Fail: the closure goes at once too.
    let (c, handle) = (captured.clone(), r.clone());
    let refused = ResourceSet::new()
        .exclusive(&r)
        .locked(Locked::Fail)
        .on_grant(Dispatch::Direct, move |_g| drop((c, handle)));
    assert_eq!(refused.unwrap_err(), Error::Busy);
    assert_eq!(Arc::strong_count(&captured), 1, "refused closure kept alive");
    drop(held);
    assert!(is_free(&r));
}

/// The uncontended fast path and the queues agree: a sync holder taken without queueing
/// still blocks queued sets of every kind, counts as sync-locking its resource, and its
/// release hands the resource on in FIFO order.
#[test]
fn sync_holder_then_queued_sets_fifo() {
    let r = res(2);
    let held = ResourceSet::new().exclusive(&r[0]).shared(&r[1]).wait().unwrap();
    let reader = Slot::new(&ResourceSet::new().shared(&r[1]));
    assert!(reader.granted(), "shared beside a shared holder");
    let writer = Slot::new(&ResourceSet::new().exclusive(&r[0]));
    let second = Slot::new(&ResourceSet::new().shared(&r[0]));
    assert!(!writer.granted() && !second.granted());
    let fail = ResourceSet::new().shared(&r[0]).locked(Locked::Fail).on_grant(Dispatch::Direct, |_| {});
    assert_eq!(fail.unwrap_err(), Error::Busy, "a sync holder makes its resource sync-locked");
    assert_eq!(
        ResourceSet::new().shared(&r[0]).try_acquire().unwrap_err(),
        Error::WouldBlock
    );
    drop(held);
    assert!(writer.granted() && !second.granted(), "FIFO: the writer first");
    writer.release();
    assert!(second.granted());
    second.release();
    reader.release();
    assert!(is_free(&r[0]) && is_free(&r[1]));
}

/// `ResourceSet::lock`: a scoped guard borrowing its set, on the fast path when free and
/// through the queues when not; either way it excludes others and releases on drop.
#[test]
fn lock_is_a_scoped_guard_on_either_path() {
    let r = res(2);
    let set = ResourceSet::new().exclusive(&r[0]).shared(&r[1]);
    {
        let _held = set.lock().unwrap();
        assert_eq!(
            ResourceSet::new().shared(&r[0]).try_acquire().unwrap_err(),
            Error::WouldBlock
        );
        assert!(ResourceSet::new().shared(&r[1]).try_acquire().is_ok());
    }
    assert!(is_free(&r[0]) && is_free(&r[1]));
    // Queued way: another thread holds r[0] and lets go later.
    let holder = ResourceSet::new().exclusive(&r[0]).wait().unwrap();
    let released = Arc::new(AtomicBool::new(false));
    let t = {
        let released = released.clone();
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            released.store(true, SeqCst);
            drop(holder);
        })
    };
    let held = set.lock().unwrap();
    assert!(released.load(SeqCst), "lock() returned while the set was held");
    assert!(!is_free(&r[0]));
    held.release();
    t.join().unwrap();
    assert!(is_free(&r[0]) && is_free(&r[1]));
}

// ---- Nothing a client hands in outlives its use (rule 10; issue 8) ----

/// A waker that owns a handle of a resource, as a task that owns the buffer it waits for
/// does, and a sentinel whose strong count tells whether any copy of the waker is still kept.
struct HoldingWaker {
    _resource: Resource,
    _alive: Arc<()>,
}

impl std::task::Wake for HoldingWaker {
    fn wake(self: Arc<Self>) {}
}

/// Client data (a captured value, a waker, a panic payload) whose `Drop` panics, unless the
/// thread is already unwinding.
struct PanicOnDrop;

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        if !thread::panicking() {
            panic!("client data panics on drop (expected by the test)");
        }
    }
}

impl std::task::Wake for PanicOnDrop {
    fn wake(self: Arc<Self>) {}
}

/// Every way a future can end — granted on its first poll, granted after a wake-up, dropped
/// while queued, dropped once granted but not polled — with a waker that holds a handle of
/// the set's own resource: once everything is dropped, the waker must be gone. A waker left
/// registered in a granted request used to keep it, and through it the resource, alive for
/// ever on the lock-free engine (about 500 bytes a request).
#[test]
fn a_future_drops_a_waker_that_holds_its_resource_on_every_path() {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    #[derive(Debug, Clone, Copy)]
    enum End {
        FirstPoll,
        AfterWake,
        DroppedQueued,
        DroppedGranted,
    }
    for end in [End::FirstPoll, End::AfterWake, End::DroppedQueued, End::DroppedGranted] {
        for k in [1, 2] {
            let alive = Arc::new(());
            {
                let r = res(k);
                let waker = Waker::from(Arc::new(HoldingWaker {
                    _resource: r[0].clone(),
                    _alive: alive.clone(),
                }));
                let mut cx = Context::from_waker(&waker);
                let mut set = ResourceSet::new();
                for x in &r {
                    set = set.exclusive(x);
                }
                let hold = match end {
                    End::FirstPoll => None,
                    _ => Some(Slot::new(&ResourceSet::new().exclusive(&r[0]))),
                };
                let mut fut = Box::pin(set.acquire());
                if let Some(hold) = &hold {
                    assert!(fut.as_mut().poll(&mut cx).is_pending());
                    if matches!(end, End::DroppedQueued) {
                        drop(fut);
                        hold.release();
                        assert!(r.iter().all(is_free));
                        continue;
                    }
                    hold.release();
                }
                if matches!(end, End::DroppedGranted) {
                    drop(fut);
                } else {
                    let Poll::Ready(Ok(guard)) = fut.as_mut().poll(&mut cx) else {
                        panic!("{end:?}: not granted");
                    };
                    drop(guard);
                }
                assert!(r.iter().all(is_free));
            }
            assert_eq!(Arc::strong_count(&alive), 1, "{end:?}, k = {k}: the waker was kept");
        }
    }
}

/// A request delivered to a `Worker` gives up its handle of the worker: once the caller's
/// handles are gone the thread ends, even while the resource (on whose queue the request's
/// removed link may linger) lives on.
#[test]
fn a_worker_thread_ends_once_its_handles_are_gone() {
    struct OnExit(std::sync::mpsc::Sender<()>);
    impl Drop for OnExit {
        fn drop(&mut self) {
            let _ = self.0.send(());
        }
    }
    thread_local! {
        static ON_EXIT: std::cell::RefCell<Option<OnExit>> = const { std::cell::RefCell::new(None) };
    }
    let r = res(2);
    let w = Worker::spawn("kds-test-ends").unwrap();
    let (exit_tx, exit_rx) = std::sync::mpsc::channel();
    let (ran_tx, ran_rx) = std::sync::mpsc::channel();
    let pending = ResourceSet::new()
        .exclusive(&r[0])
        .shared(&r[1])
        .on_grant(Dispatch::Worker(w.clone()), move |g| {
            ON_EXIT.with(|e| *e.borrow_mut() = Some(OnExit(exit_tx)));
            drop(g);
            ran_tx.send(()).unwrap();
        })
        .unwrap();
    ran_rx.recv_timeout(Duration::from_secs(10)).expect("callback never ran");
    drop((pending, w));
    exit_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the worker thread still runs: something kept a handle of it");
    assert!(r.iter().all(is_free));
}

/// Any timeout is accepted: one too long to add to `Instant::now()` (`Duration::MAX`) waits
/// without a deadline instead of panicking, on every timed path.
#[test]
fn timeouts_across_the_whole_duration_range() {
    let r = res(1);
    let never = Interrupt::new();
    let long = [
        Duration::ZERO,
        Duration::from_nanos(1),
        Duration::from_secs(u64::MAX / 2),
        Duration::new(u64::MAX, 999_999_999),
        Duration::MAX,
    ];
    for t in long {
        drop(ResourceSet::new().exclusive(&r[0]).wait_timeout(t).unwrap());
        drop(ResourceSet::new().exclusive(&r[0]).wait_interruptible(Some(t), &never).unwrap());
    }
    // Held: a wait with `Duration::MAX` is granted by the release ...
    let hold = ResourceSet::new().exclusive(&r[0]).wait().unwrap();
    let r0 = r[0].clone();
    let t = thread::spawn(move || ResourceSet::new().exclusive(&r0).wait_timeout(Duration::MAX).map(drop));
    thread::sleep(Duration::from_millis(20));
    drop(hold);
    t.join().unwrap().unwrap();
    // ... or broken by an interrupt, leaving nothing queued.
    interrupted_from_another_thread(Some(Duration::MAX));
}

/// A worker name a thread cannot have is refused with `Error::Spawn`, not a panic.
#[test]
fn worker_name_with_a_nul_byte_is_refused() {
    assert_eq!(
        Worker::spawn("bad\0name").unwrap_err(),
        Error::Spawn(std::io::ErrorKind::InvalidInput)
    );
    assert!(Worker::spawn("").is_ok(), "an empty name is a valid thread name");
}

/// Cancelling a request whose callback closure (or future waker) owns something with a
/// panicking `Drop`: the panic reaches the caller, but only after the sets that the cancel
/// enabled have been delivered (rule 3), not at this thread's next kds call.
#[test]
fn a_panicking_drop_of_withdrawn_client_data_loses_no_grant() {
    use std::future::Future;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::task::{Context, Waker};
    for via_future in [false, true] {
        let r = res(1);
        let s1 = Slot::new(&ResourceSet::new().shared(&r[0]));
        let exclusive = ResourceSet::new().exclusive(&r[0]);
        let mut cancel: Box<dyn FnOnce()> = if via_future {
            let mut fut = Box::pin(exclusive.acquire());
            let waker = Waker::from(Arc::new(PanicOnDrop));
            assert!(fut.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
            drop(waker); // the request now holds the only copy
            Box::new(move || drop(fut))
        } else {
            let owned = PanicOnDrop;
            let pending = exclusive
                .on_grant(Dispatch::Direct, move |g| drop((g, owned)))
                .unwrap();
            Box::new(move || assert!(pending.cancel()))
        };
        let s2 = Slot::new(&ResourceSet::new().shared(&r[0]));
        assert!(!s2.granted());
        let outcome = catch_unwind(AssertUnwindSafe(std::mem::replace(&mut cancel, Box::new(|| ()))));
        assert!(outcome.is_err(), "the client's panic reaches the caller");
        assert!(s2.granted(), "future = {via_future}: the cancel's grant was not delivered");
        s1.release();
        s2.release();
        assert!(is_free(&r[0]));
    }
}

/// A waker whose code panics while the future registers it (here: the previous waker's drop):
/// the panic reaches the caller, and the future still owns its request, so dropping it
/// cancels the set instead of leaving it queued with no owner (and held for ever once
/// granted).
#[test]
fn a_future_whose_waker_panics_while_registering_still_cleans_up() {
    use std::future::Future;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::task::{Context, Waker};
    struct Quiet;
    impl std::task::Wake for Quiet {
        fn wake(self: Arc<Self>) {}
    }
    let r = res(1);
    let hold = ResourceSet::new().exclusive(&r[0]).wait().unwrap();
    let mut fut = Box::pin(ResourceSet::new().exclusive(&r[0]).acquire());
    let first = Waker::from(Arc::new(PanicOnDrop));
    assert!(fut.as_mut().poll(&mut Context::from_waker(&first)).is_pending());
    drop(first); // the future holds the only copy
    let second = Waker::from(Arc::new(Quiet));
    let polled = catch_unwind(AssertUnwindSafe(|| {
        fut.as_mut().poll(&mut Context::from_waker(&second)).is_pending()
    }));
    assert!(polled.is_err(), "the waker's panic reaches the caller");
    drop(fut);
    drop(hold);
    assert!(is_free(&r[0]), "the future's set was left behind");
}

/// A callback that panics with a payload whose own `Drop` panics does not kill its `Worker`
/// thread: the worker's next job still runs.
#[test]
fn a_worker_survives_a_panic_payload_that_panics_on_drop() {
    let r = res(1);
    let w = Worker::spawn("kds-test-payload").unwrap();
    ResourceSet::new()
        .exclusive(&r[0])
        .on_grant(Dispatch::Worker(w.clone()), |_g| std::panic::panic_any(PanicOnDrop))
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    ResourceSet::new()
        .exclusive(&r[0])
        .on_grant(Dispatch::Worker(w), move |g| {
            drop(g);
            tx.send(()).unwrap();
        })
        .unwrap();
    rx.recv_timeout(Duration::from_secs(10)).expect("the worker's next job never ran");
    assert!(is_free(&r[0]));
}
