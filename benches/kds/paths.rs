//! `paths`: every way a user takes a set, uncontended, one thread, k = 1, 4, 8 exclusive
//! resources, on both engines. Time per operation, acquire to release:
//!
//! - `one-liner`: the README's idiom, `ResourceSet::new().exclusive(&a).exclusive(&b)…wait()`
//!   then drop, written out for the k resources: a set built where it is used, its guard
//!   borrowing the resources. Its peer, `parking_lot sorted`, does what a careful user writes
//!   instead: the k locks sorted by address (on the stack), then k write guards.
//! - `one-liner fold`: the same set built by value in a loop (`iter().fold(ResourceSet::new(),
//!   |s, r| s.exclusive(r))`, like `set = set.exclusive(r)` in a `for` loop): the set is copied
//!   at each step.
//! - `one-liner from_iter`: the same set built in place by `ResourceSet::from_iter([(&r,
//!   mode), ..])` (`Extend` is the same).
//! - `one-liner into_owned`: the one-liner whose guard is made owned
//!   (`wait()?.into_owned()`), as one that moves to another thread must be.
//! - `build`: building the set alone (the written-out idiom, then dropping it), no locking.
//! - `lock`: a prepared set, `lock()` then drop (the guard borrows the set).
//! - `wait`: a prepared set, `wait()` then drop (the guard copies the set's entries).
//! - `owned wait`: a prepared owned set (`into_owned()`), `wait()` then drop: a guard that
//!   owns handles of its resources (a reference count each way per resource).
//! - `on_grant direct`: a prepared set, `on_grant(Dispatch::Direct, ..)`; the callback drops
//!   its guard, then the `Pending` is dropped.
//! - `acquire`: a prepared set, `acquire()` polled once with a no-op waker (uncontended it is
//!   ready at once), the guard dropped: `acquire().await` minus the executor.
//! - `pipeline N`: one resource with N sets queued behind its holder; each operation appends
//!   one more set at the tail (`on_grant`, direct) and releases the holder, so the next set is
//!   granted and the queue stays N long. An append costs O(1) only if it does not walk the
//!   queue.
//! - `cancel N`: N sets queued behind a holder that keeps holding; each operation appends one
//!   more set and cancels it (a waiter that times out at the tail).

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion};
use kds::generic::{Guard, Resource, ResourceSet};
use kds::{Access, Dispatch, Engine};
use std::collections::VecDeque;
use std::future::Future;
use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

/// Set sizes measured.
pub const KS: [usize; 3] = [1, 4, 8];

/// The README's idiom for the first `k` (1, 4 or 8) of `r`, written out as a user writes it.
macro_rules! idiom {
    ($r:expr, $k:expr) => {
        match $k {
            1 => ResourceSet::new().exclusive(&$r[0]),
            4 => ResourceSet::new()
                .exclusive(&$r[0])
                .exclusive(&$r[1])
                .exclusive(&$r[2])
                .exclusive(&$r[3]),
            _ => ResourceSet::new()
                .exclusive(&$r[0])
                .exclusive(&$r[1])
                .exclusive(&$r[2])
                .exclusive(&$r[3])
                .exclusive(&$r[4])
                .exclusive(&$r[5])
                .exclusive(&$r[6])
                .exclusive(&$r[7]),
        }
    };
}
/// Queue lengths for `pipeline` and `cancel`.
pub const QUEUED: [usize; 4] = [10, 100, 1000, 10000];

fn one_engine<E: Engine>(g: &mut BenchmarkGroup<WallTime>) {
    for k in KS {
        let res: Vec<Resource<E>> = (0..k).map(|_| Resource::new()).collect();
        // The match on k is outside the timed closures: each measures one written-out chain.
        let build = || -> ResourceSet<'_, E> { idiom!(res, k) };
        match k {
            1 => g.bench_function(BenchmarkId::new(E::NAME, "one-liner k=1"), |b| {
                b.iter(|| drop(black_box(idiom!(res, 1).wait().unwrap())))
            }),
            4 => g.bench_function(BenchmarkId::new(E::NAME, "one-liner k=4"), |b| {
                b.iter(|| drop(black_box(idiom!(res, 4).wait().unwrap())))
            }),
            _ => g.bench_function(BenchmarkId::new(E::NAME, "one-liner k=8"), |b| {
                b.iter(|| drop(black_box(idiom!(res, 8).wait().unwrap())))
            }),
        };
        let fold = || {
            res.iter()
                .fold(ResourceSet::<E>::new(), |s, r| s.exclusive(r))
        };
        g.bench_function(
            BenchmarkId::new(E::NAME, format!("one-liner fold k={k}")),
            |b| b.iter(|| drop(black_box(fold().wait().unwrap()))),
        );
        let build_from_iter =
            || ResourceSet::<E>::from_iter(res.iter().map(|r| (r, Access::Exclusive)));
        g.bench_function(
            BenchmarkId::new(E::NAME, format!("one-liner from_iter k={k}")),
            |b| b.iter(|| drop(black_box(build_from_iter().wait().unwrap()))),
        );
        g.bench_function(
            BenchmarkId::new(E::NAME, format!("one-liner into_owned k={k}")),
            |b| b.iter(|| drop(black_box(build().wait().unwrap().into_owned()))),
        );
        g.bench_function(BenchmarkId::new(E::NAME, format!("build k={k}")), |b| {
            b.iter(|| drop(black_box(build())))
        });
        let set = build();
        g.bench_function(BenchmarkId::new(E::NAME, format!("lock k={k}")), |b| {
            b.iter(|| drop(black_box(set.lock().unwrap())))
        });
        g.bench_function(BenchmarkId::new(E::NAME, format!("wait k={k}")), |b| {
            b.iter(|| drop(black_box(set.wait().unwrap())))
        });
        let owned = build().into_owned();
        g.bench_function(
            BenchmarkId::new(E::NAME, format!("owned wait k={k}")),
            |b| b.iter(|| drop(black_box(owned.wait().unwrap()))),
        );
        g.bench_function(
            BenchmarkId::new(E::NAME, format!("on_grant direct k={k}")),
            |b| {
                b.iter(|| {
                    let p = set.on_grant(Dispatch::Direct, drop).unwrap();
                    debug_assert!(p.is_granted());
                    drop(black_box(p));
                })
            },
        );
        let waker = Waker::from(Arc::new(Noop));
        let mut cx = Context::from_waker(&waker);
        g.bench_function(BenchmarkId::new(E::NAME, format!("acquire k={k}")), |b| {
            b.iter(|| {
                let mut f = std::pin::pin!(set.acquire());
                match f.as_mut().poll(&mut cx) {
                    Poll::Ready(guard) => drop(black_box(guard.unwrap())),
                    Poll::Pending => panic!("an uncontended acquire must be ready"),
                }
            })
        });
    }
    for n in QUEUED {
        pipeline::<E>(g, n);
        cancel_at_tail::<E>(g, n);
    }
}

/// A waker that does nothing (`Waker::noop` needs Rust 1.85; the crate's MSRV is 1.80).
struct Noop;
impl std::task::Wake for Noop {
    fn wake(self: Arc<Self>) {}
}

/// Guards of granted sets, in grant order (direct callbacks push here).
type Holders<E> = Arc<Mutex<VecDeque<Guard<'static, E>>>>;

fn enqueue<E: Engine>(set: &ResourceSet<'_, E>, holders: &Holders<E>) -> kds::generic::Pending<E> {
    let holders = holders.clone();
    set.on_grant(Dispatch::Direct, move |g| {
        holders.lock().unwrap().push_back(g)
    })
    .unwrap()
}

/// Releases holders until every queued set has run. The lock is not held while a guard is
/// dropped: the drop runs the next set's callback, which pushes onto `holders`.
fn drain<E: Engine>(holders: &Holders<E>) {
    loop {
        let next = holders.lock().unwrap().pop_front();
        match next {
            Some(guard) => drop(guard),
            None => break,
        }
    }
}

fn pipeline<E: Engine>(g: &mut BenchmarkGroup<WallTime>, n: usize) {
    let r = Resource::<E>::new();
    let set = ResourceSet::new().exclusive(&r);
    let holders: Holders<E> = Arc::default();
    // The holder, then n queued behind it; their `Pending`s are dropped (that keeps them).
    for _ in 0..=n {
        drop(enqueue(&set, &holders));
    }
    assert_eq!(holders.lock().unwrap().len(), 1);
    g.bench_function(BenchmarkId::new(E::NAME, format!("pipeline {n}")), |b| {
        b.iter(|| {
            drop(enqueue(&set, &holders));
            let head = holders.lock().unwrap().pop_front().expect("a holder");
            drop(head); // grants the next set; its callback pushes its guard
        })
    });
    drain(&holders);
}

fn cancel_at_tail<E: Engine>(g: &mut BenchmarkGroup<WallTime>, n: usize) {
    let r = Resource::<E>::new();
    let set = ResourceSet::new().exclusive(&r);
    let holders: Holders<E> = Arc::default();
    let queued: Vec<_> = (0..=n).map(|_| enqueue(&set, &holders)).collect();
    g.bench_function(BenchmarkId::new(E::NAME, format!("cancel {n}")), |b| {
        b.iter(|| {
            let p = enqueue(&set, &holders);
            assert!(p.cancel(), "granted behind a holder");
        })
    });
    drop(queued);
    drain(&holders);
}

/// The one-liner's peer: `parking_lot` write guards, the locks sorted by address per use.
fn parking_lot_sorted(g: &mut BenchmarkGroup<WallTime>) {
    for k in KS {
        let locks: Vec<parking_lot::RwLock<()>> = (0..k).map(|_| Default::default()).collect();
        g.bench_function(
            BenchmarkId::new("parking_lot RwLock", format!("one-liner k={k}")),
            |b| {
                b.iter(|| {
                    let mut sorted: smallvec::SmallVec<[&parking_lot::RwLock<()>; 8]> =
                        locks.iter().collect();
                    sorted.sort_unstable_by_key(|l| *l as *const _ as usize);
                    let guards: smallvec::SmallVec<[_; 8]> =
                        sorted.iter().map(|l| l.write()).collect();
                    drop(black_box(guards));
                })
            },
        );
    }
}

/// Runs the `paths` group.
pub fn paths(c: &mut Criterion<WallTime>) {
    let mut g = c.benchmark_group("paths");
    one_engine::<kds::LockFree>(&mut g);
    one_engine::<kds::reference::Reference>(&mut g);
    parking_lot_sorted(&mut g);
    g.finish();
}
