//! Empty: this crate exists to run `tests/behaviour.rs` on the declared MSRV (see Cargo.toml).
