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
//! exactly-once grants, the sync-locked policies) are numbered in `docs/spec.md`, which the
//! code cites as "rule N"; `docs/design.md` says how the lock-free engine keeps them.
//!
//! # Which path when
//!
//! Every request starts from a [`ResourceSet`], built where it is used; how you ask decides
//! who waits and where your code runs once the whole set is yours. There is one set type and
//! one guard type for all of them.
//!
//! | you are | ask with | you get | cost uncontended (k resources) |
//! |---|---|---|---|
//! | a thread that can block | `ResourceSet::new().exclusive(&a).shared(&b)`.[`wait`](ResourceSet::wait)`()` (or [`wait_timeout`](ResourceSet::wait_timeout), [`wait_interruptible`](ResourceSet::wait_interruptible)) | a [`Guard`] borrowing the resources | a push per resource, then 2 atomics per resource; no allocation, no reference count |
//! | a thread that must not block | [`ResourceSet::try_acquire`] | a [`Guard`] or [`Error::WouldBlock`] | as `wait` |
//! | an event handler (a display driver's flip) | [`ResourceSet::on_grant`] with [`Dispatch::Direct`] | your callback, on the thread that freed the last resource, with a `Guard<'static>` | free at once: your callback runs inside the call, no allocation (a reference count per resource for its owned guard); else two allocations (the request, the boxed closure) |
//! | code that may take a while after the grant | [`ResourceSet::on_grant`] with [`Dispatch::Worker`] | your callback, on your [`Worker`] thread, in grant order | two allocations and a thread hand-off |
//! | a job scheduler (a task graph over buffers) | one set per job, its outputs exclusive and its inputs shared, [`ResourceSet::on_grant`] with [`Dispatch::Pool`] (or a [`Worker`]), submitted in program order | each job's callback once every job submitted before it on its resources has released them: per-resource FIFO order is the dependency order (`examples/job_graph.rs`; Task Bench's graphs in `docs/taskgraph.md`) | a queued request per job (allocations from per-thread pools) and a pool hand-off |
//! | an async task | [`ResourceSet::acquire`]`.await` | a [`Guard`] | free at once: ready at the first poll, no allocation; else one allocation |
//! | code that keeps a set, or a guard, beyond the resources' borrow (a struct, another thread) | [`ResourceSet::into_owned`], [`Guard::into_owned`] | a `ResourceSet<'static>`, a `Guard<'static>` | one reference count per resource, once; [`lock`](ResourceSet::lock) on a kept set takes none |
//! | code that requests a kept set again and again (a per-frame set, a C front end) | [`lock`](ResourceSet::lock), [`try_lock`](ResourceSet::try_lock), [`lock_interruptible`](ResourceSet::lock_interruptible); [`try_grant_now`](ResourceSet::try_grant_now) for a direct callback's at-once grant | a [`Guard`] borrowing the set (its entries lent, not copied) | 2 atomics per resource, nothing else |
//! | a front end for callers that manage the resources' lifetime themselves (a C ABI) | `unsafe` [`ResourceSet::assume_static`] | a `ResourceSet<'static>` whose guards and callbacks take no count | none: the caller promises the resources outlive them |
//!
//! Blocking requests make a *sync* set: while it holds or waits, its resources are
//! *sync-locked*, and async requests choose what to do about that with [`Locked`] (wait their
//! turn, fail at once, or go ahead anyway). Direct callbacks run on other clients' threads:
//! keep them short, like interrupt handlers; chains of direct callbacks run in a loop, never
//! recursively. Every request path returns [`Error`] for bad input, never panics.
//!
//! # Coming from the C `kds.h`
//!
//! | `kds.h` (2012, and the 2013 form) | kds |
//! |---|---|
//! | `struct kds_resource` + `kds_resource_init` / `kds_resource_term` | [`Resource::new`] / drop the last handle (reference counted: never destroyed in use) |
//! | `kds_callback_init(cb, direct, fn)` | [`Dispatch::Direct`], or [`Dispatch::Worker`] for deferred callbacks; the closure is `fn` with its two parameters |
//! | `kds_async_waitall(&rset, flags, cb, p1, p2, n, exclusive_bitmap, resources)` | `ResourceSet::new().exclusive(..).shared(..).locked(flags).on_grant(dispatch, closure)` → [`Pending`] (the 2013 form has no `flags`: [`Locked::Wait`]) |
//! | `KDS_FLAG_LOCKED_{WAIT, FAIL, IGNORE}` | [`Locked::Wait`], [`Locked::Fail`] (→ [`Error::Busy`]), [`Locked::Ignore`] |
//! | `kds_waitall(n, bitmap, resources, jiffies)` | [`ResourceSet::wait`] / [`wait_timeout`](ResourceSet::wait_timeout); NULL → [`Error::Timeout`] |
//! | `-ERESTARTSYS` (a signal) | [`ResourceSet::wait_interruptible`] with an [`Interrupt`] → [`Error::Interrupted`] |
//! | `kds_resource_set_release(&rset)` on a held set | drop the [`Guard`] (or [`Guard::release`]) |
//! | `kds_resource_set_release(&rset)` on a pending set | [`Pending::cancel`] (`true`: withdrawn; `false`: the callback runs and releases) |
//! | `kds_resource_set_release_sync(&rset)` | the same; a Rust callback owns its guard, so there is nothing to wait for before freeing what the closure captured |
//!
//! `libkds` (the C ABI in `capi/`) is built from the lending requests: each C set keeps its
//! [`ResourceSet`] and requests it with [`lock_interruptible`](ResourceSet::lock_interruptible)
//! or [`try_lock`](ResourceSet::try_lock) (`kds_waitall`), or with
//! [`try_grant_now_scoped`](ResourceSet::try_grant_now_scoped) before falling back to
//! `on_grant` (`kds_async_waitall`), and releases with [`Guard::release_then`].
//!
//! A resource named twice in one set is merged (exclusive wins) instead of deadlocking, an
//! empty set is granted at once, and a cancel from the middle of a queue wakes the sets behind
//! it (the 2012 code had defects there; the spec's rules win).
//!
//! # Coming from sorted `RwLock`s
//!
//! Taking several `RwLock`s in a global order (sorted by address) also avoids deadlock, and
//! uncontended a [`ResourceSet`] costs about the same: it borrows its resources as the
//! `RwLock` guards would and is kept in address order as it is built. What kds adds: one
//! request for the whole set, so a waiter queues on all of its resources at once and is
//! granted when all are free, in FIFO order per resource (no writer starvation, no partial
//! holds while it waits); asynchronous requests whose grant arrives as a callback or a
//! future, which locks cannot express; and the sync-locked policies for mixing the two.
//! Guards can be released from any thread.
//!
//! ```
//! use kds::{Resource, ResourceSet};
//! // Instead of: let (_a, _b) = if a_addr < b_addr { (a.write(), b.read()) } else { ... };
//! let (a, b) = (Resource::new(), Resource::new());
//! let _held = ResourceSet::new().exclusive(&a).shared(&b).wait()?;
//! # Ok::<(), kds::Error>(())
//! ```
//!
//! The runnable programs under `examples/` show each path in a whole program: a compositor
//! frame loop with futures on tokio (`compositor`), a GPU-job scheduler with worker callbacks
//! (`gpu_jobs`), and the three locked policies side by side (`locked_policies`). The seed's
//! own use case, a render-then-flip pipeline driving real DRM page flips (or a simulated
//! display), is the `kds-hwtest` binary of the repository's `hwtest/` crate.

#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

// The layers, bottom up (each names only those below it; `.ci/run` checks that the parts of
// `src/` import one another without a cycle):
// - leaves: `sync` (atomics, parking, epoch: std's or loom's), `access`, `error`, `backoff`,
//   `timeline` (the grant timeline's stamps; no-ops without the feature);
// - `worker` (where callbacks run) and `delivery` (how a grant reaches its client);
// - `engine`: the interface the engines implement, and the one-word set entry;
// - the engines: `lockfree`, `global_mutex` (neither names the other, nor the front end);
// - the front end, generic over the engine: `resource`, `entries`, `take`, `guard`,
//   `pending`, `future`, `interrupt`, `set`;
// - the façades: this file, `reference`, and `harness` (the repository's own checks' door to
//   internals, hidden from the docs).
mod access;
mod backoff;
mod delivery;
mod engine;
mod entries;
mod error;
mod future;
mod global_mutex;
mod guard;
#[doc(hidden)]
pub mod harness;
mod interrupt;
mod lockfree;
mod pending;
pub mod reference;
mod resource;
mod set;
mod sync;
mod take;
/// Grant timeline instrumentation (feature `timeline`).
#[cfg(feature = "timeline")]
pub mod timeline;
#[cfg(not(feature = "timeline"))]
mod timeline;
mod worker;

pub use access::{Access, Locked};
pub use delivery::CallbackScope;
pub use engine::{Engine, MAX_SET_LEN};
pub use error::Error;
pub use interrupt::{Interrupt, UnparkOnInterrupt};
pub use lockfree::LockFree;
pub use worker::{Dispatch, Worker};

/// A handle to one resource (lock-free engine); see [`generic::Resource`].
pub type Resource = resource::Resource<LockFree>;
/// A set of resources with access modes, to request together (lock-free engine); see
/// [`generic::ResourceSet`].
pub type ResourceSet<'a> = set::ResourceSet<'a, LockFree>;
/// A granted, held set; dropping it releases the set (lock-free engine); see
/// [`generic::Guard`].
pub type Guard<'a> = guard::Guard<'a, LockFree>;
/// An async request whose callback has not necessarily run yet (lock-free engine).
pub type Pending = pending::Pending<LockFree>;
/// The future returned by [`ResourceSet::acquire`] (lock-free engine).
pub type Acquire<'a> = future::Acquire<'a, LockFree>;

/// Delivers, here and now, the grants this thread owes, direct callbacks included: call it
/// before a wait built outside kds blocks this thread.
///
/// A direct callback that releases a set does not run the callbacks that release grants on
/// the spot: they queue on this thread, and run once the outermost callback returns (so that
/// chains of callbacks loop instead of nesting). kds's own waits deliver them before they
/// block; a wait of another kind (`poll` on a descriptor, parking for another thread's
/// signal, a blocking executor) that may run inside a direct callback must call this first,
/// or the sets that its release granted wait for it, maybe for ever. `kds-dmabuf`'s fence
/// waits do. Outside a callback there is nothing queued, and it returns at once.
///
/// ```
/// use kds::{Dispatch, Resource, ResourceSet};
/// use std::sync::mpsc;
///
/// let (a, b) = (Resource::new(), Resource::new());
/// let (tx, rx) = mpsc::channel();
/// let held = ResourceSet::new().exclusive(&b).wait()?.into_owned();
/// ResourceSet::new().exclusive(&b).on_grant(Dispatch::Direct, move |_g| tx.send(()).unwrap())?;
/// ResourceSet::new().exclusive(&a).on_grant(Dispatch::Direct, move |_g| {
///     drop(held); // grants the set on `b`: its callback is queued on this thread
///     kds::flush_before_blocking(); // ... and runs here, before this callback would block
///     rx.recv().unwrap(); // so this does not wait for ever
/// })?;
/// # Ok::<(), kds::Error>(())
/// ```
pub fn flush_before_blocking() {
    delivery::flush_before_blocking();
}

/// The front-end types, generic over the [`Engine`]: `kds::Resource` is
/// `generic::Resource<LockFree>`, `kds::reference::Resource` is
/// `generic::Resource<reference::Reference>`. Write engine-generic code against these (see
/// [`Engine`] for an example); the methods are documented here.
pub mod generic {
    pub use crate::future::Acquire;
    pub use crate::guard::Guard;
    pub use crate::pending::Pending;
    pub use crate::resource::Resource;
    pub use crate::set::ResourceSet;
}

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
