//! The dynamic and guided schedules on the root: hand out chunks on
//! demand, collect results, and map a share of its own in between.
//!
//! The root keeps a *window* of chunks in flight per worker, sized from the
//! measured cost per item: beyond the chunk being mapped, about
//! [`WINDOW_NS`] of work stays queued, so a worker never waits on a round
//! trip; chunks estimated over [`PREFETCH_LIMIT_NS`] are sent only to idle
//! workers, so nobody hoards big chunks at the end. Each result frees a
//! window slot, which the root refills. Results waiting in the reorder
//! buffer beyond [`super::REORDER_LIMIT_BYTES`] hold back new hand-outs until the
//! gap is filled (back-pressure that bounds the root's memory).
//!
//! The root's own share, two ways:
//! * one compute thread, items that compute: the root maps its own chunks
//!   on its MPI thread, in batches of 20-200 us, polling between them (no
//!   third thread competing for the cores);
//! * several compute threads, or items that wait on other processes
//!   (`Task::blocking`): a local worker thread (with the executor's
//!   helpers) takes chunks from the root like any worker, as values, while
//!   the MPI thread only serves, sleeping between polls when idle.
//!
//! An abandoned chunk (a worker stopped it for a signal) ends the hand-out
//! and the map ends interrupted; any other chunk that comes back unmapped
//! is handed out again. Nothing is dropped silently.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

use serde::{Serialize, de::DeserializeOwned};

use super::{Map, Schedule};
use crate::chunking::{Dispenser, Sizing};
use crate::codec;
use crate::collect::{Arrival, Collector, Received, Sink};
use crate::executor::{Batch, Chunk, Executor, States};
use crate::failure::fatal;
use crate::interrupt;
use crate::schedule::OnError;
use crate::source::Source;
use crate::stats::{MapStats, Meter};
use crate::task::Task;
use crate::trace::{LANE_MPI, Phase, Recorder};
use crate::transport::mpi::Backoff;
use crate::transport::{self, Transport};
use crate::wire::{Done, Row, TAG_DONE, TAG_WORK, ToWorker};

/// Work queued per worker beyond the chunk it maps, in nanoseconds of
/// estimated compute: covers the root's polling interval plus the latency.
pub const WINDOW_NS: f64 = 250_000.0;
/// The window when the root's MPI thread sleeps between polls (up to 1 ms).
pub const SLEEPING_WINDOW_NS: f64 = 3_000_000.0;
/// A chunk estimated to take longer than this is sent only to an idle
/// worker: the round trip it then waits for costs at most a few percent.
pub const PREFETCH_LIMIT_NS: f64 = 10_000_000.0;
/// At most this many chunks in flight per worker.
pub const MAX_WINDOW: usize = 64;
/// Chunks of fewer items are queued one ahead even when long (inline mode).
pub const FEW_ITEMS: usize = 32;

/// A chunk for the root's local worker thread, as values read from the input.
struct LocalChunk<'a, T> {
    range: Range<usize>,
    items: Box<dyn Iterator<Item = T> + Send + 'a>,
}

/// What the local worker thread mapped, and when.
struct LocalDone<U> {
    range: Range<usize>,
    batch: Batch<U>,
    started: Instant,
    ended: Instant,
}

/// The root's ends of the channels to its local worker thread.
struct Local<'a, T, U> {
    to: Sender<LocalChunk<'a, T>>,
    from: Receiver<LocalDone<U>>,
}

/// Runs the root's side of one dynamic or guided map.
pub fn run<I, T, K, S>(
    map: Map<'_, I, K>,
    collector: &mut Collector<'_, K::Output, S>,
    rec: &mut Recorder,
) -> MapStats
where
    I: Source<Item = T> + Sync + ?Sized,
    T: Serialize + DeserializeOwned + Send + 'static,
    K: Task<T>,
    K::Output: Serialize + DeserializeOwned + Send + 'static,
    S: Sink<K::Output>,
{
    let input = map
        .input
        .expect("the root rank must pass Some(input) to map");
    let t = map.transport;
    let sizing = match map.options.schedule {
        Schedule::Guided => Sizing::Guided,
        _ => Sizing::Fixed,
    };
    let states = States::new(map.executor.threads());
    let threaded = map.executor.threads() > 1 || map.task.blocking();
    let mut root = Dispatch {
        t,
        input,
        dispenser: Dispenser::over(map.todo.clone(), t.size(), sizing, map.options.chunk),
        in_flight: vec![VecDeque::new(); t.size()],
        in_flight_items: vec![0; t.size()],
        stopped: vec![false; t.size()],
        item_ns: None,
        window_ns: if threaded {
            SLEEPING_WINDOW_NS
        } else {
            WINDOW_NS
        },
        reorder_limit: map.reorder_limit,
        deadline: map.options.deadline,
        meter: Meter::start(),
        own: Row::default(),
        stopped_by: None,
        local: None,
        rec: std::mem::replace(rec, Recorder::new(false, 0, 1, map.started)),
        progress: map.progress,
        idle_since: vec![Some(map.started); t.size()],
    };
    if threaded {
        std::thread::scope(|s| {
            let (to, inbox) = channel();
            let (outbox, from) = channel();
            let (executor, task, policy, states) =
                (map.executor, map.task, map.options.on_error, &states);
            s.spawn(move || local_worker(executor, task, policy, states, input, inbox, outbox));
            root.local = Some(Local { to, from });
            root.serve_threaded(collector);
            root.local = None; // closes the channel: the local worker ends
        });
    } else {
        root.serve_inline(
            map.executor,
            map.task,
            &states,
            map.options.on_error,
            collector,
        );
    }
    root.finish(map.options.schedule, map.executor.threads(), collector, rec)
}

/// The local worker thread: maps the chunks the root sends it, as values.
fn local_worker<I, T, K>(
    executor: &Executor,
    task: &K,
    policy: OnError,
    states: &States<K::State>,
    input: &I,
    inbox: Receiver<LocalChunk<'_, T>>,
    outbox: Sender<LocalDone<K::Output>>,
) where
    I: Source<Item = T> + Sync + ?Sized,
    T: Send,
    K: Task<T>,
    K::Output: Send + Serialize + 'static,
{
    let again = |i: usize| input.items(i..i + 1).next().expect("item in range");
    while let Ok(LocalChunk { range, items }) = inbox.recv() {
        let started = Instant::now();
        let chunk = Chunk {
            first: range.start,
            count: range.len(),
            items,
            again: &again,
        };
        let mut batch = executor.run(task, states, policy, chunk, None);
        // Checksummed on this thread, off the root's MPI thread.
        if crate::codec::plain::size::<K::Output>().is_some()
            && batch.outcome.complete
            && batch.outcome.failures.is_empty()
        {
            batch.sum = crate::codec::hash_items(range.start, &batch.results, &mut Vec::new()).ok();
        }
        let done = LocalDone {
            range,
            batch,
            started,
            ended: Instant::now(),
        };
        if outbox.send(done).is_err() {
            return;
        }
    }
}

/// The root's hand-out state: what is in flight where.
struct Dispatch<'a, I: ?Sized, T, U> {
    t: &'a dyn Transport,
    input: &'a I,
    dispenser: Dispenser,
    /// Chunks in flight per rank, oldest first (rank 0: the local worker).
    in_flight: Vec<VecDeque<Range<usize>>>,
    in_flight_items: Vec<usize>,
    /// Workers told to stop.
    stopped: Vec<bool>,
    /// Estimated compute per item (ns), smoothed over chunks.
    item_ns: Option<f64>,
    window_ns: f64,
    /// Early results held beyond which hand-outs wait for the gap to fill.
    reorder_limit: usize,
    /// When work must be done by (see [`crate::MapOptions::deadline`]).
    deadline: Option<Instant>,
    meter: Meter,
    /// The root's own row.
    own: Row,
    /// The signal that ended the hand-out, if one did.
    stopped_by: Option<u64>,
    local: Option<Local<'a, T, U>>,
    rec: Recorder,
    progress: Option<&'a crate::progress::Progress>,
    /// Since when each rank has had nothing in flight (for `progress`).
    idle_since: Vec<Option<Instant>>,
}

impl<'a, I, T, U> Dispatch<'a, I, T, U>
where
    I: Source<Item = T> + Sync + ?Sized,
    T: Serialize + Send + 'static,
    U: Serialize + DeserializeOwned + 'static,
{
    /// The loop of the inline mode: the root maps chunks itself between polls.
    fn serve_inline<K, S>(
        &mut self,
        executor: &Executor,
        task: &K,
        states: &States<K::State>,
        policy: OnError,
        collector: &mut Collector<'_, U, S>,
    ) where
        T: Send,
        K: Task<T, Output = U>,
        U: Send,
        S: Sink<U>,
    {
        let mut now = Instant::now();
        for worker in 1..self.t.size() {
            now = self.refill(worker, 0, now);
        }
        loop {
            self.poll(collector);
            let own = if self.held_back(collector.buffered_bytes()) {
                None
            } else {
                self.next_in_time()
            };
            if let Some(range) = own {
                let started = Instant::now();
                let input = self.input;
                let again = |i: usize| input.items(i..i + 1).next().expect("item in range");
                let chunk = Chunk {
                    first: range.start,
                    count: range.len(),
                    items: input.items(range.clone()),
                    again: &again,
                };
                // Compute is the chunk's time less the polls in between:
                // one span per stretch between polls.
                let mut polling = Duration::ZERO;
                let (mut stretch, mut mapped, first) = (started, 0, range.start);
                let mut between = |done: usize| {
                    let t = Instant::now();
                    let items = first + mapped..first + done;
                    self.rec.record(LANE_MPI, Phase::Compute, stretch, t, items);
                    mapped = done;
                    self.poll(collector);
                    stretch = Instant::now();
                    polling += stretch - t;
                };
                let batch = executor.run(task, states, policy, chunk, Some(&mut between));
                let ended = Instant::now();
                let items = first + mapped..range.end;
                self.rec
                    .record(LANE_MPI, Phase::Compute, stretch, ended, items);
                let compute_ns = (ended - started).saturating_sub(polling).as_nanos() as u64;
                let mut now = self.accept_own(range, batch, compute_ns, collector, ended);
                // Its own chunk may have closed a gap: resume held-back workers.
                for worker in 1..self.t.size() {
                    now = self.refill(worker, collector.buffered_bytes(), now);
                }
            } else if self.in_flight.iter().any(|q| !q.is_empty()) {
                let waiting = Instant::now();
                let (from, message) = self.t.receive(None, TAG_DONE);
                let received = Instant::now();
                self.meter.phases.wait += (received - waiting).as_secs_f64();
                self.rec
                    .record(LANE_MPI, Phase::Wait, waiting, received, 0..0);
                let done = self.accept(from, message, collector, received);
                self.refill(from, collector.buffered_bytes(), done);
            } else {
                return;
            }
        }
    }

    /// The loop of the threaded mode: the MPI thread only serves.
    fn serve_threaded<S>(&mut self, collector: &mut Collector<'_, U, S>)
    where
        S: Sink<U>,
    {
        loop {
            let mut now = Instant::now();
            for worker in 0..self.t.size() {
                now = self.refill(worker, collector.buffered_bytes(), now);
            }
            if self.in_flight.iter().all(VecDeque::is_empty) {
                return; // nothing out, so nothing held back: all handed out
            }
            let waiting = Instant::now();
            let mut backoff = Backoff::new();
            let mut polled = waiting;
            while !self.poll(collector) {
                backoff.snooze();
                if self.rec.on() {
                    polled = Instant::now();
                }
            }
            // The last poll's own time is not waiting, but too short to matter.
            self.meter.phases.wait += waiting.elapsed().as_secs_f64();
            self.rec
                .record(LANE_MPI, Phase::Wait, waiting, polled, 0..0);
        }
    }

    /// The next chunk to hand out, counted.
    fn next_chunk(&mut self) -> Option<Range<usize>> {
        let range = self.dispenser.next_chunk()?;
        self.meter.chunk(range.len());
        Some(range)
    }

    /// Ends the hand-out: everything in flight is still collected.
    fn interrupt(&mut self, signal: u64) {
        if self.stopped_by.is_none() {
            tracing::warn!(
                "{}: stopping; collecting the chunks in flight",
                interrupt::name(signal)
            );
            self.stopped_by = Some(signal);
            self.dispenser.stop();
        }
    }

    /// Whether `buffered` bytes of early results hold back new hand-outs:
    /// only while something is in flight (the gap is filled by it; when
    /// nothing is, the next chunk handed out is the gap).
    fn held_back(&self, buffered: usize) -> bool {
        buffered >= self.reorder_limit && self.in_flight.iter().any(|q| !q.is_empty())
    }

    /// Whether `worker` should get another chunk: always when idle; else
    /// (once the cost per item is known) while the work queued beyond the
    /// chunk it maps is under the window and the next chunk is short
    /// enough to queue ahead.
    fn wants_more(&self, worker: usize) -> bool {
        let queue = &self.in_flight[worker];
        let Some(current) = queue.front() else {
            return true;
        };
        match self.item_ns {
            Some(ns) if queue.len() < MAX_WINDOW => {
                let queued = (self.in_flight_items[worker] - current.len()) as f64 * ns;
                let next = self.dispenser.peek_len() as f64 * ns;
                // Queued behind its current chunk, the next one must still
                // finish before the deadline.
                let in_time = self.deadline.is_none_or(|d| {
                    let left = d.saturating_duration_since(Instant::now()).as_secs_f64() * 1e9;
                    (self.in_flight_items[worker] as f64) * ns + next < left
                });
                // Inline, the root answers only between its own items, so
                // a worker whose chunk ends meanwhile waits up to one item:
                // with chunks of few items that is a fair share of each, so
                // one chunk stays queued however long it is.
                let few = self.local.is_none() && self.dispenser.peek_len() < FEW_ITEMS;
                let ahead = next <= PREFETCH_LIMIT_NS || (few && queue.len() < 2);
                queued < self.window_ns && ahead && in_time
            }
            _ => false,
        }
    }

    /// The next chunk, unless even an idle rank could not finish it before
    /// the deadline (by the measured cost per item): then the hand-out ends.
    fn next_in_time(&mut self) -> Option<Range<usize>> {
        if let (Some(deadline), Some(ns)) = (self.deadline, self.item_ns) {
            let left = deadline.saturating_duration_since(Instant::now());
            if self.dispenser.peek_len() as f64 * ns > left.as_secs_f64() * 1e9 {
                self.interrupt(interrupt::DEADLINE);
                return None;
            }
        }
        self.next_chunk()
    }

    /// Tops up `worker`'s window (unless `buffered` reorder bytes call for
    /// back-pressure); stops it when it has nothing left to do. `now` is a
    /// fresh clock reading; returns the last one (readings are chained
    /// rather than repeated: at one item per chunk the clock costs as much
    /// as the root's bookkeeping).
    fn refill(&mut self, worker: usize, buffered: usize, mut now: Instant) -> Instant {
        let local = worker == 0;
        if local && self.local.is_none() {
            return now; // inline mode: the root maps its own chunks
        }
        while !self.held_back(buffered) && self.wants_more(worker) {
            let Some(range) = self.next_in_time() else {
                break;
            };
            if let Some(since) = self.idle_since[worker].take()
                && let Some(p) = self.progress
            {
                p.idle(worker, since.elapsed().as_secs_f64());
            }
            if let Some(link) = self.local.as_ref().filter(|_| local) {
                // The input outlives the map; the local worker reads it directly.
                let input: &'a I = self.input;
                let _ = link.to.send(LocalChunk {
                    range: range.clone(),
                    items: Box::new(input.items(range.clone())),
                });
            } else {
                now = self.send_work(worker, &range, now);
            }
            self.in_flight_items[worker] += range.len();
            self.in_flight[worker].push_back(range);
        }
        let exhausted = self.dispenser.peek_len() == 0;
        if !local && exhausted && self.in_flight[worker].is_empty() && !self.stopped[worker] {
            self.t.send(worker, TAG_WORK, ToWorker::stop());
            self.stopped[worker] = true;
        }
        now
    }

    /// Encodes and sends a chunk, starting at `started`; returns when it was sent.
    fn send_work(&mut self, worker: usize, range: &Range<usize>, started: Instant) -> Instant {
        let room = codec::plain::size::<T>().map_or(0, |s| s * range.len());
        let mut frame = ToWorker::work_header(range, room);
        let encoded = self.input.with_range(range.clone(), |items| {
            codec::encode_items(items, &mut frame)
        });
        if let Err(e) = encoded {
            fatal(&format!("input items {}..{}: {e}", range.start, range.end));
        }
        let sent = Instant::now();
        let serialized = (sent - started).as_secs_f64();
        self.meter.phases.serialize += serialized;
        self.meter.bytes_scattered += (frame.len() - ToWorker::WORK_OVERHEAD) as u64;
        self.t.send(worker, TAG_WORK, frame);
        let done = Instant::now();
        let sending = (done - sent).as_secs_f64();
        self.meter.phases.scatter += sending;
        self.rec.record_for(
            LANE_MPI,
            Phase::Serialize,
            started,
            serialized,
            range.clone(),
        );
        self.rec
            .record_for(LANE_MPI, Phase::Send, sent, sending, range.clone());
        done
    }

    /// Takes every result that has arrived, refilling windows; returns
    /// whether any did.
    fn poll<S>(&mut self, collector: &mut Collector<'_, U, S>) -> bool
    where
        S: Sink<U>,
    {
        self.t.progress();
        let mut any = false;
        let mut started = Instant::now();
        while let Some((from, message)) = self.t.try_receive(None, TAG_DONE) {
            let received = Instant::now();
            let receiving = (received - started).as_secs_f64();
            self.meter.phases.gather += receiving;
            self.rec
                .record_for(LANE_MPI, Phase::Receive, started, receiving, 0..0);
            let done = self.accept(from, message, collector, received);
            started = self.refill(from, collector.buffered_bytes(), done);
            any = true;
        }
        while let Some(done) = self.local.as_ref().and_then(|l| l.from.try_recv().ok()) {
            let compute_ns = (done.ended - done.started).as_nanos() as u64;
            let lane = crate::trace::LANE_LOCAL;
            let range = done.range.clone();
            self.rec
                .record(lane, Phase::Compute, done.started, done.ended, range);
            self.rec.threads(&done.batch.runs);
            let now = self.accept_own(
                done.range,
                done.batch,
                compute_ns,
                collector,
                Instant::now(),
            );
            self.refill(0, collector.buffered_bytes(), now);
            any = true;
        }
        if let Some(signal) = interrupt::requested() {
            self.interrupt(signal);
        }
        any
    }

    /// Learns the cost per item from a chunk that took `ns`.
    fn observe(&mut self, items: usize, ns: u64) {
        if items > 0 {
            let per_item = ns as f64 / items as f64;
            // Smooth: one odd chunk should not swing the window.
            self.item_ns = Some(
                self.item_ns
                    .map_or(per_item, |old| 0.75 * old + 0.25 * per_item),
            );
        }
    }

    /// Marks the oldest chunk in flight at `rank` as returned; it must be `range`.
    fn returned(&mut self, rank: usize, range: &Range<usize>) {
        match self.in_flight[rank].pop_front() {
            Some(front) if front == *range => {
                self.in_flight_items[rank] -= range.len();
                if self.in_flight[rank].is_empty() && self.progress.is_some() {
                    self.idle_since[rank] = Some(Instant::now());
                }
            }
            other => fatal(&format!(
                "rank {rank} returned items {range:?}, expected {other:?}"
            )),
        }
    }

    /// A chunk was handed to the collector from `started` until now: its
    /// time is assembly; then acts on what became of it. Returns now.
    fn assembled(
        &mut self,
        started: Instant,
        arrival: Arrival,
        range: Range<usize>,
        stopped_by: u64,
    ) -> Instant {
        let done = Instant::now();
        let assembling = (done - started).as_secs_f64();
        self.meter.phases.assemble += assembling;
        let items = range.clone();
        self.rec
            .record_for(LANE_MPI, Phase::Assemble, started, assembling, items);
        self.arrived(arrival, range, stopped_by);
        done
    }

    /// Acts on what became of a chunk.
    fn arrived(&mut self, arrival: Arrival, range: Range<usize>, stopped_by: u64) {
        if stopped_by != 0 {
            self.interrupt(stopped_by);
        }
        match arrival {
            Arrival::Taken => {}
            Arrival::Failed => self.dispenser.stop(),
            // Unmapped without a signal (nothing does that today): map it again.
            Arrival::Abandoned if self.stopped_by.is_none() => self.dispenser.give_back(range),
            Arrival::Abandoned => {}
        }
    }

    /// Takes one worker's `Done` message, from `started`; returns when done.
    fn accept<S>(
        &mut self,
        from: usize,
        message: Vec<u8>,
        collector: &mut Collector<'_, U, S>,
        started: Instant,
    ) -> Instant
    where
        S: Sink<U>,
    {
        let (range, compute_ns, stopped_by, sum, at) = match Done::parse(&message) {
            Ok(d) => (
                d.range,
                d.compute_ns,
                d.stopped_by,
                d.sum,
                message.len() - d.payload.len(),
            ),
            Err(e) => fatal(&format!("from rank {from}: {e}")),
        };
        self.observe(range.len(), compute_ns);
        self.meter.bytes_gathered += (message.len() - at) as u64;
        self.returned(from, &range);
        let arrival = collector.add_payload(
            range.start,
            range.len(),
            Received::Message(message, at),
            sum,
            from,
        );
        self.assembled(started, arrival, range, stopped_by)
    }

    /// Takes a chunk the root mapped itself (inline or on its local
    /// worker), from `started`; returns when done.
    fn accept_own<S>(
        &mut self,
        range: Range<usize>,
        batch: Batch<U>,
        compute_ns: u64,
        collector: &mut Collector<'_, U, S>,
        started: Instant,
    ) -> Instant
    where
        S: Sink<U>,
    {
        self.observe(range.len(), compute_ns);
        if self.local.is_some() {
            self.returned(0, &range);
        }
        self.own.items += range.len() as u64;
        self.own.count_threads(&batch.per_thread);
        self.own.chunks += 1;
        self.own.compute_ns += compute_ns;
        let stopped_by = batch.stopped_by;
        let arrival = collector.add_batch(range.start, range.len(), batch, 0);
        self.assembled(started, arrival, range, stopped_by)
    }

    /// Stops every worker, gathers the rows, builds the stats.
    fn finish<S>(
        mut self,
        schedule: Schedule,
        threads: usize,
        collector: &Collector<'_, U, S>,
        rec: &mut Recorder,
    ) -> MapStats
    where
        S: Sink<U>,
    {
        let now = Instant::now();
        for worker in 1..self.t.size() {
            self.refill(worker, 0, now); // stops any worker that never got work
        }
        if let Some(p) = self.progress {
            for (rank, since) in self.idle_since.iter().enumerate() {
                if let Some(since) = since.filter(|_| rank > 0 || self.local.is_some()) {
                    p.idle(rank, since.elapsed().as_secs_f64());
                }
            }
        }
        let waiting = Instant::now();
        self.t.flush();
        self.own.wait_ns = (self.meter.phases.wait * 1e9) as u64;
        self.own.stopped_by = self.stopped_by.unwrap_or(0);
        let rows: Vec<Row> = transport::gather_bytes(self.t, &self.own.encode())
            .expect("the root gathers")
            .iter()
            .map(|r| Row::parse(r).unwrap_or_else(|e| fatal(&e.to_string())))
            .collect();
        self.rec.since(Phase::Wait, waiting, 0..0);
        *rec = self.rec;
        MapStats::assemble(schedule, self.meter, &rows, threads, collector.checksum())
    }
}
