//! Rule 10, and nothing a client hands in (a closure, a waker, a worker handle) outlives its use.

use crate::common::*;

fn rule10_dropping_handles_while_sets_use_them_is_safe<E: Engine>() {
    let r = res::<E>(2);
    let held = Slot::new(&ResourceSet::new().exclusive(&r[0]).shared(&r[1]));
    let waiting = Slot::new(&ResourceSet::new().exclusive(&r[0]).exclusive(&r[1]));
    let keep = r[1].clone();
    drop(r);
    assert!(held.granted() && !waiting.granted());
    held.release();
    assert!(waiting.granted());
    waiting.release();
    assert!(is_free(&keep));
}

fn rule10_many_resources_created_and_dropped<E: Engine>() {
    for _ in 0..if cfg!(miri) { 10 } else { 10_000 } {
        let r = Resource::<E>::new();
        drop(ResourceSet::new().exclusive(&r).wait().unwrap());
        let s = Slot::new(&ResourceSet::new().shared(&r));
        drop(r);
        s.release();
    }
}

/// A callback closure of a cancelled request is dropped at once, with what it captured. A
/// closure holding a handle of its own resource used to keep the cancelled request (lingering
/// in that resource's queue) and so the resource alive for ever: a reference cycle that the
/// concurrent fuzz target found as a leak.
fn cancelled_or_refused_callback_closure_is_dropped_at_once<E: Engine>() {
    let r = res::<E>(1).remove(0);
    let held = ResourceSet::new().exclusive(&r).wait().unwrap();
    let captured = Arc::new(());
    let (c, handle) = (captured.clone(), r.clone());
    let pending = ResourceSet::new()
        .exclusive(&r)
        .on_grant(Dispatch::Direct, move |_g| drop((c, handle)))
        .unwrap();
    assert_eq!(Arc::strong_count(&captured), 2);
    assert!(pending.cancel());
    assert_eq!(
        Arc::strong_count(&captured),
        1,
        "cancelled closure kept alive"
    );
    // Refused by Locked::Fail: the closure goes at once too.
    let (c, handle) = (captured.clone(), r.clone());
    let refused = ResourceSet::new()
        .exclusive(&r)
        .locked(Locked::Fail)
        .on_grant(Dispatch::Direct, move |_g| drop((c, handle)));
    assert_eq!(refused.unwrap_err(), Error::Busy);
    assert_eq!(
        Arc::strong_count(&captured),
        1,
        "refused closure kept alive"
    );
    drop(held);
    assert!(is_free(&r));
}

/// A waker that owns a handle of a resource, as a task that owns the buffer it waits for
/// does, and a sentinel whose strong count tells whether any copy of the waker is still kept.
struct HoldingWaker<E: Engine> {
    _resource: Resource<E>,
    _alive: Arc<()>,
}

impl<E: Engine> std::task::Wake for HoldingWaker<E> {
    fn wake(self: Arc<Self>) {}
}

/// Every way a future can end — granted on its first poll, granted after a wake-up, dropped
/// while queued, dropped once granted but not polled — with a waker that holds a handle of
/// the set's own resource: once everything is dropped, the waker must be gone. A waker left
/// registered in a granted request used to keep it, and through it the resource, alive for
/// ever on the lock-free engine (about 500 bytes a request).
fn a_future_drops_a_waker_that_holds_its_resource_on_every_path<E: Engine>() {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    #[derive(Debug, Clone, Copy)]
    enum End {
        FirstPoll,
        AfterWake,
        DroppedQueued,
        DroppedGranted,
    }
    for end in [
        End::FirstPoll,
        End::AfterWake,
        End::DroppedQueued,
        End::DroppedGranted,
    ] {
        for k in [1, 2] {
            let alive = Arc::new(());
            {
                let r = res::<E>(k);
                let waker = Waker::from(Arc::new(HoldingWaker {
                    _resource: r[0].clone(),
                    _alive: alive.clone(),
                }));
                let mut cx = Context::from_waker(&waker);
                let mut set = ResourceSet::new();
                for x in &r {
                    set = set.exclusive(x);
                }
                let hold = match end {
                    End::FirstPoll => None,
                    _ => Some(Slot::new(&ResourceSet::new().exclusive(&r[0]))),
                };
                let mut fut = Box::pin(set.acquire());
                if let Some(hold) = &hold {
                    assert!(fut.as_mut().poll(&mut cx).is_pending());
                    if matches!(end, End::DroppedQueued) {
                        drop(fut);
                        hold.release();
                        assert!(r.iter().all(is_free));
                        continue;
                    }
                    hold.release();
                }
                if matches!(end, End::DroppedGranted) {
                    drop(fut);
                } else {
                    let Poll::Ready(Ok(guard)) = fut.as_mut().poll(&mut cx) else {
                        panic!("{end:?}: not granted");
                    };
                    drop(guard);
                }
                assert!(r.iter().all(is_free));
            }
            assert_eq!(
                Arc::strong_count(&alive),
                1,
                "{end:?}, k = {k}: the waker was kept"
            );
        }
    }
}

/// A request delivered to a `Worker` gives up its handle of the worker: once the caller's
/// handles are gone the thread ends, even while the resource (on whose queue the request's
/// removed link may linger) lives on.
fn a_worker_thread_ends_once_its_handles_are_gone<E: Engine>() {
    struct OnExit(std::sync::mpsc::Sender<()>);
    impl Drop for OnExit {
        fn drop(&mut self) {
            let _ = self.0.send(());
        }
    }
    thread_local! {
        static ON_EXIT: std::cell::RefCell<Option<OnExit>> = const { std::cell::RefCell::new(None) };
    }
    let r = res::<E>(2);
    let w = Worker::spawn("kds-test-ends").unwrap();
    let (exit_tx, exit_rx) = std::sync::mpsc::channel();
    let (ran_tx, ran_rx) = std::sync::mpsc::channel();
    let pending = ResourceSet::new()
        .exclusive(&r[0])
        .shared(&r[1])
        .on_grant(Dispatch::Worker(w.clone()), move |g| {
            ON_EXIT.with(|e| *e.borrow_mut() = Some(OnExit(exit_tx)));
            drop(g);
            ran_tx.send(()).unwrap();
        })
        .unwrap();
    ran_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("callback never ran");
    drop((pending, w));
    exit_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the worker thread still runs: something kept a handle of it");
    assert!(r.iter().all(is_free));
}

/// Cancelling a request whose callback closure (or future waker) owns something with a
/// panicking `Drop`: the panic reaches the caller, but only after the sets that the cancel
/// enabled have been delivered (rule 3), not at this thread's next kds call.
fn a_panicking_drop_of_withdrawn_client_data_loses_no_grant<E: Engine>() {
    use std::future::Future;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::task::{Context, Waker};
    for via_future in [false, true] {
        let r = res::<E>(1);
        let s1 = Slot::new(&ResourceSet::new().shared(&r[0]));
        let exclusive = ResourceSet::new().exclusive(&r[0]);
        let mut cancel: Box<dyn FnOnce()> = if via_future {
            let mut fut = Box::pin(exclusive.acquire());
            let waker = Waker::from(Arc::new(PanicOnDrop));
            assert!(fut
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending());
            drop(waker); // the request now holds the only copy
            Box::new(move || drop(fut))
        } else {
            let owned = PanicOnDrop;
            let pending = exclusive
                .on_grant(Dispatch::Direct, move |g| drop((g, owned)))
                .unwrap();
            Box::new(move || assert!(pending.cancel()))
        };
        let s2 = Slot::new(&ResourceSet::new().shared(&r[0]));
        assert!(!s2.granted());
        let outcome = catch_unwind(AssertUnwindSafe(std::mem::replace(
            &mut cancel,
            Box::new(|| ()),
        )));
        assert!(outcome.is_err(), "the client's panic reaches the caller");
        assert!(
            s2.granted(),
            "future = {via_future}: the cancel's grant was not delivered"
        );
        s1.release();
        s2.release();
        assert!(is_free(&r[0]));
    }
}

/// A waker whose code panics while the future registers it (here: the previous waker's drop):
/// the panic reaches the caller, and the future still owns its request, so dropping it
/// cancels the set instead of leaving it queued with no owner (and held for ever once
/// granted).
fn a_future_whose_waker_panics_while_registering_still_cleans_up<E: Engine>() {
    use std::future::Future;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::task::{Context, Waker};
    struct Quiet;
    impl std::task::Wake for Quiet {
        fn wake(self: Arc<Self>) {}
    }
    let r = res::<E>(1);
    let hold = ResourceSet::new().exclusive(&r[0]).wait().unwrap();
    let mut fut = Box::pin(ResourceSet::new().exclusive(&r[0]).acquire());
    let first = Waker::from(Arc::new(PanicOnDrop));
    assert!(fut
        .as_mut()
        .poll(&mut Context::from_waker(&first))
        .is_pending());
    drop(first); // the future holds the only copy
    let second = Waker::from(Arc::new(Quiet));
    let polled = catch_unwind(AssertUnwindSafe(|| {
        fut.as_mut()
            .poll(&mut Context::from_waker(&second))
            .is_pending()
    }));
    assert!(polled.is_err(), "the waker's panic reaches the caller");
    drop(fut);
    drop(hold);
    assert!(is_free(&r[0]), "the future's set was left behind");
}

on_both_engines!(
    rule10_dropping_handles_while_sets_use_them_is_safe,
    rule10_many_resources_created_and_dropped,
    cancelled_or_refused_callback_closure_is_dropped_at_once,
    a_future_drops_a_waker_that_holds_its_resource_on_every_path,
    a_worker_thread_ends_once_its_handles_are_gone,
    a_panicking_drop_of_withdrawn_client_data_loses_no_grant,
    a_future_whose_waker_panics_while_registering_still_cleans_up,
);
