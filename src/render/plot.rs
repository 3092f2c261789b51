//! SVG and PNG pictures of histograms, drawn with plotters: a grid of panels sharing the x axis,
//! a ridgeline of checkpoints, or the active-rate view. Text uses DejaVu Sans shipped in
//! `assets/fonts` (registered once), so PNGs render the same on a machine with no fonts.

use super::panel::{group, short, Panel, PlotOptions, View};
use anyhow::{anyhow, bail, Result};
use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::sync::Once;

pub(super) const FONT: &str = "sans-serif";

pub(super) fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
        // The font is ours and known to parse; a failure would show as missing text, not a crash.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, bytes);
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

pub fn png(panels: &[Panel], o: &PlotOptions) -> Result<Vec<u8>> {
    drawable(panels)?;
    register_font();
    let (w, h) = size(panels, o);
    let mut rgb = vec![0u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        draw(&root, panels, o)?;
        root.present().map_err(|e| anyhow!("cannot draw the PNG: {e}"))?;
    }
    encode_png(&rgb, (w, h))
}

/// An RGB buffer as a PNG file's bytes.
pub(super) fn encode_png(rgb: &[u8], (w, h): (u32, u32)) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut wr = enc.write_header()?;
    wr.write_image_data(rgb)?;
    wr.finish()?;
    Ok(out)
}

type Area<'a, DB> = DrawingArea<DB, Shift>;

fn draw<DB: DrawingBackend>(root: &Area<DB>, panels: &[Panel], o: &PlotOptions) -> Result<()> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("cannot draw: {e}");
    root.fill(&WHITE).map_err(err)?;
    match o.view {
        View::Ridge => ridge(root, panels).map_err(err),
        View::Panels => {
            let (rows, cols) = grid(panels.len());
            let areas = root.split_evenly((rows, cols));
            for (p, area) in panels.iter().zip(areas.iter()) {
                panel(area, p, o.log_y).map_err(err)?;
            }
            Ok(())
        }
    }
}

const BAR: RGBColor = RGBColor(52, 101, 164);
const DEAD: RGBColor = RGBColor(204, 0, 0);
const NEAR: RGBColor = RGBColor(245, 121, 0);

/// One histogram: bars over the shared range, a title with the input and what was computed, and
/// what fell outside the range.
fn panel<DB: DrawingBackend>(
    area: &Area<DB>,
    p: &Panel,
    log_y: bool,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    // checked by `drawable`; the fallback only keeps this from indexing
    let (first, hi) = p.hist.span().unwrap_or((0.0, 1.0));
    let mut lo = first;
    let dead = p.rates.map_or(0, |r| r.dead);
    // the active-rate view keeps a slot left of 0 for the dead units' bar
    let slot = (hi - lo) * 0.08;
    if p.rates.is_some() {
        lo -= slot;
    }
    let top = p.hist.counts.iter().copied().chain([dead]).max().unwrap_or(0).max(1) as f64;
    let footer = format!(
        "below {}: {}   above {}: {}   nan: {}",
        short(first),
        group(p.hist.underflow),
        short(hi),
        group(p.hist.overflow),
        group(p.hist.nan)
    );
    let title = format!("{}  ·  {}", p.name, p.about);
    let (area, foot) = area.split_vertically(area.dim_in_pixel().1.saturating_sub(22));
    foot.draw(&Text::new(footer, (70, 2), (FONT, 13).into_font().color(&BLACK.mix(0.7))))?;
    let mut b = ChartBuilder::on(&area);
    b.caption(title, (FONT, 15)).margin(12).x_label_area_size(36).y_label_area_size(64);
    let x_desc = if p.rates.is_some() { "active rate (fraction of a unit's elements > 0)" } else { "value" };
    let y_desc = if p.rates.is_some() { "units" } else { "count" };
    let bars = |c: u64, base: f64| (c as f64).max(base);
    if log_y {
        let mut chart = b.build_cartesian_2d(lo..hi, (0.8f64..top * 1.5).log_scale())?;
        mesh(&mut chart, x_desc, y_desc)?;
        draw_bars(&mut chart, p, (0.8, top * 1.5), slot, &bars)?;
    } else {
        let mut chart = b.build_cartesian_2d(lo..hi, 0f64..top * 1.08)?;
        mesh(&mut chart, x_desc, y_desc)?;
        draw_bars(&mut chart, p, (0.0, top * 1.08), slot, &bars)?;
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

fn draw_bars<DB: DrawingBackend, Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<DB, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
    p: &Panel,
    (base, ytop): (f64, f64),
    slot: f64,
    height: &dyn Fn(u64, f64) -> f64,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let (lo, hi) = p.hist.span().unwrap_or((0.0, 1.0));
    let near = p.rates.map_or(f64::NEG_INFINITY, |r| r.threshold);
    if let Some(r) = &p.rates {
        // the near-dead band, then the dead units' own bar left of 0
        chart.draw_series([Rectangle::new([(lo, base), (near.min(hi), ytop)], NEAR.mix(0.12).filled())])?;
        let x0 = lo - slot * 0.85;
        let x1 = lo - slot * 0.15;
        if r.dead > 0 {
            chart.draw_series([Rectangle::new([(x0, base), (x1, height(r.dead, base))], DEAD.filled())])?;
        }
        let style = (FONT, 12).into_font().color(&DEAD).pos(Pos::new(HPos::Center, VPos::Bottom));
        chart.draw_series([Text::new(format!("dead: {}", r.dead), ((x0 + x1) / 2.0, height(r.dead, base)), style)])?;
        let style = (FONT, 12).into_font().color(&NEAR).pos(Pos::new(HPos::Left, VPos::Top));
        let label = format!("near dead (< {}%): {}", 100.0 * r.threshold, r.near_dead);
        chart.draw_series([Text::new(label, (near.min(hi), ytop), style)])?;
    }
    chart.draw_series(p.hist.counts.iter().zip(p.hist.edges.windows(2)).filter(|(&c, _)| c > 0).map(|(&c, e)| {
        // a bin wholly below the near-dead threshold is drawn in its colour
        let colour = if e[1] <= near { NEAR } else { BAR };
        Rectangle::new([(e[0], base), (e[1], height(c, base))], colour.mix(0.85).filled())
    }))?;
    Ok(())
}

/// Stacked offset curves, the first input at the top, each labelled with its name and, when units
/// were counted, its dead-unit fraction.
fn ridge<DB: DrawingBackend>(root: &Area<DB>, panels: &[Panel]) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    // `drawable` refused no panels; the shared range is the first one's
    let Some(first) = panels.first() else { return Ok(()) };
    let k = panels.len();
    let (lo, hi) = first.hist.span().unwrap_or((0.0, 1.0));
    let mut chart = ChartBuilder::on(root)
        .caption(format!("{}  ·  ridgeline of {k} inputs", first.about), (FONT, 16))
        .margin(16)
        .x_label_area_size(36)
        .y_label_area_size(12)
        .build_cartesian_2d(lo..hi, 0f64..k as f64 + 1.2)?;
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
    for (i, p) in panels.iter().enumerate() {
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
            Some((d, u)) if u > 0 => format!("{}   dead {}/{} ({:.1}%)", p.name, d, u, 100.0 * d as f64 / u as f64),
            _ => p.name.clone(),
        };
        // right-aligned just above the baseline, where the tails of activations run low
        let style = (FONT, 13).into_font().color(&BLACK).pos(Pos::new(HPos::Right, VPos::Bottom));
        chart.draw_series([Text::new(label, (hi, base + 0.04), style)])?;
    }
    Ok(())
}
