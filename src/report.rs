//! What a job found, joined for the commands: each array's histogram (its observer) put into
//! its statistics, and the histogram as the pipeline's observer. Stands above `job.rs`, which
//! runs the observers, and above `stats.rs` and `hist.rs`, which know nothing of each other's
//! files or of jobs.

use crate::dtype::DType;
use crate::hist::{Bins, Histogram};
use crate::job::{ArrayReport, MakeObserver};
use crate::pipeline::Observer;
use crate::with_element;
use std::sync::Arc;

impl Observer for Histogram {
    fn observe(&mut self, values: &[u8], dtype: DType, _start: u64) {
        with_element!(dtype, T => self.add::<T>(bytemuck::cast_slice(values)))
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
