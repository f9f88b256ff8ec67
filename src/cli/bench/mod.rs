//! `hpcmap bench`: measurements that put hpcmap's costs next to a baseline
//! measured in the same run on the same machine (shared machines are noisy:
//! only medians and same-run ratios mean anything).

pub mod datapath;
pub mod overhead;
pub mod pingpong;
pub mod schedules;

use crate::cli::args::BenchArgs;
use crate::cli::netmodel::Models;
use crate::{MapOptions, Pool};

/// Runs one benchmark; `start(threads)` brings MPI up.
///
/// # Errors
/// When MPI cannot start, the workload cannot be built, or the model
/// cannot be saved.
pub fn run(bench: &BenchArgs, start: fn(usize) -> anyhow::Result<Pool>) -> anyhow::Result<()> {
    match *bench {
        BenchArgs::Datapath {
            items,
            repeat,
            schedule,
            chunk,
            kind,
        } => {
            let options = MapOptions {
                schedule,
                chunk: chunk.map(|c| c as usize),
                ..MapOptions::default()
            };
            datapath::run(&start(1)?, items, repeat as usize, &options, kind);
        }
        BenchArgs::Overhead { tasks, repeat } => {
            overhead::run(&start(1)?, tasks, repeat as usize);
        }
        BenchArgs::Schedules {
            repeat,
            threads,
            ref workload,
        } => {
            let pool = start(usize::from(threads))?;
            let visitor = schedules::Schedules {
                pool: &pool,
                repeat: repeat as usize,
            };
            crate::cli::workloads::dispatch(workload, visitor)?;
        }
        BenchArgs::Pingpong {
            max_bytes,
            repeat,
            ref save,
        } => {
            let pool = start(1)?;
            let save = save.clone().or_else(Models::default_path);
            pingpong::run(&pool, max_bytes as usize, repeat as usize, save.as_deref())?;
        }
    }
    Ok(())
}
