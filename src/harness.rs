//! The one door to internals for this repository's own checks (the fuzz harness crate
//! `kds-fuzzing`, the torture run, the loom models, the benchmarks): not part of the API, hidden from the
//! docs, and free to change.

use crate::engine::Engine;
use crate::resource::Resource;
use std::any::Any;
use std::sync::Weak;

/// Whether a resource's state is still alive: every handle, set and queued link of it keeps
/// it (rule 10), so once all of those are gone it must be freed (nothing leaked).
pub struct WeakResource(Weak<dyn Any + Send + Sync>);

impl WeakResource {
    /// Watches `resource`'s state.
    pub fn new<E: Engine>(resource: &Resource<E>) -> WeakResource {
        let weak: Weak<E::Core> = std::sync::Arc::downgrade(&resource.core);
        WeakResource(weak)
    }

    /// Whether anything still keeps the state alive.
    pub fn is_alive(&self) -> bool {
        self.0.strong_count() > 0
    }
}

/// Hands the calling thread's deferred frees to the global collector and lets the epoch move
/// on: the lock-free engine gives a released set's resources back through crossbeam-epoch.
pub fn flush_deferred_frees() {
    crate::sync::hand_off_deferred_frees();
}

/// Loom models only: the tail hint and the async fast path switches (see `lockfree`).
#[cfg(kds_loom)]
pub use crate::lockfree::{loom_async_fast, loom_hint_min};

/// How many blocked threads may spin at once before parking (`None`: the default, the cores
/// less one; `Some(0)`: none; `Some(usize::MAX)`: no limit, and spinning does not pause
/// after misses). For the A/B runs of `benches/contention.rs`.
pub fn set_spin_cap(cap: Option<usize>) {
    crate::backoff::set_spin_cap(cap);
}

/// Whether a blocked thread's spin window yields after its spinning phase before it parks
/// (`None`: only while blocked threads outnumber the cores, the default; `Some(true)`: always;
/// `Some(false)`: never). For the A/B runs of `benches/contention.rs`.
pub fn set_spin_yields(on: Option<bool>) {
    crate::backoff::set_spin_yields(on);
}

/// Whether waiters park at once while more than twice the cores are blocked (`true`, the
/// default) or spin as the other limits allow (`false`, as before issue 19's second pass).
/// For the A/B runs of `benches/contention.rs`.
pub fn set_park_when_overcrowded(on: bool) {
    crate::backoff::set_park_when_overcrowded(on);
}
