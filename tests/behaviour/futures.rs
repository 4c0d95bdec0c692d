//! `acquire()`: futures resolve, and dropping one un-queues or releases its set.

use crate::common::*;

fn future_resolves_after_release_on_another_thread<E: Engine>() {
    let r = res::<E>(1);
    let hold = ResourceSet::new()
        .exclusive(&r[0])
        .wait()
        .unwrap()
        .into_owned();
    let set = ResourceSet::new().exclusive(&r[0]);
    let t = thread::spawn(move || {
        thread::sleep(Duration::from_millis(10));
        drop(hold);
    });
    let g = futures_executor::block_on(set.acquire()).unwrap();
    t.join().unwrap();
    drop(g);
    assert!(is_free(&r[0]));
}

fn dropping_a_pending_future_unqueues_it<E: Engine>() {
    use std::future::Future;
    use std::task::{Context, Poll};
    let r = res::<E>(1);
    let s = Slot::new(&ResourceSet::new().shared(&r[0]));
    let mut fut = Box::pin(ResourceSet::new().exclusive(&r[0]).acquire());
    let waker = futures_executor::block_on(futures_util_waker());
    let mut cx = Context::from_waker(&waker);
    assert!(matches!(fut.as_mut().poll(&mut cx), Poll::Pending));
    // Queued: a new shared set waits behind it.
    let s2 = Slot::new(&ResourceSet::new().shared(&r[0]));
    assert!(!s2.granted());
    drop(fut);
    assert!(s2.granted(), "dropping the future must un-queue its set");
    s.release();
    s2.release();
    // A future never polled queued nothing.
    let unpolled = ResourceSet::new().exclusive(&r[0]).acquire();
    assert!(is_free(&r[0]));
    drop(unpolled);
}

fn dropping_a_future_granted_but_not_polled_releases<E: Engine>() {
    use std::future::Future;
    use std::task::{Context, Poll};
    let r = res::<E>(1);
    let hold = Slot::new(&ResourceSet::new().exclusive(&r[0]));
    let mut fut = Box::pin(ResourceSet::new().exclusive(&r[0]).acquire());
    let waker = futures_executor::block_on(futures_util_waker());
    let mut cx = Context::from_waker(&waker);
    assert!(matches!(fut.as_mut().poll(&mut cx), Poll::Pending));
    hold.release(); // grants the future's set; nobody polls it
    assert!(!is_free(&r[0]));
    drop(fut);
    assert!(
        is_free(&r[0]),
        "a granted, dropped future must release its set"
    );
}

/// The current task's waker (a no-op outside an executor).
async fn futures_util_waker() -> std::task::Waker {
    std::future::poll_fn(|cx| std::task::Poll::Ready(cx.waker().clone())).await
}

on_both_engines!(
    future_resolves_after_release_on_another_thread,
    dropping_a_pending_future_unqueues_it,
    dropping_a_future_granted_but_not_polled_releases,
);
