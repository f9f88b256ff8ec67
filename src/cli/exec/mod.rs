//! Mapping the user's own programs: `hpcmap exec` (a command per item) and
//! `hpcmap pipe` (warm worker processes fed item after item), over lines,
//! file globs or inline arguments. Both are [`Job`]s: journal and resume,
//! failure policies, walltime signals, `--part`, the report and the JSON
//! record work as for the built-in workloads.
//!
//! The ordered output is each item's output (exec: its whole stdout; pipe:
//! its answer line and a newline) in input order, to standard output or
//! `--results`; the checksum is over those bytes, so it is the same for the
//! same output whatever the ranks, threads and schedule.

pub mod command;
pub mod input;
pub mod joblog;
pub mod pipe;
pub mod process;
pub mod reaper;
pub mod run;

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cli::Exit;
use crate::cli::args::{ExecArgs, ItemArgs, PipeArgs};
use crate::cli::job::{ItemLog, Job};
use crate::cli::record::Answer;
use crate::cli::settings::{MapArgs, Part, Settings};
use crate::stats::ItemFailure;
use crate::task::Task;
use crate::{Pool, Schedule};
use command::{Place, Template};
use input::{Item, Items, Lines};

/// What an item did, besides its output: for the joblog and failure reports.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// The rank that ran it.
    pub rank: u32,
    /// When it started, seconds since the epoch.
    pub started: f64,
    /// How long it ran, seconds.
    pub runtime: f64,
    /// Bytes sent to its stdin.
    pub sent: u64,
    /// Bytes it wrote to stdout.
    pub received: u64,
    /// Exit code (-1 when killed).
    pub exit: i32,
    /// The signal that killed it (0 if none).
    pub signal: i32,
    /// The command, as a shell would read it (exec), or the item (pipe).
    pub command: String,
}

/// The result of one item.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ran {
    /// Its output: the command's stdout (exec) or the answer line (pipe).
    #[serde(with = "serde_bytes")]
    pub output: Vec<u8>,
    /// What it did.
    pub meta: Meta,
}

/// A failed item's error: the message, then its [`Meta`] for the joblog.
fn failure(message: &str, meta: &Meta) -> String {
    let detail = serde_json::to_string(meta).unwrap_or_default();
    format!("{message}{}{detail}", ItemFailure::DETAIL)
}

/// Where the items come from.
#[derive(Clone, Debug)]
enum Source {
    Lines(PathBuf),
    Files(Vec<String>),
    Inline(Vec<Item>),
}

/// `exec` runs a command per item; `pipe` feeds warm workers.
#[derive(Clone, Debug)]
enum Mode {
    Exec(Template),
    Pipe(Vec<OsString>),
}

/// A user's program over the user's items.
pub struct UserJob {
    mode: Mode,
    source: Source,
    timeout: Option<Duration>,
    joblog: Option<PathBuf>,
    /// The command as given, for the journal's identity.
    command: Vec<OsString>,
    threads: usize,
    /// `--on-error abort`: a pipe worker's run stops at its first failure.
    abort: bool,
    /// The run's output files by role, which `--files` must not match.
    outputs: Vec<(&'static str, PathBuf)>,
}

/// Splits `COMMAND ::: A B ...` into the command and the inline items.
fn split_inline(command: Vec<OsString>) -> (Vec<OsString>, Option<Vec<Item>>) {
    use std::os::unix::ffi::OsStringExt;
    match command.iter().position(|a| a == ":::") {
        Some(at) => {
            let items = command[at + 1..]
                .iter()
                .map(|a| Item(a.clone().into_vec()))
                .collect();
            (command[..at].to_vec(), Some(items))
        }
        None => (command, None),
    }
}

impl UserJob {
    fn new(
        items: ItemArgs,
        map: &MapArgs,
        command: Vec<OsString>,
        mode: impl FnOnce(&[OsString]) -> Result<Mode, String>,
        (schedule, chunk): (Schedule, Option<usize>),
    ) -> Result<(Settings, UserJob), String> {
        let (command, inline) = split_inline(command);
        let source = match (items.lines, items.files.is_empty(), inline) {
            (Some(path), true, None) => Source::Lines(path),
            (None, false, None) => Source::Files(items.files),
            (None, true, Some(args)) => Source::Inline(args),
            (None, true, None) => {
                return Err(
                    "no items: give --lines FILE, --files GLOB, or `::: A B ...` after the command"
                        .into(),
                );
            }
            _ => return Err("give the items one way: --lines, --files or `:::`".into()),
        };
        if let Source::Files(patterns) = &source {
            // A malformed pattern is a usage error, said before any work.
            for pattern in patterns {
                glob::Pattern::new(pattern)
                    .map_err(|e| format!("--files '{pattern}' is not a valid pattern: {e}"))?;
            }
        }
        let mode = mode(&command)?;
        let mut files: Vec<(&str, &Path)> = Vec::new();
        if let Source::Lines(path) = &source
            && path != Path::new("-")
        {
            files.push(("--lines", path));
        }
        if let Some(log) = &items.joblog {
            files.push(("--joblog", log));
        }
        let settings = map.validate(schedule, chunk, &files)?;
        let mut outputs: Vec<(&'static str, PathBuf)> = Vec::new();
        outputs.extend(map.results.clone().map(|p| ("--results", p)));
        outputs.extend(map.json.clone().map(|p| ("--json", p)));
        outputs.extend(map.status.clone().map(|p| ("--status", p)));
        outputs.extend(map.timeline.clone().map(|p| ("--timeline", p)));
        outputs.extend(items.joblog.clone().map(|p| ("--joblog", p)));
        outputs.extend(
            map.journal
                .as_ref()
                .map(|d| ("--journal", d.join("journal.hpcmap"))),
        );
        Ok((
            settings.clone(),
            UserJob {
                mode,
                source,
                timeout: items.timeout,
                joblog: items.joblog,
                command,
                threads: settings.threads,
                abort: settings.map.on_error == crate::OnError::Abort,
                outputs,
            },
        ))
    }

    /// `hpcmap exec`, checked.
    ///
    /// # Errors
    /// A usage message.
    pub fn exec(args: ExecArgs) -> Result<(Settings, UserJob), String> {
        let shell = args.shell;
        let threads = usize::from(args.map.threads);
        UserJob::new(
            args.items,
            &args.map,
            args.command,
            |command| {
                if command.is_empty() && !shell {
                    return Err(
                        "no command: give it after `--` (or --shell, to run each item as a shell command)"
                            .into(),
                    );
                }
                Ok(Mode::Exec(Template::new(command, shell)))
            },
            // One command per thread per hand-out: a chunk's items run at
            // once, one on each of the rank's threads.
            (Schedule::Dynamic, Some(threads)),
        )
    }

    /// `hpcmap pipe`, checked.
    ///
    /// # Errors
    /// A usage message.
    pub fn pipe(args: PipeArgs) -> Result<(Settings, UserJob), String> {
        let threads = usize::from(args.map.threads);
        UserJob::new(
            args.items,
            &args.map,
            args.command,
            |command| {
                if command.is_empty() {
                    return Err("no worker program: give it after `--`".into());
                }
                Ok(Mode::Pipe(command.to_vec()))
            },
            // Chunks never shrink below one item per worker process.
            (Schedule::Guided, Some(threads)),
        )
    }
}

/// Items done, failed, and bytes of output.
#[derive(Debug, Default)]
pub struct Summary {
    items: u64,
    failed: u64,
    bytes: u64,
}

impl Job for UserJob {
    type Item = Item;
    type Output = Ran;
    type Input = Items;
    type Task = UserTask;
    type Summary = Summary;

    fn name(&self) -> &str {
        match self.mode {
            Mode::Exec(_) => "exec",
            Mode::Pipe(_) => "pipe",
        }
    }

    fn input(&self, part: Option<Part>) -> anyhow::Result<(Items, usize)> {
        let items = match &self.source {
            Source::Lines(path) => Items::Lines(Lines::open(path)?),
            Source::Files(patterns) => {
                let items = Items::files(patterns)?;
                if let Items::Memory(files) = &items {
                    use std::os::unix::ffi::OsStrExt;
                    let paths: Vec<&Path> = files
                        .iter()
                        .map(|f| Path::new(std::ffi::OsStr::from_bytes(&f.0)))
                        .collect();
                    let outputs: Vec<(&str, &Path)> = self
                        .outputs
                        .iter()
                        .map(|(r, p)| (*r, p.as_path()))
                        .collect();
                    crate::cli::outputs::check_inputs(&paths, &outputs).map_err(Exit::Usage)?;
                }
                items
            }
            Source::Inline(items) => Items::Memory(items.clone()),
        };
        Ok(match part {
            Some(part) => {
                let range = part.range(crate::Source::len(&items));
                let offset = range.start;
                (items.slice(range), offset)
            }
            None => (items, 0),
        })
    }

    fn numbered_from(&self) -> u64 {
        1
    }

    fn identity(&self, input: &Items, part: Option<Part>) -> String {
        let shell = matches!(&self.mode, Mode::Exec(t) if t.is_shell());
        let part = part.map_or_else(|| "all".into(), |p| p.to_string());
        format!(
            "hpcmap journal v1; {}; command {:?}; shell {shell}; part {part}; {} items; content {:016x}",
            self.name(),
            self.command,
            crate::Source::len(input),
            input.digest()
        )
    }

    fn task(&self, pool: &Pool, offset: usize) -> anyhow::Result<UserTask> {
        let place = Where {
            rank: pool.rank(),
            size: pool.size(),
            threads: self.threads,
        };
        match &self.mode {
            Mode::Exec(template) => Ok(UserTask::Exec {
                template: template.clone(),
                timeout: self.timeout,
                place,
                offset,
            }),
            Mode::Pipe(argv) => {
                // Every worker first: a program that cannot start is an
                // error before any work is handed out.
                let workers = (0..self.threads)
                    .map(|thread| {
                        pipe::Worker::start(pipe::Spec {
                            argv: argv.clone(),
                            env: place.env(thread),
                            timeout: self.timeout,
                            tag: format!("[worker {}.{thread}] ", place.rank),
                            stop_at_failure: self.abort,
                        })
                        .map(|w| Mutex::new(Some(w)))
                    })
                    .collect::<Result<Vec<_>, String>>()
                    .map_err(anyhow::Error::msg)?;
                Ok(UserTask::Pipe {
                    workers,
                    place,
                    offset,
                    argv: argv.clone(),
                    timeout: self.timeout,
                    abort: self.abort,
                })
            }
        }
    }

    fn absorb(&self, summary: &mut Summary, _index: usize, result: Ran) {
        summary.items += 1;
        summary.bytes += result.output.len() as u64 + u64::from(matches!(self.mode, Mode::Pipe(_)));
    }

    fn absorb_failure(&self, summary: &mut Summary, _failure: &ItemFailure) {
        summary.failed += 1;
    }

    fn write_result(
        &self,
        _index: usize,
        result: &Ran,
        out: &mut dyn Write,
    ) -> std::io::Result<()> {
        out.write_all(&result.output)?;
        if matches!(self.mode, Mode::Pipe(_)) {
            out.write_all(b"\n")?;
        }
        Ok(())
    }

    fn checksum(&self, index: usize, result: &Ran) -> Option<u64> {
        Some(crate::codec::item_hash(index, &result.output))
    }

    fn answer(&self, s: &Summary) -> Answer {
        Answer {
            text: format!(
                "{} items done, {} failed, {} bytes of output",
                s.items, s.failed, s.bytes
            ),
            value: serde_json::json!({ "items": s.items, "failed": s.failed, "bytes": s.bytes }),
        }
    }

    fn results_to_stdout(&self) -> bool {
        true
    }

    fn writes_while_mapping(&self) -> bool {
        true
    }

    fn item_log(
        &self,
        resume: bool,
        hosts: &[String],
        offset: usize,
    ) -> anyhow::Result<Option<Box<dyn ItemLog<Ran>>>> {
        let Some(path) = &self.joblog else {
            return Ok(None);
        };
        Ok(Some(Box::new(joblog::Joblog::open(
            path,
            resume,
            hosts.to_vec(),
            offset,
        )?)))
    }
}

/// Where a task runs: its rank and how many there are.
#[derive(Clone, Copy, Debug)]
pub struct Where {
    rank: usize,
    size: usize,
    threads: usize,
}

impl Where {
    /// The environment of a command or worker on compute thread `thread`.
    fn env(&self, thread: usize) -> Vec<(String, String)> {
        vec![
            ("HPCMAP_RANK".into(), self.rank.to_string()),
            ("HPCMAP_THREAD".into(), thread.to_string()),
            ("HPCMAP_SIZE".into(), self.size.to_string()),
        ]
    }
}

/// What every rank does with an item of a user's job.
pub enum UserTask {
    /// A command per item.
    Exec {
        /// The command, with replacement strings.
        template: Template,
        /// Per-item time limit.
        timeout: Option<Duration>,
        /// This rank.
        place: Where,
        /// The first item's index in the whole input.
        offset: usize,
    },
    /// One warm worker per compute thread, started before the map.
    Pipe {
        /// The workers, taken by the compute threads.
        workers: Vec<Mutex<Option<pipe::Worker>>>,
        /// This rank.
        place: Where,
        /// The first item's index in the whole input (stderr tags).
        offset: usize,
        /// The worker program.
        argv: Vec<OsString>,
        /// Per-item time limit.
        timeout: Option<Duration>,
        /// `--on-error abort` (see [`pipe::Spec::stop_at_failure`]).
        abort: bool,
    },
}

/// A compute thread's state: its number, and its worker (pipe).
pub struct Slot {
    thread: usize,
    worker: Option<pipe::Worker>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(worker) = self.worker.take() {
            worker.shut_down();
        }
    }
}

impl Task<Item> for UserTask {
    type Output = Ran;
    type State = Slot;

    fn init(&self, thread: usize) -> Slot {
        let worker = match self {
            UserTask::Pipe { workers, .. } => workers
                .get(thread)
                .and_then(|w| w.lock().expect("worker lock").take()),
            UserTask::Exec { .. } => None,
        };
        Slot { thread, worker }
    }

    fn call(&self, slot: &mut Slot, index: usize, item: Item) -> Result<Ran, String> {
        match self {
            UserTask::Exec {
                template,
                timeout,
                place,
                offset,
            } => {
                let seq = offset + index + 1;
                let argv = template.argv(
                    &item.0,
                    Place {
                        seq,
                        slot: place.rank * place.threads + slot.thread + 1,
                    },
                );
                let mut env = place.env(slot.thread);
                env.push(("HPCMAP_SEQ".into(), seq.to_string()));
                let shown = command::display(&argv);
                let mut meta = Meta {
                    rank: place.rank as u32,
                    command: shown.clone(),
                    exit: -1,
                    ..Meta::default()
                };
                match run::run(&argv, &env, *timeout, &format!("[{seq}] ")) {
                    Err(e) => Err(failure(
                        &format!("cannot start `{}`: {e}", command::abbreviated(&shown)),
                        &meta,
                    )),
                    Ok(run::Ended::Interrupted) => Err("interrupted by a signal".into()),
                    Ok(run::Ended::Ran(f)) => {
                        meta.started = f.started;
                        meta.runtime = f.runtime;
                        meta.received = f.stdout.len() as u64;
                        meta.exit = f.exit;
                        meta.signal = f.signal;
                        if f.ok() {
                            Ok(Ran {
                                output: f.stdout,
                                meta,
                            })
                        } else {
                            Err(failure(&f.failure, &meta))
                        }
                    }
                }
            }
            UserTask::Pipe { .. } => self
                .call_run(slot, index, vec![item])
                .pop()
                .unwrap_or_else(|| Err("no answer".into())),
        }
    }

    fn call_run(
        &self,
        slot: &mut Slot,
        first: usize,
        items: Vec<Item>,
    ) -> Vec<Result<Ran, String>> {
        let UserTask::Pipe {
            place,
            argv,
            timeout,
            offset,
            abort,
            ..
        } = self
        else {
            return items
                .into_iter()
                .enumerate()
                .map(|(k, item)| self.call(slot, first + k, item))
                .collect();
        };
        if slot.worker.is_none() {
            // A thread without a worker of its own (more threads than were
            // started): start one like the others.
            let spec = pipe::Spec {
                argv: argv.clone(),
                env: place.env(slot.thread),
                timeout: *timeout,
                tag: format!("[worker {}.{}] ", place.rank, slot.thread),
                stop_at_failure: *abort,
            };
            match pipe::Worker::start(spec) {
                Ok(w) => slot.worker = Some(w),
                Err(e) => return items.iter().map(|_| Err(e.clone())).collect(),
            }
        }
        let worker = slot.worker.as_mut().expect("a worker");
        let answers = worker.map_run(offset + first, &items);
        answers
            .into_iter()
            .zip(&items)
            .map(|(answer, item)| {
                let mut meta = Meta {
                    rank: place.rank as u32,
                    sent: item.0.len() as u64 + 1,
                    command: item.lossy(),
                    ..Meta::default()
                };
                match answer {
                    Ok(a) => {
                        meta.started = a.started;
                        meta.runtime = a.runtime;
                        meta.received = a.line.len() as u64 + 1;
                        Ok(Ran {
                            output: a.line,
                            meta,
                        })
                    }
                    Err(e) => {
                        meta.exit = -1;
                        Err(failure(&e, &meta))
                    }
                }
            })
            .collect()
    }

    fn batched(&self) -> bool {
        matches!(self, UserTask::Pipe { .. })
    }

    fn blocking(&self) -> bool {
        true
    }
}
