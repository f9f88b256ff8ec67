//! Schedules: how chunks get from the root to the ranks and back.
//!
//! `scatter` is the static schedule (collectives, one round); `master` and
//! `worker` are the two sides of the dynamic and guided schedules
//! (point-to-point, chunks on demand). Every schedule hands results to the
//! root's collector in input order (or as they complete, for unordered
//! maps) and gives the same checksum for the same input. They share the
//! chunking rules (`chunking`), the frames (`wire`), the compute step
//! (`executor`) and the stats (`stats`).

pub mod master;
mod scatter;
mod worker;

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use serde::{Serialize, de::DeserializeOwned};

use crate::collect::{Collector, Sink};
use crate::error::MapError;
use crate::executor::Executor;
use crate::source::Source;
use crate::stats::MapStats;
use crate::task::Task;
use crate::trace::{Recorder, Trace};
use crate::transport::Transport;

/// How items are assigned to ranks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Schedule {
    /// Chunks dealt round-robin up front and moved with one Scatterv and one
    /// Gatherv: the least communication, but no load balancing.
    #[default]
    Static,
    /// The root hands out chunks of `--chunk` items on demand (master-worker
    /// over point-to-point) and computes between hand-outs: balances
    /// irregular items.
    Dynamic,
    /// Like dynamic, but chunks shrink as work runs out (remaining / (2 x
    /// ranks), never below `--chunk`): big chunks early, small ones at the tail.
    Guided,
}

impl Schedule {
    /// Every schedule, in the order reports list them.
    pub const ALL: [Schedule; 3] = [Schedule::Static, Schedule::Dynamic, Schedule::Guided];

    /// The schedule's name as used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Schedule::Static => "static",
            Schedule::Dynamic => "dynamic",
            Schedule::Guided => "guided",
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Schedule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Schedule::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("expected static, dynamic or guided, got '{s}'"))
    }
}

impl Serialize for Schedule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// The most retries `retry=N` may ask for: past this a failing item is
/// not flaky, and N retries of a slow item would run for hours.
pub const MAX_RETRIES: u32 = 100;

/// What happens when mapping an item fails (it panics, or its task returns
/// an error). The failure is caught on the rank that mapped it (the rank
/// survives) and reported to the root with the item's index and message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnError {
    /// End the map cleanly with [`crate::MapError::ItemFailed`]: no new work
    /// is handed out, work in flight is collected, every rank returns.
    #[default]
    Abort,
    /// Record the item as failed and go on; its result is left out.
    Skip,
    /// Try the item again up to this many times on the same rank, then abort.
    Retry(u32),
}

impl FromStr for OnError {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "abort" => Ok(OnError::Abort),
            "skip" => Ok(OnError::Skip),
            _ => s
                .strip_prefix("retry=")
                .and_then(|n| n.parse::<u32>().ok())
                .filter(|&n| (1..=MAX_RETRIES).contains(&n))
                .map(OnError::Retry)
                .ok_or_else(|| {
                    format!("expected abort, skip or retry=N (1 <= N <= {MAX_RETRIES}), got '{s}'")
                }),
        }
    }
}

impl fmt::Display for OnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OnError::Abort => f.write_str("abort"),
            OnError::Skip => f.write_str("skip"),
            OnError::Retry(n) => write!(f, "retry={n}"),
        }
    }
}

/// In which order the root hands results on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Order {
    /// Input order (chunks that arrive early wait).
    #[default]
    Input,
    /// As they arrive: no reorder buffer; the same checksum.
    Completion,
}

/// Options of one map call; every rank passes the same.
#[derive(Clone, Copy, Debug, Default)]
pub struct MapOptions {
    /// How items are assigned to ranks.
    pub schedule: Schedule,
    /// Items per chunk; `None` picks the schedule's default (see `chunking`).
    pub chunk: Option<usize>,
    /// What a failing item does to the map.
    pub on_error: OnError,
    /// In which order the root's sink sees the results.
    pub order: Order,
    /// When work must stop: what is not done by then is abandoned (and, on
    /// the root, not handed out when its measured cost says it cannot
    /// finish in time); the map then ends with [`crate::MapError::Interrupted`].
    /// Each rank's own clock; the command derives it from `--deadline`.
    pub deadline: Option<std::time::Instant>,
    /// Record where the time goes (see [`crate::trace`]); the root gets
    /// every rank's spans in [`crate::MapStats::trace`].
    pub trace: bool,
}

/// One map as the schedules see it.
pub struct Map<'a, I: ?Sized, K> {
    /// The pool's private channel.
    pub transport: &'a dyn Transport,
    /// This rank's compute threads.
    pub executor: &'a Executor,
    /// This rank's buffers, kept from map to map.
    pub buffers: &'a crate::buffers::Buffers,
    /// The input (on the root).
    pub input: Option<&'a I>,
    /// The item ranges still to map, in order (on the root).
    pub todo: Vec<Range<usize>>,
    /// Schedule, chunking, failure policy.
    pub options: &'a MapOptions,
    /// What to do with each item.
    pub task: &'a K,
    /// Bytes of early results the root holds (ordered maps) beyond which
    /// new hand-outs wait until the gap is filled: back-pressure that bounds
    /// the root's memory.
    pub reorder_limit: usize,
    /// Live counters for whoever follows the map (root).
    pub progress: Option<&'a crate::progress::Progress>,
    /// When the map started on this rank (after a barrier when tracing).
    pub started: std::time::Instant,
}

impl<I: ?Sized, K> Map<'_, I, K> {
    /// This rank's span recorder (idle unless the map is traced).
    pub fn recorder(&self) -> Recorder {
        Recorder::new(
            self.options.trace,
            self.transport.rank(),
            self.transport.size(),
            self.started,
        )
    }
}

/// Collective when tracing (else nothing): every rank's spans to the root,
/// into `stats` there. Last of a map, so each rank's spans cover all of it.
pub fn gather_trace(t: &dyn Transport, recorder: Recorder, stats: &mut MapStats) {
    if !recorder.on() {
        return;
    }
    if let Some(all) = crate::transport::gather_bytes(t, &recorder.encode()) {
        let mut trace = Trace::default();
        for (rank, bytes) in all.iter().enumerate() {
            let (spans, resolution) = Recorder::decode(rank, bytes);
            trace.spans.extend(spans);
            trace.resolution.push(resolution);
        }
        stats.trace = Some(trace);
    }
}

/// The default [`Map::reorder_limit`].
pub const REORDER_LIMIT_BYTES: usize = 32 << 20;

/// Runs one map under its schedule; results go to `collector` on the root.
///
/// # Errors
/// See [`crate::Pool::map_with`].
pub fn run<I, T, K, S>(
    map: Map<'_, I, K>,
    collector: &mut Collector<'_, K::Output, S>,
) -> Result<MapStats, MapError>
where
    I: Source<Item = T> + Sync + ?Sized,
    T: Serialize + DeserializeOwned + Send + 'static,
    K: Task<T>,
    K::Output: Serialize + DeserializeOwned + Send + 'static,
    S: Sink<K::Output>,
{
    let t = map.transport;
    let mut recorder = map.recorder();
    let mut stats = match map.options.schedule {
        Schedule::Static => scatter::run(map, collector, &mut recorder)?,
        Schedule::Dynamic | Schedule::Guided if t.is_root() => {
            master::run(map, collector, &mut recorder)
        }
        Schedule::Dynamic | Schedule::Guided => worker::run(map, &mut recorder),
    };
    gather_trace(t, recorder, &mut stats);
    Ok(stats)
}

#[cfg(test)]
mod tests;
