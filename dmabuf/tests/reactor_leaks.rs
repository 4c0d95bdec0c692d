//! The reactor's bookkeeping after every way a fence wait can end: signalled, cancelled,
//! timed out, interrupted, dropped (a future). One test in its own process, so that the
//! process-wide counts are this test's alone.

use kds::{Dispatch, Interrupt};
use kds_dmabuf::{reactor_counts, DmaBuf, DmaBufSet, Error, SimFence};
use std::future::Future;
use std::os::fd::AsFd;
use std::sync::mpsc;
use std::time::Duration;

/// Open descriptors of this process.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn every_ending_leaves_no_wait_and_no_sync_file() {
    let short = Duration::from_millis(20);
    let buf = DmaBuf::simulated();
    let fence = SimFence::new().unwrap();
    buf.sim_attach(fence.as_fd(), true).unwrap();
    // Start the reactor (its epoll descriptor is opened once), then count descriptors.
    let _ = DmaBufSet::new()
        .exclusive(&buf)
        .wait_interruptible(Some(short), &Interrupt::new());
    assert_eq!(reactor_counts(), (0, 0));
    let base = open_fds();

    for round in 0..50 {
        // Cancelled while fencing.
        let p = DmaBufSet::new()
            .exclusive(&buf)
            .on_grant(Dispatch::Direct, drop)
            .unwrap();
        assert!(p.is_waiting_for_fences());
        assert_eq!(reactor_counts(), (1, 1), "round {round}");
        assert!(p.cancel());
        assert_eq!(reactor_counts(), (0, 0), "round {round}: cancel");

        // Timed out (blocking: polls in the caller, the reactor is not involved).
        let e = DmaBufSet::new()
            .exclusive(&buf)
            .wait_timeout(Duration::from_millis(1));
        assert_eq!(e.unwrap_err(), Error::Timeout);

        // Interrupted (through the reactor).
        let int = Interrupt::new();
        int.interrupt();
        let e = DmaBufSet::new()
            .exclusive(&buf)
            .wait_interruptible(None, &int);
        assert_eq!(e.unwrap_err(), Error::Interrupted);
        assert_eq!(reactor_counts(), (0, 0), "round {round}: interrupt");

        // A future dropped while fencing.
        let mut fut = Box::pin(DmaBufSet::new().shared(&buf).acquire());
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        assert_eq!(reactor_counts(), (1, 1));
        drop(fut);
        assert_eq!(reactor_counts(), (0, 0), "round {round}: future dropped");
        // try_acquire of a buffer whose fence is pending: refused without opening anything.
        assert_eq!(
            DmaBufSet::new().exclusive(&buf).try_acquire().unwrap_err(),
            Error::WouldBlock
        );
        assert_eq!(open_fds(), base, "round {round}: a descriptor leaked");
    }

    // Signalled: the reactor delivers and forgets.
    let (tx, rx) = mpsc::channel();
    DmaBufSet::new()
        .exclusive(&buf)
        .on_grant(Dispatch::Direct, move |g| tx.send(g.is_ok()).unwrap())
        .unwrap();
    assert_eq!(reactor_counts(), (1, 1));
    fence.signal();
    assert!(rx.recv_timeout(Duration::from_secs(10)).unwrap());
    // The reactor forgets the wait before it runs the delivery.
    assert_eq!(reactor_counts(), (0, 0));
    assert_eq!(open_fds(), base);
}
