//! `hpcmap bench overhead`: what one task costs the pool, next to the
//! one-way MPI latency of a 1-byte message measured in the same job; and
//! what following the map costs it: a progress bar (drawn into nothing, so
//! only its cost to the map is measured) and a recorded timeline.
//!
//! Tasks are `spin --micros 0` items (no work at all) handed out one per
//! chunk by the dynamic schedule, so the wall time is pure overhead:
//! serialization, messages, bookkeeping, result assembly. The three kinds
//! of map take turns in every round, so a noisy machine affects each alike.

use std::time::Duration;

use crate::cli::follow::{Follow, Follower, ProgressMode};
use crate::cli::workloads::Workload;
use crate::cli::workloads::spin::Spin;
use crate::progress::Progress;
use crate::task::Func;
use crate::{FnSink, Hooks, MapOptions, Order, Pool, Schedule};

use super::pingpong;
use crate::cli::median;

/// The kinds of map compared.
const KINDS: [&str; 3] = ["plain", "with a progress bar", "with a timeline"];

/// Runs the benchmark; prints on the root.
pub fn run(pool: &Pool, tasks: u64, repeat: usize) {
    let latency = pingpong::measure(pool, 1, 1, repeat).map(|s| s[0].seconds);
    let spin = Spin::new(tasks, 0.0, 0.0);
    let input = pool.is_root().then(|| spin.input().expect("spin items"));
    let plain = MapOptions {
        schedule: Schedule::Dynamic,
        chunk: Some(1),
        order: Order::Completion,
        ..MapOptions::default()
    };
    let traced = MapOptions {
        trace: true,
        ..plain
    };
    let mut walls = vec![Vec::new(); KINDS.len()];
    let task = Func(|i| spin.map(i));
    for round in 0..repeat + 1 {
        for (kind, wall) in walls.iter_mut().enumerate() {
            pool.barrier();
            let progress = Progress::new();
            let stats = std::thread::scope(|scope| {
                let follower = (kind == 1 && pool.is_root()).then(|| {
                    let follow = Follow {
                        mode: ProgressMode::Bar,
                        interval: Duration::from_secs(30),
                        status: None,
                        hidden: true,
                    };
                    Follower::start(scope, follow, &progress)
                });
                let hooks = Hooks {
                    journal: None,
                    progress: follower.as_ref().map(|_| &progress),
                };
                let options = if kind == 2 { &traced } else { &plain };
                let stats = pool.map_task(input.as_ref(), options, &task, hooks, FnSink(|_, _| {}));
                if let Some(f) = follower {
                    f.stop();
                }
                stats
            })
            .unwrap_or_else(|e| panic!("map failed: {e}"));
            if round > 0 {
                wall.push(stats.wall_s);
            }
        }
    }
    if !pool.is_root() {
        return;
    }
    let medians: Vec<f64> = walls.iter_mut().map(|w| median(w)).collect();
    let wall = medians[0];
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
    for (kind, &m) in KINDS.iter().zip(&medians).skip(1) {
        println!(
            "following: {kind:<20} wall {:>9.3} ms, {:+.1}% against plain",
            m * 1e3,
            100.0 * (m / wall - 1.0)
        );
    }
}
