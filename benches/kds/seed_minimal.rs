//! `seed-minimal`: the 2012 seed's design, ported plainly and leanly, as a baseline for what
//! kds's lock-free engine improves on. Written from the rules in `kds-spec.md`, not from the
//! seed's code; unlike `kds::reference` it shares nothing with kds (no front end, no handles
//! with reference counts on the hot path, no policies, no callbacks, no timeouts).
//!
//! # Algorithm
//!
//! - One global lock ([`LOCK`], the seed's `kds_lock`) guards every resource's queue. It is a
//!   `std::sync::Mutex`: on Linux a futex word that, like the kernel mutex the seed used,
//!   spins briefly and then sleeps. It is what a plain Rust port would use, and on this VM it
//!   was the faster choice: uncontended, acquire + release of a set here took 1-4 ns less
//!   than with `parking_lot::Mutex` (whose unlock is a CAS where std's is a swap), and the
//!   two were within noise under contention. Poisoning cannot happen (no code that can panic
//!   runs under the lock), and a poisoned lock would be used as is.
//! - A resource is the head and tail of an intrusive doubly linked FIFO list of links. A
//!   request is one heap allocation holding one [`Link`] per resource (the seed kmallocs its
//!   `kds_resource_set` with the links inside the same way) plus a header on the waiting
//!   thread's stack: the count of not-yet-triggered links and the thread to wake.
//! - Acquire, under the lock: append each link to its resource's queue. A link is triggered at
//!   once when the queue was empty, or when it is shared and the last link before it is a
//!   triggered shared link (then every link ahead is shared: spec rule 2). If all links are
//!   triggered the set is granted; otherwise the thread stores its handle, drops the lock and
//!   parks until the count reaches 0.
//! - Release, under the lock: unlink each link. Only removing a queue's head can trigger
//!   anything (every link of a released set is triggered, so a removed non-head link is a
//!   shared one with only shared links ahead of it). The new head is triggered if it is
//!   exclusive; if the removed head was exclusive, the run of shared links from the new head
//!   up to the first exclusive one is triggered. A request whose count reaches 0 has its
//!   thread taken out and unparked after the lock is dropped.
//! - A resource named twice in one set would wait on itself; [`Peer::set`] merges duplicates
//!   (exclusive wins), as spec rule 11 allows. An empty set is granted at once.
//!
//! Waiting is blocking only and sleeps at once (the seed's `wait_event`), with no spinning.
//!
//! # Memory safety
//!
//! Every queue field ([`Resource`]'s head and tail, [`Link`]'s prev, next and triggered
//! state, [`Request`]'s waiter) is read and written only while [`LOCK`] is held. A link
//! stays in its queue from acquire to release, and its request's `with` call does not return
//! (or unwind) before the release has unlinked it under the lock. So a non-null pointer read
//! from a queue field under the lock points to a live link, and the request that link points
//! to is alive too. The header's count is the one field that is read without the lock: it is
//! atomic.

use crate::peers::Peer;
use smallvec::SmallVec;
use std::cell::Cell;
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread::{self, Thread};

/// The one lock over every queue (the seed's `kds_lock`).
static LOCK: Mutex<()> = Mutex::new(());

/// A resource: its queue of links, first to last (null when empty).
pub struct Resource {
    head: Cell<*const Link>,
    tail: Cell<*const Link>,
}

// SAFETY: the cells hold plain pointers and are only touched while `LOCK` is held (module
// doc), so moving or sharing a `Resource` between threads races on nothing.
unsafe impl Send for Resource {}
// SAFETY: as for `Send` above: every access to the cells happens under `LOCK`.
unsafe impl Sync for Resource {}

/// One resource's entry for one request.
struct Link {
    prev: Cell<*const Link>,
    next: Cell<*const Link>,
    triggered: Cell<bool>,
    exclusive: bool,
    req: *const Request,
}

/// The part of a request that lives on the requesting thread's stack.
struct Request {
    /// Links not yet triggered. Written only under `LOCK`; the waiter reads it without.
    pending: AtomicUsize,
    /// The thread to unpark when `pending` reaches 0 (set only when it has to wait).
    waiter: Cell<Option<Thread>>,
}

/// Proof that `LOCK` is held; follows queue pointers.
struct Locked<'g> {
    _guard: MutexGuard<'g, ()>,
}

impl Locked<'_> {
    fn lock() -> Self {
        Locked {
            _guard: LOCK.lock().unwrap_or_else(PoisonError::into_inner),
        }
    }

    /// The link at `p`, a non-null pointer read from a queue field while this guard is held.
    fn link(&self, p: *const Link) -> &Link {
        debug_assert!(!p.is_null());
        // SAFETY: `LOCK` is held (`self`), and under it a non-null queue pointer names a live
        // link (module doc); the borrow ends with the guard, before any unlink that is not
        // ours.
        unsafe { &*p }
    }

    /// Marks `link` triggered (if it was not) and counts it off its request; a request with
    /// no link left to trigger has its waiter moved to `wake`.
    fn trigger(&self, link: &Link, wake: &mut SmallVec<[Thread; 4]>) {
        if link.triggered.replace(true) {
            return;
        }
        // SAFETY: `link` is queued and `LOCK` is held, so its request is alive (module doc).
        let req = unsafe { &*link.req };
        // Relaxed: `pending` only changes under `LOCK`, which orders it for us.
        let left = req.pending.load(Ordering::Relaxed) - 1;
        if left == 0 {
            // Taken before the count is published: once the waiter sees 0 it may return and
            // free the request; the thread handle we keep is our own.
            if let Some(t) = req.waiter.take() {
                wake.push(t);
            }
            // Release: pairs with the waiter's Acquire load, so it sees what the previous
            // holders did before releasing.
            req.pending.store(0, Ordering::Release);
        } else {
            // Relaxed: nobody acts on a non-zero count but the waiter's re-check.
            req.pending.store(left, Ordering::Relaxed);
        }
    }

    /// Appends `link` to `res`'s queue; true when it is triggered at once.
    fn enqueue(&self, res: &Resource, link: &Link) -> bool {
        let tail = res.tail.get();
        let now = if tail.is_null() {
            true
        } else {
            let last = self.link(tail);
            // The last link is shared and triggered: every link ahead of it is shared.
            !link.exclusive && !last.exclusive && last.triggered.get()
        };
        link.triggered.set(now);
        link.prev.set(tail);
        link.next.set(ptr::null());
        if tail.is_null() {
            res.head.set(link);
        } else {
            self.link(tail).next.set(link);
        }
        res.tail.set(link);
        now
    }

    /// Removes the triggered `link` from `res`'s queue and triggers what that enables.
    fn unlink(&self, res: &Resource, link: &Link, wake: &mut SmallVec<[Thread; 4]>) {
        let (prev, next) = (link.prev.get(), link.next.get());
        if prev.is_null() {
            res.head.set(next);
        } else {
            self.link(prev).next.set(next);
        }
        if next.is_null() {
            res.tail.set(prev);
        } else {
            self.link(next).prev.set(prev);
        }
        // Only a departing head with someone behind it can trigger anything (module doc).
        if !prev.is_null() || next.is_null() {
            return;
        }
        let first = self.link(next);
        if first.exclusive {
            self.trigger(first, wake);
        } else if link.exclusive {
            let mut it = next;
            while !it.is_null() {
                let l = self.link(it);
                if l.exclusive {
                    break;
                }
                self.trigger(l, wake);
                it = l.next.get();
            }
        }
    }
}

/// Releases a granted request's links when dropped (also when `f` panics).
struct Held<'a> {
    set: &'a [(Arc<Resource>, bool)],
    links: Vec<Link>,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let mut wake = SmallVec::new();
        let locked = Locked::lock();
        for ((res, _), link) in self.set.iter().zip(&self.links) {
            locked.unlink(res, link, &mut wake);
        }
        drop(locked);
        for t in wake {
            t.unpark();
        }
    }
}

/// The seed's global-mutex design, plain (see the module doc).
pub struct SeedMinimal;

impl Peer for SeedMinimal {
    const NAME: &'static str = "seed-minimal";
    type Res = Arc<Resource>;
    type Set = Vec<(Arc<Resource>, bool)>;

    fn resource() -> Self::Res {
        Arc::new(Resource {
            head: Cell::new(ptr::null()),
            tail: Cell::new(ptr::null()),
        })
    }

    /// The entries in the given order, duplicates merged (exclusive wins).
    fn set(entries: &[(&Self::Res, bool)]) -> Self::Set {
        let mut v: Vec<(Arc<Resource>, bool)> = Vec::with_capacity(entries.len());
        for &(r, x) in entries {
            match v.iter_mut().find(|(s, _)| Arc::ptr_eq(s, r)) {
                Some(e) => e.1 |= x,
                None => v.push((r.clone(), x)),
            }
        }
        v
    }

    #[inline]
    fn with<R>(set: &Self::Set, f: impl FnOnce() -> R) -> R {
        // Declared before `held`, so it outlives the links that point to it.
        let req = Request {
            pending: AtomicUsize::new(0),
            waiter: Cell::new(None),
        };
        // The request's one allocation.
        let links: Vec<Link> = set
            .iter()
            .map(|&(_, exclusive)| Link {
                prev: Cell::new(ptr::null()),
                next: Cell::new(ptr::null()),
                triggered: Cell::new(false),
                exclusive,
                req: &req,
            })
            .collect();
        let held = Held { set, links };
        let locked = Locked::lock();
        let mut pending = 0;
        for ((res, _), link) in set.iter().zip(&held.links) {
            pending += usize::from(!locked.enqueue(res, link));
        }
        if pending != 0 {
            // Relaxed: read by releasers under `LOCK` (which orders it) and by this thread.
            req.pending.store(pending, Ordering::Relaxed);
            req.waiter.set(Some(thread::current()));
            drop(locked);
            // Acquire: pairs with the Release store of 0 by the releaser that triggered our
            // last link. `park` may return spuriously, hence the loop.
            while req.pending.load(Ordering::Acquire) != 0 {
                thread::park();
            }
        } else {
            drop(locked);
        }
        let r = f();
        drop(held);
        r
    }
}
