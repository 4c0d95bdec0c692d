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

on_both_engines!(
    sync_holder_then_queued_sets_fifo,
    lock_is_a_scoped_guard_on_either_path,
);
