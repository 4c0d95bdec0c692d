//! [`Entries`]: the resources of a set, of a guard taken on the fast path, or of a future not
//! yet polled, in set order; borrowed, or holding a strong count of each.
//!
//! One type for both, so that a set built where it is used borrows its resources and costs a
//! push per resource, and a set kept for later (`ResourceSet::into_owned`), a guard that must
//! outlive the borrow (`Guard::into_owned`, a callback's guard) or a future of an owned set is
//! the same set with its counts taken.
//!
//! Up to [`INLINE`] entries live in the value itself, a plain array of one-word `Copy`
//! entries, so copying a set into its guard is a fixed-size move, not a `memcpy` call (an
//! inline `SmallVec` copies through `memcpy`, and is invariant in its items, which would make
//! sets and guards invariant in `'a`). More go to a `Vec` on the heap, whose address the
//! first slot keeps (the length says which): a separate field for it cost a fifth of the
//! one-liner's instructions (checked at every copy and drop; 228 against 173 at k = 1).

use crate::engine::{Engine, Entry};
use std::marker::PhantomData;
use std::num::NonZeroUsize;

/// Entries held in the value itself; more go to the heap.
const INLINE: usize = 8;

/// `Entries::meta`: the number of entries (bits 0..32).
const LEN: usize = u32::MAX as usize;
/// `Entries::meta`: each entry holds one strong count of its resource.
const OWNS: usize = 1 << 32;
/// `Entries::meta`: the entries borrow their resources for `'static` on a caller's promise
/// ([`assume_static`](Entries::assume_static)): they take no counts, and neither do copies
/// made "owned" of them.
const UNCOUNTED: usize = 1 << 33;
/// `Entries::meta`: where the container's own byte starts (bits 40..48).
const AUX_SHIFT: u32 = 40;
/// `Entries::meta`: always set, so the word is never zero: a container such as
/// `enum { Fast(Entries), Other(..) }` then keeps its tag in that niche and the entries at
/// offset 0, where a set keeps them (a copy from one to the other keeps its 16-byte phase).
const NONZERO: usize = 1 << 63;

/// See the module docs.
///
/// Every field is a word: a set is moved at each step of the by-value builder, and into its
/// guard and the `Result`; a move that reads as a word what was written as a byte stalls on
/// store forwarding, and a smaller value is a shorter copy. Hence one header word for the
/// length, the owning flag and one byte of the container's own (a set's policy, a fast
/// guard's holder).
pub(crate) struct Entries<'a, E: Engine> {
    /// `LEN | OWNS | aux | NONZERO`. With `OWNS`, every entry holds one strong count of its
    /// resource, given back on drop: the entries stay valid as long as `self`, whatever `'a`
    /// says (`'static`, after [`into_owned`](Self::into_owned)).
    meta: NonZeroUsize,
    /// In set order (`Ops::order_key`), no resource twice: `items[..len]` while `len` is at
    /// most `INLINE` (the rest are never read). Past that, all of them are in a
    /// `Box<Vec<_>>` that `self` owns, whose address `items[0]` keeps
    /// ([`Entry::storage`]). Stored as `'static`, but valid only for `'a`, or while `OWNS`:
    /// they are only ever handed out borrowed from `self` ([`as_slice`](Self::as_slice)),
    /// never for longer.
    items: [Entry<'static, E::Core>; INLINE],
    /// The borrow of the resources (covariant).
    _borrow: PhantomData<&'a E::Core>,
}

impl<'a, E: Engine> Entries<'a, E> {
    /// No entries (borrowing nothing), with the container's byte `aux`.
    #[inline(always)]
    pub(crate) fn new(aux: u8) -> Self {
        Entries {
            meta: Self::meta_of(NONZERO | (aux as usize) << AUX_SHIFT),
            items: [Entry::VACANT; INLINE],
            _borrow: PhantomData,
        }
    }

    /// `meta` from its bits (`NONZERO` among them): a plain `or`.
    #[inline(always)]
    fn meta_of(bits: usize) -> NonZeroUsize {
        debug_assert!(bits & NONZERO != 0);
        const BASE: NonZeroUsize = match NonZeroUsize::new(NONZERO) {
            Some(base) => base,
            None => unreachable!(),
        };
        BASE | bits
    }

    #[inline(always)]
    fn bits(&self) -> usize {
        self.meta.get()
    }

    /// The container's byte.
    #[inline(always)]
    pub(crate) fn aux(&self) -> u8 {
        (self.bits() >> AUX_SHIFT) as u8
    }

    /// Sets the container's byte.
    #[inline(always)]
    pub(crate) fn set_aux(&mut self, aux: u8) {
        self.meta = Self::meta_of(self.bits() & !(0xff << AUX_SHIFT) | (aux as usize) << AUX_SHIFT);
    }

    #[inline(always)]
    fn owns(&self) -> bool {
        self.bits() & OWNS != 0
    }

    /// Number of entries.
    #[inline(always)]
    pub(crate) fn len(&self) -> usize {
        self.bits() & LEN
    }

    /// The entries, in set order, for no longer than `self` lives (an owning container's
    /// entries are valid only while it keeps their counts).
    #[inline(always)]
    pub(crate) fn as_slice(&self) -> &[Entry<'_, E::Core>] {
        self.stored()
    }

    /// The entries as stored (see `items`): for this module only.
    #[inline(always)]
    fn stored(&self) -> &[Entry<'static, E::Core>] {
        let n = self.len();
        if n <= INLINE {
            &self.items[..n]
        } else {
            self.heap()
        }
    }

    /// The heap list of a container past `INLINE` entries.
    #[cold]
    fn heap(&self) -> &Vec<Entry<'static, E::Core>> {
        debug_assert!(self.len() > INLINE);
        // SAFETY: past `INLINE` entries, `items[0]` keeps the address `Box::into_raw` gave for
        // the `Vec` this container owns (`insert_slow`), freed only by its drop; the shared
        // borrow of `self` keeps it from being changed meanwhile.
        unsafe { &*(self.items[0].stored_addr() as *const Vec<Entry<'static, E::Core>>) }
    }

    /// As [`heap`](Self::heap), to change it.
    #[cold]
    fn heap_mut(&mut self) -> &mut Vec<Entry<'static, E::Core>> {
        debug_assert!(self.len() > INLINE);
        // SAFETY: as in `heap`; the exclusive borrow of `self` makes this the only access.
        unsafe { &mut *(self.items[0].stored_addr() as *mut Vec<Entry<'static, E::Core>>) }
    }

    /// Adds `entry` keeping set order (sorted by [`Ops::order_key`](crate::engine::Ops)): a
    /// resource already there takes the merged mode, exclusive winning (spec rule 11). An
    /// insertion step: for the few resources of a set, cheaper than a sort at the request,
    /// and a set kept for reuse is never sorted again. The common case (a borrowed set with
    /// room inline, a resource not named before) is one inline loop; the rest is out of line.
    #[inline(always)]
    pub(crate) fn insert(&mut self, entry: Entry<'a, E::Core>) {
        // SAFETY: stored as `'static` but handed out only borrowed from `self`, which lives no
        // longer than `'a` (or holds a count of the resource, taken by `insert_slow`): see
        // `items`.
        let entry = unsafe { entry.extend::<'static>() };
        // Borrowed and inline: `OWNS` clear and the length below `INLINE` (so not spilled).
        let n = self.bits() & (LEN | OWNS);
        if n < INLINE {
            let items = &mut self.items;
            let key = E::order_key(entry.core());
            let mut at = n;
            let mut fresh = true;
            while at > 0 {
                let before = E::order_key(items[at - 1].core());
                if before <= key {
                    fresh = before != key;
                    break;
                }
                at -= 1;
            }
            if fresh {
                let mut i = n;
                while i > at {
                    items[i] = items[i - 1];
                    i -= 1;
                }
                items[at] = entry;
                self.meta = Self::meta_of(self.bits() + 1);
                return;
            }
        }
        self.insert_slow(entry);
    }

    /// `insert` for everything but the common case: a resource named again (merged), an
    /// owning container (which takes a count of a new resource), a set past the inline
    /// capacity.
    #[cold]
    #[inline(never)]
    fn insert_slow(&mut self, entry: Entry<'static, E::Core>) {
        let key = E::order_key(entry.core());
        let n = self.len();
        let mut at = n;
        while at > 0 {
            let before = self.stored()[at - 1];
            let before_key = E::order_key(before.core());
            if before_key < key {
                break;
            }
            if before_key == key {
                debug_assert!(before.same(&entry), "two resources with one order key");
                let merged = before.with_access(before.access().merge(entry.access()));
                if n <= INLINE {
                    self.items[at - 1] = merged;
                } else {
                    self.heap_mut()[at - 1] = merged;
                }
                return;
            }
            at -= 1;
        }
        if self.owns() {
            entry.count_up();
        }
        if n < INLINE {
            self.items.copy_within(at..n, at + 1);
            self.items[at] = entry;
        } else if n == INLINE {
            let mut all = Vec::with_capacity(2 * INLINE);
            all.extend_from_slice(&self.items);
            all.insert(at, entry);
            self.items[0] = Entry::storage(Box::into_raw(Box::new(all)) as *const u8);
        } else {
            self.heap_mut().insert(at, entry);
        }
        self.meta = Self::meta_of(self.bits() + 1);
    }

    /// The stored entries for a copy of `self`: the inline array, with a heap list of its
    /// own in the first slot if `self` has one. The copy takes no count: its caller decides.
    #[inline(always)]
    fn copied_items(&self) -> [Entry<'static, E::Core>; INLINE] {
        let mut items = self.items;
        if self.len() > INLINE {
            items[0] = Entry::storage(Box::into_raw(Box::new(self.heap().clone())) as *const u8);
        }
        items
    }

    /// A copy that owns a strong count of each resource (taken now), valid for as long as it
    /// lives.
    #[inline]
    pub(crate) fn owned_copy(&self) -> Entries<'static, E> {
        if self.bits() & UNCOUNTED != 0 {
            // Valid for `'static` already (the caller of `assume_static` promised it).
            return Entries {
                meta: self.meta,
                items: self.copied_items(),
                _borrow: PhantomData,
            };
        }
        for entry in self.as_slice() {
            entry.count_up();
        }
        Entries {
            meta: Self::meta_of(self.bits() | OWNS),
            items: self.copied_items(),
            _borrow: PhantomData,
        }
    }

    /// Entries of their own, with a strong count of each resource (taken now), of the
    /// `entries` of another container, with the byte `aux`.
    pub(crate) fn owned_from(entries: &[Entry<'_, E::Core>], aux: u8) -> Entries<'static, E> {
        let mut owned = Entries::new(aux);
        owned.meta = Self::meta_of(owned.bits() | OWNS);
        for entry in entries {
            // SAFETY: `owned` takes a count of each resource (it owns them: `OWNS`).
            let entry = unsafe { entry.extend::<'static>() };
            // In set order already: each insertion is a push (and takes the count).
            owned.insert_slow(entry);
        }
        owned
    }

    /// The same entries valid for as long as the returned container lives: the counts of
    /// each resource are taken unless `self` has them already.
    pub(crate) fn into_owned(self) -> Entries<'static, E> {
        if self.bits() & UNCOUNTED != 0 {
            // SAFETY: marked by `assume_static`, whose caller promised that the resources
            // outlive every copy made of these entries; this is one.
            return unsafe { self.assume_static() };
        }
        if !self.owns() {
            for entry in self.as_slice() {
                entry.count_up();
            }
        }
        // SAFETY: it owns a count of each resource now (`OWNS`).
        unsafe { self.moved(OWNS) }
    }

    /// The same entries, moved out of `self` with the header bits `add` set, as valid for
    /// `'static`. Their counts and heap list (if any) move with them: `self` is left empty.
    ///
    /// # Safety
    ///
    /// The entries are valid for as long as the result lives: they own their counts (`OWNS`),
    /// or the caller promises it (`assume_static`).
    #[inline(always)]
    unsafe fn moved(mut self, add: usize) -> Entries<'static, E> {
        let moved = Entries {
            meta: Self::meta_of(self.bits() | add),
            items: self.items,
            _borrow: PhantomData,
        };
        self.meta = Self::meta_of(NONZERO);
        moved
    }
}

impl<E: Engine> Entries<'_, E> {
    /// The same entries as valid for `'static`, taking no counts, and marked so that an owned
    /// copy of them takes none either (an owning container is returned as it is).
    ///
    /// # Safety
    ///
    /// Each resource named (now or later) outlives the returned container, and every copy
    /// made of it (clones, owned copies, the guards that hold them).
    #[inline]
    pub(crate) unsafe fn assume_static(self) -> Entries<'static, E> {
        // An owning container is valid for `'static` already, and its copies must count.
        let mark = if self.owns() { 0 } else { UNCOUNTED };
        // SAFETY: owning, or the caller's promise.
        unsafe { self.moved(mark) }
    }
}

impl<E: Engine> Clone for Entries<'_, E> {
    /// A copy with the same validity: an owning container's copy takes counts of its own.
    #[inline(always)]
    fn clone(&self) -> Self {
        if self.owns() {
            for entry in self.as_slice() {
                entry.count_up();
            }
        }
        Entries {
            meta: self.meta,
            items: self.copied_items(),
            _borrow: PhantomData,
        }
    }
}

impl<E: Engine> Drop for Entries<'_, E> {
    #[inline(always)]
    fn drop(&mut self) {
        if self.owns() {
            // SAFETY: this is the drop: the entries are not used again.
            unsafe { drop_counts(self.as_slice()) };
        }
        if self.len() > INLINE {
            self.drop_heap();
        }
    }
}

impl<E: Engine> Entries<'_, E> {
    /// Frees the heap list (out of line: sets of more than `INLINE` resources are rare).
    #[cold]
    #[inline(never)]
    fn drop_heap(&mut self) {
        // SAFETY: past `INLINE` entries `items[0]` keeps the address `Box::into_raw` gave for
        // the `Vec` this container owns, freed only here, in its drop, once.
        drop(unsafe {
            Box::from_raw(self.items[0].stored_addr() as *mut Vec<Entry<'static, E::Core>>)
        });
    }
}

/// Gives back an owning container's counts (out of line: borrowed sets, the common case,
/// have none).
///
/// # Safety
///
/// The caller owns one strong count per entry, given back here, once, and uses none of the
/// entries afterwards.
#[cold]
#[inline(never)]
unsafe fn drop_counts<C>(entries: &[Entry<'_, C>]) {
    for entry in entries {
        // SAFETY: the caller's contract.
        unsafe { entry.drop_count() };
    }
}

#[cfg(test)]
mod tests {
    use crate::access::Access;
    use crate::entries::Entries;
    use crate::global_mutex::Reference;

    type Resource = crate::resource::Resource<Reference>;

    /// Entries stay in set order and merge duplicates, inline and past `INLINE` on the heap,
    /// and an owning copy gives back exactly the counts it took. On the reference engine's
    /// resources: the container does not depend on the engine, and Miri runs this test with
    /// strict provenance, which crossbeam-epoch (under the lock-free engine's resources) does
    /// not support.
    #[test]
    fn insert_keeps_set_order_and_merges() {
        let r: Vec<Resource> = (0..20).map(|_| Resource::new()).collect();
        for n in [1, 8, 9, 20] {
            let mut e = Entries::<Reference>::new(7);
            for (i, res) in r[..n].iter().enumerate().rev() {
                let access = if i % 2 == 0 {
                    Access::Shared
                } else {
                    Access::Exclusive
                };
                e.insert(crate::engine::Entry::new(&res.core, access));
            }
            for res in &r[..n] {
                e.insert(crate::engine::Entry::new(&res.core, Access::Shared));
            }
            assert_eq!((e.len(), e.aux()), (n, 7));
            let keys: Vec<usize> = e
                .as_slice()
                .iter()
                .map(|x| x.core() as *const _ as usize)
                .collect();
            assert!(
                keys.windows(2).all(|w| w[0] < w[1]),
                "not in set order: {keys:?}"
            );
            let exclusive = e.as_slice().iter().filter(|x| x.is_exclusive()).count();
            assert_eq!(exclusive, n / 2, "merging lost an exclusive mode");
            let owned = e.owned_copy();
            assert!(r[..n]
                .iter()
                .all(|x| std::sync::Arc::strong_count(&x.core) == 2));
            let again = owned.clone();
            drop((owned, e));
            assert!(r[..n]
                .iter()
                .all(|x| std::sync::Arc::strong_count(&x.core) == 2));
            drop(again);
            assert!(r.iter().all(|x| std::sync::Arc::strong_count(&x.core) == 1));
        }
    }

    /// Entries marked by `assume_static` take no counts, nor do their clones, owned copies or
    /// `into_owned`; an owning container stays owning (its copies count), inline and on the
    /// heap.
    #[test]
    fn assumed_static_entries_take_no_counts() {
        let r: Vec<Resource> = (0..12).map(|_| Resource::new()).collect();
        let counts = |n: usize| {
            r[..n]
                .iter()
                .map(|x| std::sync::Arc::strong_count(&x.core))
                .collect::<Vec<_>>()
        };
        for n in [1, 8, 12] {
            let mut e = Entries::<Reference>::new(0);
            for res in &r[..n] {
                e.insert(crate::engine::Entry::new(&res.core, Access::Exclusive));
            }
            // SAFETY: `r` outlives every container made here.
            let e = unsafe { e.assume_static() };
            let copies = (e.owned_copy(), e.clone(), e.clone().into_owned());
            assert_eq!(counts(n), vec![1; n], "an assumed-static copy took a count");
            assert!(copies.0.as_slice().len() == n && copies.2.as_slice().len() == n);
            drop((copies, e));
            assert_eq!(counts(n), vec![1; n]);

            let mut owning = Entries::<Reference>::new(0);
            for res in &r[..n] {
                owning.insert(crate::engine::Entry::new(&res.core, Access::Shared));
            }
            let owning = owning.into_owned();
            // SAFETY: owning: nothing is assumed.
            let owning = unsafe { owning.assume_static() };
            let copy = owning.owned_copy();
            assert_eq!(
                counts(n),
                vec![3; n],
                "an owning container's copy must count"
            );
            drop((copy, owning));
            assert_eq!(counts(n), vec![1; n]);
        }
    }
}
