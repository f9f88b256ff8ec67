//! What a `run` prints: one record per run, rendered as text or JSON lines.
//!
//! [`RunRecord`] is assembled on the root from the map's [`MapStats`], the
//! pool's hosts and the workload's answer; `text` renders the readable
//! report, `json` the one-line record that `--json` appends.

pub mod json;
pub mod model;
pub mod plot;
pub mod scaling;
pub mod text;

use serde::Serialize;

use crate::stats::{ItemFailure, MapStats, Phases, RankStats};
use crate::workloads::Answer;
use model::{Hockney, MapShape, Verdict};

/// Everything known about one run, with the field names of the JSON record.
#[derive(Clone, Debug, Serialize)]
pub struct RunRecord {
    /// Workload name.
    pub workload: String,
    /// Items mapped.
    pub items: u64,
    /// MPI ranks.
    pub ranks: u64,
    /// Distinct hostnames.
    pub nodes: u64,
    /// Hostname of each rank, by rank.
    pub hosts: Vec<String>,
    /// Compute threads per rank.
    pub threads: u64,
    /// Schedule name.
    pub schedule: String,
    /// Whether results were collected in input order (`--unordered` clears it).
    pub ordered: bool,
    /// Items per chunk.
    pub chunk: u64,
    /// Number of chunks.
    pub chunks: u64,
    /// Root wall time of the map, input already built.
    pub wall_s: f64,
    /// Seconds the root spent building the input (not in `wall_s`).
    pub prepare_s: f64,
    /// Phase breakdown of `wall_s`.
    pub phases: Phases,
    /// Serialized input bytes sent to other ranks.
    pub bytes_scattered: u64,
    /// Serialized result bytes received from other ranks.
    pub bytes_gathered: u64,
    /// Items per second of wall time.
    pub items_per_s: f64,
    /// Max over mean compute time.
    pub imbalance: f64,
    /// The workload's answer.
    pub answer: Answer,
    /// xxh3-64 of the ordered results' encoding, as 16 hex digits.
    pub checksum: String,
    /// `"I/K"` when only part I of K of the input was mapped.
    pub part: Option<String>,
    /// Per-rank work.
    pub per_rank: Vec<RankStats>,
    /// The communication model's explanation, when a network model was available.
    pub model: Option<Verdict>,
    /// The root's peak resident memory in bytes (`VmHWM`), where the OS says.
    pub root_peak_rss: Option<u64>,
    /// Items that failed and were left out (`--on-error skip`).
    pub skipped: Vec<ItemFailure>,
    /// Items taken from the journal of an earlier, interrupted run (`--resume`).
    pub resumed_items: u64,
}

impl RunRecord {
    /// Builds the record of a finished map on the root.
    pub fn new(
        workload: &str,
        stats: &MapStats,
        hosts: &[String],
        prepare_s: f64,
        answer: Answer,
        part: Option<String>,
        ordered: bool,
    ) -> RunRecord {
        let mut distinct: Vec<&String> = hosts.iter().collect();
        distinct.sort();
        distinct.dedup();
        RunRecord {
            workload: workload.to_string(),
            items: stats.items,
            ranks: stats.ranks,
            nodes: distinct.len() as u64,
            hosts: hosts.to_vec(),
            threads: stats.threads,
            schedule: stats.schedule.clone(),
            ordered,
            chunk: stats.chunk,
            chunks: stats.chunks,
            wall_s: stats.wall_s,
            prepare_s,
            phases: stats.phases,
            bytes_scattered: stats.bytes_scattered,
            bytes_gathered: stats.bytes_gathered,
            items_per_s: stats.items_per_s(),
            imbalance: stats.imbalance(),
            answer,
            checksum: format!("{:016x}", stats.checksum),
            part,
            per_rank: stats.per_rank.clone(),
            model: None,
            root_peak_rss: peak_rss(),
            skipped: stats.skipped.clone(),
            resumed_items: 0,
        }
    }

    /// Explains the run's communication with `network` (sets [`RunRecord::model`]).
    pub fn explain(&mut self, network: &Hockney) {
        let shape = MapShape {
            schedule: self.schedule.clone(),
            ranks: self.ranks,
            worker_chunks: self.chunks - self.per_rank.first().map_or(0, |r| r.chunks),
            bytes_scattered: self.bytes_scattered,
            bytes_gathered: self.bytes_gathered,
        };
        let predicted = network.predict(&shape);
        let measured = self.phases.scatter + self.phases.gather;
        let comm = if self.schedule == "static" {
            measured
        } else {
            predicted
        };
        self.model = Some(Verdict {
            alpha: network.alpha,
            beta: network.beta,
            predicted_comm_s: predicted,
            measured_comm_s: measured,
            compute_to_comm: if comm > 0.0 {
                self.phases.compute.max / comm
            } else {
                f64::INFINITY
            },
        });
    }

    /// Distinct hostnames in rank order of first appearance.
    pub fn node_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for h in &self.hosts {
            if !names.contains(&h.as_str()) {
                names.push(h);
            }
        }
        names
    }
}

/// This process's peak resident set size from `/proc/self/status` (Linux).
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
