//! The append-only journal of completed chunks that lets a killed run resume.
//!
//! File `DIR/journal.hpcmap`:
//!
//! ```text
//! header  "HPCMAPJ1" | digest u64 | identity length u32 | identity (UTF-8)
//! record  "REC1" | start u64 | count u64 | rank u32 | length u64 | payload | xxh3 u64
//! ```
//!
//! (integers little-endian). The identity names the run: workload,
//! parameters and a digest of the input; a journal of another run is refused,
//! never mixed in. A payload is a chunk's result exactly as the root received
//! it, so replaying it gives the same results and checksum as computing it.
//! The xxh3 covers start..payload. Each record is written with one `write`
//! as it arrives, so a killed process loses only the record being written;
//! on resume, a torn or corrupt record and everything after it are dropped
//! (the file is truncated there) and those items are computed again.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use xxhash_rust::xxh3::xxh3_64;

use crate::wire::Outcome;

const MAGIC: &[u8; 8] = b"HPCMAPJ1";
const RECORD: &[u8; 4] = b"REC1";
/// Record bytes before the payload: magic, start, count, rank, length.
const RECORD_HEAD: usize = 4 + 8 + 8 + 4 + 8;

/// Why a journal cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The journal directory is a file.
    #[error("--journal {path} is a file, not a directory")]
    NotADirectory {
        /// The path given.
        path: PathBuf,
    },
    /// Reading or writing failed.
    #[error("cannot use journal {path}")]
    Io {
        /// The journal file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The journal belongs to a different run.
    #[error(
        "journal {path} was written by a different run, refusing to mix results:\n  journal: {found}\n  this run: {expected}\nuse another --journal directory, or delete this one to start over"
    )]
    OtherRun {
        /// The journal file.
        path: PathBuf,
        /// The identity in the journal.
        found: String,
        /// This run's identity.
        expected: String,
    },
    /// The file is not a journal (or its header is damaged).
    #[error("{path} is not an hpcmap journal (bad header): refusing to touch it")]
    NotAJournal {
        /// The file.
        path: PathBuf,
    },
    /// Another process holds the journal (an earlier run still going, or its
    /// orphaned ranks).
    #[error("journal {path} is in use by another running hpcmap: wait for it or stop it first")]
    Busy {
        /// The journal file.
        path: PathBuf,
    },
    /// A journal with records exists but `--resume` was not given.
    #[error(
        "journal {path} already holds {records} completed chunks: pass --resume to continue that run, or use another --journal directory"
    )]
    Exists {
        /// The journal file.
        path: PathBuf,
        /// Records in it.
        records: usize,
    },
}

/// A journaled chunk: where its payload lies in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Items in the chunk.
    pub count: usize,
    /// The rank that computed it.
    pub rank: usize,
    /// Offset of the payload in the file.
    pub offset: u64,
    /// Payload length.
    pub len: usize,
}

/// An open journal: the chunks it holds, appending new ones.
pub struct Journal {
    path: PathBuf,
    file: File,
    end: u64,
    entries: BTreeMap<usize, Entry>,
    dropped: Option<(u64, u64)>,
    /// Journaled chunks with failed items, to be mapped again.
    failed: Vec<Range<usize>>,
}

impl Journal {
    /// Opens (creating) `dir/journal.hpcmap` for the run named `identity`.
    /// With `resume`, reads its completed chunks; without, refuses a journal
    /// that already holds any.
    ///
    /// # Errors
    /// See [`JournalError`].
    pub fn open(dir: &Path, identity: &str, resume: bool) -> Result<Journal, JournalError> {
        let path = dir.join("journal.hpcmap");
        let io = |source| JournalError::Io {
            path: path.clone(),
            source,
        };
        if dir.exists() && !dir.is_dir() {
            return Err(JournalError::NotADirectory {
                path: dir.to_path_buf(),
            });
        }
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io)?;
        // One writer at a time: a second run appending would corrupt it.
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(JournalError::Busy { path }),
            // Lustre and some NFS mounts have no flock: go on, unguarded.
            Err(std::fs::TryLockError::Error(e))
                if e.raw_os_error() == Some(libc::ENOSYS)
                    || e.kind() == std::io::ErrorKind::Unsupported =>
            {
                tracing::warn!(
                    "journal {}: this file system cannot lock files ({e}); make sure no other run uses this journal",
                    path.display()
                );
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(JournalError::Io { path, source });
            }
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io)?;
        let digest = xxh3_64(identity.as_bytes());
        let mut journal = Journal {
            path: path.clone(),
            file,
            end: 0,
            entries: BTreeMap::new(),
            dropped: None,
            failed: Vec::new(),
        };
        if bytes.is_empty() {
            let mut header = Vec::with_capacity(20 + identity.len());
            header.extend_from_slice(MAGIC);
            header.extend_from_slice(&digest.to_le_bytes());
            header.extend_from_slice(&(identity.len() as u32).to_le_bytes());
            header.extend_from_slice(identity.as_bytes());
            journal.file.write_all(&header).map_err(io)?;
            journal.end = header.len() as u64;
            return Ok(journal);
        }
        let (found_digest, found, records_at) =
            parse_header(&bytes).ok_or_else(|| JournalError::NotAJournal { path: path.clone() })?;
        if found_digest != digest {
            return Err(JournalError::OtherRun {
                path,
                found,
                expected: identity.to_string(),
            });
        }
        let good_end = journal.read_records(&bytes, records_at);
        if !resume && !journal.entries.is_empty() {
            return Err(JournalError::Exists {
                path,
                records: journal.entries.len(),
            });
        }
        if good_end < bytes.len() {
            journal.dropped = Some((good_end as u64, (bytes.len() - good_end) as u64));
            journal.file.set_len(good_end as u64).map_err(io)?;
        }
        journal.end = good_end as u64;
        Ok(journal)
    }

    /// Reads records from `at`; returns where the last good one ends.
    ///
    /// A chunk whose outcome lists failed items (skipped under `--on-error
    /// skip`) is not counted as done: a resumed run maps it again, under its
    /// own failure policy. A later record replaces any earlier one it
    /// overlaps (a chunk mapped again after such a retry).
    fn read_records(&mut self, bytes: &[u8], mut at: usize) -> usize {
        while let Some((start, entry, next)) = parse_record(bytes, at) {
            at = next;
            self.forget_overlapping(start..start + entry.count);
            let payload = &bytes[entry.offset as usize..entry.offset as usize + entry.len];
            let clean =
                Outcome::split(payload).is_ok_and(|(o, _)| o.complete && o.failures.is_empty());
            if clean {
                self.entries.insert(start, entry);
            } else {
                self.failed.push(start..start + entry.count);
            }
        }
        at
    }

    /// Drops the entries that overlap `range`.
    fn forget_overlapping(&mut self, range: Range<usize>) {
        let overlapping: Vec<usize> = self
            .entries
            .range(..range.end)
            .filter(|(s, e)| *s + e.count > range.start)
            .map(|(s, _)| *s)
            .collect();
        for start in overlapping {
            self.entries.remove(&start);
        }
        self.failed
            .retain(|f| f.end <= range.start || f.start >= range.end);
    }

    /// The journal file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `(offset, bytes)` of a torn or corrupt tail dropped on opening, if any.
    pub fn dropped(&self) -> Option<(u64, u64)> {
        self.dropped
    }

    /// Items of journaled chunks that had failed items: a resumed run maps
    /// them again.
    pub fn retried(&self) -> usize {
        self.failed.iter().map(|f| f.len()).sum()
    }

    /// The journaled chunks by first item.
    pub fn entries(&self) -> &BTreeMap<usize, Entry> {
        &self.entries
    }

    /// Items the journal holds.
    pub fn done_items(&self) -> usize {
        self.entries.values().map(|e| e.count).sum()
    }

    /// The ranges of `0..items` the journal does not hold, in order.
    pub fn todo(&self, items: usize) -> Vec<Range<usize>> {
        let mut gaps = Vec::new();
        let mut at = 0;
        for (&start, e) in &self.entries {
            if start > at {
                gaps.push(at..start.min(items));
            }
            at = at.max(start + e.count);
        }
        if at < items {
            gaps.push(at..items);
        }
        gaps
    }

    /// Reads a journaled chunk's payload.
    ///
    /// # Errors
    /// When the file cannot be read.
    pub fn payload(&self, entry: &Entry) -> std::io::Result<Vec<u8>> {
        let mut buf = vec![0u8; entry.len];
        self.file.read_exact_at(&mut buf, entry.offset)?;
        Ok(buf)
    }

    /// Appends a completed chunk with one write (so a kill tears at most this record).
    ///
    /// # Errors
    /// When writing fails.
    pub fn append(
        &mut self,
        start: usize,
        count: usize,
        rank: usize,
        payload: &[u8],
    ) -> Result<(), JournalError> {
        let mut record = Vec::with_capacity(RECORD_HEAD + payload.len() + 8);
        record.extend_from_slice(RECORD);
        record.extend_from_slice(&(start as u64).to_le_bytes());
        record.extend_from_slice(&(count as u64).to_le_bytes());
        record.extend_from_slice(&(rank as u32).to_le_bytes());
        record.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        record.extend_from_slice(payload);
        let sum = xxh3_64(&record[4..]);
        record.extend_from_slice(&sum.to_le_bytes());
        self.file
            .write_all(&record)
            .map_err(|source| JournalError::Io {
                path: self.path.clone(),
                source,
            })?;
        let offset = self.end + RECORD_HEAD as u64;
        self.end += record.len() as u64;
        self.entries.insert(
            start,
            Entry {
                count,
                rank,
                offset,
                len: payload.len(),
            },
        );
        Ok(())
    }
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// `(digest, identity, where records start)`, if the header is whole.
fn parse_header(bytes: &[u8]) -> Option<(u64, String, usize)> {
    if bytes.get(..8)? != MAGIC {
        return None;
    }
    let digest = u64_at(bytes, 8)?;
    let len = u32_at(bytes, 16)? as usize;
    let identity = std::str::from_utf8(bytes.get(20..20 + len)?).ok()?;
    if xxh3_64(identity.as_bytes()) != digest {
        return None;
    }
    Some((digest, identity.to_string(), 20 + len))
}

/// `(start, entry, end of record)` of a whole, intact record at `at`.
fn parse_record(bytes: &[u8], at: usize) -> Option<(usize, Entry, usize)> {
    if bytes.get(at..at + 4)? != RECORD {
        return None;
    }
    let start = u64_at(bytes, at + 4)? as usize;
    let count = u64_at(bytes, at + 12)? as usize;
    let rank = u32_at(bytes, at + 20)? as usize;
    let len = usize::try_from(u64_at(bytes, at + 24)?).ok()?;
    let payload_at = at + RECORD_HEAD;
    let sum_at = payload_at.checked_add(len)?;
    let sum = u64_at(bytes, sum_at)?;
    if xxh3_64(&bytes[at + 4..sum_at]) != sum {
        return None;
    }
    let entry = Entry {
        count,
        rank,
        offset: payload_at as u64,
        len,
    };
    Some((start, entry, sum_at + 8))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A complete chunk's payload: no failures, then `results`.
    fn ok(results: &[u8]) -> Vec<u8> {
        let mut p = Vec::new();
        Outcome::complete().encode(&mut p);
        p.extend_from_slice(results);
        p
    }

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("hpcmap-journal-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn records_survive_reopening_and_leave_gaps_to_do() {
        let d = dir("reopen");
        let mut j = Journal::open(&d, "square 100", false).unwrap();
        j.append(0, 10, 0, &ok(b"first")).unwrap();
        j.append(30, 5, 1, &ok(b"second")).unwrap();
        drop(j);
        let j = Journal::open(&d, "square 100", true).unwrap();
        assert_eq!(j.done_items(), 15);
        assert_eq!(j.todo(40), [10..30, 35..40]);
        let e = j.entries()[&30];
        assert_eq!((e.count, e.rank), (5, 1));
        assert_eq!(j.payload(&e).unwrap(), ok(b"second"));
        assert!(j.dropped().is_none());
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn a_torn_tail_is_dropped_and_truncated() {
        let d = dir("torn");
        let mut j = Journal::open(&d, "id", false).unwrap();
        j.append(0, 4, 0, &ok(b"aaaa")).unwrap();
        j.append(4, 4, 0, &ok(b"bbbb")).unwrap();
        drop(j);
        let path = d.join("journal.hpcmap");
        let len = std::fs::metadata(&path).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        let mut j = Journal::open(&d, "id", true).unwrap();
        assert_eq!(j.todo(8), std::iter::once(4..8).collect::<Vec<_>>());
        assert!(j.dropped().is_some());
        // Appending after the truncation gives a clean journal again.
        j.append(4, 4, 1, &ok(b"cccc")).unwrap();
        drop(j);
        let j = Journal::open(&d, "id", true).unwrap();
        assert_eq!(j.todo(8), Vec::<Range<usize>>::new());
        assert!(j.dropped().is_none());
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn a_corrupt_byte_drops_that_record_and_what_follows() {
        let d = dir("corrupt");
        let mut j = Journal::open(&d, "id", false).unwrap();
        for k in 0..3 {
            j.append(k * 2, 2, 0, &ok(b"xy")).unwrap();
        }
        let second = j.entries()[&2].offset;
        drop(j);
        let path = d.join("journal.hpcmap");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[second as usize] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        let j = Journal::open(&d, "id", true).unwrap();
        assert_eq!(j.todo(6), std::iter::once(2..6).collect::<Vec<_>>());
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn another_runs_journal_is_refused() {
        let d = dir("other");
        let mut j = Journal::open(&d, "square 100", false).unwrap();
        j.append(0, 1, 0, &ok(b"z")).unwrap();
        drop(j);
        let err = Journal::open(&d, "square 200", true).err().unwrap();
        assert!(matches!(err, JournalError::OtherRun { .. }), "{err}");
        let err = Journal::open(&d, "square 100", false).err().unwrap();
        assert!(
            matches!(err, JournalError::Exists { records: 1, .. }),
            "{err}"
        );
        let held = Journal::open(&d, "square 100", true).unwrap();
        let err = Journal::open(&d, "square 100", true).err().unwrap();
        assert!(matches!(err, JournalError::Busy { .. }), "{err}");
        drop(held);
        std::fs::write(d.join("journal.hpcmap"), b"garbage").unwrap();
        let err = Journal::open(&d, "square 100", true).err().unwrap();
        assert!(matches!(err, JournalError::NotAJournal { .. }), "{err}");
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn chunks_with_failed_items_are_mapped_again_and_replaced() {
        let d = dir("failed");
        let mut j = Journal::open(&d, "id", false).unwrap();
        j.append(0, 4, 0, &ok(b"a")).unwrap();
        let mut skipped = Vec::new();
        Outcome {
            complete: true,
            failures: vec![(5, "boom".into())],
        }
        .encode(&mut skipped);
        j.append(4, 4, 1, &skipped).unwrap();
        drop(j);
        let mut j = Journal::open(&d, "id", true).unwrap();
        assert_eq!(j.todo(8), std::iter::once(4..8).collect::<Vec<_>>());
        assert_eq!(j.retried(), 4);
        // Mapped again in smaller chunks: the new records replace the old one.
        j.append(4, 2, 0, &ok(b"b")).unwrap();
        j.append(6, 2, 0, &ok(b"c")).unwrap();
        drop(j);
        let j = Journal::open(&d, "id", true).unwrap();
        assert_eq!(j.todo(8), Vec::<Range<usize>>::new());
        assert_eq!((j.done_items(), j.retried()), (8, 0));
        let _ = std::fs::remove_dir_all(d);
    }
}
