//! The behaviour suite: one test per rule of the project's KDS spec, and the threaded tests,
//! each written once as a function generic over the engine and run on both, `kds::*`
//! (lock-free) and `kds::reference::*` (global mutex): `lockfree::name` and `reference::name`
//! in each rule group's module. One file per rule group.

#[path = "../support/mod.rs"]
mod support;

#[macro_use]
mod common;

mod api;
mod bad_input;
mod callbacks;
mod enqueue;
mod exactly_once;
mod fast_path;
mod fifo;
mod futures;
mod lifetimes;
mod locked;
mod owned;
mod sync_waits;
mod threads;
mod trigger;
