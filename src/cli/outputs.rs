//! Files the root writes, opened before the map so that an unwritable path
//! fails in milliseconds instead of after the computation.
//!
//! An output file is written to a hidden temporary next to its final path
//! and renamed over it only when complete: a failed or killed run never
//! leaves a truncated image, and never clobbers an earlier good one.

use std::fs::{File, OpenOptions};
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// An output file that appears whole at its path on [`PendingFile::finish`],
/// or not at all.
pub struct PendingFile {
    path: PathBuf,
    temp: PathBuf,
    out: Option<BufWriter<File>>,
}

impl PendingFile {
    /// Creates the temporary file next to `path`.
    ///
    /// # Errors
    /// When `path` is a directory or its directory is not writable.
    pub fn create(path: &Path) -> anyhow::Result<PendingFile> {
        if path.is_dir() {
            bail!("output {} is a directory, not a file", path.display());
        }
        let name = path
            .file_name()
            .with_context(|| format!("output {} has no file name", path.display()))?;
        let temp = path.with_file_name(format!(".{}.hpcmap-partial", name.to_string_lossy()));
        let file = File::create(&temp)
            .with_context(|| format!("cannot write output {}", path.display()))?;
        Ok(PendingFile {
            path: path.to_path_buf(),
            temp,
            out: Some(BufWriter::new(file)),
        })
    }

    /// Where to write the contents (buffered).
    pub fn writer(&mut self) -> &mut BufWriter<File> {
        self.out
            .as_mut()
            .expect("a pending file is written before it is finished")
    }

    /// Flushes and syncs the contents, then moves the file into place.
    ///
    /// # Errors
    /// When writing or renaming fails; the temporary is removed.
    pub fn finish(mut self) -> anyhow::Result<()> {
        let out = self.out.take().expect("a pending file is finished once");
        let context = || format!("cannot write output {}", self.path.display());
        out.into_inner()
            .map_err(|e| e.into_error())
            .and_then(|f| f.sync_all())
            .with_context(context)?;
        std::fs::rename(&self.temp, &self.path).with_context(context)?;
        Ok(())
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        if self.out.take().is_some() {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// Opens a JSON-lines file for appending (created if missing).
///
/// # Errors
/// When the file cannot be opened for appending.
pub fn open_append(path: &Path) -> anyhow::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot append to --json file {}", path.display()))
}

/// Writes one per-item result as a JSON line `[index, result]` (`--results`).
///
/// # Errors
/// When serializing or writing fails.
pub fn write_item<U: serde::Serialize>(
    index: usize,
    result: &U,
    out: &mut impl std::io::Write,
) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, &(index, result))?;
    out.write_all(b"\n")
}
