//! The timeline as a picture: one row per rank and lane, time across, each
//! pixel column colored by the phase that took most of its time there (so
//! a million spans draw as fast, and as truthfully, as a hundred).

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use super::Facts;
use crate::cli::plot::{PHASE_COLORS, Picture, caption_font, fail};
use crate::cli::render::human_seconds;
use crate::trace::{LANE_MPI, Phase, Trace, lane_name};

/// Width of the picture in pixels.
pub const WIDTH: u32 = 1200;
/// Above the rows: title and legend.
const TOP: u32 = 84;
/// Height of a row.
const ROW: u32 = 22;
/// Below the rows: the time axis.
const BOTTOM: u32 = 56;
/// Left of the rows: their names.
const LABELS: u32 = 170;
/// Rows drawn at most (the rest are named in the title).
pub const MAX_ROWS: usize = 48;
/// A pixel column is drawn when at least this share of it is covered.
const COVERED: f64 = 0.3;

/// The height of a picture of `rows` rows.
pub fn height(rows: usize) -> u32 {
    TOP + ROW * rows.clamp(1, MAX_ROWS) as u32 + BOTTOM
}

/// A phase's color, matching the phases of `report --plot`.
fn color(phase: Phase) -> RGBColor {
    match phase {
        Phase::Serialize => PHASE_COLORS[0],
        Phase::Send => PHASE_COLORS[1],
        Phase::Compute => PHASE_COLORS[2],
        Phase::Wait => PHASE_COLORS[3],
        Phase::Receive => PHASE_COLORS[4],
        Phase::Assemble => PHASE_COLORS[5],
    }
}

/// One run's timeline, ready to draw.
pub struct Timeline<'a> {
    trace: &'a Trace,
    facts: &'a Facts,
    rows: Vec<(u32, u32)>,
    end: f64,
}

impl<'a> Timeline<'a> {
    /// The timeline of `trace`.
    pub fn new(trace: &'a Trace, facts: &'a Facts) -> Timeline<'a> {
        let end = trace.end().max(facts.wall_s).max(1e-6);
        Timeline {
            trace,
            facts,
            rows: trace.lanes(),
            end,
        }
    }

    fn title(&self) -> String {
        let ranks = self.facts.hosts.len().max(1);
        let nodes = self.facts.nodes().max(1);
        format!(
            "{}: {}, {ranks} rank{} x {} thread{} on {nodes} node{}, {} items in {}",
            self.facts.job,
            self.facts.schedule,
            if ranks == 1 { "" } else { "s" },
            self.facts.threads,
            if self.facts.threads == 1 { "" } else { "s" },
            if nodes == 1 { "" } else { "s" },
            self.facts.items,
            human_seconds(self.facts.wall_s),
        )
    }

    /// Each pixel column's dominant phase on `row`, as runs of columns.
    fn runs(&self, row: (u32, u32), columns: usize) -> Vec<(usize, usize, Phase)> {
        let width = self.end / columns as f64;
        let mut time = vec![[0.0f64; 6]; columns];
        for s in self.trace.spans.iter().filter(|s| (s.rank, s.lane) == row) {
            let (a, b) = (s.start.max(0.0), s.end.min(self.end));
            let mut c = ((a / width) as usize).min(columns - 1);
            while c < columns && (c as f64) * width < b {
                let (lo, hi) = (c as f64 * width, (c + 1) as f64 * width);
                time[c][s.phase as usize] += b.min(hi) - a.max(lo);
                c += 1;
            }
        }
        let mut runs: Vec<(usize, usize, Phase)> = Vec::new();
        for (c, t) in time.iter().enumerate() {
            if t.iter().sum::<f64>() < COVERED * width {
                continue;
            }
            let (k, _) =
                t.iter().enumerate().fold(
                    (0, -1.0),
                    |best, (k, &v)| if v > best.1 { (k, v) } else { best },
                );
            let phase = Phase::ALL[k];
            match runs.last_mut() {
                Some(last) if last.1 == c && last.2 == phase => last.1 = c + 1,
                _ => runs.push((c, c + 1, phase)),
            }
        }
        runs
    }
}

impl Picture for Timeline<'_> {
    fn size(&self) -> (u32, u32) {
        (WIDTH, height(self.rows.len()))
    }

    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        root.fill(&WHITE).map_err(fail)?;
        let shown = &self.rows[..self.rows.len().min(MAX_ROWS)];
        let mut title = self.title();
        if shown.len() < self.rows.len() {
            title += &format!(" (first {MAX_ROWS} of {} lanes)", self.rows.len());
        }
        root.draw_text(&title, &caption_font().into_text_style(&root), (12, 8))
            .map_err(fail)?;
        // The legend, one swatch per phase.
        let font = ("sans-serif", 15).into_font();
        for (i, phase) in Phase::ALL.into_iter().enumerate() {
            let x = LABELS as i32 + 130 * i as i32;
            root.draw(&Rectangle::new(
                [(x, 44), (x + 18, 60)],
                color(phase).filled(),
            ))
            .map_err(fail)?;
            root.draw_text(
                phase.name(),
                &font.clone().into_text_style(&root),
                (x + 24, 45),
            )
            .map_err(fail)?;
        }
        let rows = shown.len().max(1) as f64;
        let (w, _) = root.dim_in_pixel();
        let area = root.margin(TOP, 0, 0, 12);
        let mut chart = ChartBuilder::on(&area)
            .x_label_area_size(BOTTOM - 10)
            .y_label_area_size(LABELS - 12)
            .build_cartesian_2d(0.0..self.end, rows..0.0)
            .map_err(fail)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .disable_y_axis()
            .light_line_style(TRANSPARENT)
            .x_desc("seconds since the map started")
            .x_label_formatter(&|s| format!("{s:.3}"))
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(fail)?;
        let columns = (w - LABELS - 12).max(1) as usize;
        for (i, &row) in shown.iter().enumerate() {
            let y = i as f64;
            for (a, b, phase) in self.runs(row, columns) {
                let x = |c: usize| c as f64 * self.end / columns as f64;
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(x(a), y + 0.12), (x(b), y + 0.88)],
                        color(phase).filled(),
                    )))
                    .map_err(fail)?;
            }
            let (rank, lane) = row;
            let label = if lane == LANE_MPI {
                format!("rank {rank} {}", lane_name(lane))
            } else {
                format!("  {}", lane_name(lane))
            };
            let (_, py) = chart.backend_coord(&(0.0, y + 0.5));
            let style = ("sans-serif", 14)
                .into_font()
                .style(if lane == LANE_MPI {
                    FontStyle::Bold
                } else {
                    FontStyle::Normal
                })
                .into_text_style(&root)
                .pos(plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Left,
                    plotters::style::text_anchor::VPos::Center,
                ));
            root.draw_text(&label, &style, (12, py)).map_err(fail)?;
        }
        root.present().map_err(fail)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::Span;

    fn span(lane: u32, phase: Phase, start: f64, end: f64) -> Span {
        Span {
            rank: 0,
            lane,
            phase,
            start,
            end,
            first: 0,
            count: 1,
        }
    }

    #[test]
    fn each_column_takes_its_dominant_phase() {
        let trace = Trace {
            spans: vec![
                span(0, Phase::Compute, 0.0, 0.6),
                span(0, Phase::Wait, 0.6, 0.65),
                span(0, Phase::Send, 0.65, 0.66), // too small for a column
                span(0, Phase::Wait, 0.66, 1.0),
            ],
            resolution: vec![50e-6],
        };
        let facts = Facts {
            wall_s: 1.0,
            ..Facts::default()
        };
        let t = Timeline::new(&trace, &facts);
        let runs = t.runs((0, 0), 10);
        assert_eq!(runs, [(0, 6, Phase::Compute), (6, 10, Phase::Wait)]);
        // A lane with one short span: columns under 30% covered stay blank.
        let trace = Trace {
            spans: vec![span(0, Phase::Compute, 0.0, 0.02)],
            resolution: vec![50e-6],
        };
        assert!(Timeline::new(&trace, &facts).runs((0, 0), 10).is_empty());
    }
}
