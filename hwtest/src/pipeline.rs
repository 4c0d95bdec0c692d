//! The display side of the pipeline, shared by every mode: it takes frames the renderer
//! finished (each with a *holder*, whose drop gives the buffer back), queues their page flips
//! (one pending at a time, as KMS allows), and on every flip event checks the frame that
//! landed and releases the buffer that just left the screen (the seed: the display is the
//! consumer of both buffers for a short period).
//!
//! What a holder is depends on the mode: a kds `Guard` (the display's shared set on the
//! buffer), or a token that puts the buffer back on a free list.

use crate::clock::now_ns;
use crate::display::{Display, Surface, PARK};
use crate::frame;
use crate::stats::Report;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A deliberate bug, to show that the checks catch it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inject {
    /// The display gives a buffer back as soon as its flip is queued, not when it leaves
    /// the screen: the renderer may then draw into the buffer being scanned out.
    EarlyRelease,
}

/// Settings of one mode's run.
#[derive(Clone)]
pub struct Settings {
    /// Frames to render and flip.
    pub frames: u64,
    /// How long anything may wait before the run is declared hung.
    pub watchdog: Duration,
    /// A deliberate bug, if any.
    pub inject: Option<Inject>,
}

/// Something that keeps a buffer away from the renderer while the display uses it; dropping
/// it gives the buffer back.
pub type Holder = Box<dyn Send>;

struct Frame {
    buf: usize,
    frame: u64,
    holder: Option<Holder>,
    /// When the display side got the buffer (`None`: not measured in this mode).
    granted_ns: Option<u64>,
    queued_ns: u64,
}

#[derive(Default)]
struct State {
    pending: Option<Frame>,
    parking: bool,
    on_screen: Option<Frame>,
    ready: VecDeque<Frame>,
    deferred: usize,
}

/// The display side.
pub struct Scanout {
    display: Arc<dyn Display>,
    /// The mode's buffers.
    pub surfaces: Vec<Arc<Surface>>,
    /// Whether the display side holds each buffer (set when it takes a frame, cleared just
    /// before it gives the buffer back).
    held: Vec<AtomicBool>,
    /// When the renderer released each buffer's latest frame.
    released_ns: Vec<AtomicU64>,
    state: Mutex<State>,
    errors: Mutex<Vec<String>>,
    inject: Option<Inject>,
}

impl Scanout {
    /// The display side over `surfaces`.
    pub fn new(
        display: Arc<dyn Display>,
        surfaces: Vec<Arc<Surface>>,
        inject: Option<Inject>,
    ) -> Arc<Scanout> {
        for s in &surfaces {
            frame::clear(s);
        }
        let n = surfaces.len();
        Arc::new(Scanout {
            display,
            surfaces,
            held: (0..n).map(|_| AtomicBool::new(false)).collect(),
            released_ns: (0..n).map(|_| AtomicU64::new(0)).collect(),
            state: Mutex::new(State::default()),
            errors: Mutex::new(Vec::new()),
            inject,
        })
    }

    /// Records a failed check.
    pub fn fail(&self, msg: String) {
        let mut e = self.errors.lock().unwrap();
        if e.len() < 1000 {
            e.push(msg);
        }
    }

    /// Whether any check failed so far.
    pub fn failed(&self) -> bool {
        !self.errors.lock().unwrap().is_empty()
    }

    /// The renderer's check before it draws into `buf`: the display must not hold it.
    pub fn check_writable(&self, buf: usize, frame: u64) {
        if self.held[buf].load(Ordering::SeqCst) {
            self.fail(format!(
                "frame {frame}: the renderer got buffer {buf} while the display holds it"
            ));
        }
    }

    /// The renderer records when it released `buf` (before releasing it).
    pub fn mark_released(&self, buf: usize) {
        self.released_ns[buf].store(now_ns(), Ordering::SeqCst);
    }

    /// The display side takes frame `frame` in buffer `buf`, held by `holder`: its flip is
    /// queued at once, or as soon as the pending one completes.
    pub fn submit(&self, buf: usize, frame: u64, holder: Holder, granted_ns: Option<u64>) {
        self.held[buf].store(true, Ordering::SeqCst);
        let mut early = None;
        let mut f = Frame {
            buf,
            frame,
            holder: Some(holder),
            granted_ns,
            queued_ns: 0,
        };
        if self.inject == Some(Inject::EarlyRelease) {
            self.held[buf].store(false, Ordering::SeqCst);
            early = f.holder.take();
        }
        let mut st = self.state.lock().unwrap();
        if st.pending.is_none() && !st.parking && st.ready.is_empty() {
            self.queue(&mut st, f);
        } else {
            st.deferred += 1;
            st.ready.push_back(f);
        }
        drop(st);
        drop(early);
    }

    fn queue(&self, st: &mut State, mut f: Frame) {
        if let Err(e) = self.display.flip(f.buf) {
            self.fail(format!("frame {}: page flip failed: {e}", f.frame));
        }
        f.queued_ns = now_ns();
        st.pending = Some(f);
    }

    /// Gives back a buffer that left the screen, checking it was not written meanwhile.
    fn release(&self, mut f: Frame) {
        let (top, bottom) = frame::stamps(&self.surfaces[f.buf]);
        if top != Some(f.frame) || bottom != Some(f.frame) {
            self.fail(format!(
                "frame {}: buffer {} was written while on screen (stamps now {top:?} / {bottom:?})",
                f.frame, f.buf
            ));
        }
        self.held[f.buf].store(false, Ordering::SeqCst);
        drop(f.holder.take());
    }

    /// The display thread: handles flip events until `frames` frames have landed, then
    /// flips to the parking buffer so the last one leaves the screen too.
    pub fn run(&self, settings: &Settings, report: &mut Report, renderer_done: &AtomicBool) {
        let mut expect = 0u64;
        let mut prev: Option<(u64, u64)> = None;
        while expect < settings.frames {
            let ev = match self.display.next_event(settings.watchdog) {
                Ok(Some(ev)) => ev,
                Ok(None) => {
                    if renderer_done.load(Ordering::SeqCst) && self.failed() {
                        return; // the renderer gave up; its error says why
                    }
                    self.fail(format!(
                        "no flip event within {:?} (frame {expect} expected)",
                        settings.watchdog
                    ));
                    return;
                }
                Err(e) => {
                    self.fail(format!("reading flip events: {e}"));
                    return;
                }
            };
            let mut st = self.state.lock().unwrap();
            let Some(f) = st.pending.take() else {
                drop(st);
                self.fail("a flip event without a pending flip".into());
                continue;
            };
            // Checks on the frame that just reached the screen.
            let (top, bottom) = frame::stamps(&self.surfaces[f.buf]);
            if top != Some(f.frame) || bottom != Some(f.frame) {
                self.fail(format!(
                    "frame {} reached the screen as {top:?} / {bottom:?} (torn, stale or early)",
                    f.frame
                ));
            }
            if f.frame != expect {
                self.fail(format!(
                    "frame {} reached the screen, {expect} expected (out of order)",
                    f.frame
                ));
            }
            expect = f.frame + 1;
            let released = self.released_ns[f.buf].load(Ordering::SeqCst);
            if ev.received_ns < released {
                self.fail(format!(
                    "frame {}: its flip completed {} us before the renderer released it",
                    f.frame,
                    (released - ev.received_ns) / 1000
                ));
            }
            // Measurements.
            report.landed += 1;
            // Timestamps are the kernel's (the vblank the flip took effect at); latencies
            // to them are clamped at 0 (see `FlipEvent::received_ns`).
            if let Some(g) = f.granted_ns {
                // Only where the display side takes the frame after its release (not in
                // implicit sync, where the flip is queued before the render).
                report.grant.push(g.saturating_sub(released));
                report.queued.push(f.queued_ns.saturating_sub(released));
            }
            report.flip.push(ev.at_ns.saturating_sub(f.queued_ns));
            report.on_screen.push(ev.at_ns.saturating_sub(released));
            if let Some((seq, at)) = prev {
                report.interval.push(ev.at_ns.saturating_sub(at));
                report.missed += ev.seq.saturating_sub(seq + 1);
            }
            prev = Some((ev.seq, ev.at_ns));
            // The new frame replaces the old one; queue the next one if it is waiting.
            let old = st.on_screen.replace(f);
            if let Some(next) = st.ready.pop_front() {
                self.queue(&mut st, next);
            }
            drop(st);
            if let Some(old) = old {
                self.release(old);
            }
        }
        // Park: the last frame leaves the screen and is given back.
        let mut st = self.state.lock().unwrap();
        st.parking = true;
        if let Err(e) = self.display.flip(PARK) {
            self.fail(format!("flip to the parking buffer failed: {e}"));
        }
        drop(st);
        match self.display.next_event(settings.watchdog) {
            Ok(Some(_)) => {}
            Ok(None) => self.fail("no flip event for the parking flip".into()),
            Err(e) => self.fail(format!("reading the parking flip event: {e}")),
        }
        let last = {
            let mut st = self.state.lock().unwrap();
            st.parking = false;
            report.deferred = st.deferred;
            if st.pending.is_some() || !st.ready.is_empty() {
                self.fail(format!(
                    "{} frames still queued after the last flip",
                    st.ready.len() + st.pending.is_some() as usize
                ));
            }
            st.on_screen.take()
        };
        if let Some(last) = last {
            self.release(last);
        }
    }

    /// The end-of-run check common to every mode: nothing is held by the display side.
    pub fn check_idle(&self) {
        for (i, h) in self.held.iter().enumerate() {
            if h.load(Ordering::SeqCst) {
                self.fail(format!("buffer {i} still held by the display at the end"));
            }
        }
    }

    /// Moves the failed checks into `report`.
    pub fn finish(&self, report: &mut Report) {
        report.errors.append(&mut self.errors.lock().unwrap());
    }
}
