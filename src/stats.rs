//! What one map measured: phase times, bytes moved, per-rank work, checksum.
//!
//! The schedules measure into a [`Meter`] and gather one `Row` per rank;
//! [`MapStats`] is built from them here and nowhere else. Turning it into
//! text or JSON is the command's business. Times are seconds from
//! `std::time::Instant`, taken on the rank that did the work.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::schedule::Schedule;
use crate::wire::Row;

/// Minimum, mean and maximum of one quantity across ranks.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Spread {
    /// Smallest value.
    pub min: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Largest value.
    pub max: f64,
}

impl Spread {
    /// The spread of `values` (all zero when empty).
    pub fn of(values: impl IntoIterator<Item = f64>) -> Spread {
        let (mut min, mut max, mut sum, mut n) = (f64::INFINITY, 0f64, 0f64, 0usize);
        for v in values {
            min = min.min(v);
            max = max.max(v);
            sum += v;
            n += 1;
        }
        if n == 0 {
            return Spread::default();
        }
        Spread {
            min,
            mean: sum / n as f64,
            max,
        }
    }

    /// Load imbalance `max / mean` (1.0 is perfect; 1.0 when nothing was done).
    pub fn imbalance(&self) -> f64 {
        if self.mean > 0.0 {
            self.max / self.mean
        } else {
            1.0
        }
    }
}

/// Where the root's wall time went, in seconds.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Phases {
    /// Root: cutting the input into chunks and serializing them.
    pub serialize: f64,
    /// Root: handing chunks out (Scatterv for static; sends for dynamic).
    pub scatter: f64,
    /// Every rank: decoding its chunks, mapping, encoding results (spread across ranks).
    pub compute: Spread,
    /// Root: idle, waiting for the slowest rank (static) or for results (dynamic).
    pub wait: f64,
    /// Root: receiving the result bytes (Gatherv for static).
    pub gather: f64,
    /// Root: deserializing results into input order and checksumming them.
    pub assemble: f64,
}

/// An item whose mapping panicked.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ItemFailure {
    /// The item's index in the input.
    pub index: u64,
    /// The rank that mapped it.
    pub rank: u64,
    /// Why it failed: the panic message and location, or the task's error.
    pub message: String,
    /// Machine-readable detail the task attached (after
    /// [`ItemFailure::DETAIL`] in its error), e.g. an exit status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl ItemFailure {
    /// Separates a task error's text from its machine-readable detail
    /// (ASCII record separator): `format!("{text}{DETAIL}{json}")`.
    pub const DETAIL: char = '\u{1e}';

    /// The failure of item `index` on `rank` with the task's `error`.
    pub fn new(index: u64, rank: usize, error: &str) -> ItemFailure {
        let (message, detail) = match error.split_once(Self::DETAIL) {
            Some((m, d)) => (m.to_string(), Some(d.to_string())),
            None => (error.to_string(), None),
        };
        ItemFailure {
            index,
            rank: rank as u64,
            message,
            detail,
        }
    }

    /// Marks a message as a caught panic's (see [`ItemFailure::describe`]).
    pub const PANICKED: &'static str = "panicked: ";

    /// One line naming the item, the rank and its host, and what happened,
    /// e.g. `rank 1 (node2) panicked while mapping item 42: ...`.
    pub fn describe(&self, host: &str) -> String {
        match self.message.strip_prefix(Self::PANICKED) {
            Some(panic) => format!(
                "rank {} ({host}) panicked while mapping item {}: {panic}",
                self.rank, self.index
            ),
            None => format!(
                "item {} failed on rank {} ({host}): {}",
                self.index, self.rank, self.message
            ),
        }
    }
}

/// What one rank did.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct RankStats {
    /// Items mapped.
    pub items: u64,
    /// Chunks mapped.
    pub chunks: u64,
    /// Seconds spent decoding, mapping and encoding.
    pub compute_s: f64,
    /// Seconds spent without work: waiting for chunks or for the slowest rank.
    pub wait_s: f64,
    /// Items each compute thread mapped, by thread.
    pub thread_items: Vec<u64>,
}

/// The measurements of one map, complete on the root.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MapStats {
    /// Schedule name: `static`, `dynamic` or `guided`.
    pub schedule: String,
    /// Items in the input.
    pub items: u64,
    /// Number of ranks.
    pub ranks: u64,
    /// Compute threads per rank.
    pub threads: u64,
    /// Items per chunk (the largest chunk for `guided`).
    pub chunk: u64,
    /// Number of chunks.
    pub chunks: u64,
    /// Root wall time of the whole map, input already in memory.
    pub wall_s: f64,
    /// Phase breakdown.
    pub phases: Phases,
    /// Serialized input bytes sent to other ranks (the root keeps its own share).
    pub bytes_scattered: u64,
    /// Serialized result bytes received from other ranks.
    pub bytes_gathered: u64,
    /// xxh3-64 of the ordered result's bincode encoding: the same at any rank
    /// count, thread count and schedule.
    pub checksum: u64,
    /// Per-rank work, indexed by rank.
    pub per_rank: Vec<RankStats>,
    /// Items that failed and were skipped (`OnError::Skip`), by index.
    pub skipped: Vec<ItemFailure>,
    /// The most bytes of early results the root's reorder buffer held.
    pub reorder_peak_bytes: u64,
    /// The signal that stopped the map early (its number), if one did.
    #[serde(skip)]
    pub stopped_by: Option<u64>,
    /// Every rank's spans (root), when the map was traced.
    #[serde(skip)]
    pub trace: Option<crate::trace::Trace>,
}

/// What the root measures while a map runs; see [`MapStats::assemble`].
#[derive(Debug)]
pub struct Meter {
    started: Instant,
    /// Phase times so far (compute is filled in from the rows).
    pub phases: Phases,
    /// Input bytes sent to other ranks.
    pub bytes_scattered: u64,
    /// Result bytes received from other ranks.
    pub bytes_gathered: u64,
    /// Chunks handed out (dynamic) or planned (static).
    pub chunks: u64,
    /// The largest chunk, items.
    pub largest_chunk: u64,
}

impl Meter {
    /// Starts the wall clock.
    pub fn start() -> Meter {
        Meter {
            started: Instant::now(),
            phases: Phases::default(),
            bytes_scattered: 0,
            bytes_gathered: 0,
            chunks: 0,
            largest_chunk: 0,
        }
    }

    /// Seconds since the map started.
    pub fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Counts a chunk of `items` items.
    pub fn chunk(&mut self, items: usize) {
        self.chunks += 1;
        self.largest_chunk = self.largest_chunk.max(items as u64);
    }
}

impl MapStats {
    /// The root's stats of a finished map: its own measurements and every
    /// rank's row, by rank.
    pub fn assemble(
        schedule: Schedule,
        meter: Meter,
        rows: &[Row],
        threads: usize,
        checksum: u64,
    ) -> MapStats {
        let seconds = |ns: u64| ns as f64 * 1e-9;
        let compute = Spread::of(rows.iter().map(|r| seconds(r.compute_ns)));
        let per_rank = rows
            .iter()
            .map(|r| RankStats {
                items: r.items,
                chunks: r.chunks,
                compute_s: seconds(r.compute_ns),
                // Static ranks idle from their own end to the slowest rank's.
                wait_s: match schedule {
                    Schedule::Static => compute.max - seconds(r.compute_ns),
                    _ => seconds(r.wait_ns),
                },
                thread_items: r.thread_items.clone(),
            })
            .collect();
        let stopped_by = rows.iter().map(|r| r.stopped_by).find(|&s| s != 0);
        MapStats {
            schedule: schedule.name().into(),
            items: rows.iter().map(|r| r.items).sum(),
            ranks: rows.len() as u64,
            threads: threads as u64,
            chunk: meter.largest_chunk,
            chunks: meter.chunks,
            wall_s: meter.started.elapsed().as_secs_f64(),
            phases: Phases {
                compute,
                ..meter.phases
            },
            bytes_scattered: meter.bytes_scattered,
            bytes_gathered: meter.bytes_gathered,
            checksum,
            per_rank,
            skipped: Vec::new(),
            reorder_peak_bytes: 0,
            stopped_by,
            trace: None,
        }
    }

    /// A non-root rank's stats: its own row only.
    pub fn of_rank(schedule: Schedule, row: &Row, ranks: usize, threads: usize) -> MapStats {
        MapStats {
            schedule: schedule.name().into(),
            items: row.items,
            ranks: ranks as u64,
            threads: threads as u64,
            chunks: row.chunks,
            phases: Phases {
                compute: Spread::of([row.compute_ns as f64 * 1e-9]),
                wait: row.wait_ns as f64 * 1e-9,
                ..Phases::default()
            },
            stopped_by: (row.stopped_by != 0).then_some(row.stopped_by),
            ..MapStats::default()
        }
    }

    /// Items per second of wall time.
    pub fn items_per_s(&self) -> f64 {
        if self.wall_s > 0.0 {
            self.items as f64 / self.wall_s
        } else {
            0.0
        }
    }

    /// Load imbalance of the compute phase (`max / mean`).
    pub fn imbalance(&self) -> f64 {
        self.phases.compute.imbalance()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_and_imbalance() {
        let s = Spread::of([1.0, 2.0, 3.0]);
        assert_eq!(
            s,
            Spread {
                min: 1.0,
                mean: 2.0,
                max: 3.0
            }
        );
        assert_eq!(s.imbalance(), 1.5);
        assert_eq!(Spread::of([]).imbalance(), 1.0);
    }
}
