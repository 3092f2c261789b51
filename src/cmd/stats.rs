//! `relu stats`: statistics of arrays from one streaming pass: a table, or JSON (SPEC §4).

use super::apply_csv;
use super::common::{open_upstream, resolve_plan, unit_layout, Input, NpyInput};
use crate::act::Activation;
use crate::cli::{FormatArg, StatsArgs, UsageError};
use crate::format::npz::finish_member;
use crate::kernel::Kernel;
use crate::pipeline::{self, ChunkProcessor, ChunkSource, FileData};
use crate::stats::{StatsAccumulator, StatsJson};
use anyhow::{Context, Result};
use std::io::{Read, Write};
use std::path::Path;

pub fn run(args: StatsArgs) -> Result<()> {
    let act = args.act.activation(None)?;
    let stdout = std::io::stdout();
    let mut failed = 0;
    for (i, path) in args.inputs.iter().enumerate() {
        match one(&args, act, path) {
            Ok(objects) => {
                let mut out = stdout.lock();
                for (k, j) in objects.iter().enumerate() {
                    if args.json {
                        writeln!(out, "{}", serde_json::to_string(j)?)?;
                    } else {
                        if i + k > 0 {
                            writeln!(out)?;
                        }
                        out.write_all(render_table(j).as_bytes())?;
                    }
                }
                out.flush()?;
            }
            Err(e) if crate::output::is_broken_pipe(&e) => return Err(e),
            Err(e) if args.inputs.len() == 1 => return Err(e),
            // A usage mistake is the same for every input: stop at once, exit 2.
            Err(e) if e.chain().any(|c| c.downcast_ref::<crate::cli::UsageError>().is_some()) => return Err(e),
            Err(e) => {
                eprintln!("relu: {e:#}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} inputs failed", args.inputs.len());
    }
    Ok(())
}

/// The statistics of one input: one object, or one per member of an `.npz`.
fn one(args: &StatsArgs, act: Option<Activation>, path: &Path) -> Result<Vec<StatsJson>> {
    let input = Input::resolve(path, args.from)?;
    if args.table.member.is_some() && input.format != FormatArg::Npz {
        return Err(UsageError("--member picks an array of an .npz input".into()).into());
    }
    match input.format {
        FormatArg::Npz => {
            if args.act.upstream.is_some() {
                return Err(UsageError(
                    "--upstream with an .npz input is not supported: extract the member first".into(),
                )
                .into());
            }
            let mut ar = input.npz()?;
            let members = match &args.table.member {
                Some(m) => vec![ar.find(m)?],
                None => ar.members()?,
            };
            let mut out = Vec::new();
            for m in members {
                let name = ar.member_name(&m);
                let mut r = ar.reader(&m)?;
                out.push(npy_stats(args, act, NpyInput::from_reader(&name, Box::new(&mut r))?)?);
                finish_member(&mut r, &name)?;
            }
            Ok(out)
        }
        FormatArg::Csv | FormatArg::Tsv => {
            let delim = apply_csv::delimiter(args.table.delimiter.as_deref(), input.format)?;
            let name = input.name.clone();
            Ok(vec![csv_stats(args, act, &name, input.reader()?, delim)?])
        }
        FormatArg::Npy => Ok(vec![npy_stats(args, act, input.npy()?)?]),
    }
}

fn csv_stats(
    args: &StatsArgs,
    act: Option<Activation>,
    name: &str,
    r: Box<dyn Read + Send>,
    delim: u8,
) -> Result<StatsJson> {
    if args.act.upstream.is_some() {
        return Err(
            UsageError("--upstream with CSV input is not supported: convert the input to .npy first".into()).into()
        );
    }
    let mode = apply_csv::HeaderMode::from_flags(args.table.header, args.table.no_header);
    let table = apply_csv::CsvTable::open(name, r, delim, mode)?;
    let cols = table.cols;
    let mut plan = resolve_plan(&args.act, act, &apply_csv::table_header(cols), args.dtype.dtype())
        .with_context(|| name.to_string())?;
    plan.output = plan.work; // nothing is written
    let acc = StatsAccumulator::new(apply_csv::table_units(cols, &args.units)?);
    let (act_name, work) = (plan.act.map(|a| a.name()), plan.work.name());
    let threads = super::common::threads(args.threads);
    let (rows, acc) =
        apply_csv::run_table(table, plan, Some(acc), apply_csv::TableOutput::Nothing, delim, threads, |_| Ok(()))?;
    let acc = acc.expect("run with an accumulator");
    Ok(acc.to_json(name, act_name, work, &[rows, cols as u64], args.units.dead_threshold))
}

fn npy_stats(args: &StatsArgs, act: Option<Activation>, mut input: NpyInput) -> Result<StatsJson> {
    let name = input.name.clone();
    let mut plan = resolve_plan(&args.act, act, &input.header, args.dtype.dtype()).with_context(|| name.clone())?;
    let mut upstream = open_upstream(&args.act, &input, &plan)?;
    plan.upstream = upstream.as_ref().map(|u| u.header.order);
    plan.output = plan.work; // nothing is written: skip the output conversion
    let acc = StatsAccumulator::new(unit_layout(&input.header, &args.units).with_context(|| name.clone())?);
    let mut proc = ChunkProcessor::new(plan, Kernel::default(), Some(acc));
    let threads = super::common::threads(args.threads);
    let elements = input.header.elements;
    let files = (input.file.as_ref(), upstream.as_ref().map(|u| u.file.as_ref()));
    let parallel = threads > 1 && elements >= 2 * proc.chunk_elems as u64;
    let acc = match files {
        (Some(f), up) if parallel && up.is_none_or(|u| u.is_some()) => {
            let data = FileData { file: f, offset: input.header.data_offset };
            let up = match (up.flatten(), &upstream) {
                (Some(file), Some(u)) => Some(FileData { file, offset: u.header.data_offset }),
                _ => None,
            };
            pipeline::stats_parallel(&proc, elements, data, up, threads).with_context(|| name.clone())?
        }
        _ => {
            let up = upstream.as_mut().map(|u| u.source.as_mut() as &mut dyn ChunkSource);
            pipeline::stream(&mut proc, elements, input.source.as_mut(), up, &mut |_| Ok(()))
                .with_context(|| name.clone())?;
            proc.stats().expect("created with an accumulator").clone()
        }
    };
    let plan = proc.plan();
    Ok(acc.to_json(&name, plan.act.map(|a| a.name()), plan.work.name(), &input.header.shape, args.units.dead_threshold))
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
        row("near dead", format!("{}  (active < {}% of the time)", u.near_dead, u.threshold * 100.0));
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

/// 1234567 → "1,234,567".
fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
