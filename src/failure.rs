//! Failures on a rank: items that panic are caught and reported; anything
//! else ends the whole job promptly.
//!
//! A panic inside the user's function while an item is mapped is caught
//! ([`catch`]): the hook only records its message and location, and the
//! rank reports the item to the root, which applies the failure policy. Any
//! other panic would leave the peers blocked in a collective forever (rsmpi
//! has no error returns), so the hook prints which rank failed and calls
//! `MPI_Abort`, which makes `mpirun` kill every rank and exit non-zero.

use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, PanicHookInfo};
use std::sync::OnceLock;

use mpi::topology::{Communicator, SimpleCommunicator};

/// The exit code of a job ended by `MPI_Abort` (a rank failed).
pub const EXIT_ABORTED: i32 = 3;

thread_local! {
    /// Set while a closure runs under `catch`: panics are caught, not fatal.
    static CATCHING: Cell<bool> = const { Cell::new(false) };
    /// The message of the last caught panic on this thread.
    static CAUGHT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// `(rank, hostname)` of this process, known once MPI is up.
static WHO: OnceLock<(usize, String)> = OnceLock::new();

/// Runs `run`, catching a panic in it: `Err(message)` then, with the
/// panic's location. The rank survives to report the item.
pub fn catch<R>(run: impl FnOnce() -> R) -> Result<R, String> {
    let outer = CATCHING.with(|c| c.replace(true));
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(run));
    CATCHING.with(|c| c.set(outer));
    outcome.map_err(|payload| {
        CAUGHT
            .with(|c| c.borrow_mut().take())
            .unwrap_or_else(|| payload_text(payload.as_ref()))
    })
}

/// Installs the abort-on-panic hook for this process, which is `rank` on `host`.
pub fn install_panic_hook(rank: usize, host: String) {
    if WHO.set((rank, host)).is_err() {
        return; // already installed
    }
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if CATCHING.with(|c| c.get()) {
            CAUGHT.with(|c| *c.borrow_mut() = Some(describe(info)));
            return;
        }
        let (rank, host) = who();
        eprintln!(
            "hpcmap: rank {rank} ({host}) panicked: {}; aborting the job",
            describe(info)
        );
        if std::env::var_os("RUST_BACKTRACE").is_some() {
            default(info);
        }
        abort();
    }));
}

/// This process's rank and hostname (`-1`, `?` before MPI is up).
fn who() -> (String, String) {
    WHO.get().map_or(("-1".into(), "?".into()), |(r, h)| {
        (r.to_string(), h.clone())
    })
}

/// Ends the job from any rank after an unrecoverable error that is not a
/// panic (malformed data from another rank, a failed journal write). Outside
/// an MPI job (unit tests) it panics instead.
pub fn fatal(message: &str) -> ! {
    if !mpi::environment::is_initialized() || mpi::environment::is_finalized() {
        panic!("hpcmap: {message}");
    }
    let (rank, host) = who();
    eprintln!("hpcmap: rank {rank} ({host}) failed: {message}; aborting the job");
    abort()
}

fn abort() -> ! {
    SimpleCommunicator::world().abort(EXIT_ABORTED)
}

/// A panic's message and location.
fn describe(info: &PanicHookInfo<'_>) -> String {
    let place = info
        .location()
        .map(|l| format!(" at {}:{}", l.file(), l.line()))
        .unwrap_or_default();
    format!("{}{place}", payload_text(info.payload()))
}

/// The text of a panic payload (`&str` or `String`, as `panic!` makes them).
fn payload_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(non-string panic payload)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catch_returns_the_panic_message() {
        assert_eq!(catch(|| 5), Ok(5));
        let err = catch(|| -> u8 { panic!("boom {}", 7) }).unwrap_err();
        assert!(err.contains("boom 7"), "{err}");
    }
}
