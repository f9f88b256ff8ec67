//! The items of `hpcmap exec` and `hpcmap pipe`: lines of a file or of
//! standard input, paths from globs, or arguments given inline.
//!
//! Lines are never all held in memory: one pass over the file counts them,
//! records the byte offset of every [`STRIDE`]-th line (a 100 M-line file
//! needs 800 kB of index, not 800 MB of offsets) and digests the content
//! for the journal; a chunk of lines is then read from the nearest
//! recorded offset. Standard input is first copied to a temporary file, so
//! it can be read by offset (and resumed) like any file. Items are bytes:
//! lines need not be UTF-8.

use std::fs::File;
use std::io::{Read, Write};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::Xxh3;

use crate::Source;

/// Lines between two recorded offsets.
pub const STRIDE: usize = 1024;

/// One item: a line (without its newline), a path, or an argument.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item(#[serde(with = "serde_bytes")] pub Vec<u8>);

impl Item {
    /// The item as text, for messages (invalid UTF-8 shown as U+FFFD).
    pub fn lossy(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }
}

/// The lines of a file, indexed for reading by line number.
pub struct Lines {
    file: File,
    path: PathBuf,
    /// The first line of this part (for `--part`) and how many lines it has.
    first: usize,
    len: usize,
    /// Byte offset of line `k * STRIDE`.
    offsets: Vec<u64>,
    digest: u64,
    /// Standard input's copy, removed when the run ends.
    _spool: Option<tempfile::TempPath>,
}

impl Lines {
    /// Indexes `path`, or standard input when it is `-`.
    ///
    /// # Errors
    /// When the file cannot be read.
    pub fn open(path: &Path) -> anyhow::Result<Lines> {
        let (path, spool) = if path == Path::new("-") {
            let mut spool = tempfile::Builder::new()
                .prefix("hpcmap-stdin.")
                .tempfile()
                .context("cannot copy standard input to a temporary file")?;
            std::io::copy(&mut std::io::stdin().lock(), spool.as_file_mut())
                .context("cannot read standard input")?;
            spool.as_file_mut().flush()?;
            let spool = spool.into_temp_path();
            (spool.to_path_buf(), Some(spool))
        } else {
            (path.to_path_buf(), None)
        };
        let context = || format!("cannot read --lines {}", path.display());
        let mut file = File::open(&path).with_context(context)?;
        if file.metadata().with_context(context)?.is_dir() {
            bail!("--lines {} is a directory", path.display());
        }
        let mut offsets = vec![0u64];
        let mut digest = Xxh3::new();
        let (mut len, mut at, mut line_start) = (0usize, 0u64, true);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf).with_context(context)?;
            if n == 0 {
                break;
            }
            digest.update(&buf[..n]);
            let mut rest = &buf[..n];
            while !rest.is_empty() {
                if line_start && len > 0 && len % STRIDE == 0 {
                    offsets.push(at);
                }
                match rest.iter().position(|&b| b == b'\n') {
                    Some(nl) => {
                        len += 1;
                        line_start = true;
                        at += nl as u64 + 1;
                        rest = &rest[nl + 1..];
                    }
                    None => {
                        line_start = false;
                        at += rest.len() as u64;
                        rest = &[];
                    }
                }
            }
        }
        if !line_start {
            len += 1; // a last line without a newline
        }
        Ok(Lines {
            file,
            path,
            first: 0,
            len,
            offsets,
            digest: digest.digest(),
            _spool: spool,
        })
    }

    /// A reader of lines from line `line` (of the whole file) on.
    fn reader_at(&self, line: usize) -> LineReader<'_> {
        let k = (line / STRIDE).min(self.offsets.len() - 1);
        let mut reader = LineReader {
            file: &self.file,
            path: &self.path,
            pos: self.offsets[k],
            buf: Vec::new(),
            start: 0,
        };
        for _ in k * STRIDE..line {
            reader.next_line();
        }
        reader
    }
}

/// Reads lines by offset (`pread`), so readers on several threads never
/// share a file position.
struct LineReader<'a> {
    file: &'a File,
    path: &'a Path,
    pos: u64,
    buf: Vec<u8>,
    start: usize,
}

impl LineReader<'_> {
    fn next_line(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(nl) = self.buf[self.start..].iter().position(|&b| b == b'\n') {
                let line = self.buf[self.start..self.start + nl].to_vec();
                self.start += nl + 1;
                return Some(line);
            }
            self.buf.drain(..self.start);
            self.start = 0;
            let have = self.buf.len();
            self.buf.resize(have + (64 << 10), 0);
            let n = self
                .file
                .read_at(&mut self.buf[have..], self.pos)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", self.path.display()));
            self.buf.truncate(have + n);
            self.pos += n as u64;
            if n == 0 {
                return (!self.buf.is_empty()).then(|| std::mem::take(&mut self.buf));
            }
        }
    }
}

/// A user job's input.
pub enum Items {
    /// Lines of a file, read chunk by chunk.
    Lines(Lines),
    /// In memory: paths from globs, or arguments given inline.
    Memory(Vec<Item>),
}

impl Items {
    /// Paths matching `patterns` (each sorted, in the patterns' order).
    ///
    /// # Errors
    /// A pattern that is malformed or matches nothing.
    pub fn files(patterns: &[String]) -> anyhow::Result<Items> {
        let mut items = Vec::new();
        for pattern in patterns {
            refuse_unmatchable(pattern)?;
            let mut paths: Vec<PathBuf> = glob::glob(pattern)
                .with_context(|| format!("--files '{pattern}' is not a valid pattern"))?
                .collect::<Result<_, _>>()
                .with_context(|| format!("cannot list the files of '{pattern}'"))?;
            // As the shell globs, a wildcard matches no leading dot (glob's
            // own option for it panics on names that are not UTF-8).
            // Nor, as bash does, `.` and `..` themselves (`.*`).
            paths.retain(|p| !hidden_by_wildcard(pattern, p) && !dot_entry(p));
            if paths.is_empty() {
                bail!("--files '{pattern}' matches no file");
            }
            paths.sort();
            use std::os::unix::ffi::OsStrExt;
            items.extend(
                paths
                    .iter()
                    .map(|p| Item(p.as_os_str().as_bytes().to_vec())),
            );
        }
        Ok(Items::Memory(items))
    }

    /// Only the items in `range` (renumbered from 0), for `--part`.
    pub fn slice(self, range: Range<usize>) -> Items {
        match self {
            Items::Lines(mut lines) => {
                lines.first += range.start;
                lines.len = range.len();
                Items::Lines(lines)
            }
            Items::Memory(mut items) => {
                items.truncate(range.end);
                items.drain(..range.start);
                Items::Memory(items)
            }
        }
    }

    /// A digest of the items, for the journal: a changed input is refused.
    pub fn digest(&self) -> u64 {
        match self {
            Items::Lines(lines) => lines.digest,
            Items::Memory(items) => {
                let mut d = Xxh3::new();
                for item in items {
                    d.update(&(item.0.len() as u64).to_le_bytes());
                    d.update(&item.0);
                }
                d.digest()
            }
        }
    }
}

impl Source for Items {
    type Item = Item;

    fn len(&self) -> usize {
        match self {
            Items::Lines(lines) => lines.len,
            Items::Memory(items) => items.len(),
        }
    }

    fn with_range<R>(&self, range: Range<usize>, f: impl FnOnce(&[Item]) -> R) -> R {
        match self {
            Items::Lines(_) => f(&self.items(range).collect::<Vec<_>>()),
            Items::Memory(items) => f(&items[range]),
        }
    }

    fn items(&self, range: Range<usize>) -> impl Iterator<Item = Item> + Send + '_ {
        let (mut reader, memory) = match self {
            Items::Lines(lines) => (Some(lines.reader_at(lines.first + range.start)), None),
            Items::Memory(items) => (None, Some(&items[range.clone()])),
        };
        let mut at = 0;
        std::iter::from_fn(move || {
            if at == range.len() {
                return None;
            }
            at += 1;
            match (&mut reader, memory) {
                (Some(r), _) => Some(Item(r.next_line().unwrap_or_default())),
                (None, Some(items)) => Some(items[at - 1].clone()),
                (None, None) => None,
            }
        })
    }
}

/// The glob matcher sees only UTF-8 names: a file whose name is not UTF-8
/// but would match `pattern` would be left out without a word. Refuses the
/// pattern instead (checked where only its last component has wildcards,
/// the usual `dir/*.ext`).
fn refuse_unmatchable(pattern: &str) -> anyhow::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::path::Path::new(pattern);
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok(());
    };
    let wild = |s: &std::ffi::OsStr| s.as_bytes().iter().any(|b| b"*?[".contains(b));
    if wild(dir.as_os_str()) || !wild(name) {
        return Ok(());
    }
    let Ok(matcher) = glob::Pattern::new(&name.to_string_lossy()) else {
        return Ok(());
    };
    let dir = if dir.as_os_str().is_empty() {
        std::path::Path::new(".")
    } else {
        dir
    };
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name();
        if name.to_str().is_none() && matcher.matches(&name.to_string_lossy()) {
            bail!(
                "--files '{pattern}': {} has a name that is not UTF-8, which globs cannot match; \
                 list the files with --lines instead (e.g. find ... > list.txt)",
                entry.path().display()
            );
        }
    }
    Ok(())
}

/// Whether `path` names a directory's `.` or `..` entry.
fn dot_entry(path: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    let last = bytes.rsplit(|&b| b == b'/').next().unwrap_or(bytes);
    last == b"." || last == b".."
}

/// Whether a component of `path` starting with a dot was matched by a
/// wildcard component of `pattern` (`*.csv` matching `.a.csv`).
fn hidden_by_wildcard(pattern: &str, path: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let wanted: Vec<&str> = pattern.split('/').filter(|c| !c.is_empty()).collect();
    let found: Vec<&[u8]> = path
        .components()
        .filter(|c| !matches!(c, std::path::Component::RootDir))
        .map(|c| c.as_os_str().as_bytes())
        .collect();
    // With `**` the components do not pair up: judge the file name alone.
    let pairs: Vec<(&str, &[u8])> = if wanted.len() == found.len() {
        wanted.iter().copied().zip(found.iter().copied()).collect()
    } else {
        wanted
            .last()
            .copied()
            .zip(found.last().copied())
            .into_iter()
            .collect()
    };
    pairs
        .iter()
        .any(|(w, f)| f.starts_with(b".") && !w.starts_with('.') && w.contains(['*', '?', '[']))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(text: &[u8]) -> (Lines, tempfile::NamedTempFile) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text).unwrap();
        (Lines::open(f.path()).unwrap(), f)
    }

    #[test]
    fn globs_skip_hidden_files_as_the_shell_does_and_refuse_what_they_cannot_see() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        for name in ["a.csv", "b.csv", ".hidden.csv"] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        let names = |pattern: &str| -> anyhow::Result<Vec<String>> {
            let Items::Memory(items) =
                Items::files(&[format!("{}/{pattern}", dir.path().display())])?
            else {
                unreachable!("globs are held in memory")
            };
            Ok(items
                .iter()
                .map(|i| {
                    let path = std::path::Path::new(std::ffi::OsStr::from_bytes(&i.0));
                    path.file_name().unwrap().to_string_lossy().into_owned()
                })
                .collect())
        };
        assert_eq!(names("*.csv").unwrap(), ["a.csv", "b.csv"]);
        assert_eq!(names(".*.csv").unwrap(), [".hidden.csv"]);
        assert_eq!(names(".*").unwrap(), [".hidden.csv"], "never . or ..");
        let latin1 = std::ffi::OsStr::from_bytes(b"caf\xe9.csv");
        std::fs::write(dir.path().join(latin1), "").unwrap();
        let refused = names("*.csv").unwrap_err().to_string();
        assert!(refused.contains("not UTF-8"), "{refused}");
        assert_eq!(names("a.*").unwrap(), ["a.csv"]);
    }

    #[test]
    fn lines_are_read_by_number_across_strides() {
        let n = 3 * STRIDE + 17;
        let text: Vec<u8> = (0..n)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        let (lines, _f) = lines_of(&text);
        let items = Items::Lines(lines);
        assert_eq!(items.len(), n);
        for range in [0..3, STRIDE - 1..STRIDE + 2, 2 * STRIDE + 5..n, n - 1..n] {
            let got: Vec<String> = items.items(range.clone()).map(|i| i.lossy()).collect();
            let want: Vec<String> = range.map(|i| format!("line {i}")).collect();
            assert_eq!(got, want);
        }
        let part = items.slice(STRIDE..STRIDE + 3);
        assert_eq!(part.len(), 3);
        assert_eq!(
            part.items(1..2).next().unwrap().lossy(),
            format!("line {}", STRIDE + 1)
        );
    }

    #[test]
    fn lines_keep_bytes_empty_lines_and_a_last_line_without_newline() {
        let (lines, _f) = lines_of(b"a b\n\n\xff\xfe\nlast");
        let items = Items::Lines(lines);
        let got: Vec<Vec<u8>> = items.items(0..4).map(|i| i.0).collect();
        assert_eq!(
            got,
            [b"a b".to_vec(), vec![], vec![0xff, 0xfe], b"last".to_vec()]
        );
        let (empty, _g) = lines_of(b"");
        assert_eq!(Items::Lines(empty).len(), 0);
    }

    #[test]
    fn digests_change_with_the_content() {
        let (a, _f) = lines_of(b"x\ny\n");
        let (b, _g) = lines_of(b"x\nz\n");
        assert_ne!(Items::Lines(a).digest(), Items::Lines(b).digest());
        let m = Items::Memory(vec![Item(b"ab".to_vec()), Item(b"c".to_vec())]);
        let n = Items::Memory(vec![Item(b"a".to_vec()), Item(b"bc".to_vec())]);
        assert_ne!(m.digest(), n.digest());
    }
}
