//! kds-dmabuf's costs on simulated buffers, on any host (the real dma-buf figures come from
//! the hwtest guests: `docs/dmabuf.md`):
//!
//! - `uncontended/*`: `try_acquire` + release of k free buffers with no fence pending (kds's
//!   fast path plus one `poll` over the fences) beside the same plain kds set;
//! - `signal-to-grant/*`: a set that kds granted and that waits for a fence, from the
//!   fence's signal to the client having the guard: through the reactor to a direct
//!   callback, on to a worker, to a future, and a blocking `wait` polling in its own thread.
//!
//! `cargo bench -p kds-dmabuf --bench grant`; `KDS_BENCH_QUICK=1` for a smoke run.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use kds::{Dispatch, ResourceSet, Worker};
use kds_dmabuf::{DmaBuf, DmaBufSet, SimFence};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

fn quick() -> bool {
    std::env::var_os("KDS_BENCH_QUICK").is_some()
}

fn config() -> Criterion {
    let c = Criterion::default();
    if quick() {
        c.warm_up_time(Duration::from_millis(20))
            .measurement_time(Duration::from_millis(50))
            .sample_size(10)
    } else {
        c.warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3))
            .sample_size(20)
    }
}

fn uncontended(c: &mut Criterion) {
    let mut g = c.benchmark_group("uncontended");
    for k in [1usize, 2, 4] {
        let bufs: Vec<DmaBuf> = (0..k).map(|_| DmaBuf::simulated()).collect();
        // One signalled fence per buffer: the check polls something, as on a real buffer.
        for b in &bufs {
            let f = SimFence::new().unwrap();
            f.signal();
            b.sim_attach(f.as_fd(), true).unwrap();
        }
        let set = bufs.iter().fold(DmaBufSet::new(), |s, b| s.exclusive(b));
        g.bench_function(BenchmarkId::new("dmabuf-sim", k), |b| {
            b.iter(|| drop(set.try_acquire().unwrap()))
        });
        let plain = bufs
            .iter()
            .fold(ResourceSet::new(), |s, b| s.exclusive(b.resource()));
        g.bench_function(BenchmarkId::new("kds", k), |b| {
            b.iter(|| drop(plain.try_acquire().unwrap()))
        });
    }
    g.finish();
}

/// Nanoseconds since a fixed origin, shared between threads.
fn now_ns(origin: Instant) -> u64 {
    origin.elapsed().as_nanos() as u64
}

fn signal_to_grant(c: &mut Criterion) {
    let mut g = c.benchmark_group("signal-to-grant");
    let origin = Instant::now();
    let worker = Worker::spawn("bench-display").unwrap();
    for (name, dispatch) in [
        ("direct (reactor)", Some(Dispatch::Direct)),
        ("worker", Some(Dispatch::Worker(worker.clone()))),
        ("future", None),
    ] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let buf = DmaBuf::simulated();
                    let fence = SimFence::new().unwrap();
                    buf.sim_attach(fence.as_fd(), true).unwrap();
                    let granted = Arc::new(AtomicU64::new(0));
                    let (tx, rx) = mpsc::channel();
                    let signalled = match &dispatch {
                        Some(d) => {
                            let at = granted.clone();
                            let p = DmaBufSet::new()
                                .exclusive(&buf)
                                .on_grant(d.clone(), move |g| {
                                    at.store(now_ns(origin), Ordering::SeqCst);
                                    drop(g);
                                    tx.send(()).unwrap();
                                })
                                .unwrap();
                            // A worker's kds grant reaches it a little later: signal
                            // once the set waits for the fence.
                            while !p.is_waiting_for_fences() {
                                std::thread::yield_now();
                            }
                            let t = now_ns(origin);
                            fence.signal();
                            rx.recv().unwrap();
                            t
                        }
                        None => {
                            // The future, polled by a blocking executor on another thread.
                            let (buf2, at) = (buf.clone(), granted.clone());
                            let waiter = std::thread::spawn(move || {
                                let fut = DmaBufSet::new().exclusive(&buf2).acquire();
                                tx.send(()).unwrap();
                                let g = futures_executor::block_on(fut).unwrap();
                                at.store(now_ns(origin), Ordering::SeqCst);
                                drop(g);
                            });
                            rx.recv().unwrap();
                            std::thread::sleep(Duration::from_micros(200)); // parked in the future
                            let t = now_ns(origin);
                            fence.signal();
                            waiter.join().unwrap();
                            t
                        }
                    };
                    total += Duration::from_nanos(granted.load(Ordering::SeqCst) - signalled);
                }
                total
            })
        });
    }
    // A blocking wait in its own thread: its `poll` of the sync file returns.
    g.bench_function("blocking wait (poll)", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let buf = DmaBuf::simulated();
                let fence = Arc::new(SimFence::new().unwrap());
                buf.sim_attach(fence.as_fd(), true).unwrap();
                let signalled = Arc::new(AtomicU64::new(0));
                let (f, s) = (fence.clone(), signalled.clone());
                let signaller = std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_micros(200));
                    s.store(now_ns(origin), Ordering::SeqCst);
                    f.signal();
                });
                let g = DmaBufSet::new().exclusive(&buf).wait().unwrap();
                let at = now_ns(origin);
                drop(g);
                signaller.join().unwrap();
                total += Duration::from_nanos(at - signalled.load(Ordering::SeqCst));
            }
            total
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = uncontended, signal_to_grant
}
criterion_main!(benches);
