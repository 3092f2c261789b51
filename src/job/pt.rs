//! `.pt` inputs and outputs of a job: a `.pt`'s tensors one result each (named by their path in
//! the container), into a `.pt` that keeps the container (dicts, lists, tuples, plain leaves,
//! order), a `.safetensors` that keeps the names, or one tensor into any format; and a `.npy` or
//! `.safetensors` input into a `.pt`. Kept apart from `job.rs`: it uses the job's plumbing only.

use super::{stream, ArrayReport, Finished, Job, Prepared};
use crate::format::npz::finish_member;
use crate::format::pickle::Out;
use crate::format::pt::{fortran_strides, record_for, PtFile, PtWriter};
use crate::format::safetensors::SafetensorsFile;
use crate::format::Format;
use crate::options::{is_dash, usage, UnitOptions};
use crate::pipeline::Observer;
use crate::sink::Sink;
use crate::source::ArraySource;
use anyhow::{Context, Result};

impl<O: Observer> Job<O> {
    /// A `.pt` input (see the module comment). `--member` picks one tensor by its path.
    pub(super) fn pt(&self, f: PtFile) -> Result<Finished<O>> {
        let to = self.to(Format::Pt);
        let chosen: Vec<usize> = match &self.settings.read.member {
            Some(m) => f.select(m)?,
            None => (0..f.tensors.len()).collect(),
        };
        let several = chosen.len() != 1;
        if self.settings.act.upstream.is_some() && several && to != Some(Format::Safetensors) {
            return usage("--upstream with several tensors needs a .safetensors output or --member NAME");
        }
        match to {
            Some(Format::Pt) => self.pt_to_pt(&f, &chosen),
            Some(Format::Safetensors) if several => self.pt_to_safetensors(&f, &chosen),
            Some(Format::Npz) => self.pt_to_npz(&f, &chosen),
            Some(_) if several => {
                let names: Vec<String> = f.tensors.iter().map(|t| t.name.clone()).collect();
                usage(format!(
                    "{} holds {} tensors ({}): pick one with --member NAME, or write a .pt, .safetensors or .npz",
                    f.name,
                    names.len(),
                    names.join(", ")
                ))
            }
            _ => {
                let mut sink = self.sink(to, false)?;
                let mut reports = Vec::new();
                for &i in &chosen {
                    let mut src = self.pt_source(&f, i)?;
                    if to.is_some_and(super::writes_c_order) {
                        // a view streamed in Fortran order (see `PtFile::source`) written in C order
                        let name = src.name.clone();
                        src = src.into_c_order().with_context(|| name)?;
                    }
                    let p = self.prepare_member(&src, Some(&f.tensors[i].name))?;
                    reports.push(self.array_prepared(src, p, sink.as_mut().zip(to))?);
                }
                Finished::done(reports, sink)
            }
        }
    }

    fn pt_source(&self, f: &PtFile, i: usize) -> Result<ArraySource<'static>> {
        let t = &f.tensors[i];
        let mut src = f.source(t)?;
        // a tensor written alone keeps its name (a bare one takes the file's, as from a .npy)
        if !t.name.is_empty() {
            src.member = Some(t.name.clone());
        }
        Ok(src)
    }

    /// Every chosen tensor into a `.pt` of the same container (only those tensors in it).
    fn pt_to_pt(&self, f: &PtFile, chosen: &[usize]) -> Result<Finished<O>> {
        let mut arrays = Vec::new();
        let mut picked = vec![None; f.tensors.len()];
        for (k, &i) in chosen.iter().enumerate() {
            let src = f.source(&f.tensors[i])?;
            let p = self.prepare_member(&src, Some(&f.tensors[i].name))?;
            let mut rec = record_for(p.plan.output, &p.info.shape, k.to_string(), &f.tensors[i].record)
                .with_context(|| src.name.clone())?;
            if p.info.fortran {
                // a transposed view stays one, its storage written in the order it streams
                rec.strides = fortran_strides(&p.info.shape);
            }
            picked[i] = Some(rec);
            arrays.push((src, p));
        }
        let tree = f.rebuild(&picked)?;
        self.write_pt(&tree, arrays)
    }

    /// Every chosen tensor into a `.safetensors`, named by its path (a bare tensor by the file's
    /// stem), in the container's order.
    fn pt_to_safetensors(&self, f: &PtFile, chosen: &[usize]) -> Result<Finished<O>> {
        let mut arrays = Vec::new();
        let mut tensors = Vec::new();
        for &i in chosen {
            let t = &f.tensors[i];
            let src = f.source(t)?;
            let name = src.name.clone();
            let src = src.into_c_order().with_context(|| name)?;
            let p = self.prepare_member(&src, Some(&t.name))?;
            let name = if t.name.is_empty() { self.stem() } else { t.name.clone() };
            tensors.push((name, p.plan.output, p.info.shape.clone()));
            arrays.push((src, p));
        }
        self.write_safetensors(None, &tensors, arrays)
    }

    /// Every chosen tensor into an `.npz`, members named by their paths (a bare tensor by the
    /// file's stem), in the container's order.
    fn pt_to_npz(&self, f: &PtFile, chosen: &[usize]) -> Result<Finished<O>> {
        let mut arrays = Vec::new();
        for &i in chosen {
            let t = &f.tensors[i];
            let src = f.source(t)?;
            let p = self.prepare_member(&src, Some(&t.name))?;
            let name = if t.name.is_empty() { self.stem() } else { t.name.clone() };
            arrays.push((name, src, p));
        }
        self.write_npz(arrays)
    }

    /// A `.npy` input (a bare tensor) or a `.safetensors` (a dict of its tensors, in order) into a
    /// `.pt`.
    pub(super) fn other_to_pt(&self, input: crate::source::Input) -> Result<Finished<O>> {
        match input.format {
            Format::Npy => {
                let src = input.array()?;
                let name = src.name.clone();
                let src = src.into_c_order().with_context(|| name.clone())?;
                let p = self.prepare(&src)?;
                let like = blank();
                let rec = record_for(p.plan.output, &p.info.shape, "0".into(), &like).with_context(|| name)?;
                self.write_pt(&Out::Tensor(rec), vec![(src, p)])
            }
            Format::Safetensors => {
                let st: SafetensorsFile = input.safetensors()?;
                let chosen = match &self.settings.read.member {
                    Some(m) => st.select(m)?,
                    None => st.tensors.iter().collect(),
                };
                let mut arrays = Vec::new();
                let mut items = Vec::new();
                for (k, t) in chosen.into_iter().enumerate() {
                    let src = st.source(t)?;
                    let p = self.prepare_member(&src, Some(&t.name))?;
                    let rec = record_for(p.plan.output, &p.info.shape, k.to_string(), &blank())
                        .with_context(|| src.name.clone())?;
                    items.push((Out::Str(t.name.clone()), Out::Tensor(rec)));
                    arrays.push((src, p));
                }
                self.write_pt(&Out::Dict { items, ordered: false, state: None }, arrays)
            }
            Format::Npz => {
                // the records first (types and shapes from each member's header), then each
                // member read again and written: a member is a stream, read once, in order
                let mut ar = input.archive()?;
                let members = match &self.settings.read.member {
                    Some(m) => ar.select(m)?,
                    None => ar.members()?,
                };
                let mut items = Vec::new();
                for (k, m) in members.iter().enumerate() {
                    let name = ar.member_name(m);
                    ar.check_header(m)?;
                    let mut r = ar.reader(m)?;
                    let src = ArraySource::from_reader(&name, &mut r)?;
                    let p = self.prepare(&src)?;
                    let mut rec = record_for(p.plan.output, &p.info.shape, k.to_string(), &blank())
                        .with_context(|| name.clone())?;
                    if p.info.fortran {
                        // Fortran order is a view with reversed strides: no transposition
                        rec.strides = fortran_strides(&p.info.shape);
                    }
                    items.push((Out::Str(m.key.clone()), Out::Tensor(rec)));
                }
                let tree = Out::Dict { items, ordered: false, state: None };
                let mut left = members.iter();
                self.write_pt_with(&tree, |file, w| {
                    let Some(m) = left.next() else { return Ok(None) };
                    let name = ar.member_name(m);
                    let mut r = ar.reader(m)?;
                    let src = ArraySource::from_reader(&name, &mut r)?;
                    let p = self.prepare(&src)?;
                    let report = self.pt_storage(file, w, src, p)?;
                    finish_member(&mut r, &name)?;
                    Ok(Some(report))
                })
            }
            _ => usage("a .pt output is written from a .pt, .npz, .npy or .safetensors input"),
        }
    }

    /// Writes `tree` as a `.pt` and each array's output, in order, as its storages `0`, `1`, …
    fn write_pt(&self, tree: &Out, arrays: Vec<(ArraySource, Prepared)>) -> Result<Finished<O>> {
        let mut arrays = arrays.into_iter();
        self.write_pt_with(tree, |file, w| arrays.next().map(|(src, p)| self.pt_storage(file, w, src, p)).transpose())
    }

    /// Writes `tree` as a `.pt`, then its storages: `next` writes one with [`Job::pt_storage`]
    /// and gives its report, until it gives none (so a source may live only while it is written).
    fn write_pt_with(
        &self,
        tree: &Out,
        mut next: impl FnMut(&std::fs::File, &mut PtWriter<&std::fs::File>) -> Result<Option<ArrayReport<O>>>,
    ) -> Result<Finished<O>> {
        // a zip's directory is written last, at offsets into the file: stdout goes through a spool
        let mut sink = self.sink(Some(Format::Pt), true)?.context("internal error: a .pt output has a sink")?;
        let mut reports = Vec::new();
        {
            let file: &std::fs::File = sink.file_mut()?.context("internal error: a .pt output has a file")?;
            let mut w = PtWriter::new(file, tree)?;
            while let Some(r) = next(file, &mut w)? {
                reports.push(r);
            }
            w.finish()?;
        }
        Finished::done(reports, Some(sink))
    }

    /// One array's output as the next storage (`0`, `1`, … in order).
    fn pt_storage(
        &self,
        file: &std::fs::File,
        w: &mut PtWriter<&std::fs::File>,
        mut src: ArraySource,
        p: Prepared,
    ) -> Result<ArrayReport<O>> {
        let Prepared { plan, mut upstream, info } = p;
        let name = src.name.clone();
        let bytes = info.shape.iter().product::<u64>() * plan.output.size() as u64;
        w.start_storage(&w.storages().to_string(), bytes).with_context(|| name.clone())?;
        let layout = |u: &UnitOptions| u.layout(&info.shape, info.fortran);
        let mut proc = self.processor(plan, true, layout).with_context(|| name.clone())?;
        if super::by_position(&src, upstream.as_ref()) {
            // the storage written in place by every worker, as a `.npy`'s data is; the zip
            // writer is told its length and CRC afterwards
            let crc =
                self.drive_in_zip(file, &mut proc, &mut src, upstream.as_mut(), bytes).with_context(|| name.clone())?;
            w.written_at(bytes, crc.finalize())?;
        } else {
            let mut member = Sink::writer(w.writer());
            let mut write = |b: &[u8]| member.write(b);
            stream(&mut proc, &mut src, upstream.as_mut(), self.settings.threads, &mut write)
                .with_context(|| name.clone())?;
            member.finish()?;
        }
        Ok(self.report(&name, proc, &info.shape))
    }

    /// The input file's stem, a tensor's name when it has none of its own.
    fn stem(&self) -> String {
        match self.input.file_stem() {
            Some(s) if !is_dash(&self.input) => s.to_string_lossy().into_owned(),
            _ => "data".to_string(),
        }
    }
}

/// A plain tensor's flags (no gradient, not a parameter).
fn blank() -> crate::format::pickle::TensorRecord {
    use crate::format::pickle::{StorageKind, StorageRecord, TensorRecord};
    TensorRecord {
        storage: StorageRecord { kind: StorageKind::Float, key: String::new(), numel: 0 },
        offset: 0,
        shape: vec![],
        strides: vec![],
        requires_grad: false,
        parameter: false,
    }
}
