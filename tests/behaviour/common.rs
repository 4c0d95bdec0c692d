//! What every rule group uses: the engine-generic names, a request whose grant a test can
//! watch and release ([`Slot`]), and the macro that runs each test once per engine.

pub use crate::support::{merged_modes, Rng, Shadow};
pub use kds::generic::{Guard, Pending, Resource, ResourceSet};
pub use kds::{Access, Dispatch, Engine, Error, Interrupt, Locked, Worker};
pub use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
pub use std::sync::{Arc, Mutex};
pub use std::thread;
pub use std::time::Duration;

/// Runs each generic test once per engine: `on_both_engines!(a, b)` in a rule group's file
/// makes the tests `lockfree::a`, `reference::a`, `lockfree::b`, ... (attributes written
/// before a name, such as `#[cfg_attr(miri, ignore = "..")]`, go to both).
macro_rules! on_both_engines {
    ($($(#[$attr:meta])* $test:ident),* $(,)?) => {
        mod lockfree {
            $( $(#[$attr])* #[test] fn $test() { super::$test::<kds::LockFree>() } )*
        }
        mod reference {
            $( $(#[$attr])* #[test] fn $test() { super::$test::<kds::reference::Reference>() } )*
        }
    };
}

/// An async request whose direct callback parks its guard here, so a test can see which sets
/// are granted after each step and release them one by one.
pub struct Slot<E: Engine> {
    guard: Arc<Mutex<Option<Guard<'static, E>>>>,
    grants: Arc<AtomicUsize>,
    pending: Option<Pending<E>>,
}

impl<E: Engine> Slot<E> {
    pub fn new(set: &ResourceSet<'_, E>) -> Slot<E> {
        Slot::try_new(set).expect("request refused")
    }

    pub fn try_new(set: &ResourceSet<'_, E>) -> Result<Slot<E>, Error> {
        let guard = Arc::new(Mutex::new(None));
        let grants = Arc::new(AtomicUsize::new(0));
        let (g, n) = (guard.clone(), grants.clone());
        let pending = set.on_grant(Dispatch::Direct, move |guard| {
            n.fetch_add(1, SeqCst);
            *g.lock().unwrap() = Some(guard);
        })?;
        Ok(Slot {
            guard,
            grants,
            pending: Some(pending),
        })
    }

    pub fn granted(&self) -> bool {
        let n = self.grants.load(SeqCst);
        assert!(n <= 1, "granted {n} times");
        n == 1
    }

    pub fn release(&self) {
        let guard = self
            .guard
            .lock()
            .unwrap()
            .take()
            .expect("release of a set not granted");
        drop(guard);
    }

    pub fn cancel(&mut self) -> bool {
        self.pending.take().unwrap().cancel()
    }
}

/// `n` new resources.
pub fn res<E: Engine>(n: usize) -> Vec<Resource<E>> {
    (0..n).map(|_| Resource::new()).collect()
}

/// `resource` is free for an exclusive user right now (and nothing is left queued on it).
pub fn is_free<E: Engine>(resource: &Resource<E>) -> bool {
    ResourceSet::new().exclusive(resource).try_acquire().is_ok()
}

/// Client data (a captured value, a waker, a panic payload) whose `Drop` panics, unless the
/// thread is already unwinding.
pub struct PanicOnDrop;

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        if !thread::panicking() {
            panic!("client data panics on drop (expected by the test)");
        }
    }
}

impl std::task::Wake for PanicOnDrop {
    fn wake(self: Arc<Self>) {}
}
