//! `spin`: synthetic CPU-bound items of controllable cost and imbalance.
//!
//! Item `i` of `N` busy-waits `micros x (1 + skew x i / (N - 1))`
//! microseconds: cost ramps linearly so that the last item costs `1 + skew`
//! times the first, and a static split hands the last rank the most work.
//! The result of an item is a hash of its index, so it checks ordering too.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::rng::mix;
use super::{Answer, Input, Workload};

/// `items` items of nominal cost `micros`, ramped by `skew`.
#[derive(Debug)]
pub struct Spin {
    /// Number of items.
    pub items: u64,
    /// Cost of the first item, in microseconds.
    pub micros: f64,
    /// Extra relative cost of the last item (0 = uniform).
    pub skew: f64,
    /// Items that panic when mapped: exercise failure handling end to end.
    pub fail_at: Vec<u64>,
    /// How many times each of them panics on a rank before it succeeds
    /// (`None`: always), for testing retries.
    pub fail_times: Option<u32>,
    /// Panics so far on this rank, for `fail_times`.
    pub failures: AtomicU32,
}

impl Spin {
    /// `items` items of `micros` microseconds each, ramped by `skew`, none failing.
    pub fn new(items: u64, micros: f64, skew: f64) -> Spin {
        Spin {
            items,
            micros,
            skew,
            fail_at: Vec::new(),
            fail_times: None,
            failures: AtomicU32::new(0),
        }
    }
}

impl Spin {
    /// The busy time of item `i`.
    pub fn cost(&self, i: u64) -> Duration {
        let ramp = if self.items > 1 {
            i as f64 / (self.items - 1) as f64
        } else {
            0.0
        };
        Duration::from_secs_f64(self.micros * (1.0 + self.skew * ramp) * 1e-6)
    }
}

/// Items absorbed and the wrapping sum of their results.
#[derive(Debug, Default)]
pub struct SpinSum {
    count: u64,
    sum: u64,
}

impl Workload for Spin {
    type Item = u64;
    type Output = u64;
    type Summary = SpinSum;

    fn name(&self) -> &'static str {
        "spin"
    }

    fn input(&self) -> anyhow::Result<Input<'_, u64>> {
        Ok(Input::generated(self.items as usize, |i| i as u64))
    }

    fn map(&self, i: u64) -> u64 {
        if self.fail_at.contains(&i) {
            let so_far = self.failures.fetch_add(1, Ordering::Relaxed);
            if self.fail_times.is_none_or(|k| so_far < k) {
                panic!("spin item {i} fails on purpose (--fail-at)");
            }
        }
        let cost = self.cost(i);
        if !cost.is_zero() {
            let start = Instant::now();
            while start.elapsed() < cost {
                std::hint::spin_loop();
            }
        }
        mix(i)
    }

    fn absorb(&self, s: &mut SpinSum, _index: usize, hash: u64) {
        s.count += 1;
        s.sum = s.sum.wrapping_add(hash);
    }

    fn answer(&self, s: &SpinSum) -> Answer {
        Answer {
            text: format!("{} items, result sum {:016x}", s.count, s.sum),
            value: serde_json::json!({ "items": s.count, "sum": format!("{:016x}", s.sum) }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skew_ramps_cost_linearly() {
        let s = Spin::new(11, 10.0, 3.0);
        assert_eq!(s.cost(0), Duration::from_micros(10));
        assert_eq!(s.cost(10), Duration::from_micros(40));
        assert_eq!(s.cost(5), Duration::from_micros(25));
    }
}
