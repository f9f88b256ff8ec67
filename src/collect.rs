//! The root's side of getting results back: decode each chunk's bytes, fold
//! every item into the checksum, and hand the items on in input order (with
//! a reorder buffer for chunks that arrive early) or as they come.
//!
//! The checksum is the wrapping sum over items of xxh3-64 of the item's
//! encoding seeded with its index: it can be accumulated in any arrival
//! order, yet a result in the wrong place changes it. So ordered and
//! unordered runs, every schedule and every chunking agree on it.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;

use crate::codec;
use crate::failure::fatal;
use crate::kernel::Outcome;
use crate::stats::ItemFailure;

/// Receives decoded results on the root.
pub struct Collector<S> {
    ordered: bool,
    /// In ordered mode: the index of the next item to hand on.
    next: usize,
    /// In ordered mode: chunks that arrived before their turn, by first index.
    early: BTreeMap<usize, (usize, Vec<u8>)>,
    /// Bytes held in `early`.
    early_bytes: usize,
    checksum: u64,
    /// Items that failed, in arrival order.
    failures: Vec<ItemFailure>,
    /// Whether a chunk stopped at a failure (abort policy).
    aborted: bool,
    sink: S,
}

impl<S> Collector<S> {
    /// A collector calling `sink(index, item)`; in input order when `ordered`.
    pub fn new(ordered: bool, sink: S) -> Collector<S> {
        Collector {
            ordered,
            next: 0,
            early: BTreeMap::new(),
            early_bytes: 0,
            checksum: 0,
            failures: Vec::new(),
            aborted: false,
            sink,
        }
    }

    /// Bytes of results waiting for an earlier chunk (ordered mode).
    pub fn buffered_bytes(&self) -> usize {
        self.early_bytes
    }

    /// Whether a chunk stopped at a failed item: the map must end with an error.
    pub fn aborted(&self) -> bool {
        self.aborted
    }

    /// The items that failed so far.
    pub fn failures(&self) -> &[ItemFailure] {
        &self.failures
    }

    /// The checksum of everything collected so far.
    pub fn checksum(&self) -> u64 {
        self.checksum
    }

    /// Takes the result payload (outcome, then results) of items
    /// `start..start + count`, sent by `rank`.
    pub fn add<U>(&mut self, start: usize, count: usize, payload: &[u8], rank: usize)
    where
        U: DeserializeOwned,
        S: FnMut(usize, U),
    {
        if self.ordered && start != self.next {
            self.early_bytes += payload.len();
            self.early.insert(start, (count, payload.to_vec()));
            return;
        }
        self.take::<U>(start, count, payload, rank);
        if self.ordered {
            while let Some((count, payload)) = self.early.remove(&self.next) {
                self.early_bytes -= payload.len();
                self.take::<U>(self.next, count, &payload, rank);
            }
        }
    }

    fn take<U>(&mut self, start: usize, count: usize, payload: &[u8], rank: usize)
    where
        U: DeserializeOwned,
        S: FnMut(usize, U),
    {
        self.next = start + count;
        let malformed = |e: String| -> ! {
            fatal(&format!(
                "results of items {start}..{} from rank {rank}: {e}",
                start + count
            ))
        };
        let (outcome, used): (Outcome, usize) =
            codec::decode_value_prefix(payload).unwrap_or_else(|e| malformed(e.to_string()));
        for (index, message) in &outcome.failures {
            self.failures.push(ItemFailure {
                index: *index,
                rank: rank as u64,
                message: message.clone(),
            });
        }
        if !outcome.complete {
            // The chunk stopped at a failure: its results are incomplete and
            // the map ends in an error, so they are not handed on.
            self.aborted = true;
            return;
        }
        let items = &payload[used..];
        let mut failed = outcome.failures.iter().map(|f| f.0 as usize).peekable();
        let mut index = start;
        let sink = &mut self.sink;
        let checksum = &mut self.checksum;
        let decoded = codec::decode_each(
            items,
            count - outcome.failures.len(),
            |item: U, encoding| {
                while failed.next_if_eq(&index).is_some() {
                    index += 1;
                }
                *checksum = checksum.wrapping_add(codec::item_hash(index, encoding));
                sink(index, item);
                index += 1;
            },
        );
        match decoded {
            Ok(used) if used == items.len() => {}
            Ok(used) => malformed(format!("{} trailing bytes", items.len() - used)),
            Err(e) => malformed(e.to_string()),
        }
    }
}
