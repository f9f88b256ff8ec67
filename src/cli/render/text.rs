//! The readable report printed by the root after a run.

use std::fmt::Write;

use super::{human_bytes, human_seconds};
use crate::cli::record::{RunRecord, distinct_hosts};

/// Renders the full report.
pub fn render(r: &RunRecord) -> String {
    let mut o = String::new();
    let part = r
        .part
        .as_deref()
        .map(|p| format!(", part {p}"))
        .unwrap_or_default();
    let p = &r.phases;
    let share = |s: f64| {
        if r.wall_s > 0.0 {
            100.0 * s / r.wall_s
        } else {
            0.0
        }
    };
    let _ = writeln!(o, "workload: {} ({} items{part})", r.workload, r.items);
    let _ = writeln!(o, "ranks: {}", r.ranks);
    let _ = writeln!(
        o,
        "threads: {} per rank ({} threads in all)",
        r.threads,
        r.ranks * r.threads
    );
    let _ = writeln!(
        o,
        "nodes: {} ({})",
        r.nodes,
        distinct_hosts(&r.hosts).join(", ")
    );
    let _ = writeln!(
        o,
        "schedule: {}{}, {} chunk{} of up to {} items",
        r.schedule,
        if r.ordered { "" } else { " (unordered)" },
        r.chunks,
        if r.chunks == 1 { "" } else { "s" },
        r.chunk
    );
    let _ = writeln!(
        o,
        "wall: {} ({:.0} items/s); input built in {} beforehand, not counted",
        human_seconds(r.wall_s),
        r.items_per_s,
        human_seconds(r.prepare_s)
    );
    let _ = writeln!(o, "phases (root's view; compute across ranks):");
    for (name, s, note) in [
        ("split+serialize", p.serialize, ""),
        ("scatter", p.scatter, scatter_note(r)),
        (
            "compute (root)",
            root_compute(r),
            "decode + map + encode on the root",
        ),
        ("wait", p.wait, wait_note(r)),
        ("gather", p.gather, gather_note(r)),
        ("deserialize+assemble", p.assemble, "includes the checksum"),
    ] {
        let _ = writeln!(
            o,
            "  {name:<22}{:>12} {:>6.1}%  {note}",
            human_seconds(s),
            share(s)
        );
    }
    let _ = writeln!(
        o,
        "  compute across ranks: min {} mean {} max {}",
        human_seconds(p.compute.min),
        human_seconds(p.compute.mean),
        human_seconds(p.compute.max)
    );
    let _ = writeln!(
        o,
        "imbalance: {:.3} (max/mean compute; 1 is perfect)",
        r.imbalance
    );
    let _ = writeln!(
        o,
        "bytes: scattered {} ({}), gathered {} ({})",
        r.bytes_scattered,
        human_bytes(r.bytes_scattered),
        r.bytes_gathered,
        human_bytes(r.bytes_gathered)
    );
    if r.resumed_items > 0 {
        let _ = writeln!(
            o,
            "resumed: {} items from the journal, {} computed in this run",
            r.resumed_items, r.items
        );
    }
    if let Some(rss) = r.root_peak_rss {
        let _ = writeln!(o, "memory: root peak resident {}", human_bytes(rss));
    }
    if r.ranks > 1 {
        let _ = writeln!(
            o,
            "per rank:  rank       items  chunks     compute        wait  host"
        );
        for (rank, s) in r.per_rank.iter().enumerate() {
            let host = r.hosts.get(rank).map_or("?", |h| h.as_str());
            let _ = writeln!(
                o,
                "          {rank:>5} {:>11} {:>7} {:>11} {:>11}  {host}",
                s.items,
                s.chunks,
                human_seconds(s.compute_s),
                human_seconds(s.wait_s)
            );
        }
    }
    model_lines(&mut o, r);
    if !r.skipped.is_empty() {
        let _ = writeln!(
            o,
            "skipped: {} items failed; the answer covers the other {}",
            r.skipped.len(),
            (r.items + r.resumed_items).saturating_sub(r.skipped.len() as u64)
        );
        for f in r.skipped.iter().take(10) {
            let host = r.hosts.get(f.rank as usize).map_or("?", |h| h.as_str());
            let _ = writeln!(
                o,
                "  item {} on rank {} ({host}): {}",
                r.first_number + f.index,
                f.rank,
                f.message
            );
        }
        if r.skipped.len() > 10 {
            let _ = writeln!(o, "  ... and {} more (see --json)", r.skipped.len() - 10);
        }
    }
    let _ = writeln!(o, "answer: {}", r.answer.text);
    let _ = writeln!(o, "checksum: {}", r.checksum);
    o
}

/// The `model:` line: predicted against measured communication and the
/// fit of each link the run used, or which links have no fit.
fn model_lines(o: &mut String, r: &RunRecord) {
    let Some(m) = &r.model else {
        return;
    };
    let Some(predicted) = m.predicted_comm_s else {
        let models = m
            .models
            .as_deref()
            .map_or(String::new(), |p| format!(" in {p}"));
        let _ = writeln!(
            o,
            "model: none fits this placement: no fit for {}{models}; measure it with `mpirun -n {} hpcmap bench pingpong` on these hosts (rank 0 pings a rank on its own host and one on each other host)",
            m.missing.join(", "),
            r.ranks
        );
        return;
    };
    let _ = writeln!(
        o,
        "model: communication predicted {} vs measured {} ({}); compute/communication {}",
        human_seconds(predicted),
        human_seconds(m.measured_comm_s),
        if is_static(r) {
            "scatter + gather"
        } else {
            "send + receive calls, overlapped with compute"
        },
        m.compute_to_comm.map_or("-".into(), |c| format!("{c:.1}"))
    );
    let rate = |per_byte: f64| 1e-6 / per_byte.max(f64::MIN_POSITIVE);
    for l in &m.links {
        let fresh = if l.first_touch > 0.0 {
            format!(", {:.1} MB/s into fresh buffers", rate(l.first_touch))
        } else {
            String::new()
        };
        let _ = writeln!(
            o,
            "  {} ({}, {} rank{}): alpha {:.2} us, {:.1} MB/s{fresh}; {} messages, {} -> {}",
            l.between,
            l.placement,
            l.ranks,
            if l.ranks == 1 { "" } else { "s" },
            l.alpha * 1e6,
            rate(l.beta),
            l.messages,
            human_bytes(l.bytes),
            human_seconds(l.predicted_s)
        );
    }
}

fn is_static(r: &RunRecord) -> bool {
    r.schedule == "static"
}

fn scatter_note(r: &RunRecord) -> &'static str {
    if is_static(r) {
        "Scatterv"
    } else {
        "non-blocking chunk sends"
    }
}

fn wait_note(r: &RunRecord) -> &'static str {
    if is_static(r) {
        "root idle, waiting for the slowest rank"
    } else {
        "root idle, its own work done, waiting for results"
    }
}

fn gather_note(r: &RunRecord) -> &'static str {
    if is_static(r) {
        "Gatherv"
    } else {
        "receiving results between batches"
    }
}

/// The root's own compute time (rank 0 of the per-rank table).
fn root_compute(r: &RunRecord) -> f64 {
    r.per_rank
        .first()
        .map_or(r.phases.compute.max, |s| s.compute_s)
}
