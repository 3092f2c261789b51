//! What a job found, joined for the commands: each array's histogram (its observer) put into
//! its statistics, and the histogram as the pipeline's observer. Stands above `job.rs`, which
//! runs the observers, and above `stats.rs` and `hist.rs`, which know nothing of each other's
//! files or of jobs.

use crate::dtype::DType;
use crate::dtype::Element;
use crate::hist::{Bins, Histogram};
use crate::job::{ArrayReport, MakeObserver};
use crate::pipeline::{observe_typed, Observer, TypedObserver};
use crate::quantile::{Pass, PassCounter};
use std::sync::Arc;

impl TypedObserver for Histogram {
    fn add_values<T: Element>(&mut self, xs: &[T]) {
        self.add(xs)
    }
}

impl Observer for Histogram {
    fn observe(&mut self, values: &[u8], dtype: DType, _start: u64) {
        observe_typed(self, values, dtype)
    }
    fn fresh(&self) -> Histogram {
        Histogram::new(self.bins.clone())
    }
    fn merge(&mut self, other: Histogram) {
        Histogram::merge(self, &other);
    }
}

/// Puts each array's histogram (its observer) into its statistics.
pub fn attach_to_stats(reports: &mut [ArrayReport<Histogram>]) {
    for r in reports {
        if let (Some(s), Some(mut h)) = (&mut r.stats, r.observer.take()) {
            s.hist = Some(h.to_json());
        }
    }
}

/// An observer factory for a job: a fresh histogram of `bins` for every array.
pub fn observer(bins: Bins) -> MakeObserver<Histogram> {
    let bins = Arc::new(bins);
    Arc::new(move || Histogram::new(bins.clone()))
}

/// What `stats` watches besides its statistics, each when asked: a histogram (`--bins`,
/// `--range`) and the first pass of the exact quantiles' selection (`--quantiles`), fused
/// with the statistics pass.
pub struct StatsObserver {
    pub hist: Option<Histogram>,
    pub pass: Option<PassCounter>,
}

impl Observer for StatsObserver {
    fn observe(&mut self, values: &[u8], dtype: DType, start: u64) {
        if let Some(h) = &mut self.hist {
            h.observe(values, dtype, start);
        }
        if let Some(p) = &mut self.pass {
            Observer::observe(p, values, dtype, start);
        }
    }
    fn fresh(&self) -> StatsObserver {
        StatsObserver { hist: self.hist.as_ref().map(|h| h.fresh()), pass: self.pass.as_ref().map(|p| p.fresh()) }
    }
    fn merge(&mut self, other: StatsObserver) {
        if let (Some(a), Some(b)) = (&mut self.hist, other.hist) {
            Observer::merge(a, b);
        }
        if let (Some(a), Some(b)) = (&mut self.pass, other.pass) {
            a.merge_from(&b);
        }
    }
}

/// An observer factory for `stats`: a histogram of `bins` and a quantile selection's first
/// pass, each when asked; `None` when neither is.
pub fn stats_observer(bins: Option<Bins>, first: Option<Arc<Pass>>) -> Option<MakeObserver<StatsObserver>> {
    if bins.is_none() && first.is_none() {
        return None;
    }
    let bins = bins.map(Arc::new);
    Some(Arc::new(move || StatsObserver {
        hist: bins.as_ref().map(|b| Histogram::new(b.clone())),
        pass: first.as_ref().map(|p| PassCounter::new(p.clone())),
    }))
}

/// Puts each array's histogram (from a [`StatsObserver`]) into its statistics.
pub fn attach_observed(reports: &mut [ArrayReport<StatsObserver>]) {
    for r in reports {
        if let (Some(s), Some(h)) = (&mut r.stats, r.observer.as_mut().and_then(|o| o.hist.as_mut())) {
            s.hist = Some(h.to_json());
        }
    }
}
