//! `relu merge-stats`: combine statistics of shards exactly into one object.

use crate::output::{write_stats, RunFiles};
use crate::stats::StatsJson;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::Path;
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  relu merge-stats shard-*.jsonl > all.json\n  relu stats --json run/epoch_* > s.jsonl && relu merge-stats --by name s.jsonl\n  relu hist --from-stats all.json -o all.png"
)]
pub struct MergeArgs {
    /// Merge the objects that share a "name" (one output object per name, in first-seen order)
    /// instead of all of them into one
    #[arg(long, value_enum, value_name = "KEY")]
    pub by: Option<ByKey>,
    /// Where to write the merged object (default: stdout)
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// Statistics files (JSON objects or JSON Lines; - for stdin)
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// What `--by` groups by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ByKey {
    /// The arrays' names (SPEC §6): a layer across checkpoints or shards
    Name,
}

pub fn run(args: MergeArgs) -> Result<()> {
    let mut files = RunFiles::default();
    for path in &args.files {
        files.input("the input", path);
    }
    if let Some(p) = &args.output {
        files.output("-o", p, None)?;
    }
    // one group, or one per name in first-seen order
    let mut groups: Vec<(Option<String>, StatsJson, u64)> = Vec::new();
    // each group's quantile keys and fractions, in first-seen order: exact quantiles do not merge
    let mut quantiles: Vec<Vec<(String, f64)>> = Vec::new();
    for path in &args.files {
        let name = path.display().to_string();
        for (i, obj) in StatsJson::read_all(path).with_context(|| name.clone())?.into_iter().enumerate() {
            let at = || format!("{name}: object {}", i + 1);
            let key = match args.by {
                Some(ByKey::Name) => Some(obj.name.clone().with_context(|| {
                    format!(
                        "{}: it has no \"name\" (statistics written before relu named arrays): merge without --by",
                        at()
                    )
                })?),
                None => None,
            };
            let keys: Vec<(String, f64)> = obj
                .quantiles
                .iter()
                .flat_map(|q| q.0.iter())
                .filter_map(|(k, _)| k.parse::<f64>().ok().map(|q| (k.clone(), q)))
                .collect();
            let at_group = groups.iter().position(|g| g.0 == key).unwrap_or(groups.len());
            if at_group == quantiles.len() {
                quantiles.push(Vec::new());
            }
            for k in keys {
                if !quantiles[at_group].iter().any(|(have, _)| *have == k.0) {
                    quantiles[at_group].push(k);
                }
            }
            match groups.iter_mut().find(|g| g.0 == key) {
                None => groups.push((key, obj, 1)),
                Some(g) => {
                    if args.by.is_none() {
                        different_units(&g.1, &obj).with_context(at)?;
                    }
                    g.1 = g.1.merge(&obj).with_context(|| match &g.0 {
                        Some(k) => format!("{}: name {}", at(), crate::quote::text(k)),
                        None => at(),
                    })?;
                    g.2 += 1;
                }
            }
        }
    }
    if groups.is_empty() {
        bail!(
            "no statistics found in {}",
            args.files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        );
    }
    let out: Vec<StatsJson> = groups
        .into_iter()
        .zip(quantiles)
        .map(|((key, mut m, n), qs)| {
            if n > 1 && !qs.is_empty() {
                m.quantile_bounds = m.quantile_bounds(&qs);
                if m.quantile_bounds.is_none() {
                    let what = key.as_deref().map_or(String::new(), |k| format!(" of {}", crate::quote::text(k)));
                    crate::errln!(
                        "relu: note: the quantiles{what} are left out: exact quantiles do not merge, and without equal-edge histograms (stats --bins N --range=LO:HI) there are no bounds either"
                    );
                }
            }
            if m.merged.is_none() {
                m.merged = Some(1);
            }
            if key.is_some() {
                m.name = key;
                m.inputs = Some(n);
            }
            m
        })
        .collect();
    write_stats(args.output.as_deref().unwrap_or(Path::new("-")), &out)
}

/// Arrays with different unit counts are different arrays (layers of other widths): refused,
/// pointing at `--by name`, which merges each with its own kind.
fn different_units(a: &StatsJson, b: &StatsJson) -> Result<()> {
    if let (Some(ua), Some(ub)) = (&a.units, &b.units) {
        if ua.count != ub.count || ua.axis != ub.axis {
            let named =
                |s: &StatsJson| s.name.as_deref().map_or(String::new(), |n| format!(" ({})", crate::quote::text(n)));
            bail!(
                "cannot merge statistics with different units: {} units on axis {}{} and {} units on axis {}{}: \
                 these are different arrays; merge each array's own with --by name",
                ua.count,
                ua.axis,
                named(a),
                ub.count,
                ub.axis,
                named(b)
            );
        }
    }
    Ok(())
}
