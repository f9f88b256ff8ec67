//! One item of `hpcmap exec`: run its command to the end (or the timeout),
//! capture all of its stdout, forward its stderr, and say how it ended.

use std::ffi::OsString;
use std::time::{Duration, Instant, SystemTime};

use super::process::{self, Proc, Stderr};

/// How one command went.
pub struct Finished {
    /// Everything it wrote to stdout.
    pub stdout: Vec<u8>,
    /// Exit code (when it exited) or -1.
    pub exit: i32,
    /// The signal that killed it, or 0.
    pub signal: i32,
    /// It ran past the timeout and was killed.
    pub timed_out: bool,
    /// Why it failed, in words (empty when it succeeded).
    pub failure: String,
    /// When it started, seconds since the epoch.
    pub started: f64,
    /// How long it ran, seconds.
    pub runtime: f64,
}

impl Finished {
    /// Whether it exited with status 0.
    pub fn ok(&self) -> bool {
        self.exit == 0 && self.signal == 0 && !self.timed_out
    }
}

/// Why a command ended early on our side.
pub enum Ended {
    /// It ran to its end (or its timeout).
    Ran(Finished),
    /// A walltime signal: it was stopped; the item is mapped again on resume.
    Interrupted,
}

/// Runs `argv` with `env`, stdin `/dev/null`, its stderr forwarded with
/// `tag` in front of each line, killed with its process group after
/// `timeout`.
///
/// # Errors
/// When it cannot be started.
pub fn run(
    argv: &[OsString],
    env: &[(String, String)],
    timeout: Option<Duration>,
    tag: &str,
) -> std::io::Result<Ended> {
    let started_at = SystemTime::now();
    let started = Instant::now();
    let (mut proc, mut pipes) = Proc::spawn(argv, env, false)?;
    let deadline = timeout.map(|t| started + t);
    let mut stdout = Vec::new();
    let mut stderr = Stderr::default();
    let (mut out_open, mut err_open) = (true, true);
    let mut timed_out = false;
    let mut scratch = Vec::new();
    loop {
        if proc.exited().is_some() {
            // Its group is gone too: read what is left in the pipes.
            process::drain(&mut pipes.stdout, &mut stdout);
            scratch.clear();
            process::drain(&mut pipes.stderr, &mut scratch);
            stderr.forward(&scratch, tag);
            break;
        }
        if crate::interrupt::requested().is_some() {
            proc.terminate();
            return Ok(Ended::Interrupted);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            timed_out = true;
            proc.terminate();
            continue;
        }
        // Wake for output, for the exit, or every 50 ms to check signals.
        let wait = deadline.map_or(Duration::from_millis(50), |d| {
            d.saturating_duration_since(Instant::now())
                .min(Duration::from_millis(50))
        });
        use std::os::fd::AsRawFd;
        let fds = [
            (
                if out_open {
                    pipes.stdout.as_raw_fd()
                } else {
                    -1
                },
                libc::POLLIN,
            ),
            (
                if err_open {
                    pipes.stderr.as_raw_fd()
                } else {
                    -1
                },
                libc::POLLIN,
            ),
            (proc.exit_fd().unwrap_or(-1), libc::POLLIN),
        ];
        let wait = if proc.exit_fd().is_none() {
            wait.min(Duration::from_millis(5))
        } else {
            wait
        };
        let ready = process::poll(&fds, wait);
        if out_open && ready[0] != 0 {
            out_open = process::drain(&mut pipes.stdout, &mut stdout);
        }
        if err_open && ready[1] != 0 {
            scratch.clear();
            err_open = process::drain(&mut pipes.stderr, &mut scratch);
            stderr.forward(&scratch, tag);
        }
    }
    stderr.finish(tag);
    let status = proc.exited().expect("the command has ended");
    use std::os::unix::process::ExitStatusExt;
    let (exit, signal) = (status.code().unwrap_or(-1), status.signal().unwrap_or(0));
    let mut finished = Finished {
        stdout,
        exit,
        signal,
        timed_out,
        failure: String::new(),
        started: started_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64()),
        runtime: started.elapsed().as_secs_f64(),
    };
    if !finished.ok() {
        let how = if timed_out {
            format!(
                "timed out after {} s (its process group was killed)",
                timeout.map_or(0.0, |t| t.as_secs_f64())
            )
        } else {
            process::describe(status)
        };
        finished.failure = format!("{how}{}", stderr.tail());
    }
    Ok(Ended::Ran(finished))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, timeout: Option<Duration>) -> Finished {
        let argv: Vec<OsString> = ["sh", "-c", script].map(OsString::from).to_vec();
        match run(&argv, &[], timeout, "[t] ").unwrap() {
            Ended::Ran(f) => f,
            Ended::Interrupted => panic!("no signal here"),
        }
    }

    #[test]
    fn output_status_and_stderr_tail() {
        let f = sh("printf 'a\\0b'; echo err >&2; exit 3", None);
        assert_eq!(f.stdout, b"a\0b");
        assert_eq!((f.exit, f.signal, f.ok()), (3, 0, false));
        assert_eq!(f.failure, "exit status 3; stderr: err");
        let f = sh("kill -SEGV $$", None);
        assert_eq!(f.signal, libc::SIGSEGV);
        assert!(f.failure.starts_with("killed by SIGSEGV"), "{}", f.failure);
        let big = sh("head -c 10000000 /dev/zero", None);
        assert!(big.ok() && big.stdout.len() == 10_000_000);
    }

    #[test]
    fn a_timeout_kills_the_whole_group_and_stray_children_cannot_hang_it() {
        let t = Instant::now();
        let f = sh("sleep 30 & sleep 30", Some(Duration::from_millis(200)));
        assert!(
            f.timed_out && f.failure.starts_with("timed out"),
            "{}",
            f.failure
        );
        assert!(t.elapsed() < Duration::from_secs(10));
        // The command exits at once but leaves a child holding stdout open.
        let t = Instant::now();
        let f = sh("sleep 30 & echo done", None);
        assert!(f.ok() && f.stdout == b"done\n");
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "its group was killed when it exited"
        );
    }
}
