//! The mutex reference engine: the seed's design, one global mutex over per-resource FIFO
//! queues.
//!
//! It is the baseline every benchmark compares against and the oracle of the differential
//! tests (`kds::reference::*` is the front end over it), so it is kept simple and obviously
//! correct: every operation takes the one global lock, edits plain queues, re-evaluates the
//! trigger rule on each queue it touched, and lets go. Grants found under the lock are pushed
//! to the thread's delivery queue and delivered after the lock is released (spec rule 9).
//!
//! Where the 2012 code was wrong, this follows the spec: a pending exclusive link cancelled
//! from between shared links triggers the shared links behind it (rule 3), sync-locked state
//! is a count of sync links (rule 8), and a grant racing a cancellation is decided under the
//! lock, once (rule 5).

use crate::access::{Access, Locked};
use crate::delivery::{self, Waited, Waiter};
use crate::engine::{Engine, Enqueued, Entry, Ops, SetKind};
use crate::error::Error;
use slab::Slab;
use smallvec::SmallVec;
use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// The reference engine (a type-level marker); `kds::reference::*` uses it.
#[derive(Debug)]
pub struct Reference;

/// Everything the global lock protects.
struct Registry {
    queues: Slab<Queue>,
    requests: Slab<Queued>,
    /// During an enqueue: the key of the request being enqueued, whose own grant is returned
    /// to its caller (`Enqueued::GrantedNow`) rather than queued for delivery.
    enqueuing: Option<usize>,
    granted_now: bool,
}

/// One resource's FIFO queue.
#[derive(Default)]
struct Queue {
    links: VecDeque<Link>,
    /// Links of sync sets in `links`: the resource is sync-locked while this is non-zero.
    sync_links: usize,
}

struct Link {
    request: usize,
    exclusive: bool,
    triggered: bool,
}

/// A request while it has links queued.
struct Queued {
    request: Arc<Request>,
    untriggered: usize,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    queues: Slab::new(),
    requests: Slab::new(),
    enqueuing: None,
    granted_now: false,
});

fn lock() -> MutexGuard<'static, Registry> {
    // Nothing panics while holding the lock, so poisoning can only come from a bug elsewhere;
    // the registry's invariants hold between operations either way.
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// A resource of the reference engine: its slot in the registry.
pub struct Core {
    key: usize,
}

impl Default for Core {
    fn default() -> Self {
        Core {
            key: lock().queues.insert(Queue::default()),
        }
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        // No link can be queued: every queued request holds this core alive.
        lock().queues.remove(self.key);
    }
}

/// A request of the reference engine.
pub struct Request {
    /// Its resources (a strong count of each) and modes, in set order.
    entries: SmallVec<[(Arc<Core>, Access); 4]>,
    kind: SetKind,
    /// Key in `Registry::requests` while queued.
    key: AtomicUsize,
    granted: AtomicBool,
    waiter: Waiter<Request>,
}

impl Waited for Request {
    fn waiter(&self) -> &Waiter<Request> {
        &self.waiter
    }
}

impl Registry {
    /// Re-applies the trigger rule (spec rule 2) to one queue, granting what completes.
    fn evaluate(&mut self, queue: usize) {
        let Registry {
            queues,
            requests,
            enqueuing,
            granted_now,
        } = self;
        let mut any_ahead = false;
        let mut exclusive_ahead = false;
        for link in queues[queue].links.iter_mut() {
            let eligible = if link.exclusive {
                !any_ahead
            } else {
                !exclusive_ahead
            };
            if !eligible {
                break;
            }
            if !link.triggered {
                link.triggered = true;
                let queued = &mut requests[link.request];
                queued.untriggered -= 1;
                if queued.untriggered == 0 {
                    if *enqueuing == Some(link.request) {
                        mark_granted(&queued.request);
                        *granted_now = true;
                    } else {
                        grant(&queued.request);
                    }
                }
            }
            any_ahead = true;
            exclusive_ahead |= link.exclusive;
        }
    }

    /// Removes a queued request's links and re-evaluates its queues; returns the registry's
    /// reference to the request, to be dropped after the lock is released.
    fn remove(&mut self, req: &Request) -> Arc<Request> {
        let key = req.key.load(Ordering::Relaxed); // Relaxed: written under this same lock.
        let queued = self.requests.remove(key);
        for (core, _) in &req.entries {
            let queue = &mut self.queues[core.key];
            let at = queue.links.iter().position(|l| l.request == key);
            queue
                .links
                .remove(at.expect("a queued request has a link on each of its resources"));
            if req.kind.sync {
                queue.sync_links -= 1;
            }
            self.evaluate(core.key);
        }
        queued.request
    }
}

fn mark_granted(req: &Request) {
    // Release: paired with `is_granted`'s Acquire load outside the lock.
    req.granted.store(true, Ordering::Release);
}

fn grant(req: &Arc<Request>) {
    mark_granted(req);
    delivery::push(Arc::clone(req));
}

impl Engine for Reference {
    const NAME: &'static str = "reference";
}

// Crate-private parameter types in a sealed trait: see `engine::sealed`.
#[allow(private_interfaces)]
impl Ops for Reference {
    type Core = Core;
    type Request = Request;

    fn new_request(
        entries: &[Entry<'_, Core>],
        kind: SetKind,
        waiter: Waiter<Request>,
    ) -> Arc<Request> {
        Arc::new(Request {
            entries: entries
                .iter()
                .map(|entry| (entry.to_arc(), entry.access()))
                .collect(),
            kind,
            key: AtomicUsize::new(usize::MAX),
            granted: AtomicBool::new(false),
            waiter,
        })
    }

    fn enqueue(req: &Arc<Request>) -> Result<Enqueued, Error> {
        let mut reg = lock();
        let sync_locked = |reg: &Registry, core: &Core| reg.queues[core.key].sync_links > 0;
        if req.kind.policy == Locked::Fail && req.entries.iter().any(|(c, _)| sync_locked(&reg, c))
        {
            return Err(Error::Busy);
        }
        if req.kind.sync
            && req
                .entries
                .iter()
                .any(|(c, _)| reg.queues[c.key].sync_links == usize::MAX)
        {
            return Err(Error::Overflow);
        }
        if req.entries.is_empty() {
            mark_granted(req);
            return Ok(Enqueued::GrantedNow);
        }
        // Ignore policy: decided before this request's own links are queued.
        let forced: SmallVec<[bool; 4]> = req
            .entries
            .iter()
            .map(|(c, _)| req.kind.policy == Locked::Ignore && sync_locked(&reg, c))
            .collect();
        let key = reg.requests.insert(Queued {
            request: Arc::clone(req),
            untriggered: req.entries.len() - forced.iter().filter(|f| **f).count(),
        });
        req.key.store(key, Ordering::Relaxed); // Relaxed: read only under this same lock.
        for ((core, access), forced) in req.entries.iter().zip(&forced) {
            let queue = &mut reg.queues[core.key];
            queue.links.push_back(Link {
                request: key,
                exclusive: *access == Access::Exclusive,
                triggered: *forced,
            });
            if req.kind.sync {
                queue.sync_links += 1;
            }
        }
        reg.enqueuing = Some(key);
        reg.granted_now = reg.requests[key].untriggered == 0;
        if reg.granted_now {
            mark_granted(req);
        }
        for (core, _) in &req.entries {
            reg.evaluate(core.key);
        }
        reg.enqueuing = None;
        Ok(if reg.granted_now {
            Enqueued::GrantedNow
        } else {
            Enqueued::Queued
        })
    }

    unsafe fn release(req: &Arc<Request>) {
        // The caller's contract: `req` is granted, and released once, so its links are queued.
        if req.entries.is_empty() {
            return;
        }
        let mut reg = lock();
        let ours = reg.remove(req);
        drop(reg);
        drop(ours);
    }

    fn cancel(req: &Arc<Request>) -> bool {
        let mut reg = lock();
        // Relaxed: `granted` is written under this same lock.
        if req.granted.load(Ordering::Relaxed) {
            return false;
        }
        let ours = reg.remove(req);
        drop(reg);
        drop(ours);
        true
    }

    fn is_granted(req: &Request) -> bool {
        // Acquire: pairs with the Release store in `mark_granted`.
        req.granted.load(Ordering::Acquire)
    }

    fn fmt_core(core: &Core, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reg = lock();
        let queue = &reg.queues[core.key];
        f.debug_struct("Queue")
            .field("links", &queue.links.len())
            .field("sync_links", &queue.sync_links)
            .finish()
    }
}
