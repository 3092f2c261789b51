//! A job: one input (a `.npy`, the members of an `.npz`, a CSV/TSV table) through an activation
//! into a destination, with statistics and an observer when asked. Every pair of formats takes
//! the same road — source → [`ChunkProcessor`] → sink — and an `.npz` is a loop over its
//! members. A job is a plain value: `apply` and `stats` run one per input; `batch` can run
//! thousands on a pool, `hist` attaches an observer.

use crate::format::csv::CsvTable;
use crate::format::npy::{self, GrowingHeader};
use crate::format::npz::{finish_member, NpzArchive, NpzWriter};
use crate::format::safetensors::{self, SafetensorsFile};
use crate::format::{csv::CsvEncoder, Format};
use crate::options::{delimiter, is_dash, usage, ActOptions, ArrayInfo, Dest, ReadOptions, UnitOptions};
use crate::output::AtomicOutput;
use crate::pipeline::{self, ChunkProcessor, Observer, Plan, PositionalOut, Unwatched};
use crate::sink::Sink;
use crate::source::{ArraySource, ChunkSource, Input};
use crate::stats::{StatsAccumulator, StatsJson};
use crate::table::{self, TableOut};
use anyhow::{Context, Result};
use std::fs::OpenOptions;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod pt;

/// Makes a fresh observer for each array of a job.
pub type MakeObserver<O> = Arc<dyn Fn() -> O + Send + Sync>;

/// What a command's flags say for every one of its inputs (ripgrep's `HiArgs`): made once at
/// the door, each input's [`Job`] cut from it ([`Settings::job`]). `O`: the type of the observer
/// each array gets (when `observer` is set), which comes back as that type in its report.
pub struct Settings<O: Observer = Unwatched> {
    pub read: ReadOptions,
    pub act: ActOptions,
    /// Gather statistics, counting units this way.
    pub units: Option<UnitOptions>,
    pub threads: usize,
    pub observer: Option<MakeObserver<O>>,
}

impl<O: Observer> Settings<O> {
    /// The job of one input.
    pub fn job(&self, input: PathBuf, dest: Dest) -> Job<O> {
        Job { input, dest, settings: self.observing(self.observer.clone()) }
    }

    /// The same settings reading another way (one address's member, say).
    pub fn reading(&self, read: ReadOptions) -> Settings<O> {
        Settings { read, ..self.observing(self.observer.clone()) }
    }

    /// The same settings with another observer (or none).
    pub fn observing<P: Observer>(&self, observer: Option<MakeObserver<P>>) -> Settings<P> {
        Settings { read: self.read.clone(), act: self.act.clone(), units: self.units, threads: self.threads, observer }
    }
}

/// The names of the arrays a container input holds (those `member` picks, in file order); `None`
/// for an input that is one array.
pub fn array_names(path: &Path, format: Option<Format>, member: Option<&str>) -> Result<Option<Vec<String>>> {
    let input = Input::resolve(path, format)?;
    Ok(Some(match input.format {
        Format::Npz => {
            let mut ar = input.archive()?;
            let picked = match member {
                Some(m) => ar.select(m)?,
                None => ar.members()?,
            };
            picked.into_iter().map(|m| m.key).collect()
        }
        Format::Safetensors => {
            let st = input.safetensors()?;
            match member {
                Some(m) => st.select(m)?.iter().map(|t| t.name.clone()).collect(),
                None => st.tensors.iter().map(|t| t.name.clone()).collect(),
            }
        }
        Format::Pt => {
            let f = input.pt()?;
            let picked = match member {
                Some(m) => f.select(m)?,
                None => (0..f.tensors.len()).collect(),
            };
            picked.into_iter().map(|i| f.tensors[i].name.clone()).collect()
        }
        _ => return Ok(None),
    }))
}

/// One input through the pipeline, into `dest`; see the module comment.
pub struct Job<O: Observer = Unwatched> {
    pub input: PathBuf,
    pub dest: Dest,
    pub settings: Settings<O>,
}

/// What a job found out about one array.
pub struct ArrayReport<O = Unwatched> {
    /// `path`, or `path:member`.
    pub name: String,
    /// The type computed in, the shape, and the activation's name.
    pub dtype: &'static str,
    pub shape: Vec<u64>,
    pub activation: Option<String>,
    pub stats: Option<StatsJson>,
    pub observer: Option<O>,
}

/// A job done, its output file (if any) written but not yet in place.
pub struct Finished<O = Unwatched> {
    pub reports: Vec<ArrayReport<O>>,
    pending: Option<AtomicOutput>,
}

impl<O> Finished<O> {
    /// The job's reports, its sink (if any) finished: everything written, a file not yet in place.
    fn done(reports: Vec<ArrayReport<O>>, sink: Option<Sink>) -> Result<Finished<O>> {
        let pending = match sink {
            Some(s) => s.finish()?,
            None => None,
        };
        Ok(Finished { reports, pending })
    }

    /// The statistics objects, one per array.
    pub fn stats(&self) -> Vec<StatsJson> {
        self.reports.iter().filter_map(|r| r.stats.clone()).collect()
    }

    /// Flushes the output to disk (before [`Finished::commit`], for outputs that must survive
    /// power loss).
    pub fn sync(&mut self) -> Result<()> {
        match &mut self.pending {
            Some(p) => Ok(p.file().sync_all()?),
            None => Ok(()),
        }
    }

    /// Renames the output into place.
    pub fn commit(self) -> Result<()> {
        self.pending.map_or(Ok(()), |p| p.commit())
    }
}

/// The message for an `.npz` output of anything but an `.npz`.
const NPZ_NEEDS_NPZ: &str =
    "an .npz output is written from a container (.npz, .safetensors or .pt: its arrays keep their names)";

/// NumPy has no bfloat16 (SPEC §3). `from_table`: a CSV input, which cannot go to `.safetensors`.
fn bf16_into_numpy<T>(name: &str, to: Format, from_table: bool) -> Result<T> {
    let ext = if to == Format::Npz { ".npz" } else { ".npy" };
    let other = if from_table { "CSV" } else { ".safetensors or CSV" };
    usage(format!(
        "{name}: bfloat16 cannot be written to {ext} (NumPy has no bfloat16 type): add --dtype f32 (exact), f16 or f64, or write {other}"
    ))
}

/// An array ready to stream: its processor and its upstream gradient.
struct Prepared {
    plan: Plan,
    upstream: Option<ArraySource<'static>>,
    info: ArrayInfo,
}

impl<O: Observer> Job<O> {
    pub fn run(&self) -> Result<Finished<O>> {
        if let Dest::InPlace = self.dest {
            return self.in_place();
        }
        let input = Input::resolve(&self.input, self.settings.read.format)?;
        if self.settings.read.member.is_some()
            && !matches!(input.format, Format::Npz | Format::Safetensors | Format::Pt)
        {
            return usage("--member picks an array of an .npz or a tensor of a .safetensors or .pt input");
        }
        if input.format == Format::Pt {
            return self.pt(input.pt()?);
        }
        if self.to(input.format) == Some(Format::Pt) {
            return self.other_to_pt(input);
        }
        if input.format == Format::Npz {
            return self.archive(input.archive()?);
        }
        if input.format == Format::Safetensors {
            return self.safetensors(input.safetensors()?);
        }
        let to = self.to(input.format);
        if to == Some(Format::Npz) {
            return usage(NPZ_NEEDS_NPZ);
        }
        if to == Some(Format::Safetensors) && input.format.is_text() {
            return usage("a .safetensors output of a CSV table is not supported: write .npy first, then convert it");
        }
        // A table's `.npy` has its row count patched in at the end: stdout goes through a spool.
        let mut sink = self.sink(to, input.format.is_text() && to == Some(Format::Npy))?;
        let out = sink.as_mut().zip(to);
        let report = if input.format.is_text() {
            self.table(input.table(&self.settings.read)?, out)?
        } else {
            self.array(input.array()?, out)?
        };
        Finished::done(vec![report], sink)
    }

    /// The output format for an input in format `from`; `None` when nothing is written.
    fn to(&self, from: Format) -> Option<Format> {
        match &self.dest {
            // one member or tensor picked from a container is an array: `.npy` (SPEC §1)
            // (a pattern may pick several: then the container's own format)
            Dest::Stdout(None)
                if self.settings.read.member.as_deref().is_some_and(|m| !crate::glob::is_pattern(m))
                    && is_container(from) =>
            {
                Some(Format::Npy)
            }
            Dest::Stdout(f) => Some(f.unwrap_or(from)),
            Dest::File(_, f) => Some(*f),
            Dest::InPlace => Some(Format::Npy),
            Dest::Discard => None,
        }
    }

    /// The output stream. Binary data is not written to a terminal.
    fn sink(&self, to: Option<Format>, seekable: bool) -> Result<Option<Sink<'static>>> {
        Ok(match &self.dest {
            Dest::Stdout(_) => {
                use std::io::IsTerminal;
                if matches!(to, Some(Format::Npy | Format::Npz)) && std::io::stdout().is_terminal() {
                    return usage("refusing to write binary data to a terminal: use -o FILE or a pipe");
                }
                Some(Sink::stdout(seekable)?)
            }
            Dest::File(p, _) => Some(Sink::file(p, seekable)?),
            Dest::InPlace | Dest::Discard => None,
        })
    }

    /// Types, parameters, upstream and statistics for one array.
    fn prepare(&self, src: &ArraySource) -> Result<Prepared> {
        self.prepare_member(src, None)
    }

    /// [`Job::prepare`] for a tensor called `member`: an upstream `.safetensors` gives its own.
    fn prepare_member(&self, src: &ArraySource, member: Option<&str>) -> Result<Prepared> {
        let name = &src.name;
        let info = src.info().with_context(|| name.clone())?;
        let mut plan = Plan::new(&self.settings.act, &info).with_context(|| name.clone())?;
        let upstream = self.upstream(src, &plan, member)?;
        plan.upstream = upstream.as_ref().map(|u| u.header.order);
        Ok(Prepared { plan, upstream, info })
    }

    fn processor(
        &self,
        mut plan: Plan,
        writes: bool,
        layout: impl FnOnce(&UnitOptions) -> Result<Option<crate::stats::UnitLayout>>,
    ) -> Result<ChunkProcessor<O>> {
        if !writes {
            plan.output = plan.work; // nothing is written: skip the output conversion
        }
        let stats = match &self.settings.units {
            Some(u) => {
                let mut acc = StatsAccumulator::new(layout(u)?);
                acc.range_only = u.range_only;
                acc.limits = u.limits;
                Some(acc)
            }
            None => None,
        };
        Ok(ChunkProcessor::new(plan, stats)
            .with_observer(self.settings.observer.as_ref().map(|f| f()))
            .discarding(!writes))
    }

    fn report(&self, name: &str, proc: ChunkProcessor<O>, shape: &[u64]) -> ArrayReport<O> {
        let (act, work) = (proc.plan().act.map(|a| a.name()), proc.plan().work.name());
        let (stats, observer) = proc.into_results();
        let threshold = self.settings.units.map_or(0.0, |u| u.threshold);
        let stats = stats.map(|s| s.to_json(name, act.clone(), work, shape, threshold));
        ArrayReport { name: name.to_string(), dtype: work, shape: shape.to_vec(), activation: act, stats, observer }
    }

    /// Opens `--upstream` and checks it against the input.
    fn upstream(&self, input: &ArraySource, plan: &Plan, member: Option<&str>) -> Result<Option<ArraySource<'static>>> {
        let Some(path) = &self.settings.act.upstream else {
            return Ok(None);
        };
        let up = if is_dash(path) {
            if input.name == "<stdin>" {
                return usage("the input and --upstream cannot both be stdin");
            }
            ArraySource::from_reader("<stdin>", std::io::stdin().lock())
        } else if Format::of_path(path) == Format::Safetensors {
            // the tensor with the input's own name, or the only one
            SafetensorsFile::open(path).and_then(|st| {
                let t = match member.and_then(|m| st.tensors.iter().find(|t| t.name == m)) {
                    Some(t) => t,
                    None if st.tensors.len() == 1 => &st.tensors[0],
                    None => anyhow::bail!(
                        "{} has no tensor {:?} and more than one other: give an upstream with the input's tensor names",
                        st.name,
                        member.unwrap_or("")
                    ),
                };
                st.source(t)
            })
        } else {
            ArraySource::open(path)
        }
        .context("--upstream")?;
        let (h, ih) = (&up.header, &input.header);
        let describe = |h: &npy::Header| format!("{} {}", h.dtype_name(), npy::shape_repr(&h.shape));
        if h.dtype()? != plan.work || h.shape != ih.shape {
            anyhow::bail!(
                "--upstream {} is {} but the input {} is {}{}: they must have the same shape and element type",
                up.name,
                describe(h),
                input.name,
                describe(ih),
                if plan.work != plan.input { format!(" (computed as {})", plan.work) } else { String::new() }
            );
        }
        // the upstream element for element with the input, whatever order each was saved in: in C
        // order when the input streams so (C, or a Fortran array seen transposed), else in the
        // input's own Fortran order
        let up = if ih.fortran_order && !input.transposed { up.into_fortran_order() } else { up.into_c_order() };
        let up = up.context("--upstream")?;
        Ok(Some(up))
    }

    /// One `.npy` array (a file, a stream, an `.npz` member) into `out` (or nowhere).
    fn array(&self, src: ArraySource, out: Option<(&mut Sink, Format)>) -> Result<ArrayReport<O>> {
        // Outputs written in C order see a Fortran array transposed; the plan (channels, units)
        // must be made from the order the elements will stream in, so the view comes first.
        let src = match out.as_ref().map(|(_, f)| *f) {
            Some(f) if writes_c_order(f) => {
                let name = src.name.clone();
                src.into_c_order().with_context(|| name)?
            }
            _ => src,
        };
        let p = self.prepare(&src)?;
        self.array_prepared(src, p, out)
    }

    fn array_prepared(
        &self,
        mut src: ArraySource,
        p: Prepared,
        out: Option<(&mut Sink, Format)>,
    ) -> Result<ArrayReport<O>> {
        let Prepared { plan, mut upstream, info } = p;
        let name = src.name.clone();
        let layout = |u: &UnitOptions| u.layout(&info.shape, info.fortran);
        let mut proc = self.processor(plan, out.is_some(), layout).with_context(|| name.clone())?;
        let fail = |e: anyhow::Error| if crate::output::is_broken_pipe(&e) { e } else { e.context(name.clone()) };
        let elements = src.header.elements;
        if out.as_ref().is_some_and(|(_, f)| writes_c_order(*f)) && src.header.fortran_order && !src.transposed {
            // a plan made for Fortran order would place channels and units wrongly in C order
            let significant = src.header.shape.iter().filter(|&&d| d > 1).count();
            anyhow::ensure!(significant <= 1, "internal error: {name}: a Fortran-ordered array planned for C order");
        }
        match out {
            None => _ = self.drive(&mut proc, &mut src, upstream.as_mut(), None).map_err(fail)?,
            Some((_, Format::Npy)) if proc.plan().output == crate::dtype::DType::BF16 => {
                return bf16_into_numpy(&name, Format::Npy, false);
            }
            Some((sink, Format::Safetensors)) => {
                // one tensor, named after the file, in C order (the input and the upstream are
                // already seen in C order: see `Job::array`)
                // named after the .npz member it came from, else after the file
                let tensor = match (&src.member, self.input.file_stem()) {
                    (Some(key), _) => key.clone(),
                    (None, Some(stem)) if !is_dash(&self.input) => stem.to_string_lossy().into_owned(),
                    _ => "data".to_string(),
                };
                let (header, _) = safetensors::write_header(None, &[(tensor, proc.plan().output, info.shape.clone())]);
                self.header_then_data(sink, &header, &mut proc, &mut src, upstream.as_mut(), fail)?;
            }
            Some((sink, Format::Npy)) => {
                let header = npy::write_header(proc.plan().output, info.fortran, &info.shape);
                let osz = proc.plan().output.size() as u64;
                // only what a file's length vouches for: a stream's header may claim anything
                if src.region.is_some() {
                    sink.preallocate(header.len() as u64 + elements.saturating_mul(osz));
                }
                self.header_then_data(sink, &header, &mut proc, &mut src, upstream.as_mut(), fail)?;
            }
            Some((sink, f)) if f.is_text() => {
                if upstream.is_some() {
                    return usage("--upstream with CSV output is not supported: write .npy, then convert");
                }
                // saturating: only an empty array's other axes can overflow (then no row is written)
                let cols = if info.shape.len() <= 1 {
                    1
                } else {
                    info.shape[1..].iter().fold(1u64, |a, &d| a.saturating_mul(d)).max(1)
                };
                let mut enc = CsvEncoder::new(delimiter(self.settings.read.delimiter, f), cols as usize);
                let dt = proc.plan().output;
                let mut line = Vec::new();
                let mut write = |b: &[u8]| {
                    line.clear();
                    enc.encode(b, dt, &mut line);
                    sink.write(&line)
                };
                stream(&mut proc, &mut src, None, 1, &mut write).map_err(fail)?;
            }
            Some(_) => return usage(NPZ_NEEDS_NPZ),
        }
        Ok(self.report(&name, proc, &info.shape))
    }

    /// Writes `header`, then the array's data right after it: in order through the sink for
    /// stdout and streams (with threads the writes, to a pipe or a deflated member, overlap the
    /// kernel), else at positions in the file on all workers.
    fn header_then_data(
        &self,
        sink: &mut Sink,
        header: &[u8],
        proc: &mut ChunkProcessor<O>,
        src: &mut ArraySource,
        mut upstream: Option<&mut ArraySource>,
        fail: impl Fn(anyhow::Error) -> anyhow::Error,
    ) -> Result<()> {
        sink.write(header)?;
        if sink.is_stream() || src.region.is_none() {
            let mut write = |b: &[u8]| sink.write(b);
            stream(proc, src, upstream.take(), self.settings.threads, &mut write).map_err(fail)
        } else {
            let file = sink.file_mut()?.context("internal error: a file sink has a file")?;
            let at = PositionalOut { file, offset: header.len() as u64, crc: false };
            self.drive(proc, src, upstream, Some(at)).map(drop).map_err(fail)
        }
    }

    /// Runs an array whose output (if any) is written at positions: on `threads` workers over
    /// ranges when the input and upstream are files, else in order. Gives the output's CRC-32
    /// when `out` asks for it.
    fn drive(
        &self,
        proc: &mut ChunkProcessor<O>,
        src: &mut ArraySource,
        up: Option<&mut ArraySource>,
        out: Option<PositionalOut>,
    ) -> Result<pipeline::OutCrc> {
        let elements = src.header.elements;
        let up_region = match &up {
            Some(u) => u.region.as_ref().map(Some),
            None => Some(None),
        };
        if let (Some(region), Some(up_region)) = (&src.region, up_region) {
            return pipeline::ranges(proc, elements, region, up_region, out, self.settings.threads);
        }
        let mut at = out.map(|o| o.offset);
        let mut crc = out.filter(|o| o.crc).map(|_| crc32fast::Hasher::new());
        let mut write = |b: &[u8]| -> Result<()> {
            if let (Some(o), Some(pos)) = (&out, &mut at) {
                use crate::platform::FileAt;
                o.file.write_all_at(b, *pos).context("cannot write the output")?;
                *pos += b.len() as u64;
            }
            if let Some(h) = crc.as_mut() {
                h.update(b);
            }
            Ok(())
        };
        stream(proc, src, up, 1, &mut write)?;
        Ok(crc)
    }

    /// A CSV/TSV table into `out` (or nowhere).
    fn table(&self, t: CsvTable<Box<dyn Read + Send>>, out: Option<(&mut Sink, Format)>) -> Result<ArrayReport<O>> {
        if self.settings.act.upstream.is_some() {
            return usage("--upstream with CSV input is not supported: convert the input to .npy first");
        }
        let (name, cols) = (t.name.clone(), t.cols);
        let info = ArrayInfo {
            dtype: crate::dtype::DType::F64,
            order: crate::dtype::ByteOrder::Little,
            shape: vec![0, cols as u64],
            fortran: false,
        };
        // like units, channels are columns: the row count is not known until the end
        let several = self.settings.act.alpha.as_ref().is_some_and(|a| a.len() > 1);
        if several && crate::options::normalize_axis(self.settings.act.channel_axis, 2) == Some(0) {
            return usage("CSV channels are its columns: --channel-axis 1 (or -1) with several slopes");
        }
        let plan = Plan::new(&self.settings.act, &info).with_context(|| name.clone())?;
        let mut proc = self.processor(plan, out.is_some(), |u| u.table_layout(cols))?;
        let threads = self.settings.threads;
        let rows = match out {
            None => table::run(t, &mut proc, TableOut::Nothing, threads, |_| Ok(()))?,
            Some((sink, f)) if f.is_text() => {
                let d = delimiter(self.settings.read.delimiter, f);
                if let Some(h) = t.header_line(d) {
                    sink.write(&h)?;
                    sink.write(b"\n")?;
                }
                table::run(t, &mut proc, TableOut::Csv(d), threads, |b| sink.write(b))?
            }
            Some((_, Format::Npy)) if proc.plan().output == crate::dtype::DType::BF16 => {
                return bf16_into_numpy(&name, Format::Npy, true);
            }
            Some((sink, Format::Npy)) => {
                let (grow, h) = GrowingHeader::start(proc.plan().output, &[cols as u64]);
                sink.write(&h)?;
                let rows = table::run(t, &mut proc, TableOut::Raw, threads, |b| sink.write(b))?;
                sink.patch(&grow, rows)?;
                rows
            }
            Some(_) => return usage(NPZ_NEEDS_NPZ),
        };
        Ok(self.report(&name, proc, &[rows, cols as u64]))
    }

    /// An `.npz`: every member into an `.npz` with the same names (and compression), or one
    /// member (`--member`, or the only one) to any format, or statistics of each.
    fn archive(&self, mut ar: NpzArchive) -> Result<Finished<O>> {
        let members = ar.members()?;
        let to = self.to(Format::Npz);
        let chosen = match (&self.settings.read.member, to) {
            // several members picked (a pattern) into one array's format: the message below
            (Some(m), Some(f)) if f != Format::Npz => match ar.select(m)? {
                one if one.len() == 1 => one,
                picked => {
                    let keys: Vec<&str> = picked.iter().map(|m| m.key.as_str()).collect();
                    return usage(format!(
                        "{}:{m} picks {} arrays ({}): write an .npz, or pick one",
                        ar.name,
                        picked.len(),
                        keys.join(", ")
                    ));
                }
            },
            (Some(m), _) => ar.select(m)?,
            (None, Some(f)) if f != Format::Npz && members.len() == 1 => members,
            (None, Some(f)) if f != Format::Npz => {
                let keys: Vec<&str> = members.iter().map(|m| m.key.as_str()).collect();
                return usage(format!(
                    "{} holds {} arrays ({}): pick one with --member NAME, or write an .npz",
                    ar.name,
                    members.len(),
                    keys.join(", ")
                ));
            }
            (None, _) => members,
        };
        if self.settings.act.upstream.is_some() && (to.is_none() || to == Some(Format::Npz)) {
            // (an .npz output holds several members: the way out is one member into another format)
            let why = if to.is_none() { "extract the member first" } else { "--member NAME -o OUT.npy" };
            return usage(format!("--upstream with an .npz input works one member at a time: {why}"));
        }
        let mut reports = Vec::new();
        let sink = if to == Some(Format::Npz) {
            // A zip's directory is written last, at offsets into the file: stdout goes through a spool.
            let mut sink = self.sink(to, true)?.context("internal error: an .npz output has a sink")?;
            let file = sink.file_mut()?.context("internal error: an .npz output has a file")?;
            let mut zw = NpzWriter::new(file);
            for m in &chosen {
                let name = ar.member_name(m);
                ar.check_header(m)?;
                let mut r = ar.reader(m)?;
                let src = ArraySource::from_reader(&name, &mut r)?;
                let p = self.prepare(&src)?;
                if p.plan.output == crate::dtype::DType::BF16 {
                    return bf16_into_numpy(&name, Format::Npz, false);
                }
                let osz = p.plan.output.size() as u64;
                let header = npy::write_header(p.plan.output, p.info.fortran, &p.info.shape);
                let size = header.len() as u64 + src.header.elements.saturating_mul(osz);
                zw.start(&m.file_name, m.compression, size).with_context(|| name.clone())?;
                let mut member = Sink::writer(zw.writer());
                reports.push(self.array_prepared(src, p, Some((&mut member, Format::Npy)))?);
                member.finish()?;
                finish_member(&mut r, &name)?;
            }
            zw.finish()?;
            Some(sink)
        } else {
            let mut sink = self.sink(to, false)?;
            for m in &chosen {
                let name = ar.member_name(m);
                ar.check_header(m)?;
                let mut r = ar.reader(m)?;
                let mut src = ArraySource::from_reader(&name, &mut r)?;
                src.member = Some(m.key.clone());
                reports.push(self.array(src, sink.as_mut().zip(to))?);
                finish_member(&mut r, &name)?;
            }
            sink
        };
        Finished::done(reports, sink)
    }

    /// A `.safetensors` file: every tensor into a `.safetensors` with the same names, order and
    /// `__metadata__`, or one tensor (`--member`, or the only one) to any format, or statistics
    /// of each. The output's header is written first (every size is known from the plans), then
    /// each tensor at its place, on all workers.
    fn safetensors(&self, st: SafetensorsFile) -> Result<Finished<O>> {
        let to = self.to(Format::Safetensors);
        let chosen: Vec<&safetensors::Tensor> = match (&self.settings.read.member, to) {
            (Some(m), _) => st.select(m)?,
            (None, Some(f)) if !matches!(f, Format::Safetensors | Format::Npz) && st.tensors.len() != 1 => {
                let names: Vec<&str> = st.tensors.iter().map(|t| t.name.as_str()).collect();
                return usage(format!(
                    "{} holds {} tensors ({}): pick one with --member NAME, or write a .safetensors or .npz",
                    st.name,
                    names.len(),
                    names.join(", ")
                ));
            }
            (None, _) => st.tensors.iter().collect(),
        };
        if let (Some(m), Some(f)) = (&self.settings.read.member, to) {
            if !matches!(f, Format::Safetensors | Format::Npz) && chosen.len() > 1 {
                let names: Vec<&str> = chosen.iter().map(|t| t.name.as_str()).collect();
                return usage(format!(
                    "{}:{m} picks {} tensors ({}): write a .safetensors, or pick one",
                    st.name,
                    names.len(),
                    names.join(", ")
                ));
            }
        }
        if self.settings.act.upstream.is_some() && to.is_some_and(|f| f != Format::Safetensors) && chosen.len() > 1 {
            return usage("--upstream with several tensors needs a .safetensors output or --member NAME");
        }
        let mut reports = Vec::new();
        if to == Some(Format::Npz) {
            // members named as the tensors, in the file's order
            let mut arrays = Vec::new();
            for t in chosen {
                let src = st.source(t)?;
                let p = self.prepare_member(&src, Some(&t.name))?;
                arrays.push((t.name.clone(), src, p));
            }
            return self.write_npz(arrays);
        }
        if to != Some(Format::Safetensors) {
            let mut sink = self.sink(to, false)?;
            for t in chosen {
                let src = st.source(t)?;
                let p = self.prepare_member(&src, Some(&t.name))?;
                reports.push(self.array_prepared(src, p, sink.as_mut().zip(to))?);
            }
            return Finished::done(reports, sink);
        }
        let mut arrays = Vec::new();
        for t in &chosen {
            let src = st.source(t)?;
            let p = self.prepare_member(&src, Some(&t.name))?;
            arrays.push((src, p));
        }
        let tensors: Vec<_> =
            chosen.iter().zip(&arrays).map(|(t, (_, p))| (t.name.clone(), p.plan.output, t.shape.clone())).collect();
        self.write_safetensors(st.metadata.as_ref(), &tensors, arrays)
    }

    /// Arrays into an `.npz` of stored members `KEY.npy`, in order (`numpy.savez`'s layout), from
    /// a container of another format (its names kept).
    fn write_npz(&self, arrays: Vec<(String, ArraySource<'static>, Prepared)>) -> Result<Finished<O>> {
        if let Some((_, src, _)) = arrays.iter().find(|(_, _, p)| p.plan.output == crate::dtype::DType::BF16) {
            return bf16_into_numpy(&src.name, Format::Npz, false);
        }
        // a zip's directory is written last, at offsets into the file: stdout goes through a spool
        let mut sink = self.sink(Some(Format::Npz), true)?.context("internal error: an .npz output has a sink")?;
        let mut reports = Vec::new();
        {
            let file: &std::fs::File = sink.file_mut()?.context("internal error: an .npz output has a file")?;
            let mut zw = NpzWriter::new(file);
            for (key, src, p) in arrays {
                let name = src.name.clone();
                let header = npy::write_header(p.plan.output, p.info.fortran, &p.info.shape);
                let size = header.len() as u64 + src.header.elements.saturating_mul(p.plan.output.size() as u64);
                zw.start(&format!("{key}.npy"), zip::CompressionMethod::Stored, size).with_context(|| name.clone())?;
                if by_position(&src, p.upstream.as_ref()) {
                    reports.push(self.npz_member_at(file, &mut zw, &header, src, p)?);
                    continue;
                }
                let mut member = Sink::writer(zw.writer());
                reports.push(self.array_prepared(src, p, Some((&mut member, Format::Npy)))?);
                member.finish()?;
            }
            zw.finish()?;
        }
        Finished::done(reports, Some(sink))
    }

    /// A stored member's `.npy` header through the zip writer, then its data by position on all
    /// workers (as a `.pt` storage is): the writer is told the member's length and CRC-32 (the
    /// header's combined with the ranges').
    fn npz_member_at(
        &self,
        file: &std::fs::File,
        zw: &mut NpzWriter<&std::fs::File>,
        header: &[u8],
        mut src: ArraySource,
        p: Prepared,
    ) -> Result<ArrayReport<O>> {
        use std::io::Write;
        let Prepared { plan, mut upstream, info } = p;
        let name = src.name.clone();
        let bytes = info.shape.iter().product::<u64>() * plan.output.size() as u64;
        let layout = |u: &UnitOptions| u.layout(&info.shape, info.fortran);
        let mut proc = self.processor(plan, true, layout).with_context(|| name.clone())?;
        zw.writer().write_all(header)?;
        let data =
            self.drive_in_zip(file, &mut proc, &mut src, upstream.as_mut(), bytes).with_context(|| name.clone())?;
        let mut crc = crc32fast::Hasher::new();
        crc.update(header);
        crc.combine(&data);
        zw.written_at(header.len() as u64 + bytes, crc.finalize())?;
        Ok(self.report(&name, proc, &info.shape))
    }

    /// A zip entry's `bytes` bytes of data, from the file's offset on (where the zip writer left
    /// it), written by position on all workers ([`by_position`] inputs); the offset is left at
    /// the data's end for the zip writer, and the data's CRC-32 given back for it.
    fn drive_in_zip(
        &self,
        file: &std::fs::File,
        proc: &mut ChunkProcessor<O>,
        src: &mut ArraySource,
        up: Option<&mut ArraySource>,
        bytes: u64,
    ) -> Result<crc32fast::Hasher> {
        use std::io::Seek;
        let mut at = file;
        let start = at.stream_position()?;
        // reserved up to the data's end (nothing past the file's end to release later): blocks
        // allocated now, not at the rename, where ext4 would flush delayed ones
        crate::platform::reserve(file, start + bytes);
        let out = PositionalOut { file, offset: start, crc: true };
        let crc = self.drive(proc, src, up, Some(out))?;
        at.seek(std::io::SeekFrom::Start(start + bytes))?;
        Ok(crc.unwrap_or_default())
    }

    /// A `.safetensors` output of `tensors` (name, type, shape), each array's output at its
    /// place after the header, on all workers.
    fn write_safetensors(
        &self,
        metadata: Option<&std::collections::BTreeMap<String, String>>,
        tensors: &[(String, crate::dtype::DType, Vec<u64>)],
        arrays: Vec<(ArraySource<'static>, Prepared)>,
    ) -> Result<Finished<O>> {
        let (header, starts) = safetensors::write_header(metadata, tensors);
        let total = header.len() as u64
            + tensors.iter().map(|(_, dt, shape)| shape.iter().product::<u64>() * dt.size() as u64).sum::<u64>();
        // written at positions: stdout goes through a spool
        let mut sink =
            self.sink(Some(Format::Safetensors), true)?.context("internal error: a .safetensors output has a sink")?;
        sink.preallocate(total);
        sink.write(&header)?;
        let mut reports = Vec::new();
        for ((mut src, p), start) in arrays.into_iter().zip(starts) {
            let Prepared { plan, mut upstream, info } = p;
            let name = src.name.clone();
            let layout = |u: &UnitOptions| u.layout(&info.shape, info.fortran);
            let mut proc = self.processor(plan, true, layout).with_context(|| name.clone())?;
            let file = sink.file_mut()?.context("internal error: a .safetensors output has a file")?;
            let at = PositionalOut { file, offset: start, crc: false };
            self.drive(&mut proc, &mut src, upstream.as_mut(), Some(at)).with_context(|| name.clone())?;
            reports.push(self.report(&name, proc, &info.shape));
        }
        Finished::done(reports, Some(sink))
    }

    /// `--in-place`: rewrite the data region of the input file itself, in its own byte order.
    fn in_place(&self) -> Result<Finished<O>> {
        let path = &self.input;
        if is_dash(path) {
            return usage("--in-place needs a .npy file, not stdin");
        }
        let name = path.display().to_string();
        let file = OpenOptions::new().read(true).write(true).open(path).with_context(|| name.clone())?;
        let mut src = ArraySource::open_for_rewrite(path)?;
        let header = src.header.clone();
        let func = self.settings.act.act.map(|a| a.func()).unwrap_or(crate::act::Func::Relu);
        if !header.dtype()?.is_float() && func != crate::act::Func::Relu {
            return usage(format!(
                "{} on {} cannot run in place (it needs a float type): write a new file with --dtype f32 -o OUT",
                func.name(),
                header.dtype_name()
            ));
        }
        let mut p = self.prepare(&src)?;
        if p.plan.output != p.plan.input || p.plan.work != p.plan.input {
            return usage(format!(
                "--in-place cannot change the dtype ({} to {}): write a new file with -o",
                p.plan.input, p.plan.output
            ));
        }
        p.plan.output_order = header.order;
        let layout = |u: &UnitOptions| u.layout(&p.info.shape, p.info.fortran);
        let mut proc = self.processor(p.plan.clone(), true, layout).with_context(|| name.clone())?;
        let at = PositionalOut { file: &file, offset: header.data_offset, crc: false };
        self.drive(&mut proc, &mut src, p.upstream.as_mut(), Some(at)).with_context(|| name.clone())?;
        Ok(Finished { reports: vec![self.report(&name, proc, &header.shape)], pending: None })
    }
}

/// `.npz`, `.safetensors`, `.pt`: files of named arrays.
pub fn is_container(f: Format) -> bool {
    matches!(f, Format::Npz | Format::Safetensors | Format::Pt)
}

/// Output formats whose elements are written in C order whatever the input's order.
fn writes_c_order(f: Format) -> bool {
    f.is_text() || f == Format::Safetensors
}

/// Whether an array (and its upstream) are file regions, which [`Job::drive`] runs on ranges
/// with positional writes: the test a container's writer makes before it hands a member's data
/// to `drive` rather than streaming it through its own writer.
fn by_position(src: &ArraySource, up: Option<&ArraySource>) -> bool {
    src.region.is_some() && up.is_none_or(|u| u.region.is_some())
}

/// In order: `threads` ≥ 2 puts the writes on a second thread.
fn stream<O: Observer>(
    proc: &mut ChunkProcessor<O>,
    src: &mut ArraySource,
    up: Option<&mut ArraySource>,
    threads: usize,
    out: &mut (dyn FnMut(&[u8]) -> Result<()> + Send),
) -> Result<()> {
    let elements = src.header.elements;
    let up = up.map(|u| u.data.as_mut() as &mut dyn ChunkSource);
    if threads > 1 {
        pipeline::stream_overlapped(proc, elements, src.data.as_mut(), up, out)
    } else {
        pipeline::stream(proc, elements, src.data.as_mut(), up, out)
    }
}
