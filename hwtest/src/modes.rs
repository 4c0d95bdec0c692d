//! The four ways the renderer hands a finished frame to the display, run side by side:
//!
//! * `kds-lockfree`, `kds-reference`: the seed's way. Each buffer is a kds `Resource`. The
//!   renderer takes its back buffer *exclusive* (a sync set), draws, queues the display's
//!   *shared* async set on it (`on_grant`) and releases; the release grants the display's
//!   set, whose callback queues the page flip at once. The display drops its guard when the
//!   buffer leaves the screen, which is what lets the renderer draw into it again.
//! * `bounce`: no kds. The renderer signals a control thread (a channel), which wakes up and
//!   queues the flip: what a compositor does without kernel-side dependencies. Buffers come
//!   back to the renderer through a free list.
//! * `implicit-vgem`: the kernel's implicit sync. The renderer attaches a vgem write fence to
//!   the buffer, queues the flip at once, draws and signals the fence; the kernel holds the
//!   flip until then. Buffers come back through a free list.
//! * `kds-dmabuf`: kds over the buffers' dma-bufs (`kds-dmabuf`). The renderer takes its back
//!   buffer exclusive, starts its "GPU job" (a vgem write fence on the buffer), queues the
//!   display's shared request and releases at once, before the job is done, as a driver
//!   releases once it has submitted; then it draws and signals the fence. The display's set
//!   is granted by kds at the release and waits, holding its place, for the fence; the
//!   reactor delivers the grant when it signals, and the callback queues the flip. Before
//!   the run, [`imported_fence_holds_a_flip`] checks the other direction: a sync file a kds
//!   holder attaches to a buffer holds a plain KMS flip of it until the fence signals.

use crate::clock::now_ns;
use crate::display::{Display, Surface, PARK};
use crate::frame::Pattern;
use crate::pipeline::{Scanout, Settings};
use crate::stats::Report;
use kds::generic::{Resource, ResourceSet};
use kds::{Dispatch, Engine, Worker};
use kds_dmabuf::{DmaBuf, DmaBufSet};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// One way to run the pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// kds, lock-free engine.
    KdsLockFree,
    /// kds, mutex reference engine.
    KdsReference,
    /// User-space bounce through a control thread.
    Bounce,
    /// Kernel implicit sync with vgem fences.
    Implicit,
    /// kds sets over dma-bufs, granted once the kds rules and the vgem fences allow.
    KdsDmaBuf,
}

impl Mode {
    /// Every mode, in table order.
    pub const ALL: [Mode; 5] = [
        Mode::KdsLockFree,
        Mode::KdsReference,
        Mode::Bounce,
        Mode::Implicit,
        Mode::KdsDmaBuf,
    ];

    /// Whether the mode needs buffers the kernel fences (vgem's).
    fn fenced(self) -> bool {
        matches!(self, Mode::Implicit | Mode::KdsDmaBuf)
    }

    /// The mode's name (table and `--modes`).
    pub fn name(self) -> &'static str {
        match self {
            Mode::KdsLockFree => "kds-lockfree",
            Mode::KdsReference => "kds-reference",
            Mode::Bounce => "bounce",
            Mode::Implicit => "implicit-vgem",
            Mode::KdsDmaBuf => "kds-dmabuf",
        }
    }

    /// The mode called `name`.
    pub fn parse(name: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// Where the display's grant callback runs in the kds modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DispatchKind {
    /// On the renderer's thread, inside its release (the seed's direct callbacks).
    Direct,
    /// On a dedicated display worker thread.
    Worker,
}

/// Runs `mode` on `display` with `buffers` buffers.
pub fn run(
    mode: Mode,
    display: &Arc<dyn Display>,
    buffers: usize,
    dispatch: DispatchKind,
    settings: &Settings,
) -> Report {
    let mut report = Report {
        mode: mode.name(),
        ..Report::default()
    };
    if mode.fenced() {
        if let Err(why) = display.implicit_sync() {
            report.skipped = Some(why);
            return report;
        }
    }
    let surfaces = match display.setup(buffers, mode.fenced()) {
        Ok(s) => s,
        Err(e) if mode.fenced() => {
            // e.g. a display controller that cannot scan out vgem's scattered shmem pages.
            report.skipped = Some(format!("vgem buffers not usable for scan-out here: {e}"));
            return report;
        }
        Err(e) => {
            report.errors.push(format!("allocating buffers: {e}"));
            return report;
        }
    };
    let mut dmabufs = Vec::new();
    if mode == Mode::KdsDmaBuf {
        match bind_dmabufs(&surfaces) {
            Ok(b) => dmabufs = b,
            Err(e) => {
                report.errors.push(format!("binding the dma-bufs: {e}"));
                return report;
            }
        }
        let sim = if display.is_simulated() {
            " (simulated buffers)"
        } else {
            ""
        };
        println!("{}{sim}", uncontended_cost(&dmabufs));
        match imported_fence_holds_a_flip(display, &surfaces, &dmabufs) {
            Ok(held_us) => println!(
                "kds-dmabuf: a fence attached by a kds holder held a KMS flip of its buffer \
                 for {held_us} us, until it signalled: pass"
            ),
            Err(e) => report
                .errors
                .push(format!("imported fence and KMS flip: {e}")),
        }
    }
    let scan = Scanout::new(display.clone(), surfaces, settings.inject);
    match mode {
        Mode::KdsLockFree => kds_mode::<kds::LockFree>(&scan, dispatch, settings, &mut report),
        Mode::KdsReference => {
            kds_mode::<kds::reference::Reference>(&scan, dispatch, settings, &mut report)
        }
        Mode::Bounce => free_list_mode(&scan, false, settings, &mut report),
        Mode::Implicit => free_list_mode(&scan, true, settings, &mut report),
        Mode::KdsDmaBuf => dmabuf_mode(&scan, &dmabufs, dispatch, settings, &mut report),
    }
    scan.check_idle();
    scan.finish(&mut report);
    if let Err(e) = display.teardown() {
        report.errors.push(format!("freeing buffers: {e}"));
    }
    report
}

/// Runs the display side on this thread while `render` runs on a renderer thread.
fn with_renderer<F>(scan: &Arc<Scanout>, settings: &Settings, report: &mut Report, render: F)
where
    F: FnOnce(&Scanout, &Pattern) -> Result<(), String> + Send + 'static,
{
    let done = Arc::new(AtomicBool::new(false));
    let (s2, d2) = (scan.clone(), done.clone());
    let width = scan.surfaces[0].width;
    let renderer = thread::Builder::new()
        .name("renderer".into())
        .spawn(move || {
            let pattern = Pattern::new(width);
            if let Err(e) = render(&s2, &pattern) {
                s2.fail(format!("renderer: {e}"));
            }
            d2.store(true, Ordering::SeqCst);
        })
        .expect("spawning the renderer thread");
    scan.run(settings, report, &done);
    if renderer.join().is_err() {
        scan.fail("the renderer thread panicked".into());
    }
}

/// Where the display's grant callbacks run; `None` (the run failed) if its worker could not
/// be started.
fn display_dispatch(scan: &Scanout, kind: DispatchKind) -> Option<Dispatch> {
    match kind {
        DispatchKind::Direct => Some(Dispatch::Direct),
        DispatchKind::Worker => match Worker::spawn("display") {
            Ok(w) => Some(Dispatch::Worker(w)),
            Err(e) => {
                scan.fail(format!("spawning the display worker: {e}"));
                None
            }
        },
    }
}

fn kds_mode<E: Engine>(
    scan: &Arc<Scanout>,
    dispatch: DispatchKind,
    settings: &Settings,
    report: &mut Report,
) {
    let n = scan.surfaces.len();
    let resources: Vec<Resource<E>> = (0..n).map(|_| Resource::new()).collect();
    let Some(dispatch) = display_dispatch(scan, dispatch) else {
        return;
    };
    // Kept for the whole run and moved to the renderer thread: owned sets.
    let render_sets: Vec<ResourceSet<'static, E>> = resources
        .iter()
        .map(|r| ResourceSet::new().exclusive(r).into_owned())
        .collect();
    let display_sets: Vec<ResourceSet<'static, E>> = resources
        .iter()
        .map(|r| ResourceSet::new().shared(r).into_owned())
        .collect();
    let (frames, watchdog) = (settings.frames, settings.watchdog);
    let scan2 = scan.clone();
    with_renderer(scan, settings, report, move |scan, pattern| {
        for f in 0..frames {
            let b = (f % n as u64) as usize;
            // The GPU job: the back buffer, exclusive. It is free once the display let go.
            let job = render_sets[b]
                .wait_timeout(watchdog)
                .map_err(|e| format!("frame {f}: waiting for buffer {b}: {e}"))?;
            scan.check_writable(b, f);
            pattern.draw(&scan.surfaces[b], f);
            // The display's request, queued behind the job: the job's release grants it.
            let display = scan2.clone();
            display_sets[b]
                .on_grant(dispatch.clone(), move |guard| {
                    let granted = now_ns();
                    display.submit(b, f, Box::new(guard), Some(granted));
                })
                .map_err(|e| format!("frame {f}: queueing the flip request: {e}"))?;
            scan.mark_released(b);
            drop(job);
        }
        Ok(())
    });
    // Every buffer must be free again: an exclusive set on each is granted at once.
    for (i, r) in resources.iter().enumerate() {
        match ResourceSet::<E>::new().exclusive(r).try_acquire() {
            Ok(g) => drop(g),
            Err(e) => scan.fail(format!("buffer {i} not free at the end: {e}")),
        }
    }
}

/// Gives a buffer back to the free list when dropped.
struct ReturnToken {
    buf: usize,
    free: Sender<usize>,
}

impl Drop for ReturnToken {
    fn drop(&mut self) {
        let _ = self.free.send(self.buf);
    }
}

fn free_list_mode(scan: &Arc<Scanout>, implicit: bool, settings: &Settings, report: &mut Report) {
    let n = scan.surfaces.len();
    let (free_tx, free_rx): (Sender<usize>, Receiver<usize>) = mpsc::channel();
    for b in 0..n {
        free_tx.send(b).unwrap();
    }
    let (frames, watchdog) = (settings.frames, settings.watchdog);
    // The control thread of the bounce mode: woken by the renderer, it queues the flip.
    let (ctl_tx, ctl_rx) = mpsc::channel::<(usize, u64)>();
    let control = (!implicit).then(|| {
        let (scan, free) = (scan.clone(), free_tx.clone());
        thread::Builder::new()
            .name("control".into())
            .spawn(move || {
                for (buf, f) in ctl_rx {
                    let woken = now_ns();
                    let token = ReturnToken {
                        buf,
                        free: free.clone(),
                    };
                    scan.submit(buf, f, Box::new(token), Some(woken));
                }
            })
            .expect("spawning the control thread")
    });
    let free = free_tx.clone();
    let ctl = ctl_tx;
    let free_rx = Arc::new(Mutex::new(free_rx));
    let free_list = free_rx.clone();
    with_renderer(scan, settings, report, move |scan, pattern| {
        let result = (|| {
            for f in 0..frames {
                let b = free_list
                    .lock()
                    .unwrap()
                    .recv_timeout(watchdog)
                    .map_err(|e| format!("frame {f}: no free buffer: {e}"))?;
                scan.check_writable(b, f);
                if implicit {
                    let target = scan.surfaces[b]
                        .fence
                        .clone()
                        .ok_or("buffer has no fence")?;
                    let fence = target
                        .attach()
                        .map_err(|e| format!("frame {f}: attaching the fence: {e}"))?;
                    // Queue the flip first: the kernel holds it until the fence signals.
                    let token = ReturnToken {
                        buf: b,
                        free: free.clone(),
                    };
                    scan.submit(b, f, Box::new(token), None);
                    pattern.draw(&scan.surfaces[b], f);
                    scan.mark_released(b);
                    target
                        .signal(fence)
                        .map_err(|e| format!("frame {f}: signalling the fence: {e}"))?;
                } else {
                    pattern.draw(&scan.surfaces[b], f);
                    scan.mark_released(b);
                    ctl.send((b, f)).map_err(|_| "the control thread is gone")?;
                }
            }
            Ok(())
        })();
        drop(ctl);
        result
    });
    if let Some(c) = control {
        if c.join().is_err() {
            scan.fail("the control thread panicked".into());
        }
    }
    // Every buffer must be back on the free list.
    drop(free_tx);
    let back = free_rx.lock().unwrap().try_iter().count();
    if back != n {
        scan.fail(format!("{back} of {n} buffers free at the end"));
    }
}

/// Binds each surface's dma-buf (a duplicate of its descriptor) as a kds-dmabuf buffer.
fn bind_dmabufs(surfaces: &[Arc<Surface>]) -> Result<Vec<DmaBuf>, String> {
    surfaces
        .iter()
        .map(|s| {
            let target = s.fence.as_ref().ok_or("a surface without a dma-buf")?;
            target.bind()
        })
        .collect()
}

/// What a dma-buf grant costs when nothing waits: `try_acquire` + release of one buffer and
/// of two, exclusive, no fence pending (kds's fast path plus one `poll` of the dma-bufs),
/// beside the same plain kds sets on the buffers' resources. Medians of 15 batches of 200.
fn uncontended_cost(bufs: &[DmaBuf]) -> String {
    fn median_ns(mut op: impl FnMut()) -> f64 {
        let mut batches: Vec<f64> = (0..15)
            .map(|_| {
                let t = now_ns();
                for _ in 0..200 {
                    op();
                }
                (now_ns() - t) as f64 / 200.0
            })
            .collect();
        batches.sort_by(|a, b| a.total_cmp(b));
        batches[batches.len() / 2]
    }
    let k = bufs.len().min(2);
    let mut row = String::from("kds-dmabuf uncontended grant + release, ns (median):");
    for n in 1..=k {
        let set = bufs[..n]
            .iter()
            .fold(DmaBufSet::new(), |s, b| s.exclusive(b));
        let plain = bufs[..n]
            .iter()
            .fold(kds::ResourceSet::new(), |s, b| s.exclusive(b.resource()));
        let dma = median_ns(|| drop(set.try_acquire().expect("free buffers")));
        let kds = median_ns(|| drop(plain.try_acquire().expect("free resources")));
        row += &format!(
            " {n} buffer(s): dma-buf {dma:.0}, plain kds {kds:.0} ({:.1}x);",
            dma / kds.max(1.0)
        );
    }
    row
}

/// `attach_fence` seen from the kernel: a kds holder of buffer 0 attaches the sync file of a
/// pending "GPU job" (a vgem write fence on buffer 1, exported with
/// `DmaBuf::sync_file`) and releases. Then a plain KMS page flip to buffer 0 must not
/// complete, and a kds request for it must not be granted, until the job's fence signals.
/// Returns how long the flip was held, in µs.
fn imported_fence_holds_a_flip(
    display: &Arc<dyn Display>,
    surfaces: &[Arc<Surface>],
    bufs: &[DmaBuf],
) -> Result<u64, String> {
    const HOLD: Duration = Duration::from_millis(300);
    if bufs.len() < 2 {
        return Err("needs two buffers".into());
    }
    let gpu = surfaces[1].fence.clone().ok_or("no fence target")?;
    let job = gpu.attach().map_err(|e| format!("vgem fence: {e}"))?;
    let sync_file = gpu
        .sync_file(job, &bufs[1])
        .map_err(|e| format!("exporting buffer 1's fence: {e}"))?;
    let holder = DmaBufSet::new()
        .exclusive(&bufs[0])
        .wait_timeout(Duration::from_secs(5))
        .map_err(|e| format!("taking buffer 0: {e}"))?;
    holder
        .attach_fence(&bufs[0], sync_file.as_fd())
        .map_err(|e| format!("attach_fence: {e}"))?;
    drop(holder);
    let result = (|| {
        if DmaBufSet::new().shared(&bufs[0]).try_acquire().is_ok() {
            return Err("a kds request was granted before the attached fence signalled".into());
        }
        display.flip(0).map_err(|e| format!("page flip: {e}"))?;
        let queued = now_ns();
        if let Some(ev) = display.next_event(HOLD).map_err(|e| e.to_string())? {
            return Err(format!(
                "the flip completed {} us after it was queued, before the fence signalled",
                ev.received_ns.saturating_sub(queued) / 1000
            ));
        }
        Ok(queued)
    })();
    let signalled = now_ns();
    gpu.signal(job).map_err(|e| format!("signalling: {e}"))?;
    let queued = result?;
    let ev = display
        .next_event(Duration::from_secs(5))
        .map_err(|e| e.to_string())?
        .ok_or("no flip event within 5 s of the signal")?;
    if ev.received_ns < signalled {
        return Err("the flip event arrived before the signal".into());
    }
    DmaBufSet::new()
        .shared(&bufs[0])
        .wait_timeout(Duration::from_secs(5))
        .map_err(|e| format!("kds request after the signal: {e}"))?;
    // Back to the parking buffer, as the pipeline expects to find the display.
    display
        .flip(PARK)
        .map_err(|e| format!("parking flip: {e}"))?;
    display
        .next_event(Duration::from_secs(5))
        .map_err(|e| e.to_string())?
        .ok_or("no event for the parking flip")?;
    Ok(signalled.saturating_sub(queued) / 1000)
}

fn dmabuf_mode(
    scan: &Arc<Scanout>,
    bufs: &[DmaBuf],
    dispatch: DispatchKind,
    settings: &Settings,
    report: &mut Report,
) {
    let n = scan.surfaces.len();
    let Some(dispatch) = display_dispatch(scan, dispatch) else {
        return;
    };
    let (frames, watchdog) = (settings.frames, settings.watchdog);
    let (scan2, bufs2) = (scan.clone(), bufs.to_vec());
    with_renderer(scan, settings, report, move |scan, pattern| {
        for f in 0..frames {
            let b = (f % n as u64) as usize;
            // The back buffer, exclusive: free once the display let go and its fences
            // (none pending here: the display's flip is done) have signalled.
            let job = DmaBufSet::new()
                .exclusive(&bufs2[b])
                .wait_timeout(watchdog)
                .map_err(|e| format!("frame {f}: waiting for buffer {b}: {e}"))?;
            scan.check_writable(b, f);
            // The GPU job starts: its write fence is on the buffer from now on.
            let target = scan.surfaces[b].fence.clone().ok_or("no fence target")?;
            let fence = target
                .attach()
                .map_err(|e| format!("frame {f}: attaching the fence: {e}"))?;
            // The display's request, queued behind the job; the release below grants it in
            // kds, and it then waits for the fence.
            let display = scan2.clone();
            DmaBufSet::new()
                .shared(&bufs2[b])
                .on_grant(dispatch.clone(), move |guard| {
                    let granted = now_ns();
                    match guard {
                        Ok(guard) => display.submit(b, f, Box::new(guard), Some(granted)),
                        Err(e) => display.fail(format!("frame {f}: the fence wait failed: {e}")),
                    }
                })
                .map_err(|e| format!("frame {f}: queueing the flip request: {e}"))?;
            // Submitted: the renderer lets go before the job is done (the fence covers it).
            drop(job);
            pattern.draw(&scan.surfaces[b], f);
            // The job is done: "release" is the signal (latencies are measured from it).
            scan.mark_released(b);
            target
                .signal(fence)
                .map_err(|e| format!("frame {f}: signalling the fence: {e}"))?;
        }
        Ok(())
    });
    // Every buffer must be free again, in kds and of fences.
    for (i, b) in bufs.iter().enumerate() {
        match DmaBufSet::new().exclusive(b).try_acquire() {
            Ok(g) => drop(g),
            Err(e) => scan.fail(format!("buffer {i} not free at the end: {e}")),
        }
    }
    let (waits, files) = kds_dmabuf::reactor_counts();
    if waits != 0 || files != 0 {
        scan.fail(format!(
            "the reactor still holds {waits} waits and {files} sync files at the end"
        ));
    }
}
