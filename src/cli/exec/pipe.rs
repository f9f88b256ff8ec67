//! A warm worker of `hpcmap pipe`: one long-running process per compute
//! thread that reads items, one line each, from its stdin and answers each
//! with one line on its stdout, in order.
//!
//! Items are pipelined (up to [`IN_FLIGHT`] lines ahead), so the worker
//! never waits for hpcmap between items. Answers are matched to items by
//! order; to keep that safe, after each run of items hpcmap waits until the
//! worker is idle again (blocked reading its stdin) and checks that it
//! printed nothing more. A worker that exits or crashes, runs past
//! `--timeout` on an item, prints more than one line for a run, or sits
//! waiting for input while it owes answers (a lost newline, buffered
//! output) fails the item concerned (found by mapping the run's items again
//! one by one) and is restarted for the next; the items after it are sent
//! again.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use super::input::Item;
use super::process::{self, Pipes, Proc, Stderr};

/// Lines sent ahead of the oldest unanswered one.
pub const IN_FLIGHT: usize = 256;
/// Bytes sent ahead: keeps both pipes from filling up at once.
const AHEAD_BYTES: usize = 48 << 10;
/// How long a worker may take to be ready after it starts, or to go idle
/// after answering, when no `--timeout` says otherwise.
const SETTLE: Duration = Duration::from_secs(30);
/// How long a worker that owes answers may sit blocked reading its stdin,
/// everything sent read, before it counts as stalled: it dropped a newline
/// or buffers its output.
const STALL: Duration = Duration::from_secs(1);
/// An item a run left unmapped: a walltime signal came, or (under
/// [`Spec::stop_at_failure`]) an earlier item of the run failed.
const UNMAPPED: &str = "not mapped: the run was interrupted or an earlier item failed";
/// Why a stalled worker's item failed.
const STALLED: &str = "the worker read the item, then waited for more input without answering it \
     (an answer without a newline, or buffered output: flush each line, e.g. python3 -u)";

/// What a worker process is, to start it again.
#[derive(Clone, Debug)]
pub struct Spec {
    /// The program and its arguments.
    pub argv: Vec<OsString>,
    /// Added to its environment.
    pub env: Vec<(String, String)>,
    /// Per-item time limit.
    pub timeout: Option<Duration>,
    /// In front of each forwarded stderr line.
    pub tag: String,
    /// A run stops at its first failed item, the rest left unmapped: under
    /// `--on-error abort` that failure ends the map, and a worker failing
    /// item after item (a stall costs a second each) must not delay it.
    pub stop_at_failure: bool,
}

/// One item's answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    /// The line, without its newline.
    pub line: Vec<u8>,
    /// When the item was sent, seconds since the epoch.
    pub started: f64,
    /// From sending the item to its answer, seconds.
    pub runtime: f64,
}

type Outcome = Result<Answer, String>;

/// One worker process and its unread output.
pub struct Worker {
    spec: Spec,
    running: Option<(Proc, Pipes)>,
    out: Vec<u8>,
    stderr: Stderr,
    /// Whether its stderr is still open (a closed pipe polls ready forever).
    stderr_open: bool,
    /// Whether the process can be watched through /proc.
    watched: bool,
}

/// How waiting for a worker to go idle ended.
enum Settled {
    Idle,
    Extra,
    Exited(String),
    Unknown,
}

impl Worker {
    /// Starts the worker and waits until it is ready for its first item.
    ///
    /// # Errors
    /// A message when it cannot be started or exits before its first item.
    pub fn start(spec: Spec) -> Result<Worker, String> {
        let mut worker = Worker {
            spec,
            running: None,
            out: Vec::new(),
            stderr: Stderr::default(),
            stderr_open: true,
            watched: true,
        };
        worker.launch()?;
        match worker.settle() {
            Settled::Exited(how) => Err(format!(
                "worker `{}` {how} before its first item{}",
                super::command::display(&worker.spec.argv),
                worker.stderr.tail()
            )),
            Settled::Extra => Err(format!(
                "worker `{}` printed to stdout before its first item",
                super::command::display(&worker.spec.argv)
            )),
            Settled::Idle | Settled::Unknown => Ok(worker),
        }
    }

    fn launch(&mut self) -> Result<(), String> {
        let (proc, pipes) = Proc::spawn(&self.spec.argv, &self.spec.env, true).map_err(|e| {
            format!(
                "cannot start worker `{}`: {e}",
                super::command::display(&self.spec.argv)
            )
        })?;
        self.running = Some((proc, pipes));
        self.out.clear();
        self.stderr_open = true;
        Ok(())
    }

    /// Stops the process (it is started again when needed).
    fn kill(&mut self) -> String {
        let how = match self.running.take() {
            Some((mut proc, _)) => proc.terminate().map_or("ended".into(), process::describe),
            None => "ended".into(),
        };
        self.out.clear();
        how
    }

    /// Maps a run of items, the first with index `first` in the whole input
    /// (for stderr tags): one answer line per item (without its newline),
    /// or why the item failed.
    pub fn map_run(&mut self, first: usize, items: &[Item]) -> Vec<Outcome> {
        let mut results = self.pipelined(first, items);
        if results.iter().all(Option::is_some) {
            match self.settle() {
                Settled::Idle | Settled::Unknown => {}
                Settled::Exited(_) => {
                    self.kill();
                }
                Settled::Extra => {
                    // Some item printed more than one line: find which.
                    results = self.redo_one_by_one(first, items);
                }
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(UNMAPPED.into())))
            .collect()
    }

    /// One item alone, checked for extra output.
    fn one(&mut self, index: usize, item: &Item) -> Outcome {
        let result = self
            .pipelined(index, std::slice::from_ref(item))
            .pop()
            .flatten()
            .unwrap_or_else(|| Err(UNMAPPED.into()));
        match (result, self.settle()) {
            (Ok(_), Settled::Extra) => {
                self.kill();
                Err("the worker answered it with more than one line".into())
            }
            (result, _) => result,
        }
    }

    /// Sends the items ahead and reads their answers; `None` for items left
    /// unanswered by a walltime signal, or after a failed item under
    /// [`Spec::stop_at_failure`].
    fn pipelined(&mut self, first: usize, items: &[Item]) -> Vec<Option<Outcome>> {
        let mut results: Vec<Option<Outcome>> = vec![None; items.len()];
        let mut sent: Vec<(f64, Instant)> = vec![(0.0, Instant::now()); items.len()];
        let mut next = 0; // the next item to send
        let mut in_flight: VecDeque<usize> = VecDeque::new();
        let mut pending: Vec<u8> = Vec::new(); // bytes not yet written
        let mut front_since = Instant::now();
        // Since when the worker owes answers but only waits for input.
        let mut stalled_since: Option<Instant> = None;
        while results.iter().any(Option::is_none) {
            if crate::interrupt::requested().is_some() {
                self.kill();
                return results;
            }
            if self.running.is_none()
                && let Err(e) = self.launch()
            {
                for r in results.iter_mut().filter(|r| r.is_none()) {
                    *r = Some(Err(e.clone()));
                }
                return results;
            }
            while next < items.len() && in_flight.len() < IN_FLIGHT && pending.len() < AHEAD_BYTES {
                pending.extend_from_slice(&items[next].0);
                pending.push(b'\n');
                sent[next] = (now_epoch(), Instant::now());
                if in_flight.is_empty() {
                    front_since = Instant::now();
                }
                in_flight.push_back(next);
                next += 1;
            }
            let (proc, pipes) = self.running.as_mut().expect("running");
            let stdin = pipes.stdin.as_ref().map_or(-1, |s| s.as_raw_fd());
            let fds = [
                (if pending.is_empty() { -1 } else { stdin }, libc::POLLOUT),
                (pipes.stdout.as_raw_fd(), libc::POLLIN),
                (
                    if self.stderr_open {
                        pipes.stderr.as_raw_fd()
                    } else {
                        -1
                    },
                    libc::POLLIN,
                ),
                (proc.exit_fd().unwrap_or(-1), libc::POLLIN),
            ];
            let ready = process::poll(
                &fds,
                Duration::from_millis(if proc.exit_fd().is_some() { 50 } else { 5 }),
            );
            if ready[0] != 0 && !pending.is_empty() {
                let stdin = pipes.stdin.as_mut().expect("stdin is piped");
                match stdin.write(&pending) {
                    Ok(n) => {
                        pending.drain(..n);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => {} // broken pipe: the exit shows below
                }
            }
            if ready[2] != 0 {
                let mut bytes = Vec::new();
                self.stderr_open = process::drain(&mut pipes.stderr, &mut bytes);
                let tag = self.tag(first, &in_flight);
                self.stderr.forward(&bytes, &tag);
            }
            let (proc, pipes) = self.running.as_mut().expect("running");
            let quiet = ready.iter().all(|&r| r == 0);
            if quiet && pending.is_empty() && !in_flight.is_empty() && self.watched {
                match reading(proc.pid(), pipes).map(|r| r.only_waiting()) {
                    Some(true) => {
                        let since = *stalled_since.get_or_insert_with(Instant::now);
                        if since.elapsed() > STALL {
                            return self.stalled(first, items, results);
                        }
                    }
                    Some(false) => stalled_since = None,
                    None => self.watched = false,
                }
            } else if !quiet {
                stalled_since = None;
            }
            let (_, pipes) = self.running.as_mut().expect("running");
            let open = ready[1] == 0 || process::drain(&mut pipes.stdout, &mut self.out);
            while let Some(nl) = self.out.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.out.drain(..=nl).collect();
                match in_flight.pop_front() {
                    Some(k) => {
                        results[k] = Some(Ok(Answer {
                            line: line[..line.len() - 1].to_vec(),
                            started: sent[k].0,
                            runtime: sent[k].1.elapsed().as_secs_f64(),
                        }));
                        front_since = Instant::now();
                    }
                    None if items.len() == 1 => {
                        // The item alone answered with two lines.
                        self.kill();
                        results[0] =
                            Some(Err("the worker answered it with more than one line".into()));
                        return results;
                    }
                    None => {
                        // More lines than items: some item answered twice.
                        self.out.clear();
                        return self.redo_one_by_one(first, items);
                    }
                }
            }
            let exited = !open
                || self
                    .running
                    .as_mut()
                    .is_some_and(|(p, _)| p.exited().is_some());
            let timed_out = self
                .spec
                .timeout
                .is_some_and(|t| !in_flight.is_empty() && front_since.elapsed() > t);
            if exited || timed_out {
                let how = self.kill();
                let why = if timed_out {
                    format!(
                        "timed out after {} s (the worker was killed and started again)",
                        self.spec.timeout.unwrap_or_default().as_secs_f64()
                    )
                } else {
                    format!("the worker ended ({how}) while mapping it")
                };
                let failed = in_flight.pop_front();
                if let Some(k) = failed {
                    results[k] = Some(Err(format!("{why}{}", self.stderr.tail())));
                    // The items after it go to the new worker.
                    next = k + 1;
                }
                in_flight.clear();
                pending.clear();
                // (A worker that ended with nothing in flight failed no item.)
                if failed.is_some() && self.spec.stop_at_failure {
                    return results;
                }
            }
        }
        results
    }

    /// A worker that owes answers waits for input: alone, the item fails;
    /// in a run, answers may already be shifted onto the wrong items, so
    /// the run is mapped again item by item to find the culprit.
    fn stalled(
        &mut self,
        first: usize,
        items: &[Item],
        mut results: Vec<Option<Outcome>>,
    ) -> Vec<Option<Outcome>> {
        if items.len() > 1 {
            return self.redo_one_by_one(first, items);
        }
        let partial = std::mem::take(&mut self.out);
        self.kill();
        let printed = if partial.is_empty() {
            String::new()
        } else {
            format!(
                "; it printed `{}` without a newline",
                String::from_utf8_lossy(&partial[..partial.len().min(80)])
            )
        };
        results[0] = Some(Err(format!("{STALLED}{printed}{}", self.stderr.tail())));
        results
    }

    /// After an extra line or a stall: the run again, item by item, to
    /// find the culprit.
    fn redo_one_by_one(&mut self, first: usize, items: &[Item]) -> Vec<Option<Outcome>> {
        self.kill();
        let mut results = vec![None; items.len()];
        for (k, item) in items.iter().enumerate() {
            let outcome = self.one(first + k, item);
            let failed = outcome.is_err();
            results[k] = Some(outcome);
            if failed && self.spec.stop_at_failure {
                break;
            }
        }
        results
    }

    /// The tag of stderr lines: the oldest item in flight.
    fn tag(&self, first: usize, in_flight: &VecDeque<usize>) -> String {
        match in_flight.front() {
            Some(k) => format!("[{}] ", first + k + 1),
            None => self.spec.tag.clone(),
        }
    }

    /// Waits until the worker has answered everything and waits for input
    /// again; reports extra output, an exit, or that it cannot tell.
    fn settle(&mut self) -> Settled {
        let limit = self.spec.timeout.unwrap_or(SETTLE);
        let started = Instant::now();
        let mut sleep = Duration::from_micros(20);
        loop {
            let Some((_, pipes)) = self.running.as_mut() else {
                return Settled::Exited("ended".into());
            };
            let ready = process::poll(
                &[
                    (pipes.stdout.as_raw_fd(), libc::POLLIN),
                    (
                        if self.stderr_open {
                            pipes.stderr.as_raw_fd()
                        } else {
                            -1
                        },
                        libc::POLLIN,
                    ),
                ],
                Duration::ZERO,
            );
            if ready[1] != 0 {
                let mut bytes = Vec::new();
                self.stderr_open = process::drain(&mut pipes.stderr, &mut bytes);
                let tag = self.spec.tag.clone();
                self.stderr.forward(&bytes, &tag);
                continue;
            }
            let (proc, pipes) = self.running.as_mut().expect("running");
            if ready[0] != 0 {
                let mut extra = Vec::new();
                let open = process::drain(&mut pipes.stdout, &mut extra);
                if !extra.is_empty() {
                    return Settled::Extra;
                }
                if !open {
                    let how = self.kill();
                    return Settled::Exited(how);
                }
            }
            if let Some(status) = proc.exited() {
                let how = process::describe(status);
                self.running = None;
                return Settled::Exited(how);
            }
            if self.watched {
                match reading(proc.pid(), pipes).map(|r| r.idle()) {
                    Some(true) => return Settled::Idle,
                    Some(false) => {}
                    None => self.watched = false,
                }
            }
            if !self.watched || started.elapsed() > limit {
                return Settled::Unknown;
            }
            std::thread::sleep(sleep);
            sleep = (sleep * 2).min(Duration::from_millis(1));
        }
    }

    /// What the worker is.
    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// Closes the worker's stdin and waits for it to end (then kills it).
    pub fn shut_down(mut self) {
        if let Some((mut proc, mut pipes)) = self.running.take() {
            drop(pipes.stdin.take());
            let deadline = Instant::now() + process::GRACE;
            while Instant::now() < deadline && proc.exited().is_none() {
                std::thread::sleep(Duration::from_millis(2));
            }
            proc.terminate();
        }
    }
}

/// Now, in seconds since the epoch.
fn now_epoch() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// How a worker stands towards its input, from /proc (Linux).
struct Reading {
    /// It has read everything sent to it.
    drained: bool,
    /// Threads blocked reading its stdin, of `threads`.
    reading: usize,
    threads: usize,
    /// A thread is on a CPU.
    running: bool,
    /// It has child processes (which may be doing its work).
    children: bool,
}

impl Reading {
    /// Idle: everything read, one thread waiting for more, none running.
    fn idle(&self) -> bool {
        self.drained && self.reading > 0 && !self.running
    }

    /// Stalled, if it owes answers: it can only be waiting for input, as
    /// every thread it has is blocked reading it and no child works for
    /// it (a thread or child busy with an item is not a stall).
    fn only_waiting(&self) -> bool {
        self.drained && self.reading == self.threads && !self.children
    }
}

/// `pid`'s [`Reading`] (`/proc/PID/task/*/syscall`, `.../children`);
/// `None` when /proc cannot say.
fn reading(pid: u32, pipes: &Pipes) -> Option<Reading> {
    let mut unread: libc::c_int = 0;
    if let Some(stdin) = &pipes.stdin {
        // SAFETY: FIONREAD on a pipe we own writes one int.
        #[allow(unsafe_code)]
        unsafe {
            libc::ioctl(stdin.as_raw_fd(), libc::FIONREAD, &mut unread);
        }
    }
    let mut r = Reading {
        drained: unread == 0,
        reading: 0,
        threads: 0,
        running: false,
        children: false,
    };
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let path = task.path();
        let syscall = std::fs::read_to_string(path.join("syscall")).ok()?;
        let mut fields = syscall.split_whitespace();
        r.threads += 1;
        match (fields.next(), fields.next()) {
            (Some("running"), _) => r.running = true,
            (Some(nr), Some("0x0")) if nr.parse::<libc::c_long>().ok() == Some(libc::SYS_read) => {
                r.reading += 1;
            }
            _ => {}
        }
        r.children |=
            std::fs::read_to_string(path.join("children")).is_ok_and(|c| !c.trim().is_empty());
    }
    Some(r)
}
