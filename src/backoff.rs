//! Waiting a little without parking: a blocked thread, or a [`Worker`](crate::Worker) that
//! just ran a callback, spins and then yields for a few microseconds before it parks, because
//! the next grant often comes that soon and a park/unpark hand-off costs about 20 µs.

use crate::sync::{spin_loop, thread};
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

/// Waits for `done` without parking: spins, then yields, for at most `YIELD_UNTIL` (and not
/// past `deadline`). `true` if `done` came true. Under loom: one check and one yield, since
/// loom explores every yield and has no clock.
#[inline]
pub(crate) fn spin_then_yield(mut done: impl FnMut() -> bool, deadline: Option<Instant>) -> bool {
    if cfg!(kds_loom) {
        if done() {
            return true;
        }
        spin_loop();
        return done();
    }
    // A first burst without reading the clock: most hand-offs land here.
    for _ in 0..64 {
        if done() {
            return true;
        }
        spin_loop();
    }
    let start = Instant::now();
    let until = deadline.map_or(start + YIELD_UNTIL, |d| d.min(start + YIELD_UNTIL));
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
