//! Task Bench's task graphs on kds: the patterns ([`graph`]), the compute-bound kernel
//! ([`kernel`]) and the driver that runs a graph as one resource set per task ([`run`]).
//! `docs/taskgraph.md` explains the mapping; `taskbench/sweep.py` measures METG against Task
//! Bench's OpenMP and StarPU drivers.

pub mod graph;
pub mod kernel;
pub mod run;

pub use graph::{BadGraph, Graph, Pattern};
pub use kernel::Kernel;
pub use run::{run, run_with, Buffers, Options, Outcome, Runner, Submitter};
