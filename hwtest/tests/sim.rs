//! The hwtest binary on the simulated display (no DRM device needed): a short run passes
//! every check in every mode, and a deliberately broken pipeline is caught.

use std::process::Command;

/// Every mode; the fenced ones (`implicit-vgem`, `kds-dmabuf`) on kds-dmabuf's simulated
/// buffers here.
const MODES: [&str; 5] = [
    "kds-lockfree",
    "kds-reference",
    "bounce",
    "implicit-vgem",
    "kds-dmabuf",
];

fn run(extra: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kds-hwtest"))
        .args([
            "--sim", "--hz", "1000", "--frames", "300", "--size", "256x192",
        ])
        .args(extra)
        .output()
        .expect("running kds-hwtest");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn every_mode_passes_on_the_simulated_display() {
    let (ok, out) = run(&[]);
    assert!(ok, "{out}");
    assert!(out.contains("SIMULATED display"), "{out}");
    for mode in MODES {
        let row = out
            .lines()
            .find(|l| l.starts_with(&format!("| {mode} ")))
            .unwrap_or_else(|| panic!("no row for {mode}:\n{out}"));
        assert!(row.contains("| 300 "), "{row}");
        assert!(row.trim_end().ends_with("| pass   |"), "{row}");
    }
    // The fenced modes run on simulated dma-bufs; the simulated display honours their fences.
    assert!(
        out.contains("a fence attached by a kds holder held a KMS flip"),
        "{out}"
    );
    assert!(out.contains("RESULT PASS"), "{out}");
}

#[test]
fn three_buffers_and_worker_dispatch_pass() {
    let (ok, out) = run(&["--buffers", "3", "--dispatch", "worker"]);
    assert!(ok, "{out}");
}

#[test]
fn early_release_is_caught_in_every_mode() {
    let (ok, out) = run(&["--inject", "early-release"]);
    assert!(!ok, "an early release passed:\n{out}");
    for mode in MODES {
        assert!(
            out.contains(&format!("{mode}: check failed:")),
            "{mode} not caught:\n{out}"
        );
    }
    assert!(out.contains("written while on screen") || out.contains("torn, stale or early"));
    assert!(out.contains("RESULT FAIL"), "{out}");
}
