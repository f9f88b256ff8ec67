//! The `hpcmap` command: parse, validate, start MPI, run, exit with a documented code.

mod cli;
mod files;
mod job;
mod logging;

use std::process::ExitCode;

use clap::Parser;

use hpcmap::error::{EXIT_OK, EXIT_RUNTIME, EXIT_USAGE};
use hpcmap::{MapError, Pool};

use cli::{Cli, Command};

fn main() -> ExitCode {
    // clap exits with code 2 on a usage error, on every rank, before MPI starts.
    let Command::Run(args) = Cli::parse().command;
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

    match job::run(&pool, &config) {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(e) => {
            // Ranks other than the root only learn that the root failed; it says why.
            if !matches!(e.downcast_ref::<MapError>(), Some(MapError::RootFailed)) {
                eprintln!("hpcmap: error (rank {}): {e:#}", pool.rank());
            }
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}
