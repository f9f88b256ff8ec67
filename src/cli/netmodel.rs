//! The communication model a run is explained against: Hockney's
//! T(n) = alpha + n beta per message, fitted by `hpcmap bench pingpong` and
//! saved as JSON so that later runs on the same placement can use it.
//!
//! Predictions for a map (p ranks, the root keeping its own share):
//! * static: a Scatterv and a Gatherv, each about (p - 1) alpha + bytes beta
//!   (linear and binomial trees move the same bytes out of the root);
//! * dynamic/guided: one message each way per chunk a worker computes,
//!   2 alpha per chunk + all bytes beta (mostly overlapped with compute).

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::stats::Phases;

/// A fitted latency/bandwidth model of one placement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hockney {
    /// Start-up time per message, seconds.
    pub alpha: f64,
    /// Time per byte, seconds.
    pub beta: f64,
    /// Where it was measured, e.g. `vm <-> vm`.
    #[serde(default)]
    pub between: String,
}

/// One measured message size.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Sample {
    /// Message size in bytes.
    pub bytes: u64,
    /// One-way time in seconds (half the round trip).
    pub seconds: f64,
}

impl Hockney {
    /// Fits `t = alpha + beta n` by least squares of the *relative* error
    /// (weights 1/t^2), so the 1-byte latency and the 64 MiB bandwidth weigh
    /// equally; an absolute fit lets big messages swamp alpha (it can even
    /// come out negative).
    pub fn fit(samples: &[Sample], between: String) -> Hockney {
        let (mut sw, mut swn, mut swnn, mut swt, mut swnt) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for s in samples.iter().filter(|s| s.seconds > 0.0) {
            let (n, t) = (s.bytes as f64, s.seconds);
            let w = 1.0 / (t * t);
            sw += w;
            swn += w * n;
            swnn += w * n * n;
            swt += w * t;
            swnt += w * n * t;
        }
        let det = sw * swnn - swn * swn;
        let (alpha, beta) = if det.abs() < f64::MIN_POSITIVE {
            (swt / sw.max(f64::MIN_POSITIVE), 0.0)
        } else {
            (
                (swnn * swt - swn * swnt) / det,
                (sw * swnt - swn * swt) / det,
            )
        };
        // Noisy samples (a shaped link's burst, a busy machine) can tilt the
        // line below zero; neither a negative latency nor a negative time per
        // byte means anything, so refit with that term held at zero.
        let (alpha, beta) = if beta < 0.0 {
            (swt / sw.max(f64::MIN_POSITIVE), 0.0)
        } else if alpha < 0.0 {
            (0.0, swnt / swnn.max(f64::MIN_POSITIVE))
        } else {
            (alpha, beta)
        };
        Hockney {
            alpha,
            beta,
            between,
        }
    }

    /// Predicted one-way time of one message of `bytes`.
    pub fn message(&self, bytes: f64) -> f64 {
        self.alpha + self.beta * bytes
    }

    /// Predicted communication time of a map; see the module docs.
    pub fn predict(&self, m: &MapShape) -> f64 {
        let p = m.ranks as f64;
        if m.ranks <= 1 {
            return 0.0;
        }
        let bytes = (m.bytes_scattered + m.bytes_gathered) as f64;
        if m.schedule == "static" {
            2.0 * (p - 1.0) * self.alpha + bytes * self.beta
        } else {
            2.0 * m.worker_chunks as f64 * self.alpha + bytes * self.beta
        }
    }

    /// The verdict on a run of `shape` whose root measured `phases`:
    /// predicted against measured communication, and how compute compares.
    pub fn verdict(&self, shape: &MapShape, phases: &Phases) -> Verdict {
        let predicted = self.predict(shape);
        let measured = phases.scatter + phases.gather;
        // Static runs measure their collectives; dynamic messages overlap
        // compute, so only the prediction says what they cost.
        let comm = if shape.schedule == "static" {
            measured
        } else {
            predicted
        };
        Verdict {
            alpha: self.alpha,
            beta: self.beta,
            predicted_comm_s: predicted,
            measured_comm_s: measured,
            compute_to_comm: (comm > 0.0).then(|| phases.compute.max / comm),
        }
    }

    /// The default place to save and look for the model:
    /// `$HPCMAP_NETWORK`, else `$XDG_CACHE_HOME/hpcmap/network.json`, else
    /// `~/.cache/hpcmap/network.json`.
    pub fn default_path() -> Option<PathBuf> {
        if let Some(p) = std::env::var_os("HPCMAP_NETWORK") {
            return Some(PathBuf::from(p));
        }
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
        Some(cache.join("hpcmap").join("network.json"))
    }

    /// Reads a saved model.
    ///
    /// # Errors
    /// When the file cannot be read or is not a model.
    pub fn load(path: &Path) -> anyhow::Result<Hockney> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read network model {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not a network model", path.display()))
    }

    /// Saves the model (creating the directory).
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text + "\n")
            .with_context(|| format!("cannot write network model {}", path.display()))
    }
}

/// What the model needs to know about a map.
#[derive(Clone, Debug)]
pub struct MapShape {
    /// Schedule name.
    pub schedule: String,
    /// Ranks.
    pub ranks: u64,
    /// Chunks computed by ranks other than the root.
    pub worker_chunks: u64,
    /// Bytes sent to other ranks.
    pub bytes_scattered: u64,
    /// Bytes received from other ranks.
    pub bytes_gathered: u64,
}

/// The model's verdict on one run, as reported.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Verdict {
    /// Latency used, seconds.
    pub alpha: f64,
    /// Seconds per byte used.
    pub beta: f64,
    /// Predicted communication time, seconds.
    pub predicted_comm_s: f64,
    /// Measured communication time (root's scatter + gather), seconds.
    pub measured_comm_s: f64,
    /// Slowest rank's compute over the communication time (measured for
    /// static; predicted for dynamic, whose messages overlap compute);
    /// `None` when nothing was communicated.
    pub compute_to_comm: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_recovers_an_exact_model() {
        let truth = Hockney {
            alpha: 1e-6,
            beta: 1e-10,
            between: String::new(),
        };
        let samples: Vec<Sample> = (0..27)
            .map(|k| Sample {
                bytes: 1 << k,
                seconds: truth.message((1u64 << k) as f64),
            })
            .collect();
        let fit = Hockney::fit(&samples, String::new());
        assert!(
            (fit.alpha - truth.alpha).abs() / truth.alpha < 1e-6,
            "{fit:?}"
        );
        assert!((fit.beta - truth.beta).abs() / truth.beta < 1e-6, "{fit:?}");
    }

    #[test]
    fn noisy_samples_never_give_negative_terms() {
        let samples = |pairs: &[(u64, f64)]| -> Vec<Sample> {
            pairs
                .iter()
                .map(|&(bytes, seconds)| Sample { bytes, seconds })
                .collect()
        };
        // Bigger messages measured faster than small ones: a falling line.
        let fit = Hockney::fit(
            &samples(&[(1, 4e-3), (1024, 3e-3), (4096, 2e-3)]),
            String::new(),
        );
        assert!(fit.alpha > 0.0 && fit.beta == 0.0, "{fit:?}");
        // Steeper than proportional: the intercept would come out negative.
        let fit = Hockney::fit(
            &samples(&[(1000, 1e-6), (2000, 4e-6), (4000, 12e-6)]),
            String::new(),
        );
        assert!(fit.alpha == 0.0 && fit.beta > 0.0, "{fit:?}");
    }

    #[test]
    fn static_prediction_by_hand() {
        let h = Hockney {
            alpha: 1e-6,
            beta: 1e-9,
            between: String::new(),
        };
        let shape = MapShape {
            schedule: "static".into(),
            ranks: 4,
            worker_chunks: 3,
            bytes_scattered: 3_000_000,
            bytes_gathered: 3_000_000,
        };
        // 2 x 3 x 1 us + 6e6 B x 1 ns = 6 us + 6 ms.
        assert!((h.predict(&shape) - 0.006006).abs() < 1e-12);
        let dynamic = MapShape {
            schedule: "dynamic".into(),
            worker_chunks: 100,
            ..shape
        };
        // 2 x 100 x 1 us + 6 ms.
        assert!((h.predict(&dynamic) - 0.0062).abs() < 1e-12);
    }

    #[test]
    fn one_rank_moves_nothing() {
        let h = Hockney {
            alpha: 1.0,
            beta: 1.0,
            between: String::new(),
        };
        let shape = MapShape {
            schedule: "static".into(),
            ranks: 1,
            worker_chunks: 0,
            bytes_scattered: 0,
            bytes_gathered: 0,
        };
        assert_eq!(h.predict(&shape), 0.0);
    }

    #[test]
    fn saves_and_loads() {
        let dir = std::env::temp_dir().join(format!("hpcmap-model-{}", std::process::id()));
        let path = dir.join("sub/network.json");
        let h = Hockney {
            alpha: 2e-6,
            beta: 3e-10,
            between: "a <-> b".into(),
        };
        h.save(&path).unwrap();
        assert_eq!(Hockney::load(&path).unwrap(), h);
        let _ = std::fs::remove_dir_all(dir);
    }
}
