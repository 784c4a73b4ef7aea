//! Charts for `trainer report`, drawn with plotters into an RGB buffer and encoded as PNG.
//! Text uses the font embedded from `assets/` (a DejaVu Sans subset) through plotters'
//! `ab_glyph` feature, so no system font, fontconfig or network is needed.

use std::sync::OnceLock;

use anyhow::{Context, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;

/// A file name made of the lowercase letters and digits of `name`.
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches('-').to_string();
    if out.is_empty() { "group".into() } else { out }
}

/// A written chart: file name and bytes.
pub type Chart = (String, Vec<u8>);

/// The embedded font (DejaVu Sans subset; licence in `assets/LICENSE-DejaVu.txt`).
static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans-subset.ttf");
/// The family name charts ask for.
const FAMILY: &str = "sans-serif";

/// Size of the learning-curves chart (two panels).
pub const LEARNING_CURVES_SIZE: (u32, u32) = (1400, 520);
/// Size of the metrics bar chart.
pub const METRICS_SIZE: (u32, u32) = (1200, 520);
/// Size of a distillation-weights chart.
pub const WEIGHTS_SIZE: (u32, u32) = (900, 520);
/// Size of the latency histogram chart.
pub const LATENCY_SIZE: (u32, u32) = (1200, 520);
/// Size of a sweep chart (two panels: MAP and Prec@10).
pub const SWEEP_SIZE: (u32, u32) = (1400, 520);

/// Series colours (colour-blind friendly order of the usual categorical palette).
const COLOURS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// The colour of series `i`.
pub fn colour(i: usize) -> RGBColor {
    COLOURS[i % COLOURS.len()]
}

fn register_font() -> anyhow::Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED
        .get_or_init(|| plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    if ok {
        Ok(())
    } else {
        Err(anyhow!("the embedded chart font could not be loaded"))
    }
}

/// Converts a plotters error (not `Send + Sync`) into an `anyhow` error.
fn drawing<T, E: std::fmt::Debug>(result: Result<T, E>) -> anyhow::Result<T> {
    result.map_err(|e| anyhow!("drawing a chart: {e:?}"))
}

/// Draws with `draw` on a white `size` canvas and returns the PNG bytes.
fn render(
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> anyhow::Result<()>,
) -> anyhow::Result<Vec<u8>> {
    register_font()?;
    let (w, h) = size;
    let mut rgb = vec![255u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
        drawing(root.fill(&WHITE))?;
        draw(&root)?;
        drawing(root.present())?;
    }
    encode_png(&rgb, w, h)
}

/// Encodes an RGB8 buffer as PNG.
pub fn encode_png(rgb: &[u8], width: u32, height: u32) -> anyhow::Result<Vec<u8>> {
    let mut png = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut png, width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().context("PNG header")?;
        writer.write_image_data(rgb).context("PNG data")?;
        writer.finish().context("PNG end")?;
    }
    Ok(png)
}

/// A named line of points.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// Points (x, y), in x order.
    pub points: Vec<(f64, f64)>,
    /// Error of each point (e.g. a standard deviation), drawn as a vertical bar y ± error;
    /// empty, or 0 for a point: no bar.
    pub errors: Vec<f64>,
    /// Colour index (see [`colour`]).
    pub colour: usize,
}

/// One panel of line charts.
#[derive(Debug, Clone)]
pub struct LinePanel {
    /// Caption.
    pub title: String,
    /// X axis description.
    pub x_label: String,
    /// Y axis description.
    pub y_label: String,
    /// The lines.
    pub series: Vec<Series>,
    /// The x values are whole numbers (epochs, positions): label them without decimals.
    pub integer_x: bool,
    /// Start the y axis at 0 (for values that cannot be negative).
    pub y_from_zero: bool,
    /// Put the legend in the lower right corner (for rising curves) instead of the upper right.
    pub legend_below: bool,
}

/// The range of `values` with a margin; a degenerate range is widened.
fn padded(values: impl Iterator<Item = f64>, floor_zero: bool) -> (f64, f64) {
    let (mut lo, mut hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if floor_zero {
        lo = lo.min(0.0);
    }
    let span = hi - lo;
    let pad = if span > 0.0 {
        span * 0.08
    } else {
        hi.abs().max(1.0) * 0.1
    };
    if !floor_zero || lo < 0.0 {
        lo -= pad;
    }
    hi += pad;
    (lo, hi)
}

fn draw_lines(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    panel: &LinePanel,
) -> anyhow::Result<()> {
    let points = || panel.series.iter().flat_map(|s| s.points.iter());
    // The y range covers the error bars.
    let spans = || {
        panel.series.iter().flat_map(|s| {
            s.points
                .iter()
                .zip(s.errors.iter().chain(std::iter::repeat(&0.0)))
                .flat_map(|(p, e)| [p.1 - e.abs(), p.1 + e.abs()])
        })
    };
    let (x0, x1) = padded(points().map(|p| p.0), false);
    let (y0, y1) = padded(spans(), panel.y_from_zero);
    let mut chart = drawing(
        ChartBuilder::on(area)
            .caption(&panel.title, (FAMILY, 22))
            .margin(14)
            .x_label_area_size(46)
            .y_label_area_size(72)
            .build_cartesian_2d(x0..x1, y0..y1),
    )?;
    let integer_x = panel.integer_x;
    let x_format = move |x: &f64| {
        if !integer_x {
            short(*x)
        } else if (x - x.round()).abs() < 1e-9 {
            // Only whole numbers get a label.
            format!("{x:.0}")
        } else {
            String::new()
        }
    };
    drawing(
        chart
            .configure_mesh()
            .x_label_formatter(&x_format)
            .y_label_formatter(&|y: &f64| short(*y))
            .x_desc(panel.x_label.as_str())
            .y_desc(panel.y_label.as_str())
            .label_style((FAMILY, 14))
            .axis_desc_style((FAMILY, 16))
            .light_line_style(RGBColor(235, 235, 235))
            .draw(),
    )?;
    for series in &panel.series {
        let c = colour(series.colour);
        drawing(chart.draw_series(LineSeries::new(
            series.points.iter().copied(),
            c.stroke_width(2),
        )))?
        .label(series.name.as_str())
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 22, y)], c.stroke_width(3)));
        drawing(chart.draw_series(series.points.iter().map(|&p| Circle::new(p, 3, c.filled()))))?;
        drawing(
            chart.draw_series(
                series
                    .points
                    .iter()
                    .zip(&series.errors)
                    .filter(|(_, e)| e.is_finite() && **e > 0.0)
                    .map(|(&(x, y), &e)| {
                        ErrorBar::new_vertical(x, y - e, y, y + e, c.stroke_width(1), 8)
                    }),
            ),
        )?;
    }
    if panel.series.iter().any(|s| !s.points.is_empty()) {
        drawing(
            chart
                .configure_series_labels()
                .label_font((FAMILY, 14))
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(180, 180, 180))
                .position(if panel.legend_below {
                    SeriesLabelPosition::LowerRight
                } else {
                    SeriesLabelPosition::UpperRight
                })
                .draw(),
        )?;
    }
    Ok(())
}

/// A tick label with as few digits as the value needs (0.05, 0.1, 2, 80).
fn short(v: f64) -> String {
    let text = format!("{v:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.to_string()
    }
}

/// Line-chart panels side by side on one `size` image.
pub fn line_panels(panels: &[LinePanel], size: (u32, u32)) -> anyhow::Result<Vec<u8>> {
    render(size, |root| {
        let areas = root.split_evenly((1, panels.len().max(1)));
        for (area, panel) in areas.iter().zip(panels) {
            draw_lines(area, panel)?;
        }
        Ok(())
    })
}

/// The bars of one group in a grouped bar chart.
#[derive(Debug, Clone)]
pub struct BarGroup {
    /// Legend text.
    pub name: String,
    /// One value per category.
    pub values: Vec<f64>,
    /// One error (e.g. a standard deviation) per category; 0 draws no error bar.
    pub errors: Vec<f64>,
}

/// A grouped bar chart: for every category, one bar per group, with error bars.
pub fn grouped_bars(
    title: &str,
    y_label: &str,
    categories: &[String],
    groups: &[BarGroup],
    size: (u32, u32),
) -> anyhow::Result<Vec<u8>> {
    let n = categories.len().max(1);
    let top = groups
        .iter()
        .flat_map(|g| g.values.iter().zip(&g.errors).map(|(v, e)| v + e))
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    // Headroom above the bars for the legend: about 20 px per group out of the plot height.
    let legend =
        ((groups.len() as f64 * 20.0 + 30.0) / (size.1 as f64 - 130.0).max(100.0)).min(0.6);
    let top = if top > 0.0 { top / (1.0 - legend) } else { 1.0 };
    render(size, |root| {
        let mut chart = drawing(
            ChartBuilder::on(root)
                .caption(title, (FAMILY, 22))
                .margin(14)
                .x_label_area_size(46)
                .y_label_area_size(72)
                .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0.0..top),
        )?;
        let names = categories.to_vec();
        let label = move |x: &f64| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 {
                names.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        };
        drawing(
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(n + 1)
                .x_label_formatter(&label)
                .y_label_formatter(&|y| short(*y))
                .y_desc(y_label)
                .label_style((FAMILY, 14))
                .axis_desc_style((FAMILY, 16))
                .light_line_style(RGBColor(235, 235, 235))
                .draw(),
        )?;
        let width = 0.8 / groups.len().max(1) as f64;
        for (g, group) in groups.iter().enumerate() {
            let c = colour(g);
            let left = |i: usize| i as f64 - 0.4 + g as f64 * width;
            drawing(
                chart.draw_series(group.values.iter().enumerate().map(|(i, &v)| {
                    Rectangle::new(
                        [(left(i) + 0.01, 0.0), (left(i) + width - 0.01, v)],
                        c.filled(),
                    )
                })),
            )?
            .label(group.name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 16, y + 6)], c.filled()));
            drawing(
                chart.draw_series(
                    group
                        .values
                        .iter()
                        .zip(&group.errors)
                        .enumerate()
                        .filter(|(_, (_, e))| **e > 0.0)
                        .map(|(i, (&v, &e))| {
                            ErrorBar::new_vertical(
                                left(i) + width / 2.0,
                                v - e,
                                v,
                                v + e,
                                BLACK.stroke_width(1),
                                6,
                            )
                        }),
                ),
            )?;
        }
        drawing(
            chart
                .configure_series_labels()
                .label_font((FAMILY, 14))
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(180, 180, 180))
                .position(SeriesLabelPosition::UpperLeft)
                .draw(),
        )?;
        Ok(())
    })
}

/// One histogram: buckets `(lo, hi, share in %)` on a log x axis.
#[derive(Debug, Clone)]
pub struct HistogramSeries {
    /// Legend text.
    pub name: String,
    /// Buckets (lo, hi, percent of the requests), lo > 0.
    pub buckets: Vec<(f64, f64, f64)>,
}

/// Overlaid histograms with a logarithmic x axis (e.g. latencies of two services).
pub fn log_histograms(
    title: &str,
    x_label: &str,
    series: &[HistogramSeries],
    size: (u32, u32),
) -> anyhow::Result<Vec<u8>> {
    let edges = || series.iter().flat_map(|s| s.buckets.iter());
    let lo = edges()
        .map(|b| b.0)
        .filter(|&x| x > 0.0)
        .fold(f64::INFINITY, f64::min);
    let hi = edges().map(|b| b.1).fold(0.0f64, f64::max);
    let (lo, hi) = if lo.is_finite() && hi > lo {
        (lo / 1.5, hi * 1.5)
    } else {
        (0.01, 100.0)
    };
    let top = edges().map(|b| b.2).fold(0.0f64, f64::max).max(1e-9) * 1.15;
    render(size, |root| {
        let mut chart = drawing(
            ChartBuilder::on(root)
                .caption(title, (FAMILY, 22))
                .margin(14)
                .x_label_area_size(46)
                .y_label_area_size(72)
                .build_cartesian_2d((lo..hi).log_scale(), 0.0..top),
        )?;
        drawing(
            chart
                .configure_mesh()
                .x_desc(x_label)
                .y_desc("share of requests (%)")
                .x_labels(12)
                .x_label_formatter(&|x| short(*x))
                .y_label_formatter(&|y| short(*y))
                .label_style((FAMILY, 14))
                .axis_desc_style((FAMILY, 16))
                .light_line_style(RGBColor(235, 235, 235))
                .draw(),
        )?;
        for (i, s) in series.iter().enumerate() {
            let c = colour(i);
            // Empty buckets are not drawn.
            let drawn = || s.buckets.iter().filter(|b| b.0 > 0.0 && b.2 > 0.0);
            drawing(chart.draw_series(drawn().map(|&(lo, hi, share)| {
                Rectangle::new([(lo, 0.0), (hi, share)], c.mix(0.45).filled())
            })))?
            .label(s.name.as_str())
            .legend(move |(x, y)| {
                Rectangle::new([(x, y - 6), (x + 16, y + 6)], c.mix(0.6).filled())
            });
            drawing(chart.draw_series(drawn().map(|&(lo, hi, share)| {
                PathElement::new(vec![(lo, share), (hi, share)], c.stroke_width(2))
            })))?;
        }
        drawing(
            chart
                .configure_series_labels()
                .label_font((FAMILY, 14))
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(180, 180, 180))
                .position(SeriesLabelPosition::UpperRight)
                .draw(),
        )?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slug_syntax() {
        assert_eq!(slug("student + RD"), "student-rd");
        assert_eq!(slug("++"), "group");
    }

    fn decode(png: &[u8]) -> (u32, u32, Vec<u8>) {
        let decoder = png::Decoder::new(std::io::Cursor::new(png));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        buf.truncate(info.buffer_size());
        (info.width, info.height, buf)
    }

    /// Pixels that are neither white nor one of the series colours (anti-aliased text and
    /// axes are grey).
    fn dark_pixels(rgb: &[u8]) -> usize {
        rgb.chunks_exact(3)
            .filter(|p| p[0] < 100 && p[1] < 100 && p[2] < 100)
            .count()
    }

    #[test]
    fn tick_labels_are_short() {
        assert_eq!(short(0.05), "0.05");
        assert_eq!(short(0.1), "0.1");
        assert_eq!(short(2.0), "2");
        assert_eq!(short(80.0), "80");
        assert_eq!(short(-0.0), "0");
    }

    #[test]
    fn charts_are_pngs_of_their_size_with_text() {
        let panel = |title: &str| LinePanel {
            title: title.into(),
            x_label: "epoch".into(),
            y_label: "loss".into(),
            series: vec![Series {
                name: "teacher".into(),
                points: vec![(1.0, 0.9), (2.0, 0.5), (3.0, 0.4)],
                errors: vec![0.05, 0.0, 0.02],
                colour: 0,
            }],
            integer_x: true,
            y_from_zero: false,
            legend_below: false,
        };
        let png = line_panels(&[panel("a"), panel("b")], (600, 300)).unwrap();
        let (w, h, rgb) = decode(&png);
        assert_eq!((w, h), (600, 300));
        assert!(dark_pixels(&rgb) > 500, "axes and text are drawn");

        // The same chart without any caption, axis or legend text has fewer dark pixels:
        // the text is really rendered by the embedded font.
        let untitled = LinePanel {
            title: String::new(),
            x_label: String::new(),
            y_label: String::new(),
            series: vec![Series {
                name: String::new(),
                ..panel("").series[0].clone()
            }],
            ..panel("")
        };
        let (_, _, bare) = decode(&line_panels(&[untitled.clone(), untitled], (600, 300)).unwrap());
        assert!(
            dark_pixels(&rgb) > dark_pixels(&bare) + 200,
            "{} vs {}",
            dark_pixels(&rgb),
            dark_pixels(&bare)
        );

        let bars = grouped_bars(
            "metrics",
            "value",
            &["Prec@10".into(), "MAP".into()],
            &[BarGroup {
                name: "x".into(),
                values: vec![0.2, 0.1],
                errors: vec![0.01, 0.0],
            }],
            (400, 200),
        )
        .unwrap();
        assert_eq!(decode(&bars).0, 400);
        let hist = log_histograms(
            "latency",
            "ms",
            &[HistogramSeries {
                name: "s".into(),
                buckets: vec![(0.1, 0.2, 40.0), (0.2, 0.5, 60.0)],
            }],
            (300, 200),
        )
        .unwrap();
        assert_eq!(decode(&hist).1, 200);
    }
}
