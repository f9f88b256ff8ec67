//! Files the root writes, opened before the map so that an unwritable path
//! fails in milliseconds instead of after the computation.
//!
//! * A regular file (or a new one) is written to a temporary with a unique
//!   name next to it and renamed over it only when complete: a failed or
//!   killed run never leaves a truncated file, never clobbers an earlier
//!   good one, and two runs writing the same path leave one run's complete
//!   output, never a mix. A symlink keeps pointing where it did: the file
//!   it points to is replaced.
//! * A device, FIFO or socket (`/dev/stdout`, `/dev/null`, a named pipe) is
//!   written through; a failed write (`/dev/full`) is an error.
//! * `--json` records are appended with one `write` of a whole line.
//!
//! [`check_distinct`] refuses one file in two roles before any work.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// An output file that appears whole at its path on [`Output::finish`], or
/// not at all.
pub struct Output {
    path: PathBuf,
    target: Target,
}

enum Target {
    /// A temporary beside the file it will replace.
    Replace {
        file: BufWriter<tempfile::NamedTempFile>,
        target: PathBuf,
    },
    /// A device or pipe, written directly.
    Through(BufWriter<File>),
}

impl Output {
    /// Prepares to write `path` (see the module docs).
    ///
    /// # Errors
    /// When `path` is a directory, a dangling symlink, or cannot be written.
    pub fn create(path: &Path) -> anyhow::Result<Output> {
        let context = || format!("cannot write output {}", path.display());
        let meta = std::fs::metadata(path).ok();
        if meta.as_ref().is_some_and(|m| m.is_dir()) {
            bail!("output {} is a directory, not a file", path.display());
        }
        if meta.as_ref().is_some_and(|m| !m.is_file()) {
            let file = OpenOptions::new()
                .write(true)
                .open(path)
                .with_context(context)?;
            return Ok(Output {
                path: path.to_path_buf(),
                target: Target::Through(BufWriter::new(file)),
            });
        }
        let target = if path.is_symlink() {
            std::fs::canonicalize(path)
                .with_context(|| format!("output {} is a symlink to nowhere", path.display()))?
        } else {
            path.to_path_buf()
        };
        let name = target
            .file_name()
            .with_context(|| format!("output {} has no file name", path.display()))?;
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{}.", name.to_string_lossy()))
            .suffix(".hpcmap-partial")
            .tempfile_in(dir)
            .with_context(context)?;
        Ok(Output {
            path: path.to_path_buf(),
            target: Target::Replace {
                file: BufWriter::new(temp),
                target,
            },
        })
    }

    /// Standard output, written through (`exec` and `pipe` results).
    ///
    /// # Errors
    /// When standard output cannot be duplicated.
    pub fn stdout() -> anyhow::Result<Output> {
        use std::os::fd::AsFd;
        let fd = std::io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .context("cannot write to standard output")?;
        Ok(Output {
            path: PathBuf::from("standard output"),
            target: Target::Through(BufWriter::with_capacity(1 << 20, File::from(fd))),
        })
    }

    /// Where to write the contents (buffered).
    pub fn writer(&mut self) -> &mut dyn Write {
        match &mut self.target {
            Target::Replace { file, .. } => file,
            Target::Through(file) => file,
        }
    }

    /// Flushes and syncs the contents, then moves the file into place.
    ///
    /// # Errors
    /// When writing or renaming fails; the temporary is removed.
    pub fn finish(self) -> anyhow::Result<()> {
        let context = || format!("cannot write output {}", self.path.display());
        match self.target {
            Target::Replace { file, target } => {
                let temp = file
                    .into_inner()
                    .map_err(|e| e.into_error())
                    .with_context(context)?;
                temp.as_file().sync_all().with_context(context)?;
                // Keep the permissions of the file it replaces.
                if let Ok(old) = std::fs::metadata(&target) {
                    let _ = std::fs::set_permissions(temp.path(), old.permissions());
                } else {
                    use std::os::unix::fs::PermissionsExt;
                    let _ = std::fs::set_permissions(
                        temp.path(),
                        std::fs::Permissions::from_mode(0o666 & !umask()),
                    );
                }
                temp.persist(&target)
                    .map_err(|e| e.error)
                    .with_context(context)?;
            }
            Target::Through(mut file) => file.flush().with_context(context)?,
        }
        Ok(())
    }
}

/// This process's file creation mask.
fn umask() -> u32 {
    // umask can only be read by setting it; set it straight back.
    #[allow(unsafe_code)]
    // SAFETY: umask has no preconditions; the mask is restored at once.
    unsafe {
        let old = libc::umask(0o022);
        libc::umask(old);
        old
    }
}

/// A JSON-lines file that records are appended to (`--json`).
pub struct Records {
    path: PathBuf,
    file: File,
}

impl Records {
    /// Opens `path` for appending (created if missing).
    ///
    /// # Errors
    /// When the file cannot be opened for appending.
    pub fn open(path: &Path) -> anyhow::Result<Records> {
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot append to --json file {}", path.display()))?;
        Ok(Records {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Appends `line` (which ends in a newline) with one `write`, so that
    /// records of jobs appending to one file (on NFS too) never interleave.
    /// A torn last line left by an earlier full disk is ended first, so the
    /// new record does not merge with it.
    ///
    /// # Errors
    /// When the line cannot be written whole.
    pub fn append(&mut self, line: &str) -> anyhow::Result<()> {
        let context = || format!("cannot append to --json file {}", self.path.display());
        let len = self.file.metadata().with_context(context)?.len();
        let mut last = [b'\n'];
        if len > 0 && self.file.metadata().is_ok_and(|m| m.is_file()) {
            self.file
                .read_exact_at(&mut last, len - 1)
                .with_context(context)?;
        }
        let mut bytes = Vec::with_capacity(line.len() + 1);
        if last[0] != b'\n' {
            bytes.push(b'\n');
        }
        bytes.extend_from_slice(line.as_bytes());
        let written = self.file.write(&bytes).with_context(context)?;
        if written != bytes.len() {
            bail!(
                "cannot append to --json file {}: only {written} of {} bytes written (disk full?)",
                self.path.display(),
                bytes.len()
            );
        }
        Ok(())
    }
}

/// Writes one per-item result as a JSON line `[index, result]` (`--results`).
///
/// # Errors
/// When serializing or writing fails.
pub fn write_item<U: serde::Serialize>(
    index: usize,
    result: &U,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, &(index, result))?;
    out.write_all(b"\n")
}

/// A file's identity for [`check_distinct`]: its device and inode when it
/// exists, else its absolute path.
#[derive(PartialEq, Eq)]
enum Identity {
    Inode(u64, u64),
    Path(PathBuf),
}

fn identity(path: &Path) -> Option<Identity> {
    match std::fs::metadata(path) {
        // Devices and pipes may serve several roles (`/dev/null` twice).
        Ok(m) if m.file_type().is_char_device() || m.file_type().is_fifo() => None,
        Ok(m) => Some(Identity::Inode(m.dev(), m.ino())),
        Err(_) => {
            let absolute = std::path::absolute(path).ok()?;
            let parent = absolute
                .parent()
                .and_then(|p| std::fs::canonicalize(p).ok());
            Some(Identity::Path(match (parent, absolute.file_name()) {
                (Some(p), Some(name)) => p.join(name),
                _ => absolute,
            }))
        }
    }
}

/// Refuses one file in two roles (an input overwritten by an output, two
/// outputs on one path, a journal inside an output): `roles` are (what,
/// path) pairs such as `("--results", "out.jsonl")`.
///
/// # Errors
/// A usage message naming both roles.
pub fn check_distinct(roles: &[(&str, &Path)]) -> Result<(), String> {
    let ids: Vec<Option<Identity>> = roles.iter().map(|(_, p)| identity(p)).collect();
    for (i, a) in ids.iter().enumerate() {
        for (j, b) in ids.iter().enumerate().skip(i + 1) {
            if a.is_some() && a == b {
                return Err(format!(
                    "{} and {} name the same file ({}): each needs its own",
                    roles[i].0,
                    roles[j].0,
                    roles[j].1.display()
                ));
            }
        }
    }
    Ok(())
}

/// Refuses input files (`--files`, known only once globbed) that are also
/// one of the run's `outputs`: the run would read what it is about to
/// replace.
pub fn check_inputs(inputs: &[&Path], outputs: &[(&str, &Path)]) -> Result<(), String> {
    let ids: Vec<(&str, Identity)> = outputs
        .iter()
        .filter_map(|(role, p)| Some((*role, identity(p)?)))
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    for input in inputs {
        if let Some(id) = identity(input)
            && let Some((role, _)) = ids.iter().find(|(_, o)| *o == id)
        {
            return Err(format!(
                "--files matches {}, which is also {role}: each file needs one role",
                input.display()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("hpcmap-outputs-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn outputs_appear_whole_and_keep_symlinks() {
        let d = dir("whole");
        let real = d.join("real.txt");
        std::fs::write(&real, "old").unwrap();
        let link = d.join("link.txt");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let mut out = Output::create(&link).unwrap();
        out.writer().write_all(b"new").unwrap();
        assert_eq!(
            std::fs::read_to_string(&real).unwrap(),
            "old",
            "not before finish"
        );
        out.finish().unwrap();
        assert!(link.is_symlink(), "the link stays a link");
        assert_eq!(std::fs::read_to_string(&real).unwrap(), "new");
        // Two writers: each has its own temporary; the last to finish wins whole.
        let a_path = d.join("a.txt");
        let (mut a, mut b) = (
            Output::create(&a_path).unwrap(),
            Output::create(&a_path).unwrap(),
        );
        a.writer().write_all(b"first").unwrap();
        b.writer().write_all(b"second").unwrap();
        drop(a); // a failed run: its temporary goes, nothing else
        b.finish().unwrap();
        assert_eq!(std::fs::read_to_string(&a_path).unwrap(), "second");
        let left: Vec<_> = std::fs::read_dir(&d).unwrap().flatten().collect();
        assert_eq!(left.len(), 3, "no temporaries left: {left:?}");
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn devices_are_written_through_and_their_errors_count() {
        let mut null = Output::create(Path::new("/dev/null")).unwrap();
        null.writer().write_all(b"x").unwrap();
        null.finish().unwrap();
        assert!(
            Path::new("/dev/null")
                .metadata()
                .unwrap()
                .file_type()
                .is_char_device()
        );
        let mut full = Output::create(Path::new("/dev/full")).unwrap();
        let wrote = full.writer().write_all(&[0u8; 1 << 16]);
        assert!(wrote.is_err() || full.finish().is_err());
    }

    #[test]
    fn records_end_a_torn_line_before_appending() {
        let d = dir("records");
        let path = d.join("r.jsonl");
        std::fs::write(&path, "{\"torn\":").unwrap();
        let mut r = Records::open(&path).unwrap();
        r.append("{\"a\":1}\n").unwrap();
        r.append("{\"b\":2}\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"torn\":\n{\"a\":1}\n{\"b\":2}\n"
        );
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn one_file_in_two_roles_is_refused() {
        let d = dir("roles");
        let input = d.join("in.txt");
        std::fs::write(&input, "x").unwrap();
        let hard = d.join("hard.txt");
        std::fs::hard_link(&input, &hard).unwrap();
        let same = d.join("sub/../in.txt");
        std::fs::create_dir(d.join("sub")).unwrap();
        for other in [&input, &hard, &same] {
            let err = check_distinct(&[("--input", &input), ("--results", other)]).unwrap_err();
            assert!(err.contains("--input and --results"), "{err}");
        }
        let new = d.join("new.jsonl");
        assert!(
            check_distinct(&[("--results", &new), ("--json", &d.join("./new.jsonl"))]).is_err()
        );
        assert!(check_distinct(&[("--results", &new), ("--json", &d.join("other.jsonl"))]).is_ok());
        let null = Path::new("/dev/null");
        assert!(check_distinct(&[("--results", null), ("--json", null)]).is_ok());
        let _ = std::fs::remove_dir_all(d);
    }
}
