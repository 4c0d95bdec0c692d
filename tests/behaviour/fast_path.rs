//! The uncontended fast path and the queues agree: FIFO behind a fast holder, `lock()` on either path.

use crate::common::*;

/// The uncontended fast path and the queues agree: a sync holder taken without queueing
/// still blocks queued sets of every kind, counts as sync-locking its resource, and its
/// release hands the resource on in FIFO order.
fn sync_holder_then_queued_sets_fifo<E: Engine>() {
    let r = res::<E>(2);
    let held = ResourceSet::new()
        .exclusive(&r[0])
        .shared(&r[1])
        .wait()
        .unwrap();
    let reader = Slot::new(&ResourceSet::new().shared(&r[1]));
    assert!(reader.granted(), "shared beside a shared holder");
    let writer = Slot::new(&ResourceSet::new().exclusive(&r[0]));
    let second = Slot::new(&ResourceSet::new().shared(&r[0]));
    assert!(!writer.granted() && !second.granted());
    let fail = ResourceSet::new()
        .shared(&r[0])
        .locked(Locked::Fail)
        .on_grant(Dispatch::Direct, |_| {});
    assert_eq!(
        fail.unwrap_err(),
        Error::Busy,
        "a sync holder makes its resource sync-locked"
    );
    assert_eq!(
        ResourceSet::new().shared(&r[0]).try_acquire().unwrap_err(),
        Error::WouldBlock
    );
    drop(held);
    assert!(
        writer.granted() && !second.granted(),
        "FIFO: the writer first"
    );
    writer.release();
    assert!(second.granted());
    second.release();
    reader.release();
    assert!(is_free(&r[0]) && is_free(&r[1]));
}

/// `ResourceSet::lock`: a scoped guard borrowing its set, on the fast path when free and
/// through the queues when not; either way it excludes others and releases on drop.
fn lock_is_a_scoped_guard_on_either_path<E: Engine>() {
    let r = res::<E>(2);
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
    let holder = ResourceSet::new()
        .exclusive(&r[0])
        .wait()
        .unwrap()
        .into_owned();
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
    assert!(
        released.load(SeqCst),
        "lock() returned while the set was held"
    );
    assert!(!is_free(&r[0]));
    held.release();
    t.join().unwrap();
    assert!(is_free(&r[0]) && is_free(&r[1]));
}

/// `try_lock` and `lock_interruptible`: the lent forms of `try_acquire` and
/// `wait_interruptible`. Busy: `WouldBlock`, or `Timeout` / `Interrupted`, with nothing left
/// queued; free: a guard that excludes others and releases on drop.
fn lent_try_and_interruptible_locks<E: Engine>() {
    let r = res::<E>(2);
    let set = ResourceSet::new().exclusive(&r[0]).shared(&r[1]);
    let held = set.try_lock().unwrap();
    assert_eq!(set.try_lock().unwrap_err(), Error::WouldBlock);
    assert!(ResourceSet::new().shared(&r[1]).try_acquire().is_ok());
    let stop = Interrupt::new();
    let late = set.lock_interruptible(Some(Duration::from_millis(5)), &stop);
    assert_eq!(late.unwrap_err(), Error::Timeout);
    stop.interrupt();
    assert_eq!(
        set.lock_interruptible(None, &stop).unwrap_err(),
        Error::Interrupted,
        "a raised interrupt ends a wait that has to block"
    );
    drop(held);
    // Nothing was left queued by the refusals: free again, and granted at once even with
    // the interrupt still raised.
    assert!(is_free(&r[0]) && is_free(&r[1]));
    let again = set.lock_interruptible(None, &stop).unwrap();
    assert!(!is_free(&r[0]));
    drop(again);
    assert!(is_free(&r[0]));
}

/// `try_grant_now`: the at-once half of a direct `on_grant`, in place. Free: `now` runs
/// with the set held, as an async holder (a `Locked::Fail` request is not refused), and
/// direct callbacks it causes run after it returns. Busy, not `Locked::Wait`, or inside a
/// direct callback: `None`, nothing taken or queued. The reference engine has no fast path:
/// always `None` there.
fn try_grant_now_in_place<E: Engine>() {
    let r = res::<E>(2);
    let set = ResourceSet::new().exclusive(&r[0]);
    let fast = std::any::type_name::<E>().contains("LockFree");
    let later = Arc::new(AtomicBool::new(false));
    let out = set.try_grant_now(|guard| {
        assert!(!is_free(&r[0]), "held while `now` runs");
        let fail = ResourceSet::new()
            .shared(&r[0])
            .locked(Locked::Fail)
            .on_grant(Dispatch::Direct, |_| {})
            .expect("an async holder does not sync-lock its resource");
        let flag = later.clone();
        let other = ResourceSet::new()
            .exclusive(&r[1])
            .on_grant(Dispatch::Direct, move |g| {
                flag.store(true, SeqCst);
                drop(g);
            })
            .unwrap();
        assert!(!later.load(SeqCst), "a direct callback nested inside `now`");
        drop(guard);
        drop(fail);
        other
    });
    match out {
        Some(other) => {
            assert!(fast);
            assert!(
                later.load(SeqCst) && other.is_granted(),
                "delivered before return"
            );
        }
        None => assert!(!fast, "everything was free"),
    }
    assert!(is_free(&r[0]) && is_free(&r[1]));

    let holder = ResourceSet::new().shared(&r[0]).wait().unwrap();
    assert!(set.try_grant_now(|_| ()).is_none(), "busy");
    drop(holder);
    assert!(is_free(&r[0]), "a refusal leaves nothing queued");
    let fail = ResourceSet::new().exclusive(&r[0]).locked(Locked::Fail);
    assert!(fail.try_grant_now(|_| ()).is_none(), "only the Wait policy");

    let nested = Arc::new(AtomicBool::new(false));
    let seen = nested.clone();
    let inner = set.clone().into_owned();
    let outer = ResourceSet::new().exclusive(&r[1]).into_owned();
    let pending = outer
        .on_grant(Dispatch::Direct, move |g| {
            seen.store(inner.try_grant_now(|_| ()).is_none(), SeqCst);
            drop(g);
        })
        .unwrap();
    assert!(pending.is_granted());
    assert!(nested.load(SeqCst), "inside a direct callback: None");
    assert!(is_free(&r[0]) && is_free(&r[1]));
}

on_both_engines!(
    sync_holder_then_queued_sets_fifo,
    lock_is_a_scoped_guard_on_either_path,
    lent_try_and_interruptible_locks,
    try_grant_now_in_place,
);
