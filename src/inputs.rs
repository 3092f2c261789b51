//! What the command line's inputs name (SPEC §6), resolved once for every command: each argument
//! becomes one or more [`Address`]es — a file (or stdin) and which members or tensors of it — and
//! each array a job finds there gets its name.
//!
//! * `FILE:NAME`: FILE is the longest prefix that names an existing file, so a path that exists
//!   as a whole is a file, and names may hold `:`; NAME is a member's or tensor's name, or a
//!   pattern (`glob.rs`) the container resolves when it is opened.
//! * `--member NAME` is the same NAME given to every container input (and to stdin, whose format
//!   is known only once it is read); plain arrays ignore it, so one command line may mix `.npy`
//!   checkpoints with `.npz` ones.
//! * A directory (for the commands that take them) is walked by `discover.rs`, in byte-wise order.
//! * Names: a member's or tensor's own name, else the file's path without its extension; either
//!   below the directory it was found under (`sub/acts.npz:layer2` → `sub/layer2`), so a file
//!   named by itself gives its stem.

use crate::cmd::discover::{discover, Found};
use crate::format::Format;
use crate::job::{is_container, ArrayReport};
use crate::options::{is_dash, usage, ReadOptions};
use anyhow::Result;
use std::path::{Path, PathBuf};

/// One input file (or stdin) and the members of it that are wanted.
#[derive(Clone, Debug)]
pub struct Address {
    /// The file, or `-`.
    pub path: PathBuf,
    /// `FILE:NAME`'s NAME, or `--member`'s, for a container: a name or a pattern.
    pub member: Option<String>,
    /// The file's size (0 for stdin and streams).
    pub bytes: u64,
    /// The file's path below its root (its file name when named by itself): its arrays' names
    /// start from it, and batch writes it there.
    pub rel: PathBuf,
}

impl Address {
    /// The input as jobs and their messages name it.
    pub fn shown(&self) -> String {
        if is_dash(&self.path) {
            "<stdin>".into()
        } else {
            self.path.display().to_string()
        }
    }

    /// A file found under a directory (`Found::rel` below it), all of its arrays.
    pub fn found(f: &Found) -> Address {
        Address { path: f.path.clone(), member: None, bytes: f.len, rel: f.rel.clone() }
    }

    /// How a job reads this input: `read` with this address's member.
    pub fn read(&self, read: &ReadOptions) -> ReadOptions {
        ReadOptions { member: self.member.clone(), ..read.clone() }
    }

    /// The name (SPEC §6) of the array a job reported as `reported` (`FILE` or `FILE:MEMBER`).
    pub fn name_of(&self, reported: &str) -> String {
        let member = reported.strip_prefix(self.shown().as_str()).and_then(|r| r.strip_prefix(':'));
        // a member below the file's directory; a plain array by its path without the extension
        let dir = self.rel.parent().map(slashed).unwrap_or_default();
        match member {
            Some(m) if dir.is_empty() => m.to_string(),
            Some(m) => format!("{dir}/{m}"),
            None => slashed(&self.rel.with_extension("")),
        }
    }

    /// Gives each report's statistics its name.
    pub fn name_reports<O>(&self, reports: &mut [ArrayReport<O>]) {
        for r in reports {
            if let Some(s) = &mut r.stats {
                s.name = Some(self.name_of(&r.name));
            }
        }
    }
}

/// What the resolution may do.
#[derive(Clone, Copy)]
pub struct Resolve<'a> {
    /// `--member`.
    pub member: Option<&'a str>,
    /// `--from`.
    pub format: Option<Format>,
    /// Directories are walked (stats, hist, batch, trend); else a directory stays as it is (and
    /// fails when read, saying what it is).
    pub dirs: bool,
    /// A directory not to enter (batch's `--out-dir`).
    pub skip: Option<&'a Path>,
}

/// Every address the arguments name, in order (a directory's files in byte-wise order).
pub fn resolve(args: &[PathBuf], how: Resolve) -> Result<Vec<Address>> {
    if args.iter().filter(|p| is_dash(p)).count() > 1 {
        return usage("stdin (-) can be given once");
    }
    let mut out = Vec::new();
    for arg in args {
        out.extend(resolve_one(arg, how)?);
    }
    if let Some(m) = how.member {
        if !out.iter().any(|a| a.member.is_some()) {
            return usage(format!(
                "--member {}: no input is a container: --member picks an array of an .npz or a tensor of a \
                 .safetensors or .pt input",
                crate::quote::text(m)
            ));
        }
    }
    Ok(out)
}

/// The addresses one argument names.
pub fn resolve_one(arg: &Path, how: Resolve) -> Result<Vec<Address>> {
    let container = |p: &Path| is_dash(p) || is_container(how.format.unwrap_or_else(|| Format::of_path(p)));
    let member = |p: &Path| how.member.filter(|_| container(p)).map(str::to_string);
    if is_dash(arg) {
        return Ok(vec![top(arg, member(arg), 0)]);
    }
    match std::fs::metadata(arg) {
        Ok(m) if m.is_dir() && how.dirs => {
            let found = discover(std::slice::from_ref(&arg.to_path_buf()), how.skip, &mut |w| {
                crate::errln!("relu: warning: {w}")
            })?;
            Ok(found.into_iter().map(|f| Address { member: member(&f.path), ..Address::found(&f) }).collect())
        }
        Ok(m) => Ok(vec![top(arg, member(arg), if m.is_file() { m.len() } else { 0 })]),
        Err(_) => match split(arg) {
            Some((file, name)) => {
                if !container(&file) {
                    return usage(format!(
                        "{}: {} is not a container: FILE:NAME names a member of an .npz or a tensor of a \
                         .safetensors or .pt file",
                        arg.display(),
                        file.display()
                    ));
                }
                let bytes = std::fs::metadata(&file).map_or(0, |m| if m.is_file() { m.len() } else { 0 });
                Ok(vec![top(&file, Some(name), bytes)])
            }
            // missing: the job says so, naming it
            None => Ok(vec![top(arg, member(arg), 0)]),
        },
    }
}

/// A file named by itself: its arrays are named at the top, after its stem.
fn top(path: &Path, member: Option<String>, bytes: u64) -> Address {
    let rel = path.file_name().map_or_else(|| path.to_path_buf(), PathBuf::from);
    Address { path: path.to_path_buf(), member, bytes, rel }
}

/// `FILE:NAME` as (FILE, NAME): FILE the longest prefix before a `:` that is an existing file
/// (not a directory); `-:NAME` is stdin's NAME.
pub fn split(arg: &Path) -> Option<(PathBuf, String)> {
    let s = arg.to_str()?;
    if let Some(name) = s.strip_prefix("-:") {
        return Some((PathBuf::from("-"), name.to_string()));
    }
    s.rmatch_indices(':').map(|(i, _)| (&s[..i], &s[i + 1..])).find_map(|(file, name)| {
        let exists = !file.is_empty() && std::fs::metadata(file).is_ok_and(|m| !m.is_dir());
        exists.then(|| (PathBuf::from(file), name.to_string()))
    })
}

/// A relative path with `/` between its parts, whatever the platform.
fn slashed(p: &Path) -> String {
    p.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_below_the_root() {
        let a = Address { path: "root/sub/acts.npz".into(), member: None, bytes: 0, rel: "sub/acts.npz".into() };
        assert_eq!(a.name_of("root/sub/acts.npz:layer2"), "sub/layer2");
        assert_eq!(a.name_of("root/sub/acts.npz"), "sub/acts");
        let t = top(Path::new("d/x.npy"), None, 0);
        assert_eq!(t.name_of("d/x.npy"), "x");
        assert_eq!(top(Path::new("n.safetensors"), None, 0).name_of("n.safetensors:a:b"), "a:b");
    }
}
