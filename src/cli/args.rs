//! Command-line types, and their check into a validated [`RunConfig`]
//! before any MPI work starts (every rank parses the same arguments and
//! rejects bad ones the same way, with exit code 2; rank 0 says why).

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

use crate::Schedule;
use crate::cli::settings::{MapArgs, Settings, schedule_parser};
use crate::cli::workloads::{mandelbrot, primes, square};

/// Shown after `--help` (with [`super::EXIT_CODES`], added when the command is built).
pub const EXAMPLES: &str = "\
Examples:
  mpirun -n 8 hpcmap run square --items 1000000
  mpirun -n 4 hpcmap run mandelbrot --width 2048 --height 2048 --max-iter 500 --output mandel.png
  mpirun -n 4 hpcmap run wordcount --input a.txt b.txt --top 20
  mpirun -n 2 hpcmap run primes --limit 10000000 --json runs.jsonl --timeline t.svg
  mpirun -n 8 hpcmap exec --lines samples.txt --joblog jobs.tsv -- ./align {}
  mpirun -n 8 hpcmap pipe --lines items.jsonl --results out.jsonl -- python3 -u worker.py
  hpcmap report runs.jsonl --plot scaling.png

Watching: a progress bar at a terminal, a line every 30 s in a batch job's output
(--progress), a JSON status file for other shells (--status FILE).
Logs: RUST_LOG=debug prints what each rank does on stderr, tagged with the rank.";

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
    /// Run a command for every item (GNU parallel's convention), spread
    /// over the ranks (start it with mpirun).
    Exec(ExecArgs),
    /// Stream items through warm worker processes (one per compute thread
    /// per rank), one line in, one line out (start it with mpirun).
    Pipe(PipeArgs),
    /// Benchmarks measured against a baseline from the same run (start with mpirun).
    #[command(subcommand)]
    Bench(BenchArgs),
    /// Strong- and weak-scaling tables (and charts) from the records that
    /// `--json` wrote, or a timeline from `--timeline FILE.json` drawn
    /// again; no MPI needed.
    Report {
        /// JSON-lines files of run records, or one timeline (.json).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Also draw the charts (wall time, efficiency, phases) into one
        /// 1200x900 image, or the timeline (one row per rank and thread);
        /// the extension (.png or .svg) picks the format.
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
    /// The map's data path against memcpy of the same bytes, each phase
    /// next to its own limit measured in the same run.
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
        /// What to map: u64 (square: plain data, moved as bytes) or struct
        /// (a serde struct with a String: bincode all the way).
        #[arg(long, value_enum, default_value = "u64")]
        kind: crate::cli::bench::datapath::Kind,
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
    /// Latency and bandwidth between rank 0 and one rank per placement
    /// (another on its own host, the first on each other host), 1 B to
    /// 64 MiB, each fitted to Hockney's T(n) = alpha + n beta and saved by
    /// host pair.
    Pingpong {
        /// Largest message in bytes (powers of two up to it).
        #[arg(long, default_value_t = 64 << 20, value_parser = clap::value_parser!(u64).range(1..=1 << 30))]
        max_bytes: u64,
        /// Timed repetitions per size (after one warm-up); medians are reported.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=100))]
        repeat: u64,
        /// Add the fits to this model file, replacing those of the same
        /// links [default: $HPCMAP_NETWORK, else ~/.cache/hpcmap/network.json].
        #[arg(long, value_name = "FILE")]
        save: Option<PathBuf>,
    },
}

/// `hpcmap run`: a built-in workload, and the options every map takes
/// (before or after the workload's own).
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The workload and its own options.
    #[command(subcommand)]
    pub workload: WorkloadArgs,

    /// Options of every map.
    #[command(flatten)]
    pub map: MapArgs,
}

/// Where the items of `exec` and `pipe` come from (one of them).
#[derive(Clone, Debug, Args)]
pub struct ItemArgs {
    /// Each line of FILE is an item (`-`: standard input, on the root).
    #[arg(long, value_name = "FILE", conflicts_with = "files")]
    pub lines: Option<PathBuf>,

    /// The files matching each GLOB are the items, sorted (quote the
    /// patterns, so that hpcmap expands them, not the shell). As in the
    /// shell, `*` matches no leading dot; a matching name that is not UTF-8
    /// is refused (list such files with --lines).
    #[arg(long, value_name = "GLOB", num_args = 1..)]
    pub files: Vec<String>,

    /// Kill a command (exec) or a worker (pipe) that runs past DURATION on
    /// one item, with everything it started; the item fails. E.g. 600, 90s,
    /// 10m, 2h.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<std::time::Duration>,

    /// Log every item in GNU parallel's --joblog format (Seq, Host,
    /// Starttime, JobRuntime, Send, Receive, Exitval, Signal, Command).
    #[arg(long, value_name = "FILE")]
    pub joblog: Option<PathBuf>,
}

/// `hpcmap exec`: a command per item.
#[derive(Debug, Args)]
#[command(after_help = EXEC_HELP)]
pub struct ExecArgs {
    /// Where the items come from.
    #[command(flatten)]
    pub items: ItemArgs,

    /// Run each command with `sh -c`, every replaced value quoted for the
    /// shell; without a command, each item is a shell command.
    #[arg(long)]
    pub shell: bool,

    /// Options of every map.
    #[command(flatten)]
    pub map: MapArgs,

    /// The command after `--`, with replacement strings {} {.} {/} {//}
    /// {/.} {#} {%}; `::: A B ...` at its end gives the items inline.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<std::ffi::OsString>,
}

/// `hpcmap pipe`: warm worker processes, one line in, one line out.
#[derive(Debug, Args)]
#[command(after_help = PIPE_HELP)]
pub struct PipeArgs {
    /// Where the items come from.
    #[command(flatten)]
    pub items: ItemArgs,

    /// Options of every map.
    #[command(flatten)]
    pub map: MapArgs,

    /// The worker program after `--`; `::: A B ...` at its end gives the
    /// items inline.
    #[arg(last = true, required = true, value_name = "PROGRAM")]
    pub command: Vec<std::ffi::OsString>,
}

const EXEC_HELP: &str = "\
Examples:
  mpirun -n 64 hpcmap exec --lines samples.txt -- ./align --ref hg38.fa {}
  mpirun -n 8  hpcmap exec --files 'data/*.csv' -- gzip -9 -k {}
  mpirun -n 8  hpcmap exec --lines cmds.txt --shell          # each line is a shell command
  mpirun -n 2  hpcmap exec -- echo {#}: {} ::: a b c
  mpirun -n 8  hpcmap exec --lines s.txt --journal j/ --resume --on-error retry=2 --timeout 600 --joblog jobs.tsv -- ./align {}

Each item's stdout is captured whole and written on the root in input order (like
parallel --keep-order) to standard output or --results; the report goes to stderr.
stderr lines are forwarded as they come, tagged [N]. A command that exits non-zero,
is killed by a signal or runs past --timeout is a failed item (--on-error).
Messages, the report and the joblog name an item by its {#}, from 1 (with --lines:
its line number, also under --part).
Default: --schedule dynamic --chunk T for --threads T (one command per thread per hand-out).";

const PIPE_HELP: &str = "\
Examples:
  mpirun -n 64 hpcmap pipe --lines items.jsonl --results out.jsonl -- python3 -u my_func.py
  mpirun -n 2  hpcmap pipe --threads 2 -- tr a-z A-Z ::: one two three

Each compute thread of each rank starts PROGRAM once (with HPCMAP_RANK, HPCMAP_THREAD
and HPCMAP_SIZE set) and writes it one item per line on stdin; it must answer each
with exactly one line on stdout, in order. A worker that exits, crashes, answers with
more than one line or runs past --timeout fails that item and is started again.
The answers are written on the root in input order, one line per item. Messages
name an item by its number from 1 (with --lines: its line number).
Default: --schedule guided (big chunks first, down to one item per worker at the end).";

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

/// `--timeout`: seconds, or a number with a unit s, m, h or d.
pub(crate) fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let err = || format!("expected a duration such as 600, 90s, 10m or 2h, got '{s}'");
    let (number, unit) = match s
        .trim()
        .char_indices()
        .find(|(_, c)| c.is_ascii_alphabetic())
    {
        Some((at, _)) => (&s.trim()[..at], &s.trim()[at..]),
        None => (s.trim(), "s"),
    };
    let scale = match unit {
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        _ => return Err(err()),
    };
    let v: f64 = number.parse().map_err(|_| err())?;
    if !v.is_finite() || v <= 0.0 || v * scale > 1e9 {
        return Err(err());
    }
    Ok(std::time::Duration::from_secs_f64(v * scale))
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
    /// The options of the map.
    pub settings: Settings,
}

impl RunArgs {
    /// Checks what clap cannot express.
    ///
    /// # Errors
    /// A message for the user; the caller exits with code 2.
    pub fn validate(self) -> Result<RunConfig, String> {
        let mut files: Vec<(&str, &Path)> = Vec::new();
        match &self.workload {
            WorkloadArgs::Wordcount { input, .. } => {
                files.extend(input.iter().map(|p| ("--input", p.as_path())));
            }
            WorkloadArgs::Mandelbrot {
                output: Some(path), ..
            } => {
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
                if self.map.part.is_some() {
                    return Err(
                        "--output cannot be combined with --part: a part is not a whole image"
                            .into(),
                    );
                }
                files.push(("--output", path));
            }
            _ => {}
        }
        let settings = self.map.validate(Schedule::Static, None, &files)?;
        Ok(RunConfig {
            workload: self.workload,
            settings,
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
        assert_eq!(c.settings.threads, 2);
        assert!(c.settings.quiet);
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
    fn durations_take_units() {
        assert_eq!(parse_duration("600").unwrap().as_secs(), 600);
        assert_eq!(parse_duration("1.5m").unwrap().as_secs(), 90);
        assert_eq!(parse_duration("2h").unwrap().as_secs(), 7200);
        for bad in ["", "0", "-3", "5x", "nan", "1e12"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn exec_takes_its_command_after_the_separator() {
        let cli = Cli::try_parse_from([
            "hpcmap",
            "exec",
            "--lines",
            "l.txt",
            "--timeout",
            "10m",
            "--",
            "gzip",
            "-9",
            "{}",
        ])
        .unwrap();
        let Command::Exec(e) = cli.command else {
            panic!("exec")
        };
        assert_eq!(e.command, ["gzip", "-9", "{}"]);
        assert_eq!(e.items.timeout.unwrap().as_secs(), 600);
        assert!(
            Cli::try_parse_from(["hpcmap", "pipe", "--lines", "l"]).is_err(),
            "pipe needs a program"
        );
    }
}
