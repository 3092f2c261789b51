//! `batch --stats FILE`'s statistics per output, kept beside FILE (in `FILE.parts/`, the
//! output tree's layout, one `.jsonl` per output) while a run is under way, so that a run
//! interrupted at any point (SIGKILL included) and resumed with `--skip-existing` ends with the
//! statistics of every input, not only of those it processed itself (SPEC §6, docs/scaling-out.md).
//!
//! A part is a cache, never the only record: it is used only when its first line names this
//! run's settings and input and the output file exactly as it is now (size and modification
//! time); otherwise the skipped input's statistics are computed again from the input, with no
//! output written. So a lost, stale or half-written part costs a read, never a wrong number.
//! The parts go once a run has finished with every input accounted for.

use crate::stats::StatsJson;
use anyhow::{Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// The parts of one statistics file.
pub struct StatsParts {
    dir: PathBuf,
    /// What the statistics depend on besides the input: the settings.
    settings: String,
    warned: AtomicBool,
}

/// The first line of a part: what its statistics describe.
#[derive(serde::Serialize, serde::Deserialize, PartialEq)]
struct Head {
    relu_batch_part: String,
    settings: String,
    input: String,
    /// The output as the part saw it: length and modification time (ns since the epoch).
    output: (u64, u64),
    objects: usize,
}

impl StatsParts {
    /// The parts of `stats`, a regular file (or a name still to be made); `None` for stdout, a
    /// device or a FIFO, which keep nothing to resume from. `settings`: everything besides the
    /// input that the statistics depend on.
    pub fn beside(stats: &Path, settings: String) -> Option<StatsParts> {
        if crate::usage::is_dash(stats) || std::fs::metadata(stats).is_ok_and(|m| !m.is_file()) {
            return None;
        }
        let mut dir = stats.as_os_str().to_owned();
        dir.push(".parts");
        Some(StatsParts { dir: PathBuf::from(dir), settings, warned: AtomicBool::new(false) })
    }

    fn path(&self, rel: &Path) -> PathBuf {
        let mut p = self.dir.join(rel).into_os_string();
        p.push(".jsonl");
        PathBuf::from(p)
    }

    fn head(&self, input: &Path, output: &Path, objects: usize) -> Option<Head> {
        let m = std::fs::metadata(output).ok()?;
        let t = u64::try_from(m.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?.as_nanos()).ok()?;
        Some(Head {
            relu_batch_part: env!("CARGO_PKG_VERSION").into(),
            settings: self.settings.clone(),
            input: input.display().to_string(),
            output: (m.len(), t),
            objects,
        })
    }

    /// [`StatsParts::save`], with a warning (once a run) where it fails: only a resumed run
    /// pays for it, by computing these statistics again.
    pub fn keep(&self, rel: &Path, input: &Path, output: &Path, stats: &[StatsJson]) {
        if let Err(e) = self.save(rel, input, output, stats) {
            if !self.warned.swap(true, Ordering::Relaxed) {
                crate::errln!(
                    "relu: warning: {e:#}: statistics not kept for resuming (a run resumed with --skip-existing computes them again)"
                );
            }
        }
    }

    /// Keeps the statistics of `input`, whose output `output` (at `rel` under the output
    /// directory) now exists; written atomically.
    pub fn save(&self, rel: &Path, input: &Path, output: &Path, stats: &[StatsJson]) -> Result<()> {
        let head = self.head(input, output, stats.len()).context("the output vanished")?;
        let mut text = serde_json::to_string(&head)?;
        text.push('\n');
        for s in stats {
            text.push_str(&serde_json::to_string(s)?);
            text.push('\n');
        }
        let path = self.path(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let mut out = crate::output::Output::create(&path)?;
        out.write_all(text.as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
        out.commit()
    }

    /// The statistics kept for `input` and its existing `output`; `None` when there are none
    /// that describe exactly these (other settings, another output, an unreadable part).
    pub fn load(&self, rel: &Path, input: &Path, output: &Path) -> Option<Vec<StatsJson>> {
        let text = std::fs::read_to_string(self.path(rel)).ok()?;
        let mut lines = text.lines();
        let head: Head = serde_json::from_str(lines.next()?).ok()?;
        if Some(&head) != self.head(input, output, head.objects).as_ref() {
            return None;
        }
        let stats: Vec<StatsJson> = lines.map(serde_json::from_str).collect::<Result<_, _>>().ok()?;
        (stats.len() == head.objects).then_some(stats)
    }

    /// Removes the parts of `rels`, then the directories they leave empty (only those: anything
    /// else found there stays).
    pub fn remove<'a>(&self, rels: impl Iterator<Item = &'a Path>) {
        let mut dirs = std::collections::BTreeSet::new();
        for rel in rels {
            let _ = std::fs::remove_file(self.path(rel));
            dirs.extend(rel.ancestors().skip(1).map(|d| self.dir.join(d)));
        }
        // deepest first: a directory's children sort after it
        for d in dirs.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
    }
}
