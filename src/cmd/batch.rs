//! `relu batch`: `apply` (and statistics) over whole datasets. Inputs are files and directories
//! (searched recursively, see `discover.rs`); the list is sorted byte-wise and
//! `--shard I/N` takes every N-th from the I-th, so N machines split a dataset with no
//! coordination. Each file is one `Job` on a pool of `-j` workers (a file gets the threads left
//! over when there are fewer files than threads); outputs mirror the input tree under `--out-dir`
//! and appear complete or not at all. A failing file fails alone: the others finish, failures are
//! listed at the end, and the exit code is 1 (`--fail-fast` stops at the first).

use crate::args::{parse_threads, ActArgs, ActKind, BinArgs, DTypeArg, ProgressArg, TableArgs, UnitArgs};
use crate::cmd::parts::StatsParts;
use crate::format::Format;
use crate::hist::Histogram;
use crate::inputs::{Address, Resolve};
use crate::job::{Job, Settings};
use crate::options::{is_dash, threads, usage, Dest};
use crate::output::{write_stats, FileId, RunFiles};
use crate::stats::StatsJson;
use anyhow::{Context, Result};
use clap::Args;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  relu batch --out-dir out/ acts/\n  relu batch --out-dir out/ --stats stats.jsonl --act leaky --slope 0.1 acts/ more.npz\n  relu batch --out-dir out/ --shard 2/8 --stats shard-2.jsonl acts/   # machine 2 of 8\n  relu merge-stats shard-*.jsonl"
)]
pub struct BatchArgs {
    #[command(flatten)]
    pub act: ActArgs,
    /// Where the outputs go, mirroring the input tree
    #[arg(long, value_name = "DIR")]
    pub out_dir: PathBuf,
    /// Output element type; the activation runs in the input's float type, then rounds once
    #[arg(long, value_enum, default_value = "same")]
    pub dtype: DTypeArg,
    #[command(flatten)]
    pub table: TableArgs,
    /// Also write statistics: one JSON object per array (JSON Lines), in input order
    #[arg(long, value_name = "FILE")]
    pub stats: Option<PathBuf>,
    #[command(flatten)]
    pub units: UnitArgs,
    #[command(flatten)]
    pub bins: BinArgs,
    /// Take every N-th input (sorted byte-wise) from the I-th: machine I of N (1-based)
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    pub shard: Option<(usize, usize)>,
    /// Skip inputs whose output exists (outputs are complete or absent)
    #[arg(long)]
    pub skip_existing: bool,
    /// Stop at the first failure (otherwise failures are listed at the end)
    #[arg(long)]
    pub fail_fast: bool,
    /// Make each output survive power loss: fsync it before the rename, and its directory after
    #[arg(long)]
    pub sync: bool,
    /// Progress bar on stderr: auto draws it only when stderr is a terminal
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: ProgressArg,
    /// No progress and no summary line (failures are still reported)
    #[arg(short, long)]
    pub quiet: bool,
    /// Worker threads [default: all cores]
    #[arg(short = 'j', long, value_name = "N", value_parser = parse_threads)]
    pub threads: Option<usize>,
    /// Files and directories (searched recursively for .npy, .npz, .safetensors, .csv, .tsv)
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
}

/// `--shard I/N`, 1-based.
fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("'{s}' is not a shard: give I/N with 1 <= I <= N, e.g. --shard 2/8");
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let (i, n): (usize, usize) = (i.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
    if i == 0 || i > n {
        return Err(bad());
    }
    Ok((i, n))
}

/// One input file and where its output goes.
struct Item {
    input: PathBuf,
    output: PathBuf,
    /// `output` below `--out-dir`.
    rel: PathBuf,
    bytes: u64,
    /// How its arrays are named in the statistics (below the directory it was found under).
    names: Address,
}

/// The progress bar: bytes, throughput and ETA, files done and failed so far; drawn on stderr
/// only when it is a terminal (`--progress auto`), never with `-q`.
fn progress(args: &BatchArgs, items: &[Item]) -> indicatif::ProgressBar {
    let bar = crate::progress::bar(args.progress.into(), args.quiet, items.iter().map(|i| i.bytes).sum());
    bar.set_message(format!("files 0/{}", items.len()));
    bar
}

/// What became of one input.
enum Outcome {
    Done(Vec<StatsJson>, u64),
    /// Its output exists: its statistics (with `--stats`) from its part, or computed again (true).
    Skipped(Vec<StatsJson>, bool),
    Failed(anyhow::Error),
}

pub fn run(args: BatchArgs) -> Result<()> {
    let started = Instant::now();
    let act = args.act.options(Some(ActKind::Relu), args.dtype)?;
    let read = args.table.options(None)?;
    let observer = args.bins.for_stats()?.map(crate::report::observer);
    if observer.is_some() && args.stats.is_none() {
        return usage("--bins and --range go with --stats (the histogram is part of the statistics)");
    }
    let mut items = plan(&args, &act, read.member.as_deref())?;
    if let Some((i, n)) = args.shard {
        items = items.into_iter().skip(i - 1).step_by(n).collect();
    }
    let total = threads(args.threads);
    let pool = total.min(items.len()).max(1);
    let per_job = (total / pool).max(1);
    let units = args.stats.is_some().then(|| args.units.options());
    // what the statistics depend on besides the input: a part saved under other settings is not used
    let fingerprint = format!("{act:?} {units:?} {:?} {read:?}", args.bins);
    let parts = args.stats.as_deref().and_then(|p| StatsParts::beside(p, fingerprint));
    let settings = Settings { read, act, units, threads: per_job, observer };
    let job = |it: &Item| {
        let dest = Dest::File(it.output.clone(), Format::of_path(&it.input));
        settings.reading(it.names.read(&settings.read)).job(it.input.clone(), dest)
    };
    let outcomes: Vec<Mutex<Option<Outcome>>> = items.iter().map(|_| Mutex::new(None)).collect();
    let bar = progress(&args, &items);
    let failed = AtomicUsize::new(0);
    let finished = AtomicUsize::new(0);
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..pool {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= items.len() || stop.load(Ordering::Relaxed) {
                    break;
                }
                let it = &items[i];
                let result = if args.skip_existing && it.output.exists() {
                    skip(job(it), it, parts.as_ref(), units.is_some())
                } else {
                    one(&job(it), it, args.sync, parts.as_ref())
                };
                let outcome = result.unwrap_or_else(|e| {
                    if args.fail_fast {
                        stop.store(true, Ordering::Relaxed);
                    }
                    failed.fetch_add(1, Ordering::Relaxed);
                    Outcome::Failed(e)
                });
                let k = finished.fetch_add(1, Ordering::Relaxed) + 1;
                bar.inc(it.bytes);
                bar.set_message(format!("files {k}/{}, {} failed", items.len(), failed.load(Ordering::Relaxed)));
                if let Ok(mut slot) = outcomes[i].lock() {
                    *slot = Some(outcome);
                }
            });
        }
    });
    bar.finish_and_clear();
    // Report in input order, whatever the order the workers finished in.
    let (mut stats, mut failures) = (Vec::new(), Vec::new());
    let (mut done, mut skipped, mut recomputed, mut arrays, mut bytes) = (0, 0, 0, 0, 0u64);
    for (it, o) in items.iter().zip(outcomes) {
        match o.into_inner().ok().flatten() {
            Some(Outcome::Done(s, b)) => {
                done += 1;
                arrays += s.len().max(1);
                bytes += b;
                stats.extend(s);
            }
            Some(Outcome::Skipped(s, again)) => {
                skipped += 1;
                recomputed += usize::from(again);
                stats.extend(s);
            }
            Some(Outcome::Failed(e)) => failures.push((it, e)),
            None => {} // not started: --fail-fast stopped the run
        }
    }
    if let Some(path) = &args.stats {
        write_stats(path, &stats)?;
    }
    let not_run = items.len() - done - skipped - failures.len();
    if let Some(parts) = parts.filter(|_| failures.is_empty() && not_run == 0) {
        // every input accounted for in FILE: nothing left to resume
        parts.remove(items.iter().map(|it| it.rel.as_path()));
    }
    for (it, e) in &failures {
        // the cause names the file in most cases; say it where it does not
        let text = format!("{e:#}");
        let name = it.input.display().to_string();
        if text.contains(&name) {
            crate::errln!("relu: {text}");
        } else {
            crate::errln!("relu: {name}: {text}");
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let mut summary =
        format!("relu batch: {done} files ({arrays} arrays, {:.1} MB) in {secs:.2} s", bytes as f64 / 1e6);
    if skipped > 0 {
        summary.push_str(&format!(", {skipped} skipped (output exists)"));
    }
    if recomputed > 0 {
        summary.push_str(&format!(", statistics of {recomputed} skipped read again from the inputs"));
    }
    if not_run > 0 {
        summary.push_str(&format!(", {not_run} not run (--fail-fast)"));
    }
    if !failures.is_empty() {
        summary.push_str(&format!(", {} failed", failures.len()));
    }
    if !args.quiet {
        crate::errln!("{summary}");
    }
    if !failures.is_empty() {
        anyhow::bail!("{} of {} inputs failed", failures.len(), items.len());
    }
    Ok(())
}

/// One input through its job into its output (the directories made as needed); its statistics
/// kept in `parts` once the output is in place.
fn one(job: &Job<Histogram>, it: &Item, sync: bool, parts: Option<&StatsParts>) -> Result<Outcome> {
    if let Some(dir) = it.output.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut done = job.run()?;
    crate::report::attach_to_stats(&mut done.reports);
    it.names.name_reports(&mut done.reports);
    let stats = done.stats();
    if sync {
        done.sync()?;
    }
    done.commit()?;
    if sync {
        if let Some(dir) = it.output.parent() {
            // the rename itself survives power loss once the directory is on disk
            std::fs::File::open(dir).and_then(|d| d.sync_all()).with_context(|| dir.display().to_string())?;
        }
    }
    if let Some(p) = parts.filter(|_| job.settings.units.is_some()) {
        p.keep(&it.rel, &it.input, &it.output, &stats);
    }
    Ok(Outcome::Done(stats, it.bytes))
}

/// An input whose output exists (`--skip-existing`). With statistics wanted (`stats`): those
/// its part kept, else computed again from the input with nothing written, as an uninterrupted
/// run would have reported them.
fn skip(job: Job<Histogram>, it: &Item, parts: Option<&StatsParts>, stats: bool) -> Result<Outcome> {
    if !stats {
        return Ok(Outcome::Skipped(Vec::new(), false));
    }
    if let Some(s) = parts.and_then(|p| p.load(&it.rel, &it.input, &it.output)) {
        return Ok(Outcome::Skipped(s, false));
    }
    let mut done = Job { dest: Dest::Discard, ..job }.run()?;
    crate::report::attach_to_stats(&mut done.reports);
    it.names.name_reports(&mut done.reports);
    let s = done.stats();
    if let Some(p) = parts {
        p.keep(&it.rel, &it.input, &it.output, &s);
    }
    Ok(Outcome::Skipped(s, true))
}

/// The files to process, sorted byte-wise by path, each with its output path (a directory's
/// files keep their path below it, a file given by name goes to the top of `--out-dir`), checked
/// before any work: no two inputs written to one output, no output over an input (SPEC §5, §6).
fn plan(args: &BatchArgs, act: &crate::options::ActOptions, member: Option<&str>) -> Result<Vec<Item>> {
    let out = &args.out_dir;
    check_out_dir(&args.inputs, out)?;
    // files, directories, and FILE:NAME (a container written with the members NAME picks)
    let how = Resolve { member, format: None, dirs: true, skip: Some(out) };
    let mut items = Vec::new();
    for arg in &args.inputs {
        if is_dash(arg) {
            return usage("batch reads files and directories: stdin (-) is not one (pipe it through relu apply)");
        }
        if let Err(e) = std::fs::metadata(arg) {
            if crate::inputs::split(arg).is_none() {
                return Err(anyhow::Error::new(e).context(arg.display().to_string()));
            }
        }
        for a in crate::inputs::resolve_one(arg, how)? {
            items.push(Item {
                output: out.join(&a.rel),
                input: a.path.clone(),
                rel: a.rel.clone(),
                bytes: a.bytes,
                names: a,
            });
        }
    }
    // one list in byte-wise order whatever the arguments' order (`--shard` depends on it)
    items.sort_by(|a, b| a.input.as_os_str().as_encoded_bytes().cmp(b.input.as_os_str().as_encoded_bytes()));
    items.dedup_by(|a, b| a.input == b.input && a.names.member == b.names.member);
    // Two inputs, one output: refused, unless they are one file by two names (`in ./in`).
    let mut seen: HashMap<&Path, usize> = HashMap::new();
    let mut twice = vec![false; items.len()];
    for (k, it) in items.iter().enumerate() {
        if let Some(&first) = seen.get(it.output.as_path()) {
            let a = &items[first].input;
            if FileId::of(a).is_some() && FileId::of(a) == FileId::of(&it.input) {
                if items[first].names.member != it.names.member {
                    return usage(format!(
                        "{} is named twice with different members: pick them with one pattern (FILE:'NAME*') or \
                         give them separate runs",
                        a.display()
                    ));
                }
                twice[k] = true;
                continue;
            }
            return usage(format!(
                "{} and {} would both be written to {}: give them separate runs (one --out-dir each)",
                a.display(),
                it.input.display(),
                it.output.display()
            ));
        }
        seen.insert(&it.output, k);
    }
    let mut k = 0;
    items.retain(|_| {
        k += 1;
        !twice[k - 1]
    });
    let mut files = RunFiles::default();
    for it in &items {
        files.input("the input", &it.input);
    }
    act.inputs(&mut files);
    if let Some(p) = &args.stats {
        files.output("--stats", p, None)?;
    }
    for it in &items {
        files.output("output", &it.output, None)?;
    }
    Ok(items)
}

/// An `--out-dir` that is an input directory, or holds one, is a usage error (SPEC §6): its
/// outputs would land among the inputs, or replace them. One inside an input directory is
/// skipped by the walk instead.
fn check_out_dir(inputs: &[PathBuf], out: &Path) -> Result<()> {
    let Some(out_id) = FileId::of(out).filter(FileId::exists) else { return Ok(()) };
    for root in inputs.iter().filter(|r| r.is_dir()) {
        let Ok(real) = std::fs::canonicalize(root) else { continue };
        for (up, dir) in real.ancestors().enumerate() {
            if FileId::of(dir).as_ref() == Some(&out_id) {
                let what = if up == 0 { "is" } else { "holds" };
                return usage(format!(
                    "--out-dir {} {what} the input directory {}: write the outputs elsewhere",
                    out.display(),
                    root.display()
                ));
            }
        }
    }
    Ok(())
}
