//! `relu apply`: one input (an array, a table, or every member of an `.npz`) through an activation.

use crate::args::{parse_threads, ActArgs, ActKind, BinArgs, DTypeArg, FormatArg, ProgressArgs, TableArgs, UnitArgs};
use crate::format::Format;
use crate::inputs::Resolve;
use crate::job::Settings;
use crate::options::{is_dash, threads, usage, Dest};
use crate::output::{write_stats, RunFiles};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  relu apply acts.npy -o out.npy\n  relu apply x.npy --act leaky --slope 0.2 -o y.npy\n  relu apply x.npy --act grad --upstream g.npy -o dx.npy\n  relu apply table.csv -o table.npy\n  relu apply --act none acts.npz:layer1 --dtype f16 -o layer1.npy\n  relu apply dump.safetensors -o dump_relu.safetensors\n  relu apply acts.npz --member layer1 -o layer1.csv\n  relu apply net.safetensors:layer2 -o layer2.npy\n  relu apply x.npy -o y.npy --stats y.json --bins 100 --range=-4:4\n  cat x.npy | relu apply --act leaky > y.npy"
)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub progress: ProgressArgs,
    #[command(flatten)]
    pub act: ActArgs,
    /// Input .npy, .npz, .safetensors, .pt, CSV or TSV file, FILE:NAME (one member or tensor; NAME may be a glob), or - for stdin
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

pub fn run(args: ApplyArgs) -> Result<()> {
    let act = args.act.options(Some(ActKind::Relu), args.dtype)?;
    let read = args.table.options(args.from)?;
    // FILE:NAME, or --member: which file, and which of its arrays
    let how = Resolve { member: read.member.as_deref(), format: read.format, dirs: false, skip: None };
    let addr = crate::inputs::resolve(std::slice::from_ref(&args.input), how)?.remove(0);
    let (input, read) = (addr.path.clone(), addr.read(&read));
    let out_path = args.output.clone().filter(|p| !is_dash(p));
    let to = args.to.map(|f| f.format());
    let dest = if args.in_place {
        if Format::of_input(&input, read.format) != Format::Npy {
            return usage("--in-place works on .npy files only");
        }
        if args.output.is_some() {
            return usage("--in-place writes into INPUT: leave out -o");
        }
        Dest::InPlace
    } else {
        match out_path {
            Some(p) => {
                let f = to.unwrap_or_else(|| Format::of_path(&p));
                Dest::File(p, f)
            }
            None => {
                if args.stats.as_deref().is_some_and(is_dash) {
                    return usage("--stats - and the array cannot both go to stdout: give -o FILE");
                }
                Dest::Stdout(to)
            }
        }
    };
    // before any work: no output may destroy an input or another output (SPEC §5)
    let mut files = RunFiles::default();
    files.input("the input", &input);
    act.inputs(&mut files);
    if let Dest::File(p, _) = &dest {
        files.output("-o", p, Some(&input))?; // -o may name its own input (SPEC §5)
    }
    if let Some(p) = &args.stats {
        files.output("--stats", p, None)?;
    }
    let settings = Settings {
        read,
        act,
        units: args.stats.is_some().then(|| args.units.options()),
        threads: threads(args.threads),
        observer: args.bins.for_stats()?.map(crate::report::observer),
    };
    if settings.observer.is_some() && args.stats.is_none() {
        return usage("--bins and --range go with --stats (the histogram is part of the statistics)");
    }
    let job = settings.job(input, dest);
    let total = crate::progress::input_bytes(std::slice::from_ref(&job.input), job.settings.read.format);
    let watch = crate::progress::Watch::start(args.progress.progress.into(), args.progress.quiet, total, "apply");
    let mut done = job.run()?;
    drop(watch);
    crate::report::attach_to_stats(&mut done.reports);
    addr.name_reports(&mut done.reports);
    // The statistics first: a run that fails there leaves no output array either.
    if let Some(path) = &args.stats {
        write_stats(path, &done.stats())?;
    }
    done.commit()
}
