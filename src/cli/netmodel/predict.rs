//! A run's communication predicted per link: every byte is charged to the
//! path it took, between the root's host and the host of the rank that
//! sent or received it, at that path's own alpha and beta.
//!
//! The root is one end of every message, and its link carries them one
//! after another, so the prediction is a sum over ranks:
//! * static: per other rank, two messages out (its byte count, then its
//!   chunks: two Scattervs) and one back (Gatherv). OpenMPI's Scatterv and
//!   Gatherv are linear: the root sends to (receives from) one rank after
//!   the other, so two ranks on another node take twice one rank's time
//!   over the one link;
//! * dynamic/guided: per worker, one message each way per chunk and a
//!   final stop (mostly overlapped with compute).
//!
//! A message received into a buffer of [`FRESH_BYTES`] or more (a static
//! rank's chunks, the root's buffer for all results, a big dynamic chunk)
//! lands in pages allocated for it (the command maps such buffers fresh
//! from the OS and returns them when freed, see `release_big_buffers` in
//! `cli`), touched for the first time as it arrives: it moves no faster
//! than the fit's `first_touch` rate. Inside a node that, not the copy, is most of the
//! cost (measured here: 1.5 GB/s into fresh pages, 12 GB/s into warm ones);
//! over a network it is hidden behind a slower link.
//!
//! The records carry total bytes, not bytes per rank; each rank's share is
//! its share of the items mapped away from the root (exact for items of
//! one size, like `square`'s).

use serde::{Deserialize, Serialize};

use super::models::{Link, Models};
use crate::stats::{Phases, RankStats};

/// What the model needs to know about a map.
#[derive(Clone, Copy, Debug)]
pub struct MapShape<'a> {
    /// Schedule name.
    pub schedule: &'a str,
    /// Hostname of each rank, by rank.
    pub hosts: &'a [String],
    /// What each rank mapped, by rank.
    pub per_rank: &'a [RankStats],
    /// Bytes sent to other ranks.
    pub bytes_scattered: u64,
    /// Bytes received from other ranks.
    pub bytes_gathered: u64,
}

/// The traffic one link carried in a run, and its predicted time.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LinkUse {
    /// The path, e.g. `node1 <-> node2`.
    pub between: String,
    /// `same host` or `across hosts`.
    pub placement: String,
    /// Latency of its fit, seconds.
    pub alpha: f64,
    /// Seconds per byte of its fit.
    pub beta: f64,
    /// Seconds per byte into fresh memory of its fit (messages of
    /// [`FRESH_BYTES`] or more move no faster).
    pub first_touch: f64,
    /// Ranks the root reached over it.
    pub ranks: u64,
    /// Messages over it.
    pub messages: u64,
    /// Bytes over it, both ways.
    pub bytes: u64,
    /// Predicted time, seconds.
    pub predicted_s: f64,
}

/// The model's verdict on one run, as reported.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Verdict {
    /// The links the run used, each with the fit it was explained by;
    /// empty when any of them has no fit.
    pub links: Vec<LinkUse>,
    /// Links the run used that have no fit (then nothing is predicted).
    pub missing: Vec<String>,
    /// The model file looked in.
    pub models: Option<String>,
    /// Predicted communication time, seconds; `None` when a link has no fit.
    pub predicted_comm_s: Option<f64>,
    /// Measured communication time (root's scatter + gather), seconds.
    pub measured_comm_s: f64,
    /// Slowest rank's compute over the communication time (measured for
    /// static; predicted for dynamic, whose messages overlap compute);
    /// `None` when nothing was communicated or nothing predicted.
    pub compute_to_comm: Option<f64>,
}

/// Buffers from this size up are fresh pages: the threshold the command
/// sets for glibc's mmap.
pub const FRESH_BYTES: f64 = crate::cli::FRESH_BUFFER_BYTES as f64;

/// `count` messages of `each` bytes, received into fresh pages or not.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Messages {
    count: f64,
    each: f64,
    fresh: bool,
}

/// The messages between the root and rank `r`.
fn traffic(m: &MapShape<'_>, r: usize, share: f64) -> [Messages; 3] {
    let (out, back) = (
        m.bytes_scattered as f64 * share,
        m.bytes_gathered as f64 * share,
    );
    let one = |each: f64, buffer: f64| Messages {
        count: 1.0,
        each,
        fresh: buffer >= FRESH_BYTES,
    };
    if m.schedule == "static" {
        // The byte count (8 bytes, not in the totals), the chunks into a
        // buffer of their own, the results into one buffer for all ranks.
        [
            one(0.0, 0.0),
            one(out, out),
            one(back, m.bytes_gathered as f64),
        ]
    } else {
        let chunks = m.per_rank.get(r).map_or(0, |s| s.chunks) as f64;
        let each = |bytes: f64| {
            let each = if chunks > 0.0 { bytes / chunks } else { 0.0 };
            Messages {
                count: chunks,
                each,
                fresh: each >= FRESH_BYTES,
            }
        };
        // A chunk out and its results back per chunk, each in a buffer of
        // its own, then the stop.
        [each(out), each(back), one(0.0, 0.0)]
    }
}

/// Each other rank's share of the bytes moved, by rank (from 1).
fn shares(m: &MapShape<'_>) -> Vec<f64> {
    let ranks = m.hosts.len().max(m.per_rank.len());
    let items = |r: usize| m.per_rank.get(r).map_or(0, |s| s.items);
    let away: u64 = (1..ranks).map(items).sum();
    (1..ranks)
        .map(|r| match away {
            // Without per-rank items (older records), an even split.
            0 => 1.0 / (ranks - 1) as f64,
            _ => items(r) as f64 / away as f64,
        })
        .collect()
}

/// Explains a run of `shape` whose root measured `phases` with the fits in
/// `models`; `None` for one rank (nothing is communicated).
pub fn explain(models: Option<&Models>, shape: &MapShape<'_>, phases: &Phases) -> Option<Verdict> {
    if shape.hosts.len().max(shape.per_rank.len()) < 2 {
        return None;
    }
    let root = shape.hosts.first().map_or("?", |h| h.as_str());
    let host = |r: usize| shape.hosts.get(r).map_or("?", |h| h.as_str());
    let mut links: Vec<(Link, LinkUse)> = Vec::new();
    let mut missing: Vec<Link> = Vec::new();
    for (r, share) in (1..).zip(shares(shape)) {
        let link = Link::new(root, host(r));
        let Some(fit) = models.and_then(|m| m.get(&link)) else {
            if !missing.contains(&link) {
                missing.push(link);
            }
            continue;
        };
        let at = match links.iter().position(|(l, _)| *l == link) {
            Some(at) => at,
            None => {
                let used = LinkUse {
                    between: link.to_string(),
                    placement: link.placement().to_string(),
                    alpha: fit.model.alpha,
                    beta: fit.model.beta,
                    first_touch: fit.first_touch,
                    ..LinkUse::default()
                };
                links.push((link, used));
                links.len() - 1
            }
        };
        let used = &mut links[at].1;
        used.ranks += 1;
        for m in traffic(shape, r, share) {
            used.messages += m.count as u64;
            // Shares of the totals: rounded to whole bytes.
            used.bytes = (used.bytes as f64 + m.count * m.each).round() as u64;
            used.predicted_s += m.count * fit.message_time(m.each, m.fresh);
        }
    }
    let measured = phases.scatter + phases.gather;
    let predicted = missing
        .is_empty()
        .then(|| links.iter().map(|(_, u)| u.predicted_s).sum::<f64>());
    // Static runs measure their collectives; dynamic messages overlap
    // compute, so only the prediction says what they cost.
    let comm = if shape.schedule == "static" {
        Some(measured)
    } else {
        predicted
    };
    Some(Verdict {
        links: if missing.is_empty() {
            links.into_iter().map(|(_, u)| u).collect()
        } else {
            Vec::new()
        },
        missing: missing.iter().map(Link::to_string).collect(),
        models: models
            .and_then(|m| m.source.as_ref())
            .map(|p| p.display().to_string()),
        predicted_comm_s: predicted,
        measured_comm_s: measured,
        compute_to_comm: comm.filter(|c| *c > 0.0).map(|c| phases.compute.max / c),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::netmodel::{Fit, Hockney};

    /// Fits of (host, host, alpha, beta, first touch).
    fn models(fits: &[(&str, &str, f64, f64, f64)]) -> Models {
        let mut m = Models::default();
        for &(a, b, alpha, beta, first_touch) in fits {
            m.insert(Fit {
                between: Link::new(a, b),
                model: Hockney { alpha, beta },
                first_touch,
                largest_message: 0,
                measured_at: 0,
            });
        }
        m
    }

    fn ranks(items: &[u64], chunks: &[u64]) -> Vec<RankStats> {
        items
            .iter()
            .zip(chunks)
            .map(|(&items, &chunks)| RankStats {
                items,
                chunks,
                ..RankStats::default()
            })
            .collect()
    }

    fn hosts(names: &[&str]) -> Vec<String> {
        names.iter().map(|h| h.to_string()).collect()
    }

    fn close(got: f64, want: f64) -> bool {
        (got - want).abs() <= 1e-12 * want.abs().max(1e-12)
    }

    /// Two nodes x two ranks, 500 items each, 12 MB scattered and gathered
    /// (4 MB to and from each other rank: into fresh buffers).
    #[test]
    fn static_two_by_two_charges_each_link_its_own_bytes() {
        let m = models(&[
            ("n1", "n1", 1e-6, 1e-10, 5e-10),
            ("n1", "n2", 20e-6, 1e-8, 5e-10),
        ]);
        let per_rank = ranks(&[500; 4], &[1; 4]);
        let h = hosts(&["n1", "n1", "n2", "n2"]);
        let shape = MapShape {
            schedule: "static",
            hosts: &h,
            per_rank: &per_rank,
            bytes_scattered: 12_000_000,
            bytes_gathered: 12_000_000,
        };
        let phases = Phases {
            scatter: 0.1,
            gather: 0.1,
            ..Phases::default()
        };
        let v = explain(Some(&m), &shape, &phases).unwrap();
        assert!(v.missing.is_empty());
        assert_eq!(v.links.len(), 2);
        let (same, across) = (&v.links[0], &v.links[1]);
        // Rank 1: 3 messages, 8 MB at the first-touch rate (slower than
        // the copy): 3 x 1 us + 8e6 x 0.5 ns = 4.003 ms.
        assert_eq!((same.between.as_str(), same.ranks), ("n1 <-> n1", 1));
        assert_eq!((same.messages, same.bytes), (3, 8_000_000));
        assert!(close(same.predicted_s, 0.004003), "{same:?}");
        // Ranks 2 and 3, one after the other, at the link's rate (slower
        // than first touch): 6 x 20 us + 16e6 x 10 ns = 160.12 ms.
        assert_eq!(
            (across.placement.as_str(), across.ranks),
            ("across hosts", 2)
        );
        assert_eq!((across.messages, across.bytes), (6, 16_000_000));
        assert!(close(across.predicted_s, 0.16012), "{across:?}");
        assert!(close(v.predicted_comm_s.unwrap(), 0.164123));
        assert!(close(v.measured_comm_s, 0.2));
    }

    #[test]
    fn only_big_receive_buffers_pay_the_first_touch() {
        // Eight ranks on one host, 300 kB out to each other rank (its own
        // buffer: under 1 MiB, warm) and back into the root's one buffer
        // of 2.1 MB (fresh). Per rank: 3 x 1 us + 3e5 x 0.1 ns + 3e5 x
        // 0.5 ns = 183 us; seven ranks: 1.281 ms.
        let m = models(&[("n1", "n1", 1e-6, 1e-10, 5e-10)]);
        let per_rank = ranks(&[10; 8], &[1; 8]);
        let h = hosts(&["n1"; 8]);
        let shape = MapShape {
            schedule: "static",
            hosts: &h,
            per_rank: &per_rank,
            bytes_scattered: 2_100_000,
            bytes_gathered: 2_100_000,
        };
        let v = explain(Some(&m), &shape, &Phases::default()).unwrap();
        assert_eq!((v.links[0].ranks, v.links[0].bytes), (7, 4_200_000));
        assert!(close(v.predicted_comm_s.unwrap(), 0.001281), "{v:?}");
    }

    #[test]
    fn dynamic_charges_each_worker_its_chunks_and_its_share() {
        let m = models(&[
            ("n1", "n1", 1e-6, 1e-9, 5e-9),
            ("n1", "n2", 1e-5, 1e-8, 5e-9),
        ]);
        // The root mapped 100 items itself; rank 1 (n2) 300 in 30 chunks,
        // rank 2 (n1) 100 in 10: 4 MB moved, 3 MB of it over the link, in
        // messages of 50 kB: warm buffers, no first-touch cost.
        let per_rank = ranks(&[100, 300, 100], &[10, 30, 10]);
        let h = hosts(&["n1", "n2", "n1"]);
        let shape = MapShape {
            schedule: "dynamic",
            hosts: &h,
            per_rank: &per_rank,
            bytes_scattered: 2_000_000,
            bytes_gathered: 2_000_000,
        };
        let phases = Phases {
            compute: crate::stats::Spread {
                max: 0.062,
                ..Default::default()
            },
            ..Phases::default()
        };
        let v = explain(Some(&m), &shape, &phases).unwrap();
        // n1 <-> n2: 61 messages x 10 us + 3e6 x 10 ns = 30.61 ms;
        // n1 <-> n1: 21 x 1 us + 1e6 x 1 ns = 1.021 ms.
        assert_eq!(v.links[0].between, "n1 <-> n2");
        assert_eq!((v.links[0].messages, v.links[0].bytes), (61, 3_000_000));
        assert!(close(v.links[0].predicted_s, 0.03061));
        assert_eq!((v.links[1].messages, v.links[1].bytes), (21, 1_000_000));
        assert!(close(v.links[1].predicted_s, 0.001021));
        assert!(close(v.predicted_comm_s.unwrap(), 0.031631));
        // Dynamic: compute over the predicted communication.
        assert!(close(v.compute_to_comm.unwrap(), 0.062 / 0.031631));
    }

    #[test]
    fn a_placement_without_a_fit_is_named_not_borrowed() {
        // Only shared memory on n1 was measured: the run across n1 and n2
        // must not be explained by it.
        let mut m = models(&[("n1", "n1", 1e-6, 1e-10, 0.0)]);
        m.source = Some("/tmp/network.json".into());
        let per_rank = ranks(&[1, 1, 1, 1], &[1, 1, 1, 1]);
        let h = hosts(&["n1", "n1", "n2", "n3"]);
        let shape = MapShape {
            schedule: "static",
            hosts: &h,
            per_rank: &per_rank,
            bytes_scattered: 30,
            bytes_gathered: 30,
        };
        let phases = Phases {
            scatter: 0.5,
            ..Phases::default()
        };
        let v = explain(Some(&m), &shape, &phases).unwrap();
        assert_eq!(v.missing, ["n1 <-> n2", "n1 <-> n3"]);
        assert!(v.links.is_empty() && v.predicted_comm_s.is_none());
        assert_eq!(v.models.as_deref(), Some("/tmp/network.json"));
        // No model file at all: every link is missing.
        let v = explain(None, &shape, &phases).unwrap();
        assert_eq!(v.missing, ["n1 <-> n1", "n1 <-> n2", "n1 <-> n3"]);
        assert_eq!(v.models, None);
    }

    #[test]
    fn one_rank_moves_nothing() {
        let per_rank = ranks(&[10], &[1]);
        let h = hosts(&["n1"]);
        let shape = MapShape {
            schedule: "static",
            hosts: &h,
            per_rank: &per_rank,
            bytes_scattered: 0,
            bytes_gathered: 0,
        };
        let m = models(&[("n1", "n1", 1e-6, 1e-10, 0.0)]);
        assert_eq!(explain(Some(&m), &shape, &Phases::default()), None);
    }
}
