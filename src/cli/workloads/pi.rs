//! `pi`: Monte Carlo estimate of pi from random points in the unit square.
//!
//! The samples are split into a fixed number of tasks (not per rank), each
//! with its own seeded generator, so the hit count is the same at any scale.

use super::rng::SplitMix64;
use super::{Answer, Input, Workload};

/// `samples` points in `tasks` tasks, seeded with `seed`.
#[derive(Clone, Debug)]
pub struct Pi {
    /// Total number of random points.
    pub samples: u64,
    /// Number of tasks (items) the samples are split into.
    pub tasks: u64,
    /// Seed of the whole run.
    pub seed: u64,
}

/// One task: its index (for seeding) and how many points it draws.
pub type Task = (u64, u64);

impl Workload for Pi {
    type Item = Task;
    type Output = u64;
    type Summary = u64;

    fn name(&self) -> &'static str {
        "pi"
    }

    fn input(&self) -> anyhow::Result<Input<'_, Task>> {
        let (base, extra) = (self.samples / self.tasks, self.samples % self.tasks);
        // With fewer samples than tasks, only the first `extra` tasks draw any.
        let tasks = if base == 0 { extra } else { self.tasks };
        Ok(Input::generated(tasks as usize, move |t| {
            let t = t as u64;
            (t, base + u64::from(t < extra))
        }))
    }

    fn map(&self, (task, samples): Task) -> u64 {
        let mut rng = SplitMix64::for_item(self.seed, task);
        let mut hits = 0;
        for _ in 0..samples {
            let (x, y) = (rng.next_f64(), rng.next_f64());
            hits += u64::from(x * x + y * y < 1.0);
        }
        hits
    }

    fn absorb(&self, hits: &mut u64, _index: usize, task_hits: u64) {
        *hits += task_hits;
    }

    fn answer(&self, &hits: &u64) -> Answer {
        let estimate = if self.samples == 0 {
            0.0
        } else {
            4.0 * hits as f64 / self.samples as f64
        };
        Answer {
            text: format!(
                "pi ~ {estimate:.6} ({hits} of {} points inside)",
                self.samples
            ),
            value: serde_json::json!({ "estimate": estimate, "hits": hits, "samples": self.samples }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_cover_all_samples_and_estimate_is_close() {
        let w = Pi {
            samples: 1_000_003,
            tasks: 7,
            seed: 42,
        };
        let items = w.input().unwrap().collect();
        assert_eq!(items.iter().map(|t| t.1).sum::<u64>(), 1_000_003);
        let summary = super::super::fold(&w, items.into_iter().map(|t| w.map(t)));
        let est = w.answer(&summary).value["estimate"].as_f64().unwrap();
        assert!((est - std::f64::consts::PI).abs() < 0.01, "{est}");
    }
}
