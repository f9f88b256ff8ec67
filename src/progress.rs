//! Live counters of a running map, on the root, for progress bars, log
//! lines and status files: read them from any thread with
//! [`Progress::snapshot`] while the map runs (pass the `Progress` in
//! [`crate::Hooks`]).
//!
//! They count per chunk as results arrive (never per item), so following a
//! map costs nothing measurable.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use serde::Serialize;

/// What one rank has done so far, as the root sees it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RankProgress {
    /// Items whose results arrived.
    pub items: u64,
    /// Chunks whose results arrived.
    pub chunks: u64,
    /// Seconds the rank had nothing to map (dynamic and guided: no chunk
    /// in flight to it); static ranks report it only at the end.
    pub idle_s: f64,
}

/// A running map's counters.
#[derive(Default)]
pub struct Progress {
    total: AtomicU64,
    done: AtomicU64,
    failed: AtomicU64,
    resumed: AtomicU64,
    journaled: AtomicU64,
    share_total: AtomicU64,
    share_done: AtomicU64,
    finished: AtomicBool,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    started: Option<Instant>,
    ranks: Vec<RankProgress>,
}

/// The counters at one moment.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Snapshot {
    /// Items in the input.
    pub total: u64,
    /// Items done (mapped or failed), including those taken from a journal.
    pub done: u64,
    /// Items that failed.
    pub failed: u64,
    /// Items taken from the journal of an earlier run.
    pub resumed: u64,
    /// Items the journal holds (those of earlier runs and this one's).
    pub journaled: u64,
    /// Seconds since the map started.
    pub elapsed_s: f64,
    /// Items per second in this run.
    pub rate: f64,
    /// Seconds left at that rate, once there is a rate.
    pub eta_s: Option<f64>,
    /// Static schedule: the items of the root's own share, and how many
    /// of them it has mapped. The other ranks' results arrive only at the
    /// end, so this share is the map's only live measure (the shares are
    /// even).
    pub root_share: Option<(u64, u64)>,
    /// Per rank, by rank.
    pub ranks: Vec<RankProgress>,
    /// Whether the map has ended.
    pub finished: bool,
}

impl Progress {
    /// Fresh counters.
    pub fn new() -> Progress {
        Progress::default()
    }

    /// The map starts: `total` items, `resumed` of them already journaled.
    /// Called again by the pool as the map itself starts (the command calls
    /// it first, so the first frame a follower draws is already right):
    /// nothing has arrived in between, so that only restarts the clock.
    pub(crate) fn start(&self, total: usize, resumed: usize, ranks: usize) {
        self.total.store(total as u64, Ordering::Relaxed);
        self.done.store(resumed as u64, Ordering::Relaxed);
        self.resumed.store(resumed as u64, Ordering::Relaxed);
        self.journaled.store(resumed as u64, Ordering::Relaxed);
        self.failed.store(0, Ordering::Relaxed);
        self.share_total.store(0, Ordering::Relaxed);
        self.share_done.store(0, Ordering::Relaxed);
        self.finished.store(false, Ordering::Relaxed);
        let mut inner = self.inner.lock().expect("progress lock");
        inner.started = Some(Instant::now());
        inner.ranks = vec![RankProgress::default(); ranks];
    }

    /// A chunk of `count` items arrived from `rank`, `failed` of them failed.
    pub(crate) fn chunk(&self, rank: usize, count: usize, failed: usize) {
        self.done.fetch_add(count as u64, Ordering::Relaxed);
        self.failed.fetch_add(failed as u64, Ordering::Relaxed);
        self.with_rank(rank, |r| {
            r.items += count as u64;
            r.chunks += 1;
        });
    }

    /// Updates `rank`'s counters (none for a rank the map does not have).
    fn with_rank(&self, rank: usize, update: impl FnOnce(&mut RankProgress)) {
        if let Some(r) = self
            .inner
            .lock()
            .expect("progress lock")
            .ranks
            .get_mut(rank)
        {
            update(r);
        }
    }

    /// `items` more were journaled.
    pub(crate) fn journaled(&self, items: usize) {
        self.journaled.fetch_add(items as u64, Ordering::Relaxed);
    }

    /// Static schedule: the root's own share is `items`.
    pub(crate) fn share(&self, items: usize) {
        self.share_total.store(items as u64, Ordering::Relaxed);
    }

    /// Static schedule: the root has mapped `items` of its share.
    pub(crate) fn shared(&self, items: usize) {
        self.share_done.store(items as u64, Ordering::Relaxed);
    }

    /// `rank` was idle for `seconds`.
    pub(crate) fn idle(&self, rank: usize, seconds: f64) {
        self.with_rank(rank, |r| r.idle_s += seconds);
    }

    /// The map has ended (whichever way).
    pub(crate) fn finish(&self) {
        self.finished.store(true, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> Snapshot {
        let inner = self.inner.lock().expect("progress lock");
        let elapsed = inner.started.map_or(0.0, |s| s.elapsed().as_secs_f64());
        let (total, done, resumed) = (
            self.total.load(Ordering::Relaxed),
            self.done.load(Ordering::Relaxed),
            self.resumed.load(Ordering::Relaxed),
        );
        let share = match self.share_total.load(Ordering::Relaxed) {
            0 => None,
            n => Some((self.share_done.load(Ordering::Relaxed), n)),
        };
        // Static: the root's share measures the rate until results arrive.
        let fresh = match share {
            Some((d, n)) if done == resumed => {
                (d as f64 / n as f64 * total.saturating_sub(resumed) as f64) as u64
            }
            _ => done - resumed.min(done),
        };
        let rate = if elapsed > 0.0 {
            fresh as f64 / elapsed
        } else {
            0.0
        };
        Snapshot {
            total,
            done,
            failed: self.failed.load(Ordering::Relaxed),
            resumed,
            journaled: self.journaled.load(Ordering::Relaxed),
            elapsed_s: elapsed,
            rate,
            eta_s: (rate > 0.0).then(|| total.saturating_sub(resumed + fresh) as f64 / rate),
            root_share: share,
            ranks: inner.ranks.clone(),
            finished: self.finished.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_up_and_give_a_rate() {
        let p = Progress::new();
        p.start(100, 10, 2);
        p.chunk(1, 20, 2);
        p.chunk(0, 30, 0);
        p.idle(1, 0.5);
        std::thread::sleep(std::time::Duration::from_millis(5));
        let s = p.snapshot();
        assert_eq!((s.total, s.done, s.failed, s.resumed), (100, 60, 2, 10));
        assert_eq!(s.ranks[1].items, 20);
        assert_eq!(s.ranks[1].idle_s, 0.5);
        assert!(s.rate > 0.0 && s.eta_s.unwrap() > 0.0);
        assert!(!s.finished);
        p.finish();
        assert!(p.snapshot().finished);
    }
}
