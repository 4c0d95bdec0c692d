//! Every pattern, small, on both engines and both runners: the schedule is checked by the
//! tasks themselves (each compares what it reads with what its dependencies wrote), and a
//! wrong mapping is caught.

use kds_taskbench::{run, run_with, Buffers, Graph, Kernel, Options, Pattern, Runner, Submitter};

const KERNEL: Kernel = Kernel::ComputeBound { iterations: 16 };

fn graphs() -> Vec<Graph> {
    let mut out = Vec::new();
    for pattern in Pattern::ALL {
        for width in [2, 5, 8] {
            let mut g = Graph::new(pattern, width, 24).unwrap_or_else(|_| {
                // spread on a narrow graph: Task Bench wants a shorter period
                Graph {
                    period: 1,
                    ..Graph::new(Pattern::RandomNearest, width, 24).unwrap()
                }
            });
            g.pattern = pattern;
            if matches!(pattern, Pattern::Nearest | Pattern::Spread) && width >= 5 {
                g.radix = 5;
                g.period = 1;
            }
            out.push(g.checked().unwrap());
        }
    }
    out
}

#[test]
fn every_pattern_runs_in_dependency_order_on_the_lock_free_engine() {
    for g in graphs() {
        for runner in [Runner::Pool, Runner::Workers(2)] {
            let o = run::<kds::LockFree>(&g, KERNEL, runner).unwrap();
            assert_eq!(
                o.violations, 0,
                "{} width {} on {runner:?}",
                g.pattern, g.width
            );
            assert_eq!(o.tasks, g.tasks());
            assert_eq!(o.flops, g.tasks() * KERNEL.flops());
        }
    }
}

#[test]
fn every_pattern_runs_in_dependency_order_on_the_reference() {
    for g in graphs() {
        for runner in [Runner::Pool, Runner::Workers(2)] {
            let o = run::<kds::reference::Reference>(&g, KERNEL, runner).unwrap();
            assert_eq!(
                o.violations, 0,
                "{} width {} on {runner:?}",
                g.pattern, g.width
            );
        }
    }
}

#[test]
fn a_submission_window_keeps_the_order() {
    // The submitter waits whenever 4 tasks are in flight: many waits, same schedule.
    for pattern in [Pattern::Stencil1d, Pattern::Fft, Pattern::Tree] {
        let g = Graph::new(pattern, 8, 40).unwrap();
        let options = Options {
            window: Some(4),
            ..Options::on(Runner::Pool)
        };
        let o = run_with::<kds::LockFree>(&g, KERNEL, options).unwrap();
        assert_eq!((o.violations, o.tasks), (0, g.tasks()), "{pattern}");
        let o = run_with::<kds::reference::Reference>(&g, KERNEL, options).unwrap();
        assert_eq!((o.violations, o.tasks), (0, g.tasks()), "{pattern}");
    }
}

#[test]
fn a_pool_thread_submits_and_runs_tasks_while_throttled() {
    // The submitter is one of the pool's threads: throttled at 4 tasks in flight, it runs
    // tasks itself until they have halved.
    for pattern in Pattern::ALL {
        let g = Graph::new(pattern, 8, 30).unwrap();
        let options = Options {
            window: Some(4),
            submitter: Submitter::PoolThread,
            ..Options::on(Runner::Pool)
        };
        let o = run_with::<kds::LockFree>(&g, KERNEL, options).unwrap();
        assert_eq!((o.violations, o.tasks), (0, g.tasks()), "{pattern}");
    }
    let workers = Options {
        submitter: Submitter::PoolThread,
        ..Options::on(Runner::Workers(2))
    };
    let g = Graph::new(Pattern::Trivial, 2, 2).unwrap();
    assert!(matches!(
        run_with::<kds::LockFree>(&g, KERNEL, workers),
        Err(kds::Error::BadSet(_))
    ));
}

#[test]
fn a_wrong_mapping_is_caught() {
    // One buffer per point: the writer of (p, t) is queued before the readers of (p, t − 1)
    // that follow it in step t, so they read the wrong step, whatever the timing.
    for engine_is_reference in [false, true] {
        let g = Graph::new(Pattern::Stencil1d, 4, 6).unwrap();
        let single = |runner| Options {
            mapping: Buffers::Single,
            ..Options::on(runner)
        };
        let o = if engine_is_reference {
            run_with::<kds::reference::Reference>(&g, KERNEL, single(Runner::Workers(2)))
        } else {
            run_with::<kds::LockFree>(&g, KERNEL, single(Runner::Pool))
        }
        .unwrap();
        assert!(o.violations > 0, "a wrong schedule went unnoticed");
    }
}

#[test]
fn graph_sizes_match_task_bench() {
    // "Total Tasks" and "Total Dependencies" as Task Bench's own OpenMP driver printed them
    // (at bf4ad19; `-steps 50 -width 8` unless said): the same graphs, edge for edge.
    // random_nearest's edges come from SipHash, so its counts check the hash too.
    let g = |pattern, width, steps, radix, period| {
        let mut g = Graph::new(Pattern::Trivial, width, steps).unwrap();
        g.pattern = pattern;
        g.radix = radix;
        g.period = period;
        g.checked().unwrap()
    };
    let cases = [
        (g(Pattern::Stencil1d, 4, 3, 3, 0), 12, 20),
        (g(Pattern::Stencil1dPeriodic, 8, 50, 3, 0), 400, 1176),
        (g(Pattern::Tree, 8, 50, 3, 0), 383, 382),
        (g(Pattern::Fft, 8, 50, 3, 0), 400, 950),
        (g(Pattern::Nearest, 8, 50, 5, 0), 400, 1666),
        (g(Pattern::Spread, 8, 50, 5, 1), 400, 1960),
        (g(Pattern::Spread, 5, 50, 3, 2), 250, 735),
        (g(Pattern::RandomNearest, 8, 50, 3, 3), 400, 555),
        (g(Pattern::RandomNearest, 8, 50, 5, 3), 400, 684),
        (g(Pattern::RandomNearest, 13, 31, 5, 3), 403, 690),
    ];
    for (graph, tasks, edges) in cases {
        assert_eq!(
            (graph.tasks(), graph.edges()),
            (tasks, edges),
            "{} width {} radix {}",
            graph.pattern,
            graph.width,
            graph.radix
        );
    }
}
