//! [`BorrowedEntry`]: one entry of a [`BorrowedSet`](crate::BorrowedSet) in one word, a
//! borrowed resource handle with the access mode in the pointer's low bit.
//!
//! Why a word and not `(&Arc<Core>, Access)`: a borrowed set is built by value
//! (`BorrowedSet::new().exclusive(&a)…`), so the set moves at every step, and again into its
//! guard and the `Result`. Eight two-word entries make the set 136 bytes, past the size the
//! compiler copies inline, and each move became a `memcpy` call: measured, a third of the
//! one-liner's time at k = 4 (docs/benchmarks-analysis.md). Eight one-word entries make it 72.

use crate::engine::SetEntry;
use crate::Access;
use std::marker::PhantomData;
use std::sync::Arc;

/// A `&'a Arc<Core>` and an [`Access`], packed: the handle's address, plus one if exclusive.
pub(crate) struct BorrowedEntry<'a, Core> {
    /// Points into the borrowed `Arc<Core>` handle (its first or second byte); a pointer, not
    /// an integer, so that it keeps the borrow's provenance.
    tagged: *const u8,
    /// The borrow it stands for: ties the entry to `'a` (and to nothing longer).
    _borrow: PhantomData<&'a Arc<Core>>,
}

// An `Arc` handle is one pointer, so its address is at least 2-aligned: the low bit is free.
const _: () = assert!(std::mem::align_of::<Arc<u8>>() >= 2);

impl<'a, Core> BorrowedEntry<'a, Core> {
    /// Packs `core` (borrowed for `'a`) with `access`.
    #[inline]
    pub(crate) fn new(core: &'a Arc<Core>, access: Access) -> Self {
        let exclusive = usize::from(access == Access::Exclusive);
        BorrowedEntry {
            // `wrapping_add` of 0 or 1 bytes stays inside the handle and keeps provenance.
            tagged: (core as *const Arc<Core>)
                .cast::<u8>()
                .wrapping_add(exclusive),
            _borrow: PhantomData,
        }
    }

    /// The low bit: 1 if exclusive.
    #[inline]
    fn exclusive_bit(&self) -> usize {
        self.tagged as usize & 1
    }

    /// The borrowed handle, for all of `'a`.
    #[inline]
    pub(crate) fn handle(&self) -> &'a Arc<Core> {
        let handle = self
            .tagged
            .wrapping_sub(self.exclusive_bit())
            .cast::<Arc<Core>>();
        // SAFETY: `tagged` was made in `new` from a `&'a Arc<Core>` by adding the access bit,
        // which was 0 in the handle's address (it is 2-aligned, asserted above); subtracting
        // the bit gives back that reference's pointer with its provenance. `_borrow` keeps
        // `self` from outliving `'a`, and while the shared borrow lasts the handle is neither
        // moved, mutated nor dropped, so reading it as `&'a Arc<Core>` is sound.
        unsafe { &*handle }
    }
}

impl<Core> Clone for BorrowedEntry<'_, Core> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<Core> Copy for BorrowedEntry<'_, Core> {}

// SAFETY: a `BorrowedEntry<'a, Core>` is a `&'a Arc<Core>` plus a bit; it may cross threads
// exactly when that reference may, which is when `Arc<Core>: Sync`.
unsafe impl<Core> Send for BorrowedEntry<'_, Core> where Arc<Core>: Sync {}

// SAFETY: as for `Send`: sharing a `&BorrowedEntry` shares no more than a `&&'a Arc<Core>`,
// which is `Send` and `Sync` exactly when `Arc<Core>: Sync`.
unsafe impl<Core> Sync for BorrowedEntry<'_, Core> where Arc<Core>: Sync {}

impl<Core> SetEntry<Core> for BorrowedEntry<'_, Core> {
    #[inline]
    fn core(&self) -> &Arc<Core> {
        self.handle()
    }

    #[inline]
    fn access(&self) -> Access {
        if self.exclusive_bit() == 1 {
            Access::Exclusive
        } else {
            Access::Shared
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_and_unpacks_handle_and_mode() {
        let (a, b) = (Arc::new(1u32), Arc::new(2u32));
        for (handle, access) in [(&a, Access::Exclusive), (&b, Access::Shared)] {
            let entry = BorrowedEntry::new(handle, access);
            assert!(std::ptr::eq(entry.handle(), handle));
            assert_eq!(entry.access(), access);
            assert_eq!(**entry.core(), **handle);
        }
    }
}
