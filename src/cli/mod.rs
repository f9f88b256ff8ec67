//! The `hpcmap` command (feature `cli`): parse and validate the arguments,
//! start MPI, run the subcommand, and end with one documented exit code.
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | success: every item mapped |
//! | 1 | runtime error: unreadable input, unwritable output, unusable journal |
//! | 2 | usage error: invalid arguments (rank 0 says why, before MPI starts) |
//! | 3 | an item failed under `--on-error abort` (the run ended cleanly), or a rank failed outside an item (`MPI_Abort`) |
//! | 4 | completed, but failed items were skipped (`--on-error skip`) |
//! | 75 | interrupted (walltime signal or `--deadline`): incomplete, resumable with `--journal DIR --resume` |
//!
//! [`exit_code`] is the one place that maps an error to its code.

pub mod args;
pub mod bench;
pub mod deadline;
pub mod exec;
pub mod follow;
pub mod job;
pub mod logging;
pub mod netmodel;
pub mod outputs;
pub mod plot;
pub mod record;
pub mod render;
pub mod report;
pub mod scaling;
pub mod settings;
pub mod timeline;
pub mod workloads;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

use crate::failure::EXIT_ABORTED;
use crate::{MapError, Pool};
use args::{Cli, Command};

/// Success.
pub const EXIT_OK: u8 = 0;
/// A runtime error such as an unreadable input file.
pub const EXIT_RUNTIME: u8 = 1;
/// Invalid command-line arguments.
pub const EXIT_USAGE: u8 = 2;
/// An item failed under `--on-error abort`, or a rank failed (`MPI_Abort`).
pub const EXIT_FAILED: u8 = EXIT_ABORTED as u8;
/// The run completed but skipped failed items.
pub const EXIT_SKIPPED: u8 = 4;
/// Interrupted; resumable from its journal (75 is `EX_TEMPFAIL`: try again later).
pub const EXIT_INTERRUPTED: u8 = 75;

/// The exit codes as `--help` shows them: the table above, in one line each.
pub const EXIT_CODES: &str = "\
Exit codes:
  0   success: every item mapped
  1   runtime error (unreadable input, unwritable output, unusable journal)
  2   usage error (invalid arguments)
  3   an item failed (--on-error abort; the report names item, rank and host),
      or a rank failed outside an item and the job was aborted
  4   completed, but failed items were skipped (--on-error skip)
  75  interrupted (SIGTERM/SIGUSR1/Ctrl-C or --deadline): resumable with --journal DIR --resume
  130 a second Ctrl-C: ended at once (what was journaled still resumes)";

/// Why a command ended without success, where it is not a [`MapError`] or
/// a plain runtime error.
#[derive(Debug, thiserror::Error)]
pub enum Exit {
    /// Invalid arguments, found after parsing (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The run completed without some failed items (exit 4).
    #[error("{0} items failed and were skipped; the answer covers the others")]
    Skipped(usize),
    /// Interrupted, with what to do next (exit 75).
    #[error("{0}")]
    Interrupted(String),
    /// An item failed and ended the run: which, where, why, and the policy
    /// that ended it (exit 3).
    #[error("{0}")]
    Failed(String),
    /// The run ended with this exit code and why was said: by this rank,
    /// or by the root when it could not start the run (every rank ends
    /// with the root's code, whichever the launcher sees exit first).
    #[error("the run ended with exit code {0}")]
    Said(u8),
}

/// The exit code of a command that failed with `e`, and whether this rank
/// says why (the root reports a failure the others only learn of).
pub fn exit_code(e: &anyhow::Error) -> (u8, bool) {
    if let Some(exit) = e.downcast_ref::<Exit>() {
        return match exit {
            Exit::Usage(_) => (EXIT_USAGE, true),
            Exit::Skipped(_) => (EXIT_SKIPPED, true),
            Exit::Interrupted(_) => (EXIT_INTERRUPTED, true),
            Exit::Failed(_) => (EXIT_FAILED, true),
            Exit::Said(code) => (*code, false),
        };
    }
    match e.downcast_ref::<MapError>() {
        Some(MapError::RootFailed) => (EXIT_RUNTIME, false),
        Some(MapError::Interrupted { .. }) => (EXIT_INTERRUPTED, true),
        Some(MapError::ItemFailed { .. }) => (EXIT_FAILED, true),
        _ => (EXIT_RUNTIME, true),
    }
}

/// This process's rank as the MPI launcher announced it, known before MPI
/// starts (Open MPI, PMIx, MPICH/PMI, Slurm's srun).
pub fn launcher_rank() -> Option<usize> {
    [
        "OMPI_COMM_WORLD_RANK",
        "PMIX_RANK",
        "PMI_RANK",
        "SLURM_PROCID",
    ]
    .iter()
    .find_map(|v| std::env::var(v).ok()?.parse().ok())
}

/// The version: this build's commit and the MPI library it runs on.
fn long_version() -> String {
    let mpi = mpi::environment::library_version()
        .ok()
        .and_then(|v| v.lines().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into());
    format!(
        "{} (commit {})\nMPI library: {mpi}",
        env!("CARGO_PKG_VERSION"),
        env!("HPCMAP_COMMIT")
    )
}

/// The command's entry point (`src/main.rs`).
pub fn main() -> ExitCode {
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == exec::reaper::ARG)
    {
        return exec::reaper::serve();
    }
    release_big_buffers();
    // First, before anything can take time: a walltime signal that arrives
    // before the handlers would kill the process.
    if let Err(e) = crate::interrupt::install() {
        eprintln!("hpcmap: warning: cannot handle SIGTERM/SIGUSR1: {e}");
    }
    let rank = launcher_rank();
    let quiet_rank = rank.is_some_and(|r| r != 0);
    // Usage errors (and --help) are printed once, by rank 0, before MPI starts.
    let help = format!("{}\n\n{EXIT_CODES}", args::EXAMPLES);
    let command = Cli::command()
        .long_version(long_version())
        .after_help(help.clone())
        .mut_subcommand("run", |c| c.after_help(help));
    let cli = match command
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m))
    {
        Ok(cli) => cli,
        Err(e) => {
            if !quiet_rank {
                let _ = e.print();
            }
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(e) => ExitCode::from(say(&e, rank.unwrap_or(0))),
    }
}

/// Says on stderr why a command failed, as rank `rank` should (a usage
/// error once, by rank 0; nothing for an error said already), and returns
/// its exit code.
pub fn say(e: &anyhow::Error, rank: usize) -> u8 {
    let (code, speak) = exit_code(e);
    if !speak {
        return code;
    }
    if code == EXIT_USAGE {
        if rank == 0 {
            eprintln!("error: {e:#}\n\nFor more information, try '--help'.");
        }
    } else if code == EXIT_RUNTIME {
        eprintln!("hpcmap: error (rank {rank}): {e:#}");
    } else {
        eprintln!("hpcmap: {e:#}");
    }
    code
}

/// A mapping command's end, said while its pool is alive: MPI_Finalize
/// waits for every rank, so a rank that would exit non-zero first cannot
/// get the others killed before the root has said why.
fn said(result: anyhow::Result<()>, pool: &Pool) -> anyhow::Result<()> {
    result.map_err(|e| Exit::Said(say(&e, pool.rank())).into())
}

/// Runs the parsed command.
fn run(cli: Cli) -> anyhow::Result<()> {
    if matches!(
        cli.command,
        Command::Run(_) | Command::Exec(_) | Command::Pipe(_)
    ) && let Err(e) = crate::interrupt::install_ctrl_c()
    {
        eprintln!("hpcmap: warning: cannot handle Ctrl-C (SIGINT): {e}");
    }
    match cli.command {
        Command::Run(args) => {
            let config = args.validate().map_err(Exit::Usage)?;
            let pool = start(config.settings.threads)?;
            let result = workloads::dispatch(
                &config.workload,
                RunBuiltin {
                    pool: &pool,
                    config: &config,
                },
            );
            said(result, &pool)
        }
        Command::Exec(args) => {
            let (settings, job) = exec::UserJob::exec(args).map_err(Exit::Usage)?;
            let pool = start(settings.threads)?;
            said(job::run(&pool, &settings, &job), &pool)
        }
        Command::Pipe(args) => {
            let (settings, job) = exec::UserJob::pipe(args).map_err(Exit::Usage)?;
            let pool = start(settings.threads)?;
            said(job::run(&pool, &settings, &job), &pool)
        }
        Command::Bench(bench) => bench::run(&bench, start),
        // Reading records needs no MPI: no Pool, no mpirun.
        Command::Report {
            files,
            plot,
            markdown,
        } => report::run(&files, plot.as_deref(), markdown),
    }
}

/// `hpcmap run`: the chosen workload through [`job::run`].
struct RunBuiltin<'a> {
    pool: &'a Pool,
    config: &'a args::RunConfig,
}

impl workloads::WithWorkload for RunBuiltin<'_> {
    type Output = anyhow::Result<()>;
    fn with<W: workloads::Workload>(self, w: &W) -> anyhow::Result<()> {
        let job = workloads::Builtin {
            workload: w,
            args: &self.config.workload,
        };
        job::run(self.pool, &self.config.settings, &job)
    }
}

/// Starts MPI with `threads` compute threads per rank, and logging.
fn start(threads: usize) -> anyhow::Result<Pool> {
    let pool = Pool::init()?.with_threads(threads)?;
    logging::init(pool.rank());
    warn_if_threads_share_cores(threads);
    Ok(pool)
}

/// mpirun binds each rank to one core by default, so `--threads 2` would put
/// both threads on that core and gain nothing: say so instead of letting the
/// timings mislead.
fn warn_if_threads_share_cores(threads: usize) {
    let cores = std::thread::available_parallelism().map_or(threads, |n| n.get());
    if threads > cores {
        tracing::warn!(
            "--threads {threads} but this rank may run on {cores} core(s) only (CPU affinity): \
             threads will share cores; start mpirun with --bind-to none, or --map-by slot:PE={threads}"
        );
    }
}

/// The median of `samples` (sorted in place); 0 when empty.
pub fn median(samples: &mut [f64]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.sort_by(f64::total_cmp);
    let mid = samples.len() / 2;
    if samples.len() % 2 == 1 {
        samples[mid]
    } else {
        0.5 * (samples[mid - 1] + samples[mid])
    }
}

/// Buffers of this size and more are mapped fresh from the OS and given
/// back when freed (see `release_big_buffers`); the network model charges
/// messages received into them at the speed of first touch.
pub const FRESH_BUFFER_BYTES: usize = 1 << 20;

/// Makes freed buffers of [`FRESH_BUFFER_BYTES`] and more go straight back to the OS.
///
/// glibc raises its mmap threshold to the size of the largest block freed
/// (up to 32 MiB), after which chunk-sized buffers come from the heap and
/// fragment it: a long dynamic run's root then grows to hundreds of MB
/// although it never holds more than a few chunks. A fixed threshold keeps
/// the root's memory bounded by what it actually holds. (glibc only; other
/// allocators have no such sliding threshold.)
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn release_big_buffers() {
    // SAFETY: mallopt only changes allocator tuning; called before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, FRESH_BUFFER_BYTES as i32);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_big_buffers() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&mut []), 0.0);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn every_error_has_one_exit_code() {
        let code = |e: anyhow::Error| exit_code(&e).0;
        assert_eq!(code(Exit::Usage("x".into()).into()), 2);
        assert_eq!(code(Exit::Skipped(3).into()), 4);
        assert_eq!(code(Exit::Interrupted("x".into()).into()), 75);
        assert_eq!(code(Exit::Failed("x".into()).into()), 3);
        assert_eq!(exit_code(&Exit::Said(2).into()), (2, false));
        assert_eq!(code(MapError::RootFailed.into()), 1);
        assert!(
            !exit_code(&MapError::RootFailed.into()).1,
            "other ranks stay quiet"
        );
        assert_eq!(code(anyhow::anyhow!("disk full")), 1);
        let interrupted = MapError::Interrupted {
            signal: "SIGUSR1".into(),
            done: 1,
            total: 2,
        };
        assert_eq!(code(interrupted.into()), 75);
    }
}
