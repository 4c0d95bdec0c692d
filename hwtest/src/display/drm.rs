//! A real KMS display: the first connected connector, its preferred mode, dumb buffers
//! (mapped with memmap2) as framebuffers, legacy page flips with `DRM_MODE_PAGE_FLIP_EVENT`,
//! and the flip events read from the device fd.

use super::vgem::{FenceTarget, Vgem};
use super::{Backing, Display, FlipEvent, Surface, PARK};
use drm::buffer::{Buffer, DrmFourcc};
use drm::control::{
    connector, crtc, dumbbuffer::DumbBuffer, framebuffer, Device as ControlDevice, Event, Mode,
    PageFlipFlags,
};
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// An open DRM device node.
pub struct Card(File);

impl Card {
    /// Opens `path` read-write.
    pub fn open(path: &Path) -> io::Result<Card> {
        Ok(Card(OpenOptions::new().read(true).write(true).open(path)?))
    }
}

impl AsFd for Card {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl drm::Device for Card {}
impl ControlDevice for Card {}

/// A buffer imported through PRIME, described for `add_framebuffer`.
struct Imported {
    size: (u32, u32),
    pitch: u32,
    handle: drm::buffer::Handle,
}

impl Buffer for Imported {
    fn size(&self) -> (u32, u32) {
        self.size
    }
    fn format(&self) -> DrmFourcc {
        DrmFourcc::Xrgb8888
    }
    fn pitch(&self) -> u32 {
        self.pitch
    }
    fn handle(&self) -> drm::buffer::Handle {
        self.handle
    }
}

#[derive(Default)]
struct Buffers {
    fbs: Vec<framebuffer::Handle>,
    /// Dumb buffers on the display device.
    dumbs: Vec<DumbBuffer>,
    /// Imported handles on the display device, and the vgem buffers behind them.
    imported: Vec<drm::buffer::Handle>,
    vgem_dumbs: Vec<DumbBuffer>,
}

/// The KMS display.
pub struct DrmDisplay {
    card: Card,
    path: PathBuf,
    crtc: crtc::Handle,
    mode: Mode,
    size: (u32, u32),
    park_fb: framebuffer::Handle,
    _park: DumbBuffer,
    buffers: Mutex<Buffers>,
    events: Mutex<VecDeque<FlipEvent>>,
    vgem: Option<Arc<Vgem>>,
    driver: String,
}

/// Maps dumb buffer `db` of `card` with memmap2 (the offset comes from
/// `DRM_IOCTL_MODE_MAP_DUMB`, through drm-ffi).
fn map_dumb(card: &Card, db: &DumbBuffer) -> io::Result<memmap2::MmapMut> {
    let map = drm_ffi::mode::dumbbuffer::map(card.as_fd(), db.handle().into(), 0, 0)?;
    let (_, h) = db.size();
    let len = db.pitch() as usize * h as usize;
    // SAFETY: a shared mapping of a GEM object; nothing else truncates it while mapped (the
    // buffer is destroyed only after the mapping is dropped).
    unsafe {
        memmap2::MmapOptions::new()
            .offset(map.offset)
            .len(len)
            .map_mut(&card.0)
    }
}

fn surface_from_map(
    mut map: memmap2::MmapMut,
    db: &DumbBuffer,
    fence: Option<FenceTarget>,
) -> Surface {
    let (w, h) = db.size();
    let ptr = map.as_mut_ptr() as *mut u32;
    // SAFETY: the mapping covers pitch * height bytes (page aligned, so u32 aligned) and is
    // moved into the surface.
    unsafe {
        Surface::new(
            ptr,
            w as usize,
            h as usize,
            db.pitch() as usize / 4,
            Backing::Map(map),
            fence,
        )
    }
}

impl DrmDisplay {
    /// Opens `path`, picks the first connected connector and its preferred mode, and lights
    /// it up with a black parking buffer.
    pub fn open(path: &Path) -> io::Result<DrmDisplay> {
        let card = Card::open(path)?;
        let driver = drm::Device::get_driver(&card)
            .map(|d| d.name().to_string_lossy().into_owned())
            .unwrap_or_else(|_| "?".into());
        let res = card.resource_handles()?;
        let mut found = None;
        for &c in res.connectors() {
            let info = card.get_connector(c, true)?;
            if info.state() == connector::State::Connected && !info.modes().is_empty() {
                found = Some(info);
                break;
            }
        }
        let conn = found.ok_or_else(|| io::Error::other("no connected connector"))?;
        let mode = conn.modes()[0];
        let enc = match conn.current_encoder() {
            Some(e) => e,
            None => *conn
                .encoders()
                .first()
                .ok_or_else(|| io::Error::other("connector has no encoder"))?,
        };
        let enc = card.get_encoder(enc)?;
        let crtc = match enc.crtc() {
            Some(c) => c,
            None => *res
                .filter_crtcs(enc.possible_crtcs())
                .first()
                .ok_or_else(|| io::Error::other("no CRTC for the encoder"))?,
        };
        let (w, h) = mode.size();
        let size = (w as u32, h as u32);
        let park = card.create_dumb_buffer(size, DrmFourcc::Xrgb8888, 32)?;
        let park_fb = card.add_framebuffer(&park, 24, 32)?;
        card.set_crtc(crtc, Some(park_fb), (0, 0), &[conn.handle()], Some(mode))?;
        let vgem = Vgem::find(path).map(Arc::new);
        Ok(DrmDisplay {
            card,
            path: path.to_owned(),
            crtc,
            mode,
            size,
            park_fb,
            _park: park,
            buffers: Mutex::new(Buffers::default()),
            events: Mutex::new(VecDeque::new()),
            vgem,
            driver,
        })
    }

    fn free(&self, b: &mut Buffers) -> io::Result<()> {
        for fb in b.fbs.drain(..) {
            self.card.destroy_framebuffer(fb)?;
        }
        for db in b.dumbs.drain(..) {
            self.card.destroy_dumb_buffer(db)?;
        }
        for h in b.imported.drain(..) {
            self.card.close_buffer(h)?;
        }
        if let Some(v) = &self.vgem {
            for db in b.vgem_dumbs.drain(..) {
                v.card.destroy_dumb_buffer(db)?;
            }
        }
        Ok(())
    }
}

impl Display for DrmDisplay {
    fn describe(&self) -> String {
        format!(
            "DRM device {} (driver {}), {}x{} @ {} Hz, real page flips{}",
            self.path.display(),
            self.driver,
            self.size.0,
            self.size.1,
            self.mode.vrefresh(),
            match &self.vgem {
                Some(v) => format!("; vgem at {}", v.path.display()),
                None => String::new(),
            }
        )
    }

    fn is_simulated(&self) -> bool {
        false
    }

    fn implicit_sync(&self) -> Result<(), String> {
        match self.vgem {
            Some(_) => Ok(()),
            None => Err("no vgem".into()),
        }
    }

    fn setup(&self, count: usize, implicit: bool) -> io::Result<Vec<Arc<Surface>>> {
        let mut b = self.buffers.lock().unwrap();
        self.free(&mut b)?;
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            if implicit {
                let vgem = self
                    .vgem
                    .clone()
                    .ok_or_else(|| io::Error::new(io::ErrorKind::Unsupported, "no vgem"))?;
                let db = vgem
                    .card
                    .create_dumb_buffer(self.size, DrmFourcc::Xrgb8888, 32)?;
                b.vgem_dumbs.push(db);
                let fd = vgem.card.buffer_to_prime_fd(
                    db.handle(),
                    (rustix::fs::OFlags::CLOEXEC | rustix::fs::OFlags::RDWR).bits(),
                )?;
                let handle = self.card.prime_fd_to_buffer(fd.as_fd())?;
                b.imported.push(handle);
                let fb = self.card.add_framebuffer(
                    &Imported {
                        size: db.size(),
                        pitch: db.pitch(),
                        handle,
                    },
                    24,
                    32,
                )?;
                b.fbs.push(fb);
                let map = map_dumb(&vgem.card, &db)?;
                let fence = FenceTarget::Vgem {
                    vgem: vgem.clone(),
                    handle: db.handle().into(),
                    dmabuf: Arc::new(fd),
                };
                out.push(Arc::new(surface_from_map(map, &db, Some(fence))));
            } else {
                let db = self
                    .card
                    .create_dumb_buffer(self.size, DrmFourcc::Xrgb8888, 32)?;
                b.dumbs.push(db);
                let fb = self.card.add_framebuffer(&db, 24, 32)?;
                b.fbs.push(fb);
                let map = map_dumb(&self.card, &db)?;
                out.push(Arc::new(surface_from_map(map, &db, None)));
            }
        }
        Ok(out)
    }

    fn flip(&self, buf: usize) -> io::Result<()> {
        let fb = if buf == PARK {
            self.park_fb
        } else {
            *self
                .buffers
                .lock()
                .unwrap()
                .fbs
                .get(buf)
                .ok_or_else(|| io::Error::other("no such buffer"))?
        };
        self.card
            .page_flip(self.crtc, fb, PageFlipFlags::EVENT, None)
    }

    fn next_event(&self, timeout: Duration) -> io::Result<Option<FlipEvent>> {
        let mut queued = self.events.lock().unwrap();
        if let Some(ev) = queued.pop_front() {
            return Ok(Some(ev));
        }
        let ts = rustix::time::Timespec {
            tv_sec: timeout.as_secs() as _,
            tv_nsec: timeout.subsec_nanos() as _,
        };
        let mut fds = [rustix::event::PollFd::new(
            &self.card,
            rustix::event::PollFlags::IN,
        )];
        loop {
            match rustix::event::poll(&mut fds, Some(&ts)) {
                Ok(0) => return Ok(None),
                Ok(_) => break,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        let events = self.card.receive_events()?;
        let received_ns = crate::clock::now_ns();
        for ev in events {
            if let Event::PageFlip(pf) = ev {
                queued.push_back(FlipEvent {
                    seq: pf.frame as u64,
                    at_ns: pf.duration.as_nanos() as u64,
                    received_ns,
                });
            }
        }
        Ok(queued.pop_front())
    }

    fn teardown(&self) -> io::Result<()> {
        let mut b = self.buffers.lock().unwrap();
        self.free(&mut b)
    }
}
