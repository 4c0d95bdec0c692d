//! [`Pending`]: an async request whose callback has not necessarily run yet.

use crate::delivery::{self, flush};
use crate::engine::Engine;
use std::fmt;
use std::sync::Arc;

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
    req: Option<Arc<E::Request>>,
}

impl<E: Engine> Pending<E> {
    /// A request enqueued and not cancelled.
    pub(crate) fn queued(req: Arc<E::Request>) -> Self {
        Pending { req: Some(req) }
    }

    /// A set granted at once, whose direct callback has run (no request made).
    pub(crate) fn ran() -> Self {
        Pending { req: None }
    }

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
            unsafe { delivery::withdrawn(&*req) };
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
