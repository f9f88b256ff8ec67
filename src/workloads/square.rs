//! `square`: the lecture's `Pool.map(square, [1, 2, ..., N])`; the answer is the sum.

use super::{Answer, Workload, json_u128};

/// The largest N whose square still fits a `u64`.
pub const MAX_ITEMS: u64 = u32::MAX as u64;

/// Squares of 1..=N.
#[derive(Clone, Debug)]
pub struct Square {
    /// N: the items are 1, 2, ..., N.
    pub items: u64,
}

/// Sum of squares 1..=n in closed form, n(n+1)(2n+1)/6: the known value tests compare with.
pub fn sum_of_squares(n: u64) -> u128 {
    let n = n as u128;
    n * (n + 1) * (2 * n + 1) / 6
}

impl Workload for Square {
    type Item = u64;
    type Output = u64;

    fn name(&self) -> &'static str {
        "square"
    }

    fn items(&self) -> anyhow::Result<Vec<u64>> {
        Ok((1..=self.items).collect())
    }

    #[inline]
    fn map(&self, x: u64) -> u64 {
        x * x
    }

    fn answer(&self, results: &[u64]) -> Answer {
        let sum: u128 = results.iter().map(|&r| r as u128).sum();
        Answer {
            text: format!("sum of {} squares = {sum}", results.len()),
            value: json_u128(sum),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_form_matches_loop() {
        let w = Square { items: 1000 };
        let results: Vec<u64> = w.items().unwrap().into_iter().map(|x| w.map(x)).collect();
        assert_eq!(w.answer(&results).value, serde_json::json!(333_833_500u64));
        assert_eq!(sum_of_squares(1000), 333_833_500);
    }
}
