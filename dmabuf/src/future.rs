//! [`DmaBufAcquire`]: the future of [`DmaBufSet::acquire`](crate::DmaBufSet::acquire).

use crate::buffer::{pending_fences, DmaBuf};
use crate::error::Error;
use crate::guard::DmaBufGuard;
use crate::reactor::{Reactor, Token};
use atomic_waker::AtomicWaker;
use kds::{Access, Acquire, Guard};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

/// Resolves to the guard once kds grants the set and its buffers' fences have signalled.
/// Dropping it before then gives up the set's place (or its grant) and closes its sync files.
pub struct DmaBufAcquire<'a> {
    state: State<'a>,
    bufs: Vec<(DmaBuf, Access)>,
}

enum State<'a> {
    /// Queued in kds.
    Queued(Acquire<'a>),
    /// Granted by kds; the reactor waits for the fences.
    Fencing {
        guard: Guard<'a>,
        token: Token,
        woken: Arc<Woken>,
    },
    /// Resolved (or failed).
    Done,
}

/// What the reactor's closure sets, and whom it wakes.
#[derive(Default)]
struct Woken {
    done: AtomicBool,
    waker: AtomicWaker,
}

impl<'a> DmaBufAcquire<'a> {
    pub(crate) fn new(acquire: Acquire<'a>, bufs: Vec<(DmaBuf, Access)>) -> Self {
        DmaBufAcquire {
            state: State::Queued(acquire),
            bufs,
        }
    }

    /// The kds grant arrived: resolve now if the fences have signalled, else register
    /// with the reactor and wait.
    fn granted(&mut self, guard: Guard<'a>) -> Poll<Result<DmaBufGuard<'a>, Error>> {
        let fences = pending_fences(&self.bufs)?;
        if fences.is_empty() {
            return Poll::Ready(Ok(DmaBufGuard::new(guard, std::mem::take(&mut self.bufs))));
        }
        let woken = Arc::new(Woken::default());
        let w = woken.clone();
        let token = Reactor::get()?
            .watch(
                fences,
                Box::new(move |_delivering| {
                    // Release: the future's Acquire load sees the fences done.
                    w.done.store(true, Ordering::Release);
                    w.waker.wake();
                }),
            )
            .map_err(|(e, _)| e)?;
        self.state = State::Fencing {
            guard,
            token,
            woken,
        };
        Poll::Pending
    }
}

impl Unpin for DmaBufAcquire<'_> {}

impl<'a> Future for DmaBufAcquire<'a> {
    type Output = Result<DmaBufGuard<'a>, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if let State::Queued(acquire) = &mut this.state {
            let guard = match Pin::new(acquire).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => {
                    this.state = State::Done;
                    return Poll::Ready(Err(e.into()));
                }
                Poll::Ready(Ok(guard)) => guard,
            };
            this.state = State::Done;
            match this.granted(guard) {
                Poll::Pending => {} // now Fencing: register the waker below
                ready => return ready,
            }
        }
        if let State::Fencing { woken, .. } = &this.state {
            woken.waker.register(cx.waker());
            // Acquire: pairs with the reactor's Release store.
            if !woken.done.load(Ordering::Acquire) {
                // A blocking executor inside a direct callback: the callbacks this thread
                // owes must not wait for it (kds's own future does the same).
                kds::flush_before_blocking();
                return Poll::Pending;
            }
            if let State::Fencing { guard, .. } = std::mem::replace(&mut this.state, State::Done) {
                return Poll::Ready(Ok(DmaBufGuard::new(guard, std::mem::take(&mut this.bufs))));
            }
        }
        Poll::Ready(Err(Error::Kds(kds::Error::BadSet(
            "DmaBufAcquire polled after it resolved",
        ))))
    }
}

impl Drop for DmaBufAcquire<'_> {
    fn drop(&mut self) {
        if let State::Fencing { token, .. } = &self.state {
            // Fired or not, the guard drops with the state: the set is released.
            if let Ok(r) = Reactor::get() {
                drop(r.cancel(*token));
            }
        }
    }
}

impl fmt::Debug for DmaBufAcquire<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Queued(_) => "queued",
            State::Fencing { .. } => "waiting for fences",
            State::Done => "done",
        };
        f.debug_struct("DmaBufAcquire")
            .field("state", &state)
            .finish()
    }
}
