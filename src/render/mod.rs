//! Histograms rendered for people and programs: terminal bars, CSV, JSON (here) and SVG/PNG
//! pictures (`plot.rs`: plotters draws the SVG, resvg rasterizes it for the PNG). Every renderer
//! takes the same [`Panel`]s, one per array (`panel.rs`, with the labels and number formats every
//! renderer uses).

mod lines;
mod panel;
mod plot;

use anyhow::Result;
pub use lines::{lines_png, lines_svg, Chart, Series};
pub use panel::{group, labels, short, Panel, PlotOptions, Rates, View, MAX_WIDTH};
use std::io::Write;

/// The SVG document of the panels.
pub fn svg(panels: &[Panel], o: &PlotOptions) -> Result<Vec<u8>> {
    plot::svg(panels, o)
}

/// The PNG image of the panels.
pub fn png(panels: &[Panel], o: &PlotOptions) -> Result<Vec<u8>> {
    plot::png(panels, o)
}

/// One JSON object per panel (JSON Lines): SPEC's `input`, `edges`, `counts`, `underflow`,
/// `overflow`, `nan`, plus what was computed.
pub fn json(panels: &[Panel], out: &mut dyn Write) -> Result<()> {
    for p in panels {
        let mut v = serde_json::json!({
            "input": p.name,
            "about": p.about,
            "edges": p.hist.edges,
            "counts": p.hist.counts,
            "underflow": p.hist.underflow,
            "overflow": p.hist.overflow,
            "nan": p.hist.nan,
        });
        if let Some(r) = &p.rates {
            v["of"] = "active_rate".into();
            v["dead"] = r.dead.into();
            v["near_dead"] = r.near_dead.into();
            v["threshold"] = r.threshold.into();
        }
        writeln!(out, "{v}")?;
    }
    Ok(())
}

/// CSV: `input,bin,lo,hi,count`, a row per bin, then the `underflow`, `overflow` and `nan` rows
/// (and `dead` in the active-rate view).
pub fn csv(panels: &[Panel], out: &mut dyn Write) -> Result<()> {
    writeln!(out, "input,bin,lo,hi,count")?;
    let mut fmt = ryu::Buffer::new();
    let mut num = |x: f64| if x.is_finite() { fmt.format(x).to_string() } else { format!("{x}") };
    for p in panels {
        let name = quote(&p.name);
        // the edges were checked where they were read (HistJson::check); nothing here indexes them
        let (lo, hi) = p.hist.span().unwrap_or((f64::NAN, f64::NAN));
        if let Some(r) = &p.rates {
            writeln!(out, "{name},dead,0,0,{}", r.dead)?;
        }
        for (i, (c, e)) in p.hist.counts.iter().zip(p.hist.edges.windows(2)).enumerate() {
            writeln!(out, "{name},{i},{},{},{c}", num(e[0]), num(e[1]))?;
        }
        writeln!(out, "{name},underflow,-inf,{},{}", num(lo), p.hist.underflow)?;
        writeln!(out, "{name},overflow,{},inf,{}", num(hi), p.hist.overflow)?;
        writeln!(out, "{name},nan,,,{}", p.hist.nan)?;
    }
    Ok(())
}

fn quote(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Terminal bars: one line per bin in Unicode eighth blocks, edges and counts aligned, `width`
/// columns wide; colour only when asked (a terminal without `NO_COLOR`).
pub fn text(panels: &[Panel], width: usize, colour: bool, out: &mut dyn Write) -> Result<()> {
    let width = width.min(MAX_WIDTH);
    for (k, p) in panels.iter().enumerate() {
        if k > 0 {
            writeln!(out)?;
        }
        writeln!(out, "{}  {}", p.name, p.about)?;
        // the edges were checked where they were read (HistJson::check); nothing here indexes them
        let n = p.hist.counts.len().min(p.hist.edges.len().saturating_sub(1));
        let mut rows: Vec<(String, u64, &str)> = Vec::new();
        if let Some(r) = &p.rates {
            rows.push(("dead (never active)".into(), r.dead, "\x1b[31m"));
        }
        for (i, (&c, e)) in p.hist.counts.iter().zip(p.hist.edges.windows(2)).enumerate() {
            let close = if i + 1 == n { ']' } else { ')' };
            let mark = match &p.rates {
                Some(r) if e[1] <= r.threshold => "\x1b[33m",
                _ => "\x1b[36m",
            };
            rows.push((format!("[{}, {}{close}", short(e[0]), short(e[1])), c, mark));
        }
        let label_w = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
        let count_w = rows.iter().map(|r| group(r.1).len()).max().unwrap_or(1);
        let bar_w = width.saturating_sub(label_w + count_w + 4).max(10);
        let top = rows.iter().map(|r| r.1).max().unwrap_or(0).max(1);
        for (label, c, mark) in &rows {
            let bar = bar(*c, top, bar_w);
            let pad = bar_w - bar.chars().count();
            let (on, off) = if colour { (*mark, "\x1b[0m") } else { ("", "") };
            writeln!(out, "  {label:<label_w$} {on}{bar}{off}{:pad$} {:>count_w$}", "", group(*c))?;
        }
        let h = &p.hist;
        let (lo, hi) = p.hist.span().map_or(("?".into(), "?".into()), |(lo, hi)| (short(lo), short(hi)));
        writeln!(
            out,
            "  below {lo}: {}   above {hi}: {}   nan: {}",
            group(h.underflow),
            group(h.overflow),
            group(h.nan)
        )?;
        if let Some(r) = &p.rates {
            writeln!(out, "  near dead (active < {}% of the time): {} units", r.threshold * 100.0, group(r.near_dead))?;
        }
    }
    Ok(())
}

/// `c` of `top` as a bar of at most `w` columns in eighth blocks; a nonzero count shows at least
/// a sliver.
fn bar(c: u64, top: u64, w: usize) -> String {
    const PARTS: [char; 8] = [' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];
    let eighths = ((c as u128 * w as u128 * 8 + top as u128 / 2) / top as u128) as usize;
    let eighths = if c > 0 { eighths.max(1) } else { 0 };
    let mut s = "█".repeat(eighths / 8);
    if eighths % 8 > 0 {
        s.push(PARTS[eighths % 8]);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_and_numbers() {
        assert_eq!(bar(0, 10, 8), "");
        assert_eq!(bar(10, 10, 4), "████");
        assert_eq!(bar(1, 1000, 4), "▏");
        assert_eq!(bar(5, 10, 3), "█▌");
        assert_eq!(short(0.30000000000000004), "0.3");
        assert_eq!(short(-3.87251), "-3.8725");
        assert_eq!(short(123456.0), "123456");
        assert_eq!(short(1e-7), "1.000e-7");
        assert_eq!(group(1234567), "1,234,567");
    }
}
