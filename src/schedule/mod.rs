//! Schedules: how chunks get from the root to the ranks and back.
//!
//! `scatter` is the static schedule (Scatterv / Gatherv collectives, one
//! round); every schedule returns results in input order and the same
//! checksum for the same input.

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
}

impl Schedule {
    /// The schedule's name as used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Schedule::Static => "static",
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
