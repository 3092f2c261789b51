//! Finding the array files a command's inputs name (SPEC §6 "Directories"): a file named on the
//! command line is taken as it is (a FIFO or device there is read as a stream); a directory is
//! walked recursively (`walkdir`, symlinks followed) for `.npy`, `.npz`, `.safetensors`, `.csv`
//! and `.tsv` files. In a walk only regular files are taken: anything else with such a name (a
//! FIFO would hang the run, a socket cannot be read) is skipped with a warning; a broken symlink
//! is listed, to fail when read (it names a file that is missing); a symlink back to a directory
//! above it (a loop) is reported with a warning and not followed, and the rest of the tree is
//! still walked, as `fd -L` and `rg -L` do. The list comes out in byte-wise order of the paths,
//! each path once.

use crate::output::FileId;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// One file found.
pub struct Found {
    pub path: PathBuf,
    /// Its path below the directory it was found under; its file name when named by itself.
    pub rel: PathBuf,
    /// Its size (0 for a stream).
    pub len: u64,
}

/// The files under `inputs`; `skip` is a directory not to enter (an output directory inside an
/// input tree, whose files must not be read back as inputs). Warnings go to `warn`, one line
/// each, without the `relu: ` prefix.
pub fn discover(inputs: &[PathBuf], skip: Option<&Path>, warn: &mut dyn FnMut(String)) -> Result<Vec<Found>> {
    let skip = skip.filter(|d| d.is_dir()).and_then(FileId::of);
    let mut found = Vec::new();
    for root in inputs {
        let meta = std::fs::metadata(root).with_context(|| root.display().to_string())?;
        if !meta.is_dir() {
            let rel = root.file_name().map(PathBuf::from).unwrap_or_else(|| root.clone());
            found.push(Found { path: root.clone(), rel, len: if meta.is_file() { meta.len() } else { 0 } });
            continue;
        }
        let walk = walkdir::WalkDir::new(root).follow_links(true).into_iter().filter_entry(|e| {
            // not into the output directory (compared by what it is, not how it is spelled)
            !(e.file_type().is_dir() && skip.is_some() && FileId::of(e.path()) == skip)
        });
        for entry in walk {
            let e = match entry {
                Ok(e) => e,
                Err(err) => {
                    let at = err.path().unwrap_or(root).to_path_buf();
                    if let Some(ancestor) = err.loop_ancestor() {
                        warn(format!(
                            "{}: skipped, a symlink loop (it leads back to {})",
                            at.display(),
                            ancestor.display()
                        ));
                        continue;
                    }
                    let broken = err.io_error().is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound)
                        && std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink());
                    if broken {
                        // listed, to fail when read, as a file deleted after the listing would
                        if is_array_file(&at) {
                            let rel = at.strip_prefix(root).unwrap_or(&at).to_path_buf();
                            found.push(Found { path: at, rel, len: 0 });
                        }
                        continue;
                    }
                    let why = err.io_error().map_or_else(|| err.to_string(), |io| io.to_string());
                    anyhow::bail!("{}: {why}", at.display());
                }
            };
            if e.file_type().is_dir() || !is_array_file(e.path()) {
                continue;
            }
            if !e.file_type().is_file() {
                warn(format!("{}: skipped, not a regular file ({})", e.path().display(), kind(e.file_type())));
                continue;
            }
            let len = e.metadata().map(|m| m.len()).unwrap_or(0);
            let rel = e.path().strip_prefix(root).unwrap_or(e.path()).to_path_buf();
            found.push(Found { path: e.into_path(), rel, len });
        }
    }
    found.sort_by(|a, b| a.path.as_os_str().as_encoded_bytes().cmp(b.path.as_os_str().as_encoded_bytes()));
    found.dedup_by(|a, b| a.path == b.path);
    Ok(found)
}

/// `.npy`, `.npz`, `.safetensors`, `.pt`, `.pth`, `.csv` or `.tsv` (not a temporary file of a run in progress or killed).
pub fn is_array_file(p: &Path) -> bool {
    let ext = p.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase());
    let temp = p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(".relu-tmp"));
    !temp && matches!(ext.as_deref(), Some("npy" | "npz" | "safetensors" | "pt" | "pth" | "csv" | "tsv"))
}

/// What a file that is not regular is, in words.
fn kind(t: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_socket() {
            return "a socket";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
    }
    let _ = t;
    "not a file or directory"
}
