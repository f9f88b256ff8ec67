//! `--status FILE`: a small JSON document, rewritten whole (a temporary
//! renamed over it) every few seconds, so a reader never sees half of one:
//! `watch cat`, `jq`, or a script on another node of a shared file system
//! can follow the run.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::cli::outputs::Output;
use crate::progress::Snapshot;

/// The format's version, first in every document.
pub const VERSION: u32 = 1;

/// Where a run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Mapping.
    Running,
    /// Ended with every item mapped (exit 0).
    Done,
    /// Ended with every item accounted for, failed ones left out under
    /// `--on-error skip` (exit 4).
    Skipped,
    /// Ended early by a signal or deadline (resumable with a journal).
    Interrupted,
    /// Ended by a failure.
    Failed,
}

/// The status file of one run.
pub struct StatusFile {
    path: PathBuf,
    job: String,
    journal: Option<PathBuf>,
    hosts: Vec<String>,
    started: u64,
    warned: bool,
}

#[derive(Serialize)]
struct Document<'a> {
    hpcmap_status: u32,
    job: &'a str,
    state: State,
    pid: u32,
    started_unix: u64,
    updated_unix: u64,
    #[serde(flatten)]
    progress: &'a Snapshot,
    journal: Option<Journal<'a>>,
    hosts: &'a [String],
}

#[derive(Serialize)]
struct Journal<'a> {
    dir: &'a Path,
    /// Items the journal holds: a resumed run starts after them.
    items: u64,
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl StatusFile {
    /// Writes the first document (nothing done yet), so an unwritable path
    /// fails before any work.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn open(
        path: &Path,
        job: &str,
        journal: Option<PathBuf>,
        hosts: &[String],
        total: usize,
    ) -> anyhow::Result<StatusFile> {
        let file = StatusFile {
            path: path.to_path_buf(),
            job: job.to_string(),
            journal,
            hosts: hosts.to_vec(),
            started: now_unix(),
            warned: false,
        };
        let first = Snapshot {
            total: total as u64,
            ..Snapshot::default()
        };
        file.try_write(&first, State::Running)?;
        Ok(file)
    }

    /// Rewrites the file; a failure is reported once and the run goes on
    /// (the status file only observes it).
    pub fn write(&mut self, snapshot: &Snapshot, state: State) {
        if let Err(e) = self.try_write(snapshot, state)
            && !self.warned
        {
            self.warned = true;
            let text = format!("hpcmap: warning: cannot update the status file: {e:#}\n");
            super::above(text.as_bytes());
        }
    }

    fn try_write(&self, snapshot: &Snapshot, state: State) -> anyhow::Result<()> {
        let doc = Document {
            hpcmap_status: VERSION,
            job: &self.job,
            state,
            pid: std::process::id(),
            started_unix: self.started,
            updated_unix: now_unix(),
            progress: snapshot,
            journal: self.journal.as_deref().map(|dir| Journal {
                dir,
                items: snapshot.journaled,
            }),
            hosts: &self.hosts,
        };
        let mut out = Output::create(&self.path)?;
        serde_json::to_writer_pretty(out.writer(), &doc)?;
        out.writer().write_all(b"\n")?;
        out.finish()
    }
}
