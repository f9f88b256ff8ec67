//! The root's side of getting results back: every chunk's results, whether
//! encoded by another rank, mapped by the root itself, or replayed from a
//! journal, are checksummed and handed to the sink in input order (with a
//! reorder buffer for chunks that arrive early) or as they come.
//!
//! The checksum is the wrapping sum over items of a hash of the item's
//! encoding seeded with its index: it can be accumulated in any arrival
//! order, yet a result in the wrong place changes it. So ordered and
//! unordered runs, every schedule and every chunking agree on it.
//!
//! With a journal, every complete chunk is appended as it arrives, and the
//! chunks a resumed run finds there are handed on from the file in their
//! turn, exactly as if they had just been computed.
//!
//! Every item is accounted for: [`Collector::accounted`] counts the items
//! handed on and the failed items skipped, and the pool refuses to report
//! success unless that is the whole input.

use std::collections::BTreeMap;
use std::marker::PhantomData;

use serde::{Serialize, de::DeserializeOwned};

use crate::codec;
use crate::error::MapError;
use crate::executor::Batch;
use crate::failure::fatal;
use crate::interrupt;
use crate::journal::{Entry, Journal};
use crate::stats::{ItemFailure, MapStats};
use crate::wire::Outcome;

/// Where the root's results go: [`Sink::item`] for each result (in input
/// order, or as they arrive, by [`crate::Order`]), [`Sink::failed`] for each
/// failed item as its chunk arrives. [`FnSink`] makes a closure a sink.
pub trait Sink<U> {
    /// Item `index` mapped to `result`.
    fn item(&mut self, index: usize, result: U);

    /// An item failed (it is skipped, retried out, or ends the map).
    fn failed(&mut self, _failure: &ItemFailure) {}

    /// Consecutive items from index `first` (a whole chunk without failed
    /// items): one call per chunk where [`Sink::item`] would take one per
    /// item. The default hands them to `item` one by one.
    fn run(&mut self, first: usize, results: Vec<U>) {
        for (k, result) in results.into_iter().enumerate() {
            self.item(first + k, result);
        }
    }

    /// A vector the consecutive results from index `first` may be appended
    /// to directly (plain items arrive with one copy, from the received
    /// bytes into place). `None`, the default, hands them to [`Sink::run`].
    fn append_to(&mut self, _first: usize) -> Option<&mut Vec<U>> {
        None
    }
}

impl<U, S: Sink<U> + ?Sized> Sink<U> for &mut S {
    fn item(&mut self, index: usize, result: U) {
        (**self).item(index, result);
    }

    fn failed(&mut self, failure: &ItemFailure) {
        (**self).failed(failure);
    }

    fn run(&mut self, first: usize, results: Vec<U>) {
        (**self).run(first, results);
    }

    fn append_to(&mut self, first: usize) -> Option<&mut Vec<U>> {
        (**self).append_to(first)
    }
}

/// A closure `FnMut(index, result)` as a [`Sink`] that ignores failures.
pub struct FnSink<F>(pub F);

impl<U, F: FnMut(usize, U)> Sink<U> for FnSink<F> {
    fn item(&mut self, index: usize, result: U) {
        (self.0)(index, result);
    }
}

/// A complete chunk of plain results received straight into the sink's
/// vector (see [`Collector::receive_direct`]).
#[derive(Clone, Copy, Debug)]
pub struct Direct {
    /// Its first item.
    pub start: usize,
    /// Its items.
    pub count: usize,
    /// The rank that mapped it.
    pub rank: usize,
    /// Its bytes.
    pub bytes: usize,
    /// The checksum share its rank computed, if it did.
    pub sum: Option<u64>,
}

/// A chunk's result payload as it arrived: a slice of a bigger buffer (the
/// static gather), or a whole message whose payload starts at an offset.
pub enum Received<'a> {
    /// The payload, borrowed.
    Slice(&'a [u8]),
    /// A message, and where in it the payload starts.
    Message(Vec<u8>, usize),
}

impl Received<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Received::Slice(s) => s,
            Received::Message(m, at) => &m[*at..],
        }
    }

    fn into_owned(self) -> (Vec<u8>, usize) {
        match self {
            Received::Slice(s) => (s.to_vec(), 0),
            Received::Message(m, at) => (m, at),
        }
    }
}

/// A complete chunk waiting for its turn.
enum Held<U> {
    /// Encoded by another rank: the payload is `bytes[at..]`, with the
    /// checksum share the rank computed, if it did.
    Payload {
        rank: usize,
        bytes: Vec<u8>,
        at: usize,
        sum: Option<u64>,
    },
    /// Mapped by the root.
    Values { rank: usize, batch: Batch<U> },
    /// In the journal.
    Journaled(Entry),
}

/// What became of a chunk handed to the collector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// Its results are taken (now, or in their turn).
    Taken,
    /// It stopped at a failed item (abort policy): the map must end in an error.
    Failed,
    /// It was abandoned unmapped (a signal): nothing of it is used.
    Abandoned,
}

/// Receives results on the root.
pub struct Collector<'j, U, S> {
    ordered: bool,
    /// Ordered: the index of the next item to hand on.
    next: usize,
    /// Ordered: chunks that arrived before their turn, by first index.
    early: BTreeMap<usize, (usize, Held<U>)>,
    early_bytes: usize,
    peak_bytes: usize,
    checksum: u64,
    /// Failed items (skipped ones, and those that stopped a chunk).
    failures: Vec<ItemFailure>,
    aborted: bool,
    /// Items handed to the sink.
    handed: usize,
    /// Failed items of complete chunks (left out under `skip`).
    skipped: usize,
    journal: Option<&'j mut Journal>,
    /// Counters for whoever follows the map.
    progress: Option<&'j crate::progress::Progress>,
    /// The first failed journal write: journaling stops, the map winds down.
    journal_error: Option<crate::journal::JournalError>,
    sink: S,
    scratch: Vec<u8>,
    _results: PhantomData<fn(U)>,
}

impl<'j, U, S> Collector<'j, U, S>
where
    U: Serialize + DeserializeOwned + 'static,
    S: Sink<U>,
{
    /// A collector calling `sink(index, result)`; in input order when
    /// `ordered`. Complete chunks are appended to `journal`, and the chunks
    /// it already holds are handed on first (in their turn when ordered).
    pub fn new(ordered: bool, journal: Option<&'j mut Journal>, sink: S) -> Collector<'j, U, S> {
        let mut collector = Collector {
            ordered,
            next: 0,
            early: BTreeMap::new(),
            early_bytes: 0,
            peak_bytes: 0,
            checksum: 0,
            failures: Vec::new(),
            aborted: false,
            handed: 0,
            skipped: 0,
            journal,
            progress: None,
            journal_error: None,
            sink,
            scratch: Vec::new(),
            _results: PhantomData,
        };
        let entries: Vec<(usize, Entry)> = collector
            .journal
            .as_deref()
            .map(|j| j.entries().iter().map(|(&s, &e)| (s, e)).collect())
            .unwrap_or_default();
        for (start, entry) in entries {
            collector.place(start, entry.count, Held::Journaled(entry));
        }
        collector
    }

    /// Counts arriving chunks in `progress`.
    pub fn with_progress(mut self, progress: Option<&'j crate::progress::Progress>) -> Self {
        self.progress = progress;
        self
    }

    /// Counts a chunk that arrived.
    fn count(&self, rank: usize, count: usize, failed: usize) {
        if let Some(p) = self.progress {
            p.chunk(rank, count, failed);
        }
    }

    /// Items handed on plus failed items skipped: what the map has accounted for.
    pub fn accounted(&self) -> usize {
        self.handed + self.skipped
    }

    /// Items done: all the journal holds when there is one (chunks waiting
    /// for their turn included), else those accounted for.
    pub fn done(&self) -> usize {
        self.journal
            .as_deref()
            .map_or(self.accounted(), Journal::done_items)
    }

    /// Bytes of results waiting for an earlier chunk (ordered mode).
    pub fn buffered_bytes(&self) -> usize {
        self.early_bytes
    }

    /// The most bytes the reorder buffer held at once.
    pub fn peak_buffered(&self) -> usize {
        self.peak_bytes
    }

    /// The map's verdict on the root, once the schedule is done with
    /// `stats`: interrupted, ended by a failed item, incomplete (a bug), or
    /// its stats with the skipped items. Never success unless every one of
    /// the `total` items is accounted for.
    ///
    /// # Errors
    /// [`MapError::Interrupted`], [`MapError::ItemFailed`], [`MapError::Incomplete`].
    pub fn conclude(
        &mut self,
        mut stats: MapStats,
        total: usize,
        hosts: &[String],
    ) -> Result<MapStats, MapError> {
        if let Some(e) = self.journal_error.take() {
            return Err(MapError::Journal(e));
        }
        if let Some(signal) = stats.stopped_by {
            return Err(MapError::Interrupted {
                signal: interrupt::name(signal),
                done: self.done() as u64,
                total: total as u64,
            });
        }
        let mut failures = self.failures.clone();
        failures.sort_by_key(|f| f.index);
        if self.aborted {
            let failure = failures.swap_remove(0);
            let host = hosts
                .get(failure.rank as usize)
                .cloned()
                .unwrap_or_default();
            return Err(MapError::ItemFailed { failure, host });
        }
        if self.accounted() != total || !self.early.is_empty() {
            return Err(MapError::Incomplete {
                accounted: self.accounted() as u64,
                total: total as u64,
            });
        }
        stats.skipped = failures;
        stats.reorder_peak_bytes = self.peak_bytes as u64;
        Ok(stats)
    }

    /// Whether a chunk stopped at a failed item: the map must end with an error.
    pub fn aborted(&self) -> bool {
        self.aborted
    }

    /// The items that failed so far.
    pub fn failures(&self) -> &[ItemFailure] {
        &self.failures
    }

    /// The checksum of everything handed on so far.
    pub fn checksum(&self) -> u64 {
        self.checksum
    }

    /// Takes the result payload (outcome, then results) of items
    /// `start..start + count`, encoded by `rank` (which computed the
    /// checksum share `sum`, if it did).
    pub fn add_payload(
        &mut self,
        start: usize,
        count: usize,
        payload: Received<'_>,
        sum: Option<u64>,
        rank: usize,
    ) -> Arrival {
        let (outcome, _) = Outcome::split(payload.bytes()).unwrap_or_else(|e| {
            fatal(&format!(
                "results of items {start}..{} from rank {rank}: {e}",
                start + count
            ))
        });
        if let Some(arrival) = self.incomplete(&outcome, rank) {
            return arrival;
        }
        self.count(rank, count, outcome.failures.len());
        self.journal(start, count, rank, payload.bytes());
        if self.ordered && start != self.next {
            let (bytes, at) = payload.into_owned();
            self.place(
                start,
                count,
                Held::Payload {
                    rank,
                    bytes,
                    at,
                    sum,
                },
            );
        } else {
            self.take_payload(start, count, payload.bytes(), sum, rank);
            self.drain();
        }
        Arrival::Taken
    }

    /// Takes the outcome and the result bytes of items `start..start +
    /// count`, received apart from each other from `rank`, with the
    /// checksum share that rank computed (`None`: computed here).
    pub fn add_parts(
        &mut self,
        start: usize,
        count: usize,
        outcome: &Outcome,
        results: &[u8],
        sum: Option<u64>,
        rank: usize,
    ) -> Arrival {
        if let Some(arrival) = self.incomplete(outcome, rank) {
            return arrival;
        }
        let needs_payload = self.journal.is_some() || (self.ordered && start != self.next);
        if !needs_payload {
            self.count(rank, count, outcome.failures.len());
            self.take_results(start, count, outcome, results, sum, rank);
            self.drain();
            return Arrival::Taken;
        }
        let mut payload = Vec::with_capacity(results.len() + 16);
        outcome.encode(&mut payload);
        payload.extend_from_slice(results);
        self.add_payload(start, count, Received::Message(payload, 0), sum, rank)
    }

    /// Whether a run of plain results can be received straight into the
    /// sink (see [`Collector::receive_direct`]).
    pub fn can_receive_direct(&mut self) -> bool {
        self.ordered
            && self.early.is_empty()
            && codec::plain::size::<U>().is_some()
            && self.sink.append_to(self.next).is_some()
    }

    /// Receives complete chunks of plain results straight into the sink's
    /// vector: `receive` writes their bytes, back to back, into the region
    /// it is given. Then each is checksummed (by the share its rank sent,
    /// or here), journaled and accounted for. `false` (nothing received)
    /// when the chunks are not next in order or the sink takes no vector.
    pub fn receive_direct(&mut self, parts: &[Direct], receive: impl FnOnce(&mut [u8])) -> bool {
        let Some(first) = parts.first().map(|p| p.start) else {
            return true;
        };
        let count: usize = parts.iter().map(|p| p.count).sum();
        let bytes: usize = parts.iter().map(|p| p.bytes).sum();
        let contiguous = parts
            .windows(2)
            .all(|w| w[0].start + w[0].count == w[1].start);
        let Some(size) = codec::plain::size::<U>() else {
            return false;
        };
        if !self.ordered || first != self.next || !contiguous || bytes != count * size {
            return false;
        }
        let Some(vector) = self.sink.append_to(first) else {
            return false;
        };
        let region = codec::plain::extend_zeroed(vector, count).expect("plain results");
        receive(region);
        let mut at = 0;
        for part in parts {
            let slice = &region[at..at + part.bytes];
            at += part.bytes;
            if let Some(p) = self.progress {
                p.chunk(part.rank, part.count, 0);
            }
            let sum = part
                .sum
                .or_else(|| codec::hash_encoded::<U>(part.start, slice))
                .expect("plain results");
            self.checksum = self.checksum.wrapping_add(sum);
            if let Some(journal) = self.journal.as_deref_mut()
                && self.journal_error.is_none()
            {
                let mut payload = Vec::with_capacity(slice.len() + 16);
                Outcome::complete().encode(&mut payload);
                payload.extend_from_slice(slice);
                if let Err(e) = journal.append(part.start, part.count, part.rank, &payload) {
                    self.journal_error = Some(e);
                    interrupt::stop();
                }
            }
        }
        self.handed += count;
        self.next = first + count;
        true
    }

    /// Takes the results of items `start..start + count` that `rank` (the
    /// root) mapped itself: no encoding, but for the checksum and the journal.
    pub fn add_batch(
        &mut self,
        start: usize,
        count: usize,
        batch: Batch<U>,
        rank: usize,
    ) -> Arrival {
        if let Some(arrival) = self.incomplete(&batch.outcome, rank) {
            return arrival;
        }
        self.count(rank, count, batch.outcome.failures.len());
        if self.journal.is_some() && self.journal_error.is_none() {
            let mut payload = Vec::new();
            batch.outcome.encode(&mut payload);
            codec::encode_items(&batch.results, &mut payload)
                .unwrap_or_else(|e| fatal(&format!("results of items {start}..: {e}")));
            self.journal(start, count, rank, &payload);
        }
        self.place(start, count, Held::Values { rank, batch });
        Arrival::Taken
    }

    /// Records the failures of a chunk that stopped early; `None` when it is complete.
    fn incomplete(&mut self, outcome: &Outcome, rank: usize) -> Option<Arrival> {
        if outcome.complete {
            return None;
        }
        if outcome.failures.is_empty() {
            return Some(Arrival::Abandoned);
        }
        self.aborted = true;
        self.record_failures(outcome, rank);
        self.count(rank, 0, outcome.failures.len());
        Some(Arrival::Failed)
    }

    fn record_failures(&mut self, outcome: &Outcome, rank: usize) {
        for (index, message) in &outcome.failures {
            let failure = ItemFailure::new(*index, rank, message);
            self.sink.failed(&failure);
            self.failures.push(failure);
        }
    }

    /// Appends a complete chunk to the journal. A failed write (a full
    /// disk) ends journaling and winds the map down; the map then fails
    /// with the journal's error, and nothing is aborted mid-write.
    fn journal(&mut self, start: usize, count: usize, rank: usize, payload: &[u8]) {
        if self.journal_error.is_some() {
            return;
        }
        if let Some(journal) = self.journal.as_deref_mut() {
            match journal.append(start, count, rank, payload) {
                Ok(()) => {
                    if let Some(p) = self.progress {
                        p.journaled(count);
                    }
                }
                Err(e) => {
                    self.journal_error = Some(e);
                    interrupt::stop();
                }
            }
        }
    }

    /// Takes a complete chunk now, or holds it until its turn.
    fn place(&mut self, start: usize, count: usize, held: Held<U>) {
        if self.ordered && start != self.next {
            self.early_bytes += Self::size_of(&held);
            self.peak_bytes = self.peak_bytes.max(self.early_bytes);
            self.early.insert(start, (count, held));
            return;
        }
        self.take(start, count, held);
        self.drain();
    }

    /// Hands on the held chunks that are next in turn.
    fn drain(&mut self) {
        while let Some((count, held)) = self.early.remove(&self.next) {
            self.early_bytes -= Self::size_of(&held);
            self.take(self.next, count, held);
        }
    }

    /// Memory a held chunk takes, roughly.
    fn size_of(held: &Held<U>) -> usize {
        match held {
            Held::Payload { bytes, .. } => bytes.len(),
            Held::Values { batch, .. } => batch.results.len() * size_of::<U>(),
            Held::Journaled(_) => 0,
        }
    }

    /// Hands on a complete chunk's results, checksumming them.
    fn take(&mut self, start: usize, count: usize, held: Held<U>) {
        match held {
            Held::Payload {
                rank,
                bytes,
                at,
                sum,
            } => self.take_payload(start, count, &bytes[at..], sum, rank),
            Held::Journaled(entry) => {
                let journal = self
                    .journal
                    .as_deref()
                    .expect("journaled chunks have a journal");
                let payload = journal.payload(&entry).unwrap_or_else(|e| {
                    fatal(&format!("journal {}: {e}", journal.path().display()))
                });
                self.take_payload(start, count, &payload, None, entry.rank);
            }
            Held::Values { rank, batch } => {
                self.next = start + count;
                self.take_failures(&batch.outcome, rank);
                if batch.outcome.failures.is_empty() {
                    // Contiguous: hashed in one pass, handed on at once.
                    let sum = match batch.sum {
                        Some(sum) => sum,
                        None => codec::hash_items(start, &batch.results, &mut self.scratch)
                            .unwrap_or_else(|e| fatal(&format!("results of items {start}..: {e}"))),
                    };
                    self.checksum = self.checksum.wrapping_add(sum);
                    self.handed += batch.results.len();
                    self.sink.run(start, batch.results);
                    return;
                }
                let failed: Vec<usize> = batch
                    .outcome
                    .failures
                    .iter()
                    .map(|f| f.0 as usize)
                    .collect();
                let mut indices = Successes::new(start, &failed);
                for item in batch.results {
                    let index = indices.next_index();
                    self.scratch.clear();
                    codec::encode_items(std::slice::from_ref(&item), &mut self.scratch)
                        .unwrap_or_else(|e| fatal(&format!("result of item {index}: {e}")));
                    self.checksum = self
                        .checksum
                        .wrapping_add(codec::item_hash(index, &self.scratch));
                    self.sink.item(index, item);
                    self.handed += 1;
                }
            }
        }
    }

    fn take_failures(&mut self, outcome: &Outcome, rank: usize) {
        self.skipped += outcome.failures.len();
        self.record_failures(outcome, rank);
    }

    fn take_payload(
        &mut self,
        start: usize,
        count: usize,
        payload: &[u8],
        sum: Option<u64>,
        rank: usize,
    ) {
        let (outcome, items) = Outcome::split(payload).unwrap_or_else(|e| {
            fatal(&format!(
                "results of items {start}..{} from rank {rank}: {e}",
                start + count
            ))
        });
        self.take_results(start, count, &outcome, items, sum, rank);
    }

    /// Hands on a complete chunk's encoded results, checksumming them (with
    /// `sum` when its rank computed the share).
    fn take_results(
        &mut self,
        start: usize,
        count: usize,
        outcome: &Outcome,
        items: &[u8],
        sum: Option<u64>,
        rank: usize,
    ) {
        self.next = start + count;
        let malformed = |e: String| -> ! {
            fatal(&format!(
                "results of items {start}..{} from rank {rank}: {e}",
                start + count
            ))
        };
        self.take_failures(outcome, rank);
        if outcome.failures.is_empty()
            && let Some(sum) = sum.or_else(|| codec::hash_encoded::<U>(start, items))
            && codec::plain::size::<U>().is_some()
        {
            // Plain items: one copy and one pass over the bytes.
            let mut values = Vec::new();
            let direct = self.sink.append_to(start);
            let into = match direct {
                Some(v) => v,
                None => &mut values,
            };
            match codec::decode_into(items, count, into) {
                Ok(used) if used == items.len() => {}
                Ok(used) => malformed(format!("{} trailing bytes", items.len() - used)),
                Err(e) => malformed(e.to_string()),
            }
            self.checksum = self.checksum.wrapping_add(sum);
            self.handed += count;
            if !values.is_empty() {
                self.sink.run(start, values);
            }
            return;
        }
        let failed: Vec<usize> = outcome.failures.iter().map(|f| f.0 as usize).collect();
        let mut indices = Successes::new(start, &failed);
        let (sink, checksum, handed) = (&mut self.sink, &mut self.checksum, &mut self.handed);
        let decoded = codec::decode_each(items, count - failed.len(), |item: U, encoding| {
            let index = indices.next_index();
            *checksum = checksum.wrapping_add(codec::item_hash(index, encoding));
            sink.item(index, item);
            *handed += 1;
        });
        match decoded {
            Ok(used) if used == items.len() => {}
            Ok(used) => malformed(format!("{} trailing bytes", items.len() - used)),
            Err(e) => malformed(e.to_string()),
        }
    }
}

/// The indices of a chunk's successful items: from `start` up, skipping the
/// failed ones (sorted).
struct Successes<'a> {
    next: usize,
    failed: std::iter::Peekable<std::slice::Iter<'a, usize>>,
}

impl<'a> Successes<'a> {
    fn new(start: usize, failed: &'a [usize]) -> Successes<'a> {
        Successes {
            next: start,
            failed: failed.iter().peekable(),
        }
    }

    fn next_index(&mut self) -> usize {
        while self.failed.next_if_eq(&&self.next).is_some() {
            self.next += 1;
        }
        self.next += 1;
        self.next - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(outcome: &Outcome, results: &[u64]) -> Vec<u8> {
        let mut p = Vec::new();
        outcome.encode(&mut p);
        codec::encode_items(results, &mut p).unwrap();
        p
    }

    fn batch(results: Vec<u64>, failures: Vec<(u64, String)>, complete: bool) -> Batch<u64> {
        Batch {
            results,
            outcome: Outcome { complete, failures },
            stopped_by: 0,
            per_thread: Vec::new(),
            sum: None,
            runs: Vec::new(),
        }
    }

    #[test]
    fn ordered_results_wait_for_their_turn_and_checksums_agree() {
        let items: Vec<u64> = (0..10).map(|i| i * i).collect();
        let expected = codec::checksum(&items).unwrap();
        for ordered in [true, false] {
            let mut seen = Vec::new();
            let mut c = Collector::new(ordered, None, FnSink(|i, u: u64| seen.push((i, u))));
            // Arrival order: 6..10 (encoded), 0..3 (root's values), 3..6.
            assert_eq!(
                c.add_payload(
                    6,
                    4,
                    Received::Message(payload(&Outcome::complete(), &items[6..]), 0),
                    None,
                    2
                ),
                Arrival::Taken
            );
            if ordered {
                assert!(c.buffered_bytes() > 0, "6..10 waits for 0..6");
            }
            c.add_batch(0, 3, batch(items[..3].to_vec(), vec![], true), 0);
            c.add_payload(
                3,
                3,
                Received::Slice(&payload(&Outcome::complete(), &items[3..6])),
                None,
                1,
            );
            assert_eq!((c.accounted(), c.buffered_bytes()), (10, 0));
            assert_eq!(c.checksum(), expected);
            drop(c);
            if ordered {
                assert_eq!(seen, items.iter().copied().enumerate().collect::<Vec<_>>());
            } else {
                assert_eq!(seen[0], (6, 36));
            }
        }
    }

    #[test]
    fn skipped_items_are_accounted_for_and_left_out() {
        let mut seen = Vec::new();
        let mut c = Collector::new(true, None, FnSink(|i, u: u64| seen.push((i, u))));
        let outcome = Outcome {
            complete: true,
            failures: vec![(1, "bad".into())],
        };
        c.add_payload(
            0,
            3,
            Received::Slice(&payload(&outcome, &[10, 12])),
            None,
            1,
        );
        c.add_batch(3, 2, batch(vec![13], vec![(3, "worse".into())], true), 0);
        assert_eq!(c.accounted(), 5);
        assert_eq!(c.failures().len(), 2);
        assert!(!c.aborted());
        drop(c);
        assert_eq!(seen, [(0, 10), (2, 12), (4, 13)]);
    }

    #[test]
    fn failed_and_abandoned_chunks_are_not_taken() {
        let mut c = Collector::new(true, None, FnSink(|_, _: u64| {}));
        let abandoned = Outcome {
            complete: false,
            failures: vec![],
        };
        assert_eq!(
            c.add_payload(0, 4, Received::Slice(&payload(&abandoned, &[])), None, 1),
            Arrival::Abandoned
        );
        assert!(!c.aborted());
        let failed = batch(vec![], vec![(5, "boom".into())], false);
        assert_eq!(c.add_batch(4, 4, failed, 0), Arrival::Failed);
        assert!(c.aborted());
        assert_eq!(c.accounted(), 0, "nothing of either is counted");
    }

    #[test]
    fn journaled_chunks_replay_in_their_turn() {
        let dir = std::env::temp_dir().join(format!("hpcmap-collect-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let items: Vec<u64> = (0..6).map(|i| 100 + i).collect();
        {
            let mut j = Journal::open(&dir, "test", false).unwrap();
            let mut c = Collector::new(true, Some(&mut j), FnSink(|_, _: u64| {}));
            c.add_payload(
                2,
                2,
                Received::Slice(&payload(&Outcome::complete(), &items[2..4])),
                None,
                1,
            );
            c.add_batch(4, 2, batch(items[4..].to_vec(), vec![], true), 0);
        }
        let mut j = Journal::open(&dir, "test", true).unwrap();
        assert_eq!(j.todo(6), std::iter::once(0..2).collect::<Vec<_>>());
        let mut seen = Vec::new();
        let mut c = Collector::new(true, Some(&mut j), FnSink(|i, u: u64| seen.push((i, u))));
        assert_eq!(c.accounted(), 0, "2..6 wait for 0..2");
        c.add_batch(0, 2, batch(items[..2].to_vec(), vec![], true), 0);
        assert_eq!(c.accounted(), 6);
        assert_eq!(c.checksum(), codec::checksum(&items).unwrap());
        drop(c);
        assert_eq!(seen, items.iter().copied().enumerate().collect::<Vec<_>>());
        let _ = std::fs::remove_dir_all(dir);
    }
}
