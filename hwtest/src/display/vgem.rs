//! The kernel's implicit sync, the way IGT's `prime_vgem` flip test drives it: a buffer
//! allocated on `vgem`, exported as a dma-buf and imported into the display device; a write
//! fence attached with `DRM_IOCTL_VGEM_FENCE_ATTACH` makes the display hold a flip to that
//! buffer until `DRM_IOCTL_VGEM_FENCE_SIGNAL`. The `drm` crate has no vgem ioctls, so these
//! two go through `rustix::ioctl`; everything else (dumb buffers, PRIME) is the `drm` crate.
//! [`FenceTarget`] also has a simulated form, for the simulated display.

use super::drm::Card;
use drm::Device as _;
use kds::Access;
use kds_dmabuf::{DmaBuf, SimFence};
use rustix::ioctl::{ioctl, opcode, Opcode, Setter, Updater};
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// `struct drm_vgem_fence_attach` (include/uapi/drm/vgem_drm.h).
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

/// `VGEM_FENCE_WRITE`: an exclusive (write) fence.
const VGEM_FENCE_WRITE: u32 = 0x1;
/// `DRM_IOCTL_VGEM_FENCE_ATTACH`: `DRM_IOWR(DRM_COMMAND_BASE + 0x1, ...)`.
const FENCE_ATTACH: Opcode = opcode::read_write::<FenceAttach>(b'd', 0x40 + 0x1);
/// `DRM_IOCTL_VGEM_FENCE_SIGNAL`: `DRM_IOW(DRM_COMMAND_BASE + 0x2, ...)`.
const FENCE_SIGNAL: Opcode = opcode::write::<FenceSignal>(b'd', 0x40 + 0x2);

/// An open vgem device.
pub struct Vgem {
    /// The device node.
    pub card: Card,
    /// Its path, for the report.
    pub path: PathBuf,
}

impl Vgem {
    /// Finds the vgem node among `/dev/dri/card*` (skipping `display`).
    pub fn find(display: &Path) -> Option<Vgem> {
        let mut nodes: Vec<PathBuf> = std::fs::read_dir("/dev/dri")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("card"))
            })
            .collect();
        nodes.sort();
        for path in nodes {
            if path == display {
                continue;
            }
            let Ok(card) = Card::open(&path) else {
                continue;
            };
            let is_vgem = card
                .get_driver()
                .map(|d| d.name().to_string_lossy() == "vgem")
                .unwrap_or(false);
            if is_vgem {
                return Some(Vgem { card, path });
            }
        }
        None
    }

    /// Attaches an unsignalled write fence to buffer `handle`; returns the fence id.
    pub fn attach_write_fence(&self, handle: u32) -> io::Result<u32> {
        self.attach_fence(handle, true)
    }

    /// Attaches an unsignalled fence, a write fence or a read fence, to buffer `handle`;
    /// returns the fence id.
    pub fn attach_fence(&self, handle: u32, write: bool) -> io::Result<u32> {
        let mut arg = FenceAttach {
            handle,
            flags: if write { VGEM_FENCE_WRITE } else { 0 },
            out_fence: 0,
            pad: 0,
        };
        // SAFETY: FENCE_ATTACH is the read-write ioctl whose argument is `FenceAttach`.
        unsafe { ioctl(self.card.as_fd(), Updater::<FENCE_ATTACH, _>::new(&mut arg)) }?;
        Ok(arg.out_fence)
    }

    /// Signals fence `fence`.
    pub fn signal(&self, fence: u32) -> io::Result<()> {
        let arg = FenceSignal { fence, flags: 0 };
        // SAFETY: FENCE_SIGNAL is the write ioctl whose argument is `FenceSignal`.
        unsafe { ioctl(self.card.as_fd(), Setter::<FENCE_SIGNAL, _>::new(arg)) }?;
        Ok(())
    }
}

/// Where a surface's write fences go: its buffer on the vgem device, or (simulated display)
/// a simulated dma-buf whose fences are eventfds.
#[derive(Clone)]
pub enum FenceTarget {
    /// A vgem buffer.
    Vgem {
        /// The vgem device.
        vgem: Arc<Vgem>,
        /// The buffer's GEM handle on it.
        handle: u32,
        /// The buffer exported as a dma-buf (the `kds-dmabuf` mode binds it).
        dmabuf: Arc<OwnedFd>,
    },
    /// A simulated buffer: the simulated display holds a flip of it while a write fence is
    /// pending, as the kernel does for a dma-buf.
    Sim(Arc<SimTarget>),
}

/// A simulated buffer and its pending fences, by id.
pub struct SimTarget {
    /// The buffer (the `kds-dmabuf` mode binds a clone of it).
    pub buf: DmaBuf,
    fences: Mutex<(u32, HashMap<u32, SimFence>)>,
}

impl SimTarget {
    /// A fresh simulated buffer.
    pub fn new() -> Arc<SimTarget> {
        Arc::new(SimTarget {
            buf: DmaBuf::simulated(),
            fences: Mutex::new((0, HashMap::new())),
        })
    }
}

fn to_io(e: kds_dmabuf::Error) -> io::Error {
    io::Error::other(e.to_string())
}

impl FenceTarget {
    /// Attaches a write fence (before the renderer draws); returns its id.
    pub fn attach(&self) -> io::Result<u32> {
        match self {
            FenceTarget::Vgem { vgem, handle, .. } => vgem.attach_write_fence(*handle),
            FenceTarget::Sim(t) => {
                let fence = SimFence::new().map_err(to_io)?;
                t.buf.sim_attach(fence.as_fd(), true).map_err(to_io)?;
                let mut f = t.fences.lock().unwrap();
                f.0 += 1;
                let id = f.0;
                f.1.insert(id, fence);
                Ok(id)
            }
        }
    }

    /// Signals it (the render is done).
    pub fn signal(&self, fence: u32) -> io::Result<()> {
        match self {
            FenceTarget::Vgem { vgem, .. } => vgem.signal(fence),
            FenceTarget::Sim(t) => {
                let f = t.fences.lock().unwrap().1.remove(&fence);
                f.ok_or_else(|| io::Error::other("no such fence"))?.signal();
                Ok(())
            }
        }
    }

    /// A descriptor of pending fence `fence` that a kds holder can attach to another buffer
    /// (`attach_fence`): vgem, a sync file of this buffer's fences (`bound` is this buffer as
    /// kds-dmabuf bound it); simulated, the fence's own eventfd, duplicated.
    pub fn sync_file(&self, fence: u32, bound: &DmaBuf) -> io::Result<OwnedFd> {
        match self {
            FenceTarget::Vgem { .. } => bound.sync_file(Access::Exclusive).map_err(to_io),
            FenceTarget::Sim(t) => {
                let f = t.fences.lock().unwrap();
                let fence =
                    f.1.get(&fence)
                        .ok_or_else(|| io::Error::other("no such fence"))?;
                fence.as_fd().try_clone_to_owned()
            }
        }
    }

    /// The buffer bound as a kds-dmabuf buffer.
    pub fn bind(&self) -> Result<DmaBuf, String> {
        match self {
            FenceTarget::Vgem { dmabuf, .. } => {
                let fd = dmabuf.try_clone().map_err(|e| e.to_string())?;
                DmaBuf::new(fd).map_err(|e| e.to_string())
            }
            FenceTarget::Sim(t) => Ok(t.buf.clone()),
        }
    }
}
