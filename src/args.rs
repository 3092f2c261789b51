//! The flag groups several commands share (activation, table, units, bins, progress, types,
//! formats), each declared once and flattened into the commands' own `Args`
//! (`#[command(flatten)]`), and the value parsers of their flags. Each group turns into the plain
//! settings of `options.rs` here; flag-level mistakes are usage errors (exit 2).

use crate::act::{Activation, Func};
use crate::dtype::DType;
use crate::format::Format;
use crate::options::{ActOptions, HeaderMode, ReadOptions, UnitOptions};
use crate::quantile::RangeEnd;
use crate::usage::{usage, UsageError};
use anyhow::Result;
use clap::{Args, ValueEnum};
use std::path::PathBuf;

/// `--progress` and `-q` of the single-file commands.
#[derive(Args, Debug, Clone, Copy)]
pub struct ProgressArgs {
    /// Progress bar on stderr for inputs over 256 MiB: auto draws it only when stderr is a terminal
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: ProgressArg,
    /// No progress bar
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ActKind {
    /// no function: formats and element types converted, values untouched
    None,
    Relu,
    Leaky,
    Prelu,
    /// the derivative (of --of) times --upstream: the backward pass
    Grad,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OfKind {
    Relu,
    Leaky,
    Prelu,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DTypeArg {
    Same,
    F16,
    Bf16,
    F32,
    F64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    Npy,
    Npz,
    Safetensors,
    Pt,
    Csv,
    Tsv,
}

#[derive(Args, Debug, Clone)]
pub struct ActArgs {
    /// The function
    #[arg(short = 'a', long, value_enum)]
    pub act: Option<ActKind>,
    /// leaky's negative slope [default: 0.01, PyTorch's]
    // hyphen values, not just negative numbers: clap's number test misses exponents (`-1e-3`)
    #[arg(long, allow_hyphen_values = true, value_name = "S")]
    pub slope: Option<f64>,
    /// prelu's slopes: one number, a comma list, or a 1-D .npy (or one-tensor .safetensors) file; one per channel
    #[arg(long, allow_hyphen_values = true, value_name = "A")]
    pub alpha: Option<String>,
    /// The axis that indexes prelu channels; negative counts from the end
    #[arg(long, allow_negative_numbers = true, default_value_t = 1, value_name = "N")]
    pub channel_axis: i64,
    /// With --act grad: whose derivative
    #[arg(long, value_enum)]
    pub of: Option<OfKind>,
    /// With --act grad: the upstream gradient (same shape as INPUT); output = upstream × f′(x)
    #[arg(long, value_name = "FILE")]
    pub upstream: Option<PathBuf>,
}

/// How CSV and `.npz` inputs are read.
#[derive(Args, Debug, Clone)]
pub struct TableArgs {
    /// CSV delimiter of input and output [default: ',' ('\t' for .tsv)]
    #[arg(short = 'd', long, value_name = "C")]
    pub delimiter: Option<String>,
    /// The first CSV record is a header (default: when any of its fields is not a number)
    #[arg(long, conflicts_with = "no_header")]
    pub header: bool,
    /// The first CSV record is data
    #[arg(long)]
    pub no_header: bool,
    /// .npz or .safetensors input: only this member (an .npz name with or without .npy) or tensor
    #[arg(long, value_name = "NAME")]
    pub member: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct UnitArgs {
    /// The axis that indexes units: neurons (N,U) or channels (N,C,H,W); negative from the end
    #[arg(long, allow_negative_numbers = true, default_value_t = 1, value_name = "N")]
    pub unit_axis: i64,
    /// A unit active for less than this fraction of its elements is "near dead"
    #[arg(long, default_value_t = 0.01, value_name = "T", allow_negative_numbers = true, value_parser = parse_threshold)]
    pub dead_threshold: f64,
    /// A unit whose largest |output| exceeds this is an outlier (LLM.int8's 6.0)
    #[arg(long, default_value_t = 6.0, value_name = "X", allow_negative_numbers = true, value_parser = parse_limit)]
    pub outlier_threshold: f64,
    /// A unit is dormant when its mean |output| over the mean of all units' is at most this (ReDo's τ)
    #[arg(long, default_value_t = 0.025, value_name = "TAU", allow_negative_numbers = true, value_parser = parse_limit)]
    pub dormant_tau: f64,
}

/// Histogram bins shared by `stats`, `apply --stats` and `hist`.
#[derive(Args, Debug, Clone)]
pub struct BinArgs {
    /// Histogram bins (equal width, as numpy.histogram) [hist default: 30]
    #[arg(long, value_name = "N", value_parser = parse_bins)]
    pub bins: Option<usize>,
    /// Histogram range, as --range=LO:HI; hist also takes percentiles of the data, --range=p0.5:p99.5 [hist default: the finite min and max of the data]
    #[arg(long, value_name = "LO:HI", allow_hyphen_values = true, value_parser = crate::quantile::parse_range)]
    pub range: Option<(RangeEnd, RangeEnd)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProgressArg {
    Auto,
    Always,
    Never,
}

impl From<ProgressArg> for crate::progress::When {
    fn from(p: ProgressArg) -> Self {
        match p {
            ProgressArg::Auto => Self::Auto,
            ProgressArg::Always => Self::Always,
            ProgressArg::Never => Self::Never,
        }
    }
}

impl ActArgs {
    /// What these flags ask to compute; `default` when --act is absent; `dtype` is `--dtype`.
    pub fn options(&self, default: Option<ActKind>, dtype: DTypeArg) -> Result<ActOptions> {
        let act = self.act.or(default);
        if self.of.is_some() && act != Some(ActKind::Grad) {
            return usage("--of only goes with --act grad");
        }
        if self.upstream.is_some() && act != Some(ActKind::Grad) {
            return usage("--upstream only goes with --act grad");
        }
        let of = match self.of.unwrap_or(OfKind::Relu) {
            OfKind::Relu => Func::Relu,
            OfKind::Leaky => Func::Leaky,
            OfKind::Prelu => Func::Prelu,
        };
        let act = act.and_then(|a| match a {
            ActKind::None => None,
            ActKind::Relu => Some(Activation::Value(Func::Relu)),
            ActKind::Leaky => Some(Activation::Value(Func::Leaky)),
            ActKind::Prelu => Some(Activation::Value(Func::Prelu)),
            ActKind::Grad => Some(Activation::Grad(of)),
        });
        let func = act.map(|a| a.func());
        if self.slope.is_some() && func != Some(Func::Leaky) {
            return usage("--slope goes with --act leaky (or --act grad --of leaky)");
        }
        let alpha = match (&self.alpha, func) {
            (Some(spec), Some(Func::Prelu)) => Some(crate::source::read_alpha(spec)?),
            (None, Some(Func::Prelu)) => return usage("--act prelu (and --of prelu) needs --alpha"),
            (Some(_), _) => return usage("--alpha goes with --act prelu or --of prelu"),
            (None, _) => None,
        };
        Ok(ActOptions {
            act,
            slope: self.slope,
            alpha,
            channel_axis: self.channel_axis,
            upstream: self.upstream.clone(),
            alpha_file: self.alpha.as_deref().and_then(crate::source::alpha_file),
            dtype: dtype.dtype(),
        })
    }
}

impl TableArgs {
    /// How inputs are read; `from` is `--from`.
    pub fn options(&self, from: Option<FormatArg>) -> Result<ReadOptions> {
        let delimiter = match self.delimiter.as_deref() {
            Some(d) => Some(crate::options::parse_delimiter(d)?),
            None => None,
        };
        let header = match (self.header, self.no_header) {
            (true, _) => HeaderMode::Yes,
            (_, true) => HeaderMode::No,
            _ => HeaderMode::Auto,
        };
        Ok(ReadOptions { format: from.map(FormatArg::format), delimiter, header, member: self.member.clone() })
    }
}

impl UnitArgs {
    pub fn options(&self) -> UnitOptions {
        UnitOptions {
            axis: Some(self.unit_axis),
            threshold: self.dead_threshold,
            range_only: false,
            limits: crate::stats::UnitLimits { outlier: self.outlier_threshold, dormant_tau: self.dormant_tau },
        }
    }
}

/// A count of at most `max` (each unit of it costs memory per thread).
pub fn at_most(s: &str, max: usize, what: &str) -> Result<usize, String> {
    let n: usize = s.parse().map_err(|e| format!("{e}"))?;
    if n > max {
        return Err(format!("at most {max} {what}"));
    }
    Ok(n)
}

/// `-j`: at most [`crate::options::MAX_THREADS`] (each thread holds its own buffers and counters).
pub fn parse_threads(s: &str) -> Result<usize, String> {
    at_most(s, crate::options::MAX_THREADS, "threads")
}

/// `--bins`: at most [`crate::hist::MAX_BINS`] (every thread counts into its own set).
pub fn parse_bins(s: &str) -> Result<usize, String> {
    at_most(s, crate::hist::MAX_BINS, "bins")
}

impl BinArgs {
    /// Whether an end of `--range` is a percentile of the data.
    pub fn has_percentile(&self) -> bool {
        matches!(self.range, Some((a, b)) if matches!(a, RangeEnd::Percentile(_)) || matches!(b, RangeEnd::Percentile(_)))
    }

    /// The bins these flags fix, when they fix them (`--range=LO:HI` given, no percentile); `n` is
    /// the default count.
    pub fn fixed(&self, n: usize) -> Result<Option<crate::hist::Bins>> {
        match (self.range, self.bins) {
            (Some((RangeEnd::At(lo), RangeEnd::At(hi))), bins) => crate::hist::Bins::new(lo, hi, bins.unwrap_or(n))
                .map(Some)
                .map_err(|e| UsageError(format!("--range: {e}")).into()),
            // a percentile: the range comes from the data (hist)
            (Some(_), Some(0)) => usage("--bins must be at least 1"),
            (Some(_), _) => Ok(None),
            (None, Some(0)) => usage("--bins must be at least 1"),
            (None, _) => Ok(None),
        }
    }

    /// For `stats` and `apply --stats`: a histogram only with both --bins and --range, so that
    /// shards share their edges and merge.
    pub fn for_stats(&self) -> Result<Option<crate::hist::Bins>> {
        match (self.bins, self.range) {
            (None, None) => Ok(None),
            (Some(_), Some(_)) if self.has_percentile() => usage(
                "--range with a percentile (pLO:pHI) is for relu hist: a histogram in the statistics needs \
                 --range=LO:HI in numbers (shards merge only with equal edges)",
            ),
            (Some(_), Some(_)) => self.fixed(30),
            _ => usage("a histogram in the statistics needs both --bins N and --range=LO:HI (shards merge only with equal edges)"),
        }
    }
}

/// `--dead-threshold`: a fraction of a unit's elements, in [0, 1].
pub fn parse_threshold(s: &str) -> Result<f64, String> {
    let t: f64 = s.trim().parse().map_err(|_| format!("'{s}' is not a number"))?;
    if !(0.0..=1.0).contains(&t) {
        return Err(format!("{s} is not a fraction of elements (give a number from 0 to 1, e.g. 0.01)"));
    }
    Ok(t)
}

/// A finite number >= 0 (`--outlier-threshold`, `--dormant-tau`).
pub fn parse_limit(s: &str) -> Result<f64, String> {
    let t: f64 = s.trim().parse().map_err(|_| format!("'{s}' is not a number"))?;
    if !(t.is_finite() && t >= 0.0) {
        return Err(format!("{s}: give a finite number >= 0"));
    }
    Ok(t)
}

impl DTypeArg {
    pub fn dtype(self) -> Option<DType> {
        match self {
            DTypeArg::Same => None,
            DTypeArg::F16 => Some(DType::F16),
            DTypeArg::Bf16 => Some(DType::BF16),
            DTypeArg::F32 => Some(DType::F32),
            DTypeArg::F64 => Some(DType::F64),
        }
    }
}

impl FormatArg {
    pub fn format(self) -> Format {
        match self {
            FormatArg::Npy => Format::Npy,
            FormatArg::Npz => Format::Npz,
            FormatArg::Safetensors => Format::Safetensors,
            FormatArg::Pt => Format::Pt,
            FormatArg::Csv => Format::Csv,
            FormatArg::Tsv => Format::Tsv,
        }
    }
}
