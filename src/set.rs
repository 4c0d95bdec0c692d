//! [`ResourceSet`]: the builder every request starts from, and the blocking waits.

use crate::delivery::{self, flush, Waiter};
use crate::engine::{Engine, Entry, SetKind};
use crate::future::Acquire;
use crate::guard::{Guard, Pending, SetGuard};
use crate::resource::Resource;
use crate::sync::{park_timeout, spin_loop, thread};
use crate::{Access, Dispatch, Error, Interrupt, Locked};
use smallvec::SmallVec;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The most resources one set may name (after merging duplicates).
pub const MAX_SET_LEN: usize = 1 << 16;

/// How long a blocked thread spins (`spin_loop`) before it starts yielding, and how long it
/// keeps yielding before it parks. A park/unpark hand-off costs about 20 µs on the
/// development VM, a spinning one tens of nanoseconds; a queued hand-off (the holder's release,
/// its scan, the grant) takes a microsecond or two under contention. Spinning for a few
/// microseconds catches those, and waiting in all at most about one park's cost before parking
/// keeps the worst case within twice the best (the classic competitive bound). Yielding in the
/// second phase lets a preempted holder run when threads outnumber cores.
const SPIN_FOR: Duration = Duration::from_micros(4);
const YIELD_UNTIL: Duration = Duration::from_micros(20);

/// Waits for `done` without parking: spins, then yields, for at most `YIELD_UNTIL` (and not
/// past `deadline`). `true` if `done` came true. Under loom: one check and one yield, since
/// loom explores every yield and has no clock.
#[inline]
fn spin_then_yield(done: impl Fn() -> bool, deadline: Option<Instant>) -> bool {
    if cfg!(kds_loom) {
        if done() {
            return true;
        }
        spin_loop();
        return done();
    }
    // A first burst without reading the clock: most hand-offs land here.
    for _ in 0..64 {
        if done() {
            return true;
        }
        spin_loop();
    }
    let start = Instant::now();
    let until = deadline.map_or(start + YIELD_UNTIL, |d| d.min(start + YIELD_UNTIL));
    loop {
        let now = Instant::now();
        if now >= until {
            return done();
        }
        if now - start < SPIN_FOR {
            for _ in 0..32 {
                if done() {
                    return true;
                }
                spin_loop();
            }
        } else {
            if done() {
                return true;
            }
            thread::yield_now();
        }
    }
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
/// blocking with [`wait`](Self::wait) and friends (a *sync* set), or asynchronously with
/// [`on_grant`](Self::on_grant) or [`acquire`](Self::acquire) (an *async* set).
///
/// A resource named twice is merged into one link, exclusive winning (spec rule 11): a set
/// never waits for itself. An empty set is granted at once.
pub struct ResourceSet<E: Engine> {
    /// Sorted by `Engine::order_key` (the engines' fixed resource order), no duplicates.
    entries: SmallVec<[Entry<E>; 4]>,
    policy: Locked,
}

impl<E: Engine> ResourceSet<E> {
    /// An empty set.
    pub fn new() -> Self {
        ResourceSet {
            entries: SmallVec::new(),
            policy: Locked::Wait,
        }
    }

    /// Adds `resource` in exclusive mode.
    pub fn exclusive(self, resource: &Resource<E>) -> Self {
        self.access(resource, Access::Exclusive)
    }

    /// Adds `resource` in shared mode.
    pub fn shared(self, resource: &Resource<E>) -> Self {
        self.access(resource, Access::Shared)
    }

    /// Adds `resource` in mode `access`. Naming a resource again merges the modes, exclusive
    /// winning.
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

    /// The policy of async requests of this set towards sync-locked resources (default
    /// [`Locked::Wait`]). Sync requests ignore it.
    pub fn locked(mut self, policy: Locked) -> Self {
        self.policy = policy;
        self
    }

    /// Number of distinct resources in the set.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the set names no resource.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn request(&self, sync: bool, waiter: Waiter<E>) -> Result<Arc<E::Request>, Error> {
        if self.entries.len() > MAX_SET_LEN {
            return Err(Error::BadSet("more than MAX_SET_LEN resources in one set"));
        }
        let kind = SetKind {
            sync,
            policy: if sync { Locked::Wait } else { self.policy },
        };
        Ok(E::new_request(&self.entries, kind, waiter))
    }

    /// Blocks until the whole set is granted (the seed's `kds_waitall` without timeout).
    pub fn wait(&self) -> Result<Guard<E>, Error> {
        self.wait_until(None, None)
    }

    /// Blocks until the set is granted or `timeout` has passed: then `Err(Error::Timeout)`,
    /// with nothing left queued. Any `Duration` is accepted: one too long to be added to
    /// [`Instant::now`] (such as `Duration::MAX`) waits without a deadline.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<Guard<E>, Error> {
        self.wait_until(deadline_after(timeout), None)
    }

    /// Blocks until the set is granted, `timeout` (if any) has passed, or `interrupt` fires:
    /// then `Err(Error::Timeout)` or `Err(Error::Interrupted)`, with nothing left queued.
    /// A `timeout` too long to be added to [`Instant::now`] waits without a deadline.
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
    pub fn lock(&self) -> Result<SetGuard<'_, E>, Error> {
        if E::FAST_PATH && self.entries.len() <= MAX_SET_LEN {
            if E::try_fast(&self.entries) {
                return Ok(SetGuard::fast(&self.entries));
            }
            // A failed attempt may have granted sets queued behind its transient holds.
            flush();
        }
        self.wait_queued(None, None).map(SetGuard::queued)
    }

    /// Takes the set if it can be granted at once, else `Err(Error::WouldBlock)` with nothing
    /// left queued. Never blocks.
    pub fn try_acquire(&self) -> Result<Guard<E>, Error> {
        if let Some(guard) = self.try_fast()? {
            return Ok(guard);
        }
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
        if E::try_fast(&self.entries) {
            return Ok(Some(Guard::from_fast(self.entries.clone())));
        }
        // A failed attempt may have granted sets queued behind its transient holds.
        flush();
        Ok(None)
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
    fn wait_queued(
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
    /// # Panics
    ///
    /// With [`Dispatch::Pool`], when the first pool callback is due and rayon's global pool
    /// cannot start its threads (rayon panics then). The other dispatches never panic.
    pub fn on_grant<F>(&self, dispatch: Dispatch, callback: F) -> Result<Pending<E>, Error>
    where
        F: FnOnce(Guard<E>) + Send + 'static,
    {
        let req = self.request(false, Waiter::callback(dispatch, Box::new(callback)))?;
        if let Err(e) = delivery::enqueue::<E>(&req) {
            // SAFETY: the engine refused the request: its grant will never be delivered.
            unsafe { E::waiter(&req).forget_client() };
            return Err(e);
        }
        Ok(Pending { req })
    }

    /// Requests the set asynchronously as a future. Nothing is queued until it is first
    /// polled; dropping it un-queues the set (or releases it, if it was granted meanwhile).
    pub fn acquire(&self) -> Acquire<E> {
        Acquire::new(self.request(false, Waiter::future()))
    }
}

impl<E: Engine> Default for ResourceSet<E> {
    fn default() -> Self {
        Self::new()
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
            .field(
                "entries",
                &self
                    .entries
                    .iter()
                    .map(|(core, access)| (Arc::as_ptr(core), *access))
                    .collect::<Vec<_>>(),
            )
            .field("policy", &self.policy)
            .finish()
    }
}
