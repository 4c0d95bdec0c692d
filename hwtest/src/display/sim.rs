//! A simulated display: a vblank timer thread at `--hz` that latches the pending flip (if
//! any) on every tick and reports it, like a KMS driver's vblank interrupt. Its fenced
//! buffers are kds-dmabuf's simulated ones: a flip waits for their write fences, as the
//! kernel's implicit sync makes a KMS flip wait (the `implicit-vgem` and `kds-dmabuf` modes
//! run on it so).

use super::vgem::{FenceTarget, SimTarget};
use super::{Display, FlipEvent, Surface, PARK};
use crate::clock::now_ns;
use kds::Access;
use kds_dmabuf::DmaBuf;
use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

struct State {
    pending: Option<usize>,
    events: VecDeque<FlipEvent>,
    buffers: usize,
    /// With fenced buffers (`setup(.., true)`): each buffer's simulated dma-buf, whose write
    /// fences hold a flip to it, as the kernel's implicit sync holds a KMS flip.
    fenced: Vec<DmaBuf>,
}

struct Inner {
    state: Mutex<State>,
    event: Condvar,
    stop: AtomicBool,
}

/// The simulated display; its vblank thread stops when it is dropped.
pub struct SimDisplay {
    inner: Arc<Inner>,
    hz: f64,
    size: (usize, usize),
    vblank: Option<JoinHandle<()>>,
}

impl SimDisplay {
    /// Starts the vblank thread at `hz`, for buffers of `size` pixels.
    pub fn new(hz: f64, size: (usize, usize)) -> io::Result<Self> {
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                pending: None,
                events: VecDeque::new(),
                buffers: 0,
                fenced: Vec::new(),
            }),
            event: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let period = (1e9 / hz) as u64;
        let shared = inner.clone();
        let vblank = thread::Builder::new()
            .name("sim-vblank".into())
            .spawn(move || vblank_loop(&shared, period))?;
        Ok(SimDisplay {
            inner,
            hz,
            size,
            vblank: Some(vblank),
        })
    }
}

/// Ticks every `period` ns; the vblank counter is the number of periods since the start, so
/// a late tick shows up as missed vblanks, as on hardware.
fn vblank_loop(inner: &Inner, period: u64) {
    let start = now_ns();
    let mut tick = 1u64;
    // Relaxed: a stop flag; nothing else is published through it (the thread is joined).
    while !inner.stop.load(Ordering::Relaxed) {
        let due = start + tick * period;
        let now = now_ns();
        if now < due {
            thread::sleep(Duration::from_nanos(due - now));
        }
        let now = now_ns();
        let seq = (now - start) / period;
        tick = seq + 1;
        let mut st = inner.state.lock().unwrap();
        // A flip to a buffer whose write fence is pending waits for a later vblank (an
        // error asking is taken as signalled: the run's checks would then catch a torn frame).
        let held = match st.pending {
            Some(b) if b != PARK => st
                .fenced
                .get(b)
                .is_some_and(|buf| !buf.fences_signalled(Access::Shared).unwrap_or(true)),
            _ => false,
        };
        if !held && st.pending.take().is_some() {
            st.events.push_back(FlipEvent {
                seq,
                at_ns: now,
                received_ns: 0,
            });
            inner.event.notify_all();
        }
    }
}

impl Drop for SimDisplay {
    fn drop(&mut self) {
        // Relaxed: see `vblank_loop`; the join below orders everything else.
        self.inner.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.vblank.take() {
            let _ = t.join();
        }
    }
}

impl Display for SimDisplay {
    fn describe(&self) -> String {
        format!(
            "simulated display {}x{} @ {} Hz (a vblank timer thread; no DRM device used)",
            self.size.0, self.size.1, self.hz
        )
    }

    fn is_simulated(&self) -> bool {
        true
    }

    fn implicit_sync(&self) -> Result<(), String> {
        Ok(()) // simulated: kds-dmabuf's simulated buffers, whose fences the vblank honours
    }

    fn setup(&self, count: usize, implicit: bool) -> io::Result<Vec<Arc<Surface>>> {
        let mut st = self.inner.state.lock().unwrap();
        st.buffers = count;
        st.fenced.clear();
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            let mut surface = Surface::heap(self.size.0, self.size.1);
            if implicit {
                let target = SimTarget::new();
                st.fenced.push(target.buf.clone());
                surface.fence = Some(FenceTarget::Sim(target));
            }
            out.push(Arc::new(surface));
        }
        Ok(out)
    }

    fn flip(&self, buf: usize) -> io::Result<()> {
        let mut st = self.inner.state.lock().unwrap();
        if buf != PARK && buf >= st.buffers {
            return Err(io::Error::from_raw_os_error(
                rustix::io::Errno::INVAL.raw_os_error(),
            ));
        }
        if st.pending.is_some() {
            return Err(io::Error::from_raw_os_error(
                rustix::io::Errno::BUSY.raw_os_error(),
            ));
        }
        st.pending = Some(buf);
        Ok(())
    }

    fn next_event(&self, timeout: Duration) -> io::Result<Option<FlipEvent>> {
        let st = self.inner.state.lock().unwrap();
        let (mut st, _) = self
            .inner
            .event
            .wait_timeout_while(st, timeout, |st| st.events.is_empty())
            .unwrap();
        Ok(st.events.pop_front().map(|mut ev| {
            ev.received_ns = now_ns();
            ev
        }))
    }

    fn teardown(&self) -> io::Result<()> {
        let mut st = self.inner.state.lock().unwrap();
        st.buffers = 0;
        st.events.clear();
        st.fenced.clear();
        Ok(())
    }
}
