//! kds-dmabuf on real dma-bufs: buffers allocated on `vgem`, whose fences user space attaches
//! and signals (`DRM_IOCTL_VGEM_FENCE_ATTACH` / `_SIGNAL`), as a GPU driver's jobs would.
//! `hwtest/vm/run.sh` runs this binary in its guests (vkms + vgem); on a machine without
//! vgem every test says so and passes without checking anything, the simulated buffers of
//! `tests/sim.rs` cover the request paths there.

use drm::buffer::{Buffer, DrmFourcc};
use drm::control::Device as _;
use drm::Device as _;
use kds::{Access, Dispatch, Interrupt, ResourceSet};
use kds_dmabuf::{reactor_counts, DmaBuf, DmaBufSet, Error};
use rustix::event::{poll, PollFd, PollFlags};
use rustix::ioctl::{ioctl, opcode, Opcode, Setter, Updater};
use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

struct Card(File);
impl AsFd for Card {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}
impl drm::Device for Card {}
impl drm::control::Device for Card {}

/// `struct drm_vgem_fence_attach`.
#[repr(C)]
struct FenceAttach {
    handle: u32,
    flags: u32,
    out_fence: u32,
    pad: u32,
}
/// `struct drm_vgem_fence_signal`.
#[repr(C)]
struct FenceSignal {
    fence: u32,
    flags: u32,
}
const FENCE_ATTACH: Opcode = opcode::read_write::<FenceAttach>(b'd', 0x41);
const FENCE_SIGNAL: Opcode = opcode::write::<FenceSignal>(b'd', 0x42);

/// The vgem device, if this machine has one.
fn vgem() -> Option<Card> {
    let mut nodes: Vec<_> = std::fs::read_dir("/dev/dri")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("card"))
        })
        .collect();
    nodes.sort();
    nodes.into_iter().find_map(|p| {
        let card = Card(OpenOptions::new().read(true).write(true).open(p).ok()?);
        let name = card
            .get_driver()
            .ok()?
            .name()
            .to_string_lossy()
            .into_owned();
        (name == "vgem").then_some(card)
    })
}

/// The tests share one vgem device and run one at a time (the reactor counts are global).
static SERIAL: Mutex<()> = Mutex::new(());

macro_rules! need_vgem {
    () => {
        match vgem() {
            Some(card) => (card, SERIAL.lock().unwrap_or_else(|e| e.into_inner())),
            None => {
                eprintln!("SKIPPED: no vgem device here (the hwtest guests have one)");
                return;
            }
        }
    };
}

/// A vgem buffer, its GEM handle and its dma-buf bound to kds.
fn buffer(card: &Card) -> (u32, DmaBuf) {
    let db = card
        .create_dumb_buffer((64, 64), DrmFourcc::Xrgb8888, 32)
        .unwrap();
    let handle: u32 = db.handle().into();
    let fd = card
        .buffer_to_prime_fd(
            db.handle(),
            (rustix::fs::OFlags::CLOEXEC | rustix::fs::OFlags::RDWR).bits(),
        )
        .unwrap();
    // `db` is a plain handle: the buffer is freed with the device file at the end of the test.
    (handle, DmaBuf::new(fd).unwrap())
}

fn attach(card: &Card, handle: u32, write: bool) -> u32 {
    let mut arg = FenceAttach {
        handle,
        flags: if write { 1 } else { 0 },
        out_fence: 0,
        pad: 0,
    };
    // SAFETY: FENCE_ATTACH is the read-write ioctl whose argument is `FenceAttach`.
    unsafe { ioctl(card.as_fd(), Updater::<FENCE_ATTACH, _>::new(&mut arg)) }.unwrap();
    arg.out_fence
}

fn signal(card: &Card, fence: u32) {
    // SAFETY: FENCE_SIGNAL is the write ioctl whose argument is `FenceSignal`.
    unsafe {
        ioctl(
            card.as_fd(),
            Setter::<FENCE_SIGNAL, _>::new(FenceSignal { fence, flags: 0 }),
        )
    }
    .unwrap();
}

fn assert_free(buf: &DmaBuf) {
    assert!(
        ResourceSet::new()
            .exclusive(buf.resource())
            .try_acquire()
            .is_ok(),
        "still held in kds"
    );
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn a_write_fence_holds_the_grant_until_it_signals() {
    let (card, _serial) = need_vgem!();
    let (h, buf) = buffer(&card);
    let fence = attach(&card, h, true);
    let (tx, rx) = mpsc::channel();
    let p = DmaBufSet::new()
        .exclusive(&buf)
        .on_grant(Dispatch::Direct, move |g| {
            let at = Instant::now();
            drop(g);
            tx.send(at).unwrap();
        })
        .unwrap();
    assert!(p.is_waiting_for_fences());
    assert!(
        rx.recv_timeout(Duration::from_millis(100)).is_err(),
        "granted before the signal"
    );
    let signalled = Instant::now();
    signal(&card, fence);
    let granted = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("not granted within 5 s of the signal");
    eprintln!(
        "vgem: signal -> grant (reactor, direct callback): {:?}",
        granted - signalled
    );
    assert_free(&buf);
    assert_eq!(reactor_counts(), (0, 0));
}

#[test]
fn blocking_and_future_requests_wait_for_the_fence() {
    let (card, _serial) = need_vgem!();
    let (h, buf) = buffer(&card);
    let fence = attach(&card, h, true);
    assert_eq!(
        DmaBufSet::new().shared(&buf).try_acquire().unwrap_err(),
        Error::WouldBlock
    );
    std::thread::scope(|s| {
        let w = s.spawn(|| DmaBufSet::new().exclusive(&buf).wait().map(drop));
        let f = s.spawn(|| {
            futures_executor::block_on(DmaBufSet::new().shared(&buf).acquire()).map(drop)
        });
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            !w.is_finished() && !f.is_finished(),
            "granted before the signal"
        );
        signal(&card, fence);
        w.join().unwrap().unwrap();
        f.join().unwrap().unwrap();
    });
    assert_free(&buf);
}

#[test]
fn a_shared_request_waits_only_for_writers() {
    let (card, _serial) = need_vgem!();
    let (h, buf) = buffer(&card);
    let read = attach(&card, h, false); // a reader (the display engine) is still at it
    DmaBufSet::new()
        .shared(&buf)
        .try_acquire()
        .expect("a reader waits for no reader");
    assert_eq!(
        DmaBufSet::new().exclusive(&buf).try_acquire().unwrap_err(),
        Error::WouldBlock
    );
    signal(&card, read);
    DmaBufSet::new()
        .exclusive(&buf)
        .wait_timeout(Duration::from_secs(5))
        .unwrap();
}

#[test]
fn a_request_behind_a_fencing_set_keeps_fifo() {
    let (card, _serial) = need_vgem!();
    let (h, buf) = buffer(&card);
    let fence = attach(&card, h, true);
    let (tx, rx) = mpsc::channel();
    let t1 = tx.clone();
    DmaBufSet::new()
        .exclusive(&buf)
        .on_grant(Dispatch::Direct, move |g| {
            t1.send(1).unwrap();
            drop(g);
        })
        .unwrap();
    DmaBufSet::new()
        .shared(&buf)
        .on_grant(Dispatch::Direct, move |g| {
            drop(g);
            tx.send(2).unwrap();
        })
        .unwrap();
    assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
    signal(&card, fence);
    assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), 1);
    assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), 2);
    assert_free(&buf);
}

#[test]
fn timeout_cancel_and_interrupt_leave_nothing_behind() {
    let (card, _serial) = need_vgem!();
    let (h, buf) = buffer(&card);
    let fence = attach(&card, h, true);
    // Warm up the reactor (its epoll descriptor and thread), then count descriptors.
    let p = DmaBufSet::new()
        .exclusive(&buf)
        .on_grant(Dispatch::Direct, drop)
        .unwrap();
    assert!(p.cancel());
    let base = open_fds();
    for _ in 0..20 {
        let e = DmaBufSet::new()
            .exclusive(&buf)
            .wait_timeout(Duration::from_millis(2));
        assert_eq!(e.unwrap_err(), Error::Timeout);
        let p = DmaBufSet::new()
            .exclusive(&buf)
            .on_grant(Dispatch::Direct, |_| panic!("cancelled"))
            .unwrap();
        assert!(p.is_waiting_for_fences());
        assert_eq!(reactor_counts(), (1, 1));
        assert!(p.cancel());
        let int = Interrupt::new();
        int.interrupt();
        let e = DmaBufSet::new()
            .exclusive(&buf)
            .wait_interruptible(None, &int);
        assert_eq!(e.unwrap_err(), Error::Interrupted);
        assert_eq!(reactor_counts(), (0, 0));
        assert_free(&buf);
        assert_eq!(open_fds(), base, "a descriptor leaked");
    }
    signal(&card, fence);
    DmaBufSet::new().exclusive(&buf).try_acquire().unwrap();
}

#[test]
fn attach_fence_publishes_to_the_kernel_and_to_kds() {
    let (card, _serial) = need_vgem!();
    let (gpu_h, gpu_buf) = buffer(&card);
    let (_, target) = buffer(&card);
    // A GPU job's fence as a sync file: a vgem write fence exported from a scratch buffer.
    let job = attach(&card, gpu_h, true);
    let sync_file: OwnedFd = gpu_buf.sync_file(Access::Exclusive).unwrap();
    let g = DmaBufSet::new().exclusive(&target).wait().unwrap();
    g.attach_fence(&target, sync_file.as_fd()).unwrap();
    drop(g);
    // The kernel sees it: the dma-buf is not readable (a writer is pending)...
    let mut fds = [PollFd::from_borrowed_fd(
        target.fd().unwrap(),
        PollFlags::IN,
    )];
    let ts = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    assert_eq!(
        poll(&mut fds, Some(&ts)).unwrap(),
        0,
        "the kernel does not see the attached fence"
    );
    // ...and so does kds.
    assert_eq!(
        DmaBufSet::new().shared(&target).try_acquire().unwrap_err(),
        Error::WouldBlock
    );
    signal(&card, job);
    DmaBufSet::new()
        .shared(&target)
        .wait_timeout(Duration::from_secs(5))
        .unwrap();
    // A shared holder attaches a read fence: readers go on, a writer waits.
    let (scan_h, scan_buf) = buffer(&card);
    let scanout = attach(&card, scan_h, true);
    let read_file = scan_buf.sync_file(Access::Exclusive).unwrap();
    let g = DmaBufSet::new().shared(&target).wait().unwrap();
    g.attach_fence(&target, read_file.as_fd()).unwrap();
    drop(g);
    DmaBufSet::new().shared(&target).try_acquire().unwrap();
    assert_eq!(
        DmaBufSet::new()
            .exclusive(&target)
            .try_acquire()
            .unwrap_err(),
        Error::WouldBlock
    );
    signal(&card, scanout);
    DmaBufSet::new()
        .exclusive(&target)
        .wait_timeout(Duration::from_secs(5))
        .unwrap();
}

#[test]
fn bad_fences_and_descriptors_are_answered() {
    let (card, _serial) = need_vgem!();
    let (_, buf) = buffer(&card);
    let g = DmaBufSet::new().exclusive(&buf).wait().unwrap();
    // Not a sync file: the kernel's EINVAL, named.
    let file = File::open("/proc/self/status").unwrap();
    assert_eq!(
        g.attach_fence(&buf, file.as_fd()).unwrap_err(),
        Error::NotSyncFile
    );
    drop(g);
    // The vgem device node is not a dma-buf.
    let dev = card.0.try_clone().unwrap();
    assert_eq!(DmaBuf::new(dev.into()).unwrap_err(), Error::NotDmaBuf);
    // A fence that never signals: a timeout, then a cancel, and the buffer is free.
    let (h, buf) = buffer(&card);
    let never = attach(&card, h, true);
    assert_eq!(
        DmaBufSet::new()
            .shared(&buf)
            .wait_timeout(Duration::from_millis(50))
            .unwrap_err(),
        Error::Timeout
    );
    let p = DmaBufSet::new()
        .shared(&buf)
        .on_grant(Dispatch::Direct, drop)
        .unwrap();
    assert!(p.cancel());
    assert_free(&buf);
    signal(&card, never); // (vgem would signal it itself after 10 s)
}

#[test]
fn one_dma_buf_is_one_resource_however_often_it_is_bound() {
    let (card, _serial) = need_vgem!();
    let db = card
        .create_dumb_buffer((64, 64), DrmFourcc::Xrgb8888, 32)
        .unwrap();
    let flags = (rustix::fs::OFlags::CLOEXEC | rustix::fs::OFlags::RDWR).bits();
    // The same buffer received twice (two PRIME exports: two descriptors, one dma-buf).
    let first = DmaBuf::new(card.buffer_to_prime_fd(db.handle(), flags).unwrap()).unwrap();
    let second = DmaBuf::new(card.buffer_to_prime_fd(db.handle(), flags).unwrap()).unwrap();
    assert!(
        first.same(&second),
        "two bindings of one dma-buf are two kds resources"
    );
    let held = DmaBufSet::new().exclusive(&first).wait().unwrap();
    assert_eq!(
        DmaBufSet::new().shared(&second).try_acquire().unwrap_err(),
        Error::WouldBlock
    );
    drop(held);
    // A different buffer is a different resource.
    let (_, other) = buffer(&card);
    assert!(!other.same(&first));
}
