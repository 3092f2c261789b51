//! What a job found, joined for the commands: each array's histogram (its observer) put into
//! its statistics, and the histogram as the pipeline's observer. Stands above `job.rs`, which
//! runs the observers, and above `stats.rs` and `hist.rs`, which know nothing of each other's
//! files or of jobs.

use crate::dtype::DType;
use crate::hist::{Bins, Histogram};
use crate::job::{ArrayReport, MakeObserver};
use crate::pipeline::Observer;
use crate::with_element;
use std::any::Any;
use std::sync::Arc;

impl Observer for Histogram {
    fn observe(&mut self, values: &[u8], dtype: DType, _start: u64) {
        with_element!(dtype, T => self.add::<T>(bytemuck::cast_slice(values)))
    }
    fn fresh(&self) -> Box<dyn Observer> {
        Box::new(Histogram::new(self.bins.clone()))
    }
    fn merge(&mut self, other: Box<dyn Observer>) {
        if let Ok(o) = other.into_any().downcast::<Histogram>() {
            Histogram::merge(self, &o);
        }
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

/// Puts each array's histogram (its observer, when that is a [`Histogram`]) into its statistics.
pub fn attach_to_stats(reports: &mut [ArrayReport]) {
    for r in reports {
        if let (Some(s), Some(o)) = (&mut r.stats, r.observer.take()) {
            if let Ok(mut h) = o.into_any().downcast::<Histogram>() {
                s.hist = Some(h.to_json());
            }
        }
    }
}

/// An observer factory for a job: a fresh histogram of `bins` for every array.
pub fn observer(bins: Bins) -> MakeObserver {
    let bins = Arc::new(bins);
    Arc::new(move || Box::new(Histogram::new(bins.clone())) as Box<dyn Observer>)
}
