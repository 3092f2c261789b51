//! `relu hist`: histograms of arrays (the output of `--act`, or the values with no activation), counted
//! as `numpy.histogram` counts them, drawn as terminal bars, CSV, JSON, SVG or PNG. Several inputs
//! share one range (their panels share the x axis); without `--range` it is the finite min and
//! max of all of them, from a first pass (stdin is spooled for it). `--ridge` stacks checkpoints,
//! `--active-rate` shows the per-unit active rates, `--from-stats` draws merged shards.

use crate::args::{parse_threads, ActArgs, BinArgs, DTypeArg, FormatArg, ProgressArgs, TableArgs, UnitArgs};
use crate::format::Format;
use crate::hist::{Bins, HistJson, Histogram, MinMax};
use crate::inputs::Resolve;
use crate::job::{ArrayReport, MakeObserver, Settings};
use crate::options::{is_dash, threads, usage, Dest, UnitOptions, UsageError};
use crate::output::{Output, RunFiles};
use crate::pipeline::{Observer, Unwatched};
use crate::quantile::{self, PassCounter, RangeEnd};
use crate::render::{self, Panel, PlotOptions, Rates, View};
use crate::stats::StatsJson;
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
    /// The picture's title (SVG and PNG)
    #[arg(long, value_name = "TEXT")]
    pub title: Option<String>,
    /// One label per panel or ridge row, comma-separated (SVG and PNG) [default: the inputs'
    /// names less their common leading folders and extensions]
    #[arg(long, value_name = "A,B,...", value_delimiter = ',')]
    pub labels: Option<Vec<String>>,
    /// One x axis for all panels (the default, except as --no-share-x says)
    #[arg(long, overrides_with = "no_share_x")]
    pub share_x: bool,
    /// Each array on its own x range (a percentile range is then each array's own);
    /// the default for SVG/PNG panels without --range when the arrays' ranges differ more than 4x
    #[arg(long, overrides_with = "share_x", conflicts_with = "ridge")]
    pub no_share_x: bool,
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
    /// Inputs: .npy, .npz (one histogram per member), .safetensors and .pt (one per tensor), CSV or TSV files (- for stdin), FILE:NAME (one member or tensor; NAME may be a glob), or directories (searched recursively)
    #[arg(required_unless_present = "from_stats")]
    pub inputs: Vec<PathBuf>,
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

pub fn run(args: HistArgs) -> Result<()> {
    let out_path = args.output.clone().filter(|p| !is_dash(p));
    if let Some(p) = &out_path {
        // before any work: the output may not destroy an input (SPEC §5)
        let mut files = RunFiles::default();
        for input in args.inputs.iter().chain(&args.from_stats) {
            files.input("the input", input);
        }
        if let Some(up) = &args.act.upstream {
            files.input("--upstream", up);
        }
        if let Some(alpha) = args.act.alpha.as_deref().and_then(crate::source::alpha_file) {
            files.input("--alpha", &alpha);
        }
        files.output("-o", p, None)?;
    }
    let format = match (args.format, out_path.as_deref()) {
        (Some(f), _) => f,
        (None, Some(p)) => format_of(p)?,
        (None, None) => HistFormatArg::Text,
    };
    if format == HistFormatArg::Png && out_path.is_none() && std::io::stdout().is_terminal() {
        return usage("refusing to write a PNG to a terminal: use -o FILE.png or a pipe");
    }
    let panels = match &args.from_stats {
        Some(f) => from_stats(f)?,
        None => {
            // the auto range reads the data twice, percentiles two to five times
            let passes = if args.active_rate || args.bins.fixed(30)?.is_some() { 1 } else { 2 };
            let total = passes * crate::progress::input_bytes(&args.inputs, args.from.map(|f| f.format()));
            let _watch =
                crate::progress::Watch::start(args.progress.progress.into(), args.progress.quiet, total, "hist");
            let picture = matches!(format, HistFormatArg::Svg | HistFormatArg::Png);
            Inputs::new(&args)?.panels(&args, picture)?
        }
    };
    if panels.is_empty() {
        // an archive with no members, a safetensors file with no tensors: nothing to count or draw
        let names: Vec<String> =
            args.inputs.iter().map(|p| if is_dash(p) { "<stdin>".into() } else { p.display().to_string() }).collect();
        bail!("{}: no arrays to draw a histogram of", names.join(", "));
    }
    if let Some(l) = &args.labels {
        if l.len() != panels.len() {
            return usage(format!("--labels: {} labels for {} pictures: give one label each", l.len(), panels.len()));
        }
    }
    let opts = PlotOptions {
        view: if args.ridge { View::Ridge } else { View::Panels },
        log_y: args.log_y,
        size: args.size,
        title: args.title.clone(),
        labels: args.labels.clone().unwrap_or_default(),
        // the ranges were chosen above: panels whose ranges differ each keep their own axis
        own_x: panels.windows(2).any(|w| w[0].hist.span() != w[1].hist.span()),
    };
    let mut bytes = Vec::new();
    match format {
        HistFormatArg::Text => {
            let width = terminal_width(std::env::var("COLUMNS").ok().as_deref());
            let colour = match args.color {
                ColorArg::Always => true,
                ColorArg::Never => false,
                // the conventions of ripgrep and fd (no-color.org): a terminal, no NO_COLOR, not dumb
                ColorArg::Auto => {
                    out_path.is_none()
                        && std::io::stdout().is_terminal()
                        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                        && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
                }
            };
            render::text(&panels, width, colour, &mut bytes)?
        }
        HistFormatArg::Csv => render::csv(&panels, &mut bytes)?,
        HistFormatArg::Json => render::json(&panels, &mut bytes)?,
        HistFormatArg::Svg => bytes = render::svg(&panels, &opts)?,
        HistFormatArg::Png => bytes = render::png(&panels, &opts)?,
    }
    match out_path {
        Some(p) => {
            let mut out = Output::create(&p)?;
            out.write_all(&bytes).with_context(|| format!("cannot write {}", p.display()))?;
            out.commit()
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(&bytes)?;
            Ok(out.flush()?)
        }
    }
}

/// The width of the text bars: `COLUMNS` when it is a number (at most [`render::MAX_WIDTH`], as
/// a value past any screen's width is nonsense), else 80.
fn terminal_width(columns: Option<&str>) -> usize {
    let Some(c) = columns.map(str::trim) else { return 80 };
    let w = match c.parse::<u64>() {
        Ok(w) => w,
        // digits past u64 are as far past any screen as the maximum
        Err(_) if !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()) => u64::MAX,
        Err(_) => return 80,
    };
    w.min(render::MAX_WIDTH as u64) as usize
}

/// The histogram format an output path's extension names: text for no extension (`/dev/stdout`,
/// `bars`); an extension relu does not write is a usage error, not text bars in `out.jpg`.
fn format_of(p: &Path) -> Result<HistFormatArg> {
    let Some(ext) = p.extension() else { return Ok(HistFormatArg::Text) };
    Ok(match ext.to_string_lossy().to_ascii_lowercase().as_str() {
        "svg" => HistFormatArg::Svg,
        "png" => HistFormatArg::Png,
        "csv" => HistFormatArg::Csv,
        "json" | "jsonl" => HistFormatArg::Json,
        "txt" => HistFormatArg::Text,
        _ => {
            return usage(format!(
                "-o {}: relu hist does not write .{} files: name a .svg, .png, .csv, .json, .jsonl or .txt \
                 file, or give --format",
                p.display(),
                ext.to_string_lossy()
            ))
        }
    })
}

/// The statistics a pass over the inputs gathers besides its observer.
#[derive(Clone, Copy)]
enum Gather {
    Nothing,
    /// The finite min and max alone (the auto range's first pass).
    Range,
    /// Everything, with the dead units (ridgelines and active rates).
    Units,
    /// Everything but units (the exact zeros).
    Counts,
}

/// The inputs, with stdin spooled to a temporary file (it is read once per pass).
struct Inputs {
    /// Each file (stdin's spool in its place), its format when sniffed, and its member (`FILE:NAME`, `--member`).
    list: Vec<(PathBuf, Option<Format>, Option<String>)>,
    /// Every pass's settings but its observer and statistics.
    settings: Settings,
    units: UnitOptions,
    /// The spool of stdin, and its path (shown as `<stdin>`).
    _spool: Option<tempfile::NamedTempFile>,
    spool_path: Option<PathBuf>,
}

impl Inputs {
    fn new(args: &HistArgs) -> Result<Inputs> {
        let read = args.table.options(args.from)?;
        let act = args.act.options(None, args.dtype)?;
        let mut spool = None;
        let mut list = Vec::new();
        let how = Resolve { member: read.member.as_deref(), format: read.format, dirs: true, skip: None };
        for a in crate::inputs::resolve(&args.inputs, how)? {
            let p = &a.path;
            if is_dash(p) {
                let mut f = tempfile::NamedTempFile::new().context("cannot create a temporary file for stdin")?;
                std::io::copy(&mut std::io::stdin().lock(), f.as_file_mut()).context("<stdin>")?;
                let mut head = [0u8; 9];
                let n = std::fs::File::open(f.path())?.read(&mut head)?;
                let format = read.format.unwrap_or_else(|| Format::sniff(&head[..n]));
                list.push((f.path().to_path_buf(), Some(format), a.member));
                spool = Some(f);
            } else {
                list.push((a.path, None, a.member));
            }
        }
        // a container's arrays one entry each, so that each can have its own range (a network's
        // layers differ in scale) and its own percentiles
        let mut each = Vec::with_capacity(list.len());
        for (path, format, member) in list {
            // (a file that cannot be listed stays one entry: its job says why, naming it as given)
            match crate::job::array_names(&path, format.or(read.format), member.as_deref()) {
                Ok(Some(names)) if names.len() > 1 => {
                    each.extend(names.into_iter().map(|n| (path.clone(), format, Some(n))));
                }
                _ => each.push((path, format, member)),
            }
        }
        let list = each;
        let spool_path = spool.as_ref().map(|s| s.path().to_path_buf());
        Ok(Inputs {
            list,
            settings: Settings { read, act, units: None, threads: threads(args.threads), observer: None },
            units: args.units.options(),
            _spool: spool,
            spool_path,
        })
    }

    /// Runs every input with `observer` and the statistics `gather` asks for: one report per
    /// array, named as the user named the input.
    fn run<O: Observer>(&self, observer: Option<MakeObserver<O>>, gather: Gather) -> Result<Vec<ArrayReport<O>>> {
        self.run_on(&(0..self.list.len()).collect::<Vec<_>>(), observer, gather)
    }

    /// [`Inputs::run`] over the inputs at `which` alone.
    fn run_on<O: Observer>(
        &self,
        which: &[usize],
        observer: Option<MakeObserver<O>>,
        gather: Gather,
    ) -> Result<Vec<ArrayReport<O>>> {
        let units = match gather {
            Gather::Nothing => None,
            Gather::Range => Some(UnitOptions { axis: None, range_only: true, ..self.units }),
            Gather::Units => Some(self.units),
            Gather::Counts => Some(UnitOptions { axis: None, range_only: false, ..self.units }),
        };
        // the files on a pool, each given the threads left over; reports in the inputs' order
        let threads = self.settings.threads;
        let mut settings = self.settings.observing(observer);
        settings.units = units;
        settings.threads = (threads / threads.min(which.len()).max(1)).max(1);
        let one = |k: usize| -> Result<Vec<ArrayReport<O>>> {
            let (path, format, member) = &self.list[which[k]];
            let mut job = settings.job(path.clone(), Dest::Discard);
            job.settings.read.format = format.or(self.settings.read.format);
            job.settings.read.member = member.clone();
            let spooled = self.spool_path.as_ref().filter(|s| *s == path).map(|s| s.display().to_string());
            // errors too are named as the user named the input
            let mut done = job.run().map_err(|e| match &spooled {
                Some(s) => {
                    let text = format!("{e:#}").replacen(s.as_str(), "<stdin>", 1);
                    // a usage error stays one (exit 2), as it is for a file
                    if e.chain().any(|c| c.is::<UsageError>()) {
                        UsageError(text).into()
                    } else {
                        anyhow::anyhow!(text)
                    }
                }
                None => e,
            })?;
            if let Some(s) = &spooled {
                for r in &mut done.reports {
                    r.name = r.name.replacen(s.as_str(), "<stdin>", 1);
                }
            }
            Ok(done.reports)
        };
        let mut reports = Vec::new();
        crate::par::each_in_order(which.len(), threads, one, |_, r| {
            reports.extend(r?);
            Ok(())
        })?;
        Ok(reports)
    }

    /// The panels: one range for all inputs, or (`--no-share-x`, or the picture rule) one per
    /// input.
    fn panels(&self, args: &HistArgs, picture: bool) -> Result<Vec<Panel>> {
        let n = args.bins.bins.unwrap_or(30);
        if args.active_rate {
            // bins on round fractions: 20 of 5% each unless asked
            return self.active_rates(args.bins.bins.unwrap_or(20));
        }
        let all: Vec<usize> = (0..self.list.len()).collect();
        let each: Vec<Vec<usize>> = all.iter().map(|&i| vec![i]).collect();
        let groups: Vec<(Vec<usize>, Bins)> = match (args.bins.fixed(n)?, args.bins.range) {
            (Some(b), _) => vec![(all, b)],
            (None, Some((lo, hi))) if args.no_share_x => each
                .into_iter()
                .map(|g| {
                    let (lo, hi) = self.percentile_range(&g, lo, hi)?;
                    Ok((g, Bins::new(lo, hi, n).map_err(|e| UsageError(format!("--range: {e}")))?))
                })
                .collect::<Result<_>>()?,
            (None, Some((lo, hi))) => {
                let (lo, hi) = self.percentile_range(&all, lo, hi)?;
                vec![(all, Bins::new(lo, hi, n).map_err(|e| UsageError(format!("--range: {e}")))?)]
            }
            (None, None) if picture => {
                // SVG/PNG: each input's bulk, p0.1 to p99.9 widened to round numbers
                let ranges: Vec<(f64, f64)> = each.iter().map(|g| self.bulk_range(g)).collect::<Result<_>>()?;
                let widths = ranges.iter().map(|r| r.1 - r.0);
                let (narrow, wide) = widths.fold((f64::INFINITY, 0f64), |a, w| (a.0.min(w), a.1.max(w)));
                let own = args.no_share_x || (!args.share_x && !args.ridge && wide > 4.0 * narrow);
                if own {
                    each.into_iter()
                        .zip(ranges)
                        .map(|(g, (lo, hi))| Ok((g, Bins::new(lo, hi, n).map_err(anyhow::Error::msg)?)))
                        .collect::<Result<_>>()?
                } else {
                    let lo = ranges.iter().map(|r| r.0).fold(f64::INFINITY, f64::min);
                    let hi = ranges.iter().map(|r| r.1).fold(f64::NEG_INFINITY, f64::max);
                    let (lo, hi) = if lo <= hi { (lo, hi) } else { (0.0, 1.0) };
                    vec![(all, Bins::new(lo, hi, n).map_err(anyhow::Error::msg)?)]
                }
            }
            (None, None) => {
                // the finite min and max (of each input alone under --no-share-x), which the
                // kernel finds as it reads (`Kernel::float_range`)
                let groups = if args.no_share_x { each } else { vec![all] };
                let mut out = Vec::new();
                for g in groups {
                    let (lo, hi) = self.min_max(&g)?;
                    out.push((g, Bins::new(lo, hi, n).map_err(anyhow::Error::msg)?));
                }
                out
            }
        };
        let mut panels = Vec::new();
        // pictures of relu or leaky panels draw the exact zeros apart: counted as the bins are
        use crate::act::{Activation, Func};
        let fires = matches!(self.settings.act.act, Some(Activation::Value(Func::Relu | Func::Leaky)));
        let count_zeros = picture && !args.ridge && fires;
        let gather = if args.ridge {
            Gather::Units
        } else if count_zeros {
            Gather::Counts
        } else {
            Gather::Nothing
        };
        for (g, bins) in groups {
            for mut r in self.run_on(&g, Some(crate::report::observer(bins)), gather)? {
                let Some(mut h) = r.observer.take() else { continue };
                let dead = r.stats.as_ref().and_then(|s| s.units.as_ref()).map(|u| (u.dead, u.count));
                let zeros = r.stats.as_ref().filter(|_| count_zeros).map(|s| s.zeros);
                panels.push(Panel { about: about(&r), name: r.name, hist: h.to_json(), dead, rates: None, zeros });
            }
        }
        Ok(panels)
    }

    /// The finite min and max of the inputs at `which` (NumPy's auto range, from one pass).
    fn min_max(&self, which: &[usize]) -> Result<(f64, f64)> {
        let mut range = MinMax::default();
        for r in self.run_on::<Unwatched>(which, None, Gather::Range)? {
            if let Some(s) = &r.stats {
                range.merge(&MinMax { min: s.min.unwrap_or(f64::INFINITY), max: s.max.unwrap_or(f64::NEG_INFINITY) });
            }
        }
        Ok(range.range())
    }

    /// The pictures' default range: the 0.1th to 99.9th percentile, within Tukey's fences ten
    /// IQRs out (a few outlier units, over 0.1% of the values, do not set the scale; a normal
    /// tail's fence is at 14σ), widened outward to round numbers (a tenth of the width's decade),
    /// kept within the min and max; when that leaves no width (more than 99.9% one value), the
    /// min and max.
    fn bulk_range(&self, which: &[usize]) -> Result<(f64, f64)> {
        let Some(q) = self.quantiles(which, &[0.0, 0.001, 0.25, 0.75, 0.999, 1.0])? else { return Ok((0.0, 1.0)) };
        let (min, mut lo, q1, q3, mut hi, max) = (q[0], q[1], q[2], q[3], q[4], q[5]);
        let iqr = q3 - q1;
        if iqr > 0.0 {
            (lo, hi) = (lo.max(q1 - 10.0 * iqr), hi.min(q3 + 10.0 * iqr));
        }
        if lo >= hi {
            return Ok((min, max));
        }
        Ok(round_out(lo, hi, min, max))
    }

    /// `--range` with a percentile at either end: NumPy's `percentile` (linear) of the finite
    /// values of all inputs together, from the radix-select passes (`quantile`); without a
    /// finite value, the auto range's `(0, 1)` stands in for a percentile.
    fn percentile_range(&self, which: &[usize], lo: RangeEnd, hi: RangeEnd) -> Result<(f64, f64)> {
        let qs: Vec<f64> = [lo, hi]
            .iter()
            .filter_map(|e| match e {
                RangeEnd::Percentile(p) => Some(quantile::fraction(*p)),
                RangeEnd::At(_) => None,
            })
            .collect();
        let found = self.quantiles(which, &qs)?;
        let mut at = found.unwrap_or_else(|| qs.iter().map(|_| f64::NAN).collect()).into_iter();
        let mut end = |e: RangeEnd, none: f64| match e {
            RangeEnd::At(x) => x,
            RangeEnd::Percentile(_) => at.next().filter(|x| !x.is_nan()).unwrap_or(none),
        };
        let lo = end(lo, 0.0);
        Ok((lo, end(hi, 1.0)))
    }

    /// `numpy.quantile` (linear) of the finite values of the inputs at `which` together.
    fn quantiles(&self, which: &[usize], qs: &[f64]) -> Result<Option<Vec<f64>>> {
        quantile::quantiles(qs, |pass| {
            let mut all = PassCounter::new(pass.clone());
            let make: MakeObserver<PassCounter> = Arc::new(move || PassCounter::new(pass.clone()));
            for r in self.run_on(which, Some(make), Gather::Nothing)? {
                if let Some(c) = r.observer {
                    all.merge_from(&c);
                }
            }
            Ok(all)
        })
    }

    /// Per-unit active rates: the units that are ever active in bins over [0, 1], the dead apart.
    fn active_rates(&self, n: usize) -> Result<Vec<Panel>> {
        let bins = Arc::new(Bins::new(0.0, 1.0, n).map_err(anyhow::Error::msg)?);
        let mut panels = Vec::new();
        for r in self.run::<Unwatched>(None, Gather::Units)? {
            let Some(u) = r.stats.as_ref().and_then(|s| s.units.clone()) else {
                bail!("{}: --active-rate needs units: a 2-D or larger array (see --unit-axis)", r.name);
            };
            let m = u.elements_per_unit.max(1) as f64;
            let live: Vec<f64> = u.active_count.iter().filter(|&&c| c > 0).map(|&c| c as f64 / m).collect();
            let mut h = Histogram::new(bins.clone());
            h.add(&live);
            let rates = Rates { dead: u.dead, near_dead: u.near_dead, threshold: u.threshold };
            let about = format!("{} · {} units on axis {}", about(&r), u.count, u.axis);
            panels.push(Panel {
                name: r.name,
                about,
                hist: h.to_json(),
                dead: Some((u.dead, u.count)),
                rates: Some(rates),
                zeros: None,
            });
        }
        Ok(panels)
    }
}

/// `(lo, hi)` widened outward to multiples of a tenth of the decade of its width (-3.87…4.12 →
/// -3.9…4.2), kept within `[min, max]`.
fn round_out(lo: f64, hi: f64, min: f64, max: f64) -> (f64, f64) {
    let step = 10f64.powf((hi - lo).log10().floor()) / 10.0;
    let (a, b) = ((lo / step).floor() * step, (hi / step).ceil() * step);
    if !(a.is_finite() && b.is_finite()) {
        return (lo, hi);
    }
    (a.max(min), b.min(max))
}

/// `float32 (1000, 256) · relu`
fn about<O>(r: &ArrayReport<O>) -> String {
    format!(
        "{} {} · {}",
        r.dtype,
        crate::format::npy::shape_repr(&r.shape),
        r.activation.as_deref().unwrap_or("no activation")
    )
}

/// Panels from statistics JSON that carry histograms (`stats --bins --range`, `merge-stats`).
fn from_stats(path: &Path) -> Result<Vec<Panel>> {
    let name = path.display().to_string();
    let mut panels = Vec::new();
    for s in StatsJson::read_all(path).with_context(|| name.clone())? {
        let Some(hist) = s.hist else { continue };
        let shards = s.merged.map_or(String::new(), |k| format!(" · {k} arrays merged"));
        let about = format!("{} · {}{shards}", s.dtype, s.activation.as_deref().unwrap_or("no activation"));
        panels.push(Panel {
            name: s.input.clone(),
            about,
            hist,
            dead: s.units.as_ref().map(|u| (u.dead, u.count)),
            rates: None,
            zeros: None,
        });
    }
    if panels.is_empty() {
        bail!("{name}: no histogram in these statistics (write them with --bins N --range=LO:HI)");
    }
    check_same_edges(&panels.iter().map(|p| &p.hist).collect::<Vec<_>>()).with_context(|| name.clone())?;
    Ok(panels)
}

/// Panels drawn side by side share one x axis: their edges must agree.
fn check_same_edges(h: &[&HistJson]) -> Result<()> {
    for w in h.windows(2) {
        if w[0].span() != w[1].span() {
            bail!("these histograms have different ranges: draw them one file at a time");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_within_reason() {
        assert_eq!(terminal_width(None), 80);
        assert_eq!(terminal_width(Some("60")), 60);
        assert_eq!(terminal_width(Some(" 120 ")), 120);
        assert_eq!(terminal_width(Some("wide")), 80);
        assert_eq!(terminal_width(Some("")), 80);
        assert_eq!(terminal_width(Some("-5")), 80);
        assert_eq!(terminal_width(Some("70000")), render::MAX_WIDTH);
        assert_eq!(terminal_width(Some("1000000000000")), render::MAX_WIDTH);
        assert_eq!(terminal_width(Some("99999999999999999999999999")), render::MAX_WIDTH);
    }

    #[test]
    fn bulk_ranges_widen_to_round_numbers_within_the_data() {
        let close = |(a, b): (f64, f64), (c, d): (f64, f64)| (a - c).abs() < 1e-9 && (b - d).abs() < 1e-9;
        assert!(close(round_out(-3.87, 4.12, -380.0, 400.0), (-3.9, 4.2)));
        assert!(close(round_out(0.0, 0.0312, 0.0, 9.0), (0.0, 0.032)));
        assert!(close(round_out(-3.87, 4.12, -3.88, 4.15), (-3.88, 4.15)));
        assert!(close(round_out(120.0, 385.0, 0.0, 1000.0), (120.0, 390.0)));
    }
}
