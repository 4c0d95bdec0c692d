//! One clock for everything: CLOCK_MONOTONIC in nanoseconds, the clock DRM stamps its flip
//! events with (`DRM_CAP_TIMESTAMP_MONOTONIC`).

/// Now, in nanoseconds of CLOCK_MONOTONIC.
pub fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}
