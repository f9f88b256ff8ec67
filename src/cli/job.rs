//! One map of the command, whatever it maps: a built-in workload (`run`)
//! or a user's program (`exec`, `pipe`). The [`Job`] says what is mapped;
//! [`run`] does the rest the same way for all: the root prepares the input
//! and its files (journal first, then outputs, failing fast), every rank
//! starts its task, the map runs with the results streamed to the outputs,
//! and the root writes the report and the record.

use std::io::Write;
use std::ops::Range;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use serde::{Serialize, de::DeserializeOwned};
use tracing::info;

use crate::cli::Exit;
use crate::cli::follow::{Follow, Follower, ProgressMode, State, StatusFile};
use crate::cli::netmodel::Models;
use crate::cli::outputs::{Output, Records};
use crate::cli::record::{Answer, RunRecord};
use crate::cli::render::text;
use crate::cli::settings::{Part, Settings};
use crate::cli::timeline::{Facts, TimelineFile};
use crate::journal::Journal;
use crate::progress::Progress;
use crate::stats::ItemFailure;
use crate::task::Task;
use crate::{Hooks, MapError, Pool, Sink, Source};

/// What one map of the command maps and how its results are kept.
pub trait Job: Sync {
    /// What the root hands out.
    type Item: Serialize + DeserializeOwned + Clone + Send + Sync + 'static;
    /// What an item maps to.
    type Output: Serialize + DeserializeOwned + Send + 'static;
    /// The input, on the root.
    type Input: Source<Item = Self::Item> + Sync;
    /// What every rank does with an item.
    type Task: Task<Self::Item, Output = Self::Output>;
    /// What the root folds the results into.
    type Summary: Default;

    /// The name in reports and records.
    fn name(&self) -> &str;

    /// Root: the input, cut to `part` when given, and its offset: the
    /// index of its first item in the whole input (0 without a part).
    ///
    /// # Errors
    /// When the input cannot be read.
    fn input(&self, part: Option<Part>) -> anyhow::Result<(Self::Input, usize)>;

    /// The number messages give the whole input's first item: 0 for the
    /// built-in workloads (an item is its index), 1 for users' programs
    /// (`{#}`, the joblog's Seq and line numbers count from 1).
    fn numbered_from(&self) -> u64 {
        0
    }

    /// Root: what a journal of this run is checked against (the same input,
    /// parameters and part, or it is refused).
    fn identity(&self, input: &Self::Input, part: Option<Part>) -> String;

    /// Every rank: the task (`pipe` starts its workers here); `offset` is
    /// the index of the map's item 0 in the whole input (the root's, from
    /// [`Job::input`]).
    ///
    /// # Errors
    /// When it cannot be started on this rank.
    fn task(&self, pool: &Pool, offset: usize) -> anyhow::Result<Self::Task>;

    /// Root: folds a result into the summary (after it was written and
    /// logged); `index` counts from the map's first item (of its part).
    fn absorb(&self, summary: &mut Self::Summary, index: usize, result: Self::Output);

    /// Root: a failed item (skipped, or the one that ends the map).
    fn absorb_failure(&self, _summary: &mut Self::Summary, _failure: &ItemFailure) {}

    /// Root: writes a result to the ordered results (`--results`, or
    /// stdout); `index` is the item's in the whole input (`--part`).
    ///
    /// # Errors
    /// When writing fails.
    fn write_result(
        &self,
        index: usize,
        result: &Self::Output,
        out: &mut dyn Write,
    ) -> std::io::Result<()>;

    /// A result's share of the checksum, when it is not the library's (over
    /// the result's encoding): `exec` and `pipe` checksum their output
    /// bytes; `index` as for [`Job::absorb`].
    fn checksum(&self, _index: usize, _result: &Self::Output) -> Option<u64> {
        None
    }

    /// The answer, from everything absorbed.
    fn answer(&self, summary: &Self::Summary) -> Answer;

    /// Whether the ordered results go to standard output when there is no
    /// `--results` (and the report to standard error).
    fn results_to_stdout(&self) -> bool {
        false
    }

    /// Whether items write to the terminal while the map runs (commands'
    /// standard error, from any rank): then no bar unless asked for.
    fn writes_while_mapping(&self) -> bool {
        false
    }

    /// Where the job writes an output file of its own, if anywhere.
    fn output_path(&self) -> Option<&Path> {
        None
    }

    /// Writes that file's contents from the summary.
    ///
    /// # Errors
    /// When writing fails.
    fn write_output(&self, _summary: &Self::Summary, _out: &mut dyn Write) -> std::io::Result<()> {
        Ok(())
    }

    /// Root: a log of every item run in this map (the joblog), if asked
    /// for; `hosts` are the ranks' hostnames, `offset` as for [`Job::task`].
    ///
    /// # Errors
    /// When it cannot be opened.
    fn item_log(
        &self,
        _resume: bool,
        _hosts: &[String],
        _offset: usize,
    ) -> anyhow::Result<Option<Box<dyn ItemLog<Self::Output>>>> {
        Ok(None)
    }
}

/// A per-item log on the root (GNU parallel's joblog).
pub trait ItemLog<U> {
    /// Item `index` succeeded with `result`; `replayed` when it comes from
    /// the journal of an earlier run (which may have logged it already).
    ///
    /// # Errors
    /// When writing fails.
    fn done(&mut self, index: usize, result: &U, replayed: bool) -> std::io::Result<()>;

    /// An item failed.
    ///
    /// # Errors
    /// When writing fails.
    fn failed(&mut self, failure: &ItemFailure) -> std::io::Result<()>;
}

/// What the root holds before the map: the input and the files it will write.
struct Prepared<J: Job> {
    input: J::Input,
    /// The index of the input's first item in the whole input (`--part`).
    offset: usize,
    journal: Option<Journal>,
    network: Option<Models>,
    prepare_s: f64,
    json: Option<Records>,
    output: Option<Output>,
    results: Option<Output>,
    log: Option<Box<dyn ItemLog<J::Output>>>,
    status: Option<StatusFile>,
    timeline: Option<TimelineFile>,
}

/// Root only: the journal first (a busy journal refuses the run before it
/// touches any output), then the outputs (fail fast).
fn prepare<J: Job>(settings: &Settings, job: &J, hosts: &[String]) -> anyhow::Result<Prepared<J>> {
    let start = Instant::now();
    let (input, offset) = job.input(settings.part)?;
    let journal = match &settings.journal {
        Some(dir) => {
            let mut identity = job.identity(&input, settings.part);
            // A part's items are numbered from where it starts ({#}, the
            // results' indices): an input changed before the part moves it.
            if settings.part.is_some() {
                identity += &format!("; first item {offset}");
            }
            let journal = Journal::open(dir, &identity, settings.resume)?;
            if let Some((offset, bytes)) = journal.dropped() {
                eprintln!(
                    "hpcmap: journal {}: dropped {bytes} bytes of a torn or corrupt record at offset {offset}; those items are computed again",
                    journal.path().display()
                );
            }
            if journal.retried() > 0 {
                eprintln!(
                    "hpcmap: journal {}: {} items of chunks with failed items are mapped again",
                    journal.path().display(),
                    journal.retried()
                );
            }
            Some(journal)
        }
        None => None,
    };
    let json = settings.json.as_deref().map(Records::open).transpose()?;
    let network = settings
        .network
        .as_ref()
        .map(|(path, named)| Models::open(path, *named))
        .transpose()?;
    let output = job.output_path().map(Output::create).transpose()?;
    let results = match (&settings.results, job.results_to_stdout()) {
        (Some(path), _) => Some(Output::create(path)?),
        (None, true) => Some(Output::stdout()?),
        (None, false) => None,
    };
    let log = job.item_log(settings.resume, hosts, offset)?;
    let timeline = settings
        .timeline
        .as_deref()
        .map(TimelineFile::create)
        .transpose()?;
    // Last: once it exists it must end in a final state, which only a
    // prepared run writes.
    let status = settings
        .status
        .as_deref()
        .map(|path| {
            StatusFile::open(
                path,
                job.name(),
                settings.journal.clone(),
                hosts,
                input.len(),
            )
        })
        .transpose()?;
    let prepare_s = start.elapsed().as_secs_f64();
    info!(items = input.len(), seconds = prepare_s, "input ready");
    Ok(Prepared {
        input,
        offset,
        journal,
        network,
        prepare_s,
        json,
        output,
        results,
        log,
        status,
        timeline,
    })
}

/// The root's sink: every result into the summary, the ordered results
/// and the log; a failed write stops the map at once (what is done is
/// journaled) instead of after all the work.
struct RunSink<'a, J: Job> {
    job: &'a J,
    summary: J::Summary,
    results: Option<Output>,
    log: Option<Box<dyn ItemLog<J::Output>>>,
    /// Items replayed from the journal (the log decides whether it has them).
    replayed: Vec<Range<usize>>,
    /// The index of the map's item 0 in the whole input (`--part`).
    offset: usize,
    /// Failed items not yet logged: a failure arrives with its chunk, and
    /// waits for the results before it to keep the log in input order
    /// (unless results are `--unordered`: then it is logged as it comes).
    unlogged: std::collections::BTreeMap<usize, ItemFailure>,
    ordered: bool,
    write_error: Option<(String, std::io::Error)>,
    written: usize,
    checksum: Option<u64>,
}

impl<J: Job> RunSink<'_, J> {
    fn stop(&mut self, what: String, e: std::io::Error) {
        if self.write_error.is_none() {
            self.write_error = Some((what, e));
            crate::interrupt::stop();
        }
    }

    fn replayed(&self, index: usize) -> bool {
        let at = self.replayed.partition_point(|r| r.end <= index);
        self.replayed.get(at).is_some_and(|r| r.contains(&index))
    }

    /// Logs the failed items before `index` (all of them with `usize::MAX`,
    /// when the map has ended).
    fn log_failures_before(&mut self, index: usize) {
        while let Some(entry) = self.unlogged.first_entry()
            && *entry.key() < index
        {
            let failure = entry.remove();
            if let Some(log) = self.log.as_mut()
                && let Err(e) = log.failed(&failure)
            {
                self.stop("the joblog".into(), e);
            }
        }
    }
}

impl<J: Job> Sink<J::Output> for RunSink<'_, J> {
    fn item(&mut self, index: usize, result: J::Output) {
        if let Some(out) = self.results.as_mut()
            && self.write_error.is_none()
        {
            match self
                .job
                .write_result(self.offset + index, &result, out.writer())
            {
                Ok(()) => self.written += 1,
                Err(e) => self.stop("the results".into(), e),
            }
        }
        if let Some(sum) = self.job.checksum(index, &result) {
            self.checksum = Some(self.checksum.unwrap_or(0).wrapping_add(sum));
        }
        self.log_failures_before(index);
        let replayed = self.replayed(index);
        if let Some(log) = self.log.as_mut()
            && let Err(e) = log.done(index, &result, replayed)
        {
            self.stop("the joblog".into(), e);
        }
        self.job.absorb(&mut self.summary, index, result);
    }

    fn failed(&mut self, failure: &ItemFailure) {
        if self.log.is_some() {
            self.unlogged
                .insert(failure.index as usize, failure.clone());
            if !self.ordered {
                self.log_failures_before(usize::MAX);
            }
        }
        self.job.absorb_failure(&mut self.summary, failure);
    }
}

/// Runs `job` on every rank: prepare, start, map, report.
///
/// # Errors
/// On the root: what went wrong. On other ranks, when the root could not
/// start: [`Exit::Said`] with the root's exit code (the root says why), or
/// [`MapError::RootFailed`] when a rank could not start its task.
pub fn run<J: Job>(pool: &Pool, settings: &Settings, job: &J) -> anyhow::Result<()> {
    let progress = Progress::new();
    let mut status = None;
    let result = map_and_report(pool, settings, job, &progress, &mut status);
    // The status file's last word is the run's, written after everything
    // else it did (results, timeline, records) succeeded or failed.
    if let Some(mut status) = status {
        let state = match &result {
            Ok(()) => State::Done,
            Err(e) => match e.downcast_ref::<Exit>() {
                Some(Exit::Skipped(_)) => State::Skipped,
                Some(Exit::Interrupted(_)) => State::Interrupted,
                _ => State::Failed,
            },
        };
        status.write(&progress.snapshot(), state);
    }
    result
}

/// [`run`] but the status file's final state: the file is handed over in
/// `status` as soon as it exists (root).
fn map_and_report<J: Job>(
    pool: &Pool,
    settings: &Settings,
    job: &J,
    progress: &Progress,
    status: &mut Option<StatusFile>,
) -> anyhow::Result<()> {
    let mut prepared = None;
    let mut failure = None;
    if pool.is_root() {
        match prepare(settings, job, pool.hosts()) {
            Ok(p) => prepared = Some(p),
            Err(e) => failure = Some(e),
        }
    }
    // Everyone learns in one broadcast whether the root is ready, so nobody
    // waits in a collective the root will never enter. Ready: where its
    // input starts in the whole input, so every rank numbers items as the
    // whole input does ({#} under --part). Not: its exit code, which every
    // rank ends with (the launcher reports the first rank to exit non-zero;
    // a usage error is 2 on all of them).
    let ready: Result<usize, u8> = match (&prepared, &failure) {
        (Some(p), _) => Ok(p.offset),
        (None, Some(e)) => Err(super::exit_code(e).0),
        (None, None) => Ok(0), // not the root: the root's value comes
    };
    let ready: Result<usize, u8> = pool.broadcast(pool.is_root().then_some(&ready));
    let offset = match ready {
        Ok(offset) => offset,
        Err(code) => return Err(failure.unwrap_or_else(|| Exit::Said(code).into())),
    };
    if let Some(p) = prepared.as_mut() {
        *status = p.status.take();
        let resumed = p.journal.as_ref().map_or(0, Journal::done_items);
        progress.start(p.input.len(), resumed, pool.size());
    }
    let first_number = offset as u64 + job.numbered_from();
    let task = start_task(pool, job, offset)?;
    // The root decides the deadline; every rank counts down on its own clock.
    let left = pool
        .is_root()
        .then(|| crate::cli::deadline::seconds_left(settings.deadline));
    let left: Option<f64> = pool.broadcast(left.as_ref());
    let mut options = settings.map;
    options.deadline = left.map(|s| Instant::now() + std::time::Duration::from_secs_f64(s));

    let mut journal = prepared.as_mut().and_then(|p| p.journal.take());
    let resumed = journal.as_ref().map_or(0, Journal::done_items);
    let replayed = journal
        .as_ref()
        .map(|j| j.entries().iter().map(|(&s, e)| s..s + e.count).collect())
        .unwrap_or_default();
    let mut sink = RunSink {
        job,
        summary: J::Summary::default(),
        results: prepared.as_mut().and_then(|p| p.results.take()),
        log: prepared.as_mut().and_then(|p| p.log.take()),
        replayed,
        offset,
        unlogged: std::collections::BTreeMap::new(),
        ordered: !settings.unordered,
        write_error: None,
        written: 0,
        checksum: None,
    };
    let follow = prepared.as_ref().map(|_| Follow {
        mode: ProgressMode::resolve(
            settings.progress,
            settings.quiet,
            job.writes_while_mapping(),
        ),
        interval: settings.progress_interval,
        status: status.take(),
        hidden: false,
    });
    let input = prepared.as_ref().map(|p| &p.input);
    let follow = follow.filter(|f| f.mode != ProgressMode::None || f.status.is_some());
    let mapped = std::thread::scope(|scope| {
        let follower = follow.map(|f| Follower::start(scope, f, progress));
        let hooks = Hooks {
            journal: journal.as_mut(),
            progress: follower.as_ref().map(|_| progress),
        };
        let mapped = pool.map_task(input, &options, &task, hooks, &mut sink);
        if let Some(follower) = follower {
            *status = follower.stop();
        }
        mapped
    });
    drop(task); // workers end with the map
    sink.log_failures_before(usize::MAX);
    if let Some((what, e)) = sink.write_error.take() {
        let path = match what.as_str() {
            "the results" => settings
                .results
                .as_deref()
                .map_or("standard output".into(), |p| p.display().to_string()),
            _ => what,
        };
        let total = prepared.as_ref().map_or(0, |p| p.input.len());
        return Err(anyhow::Error::from(e).context(format!(
            "cannot write {path} (stopped after {} of {total} results)",
            sink.written
        )));
    }
    let stats = mapped.map_err(|e| map_error(e, settings, first_number))?;
    info!(
        compute_s = stats.phases.compute.max,
        "this rank's share is done"
    );
    let Some(mut prepared) = prepared else {
        return Ok(());
    };
    if let (Some(file), Some(trace)) = (prepared.timeline.take(), &stats.trace) {
        let path = settings.timeline.as_deref().unwrap_or(Path::new("?"));
        file.write(trace, &Facts::of(job.name(), &stats, pool.hosts()))
            .with_context(|| format!("cannot write the timeline {}", path.display()))?;
    }
    if let Some(file) = sink.results.take() {
        file.finish()?;
    }
    let skipped = !stats.skipped.is_empty();
    if skipped && prepared.output.is_some() {
        eprintln!(
            "hpcmap: output {} not written: {} items were skipped",
            job.output_path().unwrap_or(Path::new("?")).display(),
            stats.skipped.len()
        );
    } else if let Some(mut file) = prepared.output {
        job.write_output(&sink.summary, file.writer())
            .map_err(anyhow::Error::from)
            .and_then(|()| file.finish())
            .with_context(|| {
                format!(
                    "cannot write output {}",
                    job.output_path().unwrap_or(Path::new("?")).display()
                )
            })?;
    }
    let mut record = RunRecord::new(job.name(), &stats, pool.hosts(), job.answer(&sink.summary));
    if let Some(sum) = sink.checksum {
        record.checksum = format!("{sum:016x}");
    }
    record.prepare_s = prepared.prepare_s;
    record.part = settings.part.map(|p| p.to_string());
    record.first_number = first_number;
    record.ordered = !settings.unordered;
    record.explain(prepared.network.as_ref());
    record.resumed_items = resumed as u64;
    let report = if settings.quiet {
        format!("answer: {}\n", record.answer.text)
    } else {
        text::render(&record)
    };
    if job.results_to_stdout() {
        eprint!("{report}");
    } else {
        print!("{report}");
    }
    if let Some(mut records) = prepared.json {
        records.append(&record.json_line())?;
    }
    if skipped {
        return Err(Exit::Skipped(stats.skipped.len()).into());
    }
    Ok(())
}

/// Every rank starts the job's task; if any rank cannot, every rank stops
/// before work is handed out, and the root says which rank failed and why.
fn start_task<J: Job>(pool: &Pool, job: &J, offset: usize) -> anyhow::Result<J::Task> {
    let started = job.task(pool, offset);
    let mine = started.as_ref().err().map(|e| format!("{e:#}"));
    let all = pool.gather(&mine);
    let failed = all.and_then(|all| {
        all.into_iter()
            .enumerate()
            .find_map(|(rank, e)| e.map(|e| (rank, e)))
    });
    let verdict: Option<(usize, String)> = pool.broadcast(pool.is_root().then_some(&failed));
    match (verdict, started) {
        (None, Ok(task)) => Ok(task),
        (None, Err(e)) => Err(e),
        (Some((rank, e)), _) if pool.is_root() => {
            let host = pool.hosts().get(rank).cloned().unwrap_or_default();
            anyhow::bail!("rank {rank} ({host}) could not start: {e}")
        }
        (Some(_), _) => Err(MapError::RootFailed.into()),
    }
}

/// A map's error as the user reads it: an interrupted map's with what to
/// do next, a failed item's under the number the user knows it by
/// (`first_number` is the number of the map's item 0).
fn map_error(e: MapError, settings: &Settings, first_number: u64) -> anyhow::Error {
    let (signal, done, total) = match e {
        MapError::Interrupted {
            signal,
            done,
            total,
        } => (signal, done, total),
        MapError::ItemFailed { mut failure, host } => {
            failure.index += first_number;
            let policy = match settings.map.on_error {
                crate::OnError::Retry(n) => format!("--on-error retry={n}: its retries failed too"),
                _ => "--on-error abort".into(),
            };
            return Exit::Failed(format!(
                "{}; the run was ended ({policy})",
                failure.describe(&host)
            ))
            .into();
        }
        e => return e.into(),
    };
    let how = match &settings.journal {
        Some(dir) => format!(
            "journaled in {}; run the same command with --resume to finish",
            dir.display()
        ),
        None => "nothing was saved: use --journal DIR to make runs resumable".into(),
    };
    Exit::Interrupted(format!(
        "interrupted by {signal}: {done} of {total} items done, {how}"
    ))
    .into()
}
