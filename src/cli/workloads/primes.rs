//! `primes`: count the primes below N with a segmented sieve, one block per item.
//!
//! Every rank sieves the base primes up to sqrt(N) once when the workload is
//! built (per-worker set-up), then each item sieves one block of numbers.

use super::{Answer, Input, Workload};

/// The default block: 64 Ki numbers fit the L2 cache as a byte map.
pub const DEFAULT_BLOCK: u64 = 1 << 16;

/// Primes below `limit`, in blocks of `block` numbers.
#[derive(Clone, Debug)]
pub struct Primes {
    limit: u64,
    block: u64,
    base: Vec<u64>,
}

impl Primes {
    /// Prepares the base primes (up to sqrt(limit)).
    pub fn new(limit: u64, block: u64) -> Primes {
        let root = (limit as f64).sqrt() as u64 + 1;
        Primes {
            limit,
            block: block.max(1),
            base: simple_sieve(root),
        }
    }
}

/// All primes `<= n` by the sieve of Eratosthenes.
pub fn simple_sieve(n: u64) -> Vec<u64> {
    let n = n as usize;
    let mut composite = vec![false; n + 1];
    let mut primes = Vec::new();
    for i in 2..=n {
        if !composite[i] {
            primes.push(i as u64);
            let mut j = i * i;
            while j <= n {
                composite[j] = true;
                j += i;
            }
        }
    }
    primes
}

impl Workload for Primes {
    type Item = u64;
    type Output = u64;
    type Summary = u64;

    fn name(&self) -> &'static str {
        "primes"
    }

    fn input(&self) -> anyhow::Result<Input<'_, u64>> {
        let blocks = self.limit.div_ceil(self.block) as usize;
        Ok(Input::generated(blocks, |b| b as u64))
    }

    fn map(&self, block: u64) -> u64 {
        let lo = block * self.block;
        let hi = (lo + self.block).min(self.limit);
        let mut composite = vec![false; (hi - lo) as usize];
        for &p in &self.base {
            if p * p >= hi {
                break;
            }
            let mut m = (p * p).max(lo.div_ceil(p) * p);
            while m < hi {
                composite[(m - lo) as usize] = true;
                m += p;
            }
        }
        (lo..hi)
            .zip(&composite)
            .filter(|&(n, &c)| n >= 2 && !c)
            .count() as u64
    }

    fn absorb(&self, count: &mut u64, _index: usize, primes: u64) {
        *count += primes;
    }

    fn answer(&self, &count: &u64) -> Answer {
        Answer {
            text: format!("{count} primes below {}", self.limit),
            value: count.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(limit: u64, block: u64) -> u64 {
        let w = Primes::new(limit, block);
        w.input()
            .unwrap()
            .collect()
            .into_iter()
            .map(|b| w.map(b))
            .sum()
    }

    #[test]
    fn known_prime_counts() {
        assert_eq!(count(0, 10), 0);
        assert_eq!(count(2, 10), 0);
        assert_eq!(count(3, 10), 1);
        assert_eq!(count(100, 7), 25);
        assert_eq!(count(1_000_000, DEFAULT_BLOCK), 78_498);
    }

    #[test]
    fn blocks_agree_with_simple_sieve() {
        for limit in [10u64, 97, 98, 1000, 4099] {
            let serial = simple_sieve(limit - 1).len() as u64;
            assert_eq!(count(limit, 13), serial, "limit {limit}");
        }
    }
}
