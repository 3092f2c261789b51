//! `relu merge-stats`: combine statistics of shards exactly into one object.

use crate::output::{write_stats, RunFiles};
use crate::stats::StatsJson;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::Path;
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  relu merge-stats shard-*.jsonl > all.json\n  relu hist --from-stats all.json -o all.png"
)]
pub struct MergeArgs {
    /// Where to write the merged object (default: stdout)
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// Statistics files (JSON objects or JSON Lines; - for stdin)
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

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
