//! `relu trend CHECKPOINT...` (SPEC §6): the statistics of the same tensors across training
//! checkpoints. Each checkpoint (a directory, or a container file) is one step; its files are
//! read once each, all checkpoints' files on one pool over every core; tensors are matched by
//! name (`inputs.rs`); checkpoints are ordered by step. Out: a table (a row per tensor, a column
//! per checkpoint), JSON Lines (the §4 object per tensor and checkpoint, with the units that died
//! and revived since the tensor's previous checkpoint), or a line chart.

use crate::args::{parse_bins, parse_threads, ActArgs, DTypeArg, ProgressArgs, UnitArgs};
use crate::cmd::diff::{count_again, shared_bins, Again};
use crate::hist::HistJson;
use crate::inputs::{Address, Resolve};
use crate::job::Settings;
use crate::options::{is_dash, threads, usage, Dest, ReadOptions};
use crate::output::{Output, RunFiles};
use crate::progress::Watch;
use crate::render::{Chart, Series};
use crate::stats::StatsJson;
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Metric {
    /// Dead units (never active)
    Dead,
    /// Units active less often than --dead-threshold (the dead included)
    #[value(name = "near_dead", alias = "near-dead")]
    NearDead,
    /// Fraction of zeros in the values
    Sparsity,
    Mean,
    Std,
    Min,
    Max,
    /// Wasserstein-1 distance from the tensor's previous checkpoint (histograms over its range
    /// across all checkpoints, --bins; a second pass)
    W1,
    /// Excess kurtosis of the values
    Kurtosis,
    /// Units whose largest |value| exceeds --outlier-threshold
    Outliers,
    /// ReDo's dormant units (score at most --dormant-tau)
    Dormant,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Order {
    /// By step: the last integer in each checkpoint's name, or --step's first group
    Step,
    /// As given on the command line
    Given,
}

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  relu trend run/epoch_*\n  relu trend --metric near_dead --dead-threshold 0.05 run/epoch_*\n  relu trend --json ckpt_*.safetensors > trend.jsonl\n  relu trend --step 'epoch_(\\d+)_bf16' run/epoch_* -o dead.svg"
)]
pub struct TrendArgs {
    #[command(flatten)]
    pub progress: ProgressArgs,
    #[command(flatten)]
    pub act: ActArgs,
    #[command(flatten)]
    pub units: UnitArgs,
    /// What the table and the chart show
    #[arg(long, value_enum, default_value = "dead")]
    pub metric: Metric,
    /// A checkpoint's step: the first group of this regular expression matched against its name
    /// (an integer) [default: the last integer in the name]
    #[arg(long, value_name = "REGEX")]
    pub step: Option<String>,
    /// With --metric w1: histogram bins over each tensor's range across all checkpoints
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = parse_bins)]
    pub bins: usize,
    /// The order of the checkpoints
    #[arg(long, value_enum, default_value = "step")]
    pub order: Order,
    /// JSON Lines: one object per tensor and checkpoint (the statistics, checkpoint, step,
    /// newly_dead, revived)
    #[arg(long)]
    pub json: bool,
    /// Output file: .svg or .png (a line chart of the metric), .json/.jsonl, else the table; - for stdout
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Element type to compute in (integer input with leaky/prelu needs a float type)
    #[arg(long, value_enum, default_value = "same")]
    pub dtype: DTypeArg,
    /// Worker threads [default: all cores]
    #[arg(short = 'j', long, value_name = "N", value_parser = parse_threads)]
    pub threads: Option<usize>,
    /// Checkpoints: directories (searched recursively) or container files (.npz, .safetensors,
    /// .pt), one training step each; FILE:NAME takes some of a container's tensors
    #[arg(required = true)]
    pub checkpoints: Vec<PathBuf>,
}

/// One checkpoint: how it was given, its step, its tensors' statistics by name.
struct Checkpoint {
    given: String,
    step: Option<i64>,
    tensors: BTreeMap<String, StatsJson>,
    /// Where each tensor is: its file, the member that picks it, and how the job named it.
    sources: BTreeMap<String, (PathBuf, Option<String>, String)>,
    /// With `--metric w1`: each tensor's W1 from its previous checkpoint (`None` at its first).
    w1: BTreeMap<String, Option<f64>>,
}

/// A `--json` line: the §4 object and where it stands in the run.
#[derive(Serialize)]
struct TrendJson<'a> {
    #[serde(flatten)]
    stats: &'a StatsJson,
    checkpoint: &'a str,
    step: Option<i64>,
    newly_dead: Vec<u64>,
    revived: Vec<u64>,
    /// With `--metric w1`: W1 from the tensor's previous checkpoint (null at its first).
    #[serde(skip_serializing_if = "Option::is_none")]
    w1_from_previous: Option<Option<f64>>,
}

pub fn run(args: TrendArgs) -> Result<()> {
    let act = args.act.options(None, args.dtype)?;
    let step_re = match &args.step {
        Some(r) => {
            let re = regex_lite::Regex::new(r).map_err(|e| crate::usage::UsageError(format!("--step: {e}")))?;
            if re.captures_len() < 2 {
                return usage(format!("--step {r}: give a group around the step, e.g. 'epoch_(\\d+)'"));
            }
            Some(re)
        }
        None => None,
    };
    let out_path = args.output.clone().filter(|p| !is_dash(p));
    let mut files = RunFiles::default();
    for c in &args.checkpoints {
        files.input("the input", c);
    }
    act.inputs(&mut files);
    if let Some(p) = &out_path {
        files.output("-o", p, None)?;
    }
    let kind = match out_path.as_deref().and_then(|p| p.extension()).map(|e| e.to_string_lossy().to_ascii_lowercase()) {
        Some(e) if e == "svg" => Out::Svg,
        Some(e) if e == "png" => Out::Png,
        Some(e) if e == "json" || e == "jsonl" => Out::Json,
        _ if args.json => Out::Json,
        _ => Out::Table,
    };
    // every checkpoint's files, in one list: one pass over each, on all cores
    let how = Resolve { member: None, format: None, dirs: true, skip: None };
    let mut list: Vec<(usize, Address)> = Vec::new();
    for (k, c) in args.checkpoints.iter().enumerate() {
        if is_dash(c) {
            return usage("a checkpoint is a directory or a file: stdin (-) cannot be one");
        }
        let found = crate::inputs::resolve_one(c, how)?;
        if found.is_empty() {
            bail!("{}: no array files in this checkpoint", c.display());
        }
        list.extend(found.into_iter().map(|a| (k, a)));
    }
    let total = threads(args.threads);
    let per_job = (total / total.min(list.len()).max(1)).max(1);
    let units = args.units.options();
    let settings: Settings =
        Settings { read: ReadOptions::default(), act, units: Some(units), threads: per_job, observer: None };
    let job = |a: &Address| settings.reading(a.read(&settings.read)).job(a.path.clone(), Dest::Discard);
    let mut cps: Vec<Checkpoint> = args
        .checkpoints
        .iter()
        .map(|c| Checkpoint {
            given: c.display().to_string(),
            step: step_of(c, step_re.as_ref()),
            tensors: BTreeMap::new(),
            sources: BTreeMap::new(),
            w1: BTreeMap::new(),
        })
        .collect();
    let paths: Vec<PathBuf> = list.iter().map(|(_, a)| a.path.clone()).collect();
    let watch = Watch::start(
        args.progress.progress.into(),
        args.progress.quiet,
        crate::progress::input_bytes(&paths, None),
        "trend",
    );
    crate::par::each_in_order(
        list.len(),
        total,
        |i| job(&list[i].1).run(),
        |i, done| {
            let (k, a) = &list[i];
            let mut done = done?;
            a.name_reports(&mut done.reports);
            for r in done.reports {
                let Some(s) = r.stats else { continue };
                let name = s.name.clone().unwrap_or_default();
                let cp = &mut cps[*k];
                if cp.tensors.contains_key(&name) {
                    bail!(
                        "{}: two tensors are named {} (the second: {}): a checkpoint names each tensor once",
                        cp.given,
                        crate::quote::text(&name),
                        s.input
                    );
                }
                let member =
                    r.name.strip_prefix(a.shown().as_str()).and_then(|m| m.strip_prefix(':')).map(str::to_string);
                cp.sources.insert(name.clone(), (a.path.clone(), member, r.name));
                cp.tensors.insert(name, s);
            }
            Ok(())
        },
    )?;
    drop(watch);
    if args.order == Order::Step && cps.iter().all(|c| c.step.is_some()) {
        cps.sort_by_key(|c| c.step); // stable: equal steps keep the order given
    }
    if args.metric == Metric::W1 {
        w1_from_previous(&mut cps, &settings, total, args.bins)?;
    }
    let names: BTreeSet<&String> = cps.iter().flat_map(|c| c.tensors.keys()).collect();
    let bytes = match kind {
        Out::Json => json(&cps, args.metric)?,
        Out::Table => table(&cps, &names, args.metric).into_bytes(),
        Out::Svg => crate::render::lines_svg(&chart(&cps, &names, args.metric))?,
        Out::Png => crate::render::lines_png(&chart(&cps, &names, args.metric))?,
    };
    match out_path {
        Some(p) => {
            let mut out = Output::create(&p)?;
            out.write_all(&bytes).with_context(|| format!("cannot write {}", p.display()))?;
            out.commit()
        }
        None => {
            if kind == Out::Png && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                return usage("refusing to write a PNG to a terminal: use -o FILE.png or a pipe");
            }
            let mut out = std::io::stdout().lock();
            out.write_all(&bytes)?;
            Ok(out.flush()?)
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Out {
    Table,
    Json,
    Svg,
    Png,
}

/// A checkpoint's step: `--step`'s first group, else the last integer in its own name (the
/// last part of its path: `run/epoch_10` → 10).
fn step_of(c: &Path, re: Option<&regex_lite::Regex>) -> Option<i64> {
    let own = c.file_name().map_or_else(|| c.display().to_string(), |n| n.to_string_lossy().into_owned());
    match re {
        Some(re) => re.captures(&own).and_then(|m| m.get(1)).and_then(|g| last_integer(g.as_str())),
        None => last_integer(&own),
    }
}

/// The last run of ASCII digits in `s`, as a number (`epoch_20_bf16` → 16: hence `--step`).
fn last_integer(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let end = b.iter().rposition(u8::is_ascii_digit)? + 1;
    let start = b[..end].iter().rposition(|c| !c.is_ascii_digit()).map_or(0, |i| i + 1);
    s[start..end].parse().ok()
}

/// Dead units now and not before, and the reverse (both ascending).
fn changes(prev: Option<&StatsJson>, now: &StatsJson) -> (Vec<u64>, Vec<u64>) {
    let dead = |s: &StatsJson| -> BTreeSet<u64> {
        s.units.as_ref().map(|u| u.dead_indices.iter().copied().collect()).unwrap_or_default()
    };
    match prev {
        None => (Vec::new(), Vec::new()),
        Some(p) => {
            let (a, b) = (dead(p), dead(now));
            (b.difference(&a).copied().collect(), a.difference(&b).copied().collect())
        }
    }
}

/// `--metric w1`: every tensor counted again over `n` bins spanning its range in all
/// checkpoints (so that consecutive ones share edges), each checkpoint's histogram measured
/// against the tensor's previous one (`drift::measures`, as `relu diff` does).
fn w1_from_previous(cps: &mut [Checkpoint], settings: &Settings, total: usize, n: usize) -> Result<()> {
    let names: BTreeSet<&String> = cps.iter().flat_map(|c| c.tensors.keys()).collect();
    let mut bins = BTreeMap::new();
    for name in names {
        let b = shared_bins(cps.iter().filter_map(|c| c.tensors.get(name)), n)
            .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        bins.insert(name.clone(), crate::report::observer(b));
    }
    let mut at: Vec<(usize, String)> = Vec::new();
    let hists = {
        let mut again = Vec::new();
        for (k, c) in cps.iter().enumerate() {
            for (name, (path, member, input)) in &c.sources {
                at.push((k, name.clone()));
                again.push(Again { path, member: member.as_deref(), input, bins: bins[name].clone() });
            }
        }
        count_again(settings, total, &again)?
    };
    let mut prev: BTreeMap<String, HistJson> = BTreeMap::new();
    for ((k, name), h) in at.into_iter().zip(hists) {
        let w1 = prev.get(&name).and_then(|p| crate::drift::measures(&h.edges, &p.counts, &h.counts)).map(|m| m.w1);
        cps[k].w1.insert(name.clone(), w1);
        prev.insert(name, h);
    }
    Ok(())
}

/// One line per tensor and checkpoint: checkpoint order, then names byte-wise.
fn json(cps: &[Checkpoint], m: Metric) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut prev: BTreeMap<&str, &StatsJson> = BTreeMap::new();
    for c in cps {
        for (name, s) in &c.tensors {
            let (newly_dead, revived) = changes(prev.get(name.as_str()).copied(), s);
            let w1_from_previous = (m == Metric::W1).then(|| c.w1.get(name).copied().flatten());
            let line =
                TrendJson { stats: s, checkpoint: &c.given, step: c.step, newly_dead, revived, w1_from_previous };
            serde_json::to_writer(&mut out, &line)?;
            out.push(b'\n');
            prev.insert(name, s);
        }
    }
    Ok(out)
}

/// The metric of a tensor at a checkpoint; `None` where it has none (not there, no units, no
/// finite value, the first checkpoint for W1).
fn metric(c: &Checkpoint, name: &str, m: Metric) -> Option<f64> {
    let s = c.tensors.get(name)?;
    match m {
        Metric::W1 => c.w1.get(name).copied().flatten(),
        Metric::Dead => s.units.as_ref().map(|u| u.dead as f64),
        Metric::NearDead => s.units.as_ref().map(|u| u.near_dead as f64),
        Metric::Sparsity => s.sparsity,
        Metric::Mean => s.mean,
        Metric::Std => s.std,
        Metric::Min => s.min,
        Metric::Max => s.max,
        Metric::Kurtosis => s.kurtosis,
        Metric::Outliers => s.units.as_ref().and_then(|u| u.outliers.as_ref()).map(|o| o.len() as f64),
        Metric::Dormant => s.units.as_ref().and_then(|u| u.dormant).map(|d| d as f64),
    }
}

fn metric_name(m: Metric) -> &'static str {
    match m {
        Metric::Dead => "dead units",
        Metric::NearDead => "near-dead units",
        Metric::Sparsity => "sparsity",
        Metric::Mean => "mean",
        Metric::Std => "std",
        Metric::Min => "min",
        Metric::Max => "max",
        Metric::W1 => "W1 from the previous checkpoint",
        Metric::Kurtosis => "kurtosis",
        Metric::Outliers => "outlier units",
        Metric::Dormant => "dormant units",
    }
}

/// A cell: the metric, and for unit counts what changed since the tensor's previous checkpoint.
fn cell(prev: Option<&StatsJson>, c: &Checkpoint, name: &str, s: &StatsJson, m: Metric) -> String {
    let v = match metric(c, name, m) {
        None => return "-".into(),
        Some(v) if matches!(m, Metric::Dead | Metric::NearDead | Metric::Outliers | Metric::Dormant) => format!("{v}"),
        Some(v) if matches!(m, Metric::Sparsity) => format!("{:.2}%", 100.0 * v),
        Some(v) => format!("{v:.6}"),
    };
    let (new, rev) = changes(prev, s);
    if m == Metric::Dead && (!new.is_empty() || !rev.is_empty()) {
        format!("{v} (+{} -{})", new.len(), rev.len())
    } else {
        v
    }
}

/// The table: a row per tensor, a column per checkpoint.
fn table(cps: &[Checkpoint], names: &BTreeSet<&String>, m: Metric) -> String {
    let mut rows: Vec<Vec<String>> = Vec::new();
    // each checkpoint by its own name (`run/epoch_04` → `epoch_04`) where those tell them apart
    let own = |c: &Checkpoint| {
        let p = Path::new(&c.given);
        p.file_name().map_or_else(|| c.given.clone(), |n| n.to_string_lossy().into_owned())
    };
    let distinct = cps.iter().map(own).collect::<BTreeSet<_>>().len() == cps.len();
    let head = |c: &Checkpoint| {
        let shown = if distinct { own(c) } else { c.given.clone() };
        match c.step {
            Some(s) if !shown.contains(&s.to_string()) => format!("{shown} (step {s})"),
            _ => shown,
        }
    };
    rows.push(std::iter::once("tensor".to_string()).chain(cps.iter().map(head)).collect());
    for name in names {
        let mut prev: Option<&StatsJson> = None;
        let mut row = vec![(*name).clone()];
        for c in cps {
            match c.tensors.get(*name) {
                Some(s) => {
                    row.push(cell(prev, c, name, s, m));
                    prev = Some(s);
                }
                None => row.push("-".into()),
            }
        }
        rows.push(row);
    }
    let cols = rows[0].len();
    let width: Vec<usize> = (0..cols).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    let mut t = format!("{} by checkpoint (dead: +newly dead -revived since the previous one)\n", metric_name(m));
    if m != Metric::Dead {
        t = format!("{} by checkpoint\n", metric_name(m));
    }
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let pad = width[i] - c.chars().count();
                if i == 0 {
                    format!("{c}{}", " ".repeat(pad))
                } else {
                    format!("{}{c}", " ".repeat(pad))
                }
            })
            .collect();
        t.push_str(line.join("  ").trim_end());
        t.push('\n');
    }
    t
}

/// The line chart: x the steps (or the checkpoints' places when a step is missing), a line per tensor.
fn chart(cps: &[Checkpoint], names: &BTreeSet<&String>, m: Metric) -> Chart {
    let by_step = cps.iter().all(|c| c.step.is_some());
    let x = |k: usize| if by_step { cps[k].step.unwrap_or(0) as f64 } else { k as f64 };
    let series = names
        .iter()
        .map(|name| Series {
            label: (*name).clone(),
            points: (0..cps.len()).map(|k| (x(k), metric(&cps[k], name, m))).collect(),
        })
        .collect();
    Chart {
        title: format!("{} over {} checkpoints", metric_name(m), cps.len()),
        x_desc: if by_step { "step".into() } else { "checkpoint".into() },
        y_desc: metric_name(m).into(),
        x_labels: (!by_step).then(|| cps.iter().map(|c| c.given.clone()).collect()),
        series,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_from_names() {
        assert_eq!(last_integer("epoch_10"), Some(10));
        assert_eq!(last_integer("epoch_2"), Some(2));
        assert_eq!(last_integer("ckpt-0007.safetensors"), Some(7));
        assert_eq!(last_integer("final"), None);
        let re = regex_lite::Regex::new(r"epoch_(\d+)").unwrap();
        assert_eq!(step_of(Path::new("run/epoch_20_bf16"), Some(&re)), Some(20));
        assert_eq!(step_of(Path::new("run/epoch_20_bf16"), None), Some(16));
        assert_eq!(step_of(Path::new("run/epoch_3/"), None), Some(3));
    }
}
