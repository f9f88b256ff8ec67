//! `--timeline FILE`: where the time of a run went, rank by rank and
//! thread by thread, from the spans the map recorded ([`crate::trace`]).
//!
//! `.json` is the Chrome trace event format (Perfetto, `chrome://tracing`):
//! one process per rank, one thread per lane, a complete event per span
//! with its item range in the arguments, and the run's facts in
//! `otherData` so that `hpcmap report FILE.json --plot` can draw it again.
//! `.svg` and `.png` are drawn directly (`draw`).

mod chrome;
mod draw;

use std::path::Path;

use anyhow::bail;
use serde::{Deserialize, Serialize};

use crate::cli::outputs::Output;
use crate::cli::plot;
use crate::stats::MapStats;
use crate::trace::Trace;

pub use chrome::read;

/// What a timeline says about its run besides the spans.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Facts {
    /// The workload or command.
    pub job: String,
    /// The schedule.
    pub schedule: String,
    /// Items mapped.
    pub items: u64,
    /// Compute threads per rank.
    pub threads: u64,
    /// Each rank's host.
    pub hosts: Vec<String>,
    /// The map's wall time on the root, seconds.
    pub wall_s: f64,
    /// Each rank's compute time as the report gives it, seconds.
    pub compute_s: Vec<f64>,
}

impl Facts {
    /// The facts of a finished map.
    pub fn of(job: &str, stats: &MapStats, hosts: &[String]) -> Facts {
        Facts {
            job: job.to_string(),
            schedule: stats.schedule.clone(),
            items: stats.items,
            threads: stats.threads,
            hosts: hosts.to_vec(),
            wall_s: stats.wall_s,
            compute_s: stats.per_rank.iter().map(|r| r.compute_s).collect(),
        }
    }

    /// Distinct hosts.
    pub fn nodes(&self) -> usize {
        let mut hosts = self.hosts.clone();
        hosts.sort();
        hosts.dedup();
        hosts.len()
    }
}

/// A timeline's file format, by its extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Chrome trace events.
    Json,
    /// A picture.
    Image(plot::Format),
}

impl Format {
    /// The format of `path`.
    ///
    /// # Errors
    /// When the extension is none of `.json`, `.svg`, `.png`.
    pub fn of(path: &Path) -> anyhow::Result<Format> {
        let json = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        match plot::Format::of(path) {
            _ if json => Ok(Format::Json),
            Ok(image) => Ok(Format::Image(image)),
            Err(_) => bail!(
                "cannot write a timeline to {}: the file name must end in .json (Chrome trace events), .svg or .png",
                path.display()
            ),
        }
    }
}

/// A timeline file, opened before the map (so a bad path fails at once)
/// and written after it.
pub struct TimelineFile {
    out: Output,
    format: Format,
}

impl TimelineFile {
    /// Opens `path` in the format its extension names.
    ///
    /// # Errors
    /// When the extension is unknown or the file cannot be created.
    pub fn create(path: &Path) -> anyhow::Result<TimelineFile> {
        let format = Format::of(path)?;
        Ok(TimelineFile {
            out: Output::create(path)?,
            format,
        })
    }

    /// Writes `trace`.
    ///
    /// # Errors
    /// When the file cannot be written or drawn.
    pub fn write(self, trace: &Trace, facts: &Facts) -> anyhow::Result<()> {
        match self.format {
            Format::Json => chrome::write(self.out, trace, facts),
            Format::Image(format) => {
                plot::render(&draw::Timeline::new(trace, facts), self.out, format)
            }
        }
    }
}

/// Draws the timeline in `json` (from `--timeline FILE.json`) into `image`.
///
/// # Errors
/// When the file is not a timeline or the image cannot be written.
pub fn redraw(json: &Path, image: &Path) -> anyhow::Result<()> {
    let format = plot::Format::of(image)?;
    let out = Output::create(image)?;
    let (trace, facts) = read(json)?;
    plot::render(&draw::Timeline::new(&trace, &facts), out, format)
}

/// Whether `path` holds a timeline (rather than run records).
pub fn is_timeline(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 64];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .unwrap_or(0);
    String::from_utf8_lossy(&head[..n]).contains(chrome::MARK)
}
