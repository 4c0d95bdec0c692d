//! `kds::timeline` (feature `timeline`): the hooks record what happened to a contended grant.
//! Run with `cargo test --features timeline --test timeline`; without the feature this file is
//! empty. One test function: the counters are process-wide.

#![cfg(feature = "timeline")]

use kds::{Resource, ResourceSet};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::{Duration, Instant};

fn parked_hand_off<E: kds::Engine>() {
    kds::timeline::reset();
    assert_eq!(
        kds::timeline::snapshot(),
        kds::timeline::Timeline::default()
    );
    let r = kds::generic::Resource::<E>::new();
    let held = kds::generic::ResourceSet::new()
        .exclusive(&r)
        .wait()
        .unwrap();
    let granted = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let g = kds::generic::ResourceSet::new()
                .exclusive(&r)
                .wait()
                .unwrap();
            granted.store(true, SeqCst);
            drop(g);
        });
        // Long past the waiter's spin window (at most 20 µs): it has parked.
        std::thread::sleep(Duration::from_millis(100));
        assert!(!granted.load(SeqCst));
        drop(held);
    });
    assert!(granted.load(SeqCst));
    let t = kds::timeline::snapshot();
    assert_eq!(t.parked.count, 1, "{}: {t:?}", E::NAME);
    assert_eq!(t.spinning.count, 0, "{}: {t:?}", E::NAME);
    assert!(t.parked.p50_ns > 0 && t.parked.total_ns > 0, "{t:?}");
    // The release on this thread delivered the grant.
    assert_eq!(t.release_to_delivery.count, 1, "{t:?}");
    // One spin window (or none, if another thread held the only spin slot), lost.
    assert!(t.spin.count <= 1 && t.spin_won == 0, "{t:?}");
}

fn spinning_hand_off() {
    kds::timeline::reset();
    let r = Resource::new();
    // Hand-offs to a waiter that has just queued: the holder releases a couple of microseconds
    // after the waiter says it is about to wait, inside its spin window. Left to themselves,
    // two threads locking in a loop may never overlap (each finishes before the other starts),
    // so the test makes the overlap, round after round, until a grant lands on a spinning
    // waiter (a round may miss: the waiter not yet queued, or descheduled past its window).
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut rounds = 0;
    while kds::timeline::snapshot().spinning.count == 0 && Instant::now() < deadline {
        rounds += 1;
        let held = ResourceSet::new().exclusive(&r).wait().unwrap();
        let about_to_wait = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                about_to_wait.store(true, SeqCst);
                drop(ResourceSet::new().exclusive(&r).wait().unwrap());
            });
            while !about_to_wait.load(SeqCst) {
                std::hint::spin_loop();
            }
            let until = Instant::now() + Duration::from_micros(2);
            while Instant::now() < until {
                std::hint::spin_loop();
            }
            drop(held);
        });
    }
    eprintln!("a grant reached a spinning waiter after {rounds} rounds");
    let t = kds::timeline::snapshot();
    let grants = t.spinning.count + t.parked.count;
    assert!(grants > 0, "2 threads on one resource never queued: {t:?}");
    assert!(
        t.spinning.count > 0,
        "no grant reached a spinning waiter: {t:?}"
    );
    assert!(t.spin.count >= t.spin_won && t.spin_won > 0, "{t:?}");
    kds::timeline::reset();
    assert_eq!(
        kds::timeline::snapshot(),
        kds::timeline::Timeline::default()
    );
}

#[test]
fn the_timeline_records_each_kind_of_grant() {
    parked_hand_off::<kds::LockFree>();
    parked_hand_off::<kds::reference::Reference>();
    spinning_hand_off();
}
