//! Walltime warnings: SIGTERM and SIGUSR1 (what PBS and Slurm send before
//! the kill) only set a flag here. The dynamic schedule's root polls it
//! between batches, stops handing out work, collects what is in flight
//! (journaling it), and the map ends with [`crate::MapError::Interrupted`].
//! Workers abandon the chunk they are computing (it is computed again on
//! resume), send it back marked so, and wait for the root's stop, so the
//! job winds down in order within about one item's time instead of dying
//! mid-message.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use signal_hook::consts::{SIGTERM, SIGUSR1};

/// One flag per signal, set by the handlers.
static FLAGS: OnceLock<[(Arc<AtomicBool>, &'static str); 2]> = OnceLock::new();
/// Set by either handler: the cheap check mapping loops make.
static ANY: OnceLock<Arc<AtomicBool>> = OnceLock::new();

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
    let any = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(SIGTERM, Arc::clone(&flags[0].0))?;
    signal_hook::flag::register(SIGUSR1, Arc::clone(&flags[1].0))?;
    signal_hook::flag::register(SIGTERM, Arc::clone(&any))?;
    signal_hook::flag::register(SIGUSR1, Arc::clone(&any))?;
    let _ = FLAGS.set(flags);
    let _ = ANY.set(any);
    Ok(())
}

/// The signal that asked the run to stop, if one did.
#[inline]
pub fn requested() -> Option<&'static str> {
    if !ANY.get()?.load(Ordering::Relaxed) {
        return None;
    }
    FLAGS
        .get()?
        .iter()
        .find(|(flag, _)| flag.load(Ordering::Relaxed))
        .map(|(_, name)| *name)
}
