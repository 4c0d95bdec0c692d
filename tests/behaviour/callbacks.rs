//! Rule 9: direct, worker and pool callbacks: where they run, chains that do not grow the stack, panics.

use crate::common::*;

fn rule9_direct_callback_runs_inside_on_grant_when_free<E: Engine>() {
    let r = res::<E>(1);
    let me = thread::current().id();
    let ran_here = Arc::new(AtomicBool::new(false));
    let flag = ran_here.clone();
    let p = ResourceSet::new()
        .exclusive(&r[0])
        .on_grant(Dispatch::Direct, move |g| {
            flag.store(thread::current().id() == me, SeqCst);
            drop(g);
        })
        .unwrap();
    assert!(ran_here.load(SeqCst));
    assert!(p.is_granted());
    assert!(!p.cancel());
}

fn rule9_worker_callbacks_run_on_the_worker_in_grant_order<E: Engine>() {
    let r = res::<E>(1);
    let w = Worker::spawn("kds-test-worker").unwrap();
    assert_eq!(w.name(), "kds-test-worker");
    let hold = ResourceSet::new().exclusive(&r[0]).wait().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    for i in 0..20 {
        let tx = tx.clone();
        ResourceSet::new()
            .exclusive(&r[0])
            .on_grant(Dispatch::Worker(w.clone()), move |g| {
                let name = thread::current().name().map(str::to_owned);
                tx.send((i, name)).unwrap();
                drop(g);
            })
            .unwrap();
    }
    drop(hold);
    for i in 0..20 {
        let (got, name) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(got, i);
        assert_eq!(name.as_deref(), Some("kds-test-worker"));
    }
}

fn rule9_pool_callbacks_run<E: Engine>() {
    let r = res::<E>(1);
    let (tx, rx) = std::sync::mpsc::channel();
    let _p = ResourceSet::new()
        .shared(&r[0])
        .on_grant(Dispatch::Pool, move |g| {
            tx.send(()).unwrap();
            drop(g);
        })
        .unwrap();
    rx.recv_timeout(Duration::from_secs(10)).unwrap();
}

fn rule9_callback_may_release_request_and_cancel<E: Engine>() {
    let r = res::<E>(2);
    let hold = ResourceSet::new().exclusive(&r[0]).wait().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (r0, r1, l) = (r[0].clone(), r[1].clone(), log.clone());
    let _p = ResourceSet::new()
        .exclusive(&r[0])
        .on_grant(Dispatch::Direct, move |g| {
            l.lock().unwrap().push("first");
            // Request another set from inside the callback, and cancel a third.
            let l2 = l.clone();
            let _ = ResourceSet::new()
                .exclusive(&r1)
                .on_grant(Dispatch::Direct, move |g2| {
                    l2.lock().unwrap().push("nested");
                    drop(g2);
                })
                .unwrap();
            let blocked = ResourceSet::new()
                .exclusive(&r0)
                .on_grant(Dispatch::Direct, |_| panic!("must have been cancelled"))
                .unwrap();
            assert!(blocked.cancel());
            drop(g);
        })
        .unwrap();
    drop(hold);
    assert_eq!(*log.lock().unwrap(), vec!["first", "nested"]);
    assert!(r.iter().all(is_free));
}

fn rule9_long_direct_callback_chain_does_not_grow_the_stack<E: Engine>() {
    // Run on a small stack: a recursive delivery would overflow long before the end.
    let n = if cfg!(miri) { 50 } else { 10_000 };
    let t = thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || {
            let r = Resource::<E>::new();
            let hold = ResourceSet::new().exclusive(&r).wait().unwrap();
            let ran = Arc::new(AtomicUsize::new(0));
            for _ in 0..n {
                let ran = ran.clone();
                let _ = ResourceSet::new()
                    .exclusive(&r)
                    .on_grant(Dispatch::Direct, move |g| {
                        ran.fetch_add(1, SeqCst);
                        drop(g); // grants the next one: a chain of n direct callbacks
                    })
                    .unwrap();
            }
            drop(hold);
            assert_eq!(ran.load(SeqCst), n);
            assert!(is_free(&r));
        })
        .unwrap();
    t.join().unwrap();
}

/// A direct callback that requests the next set, free at once, from inside itself: the next
/// callback must wait for this one to return (the trampoline), not run nested in it.
fn rule9_callbacks_that_request_free_sets_do_not_nest<E: Engine>() {
    fn next<E: Engine>(
        r: Arc<Resource<E>>,
        left: usize,
        depth: Arc<AtomicUsize>,
        max: Arc<AtomicUsize>,
    ) {
        let (d, m) = (depth.clone(), max.clone());
        let rr = r.clone();
        let p = ResourceSet::new()
            .exclusive(&r)
            .on_grant(Dispatch::Direct, move |g| {
                let now = d.fetch_add(1, SeqCst) + 1;
                m.fetch_max(now, SeqCst);
                drop(g);
                if left > 0 {
                    next(rr, left - 1, d.clone(), m);
                }
                d.fetch_sub(1, SeqCst);
            })
            .unwrap();
        assert!(p.is_granted(), "a free set is granted inside on_grant");
    }
    let n = if cfg!(miri) { 50 } else { 10_000 };
    let t = thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || {
            let r = Arc::new(Resource::<E>::new());
            let (depth, max) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
            next::<E>(r.clone(), n, depth.clone(), max.clone());
            assert_eq!(depth.load(SeqCst), 0, "every callback ran to its end");
            assert_eq!(max.load(SeqCst), 1, "callbacks nested");
            assert!(is_free(&r));
        })
        .unwrap();
    t.join().unwrap();
}

fn rule9_panicking_callback_releases_its_set<E: Engine>() {
    let r = res::<E>(1);
    let hold = ResourceSet::new().exclusive(&r[0]).wait().unwrap();
    let _p = ResourceSet::new()
        .exclusive(&r[0])
        .on_grant(Dispatch::Direct, |_g| panic!("callback panics on purpose"))
        .unwrap();
    let after = Slot::new(&ResourceSet::new().exclusive(&r[0]));
    drop(hold); // runs the panicking callback here; must not unwind into us
    assert!(
        after.granted(),
        "the panicking callback's set was not released"
    );
    after.release();
    // A worker survives a panicking callback too.
    let w = Worker::spawn("kds-panic").unwrap();
    let _ = ResourceSet::new()
        .exclusive(&r[0])
        .on_grant(Dispatch::Worker(w.clone()), |_g| {
            panic!("worker callback panics on purpose")
        })
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let _ = ResourceSet::new()
        .exclusive(&r[0])
        .on_grant(Dispatch::Worker(w), move |g| {
            tx.send(()).unwrap();
            drop(g)
        })
        .unwrap();
    rx.recv_timeout(Duration::from_secs(10)).unwrap();
}

fn rule9_blocking_wait_inside_a_direct_callback_is_granted<E: Engine>() {
    // The inner set is free: its grant must not wait for the callback to return.
    let r = res::<E>(2);
    let hold = ResourceSet::new().exclusive(&r[0]).wait().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let r1 = r[1].clone();
    let _p = ResourceSet::new()
        .exclusive(&r[0])
        .on_grant(Dispatch::Direct, move |g| {
            let start = std::time::Instant::now();
            let inner = ResourceSet::new()
                .exclusive(&r1)
                .wait_timeout(Duration::from_secs(30));
            tx.send((inner.is_ok(), start.elapsed())).unwrap();
            drop(g);
        })
        .unwrap();
    drop(hold); // runs the callback here
    let (ok, took) = rx.recv_timeout(Duration::from_secs(60)).unwrap();
    assert!(
        ok && took < Duration::from_secs(10),
        "inner wait hung for {took:?}"
    );
    assert!(r.iter().all(is_free));
}

fn rule9_callback_that_releases_then_waits_for_the_thread_it_woke<E: Engine>() {
    // The callback's release grants thread T's wait on x; T then releases y, which the
    // callback waits for. T's wake-up must not be held back until the callback returns.
    let r = res::<E>(3);
    let (x, y, z) = (r[0].clone(), r[1].clone(), r[2].clone());
    let gx = ResourceSet::new()
        .exclusive(&x)
        .wait()
        .unwrap()
        .into_owned();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let t = {
        let (x, y) = (x.clone(), y.clone());
        thread::spawn(move || {
            let gy = ResourceSet::new().exclusive(&y).wait().unwrap();
            ready_tx.send(()).unwrap();
            let gx = ResourceSet::new()
                .exclusive(&x)
                .wait_timeout(Duration::from_secs(30));
            drop(gy);
            gx.is_ok()
        })
    };
    ready_rx.recv().unwrap();
    let hz = ResourceSet::new().exclusive(&z).wait().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let gx = Mutex::new(Some(gx));
    let _p = ResourceSet::new()
        .exclusive(&z)
        .on_grant(Dispatch::Direct, move |g| {
            drop(gx.lock().unwrap().take());
            let start = std::time::Instant::now();
            let gy = ResourceSet::new()
                .exclusive(&y)
                .wait_timeout(Duration::from_secs(30));
            tx.send((gy.is_ok(), start.elapsed())).unwrap();
            drop(g);
        })
        .unwrap();
    drop(hz);
    let (ok, took) = rx.recv_timeout(Duration::from_secs(60)).unwrap();
    assert!(t.join().unwrap());
    assert!(
        ok && took < Duration::from_secs(10),
        "callback's wait hung for {took:?}"
    );
    assert!(r.iter().all(is_free));
}

/// A callback that panics with a payload whose own `Drop` panics does not kill its `Worker`
/// thread: the worker's next job still runs.
fn a_worker_survives_a_panic_payload_that_panics_on_drop<E: Engine>() {
    let r = res::<E>(1);
    let w = Worker::spawn("kds-test-payload").unwrap();
    ResourceSet::new()
        .exclusive(&r[0])
        .on_grant(Dispatch::Worker(w.clone()), |_g| {
            std::panic::panic_any(PanicOnDrop)
        })
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    ResourceSet::new()
        .exclusive(&r[0])
        .on_grant(Dispatch::Worker(w), move |g| {
            drop(g);
            tx.send(()).unwrap();
        })
        .unwrap();
    rx.recv_timeout(Duration::from_secs(10))
        .expect("the worker's next job never ran");
    assert!(is_free(&r[0]));
}

on_both_engines!(
    rule9_direct_callback_runs_inside_on_grant_when_free,
    rule9_worker_callbacks_run_on_the_worker_in_grant_order,
    rule9_pool_callbacks_run,
    rule9_callback_may_release_request_and_cancel,
    rule9_long_direct_callback_chain_does_not_grow_the_stack,
    rule9_callbacks_that_request_free_sets_do_not_nest,
    rule9_panicking_callback_releases_its_set,
    rule9_blocking_wait_inside_a_direct_callback_is_granted,
    rule9_callback_that_releases_then_waits_for_the_thread_it_woke,
    a_worker_survives_a_panic_payload_that_panics_on_drop,
);

/// `Dispatch::run` (for layers that complete grants later, such as kds-dmabuf's reactor):
/// `Direct` runs inline, `Worker` on the worker after the jobs it has, in order, surviving a
/// panicking job; `Pool` off this thread.
#[test]
fn dispatch_run_runs_where_the_dispatch_says() {
    let me = thread::current().id();
    let (tx, rx) = std::sync::mpsc::channel();
    let t = tx.clone();
    Dispatch::Direct.run(move || t.send((0, thread::current().id())).unwrap());
    assert_eq!(rx.try_recv(), Ok((0, me)), "a direct job runs inline");
    let w = Worker::spawn("kds-run").unwrap();
    Dispatch::Worker(w.clone()).run(|| panic!("a job that panics"));
    for i in 0..10 {
        let t = tx.clone();
        Dispatch::Worker(w.clone()).run(move || t.send((i, thread::current().id())).unwrap());
    }
    let ran: Vec<_> = (0..10)
        .map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap())
        .collect();
    assert!(
        ran.iter().all(|(_, id)| *id == ran[0].1 && *id != me),
        "not all on the worker"
    );
    assert!(
        ran.iter().enumerate().all(|(k, (i, _))| k == *i),
        "out of order: {ran:?}"
    );
    Dispatch::Pool.run(move || tx.send((0, thread::current().id())).unwrap());
    assert_ne!(rx.recv_timeout(Duration::from_secs(10)).unwrap().1, me);
}

/// `Interrupt::unpark_on_interrupt`: an interrupt from another thread unparks a registered
/// thread; once the registration drops, it is no longer unparked by it.
#[test]
fn unpark_on_interrupt_wakes_a_parked_thread() {
    let int = Interrupt::new();
    let firing = int.clone();
    let t0 = std::time::Instant::now();
    let interrupter = thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        firing.interrupt();
    });
    {
        let _registered = int.unpark_on_interrupt();
        while !int.is_interrupted() {
            thread::park_timeout(Duration::from_secs(30));
        }
    }
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "the interrupt did not unpark the thread"
    );
    interrupter.join().unwrap();
}
