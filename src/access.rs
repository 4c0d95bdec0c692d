//! Access modes and the policy for sync-locked resources.

/// How a set uses one of its resources.
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
