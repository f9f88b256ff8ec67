//! Every message the pool sends, as typed frames: the only file that knows
//! byte layouts. Integers are little-endian `u64`s.
//!
//! ```text
//! dynamic / guided, point-to-point on the pool's private communicator:
//!   root -> worker  TAG_WORK  Work  kind=1 | start | count | items (codec)
//!                             Stop  kind=2
//!   worker -> root  TAG_DONE  Done  start | count | compute ns | stopped by | summed
//!                                   | checksum share | payload
//! static, collectives:
//!   Plan (broadcast)   status | chunk | spans | (start, end) x spans
//!   Verdict (broadcast) status
//! every schedule, gathered once at the end of a map:
//!   Row  items | chunks | compute ns | wait ns | stopped by | n | m | s | summed
//!        | chunk result lengths x n | items per compute thread x m
//!        | chunk checksum shares x s | the chunks' Outcomes (bincode, back to back)
//! a chunk's result payload (what the journal stores, unchanged since v1):
//!   Outcome (bincode: complete, failures) | results (codec, failed items left out)
//! ```
//!
//! A worker reads only `TAG_WORK` from the root and the root only
//! `TAG_DONE`: exact tags on a communicator of the pool's own.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::codec;
use crate::transport::Tag;

/// Root to worker: a chunk to map, or the end of the map.
pub const TAG_WORK: Tag = 1;
/// Worker to root: a chunk's results.
pub const TAG_DONE: Tag = 2;

const KIND_WORK: u64 = 1;
const KIND_STOP: u64 = 2;
/// Bytes before the items of a `Work` frame.
const WORK_HEAD: usize = 24;
/// Bytes before the payload of a `Done` frame.
const DONE_HEAD: usize = 48;

/// Why a frame could not be read: a bug or mismatched versions.
#[derive(Debug, thiserror::Error)]
#[error("malformed {frame} frame of {len} bytes")]
pub struct Malformed {
    frame: &'static str,
    len: usize,
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

fn put(out: &mut Vec<u8>, values: &[u64]) {
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// What the root tells a worker.
#[derive(Debug, PartialEq, Eq)]
pub enum ToWorker<'a> {
    /// Map items `range`, encoded in `items`.
    Work {
        /// Global indices of the chunk's items.
        range: Range<usize>,
        /// The items' encodings.
        items: &'a [u8],
    },
    /// No more work in this map.
    Stop,
}

impl ToWorker<'_> {
    /// A `Work` frame's header for `range` with room for `capacity` bytes of
    /// items; the caller appends the items' encodings.
    pub fn work_header(range: &Range<usize>, capacity: usize) -> Vec<u8> {
        let mut out = crate::buffers::vec_with_capacity(WORK_HEAD + capacity);
        put(
            &mut out,
            &[KIND_WORK, range.start as u64, range.len() as u64],
        );
        out
    }

    /// A `Stop` frame.
    pub fn stop() -> Vec<u8> {
        KIND_STOP.to_le_bytes().to_vec()
    }

    /// Bytes of a `Work` frame that are not items.
    pub const WORK_OVERHEAD: usize = WORK_HEAD;

    /// Reads a frame.
    ///
    /// # Errors
    /// When the bytes are not a frame.
    pub fn parse(bytes: &[u8]) -> Result<ToWorker<'_>, Malformed> {
        let bad = || Malformed {
            frame: "work",
            len: bytes.len(),
        };
        match u64_at(bytes, 0) {
            Some(KIND_WORK) => {
                let start = u64_at(bytes, 8).ok_or_else(bad)? as usize;
                let count = u64_at(bytes, 16).ok_or_else(bad)? as usize;
                Ok(ToWorker::Work {
                    range: start..start + count,
                    items: &bytes[WORK_HEAD..],
                })
            }
            Some(KIND_STOP) if bytes.len() == 8 => Ok(ToWorker::Stop),
            _ => Err(bad()),
        }
    }
}

/// A worker's results for one chunk.
#[derive(Debug, PartialEq, Eq)]
pub struct Done<'a> {
    /// Global indices of the chunk's items.
    pub range: Range<usize>,
    /// Time spent mapping it, nanoseconds.
    pub compute_ns: u64,
    /// The signal that made the worker abandon the chunk (0: none).
    pub stopped_by: u64,
    /// The checksum share of the results, when the worker computed it.
    pub sum: Option<u64>,
    /// The result payload (see [`Outcome`]).
    pub payload: &'a [u8],
}

impl Done<'_> {
    /// A `Done` frame's header with room for a payload of `capacity` bytes;
    /// the caller appends the payload and then calls [`Done::finish`].
    pub fn header(range: &Range<usize>, capacity: usize) -> Vec<u8> {
        let mut out = crate::buffers::vec_with_capacity(DONE_HEAD + capacity);
        put(
            &mut out,
            &[range.start as u64, range.len() as u64, 0, 0, 0, 0],
        );
        out
    }

    /// Fills in the measured compute time, the stopping signal and the
    /// results' checksum share (if computed).
    pub fn finish(frame: &mut [u8], compute_ns: u64, stopped_by: u64, sum: Option<u64>) {
        frame[16..24].copy_from_slice(&compute_ns.to_le_bytes());
        frame[24..32].copy_from_slice(&stopped_by.to_le_bytes());
        frame[32..40].copy_from_slice(&u64::from(sum.is_some()).to_le_bytes());
        frame[40..48].copy_from_slice(&sum.unwrap_or(0).to_le_bytes());
    }

    /// Reads a frame.
    ///
    /// # Errors
    /// When the bytes are not a frame.
    pub fn parse(bytes: &[u8]) -> Result<Done<'_>, Malformed> {
        let bad = || Malformed {
            frame: "done",
            len: bytes.len(),
        };
        let field = |i: usize| u64_at(bytes, 8 * i).ok_or_else(bad);
        let start = field(0)? as usize;
        Ok(Done {
            range: start..start + field(1)? as usize,
            compute_ns: field(2)?,
            stopped_by: field(3)?,
            sum: (field(4)? == 1).then_some(field(5)?),
            payload: &bytes[DONE_HEAD..],
        })
    }
}

/// How a chunk went: which items failed, and whether every item was tried.
/// Encoded with bincode at the front of a chunk's result payload; the
/// journal stores payloads, so this layout is part of the journal format.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// False when the chunk stopped early: at a failure (abort policy; then
    /// `failures` says which), or abandoned (a walltime signal, or after an
    /// earlier failure; no failures). Its results are not used.
    pub complete: bool,
    /// Failed items: global index and message.
    pub failures: Vec<(u64, String)>,
}

impl Outcome {
    /// A complete chunk, so far without failures.
    pub fn complete() -> Outcome {
        Outcome {
            complete: true,
            failures: Vec::new(),
        }
    }

    /// Appends the outcome's encoding (the front of a payload) to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        codec::encode_value_into(self, out).expect("an outcome always encodes");
    }

    /// Splits a payload into its outcome and the results' encodings.
    ///
    /// # Errors
    /// When the payload does not start with an outcome.
    pub fn split(payload: &[u8]) -> Result<(Outcome, &[u8]), codec::CodecError> {
        let (outcome, used) = codec::decode_value_prefix::<Outcome>(payload)?;
        Ok((outcome, &payload[used..]))
    }
}

/// The static schedule's plan, broadcast by the root.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// False when the root could not prepare the map (it reports why).
    pub ok: bool,
    /// Items per chunk.
    pub chunk: usize,
    /// The item ranges to map, in order.
    pub spans: Vec<Range<usize>>,
}

impl Plan {
    /// The frame.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(24 + 16 * self.spans.len());
        put(
            &mut out,
            &[
                u64::from(self.ok),
                self.chunk as u64,
                self.spans.len() as u64,
            ],
        );
        for s in &self.spans {
            put(&mut out, &[s.start as u64, s.end as u64]);
        }
        out
    }

    /// Reads a frame.
    ///
    /// # Errors
    /// When the bytes are not a frame.
    pub fn parse(bytes: &[u8]) -> Result<Plan, Malformed> {
        let bad = || Malformed {
            frame: "plan",
            len: bytes.len(),
        };
        let field = |i: usize| u64_at(bytes, 8 * i).ok_or_else(bad);
        let n = field(2)? as usize;
        let spans = (0..n)
            .map(|k| Ok(field(3 + 2 * k)? as usize..field(4 + 2 * k)? as usize))
            .collect::<Result<_, Malformed>>()?;
        Ok(Plan {
            ok: field(0)? == 1,
            chunk: field(1)? as usize,
            spans,
        })
    }
}

/// A yes/no decision of the root that every rank must follow.
pub fn verdict(ok: bool) -> [u8; 8] {
    u64::from(ok).to_le_bytes()
}

/// Reads [`verdict`].
pub fn is_ok(verdict: &[u8; 8]) -> bool {
    u64::from_le_bytes(*verdict) == 1
}

/// What one rank did in one map, gathered on the root at its end.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Row {
    /// Items mapped.
    pub items: u64,
    /// Chunks mapped.
    pub chunks: u64,
    /// Time spent mapping, nanoseconds.
    pub compute_ns: u64,
    /// Time spent without work, nanoseconds.
    pub wait_ns: u64,
    /// The signal that stopped this rank's work early (0: none).
    pub stopped_by: u64,
    /// Static schedule: the payload length of each of this rank's chunks.
    pub chunk_lens: Vec<u64>,
    /// Items each compute thread mapped, by thread.
    pub thread_items: Vec<u64>,
    /// Static schedule: each chunk's checksum share (when `summed`).
    pub chunk_sums: Vec<u64>,
    /// Whether `chunk_sums` were computed (plain results).
    pub summed: bool,
    /// Static schedule: each chunk's [`Outcome`], encoded back to back.
    pub outcome_bytes: Vec<u8>,
}

impl Row {
    /// The frame.
    pub fn encode(&self) -> Vec<u8> {
        let words = self.chunk_lens.len() + self.thread_items.len() + self.chunk_sums.len();
        let mut out = Vec::with_capacity(72 + 8 * words + self.outcome_bytes.len());
        put(
            &mut out,
            &[
                self.items,
                self.chunks,
                self.compute_ns,
                self.wait_ns,
                self.stopped_by,
                self.chunk_lens.len() as u64,
                self.thread_items.len() as u64,
                self.chunk_sums.len() as u64,
                u64::from(self.summed),
            ],
        );
        put(&mut out, &self.chunk_lens);
        put(&mut out, &self.thread_items);
        put(&mut out, &self.chunk_sums);
        out.extend_from_slice(&self.outcome_bytes);
        out
    }

    /// Reads a frame.
    ///
    /// # Errors
    /// When the bytes are not a frame.
    pub fn parse(bytes: &[u8]) -> Result<Row, Malformed> {
        let bad = || Malformed {
            frame: "row",
            len: bytes.len(),
        };
        let field = |i: usize| u64_at(bytes, 8 * i).ok_or_else(bad);
        let (n, m, s) = (field(5)? as usize, field(6)? as usize, field(7)? as usize);
        let words = |from: usize, count: usize| {
            (0..count)
                .map(|k| field(from + k))
                .collect::<Result<Vec<u64>, _>>()
        };
        let end = 8 * (9 + n + m + s);
        Ok(Row {
            items: field(0)?,
            chunks: field(1)?,
            compute_ns: field(2)?,
            wait_ns: field(3)?,
            stopped_by: field(4)?,
            summed: field(8)? == 1,
            chunk_lens: words(9, n)?,
            thread_items: words(9 + n, m)?,
            chunk_sums: words(9 + n + m, s)?,
            outcome_bytes: bytes.get(end..).ok_or_else(bad)?.to_vec(),
        })
    }

    /// The chunks' outcomes (static schedule), in order.
    ///
    /// # Errors
    /// When the outcome bytes are malformed.
    pub fn outcomes(&self) -> Result<Vec<Outcome>, codec::CodecError> {
        let mut rest = &self.outcome_bytes[..];
        let mut outcomes = Vec::new();
        while !rest.is_empty() {
            let (outcome, tail) = Outcome::split(rest)?;
            outcomes.push(outcome);
            rest = tail;
        }
        Ok(outcomes)
    }

    /// Adds a chunk's per-thread item counts.
    pub fn count_threads(&mut self, per_thread: &[u64]) {
        if self.thread_items.len() < per_thread.len() {
            self.thread_items.resize(per_thread.len(), 0);
        }
        for (total, n) in self.thread_items.iter_mut().zip(per_thread) {
            *total += n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let mut work = ToWorker::work_header(&(5..8), 3);
        work.extend_from_slice(b"abc");
        assert_eq!(
            ToWorker::parse(&work).unwrap(),
            ToWorker::Work {
                range: 5..8,
                items: b"abc"
            }
        );
        assert_eq!(ToWorker::parse(&ToWorker::stop()).unwrap(), ToWorker::Stop);
        assert!(ToWorker::parse(b"junk").is_err());

        let mut done = Done::header(&(5..8), 2);
        done.extend_from_slice(b"xy");
        Done::finish(&mut done, 42, 10, Some(7));
        let d = Done::parse(&done).unwrap();
        assert_eq!(d.sum, Some(7));
        assert_eq!(
            (d.range, d.compute_ns, d.stopped_by, d.payload),
            (5..8, 42, 10, &b"xy"[..])
        );

        let plan = Plan {
            ok: true,
            chunk: 7,
            spans: vec![0..10, 20..25],
        };
        assert_eq!(Plan::parse(&plan.encode()).unwrap(), plan);
        let row = Row {
            items: 1,
            chunks: 2,
            compute_ns: 3,
            wait_ns: 4,
            stopped_by: 0,
            chunk_lens: vec![8, 9],
            thread_items: vec![1, 0, 2],
            chunk_sums: vec![5, 6],
            summed: true,
            outcome_bytes: {
                let mut b = Vec::new();
                Outcome::complete().encode(&mut b);
                Outcome::default().encode(&mut b);
                b
            },
        };
        assert_eq!(Row::parse(&row.encode()).unwrap(), row);
        assert_eq!(
            row.outcomes().unwrap(),
            [Outcome::complete(), Outcome::default()]
        );
        assert!(is_ok(&verdict(true)) && !is_ok(&verdict(false)));
    }

    #[test]
    fn outcome_layout_is_the_journal_format() {
        // bool as one byte, then the failures as a u64 count and entries.
        let outcome = Outcome {
            complete: true,
            failures: vec![(3, "boom".into())],
        };
        let mut bytes = Vec::new();
        outcome.encode(&mut bytes);
        let mut expected = vec![1u8];
        expected.extend_from_slice(&1u64.to_le_bytes());
        expected.extend_from_slice(&3u64.to_le_bytes());
        expected.extend_from_slice(&4u64.to_le_bytes());
        expected.extend_from_slice(b"boom");
        assert_eq!(bytes, expected);
        bytes.extend_from_slice(b"rest");
        let (back, rest) = Outcome::split(&bytes).unwrap();
        assert_eq!((back, rest), (outcome, &b"rest"[..]));
    }
}
