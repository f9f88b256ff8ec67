//! Schedules: how chunks get from the root to the ranks and back.
//!
//! `scatter` is the static schedule (Scatterv / Gatherv collectives, one
//! round); `dynamic` is master-worker over point-to-point, for the dynamic
//! and guided schedules. Every schedule returns results in input order (or
//! as they complete, for unordered maps) and the same checksum for the same
//! input.

pub mod dynamic;
pub mod scatter;

use std::fmt;
use std::str::FromStr;

/// How items are assigned to ranks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
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
        <Schedule as clap::ValueEnum>::from_str(s, true)
    }
}

/// What happens when mapping an item panics. The panic is caught on the rank
/// that mapped it (the rank survives) and reported to the root with the
/// item's index and message.
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
                .filter(|&n| n >= 1)
                .map(OnError::Retry)
                .ok_or_else(|| format!("expected abort, skip or retry=N (N >= 1), got '{s}'")),
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Input order (chunks that arrive early wait).
    Input,
    /// As they arrive.
    Completion,
}

/// What one map call is to do, as the schedules see it.
pub struct Work<'a, I: ?Sized> {
    /// The input (on the root).
    pub input: Option<&'a I>,
    /// The item ranges still to map, in order (on the root).
    pub todo: Vec<std::ops::Range<usize>>,
    /// Schedule, chunking, failure policy.
    pub options: &'a MapOptions,
}

/// Options of one map call.
#[derive(Clone, Copy, Debug, Default)]
pub struct MapOptions {
    /// How items are assigned to ranks.
    pub schedule: Schedule,
    /// Items per chunk; `None` picks the schedule's default (static: one block per rank).
    pub chunk: Option<usize>,
    /// What a failing item does to the map.
    pub on_error: OnError,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_and_print() {
        for text in ["abort", "skip", "retry=3"] {
            assert_eq!(text.parse::<OnError>().unwrap().to_string(), text);
        }
        for bad in ["retry", "retry=0", "retry=-1", "ignore", ""] {
            assert!(bad.parse::<OnError>().is_err(), "{bad}");
        }
    }
}
