//! `square`: the lecture's `Pool.map(square, [1, 2, ..., N])`; the answer is the sum.

use super::{Answer, Input, Workload, json_u128};

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

/// How many squares were absorbed, and their sum.
#[derive(Debug, Default)]
pub struct Sum {
    count: u64,
    sum: u128,
}

impl Workload for Square {
    type Item = u64;
    type Output = u64;
    type Summary = Sum;

    fn name(&self) -> &'static str {
        "square"
    }

    fn input(&self) -> anyhow::Result<Input<'_, u64>> {
        Ok(Input::generated(self.items as usize, |i| i as u64 + 1))
    }

    #[inline]
    fn map(&self, x: u64) -> u64 {
        x * x
    }

    fn absorb(&self, s: &mut Sum, _index: usize, square: u64) {
        s.count += 1;
        s.sum += u128::from(square);
    }

    fn answer(&self, s: &Sum) -> Answer {
        Answer {
            text: format!("sum of {} squares = {}", s.count, s.sum),
            value: json_u128(s.sum),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_form_matches_loop() {
        let w = Square { items: 1000 };
        let results = w.input().unwrap().collect().into_iter().map(|x| w.map(x));
        let answer = w.answer(&super::super::fold(&w, results));
        assert_eq!(answer.value, serde_json::json!(333_833_500u64));
        assert_eq!(sum_of_squares(1000), 333_833_500);
    }
}
