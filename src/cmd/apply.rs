//! `relu apply`: one array through an activation, streamed chunk by chunk.

use super::apply_csv;
use super::common::{check_length, is_dash, open_upstream, resolve_plan, unit_layout, write_stats, NpyInput};
use crate::act::Activation;
use crate::cli::{ActKind, ApplyArgs, FormatArg, UsageError};
use crate::format::npy;
use crate::kernel::Kernel;
use crate::output::AtomicOutput;
use crate::pipeline::{self, ChunkProcessor, ChunkSource, ReadSource};
use crate::stats::StatsAccumulator;
use anyhow::{anyhow, Context, Result};
use std::fs::OpenOptions;
use std::io::{IsTerminal, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

pub fn run(args: ApplyArgs) -> Result<()> {
    let act = args.act.activation(Some(ActKind::Relu))?;
    let out_path = args.output.as_deref().filter(|p| !is_dash(p));
    let from = args.from.or_else(|| if is_dash(&args.input) { None } else { Some(format_of(&args.input)) });
    let to = args.to.or_else(|| out_path.map(format_of));
    if from == Some(FormatArg::Npz) || to == Some(FormatArg::Npz) {
        return Err(
            UsageError(".npz is not supported yet: relu apply reads and writes .npy, CSV and TSV".into()).into()
        );
    }
    let is_csv = |f: Option<FormatArg>| matches!(f, Some(FormatArg::Csv | FormatArg::Tsv));
    if is_csv(from) || is_csv(to) || (from.is_none() && !args.in_place) {
        // Formats decided by content (stdin) or a CSV on either side.
        if args.in_place {
            return Err(UsageError("--in-place works on .npy files only".into()).into());
        }
        let (from, reader): (FormatArg, Option<Box<dyn std::io::Read + Send>>) = match from {
            Some(f) => (f, None),
            None => {
                let (f, r) = sniff_stdin()?;
                (f, Some(r))
            }
        };
        let to = to.unwrap_or(from);
        if from == FormatArg::Npz || to == FormatArg::Npz {
            return Err(
                UsageError(".npz is not supported yet: relu apply reads and writes .npy, CSV and TSV".into()).into()
            );
        }
        if from != FormatArg::Npy || to != FormatArg::Npy {
            let default_delim = match (from, to) {
                (FormatArg::Tsv, _) | (FormatArg::Npy, FormatArg::Tsv) => b'\t',
                _ => b',',
            };
            let delim = apply_csv::delimiter(args.delimiter.as_deref(), default_delim)?;
            let name = if is_dash(&args.input) { "<stdin>".to_string() } else { args.input.display().to_string() };
            let to_stdout = out_path.is_none();
            if to_stdout && to == FormatArg::Npy && std::io::stdout().is_terminal() {
                return Err(UsageError(
                    "refusing to write binary .npy data to a terminal: use -o FILE or a pipe".into(),
                )
                .into());
            }
            return match from {
                FormatArg::Csv | FormatArg::Tsv => {
                    let r: Box<dyn std::io::Read + Send> = match reader {
                        Some(r) => r,
                        None if is_dash(&args.input) => Box::new(std::io::stdin()),
                        None => Box::new(std::fs::File::open(&args.input).with_context(|| name.clone())?),
                    };
                    let dest = if to == FormatArg::Npy {
                        apply_csv::Dest::Npy(out_path)
                    } else {
                        apply_csv::Dest::Csv(out_path)
                    };
                    apply_csv::csv_input(&args, act, &name, r, delim, dest)
                }
                _ => {
                    let input = match reader {
                        Some(r) => NpyInput::from_reader(&name, r)?,
                        None => NpyInput::open(&args.input)?,
                    };
                    apply_csv::npy_to_csv(&args, act, input, delim, out_path)
                }
            };
        }
        if let Some(r) = reader {
            return run_npy(&args, act, NpyInput::from_reader("<stdin>", r)?);
        }
    }
    let to_stdout = !args.in_place && args.output.as_deref().is_none_or(is_dash);
    if let Some(s) = &args.stats {
        if is_dash(s) && to_stdout {
            return Err(UsageError("--stats - and the array cannot both go to stdout: give -o FILE".into()).into());
        }
    }
    if args.in_place {
        return run_in_place(&args, act);
    }
    if to_stdout && std::io::stdout().is_terminal() {
        return Err(UsageError("refusing to write binary .npy data to a terminal: use -o FILE or a pipe".into()).into());
    }
    run_npy(&args, act, NpyInput::open(&args.input)?)
}

/// The format a path's extension names (`.npy` when it names none relu knows).
fn format_of(p: &Path) -> FormatArg {
    match p.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).as_deref() {
        Some("csv") | Some("txt") => FormatArg::Csv,
        Some("tsv") | Some("tab") => FormatArg::Tsv,
        Some("npz") => FormatArg::Npz,
        _ => FormatArg::Npy,
    }
}

/// Reads the first bytes of stdin to tell `.npy` (`\x93NUMPY`) and `.npz` (`PK\x03\x04`) from
/// CSV; returns the format and a reader that still yields those bytes.
pub fn sniff_stdin() -> Result<(FormatArg, Box<dyn std::io::Read + Send>)> {
    use std::io::Read;
    let mut head = Vec::with_capacity(6);
    let mut stdin = std::io::stdin();
    (&mut stdin).take(6).read_to_end(&mut head).context("<stdin>")?;
    let f = if head.starts_with(b"\x93NUMPY") {
        FormatArg::Npy
    } else if head.starts_with(b"PK\x03\x04") {
        FormatArg::Npz
    } else {
        FormatArg::Csv
    };
    Ok((f, Box::new(std::io::Cursor::new(head).chain(stdin))))
}

/// `.npy` → `.npy`.
fn run_npy(args: &ApplyArgs, act: Option<Activation>, mut input: NpyInput) -> Result<()> {
    let name = input.name.clone();
    let mut plan = resolve_plan(&args.act, act, &input.header, args.dtype.dtype()).with_context(|| name.clone())?;
    let mut upstream = open_upstream(&args.act, &input, &plan)?;
    plan.upstream = upstream.as_ref().map(|u| u.header.order);
    let stats = match &args.stats {
        Some(_) => Some(StatsAccumulator::new(unit_layout(&input.header, &args.units).with_context(|| name.clone())?)),
        None => None,
    };
    let mut proc = ChunkProcessor::new(plan, Kernel::default(), stats);
    let out_header = npy::write_header(proc.plan().output, input.header.fortran_order, &input.header.shape);
    let elements = input.header.elements;
    let fail = |e: anyhow::Error| if crate::output::is_broken_pipe(&e) { e } else { e.context(name.clone()) };
    let up = upstream.as_mut().map(|u| u.source.as_mut() as &mut dyn ChunkSource);

    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
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
    let (Some(path), Some(acc)) = (&args.stats, proc.stats()) else {
        return Ok(());
    };
    let plan = proc.plan();
    let json = acc.to_json(
        &input.name,
        plan.act.map(|a| a.name()),
        plan.work.name(),
        &input.header.shape,
        args.units.dead_threshold,
    );
    write_stats(path, &[json])
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
