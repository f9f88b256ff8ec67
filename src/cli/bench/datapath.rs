//! `hpcmap bench datapath`: the cost of moving `square`'s data through the
//! map, against `memcpy` of the same bytes, both measured in this run.
//!
//! The map is timed from the moment the input is in memory until the
//! ordered results are assembled on the root (the `wall_s` of a report);
//! the baseline copies input + output bytes once into a warm buffer.

use std::hint::black_box;
use std::time::Instant;

use crate::cli::render::human_seconds;
use crate::stats::MapStats;
use crate::{MapOptions, Pool};

use crate::cli::median;

/// Runs the benchmark; prints on the root.
pub fn run(pool: &Pool, items: u64, repeat: usize, options: &MapOptions) {
    let input: Option<Vec<u64>> = pool.is_root().then(|| (1..=items).collect());
    let bytes = 2 * 8 * items as usize; // u64 in, u64 out
    let mut memcpy = Vec::new();
    if pool.is_root() {
        let src = vec![1u8; bytes];
        let mut dst = vec![0u8; bytes]; // touched: warm
        for _ in 0..repeat + 1 {
            let t = Instant::now();
            dst.copy_from_slice(black_box(&src));
            black_box(&mut dst);
            memcpy.push(t.elapsed().as_secs_f64());
        }
        memcpy.remove(0); // first copy warms caches and TLB
    }
    let mut runs: Vec<MapStats> = Vec::new();
    for i in 0..repeat + 1 {
        pool.barrier();
        let mapped = pool
            .map_with(input.as_deref(), options, |x: u64| x * x)
            .unwrap_or_else(|e| panic!("map failed: {e}"));
        if i > 0 {
            runs.push(mapped.stats);
        }
    }
    if !pool.is_root() {
        return;
    }
    let med = |f: &dyn Fn(&MapStats) -> f64| median(&mut runs.iter().map(f).collect::<Vec<_>>());
    let memcpy_s = median(&mut memcpy);
    let wall = med(&|s| s.wall_s);
    println!(
        "datapath: square, {items} items, {} ranks x {} threads, {} schedule, median of {repeat}",
        pool.size(),
        pool.threads(),
        options.schedule
    );
    println!(
        "  memcpy of {bytes} bytes (input + output)  {:>12}",
        human_seconds(memcpy_s)
    );
    println!(
        "  map wall                                  {:>12}",
        human_seconds(wall)
    );
    for (name, f) in [
        (
            "split+serialize",
            &(|s: &MapStats| s.phases.serialize) as &dyn Fn(&MapStats) -> f64,
        ),
        ("scatter", &|s| s.phases.scatter),
        ("compute (max over ranks)", &|s| s.phases.compute.max),
        ("wait", &|s| s.phases.wait),
        ("gather", &|s| s.phases.gather),
        ("deserialize+assemble", &|s| s.phases.assemble),
    ] {
        println!("    {name:<38}{:>12}", human_seconds(med(f)));
    }
    println!("ratio: map / memcpy = {:.1}", wall / memcpy_s);
}
