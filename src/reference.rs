//! The mutex reference: the seed's design, one global mutex over per-resource FIFO queues,
//! behind the same front end as `kds::*`.
//!
//! `kds::reference::*` has the same names and behaviour as `kds::*`, on the reference engine
//! ([`Reference`]). It is the baseline every benchmark compares against and the oracle of the
//! differential tests. A resource belongs to one engine: use reference resources with
//! reference sets.
//!
//! ```
//! use kds::reference::{Engine, Reference, Resource, ResourceSet, MAX_SET_LEN};
//!
//! let buffer = Resource::new(); // a reference-engine resource
//! let _g = ResourceSet::new().exclusive(&buffer).wait()?;
//! assert_eq!(<Reference as Engine>::NAME, "reference");
//! assert_eq!(MAX_SET_LEN, kds::MAX_SET_LEN);
//! kds::reference::flush_before_blocking(); // the same names as `kds::*`
//! # Ok::<(), kds::Error>(())
//! ```

pub use crate::global_mutex::Reference;
// The engine-independent names, so that `kds::reference::*` has every name of `kds::*`.
pub use crate::{
    flush_before_blocking, Access, CallbackScope, Dispatch, Engine, Error, Interrupt, Locked,
    UnparkOnInterrupt, Worker, MAX_SET_LEN,
};

/// [`crate::Resource`] on the reference engine.
pub type Resource = crate::resource::Resource<Reference>;
/// [`crate::ResourceSet`] on the reference engine.
pub type ResourceSet<'a> = crate::set::ResourceSet<'a, Reference>;
/// [`crate::Guard`] on the reference engine.
pub type Guard<'a> = crate::guard::Guard<'a, Reference>;
/// [`crate::Pending`] on the reference engine.
pub type Pending = crate::pending::Pending<Reference>;
/// [`crate::Acquire`] on the reference engine.
pub type Acquire<'a> = crate::future::Acquire<'a, Reference>;
