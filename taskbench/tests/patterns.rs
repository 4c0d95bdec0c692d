//! Every pattern, small, on both engines and both runners: the schedule is checked by the
//! tasks themselves (each compares what it reads with what its dependencies wrote), and a
//! wrong mapping is caught.

use kds_taskbench::{run, run_mapped, Buffers, Graph, Kernel, Pattern, Runner};

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
fn a_wrong_mapping_is_caught() {
    // One buffer per point: the writer of (p, t) is queued before the readers of (p, t − 1)
    // that follow it in step t, so they read the wrong step, whatever the timing.
    for engine_is_reference in [false, true] {
        let g = Graph::new(Pattern::Stencil1d, 4, 6).unwrap();
        let o = if engine_is_reference {
            run_mapped::<kds::reference::Reference>(&g, KERNEL, Runner::Workers(2), Buffers::Single)
        } else {
            run_mapped::<kds::LockFree>(&g, KERNEL, Runner::Pool, Buffers::Single)
        }
        .unwrap();
        assert!(o.violations > 0, "a wrong schedule went unnoticed");
    }
}

#[test]
fn graph_sizes_match_task_bench() {
    // Task Bench's "Total Tasks" / "Total Dependencies" for these graphs.
    let g = Graph::new(Pattern::Stencil1d, 4, 3).unwrap();
    assert_eq!((g.tasks(), g.edges()), (12, 20));
    let g = Graph::new(Pattern::Tree, 8, 5).unwrap();
    assert_eq!((g.tasks(), g.edges()), (23, 22));
    let g = Graph::new(Pattern::Trivial, 8, 10).unwrap();
    assert_eq!((g.tasks(), g.edges()), (80, 0));
}
