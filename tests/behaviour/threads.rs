//! Many threads on few and many resources: mutual exclusion (shadow counters) on every request path.

use crate::common::*;

/// `threads` threads, each `rounds` random sets of 1 to 3 of `resources` resources, taken by
/// every request path (wait, a timed wait, a direct or worker callback that may be
/// cancelled, a future), each grant checked against the shadow counters.
fn torture<E: Engine>(threads: usize, resources: usize, rounds: usize) {
    let r = Arc::new(res::<E>(resources));
    let shadow = Arc::new(Shadow::new(resources));
    let worker = Worker::spawn("kds-torture").unwrap();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (r, shadow, worker) = (r.clone(), shadow.clone(), worker.clone());
            thread::spawn(move || {
                let mut rng = Rng::new(0x9e37_79b9 * (t as u64 + 1));
                for _ in 0..rounds {
                    let k = 1 + rng.below(3) as usize;
                    let mut set = ResourceSet::new();
                    let mut picked = Vec::new();
                    for _ in 0..k {
                        let i = rng.below(r.len() as u64) as usize;
                        let excl = rng.below(2) == 0;
                        set = set.access(
                            &r[i],
                            if excl {
                                Access::Exclusive
                            } else {
                                Access::Shared
                            },
                        );
                        picked.push((i, excl));
                    }
                    let modes = merged_modes(picked);
                    let check = {
                        let shadow = shadow.clone();
                        move |modes: &[(usize, bool)]| {
                            shadow.enter(modes).unwrap();
                            shadow.leave(modes);
                        }
                    };
                    match rng.below(5) {
                        0 | 1 => {
                            let g = set.wait().unwrap();
                            check(&modes);
                            drop(g);
                        }
                        2 => {
                            let timeout = Duration::from_micros(rng.below(200));
                            if let Ok(g) = set.wait_timeout(timeout) {
                                check(&modes);
                                drop(g);
                            }
                        }
                        3 => {
                            let (tx, rx) = std::sync::mpsc::channel();
                            let dispatch = if rng.below(2) == 0 {
                                Dispatch::Direct
                            } else {
                                Dispatch::Worker(worker.clone())
                            };
                            let (modes2, check2) = (modes.clone(), check.clone());
                            let p = set
                                .on_grant(dispatch, move |g| {
                                    check2(&modes2);
                                    drop(g);
                                    let _ = tx.send(());
                                })
                                .unwrap();
                            if rng.below(2) == 0 && p.cancel() {
                                assert!(rx.try_recv().is_err());
                            } else {
                                rx.recv().unwrap();
                            }
                        }
                        _ => {
                            let g = futures_executor::block_on(set.acquire()).unwrap();
                            check(&modes);
                            drop(g);
                        }
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    shadow.all_free().unwrap();
    assert!(r.iter().all(is_free));
}

fn many_threads_on_few_resources_keep_mutual_exclusion<E: Engine>() {
    torture::<E>(6, 3, if cfg!(miri) { 10 } else { 1500 });
}

fn many_threads_on_many_resources<E: Engine>() {
    torture::<E>(4, 16, if cfg!(miri) { 10 } else { 1500 });
}

on_both_engines!(
    many_threads_on_few_resources_keep_mutual_exclusion,
    many_threads_on_many_resources,
);
