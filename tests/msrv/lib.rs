//! Empty: this crate exists to run `tests/behaviour/` on the declared MSRV (see Cargo.toml).
