//! `relu batch`: `apply` (and statistics) over whole datasets. Inputs are files and directories
//! (searched recursively for `.npy`, `.npz`, `.safetensors`, `.csv`, `.tsv`); the list is sorted byte-wise and
//! `--shard I/N` takes every N-th from the I-th, so N machines split a dataset with no
//! coordination. Each file is one `Job` on a pool of `-j` workers (a file gets the threads left
//! over when there are fewer files than threads); outputs mirror the input tree under `--out-dir`
//! and appear complete or not at all. A failing file fails alone: the others finish, failures are
//! listed at the end, and the exit code is 1 (`--fail-fast` stops at the first).

use crate::cli::{ActKind, BatchArgs};
use crate::format::Format;
use crate::job::Job;
use crate::options::{threads, usage, Dest};
use crate::output::write_stats;
use crate::stats::StatsJson;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// One input file and where its output goes.
struct Item {
    input: PathBuf,
    output: PathBuf,
    bytes: u64,
}

/// The progress bar: bytes, throughput and ETA, files done and failed so far; drawn on stderr
/// only when it is a terminal (`--progress auto`), never with `-q`.
fn progress(args: &BatchArgs, items: &[Item]) -> indicatif::ProgressBar {
    let bar = crate::progress::bar(args.progress, args.quiet, items.iter().map(|i| i.bytes).sum());
    bar.set_message(format!("files 0/{}", items.len()));
    bar
}

/// What became of one input.
enum Outcome {
    Done(Vec<StatsJson>, u64),
    Skipped,
    Failed(anyhow::Error),
}

pub fn run(args: BatchArgs) -> Result<()> {
    let started = Instant::now();
    let act = args.act.options(Some(ActKind::Relu), args.dtype)?;
    let read = args.table.options(None)?;
    if read.member.is_some() {
        return usage("--member picks one array of one .npz: batch processes every member");
    }
    let observer = args.bins.for_stats()?.map(crate::hist::observer);
    if observer.is_some() && args.stats.is_none() {
        return usage("--bins and --range go with --stats (the histogram is part of the statistics)");
    }
    let mut items = discover(&args.inputs, &args.out_dir)?;
    if let Some((i, n)) = args.shard {
        items = items.into_iter().skip(i - 1).step_by(n).collect();
    }
    let total = threads(args.threads);
    let pool = total.min(items.len()).max(1);
    let per_job = (total / pool).max(1);
    let units = args.stats.is_some().then(|| args.units.options());
    let job = |it: &Item| Job {
        input: it.input.clone(),
        read: read.clone(),
        dest: Dest::File(it.output.clone(), Format::of_path(&it.input)),
        act: act.clone(),
        units,
        threads: per_job,
        observer: observer.clone(),
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
                let outcome = if args.skip_existing && it.output.exists() {
                    Outcome::Skipped
                } else {
                    match one(&job(it), it, args.sync) {
                        Ok(o) => o,
                        Err(e) => {
                            if args.fail_fast {
                                stop.store(true, Ordering::Relaxed);
                            }
                            failed.fetch_add(1, Ordering::Relaxed);
                            Outcome::Failed(e)
                        }
                    }
                };
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
    let (mut done, mut skipped, mut arrays, mut bytes) = (0, 0, 0, 0u64);
    for (it, o) in items.iter().zip(outcomes) {
        match o.into_inner().ok().flatten() {
            Some(Outcome::Done(s, b)) => {
                done += 1;
                arrays += s.len().max(1);
                bytes += b;
                stats.extend(s);
            }
            Some(Outcome::Skipped) => skipped += 1,
            Some(Outcome::Failed(e)) => failures.push((it, e)),
            None => {} // not started: --fail-fast stopped the run
        }
    }
    if let Some(path) = &args.stats {
        write_stats(path, &stats)?;
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
    let not_run = items.len() - done - skipped - failures.len();
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

/// One input through its job into its output (the directories made as needed).
fn one(job: &Job, it: &Item, sync: bool) -> Result<Outcome> {
    if let Some(dir) = it.output.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut done = job.run()?;
    crate::hist::attach_to_stats(&mut done.reports);
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
    Ok(Outcome::Done(stats, it.bytes))
}

/// The files to process, sorted byte-wise by path, each with its output path: a directory's
/// files keep their path below it, a file given by name goes to the top of `out`.
fn discover(inputs: &[PathBuf], out: &Path) -> Result<Vec<Item>> {
    let mut items = Vec::new();
    for root in inputs {
        let meta = std::fs::metadata(root).with_context(|| root.display().to_string())?;
        if meta.is_dir() {
            let mut stack = vec![root.clone()];
            while let Some(dir) = stack.pop() {
                let entries = std::fs::read_dir(&dir).with_context(|| dir.display().to_string())?;
                for e in entries {
                    let p = e.with_context(|| dir.display().to_string())?.path();
                    if p.is_dir() {
                        stack.push(p);
                    } else if is_array_file(&p) {
                        let rel = p.strip_prefix(root).unwrap_or(&p).to_path_buf();
                        let bytes = file_len(&p);
                        items.push(Item { output: out.join(rel), input: p, bytes });
                    }
                }
            }
        } else {
            let name = root.file_name().map(PathBuf::from).unwrap_or_else(|| root.clone());
            items.push(Item { output: out.join(name), input: root.clone(), bytes: meta.len() });
        }
    }
    items.sort_by(|a, b| a.input.as_os_str().as_encoded_bytes().cmp(b.input.as_os_str().as_encoded_bytes()));
    items.dedup_by(|a, b| a.input == b.input);
    Ok(items)
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// `.npy`, `.npz`, `.safetensors`, `.csv` or `.tsv` (not a temporary file of a run in progress or killed).
fn is_array_file(p: &Path) -> bool {
    let ext = p.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase());
    let temp = p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(".relu-tmp"));
    !temp && matches!(ext.as_deref(), Some("npy" | "npz" | "safetensors" | "csv" | "tsv"))
}
