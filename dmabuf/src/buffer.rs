//! [`DmaBuf`]: a kds resource bound to a dma-buf, and what its fences ask of a request;
//! [`SimFence`] and simulated buffers, for tests on machines without a dma-buf exporter.

use crate::error::Error;
use crate::sys;
use kds::{Access, Resource};
use rustix::event::{eventfd, EventfdFlags, PollFlags};
use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};

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
    /// A real dma-buf: the kernel's `dma_resv`.
    Kernel(OwnedFd),
    /// A stand-in for tests: fences are descriptors readable once signalled (eventfds from
    /// [`SimFence`], or real sync files), each a write or a read fence.
    Simulated(Mutex<Vec<SimAttached>>),
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
    pub fn new(fd: OwnedFd) -> Result<DmaBuf, Error> {
        sys::check_dmabuf(fd.as_fd())?;
        Ok(DmaBuf::with_source(Source::Kernel(fd)))
    }

    /// Binds a dma-buf descriptor that the caller keeps (from C, or a protocol message): it
    /// is duplicated, the duplicate is bound. [`Error::BadFd`] for a negative or closed
    /// descriptor; otherwise as [`new`](Self::new).
    pub fn from_raw_fd_dup(fd: RawFd) -> Result<DmaBuf, Error> {
        DmaBuf::new(sys::dup_raw(fd)?)
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
            Source::Kernel(_) => Err(Error::Unsupported(
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
            Source::Kernel(fd) => Some(fd.as_fd()),
            Source::Simulated(_) => None,
        }
    }

    /// A sync file of the buffer's fences that `access` would wait for (shared: the
    /// writers'; exclusive: all), readable once they signal
    /// (`DMA_BUF_IOCTL_EXPORT_SYNC_FILE`): to hand to the kernel (a KMS `IN_FENCE_FD`) or to
    /// a GPU API (a Vulkan semaphore import), or to attach to another buffer. A snapshot: a
    /// fence attached later is not in it. [`Error::Unsupported`] on a simulated buffer.
    pub fn sync_file(&self, access: Access) -> Result<OwnedFd, Error> {
        match &self.inner.source {
            Source::Kernel(fd) => {
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
            Source::Kernel(fd) => {
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
            Source::Kernel(fd) => f.debug_struct("DmaBuf").field("fd", fd).finish(),
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
    let mut kernel: Vec<(BorrowedFd<'_>, PollFlags)> = Vec::new();
    let mut out = Vec::new();
    for (buf, access) in bufs {
        match &buf.inner.source {
            Source::Kernel(fd) => {
                let ev = match access {
                    Access::Shared => PollFlags::IN,
                    Access::Exclusive => PollFlags::OUT,
                };
                kernel.push((fd.as_fd(), ev));
            }
            Source::Simulated(fences) => sim_pending(fences, *access, &mut out)?,
        }
    }
    if kernel.is_empty() {
        return Ok(out);
    }
    let mut ready = vec![false; kernel.len()];
    sys::poll_now(&kernel, &mut ready)?;
    for ((fd, ev), ready) in kernel.iter().zip(ready) {
        if !ready {
            let flags = if *ev == PollFlags::IN {
                sys::SYNC_READ
            } else {
                sys::SYNC_WRITE
            };
            out.push(sys::export_sync_file(*fd, flags)?);
        }
    }
    Ok(out)
}

/// A simulated buffer's unsignalled fences for `access`, duplicated into `out`; the
/// signalled ones are forgotten, as the kernel drops signalled fences from a `dma_resv`.
fn sim_pending(
    fences: &Mutex<Vec<SimAttached>>,
    access: Access,
    out: &mut Vec<OwnedFd>,
) -> Result<(), Error> {
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
    for f in fences.iter() {
        if f.write || access == Access::Exclusive {
            out.push(rustix::io::fcntl_dupfd_cloexec(&f.fence, 0).map_err(Error::Io)?);
        }
    }
    Ok(())
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
