//! The one error type of every kds-dmabuf operation.

use rustix::io::Errno;
use std::fmt;

/// Why a dma-buf request or call was refused or did not complete.
///
/// As with [`kds::Error`], every refusal leaves nothing queued and nothing held: the set's
/// place in the queues is given up and every descriptor the request opened is closed when
/// the error is returned (or, for a callback, when it is delivered).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// The timeout passed before the set was granted: while it queued, or while it held its
    /// place waiting for the buffers' fences (one timeout covers both).
    Timeout,
    /// The [`kds::Interrupt`] fired before the set was granted (queued or waiting for fences).
    Interrupted,
    /// `try_acquire`: another kds client holds a buffer, or a fence has not signalled.
    WouldBlock,
    /// kds refused the set ([`kds::Error::Busy`], [`kds::Error::BadSet`], ...).
    Kds(kds::Error),
    /// The descriptor is open but is not a dma-buf (its file is not on the kernel's dma-buf
    /// filesystem).
    NotDmaBuf,
    /// The descriptor is not open (or negative): the errno of the first call on it.
    BadFd(Errno),
    /// The descriptor handed to [`attach_fence`](crate::DmaBufGuard::attach_fence) is not a
    /// sync file.
    NotSyncFile,
    /// [`attach_fence`](crate::DmaBufGuard::attach_fence) named a buffer that the guard does
    /// not hold.
    NotInSet,
    /// The kernel lacks an interface this crate needs; the text names it and the first
    /// Linux release that has it.
    Unsupported(&'static str),
    /// A system call failed while the request waited for fences (for example `EMFILE`: no
    /// descriptor left for a sync file).
    Io(Errno),
}

impl From<kds::Error> for Error {
    fn from(e: kds::Error) -> Error {
        match e {
            kds::Error::Timeout => Error::Timeout,
            kds::Error::Interrupted => Error::Interrupted,
            kds::Error::WouldBlock => Error::WouldBlock,
            other => Error::Kds(other),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Timeout => f.write_str("timed out waiting for the buffers and their fences"),
            Error::Interrupted => f.write_str("interrupted while waiting for the buffers"),
            Error::WouldBlock => f.write_str("the buffers or their fences are not ready now"),
            Error::Kds(e) => write!(f, "kds refused the set: {e}"),
            Error::NotDmaBuf => f.write_str("the file descriptor is not a dma-buf"),
            Error::BadFd(e) => write!(f, "bad file descriptor: {e}"),
            Error::NotSyncFile => f.write_str("the fence descriptor is not a sync_file"),
            Error::NotInSet => f.write_str("the buffer is not in this guard's set"),
            Error::Unsupported(what) => write!(f, "the kernel lacks {what}"),
            Error::Io(e) => write!(f, "system call failed while waiting for fences: {e}"),
        }
    }
}

impl std::error::Error for Error {}
