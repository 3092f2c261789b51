//! `relu apply`: one array through an activation, streamed chunk by chunk.

use super::apply_csv;
use super::common::{
    check_length, format_of, is_dash, open_upstream, resolve_plan, unit_layout, write_stats, Input, NpyInput,
};
use crate::act::Activation;
use crate::cli::{ActKind, ApplyArgs, FormatArg, UsageError};
use crate::format::npy;
use crate::kernel::Kernel;
use crate::output::AtomicOutput;
use crate::pipeline::{self, ChunkProcessor, ChunkSource, ReadSource};
use crate::stats::{StatsAccumulator, StatsJson};
use anyhow::{anyhow, Context, Result};
use std::fs::OpenOptions;
use std::io::{IsTerminal, Write};
use std::os::unix::fs::FileExt;

pub fn run(args: ApplyArgs) -> Result<()> {
    let act = args.act.activation(Some(ActKind::Relu))?;
    let out_path = args.output.as_deref().filter(|p| !is_dash(p));
    if args.in_place {
        if args.from.unwrap_or_else(|| format_of(&args.input)) != FormatArg::Npy {
            return Err(UsageError("--in-place works on .npy files only".into()).into());
        }
        return run_in_place(&args, act);
    }
    let to_stdout = out_path.is_none();
    if let Some(s) = &args.stats {
        if is_dash(s) && to_stdout {
            return Err(UsageError("--stats - and the array cannot both go to stdout: give -o FILE".into()).into());
        }
    }
    let input = Input::resolve(&args.input, args.from)?;
    let from = input.format;
    let to = args.to.or_else(|| out_path.map(format_of)).unwrap_or(from);
    if to_stdout && matches!(to, FormatArg::Npy | FormatArg::Npz) && std::io::stdout().is_terminal() {
        return Err(UsageError("refusing to write binary data to a terminal: use -o FILE or a pipe".into()).into());
    }
    if args.table.member.is_some() && from != FormatArg::Npz {
        return Err(UsageError("--member picks an array of an .npz input".into()).into());
    }
    // Each side's delimiter by its format; `-d` sets both.
    let in_delim = apply_csv::delimiter(args.table.delimiter.as_deref(), from)?;
    let delim = apply_csv::delimiter(args.table.delimiter.as_deref(), to)?;
    match from {
        FormatArg::Npz => super::apply_npz::run(&args, act, input.npz()?, to, delim, out_path),
        FormatArg::Csv | FormatArg::Tsv => {
            let dest = match to {
                FormatArg::Npy => apply_csv::Dest::Npy(out_path),
                FormatArg::Csv | FormatArg::Tsv => apply_csv::Dest::Csv(out_path),
                FormatArg::Npz => return Err(UsageError(npz_needs_npz()).into()),
            };
            let name = input.name.clone();
            apply_csv::csv_input(&args, act, &name, input.reader()?, (in_delim, delim), dest)
        }
        FormatArg::Npy => match to {
            FormatArg::Npy => run_npy(&args, act, input.npy()?),
            FormatArg::Csv | FormatArg::Tsv => apply_csv::npy_to_csv(&args, act, input.npy()?, delim, out_path),
            FormatArg::Npz => Err(UsageError(npz_needs_npz()).into()),
        },
    }
}

pub fn npz_needs_npz() -> String {
    "an .npz output is written from an .npz input (its members keep their names)".into()
}

/// An array ready to stream: its processor (with an accumulator when `--stats` asks), its
/// upstream gradient, and the output header.
pub struct Prepared {
    pub proc: ChunkProcessor,
    pub upstream: Option<NpyInput<'static>>,
    pub out_header: Vec<u8>,
}

pub fn prepare(args: &ApplyArgs, act: Option<Activation>, input: &NpyInput) -> Result<Prepared> {
    let name = &input.name;
    let mut plan = resolve_plan(&args.act, act, &input.header, args.dtype.dtype()).with_context(|| name.clone())?;
    let upstream = open_upstream(&args.act, input, &plan)?;
    plan.upstream = upstream.as_ref().map(|u| u.header.order);
    let stats = match &args.stats {
        Some(_) => Some(StatsAccumulator::new(unit_layout(&input.header, &args.units).with_context(|| name.clone())?)),
        None => None,
    };
    let proc = ChunkProcessor::new(plan, Kernel::default(), stats);
    let out_header = npy::write_header(proc.plan().output, input.header.fortran_order, &input.header.shape);
    Ok(Prepared { proc, upstream, out_header })
}

/// `.npy` → `.npy`.
pub fn run_npy(args: &ApplyArgs, act: Option<Activation>, mut input: NpyInput) -> Result<()> {
    let name = input.name.clone();
    let Prepared { mut proc, mut upstream, out_header } = prepare(args, act, &input)?;
    let elements = input.header.elements;
    let fail = |e: anyhow::Error| if crate::output::is_broken_pipe(&e) { e } else { e.context(name.clone()) };
    let up = upstream.as_mut().map(|u| u.source.as_mut() as &mut dyn ChunkSource);

    let threads = super::common::threads(args.threads);
    let run = |proc: &mut ChunkProcessor, sink: &mut (dyn FnMut(&[u8]) -> Result<()> + Send)| {
        let src = input.source.as_mut();
        if threads > 1 {
            pipeline::stream_overlapped(proc, elements, src, up, sink)
        } else {
            pipeline::stream(proc, elements, src, up, sink)
        }
    };
    match args.output.as_deref().filter(|p| !is_dash(p)) {
        None => {
            let mut stdout = std::io::stdout();
            stdout.write_all(&out_header)?;
            run(&mut proc, &mut |b: &[u8]| Ok(stdout.write_all(b)?)).map_err(fail)?;
            std::io::stdout().flush()?;
            finish_stats(args, &proc, &input)?;
        }
        Some(path) => {
            let mut out = AtomicOutput::create(path)?;
            let out_bytes = elements.saturating_mul(proc.plan().output.size() as u64);
            out.preallocate(out_header.len() as u64 + out_bytes);
            out.write_all(&out_header).with_context(|| format!("cannot write {}", path.display()))?;
            let mut write = |b: &[u8]| out.write_all(b).with_context(|| format!("cannot write {}", path.display()));
            run(&mut proc, &mut write).map_err(fail)?;
            // The statistics file first: a run that fails there leaves no output array either.
            finish_stats(args, &proc, &input)?;
            out.commit()?;
        }
    }
    Ok(())
}

fn finish_stats(args: &ApplyArgs, proc: &ChunkProcessor, input: &NpyInput) -> Result<()> {
    match (&args.stats, stats_json(args, proc, input)) {
        (Some(path), Some(json)) => write_stats(path, &[json]),
        _ => Ok(()),
    }
}

/// The statistics object of one array, when the processor gathered them (`--stats`).
pub fn stats_json(args: &ApplyArgs, proc: &ChunkProcessor, input: &NpyInput) -> Option<StatsJson> {
    let plan = proc.plan();
    let acc = proc.stats()?;
    Some(acc.to_json(
        &input.name,
        plan.act.map(|a| a.name()),
        plan.work.name(),
        &input.header.shape,
        args.units.dead_threshold,
    ))
}

/// `--in-place`: rewrite the data region of the input file itself, in its own byte order.
fn run_in_place(args: &ApplyArgs, act: Option<Activation>) -> Result<()> {
    let path = &args.input;
    if is_dash(path) {
        return Err(UsageError("--in-place needs a .npy file, not stdin".into()).into());
    }
    if args.output.is_some() {
        return Err(UsageError("--in-place writes into INPUT: leave out -o".into()).into());
    }
    let name = path.display().to_string();
    let mut file = OpenOptions::new().read(true).write(true).open(path).with_context(|| name.clone())?;
    let header = npy::read_header(&mut file).with_context(|| name.clone())?;
    let data_bytes = check_length(&file, &header).with_context(|| name.clone())?;
    let func = act.map(|a| a.func()).unwrap_or(crate::act::Func::Relu);
    if !header.dtype()?.is_float() && func != crate::act::Func::Relu {
        return Err(UsageError(format!(
            "{} on {} cannot run in place (it needs a float type): write a new file with --dtype f32 -o OUT",
            func.name(),
            header.dtype_name()
        ))
        .into());
    }
    let mut plan = resolve_plan(&args.act, act, &header, args.dtype.dtype()).with_context(|| name.clone())?;
    if plan.output != plan.input || plan.work != plan.input {
        return Err(UsageError(format!(
            "--in-place cannot change the dtype ({} to {}): write a new file with -o",
            plan.input, plan.output
        ))
        .into());
    }
    plan.output_order = header.order;
    let input = NpyInput {
        name: name.clone(),
        header: header.clone(),
        source: Box::new(ReadSource::new(std::io::empty(), 0)),
        file: None,
    };
    let mut upstream = open_upstream(&args.act, &input, &plan)?;
    plan.upstream = upstream.as_ref().map(|u| u.header.order);
    let stats = match &args.stats {
        Some(_) => Some(StatsAccumulator::new(unit_layout(&header, &args.units).with_context(|| name.clone())?)),
        None => None,
    };
    let mut src = pipeline::file_source(file.try_clone()?, header.data_offset, header.data_offset + data_bytes);
    let mut proc = ChunkProcessor::new(plan, Kernel::default(), stats);
    let mut offset = header.data_offset;
    let mut write = |b: &[u8]| -> Result<()> {
        file.write_all_at(b, offset).map_err(|e| anyhow!(e))?;
        offset += b.len() as u64;
        Ok(())
    };
    let up = upstream.as_mut().map(|u| u.source.as_mut() as &mut dyn ChunkSource);
    pipeline::stream(&mut proc, header.elements, src.as_mut(), up, &mut write).with_context(|| name.clone())?;
    finish_stats(args, &proc, &input)
}
