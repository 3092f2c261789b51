//! `relu apply`: one input (an array, a table, or every member of an `.npz`) through an activation.

use crate::cli::{ActKind, ApplyArgs};
use crate::format::Format;
use crate::job::Job;
use crate::options::{is_dash, threads, usage, Dest};
use crate::output::{write_stats, RunFiles};
use anyhow::Result;

pub fn run(args: ApplyArgs) -> Result<()> {
    let act = args.act.options(Some(ActKind::Relu), args.dtype)?;
    let read = args.table.options(args.from)?;
    let out_path = args.output.clone().filter(|p| !is_dash(p));
    let to = args.to.map(|f| f.format());
    let dest = if args.in_place {
        if read.format.unwrap_or_else(|| Format::of_path(&args.input)) != Format::Npy {
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
    files.input("the input", &args.input);
    act.inputs(&mut files);
    if let Dest::File(p, _) = &dest {
        files.output("-o", p, Some(&args.input))?; // -o may name its own input (SPEC §5)
    }
    if let Some(p) = &args.stats {
        files.output("--stats", p, None)?;
    }
    let job = Job {
        input: args.input,
        read,
        dest,
        act,
        units: args.stats.is_some().then(|| args.units.options()),
        threads: threads(args.threads),
        observer: args.bins.for_stats()?.map(crate::report::observer),
    };
    if job.observer.is_some() && args.stats.is_none() {
        return usage("--bins and --range go with --stats (the histogram is part of the statistics)");
    }
    let total = crate::progress::input_bytes(std::slice::from_ref(&job.input), job.read.format);
    let watch = crate::progress::Watch::start(args.progress.progress.into(), args.progress.quiet, total, "apply");
    let mut done = job.run()?;
    drop(watch);
    crate::report::attach_to_stats(&mut done.reports);
    // The statistics first: a run that fails there leaves no output array either.
    if let Some(path) = &args.stats {
        write_stats(path, &done.stats())?;
    }
    done.commit()
}
