//! Command-line definitions (clap), one struct per subcommand, and the top-level run: parse,
//! dispatch, print the error chain once, map to exit codes.

use crate::act::{Activation, Func};
use crate::cmd;
use crate::dtype::DType;
use crate::format::Format;
use crate::options::{self, usage, ActOptions, HeaderMode, ReadOptions, UnitOptions, UsageError};
use crate::quantile::RangeEnd;
use anyhow::Result;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "relu",
    about = "Stream .npy, .npz, .safetensors and CSV arrays (f16, bf16, f32, f64, integers) through PyTorch-exact ReLU, leaky ReLU, PReLU and their gradients, with sparsity and dead-unit statistics and histograms",
    long_about = None,
    after_help = "Examples:\n  relu apply acts.npy -o out.npy\n  relu apply x.npy --act leaky --slope 0.2 | relu inspect -\n  relu apply x.npy --act grad --of prelu --alpha 0.1,0.2,0.3 --upstream g.npy -o dx.npy\n  relu apply table.csv -o table.npy\n  relu apply acts.npz -o acts_relu.npz\n  relu apply acts.npz --member layer1 -o layer1.csv\n  relu apply dump.safetensors -o dump_relu.safetensors\n  relu apply x.npy --dtype bf16 -o x.safetensors\n  relu stats --act relu layer1.npy\n  relu hist --act relu layer*.npy -o layers.png\n  relu apply x.npy -o y.npy --stats y.json && relu merge-stats shard-*.json\n  relu inspect --json *.npy"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

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

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Transform one array through an activation (default: relu)
    Apply(ApplyArgs),
    /// Statistics of arrays: sparsity, dead units, distribution (optionally after --act)
    Stats(StatsArgs),
    /// Histograms of arrays (optionally after --act): terminal bars, CSV, JSON, SVG or PNG
    Hist(HistArgs),
    /// Apply (and statistics) over many files and directories on every core, outputs mirroring the tree
    Batch(BatchArgs),
    /// Merge statistics JSON written by stats / apply --stats (shards) exactly
    MergeStats(MergeArgs),
    /// Show what a file holds, from its header only
    Inspect(InspectArgs),
    /// Print a shell completion script (e.g. `relu completions bash > ~/.local/share/bash-completion/completions/relu`)
    Completions(CompletionsArgs),
    /// Print the man page (roff): `relu man > relu.1 && man ./relu.1`
    Man,
}

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ActKind {
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

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  relu apply acts.npy -o out.npy\n  relu apply x.npy --act leaky --slope 0.2 -o y.npy\n  relu apply x.npy --act grad --upstream g.npy -o dx.npy\n  relu apply table.csv -o table.npy\n  relu apply dump.safetensors -o dump_relu.safetensors\n  relu apply acts.npz --member layer1 -o layer1.csv\n  relu apply x.npy -o y.npy --stats y.json --bins 100 --range=-4:4\n  cat x.npy | relu apply --act leaky > y.npy"
)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub progress: ProgressArgs,
    #[command(flatten)]
    pub act: ActArgs,
    /// Input .npy, .npz, .safetensors, CSV or TSV file, or - for stdin
    #[arg(default_value = "-")]
    pub input: PathBuf,
    /// Output file, or - for stdout (the default)
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Input format (default: by extension, for stdin by content)
    #[arg(long, value_enum)]
    pub from: Option<FormatArg>,
    /// Output format (default: by -o's extension, else the input's)
    #[arg(long, value_enum)]
    pub to: Option<FormatArg>,
    /// Output element type; the activation runs in the input's float type, then rounds once
    #[arg(long, value_enum, default_value = "same")]
    pub dtype: DTypeArg,
    /// Overwrite the data of a .npy INPUT in place (fast; not atomic; no dtype change)
    #[arg(long)]
    pub in_place: bool,
    #[command(flatten)]
    pub table: TableArgs,
    /// Also write statistics (JSON) of the output, from the same pass, to PATH (- for stdout)
    #[arg(long, value_name = "PATH")]
    pub stats: Option<PathBuf>,
    /// Threads: a .npy file is processed in this many ranges, CSV parsed on this many workers [default: all cores]
    #[arg(short = 'j', long, value_name = "N", value_parser = parse_threads)]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub units: UnitArgs,
    #[command(flatten)]
    pub bins: BinArgs,
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
}

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  relu stats --act relu layer1.npy\n  relu stats --act relu --unit-axis 1 --dead-threshold 0.05 conv.npy\n  relu stats --json --act relu dump.safetensors\n  relu stats --json --bins 100 --range=-4:4 shard1.npy > s1.json"
)]
pub struct StatsArgs {
    #[command(flatten)]
    pub progress: ProgressArgs,
    #[command(flatten)]
    pub act: ActArgs,
    #[command(flatten)]
    pub units: UnitArgs,
    #[command(flatten)]
    pub bins: BinArgs,
    /// JSON (one object per array, JSON Lines) instead of the table
    #[arg(long)]
    pub json: bool,
    /// Element type to compute in (integer input with leaky/prelu needs a float type)
    #[arg(long, value_enum, default_value = "same")]
    pub dtype: DTypeArg,
    /// Worker threads [default: all cores]
    #[arg(short = 'j', long, value_name = "N", value_parser = parse_threads)]
    pub threads: Option<usize>,
    /// Input format (default: by extension, for stdin by content)
    #[arg(long, value_enum)]
    pub from: Option<FormatArg>,
    #[command(flatten)]
    pub table: TableArgs,
    /// Input files: .npy, .npz (one object per member), .safetensors (one per tensor), CSV or TSV (- for stdin)
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorArg {
    Auto,
    Always,
    Never,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum HistFormatArg {
    Text,
    Csv,
    Json,
    Svg,
    Png,
}

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  relu hist --act relu layer1.npy\n  relu hist --act relu layer*.npy -o layers.png\n  relu hist --act relu --ridge ckpt_*/layer3.npy -o layer3.png\n  relu hist --active-rate --act relu layer1.npy\n  relu hist --bins 100 --range=-4:4 --format json x.npy\n  relu hist --from-stats merged.json -o all.svg"
)]
pub struct HistArgs {
    #[command(flatten)]
    pub progress: ProgressArgs,
    #[command(flatten)]
    pub act: ActArgs,
    #[command(flatten)]
    pub bins: BinArgs,
    /// Output format [default: from -o's extension, else text]
    #[arg(long, value_enum)]
    pub format: Option<HistFormatArg>,
    /// Output file (.svg, .png, .csv, .json, .txt), or - for stdout
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// A logarithmic count axis (SVG and PNG)
    #[arg(long)]
    pub log_y: bool,
    /// Coloured terminal bars: auto = on a terminal, unless NO_COLOR is set or TERM=dumb
    #[arg(long, value_enum, default_value = "auto", value_name = "WHEN")]
    pub color: ColorArg,
    /// Image size in pixels (SVG and PNG) [default: 900x500, more for several panels]
    #[arg(long, value_name = "WxH", value_parser = parse_size)]
    pub size: Option<(u32, u32)>,
    /// The inputs, in the order given, as stacked offset curves (checkpoints over time)
    #[arg(long, conflicts_with = "active_rate")]
    pub ridge: bool,
    /// The distribution of per-unit active rates (dead units in a bar of their own)
    #[arg(long)]
    pub active_rate: bool,
    #[command(flatten)]
    pub units: UnitArgs,
    /// Draw the histograms stored in statistics JSON (stats/merge-stats with --bins and --range)
    #[arg(long, value_name = "FILE", conflicts_with_all = ["inputs", "active_rate"])]
    pub from_stats: Option<PathBuf>,
    /// Element type to compute in (integer input with leaky/prelu needs a float type)
    #[arg(long, value_enum, default_value = "same")]
    pub dtype: DTypeArg,
    /// Worker threads [default: all cores]
    #[arg(short = 'j', long, value_name = "N", value_parser = parse_threads)]
    pub threads: Option<usize>,
    /// Input format (default: by extension, for stdin by content)
    #[arg(long, value_enum)]
    pub from: Option<FormatArg>,
    #[command(flatten)]
    pub table: TableArgs,
    /// Input files: .npy, .npz (one histogram per member), .safetensors (one per tensor), CSV or TSV (- for stdin)
    #[arg(required_unless_present = "from_stats")]
    pub inputs: Vec<PathBuf>,
}

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  relu batch --out-dir out/ acts/\n  relu batch --out-dir out/ --stats stats.jsonl --act leaky --slope 0.1 acts/ more.npz\n  relu batch --out-dir out/ --shard 2/8 --stats shard-2.jsonl acts/   # machine 2 of 8\n  relu merge-stats shard-*.jsonl"
)]
pub struct BatchArgs {
    #[command(flatten)]
    pub act: ActArgs,
    /// Where the outputs go, mirroring the input tree
    #[arg(long, value_name = "DIR")]
    pub out_dir: PathBuf,
    /// Output element type; the activation runs in the input's float type, then rounds once
    #[arg(long, value_enum, default_value = "same")]
    pub dtype: DTypeArg,
    #[command(flatten)]
    pub table: TableArgs,
    /// Also write statistics: one JSON object per array (JSON Lines), in input order
    #[arg(long, value_name = "FILE")]
    pub stats: Option<PathBuf>,
    #[command(flatten)]
    pub units: UnitArgs,
    #[command(flatten)]
    pub bins: BinArgs,
    /// Take every N-th input (sorted byte-wise) from the I-th: machine I of N (1-based)
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    pub shard: Option<(usize, usize)>,
    /// Skip inputs whose output exists (outputs are complete or absent)
    #[arg(long)]
    pub skip_existing: bool,
    /// Stop at the first failure (otherwise failures are listed at the end)
    #[arg(long)]
    pub fail_fast: bool,
    /// Make each output survive power loss: fsync it before the rename, and its directory after
    #[arg(long)]
    pub sync: bool,
    /// Progress bar on stderr: auto draws it only when stderr is a terminal
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: ProgressArg,
    /// No progress and no summary line (failures are still reported)
    #[arg(short, long)]
    pub quiet: bool,
    /// Worker threads [default: all cores]
    #[arg(short = 'j', long, value_name = "N", value_parser = parse_threads)]
    pub threads: Option<usize>,
    /// Files and directories (searched recursively for .npy, .npz, .safetensors, .csv, .tsv)
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
}

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  relu merge-stats shard-*.jsonl > all.json\n  relu hist --from-stats all.json -o all.png"
)]
pub struct MergeArgs {
    /// Where to write the merged object (default: stdout)
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// Statistics files (JSON objects or JSON Lines; - for stdin)
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  relu inspect x.npy acts.npz dump.safetensors\n  relu inspect --json *.npy")]
pub struct InspectArgs {
    /// JSON Lines: one object per array
    #[arg(long)]
    pub json: bool,
    /// Files to inspect (- for stdin)
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

// ------------------------------------------------------------- arguments → settings
// The groups of flags turn into the plain settings of `options.rs` here; each command's entry
// function assembles them. Flag-level mistakes are usage errors (exit 2).

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
        let act = act.map(|a| match a {
            ActKind::Relu => Activation::Value(Func::Relu),
            ActKind::Leaky => Activation::Value(Func::Leaky),
            ActKind::Prelu => Activation::Value(Func::Prelu),
            ActKind::Grad => Activation::Grad(of),
        });
        let func = act.map(|a| a.func());
        if self.slope.is_some() && func != Some(Func::Leaky) {
            return usage("--slope goes with --act leaky (or --act grad --of leaky)");
        }
        let alpha = match (&self.alpha, func) {
            (Some(spec), Some(Func::Prelu)) => Some(options::read_alpha(spec)?),
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
            alpha_file: self.alpha.as_deref().and_then(options::alpha_file),
            dtype: dtype.dtype(),
        })
    }
}

impl TableArgs {
    /// How inputs are read; `from` is `--from`.
    pub fn options(&self, from: Option<FormatArg>) -> Result<ReadOptions> {
        let delimiter = match self.delimiter.as_deref() {
            Some(d) => Some(options::parse_delimiter(d)?),
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
        UnitOptions { axis: Some(self.unit_axis), threshold: self.dead_threshold, range_only: false }
    }
}

/// `--shard I/N`, 1-based.
fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("'{s}' is not a shard: give I/N with 1 <= I <= N, e.g. --shard 2/8");
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let (i, n): (usize, usize) = (i.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
    if i == 0 || i > n {
        return Err(bad());
    }
    Ok((i, n))
}

/// `--size WxH`.
fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let bad = || format!("'{s}' is not a size: give WxH in pixels, e.g. 1200x800");
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    let (w, h): (u32, u32) = (w.trim().parse().map_err(|_| bad())?, h.trim().parse().map_err(|_| bad())?);
    // a PNG is drawn in memory, 3 bytes a pixel: 8192 x 8192 is 192 MiB
    if !(100..=8192).contains(&w) || !(100..=8192).contains(&h) {
        return Err(format!("--size {s}: each side must be 100 to 8192 pixels"));
    }
    Ok((w, h))
}

/// A count of at most `max` (each unit of it costs memory per thread).
fn at_most(s: &str, max: usize, what: &str) -> Result<usize, String> {
    let n: usize = s.parse().map_err(|e| format!("{e}"))?;
    if n > max {
        return Err(format!("at most {max} {what}"));
    }
    Ok(n)
}

/// `-j`: at most [`crate::options::MAX_THREADS`] (each thread holds its own buffers and counters).
fn parse_threads(s: &str) -> Result<usize, String> {
    at_most(s, crate::options::MAX_THREADS, "threads")
}

/// `--bins`: at most [`crate::hist::MAX_BINS`] (every thread counts into its own set).
fn parse_bins(s: &str) -> Result<usize, String> {
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
fn parse_threshold(s: &str) -> Result<f64, String> {
    let t: f64 = s.trim().parse().map_err(|_| format!("'{s}' is not a number"))?;
    if !(0.0..=1.0).contains(&t) {
        return Err(format!("{s} is not a fraction of elements (give a number from 0 to 1, e.g. 0.01)"));
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
            FormatArg::Csv => Format::Csv,
            FormatArg::Tsv => Format::Tsv,
        }
    }
}

/// `relu 0.1.0 (kernel: avx2+f16c)`: the version says which SIMD level runs here.
pub fn version() -> String {
    format!("{} (kernel: {})", env!("CARGO_PKG_VERSION"), crate::kernel::Level::detect().name())
}

/// `relu completions SHELL`: the script, from the clap definitions.
fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "relu", &mut out);
    std::io::Write::write_all(&mut std::io::stdout(), &out)?;
    Ok(())
}

/// `relu man`: one page, as ripgrep's: what relu is, then a section per subcommand with its
/// synopsis, every option and its examples (clap_mangen's own pages would point at
/// `relu-apply(1)` and the like, which nothing installs).
fn man() -> anyhow::Result<()> {
    let mut root = Cli::command().version(version());
    root.build();
    let top = clap_mangen::Man::new(root.clone());
    let mut page = String::new();
    page += &roff(|w| top.render_title(w))?;
    page += &roff(|w| top.render_name_section(w))?;
    page += &roff(|w| top.render_synopsis_section(w))?;
    page += &roff(|w| top.render_description_section(w))?;
    page.push_str(".PP\nEach command's options and examples are in its section below (COMMAND: RELU APPLY, ...).\n");
    page += &roff(|w| top.render_options_section(w))?;
    page.push_str(".SH COMMANDS\n");
    let subs: Vec<&clap::Command> = root.get_subcommands().filter(|s| s.get_name() != "help").collect();
    for sub in &subs {
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        page.push_str(&format!(".TP\n\\fBrelu {}\\fR\n{}\n", roff_text(sub.get_name()), roff_text(&about)));
    }
    for sub in &subs {
        let name = format!("relu {}", sub.get_name());
        let man = clap_mangen::Man::new((*sub).clone().bin_name(name.clone()));
        page.push_str(&format!(".SH \"COMMAND: {}\"\n", roff_text(&name.to_uppercase())));
        page += &roff(|w| man.render_description_section(w))?.replace(".SH DESCRIPTION\n", "");
        page += &roff(|w| man.render_synopsis_section(w))?.replace(".SH SYNOPSIS", ".SS Synopsis");
        page += &roff(|w| man.render_options_section(w))?.replace(".SH OPTIONS", ".SS Options");
        page += &examples(sub, ".SS Examples");
    }
    page += &examples(&root, ".SH EXAMPLES");
    page.push_str(&format!(
        ".SH ENVIRONMENT\n.TP\n\\fBRELU_MAX_RECORD\\fR\n{}\n.TP\n\\fBNO_COLOR\\fR, \\fBTERM\\fR=dumb, \\fBCOLUMNS\\fR\n{}\n",
        roff_text(&format!(
            "The longest CSV record read, in MiB (default {}, at most {}): a longer one is refused as an unterminated \
             quote or a missing line end. Raise it for rows that wide; each block in flight may hold one record.",
            crate::format::csv::MAX_RECORD >> 20,
            crate::format::csv::MAX_RECORD_CEILING_MIB
        )),
        roff_text("hist's terminal bars: no colour under NO_COLOR or TERM=dumb; COLUMNS sets their width.")
    ));
    page += &roff(|w| top.render_version_section(w))?;
    std::io::Write::write_all(&mut std::io::stdout(), page.as_bytes())?;
    Ok(())
}

/// One of clap_mangen's sections as text.
fn roff(render: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>) -> anyhow::Result<String> {
    let mut out = Vec::new();
    render(&mut out)?;
    Ok(String::from_utf8(out)?)
}

/// Text for a roff line: backslashes and hyphens escaped, no line starting with a control character.
fn roff_text(s: &str) -> String {
    let t = s.replace('\\', "\\e").replace('-', "\\-");
    if t.starts_with(['.', '\'']) {
        format!("\\&{t}")
    } else {
        t
    }
}

/// The `Examples:` lines of a command's help, one a line (unfilled), under `heading`.
fn examples(cmd: &clap::Command, heading: &str) -> String {
    let Some(help) = cmd.get_after_help().map(|h| h.to_string()) else { return String::new() };
    let lines: Vec<&str> =
        help.lines().filter(|l| l.trim_start().starts_with("relu ") || l.contains("| relu")).collect();
    if lines.is_empty() {
        return String::new();
    }
    let mut out = format!("{heading}\n.nf\n");
    for l in lines {
        out.push_str(&roff_text(l.trim()));
        out.push('\n');
    }
    out.push_str(".fi\n");
    out
}

/// Parses the command line, runs it, reports an error once. Returns the exit code.
pub fn main() -> i32 {
    let cmd = Cli::command().version(version());
    let cli = match cmd.try_get_matches().and_then(|m| Cli::from_arg_matches(&m)) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    crate::output::install_interrupt_cleanup();
    let result = crate::format::csv::set_max_record_from_env().and_then(|()| match cli.command {
        Command::Apply(a) => cmd::apply::run(a),
        Command::Stats(a) => cmd::stats::run(a),
        Command::Hist(a) => cmd::hist::run(a),
        Command::Batch(a) => cmd::batch::run(a),
        Command::MergeStats(a) => cmd::merge::run(a),
        Command::Inspect(a) => cmd::inspect::run(a),
        Command::Completions(a) => completions(a.shell),
        Command::Man => man(),
    });
    match result {
        Ok(()) => 0,
        Err(e) if crate::output::is_broken_pipe(&e) => 0,
        Err(e) => {
            let usage = e.chain().any(|c| c.downcast_ref::<UsageError>().is_some());
            crate::errln!("relu: {e:#}");
            if usage {
                2
            } else {
                1
            }
        }
    }
}
