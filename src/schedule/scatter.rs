//! The static schedule: one Scatterv out, one Gatherv back.
//!
//! 1. The root plans the chunks (`chunking::StaticPlan`), encodes the other
//!    ranks' chunks back to back and broadcasts the [`Plan`] frame (or that
//!    it failed, so nobody blocks in a collective the root never enters).
//! 2. Scatter of byte counts, Scatterv of the bytes. The root's own share
//!    never becomes bytes: it maps it straight from the input.
//! 3. Every rank maps its chunks; the others encode their results.
//! 4. Gather of one [`Row`] per rank (items, times, each chunk's result
//!    length). The root blocks here until the slowest rank is done: that is
//!    the "wait" phase.
//! 5. The root broadcasts whether the results fit one Gatherv, gathers the
//!    other ranks' result bytes, and hands every chunk to the collector in
//!    item order (its own as values).
//!
//! A walltime signal makes every rank abandon what it has left; the
//! collectives still complete, and the map ends interrupted.

use std::time::Instant;

use serde::{Serialize, de::DeserializeOwned};

use super::Map;
use crate::chunking::StaticPlan;
use crate::codec::{self, Decoder};
use crate::collect::{Collector, Received, Sink};
use crate::error::MapError;
use crate::executor::{Batch, Chunk, States};
use crate::failure::fatal;
use crate::schedule::Schedule;
use crate::source::Source;
use crate::stats::{MapStats, Meter};
use crate::task::Task;
use crate::transport::{self, MAX_MESSAGE};
use crate::wire::{self, Plan, Row};

/// The root's encoding of the other ranks' chunks: all bytes, and each
/// rank's share of them (its own is 0).
struct Encoded {
    bytes: Vec<u8>,
    lens: Vec<usize>,
}

/// Items encoded at once by [`encode_others`].
const PIECE: usize = 1 << 16;

fn encode_others<I>(input: &I, plan: &StaticPlan) -> Result<Encoded, MapError>
where
    I: Source + ?Sized,
    I::Item: Serialize,
{
    let mut bytes = Vec::new();
    let mut lens = vec![0usize; plan.ranks];
    for (rank, len) in lens.iter_mut().enumerate().skip(1) {
        for k in plan.chunks_of(rank) {
            // In pieces, so an input far over the limit fails at the limit
            // instead of after building (or generating) all of it.
            let range = plan.range(k);
            for start in range.clone().step_by(PIECE) {
                let piece = start..(start + PIECE).min(range.end);
                *len += input.with_range(piece, |items| codec::encode_items(items, &mut bytes))?;
                if bytes.len() > MAX_MESSAGE {
                    return Err(MapError::TooLarge { bytes: bytes.len() });
                }
            }
        }
    }
    Ok(Encoded { bytes, lens })
}

/// Runs one static map; see the module docs.
pub fn run<I, T, K, S>(
    map: Map<'_, I, K>,
    collector: &mut Collector<'_, K::Output, S>,
) -> Result<MapStats, MapError>
where
    I: Source<Item = T> + Sync + ?Sized,
    T: Serialize + DeserializeOwned + Send,
    K: Task<T>,
    K::Output: Serialize + DeserializeOwned + Send,
    S: Sink<K::Output>,
{
    let t = map.transport;
    let (rank, size) = (t.rank(), t.size());
    let mut meter = Meter::start();

    // 1. Plan and encode on the root; everyone learns the plan.
    let mut root_error = None;
    let mut encoded = None;
    let mut frame = Plan::default();
    if let Some(input) = map.input.filter(|_| t.is_root()) {
        let plan = StaticPlan::over(map.todo.clone(), size, map.options.chunk);
        match encode_others(input, &plan) {
            Ok(e) => {
                encoded = Some(e);
                frame = Plan {
                    ok: true,
                    chunk: plan.chunk,
                    spans: plan.spans().to_vec(),
                };
            }
            Err(e) => root_error = Some(e),
        }
    }
    meter.phases.serialize = meter.elapsed();
    let frame = transport::broadcast_bytes(t, t.is_root().then(|| frame.encode()));
    let frame = Plan::parse(&frame).unwrap_or_else(|e| fatal(&e.to_string()));
    if !frame.ok {
        return Err(root_error.unwrap_or(MapError::RootFailed));
    }
    let plan = StaticPlan::over(frame.spans, size, Some(frame.chunk));

    // 2. Scatter to the other ranks.
    let started = Instant::now();
    let my_len = transport::scatter_lens(t, encoded.as_ref().map(|e| &e.lens[..]));
    let mut mine = vec![0u8; my_len];
    t.scatterv(
        encoded.as_ref().map(|e| (&e.bytes[..], &e.lens[..])),
        &mut mine,
    );
    meter.bytes_scattered = encoded.as_ref().map_or(0, |e| e.bytes.len() as u64);
    drop(encoded);
    meter.phases.scatter = started.elapsed().as_secs_f64();

    // 3. Compute this rank's chunks.
    let started = Instant::now();
    let states = States::new(map.executor.threads());
    let mut row = Row::default();
    let mut own: Vec<Batch<K::Output>> = Vec::new();
    let mut out = Vec::new();
    let mut at = 0usize;
    let mut stopped = false;
    for k in plan.chunks_of(rank) {
        let range = plan.range(k);
        row.items += range.len() as u64;
        row.chunks += 1;
        // After a chunk stopped (a failure under abort, a signal) the map
        // ends in an error: the rest of this rank's chunks are not mapped.
        let batch = if stopped {
            Batch::abandoned()
        } else if let Some(input) = map.input.filter(|_| t.is_root()) {
            let again = |i: usize| input.items(i..i + 1).next().expect("item in range");
            let chunk = Chunk {
                first: range.start,
                count: range.len(),
                items: input.items(range.clone()),
                again: &again,
            };
            map.executor
                .run(map.task, &states, map.options.on_error, chunk, None)
        } else {
            let from = at;
            let mine = &mine[..];
            let again = |i: usize| {
                codec::decode_nth(&mine[from..], i - range.start)
                    .unwrap_or_else(|e| fatal(&format!("item {i} again: {e}")))
            };
            let first = range.start;
            let items = Decoder::new(mine, &mut at, range.len())
                .map(|item| item.unwrap_or_else(|e| fatal(&format!("chunk at item {first}: {e}"))));
            let chunk = Chunk {
                first,
                count: range.len(),
                items,
                again: &again,
            };
            map.executor
                .run(map.task, &states, map.options.on_error, chunk, None)
        };
        row.count_threads(&batch.per_thread);
        if !batch.outcome.complete {
            stopped = true;
            if batch.stopped_by != 0 {
                row.stopped_by = batch.stopped_by;
            }
        }
        if t.is_root() {
            own.push(batch);
        } else {
            let before = out.len();
            batch.outcome.encode(&mut out);
            codec::encode_items(&batch.results, &mut out).unwrap_or_else(|e| {
                fatal(&format!(
                    "results of items {}..{}: {e}",
                    range.start, range.end
                ))
            });
            row.chunk_lens.push((out.len() - before) as u64);
        }
    }
    drop(mine);
    row.compute_ns = started.elapsed().as_nanos() as u64;

    // 4. Every rank's row (the root waits here for the slowest rank).
    let started = Instant::now();
    let rows = transport::gather_bytes(t, &row.encode()).map(|rows| {
        rows.iter()
            .map(|r| Row::parse(r).unwrap_or_else(|e| fatal(&e.to_string())))
            .collect::<Vec<Row>>()
    });
    meter.phases.wait = started.elapsed().as_secs_f64();

    // 5. Gather the other ranks' results if they fit one collective.
    let lens: Option<Vec<usize>> = rows.as_ref().map(|rows| {
        rows.iter()
            .enumerate()
            .map(|(r, row)| {
                if r == 0 {
                    0
                } else {
                    row.chunk_lens.iter().sum::<u64>() as usize
                }
            })
            .collect()
    });
    let total = lens.as_ref().map_or(0, |l| l.iter().sum::<usize>());
    let mut verdict = wire::verdict(total <= MAX_MESSAGE);
    t.broadcast(&mut verdict);
    if !wire::is_ok(&verdict) {
        return Err(if t.is_root() {
            MapError::TooLarge { bytes: total }
        } else {
            MapError::RootFailed
        });
    }
    let started = Instant::now();
    let mut gathered = vec![0u8; total];
    t.gatherv(&out, lens.as_ref().map(|l| (&mut gathered[..], &l[..])));
    meter.phases.gather = started.elapsed().as_secs_f64();

    let (Some(rows), Some(lens)) = (rows, lens) else {
        return Ok(MapStats::of_rank(
            Schedule::Static,
            &row,
            size,
            map.executor.threads(),
        ));
    };

    // 6. Hand every chunk to the collector in item order.
    let started = Instant::now();
    meter.bytes_gathered = total as u64;
    meter.chunks = plan.chunks() as u64;
    meter.largest_chunk = plan.chunk as u64;
    let mut cursor: Vec<usize> = lens
        .iter()
        .scan(0, |at, &l| {
            *at += l;
            Some(*at - l)
        })
        .collect();
    let mut own = own.into_iter();
    for k in 0..plan.chunks() {
        let (owner, range) = (k % size, plan.range(k));
        if owner == 0 {
            let batch = own.next().expect("one batch per own chunk");
            collector.add_batch(range.start, range.len(), batch, 0);
        } else {
            let len = rows[owner].chunk_lens[k / size] as usize;
            let payload = &gathered[cursor[owner]..cursor[owner] + len];
            cursor[owner] += len;
            collector.add_payload(range.start, range.len(), Received::Slice(payload), owner);
        }
    }
    meter.phases.assemble = started.elapsed().as_secs_f64();
    Ok(MapStats::assemble(
        Schedule::Static,
        meter,
        &rows,
        map.executor.threads(),
        collector.checksum(),
    ))
}
