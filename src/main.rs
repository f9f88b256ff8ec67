//! The `hpcmap` command: parse, validate, start MPI, run, exit with a documented code.

mod bench;
mod cli;
mod files;
mod job;
mod logging;

use std::process::ExitCode;

use clap::Parser;

use hpcmap::error::{
    EXIT_INTERRUPTED, EXIT_OK, EXIT_RANK_FAILED, EXIT_RUNTIME, EXIT_SKIPPED, EXIT_USAGE,
};
use hpcmap::report::model::Hockney;
use hpcmap::{MapError, MapOptions, Pool};

use cli::{BenchArgs, Cli, Command};

fn main() -> ExitCode {
    release_big_buffers();
    // clap exits with code 2 on a usage error, on every rank, before MPI starts.
    let args = match Cli::parse().command {
        Command::Run(args) => args,
        Command::Bench(bench) => return run_bench(&bench),
        Command::Report {
            files,
            plot,
            markdown,
        } => {
            // Reading records needs no MPI: no Pool, no mpirun.
            return match hpcmap::report::scaling::run(&files, plot.as_deref(), markdown) {
                Ok(()) => ExitCode::from(EXIT_OK),
                Err(e) => {
                    eprintln!("hpcmap: error: {e:#}");
                    ExitCode::from(EXIT_RUNTIME)
                }
            };
        }
    };
    let config = match args.validate() {
        Ok(c) => c,
        Err(message) => {
            eprintln!("error: {message}\n\nFor more information, try '--help'.");
            return ExitCode::from(EXIT_USAGE);
        }
    };

    let pool = match Pool::init().and_then(|p| p.with_threads(config.threads)) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("hpcmap: error: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    logging::init(pool.rank());
    warn_if_threads_share_cores(config.threads);
    // Dynamic and guided runs wind down on a walltime signal: on every rank
    // it must not kill a worker mid-message; the root decides. A static run
    // cannot stop half-way through its collectives, so it keeps the default
    // (the signal ends it at once).
    if config.map.schedule != hpcmap::Schedule::Static
        && let Err(e) = hpcmap::interrupt::install()
    {
        eprintln!("hpcmap: warning: cannot handle SIGTERM/SIGUSR1: {e}");
    }

    match job::run(&pool, &config) {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(e) => {
            if let Some(job::Skipped(_)) = e.downcast_ref() {
                eprintln!("hpcmap: {e}");
                return ExitCode::from(EXIT_SKIPPED);
            }
            match e.downcast_ref::<MapError>() {
                // Ranks other than the root only learn that the root failed; it says why.
                Some(MapError::RootFailed) => ExitCode::from(EXIT_RUNTIME),
                Some(MapError::Interrupted {
                    signal,
                    done,
                    total,
                }) => {
                    let how = match &config.journal {
                        Some(dir) => format!(
                            "journaled in {}; run the same command with --resume to finish",
                            dir.display()
                        ),
                        None => {
                            "nothing was saved: use --journal DIR to make runs resumable".into()
                        }
                    };
                    eprintln!(
                        "hpcmap: interrupted by {signal}: {done} of {total} items done, {how}"
                    );
                    ExitCode::from(EXIT_INTERRUPTED)
                }
                Some(failed @ MapError::ItemFailed { .. }) => {
                    eprintln!("hpcmap: {failed}; the run was ended (--on-error abort)");
                    ExitCode::from(EXIT_RANK_FAILED as u8)
                }
                _ => {
                    eprintln!("hpcmap: error (rank {}): {e:#}", pool.rank());
                    ExitCode::from(EXIT_RUNTIME)
                }
            }
        }
    }
}

fn run_bench(bench: &BenchArgs) -> ExitCode {
    let pool = match Pool::init() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("hpcmap: error: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    logging::init(pool.rank());
    match *bench {
        BenchArgs::Datapath {
            items,
            repeat,
            schedule,
            chunk,
        } => {
            let options = MapOptions {
                schedule,
                chunk: chunk.map(|c| c as usize),
                ..MapOptions::default()
            };
            bench::datapath::run(&pool, items, repeat as usize, &options);
        }
        BenchArgs::Overhead { tasks, repeat } => {
            bench::overhead::run(&pool, tasks, repeat as usize);
        }
        BenchArgs::Schedules {
            repeat,
            threads,
            ref workload,
        } => {
            let pool = match pool.with_threads(usize::from(threads)) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("hpcmap: error: {e}");
                    return ExitCode::from(EXIT_RUNTIME);
                }
            };
            let visitor = bench::schedules::Schedules {
                pool: &pool,
                repeat: repeat as usize,
            };
            if let Err(e) = job::dispatch(workload, visitor) {
                eprintln!("hpcmap: error (rank {}): {e:#}", pool.rank());
                return ExitCode::from(EXIT_RUNTIME);
            }
        }
        BenchArgs::Pingpong {
            max_bytes,
            repeat,
            ref save,
        } => {
            let save = save.clone().or_else(Hockney::default_path);
            let saved =
                bench::pingpong::run(&pool, max_bytes as usize, repeat as usize, save.as_deref());
            if let Err(e) = saved {
                if pool.is_root() {
                    eprintln!("hpcmap: error: {e:#}");
                }
                return ExitCode::from(EXIT_RUNTIME);
            }
        }
    }
    ExitCode::from(EXIT_OK)
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

/// Makes freed buffers of 1 MiB and more go straight back to the OS.
///
/// glibc raises its mmap threshold to the size of the largest block freed
/// (up to 32 MiB), after which chunk-sized buffers come from the heap and
/// fragment it: a long dynamic run's root then grows to hundreds of MB
/// although it never holds more than a few chunks. A fixed threshold keeps
/// the root's memory bounded by what it actually holds.
#[allow(unsafe_code)]
fn release_big_buffers() {
    // SAFETY: mallopt only changes allocator tuning; called before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}
