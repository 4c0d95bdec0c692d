//! [`Entry`]: one resource of a set in one word: the address of the resource's state (the
//! inside of its `Arc`), with the access mode in the low bit.
//!
//! Why one word: sets are built by value (`ResourceSet::new().exclusive(&a)…`), so a set
//! moves at every step, and again into its guard and the `Result`. One-word entries keep a
//! set of eight small enough to move with a few register copies rather than a `memcpy` call
//! (a third of the one-liner's time with two-word entries; `docs/benchmarks-analysis.md`),
//! and the set order is the order of the words themselves: sorting needs no memory load.

use crate::access::Access;
use std::marker::PhantomData;
use std::sync::Arc;

/// A borrow of a resource's state `C` for `'a` (or, inside a container that owns a strong
/// count of it, for as long as the container keeps that count), and an [`Access`].
///
/// Invariant: `tagged - exclusive bit` is the pointer `Arc::as_ptr` gives for an `Arc<C>`
/// whose allocation stays alive, with at least one strong count, for all of `'a`; except for
/// [`Entry::VACANT`] and [`Entry::storage`] words, which are never read as resources.
pub(crate) struct Entry<'a, C> {
    /// The state's address plus one if exclusive; a pointer, not an integer, so that it keeps
    /// the allocation's provenance.
    tagged: *const u8,
    /// The borrow it stands for: covariant in `'a`, ties the entry to `'a` and nothing longer.
    _borrow: PhantomData<&'a C>,
}

impl<'a, C> Entry<'a, C> {
    /// A placeholder for the unused slots of an inline list: a null pointer, never read as a
    /// resource (the list's length says which slots hold entries).
    pub(crate) const VACANT: Self = Entry {
        tagged: std::ptr::null(),
        _borrow: PhantomData,
    };

    /// A word of storage that holds no entry: `addr`, kept in an inline list's slot (the
    /// address of its heap list, `entries.rs`). Never read as a resource.
    #[inline]
    pub(crate) fn storage(addr: *const u8) -> Self {
        Entry {
            tagged: addr,
            _borrow: PhantomData,
        }
    }

    /// The address kept by [`storage`](Self::storage).
    #[inline]
    pub(crate) fn stored_addr(self) -> *const u8 {
        self.tagged
    }

    /// `resource` (borrowed for `'a`) in mode `access`.
    #[inline]
    pub(crate) fn new(resource: &'a Arc<C>, access: Access) -> Self {
        const { assert!(std::mem::align_of::<C>() >= 2, "the low bit must be free") };
        Entry {
            // `wrapping_add` of 0 or 1 byte stays inside the state and keeps provenance.
            tagged: Arc::as_ptr(resource)
                .cast::<u8>()
                .wrapping_add(usize::from(access == Access::Exclusive)),
            _borrow: PhantomData,
        }
    }

    /// The low bit: 1 if exclusive.
    #[inline]
    fn exclusive_bit(&self) -> usize {
        self.tagged as usize & 1
    }

    #[inline]
    fn ptr(&self) -> *const C {
        self.tagged.wrapping_sub(self.exclusive_bit()).cast::<C>()
    }

    /// The resource's state, for all of `'a`.
    #[inline]
    pub(crate) fn core(&self) -> &'a C {
        // SAFETY: by the type's invariant, `ptr()` points to a `C` inside an `Arc` allocation
        // that is alive for `'a` (the tag was added to an aligned address and is taken off
        // again, keeping the provenance of `Arc::as_ptr`). Only shared references to an
        // `Arc`'s contents ever exist.
        unsafe { &*self.ptr() }
    }

    /// The access mode.
    #[inline]
    pub(crate) fn access(&self) -> Access {
        if self.is_exclusive() {
            Access::Exclusive
        } else {
            Access::Shared
        }
    }

    /// Whether the mode is exclusive.
    #[inline]
    pub(crate) fn is_exclusive(&self) -> bool {
        self.exclusive_bit() == 1
    }

    /// The same resource in mode `access`.
    #[inline]
    pub(crate) fn with_access(self, access: Access) -> Self {
        Entry {
            tagged: self
                .ptr()
                .cast::<u8>()
                .wrapping_add(usize::from(access == Access::Exclusive)),
            _borrow: PhantomData,
        }
    }

    /// Whether both entries name the same resource (whatever their modes).
    #[inline]
    pub(crate) fn same(&self, other: &Self) -> bool {
        std::ptr::eq(self.ptr(), other.ptr())
    }

    /// A new strong count of the resource, as an `Arc`.
    #[inline]
    pub(crate) fn to_arc(self) -> Arc<C> {
        // SAFETY: by the type's invariant `ptr()` is an `Arc::as_ptr` pointer of an allocation
        // with a strong count held for `'a`, which this borrow is within: adding one and
        // taking it as an `Arc` is sound (the new count is the returned `Arc`'s).
        unsafe {
            Arc::increment_strong_count(self.ptr());
            Arc::from_raw(self.ptr())
        }
    }

    /// Takes one strong count of the resource that the caller owns from now on (give it back
    /// with [`drop_count`](Self::drop_count)).
    #[inline]
    pub(crate) fn count_up(&self) {
        std::mem::forget(self.to_arc());
    }

    /// Gives back one strong count of the resource.
    ///
    /// # Safety
    ///
    /// The caller owns one strong count of this resource (taken with
    /// [`count_up`](Self::count_up)), which it gives up here, and uses no entry that relies
    /// on that count afterwards.
    #[inline]
    pub(crate) unsafe fn drop_count(&self) {
        // SAFETY: the caller's contract: one count is ours to give back.
        unsafe { Arc::decrement_strong_count(self.ptr()) };
    }

    /// The same entry with a longer lifetime.
    ///
    /// # Safety
    ///
    /// The resource stays alive for `'b`: the caller owns a strong count of it for as long as
    /// the returned entry (or a copy of it) is used.
    #[inline]
    pub(crate) unsafe fn extend<'b>(self) -> Entry<'b, C> {
        Entry {
            tagged: self.tagged,
            _borrow: PhantomData,
        }
    }
}

impl<C> Clone for Entry<'_, C> {
    #[inline]
    fn clone(&self) -> Self {
        *self
    }
}

impl<C> Copy for Entry<'_, C> {}

// SAFETY: an `Entry<'a, C>` is a `&'a C` plus a bit (and, in an owning container, stands for
// a strong count, an `Arc<C>`): it may cross threads when both may, that is when
// `C: Send + Sync`.
unsafe impl<C: Send + Sync> Send for Entry<'_, C> {}

// SAFETY: as for `Send`: sharing a `&Entry` shares no more than a `&&'a C`.
unsafe impl<C: Send + Sync> Sync for Entry<'_, C> {}

#[cfg(test)]
mod tests {
    use crate::access::Access;
    use crate::engine::entry::Entry;
    use std::sync::Arc;

    #[test]
    fn packs_and_unpacks_state_and_mode() {
        let (a, b) = (Arc::new(1u32), Arc::new(2u32));
        for (handle, access) in [(&a, Access::Exclusive), (&b, Access::Shared)] {
            let entry = Entry::new(handle, access);
            assert!(std::ptr::eq(entry.core(), &**handle));
            assert_eq!(entry.access(), access);
            let flipped = entry.with_access(Access::Exclusive);
            assert!(flipped.same(&entry) && flipped.is_exclusive());
            assert_eq!(*flipped.core(), **handle);
        }
        assert!(!Entry::new(&a, Access::Shared).same(&Entry::new(&b, Access::Shared)));
    }

    #[test]
    fn counts_up_and_down() {
        let a = Arc::new(7u64);
        let entry = Entry::new(&a, Access::Shared);
        entry.count_up();
        assert_eq!(Arc::strong_count(&a), 2);
        let arc = entry.to_arc();
        assert_eq!(Arc::strong_count(&a), 3);
        drop(arc);
        // SAFETY: the count taken by `count_up` above.
        unsafe { entry.drop_count() };
        assert_eq!(Arc::strong_count(&a), 1);
    }
}
