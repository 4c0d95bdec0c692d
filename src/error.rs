//! The one error type of every kds operation.

use std::fmt;

/// Why a request was refused or did not complete.
///
/// Every refusal leaves nothing queued: the set's links are gone when the error is returned.
/// It is `Copy`, compares with `==`, and displays as a sentence.
///
/// ```
/// use kds::{Error, Resource, ResourceSet};
/// use std::time::Duration;
///
/// let buffer = Resource::new();
/// let held = ResourceSet::new().exclusive(&buffer).wait()?;
/// match ResourceSet::new().exclusive(&buffer).wait_timeout(Duration::from_millis(1)) {
///     Ok(_guard) => unreachable!("still held"),
///     Err(Error::Timeout) => { /* skip this frame */ }
///     Err(other) => return Err(other),
/// }
/// drop(held);
/// # Ok::<(), kds::Error>(())
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// A `wait_timeout` or `wait_interruptible` timeout passed before the set was granted
    /// (the seed's `kds_waitall` returning NULL).
    Timeout,
    /// The [`Interrupt`](crate::Interrupt) passed to `wait_interruptible` fired before the set
    /// was granted (the seed's `-ERESTARTSYS`).
    Interrupted,
    /// An async request with [`Locked::Fail`](crate::Locked::Fail) met a resource that a sync
    /// set holds or waits for.
    Busy,
    /// `try_acquire` could not be granted at once.
    WouldBlock,
    /// The set cannot be requested as built; the text says why.
    BadSet(&'static str),
    /// A counter would overflow (for example the number of sync sets on one resource).
    Overflow,
    /// A worker thread could not be started.
    Spawn(std::io::ErrorKind),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Timeout => f.write_str("timed out waiting for the resource set"),
            Error::Interrupted => f.write_str("interrupted while waiting for the resource set"),
            Error::Busy => {
                f.write_str("a resource is locked by a synchronous waiter (Locked::Fail)")
            }
            Error::WouldBlock => f.write_str("the resource set is not available now"),
            Error::BadSet(why) => write!(f, "bad resource set: {why}"),
            Error::Overflow => f.write_str("a kds counter would overflow"),
            Error::Spawn(kind) => write!(f, "could not start a worker thread: {kind}"),
        }
    }
}

impl std::error::Error for Error {}
