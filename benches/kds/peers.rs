//! The locks compared, behind one small trait (as parking_lot's own benchmark does): kds's
//! lock-free engine, the mutex reference, and what a Rust user would write instead: one
//! `RwLock` per resource, taken in sorted address order (`parking_lot`, `std`, and `tokio`
//! for the async path, driven here by a minimal `block_on`). Two baselines implement [`Peer`]
//! in files of their own: `seed-minimal` (`seed_minimal.rs`, a lean port of the seed's
//! global-mutex design) and `wait-die` (`wait_die.rs`, the kernel's ww_mutex + `drm_exec`
//! retry loop).

use kds::generic::{Resource, ResourceSet};
use kds::Engine;
use std::sync::Arc;

/// A way to lock a set of resources, each shared or exclusive, all at once.
pub trait Peer: 'static {
    /// Name in reports.
    const NAME: &'static str;
    /// One resource.
    type Res: Send + Sync;
    /// A prepared set (built once, locked many times).
    type Set: Send + Sync;
    /// A new resource.
    fn resource() -> Self::Res;
    /// A set of `(resource, exclusive)` entries.
    fn set(entries: &[(&Self::Res, bool)]) -> Self::Set;
    /// Locks the whole set (blocking), runs `f`, releases.
    fn with<R>(set: &Self::Set, f: impl FnOnce() -> R) -> R;
}

/// A kds engine through its blocking API.
pub struct Kds<E>(std::marker::PhantomData<E>);

impl<E: Engine> Peer for Kds<E> {
    const NAME: &'static str = E::NAME;
    type Res = Resource<E>;
    /// Owned (`into_owned`), as the peers' sorted lists own their locks; `lock()` borrows it
    /// and takes no reference count.
    type Set = ResourceSet<'static, E>;
    fn resource() -> Self::Res {
        Resource::new()
    }
    fn set(entries: &[(&Self::Res, bool)]) -> Self::Set {
        entries
            .iter()
            .fold(ResourceSet::new(), |s, &(r, x)| {
                if x {
                    s.exclusive(r)
                } else {
                    s.shared(r)
                }
            })
            .into_owned()
    }
    /// `lock()`: kds's scoped guard (no reference counts on the fast path), as the RwLock
    /// peers use theirs.
    #[inline]
    fn with<R>(set: &Self::Set, f: impl FnOnce() -> R) -> R {
        let guard = set.lock().expect("a plain lock cannot fail");
        let r = f();
        drop(guard);
        r
    }
}

/// Sorts by address and merges duplicates (exclusive wins), as a careful user would.
fn sorted<L>(entries: &[(&Arc<L>, bool)]) -> Vec<(Arc<L>, bool)> {
    let mut v: Vec<(Arc<L>, bool)> = entries.iter().map(|&(r, x)| (r.clone(), x)).collect();
    v.sort_by_key(|(r, _)| Arc::as_ptr(r) as usize);
    v.dedup_by(|b, a| {
        let same = Arc::ptr_eq(&a.0, &b.0);
        if same {
            a.1 |= b.1;
        }
        same
    });
    v
}

/// `parking_lot::RwLock` per resource, sorted order.
pub struct ParkingLot;

impl Peer for ParkingLot {
    const NAME: &'static str = "parking_lot RwLock";
    type Res = Arc<parking_lot::RwLock<()>>;
    type Set = Vec<(Self::Res, bool)>;
    fn resource() -> Self::Res {
        Arc::default()
    }
    fn set(entries: &[(&Self::Res, bool)]) -> Self::Set {
        sorted(entries)
    }
    #[inline]
    fn with<R>(set: &Self::Set, f: impl FnOnce() -> R) -> R {
        let mut read = smallvec::SmallVec::<[_; 8]>::new();
        let mut write = smallvec::SmallVec::<[_; 8]>::new();
        for (l, x) in set {
            if *x {
                write.push(l.write());
            } else {
                read.push(l.read());
            }
        }
        f()
    }
}

/// `std::sync::RwLock` per resource, sorted order.
pub struct StdRwLock;

impl Peer for StdRwLock {
    const NAME: &'static str = "std RwLock";
    type Res = Arc<std::sync::RwLock<()>>;
    type Set = Vec<(Self::Res, bool)>;
    fn resource() -> Self::Res {
        Arc::default()
    }
    fn set(entries: &[(&Self::Res, bool)]) -> Self::Set {
        sorted(entries)
    }
    #[inline]
    fn with<R>(set: &Self::Set, f: impl FnOnce() -> R) -> R {
        let mut read = smallvec::SmallVec::<[_; 8]>::new();
        let mut write = smallvec::SmallVec::<[_; 8]>::new();
        for (l, x) in set {
            if *x {
                write.push(l.write().unwrap());
            } else {
                read.push(l.read().unwrap());
            }
        }
        f()
    }
}

/// `tokio::sync::RwLock` per resource, sorted order, awaited through `block_on`.
pub struct Tokio;

impl Peer for Tokio {
    const NAME: &'static str = "tokio RwLock";
    type Res = Arc<tokio::sync::RwLock<()>>;
    type Set = Vec<(Self::Res, bool)>;
    fn resource() -> Self::Res {
        Arc::default()
    }
    fn set(entries: &[(&Self::Res, bool)]) -> Self::Set {
        sorted(entries)
    }
    #[inline]
    fn with<R>(set: &Self::Set, f: impl FnOnce() -> R) -> R {
        futures_executor::block_on(async {
            let mut read = smallvec::SmallVec::<[_; 8]>::new();
            let mut write = smallvec::SmallVec::<[_; 8]>::new();
            for (l, x) in set {
                if *x {
                    write.push(l.write().await);
                } else {
                    read.push(l.read().await);
                }
            }
            f()
        })
    }
}
