//! The root's side of getting results back: decode each chunk's bytes, fold
//! every item into the checksum, and hand the items on in input order (with
//! a reorder buffer for chunks that arrive early) or as they come.
//!
//! The checksum is the wrapping sum over items of xxh3-64 of the item's
//! encoding seeded with its index: it can be accumulated in any arrival
//! order, yet a result in the wrong place changes it. So ordered and
//! unordered runs, every schedule and every chunking agree on it.
//!
//! With a journal, every complete chunk is appended as it arrives, and the
//! chunks a resumed run finds there are handed on from the file in their
//! turn, exactly as if they had just been computed.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;

use crate::codec;
use crate::failure::fatal;
use crate::journal::{Entry, Journal};
use crate::kernel::Outcome;
use crate::stats::ItemFailure;

/// A chunk waiting for its turn: received bytes, or a journal record.
enum Held {
    Bytes {
        count: usize,
        rank: usize,
        payload: Vec<u8>,
    },
    Journaled(Entry),
}

/// Receives decoded results on the root.
pub struct Collector<'j, S> {
    ordered: bool,
    /// In ordered mode: the index of the next item to hand on.
    next: usize,
    /// In ordered mode: chunks that arrived before their turn, by first index.
    early: BTreeMap<usize, Held>,
    /// Bytes held in `early`.
    early_bytes: usize,
    checksum: u64,
    /// Items that failed, in arrival order.
    failures: Vec<ItemFailure>,
    /// Whether a chunk stopped at a failure (abort policy).
    aborted: bool,
    /// Items handed on or failed so far.
    done: usize,
    journal: Option<&'j mut Journal>,
    sink: S,
}

impl<'j, S> Collector<'j, S> {
    /// A collector calling `sink(index, item)`; in input order when `ordered`.
    /// Complete chunks are appended to `journal`.
    pub fn new(ordered: bool, journal: Option<&'j mut Journal>, sink: S) -> Collector<'j, S> {
        Collector {
            ordered,
            next: 0,
            early: BTreeMap::new(),
            early_bytes: 0,
            checksum: 0,
            failures: Vec::new(),
            aborted: false,
            done: 0,
            journal,
            sink,
        }
    }

    /// Hands on the chunks the journal already holds (in their turn, when
    /// ordered). Call once, before any chunk arrives.
    pub fn replay<U>(&mut self)
    where
        U: DeserializeOwned,
        S: FnMut(usize, U),
    {
        let entries: Vec<(usize, Entry)> = match &self.journal {
            Some(j) => j.entries().iter().map(|(&s, &e)| (s, e)).collect(),
            None => return,
        };
        for (start, entry) in entries {
            if self.ordered {
                self.early.insert(start, Held::Journaled(entry));
            } else {
                self.take_held::<U>(start, Held::Journaled(entry));
            }
        }
        if self.ordered {
            self.drain::<U>();
        }
    }

    /// Items done so far: all the journal holds when there is one (chunks
    /// waiting for their turn included), else those handed on or failed.
    pub fn done(&self) -> usize {
        self.journal
            .as_deref()
            .map_or(self.done, Journal::done_items)
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
    /// `start..start + count`, sent by `rank`, journaling it if complete.
    pub fn add<U>(&mut self, start: usize, count: usize, payload: &[u8], rank: usize)
    where
        U: DeserializeOwned,
        S: FnMut(usize, U),
    {
        if let Some(journal) = self.journal.as_deref_mut() {
            let complete = codec::decode_value_prefix::<Outcome>(payload)
                .map(|(o, _)| o.complete)
                .unwrap_or(false);
            if complete && let Err(e) = journal.append(start, count, rank, payload) {
                fatal(&e.to_string());
            }
        }
        if self.ordered && start != self.next {
            self.early_bytes += payload.len();
            let held = Held::Bytes {
                count,
                rank,
                payload: payload.to_vec(),
            };
            self.early.insert(start, held);
            return;
        }
        self.take::<U>(start, count, payload, rank);
        if self.ordered {
            self.drain::<U>();
        }
    }

    /// Hands on the held chunks that are next in turn.
    fn drain<U>(&mut self)
    where
        U: DeserializeOwned,
        S: FnMut(usize, U),
    {
        while let Some(held) = self.early.remove(&self.next) {
            self.take_held::<U>(self.next, held);
        }
    }

    fn take_held<U>(&mut self, start: usize, held: Held)
    where
        U: DeserializeOwned,
        S: FnMut(usize, U),
    {
        match held {
            Held::Bytes {
                count,
                rank,
                payload,
            } => {
                self.early_bytes -= payload.len();
                self.take::<U>(start, count, &payload, rank);
            }
            Held::Journaled(entry) => {
                let journal = self
                    .journal
                    .as_deref()
                    .expect("journaled chunks come from a journal");
                let payload = journal.payload(&entry).unwrap_or_else(|e| {
                    fatal(&format!("journal {}: {e}", journal.path().display()))
                });
                self.take::<U>(start, entry.count, &payload, entry.rank);
            }
        }
    }

    fn take<U>(&mut self, start: usize, count: usize, payload: &[u8], rank: usize)
    where
        U: DeserializeOwned,
        S: FnMut(usize, U),
    {
        self.next = start + count;
        self.done += count;
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
            // The chunk stopped early: at a failure (the map ends in an
            // error) or abandoned (walltime signal): its results are not
            // handed on, and a resumed run computes them again.
            self.aborted |= !outcome.failures.is_empty();
            self.done -= count;
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
