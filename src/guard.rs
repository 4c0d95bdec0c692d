//! [`Guard`]: a granted, held set.

use crate::delivery::flush;
use crate::engine::{Engine, Holder};
use crate::entries::Entries;
use std::fmt;
use std::mem::ManuallyDrop;
use std::sync::Arc;

/// A granted, held set. Dropping it (or [`release`](Guard::release)) releases the set (the
/// seed's `kds_resource_set_release`), which may grant other sets and run their direct
/// callbacks on this thread.
///
/// Every request path gives this one type: [`wait`](crate::ResourceSet::wait) and its timed
/// and interruptible forms, [`lock`](crate::ResourceSet::lock),
/// [`try_acquire`](crate::ResourceSet::try_acquire), the guard an
/// [`on_grant`](crate::ResourceSet::on_grant) callback receives, and the output of an
/// [`acquire`](crate::ResourceSet::acquire) future. It is `Send` and `Sync` and may be released
/// on any thread.
///
/// `'a` is how long it may live, like the guards of `RwLock::read` and `write`: a guard of a
/// set built where it is used borrows that set's resources, so it costs no reference count
/// and cannot outlive them. [`into_owned`](Guard::into_owned) makes a `Guard<'static>` that
/// owns a handle of each resource and may go anywhere (another thread, a struct), as tokio's
/// `*_owned` guards do; so does requesting an owned set
/// ([`ResourceSet::into_owned`](crate::ResourceSet::into_owned)). A callback's guard is
/// always `'static`.
///
/// ```
/// use kds::{Resource, ResourceSet};
///
/// let buffer = Resource::new();
/// {
///     let _held = ResourceSet::new().exclusive(&buffer).wait()?; // borrows `buffer`
///     assert!(ResourceSet::new().shared(&buffer).try_acquire().is_err());
/// } // released here
///
/// // A guard that outlives the borrow: released on another thread.
/// let guard = ResourceSet::new().exclusive(&buffer).wait()?.into_owned();
/// let renderer = std::thread::spawn(move || {
///     // ... render ...
///     guard.release(); // same as drop(guard)
/// });
/// renderer.join().unwrap();
/// assert!(ResourceSet::new().exclusive(&buffer).try_acquire().is_ok());
/// # Ok::<(), kds::Error>(())
/// ```
#[must_use = "dropping a Guard releases the set at once"]
pub struct Guard<'a, E: Engine> {
    held: Held<'a, E>,
}

/// How a guard holds its set. The fast case is the entries themselves, at offset 0 and with
/// no tag of its own (the enum's tag is in the niche of `Entries`' header word): a guard
/// has a set's layout, so a set's entries copied into it keep their 16-byte phase, and each
/// move of the guard (into the `Result`, out to the caller) is as short as a set's. A one
/// word tag in front made three of those copies stall on store forwarding.
enum Held<'a, E: Engine> {
    /// Taken on the engine's fast path (`Ops::try_fast`) by a sync or an async set: the
    /// resources, the holder as their byte (`Holder::to_byte`).
    Fast(Entries<'a, E>),
    /// The other two.
    Other(Other<'a, E>),
}

enum Other<'a, E: Engine> {
    /// Taken on the fast path in place by `ResourceSet::lock` and its kin (sync) or
    /// `ResourceSet::try_grant_now` (async): the set's own entries, lent for as long as the
    /// guard borrows the set (nothing copied), and the holder they were taken for.
    Lent(&'a Entries<'a, E>, Holder),
    /// Granted through the queues: the engine's request, which owns a handle of each
    /// resource.
    Queued(Arc<E::Request>),
}

impl<'a, E: Engine> Guard<'a, E> {
    /// Wraps a set that `Ops::try_fast` took for `holder`.
    #[inline(always)]
    pub(crate) fn fast(mut entries: Entries<'a, E>, holder: Holder) -> Self {
        entries.set_aux(holder.to_byte());
        Guard {
            held: Held::Fast(entries),
        }
    }

    /// Wraps a set's entries that `Ops::try_fast` took for `holder`, lent by their set.
    #[inline(always)]
    pub(crate) fn lent(entries: &'a Entries<'a, E>, holder: Holder) -> Self {
        Guard {
            held: Held::Other(Other::Lent(entries, holder)),
        }
    }

    /// Wraps a request the engine has granted. Exactly one guard is made per grant.
    #[inline]
    pub(crate) fn queued(req: Arc<E::Request>) -> Self {
        Guard {
            held: Held::Other(Other::Queued(req)),
        }
    }

    /// Releases the set now (same as dropping the guard). Sets waiting behind it may be
    /// granted by this call; their direct callbacks then run on this thread before it returns.
    pub fn release(self) {
        drop(self);
    }

    /// The same hold, as a guard that owns a handle of each of its resources, so it may
    /// outlive the borrow it was made with (to move to another thread, or into a struct). It
    /// takes one reference count per resource if the guard borrowed them, none otherwise (a
    /// set granted through the queues, or one already owned); the set stays held throughout.
    ///
    /// ```
    /// use kds::{Guard, Resource, ResourceSet};
    ///
    /// struct Frame {
    ///     on_screen: Option<Guard<'static>>,
    /// }
    /// let buffer = Resource::new();
    /// let mut frame = Frame { on_screen: None };
    /// frame.on_screen = Some(ResourceSet::new().shared(&buffer).wait()?.into_owned());
    /// drop(buffer); // the guard keeps the resource alive
    /// frame.on_screen = None; // released
    /// # Ok::<(), kds::Error>(())
    /// ```
    pub fn into_owned(self) -> Guard<'static, E> {
        let this = ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again, so its hold moves out exactly once
        // (into the returned guard, which releases it).
        let held = unsafe { std::ptr::read(&this.held) };
        Guard {
            held: match held {
                Held::Fast(entries) => Held::Fast(entries.into_owned()),
                Held::Other(Other::Lent(lent, holder)) => {
                    Held::Fast(Entries::owned_from(lent.as_slice(), holder.to_byte()))
                }
                Held::Other(Other::Queued(req)) => Held::Other(Other::Queued(req)),
            },
        }
    }
}

impl<E: Engine> Guard<'_, E> {
    /// Releases the guard in `slot`, leaving `None` there, runs `f` as soon as the engine has
    /// given every resource back, and only then delivers the grants the release made: the
    /// threads it woke are woken, and the direct callbacks of the sets it granted run on this
    /// thread, after `f` returns. Returns what `f` returns, or `None` without running `f` if
    /// `slot` is empty. `slot = None` is `release_then(&mut slot, || ())`.
    ///
    /// It is for front ends that keep guards in their own storage and must know when a
    /// release has stopped touching its resources, before any user code that the release
    /// enables runs: the C ABI marks the end of each release of a set that borrows its
    /// resources this way, so that `kds_resource_term` can free a resource without waiting for
    /// callbacks. The guard is released where it lies, never moved (a guard is as large as
    /// its set: moving it out first is a copy of that size on every release). `f` runs on this
    /// thread, with nothing of kds held (the set is released); the grants are delivered even
    /// if `f` panics. A kds request or release made inside `f` delivers them there, as every
    /// kds call delivers what its thread owes: keep kds calls out of `f` where the order
    /// matters.
    ///
    /// ```
    /// use kds::{Dispatch, Guard, Resource, ResourceSet};
    /// use std::sync::atomic::{AtomicU32, Ordering};
    ///
    /// static STEP: AtomicU32 = AtomicU32::new(0);
    /// let buffer = Resource::new();
    /// let mut held = Some(ResourceSet::new().exclusive(&buffer).wait()?);
    /// ResourceSet::new().exclusive(&buffer).on_grant(Dispatch::Direct, |_g| {
    ///     STEP.store(2, Ordering::Relaxed); // runs after `f`
    /// })?;
    /// let seen = Guard::release_then(&mut held, || STEP.swap(1, Ordering::Relaxed));
    /// assert_eq!((seen, STEP.load(Ordering::Relaxed)), (Some(0), 2));
    /// assert!(held.is_none());
    /// # Ok::<(), kds::Error>(())
    /// ```
    #[inline(always)]
    pub fn release_then<R>(slot: &mut Option<Self>, f: impl FnOnce() -> R) -> Option<R> {
        let guard: *mut Self = slot.as_mut()?;
        crate::timeline::release_begins();
        // One match releases the hold and drops its payload in place (an owned guard's counts,
        // a queued one's request), as `Drop` and the fields' drops do in turn.
        // SAFETY: `guard` points into `slot`, which holds it; it is released once, here (the
        // entries were taken by `try_fast` for their holder: `Guard::fast` / `Guard::lent`; a
        // queued guard is its grant's one guard), its payload is dropped once, and then `None`
        // overwrites it without dropping it again (so `Drop` never releases it a second time).
        let deliver = unsafe {
            let deliver = match &mut (*guard).held {
                Held::Fast(entries) => {
                    let holder = Holder::from_byte(entries.aux());
                    let deliver = E::release_fast(entries.as_slice(), holder);
                    std::ptr::drop_in_place(entries);
                    deliver
                }
                Held::Other(Other::Lent(entries, holder)) => {
                    E::release_fast(entries.as_slice(), *holder)
                }
                Held::Other(Other::Queued(req)) => {
                    E::release(req);
                    std::ptr::drop_in_place(req);
                    true
                }
            };
            std::ptr::write(slot, None);
            deliver
        };
        /// Delivers the grants even if `f` unwinds.
        struct Deliver(bool);
        impl Drop for Deliver {
            #[inline(always)]
            fn drop(&mut self) {
                if self.0 {
                    flush();
                }
                crate::timeline::release_ends();
            }
        }
        let _deliver = Deliver(deliver);
        Some(f())
    }
}

impl<E: Engine> Drop for Guard<'_, E> {
    #[inline(always)]
    fn drop(&mut self) {
        crate::timeline::release_begins();
        // The same release as `release_then`'s (which also drops the payload in place, in the
        // same match); here the fields drop after it. A guard that `release_then` released is
        // never dropped.
        match &self.held {
            Held::Fast(entries) => {
                let holder = Holder::from_byte(entries.aux());
                // SAFETY: `entries` were taken by `try_fast` for `holder` (`Guard::fast`), and
                // a guard is dropped once. Their counts, if owned, are given back after this,
                // when the field drops.
                if unsafe { E::release_fast(entries.as_slice(), holder) } {
                    flush();
                }
            }
            Held::Other(Other::Lent(entries, holder)) => {
                // SAFETY: `entries` were taken by `try_fast` for `holder` (`Guard::lent`), and
                // a guard is dropped once.
                if unsafe { E::release_fast(entries.as_slice(), *holder) } {
                    flush();
                }
            }
            Held::Other(Other::Queued(req)) => {
                // SAFETY: a queued guard is made once per grant (`Guard::queued`), so this is
                // that grant's only release.
                unsafe { E::release(req) };
                flush();
            }
        }
        crate::timeline::release_ends();
    }
}

impl<E: Engine> fmt::Debug for Guard<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = match self.held {
            Held::Fast(_) | Held::Other(Other::Lent(..)) => "fast",
            Held::Other(Other::Queued(_)) => "queued",
        };
        f.debug_struct("Guard")
            .field("engine", &E::NAME)
            .field("path", &path)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use crate::entries::Entries;
    use crate::{Guard, LockFree, ResourceSet};
    use std::mem::size_of;

    /// `release_then` runs `f` after the engine's release and before the grants it made are
    /// delivered (a direct callback of a set waiting behind, a blocked waiter), and delivers
    /// them even if `f` panics; on both engines.
    fn release_then_orders_f_before_delivery<E: crate::Engine>() {
        use crate::generic::{Guard, Resource, ResourceSet};
        use crate::Dispatch;
        use std::sync::atomic::{AtomicU32, Ordering};
        use std::sync::Arc;
        let r = Resource::<E>::new();
        let step = Arc::new(AtomicU32::new(0));
        let mut held = Some(ResourceSet::new().exclusive(&r).wait().unwrap());
        let seen = Arc::clone(&step);
        let _pending = ResourceSet::new()
            .exclusive(&r)
            .on_grant(Dispatch::Direct, move |_g| {
                seen.compare_exchange(1, 2, Ordering::SeqCst, Ordering::SeqCst)
                    .expect("the callback runs once, after f");
            })
            .unwrap();
        let out = Guard::release_then(&mut held, || {
            assert_eq!(
                step.swap(1, Ordering::SeqCst),
                0,
                "f runs before the callback"
            );
            7
        });
        assert_eq!((out, step.load(Ordering::SeqCst)), (Some(7), 2));
        assert!(held.is_none());
        assert_eq!(Guard::release_then(&mut held, || unreachable!()), None);
        // An owned guard (counts of its own, dropped in place).
        let mut owned = Some(
            ResourceSet::new()
                .exclusive(&r)
                .wait()
                .unwrap()
                .into_owned(),
        );
        assert_eq!(Guard::release_then(&mut owned, || 1), Some(1));
        assert!(owned.is_none() && ResourceSet::new().exclusive(&r).try_acquire().is_ok());
        // A panicking `f`: the grant is still delivered (the callback runs during the unwind).
        let mut held = Some(ResourceSet::new().exclusive(&r).wait().unwrap());
        let seen = Arc::clone(&step);
        let _pending = ResourceSet::new()
            .exclusive(&r)
            .on_grant(Dispatch::Direct, move |_g| seen.store(3, Ordering::SeqCst))
            .unwrap();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Guard::release_then(&mut held, || panic!("f panics"))
        }));
        assert!(caught.is_err());
        assert_eq!(
            step.load(Ordering::SeqCst),
            3,
            "delivered despite the panic"
        );
        assert!(ResourceSet::new().exclusive(&r).try_acquire().is_ok());
    }

    #[test]
    fn release_then_lock_free() {
        release_then_orders_f_before_delivery::<LockFree>();
    }

    #[test]
    fn release_then_reference() {
        release_then_orders_f_before_delivery::<crate::global_mutex::Reference>();
    }

    /// The guard's tag lives in the entries' niche: a guard (and a future) is exactly as large
    /// as a set, with the entries at the same place (see `Held`).
    #[test]
    fn a_guard_has_a_sets_layout() {
        assert_eq!(
            size_of::<Guard<'static>>(),
            size_of::<Entries<'static, LockFree>>()
        );
        assert_eq!(
            size_of::<ResourceSet<'static>>(),
            size_of::<Guard<'static>>()
        );
    }
}
