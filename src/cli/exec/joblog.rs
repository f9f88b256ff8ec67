//! `--joblog FILE`: one line per item in GNU parallel's format, so scripts
//! that read parallel's joblogs read ours:
//!
//! ```text
//! Seq  Host  Starttime  JobRuntime  Send  Receive  Exitval  Signal  Command
//! ```
//!
//! tab-separated, times in seconds with three decimals. Lines are written
//! on the root as items finish (in the order the results are handed on), so
//! the log can be followed with `tail -f`. A resumed run appends: items
//! taken from the journal are logged then unless the log already has them
//! (an interrupted run journals chunks that finished out of order before
//! their turn to be logged came).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use anyhow::Context;

use super::{Meta, Ran};
use crate::cli::job::ItemLog;
use crate::stats::ItemFailure;

/// The joblog file.
pub struct Joblog {
    out: BufWriter<File>,
    hosts: Vec<String>,
    /// The first item's index in the whole input (`--part`).
    offset: usize,
    /// Bit `seq` is set for each Seq the log already held (resume).
    logged: Vec<u64>,
}

const HEADER: &str = "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n";

impl Joblog {
    /// Opens `path`: truncated with a header for a new run, appended to on
    /// `resume`.
    ///
    /// # Errors
    /// When it cannot be written.
    pub fn open(
        path: &Path,
        resume: bool,
        hosts: Vec<String>,
        offset: usize,
    ) -> anyhow::Result<Joblog> {
        let context = || format!("cannot write --joblog {}", path.display());
        let mut options = OpenOptions::new();
        options.create(true);
        if resume {
            options.append(true);
        } else {
            options.write(true).truncate(true);
        }
        let logged = if resume {
            logged_seqs(path).with_context(context)?
        } else {
            Vec::new()
        };
        let file = options.open(path).with_context(context)?;
        let empty = file.metadata().map(|m| m.len() == 0).unwrap_or(true);
        let mut out = BufWriter::new(file);
        if empty {
            out.write_all(HEADER.as_bytes()).with_context(context)?;
            out.flush().with_context(context)?;
        }
        Ok(Joblog {
            out,
            hosts,
            offset,
            logged,
        })
    }

    fn line(&mut self, seq: usize, meta: &Meta) -> std::io::Result<()> {
        let host = self
            .hosts
            .get(meta.rank as usize)
            .map_or("?", String::as_str);
        // Tabs and newlines would break the columns.
        let command: String = meta
            .command
            .chars()
            .map(|c| if c == '\t' || c == '\n' { ' ' } else { c })
            .collect();
        writeln!(
            self.out,
            "{seq}\t{host}\t{:.3}\t{:.3}\t{}\t{}\t{}\t{}\t{command}",
            meta.started, meta.runtime, meta.sent, meta.received, meta.exit, meta.signal
        )?;
        self.out.flush()
    }
}

/// The Seq of every line of an existing joblog, as a bit set.
fn logged_seqs(path: &Path) -> std::io::Result<Vec<u64>> {
    let mut bits = Vec::new();
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(bits),
        Err(e) => return Err(e),
    };
    for line in BufReader::new(file).split(b'\n') {
        let line = line?;
        let seq = line.split(|&b| b == b'\t').next().unwrap_or_default();
        if let Some(seq) = std::str::from_utf8(seq)
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
        {
            if bits.len() <= seq / 64 {
                bits.resize(seq / 64 + 1, 0);
            }
            bits[seq / 64] |= 1 << (seq % 64);
        }
    }
    Ok(bits)
}

impl ItemLog<Ran> for Joblog {
    fn done(&mut self, index: usize, result: &Ran, replayed: bool) -> std::io::Result<()> {
        let seq = self.offset + index + 1;
        let known = self
            .logged
            .get(seq / 64)
            .is_some_and(|w| w & (1 << (seq % 64)) != 0);
        if replayed && known {
            return Ok(());
        }
        self.line(seq, &result.meta)
    }

    fn failed(&mut self, failure: &ItemFailure) -> std::io::Result<()> {
        let seq = self.offset + failure.index as usize + 1;
        let meta = failure
            .detail
            .as_deref()
            .and_then(|d| serde_json::from_str::<Meta>(d).ok())
            .unwrap_or(Meta {
                rank: failure.rank as u32,
                exit: -1,
                command: failure.message.clone(),
                ..Meta::default()
            });
        self.line(seq, &meta)
    }
}
