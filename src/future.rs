//! [`Acquire`]: an async request as a future.

use crate::access::Locked;
use crate::delivery::{self, Waited, Waiter};
use crate::engine::{Engine, Holder, SetKind};
use crate::entries::Entries;
use crate::error::Error;
use crate::guard::Guard;
use crate::take::{enqueue, new_request, take_fast};
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// The future of [`ResourceSet::acquire`](crate::ResourceSet::acquire): resolves to the guard
/// once the set is granted. It is an async set and honours the set's [`Locked`](crate::Locked)
/// policy.
///
/// The set is enqueued on the first poll; if every resource is free then, it is held at once
/// without any request (no allocation). Dropping the future before it resolves cancels the
/// request; if the grant raced the drop, the set is released at once. Once it resolves, the
/// request keeps no waker: a waker (a task) may own handles of the set's own resources.
///
/// Like the set's [`wait`](crate::ResourceSet::wait), it borrows the set's resources for
/// `'a` (or owns handles of them, for an owned set) and resolves to a [`Guard<'a>`](Guard).
///
/// ```
/// use kds::{Resource, ResourceSet};
///
/// let frame = Resource::new();
/// let held = ResourceSet::new().exclusive(&frame).wait()?;
/// // An owned set's future owns handles of its resources: it may go to another thread.
/// let want = ResourceSet::new().shared(&frame).into_owned().acquire(); // nothing queued yet
/// let task = std::thread::spawn(move || futures_executor::block_on(want).map(drop));
/// drop(held); // wakes the task
/// task.join().unwrap()?;
/// # Ok::<(), kds::Error>(())
/// ```
///
/// # Panics
///
/// Polling it again after it returned `Poll::Ready` panics, as std's futures do.
#[must_use = "futures do nothing unless polled"]
pub struct Acquire<'a, E: Engine> {
    state: State<'a, E>,
}

// The entries first and no tag word in front of them (the tag lives in their header word's
// niche), as in `guard.rs`: a set's entries copied into the future, and from it into the
// guard, keep their 16-byte phase, and the future moves as cheaply as a set.
enum State<'a, E: Engine> {
    /// Not yet polled: the set's resources, its policy as their byte (`Locked::to_byte`).
    Unqueued(Entries<'a, E>),
    /// Polled.
    Started(Started<E>),
}

enum Started<E: Engine> {
    /// Enqueued, waiting for the grant.
    Queued(Arc<E::Request>),
    /// Resolved (or refused); nothing left to undo.
    Done,
}

impl<'a, E: Engine> Acquire<'a, E> {
    pub(crate) fn new(entries: Entries<'a, E>) -> Self {
        Acquire {
            state: State::Unqueued(entries),
        }
    }
}

impl<E: Engine> Unpin for Acquire<'_, E> {}

impl<'a, E: Engine> Future for Acquire<'a, E> {
    type Output = Result<Guard<'a, E>, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Everything free: held at once, no request made, no waker needed. Tried in place,
        // before the state is moved out below (each move of the entries costs).
        // The async fast path is only for the Wait policy, whose grant does not depend on who
        // holds what (rule 8).
        if let State::Unqueued(entries) = &mut self.state {
            let policy = Locked::from_byte(entries.aux());
            if policy == Locked::Wait && take_fast::<E>(entries.as_slice(), Holder::Async) {
                let entries = std::mem::replace(entries, Entries::new(0));
                self.state = State::Started(Started::Done);
                return Poll::Ready(Ok(Guard::fast(entries, Holder::Async)));
            }
        }
        let req = match std::mem::replace(&mut self.state, State::Started(Started::Done)) {
            State::Started(Started::Done) => panic!("kds::Acquire polled after completion"),
            State::Unqueued(entries) => {
                // The request takes handles of its own; the future's entries go.
                let kind = SetKind::asynchronous(Locked::from_byte(entries.aux()));
                let req = match new_request::<E>(entries.as_slice(), kind, Waiter::future()) {
                    Ok(req) => req,
                    Err(e) => return Poll::Ready(Err(e)),
                };
                // No waker yet: a grant that lands before the registration below is seen by
                // the check after it (and one granted by the enqueue itself wakes nobody).
                if let Err(e) = enqueue::<E>(&req) {
                    return Poll::Ready(Err(e));
                }
                req
            }
            State::Started(Started::Queued(req)) => req,
        };
        let waiter = req.waiter();
        if waiter.is_delivered() {
            return Poll::Ready(Ok(granted::<E>(req)));
        }
        // Register, then check: a delivery after the check wakes the registered waker. The
        // waker's own code runs here (its clone, the old one's drop): should it panic, the
        // future keeps its request, so dropping it still cancels or releases the set.
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| waiter.register_waker(cx.waker()))) {
            self.state = State::Started(Started::Queued(req));
            resume_unwind(panic);
        }
        if waiter.is_delivered() {
            return Poll::Ready(Ok(granted::<E>(req)));
        }
        // The executor may block this thread next (`block_on` inside a direct callback):
        // deliver what this thread owes first.
        delivery::flush_before_blocking();
        if waiter.is_delivered() {
            return Poll::Ready(Ok(granted::<E>(req)));
        }
        self.state = State::Started(Started::Queued(req));
        Poll::Pending
    }
}

/// The guard of a request whose grant was delivered to its future. The waker registered last
/// is dropped: it is never woken again, and one that holds a handle of the set's own resource
/// would otherwise keep that resource alive through the request (a reference cycle, issue 8).
fn granted<E: Engine>(req: Arc<E::Request>) -> Guard<'static, E> {
    let waker = req.waiter().take_waker();
    let guard = Guard::queued(req);
    // Dropped after the guard exists: if the waker's drop panics, unwinding releases the set.
    drop(waker);
    guard
}

impl<E: Engine> Drop for Acquire<'_, E> {
    fn drop(&mut self) {
        if let State::Started(Started::Queued(req)) =
            std::mem::replace(&mut self.state, State::Started(Started::Done))
        {
            if cfg!(kds_bug = "future_drop_leaks") {
                std::mem::forget(req);
                return;
            }
            if E::cancel(&req) {
                // SAFETY: `cancel` returned true: the grant will never be delivered.
                unsafe { delivery::withdrawn(&*req) };
            } else {
                // Granted while being dropped: the set is ours, give it back.
                drop(granted::<E>(req));
            }
        }
    }
}

impl<E: Engine> fmt::Debug for Acquire<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Unqueued(..) => "unqueued",
            State::Started(Started::Queued(_)) => "queued",
            State::Started(Started::Done) => "done",
        };
        f.debug_struct("Acquire")
            .field("engine", &E::NAME)
            .field("state", &state)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::{Started, State};
    use crate::delivery::Waited;
    use crate::{LockFree, Resource, ResourceSet};
    use std::future::Future;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};

    /// A waker with a sentinel, whose drop may panic.
    struct Sentinel {
        _alive: Arc<()>,
        panic_on_drop: bool,
    }
    impl Wake for Sentinel {
        fn wake(self: Arc<Self>) {}
    }
    impl Drop for Sentinel {
        fn drop(&mut self) {
            if self.panic_on_drop && !std::thread::panicking() {
                panic!("the waker's drop panics (expected by the test)");
            }
        }
    }

    /// The window no public test reaches deterministically: a poll registers its waker just
    /// after the grant was delivered (the deliverer's wake found none). The future must drop
    /// that waker when it resolves, and build its guard first, so a waker whose drop panics
    /// still releases the set.
    #[test]
    fn a_waker_registered_after_the_delivery_is_dropped_when_the_future_resolves() {
        let quiet = Waker::from(Arc::new(Sentinel {
            _alive: Arc::new(()),
            panic_on_drop: false,
        }));
        for panics in [false, true] {
            let r = Resource::new();
            let hold = ResourceSet::new().exclusive(&r).try_acquire().unwrap();
            let mut fut = ResourceSet::new().exclusive(&r).acquire();
            fn poll<'a>(
                fut: &mut super::Acquire<'a, LockFree>,
                waker: &Waker,
            ) -> Poll<Result<crate::Guard<'a>, crate::Error>> {
                Pin::new(fut).poll(&mut Context::from_waker(waker))
            }
            assert!(poll(&mut fut, &quiet).is_pending());
            drop(hold); // grants the future and delivers: the wake takes `quiet`
            let alive = Arc::new(());
            let late = Waker::from(Arc::new(Sentinel {
                _alive: alive.clone(),
                panic_on_drop: panics,
            }));
            let State::Started(Started::Queued(req)) = &fut.state else {
                panic!("the future is not queued");
            };
            req.waiter().register_waker(&late);
            drop(late);
            match catch_unwind(AssertUnwindSafe(|| poll(&mut fut, &quiet))) {
                Ok(Poll::Ready(Ok(guard))) if !panics => drop(guard),
                Err(_) if panics => {}
                Ok(other) => panic!("unexpected poll: {:?}", other.map(|r| r.map(drop))),
                Err(_) => panic!("poll panicked"),
            }
            assert_eq!(Arc::strong_count(&alive), 1, "the late waker was kept");
            assert!(
                ResourceSet::new().exclusive(&r).try_acquire().is_ok(),
                "panics = {panics}: the set was left held"
            );
        }
    }
}
