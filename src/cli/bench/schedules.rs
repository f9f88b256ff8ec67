//! `hpcmap bench schedules <workload>`: the same workload under the static,
//! dynamic and guided schedules, interleaved round by round in one job so
//! machine noise hits all three alike; medians and speedups against static.

use crate::cli::workloads::Workload;
use crate::stats::MapStats;
use crate::{MapOptions, Order, Pool, Schedule, Source};

use crate::cli::median;
use crate::cli::workloads::WithWorkload;

/// The benchmark, as a visitor of the chosen workload.
pub struct Schedules<'a> {
    /// The pool.
    pub pool: &'a Pool,
    /// Timed rounds (after one warm-up).
    pub repeat: usize,
}

const ALL: [Schedule; 3] = [Schedule::Static, Schedule::Dynamic, Schedule::Guided];

impl WithWorkload for Schedules<'_> {
    type Output = anyhow::Result<()>;

    fn with<W: Workload>(self, w: &W) -> anyhow::Result<()> {
        let pool = self.pool;
        let input = if pool.is_root() {
            Some(w.input()?)
        } else {
            None
        };
        let mut runs: Vec<Vec<MapStats>> = vec![Vec::new(); ALL.len()];
        for round in 0..self.repeat + 1 {
            for (k, &schedule) in ALL.iter().enumerate() {
                pool.barrier();
                let options = MapOptions {
                    schedule,
                    chunk: None,
                    order: Order::Completion,
                    ..MapOptions::default()
                };
                let stats = pool.map_each(input.as_ref(), &options, |x| w.map(x), |_, _| {})?;
                if round > 0 {
                    runs[k].push(stats);
                }
            }
        }
        if !pool.is_root() {
            return Ok(());
        }
        println!(
            "schedules: {}, {} items, {} ranks x {} threads, median of {}",
            w.name(),
            input.as_ref().map_or(0, Source::len),
            pool.size(),
            pool.threads(),
            self.repeat
        );
        println!(
            "  {:<9}{:>12}{:>11}{:>9}{:>10}  checksum",
            "schedule", "wall (s)", "imbalance", "chunks", "speedup"
        );
        let wall = |k: usize| median(&mut runs[k].iter().map(|s| s.wall_s).collect::<Vec<_>>());
        let base = wall(0);
        for (k, schedule) in ALL.iter().enumerate() {
            let t = wall(k);
            let imbalance = median(&mut runs[k].iter().map(|s| s.imbalance()).collect::<Vec<_>>());
            let first = &runs[k][0];
            println!(
                "  {:<9}{:>12.4}{:>11.3}{:>9}{:>10.2}  {:016x}",
                schedule.name(),
                t,
                imbalance,
                first.chunks,
                base / t,
                first.checksum
            );
            if runs[k].iter().any(|s| s.checksum != runs[0][0].checksum) {
                anyhow::bail!("{} gave a different checksum than static", schedule.name());
            }
        }
        Ok(())
    }
}
