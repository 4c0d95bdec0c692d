//! The minimal executor the concurrent check and the torture run drive their futures with:
//! a waker that unparks the polling thread and owns handles of the set's resources, as a task
//! that owns the buffers it waits for does (a waker kept past the grant then keeps those
//! resources alive: a cycle that the checks' liveness tests and the memory soak see).

use kds::generic::ResourceSet;
use kds::Engine;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::Duration;

struct ThreadWaker<E: Engine> {
    thread: thread::Thread,
    _owns: ResourceSet<'static, E>,
}

impl<E: Engine> Wake for ThreadWaker<E> {
    fn wake(self: Arc<Self>) {
        self.thread.unpark();
    }
}

/// A waker that unparks the calling thread and owns handles of `owns`'s resources.
pub fn owning_waker<E: Engine>(owns: &ResourceSet<'_, E>) -> Waker {
    Waker::from(Arc::new(ThreadWaker {
        thread: thread::current(),
        _owns: owns.clone().into_owned(),
    }))
}

/// Polls `fut` to completion on this thread with `waker`, parking until woken (or for at most
/// 50 ms at a time, so a lost wake-up shows as slowness the checks' watchdogs report, not as
/// a hang).
pub fn block_on<F: Future>(fut: F, waker: &Waker) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(waker);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        thread::park_timeout(Duration::from_millis(50));
    }
}
