//! Rule 7: blocking waits, timeouts, interrupts and `try_acquire`; nothing stays queued on an error.

use crate::common::*;

fn rule7_wait_blocks_until_release_on_another_thread<E: Engine>() {
    let r = res::<E>(1);
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

fn rule7_timeout_cancels_and_leaves_nothing_queued<E: Engine>() {
    let r = res::<E>(1);
    let s = Slot::new(&ResourceSet::new().shared(&r[0]));
    let err = ResourceSet::new()
        .exclusive(&r[0])
        .wait_timeout(Duration::from_millis(5));
    assert_eq!(err.unwrap_err(), Error::Timeout);
    // Were the timed-out exclusive link still queued, this shared set would wait behind it.
    let s2 = Slot::new(&ResourceSet::new().shared(&r[0]));
    assert!(s2.granted());
    s.release();
    s2.release();
    assert!(is_free(&r[0]));
}

fn rule7_zero_timeout_on_free_set_is_granted<E: Engine>() {
    let r = res::<E>(1);
    let g = ResourceSet::new()
        .exclusive(&r[0])
        .wait_timeout(Duration::ZERO)
        .unwrap();
    drop(g);
}

fn rule7_interrupt_from_another_thread_cancels<E: Engine>() {
    interrupted_from_another_thread::<E>(None);
}

/// A held resource, a waiter on another thread with `timeout`, interrupted: `Interrupted`,
/// and nothing left queued.
fn interrupted_from_another_thread<E: Engine>(timeout: Option<Duration>) {
    let r = res::<E>(1);
    let hold = ResourceSet::new().exclusive(&r[0]).wait().unwrap();
    let int = Interrupt::new();
    let (r0, int2) = (r[0].clone(), int.clone());
    let t = thread::spawn(move || {
        ResourceSet::new()
            .exclusive(&r0)
            .wait_interruptible(timeout, &int2)
            .map(drop)
    });
    thread::sleep(Duration::from_millis(20));
    int.interrupt();
    assert_eq!(t.join().unwrap().unwrap_err(), Error::Interrupted);
    drop(hold);
    assert!(is_free(&r[0]));
}

fn rule7_already_interrupted_wait_returns_at_once_unless_free<E: Engine>() {
    let r = res::<E>(1);
    let int = Interrupt::new();
    int.interrupt();
    assert!(int.is_interrupted());
    // Free: granted at once even though interrupted.
    drop(
        ResourceSet::new()
            .exclusive(&r[0])
            .wait_interruptible(None, &int)
            .unwrap(),
    );
    let hold = ResourceSet::new().exclusive(&r[0]).wait().unwrap();
    let e = ResourceSet::new()
        .exclusive(&r[0])
        .wait_interruptible(None, &int);
    assert_eq!(e.unwrap_err(), Error::Interrupted);
    int.clear();
    let e = ResourceSet::new()
        .exclusive(&r[0])
        .wait_interruptible(Some(Duration::from_millis(2)), &int);
    assert_eq!(e.unwrap_err(), Error::Timeout);
    drop(hold);
    assert!(is_free(&r[0]));
}

fn rule7_timeouts_racing_grants_never_lose_a_set<E: Engine>() {
    let r = Arc::new(res::<E>(2));
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

fn try_acquire_would_block_leaves_nothing_queued<E: Engine>() {
    let r = res::<E>(1);
    let s = Slot::new(&ResourceSet::new().shared(&r[0]));
    assert_eq!(
        ResourceSet::new()
            .exclusive(&r[0])
            .try_acquire()
            .unwrap_err(),
        Error::WouldBlock
    );
    let s2 = Slot::new(&ResourceSet::new().shared(&r[0]));
    assert!(
        s2.granted(),
        "the refused exclusive link was left in the queue"
    );
    let g = ResourceSet::new().shared(&r[0]).try_acquire().unwrap();
    drop(g);
    s.release();
    s2.release();
    assert!(is_free(&r[0]));
}

/// Any timeout is accepted: one too long to add to `Instant::now()` (`Duration::MAX`) waits
/// without a deadline instead of panicking, on every timed path.
fn timeouts_across_the_whole_duration_range<E: Engine>() {
    let r = res::<E>(1);
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
        drop(
            ResourceSet::new()
                .exclusive(&r[0])
                .wait_interruptible(Some(t), &never)
                .unwrap(),
        );
    }
    // Held: a wait with `Duration::MAX` is granted by the release ...
    let hold = ResourceSet::new().exclusive(&r[0]).wait().unwrap();
    let r0 = r[0].clone();
    let t = thread::spawn(move || {
        ResourceSet::new()
            .exclusive(&r0)
            .wait_timeout(Duration::MAX)
            .map(drop)
    });
    thread::sleep(Duration::from_millis(20));
    drop(hold);
    t.join().unwrap().unwrap();
    // ... or broken by an interrupt, leaving nothing queued.
    interrupted_from_another_thread::<E>(Some(Duration::MAX));
}

on_both_engines!(
    rule7_wait_blocks_until_release_on_another_thread,
    rule7_timeout_cancels_and_leaves_nothing_queued,
    rule7_zero_timeout_on_free_set_is_granted,
    rule7_interrupt_from_another_thread_cancels,
    rule7_already_interrupted_wait_returns_at_once_unless_free,
    rule7_timeouts_racing_grants_never_lose_a_set,
    try_acquire_would_block_leaves_nothing_queued,
    timeouts_across_the_whole_duration_range,
);
