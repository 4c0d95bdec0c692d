//! Rule 11: duplicates merge, the empty set, too large a set.

use crate::common::*;

fn rule11_duplicate_resource_merges_exclusive_wins<E: Engine>() {
    let r = res::<E>(1);
    let set = ResourceSet::new()
        .shared(&r[0])
        .exclusive(&r[0])
        .shared(&r[0]);
    assert_eq!(set.len(), 1);
    let g = set.wait().unwrap(); // must not wait for itself
    let s = Slot::new(&ResourceSet::new().shared(&r[0]));
    assert!(!s.granted(), "the merged link must be exclusive");
    drop(g);
    assert!(s.granted());
    s.release();
    let both = ResourceSet::new()
        .shared(&r[0])
        .access(&r[0], Access::Shared);
    assert_eq!(both.len(), 1);
}

fn rule11_from_iter_and_extend_merge_and_order_like_the_builder<E: Engine>() {
    let r = res::<E>(3);
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
    let g = set.wait().unwrap(); // must not wait for itself
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

fn rule11_empty_set_is_granted_at_once<E: Engine>() {
    let set = ResourceSet::<E>::new();
    assert!(set.is_empty());
    drop(set.wait().unwrap());
    drop(set.try_acquire().unwrap());
    drop(set.wait_timeout(Duration::ZERO).unwrap());
    let s = Slot::new(&set);
    assert!(s.granted());
    s.release();
    drop(futures_executor::block_on(set.acquire()).unwrap());
}

fn rule11_too_large_a_set_is_refused_with_bad_set<E: Engine>() {
    let r = res::<E>(kds::MAX_SET_LEN + 1);
    let set = r.iter().fold(ResourceSet::new(), |s, x| s.exclusive(x));
    assert_eq!(set.len(), kds::MAX_SET_LEN + 1);
    assert!(matches!(set.wait(), Err(Error::BadSet(_))));
    assert!(matches!(set.try_acquire(), Err(Error::BadSet(_))));
    assert!(matches!(Slot::try_new(&set).err(), Some(Error::BadSet(_))));
    assert!(matches!(
        futures_executor::block_on(set.acquire()),
        Err(Error::BadSet(_))
    ));
    // Nothing was queued.
    assert!(is_free(&r[0]) && is_free(&r[kds::MAX_SET_LEN]));
}

on_both_engines!(
    rule11_duplicate_resource_merges_exclusive_wins,
    rule11_from_iter_and_extend_merge_and_order_like_the_builder,
    rule11_empty_set_is_granted_at_once,
    #[cfg_attr(miri, ignore = "creates 65 537 resources")]
    rule11_too_large_a_set_is_refused_with_bad_set,
);
