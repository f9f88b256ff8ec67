//! Command-line types, and their check into a validated [`RunConfig`]
//! before any MPI work starts (every rank parses the same arguments and
//! rejects bad ones the same way, with exit code 2; rank 0 says why).

use std::path::{Path, PathBuf};

use clap::builder::TypedValueParser;
use clap::{Args, Parser, Subcommand};

use crate::cli::netmodel::Hockney;
use crate::cli::outputs::check_distinct;
use crate::cli::workloads::{mandelbrot, primes, square};
use crate::schedule::OnError;
use crate::{MapOptions, Order, Schedule};

/// Shown after `--help` (with [`super::EXIT_CODES`], added when the command is built).
pub const EXAMPLES: &str = "\
Examples:
  mpirun -n 8 hpcmap run square --items 1000000
  mpirun -n 4 hpcmap run mandelbrot --width 2048 --height 2048 --max-iter 500 --output mandel.png
  mpirun -n 4 hpcmap run wordcount --input a.txt b.txt --top 20
  mpirun -n 2 hpcmap run primes --limit 10000000 --json runs.jsonl

Logs: RUST_LOG=debug prints what each rank does on stderr, tagged with the rank.";

/// `--schedule`: the possible values are listed in `--help`.
fn schedule_parser() -> impl clap::builder::TypedValueParser<Value = Schedule> {
    clap::builder::PossibleValuesParser::new(Schedule::ALL.map(Schedule::name))
        .map(|s| s.parse::<Schedule>().expect("a listed schedule"))
}

/// Pool.map for a cluster: spread a map over MPI ranks, gather the results in
/// order, and show where the time went.
#[derive(Debug, Parser)]
#[command(name = "hpcmap", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a built-in workload over all ranks of the MPI job (start it with mpirun).
    Run(RunArgs),
    /// Benchmarks measured against a baseline from the same run (start with mpirun).
    #[command(subcommand)]
    Bench(BenchArgs),
    /// Strong- and weak-scaling tables (and charts) from the records that
    /// `run --json` wrote; no MPI needed.
    Report {
        /// JSON-lines files of run records.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Also draw the charts (wall time, efficiency, phases) into one
        /// 1200x900 image; the extension (.png or .svg) picks the format.
        #[arg(long)]
        plot: Option<PathBuf>,
        /// Print GitHub markdown tables instead of plain text.
        #[arg(long)]
        markdown: bool,
    },
}

/// `hpcmap bench`: what to measure.
#[derive(Debug, Subcommand)]
pub enum BenchArgs {
    /// The map's data path for `square` against memcpy of the same bytes.
    Datapath {
        /// Items (u64) to square.
        #[arg(long, default_value_t = 10_000_000, value_parser = clap::value_parser!(u64).range(1..=square::MAX_ITEMS))]
        items: u64,
        /// Timed repetitions (after one warm-up); medians are reported.
        #[arg(long, default_value_t = 9, value_parser = clap::value_parser!(u64).range(1..=1000))]
        repeat: u64,
        /// How items are assigned to ranks.
        #[arg(long, default_value = "static", value_parser = schedule_parser())]
        schedule: Schedule,
        /// Items per chunk.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        chunk: Option<u64>,
    },
    /// Per-task overhead of the dynamic schedule (empty tasks, chunk 1) next
    /// to the one-way MPI latency measured in the same job.
    Overhead {
        /// Empty tasks to run.
        #[arg(long, default_value_t = 200_000, value_parser = clap::value_parser!(u64).range(1..))]
        tasks: u64,
        /// Timed repetitions (after one warm-up); medians are reported.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=1000))]
        repeat: u64,
    },
    /// One workload under the static, dynamic and guided schedules,
    /// interleaved in one job: medians and speedups against static.
    Schedules {
        /// Timed rounds (after one warm-up); medians are reported.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=1000))]
        repeat: u64,
        /// Compute threads per rank.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1024))]
        threads: u16,
        /// The workload and its options, as for `hpcmap run`.
        #[command(subcommand)]
        workload: WorkloadArgs,
    },
    /// Latency and bandwidth between ranks 0 and 1, 1 B to 64 MiB, with a
    /// Hockney fit T(n) = alpha + n beta.
    Pingpong {
        /// Largest message in bytes (powers of two up to it).
        #[arg(long, default_value_t = 64 << 20, value_parser = clap::value_parser!(u64).range(1..=1 << 30))]
        max_bytes: u64,
        /// Timed repetitions per size (after one warm-up); medians are reported.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=100))]
        repeat: u64,
        /// Save the fit here for `hpcmap run --network` [default: $HPCMAP_NETWORK,
        /// else ~/.cache/hpcmap/network.json].
        #[arg(long, value_name = "FILE")]
        save: Option<PathBuf>,
    },
}

/// `hpcmap run`: options shared by every workload, then the workload.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The workload and its own options.
    #[command(subcommand)]
    pub workload: WorkloadArgs,

    /// How items are assigned to ranks.
    #[arg(long, global = true, default_value = "static", value_parser = schedule_parser())]
    pub schedule: Schedule,

    /// Items per chunk [default: static: one block per rank; dynamic: items /
    /// (8 x ranks); guided: the smallest chunk, 1].
    #[arg(long, global = true, value_parser = clap::value_parser!(u64).range(1..))]
    pub chunk: Option<u64>,

    /// What a panicking item does: abort (end the run cleanly, exit 3), skip
    /// (leave it out and go on, exit 4), or retry=N (try it N more times, then abort).
    #[arg(long, global = true, value_name = "POLICY", default_value = "abort")]
    pub on_error: OnError,

    /// Compute threads per rank (MPI stays on one thread): ranks x threads cores.
    #[arg(long, global = true, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: u16,

    /// Append the run's record as one JSON line to FILE (root only).
    #[arg(long, global = true, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Print only the answer line.
    #[arg(long, short, global = true)]
    pub quiet: bool,

    /// Stream every item's result to FILE as JSON lines `[index, result]`, in
    /// input order (completion order with --unordered); written to a temporary
    /// and renamed into place when complete.
    #[arg(long, global = true, value_name = "FILE")]
    pub results: Option<PathBuf>,

    /// Journal completed chunks in DIR as they arrive, so that a killed or
    /// interrupted run can be finished with --resume.
    #[arg(long, global = true, value_name = "DIR")]
    pub journal: Option<PathBuf>,

    /// Continue the run journaled in --journal DIR: only the items it lacks
    /// are computed; answer, checksum and outputs equal an uninterrupted run's.
    #[arg(long, global = true, requires = "journal")]
    pub resume: bool,

    /// Take results as they complete instead of in input order (no reorder
    /// buffer on the root); the answer and checksum are the same.
    #[arg(long, global = true)]
    pub unordered: bool,

    /// Explain communication with this network model (from `hpcmap bench
    /// pingpong`) [default: $HPCMAP_NETWORK, else ~/.cache/hpcmap/network.json, if present].
    #[arg(long, global = true, value_name = "FILE")]
    pub network: Option<PathBuf>,

    /// Map only part I of K contiguous parts of the input (1-based), e.g. for job arrays.
    #[arg(long, global = true, value_name = "I/K", value_parser = parse_part)]
    pub part: Option<Part>,
}

/// The built-in workloads.
#[derive(Clone, Debug, Subcommand)]
pub enum WorkloadArgs {
    /// Squares of 1..N, the lecture's Pool.map(square, ...); answer: their sum.
    Square {
        /// N: how many items.
        #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(0..=square::MAX_ITEMS))]
        items: u64,
    },
    /// Monte Carlo estimate of pi from random points, in a fixed number of seeded tasks.
    Pi {
        /// Total random points.
        #[arg(long, default_value_t = 10_000_000)]
        samples: u64,
        /// Tasks (items) the points are split into, independent of the rank count.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
        tasks: u64,
        /// Seed of the run; each task derives its own generator from it.
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Mandelbrot iteration counts, one image row per item (an irregular workload).
    Mandelbrot {
        /// Image width in pixels.
        #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=65_536))]
        width: u32,
        /// Image height in pixels (the number of items).
        #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=65_536))]
        height: u32,
        /// Iterations before a point counts as inside the set.
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=mandelbrot::MAX_ITER as i64))]
        max_iter: u32,
        /// Write the image to FILE (.png or .pgm).
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Count the primes below N with a segmented sieve, one block per item.
    Primes {
        /// N: count primes below it.
        #[arg(long, default_value_t = 10_000_000, value_parser = clap::value_parser!(u64).range(0..=1_000_000_000_000))]
        limit: u64,
        /// Numbers per block (item).
        #[arg(long, default_value_t = primes::DEFAULT_BLOCK, value_parser = clap::value_parser!(u64).range(1..=1 << 30))]
        block: u64,
    },
    /// Word counts over text files (map-reduce); prints the most frequent words.
    Wordcount {
        /// UTF-8 text files.
        #[arg(long, required = true, num_args = 1.., value_name = "FILE")]
        input: Vec<PathBuf>,
        /// How many of the most frequent words to show.
        #[arg(long, default_value_t = 10)]
        top: usize,
    },
    /// Synthetic CPU-bound items of controllable cost and imbalance.
    Spin {
        /// Number of items (at most 2^40).
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(0..=1 << 40))]
        items: u64,
        /// Busy time of the first item in microseconds.
        #[arg(long, default_value_t = 100.0, value_parser = parse_micros)]
        micros: f64,
        /// The last item costs (1 + skew) times the first, ramping linearly.
        #[arg(long, default_value_t = 0.0, value_parser = parse_skew)]
        skew: f64,
        /// Panic while mapping these items (0-based, comma-separated), to see
        /// how failures are handled (--on-error).
        #[arg(long, value_name = "I,...", value_delimiter = ',')]
        fail_at: Vec<u64>,
        /// Each --fail-at item panics only this many times per rank, then
        /// succeeds (to see --on-error retry=N at work) [default: always].
        #[arg(long, value_name = "K", requires = "fail_at")]
        fail_times: Option<u32>,
    },
}

/// Part `index` (1-based) of `count` contiguous parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Part {
    /// Which part, 1..=count.
    pub index: u64,
    /// How many parts.
    pub count: u64,
}

impl Part {
    /// The item range of this part of `items` items.
    pub fn range(&self, items: usize) -> std::ops::Range<usize> {
        let at = |i: u64| (items as u128 * u128::from(i) / u128::from(self.count)) as usize;
        at(self.index - 1)..at(self.index)
    }
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

fn parse_part(s: &str) -> Result<Part, String> {
    let err = || format!("expected I/K with 1 <= I <= K, e.g. 2/8; got '{s}'");
    let (i, k) = s.split_once('/').ok_or_else(err)?;
    let (index, count) = (
        i.trim().parse::<u64>().map_err(|_| err())?,
        k.trim().parse::<u64>().map_err(|_| err())?,
    );
    if index == 0 || index > count {
        return Err(err());
    }
    Ok(Part { index, count })
}

fn parse_nonnegative(s: &str, max: f64) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if !v.is_finite() || !(0.0..=max).contains(&v) {
        return Err(format!("must be between 0 and {max}, got {s}"));
    }
    Ok(v)
}

fn parse_micros(s: &str) -> Result<f64, String> {
    parse_nonnegative(s, 1e9)
}

fn parse_skew(s: &str) -> Result<f64, String> {
    parse_nonnegative(s, 1e6)
}

/// A validated `run`: everything checked that can be checked without MPI.
#[derive(Debug)]
pub struct RunConfig {
    /// The workload.
    pub workload: WorkloadArgs,
    /// Schedule and chunking.
    pub map: MapOptions,
    /// Threads per rank.
    pub threads: usize,
    /// JSON-lines file to append to.
    pub json: Option<PathBuf>,
    /// Print only the answer.
    pub quiet: bool,
    /// Take results in completion order.
    pub unordered: bool,
    /// Per-item results file.
    pub results: Option<PathBuf>,
    /// Journal directory.
    pub journal: Option<PathBuf>,
    /// Continue the journaled run.
    pub resume: bool,
    /// Network model file, and whether the user named it (then it must load).
    pub network: Option<(PathBuf, bool)>,
    /// Only this part of the input.
    pub part: Option<Part>,
}

impl RunArgs {
    /// Refuses one file in two roles: an output over an input, two outputs
    /// on one path, an output over the journal.
    fn check_files(&self) -> Result<(), String> {
        let journal = self.journal.as_ref().map(|d| d.join("journal.hpcmap"));
        let mut roles: Vec<(&str, &Path)> = Vec::new();
        match &self.workload {
            WorkloadArgs::Wordcount { input, .. } => {
                roles.extend(input.iter().map(|p| ("--input", p.as_path())));
            }
            WorkloadArgs::Mandelbrot {
                output: Some(path), ..
            } => roles.push(("--output", path)),
            _ => {}
        }
        roles.extend(self.results.as_deref().map(|p| ("--results", p)));
        roles.extend(self.json.as_deref().map(|p| ("--json", p)));
        roles.extend(self.network.as_deref().map(|p| ("--network", p)));
        roles.extend(journal.as_deref().map(|p| ("--journal", p)));
        // The same input twice is only counted twice, not clobbered.
        let inputs = roles.iter().take_while(|r| r.0 == "--input").count();
        check_distinct(&roles[inputs.saturating_sub(1)..])?;
        for input in &roles[..inputs] {
            let mut with_outputs = vec![*input];
            with_outputs.extend_from_slice(&roles[inputs..]);
            check_distinct(&with_outputs)?;
        }
        Ok(())
    }

    /// Checks what clap cannot express.
    ///
    /// # Errors
    /// A message for the user; the caller exits with code 2.
    pub fn validate(self) -> Result<RunConfig, String> {
        if let WorkloadArgs::Mandelbrot {
            output: Some(path), ..
        } = &self.workload
        {
            let ext = path
                .extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase);
            if !matches!(ext.as_deref(), Some("png" | "pgm")) {
                return Err(format!(
                    "--output {}: the image format comes from the extension: use .png or .pgm",
                    path.display()
                ));
            }
            if self.part.is_some() {
                return Err(
                    "--output cannot be combined with --part: a part is not a whole image".into(),
                );
            }
        }
        self.check_files()?;
        Ok(RunConfig {
            workload: self.workload,
            map: MapOptions {
                schedule: self.schedule,
                chunk: self.chunk.map(|c| usize::try_from(c).unwrap_or(usize::MAX)),
                on_error: self.on_error,
                order: if self.unordered {
                    Order::Completion
                } else {
                    Order::Input
                },
            },
            threads: usize::from(self.threads),
            json: self.json,
            quiet: self.quiet,
            unordered: self.unordered,
            results: self.results,
            journal: self.journal,
            resume: self.resume,
            network: match self.network {
                Some(path) => Some((path, true)),
                None => Hockney::default_path().map(|p| (p, false)),
            },
            part: self.part,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<RunConfig, String> {
        let cli = Cli::try_parse_from(args).map_err(|e| e.to_string())?;
        let Command::Run(run) = cli.command else {
            return Err("not a run".into());
        };
        run.validate()
    }

    #[test]
    fn common_options_may_follow_the_workload() {
        let c = parse(&[
            "hpcmap",
            "run",
            "square",
            "--items",
            "5",
            "--threads",
            "2",
            "--quiet",
        ])
        .unwrap();
        assert_eq!(c.threads, 2);
        assert!(c.quiet);
    }

    #[test]
    fn bad_values_are_rejected() {
        assert!(parse(&["hpcmap", "run", "square", "--items", "-3"]).is_err());
        assert!(parse(&["hpcmap", "run", "square", "--chunk", "0"]).is_err());
        assert!(parse(&["hpcmap", "run", "mandelbrot", "--max-iter", "70000"]).is_err());
        assert!(parse(&["hpcmap", "run", "mandelbrot", "--output", "x.jpg"]).is_err());
        assert!(parse(&["hpcmap", "run", "spin", "--micros", "nan"]).is_err());
        assert!(parse(&["hpcmap", "run", "wordcount"]).is_err());
        assert!(parse(&["hpcmap", "run", "square", "--part", "0/3"]).is_err());
        assert!(parse(&["hpcmap", "run", "square", "--part", "4/3"]).is_err());
    }

    #[test]
    fn parts_tile_the_input() {
        let parts: Vec<_> = (1..=3)
            .map(|i| Part { index: i, count: 3 }.range(10))
            .collect();
        assert_eq!(parts, [0..3, 3..6, 6..10]);
    }
}
