//! The saved fits, keyed by placement: one [`Fit`] per [`Link`], the pair
//! of hosts it was measured between (one host twice for shared memory
//! inside a node). `hpcmap bench pingpong` adds or replaces the fits of the
//! links it measured; a run looks up the links its ranks used.
//!
//! Where: one JSON file, `--network FILE` / `$HPCMAP_NETWORK`, else
//! `$XDG_CACHE_HOME/hpcmap/network.json`, else `~/.cache/hpcmap/network.json`.
//! The hostnames in the keys are what make one file right for a whole
//! cluster: `$HOME` is shared by its nodes, each node's shared-memory fit
//! and each pair's network fit are kept apart, and a fit is only ever used
//! for the hosts it was measured on. Files are replaced whole (written
//! aside, then renamed), so a reader never sees half a file.
//!
//! ```json
//! {"fits": [{"between": "node1 <-> node1", "alpha": 5.1e-7, "beta": 5.2e-11,
//!            "first_touch": 6.1e-10, "largest_message": 2097152,
//!            "measured_at": 1764085000},
//!           {"between": "node1 <-> node2", "alpha": 1.6e-5, "beta": 8.4e-8, ...}]}
//! ```
//! A file of older versions held one fit (`alpha`, `beta`, `between`); it
//! reads as a file with that one fit.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::hockney::Hockney;

/// The hosts at the two ends of a path, in sorted order; the same host at
/// both ends is the shared-memory path inside it. Written `a <-> b`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Link {
    a: String,
    b: String,
}

impl Link {
    /// The path between ranks on hosts `x` and `y` (either order).
    pub fn new(x: &str, y: &str) -> Link {
        let (a, b) = if x <= y { (x, y) } else { (y, x) };
        Link {
            a: a.to_string(),
            b: b.to_string(),
        }
    }

    /// Whether both ends are on one host.
    pub fn same_host(&self) -> bool {
        self.a == self.b
    }

    /// `same host` or `across hosts`.
    pub fn placement(&self) -> &'static str {
        if self.same_host() {
            "same host"
        } else {
            "across hosts"
        }
    }
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} <-> {}", self.a, self.b)
    }
}

impl From<Link> for String {
    fn from(link: Link) -> String {
        link.to_string()
    }
}

impl TryFrom<String> for Link {
    type Error = String;

    fn try_from(s: String) -> Result<Link, String> {
        match s.split_once(" <-> ") {
            Some((a, b)) if !a.is_empty() && !b.is_empty() && !b.contains(" <-> ") => {
                Ok(Link::new(a, b))
            }
            _ => Err(format!("'{s}' is not 'HOST <-> HOST'")),
        }
    }
}

/// One saved fit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fit {
    /// The path it was measured on.
    pub between: Link,
    /// Its model.
    #[serde(flatten)]
    pub model: Hockney,
    /// Seconds per byte of a copy into memory never touched before (page
    /// faults), the slower of the two hosts: big messages land in fresh
    /// buffers and move no faster than this (0: unknown, an older file).
    #[serde(default)]
    pub first_touch: f64,
    /// The sweep's largest message, bytes (0: unknown, an older file).
    #[serde(default)]
    pub largest_message: u64,
    /// When it was measured, seconds since 1970 (0: unknown).
    #[serde(default)]
    pub measured_at: u64,
}

impl Fit {
    /// Predicted one-way time of a message of `bytes`, received into
    /// fresh pages or not.
    pub fn message_time(&self, bytes: f64, fresh: bool) -> f64 {
        let per_byte = if fresh {
            self.model.beta.max(self.first_touch)
        } else {
            self.model.beta
        };
        self.model.alpha + bytes * per_byte
    }
}

/// The fits of one file, and where they came from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Models {
    /// One fit per link, sorted by link.
    pub fits: Vec<Fit>,
    /// The file they were read from (or would be saved to).
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

impl Models {
    /// The default file; see the module docs.
    pub fn default_path() -> Option<PathBuf> {
        if let Some(p) = std::env::var_os("HPCMAP_NETWORK") {
            return Some(PathBuf::from(p));
        }
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
        Some(cache.join("hpcmap").join("network.json"))
    }

    /// The fits in `path`, or none yet when it does not exist and `named`
    /// is false (the default file is optional; a file the user named is not).
    ///
    /// # Errors
    /// When the file cannot be read or is not a model file.
    pub fn open(path: &Path, named: bool) -> anyhow::Result<Models> {
        if !named && !path.exists() {
            return Ok(Models {
                fits: Vec::new(),
                source: Some(path.to_path_buf()),
            });
        }
        Models::load(path)
    }

    /// Reads a model file (or an older single-fit file).
    ///
    /// # Errors
    /// When the file cannot be read or is not a model file.
    pub fn load(path: &Path) -> anyhow::Result<Models> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read network model {}", path.display()))?;
        let not_a_model = || format!("{} is not a network model", path.display());
        let mut models = match serde_json::from_str::<Models>(&text) {
            Ok(models) => models,
            Err(e) => match serde_json::from_str::<Fit>(&text) {
                Ok(fit) => Models {
                    fits: vec![fit],
                    source: None,
                },
                Err(_) => return Err(anyhow::Error::from(e).context(not_a_model())),
            },
        };
        models.fits.sort_by(|x, y| x.between.cmp(&y.between));
        models.source = Some(path.to_path_buf());
        Ok(models)
    }

    /// Writes the file whole: to a temporary beside it, then renamed over
    /// it (creating the directory).
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let aside = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let text = serde_json::to_string_pretty(self)? + "\n";
        std::fs::write(&aside, text)
            .and_then(|()| std::fs::rename(&aside, path))
            .inspect_err(|_| {
                let _ = std::fs::remove_file(&aside);
            })
            .with_context(|| format!("cannot write network model {}", path.display()))
    }

    /// Adds `fit`, replacing an older fit of the same link.
    pub fn insert(&mut self, fit: Fit) {
        match self.fits.binary_search_by(|f| f.between.cmp(&fit.between)) {
            Ok(at) => self.fits[at] = fit,
            Err(at) => self.fits.insert(at, fit),
        }
    }

    /// The fit of `link`, if one was measured.
    pub fn get(&self, link: &Link) -> Option<&Fit> {
        self.fits
            .binary_search_by(|f| f.between.cmp(link))
            .ok()
            .map(|at| &self.fits[at])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fit(a: &str, b: &str, alpha: f64) -> Fit {
        Fit {
            between: Link::new(a, b),
            model: Hockney { alpha, beta: 1e-9 },
            first_touch: 0.0,
            largest_message: 1 << 20,
            measured_at: 1,
        }
    }

    #[test]
    fn links_are_unordered_pairs_of_hosts() {
        assert_eq!(Link::new("n2", "n1"), Link::new("n1", "n2"));
        assert_eq!(Link::new("n2", "n1").to_string(), "n1 <-> n2");
        assert!(Link::new("n1", "n1").same_host());
        assert_eq!(Link::new("n1", "n2").placement(), "across hosts");
        assert_eq!(
            Link::try_from("b <-> a".to_string()),
            Ok(Link::new("a", "b"))
        );
        for bad in ["", "a", " <-> b", "a <-> ", "a <-> b <-> c"] {
            assert!(Link::try_from(bad.to_string()).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_message_into_fresh_pages_is_no_faster_than_first_touch() {
        let f = Fit {
            first_touch: 5e-10,
            ..fit("a", "a", 1e-6)
        };
        // 1 MB at 1 ns per byte (the copy is slower than first touch).
        assert_eq!(f.message_time(1e6, false), 1e-6 + 1e-3);
        assert_eq!(f.message_time(1e6, true), 1e-6 + 1e-3);
        let f = Fit {
            first_touch: 4e-9,
            ..f
        };
        // Into fresh pages at 4 ns per byte: 1 us + 4 ms.
        assert_eq!(f.message_time(1e6, false), 1e-6 + 1e-3);
        assert!((f.message_time(1e6, true) - 0.004001).abs() < 1e-15);
    }

    #[test]
    fn insert_replaces_the_same_link_and_get_finds_only_it() {
        let mut m = Models::default();
        m.insert(fit("n1", "n2", 1.0));
        m.insert(fit("n1", "n1", 2.0));
        m.insert(fit("n2", "n1", 3.0));
        assert_eq!(m.fits.len(), 2);
        assert_eq!(m.get(&Link::new("n1", "n2")).unwrap().model.alpha, 3.0);
        assert_eq!(m.get(&Link::new("n1", "n1")).unwrap().model.alpha, 2.0);
        assert!(m.get(&Link::new("n2", "n2")).is_none());
        assert!(m.get(&Link::new("n1", "n3")).is_none());
    }

    #[test]
    fn saves_loads_and_reads_an_older_single_fit_file() {
        let dir = std::env::temp_dir().join(format!("hpcmap-models-{}", std::process::id()));
        let path = dir.join("sub/network.json");
        let mut m = Models::default();
        m.insert(fit("b", "a", 2e-6));
        m.insert(fit("a", "a", 1e-7));
        m.save(&path).unwrap();
        let back = Models::load(&path).unwrap();
        assert_eq!(back.fits, m.fits);
        assert_eq!(back.source.as_deref(), Some(path.as_path()));
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );

        let old = dir.join("old.json");
        std::fs::write(
            &old,
            r#"{"alpha": 2e-6, "beta": 3e-10, "between": "vm <-> vm"}"#,
        )
        .unwrap();
        let back = Models::load(&old).unwrap();
        assert_eq!(back.fits.len(), 1);
        assert_eq!(back.get(&Link::new("vm", "vm")).unwrap().model.beta, 3e-10);

        std::fs::write(&old, r#"{"alpha": 1}"#).unwrap();
        let e = format!("{:#}", Models::load(&old).unwrap_err());
        assert!(e.contains("is not a network model"), "{e}");
        let missing = dir.join("missing.json");
        assert!(Models::open(&missing, false).unwrap().fits.is_empty());
        let e = format!("{:#}", Models::open(&missing, true).unwrap_err());
        assert!(e.contains("cannot read network model"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
