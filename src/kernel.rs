//! The per-rank compute step shared by every schedule: bytes of one chunk in,
//! bytes of its results out, mapped on one thread or on a rayon pool.
//!
//! MPI never runs here: with OpenMPI the communicator is not `Send`, so the
//! rank's main thread does all communication and only this step fans out to
//! worker threads (the hybrid "ranks x threads" model).

use rayon::prelude::*;
use serde::{Serialize, de::DeserializeOwned};

use crate::codec;
use crate::failure::{clear_current_item, fatal, set_current_item};

/// Maps items on this rank: serially, or on a private rayon pool.
pub struct Kernel {
    threads: usize,
    pool: Option<rayon::ThreadPool>,
}

impl Kernel {
    /// A kernel that maps with `threads` threads (1 means the calling thread only).
    pub fn new(threads: usize) -> Result<Kernel, rayon::ThreadPoolBuildError> {
        let threads = threads.max(1);
        let pool = if threads > 1 {
            Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(|i| format!("hpcmap-worker-{i}"))
                    .build()?,
            )
        } else {
            None
        };
        Ok(Kernel { threads, pool })
    }

    /// Compute threads per rank.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Maps owned items whose first has global index `first`, preserving order.
    pub fn map_items<T, U, F>(&self, items: Vec<T>, first: usize, f: &F) -> Vec<U>
    where
        T: Send,
        U: Send,
        F: Fn(T) -> U + Sync,
    {
        let apply = |(i, item): (usize, T)| {
            set_current_item(first + i);
            f(item)
        };
        let out = match &self.pool {
            None => items.into_iter().enumerate().map(apply).collect(),
            Some(pool) => pool.install(|| items.into_par_iter().enumerate().map(apply).collect()),
        };
        clear_current_item();
        out
    }

    /// Decodes `count` items (global indices from `first`) from the front of
    /// `bytes`; returns them and the bytes they took.
    ///
    /// The bytes were produced by hpcmap itself on another rank, so a failure
    /// here is a bug or a version mismatch: the job is aborted.
    pub fn decode<T: DeserializeOwned>(
        &self,
        bytes: &[u8],
        first: usize,
        count: usize,
    ) -> (Vec<T>, usize) {
        let mut items = Vec::with_capacity(count);
        match codec::decode_prefix_into(bytes, count, &mut items) {
            Ok(used) => (items, used),
            Err(e) => fatal(&format!("chunk of items {first}..{}: {e}", first + count)),
        }
    }

    /// Appends the encoded `results` (global indices from `first`) to `out`;
    /// returns the bytes added. A value that refuses to serialize aborts the job.
    pub fn encode<U: Serialize>(&self, results: &[U], first: usize, out: &mut Vec<u8>) -> usize {
        match codec::encode_items(results, out) {
            Ok(n) => n,
            Err(e) => fatal(&format!(
                "results of items {first}..{}: {e}",
                first + results.len()
            )),
        }
    }
}
