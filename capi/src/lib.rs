//! # kds-capi: `kds.h` (the 2012 RFC's and the shipped drivers'), as a C library over kds's lock-free engine
//!
//! This crate builds `libkds.a` and `libkds.so`, which export the functions of the kernel's
//! `include/linux/kds.h` with the same names and signatures, declared by the hand-written
//! `include/kds.h` at the top of the repository, in both forms drivers were written against:
//! the 2012 RFC's (the default) and, with `KDS_API_VERSION 2013`, the later one with the
//! 7-argument `kds_async_waitall` (exported as [`set::kds_async_waitall_2013`]), both with
//! [`set::kds_resource_set_release_sync`] and an `int` [`resource::kds_resource_term`]. A C
//! program written against either header builds against ours and links against this library
//! (the user-space meaning of jiffies, `ERR_PTR` and signals is spelled out in the header and
//! in `docs/c-api.md`).
//!
//! ## How the C objects map onto kds
//!
//! - `struct kds_resource` is caller-owned storage (a complete C type, so it can be embedded
//!   by value) holding a live-marker word and a [`kds::Resource`] handle, written in place by
//!   `kds_resource_init` and moved out by `kds_resource_term`. Sets granted at once borrow the
//!   handle without a count; `kds_resource_term` frees a resource only once nothing uses it
//!   and every release that may still read it has finished, so terminating a resource that
//!   is still in use is safe (spec rule 10; see [`resource`] and [`set`]).
//! - `struct kds_callback` is caller-owned storage holding the user function, the dispatch
//!   mode and, for deferred dispatch, a boxed [`kds::Worker`] that `kds_callback_term` drains.
//! - `struct kds_resource_set` is opaque: a [`set::kds_resource_set`]. A set held from its
//!   publication (a `kds_waitall` set, or a `kds_async_waitall` set granted at once) is a
//!   box from a per-thread cache that holds its own `kds::ResourceSet`, built in place from
//!   the C arrays, and the guard that borrows it; an async set that queues is an `Arc` whose
//!   one state word lets the request call, the grant callback and a release meet without a
//!   lock.
//! - `kds_waitall` is [`kds::ResourceSet::lock_interruptible`] with the calling thread's
//!   interrupt ([`interrupt`]) (with a 0 timeout, [`kds::ResourceSet::try_lock`], which never
//!   looks at the interrupt); `kds_async_waitall` is [`kds::ResourceSet::try_grant_now`] for a
//!   direct callback object, else (or if the set is not free) [`kds::ResourceSet::on_grant`]
//!   with [`kds::Dispatch::Direct`] or [`kds::Dispatch::Worker`], with the [`kds::Locked`]
//!   policy of its flags.
//!
//! Every exported function catches panics (`catch_unwind`) and turns them into an error
//! return: a Rust panic never unwinds into C.
//!
//! The layout of the storage structs is asserted at compile time against the word counts
//! that `include/kds.h` declares ([`abi::RESOURCE_WORDS`], [`abi::CALLBACK_PRIVATE_WORDS`]), and a unit
//! test reads the header to check they agree.

#![allow(non_camel_case_types)]

pub mod abi;
pub mod callback;
pub mod interrupt;
mod releasing;
pub mod resource;
pub mod set;
