//! The options every map of the command takes (`run`, `exec`, `pipe`), and
//! their check into [`Settings`] before any MPI work starts.

use std::path::{Path, PathBuf};

use clap::Args;
use clap::builder::TypedValueParser;

use crate::cli::deadline::{self, Deadline};
use crate::cli::follow::ProgressMode;
use crate::cli::netmodel::Models;
use crate::cli::outputs::check_distinct;
use crate::{MapOptions, OnError, Order, Schedule};

/// `--schedule`: the possible values are listed in `--help`.
pub fn schedule_parser() -> impl TypedValueParser<Value = Schedule> {
    clap::builder::PossibleValuesParser::new(Schedule::ALL.map(Schedule::name))
        .map(|s| s.parse::<Schedule>().expect("a listed schedule"))
}

/// Options shared by `run`, `exec` and `pipe`.
#[derive(Clone, Debug, Args)]
pub struct MapArgs {
    /// How items reach ranks: static (one Scatterv, no balancing), dynamic
    /// (chunks on demand), guided (chunks shrink as work runs out)
    /// [default: run: static; exec: dynamic; pipe: guided].
    #[arg(long, global = true, value_parser = schedule_parser())]
    pub schedule: Option<Schedule>,

    /// Items per chunk [default: static: one block per rank; dynamic: items /
    /// (8 x ranks), for exec --threads; guided: the smallest chunk, 1, for
    /// pipe --threads].
    #[arg(long, global = true, value_parser = clap::value_parser!(u64).range(1..))]
    pub chunk: Option<u64>,

    /// What a failed item does: abort (end the run cleanly, exit 3), skip
    /// (leave it out and go on, exit 4), or retry=N (try it up to N more
    /// times, N <= 100, then abort).
    #[arg(long, global = true, value_name = "POLICY", default_value = "abort")]
    pub on_error: OnError,

    /// Compute threads per rank (MPI stays on one thread): ranks x threads
    /// cores; for exec and pipe, commands or workers at once per rank.
    #[arg(long, global = true, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: u16,

    /// Append the run's record as one JSON line to FILE (root only).
    #[arg(long, global = true, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Print only the answer line.
    #[arg(long, short, global = true)]
    pub quiet: bool,

    /// The ordered results to FILE (run: JSON lines `[index, result]`; exec,
    /// pipe: what standard output would get), written to a temporary and
    /// renamed into place when complete.
    #[arg(long, global = true, value_name = "FILE")]
    pub results: Option<PathBuf>,

    /// Journal completed chunks in DIR as they arrive, so that a killed or
    /// interrupted run can be finished with --resume.
    #[arg(long, global = true, value_name = "DIR")]
    pub journal: Option<PathBuf>,

    /// Continue the run journaled in --journal DIR: only the items it lacks
    /// are mapped; answer, checksum and outputs equal an uninterrupted run's.
    #[arg(long, global = true, requires = "journal")]
    pub resume: bool,

    /// Take results as they complete instead of in input order (no reorder
    /// buffer on the root); the answer and checksum are the same.
    #[arg(long, global = true)]
    pub unordered: bool,

    /// Explain communication with the fits in this network model file
    /// (`hpcmap bench pingpong` saves them, keyed by hosts) [default:
    /// $HPCMAP_NETWORK, else ~/.cache/hpcmap/network.json, if present].
    #[arg(long, global = true, value_name = "FILE")]
    pub network: Option<PathBuf>,

    /// Map only part I of K contiguous parts of the input (1-based), e.g. for job arrays.
    #[arg(long, global = true, value_name = "I/K", value_parser = parse_part)]
    pub part: Option<Part>,

    /// End well before the allocation does: hand out no work that cannot
    /// finish by then, journal what is done, exit 75 (resume with
    /// --resume). TIME is `auto` (ask Slurm or PBS how long the job has
    /// left), `+DURATION` (+90m), `@EPOCH` or `YYYY-MM-DDTHH:MM[:SS]`.
    #[arg(long, global = true, value_name = "TIME", value_parser = deadline::parse)]
    pub deadline: Option<Deadline>,

    /// Show progress on stderr (root): `bar` (redrawn in place, cleared at
    /// the end), `lines` (one line per --progress-interval and a last one
    /// as the map ends, for job output files) or `none`; `--progress` alone is `bar` [default: a bar when
    /// stderr, or mpirun's, is a terminal; lines in a Slurm or PBS batch
    /// job; else none; none with --quiet].
    #[arg(long, global = true, value_name = "MODE", num_args = 0..=1, default_missing_value = "bar",
          require_equals = true, value_parser = parse_progress)]
    pub progress: Option<ProgressMode>,

    /// Seconds between progress lines.
    #[arg(long, global = true, value_name = "SECS", default_value_t = 30.0,
          value_parser = parse_interval)]
    pub progress_interval: f64,

    /// Keep FILE a JSON document of the run's state (items done and failed,
    /// rate, ETA, per-rank items and idle time, the journal), rewritten
    /// whole every 2 s and at the end ("state": running, then done, skipped, interrupted or failed).
    #[arg(long, global = true, value_name = "FILE")]
    pub status: Option<PathBuf>,

    /// Record where each rank's time went (compute per chunk and thread,
    /// serialize, send, receive, assemble, wait) and write it to FILE:
    /// .json (Chrome trace events: Perfetto, chrome://tracing; `hpcmap
    /// report FILE.json --plot X.png` draws it), .svg or .png (drawn).
    #[arg(long, global = true, value_name = "FILE")]
    pub timeline: Option<PathBuf>,
}

fn parse_progress(s: &str) -> Result<ProgressMode, String> {
    s.parse()
}

fn parse_interval(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.1..=86_400.0).contains(&v) => Ok(v),
        _ => Err(format!("expected seconds between 0.1 and 86400, got '{s}'")),
    }
}

/// Part `index` (1-based) of `count` contiguous parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Part {
    /// Which part, 1..=count.
    pub index: u64,
    /// How many parts.
    pub count: u64,
}

impl Part {
    /// The item range of this part of `items` items.
    pub fn range(&self, items: usize) -> std::ops::Range<usize> {
        let at = |i: u64| (items as u128 * u128::from(i) / u128::from(self.count)) as usize;
        at(self.index - 1)..at(self.index)
    }
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

fn parse_part(s: &str) -> Result<Part, String> {
    let err = || format!("expected I/K with 1 <= I <= K, e.g. 2/8; got '{s}'");
    let (i, k) = s.split_once('/').ok_or_else(err)?;
    let (index, count) = (
        i.trim().parse::<u64>().map_err(|_| err())?,
        k.trim().parse::<u64>().map_err(|_| err())?,
    );
    if index == 0 || index > count {
        return Err(err());
    }
    Ok(Part { index, count })
}

/// The validated options of one map: everything checked that can be
/// checked without MPI.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Schedule, chunking, failure policy, order.
    pub map: MapOptions,
    /// Threads per rank.
    pub threads: usize,
    /// JSON-lines file to append to.
    pub json: Option<PathBuf>,
    /// Print only the answer.
    pub quiet: bool,
    /// Take results in completion order.
    pub unordered: bool,
    /// The ordered results' file.
    pub results: Option<PathBuf>,
    /// Journal directory.
    pub journal: Option<PathBuf>,
    /// Continue the journaled run.
    pub resume: bool,
    /// Network model file, and whether the user named it (then it must load).
    pub network: Option<(PathBuf, bool)>,
    /// Only this part of the input.
    pub part: Option<Part>,
    /// When the map must end.
    pub deadline: Option<Deadline>,
    /// `--progress`, if given.
    pub progress: Option<ProgressMode>,
    /// Between progress lines.
    pub progress_interval: std::time::Duration,
    /// The status file.
    pub status: Option<PathBuf>,
    /// The timeline file.
    pub timeline: Option<PathBuf>,
}

impl MapArgs {
    /// Checks the options; `schedule` and `chunk` are the command's defaults,
    /// and `files` the (role, path) pairs of the job's own inputs and
    /// outputs, checked with the rest for one file in two roles.
    ///
    /// # Errors
    /// A message for the user; the caller exits with code 2.
    pub fn validate(
        &self,
        schedule: Schedule,
        chunk: Option<usize>,
        files: &[(&str, &Path)],
    ) -> Result<Settings, String> {
        let journal = self.journal.as_ref().map(|d| d.join("journal.hpcmap"));
        let mut outputs: Vec<(&str, &Path)> = Vec::new();
        outputs.extend(self.results.as_deref().map(|p| ("--results", p)));
        outputs.extend(self.json.as_deref().map(|p| ("--json", p)));
        outputs.extend(self.network.as_deref().map(|p| ("--network", p)));
        outputs.extend(journal.as_deref().map(|p| ("--journal", p)));
        outputs.extend(self.status.as_deref().map(|p| ("--status", p)));
        outputs.extend(self.timeline.as_deref().map(|p| ("--timeline", p)));
        if let Some(path) = &self.timeline {
            crate::cli::timeline::Format::of(path).map_err(|e| e.to_string())?;
        }
        // Inputs may repeat (a file counted twice is not clobbered); each
        // against every output, and the outputs among themselves.
        let (inputs, own_outputs): (Vec<_>, Vec<_>) = files
            .iter()
            .partition(|(role, _)| role.starts_with("--input") || *role == "--lines");
        outputs.extend(own_outputs.iter().copied());
        check_distinct(&outputs)?;
        for input in &inputs {
            let mut with_outputs = vec![*input];
            with_outputs.extend_from_slice(&outputs);
            check_distinct(&with_outputs)?;
        }
        Ok(Settings {
            map: MapOptions {
                schedule: self.schedule.unwrap_or(schedule),
                chunk: self
                    .chunk
                    .map(|c| usize::try_from(c).unwrap_or(usize::MAX))
                    .or(chunk.filter(|_| self.schedule.is_none())),
                on_error: self.on_error,
                order: if self.unordered {
                    Order::Completion
                } else {
                    Order::Input
                },
                deadline: None, // set on every rank as the map starts
                trace: self.timeline.is_some(),
            },
            threads: usize::from(self.threads),
            json: self.json.clone(),
            quiet: self.quiet,
            unordered: self.unordered,
            results: self.results.clone(),
            journal: self.journal.clone(),
            resume: self.resume,
            network: match &self.network {
                Some(path) => Some((path.clone(), true)),
                None => Models::default_path().map(|p| (p, false)),
            },
            part: self.part,
            deadline: self.deadline,
            progress: self.progress,
            progress_interval: std::time::Duration::from_secs_f64(self.progress_interval),
            status: self.status.clone(),
            timeline: self.timeline.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_tile_the_input() {
        let parts: Vec<_> = (1..=3)
            .map(|i| Part { index: i, count: 3 }.range(10))
            .collect();
        assert_eq!(parts, [0..3, 3..6, 6..10]);
    }
}
