//! Where a job's data comes from: an input resolved to its format and opened (a `.npy` file or
//! stream, an `.npz` archive, a `.safetensors` file, a CSV/TSV table), and small arrays read
//! whole (`--alpha` files). The chunk sources that hand out an array's bytes are `chunks.rs`.

pub use crate::chunks::{file_source, ArraySource, ChunkSource, FileRegion, MmapSource, PreadSource, ReadSource};
use crate::dtype::ByteOrder;
use crate::format::csv::CsvTable;
use crate::format::npy;
use crate::format::npz::NpzArchive;
use crate::format::Format;
use crate::options::{delimiter, is_dash, usage, ReadOptions};
use anyhow::{bail, Context, Result};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// An input whose format is decided: by `--from`, else the extension, else (stdin) its first
/// bytes. Opened as whichever format that is.
pub struct Input {
    pub format: Format,
    /// The name for messages (`<stdin>` for `-`).
    pub name: String,
    path: PathBuf,
    /// stdin after sniffing, still yielding the sniffed bytes.
    sniffed: Option<Box<dyn Read + Send>>,
}

/// A FIFO or device input, opened: its format is `from`, else its extension's, else sniffed.
fn named_stream(path: &Path, from: Option<Format>, name: &str) -> Result<(Format, Option<Box<dyn Read + Send>>)> {
    let mut f = File::open(path).with_context(|| name.to_string())?;
    if let Some(f0) = from {
        return Ok((f0, Some(Box::new(f))));
    }
    let mut head = Vec::with_capacity(crate::format::SNIFF);
    (&mut f).take(crate::format::SNIFF as u64).read_to_end(&mut head).with_context(|| name.to_string())?;
    let format = if path.extension().is_some() { Format::of_path(path) } else { Format::sniff(&head) };
    Ok((format, Some(Box::new(std::io::Cursor::new(head).chain(f)))))
}

impl Input {
    pub fn resolve(path: &Path, from: Option<Format>) -> Result<Input> {
        let name = if is_dash(path) { "<stdin>".to_string() } else { path.display().to_string() };
        // a FIFO or device named as an input (`<(cmd)`, `/dev/stdin`) is read once, as stdin is
        let stream = !is_dash(path) && std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir());
        let (format, sniffed) = match from {
            _ if stream => named_stream(path, from, &name)?,
            Some(f) => (f, None),
            None if is_dash(path) => {
                let mut head = Vec::with_capacity(crate::format::SNIFF);
                let mut stdin = std::io::stdin();
                (&mut stdin).take(crate::format::SNIFF as u64).read_to_end(&mut head).context("<stdin>")?;
                let r: Box<dyn Read + Send> = Box::new(std::io::Cursor::new(head.clone()).chain(stdin));
                (Format::sniff(&head), Some(r))
            }
            None => (Format::of_path(path), None),
        };
        Ok(Input { format, name, path: path.to_path_buf(), sniffed })
    }

    /// The bytes as a stream.
    pub fn reader(self) -> Result<Box<dyn Read + Send>> {
        Ok(match self.sniffed {
            Some(r) => r,
            None if is_dash(&self.path) => Box::new(std::io::stdin()),
            None => Box::new(File::open(&self.path).with_context(|| self.name.clone())?),
        })
    }

    /// A `.npy` array.
    pub fn array(self) -> Result<ArraySource<'static>> {
        match self.sniffed {
            Some(r) => ArraySource::from_reader(&self.name, r),
            None if is_dash(&self.path) => ArraySource::from_reader(&self.name, std::io::stdin().lock()),
            None => ArraySource::open(&self.path),
        }
    }

    /// An `.npz` archive.
    pub fn archive(self) -> Result<NpzArchive> {
        match self.sniffed {
            Some(r) => NpzArchive::from_reader(&self.name, r),
            None => NpzArchive::open(&self.path),
        }
    }

    /// A `.safetensors` file, its header validated.
    pub fn safetensors(self) -> Result<crate::format::safetensors::SafetensorsFile> {
        use crate::format::safetensors::SafetensorsFile;
        match self.sniffed {
            Some(r) => SafetensorsFile::from_reader(&self.name, r),
            None if is_dash(&self.path) => SafetensorsFile::from_reader(&self.name, std::io::stdin().lock()),
            None => SafetensorsFile::open(&self.path),
        }
    }

    /// A `.pt` file, its container read (by the restricted unpickler) and its tensors listed.
    pub fn pt(self) -> Result<crate::format::pt::PtFile> {
        use crate::format::pt::PtFile;
        match self.sniffed {
            Some(r) => PtFile::from_reader(&self.name, r),
            None if is_dash(&self.path) => PtFile::from_reader(&self.name, std::io::stdin().lock()),
            None => PtFile::open(&self.path),
        }
    }

    /// A CSV/TSV table, its first record looked at.
    pub fn table(self, opts: &ReadOptions) -> Result<CsvTable<Box<dyn Read + Send>>> {
        let delim = delimiter(opts.delimiter, self.format);
        let name = self.name.clone();
        CsvTable::open(&name, self.reader()?, delim, opts.header)
    }
}

/// `--alpha`: a number, a comma list, or a `.npy` file of slopes.
pub fn read_alpha(spec: &str) -> Result<Vec<f64>> {
    let path = Path::new(spec);
    let alphas = if alpha_file(spec).is_some() {
        read_small_array(path).with_context(|| format!("--alpha {spec}"))?
    } else {
        let mut v = Vec::new();
        for s in spec.split(',') {
            match s.trim().parse::<f64>() {
                Ok(x) => v.push(x),
                Err(_) => {
                    return usage(format!(
                        "--alpha: '{}' is not a number (give numbers, a comma list, or a .npy file)",
                        s.trim()
                    ))
                }
            }
        }
        v
    };
    if alphas.is_empty() {
        return usage("--alpha has no slopes");
    }
    Ok(alphas)
}

/// The file an `--alpha` value names, when it names one rather than listing numbers.
pub fn alpha_file(spec: &str) -> Option<PathBuf> {
    let file = spec.ends_with(".npy") || spec.ends_with(".safetensors") || Path::new(spec).is_file();
    file.then(|| PathBuf::from(spec))
}

/// The most PReLU slopes (channels) a file may hold: every worker keeps them laid out in its
/// working type (8 MiB at most, in f64).
pub const MAX_SLOPES: u64 = 1 << 20;

/// A small 0-d or 1-D array, read whole into f64: a `.npy`, or the only tensor of a
/// `.safetensors`.
fn read_small_array(path: &Path) -> Result<Vec<f64>> {
    if crate::format::Format::of_path(path) == crate::format::Format::Safetensors {
        let st = crate::format::safetensors::SafetensorsFile::open(path)?;
        let [t] = &st.tensors[..] else {
            bail!("slopes must be the only tensor of their file; this one holds {}", st.tensors.len());
        };
        if t.shape.len() > 1 {
            bail!("slopes must be a 1-D array, this one has shape {}", npy::shape_repr(&t.shape));
        }
        let elements = t.shape.iter().product::<u64>();
        if elements > MAX_SLOPES {
            bail!("{elements} slopes is more than any layer has");
        }
        let mut src = st.source(t)?;
        let dt = src.header.dtype()?;
        let raw = src.data.next_chunk((t.end - t.start) as usize)?.to_vec();
        return Ok((0..elements as usize).map(|i| crate::dtype::element_f64(dt, &raw, i)).collect());
    }
    let mut file = std::fs::File::open(path)?;
    let h = npy::read_header(&mut file)?;
    let dt = h.dtype()?;
    if h.shape.len() > 1 {
        bail!("slopes must be a 1-D array, this one has shape {}", npy::shape_repr(&h.shape));
    }
    if h.elements > MAX_SLOPES {
        bail!("{} slopes is more than any layer has", h.elements);
    }
    npy::check_length(&file, &h)?;
    let mut raw = vec![0u8; h.data_bytes.unwrap_or(0) as usize];
    std::io::Read::read_exact(&mut file, &mut raw)?;
    if h.order == ByteOrder::Big {
        // element by element: `raw` has no alignment to view it as typed values
        for e in raw.chunks_exact_mut(dt.size()) {
            e.reverse();
        }
    }
    Ok((0..h.elements as usize).map(|i| crate::dtype::element_f64(dt, &raw, i)).collect())
}
