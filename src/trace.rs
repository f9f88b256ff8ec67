//! Where the time of a map went, rank by rank and thread by thread: spans
//! of computing, serializing, sending, receiving, assembling and waiting,
//! recorded while the map runs (only when [`crate::MapOptions::trace`] asks)
//! and gathered on the root at its end ([`crate::MapStats::trace`]).
//!
//! Memory stays bounded and recording cheap however small the chunks:
//! a span shorter than the rank's resolution (at first [`RESOLUTION`],
//! 50 us) is not kept but binned, per lane, into a bin of twice that
//! length, which becomes one span per phase laid end to end: the phases'
//! totals stay exact (so compute spans sum to the rank's compute time),
//! only their order within a bin is lost. When a rank has kept
//! [`MAX_SPANS`] spans its resolution doubles and its spans are binned
//! again, as often as needed, so a long run ends with a coarser picture,
//! never a truncated one. With many ranks each keeps fewer ([`JOB_SPANS`]
//! in all, at least 256 each), so what the root gathers stays bounded as
//! jobs grow. Times are seconds since the map started on each rank (right
//! after a barrier, so the ranks' clocks line up to within its skew).
//!
//! Lanes of a rank: [`LANE_MPI`] is its MPI thread (communication, waits,
//! and the chunks it maps itself); [`LANE_LOCAL`] the root's local worker
//! thread (dynamic and guided with several threads or blocking tasks);
//! `LANE_THREADS + i` compute thread `i` when there are several.

use std::ops::Range;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Spans shorter than this are binned (see the module docs), at first.
pub const RESOLUTION: f64 = 50e-6;
/// Spans a rank keeps before its resolution doubles (fewer with many
/// ranks: see [`JOB_SPANS`]).
pub const MAX_SPANS: usize = 1 << 20;
/// Spans all ranks of a job keep at most (each `JOB_SPANS / ranks`, at
/// least 256, so more in jobs over 8192 ranks): encoded and decoded on the
/// root, about 90 bytes each, under 200 MB.
pub const JOB_SPANS: usize = 1 << 21;
/// The lane of a rank's MPI thread.
pub const LANE_MPI: u32 = 0;
/// The lane of the root's local worker thread.
pub const LANE_LOCAL: u32 = 1;
/// The lane of compute thread 0 (thread `i` is `LANE_THREADS + i`).
pub const LANE_THREADS: u32 = 2;

/// A lane's name, as pictures and trace viewers show it.
pub fn lane_name(lane: u32) -> String {
    match lane {
        LANE_MPI => "mpi".into(),
        LANE_LOCAL => "local worker".into(),
        _ => format!("thread {}", lane - LANE_THREADS),
    }
}

/// What a span of time was spent on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Mapping items (decoding, mapping, encoding: a chunk).
    Compute,
    /// The root encoding chunks for other ranks.
    Serialize,
    /// Handing chunks or results to MPI.
    Send,
    /// Taking chunks or results from MPI.
    Receive,
    /// The root decoding, checksumming and handing on results.
    Assemble,
    /// Nothing to do: waiting for work or results.
    Wait,
}

impl Phase {
    /// Every phase, in the order pictures list them.
    pub const ALL: [Phase; 6] = [
        Phase::Compute,
        Phase::Serialize,
        Phase::Send,
        Phase::Receive,
        Phase::Assemble,
        Phase::Wait,
    ];

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Compute => "compute",
            Phase::Serialize => "serialize",
            Phase::Send => "send",
            Phase::Receive => "receive",
            Phase::Assemble => "assemble",
            Phase::Wait => "wait",
        }
    }
}

/// One span of time on one lane.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Span {
    /// The rank.
    pub rank: u32,
    /// The lane within the rank: 0 is the rank's MPI thread (its chunks and
    /// its communication); 1..=T its compute threads when it has several.
    pub lane: u32,
    /// What the time went to.
    pub phase: Phase,
    /// Start, seconds since the map started.
    pub start: f64,
    /// End, seconds since the map started.
    pub end: f64,
    /// The first item concerned (compute, serialize, send, receive, assemble).
    pub first: u64,
    /// How many items (0 when none in particular); a binned span counts
    /// the items of every piece in it, which need not follow `first`.
    pub count: u64,
}

/// Every rank's spans of one map, on the root.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    /// The spans, rank by rank, in time order within a lane.
    pub spans: Vec<Span>,
    /// Each rank's final resolution, seconds (see the module docs).
    pub resolution: Vec<f64>,
}

impl Trace {
    /// The total length of `phase` spans of `rank` on its chunk lanes
    /// ([`LANE_MPI`] and [`LANE_LOCAL`]): for compute, the rank's
    /// compute time as the stats report it.
    pub fn total(&self, rank: u32, phase: Phase) -> f64 {
        self.spans
            .iter()
            .filter(|s| s.rank == rank && s.lane <= LANE_LOCAL && s.phase == phase)
            .map(|s| s.end - s.start)
            .sum()
    }

    /// The lanes in use, by rank then lane.
    pub fn lanes(&self) -> Vec<(u32, u32)> {
        let mut lanes: Vec<(u32, u32)> = self.spans.iter().map(|s| (s.rank, s.lane)).collect();
        lanes.sort_unstable();
        lanes.dedup();
        lanes
    }

    /// When the last span ended.
    pub fn end(&self) -> f64 {
        self.spans.iter().map(|s| s.end).fold(0.0, f64::max)
    }
}

/// Records one rank's spans (a no-op unless tracing).
pub struct Recorder {
    on: bool,
    rank: u32,
    t0: Instant,
    spans: Vec<Span>,
    /// Short spans being binned, per lane.
    bins: Vec<Option<Bin>>,
    /// Spans shorter than this are binned (seconds).
    resolution: f64,
    /// Spans kept before the resolution doubles.
    limit: usize,
}

/// Short spans of one lane from `start` until `until`.
#[derive(Clone, Debug)]
struct Bin {
    start: Instant,
    until: Instant,
    time: [f64; 6],
    first: [u64; 6],
    count: [u64; 6],
}

impl Recorder {
    /// A recorder for `rank` of `ranks`, timing from `t0`; records only when `on`.
    pub fn new(on: bool, rank: usize, ranks: usize, t0: Instant) -> Recorder {
        Recorder {
            on,
            rank: rank as u32,
            t0,
            spans: Vec::new(),
            bins: Vec::new(),
            resolution: RESOLUTION,
            limit: (JOB_SPANS / ranks.max(1)).clamp(256, MAX_SPANS),
        }
    }

    /// Whether spans are being recorded.
    #[inline]
    pub fn on(&self) -> bool {
        self.on
    }

    /// Records `phase` on the MPI lane from `start` until now, about
    /// `items`; returns now (the next span's start). Does not read the
    /// clock unless recording.
    #[inline]
    pub fn since(&mut self, phase: Phase, start: Instant, items: Range<usize>) -> Instant {
        if !self.on {
            return start;
        }
        let now = Instant::now();
        self.record(LANE_MPI, phase, start, now, items);
        now
    }

    /// Records the runs of items a chunk's compute threads mapped.
    pub fn threads(&mut self, runs: &[crate::executor::ThreadRun]) {
        if self.on {
            for r in runs {
                let lane = LANE_THREADS + r.thread as u32;
                self.record(
                    lane,
                    Phase::Compute,
                    r.start,
                    r.end,
                    r.first..r.first + r.count,
                );
            }
        }
    }

    /// Records `phase` on `lane` from `start` to `end`, about `items`.
    #[inline]
    pub fn record(
        &mut self,
        lane: u32,
        phase: Phase,
        start: Instant,
        end: Instant,
        items: Range<usize>,
    ) {
        if self.on {
            let secs = end.saturating_duration_since(start).as_secs_f64();
            self.record_for(lane, phase, start, secs, items);
        }
    }

    /// [`Recorder::record`] with the span's length already measured
    /// (`secs`): a short span then costs a comparison and a few additions.
    #[inline]
    pub fn record_for(
        &mut self,
        lane: u32,
        phase: Phase,
        start: Instant,
        secs: f64,
        items: Range<usize>,
    ) {
        if self.on {
            self.add(
                lane,
                phase,
                start,
                secs,
                items.start as u64,
                items.len() as u64,
            );
        }
    }

    fn add(&mut self, lane: u32, phase: Phase, start: Instant, secs: f64, first: u64, count: u64) {
        let slot = lane as usize;
        if secs < self.resolution {
            if let Some(bin) = self.bins.get_mut(slot).and_then(Option::as_mut)
                && start < bin.until
            {
                let k = phase as usize;
                bin.time[k] += secs;
                bin.first[k] = bin.first[k].min(first);
                bin.count[k] += count;
                return;
            }
            self.flush(lane);
            if self.bins.len() <= slot {
                self.bins.resize(slot + 1, None);
            }
            let mut bin = Bin {
                start,
                until: start + Duration::from_secs_f64(2.0 * self.resolution),
                time: [0.0; 6],
                first: [u64::MAX; 6],
                count: [0; 6],
            };
            let k = phase as usize;
            (bin.time[k], bin.first[k], bin.count[k]) = (secs, first, count);
            self.bins[slot] = Some(bin);
            return;
        }
        self.flush(lane);
        let s = start.saturating_duration_since(self.t0).as_secs_f64();
        self.keep(Span {
            rank: self.rank,
            lane,
            phase,
            start: s,
            end: s + secs,
            first,
            count,
        });
    }

    /// Lays `lane`'s bin out as one span per phase.
    fn flush(&mut self, lane: u32) {
        let Some(bin) = self.bins.get_mut(lane as usize).and_then(Option::take) else {
            return;
        };
        let mut at = bin.start.saturating_duration_since(self.t0).as_secs_f64();
        for phase in Phase::ALL {
            let k = phase as usize;
            if bin.time[k] > 0.0 {
                self.keep(Span {
                    rank: self.rank,
                    lane,
                    phase,
                    start: at,
                    end: at + bin.time[k],
                    first: if bin.count[k] == 0 { 0 } else { bin.first[k] },
                    count: bin.count[k],
                });
                at += bin.time[k];
            }
        }
    }

    fn keep(&mut self, span: Span) {
        self.spans.push(span);
        if self.spans.len() >= self.limit {
            self.coarsen();
        }
    }

    /// Doubles the resolution and bins the spans kept so far again, until
    /// at most half the limit remain.
    fn coarsen(&mut self) {
        while self.spans.len() >= self.limit / 2 {
            let recorded = self.spans.iter().map(|s| s.end).fold(0.0, f64::max);
            if self.resolution > recorded {
                // As coarse as it gets (a bin per lane and phase: many
                // threads): keep what there is rather than loop forever.
                self.limit = 2 * self.spans.len() + 2;
                return;
            }
            self.resolution *= 2.0;
            let spans = std::mem::take(&mut self.spans);
            let bins = std::mem::take(&mut self.bins);
            for s in spans {
                let start = self.t0 + Duration::from_secs_f64(s.start);
                self.add(s.lane, s.phase, start, s.end - s.start, s.first, s.count);
            }
            for lane in 0..self.bins.len() {
                self.flush(lane as u32);
            }
            // The bins open before coarsening continue (they are the latest).
            self.bins = bins;
        }
    }

    /// The spans as bytes, to gather on the root (after the map's end).
    pub fn encode(mut self) -> Vec<u8> {
        if !self.on {
            return Vec::new();
        }
        for lane in 0..self.bins.len() {
            self.flush(lane as u32);
        }
        let mut out = Vec::with_capacity(8 + 40 * self.spans.len());
        out.extend_from_slice(&self.resolution.to_le_bytes());
        for s in &self.spans {
            for v in [
                (u64::from(s.lane) << 8) | s.phase as u64,
                (s.start * 1e9).round() as u64,
                (s.end * 1e9).round() as u64,
                s.first,
                s.count,
            ] {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        out
    }

    /// Spans of `rank` from [`Recorder::encode`]'s bytes, and its resolution.
    pub fn decode(rank: usize, bytes: &[u8]) -> (Vec<Span>, f64) {
        let Some((resolution, spans)) = bytes.split_first_chunk::<8>() else {
            return (Vec::new(), RESOLUTION);
        };
        let spans = spans
            .chunks_exact(40)
            .filter_map(|c| {
                let w =
                    |i: usize| u64::from_le_bytes(c[8 * i..8 * i + 8].try_into().expect("8 bytes"));
                Some(Span {
                    rank: rank as u32,
                    lane: (w(0) >> 8) as u32,
                    phase: *Phase::ALL.get((w(0) & 0xff) as usize)?,
                    start: w(1) as f64 * 1e-9,
                    end: w(2) as f64 * 1e-9,
                    first: w(3),
                    count: w(4),
                })
            })
            .collect();
        (spans, f64::from_le_bytes(*resolution))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(r: Recorder) -> (Vec<Span>, f64) {
        Recorder::decode(3, &r.encode())
    }

    #[test]
    fn short_spans_are_binned_with_exact_totals_long_ones_kept() {
        let mut r = Recorder::new(true, 3, 4, Instant::now());
        let t = r.t0;
        let at = |us: u64| t + Duration::from_micros(us);
        // Chunks of 10 us with 2 us of receiving between: binned per 100 us.
        for k in 0..20u64 {
            r.record(LANE_MPI, Phase::Receive, at(12 * k), at(12 * k + 2), 0..0);
            r.record(
                LANE_MPI,
                Phase::Compute,
                at(12 * k + 2),
                at(12 * k + 12),
                k as usize..k as usize + 1,
            );
        }
        r.record(LANE_THREADS, Phase::Compute, at(5), at(9), 7..9); // another lane
        r.record(LANE_MPI, Phase::Wait, at(300), at(1300), 0..0); // long: kept as is
        let (spans, resolution) = spans(r);
        assert_eq!(resolution, RESOLUTION);
        let total = |phase: Phase, lane: u32| -> f64 {
            spans
                .iter()
                .filter(|s| s.phase == phase && s.lane == lane)
                .map(|s| s.end - s.start)
                .sum()
        };
        assert!((total(Phase::Compute, LANE_MPI) - 200e-6).abs() < 1e-9);
        assert!((total(Phase::Receive, LANE_MPI) - 40e-6).abs() < 1e-9);
        assert!((total(Phase::Compute, LANE_THREADS) - 4e-6).abs() < 1e-9);
        let items: u64 = spans
            .iter()
            .filter(|s| s.phase == Phase::Compute && s.lane == LANE_MPI)
            .map(|s| s.count)
            .sum();
        assert_eq!(items, 20);
        // 240 us in bins of 100 us: 3 bins of two phases, then the wait.
        let mpi: Vec<&Span> = spans.iter().filter(|s| s.lane == LANE_MPI).collect();
        assert_eq!(mpi.len(), 7, "{mpi:?}");
        assert!(
            mpi.windows(2).all(|w| w[0].end <= w[1].start + 1e-12),
            "no overlaps: {mpi:?}"
        );
        let wait = mpi.last().unwrap();
        assert_eq!(wait.phase, Phase::Wait);
        assert!((wait.start - 300e-6).abs() < 1e-9 && (wait.end - 1300e-6).abs() < 1e-9);
        let off = Recorder::new(false, 0, 1, Instant::now());
        assert!(off.encode().is_empty());
    }

    #[test]
    fn past_the_limit_resolution_doubles_and_totals_hold() {
        let mut r = Recorder::new(true, 0, 1, Instant::now());
        let t = r.t0;
        let n = MAX_SPANS as u64 + 10;
        for k in 0..n {
            let at = |us: u64| t + Duration::from_micros(us);
            r.record(
                LANE_MPI,
                Phase::Compute,
                at(100 * k),
                at(100 * k + 60),
                0..1,
            );
        }
        let (spans, resolution) = Recorder::decode(0, &r.encode());
        assert!(
            resolution > RESOLUTION && spans.len() < MAX_SPANS,
            "{resolution} {}",
            spans.len()
        );
        let total: f64 = spans.iter().map(|s| s.end - s.start).sum();
        assert!((total - n as f64 * 60e-6).abs() < 1e-5 * total, "{total}");
        assert_eq!(spans.iter().map(|s| s.count).sum::<u64>(), n);
    }

    #[test]
    fn many_ranks_keep_few_spans_each_and_many_lanes_cannot_loop() {
        // A rank of a 100 000-rank job keeps 256 spans; its 600 lanes
        // (threads) need more than that even in one bin each: coarsening
        // stops there and keeps them, totals exact.
        let mut r = Recorder::new(true, 7, 100_000, Instant::now());
        assert_eq!(r.limit, 256);
        let t = r.t0;
        for k in 0..6000u64 {
            let lane = LANE_THREADS + (k % 600) as u32;
            let at = |us: u64| t + Duration::from_micros(us);
            r.record(
                lane,
                Phase::Compute,
                at(k),
                at(k + 1000),
                k as usize..k as usize + 1,
            );
        }
        let (spans, _) = Recorder::decode(7, &r.encode());
        assert_eq!(spans.iter().map(|s| s.count).sum::<u64>(), 6000);
        let total: f64 = spans.iter().map(|s| s.end - s.start).sum();
        assert!((total - 6.0).abs() < 1e-6, "{total}");
        assert!(spans.len() <= 6000, "{}", spans.len());
    }
}
