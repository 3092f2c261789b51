//! SVG and PNG pictures of histograms: a grid of panels (one x axis or one each), a ridgeline of
//! checkpoints, or the active-rate view. plotters draws the SVG (its text stays text); the PNG is
//! that SVG rasterized by resvg, text shaped on its baseline with the shipped DejaVu Sans
//! (`assets/fonts`) and no system font, so a PNG is the same on every machine.

use super::panel::{group, labels, short, Panel, PlotOptions, View};
use anyhow::{anyhow, bail, Result};
use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::sync::{Once, OnceLock};

pub(super) const FONT: &str = "sans-serif";
const FONT_BYTES: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

pub(super) fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is ours and known to parse; a failure would show as missing text, not a crash.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES);
    });
}

fn size(panels: &[Panel], o: &PlotOptions) -> (u32, u32) {
    if let Some(s) = o.size {
        return s;
    }
    let k = panels.len().max(1) as u32;
    match o.view {
        View::Ridge => (1000, (160 + 70 * k).min(4000)),
        View::Panels => {
            let (rows, cols) = grid(k as usize);
            let w = if cols == 1 { 900 } else { (560 * cols as u32).min(2800) };
            let h = if rows == 1 { 500 } else { (360 * rows as u32).min(4000) };
            (w, h)
        }
    }
}

/// Rows and columns for `k` panels: as square as it gets, wider than tall.
fn grid(k: usize) -> (usize, usize) {
    let cols = (k as f64).sqrt().ceil().max(1.0) as usize;
    (k.div_ceil(cols).max(1), cols)
}

/// Refuses what cannot be drawn: no panels at all, or a histogram that is not one (its edges
/// checked as `HistJson::check` checks them; plotters would loop forever over a range whose width
/// overflows float64). The commands check both earlier, naming the file; this keeps the
/// renderers safe for any caller.
fn drawable(panels: &[Panel]) -> Result<()> {
    if panels.is_empty() {
        bail!("no arrays to draw");
    }
    for p in panels {
        p.hist.check().map_err(|why| anyhow!("{}: cannot draw this histogram: {why}", p.name))?;
    }
    Ok(())
}

pub fn svg(panels: &[Panel], o: &PlotOptions) -> Result<Vec<u8>> {
    drawable(panels)?;
    register_font();
    let (w, h) = size(panels, o);
    let mut s = String::new();
    {
        let root = SVGBackend::with_string(&mut s, (w, h)).into_drawing_area();
        draw(&root, panels, o)?;
        root.present().map_err(|e| anyhow!("cannot draw the SVG: {e}"))?;
    }
    Ok(s.into_bytes())
}

/// The PNG: the SVG above rasterized by resvg (usvg shapes the text with the shipped font on its
/// baseline, with advances and kerning; tiny-skia fills), so both pictures are one drawing.
pub fn png(panels: &[Panel], o: &PlotOptions) -> Result<Vec<u8>> {
    rasterize(&svg(panels, o)?)
}

/// usvg's options with the shipped font alone (no system fonts: the same pixels on every machine),
/// standing in for every family plotters names.
fn svg_options() -> &'static resvg::usvg::Options<'static> {
    static OPTIONS: OnceLock<resvg::usvg::Options<'static>> = OnceLock::new();
    OPTIONS.get_or_init(|| {
        let mut o = resvg::usvg::Options { font_family: "DejaVu Sans".into(), ..Default::default() };
        let db = o.fontdb_mut();
        db.load_font_data(FONT_BYTES.to_vec());
        db.set_sans_serif_family("DejaVu Sans");
        db.set_serif_family("DejaVu Sans");
        db.set_monospace_family("DejaVu Sans");
        o
    })
}

/// An SVG document as an opaque RGB PNG.
pub(super) fn rasterize(svg: &[u8]) -> Result<Vec<u8>> {
    let tree = resvg::usvg::Tree::from_data(svg, svg_options()).map_err(|e| anyhow!("cannot draw the PNG: {e}"))?;
    let size = tree.size().to_int_size();
    let (w, h) = (size.width(), size.height());
    let mut pixmap = resvg::tiny_skia::Pixmap::new(w, h).ok_or_else(|| anyhow!("cannot draw a {w}x{h} PNG"))?;
    pixmap.fill(resvg::tiny_skia::Color::WHITE);
    resvg::render(&tree, resvg::tiny_skia::Transform::default(), &mut pixmap.as_mut());
    // premultiplied RGBA over opaque white is opaque: its RGB is the colour
    let rgb: Vec<u8> = pixmap.data().chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut wr = enc.write_header()?;
    wr.write_image_data(&rgb)?;
    wr.finish()?;
    Ok(out)
}

type Area<'a, DB> = DrawingArea<DB, Shift>;

fn draw<DB: DrawingBackend>(root: &Area<DB>, panels: &[Panel], o: &PlotOptions) -> Result<()> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("cannot draw: {e}");
    root.fill(&WHITE).map_err(err)?;
    let names: Vec<&str> = panels.iter().map(|p| p.name.as_str()).collect();
    let labels = if o.labels.is_empty() { labels(&names) } else { o.labels.clone() };
    if labels.len() != panels.len() {
        bail!("{} labels for {} pictures: give one label each", labels.len(), panels.len());
    }
    let body = match &o.title {
        Some(t) => {
            let (head, body) = root.split_vertically(36);
            let style = (FONT, 20).into_font().color(&BLACK).pos(Pos::new(HPos::Center, VPos::Center));
            head.draw(&Text::new(t.clone(), (head.dim_in_pixel().0 as i32 / 2, 20), style)).map_err(err)?;
            body
        }
        None => root.clone(),
    };
    match o.view {
        View::Ridge => ridge(&body, panels, &labels, o.title.is_none()).map_err(err),
        View::Panels => {
            let (rows, cols) = grid(panels.len());
            let areas = body.split_evenly((rows, cols));
            // one x axis for all, unless each panel keeps its own
            let all = panels
                .iter()
                .filter_map(|p| p.hist.span())
                .fold((f64::INFINITY, f64::NEG_INFINITY), |a, s| (a.0.min(s.0), a.1.max(s.1)));
            for ((p, area), label) in panels.iter().zip(areas.iter()).zip(&labels) {
                let x = if o.own_x { p.hist.span().unwrap_or(all) } else { all };
                panel(area, p, label, x, o.log_y).map_err(err)?;
            }
            Ok(())
        }
    }
}

const BAR: RGBColor = RGBColor(52, 101, 164);
const DEAD: RGBColor = RGBColor(204, 0, 0);
const NEAR: RGBColor = RGBColor(245, 121, 0);
const ZERO: RGBColor = RGBColor(85, 87, 83);

/// One histogram: bars over the x range `(lo, hi)`, a caption with its label and what was
/// computed, and what fell outside its bins.
fn panel<DB: DrawingBackend>(
    area: &Area<DB>,
    p: &Panel,
    label: &str,
    (first, hi): (f64, f64),
    log_y: bool,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let (lo_edge, hi_edge) = p.hist.span().unwrap_or((first, hi));
    // the exact zeros apart: out of their bin, into a bar of their own that does not set the scale
    let zeros = p.zeros.filter(|&z| z > 0 && p.rates.is_none());
    let apart;
    let p = match zeros {
        Some(z) => {
            let mut q = p.clone();
            let n = q.hist.counts.len();
            let at = q.hist.edges.windows(2).position(|e| e[0] <= 0.0 && 0.0 < e[1]).or_else(|| {
                // the last bin is closed
                (n > 0 && q.hist.edges[n - 1] <= 0.0 && 0.0 <= q.hist.edges[n]).then_some(n - 1)
            });
            if let Some(i) = at {
                q.hist.counts[i] = q.hist.counts[i].saturating_sub(z);
            }
            apart = q;
            &apart
        }
        None => p,
    };
    let mut lo = first;
    let dead = p.rates.map_or(0, |r| r.dead);
    // the active-rate view keeps a slot left of 0 for the dead units' bar, a relu one for its zeros
    let slot = (hi - lo) * 0.08;
    if p.rates.is_some() || zeros.is_some() {
        lo -= slot;
    }
    let top = p.hist.counts.iter().copied().chain([dead]).max().unwrap_or(0).max(1) as f64;
    let footer = format!(
        "below {}: {}  ·  above {}: {}  ·  nan: {}",
        short(lo_edge),
        group(p.hist.underflow),
        short(hi_edge),
        group(p.hist.overflow),
        group(p.hist.nan)
    );
    let footer = match zeros {
        Some(z) => {
            let all = p.hist.counts.iter().sum::<u64>() + z + p.hist.underflow + p.hist.overflow + p.hist.nan;
            let share = 100.0 * z as f64 / all.max(1) as f64;
            format!("exact 0 (grey, cut): {} ({share:.1}%)  ·  {footer}", group(z))
        }
        None => footer,
    };
    let title = format!("{label}  ·  {}", p.about);
    let (area, foot) = area.split_vertically(area.dim_in_pixel().1.saturating_sub(22));
    foot.draw(&Text::new(footer, (70, 2), (FONT, 13).into_font().color(&BLACK.mix(0.7))))?;
    let mut b = ChartBuilder::on(&area);
    b.caption(title, (FONT, 15)).margin(12).x_label_area_size(36).y_label_area_size(64);
    let x_desc = if p.rates.is_some() { "active rate (fraction of a unit's elements > 0)" } else { "value" };
    let y_desc = if p.rates.is_some() { "units" } else { "count" };
    if log_y {
        let mut chart = b.build_cartesian_2d(lo..hi, (0.8f64..top * 1.5).log_scale())?;
        mesh(&mut chart, x_desc, y_desc)?;
        draw_bars(&mut chart, p, (first, hi), (0.8, top * 1.5), slot)?;
    } else {
        let mut chart = b.build_cartesian_2d(lo..hi, 0f64..top * 1.08)?;
        mesh(&mut chart, x_desc, y_desc)?;
        draw_bars(&mut chart, p, (first, hi), (0.0, top * 1.08), slot)?;
    }
    Ok(())
}

fn mesh<DB: DrawingBackend, Y: Ranged<ValueType = f64> + ValueFormatter<f64>>(
    chart: &mut ChartContext<DB, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
    x_desc: &str,
    y_desc: &str,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_labels(8)
        .y_labels(6)
        .x_label_formatter(&|x| short(*x))
        .y_label_formatter(&|y| short(*y))
        .label_style((FONT, 12))
        .axis_desc_style((FONT, 13))
        .light_line_style(WHITE.mix(0.0))
        .draw()
}

/// The bars, each at least a pixel wide and high when its count is not zero, so a narrow bin
/// (`--bins 2000` on a few values) or a small count beside a tall one still shows.
fn draw_bars<DB: DrawingBackend, Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<DB, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
    p: &Panel,
    (lo, hi): (f64, f64),
    (base, ytop): (f64, f64),
    slot: f64,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let (w, h) = chart.plotting_area().dim_in_pixel();
    let px = (hi - lo + if p.rates.is_some() || p.zeros.is_some() { slot } else { 0.0 }) / w.max(1) as f64;
    // the lowest visible top: a pixel above the base (on a log axis the base's own decade is
    // enough, as 1 sits above 0.8)
    let y_min = base + (ytop - base) / h.max(1) as f64;
    let height = |c: u64| if base > 0.0 { c as f64 } else { (c as f64).max(y_min) };
    let near = p.rates.map_or(f64::NEG_INFINITY, |r| r.threshold);
    if let Some(z) = p.zeros.filter(|&z| z > 0 && p.rates.is_none()) {
        // the exact zeros left of the range, cut at the top (their fraction says how tall)
        let (x0, x1) = (lo - slot * 0.85, lo - slot * 0.15);
        chart.draw_series([Rectangle::new([(x0, base), (x1, height(z).min(ytop))], ZERO.filled())])?;
    }
    if let Some(r) = &p.rates {
        // the near-dead band, then the dead units' own bar left of 0
        chart.draw_series([Rectangle::new([(lo, base), (near.min(hi), ytop)], NEAR.mix(0.12).filled())])?;
        let x0 = lo - slot * 0.85;
        let x1 = lo - slot * 0.15;
        if r.dead > 0 {
            chart.draw_series([Rectangle::new([(x0, base), (x1, height(r.dead))], DEAD.filled())])?;
        }
        let style = (FONT, 12).into_font().color(&DEAD).pos(Pos::new(HPos::Center, VPos::Bottom));
        let y = if r.dead > 0 { height(r.dead) } else { base };
        chart.draw_series([Text::new(format!("dead: {}", r.dead), ((x0 + x1) / 2.0, y), style)])?;
        let style = (FONT, 12).into_font().color(&NEAR).pos(Pos::new(HPos::Left, VPos::Top));
        let label = format!("near dead (< {}%): {}", 100.0 * r.threshold, r.near_dead);
        chart.draw_series([Text::new(label, (near.min(hi), ytop), style)])?;
    }
    chart.draw_series(p.hist.counts.iter().zip(p.hist.edges.windows(2)).filter(|(&c, _)| c > 0).map(|(&c, e)| {
        // a bin wholly below the near-dead threshold is drawn in its colour
        let colour = if e[1] <= near { NEAR } else { BAR };
        let x1 = e[1].max(e[0] + 1.01 * px);
        Rectangle::new([(e[0], base), (x1, height(c))], colour.mix(0.85).filled())
    }))?;
    Ok(())
}

/// Stacked offset curves, the first input at the top, each labelled and, when units were
/// counted, with its dead-unit fraction; a line marks x = 0 when it is in range.
fn ridge<DB: DrawingBackend>(
    root: &Area<DB>,
    panels: &[Panel],
    labels: &[String],
    caption: bool,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    // `drawable` refused no panels; the shared range is the first one's
    let Some(first) = panels.first() else { return Ok(()) };
    let k = panels.len();
    let (lo, hi) = first.hist.span().unwrap_or((0.0, 1.0));
    let mut b = ChartBuilder::on(root);
    if caption {
        b.caption(format!("{}  ·  ridgeline of {k} inputs", first.about), (FONT, 16));
    }
    let mut chart =
        b.margin(16).x_label_area_size(36).y_label_area_size(12).build_cartesian_2d(lo..hi, 0f64..k as f64 + 1.2)?;
    chart
        .configure_mesh()
        .disable_y_axis()
        .disable_y_mesh()
        .x_labels(10)
        .x_label_formatter(&|x| short(*x))
        .x_desc("value")
        .label_style((FONT, 12))
        .axis_desc_style((FONT, 13))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    if lo < 0.0 && 0.0 < hi {
        chart.draw_series([PathElement::new(
            vec![(0.0, 0.0), (0.0, k as f64 + 1.2)],
            BLACK.mix(0.35).stroke_width(1),
        )])?;
    }
    for (i, (p, name)) in panels.iter().zip(labels).enumerate() {
        let base = (k - 1 - i) as f64 + 0.15;
        let top = p.hist.counts.iter().copied().max().unwrap_or(0).max(1) as f64;
        let mut pts = vec![(lo, base)];
        for (&c, e) in p.hist.counts.iter().zip(p.hist.edges.windows(2)) {
            let y = base + 1.25 * c as f64 / top;
            pts.push((e[0], y));
            pts.push((e[1], y));
        }
        pts.push((hi, base));
        let colour = Palette99::pick(i).to_rgba();
        chart.draw_series([Polygon::new(pts.clone(), colour.mix(0.55).filled())])?;
        chart.draw_series([PathElement::new(pts, BLACK.mix(0.8).stroke_width(1))])?;
        let label = match p.dead {
            Some((d, u)) if u > 0 => format!("{name}  ·  dead {}/{} ({:.1}%)", d, u, 100.0 * d as f64 / u as f64),
            _ => name.clone(),
        };
        // right-aligned just above the baseline, where the tails of activations run low
        let style = (FONT, 13).into_font().color(&BLACK).pos(Pos::new(HPos::Right, VPos::Bottom));
        chart.draw_series([Text::new(label, (hi, base + 0.04), style)])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rasterizes one line of text, black on white; returns the columns' ink spans (glyphs, left
    /// to right) as (first column, last column, top row, bottom row).
    fn glyphs(text: &str) -> Vec<(usize, usize, usize, usize)> {
        let svg = format!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="600" height="120"><text x="20" y="80" font-family="sans-serif" font-size="60">{text}</text></svg>"#
        );
        let png = rasterize(svg.as_bytes()).unwrap();
        let dec = png::Decoder::new(std::io::Cursor::new(png));
        let mut r = dec.read_info().unwrap();
        let mut buf = vec![0; r.output_buffer_size()];
        let info = r.next_frame(&mut buf).unwrap();
        let (w, h) = (info.width as usize, info.height as usize);
        let ink = |x: usize, y: usize| buf[(y * w + x) * 3] < 128;
        let mut spans = Vec::new();
        let mut x = 0;
        while x < w {
            if (0..h).any(|y| ink(x, y)) {
                let start = x;
                while x < w && (0..h).any(|y| ink(x, y)) {
                    x += 1;
                }
                let rows: Vec<usize> = (0..h).filter(|&y| (start..x).any(|c| ink(c, y))).collect();
                spans.push((start, x - 1, rows[0], *rows.last().unwrap()));
            }
            x += 1;
        }
        spans
    }

    #[test]
    fn png_text_sits_on_its_baseline_with_even_advances() {
        let g = glyphs("n.nnnn");
        assert_eq!(g.len(), 6, "{g:?}");
        let (n, dot) = (g[0], g[1]);
        // the full stop's bottom on the n's bottom (the baseline), not at mid-height
        assert!(n.3.abs_diff(dot.3) <= 1, "n {n:?} . {dot:?}");
        assert!(dot.2 > n.2 + (n.3 - n.2) / 2, "the full stop stands high: n {n:?} . {dot:?}");
        // equal gaps in nnnn: each advance the same, to a pixel
        let gaps: Vec<usize> = g[2..].windows(2).map(|w| w[1].0 - w[0].1).collect();
        let (lo, hi) = (*gaps.iter().min().unwrap(), *gaps.iter().max().unwrap());
        assert!(hi - lo <= 1, "gaps {gaps:?}");
        // and every n on the same rows
        assert!(g[2..].iter().all(|s| s.2.abs_diff(n.2) <= 1 && s.3.abs_diff(n.3) <= 1), "{g:?}");
    }
}
