//! Hockney's model of one path between two ranks, T(n) = alpha + n beta,
//! and its fit to a ping-pong sweep.
//!
//! The two terms are measured where each one dominates, not by one line
//! through all sizes: a least-squares line is pulled off by whatever the
//! path does between "latency-bound" and "bandwidth-bound". The case that
//! made this matter is a token-bucket shaper (tc tbf, and policers on real
//! links): while its bucket holds tokens, messages pass faster than the
//! rate; in a ping-pong the bucket refills during each reply, so sizes up
//! to about twice the burst see twice the cap, and a line through them
//! predicts bulk transfers 1.5-2x too fast. So:
//! * beta is the *marginal* cost of a byte among the three largest sizes,
//!   where every per-message effect (latency, a burst allowance, a
//!   protocol switch) is the same for all and cancels in the differences:
//!   the median of the three pairwise slopes, so that one size slowed by
//!   noise (a preempted rank) cannot tilt it (it raises one slope and
//!   lowers another; the third is the median);
//! * alpha is what is left of the time at the latency-bound sizes (where
//!   moving the bytes is under a tenth of the time), their median.

use serde::{Deserialize, Serialize};

/// A fitted latency/bandwidth model of one path.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hockney {
    /// Start-up time per message, seconds.
    pub alpha: f64,
    /// Time per byte, seconds.
    pub beta: f64,
}

/// One measured message size.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// Message size in bytes.
    pub bytes: u64,
    /// One-way time in seconds (half the round trip).
    pub seconds: f64,
}

/// A size is latency-bound when moving its bytes at beta takes at most
/// this share of its time.
const LATENCY_BOUND: f64 = 0.1;

impl Hockney {
    /// Fits the model to a sweep (any order); see the module docs. `None`
    /// with fewer than two sizes of positive time.
    pub fn fit(samples: &[Sample]) -> Option<Hockney> {
        let sweep = sorted(samples);
        let [.., below, top] = sweep[..] else {
            return None;
        };
        let mut slopes = match sweep[..] {
            [.., a, b, c] => vec![slope(a, b), slope(b, c), slope(a, c)],
            _ => vec![slope(below, top)],
        };
        // A slope that is not positive is noise at sizes too small to tell:
        // charge the largest message's average rate instead.
        let beta = Some(crate::cli::median(&mut slopes))
            .filter(|b| *b > 0.0)
            .unwrap_or(top.seconds / top.bytes.max(1) as f64);
        let mut starts: Vec<f64> = sweep
            .iter()
            .filter(|s| s.bytes as f64 * beta <= LATENCY_BOUND * s.seconds)
            .map(|s| s.seconds - s.bytes as f64 * beta)
            .collect();
        let alpha = if starts.is_empty() {
            sweep[0].seconds - sweep[0].bytes as f64 * beta
        } else {
            crate::cli::median(&mut starts)
        };
        Some(Hockney {
            alpha: alpha.max(0.0),
            beta,
        })
    }

    /// Asymptotic bandwidth in MB/s (10^6 bytes per second).
    pub fn megabytes_per_s(&self) -> f64 {
        1e-6 / self.beta.max(f64::MIN_POSITIVE)
    }
}

/// How much the per-byte cost changed between the last two size steps of
/// the sweep, relative to the last: near 0 when the bandwidth has settled
/// by the largest size, large when beta was taken where a burst allowance
/// or a protocol switch still shapes the times (measure larger messages).
/// `None` with fewer than three sizes.
pub fn slope_change(samples: &[Sample]) -> Option<f64> {
    let sweep = sorted(samples);
    let [.., a, b, c] = sweep[..] else {
        return None;
    };
    let (lower, upper) = (slope(a, b), slope(b, c));
    Some((upper - lower).abs() / upper.abs().max(f64::MIN_POSITIVE))
}

/// The usable samples by size, one per size.
fn sorted(samples: &[Sample]) -> Vec<Sample> {
    let mut sweep: Vec<Sample> = samples
        .iter()
        .filter(|s| s.seconds.is_finite() && s.seconds > 0.0)
        .copied()
        .collect();
    sweep.sort_by_key(|s| s.bytes);
    sweep.dedup_by_key(|s| s.bytes);
    sweep
}

/// Seconds per byte from `a` to the larger `b`.
fn slope(a: Sample, b: Sample) -> f64 {
    (b.seconds - a.seconds) / (b.bytes - a.bytes) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sweep(up_to: u32, time: impl Fn(f64) -> f64) -> Vec<Sample> {
        (0..=up_to)
            .map(|k| Sample {
                bytes: 1 << k,
                seconds: time((1u64 << k) as f64),
            })
            .collect()
    }

    fn close(got: f64, want: f64) -> bool {
        (got - want).abs() <= 1e-9 * want.abs()
    }

    #[test]
    fn an_exact_line_is_recovered() {
        // 2 us + 1 ns per byte, 1 B to 1 MiB.
        let fit = Hockney::fit(&sweep(20, |n| 2e-6 + 1e-9 * n)).unwrap();
        assert!(close(fit.alpha, 2e-6) && close(fit.beta, 1e-9), "{fit:?}");
        assert!(slope_change(&sweep(20, |n| 2e-6 + 1e-9 * n)).unwrap() < 1e-6);
    }

    /// A ping-pong over a token bucket of rate 10 MB/s (100 ns per byte)
    /// and burst 64 KiB, 16 us latency: each message gets back the tokens
    /// its reply took, so it costs the larger of n/2 at the rate and
    /// (n - burst) at the rate.
    fn shaped(n: f64) -> f64 {
        16e-6 + (0.5 * n * 1e-7).max((n - 65536.0) * 1e-7)
    }

    #[test]
    fn a_shaper_burst_does_not_flatter_beta() {
        // Up to 1 MiB: 512 KiB and 1 MiB are both past twice the burst,
        // so their difference costs exactly 100 ns per byte.
        let fit = Hockney::fit(&sweep(20, shaped)).unwrap();
        assert!(close(fit.beta, 1e-7), "{fit:?}");
        // Latency-bound (n x 100 ns <= a tenth of the time): 1..16 B, whose
        // times less n x 100 ns are 16 us - n x 50 ns: 15.95, 15.9, 15.8,
        // 15.6, 15.2 us; the median is 15.8 us.
        assert!(close(fit.alpha, 15.8e-6), "{fit:?}");
    }

    #[test]
    fn one_slow_size_does_not_tilt_beta() {
        // 512 KiB measured 10% slow: its slopes to 256 KiB and to 1 MiB
        // move apart, the one from 256 KiB to 1 MiB stays exact.
        let mut samples = sweep(20, shaped);
        samples[19].seconds *= 1.1;
        let fit = Hockney::fit(&samples).unwrap();
        assert!(close(fit.beta, 1e-7), "{fit:?}");
    }

    #[test]
    fn a_sweep_that_stops_inside_the_burst_is_flagged() {
        // Up to 256 KiB: 64->128 KiB costs 50 ns per byte (twice the rate),
        // 128->256 KiB 100 ns: the slope changed by half.
        let change = slope_change(&sweep(18, shaped)).unwrap();
        assert!(close(change, 0.5), "{change}");
        assert!(slope_change(&sweep(20, shaped)).unwrap() < 1e-9);
    }

    #[test]
    fn noise_never_gives_negative_terms() {
        // Bigger sizes measured faster: every slope falls.
        let samples = [
            Sample {
                bytes: 1,
                seconds: 4e-3,
            },
            Sample {
                bytes: 1000,
                seconds: 3e-3,
            },
            Sample {
                bytes: 2000,
                seconds: 2e-3,
            },
        ];
        let fit = Hockney::fit(&samples).unwrap();
        // Beta from the largest size's average: 2 ms for 2000 B, 1 us per
        // byte; only 1 B is latency-bound, and leaves 4 ms - 1 us.
        assert!(
            close(fit.beta, 1e-6) && close(fit.alpha, 3.999e-3),
            "{fit:?}"
        );
        // Nothing latency-bound and the smallest size under n beta: alpha 0.
        let samples = [
            Sample {
                bytes: 1000,
                seconds: 1e-6,
            },
            Sample {
                bytes: 2000,
                seconds: 4e-6,
            },
        ];
        let fit = Hockney::fit(&samples).unwrap();
        assert!(fit.alpha == 0.0 && close(fit.beta, 3e-9), "{fit:?}");
    }

    #[test]
    fn too_few_sizes_fit_nothing() {
        let one = Sample {
            bytes: 8,
            seconds: 1e-6,
        };
        assert_eq!(Hockney::fit(&[one, one]), None);
        assert_eq!(slope_change(&[one]), None);
    }

    #[test]
    fn bandwidth_by_hand() {
        let h = Hockney {
            alpha: 1e-6,
            beta: 1e-8,
        };
        assert!(close(h.megabytes_per_s(), 100.0));
    }
}
