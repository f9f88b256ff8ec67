//! Child processes of `exec` and `pipe`, supervised: each runs in a
//! process group of its own (so a timeout kills everything it started),
//! registered with the rank's guard (see `reaper`: it dies with the rank),
//! has its stdout captured and its stderr forwarded line by line, and is
//! watched through a pidfd so that a grandchild holding the pipes open
//! cannot hang the rank.
#![allow(unsafe_code)]

use std::ffi::OsString;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a process group has between SIGTERM and SIGKILL.
pub const GRACE: Duration = Duration::from_secs(2);

/// A supervised child process.
pub struct Proc {
    child: Child,
    pidfd: Option<OwnedFd>,
    status: Option<ExitStatus>,
    _guarded: super::reaper::Registered,
}

/// The child's pipes, taken at spawn.
pub struct Pipes {
    /// Its standard input (`pipe` only).
    pub stdin: Option<ChildStdin>,
    /// Its standard output.
    pub stdout: ChildStdout,
    /// Its standard error.
    pub stderr: ChildStderr,
}

impl Proc {
    /// Starts `argv` with `env` added, stdin a pipe when `stdin` (else
    /// `/dev/null`), stdout and stderr pipes, in a new process group.
    ///
    /// # Errors
    /// When the program cannot be started (not found, not executable).
    pub fn spawn(
        argv: &[OsString],
        env: &[(String, String)],
        stdin: bool,
    ) -> io::Result<(Proc, Pipes)> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "an empty command"))?;
        let mut command = Command::new(program);
        command
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = command.spawn()?;
        let guarded = super::reaper::Registered::new(child.id());
        let pipes = Pipes {
            stdin: child.stdin.take(),
            stdout: child.stdout.take().expect("stdout is piped"),
            stderr: child.stderr.take().expect("stderr is piped"),
        };
        set_nonblocking(pipes.stdout.as_raw_fd())?;
        set_nonblocking(pipes.stderr.as_raw_fd())?;
        if let Some(stdin) = &pipes.stdin {
            set_nonblocking(stdin.as_raw_fd())?;
        }
        let pidfd = pidfd_open(child.id());
        Ok((
            Proc {
                child,
                pidfd,
                status: None,
                _guarded: guarded,
            },
            pipes,
        ))
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A file descriptor that becomes readable when the child exits.
    pub fn exit_fd(&self) -> Option<RawFd> {
        self.pidfd.as_ref().map(AsRawFd::as_raw_fd)
    }

    /// Whether the child has exited (it is then reaped, and its group killed).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            // The group goes first, while the zombie still holds its id.
            if let Ok(Some(_)) = self.peek() {
                self.kill_group(libc::SIGKILL);
                self.status = self.child.wait().ok();
            }
        }
        self.status
    }

    /// Whether the child has exited, without reaping it.
    fn peek(&self) -> io::Result<Option<()>> {
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid with WNOWAIT only inspects the child; info is ours.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                self.child.id() as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: waitid filled `info` (si_pid is 0 when nothing exited).
        Ok((unsafe { info.si_pid() } != 0).then_some(()))
    }

    /// Sends `signal` to the child's whole process group.
    pub fn kill_group(&self, signal: libc::c_int) {
        // SAFETY: kill only sends a signal; the group is the child's own.
        unsafe {
            libc::kill(-(self.child.id() as libc::pid_t), signal);
        }
    }

    /// Ends the child and everything it started: SIGTERM to the group, then
    /// SIGKILL after [`GRACE`]; reaps it.
    pub fn terminate(&mut self) -> Option<ExitStatus> {
        if self.status.is_some() {
            return self.status;
        }
        self.kill_group(libc::SIGTERM);
        let deadline = Instant::now() + GRACE;
        while Instant::now() < deadline {
            if self.exited().is_some() {
                return self.status;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.kill_group(libc::SIGKILL);
        self.status = self.child.wait().ok();
        self.status
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // No child outlives its item, nor its rank.
        if self.status.is_none() {
            self.terminate();
        }
    }
}

fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    // SAFETY: a fresh descriptor nobody else owns.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Waits until one of `fds` (with the `events` each) is ready, or `timeout`.
/// Returns the ready events per descriptor (0 for a negative fd).
pub fn poll(fds: &[(RawFd, i16)], timeout: Duration) -> Vec<i16> {
    let mut set: Vec<libc::pollfd> = fds
        .iter()
        .map(|&(fd, events)| libc::pollfd {
            fd,
            events,
            revents: 0,
        })
        .collect();
    let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
    // SAFETY: `set` is a valid array of pollfd for the call.
    let r = unsafe { libc::poll(set.as_mut_ptr(), set.len() as libc::nfds_t, ms) };
    if r < 0 {
        return vec![0; fds.len()];
    }
    set.iter().map(|p| p.revents).collect()
}

/// Reads what is available from a non-blocking `source` into `into`;
/// returns false at end of file.
pub fn drain(source: &mut impl Read, into: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 64 << 10];
    loop {
        match source.read(&mut buf) {
            Ok(0) => return false,
            Ok(n) => into.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
    }
}

/// A child's stderr, forwarded to ours line by line (each line one
/// `write`, tagged), keeping its last lines for failure reports.
#[derive(Default)]
pub struct Stderr {
    partial: Vec<u8>,
    tail: std::collections::VecDeque<String>,
}

impl Stderr {
    /// Lines kept for a failure report.
    const TAIL: usize = 5;

    /// Forwards the complete lines of `bytes` (and keeps the rest) with `tag`.
    pub fn forward(&mut self, bytes: &[u8], tag: &str) {
        self.partial.extend_from_slice(bytes);
        while let Some(nl) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=nl).collect();
            self.emit(&line[..line.len() - 1], tag);
        }
        if self.partial.len() > 64 << 10 {
            let line = std::mem::take(&mut self.partial);
            self.emit(&line, tag);
        }
    }

    /// Forwards what is left (a last line without newline).
    pub fn finish(&mut self, tag: &str) {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.emit(&line, tag);
        }
    }

    fn emit(&mut self, line: &[u8], tag: &str) {
        let mut out = Vec::with_capacity(tag.len() + line.len() + 4);
        out.extend_from_slice(tag.as_bytes());
        out.extend_from_slice(line);
        out.push(b'\n');
        // Whole, and above the progress bar when the root draws one.
        crate::cli::follow::above(&out);
        if self.tail.len() == Self::TAIL {
            self.tail.pop_front();
        }
        self.tail
            .push_back(String::from_utf8_lossy(line).into_owned());
    }

    /// The last lines, for a failure report ("" when there were none).
    pub fn tail(&self) -> String {
        if self.tail.is_empty() {
            return String::new();
        }
        let lines: Vec<&str> = self.tail.iter().map(String::as_str).collect();
        format!("; stderr: {}", lines.join(" | "))
    }
}

/// How a process ended, in words: `exit status 3`, `killed by SIGSEGV`.
pub fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by {}", crate::interrupt::name(signal as u64)),
        _ => "ended".into(),
    }
}
