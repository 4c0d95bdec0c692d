//! Gives the shared library its SONAME on Linux (`libkds.so.0`, as `capi/install.sh` and
//! cargo-c install it), so programs linked with `-lkds` record the ABI version.

fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libkds.so.0");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
