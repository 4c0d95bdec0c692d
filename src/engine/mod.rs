//! The engine interface: what the front end asks of an implementation of the KDS rules, and
//! the one public name of it, the sealed [`Engine`] marker.
//!
//! The front end (`ResourceSet`, `Guard`, waiting, callbacks, futures) is written once,
//! generic over [`Engine`]. The lock-free engine ([`LockFree`](crate::LockFree)) and the
//! global-mutex reference ([`reference::Reference`](crate::reference::Reference)) implement
//! it; `kds::*` and `kds::reference::*` are the same front end over each.
//!
//! This interface names no front-end type. A request is the engine's own type; its grant is
//! handed back as that request (`Enqueued::GrantedNow`, or pushed onto the delivery queue of
//! `crate::delivery`, which sits beside this layer), and the front end makes the guard. The
//! operations users could not call correctly live in the crate-private [`Ops`] trait, and
//! the two that end a hold are `unsafe fn`s with their contract written down.

mod entry;

pub(crate) use entry::Entry;

use crate::access::{Access, Locked};
use crate::delivery::{Waited, Waiter};
use crate::error::Error;
use std::fmt;
use std::sync::Arc;

/// The most resources one set may name (after merging duplicates); a request for a larger set
/// is refused with [`Error::BadSet`], with nothing queued.
///
/// ```
/// use kds::{Error, Resource, ResourceSet, MAX_SET_LEN};
///
/// let many: Vec<Resource> = (0..MAX_SET_LEN + 1).map(|_| Resource::new()).collect();
/// let set = many.iter().fold(ResourceSet::new(), |set, r| set.shared(r));
/// assert!(matches!(set.try_acquire(), Err(Error::BadSet(_))));
/// ```
pub const MAX_SET_LEN: usize = 1 << 16;

/// An implementation of the KDS rules (`shared/kds-spec.md`), as a type-level marker. It has
/// two implementations and no others: [`LockFree`](crate::LockFree) (behind `kds::*`) and
/// [`reference::Reference`](crate::reference::Reference) (behind `kds::reference::*`). Name
/// it to write code that runs on either, through [`generic`](crate::generic):
///
/// ```
/// use kds::generic::{Resource, ResourceSet};
/// use kds::Engine;
///
/// fn swap_buffers<E: Engine>(front: &Resource<E>, back: &Resource<E>) -> Result<(), kds::Error> {
///     let _held = ResourceSet::new().exclusive(front).exclusive(back).wait()?;
///     Ok(())
/// }
/// swap_buffers::<kds::LockFree>(&Resource::new(), &Resource::new())?;
/// swap_buffers::<kds::reference::Reference>(&Resource::new(), &Resource::new())?;
/// assert_eq!(<kds::LockFree as kds::Engine>::NAME, "lock-free");
/// # Ok::<(), kds::Error>(())
/// ```
pub trait Engine: sealed::Ops {
    /// Short name used in reports and `Debug` output.
    const NAME: &'static str;
}

pub(crate) use sealed::Ops;

/// What kind of client made a set: a blocking (*sync*) one, or an async one with its policy
/// for sync-locked resources (spec rule 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SetKind {
    /// A sync set (made by a blocking request): its links make resources sync-locked.
    pub(crate) sync: bool,
    /// The locked policy; always `Locked::Wait` for a sync set.
    pub(crate) policy: Locked,
}

impl SetKind {
    /// A blocking request's set.
    pub(crate) const SYNC: SetKind = SetKind {
        sync: true,
        policy: Locked::Wait,
    };

    /// An async request's set with `policy`.
    pub(crate) fn asynchronous(policy: Locked) -> SetKind {
        SetKind {
            sync: false,
            policy,
        }
    }
}

/// What an enqueue did with the request itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Enqueued {
    /// Queued; its grant (now or later) is delivered through the delivery queue.
    Queued,
    /// Granted by the enqueue itself; the caller delivers it (or holds it, for a sync set).
    GrantedNow,
}

/// Who takes or gives back a fast hold (`Ops::try_fast`): a sync (blocking) set or an async
/// one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Holder {
    /// A blocking set: its hold makes the resource sync-locked (rule 8).
    Sync,
    /// An async set with the Wait policy (a direct callback's or a future's): its hold does
    /// not.
    Async,
}

impl Holder {
    /// As a byte, to keep in a guard's header word (`entries.rs`).
    #[inline(always)]
    pub(crate) fn to_byte(self) -> u8 {
        match self {
            Holder::Sync => 0,
            Holder::Async => 1,
        }
    }

    /// Back from [`to_byte`](Self::to_byte).
    #[inline(always)]
    pub(crate) fn from_byte(byte: u8) -> Holder {
        if byte == 1 {
            Holder::Async
        } else {
            Holder::Sync
        }
    }
}

// The operations' parameter types are crate-private, and so is this module: `Ops` is
// unnameable outside the crate, so nobody else can call or implement it, even though the
// compiler counts its items as reachable through `Engine` (hence the allow, here and on the
// two impls).
#[allow(private_interfaces, private_bounds)]
mod sealed {
    use super::*;

    /// The engine operations (crate-private: [`Engine`] is their sealed public face).
    ///
    /// Contract: every grant is reported exactly once, by handing the request back
    /// (`Enqueued::GrantedNow`) or by pushing it onto the calling thread's delivery queue
    /// (`delivery::push`); engines never run user code.
    pub trait Ops: Sized + Send + Sync + 'static {
        /// Per-resource state, shared by every handle of one resource.
        type Core: Send + Sync + Default + 'static;
        /// One request (one set): its links, grant state and waiter.
        type Request: Waited;

        /// Whether [`try_fast`](Ops::try_fast) can ever succeed.
        const FAST_PATH: bool = false;

        /// Builds a request for `entries` (in set order, no duplicates, at most
        /// [`MAX_SET_LEN`]): the only heap allocation of a request. It owns a strong count of
        /// each resource. Enqueues nothing.
        fn new_request(
            entries: &[Entry<'_, Self::Core>],
            kind: SetKind,
            waiter: Waiter<Self::Request>,
        ) -> Arc<Self::Request>;

        /// Places all links of the request at once (spec rule 1), then triggers what the
        /// trigger rule allows. `Err(Busy)` (policy Fail) or `Err(Overflow)` leave nothing
        /// queued. Call at most once per request.
        ///
        /// `Ok(Enqueued::GrantedNow)`: the request itself was granted by this call and its
        /// delivery was *not* queued; the caller delivers it.
        fn enqueue(req: &Arc<Self::Request>) -> Result<Enqueued, Error>;

        /// Releases a granted request: removes all its links (spec rule 6).
        ///
        /// # Safety
        ///
        /// `req` was granted, and this is its only release.
        unsafe fn release(req: &Arc<Self::Request>);

        /// Cancels an enqueued request: `true` if its grant will never be delivered (its links
        /// are gone), `false` if it was or will be granted (spec rule 5).
        fn cancel(req: &Arc<Self::Request>) -> bool;

        /// Whether the engine has decided to grant the request.
        fn is_granted(req: &Self::Request) -> bool;

        /// The fast path (spec-wise a set enqueued and granted at once): takes every entry
        /// without queueing anything if each resource's queue is empty and no holder
        /// conflicts, all or nothing. `holder` says whether the set is sync (it then makes its
        /// resources sync-locked, rule 8) or async (Wait policy only). `true`: held; release
        /// with [`release_fast`](Ops::release_fast). Engines without a fast path (the
        /// reference) say `false`. `entries` are in set order.
        #[inline]
        fn try_fast(entries: &[Entry<'_, Self::Core>], holder: Holder) -> bool {
            let _ = (entries, holder);
            false
        }

        /// Releases a set taken by [`try_fast`](Ops::try_fast); `true` if it may have granted
        /// queued sets (their deliveries are then queued on this thread, for the caller to
        /// flush).
        ///
        /// # Safety
        ///
        /// `entries` and `holder` are those of a successful `try_fast`, and this is that
        /// hold's only release.
        unsafe fn release_fast(entries: &[Entry<'_, Self::Core>], holder: Holder) -> bool {
            let _ = (entries, holder);
            unreachable!("release_fast without a fast path");
        }

        /// The fixed order in which a set's resources are installed (rule 1's deadlock
        /// freedom for helping rests on it): the state's address, or a creation counter under
        /// loom, whose models must replay identically and cannot depend on allocation
        /// addresses. Distinct resources have distinct keys.
        #[inline]
        fn order_key(core: &Self::Core) -> usize {
            core as *const Self::Core as usize
        }

        /// `Debug` output for a resource.
        fn fmt_core(core: &Self::Core, f: &mut fmt::Formatter<'_>) -> fmt::Result;
    }
}

/// A set's entries for `Debug` output: each resource's address and access mode.
pub(crate) fn debug_entries<C>(entries: &[Entry<'_, C>]) -> Vec<(*const C, Access)> {
    entries
        .iter()
        .map(|entry| (entry.core() as *const C, entry.access()))
        .collect()
}
