//! `hpcmap bench pingpong`: OSU-style latency and bandwidth between ranks 0
//! and 1 over message sizes from 1 B to 64 MiB, fitted to the Hockney model
//! T(n) = alpha + n beta (alpha: latency, 1/beta: asymptotic bandwidth).
//!
//! The fit minimises *relative* squared error, so the 1-byte latency and the
//! 64 MiB bandwidth weigh equally; an absolute least-squares fit lets the big
//! messages swamp alpha (it can even come out negative).

use std::time::Instant;

use std::path::Path;

use crate::Pool;
use crate::cli::netmodel::{Hockney, Sample};

/// Time one repetition of a size should take: long enough to average over
/// many round trips, short enough that a slow link (100 Mbit/s) does not make
/// the sweep take minutes.
const TARGET_S: f64 = 0.1;

/// Round trips for the next size, from the one-way time of the previous size
/// (`None` for the first): about [`TARGET_S`] of traffic, 8 to 2000 trips.
fn rounds(previous_one_way: Option<f64>) -> usize {
    match previous_one_way {
        // Twice the size, twice the time at most; a round trip is two ways.
        Some(t) if t > 0.0 => (TARGET_S / (4.0 * t)).clamp(8.0, 2000.0) as usize,
        _ => 2000,
    }
}

/// Measures one-way times from 1 B to `max_bytes` (powers of two) between
/// ranks 0 and 1; other ranks wait. Collective. Returns the samples on rank 0.
pub fn measure(pool: &Pool, max_bytes: usize, repeat: usize) -> Option<Vec<Sample>> {
    if pool.size() < 2 {
        return None;
    }
    let rank = pool.rank();
    let mut samples = Vec::new();
    let mut size = 1usize;
    let mut buf = vec![1u8; max_bytes];
    let mut previous = None;
    while size <= max_bytes {
        // Rank 0 decides, so both ranks loop the same number of times.
        let estimate = rounds(previous);
        let n = pool.broadcast(pool.is_root().then_some(&(estimate as u64))) as usize;
        let mut times = Vec::with_capacity(repeat);
        for _ in 0..repeat + 1 {
            pool.barrier();
            let t = Instant::now();
            for _ in 0..n {
                match rank {
                    0 => {
                        pool.send_raw(1, 1, &buf[..size]);
                        pool.receive_raw_into(1, 1, &mut buf[..size]);
                    }
                    1 => {
                        pool.receive_raw_into(0, 1, &mut buf[..size]);
                        pool.send_raw(0, 1, &buf[..size]);
                    }
                    _ => {}
                }
            }
            times.push(t.elapsed().as_secs_f64() / (2 * n) as f64);
        }
        times.remove(0); // warm-up round: first touch, connection set-up
        let seconds = crate::cli::median(&mut times);
        previous = Some(seconds);
        samples.push(Sample {
            bytes: size as u64,
            seconds,
        });
        size *= 2;
    }
    (rank == 0).then_some(samples)
}

/// Runs the benchmark, prints the table and the fit on rank 0, and saves
/// the fit to `save` for later runs' model lines.
///
/// # Errors
/// When the model cannot be saved.
pub fn run(
    pool: &Pool,
    max_bytes: usize,
    repeat: usize,
    save: Option<&Path>,
) -> anyhow::Result<Option<Hockney>> {
    if pool.size() < 2 {
        anyhow::bail!("needs at least 2 ranks: mpirun -n 2 hpcmap bench pingpong");
    }
    let Some(samples) = measure(pool, max_bytes, repeat) else {
        return Ok(None);
    };
    let hosts = pool.hosts();
    println!(
        "pingpong: rank 0 on {} <-> rank 1 on {}, one-way time, median of {repeat}",
        hosts[0],
        hosts.get(1).map_or("?", |h| h.as_str())
    );
    println!("{:>12} {:>14} {:>14}", "bytes", "latency (us)", "MB/s");
    for s in &samples {
        println!(
            "{:>12} {:>14.2} {:>14.1}",
            s.bytes,
            s.seconds * 1e6,
            s.bytes as f64 / s.seconds / 1e6
        );
    }
    let between = format!(
        "{} <-> {}",
        hosts[0],
        hosts.get(1).map_or("?", |h| h.as_str())
    );
    let model = Hockney::fit(&samples, between);
    println!(
        "hockney: alpha = {:.3} us, beta = {:.4} ns/byte (asymptotic {:.0} MB/s)",
        model.alpha * 1e6,
        model.beta * 1e9,
        1e-6 / model.beta.max(f64::MIN_POSITIVE)
    );
    if let Some(path) = save {
        model.save(path)?;
        println!(
            "saved to {} (hpcmap run reads it for its model line)",
            path.display()
        );
    }
    Ok(Some(model))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_follow_the_previous_size() {
        assert_eq!(rounds(None), 2000);
        assert_eq!(rounds(Some(1e-7)), 2000);
        assert_eq!(rounds(Some(1e-4)), 250);
        assert_eq!(rounds(Some(1.0)), 8);
    }
}
