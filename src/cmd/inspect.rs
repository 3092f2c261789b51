//! `relu inspect`: format, dtype, shape, order, elements and bytes, from the header only.

use crate::format::npy::{self, Header};
use crate::format::Format;
use crate::options::is_dash;
use crate::source::Input;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::io::Write;
use std::path::Path;
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  relu inspect x.npy acts.npz dump.safetensors\n  relu inspect --json *.npy")]
pub struct InspectArgs {
    /// JSON Lines: one object per array
    #[arg(long)]
    pub json: bool,
    /// Files to inspect (- for stdin), or FILE:NAME (members or tensors; NAME may be a glob)
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// One array's header, as inspect shows it.
struct Array {
    name: String,
    format: &'static str,
    header: Header,
    /// A `.pt` tensor's strides (in elements, as `Tensor.stride()`) and storage offset: a view
    /// need not be contiguous.
    view: Option<(Vec<u64>, u64)>,
}

impl Array {
    fn new(name: String, format: &'static str, header: Header) -> Array {
        Array { name, format, header, view: None }
    }

    /// "C", "F", or for a view that is neither, "strided".
    fn order(&self) -> &'static str {
        match &self.view {
            Some((strides, _)) if !crate::format::pt::is_contiguous(&self.header.shape, strides) => {
                if crate::format::pt::is_fortran_contiguous(&self.header.shape, strides) {
                    "F"
                } else {
                    "strided"
                }
            }
            _ if self.header.fortran_order => "F",
            _ => "C",
        }
    }
}

pub fn run(args: InspectArgs) -> Result<()> {
    if args.files.iter().filter(|p| crate::options::is_dash(p)).count() > 1 {
        return crate::options::usage("stdin (-) can be given once");
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut failed = 0;
    let mut rows = Vec::new();
    for path in &args.files {
        match pick(path) {
            Ok(arrays) => {
                for a in arrays {
                    if args.json {
                        writeln!(out, "{}", json(&a))?;
                    } else {
                        rows.push(row(&a));
                    }
                }
            }
            Err(e) => {
                crate::errln!("relu: {e:#}");
                failed += 1;
            }
        }
    }
    if !args.json && !rows.is_empty() {
        let head = ["FILE", "FORMAT", "DTYPE", "SHAPE", "ORDER", "ELEMENTS", "BYTES"].map(String::from);
        let widths: Vec<usize> =
            (0..head.len()).map(|i| rows.iter().chain([&head]).map(|r| r[i].len()).max().unwrap_or(0)).collect();
        for r in [&head].into_iter().chain(rows.iter()) {
            let line: Vec<String> = r
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(i, (c, w))| if i >= 5 { format!("{c:>w$}") } else { format!("{c:<w$}") })
                .collect();
            writeln!(out, "{}", line.join("  ").trim_end())?;
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} files could not be read", args.files.len());
    }
    Ok(())
}

/// The headers `FILE` or `FILE:NAME` names: all of the file's, or the members NAME picks.
fn pick(arg: &Path) -> Result<Vec<Array>> {
    let how = crate::inputs::Resolve { member: None, format: None, dirs: false, skip: None };
    let addr = crate::inputs::resolve_one(arg, how)?.remove(0);
    let all = read(&addr.path)?;
    let Some(m) = &addr.member else { return Ok(all) };
    let prefix = format!("{}:", addr.shown());
    let names: Vec<&str> = all.iter().map(|a| a.name.strip_prefix(prefix.as_str()).unwrap_or("")).collect();
    let picked = crate::glob::select(&names, m);
    if picked.is_empty() {
        bail!("{}: no member or tensor {} (it holds {})", addr.shown(), crate::quote::text(m), names.join(", "));
    }
    Ok(all.into_iter().enumerate().filter(|(i, _)| picked.contains(i)).map(|(_, a)| a).collect())
}

/// The headers of one input: one array, or one per member of an `.npz` (named `path:member`).
fn read(path: &Path) -> Result<Vec<Array>> {
    let input = Input::resolve(path, None)?;
    let name = input.name.clone();
    match input.format {
        Format::Npz => {
            let mut ar = input.archive()?;
            let mut out = Vec::new();
            for m in ar.members()? {
                let member = ar.member_name(&m);
                let h = ar.check_header(&m)?;
                // the member's inflated size, from the zip's directory, must hold the data
                npy::check_size(&h, m.size, "member").with_context(|| member.clone())?;
                out.push(Array::new(member, "npz", h));
            }
            Ok(out)
        }
        Format::Safetensors => {
            let st = input.safetensors()?;
            Ok(st.tensors.iter().map(|t| Array::new(st.member_name(t), "safetensors", st.header(t))).collect())
        }
        Format::Pt => {
            let f = input.pt()?;
            Ok(f.tensors
                .iter()
                .map(|t| Array {
                    view: Some((t.record.strides.clone(), t.record.offset)),
                    ..Array::new(f.member_name(t), "pt", f.header(t))
                })
                .collect())
        }
        Format::Csv | Format::Tsv => bail!("{name}: CSV has no header to inspect (relu stats reads it through)"),
        Format::Npy => {
            // the data's length too: `numpy.load` refuses a file shorter than its header says
            let mut r = input.reader()?;
            let h = npy::read_header(&mut r).with_context(|| name.clone())?;
            let len = if is_dash(path) {
                h.data_offset + std::io::copy(&mut r, &mut std::io::sink()).with_context(|| name.clone())?
            } else {
                std::fs::metadata(path).with_context(|| name.clone())?.len()
            };
            npy::check_size(&h, len, "file").with_context(|| name.clone())?;
            Ok(vec![Array::new(name, "npy", h)])
        }
    }
}

fn json(a: &Array) -> serde_json::Value {
    let h = &a.header;
    let mut j = serde_json::json!({
        "input": a.name,
        "format": a.format,
        "dtype": h.dtype_name(),
        "shape": h.shape,
        "order": a.order(),
        "elements": h.elements,
        "bytes": h.data_bytes,
    });
    if let Some((strides, offset)) = &a.view {
        j["strides"] = serde_json::json!(strides);
        j["storage_offset"] = serde_json::json!(offset);
    }
    j
}

fn row(a: &Array) -> [String; 7] {
    let h = &a.header;
    let order = match (&a.view, a.order()) {
        (Some((strides, _)), "strided") => format!("strides {}", npy::shape_repr(strides)),
        (_, o) => o.to_string(),
    };
    [
        a.name.clone(),
        a.format.into(),
        h.dtype_name(),
        npy::shape_repr(&h.shape),
        order,
        h.elements.to_string(),
        h.data_bytes.map_or("?".into(), |b| b.to_string()),
    ]
}
