//! Rule 8: sync-locked resources and the `Locked` policies.

use crate::common::*;

fn rule8_fail_policy_is_busy_while_a_sync_set_holds<E: Engine>() {
    let r = res::<E>(2);
    let sync = ResourceSet::new().shared(&r[0]).wait().unwrap();
    let set = ResourceSet::new()
        .exclusive(&r[1])
        .shared(&r[0])
        .locked(Locked::Fail);
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
fn rule8_async_holders_do_not_sync_lock<E: Engine>() {
    let r = res::<E>(1);
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

fn rule8_fail_policy_is_busy_while_a_sync_set_waits<E: Engine>() {
    let r = res::<E>(1);
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

fn rule8_wait_policy_waits_behind_sync_sets<E: Engine>() {
    let r = res::<E>(1);
    let sync = ResourceSet::new().exclusive(&r[0]).wait().unwrap();
    let w = Slot::new(&ResourceSet::new().exclusive(&r[0]).locked(Locked::Wait));
    assert!(!w.granted());
    drop(sync);
    assert!(w.granted());
    w.release();
}

fn rule8_ignore_policy_triggers_at_once_but_blocks_later_sets<E: Engine>() {
    let r = res::<E>(2);
    let sync = ResourceSet::new().exclusive(&r[0]).wait().unwrap();
    let ign = Slot::new(
        &ResourceSet::new()
            .exclusive(&r[0])
            .shared(&r[1])
            .locked(Locked::Ignore),
    );
    assert!(
        ign.granted(),
        "Ignore must not wait for a sync-locked resource"
    );
    let later = Slot::new(&ResourceSet::new().shared(&r[0]));
    drop(sync);
    assert!(
        !later.granted(),
        "a later set must wait behind the Ignore link"
    );
    ign.release();
    assert!(later.granted());
    later.release();
    assert!(r.iter().all(is_free));
}

fn rule8_ignore_policy_waits_on_resources_not_sync_locked<E: Engine>() {
    let r = res::<E>(2);
    let async_holder = Slot::new(&ResourceSet::new().exclusive(&r[1]));
    let sync = ResourceSet::new().exclusive(&r[0]).wait().unwrap();
    let ign = Slot::new(
        &ResourceSet::new()
            .exclusive(&r[0])
            .exclusive(&r[1])
            .locked(Locked::Ignore),
    );
    // r[0] is sync-locked (ignored), r[1] is held by an async set (waited for).
    assert!(!ign.granted());
    async_holder.release();
    assert!(ign.granted());
    ign.release();
    drop(sync);
    assert!(r.iter().all(is_free));
}

on_both_engines!(
    rule8_fail_policy_is_busy_while_a_sync_set_holds,
    rule8_async_holders_do_not_sync_lock,
    rule8_fail_policy_is_busy_while_a_sync_set_waits,
    rule8_wait_policy_waits_behind_sync_sets,
    rule8_ignore_policy_triggers_at_once_but_blocks_later_sets,
    rule8_ignore_policy_waits_on_resources_not_sync_locked,
);
