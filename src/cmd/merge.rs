//! `relu merge-stats`: combine statistics of shards exactly into one object.

use crate::cli::MergeArgs;
use crate::options::is_dash;
use crate::output::write_stats;
use crate::stats::StatsJson;
use anyhow::{anyhow, bail, Context, Result};
use std::io::Read;
use std::path::Path;

pub fn run(args: MergeArgs) -> Result<()> {
    let mut merged: Option<StatsJson> = None;
    for path in &args.files {
        let name = path.display().to_string();
        for (i, obj) in read_objects(path).with_context(|| name.clone())?.into_iter().enumerate() {
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

/// Every JSON object in a file: one object, JSON Lines, or objects separated by whitespace.
fn read_objects(path: &Path) -> Result<Vec<StatsJson>> {
    let mut text = String::new();
    if is_dash(path) {
        std::io::stdin().read_to_string(&mut text)?;
    } else {
        std::fs::File::open(path)?.read_to_string(&mut text)?;
    }
    let mut out = Vec::new();
    for (k, item) in serde_json::Deserializer::from_str(&text).into_iter::<StatsJson>().enumerate() {
        let s = item.context("not relu statistics JSON")?;
        // a histogram is checked before merging indexes its edges or the result is written
        if let Some(h) = &s.hist {
            h.check().map_err(|why| anyhow!("object {} ({:?}): hist: {why}", k + 1, s.input))?;
        }
        out.push(s);
    }
    Ok(out)
}
