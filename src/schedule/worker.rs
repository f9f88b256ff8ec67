//! The dynamic and guided schedules on a worker rank: receive a chunk, map
//! it, send its results without waiting for them to arrive, repeat until
//! the root says stop; then report this rank's [`Row`].
//!
//! The root keeps a window of chunks queued here (see `master`), so the
//! next chunk is usually waiting when one is done. A walltime signal makes
//! the executor abandon the chunk in hand; the `Done` frame says which
//! signal, and the root winds the map down.

use std::time::{Duration, Instant};

use serde::{Serialize, de::DeserializeOwned};

use super::Map;
use crate::codec::{self, Decoder};
use crate::executor::{Chunk, States};
use crate::failure::fatal;
use crate::source::Source;
use crate::stats::MapStats;
use crate::task::Task;
use crate::trace::{LANE_MPI, Phase, Recorder};
use crate::transport::{self, ROOT};
use crate::wire::{Done, Row, TAG_DONE, TAG_WORK, ToWorker};

/// Serves chunks until the root's `Stop`; returns this rank's stats.
pub fn run<I, T, K>(map: Map<'_, I, K>, rec: &mut Recorder) -> MapStats
where
    I: Source<Item = T> + Sync + ?Sized,
    T: Serialize + DeserializeOwned + Send + 'static,
    K: Task<T>,
    K::Output: Serialize + DeserializeOwned + Send + 'static,
{
    let t = map.transport;
    let states = States::new(map.executor.threads());
    let mut row = Row::default();
    let plain_out = codec::plain::size::<K::Output>().is_some();
    let mut scratch = Vec::new();
    let mut received = map.buffers.received.take(0);
    // The last chunk's send, recorded when the next wait starts (spans
    // reuse the clock readings the stats take anyway).
    let mut sending: Option<(Instant, std::ops::Range<usize>)> = None;
    loop {
        let waiting = Instant::now();
        if let Some((sent, range)) = sending.take() {
            rec.record(LANE_MPI, Phase::Send, sent, waiting, range);
        }
        let (_, len) = t.receive_into(Some(ROOT), TAG_WORK, &mut received);
        let arrived = Instant::now();
        row.wait_ns += (arrived - waiting).as_nanos() as u64;
        rec.record(LANE_MPI, Phase::Wait, waiting, arrived, 0..0);
        let message = &received[..len];
        let (range, items) = match ToWorker::parse(message) {
            Ok(ToWorker::Work { range, items }) => (range, items),
            Ok(ToWorker::Stop) => break,
            Err(e) => fatal(&e.to_string()),
        };
        let busy = arrived;
        let first = range.start;
        let again = |i: usize| {
            codec::decode_nth(items, i - first)
                .unwrap_or_else(|e| fatal(&format!("item {i} again: {e}")))
        };
        let mut used = 0;
        let decoder = Decoder::new(items, &mut used, range.len())
            .map(|item| item.unwrap_or_else(|e| fatal(&format!("chunk at item {first}: {e}"))));
        let chunk = Chunk {
            first,
            count: range.len(),
            items: decoder,
            again: &again,
        };
        let batch = map
            .executor
            .run(map.task, &states, map.options.on_error, chunk, None);
        if batch.outcome.complete && used != items.len() {
            fatal(&format!(
                "chunk {}..{}: {} trailing bytes",
                range.start,
                range.end,
                items.len() - used
            ));
        }
        let room = crate::codec::plain::size::<K::Output>()
            .map_or(items.len(), |s| s * batch.results.len() + 16);
        let mut frame = Done::header(&range, room);
        batch.outcome.encode(&mut frame);
        codec::encode_items(&batch.results, &mut frame).unwrap_or_else(|e| {
            fatal(&format!(
                "results of items {}..{}: {e}",
                range.start, range.end
            ))
        });
        // Plain results are checksummed here, in parallel with the other
        // ranks, while the bytes are warm; the root only adds the shares.
        let sum = (plain_out && batch.outcome.complete && batch.outcome.failures.is_empty())
            .then(|| codec::hash_items(range.start, &batch.results, &mut scratch).unwrap_or(0));
        let ns = busy.elapsed().as_nanos() as u64;
        Done::finish(&mut frame, ns, batch.stopped_by, sum);
        if rec.on() {
            let computed = busy + Duration::from_nanos(ns);
            rec.record(LANE_MPI, Phase::Compute, busy, computed, range.clone());
            rec.threads(&batch.runs);
            sending = Some((computed, range.clone()));
        }
        t.send(ROOT, TAG_DONE, frame);
        row.items += range.len() as u64;
        row.count_threads(&batch.per_thread);
        row.chunks += 1;
        row.compute_ns += ns;
        if batch.stopped_by != 0 {
            row.stopped_by = batch.stopped_by;
        }
        t.progress();
    }
    map.buffers.received.keep(received);
    let ending = Instant::now();
    t.flush();
    transport::gather_bytes(t, &row.encode());
    rec.since(Phase::Send, ending, 0..0);
    MapStats::of_rank(map.options.schedule, &row, t.size(), map.executor.threads())
}
