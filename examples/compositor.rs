//! A compositor-style frame loop on tokio, with futures: `cargo run --example compositor`.
//!
//! A client task renders into three buffers in turn (exclusive); a compositor task wakes on
//! every vblank (a 60 Hz tokio interval), takes the newest finished buffer shared and keeps
//! it on screen until the next flip, when the previous one is released. Both sides `await`
//! their sets on one runtime thread, so neither blocks it; a client that gets ahead waits in
//! the FIFO queue of the buffer still on screen.

use kds::{Resource, ResourceSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const FRAMES: usize = 30;

struct Buffer {
    lock: Resource,
    /// The frame drawn into the buffer (stands in for its pixels).
    frame: AtomicUsize,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), kds::Error> {
    let buffers: Arc<Vec<Buffer>> = Arc::new(
        (0..3)
            .map(|_| Buffer {
                lock: Resource::new(),
                frame: AtomicUsize::new(0),
            })
            .collect(),
    );
    let newest = Arc::new(AtomicUsize::new(usize::MAX)); // index of the newest finished buffer

    let client = {
        let (buffers, newest) = (buffers.clone(), newest.clone());
        tokio::spawn(async move {
            for frame in 1..=FRAMES {
                let b = &buffers[frame % buffers.len()];
                // Waits while the compositor still scans this buffer out.
                let guard = ResourceSet::new().exclusive(&b.lock).acquire().await?;
                tokio::time::sleep(Duration::from_millis(10)).await; // "render"
                b.frame.store(frame, Ordering::Release);
                drop(guard);
                newest.store(frame % buffers.len(), Ordering::Release);
            }
            Ok::<(), kds::Error>(())
        })
    };

    let mut vblank = tokio::time::interval(Duration::from_micros(16_667));
    let (mut shown, mut last) = (0, 0);
    let mut on_screen: Option<kds::Guard> = None;
    while last < FRAMES {
        vblank.tick().await;
        let i = newest.load(Ordering::Acquire);
        if i == usize::MAX {
            continue; // nothing rendered yet
        }
        let b = &buffers[i];
        let next = ResourceSet::new().shared(&b.lock).acquire().await?;
        let frame = b.frame.load(Ordering::Acquire);
        assert!(
            frame >= last,
            "frames go back in time: {frame} after {last}"
        );
        if frame != last {
            shown += 1;
            last = frame;
        }
        // Flip: the new buffer is on screen, the previous one is released (the client may
        // draw into it again).
        on_screen = Some(next);
    }
    drop(on_screen);
    client.await.expect("client task panicked")?;
    println!("compositor: {shown} of {FRAMES} frames reached the screen, in order, at 60 Hz");
    Ok(())
}
