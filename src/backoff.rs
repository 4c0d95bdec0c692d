//! Waiting a little without parking: a blocked thread, or a [`Worker`](crate::Worker) that
//! just ran a callback, spins and then yields for a few microseconds before it parks, because
//! the next grant often comes that soon and a park/unpark hand-off costs about 20 µs. Not
//! when that would take the CPU from the holders: at most one thread fewer than the cores
//! spins at once, spinning pauses while it keeps missing, a blocked set yields only while
//! blocked threads outnumber the cores, and nobody spins while more than twice the cores are
//! blocked (see `spin_then_yield`, `Waiting::crowded` and `overcrowded`).

use crate::sync::{spin_loop, thread};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a blocked thread spins (`spin_loop`) before it starts yielding, and how long it
/// keeps yielding before it parks. A park/unpark hand-off costs about 20 µs on the
/// development VM, a spinning one tens of nanoseconds; a queued hand-off (the holder's release,
/// its scan, the grant) takes a microsecond or two under contention. Spinning for a few
/// microseconds catches those, and waiting in all at most about one park's cost before parking
/// keeps the worst case within twice the best (the classic competitive bound). Yielding in the
/// second phase lets a preempted holder run when threads outnumber cores.
const SPIN_FOR: Duration = Duration::from_micros(4);
const YIELD_UNTIL: Duration = Duration::from_micros(20);

/// Waits for `done` without parking: spins, then (if `yields`) yields, for at most
/// `YIELD_UNTIL` (and not past `deadline`). `true` if `done` came true. Under loom: one check
/// and one yield, since loom explores every yield and has no clock.
///
/// At most `spin_cap()` threads spin at once; a thread that finds them all taken checks `done`
/// once and returns, so its caller parks at once. When blocked threads outnumber the cores,
/// spinning ones would take the CPU from the holders they wait for (`docs/benchmarks-analysis.md`,
/// "Issue 18, second pass").
#[inline]
pub(crate) fn spin_then_yield(
    done: impl FnMut() -> bool,
    deadline: Option<Instant>,
    yields: bool,
) -> bool {
    if cfg!(kds_loom) {
        return check_twice(done);
    }
    if overcrowded() {
        let mut done = done;
        return done();
    }
    let Some(_slot) = SpinSlot::take() else {
        let mut done = done;
        return done();
    };
    let won = spin_window(done, deadline, yields);
    // Relaxed: see `SPINNING`. Read before written, so that the common case (winning while
    // nothing was missed) writes no line that every waiter reads.
    let misses = MISSES.load(Ordering::Relaxed);
    if won {
        if misses != 0 {
            MISSES.store(0, Ordering::Relaxed);
        }
    } else if misses < MISS_LIMIT {
        MISSES.fetch_add(1, Ordering::Relaxed);
    }
    won
}

/// Spin windows in a row, across the process, that ended without the grant (up to
/// `MISS_LIMIT`). At the limit spinning is not paying: only one waiter in `PROBE_EVERY` spins
/// (to notice when it pays again), the others park at once.
static MISSES: AtomicUsize = AtomicUsize::new(0);
const MISS_LIMIT: usize = 4;
const PROBE_EVERY: usize = 32;
static PROBES: AtomicUsize = AtomicUsize::new(0);

/// Loom's spin window: a check, a yield, a check.
fn check_twice(mut done: impl FnMut() -> bool) -> bool {
    if done() {
        return true;
    }
    spin_loop();
    done()
}

/// Threads inside a spin window now, across the process (a heuristic, outside the models:
/// Relaxed throughout, since nothing is published through it and any answer is correct).
static SPINNING: AtomicUsize = AtomicUsize::new(0);

/// How many threads may spin at once, plus one, as `set_spin_cap` chose; 0: the default.
static SPIN_CAP: AtomicUsize = AtomicUsize::new(0);

/// The cores this process may run on, less one for the holder that the spinners wait for
/// (at least 1), unless `set_spin_cap` chose.
fn spin_cap() -> usize {
    // Relaxed: a configuration value (see `SPINNING`).
    match SPIN_CAP.load(Ordering::Relaxed) {
        0 => cores().saturating_sub(1).max(1),
        chosen => chosen - 1,
    }
}

/// Sets how many threads may spin at once (`None`: the default, see `spin_cap`; `Some(0)`:
/// none, every waiter parks at once; `Some(usize::MAX)`: no limit and no adaptation, as before
/// issue 18). For A/B measurements.
pub(crate) fn set_spin_cap(cap: Option<usize>) {
    // Relaxed: a configuration value (see `SPINNING`).
    SPIN_CAP.store(cap.map_or(0, |c| c.saturating_add(1)), Ordering::Relaxed);
    ADAPTIVE.store(cap != Some(usize::MAX), Ordering::Relaxed);
}

/// Threads blocked in a set's wait now (spinning or parked), across the process. Relaxed
/// throughout: a heuristic (see `SPINNING`).
static WAITING: AtomicUsize = AtomicUsize::new(0);

/// A blocked set's wait, counted in `WAITING` while it lasts.
pub(crate) struct Waiting;

impl Waiting {
    pub(crate) fn enter() -> Waiting {
        // Relaxed: see `WAITING`.
        WAITING.fetch_add(1, Ordering::Relaxed);
        Waiting
    }

    /// Whether this waiter's spin window should go on yielding after its spinning phase: only
    /// while blocked threads, with at least one holder, outnumber the cores. Then the holder
    /// they wait for may be one of ours, preempted, and a yield lets it run; otherwise a yield
    /// only hands the core to other processes (with one core kept busy by another process, two
    /// threads ran 0.57-0.66 M sets/s yielding and 0.87-0.90 M without).
    pub(crate) fn crowded(&self) -> bool {
        // Relaxed: see `WAITING`.
        WAITING.load(Ordering::Relaxed) >= cores()
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        // Relaxed: see `WAITING`.
        WAITING.fetch_sub(1, Ordering::Relaxed);
    }
}

/// More than `CROWD_FACTOR` times the cores blocked at once: spinning cannot pay (the holders
/// they wait for are short of cores already), and with another process on one of the cores a
/// spinner took the only free one from a preempted holder: grant waits of milliseconds and
/// throughput down to a tenth, now and then (`docs/benchmarks-analysis.md`, "Issue 19, second
/// pass"). Then every waiter parks at once. Off by `set_park_when_overcrowded(false)`.
fn overcrowded() -> bool {
    // Relaxed: see `WAITING` and `SPINNING`.
    PARK_WHEN_OVERCROWDED.load(Ordering::Relaxed)
        && WAITING.load(Ordering::Relaxed) > CROWD_FACTOR * cores()
}
const CROWD_FACTOR: usize = 2;

/// A/B knob for `overcrowded` (on by default).
static PARK_WHEN_OVERCROWDED: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(true);

/// Sets whether waiters park at once while more than twice the cores are blocked (the
/// default) or spin as the other limits allow. For A/B measurements.
pub(crate) fn set_park_when_overcrowded(on: bool) {
    // Relaxed: a configuration value (see `SPINNING`).
    PARK_WHEN_OVERCROWDED.store(on, Ordering::Relaxed);
}

/// The cores this process may run on (computed once).
fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// A/B knob: 0, spin windows yield as their caller says (the default); 1, always; 2, never.
static YIELDS: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Sets whether spin windows yield after their spinning phase (`None`: as the caller says,
/// the default; `Some(true)`: always, as before issue 18; `Some(false)`: never). For A/B
/// measurements.
pub(crate) fn set_spin_yields(on: Option<bool>) {
    // Relaxed: a configuration value (see `SPINNING`).
    YIELDS.store(on.map_or(0, |on| if on { 1 } else { 2 }), Ordering::Relaxed);
}

/// A/B knob: whether misses stop spinning.
static ADAPTIVE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// One of the `spin_cap()` spin slots, given back on drop.
struct SpinSlot;

impl SpinSlot {
    fn take() -> Option<SpinSlot> {
        // Relaxed: see `SPINNING`.
        if MISSES.load(Ordering::Relaxed) >= MISS_LIMIT
            && ADAPTIVE.load(Ordering::Relaxed)
            && PROBES.fetch_add(1, Ordering::Relaxed) % PROBE_EVERY != 0
        {
            return None;
        }
        // Relaxed: see `SPINNING`.
        if SPINNING.fetch_add(1, Ordering::Relaxed) < spin_cap() {
            Some(SpinSlot)
        } else {
            SPINNING.fetch_sub(1, Ordering::Relaxed);
            None
        }
    }
}

impl Drop for SpinSlot {
    fn drop(&mut self) {
        // Relaxed: see `SPINNING`.
        SPINNING.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The spin window itself: spins, then yields.
#[inline]
fn spin_window(mut done: impl FnMut() -> bool, deadline: Option<Instant>, yields: bool) -> bool {
    // A first burst without reading the clock: most hand-offs land here.
    for _ in 0..64 {
        if done() {
            return true;
        }
        spin_loop();
    }
    let start = Instant::now();
    // Relaxed: a configuration value (see `SPINNING`).
    let yields = match YIELDS.load(Ordering::Relaxed) {
        0 => yields,
        forced => forced == 1,
    };
    let window = if yields { YIELD_UNTIL } else { SPIN_FOR };
    let until = deadline.map_or(start + window, |d| d.min(start + window));
    loop {
        let now = Instant::now();
        if now >= until {
            return done();
        }
        if now - start < SPIN_FOR {
            for _ in 0..32 {
                if done() {
                    return true;
                }
                spin_loop();
            }
        } else {
            if done() {
                return true;
            }
            thread::yield_now();
        }
    }
}

#[cfg(all(test, not(kds_loom)))]
mod tests {
    use super::*;

    /// While more than twice the cores are blocked, a spin window checks once and returns
    /// (its caller parks), even with a free spin slot; with the limit off it spins.
    #[test]
    fn overcrowded_waiters_park_at_once() {
        // No cap and no adaptation: a spin slot is always free, so only `overcrowded` can
        // stop the window. (Process-wide knobs: other tests only run slower meanwhile.)
        set_spin_cap(Some(usize::MAX));
        let crowd: Vec<Waiting> = (0..=CROWD_FACTOR * cores())
            .map(|_| Waiting::enter())
            .collect();
        let mut checks = 0;
        let won = spin_then_yield(
            || {
                checks += 1;
                false
            },
            None,
            false,
        );
        assert!(!won);
        assert_eq!(checks, 1, "an overcrowded waiter must not spin");
        set_park_when_overcrowded(false);
        let mut checks = 0;
        spin_then_yield(
            || {
                checks += 1;
                false
            },
            None,
            false,
        );
        set_park_when_overcrowded(true);
        set_spin_cap(None);
        drop(crowd);
        assert!(checks > 1, "with the limit off the window spins");
    }
}
