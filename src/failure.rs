//! Turning a failure on one rank into a prompt end of the whole job.
//!
//! rsmpi has no error returns and a panicking rank would leave its peers
//! blocked in a collective forever. The panic hook installed here prints
//! which rank (and which item, if one was being mapped) failed, then calls
//! `MPI_Abort`, which makes `mpirun` kill every rank and exit non-zero.

use std::cell::Cell;
use std::panic::PanicHookInfo;
use std::sync::OnceLock;

use mpi::topology::{Communicator, SimpleCommunicator};

use crate::error::EXIT_RANK_FAILED;

/// Marks "no item is being mapped on this thread".
const NO_ITEM: u64 = u64::MAX;

thread_local! {
    static CURRENT_ITEM: Cell<u64> = const { Cell::new(NO_ITEM) };
}

/// `(rank, hostname)` of this process, known once MPI is up.
static WHO: OnceLock<(i32, String)> = OnceLock::new();

/// Records that this thread is now mapping item `index` (global input index).
#[inline]
pub fn set_current_item(index: usize) {
    CURRENT_ITEM.with(|c| c.set(index as u64));
}

/// Records that this thread is no longer mapping an item.
#[inline]
pub fn clear_current_item() {
    CURRENT_ITEM.with(|c| c.set(NO_ITEM));
}

/// Installs the abort-on-panic hook for this process, which is `rank` on `host`.
pub fn install_panic_hook(rank: i32, host: String) {
    if WHO.set((rank, host)).is_err() {
        return; // already installed
    }
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        eprintln!("{}", describe(info));
        if std::env::var_os("RUST_BACKTRACE").is_some() {
            default(info);
        }
        SimpleCommunicator::world().abort(EXIT_RANK_FAILED);
    }));
}

/// Ends the job from any rank after an unrecoverable error that is not a panic.
pub fn fatal(message: &str) -> ! {
    let (rank, host) = WHO.get().cloned().unwrap_or((-1, "?".into()));
    eprintln!("hpcmap: rank {rank} ({host}) failed: {message}; aborting the job");
    SimpleCommunicator::world().abort(EXIT_RANK_FAILED)
}

fn describe(info: &PanicHookInfo<'_>) -> String {
    let (rank, host) = WHO.get().cloned().unwrap_or((-1, "?".into()));
    let payload = info.payload();
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(non-string panic payload)".into());
    let place = info
        .location()
        .map(|l| format!(" at {}:{}", l.file(), l.line()))
        .unwrap_or_default();
    let item = CURRENT_ITEM.with(|c| c.get());
    let what = if item == NO_ITEM {
        String::new()
    } else {
        format!(" while mapping item {item}")
    };
    format!("hpcmap: rank {rank} ({host}) panicked{what}: {message}{place}; aborting the job")
}
