//! `wait-die`: the multi-lock the Linux kernel uses where KDS would have gone: one `ww_mutex`
//! per buffer (a `dma_resv` lock is a ww_mutex) taken under an acquire context, with the
//! `drm_exec` retry loop around them. Written from the description in the kernel's
//! `Documentation/locking/ww-mutex-design.rst`, not from its code.
//!
//! # Algorithm
//!
//! - Every lock is exclusive: ww_mutexes have no shared mode, so a set's shared entries are
//!   taken exclusively too (that is what dma_resv users get). Sets keep the order they were
//!   given, unsorted: not needing a global lock order is the point of ww_mutexes.
//! - `with` starts an acquire context: a ticket from one global increasing counter
//!   ([`STAMP`], the kernel's per-class `stamp`). A smaller ticket is older. The context keeps
//!   its ticket across retries, so it only ever gets older relative to newcomers.
//! - It locks the set's entries in order. A free lock is taken with one CAS. A lock the
//!   context already holds is skipped (the kernel's `-EALREADY`, which `drm_exec` ignores). A
//!   lock held by another context:
//!   - held by a *younger* one: wait until it is released (the older waits);
//!   - held by an *older* one while this context holds at least one lock: **die** — unlock
//!     everything, wait until that contended lock is free and take it first (the kernel's
//!     `ww_mutex_lock_slow`), then run through the set again. A context holding nothing has
//!     no reason to die and just waits (as in the kernel).
//!
//!   A waiter re-checks the holder each time the lock is released and someone else got it
//!   first, so it never keeps waiting, while holding locks, on an older holder.
//! - Release unlocks every lock the context took.
//!
//! No deadlock: a context holding locks waits only for a younger one, so every wait edge
//! between lock holders points from older to younger and no cycle can form; a context that
//! holds nothing blocks nobody. The oldest context never dies, so some set always gets
//! through.
//!
//! # A lock
//!
//! `state` is 0 when free, else the holder's ticket, with [`WAITERS`] set while a thread sleeps
//! on the lock's condition variable. Locking is one CAS, unlocking one swap; only when the
//! swap finds `WAITERS` does the unlocker take the sleep mutex and wake the sleepers. A
//! sleeper sets `WAITERS` (by a CAS from the holder it judged) while holding the sleep mutex,
//! which it gives up only inside `Condvar::wait`, so an unlock cannot slip in between and its
//! wake-up cannot be lost. Sleeping is a `parking_lot` `Mutex` + `Condvar` (a futex-style
//! sleep, as the kernel mutex under a ww_mutex does after its spinning).

use crate::peers::Peer;
use parking_lot::{Condvar, Mutex};
use smallvec::SmallVec;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The next acquire context's ticket (0 means "free" in a lock's state, so tickets start at 1).
static STAMP: AtomicU64 = AtomicU64::new(1);

/// In a lock's `state`: a thread sleeps (or is about to) on the lock's condition variable.
const WAITERS: u64 = 1 << 63;

/// One wound/wait mutex, in wait-die mode.
pub struct WwMutex {
    /// 0, or the holder's ticket | [`WAITERS`].
    state: AtomicU64,
    sleep: Mutex<()>,
    cv: Condvar,
}

/// What `lock` did.
enum Lock {
    /// Taken now.
    Acquired,
    /// Already held by this context.
    Already,
    /// Held by an older context while this one holds locks: back off.
    Die,
}

impl WwMutex {
    #[inline]
    fn lock(&self, stamp: u64, holds_locks: bool) -> Lock {
        // Acquire: pairs with the Release swap of the last unlock, so the new holder sees
        // what the previous one did. Relaxed on failure: the value is only inspected.
        match self
            .state
            .compare_exchange(0, stamp, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => Lock::Acquired,
            Err(s) if s & !WAITERS == stamp => Lock::Already,
            Err(_) => self.lock_slow(stamp, holds_locks),
        }
    }

    #[cold]
    fn lock_slow(&self, stamp: u64, holds_locks: bool) -> Lock {
        let mut guard = self.sleep.lock();
        loop {
            // Relaxed: a stale value only costs a failed CAS below or a needless retry.
            let s = self.state.load(Ordering::Relaxed);
            if s == 0 {
                // Acquire: as in `lock`.
                if self
                    .state
                    .compare_exchange(0, stamp, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return Lock::Acquired;
                }
                continue;
            }
            let holder = s & !WAITERS;
            if holder == stamp {
                return Lock::Already;
            }
            if holder < stamp && holds_locks {
                return Lock::Die;
            }
            // Relaxed: the flag publishes no data; the unlocker's swap reads the latest
            // state whatever the ordering, and the sleep mutex orders the wake-up.
            if s & WAITERS == 0
                && self
                    .state
                    .compare_exchange(s, s | WAITERS, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            self.cv.wait(&mut guard);
        }
    }

    #[inline]
    fn unlock(&self) {
        // Release: pairs with the next holder's Acquire CAS.
        if self.state.swap(0, Ordering::Release) & WAITERS != 0 {
            self.wake();
        }
    }

    #[cold]
    fn wake(&self) {
        let _guard = self.sleep.lock();
        self.cv.notify_all();
    }
}

/// The locks an acquire context holds; unlocks them when dropped (also when `f` panics).
struct Held<'a>(SmallVec<[&'a WwMutex; 8]>);

impl Held<'_> {
    fn unlock_all(&mut self) {
        for l in self.0.drain(..) {
            l.unlock();
        }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.unlock_all();
    }
}

/// ww_mutexes in wait-die mode with the `drm_exec` retry loop (see the module doc).
pub struct WaitDie;

impl Peer for WaitDie {
    const NAME: &'static str = "wait-die";
    type Res = Arc<WwMutex>;
    /// The entries in the given order; the access mode is dropped (all exclusive).
    type Set = Vec<Arc<WwMutex>>;

    fn resource() -> Self::Res {
        Arc::new(WwMutex {
            state: AtomicU64::new(0),
            sleep: Mutex::new(()),
            cv: Condvar::new(),
        })
    }

    fn set(entries: &[(&Self::Res, bool)]) -> Self::Set {
        entries.iter().map(|&(r, _)| r.clone()).collect()
    }

    #[inline]
    fn with<R>(set: &Self::Set, f: impl FnOnce() -> R) -> R {
        // Relaxed: a ticket only has to be unique and ordered; it publishes nothing.
        let stamp = STAMP.fetch_add(1, Ordering::Relaxed);
        let mut held = Held(SmallVec::new());
        let mut contended: Option<&WwMutex> = None;
        'retry: loop {
            if let Some(l) = contended.take() {
                // The slow lock: holding nothing, this context waits and cannot die.
                let got = l.lock(stamp, false);
                debug_assert!(matches!(got, Lock::Acquired));
                held.0.push(l);
            }
            for l in set {
                match l.lock(stamp, !held.0.is_empty()) {
                    Lock::Acquired => held.0.push(l),
                    Lock::Already => {}
                    Lock::Die => {
                        held.unlock_all();
                        contended = Some(l);
                        continue 'retry;
                    }
                }
            }
            break;
        }
        let r = f();
        drop(held);
        r
    }
}
