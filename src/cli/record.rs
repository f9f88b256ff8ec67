//! One run, as the command records it: [`RunRecord`] is rendered as the
//! text report, appended as one JSON line by `--json`, and read back by
//! `hpcmap report` for the scaling tables. One type for all three, so a
//! field added for one is there for the others.
//!
//! Reading is tolerant: `workload`, `items`, `ranks` and `wall_s` are
//! required, every other field has a default, so records written by older
//! versions still count; a line that is not a usable record (a torn write,
//! another tool's output) costs a warning, not the report.

use serde::{Deserialize, Serialize};

use crate::stats::{ItemFailure, MapStats, Phases, RankStats};

use super::netmodel::{self, MapShape, Models, Verdict};

/// The answer a workload computes from its results.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Answer {
    /// One human-readable line.
    pub text: String,
    /// The same as JSON, for comparing runs and merging parts.
    pub value: serde_json::Value,
}

/// Everything known about one run, with the field names of the JSON record.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunRecord {
    /// Workload name (`exec` and `pipe` for users' programs).
    pub workload: String,
    /// Items mapped.
    pub items: u64,
    /// MPI ranks.
    pub ranks: u64,
    /// Distinct hostnames.
    #[serde(default)]
    pub nodes: u64,
    /// Hostname of each rank, by rank.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Compute threads per rank.
    #[serde(default = "one")]
    pub threads: u64,
    /// Schedule name.
    #[serde(default = "static_schedule")]
    pub schedule: String,
    /// Whether results were collected in input order (`--unordered` clears it).
    #[serde(default = "yes")]
    pub ordered: bool,
    /// Items per chunk.
    #[serde(default)]
    pub chunk: u64,
    /// Number of chunks.
    #[serde(default)]
    pub chunks: u64,
    /// Root wall time of the map, input already built.
    pub wall_s: f64,
    /// Seconds the root spent building the input (not in `wall_s`).
    #[serde(default)]
    pub prepare_s: f64,
    /// Phase breakdown of `wall_s`.
    #[serde(default)]
    pub phases: Phases,
    /// Serialized input bytes sent to other ranks.
    #[serde(default)]
    pub bytes_scattered: u64,
    /// Serialized result bytes received from other ranks.
    #[serde(default)]
    pub bytes_gathered: u64,
    /// Items per second of wall time.
    #[serde(default)]
    pub items_per_s: f64,
    /// Max over mean compute time.
    #[serde(default)]
    pub imbalance: f64,
    /// The workload's answer.
    #[serde(default)]
    pub answer: Answer,
    /// The checksum of the ordered results, as 16 hex digits.
    #[serde(default)]
    pub checksum: String,
    /// `"I/K"` when only part I of K of the input was mapped.
    #[serde(default)]
    pub part: Option<String>,
    /// Per-rank work.
    #[serde(default)]
    pub per_rank: Vec<RankStats>,
    /// The communication model's explanation per link, or the links no
    /// fit was found for; `None` for one rank.
    #[serde(default)]
    pub model: Option<Verdict>,
    /// The root's peak resident memory in bytes (`VmHWM`), where the OS says.
    #[serde(default)]
    pub root_peak_rss: Option<u64>,
    /// Items that failed and were left out (`--on-error skip`); their
    /// `index` counts from the map's first item (of its part) at 0: the
    /// report names one `first_number + index`.
    #[serde(default)]
    pub skipped: Vec<ItemFailure>,
    /// The number reports give the map's item 0, so an item is named as the
    /// user knows it: its index in the whole input for the built-in
    /// workloads (non-zero with `--part`), and for `exec` and `pipe` its
    /// `{#}`, joblog Seq and line number, which count from 1.
    #[serde(default)]
    pub first_number: u64,
    /// Items taken from the journal of an earlier, interrupted run (`--resume`).
    #[serde(default)]
    pub resumed_items: u64,
}

fn one() -> u64 {
    1
}

fn yes() -> bool {
    true
}

fn static_schedule() -> String {
    "static".to_string()
}

/// Distinct hostnames in rank order of first appearance: a job's nodes.
pub fn distinct_hosts(hosts: &[String]) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for h in hosts {
        if !names.contains(&h.as_str()) {
            names.push(h);
        }
    }
    names
}

impl RunRecord {
    /// The record of a finished map on the root.
    pub fn new(workload: &str, stats: &MapStats, hosts: &[String], answer: Answer) -> RunRecord {
        RunRecord {
            workload: workload.to_string(),
            items: stats.items,
            ranks: stats.ranks,
            nodes: distinct_hosts(hosts).len() as u64,
            hosts: hosts.to_vec(),
            threads: stats.threads,
            schedule: stats.schedule.clone(),
            ordered: true,
            chunk: stats.chunk,
            chunks: stats.chunks,
            wall_s: stats.wall_s,
            prepare_s: 0.0,
            phases: stats.phases,
            bytes_scattered: stats.bytes_scattered,
            bytes_gathered: stats.bytes_gathered,
            items_per_s: stats.items_per_s(),
            imbalance: stats.imbalance(),
            answer,
            checksum: format!("{:016x}", stats.checksum),
            part: None,
            per_rank: stats.per_rank.clone(),
            model: None,
            root_peak_rss: peak_rss(),
            skipped: stats.skipped.clone(),
            first_number: 0,
            resumed_items: 0,
        }
    }

    /// Explains the run's communication with the fits of its placement in
    /// `network`, or names the links without one (sets [`RunRecord::model`]).
    pub fn explain(&mut self, network: Option<&Models>) {
        let shape = MapShape {
            schedule: &self.schedule,
            hosts: &self.hosts,
            per_rank: &self.per_rank,
            bytes_scattered: self.bytes_scattered,
            bytes_gathered: self.bytes_gathered,
        };
        self.model = netmodel::explain(network, &shape, &self.phases);
    }

    /// Distinct nodes: the recorded count, else counted from `hosts`, at least 1.
    pub fn node_count(&self) -> u64 {
        match self.nodes {
            0 => distinct_hosts(&self.hosts).len().max(1) as u64,
            n => n,
        }
    }

    /// Why the record cannot be used in a scaling report, if it cannot.
    pub fn defect(&self) -> Option<&'static str> {
        if self.workload.is_empty() {
            Some("empty workload name")
        } else if self.ranks == 0 || self.threads == 0 {
            Some("zero ranks or threads")
        } else if !(self.wall_s.is_finite() && self.wall_s > 0.0) {
            Some("wall_s is not a positive time")
        } else {
            None
        }
    }

    /// The record as one JSON line, newline included.
    pub fn json_line(&self) -> String {
        let mut line = serde_json::to_string(self).expect("a record always serializes");
        line.push('\n');
        line
    }
}

/// Parses JSON lines into records; a line that is not a usable record
/// becomes a warning naming `source:line` instead. Blank lines are skipped.
pub fn parse_records(text: &str, source: &str) -> (Vec<RunRecord>, Vec<String>) {
    let mut records = Vec::new();
    let mut warnings = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<RunRecord>(line) {
            Ok(r) => match r.defect() {
                None => records.push(r),
                Some(why) => warnings.push(format!("{source}:{}: skipped: {why}", i + 1)),
            },
            Err(e) if !text.ends_with('\n') && i + 1 == text.lines().count() => {
                warnings.push(format!(
                    "{source}:{}: skipped a torn last line (a write cut short?): {e}",
                    i + 1
                ))
            }
            Err(e) => warnings.push(format!(
                "{source}:{}: skipped, not a run record: {e}",
                i + 1
            )),
        }
    }
    (records, warnings)
}

/// This process's peak resident set size from `/proc/self/status` (Linux).
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_old_ones_get_defaults() {
        let stats = MapStats {
            schedule: "dynamic".into(),
            items: 10,
            ranks: 2,
            threads: 1,
            wall_s: 0.5,
            ..MapStats::default()
        };
        let hosts = vec!["a".to_string(), "b".to_string(), "a".to_string()];
        let r = RunRecord::new("square", &stats, &hosts, Answer::default());
        assert_eq!(r.nodes, 2);
        let back: RunRecord = serde_json::from_str(r.json_line().trim()).unwrap();
        assert_eq!(
            (back.items, back.schedule.as_str(), back.node_count()),
            (10, "dynamic", 2)
        );
        let old: RunRecord = serde_json::from_str(
            r#"{"workload":"w","items":1,"ranks":2,"wall_s":1.0,"hosts":["x","y"]}"#,
        )
        .unwrap();
        assert_eq!(
            (old.threads, old.schedule.as_str(), old.node_count()),
            (1, "static", 2)
        );
    }

    #[test]
    fn tolerant_parsing_warns_per_line_and_names_a_torn_tail() {
        let text = [
            r#"{"workload":"old","items":10,"ranks":2,"wall_s":1.5}"#,
            "",
            "not json",
            r#"{"workload":"x","items":10,"ranks":0,"wall_s":1.0}"#,
            r#"{"items":10,"ranks":1,"wall_s":1.0}"#,
            r#"{"workload":"torn","ite"#,
        ]
        .join("\n");
        let (records, warnings) = parse_records(&text, "f.jsonl");
        assert_eq!(records.len(), 1);
        assert_eq!(warnings.len(), 4, "{warnings:?}");
        assert!(warnings[0].starts_with("f.jsonl:3:"));
        assert!(warnings[1].starts_with("f.jsonl:4:"));
        assert!(warnings[2].starts_with("f.jsonl:5:"));
        assert!(warnings[3].contains("torn last line"), "{warnings:?}");
    }

    #[test]
    fn distinct_hosts_keep_first_seen_order() {
        let hosts: Vec<String> = ["n2", "n1", "n2", "n3"].map(String::from).to_vec();
        assert_eq!(distinct_hosts(&hosts), ["n2", "n1", "n3"]);
    }
}
