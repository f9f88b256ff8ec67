//! One `hpcmap run`: build the workload, share the root's readiness, map,
//! and on the root write outputs and the report.

use std::time::Instant;

use tracing::info;

use hpcmap::report::model::Hockney;
use hpcmap::report::{RunRecord, json, text};
use hpcmap::workloads::{
    Workload, mandelbrot::Mandelbrot, pi::Pi, primes::Primes, spin::Spin, square::Square,
    wordcount::WordCount,
};
use hpcmap::{MapError, Pool};

use crate::cli::{RunConfig, WorkloadArgs};
use crate::files::{PendingFile, open_append};

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
        } => visitor.with(&Spin {
            items: *items,
            micros: *micros,
            skew: *skew,
            fail_at: *fail_at,
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
struct Prepared<T> {
    items: Vec<T>,
    network: Option<Hockney>,
    prepare_s: f64,
    json: Option<std::fs::File>,
    output: Option<PendingFile>,
}

/// Root only: opens output files first (fail fast), then builds the input.
fn prepare<W: Workload>(config: &RunConfig, w: &W) -> anyhow::Result<Prepared<W::Item>> {
    let json = config.json.as_deref().map(open_append).transpose()?;
    let network = match &config.network {
        Some((path, true)) => Some(Hockney::load(path)?),
        Some((path, false)) if path.exists() => Some(Hockney::load(path)?),
        _ => None,
    };
    let output = w.output_path().map(PendingFile::create).transpose()?;
    let start = Instant::now();
    let mut items = w.items()?;
    if let Some(part) = config.part {
        let range = part.range(items.len());
        items.truncate(range.end);
        items.drain(..range.start);
    }
    let prepare_s = start.elapsed().as_secs_f64();
    info!(items = items.len(), seconds = prepare_s, "input built");
    Ok(Prepared {
        items,
        network,
        prepare_s,
        json,
        output,
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

    let input = prepared.as_ref().map(|p| &p.items[..]);
    let (results, stats) = if config.unordered {
        let mut arrivals = Vec::new();
        let stats = pool.map_unordered_with(
            input,
            &config.map,
            |item| w.map(item),
            |index, result| arrivals.push((index, result)),
        )?;
        // The answer needs every result; the arrival order only shows in the timings.
        arrivals.sort_unstable_by_key(|&(index, _)| index);
        let results = pool
            .is_root()
            .then(|| arrivals.into_iter().map(|(_, r)| r).collect());
        (results, stats)
    } else {
        let mapped = pool.map_with(input, &config.map, |item| w.map(item))?;
        (mapped.results, mapped.stats)
    };
    info!(
        compute_s = stats.phases.compute.max,
        "this rank's share is done"
    );
    let (Some(results), Some(prepared)) = (results, prepared) else {
        return Ok(());
    };

    let answer = w.answer(&results);
    if let Some(file) = prepared.output {
        file.commit(|out| w.write_output(&results, out))?;
    }
    let mut record = RunRecord::new(
        w.name(),
        &stats,
        pool.hosts(),
        prepared.prepare_s,
        answer,
        config.part.map(|p| p.to_string()),
        !config.unordered,
    );
    if let Some(network) = &prepared.network {
        record.explain(network);
    }
    if config.quiet {
        println!("answer: {}", record.answer.text);
    } else {
        print!("{}", text::render(&record));
    }
    if let (Some(mut file), Some(path)) = (prepared.json, &config.json) {
        json::write_line(&record, &mut file)
            .map_err(|e| anyhow::anyhow!("cannot append to --json file {}: {e}", path.display()))?;
    }
    Ok(())
}
