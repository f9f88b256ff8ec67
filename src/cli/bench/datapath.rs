//! `hpcmap bench datapath`: the cost of moving data through the map,
//! against what the machine does with the same bytes, all measured in
//! this run.
//!
//! The map is timed from the moment the input is in memory until the
//! ordered results are assembled on the root (the `wall_s` of a report).
//! Baselines: a memcpy of input + output bytes into a warm buffer (the
//! whole map's floor), and each phase's own limit: copying its bytes at the
//! measured memcpy rate (serialize, compute's decode and encode, assemble)
//! or sending them at the measured one-way MPI rate for a message of that
//! size into a warm buffer (scatter, gather).
//!
//! `--kind u64` maps `square` (plain integers: they move as their bytes);
//! `--kind struct` maps a serde struct with a `String` (bincode all the
//! way), so a change to the plain path can be checked not to slow it.

use std::hint::black_box;
use std::time::Instant;

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::cli::median;
use crate::cli::render::{Table, human_seconds};
use crate::stats::MapStats;
use crate::{MapOptions, Pool};

/// What the benchmark maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// `u64 -> u64`, squared: plain data.
    U64,
    /// A struct with an id and a short name, both changed: serde data.
    Struct,
}

/// The serde item of `--kind struct`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    id: u64,
    name: String,
}

/// Runs the benchmark; prints on the root.
pub fn run(pool: &Pool, items: u64, repeat: usize, options: &MapOptions, kind: Kind) {
    match kind {
        Kind::U64 => {
            let input: Option<Vec<u64>> = pool.is_root().then(|| (1..=items).collect());
            measure(pool, input, repeat, options, "square (u64)", |x: u64| x * x);
        }
        Kind::Struct => {
            let input: Option<Vec<Record>> = pool.is_root().then(|| {
                (0..items)
                    .map(|id| Record {
                        id,
                        name: format!("item{id:08}"),
                    })
                    .collect()
            });
            measure(
                pool,
                input,
                repeat,
                options,
                "struct {u64, String}",
                |r: Record| Record {
                    id: r.id.wrapping_mul(r.id),
                    name: r.name.to_uppercase(),
                },
            );
        }
    }
}

fn measure<T, U, F>(
    pool: &Pool,
    input: Option<Vec<T>>,
    repeat: usize,
    options: &MapOptions,
    what: &str,
    f: F,
) where
    T: Serialize + DeserializeOwned + Send + Sync + Clone + 'static,
    U: Serialize + DeserializeOwned + Send + 'static,
    F: Fn(T) -> U + Sync,
{
    let mut runs: Vec<MapStats> = Vec::new();
    for i in 0..repeat + 1 {
        pool.barrier();
        let mapped = pool
            .map_with(input.as_deref(), options, &f)
            .unwrap_or_else(|e| panic!("map failed: {e}"));
        if i > 0 {
            runs.push(mapped.stats);
        }
    }
    let med = |f: &dyn Fn(&MapStats) -> f64| median(&mut runs.iter().map(f).collect::<Vec<_>>());
    // The bytes a map moves, as the root saw them (the same every run).
    let (scattered, gathered) = runs.first().map_or((0, 0), |s| {
        (s.bytes_scattered as usize, s.bytes_gathered as usize)
    });
    let shared = |v: usize| pool.broadcast(pool.is_root().then_some(&(v as u64))) as usize;
    let (scattered, gathered) = (shared(scattered), shared(gathered));
    let scatter_limit = one_way(pool, scattered, repeat);
    let gather_limit = one_way(pool, gathered, repeat);
    if !pool.is_root() {
        return;
    }
    let items = input.as_ref().map_or(0, Vec::len);
    let (bytes_in, bytes_out) = sizes(input.as_deref().unwrap_or(&[]), &f);
    let bytes = bytes_in + bytes_out;
    let memcpy_s = memcpy(bytes, repeat);
    let rate = bytes as f64 / memcpy_s; // bytes per second into warm memory
    let copy = |n: usize| n as f64 / rate;
    let wall = med(&|s| s.wall_s);
    let ranks = pool.size();
    println!(
        "datapath: {what}, {items} items, {ranks} ranks x {} threads, {} schedule, median of {repeat}",
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
    let share = |n: usize| n.div_ceil(ranks.max(1));
    let limit = |phase: &str| -> Option<(f64, String)> {
        match phase {
            "split+serialize" => Some((copy(scattered), "memcpy of the bytes scattered".into())),
            "scatter" => scatter_limit.map(|s| (s, "one MPI message of those bytes".into())),
            "compute (max over ranks)" => Some((
                copy(share(bytes)),
                "memcpy of a rank's share in + out".into(),
            )),
            "gather" => gather_limit.map(|s| (s, "one MPI message of the bytes gathered".into())),
            "deserialize+assemble" => Some((copy(gathered), "memcpy of the bytes gathered".into())),
            _ => None,
        }
    };
    let mut table = Table {
        title: "phases (medians) against their limits".into(),
        headers: vec!["phase", "median", "limit", "x limit", "limit measured as"],
        rows: Vec::new(),
    };
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
        let t = med(f);
        let (limit_s, how) = limit(name).unwrap_or((0.0, String::new()));
        table.rows.push(vec![
            name.to_string(),
            human_seconds(t),
            if limit_s > 0.0 {
                human_seconds(limit_s)
            } else {
                "-".into()
            },
            if limit_s > 0.0 {
                format!("{:.1}", t / limit_s)
            } else {
                "-".into()
            },
            how,
        ]);
    }
    print!("{}", table.text());
    println!("ratio: map / memcpy = {:.1}", wall / memcpy_s);
}

/// Input and output bytes as the map encodes them (a sample, scaled).
fn sizes<T, U, F>(input: &[T], f: &F) -> (usize, usize)
where
    T: Serialize + Clone,
    U: Serialize,
    F: Fn(T) -> U,
{
    fn encoded<V: Serialize>(v: &V) -> usize {
        crate::codec::encode_value(v).map_or(0, |b| b.len())
    }
    let sample = input.len().min(10_000);
    if sample == 0 {
        return (0, 0);
    }
    let (i, o) = input[..sample].iter().fold((0, 0), |(i, o), x| {
        (i + encoded(x), o + encoded(&f(x.clone())))
    });
    let scale = input.len() as f64 / sample as f64;
    ((i as f64 * scale) as usize, (o as f64 * scale) as usize)
}

/// Median time of a memcpy of `bytes` into a warm buffer.
fn memcpy(bytes: usize, repeat: usize) -> f64 {
    let src = vec![1u8; bytes.max(1)];
    let mut dst = vec![0u8; bytes.max(1)]; // touched: warm
    let mut times = Vec::new();
    for _ in 0..repeat + 1 {
        let t = Instant::now();
        dst.copy_from_slice(black_box(&src));
        black_box(&mut dst);
        times.push(t.elapsed().as_secs_f64());
    }
    times.remove(0); // the first copy warms caches and TLB
    median(&mut times)
}

/// Collective: the median one-way time of one message of `bytes` from
/// rank 0 to rank 1 into a warm buffer (half a round trip), on rank 0.
fn one_way(pool: &Pool, bytes: usize, repeat: usize) -> Option<f64> {
    if pool.size() < 2 || bytes == 0 || pool.rank() > 1 {
        pool.barrier();
        return None;
    }
    let mut buf = vec![1u8; bytes];
    let mut times = Vec::new();
    for _ in 0..repeat + 1 {
        let t = Instant::now();
        if pool.rank() == 0 {
            pool.send_raw(1, 7, &buf);
            pool.receive_raw_into(1, 7, &mut buf);
        } else {
            pool.receive_raw_into(0, 7, &mut buf);
            pool.send_raw(0, 7, &buf);
        }
        times.push(t.elapsed().as_secs_f64() / 2.0);
    }
    pool.barrier();
    times.remove(0); // first touch, connection set-up
    (pool.rank() == 0).then(|| median(&mut times))
}
