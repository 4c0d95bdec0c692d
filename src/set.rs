//! [`ResourceSet`]: the builder every request starts from, and the blocking waits.

use crate::backoff::spin_then_yield;
use crate::delivery::{self, flush, Waiter};
use crate::engine::{Engine, Entry, Holder, SetEntry, SetKind};
use crate::future::Acquire;
use crate::guard::{Guard, Pending, SetGuard};
use crate::resource::Resource;
use crate::sync::{park_timeout, thread};
use crate::{Access, Dispatch, Error, Interrupt, Locked};
use smallvec::SmallVec;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// The engine's request for a set of `entries` (sync, or async with `policy`).
pub(crate) fn new_request<E: Engine>(
    entries: &[Entry<E>],
    sync: bool,
    policy: Locked,
    waiter: Waiter<E>,
) -> Result<Arc<E::Request>, Error> {
    if entries.len() > MAX_SET_LEN {
        return Err(Error::BadSet("more than MAX_SET_LEN resources in one set"));
    }
    let kind = SetKind {
        sync,
        policy: if sync { Locked::Wait } else { policy },
    };
    Ok(E::new_request(entries, kind, waiter))
}

/// Takes `entries` on the engine's fast path for `holder`, if the engine has one and every
/// resource is free: `true` if held. A set over `MAX_SET_LEN` is left to the queued way, which
/// refuses it.
#[inline]
pub(crate) fn take_fast<E: Engine, T: SetEntry<E::Core>>(entries: &[T], holder: Holder) -> bool {
    if !E::FAST_PATH || entries.len() > MAX_SET_LEN {
        return false;
    }
    if E::try_fast(entries, holder) {
        return true;
    }
    // A failed attempt may have granted sets queued behind its transient holds.
    flush();
    false
}

/// `take_fast` for an async set: only with the Wait policy, whose grant does not depend on
/// who holds what (rule 8).
#[inline]
pub(crate) fn fast_async<E: Engine>(entries: &[Entry<E>], policy: Locked) -> bool {
    policy == Locked::Wait
        && crate::lockfree::async_fast_enabled()
        && take_fast::<E, _>(entries, Holder::Async)
}

/// Puts `entries` in set order: sorted by `Engine::order_key` (the engines' fixed resource
/// order), a resource named twice merged into one entry, exclusive winning (spec rule 11);
/// `set_access` gives the kept entry the merged mode. For sets built by pushing (a
/// `BorrowedSet`, `ResourceSet`'s `Extend`), sorted once instead of at every step.
#[inline]
pub(crate) fn sort_merge<E: Engine, A: smallvec::Array>(
    entries: &mut SmallVec<A>,
    set_access: impl Fn(&mut A::Item, Access),
) where
    A::Item: SetEntry<E::Core>,
{
    entries.sort_unstable_by_key(|entry| E::order_key(entry.core()));
    entries.dedup_by(|later, kept| {
        let same = Arc::ptr_eq(later.core(), kept.core());
        if same {
            set_access(kept, kept.access().merge(later.access()));
        }
        same
    });
}

/// A set's entries for `Debug` output: each resource's address and access mode.
pub(crate) fn debug_entries<E: Engine, T: SetEntry<E::Core>>(
    entries: &[T],
) -> Vec<(*const E::Core, Access)> {
    entries
        .iter()
        .map(|entry| (Arc::as_ptr(entry.core()), entry.access()))
        .collect()
}

/// The deadline `timeout` from now, or none if that instant cannot be represented (the wait
/// then has no deadline: it would outlast the process anyway). Never panics.
fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// A set of resources, each with an access mode, to be locked together.
///
/// Build it with [`exclusive`](Self::exclusive), [`shared`](Self::shared) and
/// [`access`](Self::access), then request it as many times as you like:
/// blocking with [`wait`](Self::wait), [`lock`](Self::lock), [`wait_timeout`](Self::wait_timeout),
/// [`wait_interruptible`](Self::wait_interruptible) or [`try_acquire`](Self::try_acquire) (a
/// *sync* set), or asynchronously with [`on_grant`](Self::on_grant) or
/// [`acquire`](Self::acquire) (an *async* set). Every request places the whole set in the
/// resources' queues at once, so two sets that name the same resources in opposite orders
/// cannot deadlock. The crate docs have a table of which request to use when.
///
/// A resource named twice is merged into one link, exclusive winning (spec rule 11): a set
/// never waits for itself. An empty set is granted at once. Building a set clones one handle
/// per resource; a set is `Send + Sync` and cheap to keep around and request again.
///
/// ```
/// use kds::{Resource, ResourceSet};
///
/// let (color, depth, texture) = (Resource::new(), Resource::new(), Resource::new());
/// // Render into `color` and `depth`, sample `texture`.
/// let pass = ResourceSet::new().exclusive(&color).exclusive(&depth).shared(&texture);
/// assert_eq!(pass.len(), 3);
/// for _frame in 0..3 {
///     let _held = pass.lock()?; // all three, or wait
///     // ... draw ...
/// } // released here
/// # Ok::<(), kds::Error>(())
/// ```
pub struct ResourceSet<E: Engine> {
    /// Sorted by `Engine::order_key` (the engines' fixed resource order), no duplicates.
    entries: SmallVec<[Entry<E>; 4]>,
    policy: Locked,
}

impl<E: Engine> ResourceSet<E> {
    /// An empty set (granted at once if requested as it is).
    ///
    /// ```
    /// let set = kds::ResourceSet::new();
    /// assert!(set.is_empty());
    /// drop(set.wait()?); // nothing to wait for
    /// # Ok::<(), kds::Error>(())
    /// ```
    pub fn new() -> Self {
        ResourceSet {
            entries: SmallVec::new(),
            policy: Locked::Wait,
        }
    }

    /// Adds `resource` in exclusive mode: while the set is held, nobody else holds it.
    ///
    /// ```
    /// use kds::{Error, Resource, ResourceSet};
    ///
    /// let buffer = Resource::new();
    /// let writer = ResourceSet::new().exclusive(&buffer);
    /// let held = writer.wait()?;
    /// // A second writer (or a reader) cannot get in meanwhile.
    /// assert_eq!(writer.try_acquire().unwrap_err(), Error::WouldBlock);
    /// drop(held);
    /// # Ok::<(), kds::Error>(())
    /// ```
    pub fn exclusive(self, resource: &Resource<E>) -> Self {
        self.access(resource, Access::Exclusive)
    }

    /// Adds `resource` in shared mode: any number of shared holders at once, but no exclusive
    /// one; a shared request queued behind an exclusive one waits for it (no overtaking).
    ///
    /// ```
    /// use kds::{Resource, ResourceSet};
    ///
    /// let buffer = Resource::new();
    /// let reader = ResourceSet::new().shared(&buffer);
    /// let first = reader.wait()?;
    /// let second = reader.try_acquire()?; // readers share
    /// drop((first, second));
    /// # Ok::<(), kds::Error>(())
    /// ```
    pub fn shared(self, resource: &Resource<E>) -> Self {
        self.access(resource, Access::Shared)
    }

    /// Adds `resource` in mode `access`. Naming a resource again merges the modes, exclusive
    /// winning, so a set never waits for itself.
    ///
    /// ```
    /// use kds::{Access, Resource, ResourceSet};
    ///
    /// let buffer = Resource::new();
    /// let set = ResourceSet::new()
    ///     .access(&buffer, Access::Shared)
    ///     .access(&buffer, Access::Exclusive); // merged: one exclusive entry
    /// assert_eq!(set.len(), 1);
    /// drop(set.wait()?);
    /// # Ok::<(), kds::Error>(())
    /// ```
    pub fn access(mut self, resource: &Resource<E>, access: Access) -> Self {
        let key = E::order_key(&resource.core);
        match self
            .entries
            .binary_search_by_key(&key, |(core, _)| E::order_key(core))
        {
            Ok(i) => self.entries[i].1 = self.entries[i].1.merge(access),
            Err(i) => self.entries.insert(i, (Arc::clone(&resource.core), access)),
        }
        self
    }

    /// A set of `entries` already in set order (sorted by `Engine::order_key`, no
    /// duplicates), with the default policy.
    pub(crate) fn from_sorted(entries: SmallVec<[Entry<E>; 4]>) -> Self {
        ResourceSet {
            entries,
            policy: Locked::Wait,
        }
    }

    /// The policy of async requests of this set towards sync-locked resources, those a
    /// blocking (sync) set holds or waits for (default [`Locked::Wait`]; the seed's
    /// `KDS_FLAG_LOCKED_*`). Sync requests ignore it. See [`Locked`] for an example.
    pub fn locked(mut self, policy: Locked) -> Self {
        self.policy = policy;
        self
    }

    /// Number of distinct resources in the set (duplicates merged).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the set names no resource.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn request(&self, sync: bool, waiter: Waiter<E>) -> Result<Arc<E::Request>, Error> {
        new_request(&self.entries, sync, self.policy, waiter)
    }

    /// Blocks until the whole set is granted (the seed's `kds_waitall` without timeout) and
    /// returns a [`Guard`] that owns it: dropping the guard releases the set. The guard is
    /// independent of `self` (it may outlive it and move to another thread); for a scoped hold,
    /// [`lock`](Self::lock) is cheaper.
    ///
    /// The set is a *sync* set: while it holds or waits, its resources are sync-locked, which
    /// async requests with [`Locked::Fail`] or [`Locked::Ignore`] treat specially. A waiting
    /// thread spins briefly, then parks. Inside a direct callback, grants this thread owes
    /// others are delivered before it blocks.
    ///
    /// ```
    /// use kds::{Resource, ResourceSet};
    /// use std::thread;
    ///
    /// let frame = Resource::new();
    /// let gpu = ResourceSet::new().exclusive(&frame).wait()?;
    /// let display = {
    ///     let frame = frame.clone();
    ///     thread::spawn(move || ResourceSet::new().shared(&frame).wait().map(drop))
    /// };
    /// drop(gpu); // the display's wait returns
    /// display.join().unwrap()?;
    /// # Ok::<(), kds::Error>(())
    /// ```
    pub fn wait(&self) -> Result<Guard<E>, Error> {
        self.wait_until(None, None)
    }

    /// [`wait`](Self::wait) for a set used once: consumes the set and hands its resource
    /// handles to the guard instead of cloning them, so the one-liner costs no
    /// reference-count traffic beyond building the set. Same blocking and errors as `wait`.
    ///
    /// ```
    /// use kds::{Resource, ResourceSet};
    ///
    /// let (src, dst) = (Resource::new(), Resource::new());
    /// let held = ResourceSet::new().shared(&src).exclusive(&dst).wait_owned()?;
    /// // ... copy src into dst ...
    /// drop(held);
    /// # Ok::<(), kds::Error>(())
    /// ```
    pub fn wait_owned(self) -> Result<Guard<E>, Error> {
        if take_fast::<E, _>(&self.entries, Holder::Sync) {
            return Ok(Guard::from_fast(self.entries, Holder::Sync));
        }
        self.wait_queued(None, None)
    }

    /// Blocks until the set is granted or `timeout` has passed: then `Err(Error::Timeout)`,
    /// with nothing left queued (the seed's `kds_waitall` returning NULL). If the grant races
    /// the timeout, the grant wins and the set is returned: never both, never neither. Any
    /// `Duration` is accepted: one too long to be added to [`Instant::now`] (such as
    /// `Duration::MAX`) waits without a deadline.
    ///
    /// ```
    /// use kds::{Error, Resource, ResourceSet};
    /// use std::time::Duration;
    ///
    /// let buffer = Resource::new();
    /// let held = ResourceSet::new().exclusive(&buffer).wait()?;
    /// // One frame period, then give up: nothing stays queued.
    /// let late = ResourceSet::new().shared(&buffer).wait_timeout(Duration::from_millis(16));
    /// assert_eq!(late.unwrap_err(), Error::Timeout);
    /// drop(held);
    /// # Ok::<(), kds::Error>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Result<Guard<E>, Error> {
        self.wait_until(deadline_after(timeout), None)
    }

    /// Blocks until the set is granted, `timeout` (if any) has passed, or `interrupt` fires:
    /// then `Err(Error::Timeout)` or `Err(Error::Interrupted)`, with nothing left queued.
    /// An interrupt that fired before the call (and was not cleared) interrupts at once
    /// unless the set can be granted at once. A `timeout` too long to be added to
    /// [`Instant::now`] waits without a deadline. This is what a kernel signal was to the
    /// seed's `kds_waitall`.
    ///
    /// ```
    /// use kds::{Error, Interrupt, Resource, ResourceSet};
    /// use std::thread;
    ///
    /// let buffer = Resource::new();
    /// let held = ResourceSet::new().exclusive(&buffer).wait()?;
    /// let stop = Interrupt::new();
    /// let waiter = {
    ///     let (buffer, stop) = (buffer.clone(), stop.clone());
    ///     thread::spawn(move || ResourceSet::new().exclusive(&buffer).wait_interruptible(None, &stop).map(drop))
    /// };
    /// stop.interrupt(); // e.g. the application is shutting down
    /// assert_eq!(waiter.join().unwrap().unwrap_err(), Error::Interrupted);
    /// drop(held);
    /// # Ok::<(), kds::Error>(())
    /// ```
    pub fn wait_interruptible(
        &self,
        timeout: Option<Duration>,
        interrupt: &Interrupt,
    ) -> Result<Guard<E>, Error> {
        self.wait_until(timeout.and_then(deadline_after), Some(interrupt))
    }

    /// Blocks until the whole set is granted, like [`wait`](Self::wait), returning a guard
    /// that borrows this set: on the uncontended fast path neither taking nor releasing the
    /// set touches a reference count or the heap. Use it to hold a set for a scope; use
    /// [`wait`](Self::wait) when the guard must outlive the set or move to another thread
    /// independently of it.
    ///
    /// ```
    /// use kds::{Resource, ResourceSet};
    ///
    /// let (src, dst) = (Resource::new(), Resource::new());
    /// let blit = ResourceSet::new().shared(&src).exclusive(&dst); // build once
    /// for _ in 0..1000 {
    ///     let _g = blit.lock()?; // cheapest hold: no allocation, no reference counts
    ///     // ... copy src into dst ...
    /// }
    /// # Ok::<(), kds::Error>(())
    /// ```
    pub fn lock(&self) -> Result<SetGuard<'_, E>, Error> {
        if take_fast::<E, _>(&self.entries, Holder::Sync) {
            return Ok(SetGuard::fast(&self.entries));
        }
        self.wait_queued(None, None).map(SetGuard::queued)
    }

    /// Takes the set if it can be granted at once, else `Err(Error::WouldBlock)` with nothing
    /// left queued. Never blocks. It is a sync request (it counts as sync-locking while it
    /// holds).
    ///
    /// ```
    /// use kds::{Error, Resource, ResourceSet};
    ///
    /// let buffer = Resource::new();
    /// let set = ResourceSet::new().exclusive(&buffer);
    /// let held = set.try_acquire()?;
    /// assert_eq!(set.try_acquire().unwrap_err(), Error::WouldBlock);
    /// drop(held);
    /// assert!(set.try_acquire().is_ok());
    /// # Ok::<(), kds::Error>(())
    /// ```
    pub fn try_acquire(&self) -> Result<Guard<E>, Error> {
        if let Some(guard) = self.try_fast()? {
            return Ok(guard);
        }
        self.try_queued()
    }

    /// The queued way of `try_acquire` (after the fast path, if any, refused): enqueue, and
    /// cancel unless granted at once.
    pub(crate) fn try_queued(&self) -> Result<Guard<E>, Error> {
        let req = self.request(true, Waiter::thread())?;
        if delivery::enqueue::<E>(&req)? || E::is_granted(&req) || !E::cancel(&req) {
            return Ok(Guard::from_granted(req));
        }
        flush();
        Err(Error::WouldBlock)
    }

    /// The engine's fast path for a sync set: every resource taken at once without queueing,
    /// if their queues are empty (see `Engine::try_fast`).
    #[inline]
    fn try_fast(&self) -> Result<Option<Guard<E>>, Error> {
        if !E::FAST_PATH {
            return Ok(None);
        }
        if self.entries.len() > MAX_SET_LEN {
            return Err(Error::BadSet("more than MAX_SET_LEN resources in one set"));
        }
        Ok(take_fast::<E, _>(&self.entries, Holder::Sync)
            .then(|| Guard::from_fast(self.entries.clone(), Holder::Sync)))
    }

    /// The fast path for an async set (`on_grant` with direct dispatch, `acquire`): only
    /// with the Wait policy, whose grant does not depend on who holds what (rule 8).
    #[inline]
    fn try_fast_async(&self) -> Option<Guard<E>> {
        fast_async::<E>(&self.entries, self.policy)
            .then(|| Guard::from_fast(self.entries.clone(), Holder::Async))
    }

    fn wait_until(
        &self,
        deadline: Option<Instant>,
        interrupt: Option<&Interrupt>,
    ) -> Result<Guard<E>, Error> {
        if let Some(guard) = self.try_fast()? {
            return Ok(guard);
        }
        self.wait_queued(deadline, interrupt)
    }

    /// The queued way of a blocking wait (after the fast path, if any, refused).
    pub(crate) fn wait_queued(
        &self,
        deadline: Option<Instant>,
        interrupt: Option<&Interrupt>,
    ) -> Result<Guard<E>, Error> {
        let req = self.request(true, Waiter::thread())?;
        if delivery::enqueue::<E>(&req)? {
            return Ok(Guard::from_granted(req));
        }
        let waiter = E::waiter(&req);
        // Inside a direct callback, grants this thread owes others must go out before it
        // blocks (one of them may be what frees our set).
        delivery::flush_before_blocking();
        if spin_then_yield(|| waiter.is_delivered(), deadline) {
            return Ok(Guard::from_granted(req));
        }
        let me = thread::current();
        if let Some(int) = interrupt {
            int.register(&me);
        }
        let outcome = loop {
            if !waiter.announce_park() || waiter.is_delivered() {
                break None;
            }
            if interrupt.is_some_and(Interrupt::is_interrupted) {
                break Some(Error::Interrupted);
            }
            match deadline {
                None => thread::park(),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        break Some(Error::Timeout);
                    }
                    park_timeout(deadline - now);
                }
            }
        };
        if let Some(int) = interrupt {
            int.unregister(&me);
        }
        match outcome {
            None => Ok(Guard::from_granted(req)),
            Some(err) => {
                waiter.withdraw_park();
                if E::cancel(&req) {
                    flush();
                    Err(err)
                } else {
                    // Too late to cancel: the set is granted and ours (spec rule 7).
                    Ok(Guard::from_granted(req))
                }
            }
        }
    }

    /// Requests the set asynchronously; `callback` runs with the guard once the whole set is
    /// granted, where `dispatch` says (the seed's `kds_async_waitall`). With
    /// [`Dispatch::Direct`] and everything free, it runs before `on_grant` returns.
    ///
    /// The closure is dropped as soon as it has run, or when the request is cancelled or
    /// refused, so it may own handles of the set's own resources. What it must not own is a
    /// guard that the set waits behind: that set is then never granted and the two keep each
    /// other alive, as two `Arc`s pointing at each other would.
    ///
    /// Errors: [`Error::Busy`] when the set's policy is [`Locked::Fail`] and a resource is
    /// sync-locked; [`Error::BadSet`] for a set over [`MAX_SET_LEN`]. Either way nothing is
    /// queued and the closure is dropped without running. A callback that panics is caught:
    /// its guard is dropped while unwinding, which releases the set.
    ///
    /// ```
    /// use kds::{Dispatch, Resource, ResourceSet, Worker};
    /// use std::sync::mpsc;
    ///
    /// let frame = Resource::new();
    /// let gpu = ResourceSet::new().exclusive(&frame).wait()?;
    ///
    /// // The display asks for the frame and is told on its own thread when it is ready.
    /// let display = Worker::spawn("display")?;
    /// let (flipped, on_screen) = mpsc::channel();
    /// let pending = ResourceSet::new().shared(&frame).on_grant(Dispatch::Worker(display), move |guard| {
    ///     // ... queue the page flip; the frame stays held until `guard` drops ...
    ///     flipped.send(()).unwrap();
    ///     drop(guard);
    /// })?;
    /// assert!(!pending.is_granted());
    /// drop(gpu); // rendering done: the display's callback runs on its worker
    /// on_screen.recv().unwrap();
    /// # Ok::<(), kds::Error>(())
    /// ```
    ///
    /// It never panics itself; a panic from the closure's own `Drop`, when a refused request
    /// drops it, reaches the caller (nothing is queued then). With [`Dispatch::Pool`], if
    /// rayon's pool cannot start, callbacks run on a thread of their own instead.
    pub fn on_grant<F>(&self, dispatch: Dispatch, callback: F) -> Result<Pending<E>, Error>
    where
        F: FnOnce(Guard<E>) + Send + 'static,
    {
        // Everything free: a direct callback runs here and now, and no request is made at all
        // (no allocation). Not inside another direct callback on this thread: a chain of
        // callbacks that each request the next set must loop in the trampoline, not nest.
        if matches!(dispatch, Dispatch::Direct) {
            if let Some(direct) = delivery::enter_direct() {
                let callback = match self.try_fast_async() {
                    Some(guard) => {
                        delivery::contain(move || callback(guard));
                        None
                    }
                    None => Some(callback),
                };
                drop(direct); // leaves the trampoline, delivering what was queued meanwhile
                let Some(callback) = callback else {
                    return Ok(Pending { req: None });
                };
                return self.on_grant_queued(dispatch, callback);
            }
        }
        self.on_grant_queued(dispatch, callback)
    }

    /// `on_grant` through the queues: one request.
    fn on_grant_queued<F>(&self, dispatch: Dispatch, callback: F) -> Result<Pending<E>, Error>
    where
        F: FnOnce(Guard<E>) + Send + 'static,
    {
        let req = self.request(false, Waiter::callback(dispatch, Box::new(callback)))?;
        if let Err(e) = delivery::enqueue::<E>(&req) {
            // SAFETY: the engine refused the request: its grant will never be delivered.
            unsafe { E::waiter(&req).forget_client() };
            return Err(e);
        }
        Ok(Pending { req: Some(req) })
    }

    /// Requests the set asynchronously as a future. Nothing is queued until it is first
    /// polled; dropping it un-queues the set (or releases it, if it was granted meanwhile).
    /// It is an async set and honours the set's [`Locked`] policy: with [`Locked::Fail`] it
    /// resolves to `Err(Error::Busy)`. Works on any executor (the waker is all it uses).
    ///
    /// ```
    /// use kds::{Resource, ResourceSet};
    ///
    /// let frame = Resource::new();
    /// let compose = async {
    ///     let guard = ResourceSet::new().shared(&frame).acquire().await?;
    ///     // ... composite `frame` ...
    ///     drop(guard);
    ///     Ok::<(), kds::Error>(())
    /// };
    /// futures_executor::block_on(compose)?;
    /// # Ok::<(), kds::Error>(())
    /// ```
    pub fn acquire(&self) -> Acquire<E> {
        Acquire::new(self.entries.clone(), self.policy)
    }
}

impl<E: Engine> Default for ResourceSet<E> {
    fn default() -> Self {
        Self::new()
    }
}

/// Adds resources in place, each with its mode, like calling [`access`](ResourceSet::access)
/// for each but without moving the set at every step: the entries are pushed, then sorted and
/// merged once (duplicates merge, exclusive winning). The cheapest way to build an owned set
/// of several resources.
///
/// ```
/// use kds::{Access, Resource, ResourceSet};
///
/// let layers: Vec<Resource> = (0..3).map(|_| Resource::new()).collect();
/// let output = Resource::new();
/// let mut compose = ResourceSet::new();
/// compose.extend(layers.iter().map(|layer| (layer, Access::Shared)));
/// compose.extend([(&output, Access::Exclusive)]);
/// assert_eq!(compose.len(), 4);
/// drop(compose.wait()?);
/// # Ok::<(), kds::Error>(())
/// ```
impl<'r, E: Engine> Extend<(&'r Resource<E>, Access)> for ResourceSet<E> {
    fn extend<I: IntoIterator<Item = (&'r Resource<E>, Access)>>(&mut self, iter: I) {
        let before = self.entries.len();
        self.entries.extend(
            iter.into_iter()
                .map(|(resource, access)| (Arc::clone(&resource.core), access)),
        );
        if self.entries.len() > before {
            sort_merge::<E, _>(&mut self.entries, |entry, access| entry.1 = access);
        }
    }
}

/// A set of the resources named, each with its mode, built in place (see the `Extend` impl):
/// the one-liner for an owned set, `ResourceSet::from_iter([..]).wait_owned()`.
///
/// ```
/// use kds::{Access, Resource, ResourceSet};
///
/// let (src, dst) = (Resource::new(), Resource::new());
/// let held = ResourceSet::from_iter([(&src, Access::Shared), (&dst, Access::Exclusive)])
///     .wait_owned()?;
/// // ... copy src into dst ...
/// drop(held);
/// # Ok::<(), kds::Error>(())
/// ```
impl<'r, E: Engine> FromIterator<(&'r Resource<E>, Access)> for ResourceSet<E> {
    fn from_iter<I: IntoIterator<Item = (&'r Resource<E>, Access)>>(iter: I) -> Self {
        let mut set = ResourceSet::new();
        set.extend(iter);
        set
    }
}

impl<E: Engine> Clone for ResourceSet<E> {
    fn clone(&self) -> Self {
        ResourceSet {
            entries: self.entries.clone(),
            policy: self.policy,
        }
    }
}

impl<E: Engine> fmt::Debug for ResourceSet<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResourceSet")
            .field("engine", &E::NAME)
            .field("entries", &debug_entries::<E, _>(&self.entries))
            .field("policy", &self.policy)
            .finish()
    }
}
