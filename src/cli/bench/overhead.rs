//! `hpcmap bench overhead`: what one task costs the pool, next to the
//! one-way MPI latency of a 1-byte message measured in the same job.
//!
//! Tasks are `spin --micros 0` items (no work at all) handed out one per
//! chunk by the dynamic schedule, so the wall time is pure overhead:
//! serialization, messages, bookkeeping, result assembly.

use crate::cli::workloads::Workload;
use crate::cli::workloads::spin::Spin;
use crate::{MapOptions, Order, Pool, Schedule};

use super::pingpong;
use crate::cli::median;

/// Runs the benchmark; prints on the root.
pub fn run(pool: &Pool, tasks: u64, repeat: usize) {
    let latency = pingpong::measure(pool, 1, 1, repeat).map(|s| s[0].seconds);
    let spin = Spin::new(tasks, 0.0, 0.0);
    let input = pool.is_root().then(|| spin.input().expect("spin items"));
    let options = MapOptions {
        schedule: Schedule::Dynamic,
        chunk: Some(1),
        order: Order::Completion,
        ..MapOptions::default()
    };
    let mut walls = Vec::new();
    for round in 0..repeat + 1 {
        pool.barrier();
        let stats = pool
            .map_each(input.as_ref(), &options, |i| spin.map(i), |_, _| {})
            .unwrap_or_else(|e| panic!("map failed: {e}"));
        if round > 0 {
            walls.push(stats.wall_s);
        }
    }
    if !pool.is_root() {
        return;
    }
    let wall = median(&mut walls);
    let per_task = wall / tasks as f64;
    println!(
        "overhead: {tasks} empty tasks, chunk 1, dynamic, {} ranks, median of {repeat}",
        pool.size()
    );
    println!("  wall                     {:>10.3} ms", wall * 1e3);
    println!("  tasks per second         {:>10.0}", 1.0 / per_task);
    println!("  per task                 {:>10.3} us", per_task * 1e6);
    match latency {
        Some(l) => {
            println!("  one-way MPI latency 1 B  {:>10.3} us", l * 1e6);
            println!("ratio: per task / one-way latency = {:.1}", per_task / l);
        }
        None => println!("  (one rank: no latency to compare with)"),
    }
}
