//! `kds-taskbench`: runs one Task Bench graph on kds and prints Task Bench's report lines.
//!
//! ```text
//! kds-taskbench -type stencil_1d -width 8 -steps 1000 -kernel compute_bound -iter 256 \
//!     -worker 2 [-engine lock-free|reference] [-runner pool|workers] [-window N]
//!     [-submitter caller|pool] [-radix N] [-period N] [-fraction F]
//! ```
//!
//! The flags are Task Bench's (`-type`, `-width`, `-steps`, `-radix`, `-period`, `-fraction`,
//! `-kernel empty|compute_bound`, `-iter`, `-worker`), plus `-engine`, `-runner`, `-window`
//! (tasks in flight before the submitter waits; 0: no limit, the default for `-submitter caller`;
//! 64 per worker for `-submitter pool`) and `-submitter` (`caller`, the default: the main
//! thread; `pool`: one of the pool's threads, which runs tasks while it waits). Exits 1
//! if the schedule was wrong (a task read another step's output), 2 on bad arguments.

use kds_taskbench::{run_with, Graph, Kernel, Options, Outcome, Pattern, Runner, Submitter};
use std::process::ExitCode;

struct Args {
    graph: Graph,
    kernel: Kernel,
    workers: usize,
    engine: String,
    runner: String,
    /// `-window` as given (0: no limit); `None`: the submitter's default.
    window: Option<u64>,
    submitter: String,
}

fn parse() -> Result<Args, String> {
    let mut pattern = Pattern::Trivial;
    let (mut width, mut steps) = (4, 4);
    let (mut radix, mut period, mut fraction) = (3, 3, 0.25);
    let mut kernel = "empty".to_owned();
    let mut iterations = 0u64;
    let mut workers = 2;
    let mut engine = "lock-free".to_owned();
    let mut runner = "pool".to_owned();
    let mut window = None;
    let mut submitter = "caller".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        fn num<T: std::str::FromStr>(flag: &str, v: String) -> Result<T, String> {
            v.parse().map_err(|_| format!("{flag}: not a number: {v}"))
        }
        match flag.as_str() {
            "-type" => {
                let v = value()?;
                pattern = Pattern::from_name(&v).ok_or(format!("unknown -type {v}"))?;
            }
            "-width" => width = num(&flag, value()?)?,
            "-steps" => steps = num(&flag, value()?)?,
            "-radix" => radix = num(&flag, value()?)?,
            "-period" => period = num(&flag, value()?)?,
            "-fraction" => fraction = num(&flag, value()?)?,
            "-kernel" => kernel = value()?,
            "-iter" => iterations = num(&flag, value()?)?,
            "-worker" => workers = num(&flag, value()?)?,
            "-engine" => engine = value()?,
            "-runner" => runner = value()?,
            "-submitter" => submitter = value()?,
            "-window" => window = Some(num(&flag, value()?)?),
            "-h" | "--help" => return Err(String::new()),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    let graph = Graph {
        pattern,
        width,
        steps,
        radix,
        period,
        fraction,
        index: 0,
    }
    .checked()
    .map_err(|e| e.to_string())?;
    let kernel = match kernel.as_str() {
        "empty" => Kernel::Empty,
        "compute_bound" => Kernel::ComputeBound { iterations },
        k => return Err(format!("unknown -kernel {k} (empty, compute_bound)")),
    };
    if workers == 0 {
        return Err("-worker must be at least 1".into());
    }
    Ok(Args {
        graph,
        kernel,
        workers,
        engine,
        runner,
        window,
        submitter,
    })
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("kds-taskbench: {e}");
            }
            eprintln!(
                "usage: kds-taskbench -type PATTERN -width N -steps N [-radix N] [-period N] \
                 [-fraction F] -kernel empty|compute_bound [-iter N] [-worker N] \
                 [-engine lock-free|reference] [-runner pool|workers] [-window N] [-submitter caller|pool]"
            );
            return ExitCode::from(2);
        }
    };
    let runner = match args.runner.as_str() {
        "pool" => {
            if let Err(e) = rayon::ThreadPoolBuilder::new()
                .num_threads(args.workers)
                .thread_name(|i| format!("taskbench-pool-{i}"))
                .build_global()
            {
                eprintln!("kds-taskbench: cannot start the pool: {e}");
                return ExitCode::from(2);
            }
            Runner::Pool
        }
        "workers" => Runner::Workers(args.workers),
        r => {
            eprintln!("kds-taskbench: unknown -runner {r} (pool, workers)");
            return ExitCode::from(2);
        }
    };
    let submitter = match args.submitter.as_str() {
        "caller" => Submitter::Caller,
        "pool" if runner == Runner::Pool => Submitter::PoolThread,
        s => {
            eprintln!("kds-taskbench: -submitter {s}: caller, or pool with -runner pool");
            return ExitCode::from(2);
        }
    };
    // A pool thread that submits must be throttled, or it submits the whole graph before it
    // runs a task: libgomp's rule, 64 tasks in flight per thread, unless -window says.
    let window = match (args.window, submitter) {
        (Some(0), _) | (None, Submitter::Caller) => None,
        (Some(n), _) => Some(n),
        (None, Submitter::PoolThread) => Some(64 * args.workers as u64),
    };
    let options = Options {
        window,
        submitter,
        ..Options::on(runner)
    };
    let outcome = match args.engine.as_str() {
        "lock-free" => run_with::<kds::LockFree>(&args.graph, args.kernel, options),
        "reference" => run_with::<kds::reference::Reference>(&args.graph, args.kernel, options),
        e => {
            eprintln!("kds-taskbench: unknown -engine {e} (lock-free, reference)");
            return ExitCode::from(2);
        }
    };
    match outcome {
        Ok(o) => report(&args, &o),
        Err(e) => {
            eprintln!("kds-taskbench: a set was refused: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Task Bench's report lines (so one parser reads every runtime's), then kds's own.
fn report(args: &Args, o: &Outcome) -> ExitCode {
    let secs = o.elapsed.as_secs_f64();
    println!("Total Tasks {}", o.tasks);
    println!("Total Dependencies {}", o.edges);
    println!("Total FLOPs {}", o.flops);
    println!("Elapsed Time {:e} seconds", secs);
    println!("FLOP/s {:e}", o.flops as f64 / secs);
    println!(
        "kds: submitting took {:e} seconds ({:.0} ns per task)",
        o.submit.as_secs_f64(),
        o.submit.as_secs_f64() * 1e9 / o.tasks as f64
    );
    println!(
        "kds: engine {} runner {} workers {} kernel isa {}",
        args.engine,
        args.runner,
        args.workers,
        kds_taskbench::kernel::isa()
    );
    if o.violations > 0 {
        println!("kds: WRONG SCHEDULE: {} violations", o.violations);
        return ExitCode::FAILURE;
    }
    println!("kds: schedule checked, every task saw its dependencies' outputs");
    ExitCode::SUCCESS
}
