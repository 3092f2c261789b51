//! What every renderer draws: [`Panel`]s (one array's histogram and what to say about it), how
//! pictures lay them out, and the number formats of their labels. Below both the text renderers
//! (`render/mod.rs`) and the pictures (`plot.rs`).

use crate::hist::HistJson;

/// One array's histogram and what to say about it.
#[derive(Clone, Debug)]
pub struct Panel {
    /// `path` or `path:member`.
    pub name: String,
    /// `float32 (1000, 256) · relu`
    pub about: String,
    pub hist: HistJson,
    /// (dead units, units) when units were counted: the ridgeline's labels.
    pub dead: Option<(u64, u64)>,
    /// The active-rate view: units that are never active (a bar of their own) and the
    /// near-dead threshold; `hist` then counts the other units' active rates in [0, 1].
    pub rates: Option<Rates>,
    /// The exact zeros among the counted values, when pictures draw them as a bar of their own
    /// (after relu or leaky, where they are the units that did not fire).
    pub zeros: Option<u64>,
}

#[derive(Clone, Copy, Debug)]
pub struct Rates {
    pub dead: u64,
    pub near_dead: u64,
    pub threshold: f64,
}

/// How panels are laid out in a picture.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum View {
    #[default]
    /// One panel each, in a grid, sharing the x axis.
    Panels,
    /// Stacked offset curves, in the order given (checkpoints over time).
    Ridge,
}

/// The widest text bars drawn, in columns, whatever `COLUMNS` says.
pub const MAX_WIDTH: usize = 1000;

#[derive(Clone, Debug, Default)]
pub struct PlotOptions {
    pub view: View,
    pub log_y: bool,
    pub size: Option<(u32, u32)>,
    /// The picture's title; none: each panel's caption says what it is.
    pub title: Option<String>,
    /// One label per panel or ridge row; empty: [`labels`] of the panels' names.
    pub labels: Vec<String>,
    /// Each panel on its own x range (its own histogram's edges) rather than the union of all.
    pub own_x: bool,
}

/// A number in at most about five significant digits, for labels.
pub fn short(x: f64) -> String {
    if x == 0.0 {
        return "0".into();
    }
    if !x.is_finite() {
        return format!("{x}");
    }
    let e = x.abs().log10().floor() as i32;
    if (-4..6).contains(&e) {
        let d = (4 - e).max(0) as usize;
        let s = format!("{x:.d$}");
        let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s };
        if s == "-0" {
            "0".into()
        } else {
            s
        }
    } else {
        format!("{x:.3e}")
    }
}

/// Short labels for names: several names lose the path components they all start with and the
/// files' extensions, the rest joined by " · " (`runs/epoch_03/layer2.npy`, `runs/epoch_04/layer2.npy`
/// → `epoch_03 · layer2`, `epoch_04 · layer2`); an archive's member (`file.npz:w`) is a component of
/// its own. One name stays as it is.
pub fn labels(names: &[&str]) -> Vec<String> {
    if names.len() < 2 {
        return names.iter().map(|n| n.to_string()).collect();
    }
    let parts: Vec<Vec<String>> = names.iter().map(|n| components(n)).collect();
    let shortest = parts.iter().map(Vec::len).min().unwrap_or(0);
    // keep at least one component of each
    let mut common = 0;
    while common + 1 < shortest && parts.iter().all(|p| p[common] == parts[0][common]) {
        common += 1;
    }
    parts.iter().map(|p| p[common..].join(" · ")).collect()
}

fn components(name: &str) -> Vec<String> {
    let (path, member) = match name.rsplit_once(':') {
        // a member after a file name, not a Windows drive letter (`C:\`)
        Some((p, m)) if p.len() > 1 && !m.starts_with(['/', '\\']) => (p, Some(m)),
        _ => (name, None),
    };
    let mut out: Vec<String> =
        path.split(['/', '\\']).filter(|c| !c.is_empty() && *c != ".").map(str::to_string).collect();
    if let Some(last) = out.last_mut() {
        if let Some((stem, ext)) = last.rsplit_once('.') {
            let known = ["npy", "npz", "safetensors", "pt", "pth", "csv", "tsv", "txt", "json", "jsonl"];
            if !stem.is_empty() && known.contains(&ext.to_ascii_lowercase().as_str()) {
                *last = stem.to_string();
            }
        }
    }
    out.extend(member.map(str::to_string));
    out
}

/// 1234567 → "1,234,567".
pub fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_drop_the_common_prefix_and_extensions() {
        assert_eq!(
            labels(&["runs/epoch_03/layer2.npy", "runs/epoch_04/layer2.npy"]),
            ["epoch_03 · layer2", "epoch_04 · layer2"]
        );
        assert_eq!(labels(&["a/x.npz:w", "a/x.npz:b"]), ["w", "b"]);
        assert_eq!(labels(&["x.npy", "x.npy"]), ["x", "x"]);
        assert_eq!(labels(&["a/b/c.npy", "a/d.npy"]), ["b · c", "d"]);
        assert_eq!(labels(&["one/file.npy"]), ["one/file.npy"]);
        assert_eq!(labels(&["<stdin>", "y.npy"]), ["<stdin>", "y"]);
    }
}
