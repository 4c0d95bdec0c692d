//! [`BorrowedSet`]: a set that borrows its resources instead of holding handles, built in
//! place, and its [`BorrowedGuard`]. The cheapest one-liner.

use crate::borrowed_entry::BorrowedEntry;
use crate::engine::{Engine, Entry, Holder, SetEntry};
use crate::guard::Guard;
use crate::resource::Resource;
use crate::set::{debug_entries, sort_merge, take_fast, ResourceSet};
use crate::{delivery, Access, Error};
use smallvec::SmallVec;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A borrowed set's entries: up to 8 on the stack, one word each (72 bytes in all, small
/// enough to move without a `memcpy` call: see `borrowed_entry.rs`).
type BorrowedEntries<'a, E> = SmallVec<[BorrowedEntry<'a, <E as Engine>::Core>; 8]>;

/// A set of resources with access modes, for blocking requests, that borrows its resources
/// instead of cloning their handles: the cheapest one-liner.
///
/// It is what `ResourceSet::new().exclusive(&a)…wait()` means when the set lives in one scope:
/// building it touches no reference count and, for up to eight resources, no heap, and its
/// [`BorrowedGuard`] borrows the resources too, so on the uncontended fast path the whole
/// one-liner is a few atomic operations per resource. The guard lives as long as the
/// resources' borrow, not longer; use [`ResourceSet`] for a guard that must own its
/// resources, or for async requests ([`to_owned`](Self::to_owned) converts).
///
/// The builder works in place, like `std::process::Command`: [`exclusive`](Self::exclusive),
/// [`shared`](Self::shared) and [`access`](Self::access) take and return `&mut Self`, so the
/// set is never moved while it grows (a by-value builder copied it at every step: a third of
/// the one-liner's time). Chain them on `BorrowedSet::new()` for a one-liner, or keep the set
/// in a `let mut` and add to it in a loop; requesting it does not use it up.
///
/// Duplicates merge as in a [`ResourceSet`] (exclusive wins, spec rule 11), the set is a
/// *sync* set, and the errors are the same. If the set cannot be taken at once, it clones the
/// handles it borrows and queues like [`ResourceSet::wait`].
///
/// ```
/// use kds::{BorrowedSet, Resource};
///
/// let (src, dst) = (Resource::new(), Resource::new());
/// let held = BorrowedSet::new().shared(&src).exclusive(&dst).wait()?;
/// // ... copy src into dst ...
/// drop(held);
///
/// // Built in a loop, then requested (and requested again: the set is not used up).
/// let layers: Vec<Resource> = (0..3).map(|_| Resource::new()).collect();
/// let mut scene = BorrowedSet::new();
/// for layer in &layers {
///     scene.shared(layer);
/// }
/// let first = scene.wait()?;
/// let second = scene.try_acquire()?; // shared with shared: both held
/// drop((first, second));
/// # Ok::<(), kds::Error>(())
/// ```
pub struct BorrowedSet<'a, E: Engine> {
    /// In the order named, duplicates included: a request sorts and merges them (building
    /// stays a push per resource).
    entries: BorrowedEntries<'a, E>,
}

impl<'a, E: Engine> BorrowedSet<'a, E> {
    /// An empty set (granted at once if requested as it is).
    pub fn new() -> Self {
        BorrowedSet {
            entries: SmallVec::new(),
        }
    }

    /// Adds `resource` in exclusive mode.
    pub fn exclusive(&mut self, resource: &'a Resource<E>) -> &mut Self {
        self.access(resource, Access::Exclusive)
    }

    /// Adds `resource` in shared mode.
    pub fn shared(&mut self, resource: &'a Resource<E>) -> &mut Self {
        self.access(resource, Access::Shared)
    }

    /// Adds `resource` in mode `access`; naming a resource again merges the modes, exclusive
    /// winning.
    ///
    /// ```
    /// use kds::{Access, BorrowedSet, Error, Resource};
    ///
    /// let buffer = Resource::new();
    /// let held = BorrowedSet::new()
    ///     .access(&buffer, Access::Shared)
    ///     .access(&buffer, Access::Exclusive) // merged: one exclusive entry
    ///     .wait()?;
    /// let reader = BorrowedSet::new().shared(&buffer).try_acquire();
    /// assert_eq!(reader.unwrap_err(), Error::WouldBlock);
    /// drop(held);
    /// # Ok::<(), kds::Error>(())
    /// ```
    pub fn access(&mut self, resource: &'a Resource<E>, access: Access) -> &mut Self {
        self.entries
            .push(BorrowedEntry::new(&resource.core, access));
        self
    }

    /// The same set as a [`ResourceSet`] (one handle cloned per resource), for everything a
    /// borrowed set does not offer: async requests, interruptible waits, a guard that owns
    /// its resources.
    ///
    /// ```
    /// use kds::{BorrowedSet, Dispatch, Resource};
    ///
    /// let buffer = Resource::new();
    /// let flip = BorrowedSet::new().shared(&buffer).to_owned();
    /// flip.on_grant(Dispatch::Direct, drop)?;
    /// # Ok::<(), kds::Error>(())
    /// ```
    pub fn to_owned(&self) -> ResourceSet<E> {
        let mut entries = SmallVec::from_slice(&self.entries);
        in_set_order::<E>(&mut entries);
        owned(&entries)
    }

    /// Blocks until the whole set is granted, like [`ResourceSet::wait`], and returns a guard
    /// that borrows the resources. Uncontended, neither taking nor releasing the set touches a
    /// reference count.
    ///
    /// ```
    /// use kds::{BorrowedSet, Resource};
    ///
    /// let frame = Resource::new();
    /// {
    ///     let _gpu = BorrowedSet::new().exclusive(&frame).wait()?;
    ///     assert!(BorrowedSet::new().shared(&frame).try_acquire().is_err());
    /// } // released here
    /// assert!(BorrowedSet::new().shared(&frame).try_acquire().is_ok());
    /// # Ok::<(), kds::Error>(())
    /// ```
    #[inline]
    pub fn wait(&self) -> Result<BorrowedGuard<'a, E>, Error> {
        self.take(|set| set.wait_queued(None, None))
    }

    /// Blocks until the set is granted or `timeout` has passed, like
    /// [`ResourceSet::wait_timeout`]: `Err(Error::Timeout)` leaves nothing queued.
    ///
    /// ```
    /// use kds::{BorrowedSet, Error, Resource};
    /// use std::time::Duration;
    ///
    /// let buffer = Resource::new();
    /// let held = BorrowedSet::new().exclusive(&buffer).wait()?;
    /// let late = BorrowedSet::new().shared(&buffer).wait_timeout(Duration::from_millis(1));
    /// assert_eq!(late.unwrap_err(), Error::Timeout);
    /// drop(held);
    /// # Ok::<(), kds::Error>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Result<BorrowedGuard<'a, E>, Error> {
        let deadline = Instant::now().checked_add(timeout);
        self.take(|set| set.wait_queued(deadline, None))
    }

    /// Takes the set if it can be granted at once, else `Err(Error::WouldBlock)` with nothing
    /// left queued, like [`ResourceSet::try_acquire`].
    #[inline]
    pub fn try_acquire(&self) -> Result<BorrowedGuard<'a, E>, Error> {
        self.take(ResourceSet::try_queued)
    }

    /// The fast path, inlined into the caller (the guard is then built in place); if it
    /// fails, `request` on the set as a `ResourceSet` (the queued way needs owned handles: a
    /// request keeps its resources alive). A set over `MAX_SET_LEN` fails the fast path and
    /// is refused by the queued way.
    #[inline]
    fn take(
        &self,
        request: impl FnOnce(&ResourceSet<E>) -> Result<Guard<E>, Error>,
    ) -> Result<BorrowedGuard<'a, E>, Error> {
        let mut entries = SmallVec::from_slice(&self.entries);
        in_set_order::<E>(&mut entries);
        if take_fast::<E, _>(&entries, Holder::Sync) {
            return Ok(BorrowedGuard::fast(entries));
        }
        queued(&entries, request)
    }
}

/// The queued way of [`BorrowedSet::take`], out of line to keep the fast path small.
#[inline(never)]
fn queued<'a, E: Engine>(
    entries: &[BorrowedEntry<'a, E::Core>],
    request: impl FnOnce(&ResourceSet<E>) -> Result<Guard<E>, Error>,
) -> Result<BorrowedGuard<'a, E>, Error> {
    request(&owned(entries)).map(BorrowedGuard::queued)
}

/// Puts a copy of a borrowed set's entries in set order (`sort_merge`), in place: returning
/// the 72-byte copy instead would move it, which stalls on store forwarding (k = 1: 23 → 37 ns).
#[inline]
fn in_set_order<E: Engine>(entries: &mut BorrowedEntries<'_, E>) {
    sort_merge::<E, _>(entries, |entry, access| {
        *entry = BorrowedEntry::new(entry.handle(), access)
    });
}

/// A [`ResourceSet`] of `entries` (already in set order), one handle cloned per resource.
fn owned<E: Engine>(entries: &[BorrowedEntry<'_, E::Core>]) -> ResourceSet<E> {
    ResourceSet::from_sorted(
        entries
            .iter()
            .map(|entry| (Arc::clone(entry.handle()), entry.access()))
            .collect::<SmallVec<[Entry<E>; 4]>>(),
    )
}

impl<E: Engine> Default for BorrowedSet<'_, E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E: Engine> fmt::Debug for BorrowedSet<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BorrowedSet")
            .field("engine", &E::NAME)
            .field("entries", &debug_entries::<E, _>(&self.entries))
            .finish()
    }
}

/// A held set that borrows its resources, from a [`BorrowedSet`]. Dropping it releases the
/// set, which may grant other sets and run their direct callbacks on this thread.
#[must_use = "dropping a BorrowedGuard releases the set at once"]
pub struct BorrowedGuard<'a, E: Engine> {
    held: BorrowedHeld<'a, E>,
}

// `repr(usize)`: a word-sized tag keeps the entries 8-aligned behind it, so moving the guard
// (into the `Result`, out to the caller) copies whole aligned words; with a one-byte tag the
// copies ran at odd offsets and stalled on store forwarding (k = 1: 47 ns, now 28 ns).
#[repr(usize)]
enum BorrowedHeld<'a, E: Engine> {
    /// Taken on the fast path: the borrowed entries themselves.
    Fast(BorrowedEntries<'a, E>),
    /// Granted through the queues: an ordinary guard (released by its own `Drop`).
    Queued { _guard: Guard<E> },
}

impl<'a, E: Engine> BorrowedGuard<'a, E> {
    fn fast(entries: BorrowedEntries<'a, E>) -> Self {
        BorrowedGuard {
            held: BorrowedHeld::Fast(entries),
        }
    }

    fn queued(guard: Guard<E>) -> Self {
        BorrowedGuard {
            held: BorrowedHeld::Queued { _guard: guard },
        }
    }

    /// Releases the set now (same as dropping the guard).
    pub fn release(self) {
        drop(self);
    }
}

impl<E: Engine> Drop for BorrowedGuard<'_, E> {
    fn drop(&mut self) {
        // A queued guard releases itself when the field is dropped after this.
        if let BorrowedHeld::Fast(entries) = &self.held {
            if E::release_fast(entries, Holder::Sync) {
                delivery::flush();
            }
        }
    }
}

impl<E: Engine> fmt::Debug for BorrowedGuard<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BorrowedGuard")
            .field("engine", &E::NAME)
            .finish_non_exhaustive()
    }
}
