//! [`ResourceSet`]: the one set type every request starts from, and its request methods.

use crate::access::{Access, Locked};
use crate::delivery::{self, CallbackScope, Waiter};
use crate::engine::{debug_entries, Engine, Entry, Holder, SetKind};
use crate::entries::Entries;
use crate::error::Error;
use crate::future::Acquire;
use crate::guard::Guard;
use crate::interrupt::Interrupt;
use crate::pending::Pending;
use crate::resource::Resource;
use crate::take::{deadline_after, enqueue, new_request, take_fast, try_queued, wait_queued};
use crate::worker::Dispatch;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A set of resources, each with an access mode, to be locked together.
///
/// Build it where you use it, with [`exclusive`](Self::exclusive), [`shared`](Self::shared)
/// and [`access`](Self::access), and request it: blocking with [`wait`](Self::wait),
/// [`wait_timeout`](Self::wait_timeout), [`wait_interruptible`](Self::wait_interruptible) or
/// [`try_acquire`](Self::try_acquire) (a *sync* set), or asynchronously with
/// [`on_grant`](Self::on_grant) or [`acquire`](Self::acquire) (an *async* set). Every request
/// places the whole set in the resources' queues at once, so two sets that name the same
/// resources in opposite orders cannot deadlock. The crate docs have a table of which request
/// to use when.
///
/// A set borrows its resources for `'a`, as the guards of a sorted `RwLock`s would: building
/// one costs a push per resource and no reference count, and the [`Guard`] of a blocking
/// request borrows the resources too. A set may be kept and requested again (and again): it is
/// kept in set order as it is built, so a request never sorts. [`into_owned`](Self::into_owned)
/// makes a `ResourceSet<'static>` that owns a handle of each resource, to keep in a struct or
/// send to another thread; its guards own handles too.
///
/// A resource named twice is merged into one link, exclusive winning (spec rule 11): a set
/// never waits for itself. An empty set is granted at once. To build a set from a collection,
/// [`extend`](Extend::extend) it (or collect it with `from_iter`): that adds in place, where
/// `set = set.shared(r)` in a loop moves the whole set at each step (about 1.5 × the time of
/// the written-out chain; `docs/benchmarks.md`, section 7).
///
/// ```
/// use kds::{Resource, ResourceSet};
///
/// let (color, depth, texture) = (Resource::new(), Resource::new(), Resource::new());
/// // Render into `color` and `depth`, sample `texture`: all three, or wait.
/// let held = ResourceSet::new().exclusive(&color).exclusive(&depth).shared(&texture).wait()?;
/// // ... draw ...
/// drop(held); // released here
///
/// // Built once, requested every frame.
/// let pass = ResourceSet::new().exclusive(&color).exclusive(&depth).shared(&texture);
/// assert_eq!(pass.len(), 3);
/// for _frame in 0..3 {
///     let _held = pass.wait()?;
/// }
/// # Ok::<(), kds::Error>(())
/// ```
pub struct ResourceSet<'a, E: Engine> {
    /// In set order, no resource twice; the policy is its byte (`Locked::to_byte`).
    entries: Entries<'a, E>,
}

impl<'a, E: Engine> ResourceSet<'a, E> {
    /// An empty set (granted at once if requested as it is).
    ///
    /// ```
    /// let set = kds::ResourceSet::new();
    /// assert!(set.is_empty());
    /// drop(set.wait()?); // nothing to wait for
    /// # Ok::<(), kds::Error>(())
    /// ```
    #[inline(always)]
    pub fn new() -> Self {
        ResourceSet {
            entries: Entries::new(Locked::Wait.to_byte()),
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
    #[inline(always)]
    pub fn exclusive(self, resource: &'a Resource<E>) -> Self {
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
    #[inline(always)]
    pub fn shared(self, resource: &'a Resource<E>) -> Self {
        self.access(resource, Access::Shared)
    }

    /// Adds `resource` in mode `access`. Naming a resource again merges the modes, exclusive
    /// winning, so a set never waits for itself.
    ///
    /// ```
    /// use kds::{Access, Resource, ResourceSet};
    ///
    /// let inputs: Vec<Resource> = (0..3).map(|_| Resource::new()).collect();
    /// let output = Resource::new();
    /// let mut set = ResourceSet::new().access(&output, Access::Exclusive);
    /// for r in &inputs {
    ///     set = set.access(r, Access::Shared);
    /// }
    /// let set = set.access(&output, Access::Shared); // merged: still one exclusive entry
    /// assert_eq!(set.len(), 4);
    /// drop(set.wait()?);
    /// # Ok::<(), kds::Error>(())
    /// ```
    #[inline(always)]
    pub fn access(mut self, resource: &'a Resource<E>, access: Access) -> Self {
        self.entries.insert(Entry::new(&resource.core, access));
        self
    }

    /// The policy of async requests of this set towards sync-locked resources, those a
    /// blocking (sync) set holds or waits for (default [`Locked::Wait`]; the seed's
    /// `KDS_FLAG_LOCKED_*`). Sync requests ignore it. See [`Locked`] for an example.
    #[inline(always)]
    pub fn locked(mut self, policy: Locked) -> Self {
        self.entries.set_aux(policy.to_byte());
        self
    }

    #[inline(always)]
    fn policy(&self) -> Locked {
        Locked::from_byte(self.entries.aux())
    }

    /// Number of distinct resources in the set (duplicates merged).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the set names no resource.
    pub fn is_empty(&self) -> bool {
        self.entries.len() == 0
    }

    /// The same set, owning a handle of each resource (one reference count each) instead of
    /// borrowing them, so it can be kept anywhere: in a struct, on another thread. Its
    /// requests' guards own handles too ([`Guard<'static>`](Guard)); [`lock`](Self::lock)
    /// borrows the set instead and takes no count.
    ///
    /// ```
    /// use kds::{Resource, ResourceSet};
    ///
    /// struct Pass {
    ///     set: ResourceSet<'static>,
    /// }
    /// let target = Resource::new();
    /// let pass = Pass { set: ResourceSet::new().exclusive(&target).into_owned() };
    /// drop(target); // the set keeps the resource alive
    /// let worker = std::thread::spawn(move || pass.set.wait().map(drop));
    /// worker.join().unwrap()?;
    /// # Ok::<(), kds::Error>(())
    /// ```
    pub fn into_owned(self) -> ResourceSet<'static, E> {
        ResourceSet {
            entries: self.entries.into_owned(),
        }
    }

    /// The same set as a `ResourceSet<'static>` that still borrows its resources, taking no
    /// reference counts, on the caller's promise that they outlive it. Its copies, guards,
    /// futures and callbacks are `'static` without counts as well (where an
    /// [`into_owned`](Self::into_owned) set takes one count per resource and per copy).
    ///
    /// It is for front ends whose callers manage the resources' lifetime themselves, such as
    /// a C ABI (`kds.h`'s callers keep each `struct kds_resource` initialized while sets use
    /// it); Rust code should borrow or own instead. An owned set is returned as it is.
    ///
    /// # Safety
    ///
    /// Each resource of the set (and each one added to it later) must stay alive (some
    /// [`Resource`] handle of it not dropped) until the returned set, every copy of it, and
    /// every guard, future and pending callback made from them are dropped. (Requests that
    /// queue hold handles of their own; the promise covers what does not queue.)
    ///
    /// ```
    /// use kds::{Resource, ResourceSet};
    ///
    /// let buffer = Resource::new();
    /// // SAFETY: `buffer` outlives the set and its guard, both dropped in this scope.
    /// let set: ResourceSet<'static> = unsafe { ResourceSet::new().exclusive(&buffer).assume_static() };
    /// let guard = set.wait()?; // a `Guard<'static>` that took no reference count
    /// drop(guard);
    /// drop(set);
    /// # Ok::<(), kds::Error>(())
    /// ```
    #[inline]
    pub unsafe fn assume_static(self) -> ResourceSet<'static, E> {
        ResourceSet {
            // SAFETY: the caller's promise is `Entries::assume_static`'s.
            entries: unsafe { self.entries.assume_static() },
        }
    }

    /// Blocks until the whole set is granted (the seed's `kds_waitall` without timeout) and
    /// returns the [`Guard`]: dropping it releases the set. The guard borrows the resources as
    /// the set does (or owns handles, for an owned set); it does not borrow the set, so
    /// `ResourceSet::new().exclusive(&a).wait()` is a whole request in one line.
    ///
    /// The set is a *sync* set: while it holds or waits, its resources are sync-locked, which
    /// async requests with [`Locked::Fail`] or [`Locked::Ignore`] treat specially. Uncontended,
    /// it takes each resource with one atomic operation and allocates nothing; else a waiting
    /// thread spins briefly, then parks. Inside a direct callback, grants this thread owes
    /// others are delivered before it blocks.
    ///
    /// ```
    /// use kds::{Resource, ResourceSet};
    /// use std::thread;
    ///
    /// let frame = Resource::new();
    /// let gpu = ResourceSet::new().exclusive(&frame).wait()?;
    /// thread::scope(|s| {
    ///     let display = s.spawn(|| ResourceSet::new().shared(&frame).wait().map(drop));
    ///     drop(gpu); // the display's wait returns
    ///     display.join().unwrap()
    /// })?;
    /// # Ok::<(), kds::Error>(())
    /// ```
    #[inline]
    pub fn wait(&self) -> Result<Guard<'a, E>, Error> {
        self.take(|set| set.wait_queued_guard(None, None))
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
    #[inline]
    pub fn wait_timeout(&self, timeout: Duration) -> Result<Guard<'a, E>, Error> {
        self.take(|set| set.wait_queued_guard(deadline_after(timeout), None))
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
    /// thread::scope(|s| {
    ///     let waiter = s.spawn(|| {
    ///         ResourceSet::new().exclusive(&buffer).wait_interruptible(None, &stop).map(drop)
    ///     });
    ///     stop.interrupt(); // e.g. the application is shutting down
    ///     assert_eq!(waiter.join().unwrap().unwrap_err(), Error::Interrupted);
    /// });
    /// drop(held);
    /// # Ok::<(), kds::Error>(())
    /// ```
    pub fn wait_interruptible(
        &self,
        timeout: Option<Duration>,
        interrupt: &Interrupt,
    ) -> Result<Guard<'a, E>, Error> {
        self.take(|set| set.wait_queued_guard(timeout.and_then(deadline_after), Some(interrupt)))
    }

    /// Blocks until the whole set is granted, like [`wait`](Self::wait), and returns a guard
    /// that borrows this set: for a set that borrows its resources the two are the same, and
    /// for an owned set ([`into_owned`](Self::into_owned)) this one takes no reference count,
    /// so it is the cheapest hold of a set kept for reuse.
    ///
    /// ```
    /// use kds::{Resource, ResourceSet};
    ///
    /// let (src, dst) = (Resource::new(), Resource::new());
    /// let blit = ResourceSet::new().shared(&src).exclusive(&dst).into_owned(); // kept
    /// for _ in 0..1000 {
    ///     let _g = blit.lock()?; // no allocation, no reference counts
    ///     // ... copy src into dst ...
    /// }
    /// # Ok::<(), kds::Error>(())
    /// ```
    #[inline]
    pub fn lock(&self) -> Result<Guard<'_, E>, Error> {
        self.lend(|set| set.wait_queued_guard(None, None))
    }

    /// [`try_acquire`](Self::try_acquire) with the guard of [`lock`](Self::lock): takes the
    /// set if it can be granted at once (else `Err(Error::WouldBlock)`, nothing left queued),
    /// and the guard borrows this set, taking no reference count. Never blocks.
    ///
    /// ```
    /// use kds::{Error, Resource, ResourceSet};
    ///
    /// let buffer = Resource::new();
    /// let set = ResourceSet::new().exclusive(&buffer).into_owned(); // kept for reuse
    /// let held = set.try_lock()?;
    /// assert_eq!(set.try_lock().unwrap_err(), Error::WouldBlock);
    /// drop(held);
    /// assert!(set.try_lock().is_ok());
    /// # Ok::<(), kds::Error>(())
    /// ```
    #[inline]
    pub fn try_lock(&self) -> Result<Guard<'_, E>, Error> {
        self.lend(|set| try_queued::<E>(set.entries.as_slice()).map(Guard::queued))
    }

    /// [`wait_interruptible`](Self::wait_interruptible) with the guard of
    /// [`lock`](Self::lock): blocks until the set is granted, `timeout` (if any) has passed
    /// (`Err(Error::Timeout)`) or `interrupt` fires (`Err(Error::Interrupted)`), with nothing
    /// left queued on an error; the guard borrows this set, taking no reference count. What
    /// `kds.h`'s `kds_waitall` is made of.
    ///
    /// ```
    /// use kds::{Error, Interrupt, Resource, ResourceSet};
    /// use std::time::Duration;
    ///
    /// let buffer = Resource::new();
    /// let set = ResourceSet::new().exclusive(&buffer);
    /// let stop = Interrupt::new();
    /// let held = set.lock_interruptible(None, &stop)?;
    /// let late = set.lock_interruptible(Some(Duration::from_millis(1)), &stop);
    /// assert_eq!(late.unwrap_err(), Error::Timeout);
    /// drop(held);
    /// # Ok::<(), kds::Error>(())
    /// ```
    #[inline]
    pub fn lock_interruptible(
        &self,
        timeout: Option<Duration>,
        interrupt: &Interrupt,
    ) -> Result<Guard<'_, E>, Error> {
        self.lend(|set| set.wait_queued_guard(timeout.and_then(deadline_after), Some(interrupt)))
    }

    /// A sync request whose fast path lends this set's entries to the guard, else `queued`.
    #[inline(always)]
    fn lend(
        &self,
        queued: impl FnOnce(&Self) -> Result<Guard<'static, E>, Error>,
    ) -> Result<Guard<'_, E>, Error> {
        if take_fast::<E>(self.entries.as_slice(), Holder::Sync) {
            return Ok(Guard::lent(&self.entries, Holder::Sync));
        }
        queued(self)
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
    #[inline]
    pub fn try_acquire(&self) -> Result<Guard<'a, E>, Error> {
        self.take(|set| try_queued::<E>(set.entries.as_slice()).map(Guard::queued))
    }

    /// A sync request: the fast path, whose guard copies the set's entries (with counts of
    /// their own for an owned set), else `queued` (the blocking or the trying way).
    #[inline(always)]
    fn take(
        &self,
        queued: impl FnOnce(&Self) -> Result<Guard<'static, E>, Error>,
    ) -> Result<Guard<'a, E>, Error> {
        if take_fast::<E>(self.entries.as_slice(), Holder::Sync) {
            return Ok(Guard::fast(self.entries.clone(), Holder::Sync));
        }
        queued(self)
    }

    /// The queued way of a blocking wait (after the fast path, if any, refused): `take.rs`'s
    /// `wait_queued`, as a guard. Out of line:
    /// inlined, it made the fast path of every caller heavier (a prepared set's `wait`, 37
    /// against 23 ns).
    #[cold]
    #[inline(never)]
    fn wait_queued_guard(
        &self,
        deadline: Option<Instant>,
        interrupt: Option<&Interrupt>,
    ) -> Result<Guard<'static, E>, Error> {
        wait_queued::<E>(self.entries.as_slice(), deadline, interrupt).map(Guard::queued)
    }

    /// Requests the set asynchronously; `callback` runs with the guard once the whole set is
    /// granted, where `dispatch` says (the seed's `kds_async_waitall`). With
    /// [`Dispatch::Direct`] and everything free, it runs before `on_grant` returns, and no
    /// request is made at all. The callback's guard owns handles of its resources
    /// (`Guard<'static>`), so it may keep it and release the set later, from anywhere.
    ///
    /// The closure is dropped as soon as it has run, or when the request is cancelled or
    /// refused, so it may own handles of the set's own resources. What it must not own is a
    /// guard that the set waits behind: that set is then never granted and the two keep each
    /// other alive, as two `Arc`s pointing at each other would.
    ///
    /// Errors: [`Error::Busy`] when the set's policy is [`Locked::Fail`] and a resource is
    /// sync-locked; [`Error::BadSet`] for a set over [`MAX_SET_LEN`](crate::MAX_SET_LEN).
    /// Either way nothing is queued and the closure is dropped without running. A callback
    /// that panics is caught: its guard is dropped while unwinding, which releases the set.
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
    ///     flipped.send(guard).unwrap();
    /// })?;
    /// assert!(!pending.is_granted());
    /// drop(gpu); // rendering done: the display's callback runs on its worker
    /// let scanning_out = on_screen.recv().unwrap(); // the guard, sent back
    /// drop(scanning_out); // flip done: release
    /// # Ok::<(), kds::Error>(())
    /// ```
    ///
    /// It never panics itself; a panic from the closure's own `Drop`, when a refused request
    /// drops it, reaches the caller (nothing is queued then). With [`Dispatch::Pool`], if
    /// rayon's pool cannot start, callbacks run on a thread of their own instead.
    pub fn on_grant<F>(&self, dispatch: Dispatch, callback: F) -> Result<Pending<E>, Error>
    where
        F: FnOnce(Guard<'static, E>) + Send + 'static,
    {
        // Everything free: a direct callback runs here and now, and no request is made at all
        // (no allocation); see `take_direct` for when.
        if matches!(dispatch, Dispatch::Direct) {
            if let Some(direct) = self.take_direct() {
                let guard = Guard::fast(self.entries.owned_copy(), Holder::Async);
                delivery::contain(move || callback(guard));
                drop(direct); // leaves the trampoline, delivering what was queued meanwhile
                return Ok(Pending::ran());
            }
        }
        self.on_grant_queued(dispatch, callback)
    }

    /// The at-once half of `on_grant(Dispatch::Direct, ..)`, in place: if the whole set is
    /// free, its policy is [`Locked::Wait`] and this thread is not running a direct callback
    /// already, takes the set (as an async set, like `on_grant`: it does not sync-lock its
    /// resources) and runs `now` with a guard that borrows this set (no copy, no reference
    /// count, as [`lock`](Self::lock)'s). Direct callbacks that `now` causes (by releasing or
    /// requesting sets) run after it returns, before this call does (or, if `now` blocks in a
    /// wait, before it blocks, as in any direct callback). Returns what `now` returns, or
    /// `None` with nothing taken or queued (direct callbacks already queued on this thread
    /// may still be delivered on the way out): then request the set with
    /// [`on_grant`](Self::on_grant). Always `None` on an engine without a fast path (the
    /// global-mutex reference grants through its queues). A panic in `now` reaches the
    /// caller (the guard, dropped while unwinding, releases the set).
    ///
    /// It is the cheapest way to run a callback for a set kept for reuse; `kds.h`'s
    /// `kds_async_waitall` is made of it.
    ///
    /// ```
    /// use kds::{Dispatch, Resource, ResourceSet};
    ///
    /// let frame = Resource::new();
    /// let flip = ResourceSet::new().shared(&frame).into_owned(); // kept for reuse
    /// let shown = flip.try_grant_now(|guard| {
    ///     // ... queue the page flip; released when `guard` drops ...
    ///     drop(guard);
    ///     true
    /// });
    /// assert_eq!(shown, Some(true));
    ///
    /// let gpu = ResourceSet::new().exclusive(&frame).wait()?;
    /// assert!(flip.try_grant_now(|_| ()).is_none()); // busy: nothing taken
    /// let pending = flip.on_grant(Dispatch::Direct, drop)?; // so ask to be called back
    /// drop(gpu); // the callback runs here
    /// assert!(pending.is_granted());
    /// # Ok::<(), kds::Error>(())
    /// ```
    #[inline(always)] // as `lend`, the sync lending requests' body
    pub fn try_grant_now<'s, R>(&'s self, now: impl FnOnce(Guard<'s, E>) -> R) -> Option<R> {
        let (out, scope) = self.try_grant_now_scoped(now)?;
        drop(scope); // leaves the trampoline, delivering what `now` queued
        Some(out)
    }

    /// [`try_grant_now`](Self::try_grant_now), except that the direct callbacks `now` causes
    /// have not run when it returns: they wait in the returned [`CallbackScope`], and run
    /// when it drops. Between the two, this set is no longer borrowed by the call and no
    /// user code has run since `now` returned. A front end that must mark the end of `now`
    /// before anything else runs, and only once the call has let go of the set, does it
    /// there (the C ABI's `kds_async_waitall` clears its "inside the call" bit, which then
    /// also tells a `kds_resource_set_release_sync` that the callback is over).
    ///
    /// ```
    /// use kds::{Dispatch, Resource, ResourceSet};
    /// use std::sync::atomic::{AtomicBool, Ordering};
    ///
    /// static RAN: AtomicBool = AtomicBool::new(false);
    /// let (a, b) = (Resource::new(), Resource::new());
    /// let first = ResourceSet::new().exclusive(&a).into_owned();
    /// let (held, scope) = first
    ///     .try_grant_now_scoped(|guard| {
    ///         // A set granted inside: its callback is queued behind this one.
    ///         ResourceSet::new()
    ///             .exclusive(&b)
    ///             .on_grant(Dispatch::Direct, |_g| RAN.store(true, Ordering::SeqCst))
    ///             .unwrap();
    ///         guard
    ///     })
    ///     .expect("free");
    /// assert!(!RAN.load(Ordering::SeqCst)); // still queued
    /// drop(scope); // runs it
    /// assert!(RAN.load(Ordering::SeqCst));
    /// drop(held);
    /// ```
    #[inline(always)] // as `lend`: the C ABI's hot path
    pub fn try_grant_now_scoped<'s, R>(
        &'s self,
        now: impl FnOnce(Guard<'s, E>) -> R,
    ) -> Option<(R, CallbackScope)> {
        let direct = self.take_direct()?;
        // A panic in `now` drops `direct` while unwinding: it leaves the trampoline.
        let out = now(Guard::lent(&self.entries, Holder::Async));
        Some((out, CallbackScope::new(direct)))
    }

    /// Takes the set on the fast path as an async set, to run a direct callback now: the
    /// trampoline's scope, to hold while it runs. `None` (nothing taken) if the policy is not
    /// `Wait` (whose grant does not depend on who holds what, rule 8), if a direct callback
    /// runs on this thread already (a chain of callbacks that each request the next set must
    /// loop in the trampoline, not nest), or if a resource is busy.
    #[inline(always)]
    fn take_direct(&self) -> Option<delivery::DirectScope> {
        if self.policy() != Locked::Wait {
            return None;
        }
        let direct = delivery::enter_direct()?;
        // Else `direct` drops: leaves the trampoline, delivering what was queued meanwhile.
        take_fast::<E>(self.entries.as_slice(), Holder::Async).then_some(direct)
    }

    /// `on_grant` through the queues: one request, whose callback makes the guard of it.
    fn on_grant_queued<F>(&self, dispatch: Dispatch, callback: F) -> Result<Pending<E>, Error>
    where
        F: FnOnce(Guard<'static, E>) + Send + 'static,
    {
        let waiter = Waiter::callback(
            dispatch,
            Box::new(move |req: Arc<E::Request>| callback(Guard::queued(req))),
        );
        let kind = SetKind::asynchronous(self.policy());
        let req = new_request::<E>(self.entries.as_slice(), kind, waiter)?;
        if let Err(e) = enqueue::<E>(&req) {
            // SAFETY: the engine refused the request: its grant will never be delivered.
            unsafe { delivery::Waited::waiter(&*req).forget_client() };
            return Err(e);
        }
        Ok(Pending::queued(req))
    }

    /// Requests the set asynchronously as a future. Nothing is queued until it is first
    /// polled; dropping it un-queues the set (or releases it, if it was granted meanwhile).
    /// It is an async set and honours the set's [`Locked`] policy: with [`Locked::Fail`] it
    /// resolves to `Err(Error::Busy)`. Works on any executor (the waker is all it uses). Like
    /// [`wait`](Self::wait), the future and its guard borrow the resources, not the set.
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
    pub fn acquire(&self) -> Acquire<'a, E> {
        Acquire::new(self.entries.clone())
    }
}

impl<E: Engine> Default for ResourceSet<'_, E> {
    fn default() -> Self {
        Self::new()
    }
}

/// Adds resources in place, each with its mode, like calling [`access`](ResourceSet::access)
/// for each (duplicates merge, exclusive winning).
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
impl<'a, E: Engine> Extend<(&'a Resource<E>, Access)> for ResourceSet<'a, E> {
    fn extend<I: IntoIterator<Item = (&'a Resource<E>, Access)>>(&mut self, iter: I) {
        for (resource, access) in iter {
            self.entries.insert(Entry::new(&resource.core, access));
        }
    }
}

/// A set of the resources named, each with its mode (see the `Extend` impl).
///
/// ```
/// use kds::{Access, Resource, ResourceSet};
///
/// let (src, dst) = (Resource::new(), Resource::new());
/// let held = ResourceSet::from_iter([(&src, Access::Shared), (&dst, Access::Exclusive)]).wait()?;
/// // ... copy src into dst ...
/// drop(held);
/// # Ok::<(), kds::Error>(())
/// ```
impl<'a, E: Engine> FromIterator<(&'a Resource<E>, Access)> for ResourceSet<'a, E> {
    fn from_iter<I: IntoIterator<Item = (&'a Resource<E>, Access)>>(iter: I) -> Self {
        let mut set = ResourceSet::new();
        set.extend(iter);
        set
    }
}

impl<E: Engine> Clone for ResourceSet<'_, E> {
    /// Another set of the same resources (an owned set's clone takes handles of its own).
    fn clone(&self) -> Self {
        ResourceSet {
            entries: self.entries.clone(),
        }
    }
}

impl<E: Engine> fmt::Debug for ResourceSet<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResourceSet")
            .field("engine", &E::NAME)
            .field("entries", &debug_entries(self.entries.as_slice()))
            .field("policy", &self.policy())
            .finish()
    }
}
