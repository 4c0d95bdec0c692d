//! Rule 4: FIFO per resource, no overtaking, long queues with cancels.

use crate::common::*;

fn rule4_shared_never_overtakes_a_queued_exclusive<E: Engine>() {
    let r = res::<E>(1);
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

fn rule4_grants_follow_queue_order<E: Engine>() {
    let r = res::<E>(1);
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
fn rule4_long_queue_with_cancels_keeps_fifo<E: Engine>() {
    let r = res::<E>(2);
    let first = Slot::new(&ResourceSet::new().exclusive(&r[0]));
    let mut queue: Vec<(bool, Slot<E>)> = (0..40)
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
    let mut waiting: Vec<(bool, Slot<E>)> = queue
        .into_iter()
        .enumerate()
        .filter_map(|(i, q)| (i % 5 != 0).then_some(q))
        .collect();
    assert!(waiting.iter().all(|(_, s)| !s.granted()));
    first.release();
    while !waiting.is_empty() {
        // The head of the queue: one exclusive set, or the run of shared sets up to the next
        // exclusive one.
        let run = if waiting[0].0 {
            1
        } else {
            waiting.iter().take_while(|(x, _)| !x).count()
        };
        for (i, (_, slot)) in waiting.iter().enumerate() {
            assert_eq!(
                slot.granted(),
                i < run,
                "set {i} of {} in the queue",
                waiting.len()
            );
        }
        for (_, slot) in waiting.drain(..run) {
            slot.release();
        }
    }
    assert!(is_free(&r[0]) && is_free(&r[1]));
}

/// A set built where it is used waits behind a queued set (FIFO, rule 4) even when the
/// holder is gone by the time it asks: the fast path refuses a resource with a queue.
fn rule4_a_one_liner_does_not_overtake_a_queued_set<E: Engine>() {
    let r = res::<E>(1);
    let holder = Slot::new(&ResourceSet::new().shared(&r[0]));
    let queued = Slot::new(&ResourceSet::new().exclusive(&r[0]));
    assert!(holder.granted() && !queued.granted());
    assert_eq!(
        ResourceSet::new().shared(&r[0]).try_acquire().unwrap_err(),
        Error::WouldBlock,
        "a shared one-liner overtook the queued exclusive set"
    );
    holder.release();
    assert!(queued.granted());
    queued.release();
    assert!(is_free(&r[0]));
}

on_both_engines!(
    rule4_shared_never_overtakes_a_queued_exclusive,
    rule4_grants_follow_queue_order,
    rule4_long_queue_with_cancels_keeps_fifo,
    rule4_a_one_liner_does_not_overtake_a_queued_set,
);
