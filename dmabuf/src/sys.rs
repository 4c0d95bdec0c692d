//! The kernel interfaces, and nothing else: recognising a dma-buf, its two sync-file ioctls
//! (Linux 6.0), and `poll`. Every `unsafe` block of the crate is here.

use crate::error::Error;
use rustix::event::Timespec;
use rustix::event::{poll, PollFd, PollFlags};
use rustix::fs::fstatfs;
use rustix::io::Errno;
use rustix::ioctl::{ioctl, opcode, Opcode, Setter, Updater};
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// `DMA_BUF_MAGIC` (include/uapi/linux/magic.h): the `f_type` of the dma-buf pseudo
/// filesystem, which every dma-buf file lives on.
const DMA_BUF_MAGIC: i64 = 0x444d_4142;

/// `DMA_BUF_SYNC_READ`: for export, the fences a reader waits for (the writers'); for
/// import, a read fence.
pub(crate) const SYNC_READ: u32 = 1;
/// `DMA_BUF_SYNC_WRITE`: for export, every fence (what a writer waits for); for import, a
/// write fence.
pub(crate) const SYNC_WRITE: u32 = 2;

/// `struct dma_buf_export_sync_file` (include/uapi/linux/dma-buf.h).
#[repr(C)]
struct ExportSyncFile {
    flags: u32,
    fd: i32,
}

/// `struct dma_buf_import_sync_file`.
#[repr(C)]
struct ImportSyncFile {
    flags: u32,
    fd: i32,
}

/// `DMA_BUF_IOCTL_EXPORT_SYNC_FILE`: `_IOWR(DMA_BUF_BASE, 2, struct dma_buf_export_sync_file)`.
const EXPORT_SYNC_FILE: Opcode = opcode::read_write::<ExportSyncFile>(b'b', 2);
/// `DMA_BUF_IOCTL_IMPORT_SYNC_FILE`: `_IOW(DMA_BUF_BASE, 3, struct dma_buf_import_sync_file)`.
const IMPORT_SYNC_FILE: Opcode = opcode::write::<ImportSyncFile>(b'b', 3);

/// What the error messages name when the kernel lacks the sync-file ioctls.
pub(crate) const SYNC_FILE_FEATURE: &str =
    "DMA_BUF_IOCTL_EXPORT_SYNC_FILE / IMPORT_SYNC_FILE (Linux 6.0 or later)";

/// Duplicates a raw descriptor that the caller does not own (close-on-exec).
/// `Error::BadFd(EBADF)` for a negative or closed one.
///
/// # Safety
///
/// `raw` is not open, or open and not closed or reused by anyone while this call runs.
pub(crate) unsafe fn dup_raw(raw: RawFd) -> Result<OwnedFd, Error> {
    if raw < 0 {
        return Err(Error::BadFd(Errno::BADF));
    }
    // SAFETY: by the caller's contract the descriptor, if open, stays open for this call,
    // which is all the borrow lasts; `fcntl(F_DUPFD_CLOEXEC)` reads no memory, fails with
    // EBADF on a number that is not open, and otherwise makes a new descriptor we own.
    let borrowed = unsafe { BorrowedFd::borrow_raw(raw) };
    rustix::io::fcntl_dupfd_cloexec(borrowed, 0).map_err(Error::BadFd)
}

/// Checks that `fd` is a dma-buf and that the kernel has the sync-file ioctls.
pub(crate) fn check_dmabuf(fd: BorrowedFd<'_>) -> Result<(), Error> {
    let fs = fstatfs(fd).map_err(Error::BadFd)?;
    #[allow(clippy::unnecessary_cast)] // `f_type`'s width differs between architectures.
    if fs.f_type as i64 != DMA_BUF_MAGIC {
        return Err(Error::NotDmaBuf);
    }
    // The probe: a reader's sync file (a signalled stub when there are no fences), closed.
    export_sync_file(fd, SYNC_READ).map(drop)
}

/// A sync file holding the buffer's fences that an access waits for: the writers' for
/// `SYNC_READ`, all of them for `SYNC_WRITE`. Readable (`POLLIN`) once they have signalled.
pub(crate) fn export_sync_file(dmabuf: BorrowedFd<'_>, flags: u32) -> Result<OwnedFd, Error> {
    let mut arg = ExportSyncFile { flags, fd: -1 };
    // SAFETY: EXPORT_SYNC_FILE is the read-write ioctl whose argument is
    // `struct dma_buf_export_sync_file`, which `ExportSyncFile` lays out (two 32-bit fields).
    let r = unsafe { ioctl(dmabuf, Updater::<EXPORT_SYNC_FILE, _>::new(&mut arg)) };
    match r {
        Ok(()) if arg.fd >= 0 => {
            // SAFETY: on success the kernel installed a new descriptor, `arg.fd`, that
            // nobody else owns.
            Ok(unsafe { OwnedFd::from_raw_fd(arg.fd) })
        }
        Ok(()) => Err(Error::Io(Errno::INVAL)),
        Err(Errno::NOTTY) => Err(Error::Unsupported(SYNC_FILE_FEATURE)),
        Err(e) => Err(Error::Io(e)),
    }
}

/// Adds the fence of `sync_file` to the buffer: a write fence with `SYNC_WRITE`, a read
/// fence with `SYNC_READ`.
pub(crate) fn import_sync_file(
    dmabuf: BorrowedFd<'_>,
    sync_file: BorrowedFd<'_>,
    flags: u32,
) -> Result<(), Error> {
    let raw = std::os::fd::AsRawFd::as_raw_fd(&sync_file);
    let arg = ImportSyncFile { flags, fd: raw };
    // SAFETY: IMPORT_SYNC_FILE is the write ioctl whose argument is
    // `struct dma_buf_import_sync_file`, which `ImportSyncFile` lays out; the kernel only
    // reads it (and takes its own reference to the sync file's fence).
    let r = unsafe { ioctl(dmabuf, Setter::<IMPORT_SYNC_FILE, _>::new(arg)) };
    match r {
        Ok(()) => Ok(()),
        Err(Errno::NOTTY) => Err(Error::Unsupported(SYNC_FILE_FEATURE)),
        // The kernel answers EINVAL when the descriptor is not a sync file.
        Err(Errno::INVAL) | Err(Errno::BADF) => Err(Error::NotSyncFile),
        Err(e) => Err(Error::Io(e)),
    }
}

/// Polls `fds` (each with its events) without blocking; `ready[i]` is set for each one
/// whose events are ready (or that reports an error or hang-up: it can never become more
/// ready).
pub(crate) fn poll_now(
    fds: &[(BorrowedFd<'_>, PollFlags)],
    ready: &mut [bool],
) -> Result<(), Error> {
    let mut polls: Vec<PollFd<'_>> = fds
        .iter()
        .map(|(fd, ev)| PollFd::from_borrowed_fd(*fd, *ev))
        .collect();
    poll_retry(&mut polls, Some(Duration::ZERO))?;
    for (i, p) in polls.iter().enumerate() {
        if !p.revents().is_empty() {
            ready[i] = true;
        }
    }
    Ok(())
}

/// Waits until every descriptor in `fds` is readable (a sync file: its fences signalled),
/// or `timeout` passes (`Error::Timeout`). `EINTR` restarts the wait with what is left.
pub(crate) fn wait_readable(fds: &[OwnedFd], timeout: Option<Duration>) -> Result<(), Error> {
    let deadline = timeout.and_then(|t| std::time::Instant::now().checked_add(t));
    let mut left: Vec<BorrowedFd<'_>> = fds.iter().map(|f| f.as_fd()).collect();
    while !left.is_empty() {
        let remaining = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
        let mut polls: Vec<PollFd<'_>> = left
            .iter()
            .map(|fd| PollFd::from_borrowed_fd(*fd, PollFlags::IN))
            .collect();
        poll_retry(&mut polls, remaining)?;
        let still: Vec<BorrowedFd<'_>> = polls
            .iter()
            .zip(left.iter())
            .filter(|(p, _)| p.revents().is_empty())
            .map(|(_, fd)| *fd)
            .collect();
        // Nothing turned readable in a poll that could not wait: the time is up.
        if still.len() == left.len() && remaining.is_some_and(|r| r.is_zero()) {
            return Err(Error::Timeout);
        }
        left = still;
    }
    Ok(())
}

/// `poll`, restarted on `EINTR` (with the same timeout: the caller's loop recomputes it).
fn poll_retry(polls: &mut [PollFd<'_>], timeout: Option<Duration>) -> Result<usize, Error> {
    // Timespec from a Duration: whole seconds and nanoseconds (never negative).
    let ts = timeout.map(|t| Timespec {
        tv_sec: t.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: t.subsec_nanos() as _,
    });
    loop {
        match poll(polls, ts.as_ref()) {
            Ok(n) => return Ok(n),
            Err(Errno::INTR) => {
                if timeout.is_some() {
                    // Let the caller recompute the time left.
                    return Ok(0);
                }
            }
            Err(e) => return Err(Error::Io(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kernel without the sync-file ioctls answers them as it answers any ioctl it does
    /// not know: `ENOTTY`, which is also what a regular file answers. The error names the
    /// ioctls and the kernel release that brought them.
    #[test]
    fn an_unknown_ioctl_is_reported_as_the_missing_kernel_feature() {
        let file = std::fs::File::open("/proc/self/status").unwrap();
        let e = export_sync_file(file.as_fd(), SYNC_READ).unwrap_err();
        assert_eq!(e, Error::Unsupported(SYNC_FILE_FEATURE));
        assert!(e.to_string().contains("Linux 6.0"), "{e}");
        let e = import_sync_file(file.as_fd(), file.as_fd(), SYNC_WRITE).unwrap_err();
        assert_eq!(e, Error::Unsupported(SYNC_FILE_FEATURE));
    }
}
