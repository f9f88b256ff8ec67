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
            sink,
        }
    }

    /// Bytes of results waiting for an earlier chunk (ordered mode).
    pub fn buffered_bytes(&self) -> usize {
        self.early_bytes
    }

    /// The checksum of everything collected so far.
    pub fn checksum(&self) -> u64 {
        self.checksum
    }

    /// Takes the encoded results of items `start..start + count`, sent by `rank`.
    pub fn add<U>(&mut self, start: usize, count: usize, bytes: &[u8], rank: usize)
    where
        U: DeserializeOwned,
        S: FnMut(usize, U),
    {
        if self.ordered && start != self.next {
            self.early_bytes += bytes.len();
            self.early.insert(start, (count, bytes.to_vec()));
            return;
        }
        self.take::<U>(start, count, bytes, rank);
        if self.ordered {
            while let Some((count, bytes)) = self.early.remove(&self.next) {
                self.early_bytes -= bytes.len();
                self.take::<U>(self.next, count, &bytes, rank);
            }
        }
    }

    fn take<U>(&mut self, start: usize, count: usize, bytes: &[u8], rank: usize)
    where
        U: DeserializeOwned,
        S: FnMut(usize, U),
    {
        let mut index = start;
        let sink = &mut self.sink;
        let checksum = &mut self.checksum;
        let decoded = codec::decode_each(bytes, count, |item: U, encoding| {
            *checksum = checksum.wrapping_add(codec::item_hash(index, encoding));
            sink(index, item);
            index += 1;
        });
        match decoded {
            Ok(used) if used == bytes.len() => {}
            Ok(used) => fatal(&format!(
                "results of items {start}..{} from rank {rank}: {} trailing bytes",
                start + count,
                bytes.len() - used
            )),
            Err(e) => fatal(&format!(
                "results of items {start}..{} from rank {rank}: {e}",
                start + count
            )),
        }
        self.next = start + count;
    }
}
