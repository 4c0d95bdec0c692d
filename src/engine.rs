//! The interface between the public front end and the two engines that implement KDS.
//!
//! The front end ([`ResourceSet`](crate::ResourceSet), [`Guard`](crate::Guard), waiting,
//! callbacks, futures) is written once, generic over [`Engine`]. The lock-free engine
//! ([`LockFree`](crate::LockFree)) and the global-mutex reference
//! ([`reference::Reference`](crate::reference::Reference)) implement it; `kds::*` and
//! `kds::reference::*` are the same front end over each.

use crate::delivery::{Deliver, Waiter};
use crate::{Access, Error, Locked};
use std::fmt;
use std::sync::Arc;

/// What kind of client made a set: a blocking (*sync*) one, or an async one with its policy
/// for sync-locked resources (spec rule 8). The front end makes it for the engines; users see
/// it only through [`Engine`].
///
/// ```
/// use kds::{Locked, SetKind};
/// let blocking = SetKind { sync: true, policy: Locked::Wait }; // what `wait` makes
/// assert_ne!(blocking, SetKind { sync: false, policy: Locked::Fail });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetKind {
    /// A sync set (made by `wait*` or `try_acquire`): its links make resources sync-locked.
    pub sync: bool,
    /// The locked policy; always `Locked::Wait` for a sync set.
    pub policy: Locked,
}

/// What an enqueue did with the request itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// Queued; its grant (now or later) is delivered through the delivery queue.
    Queued,
    /// Granted by the enqueue itself; the caller delivers it.
    GrantedNow,
}

/// One resource of a set, as the engines see it: the resource's state and the access mode.
pub type Entry<E> = (Arc<<E as Engine>::Core>, Access);

/// A set entry as the fast path ([`Engine::try_fast`]) reads it: the resource's state and the
/// access mode. A `ResourceSet`'s entries own their handles; a `BorrowedSet`'s borrow them,
/// packed in one word so that the set is cheap to move.
pub trait SetEntry<Core> {
    /// The resource's state.
    fn core(&self) -> &Arc<Core>;
    /// The access mode.
    fn access(&self) -> Access;
}

impl<Core> SetEntry<Core> for (Arc<Core>, Access) {
    #[inline]
    fn core(&self) -> &Arc<Core> {
        &self.0
    }
    #[inline]
    fn access(&self) -> Access {
        self.1
    }
}

/// An implementation of the KDS rules (`shared/kds-spec.md`). Not implementable outside kds:
/// its two implementations are [`LockFree`](crate::LockFree) (behind `kds::*`) and
/// [`reference::Reference`](crate::reference::Reference) (behind `kds::reference::*`). Name it
/// to write code that runs on either, through [`generic`](crate::generic):
///
/// ```
/// use kds::generic::{Resource, ResourceSet};
/// use kds::Engine;
///
/// fn swap_buffers<E: Engine>(front: &Resource<E>, back: &Resource<E>) -> Result<(), kds::Error> {
///     let both = ResourceSet::new().exclusive(front).exclusive(back);
///     let _held = both.lock()?; // borrows `both`
///     Ok(())
/// }
/// swap_buffers::<kds::LockFree>(&Resource::new(), &Resource::new())?;
/// swap_buffers::<kds::reference::Reference>(&Resource::new(), &Resource::new())?;
/// # Ok::<(), kds::Error>(())
/// ```
///
/// Contract (for the engines): every grant is reported exactly once, by pushing the request onto the calling
/// thread's delivery queue (`delivery::push`); engines never run user code.
pub trait Engine: Sized + Send + Sync + 'static + private::Sealed {
    /// Per-resource state, shared by every handle of one resource.
    type Core: Send + Sync + Default + 'static;
    /// One request (one set): its links, grant state and waiter.
    type Request: Deliver + Send + Sync + 'static;

    /// Short name used in reports and `Debug` output.
    const NAME: &'static str;

    /// Builds a request for `entries` (sorted by `order_key`, no duplicates): the only heap
    /// allocation of a request. Enqueues nothing.
    fn new_request(
        entries: &[Entry<Self>],
        kind: SetKind,
        waiter: Waiter<Self>,
    ) -> Arc<Self::Request>;

    /// Places all links of the request at once (spec rule 1), then triggers what the trigger
    /// rule allows. `Err(Busy)` (policy Fail) or `Err(Overflow)` leave nothing queued. Call at
    /// most once per request.
    ///
    /// `Ok(Enqueued::GrantedNow)`: the request itself was granted by this call and its
    /// delivery was *not* queued; the caller delivers it (`delivery::enqueue` does).
    fn enqueue(req: &Arc<Self::Request>) -> Result<Enqueued, Error>;

    /// Releases a granted request: removes all its links (spec rule 6). Call exactly once,
    /// and only after the request was granted.
    fn release(req: &Arc<Self::Request>);

    /// Cancels an enqueued request: `true` if its grant will never be delivered (its links are
    /// gone), `false` if it was or will be granted (spec rule 5).
    fn cancel(req: &Arc<Self::Request>) -> bool;

    /// Whether [`Engine::try_fast`] can ever succeed.
    const FAST_PATH: bool = false;

    /// The fast path (spec-wise a set enqueued and granted at once): takes every entry without
    /// queueing anything if each resource's queue is empty and no holder conflicts, all or
    /// nothing. `holder` says whether the set is sync (it then makes its resources
    /// sync-locked, rule 8) or async (Wait policy only). `true`: held; release with
    /// [`Engine::release_fast`]. Engines without a fast path (the reference) say `false`.
    fn try_fast<T: SetEntry<Self::Core>>(entries: &[T], holder: Holder) -> bool {
        let _ = (entries, holder);
        false
    }

    /// Releases a set taken by [`Engine::try_fast`] with the same `holder`; `true` if it may
    /// have granted queued sets (their deliveries are then queued on this thread, for the
    /// caller to flush).
    fn release_fast<T: SetEntry<Self::Core>>(entries: &[T], holder: Holder) -> bool {
        let _ = (entries, holder);
        unreachable!("release_fast without a fast path");
    }

    /// Whether the engine has decided to grant the request.
    fn is_granted(req: &Self::Request) -> bool;

    /// The front end's waiter stored in the request.
    fn waiter(req: &Self::Request) -> &Waiter<Self>;

    /// The fixed order in which a set's resources are installed (rule 1's deadlock freedom
    /// for helping rests on it): the core's address, or a creation counter under loom, whose
    /// models must replay identically and cannot depend on allocation addresses.
    fn order_key(core: &Arc<Self::Core>) -> usize {
        Arc::as_ptr(core) as usize
    }

    /// `Debug` output for a resource.
    fn fmt_core(core: &Self::Core, f: &mut fmt::Formatter<'_>) -> fmt::Result;
}

/// Who takes or gives back a fast hold (`Engine::try_fast`): a sync (blocking) set or an
/// async one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holder {
    /// A blocking set: its hold makes the resource sync-locked (rule 8).
    Sync,
    /// An async set with the Wait policy (a direct callback's or a future's): its hold does
    /// not.
    Async,
}

pub(crate) mod private {
    /// Seals [`Engine`](super::Engine): only this crate's engines implement it.
    pub trait Sealed {}
}
