//! `relu diff A B` (SPEC §7): how far each tensor's distribution moved from A to B. A and B are
//! files, `FILE:NAME`s, directories or checkpoints; tensors are matched by name (`inputs.rs`),
//! or two single arrays are one pair. Each input is read twice, every file of both sides on one
//! pool over every core: a statistics pass (mean, std, sparsity, units, and the finite range),
//! then a counting pass with an exact `Histogram` over edges both sides of a tensor share (the
//! union of their ranges); `--range` fixes the edges and makes it one pass. The measures are
//! `drift.rs`'s. Out: a table, or JSON Lines; `--fail-over` turns drift into exit code 3.

use crate::args::{parse_bins, parse_threads, ActArgs, DTypeArg, ProgressArgs, UnitArgs};
use crate::drift::{self, Measures, UnitDrift};
use crate::format::Format;
use crate::hist::{Bins, HistJson, Histogram, MinMax};
use crate::inputs::Address;
use crate::job::{MakeObserver, Settings};
use crate::options::{is_dash, threads, usage, Dest, ReadOptions, UsageError};
use crate::output::{Output, RunFiles};
use crate::pipeline::Observer;
use crate::progress::Watch;
use crate::quantile::RangeEnd;
use crate::stats::StatsJson;
use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What `--fail-over` can test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    W1,
    Js,
    Psi,
    Ks,
    /// How many units died from A to B.
    NewlyDead,
    MaxAbsDelta,
    MeanAbsDelta,
}

const METRICS: [(&str, Metric); 7] = [
    ("w1", Metric::W1),
    ("js", Metric::Js),
    ("psi", Metric::Psi),
    ("ks", Metric::Ks),
    ("newly_dead", Metric::NewlyDead),
    ("max_abs_delta_active_rate", Metric::MaxAbsDelta),
    ("mean_abs_delta_active_rate", Metric::MeanAbsDelta),
];

impl Metric {
    fn name(self) -> &'static str {
        METRICS.iter().find(|(_, m)| *m == self).map_or("?", |(n, _)| n)
    }
}

/// `--fail-over METRIC=VALUE`.
fn parse_fail_over(s: &str) -> Result<(Metric, f64), String> {
    let names = || METRICS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
    let (m, v) =
        s.split_once('=').ok_or_else(|| format!("'{s}': give METRIC=VALUE, e.g. js=0.05 (METRIC: {})", names()))?;
    let key = m.trim().to_ascii_lowercase().replace('-', "_");
    let metric = METRICS
        .iter()
        .find(|(n, _)| *n == key)
        .map(|(_, m)| *m)
        .ok_or_else(|| format!("'{}' is not a metric: give one of {}", m.trim(), names()))?;
    let value: f64 = v.trim().parse().map_err(|_| format!("'{}' is not a number", v.trim()))?;
    if value.is_nan() {
        return Err(format!("'{s}': the limit must be a number, not NaN"));
    }
    Ok((metric, value))
}

/// `--range=LO:HI` in numbers (a percentile would need passes of its own over both sides).
fn parse_range(s: &str) -> Result<(f64, f64), String> {
    match crate::quantile::parse_range(s)? {
        (RangeEnd::At(lo), RangeEnd::At(hi)) => Ok((lo, hi)),
        _ => Err(format!("'{s}': diff takes --range=LO:HI in numbers (percentiles are for relu hist)")),
    }
}

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  relu diff run/epoch_10 run/epoch_20\n  relu diff --json before.safetensors after.safetensors > drift.jsonl\n  relu diff --act relu a/layer3.npy b/layer3.npy\n  relu diff --fail-over js=0.05 --fail-over newly_dead=0 ckpt_old.pt ckpt_new.pt\n  relu diff --bins 50 --range=-4:4 old.npz:layer2 new.npz:layer2"
)]
pub struct DiffArgs {
    #[command(flatten)]
    pub progress: ProgressArgs,
    #[command(flatten)]
    pub act: ActArgs,
    #[command(flatten)]
    pub units: UnitArgs,
    /// Histogram bins (equal width, as numpy.histogram) over the range both sides share
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = parse_bins)]
    pub bins: usize,
    /// The histograms' range, as --range=LO:HI (one pass over each input) [default: per tensor,
    /// the union of both sides' finite ranges]
    #[arg(long, value_name = "LO:HI", allow_hyphen_values = true, value_parser = parse_range)]
    pub range: Option<(f64, f64)>,
    /// JSON Lines: one object per tensor
    #[arg(long)]
    pub json: bool,
    /// Exit with code 3 (after printing everything) when a tensor's METRIC is above VALUE;
    /// repeatable. METRIC: w1, js, psi, ks, newly_dead, max_abs_delta_active_rate,
    /// mean_abs_delta_active_rate
    #[arg(long = "fail-over", value_name = "METRIC=VALUE", value_parser = parse_fail_over)]
    pub fail_over: Vec<(Metric, f64)>,
    /// Output file (.json/.jsonl: JSON Lines, else the table); - for stdout
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Element type to compute in (integer input with leaky/prelu needs a float type)
    #[arg(long, value_enum, default_value = "same")]
    pub dtype: DTypeArg,
    /// Worker threads [default: all cores]
    #[arg(short = 'j', long, value_name = "N", value_parser = parse_threads)]
    pub threads: Option<usize>,
    /// Before: a file, FILE:NAME, a directory (searched recursively) or a checkpoint container
    pub a: PathBuf,
    /// After: the same kinds; tensors are matched by name (two single arrays: one pair, named as A)
    pub b: PathBuf,
}

/// Some tensor went over a `--fail-over` limit: exit code 3, after everything was printed.
#[derive(Debug)]
pub struct Exceeded(pub String);

impl fmt::Display for Exceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Exceeded {}

/// One array of one side, as the statistics pass found it.
struct Tensor {
    /// The file, and the member to read it again by (exactly one array).
    path: PathBuf,
    member: Option<String>,
    /// `FILE` or `FILE:NAME`, as a job names it.
    input: String,
    stats: StatsJson,
    /// The histogram, when `--range` made it in the same pass.
    hist: Option<HistJson>,
}

/// A side's tensors by name (each name once), and whether it was a single array on the command line.
struct Side {
    given: String,
    tensors: BTreeMap<String, Tensor>,
    single: bool,
}

/// The `--json` object (SPEC §7).
#[derive(Serialize)]
struct DiffJson<'a> {
    name: &'a str,
    a: &'a str,
    b: &'a str,
    edges: &'a [f64],
    w1: Option<f64>,
    js: Option<f64>,
    psi: Option<f64>,
    ks: Option<f64>,
    mean: [Option<f64>; 2],
    std: [Option<f64>; 2],
    sparsity: [Option<f64>; 2],
    /// The finite values inside the range on each side: what p and q are fractions of.
    in_range: [u64; 2],
    units: Option<UnitsDiffJson>,
    /// With `--fail-over`: the metrics this tensor is over.
    #[serde(skip_serializing_if = "Option::is_none")]
    exceeds: Option<Vec<&'static str>>,
}

#[derive(Serialize)]
struct UnitsDiffJson {
    count: u64,
    newly_dead: Vec<u64>,
    revived: Vec<u64>,
    max_abs_delta_active_rate: f64,
    argmax_delta_unit: u64,
    mean_abs_delta_active_rate: f64,
}

/// One matched tensor, measured.
struct Row<'a> {
    name: &'a str,
    a: &'a Tensor,
    b: &'a Tensor,
    hist_a: HistJson,
    hist_b: HistJson,
    measures: Option<Measures>,
    units: Option<UnitDrift>,
    exceeds: Vec<&'static str>,
}

impl Row<'_> {
    fn metric(&self, m: Metric) -> Option<f64> {
        let ms = self.measures;
        match m {
            Metric::W1 => ms.map(|x| x.w1),
            Metric::Js => ms.map(|x| x.js),
            Metric::Psi => ms.map(|x| x.psi),
            Metric::Ks => ms.map(|x| x.ks),
            Metric::NewlyDead => self.units.as_ref().map(|u| u.newly_dead.len() as f64),
            Metric::MaxAbsDelta => self.units.as_ref().map(|u| u.max_abs_delta),
            Metric::MeanAbsDelta => self.units.as_ref().map(|u| u.mean_abs_delta),
        }
    }
}

pub fn run(args: DiffArgs) -> Result<()> {
    let act = args.act.options(None, args.dtype)?;
    if args.bins == 0 {
        return usage("--bins must be at least 1");
    }
    let fixed = match args.range {
        Some((lo, hi)) => Some(Bins::new(lo, hi, args.bins).map_err(|e| UsageError(format!("--range: {e}")))?),
        None => None,
    };
    let out_path = args.output.clone().filter(|p| !is_dash(p));
    let mut files = RunFiles::default();
    for p in [&args.a, &args.b] {
        if is_dash(p) {
            return usage("diff reads each input twice: give files, not stdin (-)");
        }
        files.input("the input", p);
    }
    act.inputs(&mut files);
    if let Some(p) = &out_path {
        files.output("-o", p, None)?;
    }
    let ext = out_path.as_deref().and_then(Path::extension).map(|e| e.to_string_lossy().to_ascii_lowercase());
    let json = args.json || matches!(ext.as_deref(), Some("json" | "jsonl"));

    // the statistics pass, both sides' files on one pool (with --range, the histograms too)
    let how = crate::inputs::Resolve { member: None, format: None, dirs: true, skip: None };
    let mut list: Vec<(usize, Address)> = Vec::new();
    let mut sides = Vec::new();
    for (k, given) in [&args.a, &args.b].into_iter().enumerate() {
        let found = crate::inputs::resolve_one(given, how)?;
        if found.is_empty() {
            bail!("{}: no array files here", given.display());
        }
        // one array named by itself: a plain array file, or FILE:NAME
        let single = found.len() == 1
            && !given.is_dir()
            && (found[0].member.is_some() || !crate::job::is_container(Format::of_path(&found[0].path)));
        sides.push(Side { given: given.display().to_string(), tensors: BTreeMap::new(), single });
        list.extend(found.into_iter().map(|a| (k, a)));
    }
    let total = threads(args.threads);
    let per_job = |jobs: usize| (total / total.min(jobs).max(1)).max(1);
    let settings: Settings<Histogram> = Settings {
        read: ReadOptions::default(),
        act,
        units: Some(args.units.options()),
        threads: per_job(list.len()),
        observer: fixed.clone().map(crate::report::observer),
    };
    let paths: Vec<PathBuf> = list.iter().map(|(_, a)| a.path.clone()).collect();
    let passes = if fixed.is_some() { 1 } else { 2 };
    let watch = Watch::start(
        args.progress.progress.into(),
        args.progress.quiet,
        passes * crate::progress::input_bytes(&paths, None),
        "diff",
    );
    crate::par::each_in_order(
        list.len(),
        total,
        |i| settings.reading(list[i].1.read(&settings.read)).job(list[i].1.path.clone(), Dest::Discard).run(),
        |i, done| {
            let (k, a) = &list[i];
            let side = &mut sides[*k];
            for mut r in done?.reports {
                let Some(stats) = r.stats.take() else { continue };
                let name = a.name_of(&r.name);
                if let Some(first) = side.tensors.get(&name) {
                    bail!(
                        "{}: two tensors are named {} ({} and {}): a checkpoint names each tensor once",
                        side.given,
                        crate::quote::text(&name),
                        first.input,
                        r.name
                    );
                }
                let member =
                    r.name.strip_prefix(a.shown().as_str()).and_then(|m| m.strip_prefix(':')).map(str::to_string);
                let hist = r.observer.take().map(|mut h| h.to_json());
                side.tensors.insert(name, Tensor { path: a.path.clone(), member, input: r.name, stats, hist });
            }
            Ok(())
        },
    )?;
    let (side_b, side_a) = (sides.pop().unwrap(), sides.pop().unwrap());

    // the pairs: two single arrays are one, named as A; else by name
    let pairs: Vec<(&str, &Tensor, &Tensor)> =
        if side_a.single && side_b.single && side_a.tensors.len() == 1 && side_b.tensors.len() == 1 {
            let (name, a) = side_a.tensors.iter().next().unwrap();
            vec![(name.as_str(), a, side_b.tensors.values().next().unwrap())]
        } else {
            let pairs: Vec<_> =
                side_a.tensors.iter().filter_map(|(n, a)| side_b.tensors.get(n).map(|b| (n.as_str(), a, b))).collect();
            for (one, other) in [(&side_a, &side_b), (&side_b, &side_a)] {
                let alone: Vec<&String> = one.tensors.keys().filter(|n| !other.tensors.contains_key(*n)).collect();
                if !alone.is_empty() && !pairs.is_empty() {
                    crate::errln!("relu: warning: only in {}: {}", one.given, listed(&alone));
                }
            }
            if pairs.is_empty() {
                bail!(
                    "{} and {} have no tensor name in common ({} has {}; {} has {})",
                    side_a.given,
                    side_b.given,
                    side_a.given,
                    listed(&side_a.tensors.keys().collect::<Vec<_>>()),
                    side_b.given,
                    listed(&side_b.tensors.keys().collect::<Vec<_>>())
                );
            }
            pairs
        };

    // the counting pass: each tensor of each side over the edges of its pair
    let hists: Vec<(HistJson, HistJson)> = match &fixed {
        Some(bins) => {
            // every array got the observer; a histogram of nothing stands in should one not
            let empty = || HistJson {
                edges: bins.edges.clone(),
                counts: vec![0; bins.count()],
                underflow: 0,
                overflow: 0,
                nan: 0,
            };
            pairs
                .iter()
                .map(|(_, a, b)| (a.hist.clone().unwrap_or_else(empty), b.hist.clone().unwrap_or_else(empty)))
                .collect()
        }
        None => {
            let bins: Vec<MakeObserver<Histogram>> = pairs
                .iter()
                .map(|(name, a, b)| {
                    let bins =
                        shared_bins([&a.stats, &b.stats], args.bins).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
                    Ok(crate::report::observer(bins))
                })
                .collect::<Result<_>>()?;
            let again: Vec<Again> = pairs
                .iter()
                .enumerate()
                .flat_map(|(i, (_, a, b))| [(i, *a), (i, *b)])
                .map(|(i, t)| Again {
                    path: &t.path,
                    member: t.member.as_deref(),
                    input: &t.input,
                    bins: bins[i].clone(),
                })
                .collect();
            let found = count_again(&settings, total, &again)?;
            let mut it = found.into_iter();
            std::iter::from_fn(|| Some((it.next()?, it.next()?))).collect()
        }
    };
    drop(watch);

    let rows: Vec<Row> = pairs
        .iter()
        .zip(hists)
        .map(|((name, a, b), (hist_a, hist_b))| {
            let measures = drift::measures(&hist_a.edges, &hist_a.counts, &hist_b.counts);
            let units = match (&a.stats.units, &b.stats.units) {
                (Some(ua), Some(ub)) => drift::units(ua, ub),
                _ => None,
            };
            let mut row = Row { name, a, b, hist_a, hist_b, measures, units, exceeds: Vec::new() };
            for &(m, limit) in &args.fail_over {
                if row.metric(m).is_some_and(|v| v > limit) && !row.exceeds.contains(&m.name()) {
                    row.exceeds.push(m.name());
                }
            }
            row
        })
        .collect();
    let bytes = if json {
        let mut out = Vec::new();
        for r in &rows {
            serde_json::to_writer(&mut out, &to_json(r, !args.fail_over.is_empty()))?;
            out.push(b'\n');
        }
        out
    } else {
        table(&rows, &side_a.given, &side_b.given, !args.fail_over.is_empty()).into_bytes()
    };
    match out_path {
        Some(p) => {
            let mut out = Output::create(&p)?;
            out.write_all(&bytes).with_context(|| format!("cannot write {}", p.display()))?;
            out.commit()?;
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(&bytes)?;
            out.flush()?;
        }
    }
    let over: Vec<String> = rows
        .iter()
        .filter(|r| !r.exceeds.is_empty())
        .map(|r| {
            let what: Vec<String> = args
                .fail_over
                .iter()
                .filter_map(|&(m, l)| r.metric(m).filter(|&v| v > l).map(|v| format!("{} {v} > {l}", m.name())))
                .collect();
            format!("{} ({})", r.name, what.join(", "))
        })
        .collect();
    if !over.is_empty() {
        return Err(Exceeded(format!(
            "{} of {} tensors over --fail-over: {}",
            over.len(),
            rows.len(),
            over.join("; ")
        ))
        .into());
    }
    Ok(())
}

/// `n` bins over the union of the finite ranges of `stats` (NumPy's widening for equal ends,
/// (0, 1) with no finite value).
pub fn shared_bins<'a>(stats: impl IntoIterator<Item = &'a StatsJson>, n: usize) -> Result<Bins, String> {
    let mut range = MinMax::default();
    for s in stats {
        range.merge(&MinMax { min: s.min.unwrap_or(f64::INFINITY), max: s.max.unwrap_or(f64::NEG_INFINITY) });
    }
    let (lo, hi) = range.range();
    Bins::new(lo, hi, n)
}

/// An array to count again: its file, the member that picks exactly it, how it is named, and
/// its bins.
pub struct Again<'a> {
    pub path: &'a Path,
    pub member: Option<&'a str>,
    pub input: &'a str,
    pub bins: MakeObserver<Histogram>,
}

/// The counting pass (of `diff`, and of `trend --metric w1`): each array once more, alone (by its
/// exact member), through an exact `Histogram` over its own bins, with `settings`' reading and
/// activation and no statistics; all on one pool of `total` threads, histograms in order.
pub fn count_again<O: Observer>(settings: &Settings<O>, total: usize, arrays: &[Again]) -> Result<Vec<HistJson>> {
    let base = settings.observing::<Histogram>(None);
    let threads = (total / total.min(arrays.len()).max(1)).max(1);
    let counting = Settings { units: None, threads, ..base };
    let mut found = Vec::with_capacity(arrays.len());
    crate::par::each_in_order(
        arrays.len(),
        total,
        |j| {
            let a = &arrays[j];
            let read = ReadOptions { member: a.member.map(str::to_string), ..counting.read.clone() };
            counting.observing(Some(a.bins.clone())).reading(read).job(a.path.to_path_buf(), Dest::Discard).run()
        },
        |j, done| {
            let mut reports = done?.reports;
            match (reports.len(), reports.first_mut().and_then(|r| r.observer.take())) {
                (1, Some(mut h)) => found.push(h.to_json()),
                // the file changed between the passes
                _ => bail!("{}: not the one array the first pass read", arrays[j].input),
            }
            Ok(())
        },
    )?;
    Ok(found)
}

/// Names for a message: the first ten, then how many more.
fn listed(names: &[&String]) -> String {
    let shown: Vec<String> = names.iter().take(10).map(|n| crate::quote::text(n)).collect();
    match names.len() {
        0 => "no tensors".into(),
        n if n > 10 => format!("{} and {} more", shown.join(", "), n - 10),
        _ => shown.join(", "),
    }
}

fn to_json<'a>(r: &'a Row, fail_over: bool) -> DiffJson<'a> {
    let (a, b) = (&r.a.stats, &r.b.stats);
    let m = r.measures;
    DiffJson {
        name: r.name,
        a: &r.a.input,
        b: &r.b.input,
        edges: &r.hist_a.edges,
        w1: m.map(|m| m.w1),
        js: m.map(|m| m.js),
        psi: m.map(|m| m.psi),
        ks: m.map(|m| m.ks),
        mean: [a.mean, b.mean],
        std: [a.std, b.std],
        sparsity: [a.sparsity, b.sparsity],
        in_range: [r.hist_a.counts.iter().sum(), r.hist_b.counts.iter().sum()],
        units: r.units.as_ref().map(|u| UnitsDiffJson {
            count: a.units.as_ref().map_or(0, |x| x.count),
            newly_dead: u.newly_dead.clone(),
            revived: u.revived.clone(),
            max_abs_delta_active_rate: u.max_abs_delta,
            argmax_delta_unit: u.argmax,
            mean_abs_delta_active_rate: u.mean_abs_delta,
        }),
        exceeds: fail_over.then(|| r.exceeds.clone()),
    }
}

/// A number in four significant digits, in exponent form when very large or small.
fn num(x: Option<f64>) -> String {
    match x {
        None => "-".into(),
        Some(0.0) => "0".into(),
        Some(x) if (1e-3..1e5).contains(&x.abs()) => {
            let digits = (3 - x.abs().log10().floor() as i32).clamp(0, 6) as usize;
            format!("{x:.digits$}")
        }
        Some(x) => format!("{x:.3e}"),
    }
}

fn percent(x: Option<f64>) -> String {
    x.map_or("-".into(), |v| format!("{:.1}%", 100.0 * v))
}

/// The table: a row per tensor.
fn table(rows: &[Row], a: &str, b: &str, fail_over: bool) -> String {
    let mut cells: Vec<Vec<String>> = vec![[
        "tensor",
        "w1",
        "js",
        "psi",
        "ks",
        "mean A → B",
        "std A → B",
        "sparsity A → B",
        "dead +new -revived",
        "max |Δ active| (unit)",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()];
    if fail_over {
        cells[0].push("over".into());
    }
    for r in rows {
        let (sa, sb) = (&r.a.stats, &r.b.stats);
        let m = r.measures;
        let (dead, delta) = match (&r.units, &sb.units) {
            (Some(u), Some(ub)) => (
                format!("{} +{} -{}", ub.dead, u.newly_dead.len(), u.revived.len()),
                format!("{:.4} ({})", u.max_abs_delta, u.argmax),
            ),
            _ => ("-".into(), "-".into()),
        };
        let mut row = vec![
            r.name.to_string(),
            num(m.map(|m| m.w1)),
            num(m.map(|m| m.js)),
            num(m.map(|m| m.psi)),
            num(m.map(|m| m.ks)),
            format!("{} → {}", num(sa.mean), num(sb.mean)),
            format!("{} → {}", num(sa.std), num(sb.std)),
            format!("{} → {}", percent(sa.sparsity), percent(sb.sparsity)),
            dead,
            delta,
        ];
        if fail_over {
            row.push(r.exceeds.join(","));
        }
        cells.push(row);
    }
    let cols = cells[0].len();
    let width: Vec<usize> = (0..cols).map(|i| cells.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    let bins = rows.first().map_or(0, |r| r.hist_a.counts.len());
    let mut t = format!("drift from A = {a} to B = {b} ({bins} bins over each tensor's shared range)\n");
    for r in &cells {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let pad = " ".repeat(width[i] - c.chars().count());
                if i == 0 || i + 1 == cols && fail_over {
                    format!("{c}{pad}")
                } else {
                    format!("{pad}{c}")
                }
            })
            .collect();
        t.push_str(line.join("  ").trim_end());
        t.push('\n');
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_over_values() {
        assert_eq!(parse_fail_over("js=0.05"), Ok((Metric::Js, 0.05)));
        assert_eq!(parse_fail_over("newly-dead=0"), Ok((Metric::NewlyDead, 0.0)));
        assert!(parse_fail_over("jsd=0.05").unwrap_err().contains("not a metric"));
        assert!(parse_fail_over("js").is_err());
        assert!(parse_fail_over("js=nan").is_err());
        assert!(parse_fail_over("js=x").is_err());
        assert_eq!(parse_range("-4:4"), Ok((-4.0, 4.0)));
        assert!(parse_range("p1:p99").is_err());
    }

    #[test]
    fn numbers_in_the_table() {
        assert_eq!(num(None), "-");
        assert_eq!(num(Some(0.0)), "0");
        assert_eq!(num(Some(0.012345)), "0.01235");
        assert_eq!(num(Some(12.345)), "12.35");
        assert_eq!(num(Some(1.5e-7)), "1.500e-7");
    }
}
