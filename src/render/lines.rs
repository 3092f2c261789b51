//! A line chart (`relu trend -o x.svg|x.png`): one labelled line per series, a value over steps,
//! drawn with the same font and encoder as the histograms.

use super::panel::short;
use super::plot::{rasterize, register_font, FONT};
use anyhow::{anyhow, bail, Result};
use plotters::prelude::*;

/// One line: its label and its points (x ascending; a missing value is a gap).
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, Option<f64>)>,
}

/// What the chart shows.
pub struct Chart {
    pub title: String,
    pub x_desc: String,
    pub y_desc: String,
    /// The x positions' labels (checkpoint names or steps), at 0, 1, … when `x_labels` is given.
    pub x_labels: Option<Vec<String>>,
    pub series: Vec<Series>,
}

fn size(c: &Chart) -> (u32, u32) {
    (1000, (560 + 18 * c.series.len() as u32).min(2400))
}

/// Lines on white need dark colours: matplotlib's tab10 (Palette99's third, a light yellow, is
/// hard to see as a line).
const LINE_COLOURS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

pub fn lines_svg(c: &Chart) -> Result<Vec<u8>> {
    register_font();
    let (w, h) = size(c);
    let mut s = String::new();
    {
        let root = SVGBackend::with_string(&mut s, (w, h)).into_drawing_area();
        draw(&root, c).map_err(|e| anyhow!("cannot draw the SVG: {e}"))?;
        root.present().map_err(|e| anyhow!("cannot draw the SVG: {e}"))?;
    }
    Ok(s.into_bytes())
}

pub fn lines_png(c: &Chart) -> Result<Vec<u8>> {
    // one drawing: the SVG above, rasterized as the histograms' PNGs are
    rasterize(&lines_svg(c)?)
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, plotters::coord::Shift>, c: &Chart) -> Result<()>
where
    DB::ErrorType: 'static,
{
    if c.series.is_empty() {
        bail!("nothing to draw");
    }
    root.fill(&WHITE)?;
    let all = || c.series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1) = all().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let ys = all().filter_map(|p| p.1).filter(|y| y.is_finite());
    let (mut y0, mut y1) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| (a.min(y), b.max(y)));
    if !x0.is_finite() {
        (x0, x1) = (0.0, 1.0);
    }
    if x0 == x1 {
        (x0, x1) = (x0 - 0.5, x1 + 0.5);
    }
    if !y0.is_finite() {
        (y0, y1) = (0.0, 1.0);
    }
    let pad = if y1 > y0 { (y1 - y0) * 0.08 } else { 0.5_f64.max(y0.abs() * 0.1) };
    let (y0, y1) = (y0 - pad, y1 + pad);
    let mut chart = ChartBuilder::on(root)
        .caption(&c.title, (FONT, 16))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    let labels = c.x_labels.clone();
    let fmt = move |x: &f64| match &labels {
        Some(l) if x.fract() == 0.0 && *x >= 0.0 => l.get(*x as usize).cloned().unwrap_or_default(),
        Some(_) => String::new(),
        None => short(*x),
    };
    let n = c.x_labels.as_ref().map_or(10, |l| l.len().clamp(2, 12));
    chart
        .configure_mesh()
        .x_desc(c.x_desc.as_str())
        .y_desc(c.y_desc.as_str())
        .x_labels(n)
        .y_labels(8)
        .x_label_formatter(&fmt)
        .y_label_formatter(&|y| short(*y))
        .label_style((FONT, 12))
        .axis_desc_style((FONT, 13))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    for (i, s) in c.series.iter().enumerate() {
        let colour = LINE_COLOURS[i % LINE_COLOURS.len()].to_rgba();
        // runs of present values, so a tensor missing at a checkpoint leaves a gap
        let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
        for &(x, y) in &s.points {
            match y.filter(|y| y.is_finite()) {
                Some(y) => runs.last_mut().expect("one run at least").push((x, y)),
                None => runs.push(Vec::new()),
            }
        }
        let mut first = true;
        for run in runs.into_iter().filter(|r| !r.is_empty()) {
            let line = chart.draw_series([PathElement::new(run.clone(), colour.stroke_width(2))])?;
            if first {
                line.label(s.label.as_str())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2)));
                first = false;
            }
            chart.draw_series(run.into_iter().map(|p| Circle::new(p, 3, colour.filled())))?;
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font((FONT, 13))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    Ok(())
}
