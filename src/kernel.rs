//! The per-rank compute step shared by every schedule: items of one chunk in,
//! encoded results out, mapped on one thread or on a rayon pool, with each
//! item's panic caught and handled by the failure policy.
//!
//! MPI never runs here: with OpenMPI the communicator is not `Send`, so the
//! rank's main thread does all communication and only this step fans out to
//! worker threads (the hybrid "ranks x threads" model).
//!
//! A chunk's result payload is its [`Outcome`] (encoded) followed by the
//! encodings of the results that succeeded, in item order.

use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::codec;
use crate::failure::{catch, catch_item, clear_current_item, fatal};
use crate::interrupt;
use crate::schedule::OnError;

/// How a chunk went: which items failed, and whether every item was tried.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// False when the chunk stopped early: at a failure (abort policy; then
    /// `failures` says which), or abandoned for a walltime signal or after
    /// an earlier failure (no failures). Its results are not used.
    pub complete: bool,
    /// Failed items: global index and panic message.
    pub failures: Vec<(u64, String)>,
}

/// The results of a batch of items and how it went.
pub struct Batch<U> {
    /// Results of the items that succeeded, in item order.
    pub results: Vec<U>,
    /// Failures and completeness.
    pub outcome: Outcome,
}

impl<U> Batch<U> {
    /// An empty, complete batch with room for `capacity` results.
    pub fn new(capacity: usize) -> Batch<U> {
        Batch {
            results: Vec::with_capacity(capacity),
            outcome: Outcome {
                complete: true,
                failures: Vec::new(),
            },
        }
    }

    /// Item `index` panicked with `message`: retries it if the policy says
    /// so (rebuilding it with `again`), else records the failure. Returns
    /// whether the batch goes on (false: it stops here, incomplete).
    fn settle<T, F>(
        &mut self,
        index: usize,
        message: String,
        policy: OnError,
        again: &(dyn Fn(usize) -> T + Sync),
        f: &F,
    ) -> bool
    where
        F: Fn(T) -> U,
    {
        match retry(index, policy, again, f) {
            Some(u) => self.results.push(u),
            None => {
                self.outcome.failures.push((index as u64, message));
                if policy != OnError::Skip {
                    self.outcome.complete = false;
                    return false;
                }
            }
        }
        true
    }
}

/// Under `retry=N`, tries item `index` again up to N times; the first result.
fn retry<T, U, F: Fn(T) -> U>(
    index: usize,
    policy: OnError,
    again: &(dyn Fn(usize) -> T + Sync),
    f: &F,
) -> Option<U> {
    match policy {
        OnError::Retry(n) => (0..n).find_map(|_| catch_item(index, again(index), f).ok()),
        _ => None,
    }
}

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

    /// Maps owned items whose first has global index `first`, preserving
    /// order. A panicking item is retried (with `again(index)` rebuilding it)
    /// or recorded as the policy says; under abort (and retry, once spent)
    /// the batch stops at the first failure.
    pub fn map_items<T, U, F>(
        &self,
        items: Vec<T>,
        first: usize,
        f: &F,
        policy: OnError,
        again: &(dyn Fn(usize) -> T + Sync),
    ) -> Batch<U>
    where
        T: Send,
        U: Send,
        F: Fn(T) -> U + Sync,
    {
        let attempt = |index: usize, item: T| -> Result<U, String> {
            catch_item(index, item, f)
                .or_else(|message| retry(index, policy, again, f).ok_or(message))
        };
        let skip = policy == OnError::Skip;
        let mut batch = Batch::new(items.len());
        match &self.pool {
            None => {
                // One catch covers the run of items up to a panic (a catch
                // per item costs more than mapping a cheap item); after one,
                // the failed item is retried or recorded and the run goes on.
                let mut items = items.into_iter().enumerate();
                loop {
                    let mut current = 0;
                    let results = &mut batch.results;
                    let run = catch(|| {
                        for (i, item) in items.by_ref() {
                            // Every 64 items: cheap, and soon enough for a walltime signal.
                            if i % 64 == 0 && interrupt::requested().is_some() {
                                return false;
                            }
                            current = i;
                            results.push(f(item));
                        }
                        true
                    });
                    match run {
                        Ok(true) => break,
                        Ok(false) => {
                            batch.outcome.complete = false;
                            break;
                        }
                        Err(message) => {
                            if !batch.settle(first + current, message, policy, again, f) {
                                break;
                            }
                        }
                    }
                }
            }
            Some(pool) => {
                // Threads check `stop` before each item so an abort stops them all soon.
                let stop = AtomicBool::new(false);
                let outcomes: Vec<Option<Result<U, String>>> = pool.install(|| {
                    items
                        .into_par_iter()
                        .enumerate()
                        .map(|(i, item)| {
                            if stop.load(Ordering::Relaxed)
                                || (i % 64 == 0 && interrupt::requested().is_some())
                            {
                                stop.store(true, Ordering::Relaxed);
                                return None;
                            }
                            let result = attempt(first + i, item);
                            if result.is_err() && !skip {
                                stop.store(true, Ordering::Relaxed);
                            }
                            Some(result)
                        })
                        .collect()
                });
                for (i, outcome) in outcomes.into_iter().enumerate() {
                    match outcome {
                        Some(Ok(u)) => batch.results.push(u),
                        Some(Err(message)) => {
                            batch.outcome.failures.push(((first + i) as u64, message))
                        }
                        None => batch.outcome.complete = false,
                    }
                }
                if !skip && !batch.outcome.failures.is_empty() {
                    batch.outcome.complete = false;
                }
            }
        }
        clear_current_item();
        batch
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

    /// Item `index` of a chunk whose items start at global index `first` and
    /// are encoded in `bytes`: decoded again for a retry.
    pub fn redecode<T: DeserializeOwned>(bytes: &[u8], first: usize, index: usize) -> T {
        let mut items: Vec<T> = Vec::with_capacity(1);
        let skip = index - first;
        let mut seen = 0;
        let decoded = codec::decode_each(bytes, skip + 1, |item, _| {
            if seen == skip {
                items.push(item);
            }
            seen += 1;
        });
        match (decoded, items.pop()) {
            (Ok(_), Some(item)) => item,
            _ => fatal(&format!("cannot decode item {index} again for a retry")),
        }
    }

    /// Maps one chunk encoded in `bytes` (its first `count` items, global
    /// indices from `first`) and appends the result payload to `out`.
    /// Returns the input bytes used, the payload bytes added, and whether the
    /// chunk completed.
    pub fn map_chunk<T, U, F>(
        &self,
        bytes: &[u8],
        first: usize,
        count: usize,
        f: &F,
        policy: OnError,
        out: &mut Vec<u8>,
    ) -> (usize, usize, bool)
    where
        T: DeserializeOwned + Send,
        U: Serialize + Send,
        F: Fn(T) -> U + Sync,
    {
        let again = |index: usize| Self::redecode::<T>(bytes, first, index);
        let (batch, used) = if self.pool.is_some() {
            let (items, used) = self.decode::<T>(bytes, first, count);
            (self.map_items(items, first, f, policy, &again), used)
        } else {
            self.stream_chunk(bytes, first, count, f, policy, &again)
        };
        let before = out.len();
        self.encode_payload(&batch, first, out);
        (used, out.len() - before, batch.outcome.complete)
    }

    /// The one-thread path of [`Kernel::map_chunk`]: decodes and maps item by
    /// item, so no vector of decoded items is ever built (for cheap items
    /// that allocation and its page faults cost as much as the mapping).
    /// Returns the batch and the input bytes it used.
    fn stream_chunk<T, U, F>(
        &self,
        bytes: &[u8],
        first: usize,
        count: usize,
        f: &F,
        policy: OnError,
        again: &(dyn Fn(usize) -> T + Sync),
    ) -> (Batch<U>, usize)
    where
        T: DeserializeOwned,
        F: Fn(T) -> U,
    {
        let mut batch = Batch::new(count);
        // Where the next item starts: its index in the chunk and its byte offset.
        let (mut next, mut offset) = (0usize, 0usize);
        while next < count {
            // The item being mapped, should it panic: index and encoding end.
            let mut current = (next, offset);
            let results = &mut batch.results;
            let run = catch(|| {
                let mut stopped = false;
                let decoded =
                    codec::decode_while(&bytes[offset..], count - next, |item: T, enc| {
                        let i = current.0;
                        if i % 64 == 0 && interrupt::requested().is_some() {
                            stopped = true;
                            return false;
                        }
                        current = (i, current.1 + enc.len());
                        results.push(f(item));
                        current.0 += 1;
                        true
                    });
                (decoded, stopped)
            });
            match run {
                Ok((Ok(_), stopped)) => {
                    (next, offset) = current;
                    if stopped {
                        batch.outcome.complete = false;
                        break;
                    }
                }
                Ok((Err(e), _)) => {
                    fatal(&format!("chunk of items {first}..{}: {e}", first + count))
                }
                Err(message) => {
                    (next, offset) = (current.0 + 1, current.1);
                    if !batch.settle(first + current.0, message, policy, again, f) {
                        break;
                    }
                }
            }
        }
        clear_current_item();
        (batch, offset)
    }

    /// Appends the payload of a chunk that was not computed (it follows one
    /// that stopped at a failure); returns the bytes added.
    pub fn encode_abandoned(&self, out: &mut Vec<u8>) -> usize {
        let abandoned = Outcome {
            complete: false,
            failures: Vec::new(),
        };
        let prefix = codec::encode_value(&abandoned).unwrap_or_else(|e| fatal(&e.to_string()));
        out.extend_from_slice(&prefix);
        prefix.len()
    }

    /// Appends `batch`'s payload (outcome, then results) to `out`.
    pub fn encode_payload<U: Serialize>(&self, batch: &Batch<U>, first: usize, out: &mut Vec<u8>) {
        let written = codec::encode_value(&batch.outcome)
            .map(|prefix| out.extend_from_slice(&prefix))
            .and_then(|()| codec::encode_items(&batch.results, out));
        if let Err(e) = written {
            fatal(&format!(
                "results of items {first}..{}: {e}",
                first + batch.results.len() + batch.outcome.failures.len()
            ));
        }
    }
}
