//! Instruction counts of the uncontended request paths, one thread, for callgrind, whose counts
//! do not move with a noisy machine's timing: `bash benches/instructions.sh` (it runs this
//! binary once per probe under `valgrind --tool=callgrind --toggle-collect=*measured*` and
//! divides by the iterations).
//!
//! `probe NAME N` runs probe `NAME` N times inside `measured`; `list` prints the names. The
//! idiom is written out as a user writes it, `ResourceSet::new().exclusive(&a)…wait()`, for
//! k = 1, 4 and 8 exclusive resources, beside `lock()` on a prepared set, the other request
//! paths, and the sorted `parking_lot` guards a careful user would write instead.

use kds::generic::{Resource, ResourceSet};
use kds::{Dispatch, Engine};
use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

/// Runs `f` `n` times: the only function callgrind collects.
#[inline(never)]
fn measured(n: u64, f: &mut dyn FnMut()) {
    for _ in 0..n {
        f();
    }
}

/// A waker that does nothing (`Waker::noop` needs Rust 1.85; the crate's MSRV is 1.80).
struct Noop;
impl std::task::Wake for Noop {
    fn wake(self: Arc<Self>) {}
}

/// The idiom with `$n` resources of `$r`, written out.
macro_rules! idiom {
    ($r:ident; $($i:literal)+) => {
        ResourceSet::new()$(.exclusive(&$r[$i]))+.wait().unwrap()
    };
}

fn probe<E: Engine>(name: &str, n: u64) -> bool {
    let r: Vec<Resource<E>> = (0..8).map(|_| Resource::new()).collect();
    let set = |k: usize| {
        r[..k]
            .iter()
            .fold(ResourceSet::<E>::new(), |s, r| s.exclusive(r))
    };
    let (s1, s4, s8) = (set(1), set(4), set(8));
    let waker = Waker::from(Arc::new(Noop));
    let run = |f: &mut dyn FnMut()| {
        f(); // warm up: thread-locals, the epoch's registration
        measured(n, f)
    };
    match name {
        "idiom-1" => run(&mut || drop(black_box(idiom!(r; 0)))),
        "idiom-4" => run(&mut || drop(black_box(idiom!(r; 0 1 2 3)))),
        "idiom-8" => run(&mut || drop(black_box(idiom!(r; 0 1 2 3 4 5 6 7)))),
        "fold-1" => run(&mut || drop(black_box(set(1).wait().unwrap()))),
        "fold-4" => run(&mut || drop(black_box(set(4).wait().unwrap()))),
        "fold-8" => run(&mut || drop(black_box(set(8).wait().unwrap()))),
        "lock-1" => run(&mut || drop(black_box(s1.lock().unwrap()))),
        "lock-4" => run(&mut || drop(black_box(s4.lock().unwrap()))),
        "lock-8" => run(&mut || drop(black_box(s8.lock().unwrap()))),
        "wait-1" => run(&mut || drop(black_box(s1.wait().unwrap()))),
        "wait-4" => run(&mut || drop(black_box(s4.wait().unwrap()))),
        "wait-8" => run(&mut || drop(black_box(s8.wait().unwrap()))),
        "on_grant-1" | "on_grant-4" | "on_grant-8" => {
            let s = [&s1, &s4, &s8][k_index(name)];
            run(&mut || drop(black_box(s.on_grant(Dispatch::Direct, drop).unwrap())))
        }
        "acquire-1" | "acquire-4" | "acquire-8" => {
            let s = [&s1, &s4, &s8][k_index(name)];
            let mut cx = Context::from_waker(&waker);
            run(&mut || {
                let mut f = std::pin::pin!(s.acquire());
                match f.as_mut().poll(&mut cx) {
                    Poll::Ready(guard) => drop(black_box(guard.unwrap())),
                    Poll::Pending => panic!("an uncontended acquire must be ready"),
                }
            })
        }
        _ => return queued::<E>(name, n),
    }
    true
}

/// `shared-N`: N shared sets hold one resource, granted through its queue; each step appends
/// one more shared set (granted at once) and releases the oldest holder: a crowd of readers
/// that comes and goes. (The first holder has the Fail policy, which never takes the fast
/// path; behind its link the others queue too.)
fn shared_crowd<E: Engine>(len: usize, n: u64) {
    let r = Resource::<E>::new();
    let set = ResourceSet::new().shared(&r);
    let holders: Holders<E> = Box::leak(Box::default());
    let first = set.clone().locked(kds::Locked::Fail);
    let queued: Vec<_> = (0..len)
        .map(|i| enqueue(if i == 0 { &first } else { &set }, holders))
        .collect();
    assert_eq!(
        holders.lock().unwrap().len(),
        len,
        "a shared crowd is granted"
    );
    let mut step = || {
        drop(enqueue(&set, holders));
        let oldest = holders.lock().unwrap().pop_front().expect("a holder");
        drop(oldest);
    };
    step();
    measured(n, &mut step);
    drop(queued);
    drain(holders);
}

/// Guards of granted sets, in grant order: direct callbacks push here. Leaked, so a callback
/// borrows it instead of cloning a handle (the harness adds as little as it can to the step).
type Holders<E> =
    &'static std::sync::Mutex<std::collections::VecDeque<kds::generic::Guard<'static, E>>>;

/// Queues a set behind whatever holds or waits on its resources; its callback keeps its guard.
fn enqueue<E: Engine>(set: &ResourceSet<'_, E>, holders: Holders<E>) -> kds::generic::Pending<E> {
    set.on_grant(Dispatch::Direct, move |g| {
        holders.lock().unwrap().push_back(g)
    })
    .unwrap()
}

/// The queued paths, one resource, one thread: `pipeline-N` appends a set behind N waiting
/// sets (direct callback) and releases the head, which grants the next (the queue stays N
/// long); `cancel-N` appends behind a holder and N waiting sets and cancels it (a waiter that
/// times out at the tail).
fn queued<E: Engine>(name: &str, n: u64) -> bool {
    let Some((path, len)) = name.split_once('-') else {
        return false;
    };
    let Ok(len) = len.parse::<usize>() else {
        return false;
    };
    if path == "shared" {
        shared_crowd::<E>(len, n);
        return true;
    }
    let r = Resource::<E>::new();
    let set = ResourceSet::new().exclusive(&r);
    let holders: Holders<E> = Box::leak(Box::default());
    // The holder, then `len` queued behind it; dropping a `Pending` keeps its request.
    let queued: Vec<_> = (0..=len).map(|_| enqueue(&set, holders)).collect();
    assert_eq!(holders.lock().unwrap().len(), 1);
    let mut step: Box<dyn FnMut()> = match path {
        "pipeline" => Box::new(|| {
            drop(enqueue(&set, holders));
            let head = holders.lock().unwrap().pop_front().expect("a holder");
            drop(head); // grants the next set; its callback pushes its guard
        }),
        "cancel" => Box::new(|| {
            let p = enqueue(&set, holders);
            assert!(p.cancel(), "granted behind a holder");
        }),
        _ => return false,
    };
    step();
    measured(n, &mut step);
    drop(step);
    drop(queued);
    drain(holders);
    true
}

/// Releases holders until every queued set has run. The lock is not held while a guard is
/// dropped: the drop may run the next set's callback, which pushes onto `holders`.
fn drain<E: Engine>(holders: Holders<E>) {
    loop {
        let next = holders.lock().unwrap().pop_front();
        match next {
            Some(guard) => drop(guard),
            None => break,
        }
    }
}

/// 0, 1, 2 for a probe name ending in 1, 4, 8.
fn k_index(name: &str) -> usize {
    match name.rsplit('-').next() {
        Some("1") => 0,
        Some("4") => 1,
        _ => 2,
    }
}

/// The peer: `parking_lot` write guards, the locks sorted by address per use.
fn parking_lot(k: usize, n: u64) {
    let locks: Vec<parking_lot::RwLock<()>> = (0..k).map(|_| Default::default()).collect();
    let mut f = || {
        let mut sorted: smallvec::SmallVec<[&parking_lot::RwLock<()>; 8]> = locks.iter().collect();
        sorted.sort_unstable_by_key(|l| *l as *const _ as usize);
        let guards: smallvec::SmallVec<[_; 8]> = sorted.iter().map(|l| l.write()).collect();
        drop(black_box(guards));
    };
    f();
    measured(n, &mut f);
}

const PROBES: &[&str] = &[
    "idiom-1",
    "idiom-4",
    "idiom-8",
    "fold-1",
    "fold-4",
    "fold-8",
    "lock-1",
    "lock-4",
    "lock-8",
    "wait-1",
    "wait-4",
    "wait-8",
    "on_grant-1",
    "on_grant-4",
    "on_grant-8",
    "acquire-1",
    "acquire-4",
    "acquire-8",
    "pipeline-10",
    "pipeline-100",
    "pipeline-1000",
    "pipeline-10000",
    "cancel-10",
    "cancel-100",
    "cancel-1000",
    "cancel-10000",
    "shared-40",
    "shared-40000",
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| *a != "--bench")
        .collect();
    match args.as_slice() {
        ["list"] => {
            for p in PROBES {
                println!("lock-free/{p}\nreference/{p}");
            }
            for k in [1, 4, 8] {
                println!("parking_lot/sorted-{k}");
            }
        }
        ["probe", name, n] => {
            let n: u64 = n.parse().expect("iterations");
            let ok = match name.split_once('/') {
                Some(("lock-free", p)) => probe::<kds::LockFree>(p, n),
                Some(("reference", p)) => probe::<kds::reference::Reference>(p, n),
                Some(("parking_lot", p)) => {
                    parking_lot(p.trim_start_matches("sorted-").parse().expect("k"), n);
                    true
                }
                _ => false,
            };
            assert!(ok, "unknown probe {name}");
        }
        // `cargo bench` runs every bench binary: nothing to time here.
        _ => println!("instructions: run `bash benches/instructions.sh` (callgrind)"),
    }
}
