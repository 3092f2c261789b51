//! `relu stats`: statistics of arrays from one streaming pass: a table, or JSON (SPEC §4).

use crate::args::{parse_threads, ActArgs, BinArgs, DTypeArg, FormatArg, ProgressArgs, TableArgs, UnitArgs};
use crate::inputs::{Address, Resolve};
use crate::job::{ArrayReport, MakeObserver, Settings};
use crate::options::{is_dash, threads, usage, Dest, ReadOptions, UsageError};
use crate::progress::Watch;
use crate::quantile::{self, Pass, PassCounter};
use crate::render::group;
use crate::report::StatsObserver;
use crate::stats::{Keyed, StatsJson};
use anyhow::Result;
use clap::Args;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

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
    /// Exact quantiles of the finite values, as numpy.quantile (method "linear"), e.g. 0.001,0.5,0.999 (files only: the selection reads them again)
    #[arg(long, value_name = "Q,...", value_parser = parse_quantiles)]
    pub quantiles: Option<QuantileList>,
    /// Also write absmax, min, max and mean per unit: .npy (shape (4, U), in that order), .safetensors or .json
    #[arg(long, value_name = "FILE")]
    pub unit_vectors: Option<PathBuf>,
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
    /// Inputs: .npy, .npz (one object per member), .safetensors and .pt (one per tensor), CSV or TSV files (- for stdin), FILE:NAME (one member or tensor; NAME may be a glob), or directories (searched recursively)
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
}

pub fn run(args: StatsArgs) -> Result<()> {
    let (read, act) = (args.table.options(args.from)?, args.act.options(None, args.dtype)?);
    let how = Resolve { member: read.member.as_deref(), format: read.format, dirs: true, skip: None };
    let list = crate::inputs::resolve(&args.inputs, how)?;
    if args.quantiles.is_some() {
        // the radix selection reads each array again (two to four passes in all)
        if let Some(a) =
            list.iter().find(|a| is_dash(&a.path) || !std::fs::metadata(&a.path).is_ok_and(|m| m.is_file()))
        {
            return usage(format!(
                "--quantiles reads its input more than once (an exact selection in bounded memory): {} is not a regular file; save it to a file first",
                a.shown()
            ));
        }
    }
    let vectors_to = args.unit_vectors.as_ref().map(|p| VectorsFormat::of(p).map(|f| (p, f))).transpose()?;
    if let Some((p, _)) = vectors_to {
        // before any work: the output may not destroy an input (SPEC §5)
        let mut files = crate::output::RunFiles::default();
        for a in &list {
            files.input("the input", &a.path);
        }
        files.output("--unit-vectors", p, None)?;
    }
    let mut vectors: Vec<(String, Option<crate::stats::UnitsJson>)> = Vec::new();
    let first = args.quantiles.as_ref().map(|_| Arc::new(Pass::first()));
    let hist = crate::report::stats_observer(args.bins.for_stats()?, first);
    // files on a pool, each given the threads left over (one file: all of them, on its ranges)
    let total = threads(args.threads);
    let per_job = (total / total.min(list.len()).max(1)).max(1);
    let settings = Settings { read, act, units: Some(args.units.options()), threads: per_job, observer: hist };
    let job = |a: &Address| settings.reading(a.read(&settings.read)).job(a.path.clone(), Dest::Discard);
    let paths: Vec<PathBuf> = list.iter().map(|a| a.path.clone()).collect();
    let watch = Watch::start(
        args.progress.progress.into(),
        args.progress.quiet,
        crate::progress::input_bytes(&paths, settings.read.format),
        "stats",
    );
    let stdout = std::io::stdout();
    let mut failed = 0;
    let mut shown = 0;
    let run = |i: usize| {
        let mut done = job(&list[i]).run()?;
        if let Some(q) = &args.quantiles {
            quantiles_of(&settings, &list[i], &mut done.reports, q)?;
        }
        Ok(done)
    };
    crate::par::each_in_order(list.len(), total, run, |i, result| {
        match result {
            Ok(mut done) => {
                crate::report::attach_observed(&mut done.reports);
                list[i].name_reports(&mut done.reports);
                // the bar is cleared while results print, so they start on a line of their own
                Watch::suspend(watch.as_ref(), || -> Result<()> {
                    let mut out = stdout.lock();
                    for j in done.stats() {
                        if vectors_to.is_some() {
                            vectors.push((j.name.clone().unwrap_or_else(|| j.input.clone()), j.units.clone()));
                        }
                        if args.json {
                            writeln!(out, "{}", serde_json::to_string(&j)?)?;
                        } else {
                            if shown > 0 {
                                writeln!(out)?;
                            }
                            out.write_all(render_table(&j).as_bytes())?;
                        }
                        shown += 1;
                    }
                    Ok(out.flush()?)
                })?;
            }
            Err(e) if crate::output::is_broken_pipe(&e) => return Err(e),
            Err(e) if list.len() == 1 => return Err(e),
            // A usage mistake is the same for every input: stop at once, exit 2.
            Err(e) if e.chain().any(|c| c.downcast_ref::<UsageError>().is_some()) => return Err(e),
            Err(e) => {
                Watch::suspend(watch.as_ref(), || crate::errln!("relu: {e:#}"));
                failed += 1;
            }
        }
        Ok(())
    })?;
    drop(watch);
    if let Some((path, format)) = vectors_to {
        if failed == 0 {
            write_vectors(path, format, &vectors)?;
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} inputs failed", list.len());
    }
    Ok(())
}

/// The formats `--unit-vectors` writes.
#[derive(Clone, Copy, Debug, PartialEq)]
enum VectorsFormat {
    Npy,
    Safetensors,
    Json,
}

impl VectorsFormat {
    fn of(p: &std::path::Path) -> Result<VectorsFormat> {
        let ext = p.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("npy") => Ok(VectorsFormat::Npy),
            Some("safetensors") => Ok(VectorsFormat::Safetensors),
            Some("json") => Ok(VectorsFormat::Json),
            _ => usage(format!("--unit-vectors {}: give a .npy, .safetensors or .json file", p.display())),
        }
    }
}

/// The vectors `--unit-vectors` writes, in this order (the rows of the `.npy`).
const VECTORS: [&str; 4] = ["absmax", "min", "max", "mean"];

/// `--unit-vectors`: absmax, min, max and mean per unit of each array, as f64 (NaN in `.npy`
/// and `.safetensors` for a unit without a finite value, null in JSON). One array: a (4, U)
/// `.npy`, or the four by name; several: `.safetensors` names them `NAME.absmax` …, JSON
/// gives one object per array name; a `.npy` holds one array's.
fn write_vectors(
    path: &std::path::Path,
    format: VectorsFormat,
    arrays: &[(String, Option<crate::stats::UnitsJson>)],
) -> Result<()> {
    use crate::dtype::DType;
    let mut rows: Vec<(String, [Vec<Option<f64>>; 4])> = Vec::new();
    for (name, units) in arrays {
        let Some(u) = units else {
            return usage(format!(
                "--unit-vectors: {name} has no units (a 1-D array, or a scalar): pick a 2-D or larger array, or see --unit-axis"
            ));
        };
        let get = |v: &Option<Vec<Option<f64>>>| v.clone().unwrap_or_default();
        rows.push((name.clone(), [get(&u.absmax), get(&u.min), get(&u.max), get(&u.mean)]));
    }
    let bytes = |v: &[Option<f64>]| -> Vec<u8> { v.iter().flat_map(|x| x.unwrap_or(f64::NAN).to_le_bytes()).collect() };
    let mut data = Vec::new();
    match format {
        VectorsFormat::Npy => {
            let [(_, vs)] = rows.as_slice() else {
                return usage(format!(
                    "--unit-vectors {}: a .npy holds the vectors of one array, and there are {}: write .safetensors or .json",
                    path.display(),
                    rows.len()
                ));
            };
            data.extend(crate::format::npy::write_header(DType::F64, false, &[4, vs[0].len() as u64]));
            vs.iter().for_each(|v| data.extend(bytes(v)));
        }
        VectorsFormat::Safetensors => {
            let key = |name: &str, v: &str| if rows.len() == 1 { v.to_string() } else { format!("{name}.{v}") };
            let tensors: Vec<(String, DType, Vec<u64>)> = rows
                .iter()
                .flat_map(|(name, vs)| {
                    VECTORS.iter().zip(vs).map(move |(v, x)| (key(name, v), DType::F64, vec![x.len() as u64]))
                })
                .collect();
            let (header, _) = crate::format::safetensors::write_header(None, &tensors);
            data.extend(header);
            rows.iter().flat_map(|(_, vs)| vs.iter()).for_each(|v| data.extend(bytes(v)));
        }
        VectorsFormat::Json => {
            let object = |vs: &[Vec<Option<f64>>; 4]| {
                serde_json::Value::Object(
                    VECTORS.iter().zip(vs).map(|(k, v)| (k.to_string(), serde_json::json!(v))).collect(),
                )
            };
            let value = match rows.as_slice() {
                [(_, vs)] => object(vs),
                _ => serde_json::Value::Object(rows.iter().map(|(name, vs)| (name.clone(), object(vs))).collect()),
            };
            data.extend(serde_json::to_string(&value)?.into_bytes());
            data.push(b'\n');
        }
    }
    let mut out = crate::output::Output::create(path)?;
    out.write_all(&data).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    out.commit()
}

/// `--quantiles`: each a fraction in [0, 1], kept as written (the JSON's keys).
#[derive(Clone, Debug)]
pub struct QuantileList(pub Vec<(String, f64)>);

pub fn parse_quantiles(s: &str) -> Result<QuantileList, String> {
    let mut out = Vec::new();
    for t in s.split(',').map(str::trim) {
        let q: f64 = t
            .parse()
            .map_err(|_| format!("'{t}' is not a number: give fractions from 0 to 1, e.g. 0.001,0.5,0.999"))?;
        if !(0.0..=1.0).contains(&q) {
            return Err(format!("{t}: a quantile is a fraction from 0 to 1 (0.5 is the median)"));
        }
        if !out.iter().any(|(k, _)| k == t) {
            out.push((t.to_string(), q));
        }
    }
    if out.len() > quantile::MAX_QUANTILES {
        return Err(format!("{} quantiles: at most {} at once", out.len(), quantile::MAX_QUANTILES));
    }
    Ok(QuantileList(out))
}

/// Finishes each array's quantile selection: its first pass came with the statistics; the
/// later ones (one to three) read that array alone again, without statistics.
fn quantiles_of(
    settings: &Settings<StatsObserver>,
    a: &Address,
    reports: &mut [ArrayReport<StatsObserver>],
    q: &QuantileList,
) -> Result<()> {
    let fractions: Vec<f64> = q.0.iter().map(|p| p.1).collect();
    for r in reports.iter_mut() {
        let Some(mut first) = r.observer.as_mut().and_then(|o| o.pass.take()).map(Some) else { continue };
        // a container's array by its own name (an exact name selects it), a plain file as it is
        let member = r.name.strip_prefix(a.shown().as_str()).and_then(|m| m.strip_prefix(':')).map(str::to_string);
        let read = ReadOptions { member, ..settings.read.clone() };
        let values = quantile::quantiles(&fractions, |pass| {
            if let Some(c) = first.take() {
                return Ok(c);
            }
            let p = pass.clone();
            let make: MakeObserver<PassCounter> = Arc::new(move || PassCounter::new(p.clone()));
            let s = Settings {
                read: read.clone(),
                act: settings.act.clone(),
                units: None,
                threads: settings.threads,
                observer: Some(make),
            };
            let mut all = PassCounter::new(pass);
            for r in s.job(a.path.clone(), Dest::Discard).run()?.reports {
                if let Some(c) = r.observer {
                    all.merge_from(&c);
                }
            }
            Ok(all)
        })?;
        if let Some(s) = &mut r.stats {
            let at = |i: usize| values.as_ref().map(|v| v[i]);
            s.quantiles = Some(Keyed(q.0.iter().enumerate().map(|(i, (k, _))| (k.clone(), at(i))).collect()));
        }
    }
    Ok(())
}

/// The human table: counts, distribution, units, and a strip of the per-unit active rates.
pub fn render_table(j: &StatsJson) -> String {
    let num = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v}"));
    let pct =
        |n: u64| if j.elements == 0 { "-".into() } else { format!("{:.2}%", 100.0 * n as f64 / j.elements as f64) };
    let shape = j.shape.as_ref().map_or("?".into(), |s| crate::format::npy::shape_repr(s));
    let mut t =
        format!("{}  {} {}  activation: {}\n", j.input, j.dtype, shape, j.activation.as_deref().unwrap_or("none"));
    let mut row = |k: &str, v: String| t.push_str(&format!("  {k:<19}{v}\n"));
    row("elements", group(j.elements));
    row("zeros", format!("{}  ({} sparsity)", group(j.zeros), pct(j.zeros)));
    row("negative inputs", format!("{}  ({})", group(j.negative_inputs), pct(j.negative_inputs)));
    row("nan / +inf / -inf", format!("{} / {} / {}", group(j.nan), group(j.posinf), group(j.neginf)));
    row("min / max", format!("{} / {}", num(j.min), num(j.max)));
    row("mean / std", format!("{} / {}", num(j.mean), num(j.std)));
    row("kurtosis", num(j.kurtosis));
    if let Some(q) = &j.quantiles {
        let parts: Vec<String> = q.0.iter().map(|(k, v)| format!("q{k} {}", num(*v))).collect();
        row("quantiles", parts.join("  "));
    }
    if let Some(b) = &j.quantile_bounds {
        let parts: Vec<String> = b.0.iter().map(|(k, [lo, hi])| format!("q{k} in [{lo}, {hi}]")).collect();
        row("quantile bounds", parts.join("  "));
    }
    if let Some(u) = &j.units {
        row("units", format!("{} on axis {}, {} elements each", group(u.count), u.axis, group(u.elements_per_unit)));
        let shown: Vec<String> = u.dead_indices.iter().take(20).map(|i| i.to_string()).collect();
        let more =
            if u.dead_indices.len() > 20 { format!(", … {} more", u.dead_indices.len() - 20) } else { String::new() };
        row("dead", if u.dead == 0 { "0".into() } else { format!("{}  [{}{more}]", u.dead, shown.join(", ")) });
        // near dead counts the dead too (their rate, 0, is under any threshold): say how many
        let of_them = if u.dead > 0 && u.near_dead > 0 { format!("{} of them dead; ", u.dead) } else { String::new() };
        row("near dead", format!("{}  ({of_them}active < {}% of the time)", u.near_dead, u.threshold * 100.0));
        row("active rate", rate_strip(&u.active_count, u.elements_per_unit));
        if let (Some(o), Some(t)) = (&u.outliers, u.outlier_threshold) {
            let top = u.absmax.iter().flatten().flatten().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
            let top = if top.is_finite() { format!("; largest absmax {top}") } else { String::new() };
            row("outliers", format!("{}  (absmax > {t}{top}){}", o.len(), listed(o)));
        }
        if let (Some(d), Some(tau)) = (&u.dormant_indices, u.dormant_tau) {
            row("dormant", format!("{}  (ReDo score <= {tau}){}", d.len(), listed(d)));
        }
    }
    t
}

/// `  [i, j, …]` for the first 20 indices, or nothing for none.
fn listed(ix: &[u64]) -> String {
    if ix.is_empty() {
        return String::new();
    }
    let shown: Vec<String> = ix.iter().take(20).map(|i| i.to_string()).collect();
    let more = if ix.len() > 20 { format!(", … {} more", ix.len() - 20) } else { String::new() };
    format!("  [{}{more}]", shown.join(", "))
}

/// Units per active-rate decile as a bar strip: `0% ▁▁▁▂▃▅█▇▃▁ 100%  (counts: …)`.
fn rate_strip(active: &[u64], m: u64) -> String {
    if m == 0 || active.is_empty() {
        return "-".into();
    }
    let mut bins = [0u64; 10];
    for &c in active {
        bins[((c as f64 / m as f64 * 10.0) as usize).min(9)] += 1;
    }
    let top = *bins.iter().max().unwrap_or(&1);
    let bars = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let strip: String =
        bins.iter().map(|&b| if b == 0 { ' ' } else { bars[((b * 7).div_ceil(top)) as usize] }).collect();
    format!("0% ▕{strip}▏ 100%  units per decile: {}", bins.map(|b| b.to_string()).join(" "))
}
