//! Every request path on simulated buffers (fences are eventfds standing in for the kernel's
//! dma-fences), and the bad inputs any machine can produce. The same paths on real vgem
//! dma-bufs are `tests/vgem.rs`, run in the hwtest guests.

use kds::{Dispatch, Interrupt, ResourceSet, Worker};
use kds_dmabuf::{DmaBuf, DmaBufSet, Error, SimFence};
use std::future::Future;
use std::os::fd::AsFd;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

const SHORT: Duration = Duration::from_millis(30);
const LONG: Duration = Duration::from_secs(10);

/// `buf`'s kds resource is free: an exclusive kds set takes it at once.
fn assert_free(buf: &DmaBuf) {
    let g = ResourceSet::new().exclusive(buf.resource()).try_acquire();
    assert!(
        g.is_ok(),
        "the buffer's kds resource is still held or queued"
    );
}

fn write_fenced() -> (DmaBuf, SimFence) {
    let buf = DmaBuf::simulated();
    let fence = SimFence::new().unwrap();
    buf.sim_attach(fence.as_fd(), true).unwrap();
    (buf, fence)
}

#[test]
fn a_regular_file_is_not_a_dma_buf() {
    let file = std::fs::File::open("/proc/self/status").unwrap();
    assert_eq!(DmaBuf::new(file.into()).unwrap_err(), Error::NotDmaBuf);
    let (r, _w) = rustix::pipe::pipe().unwrap();
    assert_eq!(DmaBuf::new(r).unwrap_err(), Error::NotDmaBuf);
}

#[test]
fn a_closed_or_negative_fd_is_a_bad_fd() {
    // Far above any descriptor this process opens (and above the usual RLIMIT_NOFILE).
    let closed = 1 << 29;
    // SAFETY: a number that is not an open descriptor of this process.
    let e = unsafe { DmaBuf::from_raw_fd_dup(closed) };
    assert_eq!(e.unwrap_err(), Error::BadFd(rustix::io::Errno::BADF));
    // SAFETY: a negative number is never a descriptor.
    let e = unsafe { DmaBuf::from_raw_fd_dup(-1) }.unwrap_err();
    assert_eq!(e, Error::BadFd(rustix::io::Errno::BADF));
    let e = e.to_string();
    assert!(e.contains("bad file descriptor"), "{e}");
}

#[test]
fn wait_holds_until_the_write_fence_signals() {
    let (buf, fence) = write_fenced();
    let set = DmaBufSet::new().exclusive(&buf);
    assert_eq!(set.try_acquire().unwrap_err(), Error::WouldBlock);
    thread::scope(|s| {
        let (tx, rx) = mpsc::channel();
        let buf = &buf;
        s.spawn(move || {
            let g = DmaBufSet::new().exclusive(buf).wait().unwrap();
            tx.send(()).unwrap();
            drop(g);
        });
        assert!(
            rx.recv_timeout(SHORT).is_err(),
            "granted before the fence signalled"
        );
        fence.signal();
        rx.recv_timeout(LONG)
            .expect("not granted after the fence signalled");
    });
    assert_free(&buf);
}

#[test]
fn shared_waits_for_writers_only() {
    let buf = DmaBuf::simulated();
    let read = SimFence::new().unwrap();
    buf.sim_attach(read.as_fd(), false).unwrap(); // someone still reads it
                                                  // A reader does not wait for readers...
    let g = DmaBufSet::new().shared(&buf).wait_timeout(SHORT).unwrap();
    drop(g);
    // ...a writer does.
    let e = DmaBufSet::new().exclusive(&buf).wait_timeout(SHORT);
    assert_eq!(e.unwrap_err(), Error::Timeout);
    read.signal();
    DmaBufSet::new().exclusive(&buf).wait_timeout(LONG).unwrap();
    // A write fence holds both.
    let (buf, write) = write_fenced();
    assert_eq!(
        DmaBufSet::new().shared(&buf).try_acquire().unwrap_err(),
        Error::WouldBlock
    );
    write.signal();
    DmaBufSet::new().shared(&buf).try_acquire().unwrap();
}

#[test]
fn timeout_while_fencing_leaves_nothing_held() {
    let (buf, fence) = write_fenced();
    let t0 = std::time::Instant::now();
    let e = DmaBufSet::new().exclusive(&buf).wait_timeout(SHORT);
    assert_eq!(e.unwrap_err(), Error::Timeout);
    assert!(t0.elapsed() >= SHORT);
    assert_free(&buf);
    drop(fence);
}

#[test]
fn a_set_waiting_for_fences_keeps_its_fifo_place() {
    let (buf, fence) = write_fenced();
    let (tx, rx) = mpsc::channel();
    let t1 = tx.clone();
    let first = DmaBufSet::new()
        .exclusive(&buf)
        .on_grant(Dispatch::Direct, move |g| {
            // Heard of before its release, which grants the second set here (its direct
            // callback runs inside this drop, and releases before it reports).
            t1.send(("first", g.is_ok())).unwrap();
            drop(g);
        })
        .unwrap();
    assert!(first.is_waiting_for_fences());
    // A second request, for a buffer with no fence, queues behind the first on kds.
    let second = DmaBufSet::new()
        .shared(&buf)
        .on_grant(Dispatch::Direct, move |g| {
            let ok = g.is_ok();
            drop(g);
            tx.send(("second", ok)).unwrap();
        })
        .unwrap();
    assert!(
        rx.recv_timeout(SHORT).is_err(),
        "a set was granted before the fence signalled"
    );
    assert!(!second.is_granted());
    // A plain kds request cannot take the buffer either: the set holds its kds grant.
    assert_eq!(
        ResourceSet::new()
            .shared(buf.resource())
            .try_acquire()
            .unwrap_err(),
        kds::Error::WouldBlock
    );
    fence.signal();
    assert_eq!(rx.recv_timeout(LONG).unwrap(), ("first", true));
    // The first callback dropped its guard: the second is granted next.
    assert_eq!(rx.recv_timeout(LONG).unwrap(), ("second", true));
    assert!(first.is_granted() && second.is_granted());
    assert_free(&buf);
}

#[test]
fn cancel_while_fencing_releases_and_never_calls_back() {
    let (buf, fence) = write_fenced();
    let (tx, rx) = mpsc::channel::<()>();
    let p = DmaBufSet::new()
        .exclusive(&buf)
        .on_grant(Dispatch::Direct, move |_| tx.send(()).unwrap())
        .unwrap();
    assert!(p.is_waiting_for_fences());
    assert!(p.cancel());
    assert_free(&buf);
    fence.signal();
    // The closure (and its sender) was dropped: the channel is closed, nothing was sent.
    assert_eq!(
        rx.recv_timeout(LONG),
        Err(mpsc::RecvTimeoutError::Disconnected)
    );
}

#[test]
fn cancel_while_queued_in_kds() {
    let buf = DmaBuf::simulated();
    let held = DmaBufSet::new().exclusive(&buf).wait().unwrap();
    let (tx, rx) = mpsc::channel::<()>();
    let p = DmaBufSet::new()
        .shared(&buf)
        .on_grant(Dispatch::Direct, move |_| tx.send(()).unwrap())
        .unwrap();
    assert!(!p.is_waiting_for_fences() && !p.is_granted());
    assert!(p.cancel());
    drop(held);
    assert_eq!(
        rx.recv_timeout(LONG),
        Err(mpsc::RecvTimeoutError::Disconnected)
    );
    assert_free(&buf);
}

#[test]
fn cancel_after_delivery_is_too_late() {
    let buf = DmaBuf::simulated();
    let (tx, rx) = mpsc::channel();
    let p = DmaBufSet::new()
        .exclusive(&buf)
        .on_grant(Dispatch::Direct, move |g| tx.send(g.is_ok()).unwrap())
        .unwrap();
    assert!(p.is_granted()); // no fence, nothing held: delivered inside on_grant
    assert!(!p.cancel());
    assert!(rx.recv().unwrap());
}

#[test]
fn interrupt_breaks_the_fence_wait() {
    let (buf, fence) = write_fenced();
    let int = Interrupt::new();
    thread::scope(|s| {
        let waiter = s.spawn(|| {
            DmaBufSet::new()
                .exclusive(&buf)
                .wait_interruptible(None, &int)
        });
        thread::sleep(SHORT);
        int.interrupt();
        assert_eq!(waiter.join().unwrap().unwrap_err(), Error::Interrupted);
    });
    assert_free(&buf);
    // With a timeout instead.
    int.clear();
    let e = DmaBufSet::new()
        .exclusive(&buf)
        .wait_interruptible(Some(SHORT), &int);
    assert_eq!(e.unwrap_err(), Error::Timeout);
    // And granted once the fence signals.
    thread::scope(|s| {
        let waiter = s.spawn(|| {
            DmaBufSet::new()
                .exclusive(&buf)
                .wait_interruptible(Some(LONG), &int)
        });
        thread::sleep(SHORT);
        fence.signal();
        assert!(waiter.join().unwrap().is_ok());
    });
    assert_free(&buf);
}

#[test]
fn worker_callbacks_run_on_the_worker_after_the_fence() {
    let (buf, fence) = write_fenced();
    let worker = Worker::spawn("display").unwrap();
    let (tx, rx) = mpsc::channel();
    let p = DmaBufSet::new()
        .shared(&buf)
        .on_grant(Dispatch::Worker(worker), move |g| {
            let name = thread::current().name().map(String::from);
            let ok = g.is_ok();
            drop(g);
            tx.send((name, ok)).unwrap();
        })
        .unwrap();
    assert!(rx.recv_timeout(SHORT).is_err());
    assert!(p.is_waiting_for_fences());
    fence.signal();
    assert_eq!(
        rx.recv_timeout(LONG).unwrap(),
        (Some("display".into()), true)
    );
    assert_free(&buf);
}

#[test]
fn pool_callbacks_run_after_the_fence() {
    let (buf, fence) = write_fenced();
    let (tx, rx) = mpsc::channel();
    DmaBufSet::new()
        .shared(&buf)
        .on_grant(Dispatch::Pool, move |g| tx.send(g.is_ok()).unwrap())
        .unwrap();
    assert!(rx.recv_timeout(SHORT).is_err());
    fence.signal();
    assert!(rx.recv_timeout(LONG).unwrap());
}

#[test]
fn the_future_waits_for_fences_and_drop_releases() {
    let (buf, fence) = write_fenced();
    // Resolves once the fence signals (signalled from another thread meanwhile).
    thread::scope(|s| {
        s.spawn(|| {
            thread::sleep(SHORT);
            fence.signal();
        });
        let g = futures_executor::block_on(DmaBufSet::new().exclusive(&buf).acquire()).unwrap();
        drop(g);
    });
    // Dropped while waiting for a fence: nothing held.
    let (buf, fence) = write_fenced();
    let mut fut = Box::pin(DmaBufSet::new().exclusive(&buf).acquire());
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    assert!(fut.as_mut().poll(&mut cx).is_pending());
    drop(fut);
    assert_free(&buf);
    drop(fence);
}

#[test]
fn attach_fence_publishes_to_the_next_grant() {
    let buf = DmaBuf::simulated();
    let gpu = SimFence::new().unwrap();
    // An exclusive holder publishes its GPU job as a write fence.
    let g = DmaBufSet::new().exclusive(&buf).wait().unwrap();
    g.attach_fence(&buf, gpu.as_fd()).unwrap();
    drop(g);
    assert_eq!(
        DmaBufSet::new().shared(&buf).try_acquire().unwrap_err(),
        Error::WouldBlock
    );
    gpu.signal();
    // A shared holder's fence is a read fence: readers go on, writers wait.
    let scanout = SimFence::new().unwrap();
    let g = DmaBufSet::new().shared(&buf).wait().unwrap();
    g.attach_fence(&buf, scanout.as_fd()).unwrap();
    drop(g);
    DmaBufSet::new().shared(&buf).try_acquire().unwrap();
    assert_eq!(
        DmaBufSet::new().exclusive(&buf).try_acquire().unwrap_err(),
        Error::WouldBlock
    );
    scanout.signal();
    DmaBufSet::new().exclusive(&buf).try_acquire().unwrap();
}

#[test]
fn attach_fence_on_a_buffer_outside_the_set_is_refused() {
    let (a, b) = (DmaBuf::simulated(), DmaBuf::simulated());
    let g = DmaBufSet::new().exclusive(&a).wait().unwrap();
    let f = SimFence::new().unwrap();
    assert_eq!(g.attach_fence(&b, f.as_fd()).unwrap_err(), Error::NotInSet);
}

#[test]
fn a_buffer_named_twice_is_held_once_exclusive() {
    let buf = DmaBuf::simulated();
    let read = SimFence::new().unwrap();
    buf.sim_attach(read.as_fd(), false).unwrap();
    let set = DmaBufSet::new().shared(&buf).exclusive(&buf);
    assert_eq!(set.len(), 1);
    assert_eq!(set.try_acquire().unwrap_err(), Error::WouldBlock); // exclusive: waits for readers
    read.signal();
    let g = set.try_acquire().unwrap();
    assert_eq!(g.buffers().count(), 1);
}

#[test]
fn kds_refusals_come_through() {
    let buf = DmaBuf::simulated();
    let _sync = DmaBufSet::new().exclusive(&buf).wait().unwrap();
    let e = DmaBufSet::new()
        .shared(&buf)
        .locked(kds::Locked::Fail)
        .on_grant(Dispatch::Direct, |_| {
            panic!("refused requests never call back")
        });
    assert_eq!(e.unwrap_err(), Error::Kds(kds::Error::Busy));
}

#[test]
fn many_buffers_many_fences() {
    // Eight buffers, each with a write fence, signalled in reverse: granted after the last.
    let pairs: Vec<(DmaBuf, SimFence)> = (0..8).map(|_| write_fenced()).collect();
    let mut set = DmaBufSet::new();
    for (b, _) in &pairs {
        set = set.exclusive(b);
    }
    let (tx, rx) = mpsc::channel();
    let p = set
        .on_grant(Dispatch::Direct, move |g| {
            tx.send(g.map(|g| g.buffers().count())).unwrap()
        })
        .unwrap();
    for (i, (_, f)) in pairs.iter().enumerate().rev() {
        assert!(
            rx.recv_timeout(Duration::from_millis(5)).is_err(),
            "granted with {i} fences left"
        );
        f.signal();
    }
    assert_eq!(rx.recv_timeout(LONG).unwrap(), Ok(8));
    assert!(p.is_granted());
}

#[test]
fn the_longest_timeouts_mean_no_deadline() {
    let buf = DmaBuf::simulated();
    DmaBufSet::new()
        .exclusive(&buf)
        .wait_timeout(Duration::MAX)
        .unwrap();
    let int = Interrupt::new();
    DmaBufSet::new()
        .exclusive(&buf)
        .wait_interruptible(Some(Duration::MAX), &int)
        .unwrap();
    // And with a fence pending, signalled meanwhile.
    let (buf, fence) = write_fenced();
    thread::scope(|s| {
        s.spawn(|| {
            thread::sleep(SHORT);
            fence.signal();
        });
        DmaBufSet::new()
            .exclusive(&buf)
            .wait_timeout(Duration::MAX)
            .unwrap();
    });
}

/// A direct callback that releases a set and then waits for a fence which the released
/// set's own callback signals: the callbacks this thread owes must run before it blocks.
#[test]
fn a_fence_wait_inside_a_direct_callback_runs_the_callbacks_it_owes_first() {
    for form in 0..3 {
        let (a, b) = (DmaBuf::simulated(), DmaBuf::simulated());
        let (c, fence) = write_fenced();
        let fence = std::sync::Arc::new(fence);
        let held = DmaBufSet::new().exclusive(&b).wait().unwrap().into_owned();
        // Queued behind `held`: its callback signals `c`'s fence.
        let f = fence.clone();
        DmaBufSet::new()
            .exclusive(&b)
            .on_grant(Dispatch::Direct, move |_g| f.signal())
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let c2 = c.clone();
        DmaBufSet::new()
            .exclusive(&a)
            .on_grant(Dispatch::Direct, move |_g| {
                drop(held); // grants `b`'s second set: its callback is owed by this thread
                let set = DmaBufSet::new().shared(&c2);
                let r = match form {
                    0 => set.wait_timeout(LONG).map(drop),
                    1 => set
                        .wait_interruptible(Some(LONG), &Interrupt::new())
                        .map(drop),
                    _ => futures_executor::block_on(set.acquire()).map(drop),
                };
                tx.send(r).unwrap();
            })
            .unwrap();
        assert_eq!(rx.recv_timeout(LONG).unwrap(), Ok(()), "form {form}");
    }
}

/// A callback that the reactor delivers (on its thread) waits, interruptibly, for another
/// buffer's fence: the reactor cannot wake itself, so the wait polls; the fence signalled by
/// another thread, or the interrupt, ends it.
#[test]
fn an_interruptible_wait_on_the_reactor_thread_is_not_stuck() {
    let (a, fa) = write_fenced();
    let (b, fb) = write_fenced();
    let fb = std::sync::Arc::new(fb);
    let (tx, rx) = mpsc::channel();
    let b2 = b.clone();
    DmaBufSet::new()
        .exclusive(&a)
        .on_grant(Dispatch::Direct, move |_g| {
            let r = DmaBufSet::new()
                .shared(&b2)
                .wait_interruptible(Some(LONG), &Interrupt::new())
                .map(drop);
            tx.send(r).unwrap();
        })
        .unwrap();
    fa.signal(); // the reactor delivers `a`'s grant; the callback then waits for `b`
    thread::sleep(SHORT);
    fb.signal();
    assert_eq!(rx.recv_timeout(LONG).unwrap(), Ok(()));
    // The same wait, ended by its interrupt.
    let (a, fa) = write_fenced();
    let (c, _never) = write_fenced();
    let int = Interrupt::new();
    let (tx, rx) = mpsc::channel();
    let i2 = int.clone();
    DmaBufSet::new()
        .exclusive(&a)
        .on_grant(Dispatch::Direct, move |_g| {
            let r = DmaBufSet::new()
                .shared(&c)
                .wait_interruptible(None, &i2)
                .map(drop);
            tx.send(r).unwrap();
        })
        .unwrap();
    fa.signal();
    thread::sleep(SHORT);
    int.interrupt();
    assert_eq!(rx.recv_timeout(LONG).unwrap(), Err(Error::Interrupted));
    drop(b);
}

/// Callbacks are delivered in the order their sets became ready: a set whose fence has just
/// signalled (its delivery on its way through the reactor) is not overtaken by a set that is
/// ready at once on the same worker. The hwtest pipeline's frames depend on it.
#[test]
fn a_set_ready_at_once_does_not_overtake_one_the_reactor_is_delivering() {
    let worker = Worker::spawn("order").unwrap();
    for round in 0..50 {
        let (a, fence) = write_fenced();
        let b = DmaBuf::simulated();
        let (tx, rx) = mpsc::channel();
        let t = tx.clone();
        let p = DmaBufSet::new()
            .shared(&a)
            .on_grant(Dispatch::Worker(worker.clone()), move |_| {
                t.send('a').unwrap()
            })
            .unwrap();
        while !p.is_waiting_for_fences() {
            thread::yield_now();
        }
        fence.signal(); // `a` is ready from now on
        DmaBufSet::new()
            .shared(&b)
            .on_grant(Dispatch::Worker(worker.clone()), move |_| {
                tx.send('b').unwrap()
            })
            .unwrap();
        let order: String = (0..2).map(|_| rx.recv_timeout(LONG).unwrap()).collect();
        assert_eq!(order, "ab", "round {round}");
    }
}
