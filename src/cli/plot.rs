//! `hpcmap report --plot`: the scaling charts, as one PNG or SVG image.
//!
//! One 1200x900 image with three panels: wall time against ranks (top left)
//! and parallel efficiency against ranks (top right), one line per problem
//! and placement (nodes, threads per rank), both on a log2 rank axis; and the
//! phases of every configuration as stacked bars (bottom), with the median
//! wall time marked on each bar. One image rather than three, so a report
//! is one file to attach.
//!
//! Text is drawn with DejaVu Sans compiled into the binary (the `dejavu`
//! crate) through plotters' `ab_glyph` feature: plotters' default text
//! rendering looks fonts up through fontconfig and freetype, which a fresh
//! machine or CI runner does not have.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use anyhow::{Context, anyhow, bail};
use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use super::outputs::Output;
use super::render::human_seconds;
use super::scaling::{Config, Kind, Report, Series};

/// Image size in pixels (SVG units for `.svg`).
pub const SIZE: (u32, u32) = (1200, 900);

/// Colors of the phases, in the order of [`super::scaling::PhaseTimes::named`].
pub const PHASE_COLORS: [RGBColor; 6] = [
    RGBColor(0x99, 0x99, 0x99),
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0xbb, 0x78),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xbd),
];

/// Colors of the lines: strong contrast on white, unlike most of `Palette99`.
const LINE_COLORS: [RGBColor; 8] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x17, 0xbe, 0xcf),
];

fn line_color(i: usize) -> RGBColor {
    LINE_COLORS[i % LINE_COLORS.len()]
}

/// An axis label in seconds: `human_seconds` without its trailing zeros.
fn axis_seconds(s: &f64) -> String {
    if *s <= 0.0 {
        return "0".to_string();
    }
    let text = human_seconds(*s);
    let (number, unit) = text.split_once(' ').unwrap_or((&text, ""));
    let number = if number.contains('.') {
        number.trim_end_matches('0').trim_end_matches('.')
    } else {
        number
    };
    format!("{number} {unit}")
}

/// The image format, chosen by the file's extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A bitmap, `.png`.
    Png,
    /// A vector image, `.svg`.
    Svg,
}

impl Format {
    /// The format of `path` by its extension (case-insensitive).
    ///
    /// # Errors
    /// When the extension is neither `png` nor `svg`.
    pub fn of(path: &Path) -> anyhow::Result<Format> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("png") => Ok(Format::Png),
            Some("svg") => Ok(Format::Svg),
            _ => bail!(
                "cannot plot to {}: the file name must end in .png or .svg",
                path.display()
            ),
        }
    }
}

/// A picture that can be drawn on any plotters backend.
pub trait Picture {
    /// Its size in pixels (SVG units).
    fn size(&self) -> (u32, u32);

    /// Draws it on `area`.
    ///
    /// # Errors
    /// When drawing fails.
    fn draw<DB: DrawingBackend>(&self, area: DrawingArea<DB, Shift>) -> anyhow::Result<()>;
}

/// Draws `picture` in memory and writes it to `out` (which appears whole
/// at its path, like every output).
///
/// # Errors
/// When drawing fails or the file cannot be written.
pub fn render(picture: &impl Picture, mut out: Output, format: Format) -> anyhow::Result<()> {
    register_fonts()?;
    let (w, h) = picture.size();
    match format {
        Format::Png => {
            let mut rgb = vec![0u8; 3 * w as usize * h as usize];
            picture.draw(BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area())?;
            let mut encoder = png::Encoder::new(out.writer(), w, h);
            encoder.set_color(png::ColorType::Rgb);
            encoder.set_depth(png::BitDepth::Eight);
            encoder.write_header()?.write_image_data(&rgb)?;
        }
        Format::Svg => {
            let mut svg = String::new();
            picture.draw(SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area())?;
            out.writer().write_all(svg.as_bytes())?;
        }
    }
    out.finish()
}

impl Picture for Report {
    fn size(&self) -> (u32, u32) {
        SIZE
    }

    fn draw<DB: DrawingBackend>(&self, area: DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        panels(area, self)
    }
}

/// Draws the three panels of `report` into `path`.
///
/// # Errors
/// When the file cannot be written or drawing fails.
pub fn draw(report: &Report, path: &Path, format: Format) -> anyhow::Result<()> {
    render(report, Output::create(path)?, format)
}

/// Makes DejaVu Sans plotters' "sans-serif" (the family every label uses).
/// Registering again only replaces the entry, so no once-guard is needed.
fn register_fonts() -> anyhow::Result<()> {
    for (style, bytes) in [
        (FontStyle::Normal, dejavu::sans::regular()),
        (FontStyle::Bold, dejavu::sans::bold()),
    ] {
        register_font("sans-serif", style, bytes)
            .map_err(|_| anyhow!("the embedded DejaVu Sans font is unreadable"))?;
    }
    Ok(())
}

/// Plotters' errors carry the backend's error type; text is all we need.
pub fn fail<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("{e}")
}

fn panels<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, report: &Report) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(fail)?;
    let (top, bottom) = root.split_vertically(SIZE.1 / 2);
    let (left, right) = top.split_horizontally(SIZE.0 / 2);
    let lines = lines(report);
    wall_chart(&left, &lines).context("wall-time chart")?;
    efficiency_chart(&right, &lines).context("efficiency chart")?;
    phase_chart(&bottom, &report.configs).context("phase chart")?;
    root.present().map_err(fail)
}

/// One line of the two line charts: a problem at one placement.
struct Line {
    label: String,
    /// Weak-scaling lines are dashed in the efficiency chart.
    weak: bool,
    /// By ranks.
    points: Vec<Point>,
}

/// One configuration on a line.
#[derive(Clone, Copy)]
struct Point {
    ranks: u64,
    wall_s: f64,
    efficiency: f64,
}

impl Point {
    /// Position on the log2 rank axis.
    fn x(&self) -> f64 {
        (self.ranks as f64).log2()
    }
}

/// Splits every series into lines of one placement: nodes and threads per
/// rank fixed, ranks growing.
fn lines(report: &Report) -> Vec<Line> {
    let mut out = Vec::new();
    for series in report.strong.iter().chain(&report.weak) {
        let mut by_placement: BTreeMap<(u64, u64), Vec<Point>> = BTreeMap::new();
        for row in &series.rows {
            let c = &row.config;
            by_placement
                .entry((c.nodes, c.threads))
                .or_default()
                .push(Point {
                    ranks: c.ranks,
                    wall_s: c.wall_s,
                    efficiency: row.efficiency,
                });
        }
        for ((nodes, threads), mut points) in by_placement {
            points.sort_by_key(|p| p.ranks);
            out.push(Line {
                label: line_label(series, nodes, threads),
                weak: series.kind == Kind::Weak,
                points,
            });
        }
    }
    out
}

fn line_label(series: &Series, nodes: u64, threads: u64) -> String {
    let p = &series.problem;
    let what = match series.kind {
        Kind::Strong => format!("{} {}", p.workload, short_count(p.items)),
        Kind::Weak => format!(
            "{} weak {}/core",
            p.workload,
            short_count(series.base().items_per_core().round() as u64)
        ),
    };
    let threads = if threads > 1 {
        format!(" x{threads} thr")
    } else {
        String::new()
    };
    let nodes = if nodes == 1 {
        "1 node".to_string()
    } else {
        format!("{nodes} nodes")
    };
    format!("{what} {}, {nodes}{threads}", p.schedule)
}

/// `20000000` as `20M`: labels must stay short.
fn short_count(n: u64) -> String {
    for (unit, size) in [("G", 1e9), ("M", 1e6), ("k", 1e3)] {
        let v = n as f64 / size;
        if v >= 1.0 {
            return if v.fract() == 0.0 {
                format!("{v}{unit}")
            } else {
                format!("{v:.1}{unit}")
            };
        }
    }
    n.to_string()
}

/// A linear axis with ticks exactly at given points (measured rank counts,
/// bar positions). plotters' `with_key_points` would do, but it drops the
/// label formatter of `f64` axes.
struct TickedAxis {
    range: Range<f64>,
    ticks: Vec<f64>,
}

impl Ranged for TickedAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let fraction = (value - self.range.start) / (self.range.end - self.range.start);
        limit.0 + (fraction * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        // Only bold (labelled) mesh lines: light ones between ranks mean nothing.
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.range.clone()
    }
}

/// The rank axis: log2 positions, ticks at the measured rank counts.
fn rank_axis(lines: &[Line]) -> TickedAxis {
    let mut ticks: Vec<f64> = lines
        .iter()
        .flat_map(|l| l.points.iter().map(Point::x))
        .collect();
    ticks.sort_by(f64::total_cmp);
    ticks.dedup();
    let lo = ticks.first().copied().unwrap_or(0.0);
    let hi = ticks.last().copied().unwrap_or(1.0).max(lo + 1.0);
    let pad = 0.08 * (hi - lo);
    TickedAxis {
        range: lo - pad..hi + pad,
        ticks,
    }
}

fn rank_label(x: &f64) -> String {
    format!("{}", x.exp2().round())
}

/// The font of chart titles.
pub fn caption_font() -> TextStyle<'static> {
    ("sans-serif", 22).into_font().style(FontStyle::Bold).into()
}

fn wall_chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    lines: &[Line],
) -> anyhow::Result<()> {
    let x_axis = rank_axis(lines);
    let walls = lines.iter().flat_map(|l| l.points.iter().map(|p| p.wall_s));
    let lo = walls.clone().fold(f64::INFINITY, f64::min);
    let hi = walls.fold(0.0, f64::max);
    let (lo, hi) = if lo.is_finite() && hi > 0.0 {
        (lo / 1.5, hi * 1.5)
    } else {
        (1e-3, 1.0)
    };
    let mut chart = ChartBuilder::on(area)
        .caption("Wall time (median) against ranks", caption_font())
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d(x_axis, (lo..hi).log_scale())
        .map_err(fail)?;
    chart
        .configure_mesh()
        .x_desc("ranks (log2 scale)")
        .y_desc("wall time (log scale)")
        .x_label_formatter(&rank_label)
        .y_label_formatter(&axis_seconds)
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 15))
        .draw()
        .map_err(fail)?;
    for (i, line) in lines.iter().filter(|l| !l.weak).enumerate() {
        let color = line_color(i);
        let points: Vec<(f64, f64)> = line.points.iter().map(|p| (p.x(), p.wall_s)).collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(fail)?
            .label(&line.label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2)));
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))
            .map_err(fail)?;
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight)
}

fn efficiency_chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    lines: &[Line],
) -> anyhow::Result<()> {
    let x_axis = rank_axis(lines);
    let x_ends = (x_axis.range.start, x_axis.range.end);
    let top = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.efficiency))
        .fold(1.0, f64::max)
        * 1.15;
    let mut chart = ChartBuilder::on(area)
        .caption("Parallel efficiency against ranks", caption_font())
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(x_axis, 0.0..top)
        .map_err(fail)?;
    chart
        .configure_mesh()
        .x_desc("ranks (log2 scale)")
        .y_desc("efficiency (1 = ideal)")
        .x_label_formatter(&rank_label)
        .y_label_formatter(&|y| format!("{y:.1}"))
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 15))
        .draw()
        .map_err(fail)?;
    let ideal = BLACK.mix(0.5);
    chart
        .draw_series(DashedLineSeries::new(
            [(x_ends.0, 1.0), (x_ends.1, 1.0)],
            6,
            4,
            ideal.stroke_width(1),
        ))
        .map_err(fail)?
        .label("ideal")
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], ideal));
    // Strong lines take the same colors as in the wall-time chart.
    let strong = lines.iter().filter(|l| !l.weak);
    let weak = lines.iter().filter(|l| l.weak);
    for (i, line) in strong.chain(weak).enumerate() {
        let color = line_color(i);
        let style = color.stroke_width(2);
        let points: Vec<(f64, f64)> = line.points.iter().map(|p| (p.x(), p.efficiency)).collect();
        let drawn = if line.weak {
            chart.draw_series(DashedLineSeries::new(points.clone(), 8, 5, style))
        } else {
            chart.draw_series(LineSeries::new(points.clone(), style))
        };
        let weak = line.weak;
        drawn
            .map_err(fail)?
            .label(&line.label)
            .legend(move |(x, y)| {
                let len = if weak { 8 } else { 18 };
                PathElement::new([(x, y), (x + len, y)], style)
            });
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))
            .map_err(fail)?;
    }
    legend(&mut chart, SeriesLabelPosition::LowerLeft)
}

fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> anyhow::Result<()> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(fail)
}

fn phase_chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    configs: &[Config],
) -> anyhow::Result<()> {
    let n = configs.len().max(1);
    let tallest = configs
        .iter()
        .map(|c| {
            let stacked: f64 = c.phases.named().iter().map(|p| p.1).sum();
            stacked.max(c.wall_s)
        })
        .fold(0.0, f64::max);
    let top = if tallest > 0.0 { tallest * 1.3 } else { 1.0 };
    // Problems differ only when several are plotted: say which one a bar is.
    let several = configs.windows(2).any(|w| w[0].problem != w[1].problem);
    let labels: Vec<String> = configs
        .iter()
        .map(|c| {
            let shape = format!("{}x{} {}n", c.ranks, c.threads, c.nodes);
            if several {
                format!(
                    "{} {} {}",
                    c.problem.workload,
                    short_count(c.problem.items),
                    shape
                )
            } else {
                shape
            }
        })
        .collect();
    let ticks: Vec<f64> = (0..configs.len()).map(|i| i as f64).collect();
    let mut chart = ChartBuilder::on(area)
        .caption(
            "Where the time went: phases per configuration (ranks x threads, nodes)",
            caption_font(),
        )
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d(
            TickedAxis {
                range: -0.6..n as f64 - 0.4,
                ticks,
            },
            0.0..top,
        )
        .map_err(fail)?;
    // As large as fits under a bar (a glyph is about 0.6 em wide), 8 to 14 px.
    let longest = labels.iter().map(|l| l.chars().count()).max().unwrap_or(1) as f64;
    let label_size = (f64::from(SIZE.0 - 120) / n as f64 / (0.6 * longest)).clamp(8.0, 14.0);
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_desc(if several {
            "configuration (workload items ranks x threads nodes)"
        } else {
            "configuration (ranks x threads, nodes)"
        })
        .y_desc("seconds (compute: slowest rank)")
        .x_label_formatter(&|x| {
            let i = x.round() as usize;
            labels.get(i).cloned().unwrap_or_default()
        })
        .x_label_style(("sans-serif", label_size))
        .y_label_style(("sans-serif", 14))
        .y_label_formatter(&axis_seconds)
        .axis_desc_style(("sans-serif", 15))
        .draw()
        .map_err(fail)?;
    let mut base = vec![0.0; configs.len()];
    for (j, color) in PHASE_COLORS.iter().enumerate() {
        let name = configs
            .first()
            .map_or("", |c| c.phases.named()[j].0)
            .to_string();
        let bars: Vec<Rectangle<(f64, f64)>> = configs
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let v = c.phases.named()[j].1;
                let x = i as f64;
                let bar =
                    Rectangle::new([(x - 0.3, base[i]), (x + 0.3, base[i] + v)], color.filled());
                base[i] += v;
                bar
            })
            .collect();
        let color = *color;
        chart
            .draw_series(bars)
            .map_err(fail)?
            .label(name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled()));
    }
    // The phases overlap (the root computes while it waits), so their stack
    // is not the wall time: mark the wall time itself.
    chart
        .draw_series(configs.iter().enumerate().map(|(i, c)| {
            let x = i as f64;
            PathElement::new(
                [(x - 0.4, c.wall_s), (x + 0.4, c.wall_s)],
                BLACK.stroke_width(3),
            )
        }))
        .map_err(fail)?
        .label("wall (median)")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 14, y)], BLACK.stroke_width(3)));
    legend(&mut chart, SeriesLabelPosition::UpperRight)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::scaling::{PhaseTimes, Problem};

    fn config(items: u64, ranks: u64, nodes: u64, wall_s: f64) -> Config {
        Config {
            problem: Problem {
                workload: "primes".into(),
                items,
                schedule: "static".into(),
            },
            ranks,
            threads: 1,
            nodes,
            runs: 2,
            wall_s,
            phases: PhaseTimes {
                serialize: 0.02 * wall_s,
                scatter: 0.05 * wall_s,
                compute_max: 0.8 * wall_s,
                wait: 0.05 * wall_s,
                gather: 0.05 * wall_s,
                assemble: 0.03 * wall_s,
            },
        }
    }

    fn report() -> Report {
        Report::new(vec![
            config(1000, 1, 1, 8.0),
            config(1000, 2, 1, 4.4),
            config(1000, 4, 1, 2.5),
            config(1000, 2, 2, 4.8),
            config(1000, 4, 2, 2.9),
            config(2000, 2, 1, 8.5),
        ])
    }

    /// A directory of the test's own: tests run in parallel.
    fn temp_dir(test: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("hpcmap-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn png_has_the_expected_size() {
        let path = temp_dir("png").join("report.png");
        draw(&report(), &path, Format::Png).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&bytes[12..16], b"IHDR");
        let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
        let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
        assert_eq!((width, height), SIZE);
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn svg_is_complete_and_has_text() {
        let path = temp_dir("svg").join("report.svg");
        draw(&report(), &path, Format::Svg).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg") || svg.starts_with("<?xml"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("Parallel efficiency against ranks"));
        assert!(svg.contains("primes 1k static, 2 nodes"));
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn format_follows_the_extension() {
        assert_eq!(Format::of(Path::new("a.PNG")).unwrap(), Format::Png);
        assert_eq!(Format::of(Path::new("a.svg")).unwrap(), Format::Svg);
        let err = Format::of(Path::new("a.pdf")).unwrap_err().to_string();
        assert!(err.contains(".png or .svg"), "{err}");
        assert!(Format::of(Path::new("noext")).is_err());
    }

    #[test]
    fn axis_seconds_drop_trailing_zeros() {
        assert_eq!(axis_seconds(&0.0), "0");
        assert_eq!(axis_seconds(&0.06), "60 ms");
        assert_eq!(axis_seconds(&0.0125), "12.5 ms");
        assert_eq!(axis_seconds(&2.0), "2 s");
    }

    #[test]
    fn counts_are_shortened() {
        assert_eq!(short_count(20_000_000), "20M");
        assert_eq!(short_count(2_500), "2.5k");
        assert_eq!(short_count(999), "999");
    }
}
