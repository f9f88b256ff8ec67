//! The dynamic and guided schedules: master-worker over point-to-point.
//!
//! The root hands out chunks on demand and computes chunks of its own in
//! between, so no core idles. Protocol (tags below):
//!
//! * root -> worker `WORK`: `[start, count]` as little-endian `u64`s, then the
//!   chunk's encoded items. The root keeps a *window* of chunks in flight per
//!   worker, sized from the measured cost per item: beyond the chunk being
//!   computed, about [`WINDOW_NS`] of work stays queued, so a worker never
//!   waits on a round trip; chunks longer than [`PREFETCH_LIMIT_NS`] are never
//!   queued ahead, so no worker hoards big chunks at the end.
//! * worker -> root `RESULT`: `[start, count, compute ns]`, then the encoded
//!   results. Each result frees a window slot, which the root refills.
//!   Workers send results without blocking and compute their next chunk
//!   while the last result travels.
//! * root -> worker `STOP`: no more work; sent once a worker has nothing in
//!   flight and nothing is left to hand out.
//!
//! The root maps its own chunks in batches sized to take 20-200 us, and
//! polls for results between batches. Chunks come from a [`Dispenser`]: a
//! fixed size for `dynamic`, shrinking with the remaining work for `guided`.
//! Memory on the root: the window of chunks in flight plus the output.

use std::collections::VecDeque;
use std::ops::Range;
use std::time::Instant;

use serde::{Serialize, de::DeserializeOwned};

use crate::codec;
use crate::collect::Collector;
use crate::comm::Comm;
use crate::failure::fatal;
use crate::interrupt;
use crate::kernel::{Batch, Kernel};
use crate::outbox::Outbox;
use crate::schedule::{MapOptions, OnError, Schedule, Work};
use crate::source::Source;
use crate::stats::{MapStats, Phases, RankStats, Spread};

const TAG_WORK: i32 = 11;
const TAG_STOP: i32 = 12;
const TAG_RESULT: i32 = 13;

/// Work queued per worker beyond the chunk it computes, in nanoseconds of
/// estimated compute: covers the root's polling interval (its batches take
/// at most ~200 us) plus the message latency.
pub const WINDOW_NS: f64 = 250_000.0;
/// A chunk estimated to take longer than this is sent only to an idle worker:
/// the round trip it then waits for costs at most a few percent.
pub const PREFETCH_LIMIT_NS: f64 = 10_000_000.0;
/// At most this many chunks in flight per worker.
pub const MAX_WINDOW: usize = 64;
/// Guided chunks are `remaining / (GUIDED_DIVISOR x ranks)` items.
pub const GUIDED_DIVISOR: usize = 2;
/// No default or guided chunk exceeds this many items, so the root's memory
/// (chunks in flight, its own chunk) does not grow with the input.
pub const MAX_DEFAULT_CHUNK: usize = 1 << 20;
/// Results waiting in the root's reorder buffer beyond which workers get no
/// new chunks until the gap (usually the root's own chunk) is filled:
/// back-pressure that bounds the root's memory in ordered maps.
pub const REORDER_LIMIT_BYTES: usize = 32 << 20;

/// The default chunk of `dynamic`: about `items / (8 x ranks)`, so each rank
/// takes some 8 chunks (like `Pool.map`'s `items / (4 x workers)`, finer
/// because chunks are prefetched), at most [`MAX_DEFAULT_CHUNK`].
pub fn default_chunk(items: usize, ranks: usize) -> usize {
    items.div_ceil(8 * ranks.max(1)).clamp(1, MAX_DEFAULT_CHUNK)
}

/// Hands out consecutive chunks of the spans still to map.
#[derive(Clone, Debug)]
pub struct Dispenser {
    /// Spans still to hand out, the current one first, reversed (popped from the end).
    spans: Vec<Range<usize>>,
    /// Items not handed out yet.
    remaining: usize,
    ranks: usize,
    schedule: Schedule,
    /// Fixed size (dynamic) or the smallest size (guided).
    chunk: usize,
}

impl Dispenser {
    /// A dispenser of `0..items` for `schedule` (dynamic or guided).
    pub fn new(items: usize, ranks: usize, schedule: Schedule, chunk: Option<usize>) -> Dispenser {
        Dispenser::over(std::iter::once(0..items).collect(), ranks, schedule, chunk)
    }

    /// A dispenser of `spans`; `chunk` is the fixed size for dynamic
    /// (default [`default_chunk`] of all the spans' items) and the minimum for
    /// guided (default 1). Chunks never cross a span's end.
    pub fn over(
        spans: Vec<Range<usize>>,
        ranks: usize,
        schedule: Schedule,
        chunk: Option<usize>,
    ) -> Dispenser {
        let remaining = spans.iter().map(|s| s.len()).sum();
        let chunk = match schedule {
            Schedule::Guided => chunk.unwrap_or(1),
            _ => chunk.unwrap_or_else(|| default_chunk(remaining, ranks)),
        };
        let mut spans: Vec<Range<usize>> = spans.into_iter().filter(|s| !s.is_empty()).collect();
        spans.reverse();
        Dispenser {
            spans,
            remaining,
            ranks: ranks.max(1),
            schedule,
            chunk: chunk.max(1),
        }
    }

    /// The next chunk, or `None` when everything is handed out.
    pub fn next_chunk(&mut self) -> Option<Range<usize>> {
        let size = self.peek_len();
        let span = self.spans.last_mut()?;
        let range = span.start..span.start + size;
        span.start += size;
        if span.start >= span.end {
            self.spans.pop();
        }
        self.remaining -= size;
        Some(range)
    }

    /// Hands out nothing more (the map is ending early).
    pub fn stop(&mut self) {
        self.spans.clear();
        self.remaining = 0;
    }

    /// The size of the next chunk (0 when everything is handed out).
    pub fn peek_len(&self) -> usize {
        let Some(span) = self.spans.last() else {
            return 0;
        };
        match self.schedule {
            Schedule::Guided => self
                .remaining
                .div_ceil(GUIDED_DIVISOR * self.ranks)
                .min(MAX_DEFAULT_CHUNK)
                .max(self.chunk),
            _ => self.chunk,
        }
        .min(span.len())
    }
}

fn header(values: &[u64], capacity: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(8 * values.len() + capacity);
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    bytes
}

fn read_header<const N: usize>(bytes: &[u8]) -> [u64; N] {
    if bytes.len() < 8 * N {
        fatal(&format!("truncated message of {} bytes", bytes.len()));
    }
    std::array::from_fn(|i| u64::from_le_bytes(bytes[8 * i..8 * i + 8].try_into().unwrap()))
}

/// Per-rank counters, gathered at the end: items, chunks, compute ns, wait ns.
type Row = [u64; 4];

/// Runs one dynamic or guided map; results go to `collector` on the root.
pub fn run<I, T, U, F, S>(
    comm: &Comm,
    kernel: &Kernel,
    work: Work<'_, I>,
    f: &F,
    collector: &mut Collector<'_, S>,
) -> MapStats
where
    I: Source<Item = T> + ?Sized,
    T: Serialize + DeserializeOwned + Send,
    U: Serialize + DeserializeOwned + Send,
    F: Fn(T) -> U + Sync,
    S: FnMut(usize, U),
{
    let options = work.options;
    if comm.is_root() {
        let input = work
            .input
            .expect("the root rank must pass Some(input) to map");
        Root::new(comm, kernel, input, work.todo, options).run(f, collector)
    } else {
        let row = serve(comm, kernel, f, options.on_error);
        comm.gather_u64s(&row);
        MapStats {
            schedule: options.schedule.name().into(),
            ranks: comm.size() as u64,
            threads: kernel.threads() as u64,
            items: row[0],
            chunks: row[1],
            phases: Phases {
                compute: Spread::of([row[2] as f64 * 1e-9]),
                wait: row[3] as f64 * 1e-9,
                ..Phases::default()
            },
            ..MapStats::default()
        }
    }
}

/// A worker's loop: receive a chunk, map it while the previous result is sent.
fn serve<T, U, F>(comm: &Comm, kernel: &Kernel, f: &F, policy: OnError) -> Row
where
    T: DeserializeOwned + Send,
    U: Serialize + Send,
    F: Fn(T) -> U + Sync,
{
    let mut row: Row = [0; 4];
    let mut outgoing: Option<Vec<u8>> = None;
    loop {
        let next = comm.send_during(0, TAG_RESULT, outgoing.as_deref(), || {
            let waiting = Instant::now();
            let (tag, message) = comm.receive_any_tag(0);
            row[3] += waiting.elapsed().as_nanos() as u64;
            if tag == TAG_STOP {
                return None;
            }
            let busy = Instant::now();
            let [start, count] = read_header::<2>(&message);
            let (start, count) = (start as usize, count as usize);
            let mut out = header(&[start as u64, count as u64, 0], message.len());
            let (used, _, complete) =
                kernel.map_chunk(&message[16..], start, count, f, policy, &mut out);
            // A chunk that stopped early did not read all of its bytes.
            if complete && used != message.len() - 16 {
                fatal(&format!("chunk {start}..{}: trailing bytes", start + count));
            }
            let ns = busy.elapsed().as_nanos() as u64;
            out[16..24].copy_from_slice(&ns.to_le_bytes());
            row[0] += count as u64;
            row[1] += 1;
            row[2] += ns;
            Some(out)
        });
        match next {
            Some(out) => outgoing = Some(out),
            None => return row,
        }
    }
}

/// The root's state: what is in flight where, and its own chunk in progress.
struct Root<'a, I: ?Sized> {
    comm: &'a Comm,
    kernel: &'a Kernel,
    input: &'a I,
    schedule: Schedule,
    on_error: OnError,
    dispenser: Dispenser,
    /// Item counts of the chunks in flight per rank, oldest first (index 0,
    /// the root, unused), and their sums.
    in_flight: Vec<VecDeque<usize>>,
    in_flight_items: Vec<usize>,
    /// Work messages being sent without blocking.
    outbox: Outbox,
    stopped: Vec<bool>,
    /// Estimated compute per item, from workers' reports (ns).
    item_ns: Option<f64>,
    largest_chunk: usize,
    chunks: u64,
    phases: Phases,
    bytes_scattered: u64,
    bytes_gathered: u64,
    own: Row,
    /// The signal that stopped the hand-out, if one did.
    interrupted: Option<&'static str>,
}

impl<'a, I, T> Root<'a, I>
where
    I: Source<Item = T> + ?Sized,
    T: Serialize + DeserializeOwned + Send,
{
    fn new(
        comm: &'a Comm,
        kernel: &'a Kernel,
        input: &'a I,
        todo: Vec<Range<usize>>,
        options: &MapOptions,
    ) -> Self {
        let size = comm.size();
        Root {
            comm,
            kernel,
            input,
            schedule: options.schedule,
            on_error: options.on_error,
            dispenser: Dispenser::over(todo, size, options.schedule, options.chunk),
            in_flight: vec![VecDeque::new(); size],
            in_flight_items: vec![0; size],
            outbox: Outbox::default(),
            stopped: vec![false; size],
            item_ns: None,
            largest_chunk: 0,
            chunks: 0,
            phases: Phases::default(),
            bytes_scattered: 0,
            bytes_gathered: 0,
            own: [0; 4],
            interrupted: None,
        }
    }

    fn next_chunk(&mut self) -> Option<Range<usize>> {
        let range = self.dispenser.next_chunk()?;
        self.largest_chunk = self.largest_chunk.max(range.len());
        self.chunks += 1;
        Some(range)
    }

    /// Whether `worker` should get another chunk: always when idle; else
    /// (once the cost per item is known) while the work queued beyond the
    /// chunk it computes is under [`WINDOW_NS`] and the next chunk is short
    /// enough to queue ahead.
    fn wants_more(&self, worker: usize) -> bool {
        let queue = &self.in_flight[worker];
        let Some(&current) = queue.front() else {
            return true;
        };
        match self.item_ns {
            Some(ns) if queue.len() < MAX_WINDOW => {
                let queued = (self.in_flight_items[worker] - current) as f64 * ns;
                let next = self.dispenser.peek_len() as f64 * ns;
                queued < WINDOW_NS && next <= PREFETCH_LIMIT_NS
            }
            _ => false,
        }
    }

    /// Tops up `worker`'s window (unless `buffered` reorder bytes call for
    /// back-pressure); stops it when it has nothing left to do.
    fn refill(&mut self, worker: usize, buffered: usize) {
        while buffered < REORDER_LIMIT_BYTES && self.wants_more(worker) {
            let Some(range) = self.next_chunk() else {
                break;
            };
            let t = Instant::now();
            let mut message = header(&[range.start as u64, range.len() as u64], 0);
            let encoded = self.input.with_range(range.clone(), |items| {
                codec::encode_items(items, &mut message)
            });
            if let Err(e) = encoded {
                fatal(&format!("input items {}..{}: {e}", range.start, range.end));
            }
            if message.len() > i32::MAX as usize {
                fatal(&format!(
                    "chunk of items {}..{} serializes to {} bytes, over MPI's 2 GiB message limit: use a smaller --chunk",
                    range.start,
                    range.end,
                    message.len()
                ));
            }
            let sent = Instant::now();
            self.phases.serialize += (sent - t).as_secs_f64();
            self.bytes_scattered += (message.len() - 16) as u64;
            self.outbox
                .send(self.comm.world(), worker, TAG_WORK, message);
            self.phases.scatter += sent.elapsed().as_secs_f64();
            self.in_flight[worker].push_back(range.len());
            self.in_flight_items[worker] += range.len();
        }
        let exhausted = self.dispenser.peek_len() == 0;
        if exhausted && self.in_flight[worker].is_empty() && !self.stopped[worker] {
            self.comm.send_bytes(worker, TAG_STOP, &[]);
            self.stopped[worker] = true;
        }
    }

    /// Takes one worker result message.
    fn accept<U, S>(&mut self, from: usize, message: Vec<u8>, collector: &mut Collector<'_, S>)
    where
        U: DeserializeOwned,
        S: FnMut(usize, U),
    {
        let [start, count, ns] = read_header::<3>(&message);
        if count > 0 {
            let per_item = ns as f64 / count as f64;
            // Smooth: one odd chunk should not swing the window.
            self.item_ns = Some(
                self.item_ns
                    .map_or(per_item, |old| 0.75 * old + 0.25 * per_item),
            );
        }
        self.bytes_gathered += (message.len() - 24) as u64;
        // Results come back in the order the chunks went out.
        self.in_flight[from].pop_front();
        self.in_flight_items[from] -= count as usize;
        let t = Instant::now();
        collector.add::<U>(start as usize, count as usize, &message[24..], from);
        self.phases.assemble += t.elapsed().as_secs_f64();
        if collector.aborted() {
            self.dispenser.stop();
        }
    }

    /// Takes every result that has already arrived, refilling windows.
    fn poll<U, S>(&mut self, collector: &mut Collector<'_, S>)
    where
        U: DeserializeOwned,
        S: FnMut(usize, U),
    {
        self.outbox.progress();
        loop {
            let t = Instant::now();
            let Some((from, message)) = self.comm.try_receive_bytes(TAG_RESULT) else {
                break;
            };
            self.phases.gather += t.elapsed().as_secs_f64();
            self.accept(from, message, collector);
            self.refill(from, collector.buffered_bytes());
        }
    }

    fn run<U, F, S>(mut self, f: &F, collector: &mut Collector<'_, S>) -> MapStats
    where
        U: Serialize + DeserializeOwned + Send,
        F: Fn(T) -> U + Sync,
        S: FnMut(usize, U),
    {
        let start = Instant::now();
        let size = self.comm.size();
        for worker in 1..size {
            self.refill(worker, 0);
        }
        let mut batch = 1usize;
        loop {
            self.poll(collector);
            if self.interrupted.is_none()
                && let Some(signal) = interrupt::requested()
            {
                // Walltime warning: hand out nothing more, collect (and
                // journal) what is in flight, then stop the workers.
                tracing::warn!("{signal}: stopping; collecting the chunks in flight");
                self.interrupted = Some(signal);
                self.dispenser.stop();
            }
            if let Some(range) = self.next_chunk() {
                batch = self.map_own(range, batch, f, collector);
                // Its own chunk may have closed a gap: resume held-back workers.
                for worker in 1..size {
                    self.refill(worker, collector.buffered_bytes());
                }
            } else if self.in_flight.iter().any(|q| !q.is_empty()) {
                let t = Instant::now();
                let (from, message) = self.comm.receive_bytes(None, TAG_RESULT);
                self.phases.wait += t.elapsed().as_secs_f64();
                self.accept(from, message, collector);
                self.refill(from, collector.buffered_bytes());
            } else {
                break;
            }
        }
        for worker in 1..size {
            self.refill(worker, 0); // stops any worker that never got work
        }
        self.outbox.flush();
        self.own[3] = (self.phases.wait * 1e9) as u64;
        let rows = self.comm.gather_u64s(&self.own).expect("root gathers");
        let per_rank: Vec<RankStats> = rows
            .chunks(4)
            .map(|r| RankStats {
                items: r[0],
                chunks: r[1],
                compute_s: r[2] as f64 * 1e-9,
                wait_s: r[3] as f64 * 1e-9,
            })
            .collect();
        self.phases.compute = Spread::of(per_rank.iter().map(|r| r.compute_s));
        MapStats {
            schedule: self.schedule.name().into(),
            items: per_rank.iter().map(|r| r.items).sum(),
            ranks: size as u64,
            threads: self.kernel.threads() as u64,
            chunk: self.largest_chunk as u64,
            chunks: self.chunks,
            wall_s: start.elapsed().as_secs_f64(),
            phases: self.phases,
            bytes_scattered: self.bytes_scattered,
            bytes_gathered: self.bytes_gathered,
            checksum: collector.checksum(),
            per_rank,
            skipped: Vec::new(), // filled in by the pool
            interrupted: self.interrupted,
        }
    }

    /// Maps one of the root's own chunks in batches, polling between them;
    /// returns the batch size to start the next chunk with.
    fn map_own<U, F, S>(
        &mut self,
        range: Range<usize>,
        mut batch: usize,
        f: &F,
        collector: &mut Collector<'_, S>,
    ) -> usize
    where
        U: Serialize + DeserializeOwned + Send,
        F: Fn(T) -> U + Sync,
        S: FnMut(usize, U),
    {
        let t = Instant::now();
        let mut encoded = Vec::new();
        let result = self.input.with_range(range.clone(), |items| {
            codec::encode_items(items, &mut encoded)
        });
        if let Err(e) = result {
            fatal(&format!("input items {}..{}: {e}", range.start, range.end));
        }
        let (items, _) = self.kernel.decode::<T>(&encoded, range.start, range.len());
        let again = |index: usize| Kernel::redecode::<T>(&encoded, range.start, index);
        let mut items = items.into_iter();
        let mut own = Batch::new(range.len());
        let mut at = range.start;
        let mut busy = t.elapsed().as_secs_f64();
        while at < range.end {
            let t = Instant::now();
            let take = batch.min(range.end - at);
            let chunk: Vec<T> = items.by_ref().take(take).collect();
            let done = self.kernel.map_items(chunk, at, f, self.on_error, &again);
            own.results.extend(done.results);
            own.outcome.failures.extend(done.outcome.failures);
            at += take;
            let took = t.elapsed();
            busy += took.as_secs_f64();
            if !done.outcome.complete {
                own.outcome.complete = false;
                break;
            }
            if at < range.end && interrupt::requested().is_some() {
                // Left unfinished: not journaled, computed again on resume.
                self.dispenser.stop();
                return batch;
            }
            // Aim for batches of 20-200 us between polls.
            if took.as_micros() < 20 {
                batch = batch.saturating_mul(2);
            } else if took.as_micros() > 200 {
                batch = (batch / 2).max(1);
            }
            if at < range.end {
                self.poll(collector);
            }
        }
        let mut out = Vec::new();
        self.kernel.encode_payload(&own, range.start, &mut out);
        self.own[0] += range.len() as u64;
        self.own[1] += 1;
        self.own[2] += (busy * 1e9) as u64;
        let t = Instant::now();
        collector.add::<U>(range.start, range.len(), &out, 0);
        self.phases.assemble += t.elapsed().as_secs_f64();
        if collector.aborted() {
            self.dispenser.stop();
        }
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(items: usize, ranks: usize, schedule: Schedule, chunk: Option<usize>) -> Vec<usize> {
        let mut d = Dispenser::new(items, ranks, schedule, chunk);
        std::iter::from_fn(|| d.next_chunk().map(|r| r.len())).collect()
    }

    #[test]
    fn dynamic_chunks_are_fixed_and_cover_everything() {
        assert_eq!(sizes(10, 2, Schedule::Dynamic, Some(3)), [3, 3, 3, 1]);
        assert_eq!(sizes(0, 2, Schedule::Dynamic, None), Vec::<usize>::new());
        // Default: about items / (8 x ranks).
        assert_eq!(sizes(160, 2, Schedule::Dynamic, None), [10; 16]);
    }

    #[test]
    fn default_chunks_are_capped() {
        let d = Dispenser::new(1 << 30, 2, Schedule::Dynamic, None);
        assert_eq!(d.peek_len(), MAX_DEFAULT_CHUNK);
        let g = Dispenser::new(1 << 30, 2, Schedule::Guided, None);
        assert_eq!(g.peek_len(), MAX_DEFAULT_CHUNK);
        // An explicit chunk is the user's choice.
        let d = Dispenser::new(1 << 30, 2, Schedule::Dynamic, Some(1 << 21));
        assert_eq!(d.peek_len(), 1 << 21);
    }

    #[test]
    fn guided_chunks_shrink_to_the_minimum() {
        let s = sizes(100, 2, Schedule::Guided, Some(4));
        assert_eq!(s.iter().sum::<usize>(), 100);
        assert_eq!(s[0], 25);
        assert!(s.windows(2).all(|w| w[0] >= w[1]));
        assert!(s[..s.len() - 1].iter().all(|&c| c >= 4));
    }
}
