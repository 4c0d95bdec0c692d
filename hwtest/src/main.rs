//! `kds-hwtest`: the seed's render-then-flip pipeline on real DRM page flips (or on a
//! simulated display where there is no DRM device), with kds granting the buffers, side by
//! side with the mutex reference engine, a user-space bounce and the kernel's implicit sync.
//!
//! ```text
//! cargo run -p kds-hwtest --release -- [--device /dev/dri/card0 | --sim] [--hz 60]
//!     [--frames N] [--buffers 2|3] [--modes kds-lockfree,kds-reference,bounce,implicit-vgem,kds-dmabuf]
//!     [--dispatch direct|worker] [--size WxH] [--watchdog-ms N] [--inject early-release]
//! ```
//!
//! It prints one row per mode (median / p99 / max of each latency) and exits non-zero if any
//! check failed: frames reach the screen in order and intact, no buffer is written while the
//! display holds it, no flip completes before its render was released, every buffer is free
//! at the end. See `docs/hwtest.md`.

mod clock;
mod display;
mod frame;
mod modes;
mod pipeline;
mod stats;

use display::{drm::DrmDisplay, sim::SimDisplay, Display};
use modes::{DispatchKind, Mode};
use pipeline::{Inject, Settings};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

const USAGE: &str = "\
usage: kds-hwtest [--device PATH | --sim] [--hz N] [--frames N] [--buffers N]
                  [--modes m1,m2,..] [--dispatch direct|worker] [--size WxH]
                  [--watchdog-ms N] [--inject early-release]
modes: kds-lockfree, kds-reference, bounce, implicit-vgem, kds-dmabuf (default: all)
Without --device it uses the first /dev/dri/card* with a connected output, else a
simulated display.";

struct Args {
    device: Option<PathBuf>,
    sim: bool,
    hz: f64,
    frames: u64,
    buffers: usize,
    modes: Vec<Mode>,
    dispatch: DispatchKind,
    size: (usize, usize),
    watchdog: Duration,
    inject: Option<Inject>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        device: None,
        sim: false,
        hz: 60.0,
        frames: 240,
        buffers: 2,
        modes: Mode::ALL.to_vec(),
        dispatch: DispatchKind::Direct,
        size: (1024, 768),
        watchdog: Duration::from_secs(5),
        inject: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        if name == "--help" || name == "-h" {
            return Err(USAGE.into());
        }
        if name == "--sim" {
            a.sim = true;
            continue;
        }
        let v = inline
            .or_else(|| it.next())
            .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))?;
        let num = |v: &str| -> Result<u64, String> {
            v.parse()
                .map_err(|_| format!("{name}: not a number: {v:?}"))
        };
        match name.as_str() {
            "--device" => a.device = Some(v.into()),
            "--hz" => {
                a.hz = v
                    .parse()
                    .map_err(|_| format!("--hz: not a number: {v:?}"))?;
                if !(a.hz > 0.0 && a.hz <= 100_000.0) {
                    return Err("--hz must be in (0, 100000]".into());
                }
            }
            "--frames" => a.frames = num(&v)?.max(1),
            "--buffers" => {
                a.buffers = num(&v)? as usize;
                if !(2..=8).contains(&a.buffers) {
                    return Err("--buffers must be 2..=8".into());
                }
            }
            "--modes" => {
                a.modes = v
                    .split(',')
                    .map(|m| Mode::parse(m.trim()).ok_or_else(|| format!("unknown mode {m:?}")))
                    .collect::<Result<_, _>>()?
            }
            "--dispatch" => {
                a.dispatch = match v.as_str() {
                    "direct" => DispatchKind::Direct,
                    "worker" => DispatchKind::Worker,
                    _ => return Err(format!("--dispatch: direct or worker, not {v:?}")),
                }
            }
            "--size" => {
                let (w, h) = v.split_once('x').ok_or("--size: WxH")?;
                a.size = (num(w)? as usize, num(h)? as usize);
                if a.size.0 < 16 || a.size.1 < 2 {
                    return Err("--size: at least 16x2".into());
                }
            }
            "--watchdog-ms" => a.watchdog = Duration::from_millis(num(&v)?.max(1)),
            "--inject" => {
                a.inject = match v.as_str() {
                    "early-release" => Some(Inject::EarlyRelease),
                    _ => return Err(format!("--inject: unknown bug {v:?}")),
                }
            }
            _ => return Err(format!("unknown option {name}\n{USAGE}")),
        }
    }
    Ok(a)
}

fn open_display(a: &Args) -> Result<Arc<dyn Display>, String> {
    let sim = |why: String| -> Result<Arc<dyn Display>, String> {
        println!("kds-hwtest: {why}: running on a SIMULATED display (vblank timer, --hz)");
        SimDisplay::new(a.hz, a.size)
            .map(|d| Arc::new(d) as Arc<dyn Display>)
            .map_err(|e| format!("starting the simulated display: {e}"))
    };
    if a.sim {
        return sim("--sim".into());
    }
    match &a.device {
        Some(path) => DrmDisplay::open(path)
            .map(|d| Arc::new(d) as Arc<dyn Display>)
            .map_err(|e| format!("{}: {e}", path.display())),
        None => {
            // The first card with a connected output (on some boards card0 is a GPU
            // without one, e.g. v3d on a Raspberry Pi 5).
            let mut cards: Vec<PathBuf> = std::fs::read_dir("/dev/dri")
                .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
                .unwrap_or_default();
            cards.retain(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("card"))
            });
            cards.sort();
            if cards.is_empty() {
                return sim("no /dev/dri".into());
            }
            let mut why = Vec::new();
            for path in cards {
                match DrmDisplay::open(&path) {
                    Ok(d) => return Ok(Arc::new(d)),
                    Err(e) => why.push(format!("{}: {e}", path.display())),
                }
            }
            sim(format!("no usable display ({})", why.join("; ")))
        }
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let display = match open_display(&args) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("kds-hwtest: {e}");
            return ExitCode::from(2);
        }
    };
    println!("kds-hwtest: {}", display.describe());
    println!(
        "kds-hwtest: {} frames per mode, {} buffers, kds grant callbacks: {:?}{}",
        args.frames,
        args.buffers,
        args.dispatch,
        match args.inject {
            Some(i) => format!(", INJECTED BUG: {i:?}"),
            None => String::new(),
        }
    );
    let settings = Settings {
        frames: args.frames,
        watchdog: args.watchdog,
        inject: args.inject,
    };
    let mut reports = Vec::new();
    for &mode in &args.modes {
        let r = modes::run(mode, &display, args.buffers, args.dispatch, &settings);
        reports.push(r);
    }
    println!();
    stats::print_table(&reports);
    let mut failed = false;
    for r in &reports {
        if r.skipped.is_none() && r.landed as u64 != args.frames && r.errors.is_empty() {
            println!(
                "{}: only {} of {} frames reached the screen",
                r.mode, r.landed, args.frames
            );
            failed = true;
        }
        for e in r.errors.iter().take(5) {
            println!("{}: check failed: {e}", r.mode);
        }
        if r.errors.len() > 5 {
            println!(
                "{}: ... and {} more failed checks",
                r.mode,
                r.errors.len() - 5
            );
        }
        failed |= !r.errors.is_empty();
    }
    if display.is_simulated() {
        println!("(simulated display: no DRM device was used)");
    }
    if failed {
        println!("kds-hwtest: RESULT FAIL");
        ExitCode::FAILURE
    } else {
        println!("kds-hwtest: RESULT PASS");
        ExitCode::SUCCESS
    }
}
