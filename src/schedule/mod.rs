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

/// Options of one map call.
#[derive(Clone, Copy, Debug, Default)]
pub struct MapOptions {
    /// How items are assigned to ranks.
    pub schedule: Schedule,
    /// Items per chunk; `None` picks the schedule's default (static: one block per rank).
    pub chunk: Option<usize>,
}
