//! The C side of the C ABI, run by `cargo test`: every `tests/c/*.c` program is compiled with
//! the system C compiler (`cc`, or `$CC`) at `-Wall -Wextra -Werror` against
//! `include/kds.h` and the static library, then run; a nonzero exit fails the test. A second
//! test checks that the header and the exported symbols have not drifted apart.
//!
//! `cargo test` does not build a staticlib-only library before the integration tests, so
//! these tests build it themselves with a nested `cargo build -p kds-capi` (cargo releases its
//! build lock while tests run), reading the artifact paths from cargo's JSON messages.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The repository root.
fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("capi/ has a parent")
}

struct Artifacts {
    staticlib: PathBuf,
    cdylib: PathBuf,
}

/// Builds the library (once per test binary) and returns the paths of `libkds.a` and
/// `libkds.so`.
fn artifacts() -> &'static Artifacts {
    static BUILT: OnceLock<Artifacts> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = Command::new(cargo)
            .args([
                "build",
                "-p",
                "kds-capi",
                "--message-format=json-render-diagnostics",
            ])
            .current_dir(root())
            .stderr(Stdio::inherit())
            .output()
            .expect("run cargo build -p kds-capi");
        assert!(out.status.success(), "cargo build -p kds-capi failed");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let mut staticlib = None;
        let mut cdylib = None;
        for line in stdout.lines() {
            if !line.contains("\"compiler-artifact\"") || !line.contains("kds-capi") {
                continue;
            }
            for path in json_strings_after(line, "\"filenames\":[") {
                if path.ends_with("libkds.a") {
                    staticlib = Some(PathBuf::from(&path));
                } else if path.ends_with("libkds.so") || path.ends_with("libkds.dylib") {
                    cdylib = Some(PathBuf::from(&path));
                }
            }
        }
        Artifacts {
            staticlib: staticlib.expect("cargo reported no libkds.a"),
            cdylib: cdylib.expect("cargo reported no libkds.so"),
        }
    })
}

/// The strings of the JSON array that starts right after `key` in `line` (cargo's paths have
/// no escapes on the platforms this runs on; backslash escapes are undone anyway).
fn json_strings_after(line: &str, key: &str) -> Vec<String> {
    let Some(start) = line.find(key) else {
        return Vec::new();
    };
    let rest = &line[start + key.len()..];
    let end = rest.find(']').unwrap_or(rest.len());
    rest[..end]
        .split(',')
        .map(|s| s.trim().trim_matches('"').replace("\\\\", "\\"))
        .filter(|s| !s.is_empty())
        .collect()
}

fn cc() -> String {
    std::env::var("CC").unwrap_or_else(|_| "cc".into())
}

/// Compiles `src` against the header and the static library into `out`.
fn compile(src: &Path, out: &Path) {
    let lib = &artifacts().staticlib;
    let status = Command::new(cc())
        .args(["-std=gnu11", "-O1", "-g", "-Wall", "-Wextra", "-Werror"])
        .arg("-I")
        .arg(root().join("include"))
        .arg("-I")
        .arg(root().join("tests/c"))
        .arg(src)
        .arg(lib)
        .args(["-lpthread", "-ldl", "-lm", "-o"])
        .arg(out)
        .status()
        .expect("run the C compiler");
    assert!(status.success(), "{} did not compile", src.display());
}

/// Runs `exe`, failing if it exits nonzero or runs longer than `limit`.
fn run(exe: &Path, limit: Duration) {
    let mut child = Command::new(exe).spawn().expect("start the C test");
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait for the C test") {
            assert!(status.success(), "{} failed: {status}", exe.display());
            return;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{} ran longer than {limit:?}", exe.display());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The C test programs, sorted.
fn c_tests() -> Vec<PathBuf> {
    let mut tests: Vec<PathBuf> = std::fs::read_dir(root().join("tests/c"))
        .expect("tests/c exists")
        .map(|e| e.expect("read tests/c").path())
        .filter(|p| p.extension().is_some_and(|e| e == "c"))
        .collect();
    tests.sort();
    assert!(tests.len() >= 8, "expected the C test programs in tests/c");
    tests
}

#[test]
fn c_programs_pass() {
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("c-tests");
    std::fs::create_dir_all(&out_dir).expect("make the output directory");
    for src in c_tests() {
        let exe = out_dir.join(src.file_stem().expect("a file name"));
        compile(&src, &exe);
        eprintln!("running {}", src.display());
        run(&exe, Duration::from_secs(120));
    }
}

/// The symbols `include/kds.h` declares: identifiers `kds_*` followed by `(`, outside
/// comments and macro definitions, and the symbols that `KDS_SYMBOL_(name)` redirects a
/// declaration to (the 2013 form's `kds_async_waitall`).
fn declared_functions() -> BTreeSet<String> {
    let header = std::fs::read_to_string(root().join("include/kds.h")).expect("read kds.h");
    let mut code = String::new();
    let mut rest = header.as_str();
    while let Some(start) = rest.find("/*") {
        code.push_str(&rest[..start]);
        let end = rest[start..].find("*/").expect("closed comment") + start + 2;
        rest = &rest[end..];
    }
    code.push_str(rest);
    let code: String = code
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let bytes = code.as_bytes();
    let mut names = BTreeSet::new();
    let mut i = 0;
    while let Some(off) = code[i..].find("kds_") {
        let start = i + off;
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        let boundary =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let next = code[end..].trim_start().chars().next();
        let redirected = code[..start].ends_with("KDS_SYMBOL_(");
        if boundary && (next == Some('(') || redirected) {
            names.insert(code[start..end].to_string());
        }
        i = end.max(start + 1);
    }
    names
}

/// The global `kds_*` functions defined in `lib` (`nm`; `-D` for a shared library).
fn exported_functions(lib: &Path, dynamic: bool) -> BTreeSet<String> {
    let mut cmd = Command::new("nm");
    cmd.args(["-g", "--defined-only"]);
    if dynamic {
        cmd.arg("-D");
    }
    let out = cmd.arg(lib).output().expect("run nm");
    assert!(out.status.success(), "nm {} failed", lib.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace().rev();
            let name = w.next()?;
            let kind = w.next()?;
            (kind == "T" && name.starts_with("kds_")).then(|| name.to_string())
        })
        .collect()
}

#[test]
fn header_and_exports_agree() {
    let declared = declared_functions();
    for must in [
        "kds_callback_init",
        "kds_callback_term",
        "kds_resource_init",
        "kds_resource_term",
        "kds_async_waitall",
        "kds_waitall",
        "kds_resource_set_release",
        "kds_resource_set_release_sync",
        "kds_async_waitall_2013",
    ] {
        assert!(declared.contains(must), "kds.h does not declare {must}");
    }
    let a = artifacts();
    assert_eq!(
        declared,
        exported_functions(&a.staticlib, false),
        "kds.h vs libkds.a"
    );
    assert_eq!(
        declared,
        exported_functions(&a.cdylib, true),
        "kds.h vs libkds.so"
    );
}

/// The header alone compiles as strict C99 and as C++, with every warning an error, in both
/// API forms; any other `KDS_API_VERSION` is a compile error that names the valid ones.
#[test]
fn header_is_clean_c_and_cxx() {
    let include = root().join("include");
    let probe = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kds_header_probe.c");
    std::fs::write(&probe, "#include <kds.h>\nint kds_header_probe;\n").expect("write probe");
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    for form in [None, Some("2012"), Some("2013")] {
        let define: Vec<String> = form
            .map(|v| format!("-DKDS_API_VERSION={v}"))
            .into_iter()
            .collect();
        let status = Command::new(cc())
            .args([
                "-std=c99",
                "-pedantic",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-fsyntax-only",
            ])
            .args(&define)
            .arg("-I")
            .arg(&include)
            .arg(&probe)
            .status()
            .expect("run the C compiler");
        assert!(status.success(), "kds.h ({form:?}) is not clean C99");
        if let Ok(status) = Command::new(&cxx)
            .args(["-x", "c++", "-Wall", "-Wextra", "-Werror", "-fsyntax-only"])
            .args(&define)
            .arg("-I")
            .arg(&include)
            .arg(&probe)
            .status()
        {
            assert!(status.success(), "kds.h ({form:?}) is not clean C++");
        } else {
            eprintln!("no C++ compiler ({cxx}): skipped the C++ check");
        }
    }
    let out = Command::new(cc())
        .args(["-fsyntax-only", "-DKDS_API_VERSION=2014", "-I"])
        .arg(&include)
        .arg(&probe)
        .output()
        .expect("run the C compiler");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "KDS_API_VERSION=2014 compiled");
    assert!(
        stderr.contains("KDS_API_VERSION must be 2012"),
        "unclear error for a bad KDS_API_VERSION: {stderr}"
    );
}

/// One program whose translation units use the two forms (tests/c/forms/): each calls
/// `kds_async_waitall` its own way, both link against the one `libkds.a`, and they share
/// resources and sets.
#[test]
fn both_forms_in_one_program() {
    let lib = &artifacts().staticlib;
    let dir = root().join("tests/c/forms");
    let exe = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kds_both_forms");
    let status = Command::new(cc())
        .args(["-std=gnu11", "-O1", "-g", "-Wall", "-Wextra", "-Werror"])
        .arg("-I")
        .arg(root().join("include"))
        .arg("-I")
        .arg(root().join("tests/c"))
        .arg(dir.join("main_2012.c"))
        .arg(dir.join("driver_2013.c"))
        .arg(lib)
        .args(["-lpthread", "-ldl", "-lm", "-o"])
        .arg(&exe)
        .status()
        .expect("run the C compiler");
    assert!(status.success(), "tests/c/forms did not compile");
    run(&exe, Duration::from_secs(60));
}
