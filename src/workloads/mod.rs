//! The built-in workloads of `hpcmap run`, one file each.
//!
//! A workload says how to build the input (on the root), how to map one item
//! (on every rank), what the answer is (on the root, from the ordered
//! results), and optionally what file to write. Every workload is
//! deterministic: random ones seed per item, never per rank, so the answer
//! and checksum are the same at any rank count, thread count and schedule.

pub mod mandelbrot;
pub mod pi;
pub mod primes;
pub mod rng;
pub mod spin;
pub mod square;
pub mod wordcount;

use std::io::Write;
use std::path::Path;

use serde::{Serialize, de::DeserializeOwned};

/// The answer a workload computes from its results.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Answer {
    /// One human-readable line.
    pub text: String,
    /// The same as JSON, for comparing runs and merging parts.
    pub value: serde_json::Value,
}

/// One built-in map: input, per-item function, answer, optional output file.
pub trait Workload: Sync {
    /// What the root hands out.
    type Item: Serialize + DeserializeOwned + Send;
    /// What each item maps to.
    type Output: Serialize + DeserializeOwned + Send;

    /// The name used on the command line.
    fn name(&self) -> &'static str;

    /// Builds the whole input; called on the root only.
    ///
    /// # Errors
    /// When the input cannot be read (wordcount's files).
    fn items(&self) -> anyhow::Result<Vec<Self::Item>>;

    /// Maps one item; called on every rank, possibly on several threads.
    fn map(&self, item: Self::Item) -> Self::Output;

    /// The answer from all results in input order; called on the root only.
    fn answer(&self, results: &[Self::Output]) -> Answer;

    /// Where the workload writes its output file, if anywhere.
    fn output_path(&self) -> Option<&Path> {
        None
    }

    /// Writes the output file's contents from the ordered results.
    ///
    /// # Errors
    /// When writing fails.
    fn write_output(&self, _results: &[Self::Output], _out: &mut dyn Write) -> std::io::Result<()> {
        Ok(())
    }
}

/// A JSON number when it fits a `u64`, else a decimal string (JSON readers
/// lose precision beyond that).
pub fn json_u128(v: u128) -> serde_json::Value {
    match u64::try_from(v) {
        Ok(v) => v.into(),
        Err(_) => v.to_string().into(),
    }
}
