//! # kds: lock sets of shared resources, atomically, without deadlock
//!
//! A Rust take on ARM's 2012 *Kernel Dependency System* proposal for dri-devel: a GPU
//! driver and a display driver share image buffers, and each asks KDS for a **set** of
//! resources, each in **shared** or **exclusive** mode, and is told when *all* of them are
//! available, by blocking or by callback. Every resource keeps a FIFO queue; a set is
//! granted when all its queue entries are triggered; and the whole set is enqueued
//! atomically, so the lock-order deadlocks of taking locks one by one cannot happen.
//!
//! The original serialized everything through one global mutex. `kds::*` runs on a
//! lock-free engine: per-resource lock-free queues and a two-phase, descriptor-style
//! multi-resource enqueue with helping ([`LockFree`]). The global-mutex design is kept as
//! [`mod@reference`], with the same API, as the baseline for benchmarks and differential tests.
//!
//! ```
//! use kds::{Resource, ResourceSet, Dispatch};
//! use std::time::Duration;
//!
//! let frame = Resource::new();
//! let overlay = Resource::new();
//!
//! // The GPU renders into `frame` while reading `overlay`: a blocking (sync) request.
//! let render = ResourceSet::new().exclusive(&frame).shared(&overlay).wait()?;
//!
//! // The display wants to scan out `frame`: an async request, granted by callback.
//! let flips = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
//! let counter = flips.clone();
//! let pending = ResourceSet::new().shared(&frame).on_grant(Dispatch::Direct, move |guard| {
//!     counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
//!     drop(guard); // flip done: release
//! })?;
//! assert!(!pending.is_granted());
//!
//! drop(render); // the release grants the display's set; its direct callback runs right here
//! assert_eq!(flips.load(std::sync::atomic::Ordering::SeqCst), 1);
//!
//! // A waiter that gives up: nothing stays queued.
//! let held = ResourceSet::new().exclusive(&overlay).wait()?;
//! let err = ResourceSet::new().exclusive(&overlay).wait_timeout(Duration::from_millis(1));
//! assert_eq!(err.unwrap_err(), kds::Error::Timeout);
//! drop(held);
//! # Ok::<(), kds::Error>(())
//! ```
//!
//! The rules every engine obeys (FIFO per resource, the trigger rule, no lost wake-up,
//! exactly-once grants, the sync-locked policies) are those of the project's spec; see
//! `docs/design.md` for how the lock-free engine keeps them.

#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

mod access;
mod delivery;
mod engine;
mod error;
mod future;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod guard;
mod interrupt;
mod lockfree;
pub mod reference;
mod resource;
mod set;
mod sync;
mod worker;

pub use access::{Access, Locked};
pub use engine::{Engine, SetKind};
pub use error::Error;
pub use interrupt::Interrupt;
pub use lockfree::LockFree;
pub use set::MAX_SET_LEN;
pub use worker::{Dispatch, Worker};

/// A handle to one resource (lock-free engine); see [`generic::Resource`].
pub type Resource = resource::Resource<LockFree>;
/// A set of resources with access modes, to request together (lock-free engine).
pub type ResourceSet = set::ResourceSet<LockFree>;
/// A granted, held set; dropping it releases the set (lock-free engine).
pub type Guard = guard::Guard<LockFree>;
/// A held set borrowing its [`ResourceSet`], from [`ResourceSet::lock`] (lock-free engine).
pub type SetGuard<'a> = guard::SetGuard<'a, LockFree>;
/// An async request whose callback has not necessarily run yet (lock-free engine).
pub type Pending = guard::Pending<LockFree>;
/// The future returned by [`ResourceSet::acquire`] (lock-free engine).
pub type Acquire = future::Acquire<LockFree>;

/// The front-end types, generic over the [`Engine`]: `kds::Resource` is
/// `generic::Resource<LockFree>`, `kds::reference::Resource` is
/// `generic::Resource<reference::Reference>`. Write engine-generic code against these.
pub mod generic {
    pub use crate::future::Acquire;
    pub use crate::guard::{Guard, Pending, SetGuard};
    pub use crate::resource::Resource;
    pub use crate::set::ResourceSet;
}

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
