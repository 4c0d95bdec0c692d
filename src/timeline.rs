//! Where a contended grant's time goes (feature `timeline`, off by default).
//!
//! With the feature on, the front end and both engines record, in process-wide counters:
//!
//! - **release → delivery**: from the start of a guard's release to the delivery of each grant
//!   that release completed (on the releasing thread: its queue walks, its trigger CASes);
//! - **delivery → running**: from that delivery to the moment the blocked thread returns from
//!   its wait holding the set, split by how it waited: still *spinning* (the grant landed
//!   inside its spin-then-yield window) or *parked* (woken through `unpark`);
//! - **spinning**: the time blocked threads spent in their spin-then-yield window, and how many
//!   of those windows ended with the grant;
//! - **helping**: how often an enqueue found another set's tentative link in its way and ran
//!   that set's enqueue for it, and the time it spent doing so (lock-free engine only).
//!
//! Without the feature every hook is an empty inline function: nothing is recorded and
//! nothing is paid. With it, each hook costs a clock read and a few relaxed atomic adds on
//! shared counters, which is itself contention: read the figures as a breakdown, and take
//! throughput from a run without the feature. `benches/contention.rs` prints them per mix.
//!
//! ```
//! # #[cfg(feature = "timeline")] {
//! kds::timeline::reset();
//! // ... a contended workload ...
//! let t = kds::timeline::snapshot();
//! println!("{} grants to parked waiters", t.parked.count);
//! # }
//! ```

#[cfg(feature = "timeline")]
pub use imp::*;

#[cfg(feature = "timeline")]
mod imp {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    use std::sync::OnceLock;
    use std::time::Instant;

    // Every counter here is a statistic read after the workload: Relaxed throughout, nothing
    // is published through them.

    /// Nanoseconds since a process-wide origin (comparable across threads); never 0.
    pub(crate) fn now() -> u64 {
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        ORIGIN.get_or_init(Instant::now).elapsed().as_nanos() as u64 + 1
    }

    /// Latencies in power-of-two buckets (bucket `i` holds values in `[2^i, 2^(i+1))` ns).
    struct Histogram {
        buckets: [AtomicU64; 40],
        sum: AtomicU64,
    }

    impl Histogram {
        const fn new() -> Self {
            Histogram {
                buckets: [const { AtomicU64::new(0) }; 40],
                sum: AtomicU64::new(0),
            }
        }

        fn add(&self, ns: u64) {
            let i = (63 - ns.max(1).leading_zeros() as usize).min(39);
            self.buckets[i].fetch_add(1, Relaxed);
            self.sum.fetch_add(ns, Relaxed);
        }

        fn reset(&self) {
            for b in &self.buckets {
                b.store(0, Relaxed);
            }
            self.sum.store(0, Relaxed);
        }

        fn snapshot(&self) -> Latency {
            let buckets: Vec<u64> = self.buckets.iter().map(|b| b.load(Relaxed)).collect();
            let count = buckets.iter().sum();
            // The upper bound of the bucket holding the `q`-quantile.
            let quantile = |q: f64| -> u64 {
                let rank = (count as f64 * q).ceil().max(1.0) as u64;
                let mut seen = 0;
                for (i, &n) in buckets.iter().enumerate() {
                    seen += n;
                    if seen >= rank {
                        return 1u64 << (i + 1);
                    }
                }
                0
            };
            Latency {
                count,
                total_ns: self.sum.load(Relaxed),
                p50_ns: if count == 0 { 0 } else { quantile(0.5) },
                p99_ns: if count == 0 { 0 } else { quantile(0.99) },
            }
        }
    }

    static RELEASE_TO_DELIVERY: Histogram = Histogram::new();
    static SPINNING: Histogram = Histogram::new();
    static PARKED: Histogram = Histogram::new();
    static SPIN: Histogram = Histogram::new();
    static SPIN_WON: AtomicU64 = AtomicU64::new(0);
    static HELP: Histogram = Histogram::new();

    std::thread_local! {
        /// When this thread's current release began (0: not releasing).
        static RELEASING: Cell<u64> = const { Cell::new(0) };
    }

    /// A count of events, their summed duration, and the median and 99th percentile as the
    /// upper bound of their power-of-two bucket (so within a factor of 2).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Latency {
        /// Events recorded.
        pub count: u64,
        /// Their durations, summed.
        pub total_ns: u64,
        /// The median's bucket's upper bound.
        pub p50_ns: u64,
        /// The 99th percentile's bucket's upper bound.
        pub p99_ns: u64,
    }

    impl Latency {
        /// The mean duration (0 when nothing was recorded).
        pub fn mean_ns(&self) -> u64 {
            self.total_ns.checked_div(self.count).unwrap_or(0)
        }
    }

    /// What the hooks recorded since the last [`reset`].
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Timeline {
        /// From the start of a release to the delivery of a grant it completed.
        pub release_to_delivery: Latency,
        /// From delivery to a blocked thread running, for grants that landed while it spun.
        pub spinning: Latency,
        /// The same for grants that found it parked (an `unpark` woke it).
        pub parked: Latency,
        /// Spin-then-yield windows of blocked threads (each one's duration: CPU burnt).
        pub spin: Latency,
        /// Spin windows that ended with the grant (the others went on to park, or timed out).
        pub spin_won: u64,
        /// Enqueues that ran another set's enqueue because its tentative link was in the way.
        pub help: Latency,
    }

    /// Reads the counters.
    pub fn snapshot() -> Timeline {
        Timeline {
            release_to_delivery: RELEASE_TO_DELIVERY.snapshot(),
            spinning: SPINNING.snapshot(),
            parked: PARKED.snapshot(),
            spin: SPIN.snapshot(),
            spin_won: SPIN_WON.load(Relaxed),
            help: HELP.snapshot(),
        }
    }

    /// Zeroes the counters (call it while no kds operation runs, or counts may straddle).
    pub fn reset() {
        for h in [&RELEASE_TO_DELIVERY, &SPINNING, &PARKED, &SPIN, &HELP] {
            h.reset();
        }
        SPIN_WON.store(0, Relaxed);
    }

    /// A guard's release begins on this thread.
    pub(crate) fn release_begins() {
        RELEASING.with(|r| r.set(now()));
    }

    /// It ended.
    pub(crate) fn release_ends() {
        RELEASING.with(|r| r.set(0));
    }

    /// A blocked thread's grant is being delivered: stamps `at` (the request's slot) and, if a
    /// release on this thread completed it, records that release's share.
    pub(crate) fn delivering(at: &AtomicU64) {
        let t = now();
        at.store(t, Relaxed);
        let began = RELEASING.with(Cell::get);
        if began != 0 {
            RELEASE_TO_DELIVERY.add(t - began.min(t));
        }
    }

    /// The blocked thread whose grant was stamped in `at` runs again; `parked`: it had parked.
    pub(crate) fn running(at: &AtomicU64, parked: bool) {
        let stamped = at.load(Relaxed);
        if stamped == 0 {
            return; // granted by its own enqueue, nothing delivered
        }
        let d = now().saturating_sub(stamped);
        if parked {
            PARKED.add(d);
        } else {
            SPINNING.add(d);
        }
    }

    /// A spin-then-yield window that began at `began` (from [`now`]) ended; `won`: with the
    /// grant.
    pub(crate) fn spun(began: u64, won: bool) {
        SPIN.add(now().saturating_sub(began));
        if won {
            SPIN_WON.fetch_add(1, Relaxed);
        }
    }

    /// An enqueue helped another set's enqueue from `began` (from [`now`]) to now.
    pub(crate) fn helped(began: u64) {
        HELP.add(now().saturating_sub(began));
    }

    /// A request's delivery stamp (0: not delivered through a delivery queue).
    pub(crate) type Stamp = AtomicU64;
}

/// Without the feature: empty hooks, a zero-sized stamp.
#[cfg(not(feature = "timeline"))]
mod off {
    #[inline(always)]
    pub(crate) fn now() -> u64 {
        0
    }
    #[inline(always)]
    pub(crate) fn release_begins() {}
    #[inline(always)]
    pub(crate) fn release_ends() {}
    #[inline(always)]
    pub(crate) fn delivering(_at: &Stamp) {}
    #[inline(always)]
    pub(crate) fn running(_at: &Stamp, _parked: bool) {}
    #[inline(always)]
    pub(crate) fn spun(_began: u64, _won: bool) {}
    #[inline(always)]
    pub(crate) fn helped(_began: u64) {}

    /// Nothing to stamp.
    #[derive(Default)]
    pub(crate) struct Stamp;
}

#[cfg(not(feature = "timeline"))]
pub(crate) use off::*;
