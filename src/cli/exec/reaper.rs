//! No child outlives its rank: every command's (and worker's) process
//! group is registered with a small guard process, started once per rank
//! (`hpcmap __reaper`, in a process group of its own). When the rank dies,
//! even by SIGKILL, the guard's stdin closes, and it kills every group
//! still registered. Children themselves are started with `posix_spawn`,
//! which costs a fraction of a `fork` of a big MPI process.

use std::io::{BufRead, Write};
use std::os::unix::process::CommandExt;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// The argument that makes `hpcmap` the guard.
pub const ARG: &str = "__reaper";

/// The guard's stdin, once started (`None`: it could not be started).
static GUARD: OnceLock<Option<Mutex<ChildStdin>>> = OnceLock::new();

fn guard() -> Option<&'static Mutex<ChildStdin>> {
    GUARD
        .get_or_init(|| {
            let exe = std::env::current_exe().ok()?;
            let mut child = Command::new(exe)
                .arg(ARG)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .process_group(0)
                .spawn()
                .map_err(|e| tracing::warn!("cannot start the child guard: {e}"))
                .ok()?;
            child.stdin.take().map(Mutex::new)
        })
        .as_ref()
}

/// A process group registered with the guard; unregistered on drop.
pub struct Registered(u32);

impl Registered {
    /// Registers process group `pgid` (a child's pid, leading its group).
    pub fn new(pgid: u32) -> Registered {
        tell(&format!("+{pgid}\n"));
        Registered(pgid)
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        tell(&format!("-{}\n", self.0));
    }
}

fn tell(line: &str) {
    if let Some(stdin) = guard()
        && let Ok(mut stdin) = stdin.lock()
    {
        let _ = stdin.write_all(line.as_bytes());
        let _ = stdin.flush();
    }
}

/// The guard's life: keep the registered groups; at end of input (the
/// rank is gone) kill them all. Signals meant for the job (walltime,
/// Ctrl-C) do not end it: it must outlive the rank to clean up after it.
pub fn serve() -> std::process::ExitCode {
    let ignored = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for signal in [
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGHUP,
        libc::SIGUSR1,
        libc::SIGUSR2,
    ] {
        let _ = signal_hook::flag::register(signal, std::sync::Arc::clone(&ignored));
    }
    let mut groups = std::collections::BTreeSet::new();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        match (
            line.get(..1),
            line.get(1..).and_then(|n| n.parse::<i32>().ok()),
        ) {
            (Some("+"), Some(pgid)) => {
                groups.insert(pgid);
            }
            (Some("-"), Some(pgid)) => {
                groups.remove(&pgid);
            }
            _ => {}
        }
    }
    for pgid in groups {
        // SAFETY: kill only sends a signal, to a group this guard was told of.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
    std::process::ExitCode::SUCCESS
}
