//! Access modes and the policy for sync-locked resources.

/// How a set uses one of its resources, for [`ResourceSet::access`](crate::ResourceSet::access)
/// (or the shorthands `shared` and `exclusive`).
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
/// drop(set.wait()?);
/// # Ok::<(), kds::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// Any number of shared holders at once (readers, e.g. a display scanning out).
    Shared,
    /// One holder, nobody else (a writer, e.g. a GPU rendering into the buffer).
    Exclusive,
}

impl Access {
    /// The mode that wins when one resource is named twice in a set: exclusive.
    pub(crate) fn merge(self, other: Access) -> Access {
        if self == Access::Exclusive || other == Access::Exclusive {
            Access::Exclusive
        } else {
            Access::Shared
        }
    }
}

/// What an *async* request does with resources that a *sync* set holds or waits for
/// (spec rule 8; the seed's `KDS_FLAG_LOCKED_*`). Sync requests ignore it.
///
/// A resource is *sync-locked* while a blocking request (`wait`, `lock`, `try_acquire`, ...)
/// holds it or waits for it: typically the CPU touching a buffer. An async user (a display
/// driver's callback) can then wait its turn, give up at once, or go ahead anyway.
///
/// ```
/// use kds::{Dispatch, Error, Locked, Resource, ResourceSet};
///
/// let buffer = Resource::new();
/// let cpu = ResourceSet::new().exclusive(&buffer).wait()?; // sync: buffer is sync-locked
///
/// // Fail: refused at once, nothing queued.
/// let busy = ResourceSet::new().shared(&buffer).locked(Locked::Fail).on_grant(Dispatch::Direct, drop);
/// assert_eq!(busy.unwrap_err(), Error::Busy);
///
/// // Ignore: granted at once despite the holder, but later sets still queue behind it.
/// let forced = ResourceSet::new().shared(&buffer).locked(Locked::Ignore).on_grant(Dispatch::Direct, drop)?;
/// assert!(forced.is_granted());
///
/// // Wait (the default): queued behind the sync holder like anyone else.
/// let waits = ResourceSet::new().shared(&buffer).on_grant(Dispatch::Direct, drop)?;
/// assert!(!waits.is_granted());
/// drop(cpu);
/// assert!(waits.is_granted());
/// # Ok::<(), kds::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Locked {
    /// No special treatment: queue behind everything as usual.
    #[default]
    Wait,
    /// Refuse with [`Error::Busy`](crate::Error::Busy), enqueueing nothing, if any resource
    /// of the set is sync-locked.
    Fail,
    /// On a sync-locked resource, do not wait: the link is triggered at once, but it stays in
    /// the queue, so sets enqueued later still wait behind it.
    Ignore,
}

impl Locked {
    /// As a byte, to keep in a set's header word (`entries.rs`).
    #[inline(always)]
    pub(crate) fn to_byte(self) -> u8 {
        match self {
            Locked::Wait => 0,
            Locked::Fail => 1,
            Locked::Ignore => 2,
        }
    }

    /// Back from [`to_byte`](Self::to_byte).
    #[inline(always)]
    pub(crate) fn from_byte(byte: u8) -> Locked {
        match byte {
            1 => Locked::Fail,
            2 => Locked::Ignore,
            _ => Locked::Wait,
        }
    }
}
