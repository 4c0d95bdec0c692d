//! What the renderer draws: a moving diagonal-stripe pattern, stamped with the frame number
//! at the first and the last pixel words, so that a frame scanned out torn (stamps differ),
//! stale or early (stamp is another frame), or overwritten while on screen is detectable.
//!
//! The stamp is written first (top) and last (bottom): a half-drawn frame has a new top stamp
//! and an old bottom one.

use crate::display::Surface;

/// Marks a stamped frame.
const MAGIC: u32 = 0x4b44_5321; // "KDS!"
/// Stamp words at each end.
const STAMP: usize = 4;
/// Stripe period in pixels.
const PERIOD: usize = 64;
/// Pixels the pattern moves per frame.
const SPEED: usize = 4;

/// The stripe row, precomputed: `width + PERIOD` pixels, from which each row takes a window.
pub struct Pattern {
    row: Vec<u32>,
}

impl Pattern {
    /// A pattern for surfaces `width` pixels wide.
    pub fn new(width: usize) -> Pattern {
        let palette = [0x00ff_4040u32, 0x0040_ff40, 0x0040_40ff, 0x00f0_f0f0];
        let row = (0..width + PERIOD)
            .map(|x| palette[(x / (PERIOD / 4)) % 4])
            .collect();
        Pattern { row }
    }

    /// Draws frame `frame` into `s`.
    pub fn draw(&self, s: &Surface, frame: u64) {
        assert!(s.width >= 2 * STAMP && s.height >= 2 && self.row.len() >= s.width + PERIOD);
        let stamp = stamp_words(frame);
        let last = (s.height - 1) * s.stride + s.width - STAMP;
        // SAFETY: every write is inside the surface's stride * height words; raw writes only.
        unsafe {
            write_words(s.ptr(), &stamp);
            for y in 0..s.height {
                let shift = (y + frame as usize * SPEED) % PERIOD;
                let (from, to) = match y {
                    0 => (STAMP, s.width),
                    y if y == s.height - 1 => (0, s.width - STAMP),
                    _ => (0, s.width),
                };
                let src = self.row[shift + from..shift + to].as_ptr();
                std::ptr::copy_nonoverlapping(src, s.ptr().add(y * s.stride + from), to - from);
            }
            write_words(s.ptr().add(last), &stamp);
        }
    }
}

fn stamp_words(frame: u64) -> [u32; STAMP] {
    let lo = frame as u32;
    [MAGIC, lo, (frame >> 32) as u32, !lo]
}

/// # Safety
/// `dst` must be valid for `STAMP` word writes.
unsafe fn write_words(dst: *mut u32, words: &[u32; STAMP]) {
    for (i, w) in words.iter().enumerate() {
        // SAFETY: the caller's contract.
        unsafe { dst.add(i).write_volatile(*w) };
    }
}

fn read_stamp(src: *const u32) -> Option<u64> {
    // SAFETY: callers pass a pointer to STAMP words inside a surface.
    let w: [u32; STAMP] = std::array::from_fn(|i| unsafe { src.add(i).read_volatile() });
    (w[0] == MAGIC && w[3] == !w[1]).then(|| (w[2] as u64) << 32 | w[1] as u64)
}

/// The frame numbers stamped at the top and at the bottom of `s` (`None`: no valid stamp).
pub fn stamps(s: &Surface) -> (Option<u64>, Option<u64>) {
    let last = (s.height - 1) * s.stride + s.width - STAMP;
    // SAFETY: both are STAMP words inside the surface.
    unsafe { (read_stamp(s.ptr()), read_stamp(s.ptr().add(last))) }
}

/// Clears the stamps, so that a buffer that was never drawn cannot pass for a frame.
pub fn clear(s: &Surface) {
    let last = (s.height - 1) * s.stride + s.width - STAMP;
    // SAFETY: both are STAMP words inside the surface.
    unsafe {
        write_words(s.ptr(), &[0; STAMP]);
        write_words(s.ptr().add(last), &[0; STAMP]);
    }
}
