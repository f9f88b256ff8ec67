//! `hpcmap bench pingpong`: OSU-style latency and bandwidth between ranks 0
//! and 1 over message sizes from 1 B to 64 MiB, fitted to the Hockney model
//! T(n) = alpha + n beta (alpha: latency, 1/beta: asymptotic bandwidth).
//!
//! The fit minimises *relative* squared error, so the 1-byte latency and the
//! 64 MiB bandwidth weigh equally; an absolute least-squares fit lets the big
//! messages swamp alpha (it can even come out negative).

use std::time::Instant;

use std::path::Path;

use hpcmap::Pool;
use hpcmap::report::model::{Hockney, Sample};

/// Round trips per size: many for small messages, few for big ones.
fn rounds(bytes: usize) -> usize {
    (64 * 1024 * 1024 / bytes.max(1)).clamp(8, 2000)
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
    while size <= max_bytes {
        let n = rounds(size);
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
        samples.push(Sample {
            bytes: size as u64,
            seconds: super::median(&mut times),
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
    fn rounds_shrink_with_size() {
        assert_eq!(rounds(1), 2000);
        assert_eq!(rounds(64 << 20), 8);
    }
}
