//! Task Bench's task graphs: a grid of `steps` × `width` points; the task at (step t, point p)
//! reads the outputs of step t − 1 at its dependencies and writes its own. The dependence
//! relations are Task Bench's (`core/core.cc` of github.com/StanfordLegion/task-bench),
//! written here from their definitions, so that a graph here and a graph there are the same
//! graph, edge for edge (`tests/patterns.rs` checks known edges).

use siphasher::sip::SipHasher24;
use std::fmt;
use std::hash::Hasher;
use std::ops::RangeInclusive;

/// A dependence pattern (Task Bench's `-type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// No dependencies at all.
    Trivial,
    /// Each point depends on itself at the previous step.
    NoComm,
    /// Itself and its two neighbours (clipped at the edges).
    Stencil1d,
    /// Itself and its two neighbours, wrapping around.
    Stencil1dPeriodic,
    /// Its parent in a binary tree; the width doubles each step up to the maximum.
    Tree,
    /// A butterfly: itself and the points 2^k away, k cycling through log2(width) stages.
    Fft,
    /// The `radix` points around it.
    Nearest,
    /// `radix` points spread evenly across the width, shifted each step (`period` stages).
    Spread,
    /// The `radix` points around it, each edge kept with probability `fraction` (itself always).
    RandomNearest,
}

impl Pattern {
    /// Every pattern, in Task Bench's order.
    pub const ALL: [Pattern; 9] = [
        Pattern::Trivial,
        Pattern::NoComm,
        Pattern::Stencil1d,
        Pattern::Stencil1dPeriodic,
        Pattern::Tree,
        Pattern::Fft,
        Pattern::Nearest,
        Pattern::Spread,
        Pattern::RandomNearest,
    ];

    /// Task Bench's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Pattern::Trivial => "trivial",
            Pattern::NoComm => "no_comm",
            Pattern::Stencil1d => "stencil_1d",
            Pattern::Stencil1dPeriodic => "stencil_1d_periodic",
            Pattern::Tree => "tree",
            Pattern::Fft => "fft",
            Pattern::Nearest => "nearest",
            Pattern::Spread => "spread",
            Pattern::RandomNearest => "random_nearest",
        }
    }

    /// The pattern of a Task Bench name.
    pub fn from_name(name: &str) -> Option<Pattern> {
        Pattern::ALL.into_iter().find(|p| p.name() == name)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a graph cannot be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadGraph(pub String);

impl fmt::Display for BadGraph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadGraph {}

/// One task graph: a pattern over a `steps` × `width` grid.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Graph {
    /// The dependence pattern.
    pub pattern: Pattern,
    /// Points per step (the most, for `tree`).
    pub width: usize,
    /// Steps (rows of the grid).
    pub steps: usize,
    /// Neighbours per task for `nearest`, `spread` and `random_nearest` (Task Bench: 3).
    pub radix: usize,
    /// Stages before `spread` and `random_nearest` repeat (Task Bench: 3 for those, else 0).
    pub period: usize,
    /// The share of `random_nearest`'s edges kept (Task Bench: 0.25).
    pub fraction: f64,
    /// Task Bench's graph index (0 for the first graph of a run); it seeds `random_nearest`.
    pub index: i64,
}

impl Graph {
    /// A graph with Task Bench's defaults for radix, period and fraction.
    pub fn new(pattern: Pattern, width: usize, steps: usize) -> Result<Graph, BadGraph> {
        Graph {
            pattern,
            width,
            steps,
            radix: 3,
            period: 3,
            fraction: 0.25,
            index: 0,
        }
        .checked()
    }

    /// The graph if its parameters make sense, else why not.
    pub fn checked(mut self) -> Result<Graph, BadGraph> {
        if self.width == 0 || self.steps == 0 {
            return Err(BadGraph("width and steps must be at least 1".into()));
        }
        if self.width > 1 << 20 {
            return Err(BadGraph(format!("width {} is over 2^20", self.width)));
        }
        if self.pattern == Pattern::Fft && self.width < 2 {
            return Err(BadGraph("fft needs a width of at least 2".into()));
        }
        if self.radix > 1 << 10 {
            return Err(BadGraph(format!("radix {} is over 1024", self.radix)));
        }
        if matches!(self.pattern, Pattern::Spread | Pattern::RandomNearest) {
            if self.period == 0 {
                return Err(BadGraph(format!(
                    "{} needs a period of at least 1",
                    self.pattern
                )));
            }
        } else {
            self.period = 0;
        }
        // Task Bench's rule: spread's shift must stay within one stride.
        let stride = self.width.div_ceil(self.radix.max(1));
        if self.pattern == Pattern::Spread && (self.radix == 0 || self.period > stride) {
            return Err(BadGraph(format!(
                "spread needs a radix of at least 1 and a period of at most {stride} (-period)"
            )));
        }
        if !(0.0..=1.0).contains(&self.fraction) {
            return Err(BadGraph("fraction must be in 0..=1".into()));
        }
        Ok(self)
    }

    /// The points of step `t` (all of them, except in `tree`'s first steps).
    pub fn points(&self, t: usize) -> RangeInclusive<usize> {
        let w = match self.pattern {
            Pattern::Tree => self.width.min(1usize << t.min(62)),
            _ => self.width,
        };
        0..=w - 1
    }

    /// How many dependence sets the pattern cycles through.
    fn dependence_sets(&self) -> usize {
        match self.pattern {
            Pattern::Fft => (usize::BITS - (self.width - 1).leading_zeros()) as usize, // ceil(log2)
            Pattern::Spread | Pattern::RandomNearest => self.period,
            _ => 1,
        }
    }

    /// The dependence set of step `t`.
    fn dependence_set(&self, t: usize) -> usize {
        let sets = self.dependence_sets();
        match self.pattern {
            Pattern::Fft => (t + sets - 1) % sets,
            Pattern::Spread | Pattern::RandomNearest => t % sets,
            _ => 0,
        }
    }

    /// The points of step `t − 1` that task (t, p) reads, ascending, each once (Task Bench's
    /// intervals, clipped to the previous step's points; `spread` may name a point twice on a
    /// narrow graph, read once here). Empty at step 0. Appends to `deps`, which it clears.
    pub fn dependencies(&self, t: usize, p: usize, deps: &mut Vec<usize>) {
        deps.clear();
        if t == 0 {
            return;
        }
        let prev = self.points(t - 1);
        let w = self.width as i64;
        let p = p as i64;
        let dset = self.dependence_set(t) as i64;
        let mut span = |lo: i64, hi: i64| {
            for q in lo.max(*prev.start() as i64)..=hi.min(*prev.end() as i64) {
                deps.push(q as usize);
            }
        };
        match self.pattern {
            Pattern::Trivial => {}
            Pattern::NoComm => span(p, p),
            Pattern::Stencil1d => span((p - 1).max(0), (p + 1).min(w - 1)),
            Pattern::Stencil1dPeriodic => {
                span((p - 1).max(0), (p + 1).min(w - 1));
                if p - 1 < 0 {
                    span(w - 1, w - 1);
                }
                if p + 1 >= w {
                    span(0, 0);
                }
            }
            Pattern::Tree => span(p / 2, p / 2),
            Pattern::Fft => {
                let d = 1i64 << dset;
                if p - d >= 0 {
                    span(p - d, p - d);
                }
                span(p, p);
                if p + d < w {
                    span(p + d, p + d);
                }
            }
            Pattern::Nearest => {
                let r = self.radix as i64;
                span((p - r / 2).max(0), (p + (r - 1) / 2).min(w - 1));
            }
            Pattern::Spread => {
                let r = self.radix as i64;
                for i in 0..r {
                    let q = (p + i * w / r + if i > 0 { dset } else { 0 }) % w;
                    span(q, q);
                }
            }
            Pattern::RandomNearest => {
                let r = self.radix as i64;
                for q in (p - r / 2).max(0)..=(p + (r - 1) / 2).min(w - 1) {
                    let key = [self.index, r, dset, q, p];
                    if q == p || random_uniform(&key) < self.fraction {
                        span(q, q);
                    }
                }
            }
        }
        deps.sort_unstable();
        deps.dedup();
    }

    /// Tasks in the graph.
    pub fn tasks(&self) -> u64 {
        (0..self.steps).map(|t| self.points(t).count() as u64).sum()
    }

    /// Dependencies in the graph, counted as Task Bench counts them.
    pub fn edges(&self) -> u64 {
        let mut deps = Vec::new();
        let mut n = 0;
        for t in 0..self.steps {
            for p in self.points(t) {
                self.dependencies(t, p, &mut deps);
                n += deps.len() as u64;
            }
        }
        n
    }
}

/// Task Bench's `random_uniform`: SipHash-2-4 (key 1, 2, ..., 15, 0) of the words' native
/// bytes, as a fraction of 2^64.
fn random_uniform(words: &[i64; 5]) -> f64 {
    let key: [u8; 16] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0];
    let mut h = SipHasher24::new_with_key(&key);
    for w in words {
        h.write(&w.to_ne_bytes());
    }
    h.finish() as f64 * (-64f64).exp2()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deps(g: &Graph, t: usize, p: usize) -> Vec<usize> {
        let mut d = Vec::new();
        g.dependencies(t, p, &mut d);
        d
    }

    #[test]
    fn stencils_clip_or_wrap_at_the_edges() {
        let g = Graph::new(Pattern::Stencil1d, 4, 3).unwrap();
        assert_eq!(deps(&g, 0, 1), [] as [usize; 0]);
        assert_eq!(deps(&g, 1, 0), [0, 1]);
        assert_eq!(deps(&g, 1, 2), [1, 2, 3]);
        assert_eq!(deps(&g, 1, 3), [2, 3]);
        let g = Graph::new(Pattern::Stencil1dPeriodic, 4, 3).unwrap();
        assert_eq!(deps(&g, 1, 0), [0, 1, 3]);
        assert_eq!(deps(&g, 1, 3), [0, 2, 3]);
    }

    #[test]
    fn tree_grows_and_reads_the_parent() {
        let g = Graph::new(Pattern::Tree, 8, 5).unwrap();
        let widths: Vec<usize> = (0..5).map(|t| g.points(t).count()).collect();
        assert_eq!(widths, [1, 2, 4, 8, 8]);
        assert_eq!(deps(&g, 3, 5), [2]);
        assert_eq!(g.tasks(), 23);
    }

    #[test]
    fn fft_cycles_its_stages() {
        let g = Graph::new(Pattern::Fft, 8, 5).unwrap();
        // Three stages; step 1 uses stage 0, step 2 stage 1, step 3 stage 2, step 4 stage 0.
        assert_eq!(deps(&g, 1, 2), [1, 2, 3]);
        assert_eq!(deps(&g, 2, 2), [0, 2, 4]);
        assert_eq!(deps(&g, 3, 2), [2, 6]);
        assert_eq!(deps(&g, 4, 7), [6, 7]);
    }

    #[test]
    fn nearest_and_spread() {
        let mut g = Graph::new(Pattern::Nearest, 8, 3).unwrap();
        g.radix = 5;
        assert_eq!(deps(&g, 1, 0), [0, 1, 2]);
        assert_eq!(deps(&g, 1, 4), [2, 3, 4, 5, 6]);
        let g = Graph::new(Pattern::Spread, 8, 4).unwrap();
        // i·w/r + dset for i > 0: offsets 0, 2 + dset, 5 + dset.
        assert_eq!(deps(&g, 1, 0), [0, 3, 6]);
        assert_eq!(deps(&g, 3, 7), [1, 4, 7]);
        // Two points, radix 3 (period 1, as Task Bench requires): offsets 0, 0 + 0, 1 + 0.
        let e = Graph::new(Pattern::Spread, 2, 3).unwrap_err();
        assert!(e.0.contains("period of at most 1"), "{e}");
        let mut g = Graph {
            period: 1,
            ..Graph::new(Pattern::Nearest, 2, 3).unwrap()
        };
        g.pattern = Pattern::Spread;
        let g = g.checked().unwrap();
        assert_eq!(deps(&g, 1, 0), [0, 1]);
        assert_eq!(deps(&g, 2, 1), [0, 1]);
    }

    #[test]
    fn random_nearest_keeps_itself_and_hashes_the_rest() {
        let g = Graph::new(Pattern::RandomNearest, 8, 4).unwrap();
        let mut kept = 0;
        let mut total = 0;
        for t in 1..4 {
            for p in g.points(t) {
                let d = deps(&g, t, p);
                assert!(d.contains(&p));
                assert!(d.iter().all(|&q| q + 1 >= p && q <= p + 1));
                kept += d.len() - 1;
                total += [p.checked_sub(1), (p + 1 < 8).then_some(p + 1)]
                    .iter()
                    .flatten()
                    .count();
            }
        }
        assert!(kept < total, "every neighbour kept: the hash is not used");
        // The hash is SipHash-2-4: its reference test vector (key 0, 1, ..., 15, the empty
        // message) hashes to 0x726fdb47dd0e0e31.
        let key: [u8; 16] = core::array::from_fn(|i| i as u8);
        assert_eq!(
            SipHasher24::new_with_key(&key).finish(),
            0x726f_db47_dd0e_0e31
        );
    }

    #[test]
    fn bad_parameters_are_refused() {
        assert!(Graph::new(Pattern::Fft, 1, 3).is_err());
        assert!(Graph::new(Pattern::Stencil1d, 0, 3).is_err());
        let mut g = Graph::new(Pattern::Nearest, 4, 3).unwrap();
        g.radix = 2000;
        assert!(g.checked().is_err());
    }
}
