//! Following a run while it runs, on the root: a progress bar for a person
//! at a terminal, plain lines for a batch job's output file, and a status
//! file for scripts and other shells (`--progress`, `--status`).
//!
//! A thread of its own reads the map's [`Progress`] counters (which the map
//! updates per chunk, never per item), so following costs the map nothing
//! but those counters. It stops when the map ends: the bar is cleared
//! before the report prints, and the status file gets its final state.
//!
//! Who is watching is decided deliberately, because under Open MPI a rank's
//! standard error is a pipe to `mpirun` whether or not a person watches:
//! see [`ProgressMode::resolve`].

mod bar;
mod status;

use std::io::{IsTerminal, Write};
use std::str::FromStr;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::thread::{Scope, ScopedJoinHandle};
use std::time::{Duration, Instant};

use crate::progress::{Progress, Snapshot};

pub use bar::above;
pub use status::{State, StatusFile};

/// How the bar is redrawn at most (indicatif redraws at most this often too).
const BAR_TICK: Duration = Duration::from_millis(250);
/// How often the status file is rewritten.
pub const STATUS_EVERY: Duration = Duration::from_secs(2);

/// What `--progress` shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressMode {
    /// A bar redrawn in place on standard error.
    Bar,
    /// A plain line on standard error every `--progress-interval`.
    Lines,
    /// Nothing until the report.
    None,
}

impl FromStr for ProgressMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "bar" => Ok(ProgressMode::Bar),
            "lines" => Ok(ProgressMode::Lines),
            "none" => Ok(ProgressMode::None),
            _ => Err(format!("expected bar, lines or none, got '{s}'")),
        }
    }
}

impl ProgressMode {
    /// The mode to use: `asked` if given; else none with `--quiet`; when
    /// a person sees standard error (it is a terminal, or the rank's
    /// launcher writes to one), a bar, or lines if the items themselves
    /// write to the terminal (`noisy`: other ranks' output would break a
    /// bar that only the root can redraw); lines in a batch job (Slurm or
    /// PBS); else none (a pipe or a file outside a batch job).
    pub fn resolve(asked: Option<ProgressMode>, quiet: bool, noisy: bool) -> ProgressMode {
        match asked {
            Some(mode) => mode,
            None if quiet => ProgressMode::None,
            None if person_watches() && !noisy => ProgressMode::Bar,
            None if person_watches() || in_batch_job() => ProgressMode::Lines,
            None => ProgressMode::None,
        }
    }
}

/// Whether the scheduler runs this as a batch job.
fn in_batch_job() -> bool {
    ["SLURM_JOB_ID", "PBS_JOBID"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
}

/// Launchers whose standard error is what a person sees of a rank's.
const LAUNCHERS: [&str; 5] = ["mpirun", "mpiexec", "prterun", "orterun", "mpiexec.hydra"];
/// Processes between a rank and its launcher.
const INTERMEDIATES: [&str; 3] = ["prted", "orted", "hydra_pmi_proxy"];

/// Whether standard error reaches a terminal: our own, or (a rank whose
/// standard error is a pipe to its launcher) the launcher's.
pub fn person_watches() -> bool {
    std::io::stderr().is_terminal() || launcher_terminal().is_some()
}

/// The terminal the launcher of this rank writes its standard error to.
fn launcher_terminal() -> Option<std::fs::File> {
    let mut pid = std::os::unix::process::parent_id();
    for _ in 0..3 {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        let comm = comm.trim();
        if LAUNCHERS.contains(&comm) {
            let fd2 = std::fs::File::open(format!("/proc/{pid}/fd/2")).ok()?;
            return fd2.is_terminal().then_some(fd2);
        }
        if !INTERMEDIATES.contains(&comm) {
            return None;
        }
        pid = parent_of(pid)?;
    }
    None
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The name in parentheses may hold spaces: fields follow the last ')'.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// What the command follows a map with.
pub struct Follow {
    /// Bar, lines or nothing.
    pub mode: ProgressMode,
    /// Between progress lines.
    pub interval: Duration,
    /// The status file, when asked for.
    pub status: Option<StatusFile>,
    /// Draw the bar into nothing (benchmarks: its cost without a terminal).
    pub hidden: bool,
}

/// The thread following a running map; [`Follower::stop`] ends it.
pub struct Follower<'scope> {
    stop: Sender<()>,
    thread: ScopedJoinHandle<'scope, Option<StatusFile>>,
}

impl<'scope> Follower<'scope> {
    /// Starts following `progress` on a thread of `scope`.
    pub fn start<'env>(
        scope: &'scope Scope<'scope, 'env>,
        follow: Follow,
        progress: &'env Progress,
    ) -> Follower<'scope> {
        let (stop, stopped) = channel();
        let thread = scope.spawn(move || follow.run(progress, stopped));
        Follower { stop, thread }
    }

    /// Ends following: the bar is cleared; returns the status file, for
    /// the run's final state once everything else is written.
    pub fn stop(self) -> Option<StatusFile> {
        let _ = self.stop.send(());
        self.thread.join().ok().flatten()
    }
}

impl Follow {
    fn run(mut self, progress: &Progress, stopped: Receiver<()>) -> Option<StatusFile> {
        let bar = (self.mode == ProgressMode::Bar).then(|| bar::Bar::new(self.hidden));
        let tick = match self.mode {
            ProgressMode::Bar => BAR_TICK,
            ProgressMode::Lines => self.interval.min(STATUS_EVERY),
            ProgressMode::None => STATUS_EVERY,
        };
        let started = Instant::now();
        let mut next_line = started + self.interval;
        let mut next_status = started;
        let mut lines = 0;
        loop {
            let now = Instant::now();
            let snapshot = progress.snapshot();
            if let Some(bar) = &bar {
                bar.show(&snapshot);
            }
            if self.mode == ProgressMode::Lines && now >= next_line {
                line(&snapshot);
                lines += 1;
                next_line += self.interval;
            }
            if now >= next_status {
                if let Some(status) = self.status.as_mut() {
                    status.write(&snapshot, State::Running);
                }
                next_status = now + STATUS_EVERY;
            }
            match stopped.recv_timeout(tick) {
                Err(RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                    if let Some(bar) = bar {
                        bar.clear();
                    }
                    // A job's output file that followed the run sees where
                    // it ended; a run shorter than one interval stays quiet.
                    if lines > 0 {
                        line(&progress.snapshot());
                    }
                    return self.status;
                }
            }
        }
    }
}

/// One progress line for a job's output file.
fn line(s: &Snapshot) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "hpcmap: progress {}", summary(s));
    let _ = err.flush();
}

/// Done, failed, rate and ETA in words (the bar's message, the lines' text).
pub fn summary(s: &Snapshot) -> String {
    let mut eta = s.eta_s;
    let mut text = match s.root_share {
        Some((done, of)) if s.done == s.resumed && done >= of => {
            eta = None;
            format!(
                "the root's share ({of}) is done; waiting for the other ranks (static: results arrive at the end)"
            )
        }
        Some((done, of)) if s.done == s.resumed => format!(
            "{:.1}% of the root's share ({done}/{of}; static: results arrive at the end)",
            percent(done, of)
        ),
        _ => format!(
            "{:.1}% ({}/{} items)",
            percent(s.done, s.total),
            s.done,
            s.total
        ),
    };
    if s.failed > 0 {
        text += &format!(", {} failed", s.failed);
    }
    if s.resumed > 0 {
        text += &format!(", {} from the journal", s.resumed);
    }
    text += &format!(", {}", rate(s.rate));
    if let Some(eta) = eta {
        text += &format!(", ETA {}", duration(eta));
    }
    text += &format!(", elapsed {}", duration(s.elapsed_s));
    text
}

fn percent(done: u64, of: u64) -> f64 {
    if of == 0 {
        100.0
    } else {
        100.0 * done as f64 / of as f64
    }
}

/// Items per second with a short unit.
fn rate(r: f64) -> String {
    match r {
        r if r >= 1e6 => format!("{:.1}M items/s", r / 1e6),
        r if r >= 1e3 => format!("{:.1}k items/s", r / 1e3),
        r => format!("{r:.1} items/s"),
    }
}

/// A duration as people read it in a log: `42s`, `3m05s`, `2h07m`.
pub fn duration(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_an_explicit_mode_wins() {
        assert_eq!("lines".parse(), Ok(ProgressMode::Lines));
        assert!("fancy".parse::<ProgressMode>().is_err());
        let bar = Some(ProgressMode::Bar);
        assert_eq!(ProgressMode::resolve(bar, true, true), ProgressMode::Bar);
        assert_eq!(ProgressMode::resolve(None, true, false), ProgressMode::None);
    }

    #[test]
    fn durations_and_summaries_read_well() {
        assert_eq!(duration(42.4), "42s");
        assert_eq!(duration(185.0), "3m05s");
        assert_eq!(duration(7620.0), "2h07m");
        let s = Snapshot {
            total: 1000,
            done: 250,
            failed: 2,
            rate: 1500.0,
            eta_s: Some(0.5),
            elapsed_s: 0.2,
            ..Snapshot::default()
        };
        assert_eq!(
            summary(&s),
            "25.0% (250/1000 items), 2 failed, 1.5k items/s, ETA 1s, elapsed 0s"
        );
        let s = Snapshot {
            total: 1000,
            root_share: Some((100, 250)),
            ..Snapshot::default()
        };
        assert!(summary(&s).starts_with("40.0% of the root's share (100/250; static"));
    }
}
