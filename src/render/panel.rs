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
}

#[derive(Clone, Copy, Debug)]
pub struct Rates {
    pub dead: u64,
    pub near_dead: u64,
    pub threshold: f64,
}

/// How panels are laid out in a picture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// One panel each, in a grid, sharing the x axis.
    Panels,
    /// Stacked offset curves, in the order given (checkpoints over time).
    Ridge,
}

/// The widest text bars drawn, in columns, whatever `COLUMNS` says.
pub const MAX_WIDTH: usize = 1000;

#[derive(Clone, Copy, Debug)]
pub struct PlotOptions {
    pub view: View,
    pub log_y: bool,
    pub size: Option<(u32, u32)>,
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
