//! A per-thread pool of request allocations, so the queued path allocates nothing in the
//! steady state.
//!
//! A queued request is freed through the epoch: the last of its links to leave its queue
//! defers the release of the engine's reference (`queue::retire`), and those deferred
//! releases run in batches of up to 64 when the epoch advances. Freed that way, 64 requests of
//! one size at once overflow the allocator's per-thread cache (glibc's tcache holds 7 per
//! size), and the next requests are allocated, and these freed, on the allocator's slow paths
//! (`docs/benchmarks-analysis.md`, "Issue 18, first pass": about 490 instructions per queued
//! step). Instead, the release that drops the last reference to a request puts the
//! allocation here, emptied, and `Request::new` takes it back.
//!
//! Only a request nobody else can reach is pooled: `Arc::get_mut` proves it (no other strong
//! or weak count). Its old contents (the waiter, the links, and the resources if the request
//! still held them) are dropped before it is pooled, exactly when a free would have dropped
//! them, so a pooled request keeps nothing alive. Not under loom: the models keep the plain
//! allocation, whose reclamation is what they check.

use super::request::Request;
use std::cell::RefCell;
use std::sync::Arc;

/// Requests kept per thread: one epoch bag's worth. Instructions per pipeline step (append +
/// release behind 10 waiting sets): 32 kept, 2,118; 64, 1,981; 128 and 256, 1,916 (a collection
/// can run more than one bag at once). But a pool lives as long as its thread: with 128, the
/// long-lived threads of the torture run (main, the rayon pool's, a worker) held about 220 KiB
/// at its end, near the memory soak's allowance for what stays allocated.
const KEEP: usize = 64;

std::thread_local! {
    static POOL: RefCell<Vec<Arc<Request>>> = const { RefCell::new(Vec::new()) };
}

/// A pooled request, unique (the caller overwrites it with `Arc::get_mut`), if this thread
/// has one.
#[inline]
pub(super) fn take() -> Option<Arc<Request>> {
    // `try_with`: nothing pooled while the thread's locals are being destroyed.
    POOL.try_with(|p| p.borrow_mut().pop()).ok().flatten()
}

/// Drops `req`, this thread's last reference to it: its allocation goes to the pool if
/// nobody else holds it and the pool has room, else it is freed.
pub(super) fn give_back(mut req: Arc<Request>) {
    let Some(inner) = Arc::get_mut(&mut req) else {
        return; // someone else holds it: their drop frees it
    };
    // Drop the old contents now (the client's waiter, the resources if still held).
    inner.empty();
    // Freed instead when the thread's pool is being destroyed, or already borrowed (if the
    // drops in `empty` ever led back here).
    let _ = POOL.try_with(|p| {
        if let Ok(mut p) = p.try_borrow_mut() {
            if p.len() < KEEP {
                p.push(req);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::Access;
    use crate::delivery::Waiter;
    use crate::engine::{Entry, SetKind};
    use crate::lockfree::queue::Core;

    /// A request over `cores` (the first exclusive), as the engine builds one.
    fn request(cores: &[Arc<Core>]) -> Arc<Request> {
        let entries: Vec<Entry<'_, Core>> = cores
            .iter()
            .enumerate()
            .map(|(i, c)| {
                Entry::new(
                    c,
                    if i == 0 {
                        Access::Exclusive
                    } else {
                        Access::Shared
                    },
                )
            })
            .collect();
        Request::new(&entries, SetKind::SYNC, Waiter::thread())
    }

    #[test]
    fn a_request_nobody_holds_is_emptied_pooled_and_reused() {
        let cores: Vec<Arc<Core>> = (0..6).map(|_| Arc::new(Core::default())).collect();
        while take().is_some() {} // start from an empty pool on this test's thread
        let first = request(&cores);
        let addr = Arc::as_ptr(&first);
        // Each link holds its resource until the request drops its resources.
        assert!(cores.iter().all(|c| Arc::strong_count(c) == 2));
        give_back(first);
        // Emptied: the resources are given back, no link is left.
        assert!(cores.iter().all(|c| Arc::strong_count(c) == 1));
        // Reused: the same allocation, filled for the new set (more links than inline).
        let second = request(&cores);
        assert_eq!(Arc::as_ptr(&second), addr);
        assert_eq!(second.links.len(), 6);
        assert!(second.links.iter().all(|l| ptr_eq_request(l, addr)));
        assert!(second.links[0].exclusive && !second.links[5].exclusive);
        assert!(cores.iter().all(|c| Arc::strong_count(c) == 2));
        drop(second);
        assert!(cores.iter().all(|c| Arc::strong_count(c) == 1));
    }

    fn ptr_eq_request(link: &crate::lockfree::queue::Link, req: *const Request) -> bool {
        std::ptr::eq(link.request, req)
    }

    #[test]
    fn a_request_still_held_is_not_pooled() {
        let cores = vec![Arc::new(Core::default())];
        while take().is_some() {}
        let req = request(&cores);
        let kept = Arc::clone(&req);
        give_back(req);
        assert!(take().is_none(), "pooled while another reference lives");
        assert_eq!(Arc::strong_count(&kept), 1);
        drop(kept);
        assert_eq!(Arc::strong_count(&cores[0]), 1);
    }
}
