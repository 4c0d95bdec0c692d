//! Borrowed and owned sets and guards: a set built where it is used borrows its resources,
//! is kept in set order as it grows (named in any order, duplicates merged), may be requested
//! again, and its guard borrows the resources; `into_owned` makes a set or a guard that owns
//! handles of them, for as long as it lives, on another thread if need be.

use crate::common::*;

/// A set built in pieces, in reverse order, a resource named twice: sorted and merged as it
/// grows (exclusive winning), requested again and again (it is not used up), and its guard
/// holds and sync-locks like any sync set's.
fn a_set_built_where_it_is_used_holds_like_any<E: Engine>() {
    let r = res::<E>(3);
    let mut set = ResourceSet::new()
        .shared(&r[2])
        .shared(&r[1])
        .exclusive(&r[1]);
    for x in &r[..1] {
        set = set.shared(x);
    }
    assert_eq!(set.len(), 3);
    let g = set.wait().unwrap();
    assert!(!is_free(&r[0]) && !is_free(&r[1]) && !is_free(&r[2]));
    assert_eq!(set.try_acquire().unwrap_err(), Error::WouldBlock);
    assert_eq!(
        ResourceSet::new().shared(&r[1]).try_acquire().unwrap_err(),
        Error::WouldBlock,
        "r[1] was merged as exclusive"
    );
    let readers = ResourceSet::new().shared(&r[0]).shared(&r[2]).try_acquire();
    assert!(readers.is_ok(), "r[0] and r[2] are held shared");
    drop(readers);
    // A sync holder sync-locks its resources (rule 8).
    let fail = ResourceSet::new().shared(&r[0]).locked(Locked::Fail);
    assert_eq!(Slot::try_new(&fail).err(), Some(Error::Busy));
    // Blocking: a wait on another thread gets in only after the release.
    let released = AtomicBool::new(false);
    thread::scope(|s| {
        let t = s.spawn(|| {
            let g2 = ResourceSet::new().exclusive(&r[1]).wait().unwrap();
            assert!(released.load(SeqCst), "granted before the holder released");
            drop(g2);
        });
        thread::sleep(Duration::from_millis(20));
        let late = ResourceSet::new()
            .exclusive(&r[1])
            .wait_timeout(Duration::from_millis(2));
        assert_eq!(late.unwrap_err(), Error::Timeout);
        released.store(true, SeqCst);
        g.release();
        t.join().unwrap();
    });
    assert!(r.iter().all(is_free));
}

/// More resources than a set keeps inline (8): kept in order on the heap, merged, held, and
/// an owned copy of such a set and its guards work alike.
fn a_set_past_its_inline_capacity<E: Engine>() {
    let r = res::<E>(20);
    let mut set = ResourceSet::new();
    for x in r.iter().rev() {
        set = set.shared(x);
    }
    for x in r.iter().step_by(2) {
        set = set.exclusive(x);
    }
    assert_eq!(set.len(), 20);
    let g = set.wait().unwrap();
    for (i, x) in r.iter().enumerate() {
        let reader = ResourceSet::new().shared(x).try_acquire();
        assert_eq!(reader.is_ok(), i % 2 == 1, "resource {i}");
    }
    drop(g);
    let owned = set.clone().into_owned();
    drop(set);
    let g = owned.lock().unwrap().into_owned();
    assert!(r.iter().all(|x| !is_free(x)));
    drop(owned);
    drop(g);
    assert!(r.iter().all(is_free));
}

/// An owned set keeps its resources alive without the caller's handles and may move to
/// another thread; its guard owns handles too, and so does a borrowed guard made owned
/// (`Guard::into_owned`), on the fast path and the queued one.
fn owned_sets_and_guards_keep_their_resources<E: Engine>() {
    let r = res::<E>(2);
    let probe = r[0].clone();
    let owned = ResourceSet::new()
        .exclusive(&r[0])
        .shared(&r[1])
        .into_owned();
    let copy = owned.clone();
    let g = owned.wait().unwrap(); // a guard of an owned set: owns handles
    drop(owned);
    let g = g.into_owned(); // already owned: no change
    assert!(!is_free(&probe));
    drop(r);
    assert!(!is_free(&probe), "still held by the guard");
    // Blocks behind the guard on another thread, then takes the set.
    let released = Arc::new(AtomicBool::new(false));
    let t = {
        let released = released.clone();
        thread::spawn(move || {
            let g2 = copy.wait().unwrap();
            assert!(released.load(SeqCst), "granted before the holder released");
            g2 // a guard that outlives its thread
        })
    };
    thread::sleep(Duration::from_millis(20));
    released.store(true, SeqCst);
    drop(g);
    let g2 = t.join().unwrap();
    assert!(!is_free(&probe));
    drop(g2);
    assert!(is_free(&probe));
    // A borrowed guard made owned, on the fast path and from `lock()`.
    let x = Resource::<E>::new();
    let keep = x.clone();
    let set = ResourceSet::new().exclusive(&x);
    let lent = set.lock().unwrap().into_owned();
    drop(set);
    let fast = ResourceSet::new().shared(&keep).try_acquire();
    assert_eq!(fast.unwrap_err(), Error::WouldBlock);
    drop(x);
    let held = thread::spawn(move || drop(lent));
    held.join().unwrap();
    assert!(is_free(&keep));
}

/// A queued grant's guard made owned is the same hold (the request owns its resources).
fn a_queued_guard_made_owned_stays_held<E: Engine>() {
    let r = res::<E>(1);
    let holder = ResourceSet::new()
        .exclusive(&r[0])
        .wait()
        .unwrap()
        .into_owned();
    let t = thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        drop(holder);
    });
    let g = ResourceSet::new().exclusive(&r[0]).wait().unwrap(); // queued, then granted
    t.join().unwrap();
    let g = g.into_owned();
    assert!(!is_free(&r[0]));
    drop(g);
    assert!(is_free(&r[0]));
}

/// `lock()` on an owned set borrows the set: it takes no handle, and the set cannot go while
/// the guard lives (a compile-time rule; here, the hold and the release).
fn lock_on_an_owned_set_borrows_it<E: Engine>() {
    let r = res::<E>(2);
    let owned = ResourceSet::new()
        .exclusive(&r[0])
        .exclusive(&r[1])
        .into_owned();
    for _ in 0..3 {
        let g = owned.lock().unwrap();
        assert!(!is_free(&r[0]) && !is_free(&r[1]));
        drop(g);
        assert!(is_free(&r[0]) && is_free(&r[1]));
    }
}

on_both_engines!(
    a_set_built_where_it_is_used_holds_like_any,
    a_set_past_its_inline_capacity,
    owned_sets_and_guards_keep_their_resources,
    a_queued_guard_made_owned_stays_held,
    lock_on_an_owned_set_borrows_it,
);
