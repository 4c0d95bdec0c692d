//! [`Guard`] (a held set) and [`Pending`] (an async request not yet granted).

use crate::delivery::{self, flush};
use crate::engine::{Engine, Entry, Holder};
use smallvec::SmallVec;
use std::fmt;
use std::mem::ManuallyDrop;
use std::sync::Arc;

/// A granted, held set. Dropping it releases the set (the seed's
/// `kds_resource_set_release`), which may grant other sets and run their direct callbacks on
/// this thread.
///
/// Made by [`wait`](crate::ResourceSet::wait), [`wait_timeout`](crate::ResourceSet::wait_timeout),
/// [`wait_interruptible`](crate::ResourceSet::wait_interruptible),
/// [`try_acquire`](crate::ResourceSet::try_acquire), handed to an
/// [`on_grant`](crate::ResourceSet::on_grant) callback, or the output of an
/// [`acquire`](crate::ResourceSet::acquire) future. It owns handles of its resources, is
/// `Send` and `Sync`, and may be released on any thread.
///
/// ```
/// use kds::{Resource, ResourceSet};
///
/// let buffer = Resource::new();
/// let guard = ResourceSet::new().exclusive(&buffer).wait()?;
/// let renderer = std::thread::spawn(move || {
///     // ... render ...
///     guard.release(); // same as drop(guard)
/// });
/// renderer.join().unwrap();
/// assert!(ResourceSet::new().exclusive(&buffer).try_acquire().is_ok());
/// # Ok::<(), kds::Error>(())
/// ```
#[must_use = "dropping a Guard releases the set at once"]
pub struct Guard<E: Engine> {
    held: ManuallyDrop<Held<E>>,
}

/// How a guard holds its set. `repr(usize)`: a word-sized tag keeps the fast entries
/// 8-aligned, so moving a guard copies aligned words (as in `borrowed.rs`; measured 5-20%
/// off the async paths, `paths` bench).
#[repr(usize)]
enum Held<E: Engine> {
    /// Granted through the queues.
    Queued(Arc<E::Request>),
    /// Taken on the engine's fast path (`Engine::try_fast`) by a sync or an async set: the
    /// resources themselves.
    Fast(SmallVec<[Entry<E>; 4]>, Holder),
}

impl<E: Engine> Guard<E> {
    /// Wraps a request the engine has granted. Exactly one guard is made per grant.
    pub(crate) fn from_granted(req: Arc<E::Request>) -> Self {
        Guard {
            held: ManuallyDrop::new(Held::Queued(req)),
        }
    }

    /// Wraps a set taken by `Engine::try_fast` for `holder`.
    pub(crate) fn from_fast(entries: SmallVec<[Entry<E>; 4]>, holder: Holder) -> Self {
        Guard {
            held: ManuallyDrop::new(Held::Fast(entries, holder)),
        }
    }

    /// Releases the set now (same as dropping the guard). Sets waiting behind it may be
    /// granted by this call; their direct callbacks then run on this thread before it returns.
    pub fn release(self) {
        drop(self);
    }
}

impl<E: Engine> Drop for Guard<E> {
    fn drop(&mut self) {
        // SAFETY: `held` is taken once, here, and never used again.
        match unsafe { ManuallyDrop::take(&mut self.held) } {
            Held::Queued(req) => {
                E::release(&req);
                drop(req);
                flush();
            }
            Held::Fast(entries, holder) => {
                if E::release_fast(&entries, holder) {
                    flush();
                }
            }
        }
    }
}

/// A held set that borrows its [`ResourceSet`](crate::generic::ResourceSet), from
/// [`ResourceSet::lock`](crate::generic::ResourceSet::lock): like [`Guard`], but on the
/// uncontended fast path it takes no reference counts at all (the set's own handles keep the
/// resources alive), which makes it the cheapest way to hold a set for a scope. Dropping it
/// releases the set.
///
/// ```
/// use kds::{Resource, ResourceSet};
///
/// let buffer = Resource::new();
/// let set = ResourceSet::new().exclusive(&buffer);
/// {
///     let _held = set.lock()?;
///     assert!(set.try_acquire().is_err());
/// } // released here
/// assert!(set.try_acquire().is_ok());
/// # Ok::<(), kds::Error>(())
/// ```
#[must_use = "dropping a SetGuard releases the set at once"]
pub struct SetGuard<'a, E: Engine> {
    held: BorrowedHeld<'a, E>,
}

enum BorrowedHeld<'a, E: Engine> {
    /// Taken on the fast path: the set's own entries.
    Fast(&'a [Entry<E>]),
    /// Granted through the queues: an ordinary guard (released by its own `Drop`).
    Queued { _guard: Guard<E> },
}

impl<'a, E: Engine> SetGuard<'a, E> {
    pub(crate) fn fast(entries: &'a [Entry<E>]) -> Self {
        SetGuard {
            held: BorrowedHeld::Fast(entries),
        }
    }

    pub(crate) fn queued(guard: Guard<E>) -> Self {
        SetGuard {
            held: BorrowedHeld::Queued { _guard: guard },
        }
    }

    /// Releases the set now (same as dropping the guard).
    pub fn release(self) {
        drop(self);
    }
}

impl<E: Engine> Drop for SetGuard<'_, E> {
    fn drop(&mut self) {
        // A queued guard releases itself when the field is dropped after this.
        if let BorrowedHeld::Fast(entries) = self.held {
            if E::release_fast(entries, Holder::Sync) {
                flush();
            }
        }
    }
}

impl<E: Engine> fmt::Debug for SetGuard<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SetGuard")
            .field("engine", &E::NAME)
            .finish_non_exhaustive()
    }
}

impl<E: Engine> fmt::Debug for Guard<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("engine", &E::NAME)
            .finish_non_exhaustive()
    }
}

/// An async request whose callback has not necessarily run yet (the seed's
/// `kds_async_waitall` result).
///
/// Dropping it does not cancel the request: the callback still runs when the set is granted.
/// Call [`cancel`](Pending::cancel) to withdraw it.
///
/// ```
/// use kds::{Dispatch, Resource, ResourceSet};
///
/// let buffer = Resource::new();
/// let held = ResourceSet::new().exclusive(&buffer).wait()?;
/// let pending = ResourceSet::new().shared(&buffer).on_grant(Dispatch::Direct, |guard| drop(guard))?;
/// assert!(!pending.is_granted());
/// // The flip is no longer wanted: withdraw it. `true`: the callback will never run.
/// assert!(pending.cancel());
/// drop(held);
/// # Ok::<(), kds::Error>(())
/// ```
pub struct Pending<E: Engine> {
    /// The queued request; `None` when the set was granted at once on the fast path and its
    /// direct callback has already run (no request was ever made).
    pub(crate) req: Option<Arc<E::Request>>,
}

impl<E: Engine> Pending<E> {
    /// Withdraws the request. `true`: the callback will never run and nothing is left queued
    /// (the closure is dropped now). `false`: too late, the set was or will be granted and
    /// the callback runs (or ran); the callback's guard then releases the set as usual. Safe
    /// against a grant racing on another thread (spec rule 5): exactly one of the two happens.
    /// Sets that waited behind the cancelled one may be granted by this call.
    ///
    /// ```
    /// use kds::{Dispatch, Resource, ResourceSet};
    ///
    /// let buffer = Resource::new();
    /// // Free: the direct callback runs inside `on_grant`, so cancelling comes too late.
    /// let p = ResourceSet::new().exclusive(&buffer).on_grant(Dispatch::Direct, drop)?;
    /// assert!(p.is_granted());
    /// assert!(!p.cancel());
    /// # Ok::<(), kds::Error>(())
    /// ```
    pub fn cancel(self) -> bool {
        let Some(req) = self.req else {
            return false; // granted at once, the callback has run
        };
        let cancelled = E::cancel(&req);
        if cancelled {
            // SAFETY: `cancel` returned true: the grant will never be delivered.
            unsafe { delivery::withdrawn::<E>(&req) };
        } else {
            flush();
        }
        cancelled
    }

    /// Whether the set has been granted (its callback started or is queued to start). A
    /// snapshot: `false` may turn `true` at any moment on another thread.
    pub fn is_granted(&self) -> bool {
        match &self.req {
            Some(req) => E::is_granted(req),
            None => true, // granted at once
        }
    }
}

impl<E: Engine> fmt::Debug for Pending<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pending")
            .field("engine", &E::NAME)
            .field("granted", &self.is_granted())
            .finish()
    }
}
