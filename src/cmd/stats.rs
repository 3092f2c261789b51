//! `relu stats`: statistics of arrays from one streaming pass: a table, or JSON (SPEC §4).

use crate::args::{parse_threads, ActArgs, BinArgs, DTypeArg, FormatArg, ProgressArgs, TableArgs, UnitArgs};
use crate::inputs::{Address, Resolve};
use crate::job::Settings;
use crate::options::{threads, Dest, UsageError};
use crate::progress::Watch;
use crate::render::group;
use crate::stats::StatsJson;
use anyhow::Result;
use clap::Args;
use std::io::Write;
use std::path::PathBuf;

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
    /// Inputs: .npy, .npz (one object per member), .safetensors and .pt (one per tensor), CSV or TSV files (- for stdin), FILE:NAME (one member or tensor; NAME may be a glob), or directories (searched recursively)
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
}

pub fn run(args: StatsArgs) -> Result<()> {
    let (read, act) = (args.table.options(args.from)?, args.act.options(None, args.dtype)?);
    let how = Resolve { member: read.member.as_deref(), format: read.format, dirs: true, skip: None };
    let list = crate::inputs::resolve(&args.inputs, how)?;
    let hist = args.bins.for_stats()?.map(crate::report::observer);
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
    let run = |i: usize| job(&list[i]).run();
    crate::par::each_in_order(list.len(), total, run, |i, result| {
        match result {
            Ok(mut done) => {
                crate::report::attach_to_stats(&mut done.reports);
                list[i].name_reports(&mut done.reports);
                // the bar is cleared while results print, so they start on a line of their own
                Watch::suspend(watch.as_ref(), || -> Result<()> {
                    let mut out = stdout.lock();
                    for j in done.stats() {
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
    if failed > 0 {
        anyhow::bail!("{failed} of {} inputs failed", list.len());
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
    }
    t
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
