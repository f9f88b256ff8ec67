//! Walltime warnings: SIGTERM and SIGUSR1 (what PBS and Slurm send before
//! the kill) only set a flag here. The dynamic schedule's root polls it
//! between batches, stops handing out work, collects what is in flight
//! (journaling it), and the map ends with [`crate::MapError::Interrupted`].
//! Workers ignore the signal and wait for the root's stop, so the job winds
//! down in order instead of dying mid-message.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use signal_hook::consts::{SIGTERM, SIGUSR1};

/// One flag per signal, set by the handlers.
static FLAGS: OnceLock<[(Arc<AtomicBool>, &'static str); 2]> = OnceLock::new();

/// Installs the handlers (once per process).
///
/// # Errors
/// When a handler cannot be registered.
pub fn install() -> std::io::Result<()> {
    if FLAGS.get().is_some() {
        return Ok(());
    }
    let flags = [
        (Arc::new(AtomicBool::new(false)), "SIGTERM"),
        (Arc::new(AtomicBool::new(false)), "SIGUSR1"),
    ];
    signal_hook::flag::register(SIGTERM, Arc::clone(&flags[0].0))?;
    signal_hook::flag::register(SIGUSR1, Arc::clone(&flags[1].0))?;
    let _ = FLAGS.set(flags);
    Ok(())
}

/// The signal that asked the run to stop, if one did.
pub fn requested() -> Option<&'static str> {
    FLAGS
        .get()?
        .iter()
        .find(|(flag, _)| flag.load(Ordering::Relaxed))
        .map(|(_, name)| *name)
}
