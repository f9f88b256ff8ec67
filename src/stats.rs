//! What one map measured: phase times, bytes moved, per-rank work, checksum.
//!
//! Measuring lives here and in the schedules; turning it into text or JSON
//! lives in `report`. Times are seconds from `MPI_Wtime`-grade clocks
//! (`std::time::Instant`) taken on the rank that did the work.

use serde::Serialize;

/// Minimum, mean and maximum of one quantity across ranks.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
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
#[derive(Clone, Copy, Debug, Default, Serialize)]
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
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ItemFailure {
    /// The item's index in the input.
    pub index: u64,
    /// The rank that mapped it.
    pub rank: u64,
    /// The panic message and location.
    pub message: String,
}

/// What one rank did.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct RankStats {
    /// Items mapped.
    pub items: u64,
    /// Chunks mapped.
    pub chunks: u64,
    /// Seconds spent decoding, mapping and encoding.
    pub compute_s: f64,
    /// Seconds spent without work: waiting for chunks or for the slowest rank.
    pub wait_s: f64,
}

/// The measurements of one map, complete on the root.
#[derive(Clone, Debug, Default, Serialize)]
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
    /// The signal that stopped the map early, if one did.
    #[serde(skip)]
    pub interrupted: Option<&'static str>,
}

impl MapStats {
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
