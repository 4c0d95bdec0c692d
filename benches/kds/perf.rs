//! A criterion [`Measurement`] on Linux `perf_event_open` (the `perf-event` crate).
//!
//! [`Perf::open`] asks for a hardware counter (cycles, instructions, cache misses). Where the
//! processor or hypervisor does not expose it (as on the project's CI VMs), it says so on
//! stderr, records the fact for the report, and counts the named software fallback instead
//! (task clock, context switches), so the figures stay meaningful and honestly labelled.
//!
//! Counters are opened with `inherit`, so threads a workload spawns inside its measured
//! region (and joins before the region ends) are counted too.

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::Throughput;
use perf_event::events::{Event, Hardware, Software};
use perf_event::{Builder, Counter};
use std::cell::RefCell;

/// What a [`Perf`] measurement counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    Cycles,
    Instructions,
    CacheMisses,
    TaskClock,
    ContextSwitches,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::Cycles => "cycles",
            Metric::Instructions => "instructions",
            Metric::CacheMisses => "cache-misses",
            Metric::TaskClock => "task-clock-ns",
            Metric::ContextSwitches => "context-switches",
        }
    }

    fn event(self) -> Event {
        match self {
            Metric::Cycles => Hardware::CPU_CYCLES.into(),
            Metric::Instructions => Hardware::INSTRUCTIONS.into(),
            Metric::CacheMisses => Hardware::CACHE_MISSES.into(),
            Metric::TaskClock => Software::TASK_CLOCK.into(),
            Metric::ContextSwitches => Software::CONTEXT_SWITCHES.into(),
        }
    }

    /// The software counter standing in for a hardware one.
    pub fn fallback(self) -> Metric {
        match self {
            Metric::Cycles | Metric::Instructions | Metric::CacheMisses => Metric::TaskClock,
            m => m,
        }
    }
}

/// A perf counter as a criterion measurement; the value is the count.
pub struct Perf {
    counter: RefCell<Counter>,
    metric: Metric,
}

fn open(metric: Metric) -> std::io::Result<Counter> {
    let builder = |kernel: bool| {
        let mut b = Builder::new().kind(metric.event());
        b.inherit(true);
        if kernel {
            b.include_kernel();
        }
        b
    };
    if metric == Metric::ContextSwitches {
        // A context switch happens in the kernel: counting user mode only sees none. Needs
        // root or `perf_event_paranoid` <= 1; without it the count is 0, and the report says so.
        if let Ok(c) = builder(true).build() {
            return Ok(c);
        }
        crate::record::note(
            "context switches counted in user mode only (kernel counting not permitted): \
             expect zeros"
                .into(),
        );
    }
    builder(false).build()
}

impl Perf {
    /// Opens `wanted`, or its software fallback (saying so). `None` when perf is unavailable
    /// altogether (no `perf_event_open`, or `perf_event_paranoid` forbids it).
    pub fn open(wanted: Metric) -> Option<Perf> {
        let (counter, metric) = match open(wanted) {
            Ok(c) => (c, wanted),
            Err(e) => {
                let fb = wanted.fallback();
                let note = format!(
                    "hardware counter `{}` unavailable here ({e}); counting software `{}` instead",
                    wanted.name(),
                    fb.name()
                );
                eprintln!("perf: {note}");
                crate::record::note(note);
                match open(fb) {
                    Ok(c) => (c, fb),
                    Err(e) => {
                        let note = format!("perf counter `{}` unavailable too ({e})", fb.name());
                        eprintln!("perf: {note}");
                        crate::record::note(note);
                        return None;
                    }
                }
            }
        };
        Some(Perf {
            counter: RefCell::new(counter),
            metric,
        })
    }

    pub fn metric(&self) -> Metric {
        self.metric
    }
}

impl Measurement for Perf {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        let mut c = self.counter.borrow_mut();
        c.enable().expect("perf enable");
        c.read().expect("perf read")
    }

    fn end(&self, start: u64) -> u64 {
        let mut c = self.counter.borrow_mut();
        let now = c.read().expect("perf read");
        c.disable().expect("perf disable");
        now - start
    }

    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }

    fn zero(&self) -> u64 {
        0
    }

    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        self
    }
}

impl ValueFormatter for Perf {
    fn scale_values(&self, _typical: f64, _values: &mut [f64]) -> &'static str {
        self.metric.name()
    }

    fn scale_throughputs(
        &self,
        _t: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        let per = match *throughput {
            Throughput::Elements(n) | Throughput::Bytes(n) | Throughput::BytesDecimal(n) => n,
            _ => 1,
        } as f64;
        for v in values {
            *v /= per;
        }
        "per element"
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        self.metric.name()
    }
}
