//! Failures on a rank: items that panic are caught and reported; anything
//! else ends the whole job promptly.
//!
//! A panic inside the user's function while an item is mapped is caught
//! (`catch_item`): the hook only records its message, and the rank reports
//! the item to the root, which applies the failure policy. Any other panic
//! would leave the peers blocked in a collective forever (rsmpi has no error
//! returns), so the hook prints which rank failed and calls `MPI_Abort`,
//! which makes `mpirun` kill every rank and exit non-zero.

use std::cell::{Cell, RefCell};
use std::panic::AssertUnwindSafe;
use std::panic::PanicHookInfo;
use std::sync::OnceLock;

use mpi::topology::{Communicator, SimpleCommunicator};

use crate::error::EXIT_RANK_FAILED;

/// Marks "no item is being mapped on this thread".
const NO_ITEM: u64 = u64::MAX;

thread_local! {
    static CURRENT_ITEM: Cell<u64> = const { Cell::new(NO_ITEM) };
    /// Set while an item runs under `catch_item`: panics are caught, not fatal.
    static CATCHING: Cell<bool> = const { Cell::new(false) };
    /// The message of the last caught panic on this thread.
    static CAUGHT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Runs `f(item)` for item `index`, catching a panic: `Err(message)` then
/// (with the panic's location). The rank survives to report the item.
pub fn catch_item<T, U>(
    index: usize,
    item: T,
    f: &(impl Fn(T) -> U + ?Sized),
) -> Result<U, String> {
    set_current_item(index);
    catch(|| f(item))
}

/// Runs `run`, catching a panic in it: `Err(message)` then (with the panic's
/// location). One catch can cover a whole batch of items; the caller knows
/// which item was running.
pub fn catch<R>(run: impl FnOnce() -> R) -> Result<R, String> {
    CATCHING.with(|c| c.set(true));
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(run));
    CATCHING.with(|c| c.set(false));
    outcome.map_err(|payload| {
        CAUGHT
            .with(|c| c.borrow_mut().take())
            .unwrap_or_else(|| payload_text(payload.as_ref()))
    })
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
        if CATCHING.with(|c| c.get()) {
            let place = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let text = format!("{}{place}", payload_text(info.payload()));
            CAUGHT.with(|c| *c.borrow_mut() = Some(text));
            return;
        }
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
    let message = payload_text(info.payload());
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

/// The text of a panic payload (`&str` or `String`, as `panic!` makes them).
fn payload_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(non-string panic payload)".into())
}
