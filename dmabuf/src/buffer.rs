//! [`DmaBuf`]: a kds resource bound to a dma-buf, and what its fences ask of a request;
//! [`SimFence`] and simulated buffers, for tests on machines without a dma-buf exporter.

use crate::error::Error;
use crate::sys;
use kds::{Access, Resource};
use rustix::event::{eventfd, EventfdFlags, PollFlags};
use std::collections::HashMap;
use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex, Weak};

/// A kds [`Resource`] bound to a dma-buf: sets over it ([`DmaBufSet`](crate::DmaBufSet))
/// are granted when kds's rules grant them *and* the buffer's fences for the requested
/// access have signalled (shared: the writers'; exclusive: every fence).
///
/// A cheap handle: clones share the buffer, its descriptor and its kds queue. The
/// descriptor is closed when the last clone (and the last guard or request holding one)
/// is gone.
#[derive(Clone)]
pub struct DmaBuf {
    inner: Arc<Inner>,
}

struct Inner {
    resource: Resource,
    source: Source,
}

/// Where the fences live.
enum Source {
    /// A real dma-buf: the kernel's `dma_resv`; its inode keys [`BOUND`].
    Kernel { fd: OwnedFd, ino: u64 },
    /// A stand-in for tests: fences are descriptors readable once signalled (eventfds from
    /// [`SimFence`], or real sync files), each a write or a read fence.
    Simulated(Mutex<Vec<SimAttached>>),
}

/// The real dma-bufs bound in this process, by inode (see [`DmaBuf::new`]).
static BOUND: Mutex<Option<HashMap<u64, Weak<Inner>>>> = Mutex::new(None);

impl Drop for Inner {
    fn drop(&mut self) {
        if let Source::Kernel { ino, .. } = self.source {
            let mut bound = lock(&BOUND);
            if let Some(map) = bound.as_mut() {
                // Only if the entry is this buffer's (dead) one: a new binding of a reused
                // inode may have replaced it already.
                if map.get(&ino).is_some_and(|w| w.strong_count() == 0) {
                    map.remove(&ino);
                }
            }
        }
    }
}

struct SimAttached {
    fence: OwnedFd,
    write: bool,
}

impl DmaBuf {
    /// Binds the dma-buf `fd` (taken over: closed with the last handle).
    ///
    /// Errors (the descriptor is closed with them): [`Error::BadFd`] if it is not open,
    /// [`Error::NotDmaBuf`] if it is not a dma-buf, [`Error::Unsupported`] if the kernel
    /// lacks the sync-file ioctls (Linux 6.0).
    ///
    /// One dma-buf is one kds resource in the process, however many descriptors name it:
    /// binding a second descriptor of a buffer already bound (the same client buffer
    /// received twice) returns a handle of the same `DmaBuf` (the new descriptor is closed),
    /// so the two exclude each other as they must. The buffers are told apart by their inode
    /// on the dma-buf filesystem, which is unique while the buffer lives.
    pub fn new(fd: OwnedFd) -> Result<DmaBuf, Error> {
        sys::check_dmabuf(fd.as_fd())?;
        let ino = rustix::fs::fstat(&fd).map_err(Error::BadFd)?.st_ino as u64;
        let mut bound = lock(&BOUND);
        let bound = bound.get_or_insert_with(HashMap::new);
        if let Some(inner) = bound.get(&ino).and_then(Weak::upgrade) {
            return Ok(DmaBuf { inner });
        }
        let buf = DmaBuf::with_source(Source::Kernel { fd, ino });
        bound.insert(ino, Arc::downgrade(&buf.inner));
        Ok(buf)
    }

    /// Binds a dma-buf descriptor that the caller keeps (from C): it is duplicated, the
    /// duplicate is bound. [`Error::BadFd`] for a negative descriptor or one that is not
    /// open; otherwise as [`new`](Self::new). With a [`BorrowedFd`], use
    /// `DmaBuf::new(fd.try_clone_to_owned()?)` instead.
    ///
    /// # Safety
    ///
    /// `fd` must not be a descriptor that someone else owns and may close or reuse while this
    /// call runs: an open descriptor is borrowed for the call (as by
    /// [`BorrowedFd::borrow_raw`]). A number that is not open at all is fine: it is answered
    /// with `Error::BadFd(EBADF)`.
    pub unsafe fn from_raw_fd_dup(fd: RawFd) -> Result<DmaBuf, Error> {
        // SAFETY: the caller's contract is `dup_raw`'s.
        DmaBuf::new(unsafe { sys::dup_raw(fd) }?)
    }

    /// A simulated buffer, for tests without a dma-buf exporter: its fences are attached
    /// with [`sim_attach`](Self::sim_attach) (a [`SimFence`] stands in for the GPU job of
    /// another driver) and by guards' [`attach_fence`](crate::DmaBufGuard::attach_fence);
    /// requests wait for them exactly as for a real buffer's.
    pub fn simulated() -> DmaBuf {
        DmaBuf::with_source(Source::Simulated(Mutex::new(Vec::new())))
    }

    fn with_source(source: Source) -> DmaBuf {
        DmaBuf {
            inner: Arc::new(Inner {
                resource: Resource::new(),
                source,
            }),
        }
    }

    /// Attaches a fence to a simulated buffer, as another kernel client would: `fence` is
    /// any descriptor that turns readable when the work is done (a [`SimFence`], a sync
    /// file); it is duplicated. A write fence holds back every request, a read fence only
    /// exclusive ones. [`Error::Unsupported`] on a real buffer (its fences come from the
    /// kernel), [`Error::BadFd`] if `fence` cannot be duplicated.
    pub fn sim_attach(&self, fence: BorrowedFd<'_>, write: bool) -> Result<(), Error> {
        match &self.inner.source {
            Source::Kernel { .. } => Err(Error::Unsupported(
                "sim_attach on a real dma-buf (its fences are the kernel's)",
            )),
            Source::Simulated(fences) => {
                let fence = rustix::io::fcntl_dupfd_cloexec(fence, 0).map_err(Error::BadFd)?;
                lock(fences).push(SimAttached { fence, write });
                Ok(())
            }
        }
    }

    /// The kds resource the buffer queues on (to name it in a plain kds set, where its
    /// fences are not waited for).
    pub fn resource(&self) -> &Resource {
        &self.inner.resource
    }

    /// Whether this is a simulated buffer.
    pub fn is_simulated(&self) -> bool {
        matches!(self.inner.source, Source::Simulated(_))
    }

    /// Whether `self` and `other` are the same buffer (clones of one handle).
    pub fn same(&self, other: &DmaBuf) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The dma-buf descriptor; `None` for a simulated buffer.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        match &self.inner.source {
            Source::Kernel { fd, .. } => Some(fd.as_fd()),
            Source::Simulated(_) => None,
        }
    }

    /// Whether the fences that `access` waits for have all signalled (shared: the writers';
    /// exclusive: all), asked now with one `poll` and nothing opened; kds's queue is not
    /// looked at. A simulated display uses it as a KMS driver uses the kernel's fences.
    pub fn fences_signalled(&self, access: Access) -> Result<bool, Error> {
        check_fences(&[(self.clone(), access)], None)
    }

    /// A sync file of the buffer's fences that `access` would wait for (shared: the
    /// writers'; exclusive: all), readable once they signal
    /// (`DMA_BUF_IOCTL_EXPORT_SYNC_FILE`): to hand to the kernel (a KMS `IN_FENCE_FD`) or to
    /// a GPU API (a Vulkan semaphore import), or to attach to another buffer. A snapshot: a
    /// fence attached later is not in it. [`Error::Unsupported`] on a simulated buffer.
    pub fn sync_file(&self, access: Access) -> Result<OwnedFd, Error> {
        match &self.inner.source {
            Source::Kernel { fd, .. } => {
                let flags = match access {
                    Access::Shared => sys::SYNC_READ,
                    Access::Exclusive => sys::SYNC_WRITE,
                };
                sys::export_sync_file(fd.as_fd(), flags)
            }
            Source::Simulated(_) => Err(Error::Unsupported(
                "sync_file on a simulated buffer (its fences are separate descriptors)",
            )),
        }
    }

    /// Adds the fence of `sync_file` for an access just held: a write fence for exclusive, a
    /// read fence for shared (see [`DmaBufGuard::attach_fence`](crate::DmaBufGuard::attach_fence)).
    pub(crate) fn import(&self, sync_file: BorrowedFd<'_>, access: Access) -> Result<(), Error> {
        let write = access == Access::Exclusive;
        match &self.inner.source {
            Source::Kernel { fd, .. } => {
                let flags = if write {
                    sys::SYNC_WRITE
                } else {
                    sys::SYNC_READ
                };
                sys::import_sync_file(fd.as_fd(), sync_file, flags)
            }
            Source::Simulated(_) => self.sim_attach(sync_file, write),
        }
    }
}

impl fmt::Debug for DmaBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner.source {
            Source::Kernel { fd, .. } => f.debug_struct("DmaBuf").field("fd", fd).finish(),
            Source::Simulated(fences) => f
                .debug_struct("DmaBuf")
                .field("simulated_fences", &lock(fences).len())
                .finish(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a set's buffers ask of the fences: descriptors readable once the fences that the
/// set's accesses wait for have signalled. Empty: every fence has signalled already.
///
/// One non-blocking `poll` over the real buffers (shared: `POLLIN`, the writers done;
/// exclusive: `POLLOUT`, everyone done); a sync file exported only for those not ready.
pub(crate) fn pending_fences(bufs: &[(DmaBuf, Access)]) -> Result<Vec<OwnedFd>, Error> {
    let mut out = Vec::new();
    check_fences(bufs, Some(&mut out))?;
    Ok(out)
}

/// Whether every fence the set's accesses wait for has signalled, opening nothing (for
/// `try_acquire`, which does not wait).
pub(crate) fn fences_signalled(bufs: &[(DmaBuf, Access)]) -> Result<bool, Error> {
    check_fences(bufs, None)
}

/// The check behind both: `true` if every fence has signalled; else, with `export`, a
/// descriptor per pending fence (or buffer) pushed there.
fn check_fences(
    bufs: &[(DmaBuf, Access)],
    mut export: Option<&mut Vec<OwnedFd>>,
) -> Result<bool, Error> {
    let mut kernel: Vec<(BorrowedFd<'_>, PollFlags)> = Vec::new();
    let mut all = true;
    for (buf, access) in bufs {
        match &buf.inner.source {
            Source::Kernel { fd, .. } => {
                let ev = match access {
                    Access::Shared => PollFlags::IN,
                    Access::Exclusive => PollFlags::OUT,
                };
                kernel.push((fd.as_fd(), ev));
            }
            Source::Simulated(fences) => {
                all &= sim_pending(fences, *access, export.as_deref_mut())?;
            }
        }
    }
    if kernel.is_empty() {
        return Ok(all);
    }
    let mut ready = vec![false; kernel.len()];
    sys::poll_now(&kernel, &mut ready)?;
    for ((fd, ev), ready) in kernel.iter().zip(ready) {
        if ready {
            continue;
        }
        all = false;
        if let Some(out) = export.as_deref_mut() {
            let flags = if *ev == PollFlags::IN {
                sys::SYNC_READ
            } else {
                sys::SYNC_WRITE
            };
            out.push(sys::export_sync_file(*fd, flags)?);
        }
    }
    Ok(all)
}

/// Whether a simulated buffer's fences for `access` have all signalled; the pending ones
/// are duplicated into `out` if given. Signalled fences are forgotten, as the kernel drops
/// signalled fences from a `dma_resv`.
fn sim_pending(
    fences: &Mutex<Vec<SimAttached>>,
    access: Access,
    out: Option<&mut Vec<OwnedFd>>,
) -> Result<bool, Error> {
    let mut fences = lock(fences);
    let polls: Vec<(BorrowedFd<'_>, PollFlags)> = fences
        .iter()
        .map(|f| (f.fence.as_fd(), PollFlags::IN))
        .collect();
    let mut ready = vec![false; polls.len()];
    sys::poll_now(&polls, &mut ready)?;
    drop(polls);
    let mut i = 0;
    fences.retain(|_| {
        i += 1;
        !ready[i - 1]
    });
    let pending: Vec<&SimAttached> = fences
        .iter()
        .filter(|f| f.write || access == Access::Exclusive)
        .collect();
    if let Some(out) = out {
        for f in &pending {
            out.push(rustix::io::fcntl_dupfd_cloexec(&f.fence, 0).map_err(Error::Io)?);
        }
    }
    Ok(pending.is_empty())
}

/// A fence made in user space, for tests and simulations: an eventfd that turns readable
/// when [`signal`](SimFence::signal)led. Attach it to a simulated buffer with
/// [`DmaBuf::sim_attach`], or hand it to a guard's
/// [`attach_fence`](crate::DmaBufGuard::attach_fence) on one.
pub struct SimFence {
    fd: OwnedFd,
}

impl SimFence {
    /// An unsignalled fence. [`Error::Io`] if the system has no descriptor left.
    pub fn new() -> Result<SimFence, Error> {
        let fd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK).map_err(Error::Io)?;
        Ok(SimFence { fd })
    }

    /// Signals it: every request waiting for it may go on.
    pub fn signal(&self) {
        // An eventfd write of 1 fails only if the counter would overflow, which a
        // signalled fence's counter (at most a few signals) cannot.
        let _ = rustix::io::write(&self.fd, &1u64.to_ne_bytes());
    }

    /// Whether it has been signalled.
    pub fn is_signalled(&self) -> bool {
        let mut ready = [false];
        sys::poll_now(&[(self.fd.as_fd(), PollFlags::IN)], &mut ready).is_ok() && ready[0]
    }
}

impl AsFd for SimFence {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl fmt::Debug for SimFence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimFence")
            .field("signalled", &self.is_signalled())
            .finish()
    }
}
