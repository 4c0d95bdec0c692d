//! The seed's use case (ARM's KDS, 2012): a GPU renders into image buffers, a display scans
//! them out, and KDS orders the two without either driver knowing about the other.
//!
//! ```text
//! cargo run --release --example pipeline -- [--frames N] [--buffers N] [--refresh-us N]
//! ```
//!
//! The pipeline, written once over `E: kds::Engine` and run on the lock-free engine and then
//! on the mutex reference:
//!
//! * `--buffers` image buffers (default 3: triple buffering), each a [`Resource`].
//! * The **GPU** (the main thread) renders frame `i` into buffer `i % buffers`: it blocks on
//!   the sync set `exclusive(buf)` (`wait_timeout` with a 10 s watchdog, so that a hang
//!   fails the run instead of hanging it), which returns once the display has let go of the
//!   buffer, writes the frame, asks for the flip, and releases the buffer.
//! * The flip is an async set `shared(buf).on_grant(Dispatch::Worker(display), ..)`, queued
//!   while the GPU still holds the buffer, so the GPU's release is what grants it. Its
//!   callback, on the display worker thread, is the driver programming the flip: it checks
//!   the frame and hands the guard to the scan-out engine.
//! * The **scan-out engine** (a thread standing in for the vblank interrupt) latches one
//!   queued frame per simulated vblank (every `--refresh-us`, FIFO present mode) and drops
//!   the guard of the frame it replaces: that release is what lets the GPU render into that
//!   buffer again. With `--refresh-us 0` it flips as soon as a frame is queued (unpaced).
//!
//! Buffer contents sit behind an `RwLock` that is only ever `try_`-locked: if KDS let the GPU
//! write a buffer while the display still scans it out (or the reverse), the `try_` lock would
//! fail and the run would fail. The run ends by checking every frame was rendered and flipped
//! in order, and that every buffer is free again (`try_acquire` of an exclusive set succeeds);
//! it exits non-zero otherwise.

use kds::generic::{Guard, Resource, ResourceSet};
use kds::{Dispatch, Engine, Worker};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, RwLock};
use std::thread;
use std::time::{Duration, Instant};

/// Size of one simulated frame (a 128x128 RGBA image).
const FRAME_BYTES: usize = 128 * 128 * 4;
/// How long anything may wait before the run is declared hung (and fails instead of hanging).
const WATCHDOG: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug)]
struct Config {
    frames: usize,
    buffers: usize,
    refresh: Duration,
}

const USAGE: &str =
    "usage: pipeline [--frames N] [--buffers N (>= 2)] [--refresh-us N (0: unpaced)]";

fn parse_args() -> Result<Config, String> {
    let mut cfg = Config {
        frames: 2000,
        buffers: 3,
        refresh: Duration::from_micros(200),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
            None => (arg.clone(), None),
        };
        if name == "--help" || name == "-h" {
            return Err(USAGE.to_owned());
        }
        let value = match inline.or_else(|| args.next()) {
            Some(value) => value,
            None => return Err(format!("{name} needs a value\n{USAGE}")),
        };
        let number: u64 = value
            .parse()
            .map_err(|_| format!("{name}: not a number: {value:?}\n{USAGE}"))?;
        match name.as_str() {
            "--frames" => cfg.frames = number as usize,
            "--buffers" => cfg.buffers = number as usize,
            "--refresh-us" => cfg.refresh = Duration::from_micros(number),
            _ => return Err(format!("unknown argument {name:?}\n{USAGE}")),
        }
    }
    if cfg.buffers < 2 {
        // The display holds the front buffer until the next frame replaces it, so with one
        // buffer the GPU would wait for a flip that needs its own frame: a real deadlock of
        // the *pipeline*, which KDS cannot (and should not) break.
        return Err(format!(
            "--buffers must be at least 2 (front + back)\n{USAGE}"
        ));
    }
    if cfg.frames == 0 {
        return Err(format!("--frames must be at least 1\n{USAGE}"));
    }
    Ok(cfg)
}

/// Latency samples, in nanoseconds.
#[derive(Default)]
struct Samples(Vec<u64>);

impl Samples {
    fn push(&mut self, d: Duration) {
        self.0.push(d.as_nanos() as u64);
    }

    /// `p50 / p99 / max` in µs, and the sample count.
    fn summary(&mut self) -> String {
        if self.0.is_empty() {
            return "(no samples)".to_owned();
        }
        self.0.sort_unstable();
        let n = self.0.len();
        // Nearest-rank percentile.
        let pct = |p: usize| self.0[(p * n).div_ceil(100).max(1) - 1] as f64 / 1000.0;
        let max = self.0[n - 1] as f64 / 1000.0;
        format!("{:>7.1} {:>7.1} {:>8.1}  n={n}", pct(50), pct(99), max)
    }
}

/// What one engine's run measured.
struct Report {
    engine: &'static str,
    /// GPU: request of `exclusive(buf)` to the wait returning.
    render_wait: Samples,
    /// GPU: the scan-out's release of the buffer to the wait returning (waits that blocked).
    render_handoff: Samples,
    /// Display: the GPU's release of the rendered buffer to the flip callback starting.
    flip_handoff: Samples,
    /// Render waits granted at once (the buffer was already free).
    render_immediate: usize,
    rendered: usize,
    flipped: usize,
    /// Vblanks after the first frame at which no new frame was queued (the display repeated
    /// the old one).
    repeats: usize,
    elapsed: Duration,
    errors: Vec<String>,
}

/// One flip handed from the display callback to the scan-out engine.
struct Flip<E: Engine> {
    frame: u64,
    buffer: usize,
    guard: Guard<E>,
}

/// Nanoseconds since `base`, for timestamps shared between threads.
fn stamp(base: Instant) -> u64 {
    base.elapsed().as_nanos() as u64
}

fn since(base: Instant, ns: u64) -> Instant {
    base + Duration::from_nanos(ns)
}

/// Writes frame `frame` into `data`.
fn render(data: &mut [u8], frame: u64) {
    data.fill(frame as u8);
    data[..8].copy_from_slice(&frame.to_le_bytes());
}

/// Whether `data` holds frame `frame`.
fn holds(data: &[u8], frame: u64) -> bool {
    data[..8] == frame.to_le_bytes() && data[8..].iter().step_by(509).all(|&b| b == frame as u8)
}

/// Waits until `deadline`: sleeps while it is far, then yields (thread sleeps are too coarse
/// for a sub-millisecond refresh).
fn wait_until(deadline: Instant) {
    loop {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        let left = deadline - now;
        if left > Duration::from_micros(300) {
            thread::sleep(left - Duration::from_micros(200));
        } else {
            thread::yield_now();
        }
    }
}

/// Errors found on the display side (callback and scan-out threads).
type Errors = Arc<std::sync::Mutex<Vec<String>>>;

fn error(errors: &Errors, msg: String) {
    errors.lock().unwrap_or_else(|e| e.into_inner()).push(msg);
}

fn run<E: Engine>(cfg: Config) -> Report {
    let base = Instant::now();
    let buffers: Vec<Resource<E>> = (0..cfg.buffers).map(|_| Resource::new()).collect();
    let pixels: Arc<Vec<RwLock<Vec<u8>>>> = Arc::new(
        (0..cfg.buffers)
            .map(|_| RwLock::new(vec![0xffu8; FRAME_BYTES]))
            .collect(),
    );
    // Per buffer: when the GPU last released it (read by the flip callback), and when the
    // scan-out last released it (read by the GPU's next wait on it).
    let gpu_released: Arc<Vec<AtomicU64>> =
        Arc::new((0..cfg.buffers).map(|_| AtomicU64::new(0)).collect());
    let scanout_released: Arc<Vec<AtomicU64>> =
        Arc::new((0..cfg.buffers).map(|_| AtomicU64::new(0)).collect());
    let errors: Errors = Arc::default();
    let flip_handoff = Arc::new(std::sync::Mutex::new(Samples::default()));
    let callbacks_run = Arc::new(AtomicUsize::new(0));

    let mut report = Report {
        engine: E::NAME,
        render_wait: Samples::default(),
        render_handoff: Samples::default(),
        flip_handoff: Samples::default(),
        render_immediate: 0,
        rendered: 0,
        flipped: 0,
        repeats: 0,
        elapsed: Duration::ZERO,
        errors: Vec::new(),
    };

    let display = match Worker::spawn("display") {
        Ok(worker) => worker,
        Err(e) => {
            report
                .errors
                .push(format!("cannot start the display worker: {e}"));
            return report;
        }
    };
    let (flips, latched) = mpsc::channel::<Flip<E>>();

    // The scan-out engine: one flip per vblank, FIFO; the replaced front buffer is released.
    let scanout = {
        let pixels = Arc::clone(&pixels);
        let released = Arc::clone(&scanout_released);
        let errors = Arc::clone(&errors);
        let refresh = cfg.refresh;
        thread::Builder::new()
            .name("scanout".into())
            .spawn(move || {
                let mut front: Option<Flip<E>> = None;
                let (mut flipped, mut repeats) = (0usize, 0usize);
                let mut next_vblank = Instant::now() + refresh;
                let mut last_progress = Instant::now();
                loop {
                    let next = if refresh.is_zero() {
                        latched.recv_timeout(WATCHDOG).map_err(|e| match e {
                            RecvTimeoutError::Timeout => TryRecvError::Empty,
                            RecvTimeoutError::Disconnected => TryRecvError::Disconnected,
                        })
                    } else {
                        wait_until(next_vblank);
                        next_vblank += refresh;
                        // A late vblank thread skips missed vblanks, as hardware would.
                        let now = Instant::now();
                        if next_vblank < now {
                            next_vblank = now + refresh;
                        }
                        latched.try_recv()
                    };
                    let flip = match next {
                        Ok(flip) => flip,
                        Err(TryRecvError::Empty) => {
                            if front.is_some() {
                                repeats += 1;
                            }
                            if last_progress.elapsed() > WATCHDOG {
                                error(&errors, "scan-out: no frame queued for 10 s".into());
                                break;
                            }
                            continue;
                        }
                        Err(TryRecvError::Disconnected) => break,
                    };
                    last_progress = Instant::now();
                    if flip.frame != flipped as u64 {
                        error(
                            &errors,
                            format!("scan-out: frame {} flipped as #{flipped}", flip.frame),
                        );
                    }
                    flipped += 1;
                    if let Some(old) = front.replace(flip) {
                        release_front(old, &pixels, &released, base, &errors);
                    }
                }
                if let Some(old) = front.take() {
                    release_front(old, &pixels, &released, base, &errors);
                }
                (flipped, repeats)
            })
            .expect("spawn the scan-out thread")
    };

    // The GPU.
    let mut gpu_errors = Vec::new();
    for frame in 0..cfg.frames as u64 {
        let b = frame as usize % cfg.buffers;
        let buf = &buffers[b];
        let asked = Instant::now();
        let asked_ns = stamp(base);
        let render_guard = match ResourceSet::new().exclusive(buf).wait_timeout(WATCHDOG) {
            Ok(guard) => guard,
            Err(e) => {
                gpu_errors.push(format!("GPU: frame {frame}: waiting for buffer {b}: {e}"));
                break;
            }
        };
        let granted = Instant::now();
        report.render_wait.push(granted - asked);
        let freed = scanout_released[b].load(Ordering::Acquire);
        if freed >= asked_ns && freed != 0 {
            report
                .render_handoff
                .push(granted.saturating_duration_since(since(base, freed)));
        } else {
            report.render_immediate += 1;
        }

        match pixels[b].try_write() {
            Ok(mut data) => render(&mut data, frame),
            Err(_) => gpu_errors.push(format!(
                "GPU: frame {frame}: buffer {b} is being read although the GPU holds it exclusively"
            )),
        }
        report.rendered += 1;

        // Ask for the flip while still holding the buffer: it queues behind the render job,
        // and the release below is what grants it.
        let callback = {
            let flips = flips.clone();
            let pixels = Arc::clone(&pixels);
            let gpu_released = Arc::clone(&gpu_released);
            let errors = Arc::clone(&errors);
            let flip_handoff = Arc::clone(&flip_handoff);
            let callbacks_run = Arc::clone(&callbacks_run);
            move |guard: Guard<E>| {
                let started = Instant::now();
                let released = since(base, gpu_released[b].load(Ordering::Acquire));
                flip_handoff
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(started.saturating_duration_since(released));
                match pixels[b].try_read() {
                    Ok(data) if holds(&data, frame) => {}
                    Ok(_) => error(
                        &errors,
                        format!("flip: frame {frame}: buffer {b} does not hold the frame"),
                    ),
                    Err(_) => error(
                        &errors,
                        format!("flip: frame {frame}: buffer {b} is being written"),
                    ),
                }
                callbacks_run.fetch_add(1, Ordering::Relaxed);
                // The receiver only goes away after every sender, this one included.
                let _ = flips.send(Flip {
                    frame,
                    buffer: b,
                    guard,
                });
            }
        };
        let flip = ResourceSet::new().shared(buf);
        if let Err(e) = flip.on_grant(Dispatch::Worker(display.clone()), callback) {
            gpu_errors.push(format!("GPU: frame {frame}: flip request refused: {e}"));
            break;
        }

        gpu_released[b].store(stamp(base), Ordering::Release);
        drop(render_guard);
    }
    // The GPU is done: once every flip callback has run, the scan-out sees the channel close.
    drop(flips);
    drop(display);
    let (flipped, repeats) = scanout.join().unwrap_or_else(|_| {
        gpu_errors.push("scan-out thread panicked".into());
        (0, 0)
    });
    report.elapsed = base.elapsed();
    report.flipped = flipped;
    report.repeats = repeats;
    report.flip_handoff =
        std::mem::take(&mut flip_handoff.lock().unwrap_or_else(|e| e.into_inner()));

    // Sanity.
    report.errors = gpu_errors;
    report
        .errors
        .extend(errors.lock().unwrap_or_else(|e| e.into_inner()).drain(..));
    if report.rendered != cfg.frames {
        report.errors.push(format!(
            "rendered {} of {} frames",
            report.rendered, cfg.frames
        ));
    }
    if report.flipped != cfg.frames {
        report.errors.push(format!(
            "flipped {} of {} frames",
            report.flipped, cfg.frames
        ));
    }
    let callbacks = callbacks_run.load(Ordering::Relaxed);
    if callbacks != cfg.frames {
        report.errors.push(format!(
            "{callbacks} flip callbacks ran for {} frames",
            cfg.frames
        ));
    }
    for (i, buf) in buffers.iter().enumerate() {
        match ResourceSet::new().exclusive(buf).try_acquire() {
            Ok(guard) => guard.release(),
            Err(e) => report
                .errors
                .push(format!("buffer {i} is not free at the end: {e}")),
        }
    }
    report
}

/// The scan-out is done with `old`: check the GPU left it alone, then release it.
fn release_front<E: Engine>(
    old: Flip<E>,
    pixels: &[RwLock<Vec<u8>>],
    released: &[AtomicU64],
    base: Instant,
    errors: &Errors,
) {
    match pixels[old.buffer].try_read() {
        Ok(data) if holds(&data, old.frame) => {}
        Ok(_) => error(
            errors,
            format!(
                "scan-out: frame {}: buffer {} was overwritten while on screen",
                old.frame, old.buffer
            ),
        ),
        Err(_) => error(
            errors,
            format!(
                "scan-out: frame {}: buffer {} is being written while on screen",
                old.frame, old.buffer
            ),
        ),
    }
    released[old.buffer].store(stamp(base), Ordering::Release);
    drop(old.guard); // the release that lets the GPU render into this buffer again
}

/// Picks one row's samples out of a report.
type Pick = fn(&mut Report) -> &mut Samples;

/// One line of the side-by-side table.
fn row(name: &str, a: &str, b: &str) {
    let line = format!("{name:<16}| {a:<38}| {b}");
    println!("{}", line.trim_end());
}

fn main() -> ExitCode {
    let cfg = match parse_args() {
        Ok(cfg) => cfg,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    let buffering = match cfg.buffers {
        2 => " (double buffering)".to_owned(),
        3 => " (triple buffering)".to_owned(),
        _ => String::new(),
    };
    let pacing = if cfg.refresh.is_zero() {
        "unpaced: flip as soon as a frame is queued".to_owned()
    } else {
        format!(
            "simulated vblank every {} µs ({:.0} Hz)",
            cfg.refresh.as_micros(),
            1.0 / cfg.refresh.as_secs_f64()
        )
    };
    println!("kds pipeline: GPU render -> display flip, the ARM KDS (2012) use case");
    println!(
        "  {} frames, {} buffers{buffering}, {} KiB frames, {pacing}",
        cfg.frames,
        cfg.buffers,
        FRAME_BYTES / 1024
    );
    println!("  GPU     (main thread):    ResourceSet::new().exclusive(&buf).wait_timeout(10 s)  -- sync set; the timeout is only a hang watchdog");
    println!("  display (worker thread):  ResourceSet::new().shared(&buf).on_grant(Dispatch::Worker(..), ..)  -- async set");
    println!("  scan-out (vblank thread): holds the on-screen frame's guard until the next flip replaces it");
    println!();

    let mut reports = [
        run::<kds::LockFree>(cfg),
        run::<kds::reference::Reference>(cfg),
    ];

    println!("Latencies in µs, as p50 / p99 / max (n = samples):");
    println!("  render wait:    GPU asks for exclusive(buf) -> its wait returns (includes waiting for scan-out to let go)");
    println!("  render handoff: scan-out drops the guard releasing buf -> the GPU's wait returns (waits that blocked only)");
    println!("  flip handoff:   GPU drops its render guard -> the display's flip callback starts on the worker thread");
    println!();
    let [a, b] = &mut reports;
    row("", a.engine, b.engine);
    row("", "    p50     p99      max", "    p50     p99      max");
    let rows: [(&str, Pick); 3] = [
        ("render wait", |r| &mut r.render_wait),
        ("render handoff", |r| &mut r.render_handoff),
        ("flip handoff", |r| &mut r.flip_handoff),
    ];
    for (name, pick) in rows {
        row(name, &pick(a).summary(), &pick(b).summary());
    }
    let fps = |r: &Report| format!("{:>7.0}", r.flipped as f64 / r.elapsed.as_secs_f64());
    row("frames/s", &fps(a), &fps(b));
    let wall = |r: &Report| format!("{:>7.3} s", r.elapsed.as_secs_f64());
    row("wall time", &wall(a), &wall(b));
    let free = |r: &Report| format!("{:>7} render waits", r.render_immediate);
    row("free at request", &free(a), &free(b));
    if !cfg.refresh.is_zero() {
        let repeats = |r: &Report| format!("{:>7}", r.repeats);
        row("repeated vblank", &repeats(a), &repeats(b));
        println!();
        println!(
            "frames/s is paced by the simulated display; run with --refresh-us 0 to measure the unpaced pipeline."
        );
    }
    println!();

    let mut ok = true;
    for r in &reports {
        if r.errors.is_empty() {
            println!(
                "{}: ok: {} frames rendered and flipped in order, every buffer free at the end",
                r.engine, r.rendered
            );
        } else {
            ok = false;
            for e in r.errors.iter().take(10) {
                eprintln!("{}: FAILED: {e}", r.engine);
            }
            if r.errors.len() > 10 {
                eprintln!("{}: ... and {} more errors", r.engine, r.errors.len() - 10);
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
