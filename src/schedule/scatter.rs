//! The static schedule: one Scatterv out, one Gatherv back.
//!
//! 1. The root plans the chunks (`chunking::StaticPlan`) and broadcasts the
//!    [`Plan`] frame (or that it failed, so nobody blocks in a collective the
//!    root never enters). The other ranks' items are encoded back to back,
//!    or, when they are plain and already lie in memory in rank order (a
//!    slice, one block per rank), sent straight from the input.
//! 2. Scatter of byte counts, Scatterv of the bytes into each rank's kept
//!    receive buffer. The root's own share never becomes bytes: it maps it
//!    straight from the input.
//! 3. Every rank maps its chunks; the others keep their results' bytes
//!    (plain results of one chunk: the results vector itself) and checksum
//!    plain ones as they go.
//! 4. Gather of one [`Row`] per rank (items, times, each chunk's outcome,
//!    result length and checksum). The root blocks here until the slowest
//!    rank is done: that is the "wait" phase.
//! 5. The root broadcasts whether the results fit one Gatherv and gathers
//!    them: plain results of complete chunks straight into the sink's own
//!    vector when it offers one, else into a kept buffer, and hands every
//!    chunk to the collector in item order (its own as values).
//!
//! A walltime signal makes every rank abandon what it has left; the
//! collectives still complete, and the map ends interrupted.

use std::time::Instant;

use serde::{Serialize, de::DeserializeOwned};

use super::Map;
use crate::chunking::StaticPlan;
use crate::codec::{self, Decoder, plain};
use crate::collect::{Collector, Direct, Sink};
use crate::error::MapError;
use crate::executor::{Batch, Chunk, States};
use crate::failure::fatal;
use crate::schedule::Schedule;
use crate::source::Source;
use crate::stats::{MapStats, Meter};
use crate::task::Task;
use crate::trace::{LANE_MPI, Phase, Recorder};
use crate::transport::{self, MAX_MESSAGE};
use crate::wire::{self, Outcome, Plan, Row};

/// Items encoded at once by [`encode_others`].
const PIECE: usize = 1 << 16;

/// What the root scatters: the other ranks' encoded items (borrowed from
/// the input when they are plain and in place), and each rank's share.
struct Outgoing<'a> {
    bytes: std::borrow::Cow<'a, [u8]>,
    lens: Vec<usize>,
}

/// The other ranks' items as bytes, in rank order.
fn encode_others<'a, I>(input: &'a I, plan: &StaticPlan) -> Result<Outgoing<'a>, MapError>
where
    I: Source + ?Sized,
    I::Item: Serialize + 'static,
{
    let mut lens = vec![0usize; plan.ranks];
    // One block per rank, in place: send straight from the input.
    if plan.chunks() <= plan.ranks && plan.spans().len() == 1 && plan.chunks() > 1 {
        let others = plan.range(1).start..plan.spans()[0].end;
        if let Some(bytes) = input.as_slice(others).and_then(plain::bytes) {
            let size = plain::size::<I::Item>().expect("plain");
            for (rank, len) in lens.iter_mut().enumerate().skip(1) {
                *len = plan.items_of(rank) * size;
            }
            return Ok(Outgoing {
                bytes: std::borrow::Cow::Borrowed(bytes),
                lens,
            });
        }
    }
    let others = plan.items - plan.items_of(0);
    let mut bytes =
        crate::buffers::vec_with_capacity(plain::size::<I::Item>().map_or(0, |s| s * others));
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
    Ok(Outgoing {
        bytes: std::borrow::Cow::Owned(bytes),
        lens,
    })
}

/// Runs one static map; see the module docs.
pub fn run<I, T, K, S>(
    map: Map<'_, I, K>,
    collector: &mut Collector<'_, K::Output, S>,
    rec: &mut Recorder,
) -> Result<MapStats, MapError>
where
    I: Source<Item = T> + Sync + ?Sized,
    T: Serialize + DeserializeOwned + Send + 'static,
    K: Task<T>,
    K::Output: Serialize + DeserializeOwned + Send + 'static,
    S: Sink<K::Output>,
{
    let t = map.transport;
    let size = t.size();
    let root = t.is_root();
    let mut meter = Meter::start();
    let mut mark = Instant::now();

    // 1. Plan and encode on the root; everyone learns the plan.
    let mut root_error = None;
    let mut outgoing = None;
    let mut frame = Plan::default();
    if let Some(input) = map.input.filter(|_| t.is_root()) {
        let plan = StaticPlan::over(map.todo.clone(), size, map.options.chunk);
        match encode_others(input, &plan) {
            Ok(o) => {
                outgoing = Some(o);
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
    if root {
        mark = rec.since(Phase::Serialize, mark, 0..0);
    }
    let frame = transport::broadcast_bytes(t, t.is_root().then(|| frame.encode()));
    mark = rec.since(if root { Phase::Send } else { Phase::Wait }, mark, 0..0);
    let frame = Plan::parse(&frame).unwrap_or_else(|e| fatal(&e.to_string()));
    if !frame.ok {
        return Err(root_error.unwrap_or(MapError::RootFailed));
    }
    let plan = StaticPlan::over(frame.spans, size, Some(frame.chunk));

    // 2. Scatter to the other ranks.
    let started = Instant::now();
    let my_len = transport::scatter_lens(t, outgoing.as_ref().map(|o| &o.lens[..]));
    let mut received = map.buffers.received.take(my_len);
    t.scatterv(
        outgoing.as_ref().map(|o| (&o.bytes[..], &o.lens[..])),
        &mut received[..my_len],
    );
    meter.bytes_scattered = outgoing.as_ref().map_or(0, |o| o.bytes.len() as u64);
    drop(outgoing);
    meter.phases.scatter = started.elapsed().as_secs_f64();
    rec.since(if root { Phase::Send } else { Phase::Receive }, mark, 0..0);

    // 3. Compute this rank's chunks.
    let started = Instant::now();
    let (row, own, out) = compute(&map, &plan, &received[..my_len], rec, started);
    map.buffers.received.keep(received);
    mark = Instant::now();

    // 4. Every rank's row (the root waits here for the slowest rank).
    let started = Instant::now();
    let rows = transport::gather_bytes(t, &row.encode()).map(|rows| {
        rows.iter()
            .map(|r| Row::parse(r).unwrap_or_else(|e| fatal(&e.to_string())))
            .collect::<Vec<Row>>()
    });
    meter.phases.wait = started.elapsed().as_secs_f64();
    mark = rec.since(if root { Phase::Wait } else { Phase::Send }, mark, 0..0);

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
    mark = rec.since(if root { Phase::Send } else { Phase::Wait }, mark, 0..0);
    if !wire::is_ok(&verdict) {
        return Err(if t.is_root() {
            MapError::TooLarge { bytes: total }
        } else {
            MapError::RootFailed
        });
    }
    let (Some(rows), Some(lens)) = (rows, lens) else {
        let started = Instant::now();
        t.gatherv(out.bytes(), None);
        rec.since(Phase::Send, mark, 0..0);
        let mut stats = MapStats::of_rank(Schedule::Static, &row, size, map.executor.threads());
        stats.phases.gather = started.elapsed().as_secs_f64();
        return Ok(stats);
    };

    // 6. On the root: gather, and hand every chunk on in item order.
    meter.bytes_gathered = total as u64;
    meter.chunks = plan.chunks() as u64;
    meter.largest_chunk = plan.chunk as u64;
    let mut own = own.into_iter();
    let outcomes: Vec<Vec<Outcome>> = rows
        .iter()
        .map(|r| r.outcomes().unwrap_or_else(|e| fatal(&e.to_string())))
        .collect();
    // Straight into the sink when every other rank's chunk is one block,
    // complete, in rank order: the gathered bytes are the results in order.
    let blocks = plan.chunks() <= size && plan.spans().len() <= 1;
    let clean = (1..size).all(|r| {
        outcomes[r]
            .iter()
            .all(|o| o.complete && o.failures.is_empty())
    });
    let direct = blocks && clean && total > 0 && collector.can_receive_direct();
    if direct {
        let started = Instant::now();
        if let Some(batch) = own.next() {
            let range = plan.range(0);
            collector.add_batch(range.start, range.len(), batch, 0);
        }
        let parts: Vec<Direct> = (1..plan.chunks())
            .map(|k| Direct {
                start: plan.range(k).start,
                count: plan.range(k).len(),
                rank: k,
                bytes: rows[k].chunk_lens[0] as usize,
                sum: rows[k]
                    .chunk_sums
                    .first()
                    .copied()
                    .filter(|_| rows[k].summed),
            })
            .collect();
        let mut gathered_s = 0.0;
        let received = collector.receive_direct(&parts, |region| {
            let t0 = Instant::now();
            rec.record(LANE_MPI, Phase::Assemble, mark, t0, 0..0);
            t.gatherv(&[], Some((region, &lens[..])));
            gathered_s = t0.elapsed().as_secs_f64();
            mark = rec.since(Phase::Receive, t0, 0..0);
        });
        if !received {
            fatal("the results could not be received in place");
        }
        rec.since(Phase::Assemble, mark, 0..0);
        meter.phases.gather = gathered_s;
        meter.phases.assemble += started.elapsed().as_secs_f64() - gathered_s;
    } else {
        let started = Instant::now();
        let mut gathered = map.buffers.gathered.take(total);
        t.gatherv(&[], Some((&mut gathered[..total], &lens[..])));
        meter.phases.gather = started.elapsed().as_secs_f64();
        let started = Instant::now();
        rec.record(LANE_MPI, Phase::Receive, mark, started, 0..0);
        let mut cursor: Vec<usize> = lens
            .iter()
            .scan(0, |at, &l| {
                *at += l;
                Some(*at - l)
            })
            .collect();
        for k in 0..plan.chunks() {
            let (owner, range) = (k % size, plan.range(k));
            if owner == 0 {
                let batch = own.next().expect("one batch per own chunk");
                collector.add_batch(range.start, range.len(), batch, 0);
            } else {
                let j = k / size;
                let len = rows[owner].chunk_lens[j] as usize;
                let bytes = &gathered[cursor[owner]..cursor[owner] + len];
                cursor[owner] += len;
                let sum = rows[owner]
                    .chunk_sums
                    .get(j)
                    .copied()
                    .filter(|_| rows[owner].summed);
                collector.add_parts(
                    range.start,
                    range.len(),
                    &outcomes[owner][j],
                    bytes,
                    sum,
                    owner,
                );
            }
        }
        map.buffers.gathered.keep(gathered);
        meter.phases.assemble += started.elapsed().as_secs_f64();
        rec.since(Phase::Assemble, started, 0..0);
    }
    Ok(MapStats::assemble(
        Schedule::Static,
        meter,
        &rows,
        map.executor.threads(),
        collector.checksum(),
    ))
}

/// What a rank sends back: its results' bytes, or (one chunk of plain
/// results) the results themselves, sent from where they lie.
enum Results<U> {
    Bytes(Vec<u8>),
    Plain(Vec<U>),
}

impl<U: 'static> Results<U> {
    fn bytes(&self) -> &[u8] {
        match self {
            Results::Bytes(b) => b,
            Results::Plain(v) => plain::bytes(v).expect("plain results"),
        }
    }
}

/// Maps this rank's chunks: its row, the root's own batches, and the
/// results to send (for the other ranks).
#[allow(clippy::type_complexity)]
fn compute<I, T, K>(
    map: &Map<'_, I, K>,
    plan: &StaticPlan,
    received: &[u8],
    rec: &mut Recorder,
    started: Instant,
) -> (Row, Vec<Batch<K::Output>>, Results<K::Output>)
where
    I: Source<Item = T> + Sync + ?Sized,
    T: Serialize + DeserializeOwned + Send + 'static,
    K: Task<T>,
    K::Output: Serialize + DeserializeOwned + Send + 'static,
{
    let t = map.transport;
    let rank = t.rank();
    let states = States::new(map.executor.threads());
    let mut row = Row::default();
    let mut own: Vec<Batch<K::Output>> = Vec::new();
    let plain_out = plain::size::<K::Output>();
    let chunks: Vec<usize> = plan.chunks_of(rank).collect();
    row.summed = plain_out.is_some();
    let mut out = Vec::new();
    let mut single: Option<Vec<K::Output>> = None;
    let mut at = 0usize;
    let mut stopped = false;
    let mut scratch = Vec::new();
    let mut mark = started;
    let progress = map.progress.filter(|_| t.is_root());
    let mut shared = 0;
    if let Some(p) = progress {
        p.share(chunks.iter().map(|&k| plan.range(k).len()).sum());
    }
    for &k in &chunks {
        let range = plan.range(k);
        row.items += range.len() as u64;
        row.chunks += 1;
        // After a chunk stopped (a failure under abort, a signal) the map
        // ends in an error: the rest of this rank's chunks are not mapped.
        let mut batch = if stopped {
            Batch::abandoned()
        } else if let Some(input) = map.input.filter(|_| t.is_root()) {
            let again = |i: usize| input.items(i..i + 1).next().expect("item in range");
            let chunk = Chunk {
                first: range.start,
                count: range.len(),
                items: input.items(range.clone()),
                again: &again,
            };
            // Followed: the root's share is the run's live measure, so it
            // reports within its chunks too.
            let base = shared;
            let mut report = |done: usize| {
                if let Some(p) = progress {
                    p.shared(base + done);
                }
            };
            let between: Option<&mut dyn FnMut(usize)> = progress.map(|_| &mut report as _);
            map.executor
                .run(map.task, &states, map.options.on_error, chunk, between)
        } else {
            let from = at;
            let again = |i: usize| {
                codec::decode_nth(&received[from..], i - range.start)
                    .unwrap_or_else(|e| fatal(&format!("item {i} again: {e}")))
            };
            let first = range.start;
            let items = Decoder::new(received, &mut at, range.len())
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
        let runs = std::mem::take(&mut batch.runs);
        // The rest of the chunk's work (checksum, encoding) is its compute too.
        'chunk: {
            if t.is_root() {
                // Checksummed now, while the other ranks still compute.
                let mut batch = batch;
                if plain_out.is_some()
                    && batch.outcome.complete
                    && batch.outcome.failures.is_empty()
                {
                    batch.sum = codec::hash_items(range.start, &batch.results, &mut scratch).ok();
                }
                own.push(batch);
                shared += range.len();
                if let Some(p) = progress {
                    p.shared(shared);
                }
                break 'chunk;
            }
            batch.outcome.encode(&mut row.outcome_bytes);
            let sum = if plain_out.is_some()
                && batch.outcome.complete
                && batch.outcome.failures.is_empty()
            {
                codec::hash_items(range.start, &batch.results, &mut scratch).unwrap_or(0)
            } else {
                0
            };
            row.chunk_sums.push(sum);
            if plain_out.is_some() && chunks.len() == 1 {
                row.chunk_lens
                    .push(plain::bytes(&batch.results).map_or(0, <[u8]>::len) as u64);
                single = Some(batch.results);
                break 'chunk;
            }
            let before = out.len();
            codec::encode_items(&batch.results, &mut out).unwrap_or_else(|e| {
                fatal(&format!(
                    "results of items {}..{}: {e}",
                    range.start, range.end
                ))
            });
            row.chunk_lens.push((out.len() - before) as u64);
        }
        if rec.on() {
            // Chunk spans tile the compute phase: their sum is its length.
            let now = Instant::now();
            rec.record(LANE_MPI, Phase::Compute, mark, now, range.clone());
            rec.threads(&runs);
            mark = now;
        }
    }
    // Traced, the phase ends where its last chunk span does, so the spans
    // add up to exactly this (a second clock reading could be a preemption
    // later).
    let ended = if rec.on() { mark } else { Instant::now() };
    row.compute_ns = (ended - started).as_nanos() as u64;
    let out = match single {
        Some(results) => Results::Plain(results),
        None => Results::Bytes(out),
    };
    (row, own, out)
}
