//! Timelines as Chrome trace events (the JSON object format), written
//! event by event so a long run's file streams out without a copy in
//! memory, and read back for `hpcmap report --plot`.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::Facts;
use crate::cli::outputs::Output;
use crate::trace::{Phase, Span, Trace, lane_name};

/// The key that marks a timeline, first in the file.
pub const MARK: &str = "\"hpcmap_timeline\"";

/// `otherData`: the format's version, the run's facts, the ranks' resolutions.
#[derive(Serialize, Deserialize)]
struct Other {
    hpcmap_timeline: u32,
    #[serde(flatten)]
    facts: Facts,
    #[serde(default)]
    resolution_s: Vec<f64>,
}

/// One trace event as read back (only what timelines write).
#[derive(Deserialize)]
struct Event {
    name: String,
    ph: String,
    #[serde(default)]
    pid: u32,
    #[serde(default)]
    tid: u32,
    #[serde(default)]
    ts: f64,
    #[serde(default)]
    dur: f64,
    #[serde(default)]
    args: Args,
}

#[derive(Default, Deserialize)]
struct Args {
    #[serde(default)]
    first: u64,
    #[serde(default)]
    count: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct File {
    other_data: Other,
    trace_events: Vec<Event>,
}

/// Writes the timeline to `out` (whole or not at all).
pub fn write(mut out: Output, trace: &Trace, facts: &Facts) -> anyhow::Result<()> {
    let w = out.writer();
    let other = Other {
        hpcmap_timeline: 1,
        facts: facts.clone(),
        resolution_s: trace.resolution.clone(),
    };
    write!(w, "{{\"otherData\":")?;
    serde_json::to_writer(&mut *w, &other)?;
    write!(w, ",\"displayTimeUnit\":\"ms\",\"traceEvents\":[")?;
    let mut first = true;
    let mut event = |w: &mut dyn Write, value: serde_json::Value| -> anyhow::Result<()> {
        if !first {
            w.write_all(b",\n")?;
        }
        first = false;
        serde_json::to_writer(w, &value)?;
        Ok(())
    };
    let mut ranks: Vec<u32> = trace.lanes().iter().map(|&(r, _)| r).collect();
    ranks.dedup();
    for &rank in &ranks {
        let host = facts.hosts.get(rank as usize).map_or("", String::as_str);
        event(
            w,
            json!({"name": "process_name", "ph": "M", "pid": rank,
                        "args": {"name": format!("rank {rank} ({host})")}}),
        )?;
        event(
            w,
            json!({"name": "process_sort_index", "ph": "M", "pid": rank,
                        "args": {"sort_index": rank}}),
        )?;
    }
    for (rank, lane) in trace.lanes() {
        event(
            w,
            json!({"name": "thread_name", "ph": "M", "pid": rank, "tid": lane,
                        "args": {"name": lane_name(lane)}}),
        )?;
        event(
            w,
            json!({"name": "thread_sort_index", "ph": "M", "pid": rank, "tid": lane,
                        "args": {"sort_index": lane}}),
        )?;
    }
    for s in &trace.spans {
        // Microseconds, to the nanosecond.
        let us = |t: f64| (t * 1e9).round() / 1e3;
        event(
            w,
            json!({"name": s.phase.name(), "cat": s.phase.name(), "ph": "X",
                        "ts": us(s.start), "dur": us(s.end) - us(s.start),
                        "pid": s.rank, "tid": s.lane,
                        "args": {"first": s.first, "count": s.count}}),
        )?;
    }
    writeln!(w, "]}}")?;
    out.finish()
}

/// Reads a timeline that [`write`] wrote.
///
/// # Errors
/// When the file cannot be read or is not such a timeline.
pub fn read(path: &Path) -> anyhow::Result<(Trace, Facts)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the timeline {}", path.display()))?;
    let file: File = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a timeline written by hpcmap --timeline",
            path.display()
        )
    })?;
    if file.other_data.hpcmap_timeline != 1 {
        bail!(
            "{}: timeline format {} is newer than this hpcmap reads (1)",
            path.display(),
            file.other_data.hpcmap_timeline
        );
    }
    let spans = file
        .trace_events
        .into_iter()
        .filter(|e| e.ph == "X")
        .filter_map(|e| {
            let phase = Phase::ALL.into_iter().find(|p| p.name() == e.name)?;
            Some(Span {
                rank: e.pid,
                lane: e.tid,
                phase,
                start: e.ts * 1e-6,
                end: (e.ts + e.dur) * 1e-6,
                first: e.args.first,
                count: e.args.count,
            })
        })
        .collect();
    let trace = Trace {
        spans,
        resolution: file.other_data.resolution_s,
    };
    Ok((trace, file.other_data.facts))
}
