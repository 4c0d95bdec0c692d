//! Rules 2 and 3: the trigger rule, and no lost wake-up (releases and cancels trigger what they enable).

use crate::common::*;

fn rule2_shared_links_trigger_together_exclusive_waits_for_all<E: Engine>() {
    let r = res::<E>(1);
    let s1 = Slot::new(&ResourceSet::new().shared(&r[0]));
    let s2 = Slot::new(&ResourceSet::new().shared(&r[0]));
    assert!(s1.granted() && s2.granted());
    let e = Slot::new(&ResourceSet::new().exclusive(&r[0]));
    assert!(!e.granted());
    s1.release();
    assert!(
        !e.granted(),
        "exclusive granted while a shared holder remains"
    );
    s2.release();
    assert!(e.granted());
    e.release();
}

fn rule2_a_set_is_granted_only_when_all_links_trigger<E: Engine>() {
    let r = res::<E>(3);
    let hold = Slot::new(&ResourceSet::new().shared(&r[2]));
    let want = Slot::new(
        &ResourceSet::new()
            .shared(&r[0])
            .exclusive(&r[1])
            .exclusive(&r[2]),
    );
    assert!(!want.granted());
    // Its free links are triggered, and block others behind them.
    assert!(ResourceSet::new().exclusive(&r[1]).try_acquire().is_err());
    hold.release();
    assert!(want.granted());
    want.release();
    assert!(r.iter().all(is_free));
}

fn rule3_cancelling_a_pending_exclusive_between_shared_links_triggers_those_behind<E: Engine>() {
    let r = res::<E>(1);
    let s1 = Slot::new(&ResourceSet::new().shared(&r[0]));
    let mut e = Slot::new(&ResourceSet::new().exclusive(&r[0]));
    let s2 = Slot::new(&ResourceSet::new().shared(&r[0]));
    assert!(s1.granted() && !e.granted() && !s2.granted());
    assert!(e.cancel());
    assert!(
        s2.granted(),
        "S2 must be triggered as soon as E is cancelled"
    );
    assert!(!e.granted());
    s1.release();
    s2.release();
    assert!(is_free(&r[0]));
}

fn rule3_release_of_one_resource_grants_a_multi_resource_set_at_once<E: Engine>() {
    let r = res::<E>(2);
    let a = Slot::new(&ResourceSet::new().exclusive(&r[0]));
    let b = Slot::new(&ResourceSet::new().shared(&r[1]));
    let both = Slot::new(&ResourceSet::new().exclusive(&r[0]).exclusive(&r[1]));
    b.release();
    assert!(!both.granted());
    a.release();
    assert!(both.granted());
    both.release();
}

/// A crowd of shared holders granted through the queue (long enough for the lock-free engine's
/// tail hint), an exclusive set behind it and shared sets behind that: however the crowd
/// leaves (oldest first, newest first, any order), the exclusive set is granted exactly when
/// the last of the crowd leaves, and the sets behind it only after it.
fn rule2_a_shared_crowd_leaving_in_any_order_grants_the_exclusive_set_behind<E: Engine>() {
    for order in 0..4u64 {
        let r = res::<E>(1);
        // The Fail policy never takes the fast path: the crowd queues behind this first link.
        let first = Slot::new(&ResourceSet::new().shared(&r[0]).locked(Locked::Fail));
        let mut crowd = vec![first];
        crowd.extend((0..40).map(|_| Slot::new(&ResourceSet::new().shared(&r[0]))));
        assert!(
            crowd.iter().all(Slot::granted),
            "a shared crowd is granted at once"
        );
        let e = Slot::new(&ResourceSet::new().exclusive(&r[0]));
        let behind: Vec<_> = (0..10)
            .map(|_| Slot::new(&ResourceSet::new().shared(&r[0])))
            .collect();
        let mut rng = Rng::new(order + 1);
        while !crowd.is_empty() {
            assert!(
                !e.granted(),
                "exclusive granted while shared holders remain"
            );
            let i = match order {
                0 => 0,
                1 => crowd.len() - 1,
                _ => rng.below(crowd.len() as u64) as usize,
            };
            crowd.remove(i).release();
        }
        assert!(
            e.granted(),
            "the last shared holder's release must grant it"
        );
        assert!(
            !behind.iter().any(Slot::granted),
            "granted beside an exclusive holder"
        );
        e.release();
        assert!(behind.iter().all(Slot::granted));
        for s in &behind {
            s.release();
        }
        assert!(is_free(&r[0]));
    }
}

on_both_engines!(
    rule2_a_shared_crowd_leaving_in_any_order_grants_the_exclusive_set_behind,
    rule2_shared_links_trigger_together_exclusive_waits_for_all,
    rule2_a_set_is_granted_only_when_all_links_trigger,
    rule3_cancelling_a_pending_exclusive_between_shared_links_triggers_those_behind,
    rule3_release_of_one_resource_grants_a_multi_resource_set_at_once,
);
