//! What the pipeline needs from a display: scan-out buffers it can draw into, a page flip
//! that reports completion with an event, and (optionally) buffers that the kernel fences.
//!
//! Two implementations: [`drm::DrmDisplay`] (a real KMS device: dumb buffers, legacy page
//! flips with `DRM_MODE_PAGE_FLIP_EVENT`) and [`sim::SimDisplay`] (a vblank timer thread).

pub mod drm;
pub mod sim;
pub mod vgem;

use std::io;
use std::sync::Arc;
use std::time::Duration;

/// The buffer index that [`Display::flip`] takes to scan out the display's own parking
/// buffer, so that the last pipeline buffer leaves the screen at the end of a run.
pub const PARK: usize = usize::MAX;

/// A completed flip: the vblank counter and the CLOCK_MONOTONIC time it was latched at.
#[derive(Clone, Copy, Debug)]
pub struct FlipEvent {
    /// Vblank sequence number of the flip.
    pub seq: u64,
    /// When the flip took effect, in nanoseconds of CLOCK_MONOTONIC ([`crate::clock::now_ns`]).
    pub at_ns: u64,
    /// When this process read the event (same clock). vkms stamps an event with the nominal
    /// time of its (emulated) vblank, which under emulation can precede the moment the flip
    /// was queued; the reading time never does.
    pub received_ns: u64,
}

/// A display the pipeline can drive. All methods take `&self`: the renderer (or the grant
/// callback) queues flips while the display thread waits for events.
pub trait Display: Send + Sync {
    /// A one-line description for the report.
    fn describe(&self) -> String;
    /// Whether this is the simulated display.
    fn is_simulated(&self) -> bool;
    /// `Ok(())` if buffers whose writes the kernel fences (implicit sync) are available;
    /// else why not (e.g. "no vgem").
    fn implicit_sync(&self) -> Result<(), String>;
    /// Allocates `count` scan-out buffers (fenceable ones with `implicit`), replacing any
    /// from a previous mode.
    fn setup(&self, count: usize, implicit: bool) -> io::Result<Vec<Arc<Surface>>>;
    /// Queues a flip to buffer `buf` (or [`PARK`]) with a completion event. One flip may
    /// be pending at a time (as with KMS: a second one fails with `EBUSY`).
    fn flip(&self, buf: usize) -> io::Result<()>;
    /// Waits up to `timeout` for the next flip event.
    fn next_event(&self, timeout: Duration) -> io::Result<Option<FlipEvent>>;
    /// Frees the buffers of [`setup`](Self::setup) (the parking buffer must be on screen).
    fn teardown(&self) -> io::Result<()>;
}

/// What keeps a surface's memory mapped.
pub enum Backing {
    /// Simulated display: plain memory.
    Heap(#[allow(dead_code)] Box<[u32]>),
    /// A mapped dumb buffer (or vgem buffer).
    Map(#[allow(dead_code)] memmap2::MmapMut),
}

/// One scan-out buffer's CPU view: XRGB8888 pixels. It is device memory that the display
/// engine reads while we may (through a bug) write it, so it is only ever accessed through
/// its raw pointer, never through a Rust reference.
pub struct Surface {
    ptr: *mut u32,
    /// Pixels per row.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// Words (pixels) from one row to the next.
    pub stride: usize,
    /// For implicit sync: where to attach the write fence.
    pub fence: Option<vgem::FenceTarget>,
    _backing: Backing,
}

// SAFETY: the pointer refers to memory owned by `_backing`, which lives as long as the
// surface; all accesses go through raw-pointer reads and writes (see `frame.rs`).
unsafe impl Send for Surface {}
// SAFETY: as above; concurrent access is what the pipeline's checks detect, never UB on
// Rust references since none are formed.
unsafe impl Sync for Surface {}

impl Surface {
    /// A surface over `backing`, whose first byte is at `ptr`.
    ///
    /// # Safety
    /// `ptr` must point to `stride * height` writable `u32`s that `backing` keeps alive.
    pub unsafe fn new(
        ptr: *mut u32,
        width: usize,
        height: usize,
        stride: usize,
        backing: Backing,
        fence: Option<vgem::FenceTarget>,
    ) -> Self {
        Surface {
            ptr,
            width,
            height,
            stride,
            fence,
            _backing: backing,
        }
    }

    /// A heap surface (simulated display).
    pub fn heap(width: usize, height: usize) -> Self {
        let mut mem = vec![0u32; width * height].into_boxed_slice();
        let ptr = mem.as_mut_ptr();
        // SAFETY: `mem` holds width * height words and moves into the surface (a boxed
        // slice's heap allocation does not move).
        unsafe { Surface::new(ptr, width, height, width, Backing::Heap(mem), None) }
    }

    /// The raw pointer to pixel (0, 0).
    pub fn ptr(&self) -> *mut u32 {
        self.ptr
    }
}
