//! `relu inspect`: format, dtype, shape, order, elements and bytes, from the header only.

use crate::cli::InspectArgs;
use crate::format::npy::{self, Header};
use anyhow::{Context, Result};
use std::fs::File;
use std::io::Write;
use std::path::Path;

pub fn run(args: InspectArgs) -> Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut failed = 0;
    let mut rows = Vec::new();
    for path in &args.files {
        let name = path.display().to_string();
        match read(path).with_context(|| name.clone()) {
            Ok(h) => {
                if args.json {
                    writeln!(out, "{}", json(&name, &h))?;
                } else {
                    rows.push(row(&name, &h));
                }
            }
            Err(e) => {
                eprintln!("relu: {e:#}");
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

fn read(path: &Path) -> Result<Header> {
    if path.as_os_str() == "-" {
        return npy::read_header(&mut std::io::stdin().lock());
    }
    npy::read_header(&mut File::open(path)?)
}

fn json(name: &str, h: &Header) -> serde_json::Value {
    serde_json::json!({
        "input": name,
        "format": "npy",
        "dtype": h.dtype_name(),
        "shape": h.shape,
        "order": if h.fortran_order { "F" } else { "C" },
        "elements": h.elements,
        "bytes": h.data_bytes,
    })
}

fn row(name: &str, h: &Header) -> [String; 7] {
    [
        name.to_string(),
        "npy".into(),
        h.dtype_name(),
        npy::shape_repr(&h.shape),
        if h.fortran_order { "F" } else { "C" }.into(),
        h.elements.to_string(),
        h.data_bytes.map_or("?".into(), |b| b.to_string()),
    ]
}
