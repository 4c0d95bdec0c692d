//! # kds-dmabuf: kds sets over dma-bufs, granted when the kernel's fences allow
//!
//! A kds grant means "no other kds client holds these buffers". The GPU, the video decoder
//! or the display engine may still be writing or scanning one out: the kernel tracks that
//! with the fences of each dma-buf's reservation object (implicit sync). A [`DmaBufSet`]
//! asks for both: it is granted when kds's rules grant it **and** the fences its accesses
//! wait for have signalled: for a shared access the writers' fences, for an exclusive one
//! every fence.
//!
//! - The FIFO place is taken at the request, as for any kds set. The fence wait happens
//!   after the kds grant, while the set holds that place, so later requests stay queued
//!   behind it and the fences the previous holder published before releasing are waited
//!   for.
//! - Every kds request path has its dma-buf form: [`wait`](DmaBufSet::wait),
//!   [`wait_timeout`](DmaBufSet::wait_timeout) (one timeout for the queue and the fences),
//!   [`wait_interruptible`](DmaBufSet::wait_interruptible),
//!   [`try_acquire`](DmaBufSet::try_acquire), [`on_grant`](DmaBufSet::on_grant) with any
//!   [`kds::Dispatch`] (a grant whose fences are pending is delivered once they signal,
//!   from one reactor thread that `epoll`s every pending sync file), and
//!   [`acquire`](DmaBufSet::acquire) (a future the reactor wakes). Cancel, timeout and drop
//!   leave nothing queued or held, and close every sync file they opened.
//! - A holder publishes its own work on the buffers with
//!   [`DmaBufGuard::attach_fence`]: a sync file becomes a write fence (exclusive entry) or a
//!   read fence (shared entry) on the buffer, so the kernel's consumers (a KMS flip, another
//!   process's GPU job) wait for it, and so does the next kds grant.
//!
//! Kernel interfaces: `poll()` on a dma-buf (`POLLIN`: writers done; `POLLOUT`: all done),
//! `DMA_BUF_IOCTL_EXPORT_SYNC_FILE` and `DMA_BUF_IOCTL_IMPORT_SYNC_FILE` (Linux 6.0), `epoll`.
//! [`DmaBuf::new`] checks the descriptor (a dma-buf, on a kernel with the ioctls) and says
//! which it is not. Linux only. `docs/dmabuf.md` in the repository has the semantics, the
//! costs measured in the hwtest guests, and what each bad input is answered with.
//!
//! ```
//! use kds::Dispatch;
//! use kds_dmabuf::{DmaBuf, DmaBufSet, SimFence};
//! use std::os::fd::AsFd;
//! use std::sync::mpsc;
//!
//! // A compositor's frame: a client's buffer (read) and the scan-out buffer (written).
//! // Simulated buffers here; on a real system, `DmaBuf::new(fd)` for each dma-buf.
//! let (client, scanout) = (DmaBuf::simulated(), DmaBuf::simulated());
//! let client_render = SimFence::new()?;
//! client.sim_attach(client_render.as_fd(), true)?; // the client's GPU still draws into it
//!
//! let (tx, frames) = mpsc::channel();
//! let pending = DmaBufSet::new()
//!     .shared(&client)
//!     .exclusive(&scanout)
//!     .on_grant(Dispatch::Direct, move |guard| tx.send(guard.map(drop)).unwrap())?;
//! assert!(pending.is_waiting_for_fences()); // kds granted it; the client's fence is pending
//!
//! client_render.signal(); // the client's GPU is done: the reactor delivers the grant
//! frames.recv().unwrap()?;
//! # Ok::<(), kds_dmabuf::Error>(())
//! ```
#![cfg(target_os = "linux")]
#![warn(missing_docs)]

mod buffer;
mod error;
mod future;
mod guard;
mod pending;
mod reactor;
mod set;
mod sys;

pub use buffer::{DmaBuf, SimFence};
pub use error::Error;
pub use future::DmaBufAcquire;
pub use guard::DmaBufGuard;
pub use pending::DmaBufPending;
pub use set::DmaBufSet;

/// How many requests wait for fences in the reactor, and how many sync files they hold
/// open: `(0, 0)` when nothing waits. For leak checks in tests and diagnostics.
pub fn reactor_counts() -> (usize, usize) {
    reactor::Reactor::started().map_or((0, 0), |r| r.counts())
}
