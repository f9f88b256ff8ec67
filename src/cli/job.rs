//! One `hpcmap run`: build the workload, share the root's readiness, map,
//! and on the root write outputs and the report.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use tracing::info;

use crate::cli::Exit;
use crate::cli::args::{RunConfig, WorkloadArgs};
use crate::cli::netmodel::Hockney;
use crate::cli::outputs::{Output, Records, write_item};
use crate::cli::record::RunRecord;
use crate::cli::render::text;
use crate::cli::workloads::{
    Input, Workload, mandelbrot::Mandelbrot, pi::Pi, primes::Primes, spin::Spin, square::Square,
    wordcount::WordCount,
};
use crate::journal::Journal;
use crate::task::Func;
use crate::{MapError, Pool, Source};

/// Runs the configured workload on every rank.
///
/// # Errors
/// On the root: what went wrong. On other ranks: [`MapError::RootFailed`]
/// when the root could not start (the root prints the reason).
pub fn run(pool: &Pool, config: &RunConfig) -> anyhow::Result<()> {
    dispatch(&config.workload, Execute { pool, config })
}

/// Something to do with one concrete workload type (the visitor that turns
/// the command line's workload enum into a generic call).
pub trait WithWorkload {
    /// What doing it returns.
    type Output;
    /// Does it with `w`.
    fn with<W: Workload>(self, w: &W) -> Self::Output;
}

/// Builds the workload described by `args` and hands it to `visitor`.
pub fn dispatch<V: WithWorkload>(args: &WorkloadArgs, visitor: V) -> V::Output {
    match args {
        WorkloadArgs::Square { items } => visitor.with(&Square { items: *items }),
        WorkloadArgs::Pi {
            samples,
            tasks,
            seed,
        } => visitor.with(&Pi {
            samples: *samples,
            tasks: *tasks,
            seed: *seed,
        }),
        WorkloadArgs::Mandelbrot {
            width,
            height,
            max_iter,
            output,
        } => visitor.with(&Mandelbrot {
            width: *width,
            height: *height,
            max_iter: *max_iter,
            output: output.clone(),
        }),
        WorkloadArgs::Primes { limit, block } => visitor.with(&Primes::new(*limit, *block)),
        WorkloadArgs::Wordcount { input, top } => visitor.with(&WordCount {
            inputs: input.clone(),
            top: *top,
        }),
        WorkloadArgs::Spin {
            items,
            micros,
            skew,
            fail_at,
            fail_times,
        } => visitor.with(&Spin {
            fail_at: fail_at.clone(),
            fail_times: *fail_times,
            ..Spin::new(*items, *micros, *skew)
        }),
    }
}

/// `hpcmap run`: map the workload and report.
struct Execute<'a> {
    pool: &'a Pool,
    config: &'a RunConfig,
}

impl WithWorkload for Execute<'_> {
    type Output = anyhow::Result<()>;
    fn with<W: Workload>(self, w: &W) -> anyhow::Result<()> {
        execute(self.pool, self.config, w)
    }
}

/// What the root holds before the map: the input and the files it will write.
struct Prepared<'w, T> {
    input: Input<'w, T>,
    journal: Option<Journal>,
    network: Option<Hockney>,
    prepare_s: f64,
    json: Option<Records>,
    output: Option<Output>,
    results: Option<Output>,
}

/// Root only: the journal first (a busy journal refuses the run before it
/// touches any output), then the outputs (fail fast), then the input.
fn prepare<'w, W: Workload>(config: &RunConfig, w: &'w W) -> anyhow::Result<Prepared<'w, W::Item>> {
    let start = Instant::now();
    let mut input = w.input()?;
    if let Some(part) = config.part {
        let range = part.range(input.len());
        input = input.slice(range);
    }
    let journal = match &config.journal {
        Some(dir) => {
            let journal = Journal::open(dir, &identity(config, &input), config.resume)?;
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
    let json = config.json.as_deref().map(Records::open).transpose()?;
    let network = match &config.network {
        Some((path, true)) => Some(Hockney::load(path)?),
        Some((path, false)) if path.exists() => Some(Hockney::load(path)?),
        _ => None,
    };
    let output = w.output_path().map(Output::create).transpose()?;
    let results = config.results.as_deref().map(Output::create).transpose()?;
    let prepare_s = start.elapsed().as_secs_f64();
    info!(items = input.len(), seconds = prepare_s, "input built");
    Ok(Prepared {
        input,
        journal,
        network,
        prepare_s,
        json,
        output,
        results,
    })
}

fn execute<W: Workload>(pool: &Pool, config: &RunConfig, w: &W) -> anyhow::Result<()> {
    let mut prepared = None;
    let mut failure = None;
    if pool.is_root() {
        match prepare(config, w) {
            Ok(p) => prepared = Some(p),
            Err(e) => failure = Some(e),
        }
    }
    // Everyone learns whether the root is ready, so nobody waits in a
    // collective the root will never enter.
    let ready: bool = pool.broadcast(pool.is_root().then_some(&failure.is_none()));
    if !ready {
        return Err(failure.unwrap_or_else(|| MapError::RootFailed.into()));
    }

    // The root folds results into the summary as they arrive and streams
    // them to --results: it never holds them all. A failed write stops the
    // map at once (what is done is journaled) instead of after all the work.
    let mut summary = W::Summary::default();
    let mut results_file = prepared.as_mut().and_then(|p| p.results.take());
    let mut write_error = None;
    let mut written = 0usize;
    let sink = |index: usize, result: W::Output| {
        if let Some(out) = results_file.as_mut()
            && write_error.is_none()
        {
            match write_item(index, &result, out.writer()) {
                Ok(()) => written += 1,
                Err(e) => {
                    write_error = Some(e);
                    crate::interrupt::stop();
                }
            }
        }
        w.absorb(&mut summary, index, result);
    };
    let mut journal = prepared.as_mut().and_then(|p| p.journal.take());
    let resumed = journal.as_ref().map_or(0, Journal::done_items);
    let input = prepared.as_ref().map(|p| &p.input);
    let task = Func(|item| w.map(item));
    let mapped = pool.map_task(input, &config.map, &task, journal.as_mut(), sink);
    if let Some(e) = write_error {
        let path = config.results.as_deref().unwrap_or(Path::new("?"));
        let total = prepared.as_ref().map_or(0, |p| p.input.len());
        return Err(anyhow::Error::from(e).context(format!(
            "cannot write --results {} (stopped after {written} of {total} results)",
            path.display()
        )));
    }
    let stats = mapped.map_err(|e| interrupted(e, config))?;
    info!(
        compute_s = stats.phases.compute.max,
        "this rank's share is done"
    );
    let Some(prepared) = prepared else {
        return Ok(());
    };
    if let Some(file) = results_file {
        file.finish()?;
    }
    let skipped = !stats.skipped.is_empty();
    if skipped && prepared.output.is_some() {
        eprintln!(
            "hpcmap: output {} not written: {} items were skipped",
            w.output_path().unwrap_or(Path::new("?")).display(),
            stats.skipped.len()
        );
    } else if let Some(mut file) = prepared.output {
        w.write_output(&summary, file.writer())
            .map_err(anyhow::Error::from)
            .and_then(|()| file.finish())
            .with_context(|| {
                format!(
                    "cannot write output {}",
                    w.output_path().unwrap_or(Path::new("?")).display()
                )
            })?;
    }
    let mut record = RunRecord::new(w.name(), &stats, pool.hosts(), w.answer(&summary));
    record.prepare_s = prepared.prepare_s;
    record.part = config.part.map(|p| p.to_string());
    record.ordered = !config.unordered;
    if let Some(network) = &prepared.network {
        record.explain(network);
    }
    record.resumed_items = resumed as u64;
    if config.quiet {
        println!("answer: {}", record.answer.text);
    } else {
        print!("{}", text::render(&record));
    }
    if let Some(mut records) = prepared.json {
        records.append(&record.json_line())?;
    }
    if skipped {
        return Err(Exit::Skipped(stats.skipped.len()).into());
    }
    Ok(())
}

/// An interrupted map's error, with what the user can do next.
fn interrupted(e: MapError, config: &RunConfig) -> anyhow::Error {
    let MapError::Interrupted {
        signal,
        done,
        total,
    } = &e
    else {
        return e.into();
    };
    let how = match &config.journal {
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

/// What a journal is checked against: the workload and its parameters, the
/// part, and for inputs read from files a digest of their contents. Output
/// paths are left out: they do not change the results.
fn identity<T: serde::Serialize + Clone + Send + Sync>(
    config: &RunConfig,
    input: &Input<'_, T>,
) -> String {
    let mut args = config.workload.clone();
    if let WorkloadArgs::Mandelbrot { output, .. } = &mut args {
        output.take();
    }
    let content = match input {
        Input::Items(items) => crate::checksum(items).map_or(0, |c| c),
        Input::Generated(_) => 0,
    };
    let part = config
        .part
        .map(|p| p.to_string())
        .unwrap_or_else(|| "all".into());
    format!(
        "hpcmap journal v1; {args:?}; part {part}; {} items; content {content:016x}",
        input.len()
    )
}
