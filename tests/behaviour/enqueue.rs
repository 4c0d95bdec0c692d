//! Rule 1, atomic enqueue: sets are ordered alike on every resource, so crossing sets never deadlock.

use crate::common::*;

fn rule1_sets_are_ordered_alike_on_every_resource<E: Engine>() {
    let r = res::<E>(2);
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

fn rule1_crossing_sets_on_threads_never_deadlock<E: Engine>() {
    let r = Arc::new(res::<E>(2));
    let rounds = if cfg!(miri) { 20 } else { 2000 };
    let handles: Vec<_> = (0..2)
        .map(|t| {
            let r = r.clone();
            thread::spawn(move || {
                let (a, b) = if t == 0 {
                    (&r[0], &r[1])
                } else {
                    (&r[1], &r[0])
                };
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

on_both_engines!(
    rule1_sets_are_ordered_alike_on_every_resource,
    rule1_crossing_sets_on_threads_never_deadlock,
);
