//! Walltime warnings: SIGTERM and SIGUSR1 (what schedulers send before the
//! kill) only set a flag here, once [`install`] has run; so does Ctrl-C
//! (SIGINT) once [`install_ctrl_c`] has, and a second one ends the process
//! at once (exit 130), as people expect of a second Ctrl-C.
//!
//! Every rank's compute threads check the flag every 64 items and abandon
//! the chunk in hand (it is computed again on resume); a worker tells the
//! root which signal stopped it. The root, signalled itself or told by a
//! worker, hands out nothing more, collects (and journals) the chunks in
//! flight, and the map ends with [`crate::MapError::Interrupted`]. So a job
//! winds down in order within about one item's time, whichever of its
//! ranks the signal reached, instead of dying mid-message.
//!
//! Install the handlers first thing in `main`, before MPI starts: a signal
//! that arrives before them kills the process.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};

/// The first signal received (0: none).
static RECEIVED: AtomicU64 = AtomicU64::new(0);
/// Set by [`stop`]: the running map winds down as if signalled.
static STOP: AtomicBool = AtomicBool::new(false);

/// What [`requested`] reports for a [`stop`] (no signal has this number).
pub const STOP_REQUEST: u64 = 1 << 16;
/// What [`requested`] reports once the map's deadline has passed.
pub const DEADLINE: u64 = (1 << 16) + 1;

/// The running map's deadline, if it has one.
static DEADLINE_AT: std::sync::Mutex<Option<std::time::Instant>> = std::sync::Mutex::new(None);
/// Whether [`DEADLINE_AT`] is set (checked without the lock).
static HAS_DEADLINE: AtomicBool = AtomicBool::new(false);

/// Sets (or clears) the running map's deadline: past it, work still in
/// hand is abandoned as for a walltime signal. Called as each map starts.
pub(crate) fn set_deadline(at: Option<std::time::Instant>) {
    *DEADLINE_AT.lock().expect("deadline lock") = at;
    HAS_DEADLINE.store(at.is_some(), Ordering::Relaxed);
}

fn deadline_passed() -> bool {
    HAS_DEADLINE.load(Ordering::Relaxed)
        && DEADLINE_AT
            .lock()
            .ok()
            .and_then(|d| *d)
            .is_some_and(|d| std::time::Instant::now() >= d)
}
/// One flag per handled signal, set by the handlers.
static FLAGS: [OnceLock<Arc<AtomicBool>>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
const HANDLED: [i32; 3] = [SIGTERM, SIGUSR1, SIGINT];

/// Installs the handlers of the walltime signals, SIGTERM and SIGUSR1
/// (once per process; later calls do nothing).
///
/// # Errors
/// When a handler cannot be registered.
pub fn install() -> std::io::Result<()> {
    for (slot, signal) in FLAGS.iter().zip(HANDLED).take(2) {
        if slot.get().is_none() {
            let flag = Arc::new(AtomicBool::new(false));
            signal_hook::flag::register(signal, Arc::clone(&flag))?;
            let _ = slot.set(flag);
        }
    }
    Ok(())
}

/// Also handles Ctrl-C (SIGINT): the first winds the map down as a
/// walltime signal does, a second ends the process at once (exit 130).
/// For commands that map, once they are about to: elsewhere (a report, a
/// benchmark) Ctrl-C keeps its default and ends the process.
///
/// # Errors
/// When a handler cannot be registered.
pub fn install_ctrl_c() -> std::io::Result<()> {
    let slot = &FLAGS[2];
    if slot.get().is_none() {
        let flag = Arc::new(AtomicBool::new(false));
        // Registered first, so it sees the flag before this SIGINT sets it.
        signal_hook::flag::register_conditional_shutdown(SIGINT, 130, Arc::clone(&flag))?;
        signal_hook::flag::register(SIGINT, Arc::clone(&flag))?;
        let _ = slot.set(flag);
    }
    Ok(())
}

/// Asks the map running in this process to wind down as if a walltime
/// signal had come (on the root: no more hand-outs, the chunks in flight
/// are collected and journaled, the map ends with
/// [`crate::MapError::Interrupted`]). For a sink that cannot go on (a full
/// disk) or has seen enough. Unlike a signal it lasts for one map only.
pub fn stop() {
    STOP.store(true, Ordering::Relaxed);
}

/// Forgets a [`stop`] request: called as each map starts.
pub(crate) fn clear_stop() {
    STOP.store(false, Ordering::Relaxed);
}

/// The signal that asked the run to stop (its number), or [`STOP_REQUEST`],
/// if either did.
#[inline]
pub fn requested() -> Option<u64> {
    let seen = RECEIVED.load(Ordering::Relaxed);
    if seen != 0 {
        return Some(seen);
    }
    if STOP.load(Ordering::Relaxed) {
        return Some(STOP_REQUEST);
    }
    if deadline_passed() {
        return Some(DEADLINE);
    }
    for (slot, signal) in FLAGS.iter().zip(HANDLED) {
        if slot.get().is_some_and(|flag| flag.load(Ordering::Relaxed)) {
            let _ =
                RECEIVED.compare_exchange(0, signal as u64, Ordering::Relaxed, Ordering::Relaxed);
            return Some(RECEIVED.load(Ordering::Relaxed));
        }
    }
    None
}

/// A signal's name, e.g. `SIGUSR1`.
pub fn name(signal: u64) -> String {
    match signal as i32 {
        SIGTERM => "SIGTERM".into(),
        SIGUSR1 => "SIGUSR1".into(),
        SIGINT => "SIGINT".into(),
        libc::SIGKILL => "SIGKILL".into(),
        libc::SIGSEGV => "SIGSEGV".into(),
        libc::SIGABRT => "SIGABRT".into(),
        libc::SIGHUP => "SIGHUP".into(),
        libc::SIGPIPE => "SIGPIPE".into(),
        libc::SIGBUS => "SIGBUS".into(),
        libc::SIGFPE => "SIGFPE".into(),
        libc::SIGILL => "SIGILL".into(),
        libc::SIGUSR2 => "SIGUSR2".into(),
        libc::SIGALRM => "SIGALRM".into(),
        libc::SIGQUIT => "SIGQUIT".into(),
        _ if signal == STOP_REQUEST => "a stop request".into(),
        _ if signal == DEADLINE => "the deadline".into(),
        n => format!("signal {n}"),
    }
}
