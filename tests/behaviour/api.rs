//! The public types: thread-safety, errors, and what only one engine shows.

use kds::{Error, Resource, ResourceSet};

/// Public types are Send + Sync where a driver needs them to be.
#[test]
fn public_types_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<kds::Resource>();
    send_sync::<kds::ResourceSet<'static>>();
    send_sync::<kds::Guard<'static>>();
    send_sync::<kds::Pending>();
    send_sync::<kds::Worker>();
    send_sync::<kds::Interrupt>();
    send_sync::<kds::Error>();
    send::<kds::Acquire<'static>>();
    send_sync::<kds::reference::Resource>();
    send_sync::<kds::reference::ResourceSet<'static>>();
    send_sync::<kds::reference::Guard<'static>>();
    send_sync::<kds::reference::Pending>();
    send::<kds::reference::Acquire<'static>>();
}

#[test]
fn errors_display_and_are_std_errors() {
    let all = [
        Error::Timeout,
        Error::Interrupted,
        Error::Busy,
        Error::WouldBlock,
        Error::BadSet("x"),
        Error::Overflow,
        Error::Spawn(std::io::ErrorKind::Other),
    ];
    let texts: Vec<String> = all.iter().map(|e| e.to_string()).collect();
    for (i, a) in texts.iter().enumerate() {
        assert!(!a.is_empty());
        for b in &texts[i + 1..] {
            assert_ne!(a, b, "two errors read the same");
        }
    }
    let _: &dyn std::error::Error = &all[0];
}

/// A worker name a thread cannot have is refused with `Error::Spawn`, not a panic.
#[test]
fn worker_name_with_a_nul_byte_is_refused() {
    assert_eq!(
        kds::Worker::spawn("bad\0name").unwrap_err(),
        Error::Spawn(std::io::ErrorKind::InvalidInput)
    );
    assert!(
        kds::Worker::spawn("").is_ok(),
        "an empty name is a valid thread name"
    );
}

/// Lock-free engine, long queues: waiters that give up while a holder keeps the resource do
/// not pile up in its queue (the removed links left inside it are swept every time they reach
/// half the live links); everyone left is granted once the holder releases.
#[test]
fn lockfree_cancelled_waiters_do_not_pile_up_behind_a_holder() {
    use kds::Dispatch;
    use std::time::Duration;
    let removed_links = |r: &Resource| -> usize {
        let dump = format!("{r:?}");
        let at = dump.find("removed_links: ").expect("the queue's Debug") + "removed_links: ".len();
        dump[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let r = Resource::new();
    let holder = ResourceSet::new().exclusive(&r).wait().unwrap();
    let n = if cfg!(miri) { 20 } else { 1000 };
    let waiting: Vec<_> = (0..n)
        .map(|_| {
            ResourceSet::new()
                .exclusive(&r)
                .on_grant(Dispatch::Direct, drop)
                .unwrap()
        })
        .collect();
    // Waiters time out at the tail, over and over, while the holder holds.
    for _ in 0..n {
        let late = ResourceSet::new()
            .exclusive(&r)
            .wait_timeout(Duration::ZERO);
        assert_eq!(late.unwrap_err(), Error::Timeout);
    }
    let mut waiting = waiting;
    // And requests are withdrawn from the middle.
    let cancelled: Vec<_> = (0..n / 4).map(|i| waiting.remove(n / 2 - i)).collect();
    for p in cancelled {
        assert!(p.cancel());
    }
    // At most half the live links (and at least 8) are removed links left inside the queue,
    // not one per cancel: `n` timeouts and `n / 4` cancels would leave `5 n / 4`.
    assert!(
        removed_links(&r) <= n / 2 + 8,
        "removed links pile up: {r:?}"
    );
    drop(holder);
    assert!(waiting.iter().all(|p| p.is_granted()));
    assert!(ResourceSet::new().exclusive(&r).try_acquire().is_ok());
}

/// Lock-free engine: a resource's `Debug` lists its queue's links in order with their state,
/// so a stall's dump tells a link never triggered from a grant never delivered.
#[test]
fn lockfree_queue_debug_shows_each_link() {
    use kds::{Dispatch, Locked};
    use std::sync::{Arc, Mutex};
    let r = Resource::new();
    let kept = Arc::new(Mutex::new(None));
    let keep = kept.clone();
    // The Fail policy never takes the fast path: the first set is granted through the queue.
    let first = ResourceSet::new()
        .exclusive(&r)
        .locked(Locked::Fail)
        .on_grant(Dispatch::Direct, move |g| *keep.lock().unwrap() = Some(g))
        .unwrap();
    assert!(first.is_granted());
    let second = ResourceSet::new()
        .shared(&r)
        .on_grant(Dispatch::Direct, drop)
        .unwrap();
    let dump = format!("{r:?}");
    // The holder: exclusive, triggered early (at its append), live, granted, delivered; behind
    // it a shared link not yet triggered (sealed), of a live request.
    assert!(dump.contains(r#"links: "XeL+d SsL""#), "{dump}");
    drop(kept.lock().unwrap().take());
    assert!(second.is_granted());
}
