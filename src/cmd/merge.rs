//! `relu merge-stats`: combine statistics of shards exactly into one object.

use crate::cli::MergeArgs;
use crate::output::{write_stats, RunFiles};
use crate::stats::StatsJson;
use anyhow::{bail, Context, Result};
use std::path::Path;

pub fn run(args: MergeArgs) -> Result<()> {
    let mut files = RunFiles::default();
    for path in &args.files {
        files.input("the input", path);
    }
    if let Some(p) = &args.output {
        files.output("-o", p, None)?;
    }
    let mut merged: Option<StatsJson> = None;
    for path in &args.files {
        let name = path.display().to_string();
        for (i, obj) in StatsJson::read_all(path).with_context(|| name.clone())?.into_iter().enumerate() {
            merged = Some(match merged {
                None => obj,
                Some(m) => m.merge(&obj).with_context(|| format!("{name}: object {}", i + 1))?,
            });
        }
    }
    let Some(mut m) = merged else {
        bail!(
            "no statistics found in {}",
            args.files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        );
    };
    if m.merged.is_none() {
        m.merged = Some(1);
    }
    write_stats(args.output.as_deref().unwrap_or(Path::new("-")), &[m])
}
