//! `hpcmap bench pingpong`: OSU-style one-way times from 1 B to
//! `--max-bytes` between rank 0 and one rank per placement the job spans
//! (another rank on rank 0's own host: shared memory; the first rank on
//! each other host: the network), each fitted to Hockney's model and saved
//! under its hosts (see `netmodel`), so that later runs on these hosts are
//! explained by the paths they actually use.
//!
//! Launch it like the runs it should explain: `mpirun -n 4 --map-by node
//! ... hpcmap bench pingpong` over two nodes measures both the shared
//! memory of rank 0's node and the link to the other node.

use std::path::Path;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::Pool;
use crate::cli::netmodel::{Fit, Hockney, Link, Models, Sample, hockney};

/// Time one repetition of a size should take: long enough to average over
/// many round trips, short enough that a slow link (100 Mbit/s) does not make
/// the sweep take minutes.
const TARGET_S: f64 = 0.1;

/// Bytes copied into fresh memory to time its first touch: past the 1 MiB
/// from which the command maps buffers fresh from the OS.
const TOUCH_BYTES: usize = 16 << 20;

/// A change of the per-byte cost over the last size steps beyond this
/// means beta was taken before the bandwidth settled.
const UNSETTLED: f64 = 0.2;

/// Round trips for the next size, from the one-way time of the previous size
/// (`None` for the first): about [`TARGET_S`] of traffic, 2 to 2000 trips.
/// Large messages on a slow link need few: each takes long and varies little.
fn rounds(previous_one_way: Option<f64>) -> usize {
    match previous_one_way {
        // Twice the size, twice the time at most; a round trip is two ways.
        Some(t) if t > 0.0 => (TARGET_S / (4.0 * t)).clamp(2.0, 2000.0) as usize,
        _ => 2000,
    }
}

/// The ranks rank 0 is measured against: the first other rank on its own
/// host, then the first rank on each other host, in rank order.
pub fn partners(hosts: &[String]) -> Vec<usize> {
    let Some(root) = hosts.first() else {
        return Vec::new();
    };
    let mut partners: Vec<usize> = (1..hosts.len())
        .find(|&r| hosts[r] == *root)
        .into_iter()
        .collect();
    let mut seen = vec![root];
    for (rank, host) in hosts.iter().enumerate().skip(1) {
        if !seen.contains(&host) {
            seen.push(host);
            partners.push(rank);
        }
    }
    partners
}

/// Measures one-way times from 1 B to `max_bytes` (powers of two) between
/// rank 0 and `partner`; the other ranks wait. Collective. Returns the
/// samples on rank 0; `None` on every rank when `partner` is not another rank.
pub fn measure(
    pool: &Pool,
    partner: usize,
    max_bytes: usize,
    repeat: usize,
) -> Option<Vec<Sample>> {
    if partner == 0 || partner >= pool.size() {
        return None;
    }
    let rank = pool.rank();
    let mut samples = Vec::new();
    let mut size = 1usize;
    let mut buf = vec![1u8; max_bytes];
    let mut previous = None;
    let trip = |n: usize, buf: &mut [u8]| {
        for _ in 0..n {
            if rank == 0 {
                pool.send_raw(partner, 1, buf);
                pool.receive_raw_into(partner, 1, buf);
            } else if rank == partner {
                pool.receive_raw_into(0, 1, buf);
                pool.send_raw(0, 1, buf);
            }
        }
    };
    while size <= max_bytes {
        // Rank 0 decides, so both ranks loop the same number of times.
        let estimate = rounds(previous);
        let n = pool.broadcast(pool.is_root().then_some(&(estimate as u64))) as usize;
        // One untimed round trip: first touch, connection set-up.
        trip(1, &mut buf[..size]);
        let mut times = Vec::with_capacity(repeat);
        for _ in 0..repeat {
            pool.barrier();
            let t = Instant::now();
            trip(n, &mut buf[..size]);
            times.push(t.elapsed().as_secs_f64() / (2 * n) as f64);
        }
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

/// Seconds per byte of a copy into memory never touched before (the page
/// faults of a fresh allocation), as a big message's receive buffer is;
/// median of 3.
fn first_touch() -> f64 {
    let from = vec![1u8; TOUCH_BYTES];
    let mut times: Vec<f64> = (0..3)
        .map(|_| {
            let t = Instant::now();
            let mut fresh = Vec::with_capacity(TOUCH_BYTES);
            fresh.extend_from_slice(&from);
            std::hint::black_box(&fresh);
            t.elapsed().as_secs_f64() / TOUCH_BYTES as f64
        })
        .collect();
    crate::cli::median(&mut times)
}

/// The first-touch cost of rank 0's and `partner`'s hosts, the larger, on
/// rank 0 (a message is as slow as its slower end). Measured one after the
/// other, so that the two do not compete for a core.
fn first_touch_of_pair(pool: &Pool, partner: usize) -> Option<f64> {
    const TAG: i32 = 2;
    match pool.rank() {
        0 => {
            let mine = first_touch();
            pool.send(partner, TAG, &true);
            let (theirs, _): (f64, usize) = pool.receive(Some(partner), TAG);
            Some(mine.max(theirs))
        }
        r if r == partner => {
            let _: (bool, usize) = pool.receive(Some(0), TAG);
            pool.send(0, TAG, &first_touch());
            None
        }
        _ => None,
    }
}

/// Runs the benchmark: for each partner (see [`partners`]) the table and
/// the fit on rank 0; then the fits are added to the model file `save`
/// (replacing older fits of the same links) for later runs' model lines.
///
/// # Errors
/// With fewer than 2 ranks, or when the model file cannot be read or saved.
pub fn run(
    pool: &Pool,
    max_bytes: usize,
    repeat: usize,
    save: Option<&Path>,
) -> anyhow::Result<()> {
    if pool.size() < 2 {
        anyhow::bail!("needs at least 2 ranks: mpirun -n 2 hpcmap bench pingpong");
    }
    // Only the root knows every rank's host.
    let hosts = pool.hosts();
    let chosen = pool.is_root().then(|| partners(hosts));
    let mut fits = Vec::new();
    for partner in pool.broadcast(chosen.as_ref()) {
        let samples = measure(pool, partner, max_bytes, repeat);
        let touch = first_touch_of_pair(pool, partner);
        let (Some(samples), Some(touch)) = (samples, touch) else {
            continue;
        };
        let link = Link::new(&hosts[0], &hosts[partner]);
        println!(
            "pingpong: rank 0 on {} <-> rank {partner} on {} ({}), one-way time, median of {repeat}",
            hosts[0],
            hosts[partner],
            link.placement()
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
        let Some(model) = Hockney::fit(&samples) else {
            println!("hockney: {link}: too few sizes to fit (raise --max-bytes)");
            continue;
        };
        println!(
            "hockney: {link} ({}): alpha = {:.3} us, beta = {:.4} ns/byte ({:.1} MB/s, from the three largest sizes)",
            link.placement(),
            model.alpha * 1e6,
            model.beta * 1e9,
            model.megabytes_per_s()
        );
        println!(
            "first touch: {:.1} MB/s into fresh memory (the slower host; messages of 1 MiB and more arrive in fresh buffers)",
            1e-6 / touch.max(f64::MIN_POSITIVE)
        );
        if let Some(change) = hockney::slope_change(&samples).filter(|c| *c > UNSETTLED) {
            println!(
                "warning: {link}: the cost per byte still changed by {:.0}% over the last size steps (a shaper's burst, a protocol switch): beta may be off; measure larger messages (--max-bytes)",
                100.0 * change
            );
        }
        fits.push(Fit {
            between: link,
            model,
            first_touch: touch,
            largest_message: samples.last().map_or(0, |s| s.bytes),
            measured_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        });
    }
    if let Some(path) = save.filter(|_| pool.is_root() && !fits.is_empty()) {
        let mut models = Models::open(path, false)?;
        let names: Vec<String> = fits.iter().map(|f| f.between.to_string()).collect();
        for fit in fits {
            models.insert(fit);
        }
        models.save(path)?;
        println!(
            "saved {} to {} (hpcmap run reads it for its model line)",
            names.join(", "),
            path.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_follow_the_previous_size() {
        assert_eq!(rounds(None), 2000);
        assert_eq!(rounds(Some(1e-7)), 2000);
        assert_eq!(rounds(Some(1e-4)), 250);
        assert_eq!(rounds(Some(1.0)), 2);
    }

    #[test]
    fn partners_are_one_per_placement() {
        let hosts =
            |names: &[&str]| -> Vec<String> { names.iter().map(|h| h.to_string()).collect() };
        // Two nodes x two ranks, by slot: rank 1 shares rank 0's node.
        assert_eq!(partners(&hosts(&["a", "a", "b", "b"])), [1, 2]);
        // By node: the same-host partner is measured first.
        assert_eq!(partners(&hosts(&["a", "b", "a", "b"])), [2, 1]);
        assert_eq!(partners(&hosts(&["a", "b", "c", "b"])), [1, 2]);
        assert_eq!(partners(&hosts(&["a", "a", "a"])), [1]);
        assert_eq!(partners(&hosts(&["a", "b"])), [1]);
    }
}
