//! [`DmaBufSet`]: a set of dma-bufs to request together, and its blocking requests.
//!
//! Every request is two steps. First the kds request, exactly as for plain resources: the
//! set takes its FIFO place on every buffer's queue and is granted by kds's rules. Then,
//! holding that grant (so later requests stay queued behind it), it waits for the fences
//! that the kernel attached to the buffers: a shared access for the writers', an exclusive
//! one for all. Fences published by the holder before (`attach_fence`) are among them. The
//! client sees one grant, once both steps are done.

use crate::buffer::{fences_signalled, pending_fences, DmaBuf};
use crate::error::Error;
use crate::future::DmaBufAcquire;
use crate::guard::DmaBufGuard;
use crate::pending::DmaBufPending;
use crate::reactor::{on_reactor_thread, Reactor};
use crate::sys;
use kds::{Access, Dispatch, Guard, Interrupt, Locked, ResourceSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A set of dma-bufs with access modes, to request together (the dma-buf counterpart of
/// [`kds::ResourceSet`], with every request path it has).
///
/// ```
/// use kds_dmabuf::{DmaBuf, DmaBufSet, SimFence};
/// use std::os::fd::AsFd;
/// use std::time::Duration;
///
/// // Simulated buffers (no dma-buf exporter on the machine that builds these docs).
/// let (scanout, texture) = (DmaBuf::simulated(), DmaBuf::simulated());
/// let gpu_job = SimFence::new()?;
/// texture.sim_attach(gpu_job.as_fd(), true)?; // a client's GPU still renders it
///
/// // No kds client holds either buffer, but the texture's writer is not done.
/// let set = DmaBufSet::new().exclusive(&scanout).shared(&texture);
/// assert_eq!(set.wait_timeout(Duration::from_millis(5)).unwrap_err(), kds_dmabuf::Error::Timeout);
///
/// gpu_job.signal();
/// let held = set.wait()?; // both buffers, and the texture's render is done
/// drop(held);
/// # Ok::<(), kds_dmabuf::Error>(())
/// ```
#[derive(Clone)]
pub struct DmaBufSet<'a> {
    bufs: Vec<(&'a DmaBuf, Access)>,
    policy: Locked,
}

impl<'a> DmaBufSet<'a> {
    /// An empty set (granted at once).
    pub fn new() -> Self {
        DmaBufSet {
            bufs: Vec::new(),
            policy: Locked::Wait,
        }
    }

    /// Adds `buf` in exclusive mode (waits for every fence: readers and writers).
    pub fn exclusive(self, buf: &'a DmaBuf) -> Self {
        self.access(buf, Access::Exclusive)
    }

    /// Adds `buf` in shared mode (waits for the writers' fences only).
    pub fn shared(self, buf: &'a DmaBuf) -> Self {
        self.access(buf, Access::Shared)
    }

    /// Adds `buf` in mode `access`. A buffer named twice is held once, exclusive if either
    /// was (as kds merges a resource named twice).
    pub fn access(mut self, buf: &'a DmaBuf, access: Access) -> Self {
        match self.bufs.iter_mut().find(|(b, _)| b.same(buf)) {
            Some((_, a)) => {
                if access == Access::Exclusive {
                    *a = Access::Exclusive;
                }
            }
            None => self.bufs.push((buf, access)),
        }
        self
    }

    /// The kds policy towards sync-locked buffers ([`Locked`]); for async requests.
    pub fn locked(mut self, policy: Locked) -> Self {
        self.policy = policy;
        self
    }

    /// How many distinct buffers the set names.
    pub fn len(&self) -> usize {
        self.bufs.len()
    }

    /// Whether the set names no buffer.
    pub fn is_empty(&self) -> bool {
        self.bufs.is_empty()
    }

    fn kds_set(&self) -> ResourceSet<'a> {
        self.bufs
            .iter()
            .fold(ResourceSet::new(), |s, (b, a)| s.access(b.resource(), *a))
            .locked(self.policy)
    }

    fn owned(&self) -> Vec<(DmaBuf, Access)> {
        self.bufs.iter().map(|(b, a)| ((*b).clone(), *a)).collect()
    }

    /// Blocks until the set is granted and its fences have signalled.
    pub fn wait(&self) -> Result<DmaBufGuard<'a>, Error> {
        let guard = self.kds_set().wait()?;
        self.fences_blocking(guard, None)
    }

    /// As [`wait`](Self::wait), giving up after `timeout` ([`Error::Timeout`]): one timeout
    /// for the queue and the fences together. Nothing stays queued or held, and every sync
    /// file the wait opened is closed.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<DmaBufGuard<'a>, Error> {
        // Past the end of time (`Duration::MAX`): no deadline.
        let deadline = Instant::now().checked_add(timeout);
        let guard = self.kds_set().wait_timeout(timeout)?;
        self.fences_blocking(guard, deadline)
    }

    /// As [`wait_timeout`](Self::wait_timeout) (`None`: no timeout), also giving up when
    /// `interrupt` fires ([`Error::Interrupted`]), while queued or while waiting for fences.
    /// The fence wait then goes through the reactor, whose wake-up or the interrupt unparks
    /// this thread (on the reactor thread itself, in a callback it delivered: a `poll` here,
    /// 1 ms at a time, looking at the interrupt in between).
    pub fn wait_interruptible(
        &self,
        timeout: Option<Duration>,
        interrupt: &Interrupt,
    ) -> Result<DmaBufGuard<'a>, Error> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let guard = self.kds_set().wait_interruptible(timeout, interrupt)?;
        let bufs = self.owned();
        let fences = pending_fences(&bufs)?;
        if fences.is_empty() {
            return Ok(DmaBufGuard::new(guard, bufs));
        }
        // Inside a direct callback, the callbacks this thread owes run before it blocks.
        kds::flush_before_blocking();
        if on_reactor_thread() {
            // The reactor cannot wake its own thread: poll here, a slice at a time, and
            // look at the interrupt between slices.
            const SLICE: Duration = Duration::from_millis(1);
            loop {
                let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                match sys::wait_readable(&fences, Some(left.map_or(SLICE, |l| l.min(SLICE)))) {
                    Ok(()) => return Ok(DmaBufGuard::new(guard, bufs)),
                    Err(Error::Timeout) => {}
                    Err(e) => return Err(e),
                }
                if interrupt.is_interrupted() {
                    return Err(Error::Interrupted);
                }
                if left.is_some_and(|l| l.is_zero()) {
                    return Err(Error::Timeout);
                }
            }
        }
        let done = Arc::new(AtomicBool::new(false));
        let (flag, me) = (done.clone(), std::thread::current());
        let token = Reactor::get()?
            .watch(
                fences,
                Box::new(move |_delivering| {
                    // Release: the waiter's Acquire load sees the fences done.
                    flag.store(true, Ordering::Release);
                    me.unpark();
                }),
            )
            .map_err(|(e, _)| e)?;
        let _registered = interrupt.unpark_on_interrupt();
        loop {
            // Acquire: pairs with the reactor's Release store.
            if done.load(Ordering::Acquire) {
                return Ok(DmaBufGuard::new(guard, bufs));
            }
            let why = if interrupt.is_interrupted() {
                Some(Error::Interrupted)
            } else if deadline.is_some_and(|d| Instant::now() >= d) {
                Some(Error::Timeout)
            } else {
                None
            };
            if let Some(why) = why {
                return match Reactor::get()?.cancel(token) {
                    Some(ready) => {
                        drop(ready);
                        Err(why) // `guard` drops: released
                    }
                    // Fired meanwhile: the fences are done, the grant stands.
                    None => Ok(DmaBufGuard::new(guard, bufs)),
                };
            }
            match deadline {
                Some(d) => std::thread::park_timeout(d.saturating_duration_since(Instant::now())),
                None => std::thread::park(),
            }
        }
    }

    /// Takes the set now if kds grants it at once and its fences have signalled; else
    /// [`Error::WouldBlock`], with nothing taken.
    pub fn try_acquire(&self) -> Result<DmaBufGuard<'a>, Error> {
        let guard = self.kds_set().try_acquire()?;
        let bufs = self.owned();
        if fences_signalled(&bufs)? {
            Ok(DmaBufGuard::new(guard, bufs))
        } else {
            Err(Error::WouldBlock)
        }
    }

    /// The fence half of a blocking wait: polls the sync files of the pending fences in this
    /// thread until `deadline`.
    fn fences_blocking(
        &self,
        guard: Guard<'a>,
        deadline: Option<Instant>,
    ) -> Result<DmaBufGuard<'a>, Error> {
        let bufs = self.owned();
        let fences = pending_fences(&bufs)?;
        if !fences.is_empty() {
            // Inside a direct callback, the callbacks this thread owes run before it blocks.
            kds::flush_before_blocking();
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            sys::wait_readable(&fences, left)?; // on error `guard` drops: released
        }
        Ok(DmaBufGuard::new(guard, bufs))
    }

    /// Requests the set asynchronously: `callback` runs with the guard once kds grants the
    /// set and its fences have signalled, or with the error that stopped the fence wait.
    ///
    /// Where it runs follows `dispatch`, as for [`kds::ResourceSet::on_grant`]: if the fences
    /// have signalled by the kds grant, on the thread (or worker, or pool) kds delivers the
    /// grant to; if not, once the last fence signals, from the reactor thread (`Direct`: on
    /// it, so keep direct callbacks short; `Worker` and `Pool`: handed on to them).
    ///
    /// On a [`Worker`](kds::Worker), callbacks run in the order their sets became ready (kds
    /// granted them and their fences signalled), kds's grant order: a set ready at once does
    /// not overtake one whose delivery is still on its way through the reactor. `Direct` and
    /// `Pool` promise no order, as in kds.
    ///
    /// Errors as [`kds::ResourceSet::on_grant`]'s ([`Error::Kds`]); nothing is queued then.
    /// `Err` reaches the callback only when a system call fails while it waits for fences
    /// (no descriptor left for a sync file), after the set was released.
    pub fn on_grant<F>(&self, dispatch: Dispatch, callback: F) -> Result<DmaBufPending, Error>
    where
        F: FnOnce(Result<DmaBufGuard<'static>, Error>) + Send + 'static,
    {
        DmaBufPending::request(&self.kds_set(), self.owned(), dispatch, callback)
    }

    /// Requests the set as a future: ready with the guard once kds grants it and its fences
    /// have signalled (the reactor wakes it). Dropping it gives up its place, or its grant,
    /// and closes its sync files.
    pub fn acquire(&self) -> DmaBufAcquire<'a> {
        DmaBufAcquire::new(self.kds_set().acquire(), self.owned())
    }
}

impl Default for DmaBufSet<'_> {
    fn default() -> Self {
        DmaBufSet::new()
    }
}

impl fmt::Debug for DmaBufSet<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DmaBufSet")
            .field("buffers", &self.bufs.len())
            .field("locked", &self.policy)
            .finish()
    }
}
