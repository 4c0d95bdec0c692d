//! [`DmaBufGuard`]: a granted dma-buf set, and the fences its holder publishes.

use crate::buffer::DmaBuf;
use crate::error::Error;
use kds::{Access, Guard};
use std::fmt;
use std::os::fd::BorrowedFd;

/// A granted set of dma-bufs: no other kds client holds them in a conflicting mode, and
/// every fence the set's accesses wait for has signalled. Dropping it releases the set.
///
/// Before releasing, the holder can publish the work it queued on the buffers
/// ([`attach_fence`](Self::attach_fence)): the kernel's own consumers (a KMS flip, another
/// process's GPU job) then wait for it, and so does the next kds grant of the buffer.
pub struct DmaBufGuard<'a> {
    guard: Guard<'a>,
    bufs: Vec<(DmaBuf, Access)>,
}

impl<'a> DmaBufGuard<'a> {
    pub(crate) fn new(guard: Guard<'a>, bufs: Vec<(DmaBuf, Access)>) -> Self {
        DmaBufGuard { guard, bufs }
    }

    /// Attaches the fence of `sync_file` (the fence of GPU work the holder submitted, as
    /// EGL's `EGL_ANDROID_native_fence_sync` or Vulkan's `VK_KHR_external_semaphore_fd`
    /// export one) to `buf`: a write fence if the set holds `buf` exclusive, a read fence if
    /// shared (`DMA_BUF_IOCTL_IMPORT_SYNC_FILE`). The descriptor stays the caller's.
    ///
    /// Errors: [`Error::NotInSet`] if the set does not hold `buf`, [`Error::NotSyncFile`] if
    /// `sync_file` is not a sync file, [`Error::Unsupported`] on a kernel before 6.0.
    pub fn attach_fence(&self, buf: &DmaBuf, sync_file: BorrowedFd<'_>) -> Result<(), Error> {
        let access = self
            .bufs
            .iter()
            .find(|(b, _)| b.same(buf))
            .map(|(_, a)| *a)
            .ok_or(Error::NotInSet)?;
        buf.import(sync_file, access)
    }

    /// The buffers held, with their modes (a buffer named twice appears once, exclusive if
    /// either was).
    pub fn buffers(&self) -> impl Iterator<Item = (&DmaBuf, Access)> {
        self.bufs.iter().map(|(b, a)| (b, *a))
    }

    /// Releases the set now (as dropping the guard does).
    pub fn release(self) {
        drop(self);
    }

    /// A guard that keeps its own handles of the buffers (one reference count per buffer),
    /// to keep beyond the set's borrow.
    pub fn into_owned(self) -> DmaBufGuard<'static> {
        DmaBufGuard {
            guard: self.guard.into_owned(),
            bufs: self.bufs,
        }
    }

    /// The kds guard underneath (the buffers' kds resources).
    pub fn kds_guard(&self) -> &Guard<'a> {
        &self.guard
    }
}

impl fmt::Debug for DmaBufGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DmaBufGuard")
            .field("buffers", &self.bufs.len())
            .finish()
    }
}
