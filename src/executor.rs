//! The per-rank compute step of every schedule: a chunk's items in, its
//! results and [`Outcome`] out, on the calling thread plus `threads - 1`
//! helper threads. Nothing here encodes or communicates.
//!
//! MPI never runs on a helper: with OpenMPI the communicator is not `Send`,
//! so the rank's main thread does all communication and calls back into
//! the schedule (`between`) between batches of its own items, sized to take
//! 20-200 us, while the helpers keep mapping (the hybrid "ranks x
//! threads" model).
//!
//! Items are claimed in runs, guided-style (`remaining / (2 x threads)`),
//! so costly items balance across threads and cheap ones are not paid for
//! one by one. A failed item (a panic, or an `Err` from the task) is
//! retried or recorded as the failure policy says; under `abort` every
//! thread stops claiming. Every 64 items a thread checks for a walltime
//! signal and abandons the chunk if there is one.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::failure::catch;
use crate::interrupt;
use crate::schedule::OnError;
use crate::stats::ItemFailure;
use crate::task::Task;
use crate::wire::Outcome;

/// The results of a chunk and how it went.
#[derive(Debug)]
pub struct Batch<U> {
    /// Results of the items that succeeded, in item order.
    pub results: Vec<U>,
    /// Failures and completeness.
    pub outcome: Outcome,
    /// The signal that made a thread abandon the chunk (0: none).
    pub stopped_by: u64,
    /// Items each compute thread mapped (by thread number).
    pub per_thread: Vec<u64>,
    /// The results' checksum share, once computed (see `codec::hash_items`).
    pub sum: Option<u64>,
    /// With several compute threads: which thread mapped which run of
    /// items when (for `trace`; a few per chunk, so always kept).
    pub runs: Vec<ThreadRun>,
}

/// A run of items one compute thread mapped.
#[derive(Clone, Debug)]
pub struct ThreadRun {
    /// The thread (0: the caller).
    pub thread: usize,
    /// Its first item.
    pub first: usize,
    /// How many items.
    pub count: usize,
    /// When it started.
    pub start: Instant,
    /// When it ended.
    pub end: Instant,
}

impl<U> Batch<U> {
    /// A chunk left unmapped (it follows one that stopped).
    pub fn abandoned() -> Batch<U> {
        Batch {
            results: Vec::new(),
            outcome: Outcome::default(),
            stopped_by: 0,
            per_thread: Vec::new(),
            sum: None,
            runs: Vec::new(),
        }
    }

    fn new(capacity: usize) -> Batch<U> {
        Batch {
            // Capped: a chunk's count can be absurd (it then fails cleanly elsewhere).
            results: crate::buffers::vec_with_capacity(capacity.min(1 << 26)),
            outcome: Outcome::complete(),
            stopped_by: 0,
            per_thread: Vec::new(),
            sum: None,
            runs: Vec::new(),
        }
    }
}

/// One map's per-thread states: a compute thread's is created on its first
/// item and lives until the map ends.
pub struct States<S> {
    slots: Vec<Mutex<Option<S>>>,
}

impl<S> States<S> {
    /// Empty states for `threads` compute threads.
    pub fn new(threads: usize) -> States<S> {
        States {
            slots: (0..threads.max(1)).map(|_| Mutex::new(None)).collect(),
        }
    }
}

/// What one chunk is, for [`Executor::run`].
pub struct Chunk<'a, T, I> {
    /// Global index of the first item.
    pub first: usize,
    /// Number of items.
    pub count: usize,
    /// The items, in order.
    pub items: I,
    /// Item `index` once more, for a retry.
    pub again: &'a (dyn Fn(usize) -> T + Sync),
}

/// Adapts how many items the main thread maps between calls to `between`,
/// so a batch takes 20-200 us: polls often enough, never per cheap item.
pub struct Pacer {
    batch: usize,
}

impl Pacer {
    const SHORT: Duration = Duration::from_micros(20);
    const LONG: Duration = Duration::from_micros(200);

    /// Starts at one item per batch.
    pub fn new() -> Pacer {
        Pacer { batch: 1 }
    }

    fn adapt(&mut self, took: Duration) {
        if took < Self::SHORT {
            self.batch = self.batch.saturating_mul(2);
        } else if took > Self::LONG {
            self.batch = (self.batch / 2).max(1);
        }
    }
}

impl Default for Pacer {
    fn default() -> Self {
        Pacer::new()
    }
}

/// The most items a batched task gets in one [`Task::call_run`].
const RUN: usize = 4096;

/// How a run of items on one thread ended.
enum Stop {
    /// The run is mapped.
    Done,
    /// The batch is done: time to call `between`.
    Pause,
    /// A walltime signal: abandon the chunk.
    Signal(u64),
    /// Item at this offset failed with this message.
    Failed(usize, String),
}

/// Maps chunks on a rank's compute threads.
pub struct Executor {
    threads: usize,
    /// `threads - 1` helpers; the calling thread is the first compute thread.
    helpers: Option<rayon::ThreadPool>,
}

impl Executor {
    /// An executor with `threads` compute threads (the caller counts as one).
    ///
    /// # Errors
    /// When the helper threads cannot be started.
    pub fn new(threads: usize) -> Result<Executor, rayon::ThreadPoolBuildError> {
        let threads = threads.max(1);
        let helpers = if threads > 1 {
            Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads - 1)
                    .thread_name(|i| format!("hpcmap-compute-{}", i + 1))
                    .build()?,
            )
        } else {
            None
        };
        Ok(Executor { threads, helpers })
    }

    /// Compute threads per rank.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Maps `chunk` with `task`; `between`, when given, is called on this
    /// thread between its batches (the root polls MPI there) with how many
    /// of the chunk's items are mapped (or claimed by a thread) so far.
    pub fn run<T, K, I>(
        &self,
        task: &K,
        states: &States<K::State>,
        policy: OnError,
        chunk: Chunk<'_, T, I>,
        between: Option<&mut dyn FnMut(usize)>,
    ) -> Batch<K::Output>
    where
        T: Send,
        K: Task<T>,
        K::Output: Send,
        I: Iterator<Item = T> + Send,
    {
        let mut idle = |_| {};
        let (pausing, between): (bool, &mut dyn FnMut(usize)) = match between {
            Some(b) => (true, b),
            None => (false, &mut idle),
        };
        match &self.helpers {
            None => {
                let mut slot = states.slots[0].lock().expect("state lock");
                let state = slot.get_or_insert_with(|| task.init(0));
                let run = Run {
                    task,
                    policy,
                    first: chunk.first,
                    again: chunk.again,
                };
                let mut batch = Batch::new(chunk.count);
                let mut items = chunk.items.enumerate();
                let mut pacer = Pacer::new();
                let pacer = pausing.then_some(&mut pacer);
                run.map(state, &mut items, &mut batch, pacer, between, None);
                batch.per_thread =
                    vec![(batch.results.len() + batch.outcome.failures.len()) as u64];
                batch
            }
            Some(_) => self.run_threaded(task, states, policy, chunk, pausing, between),
        }
    }

    fn run_threaded<T, K, I>(
        &self,
        task: &K,
        states: &States<K::State>,
        policy: OnError,
        chunk: Chunk<'_, T, I>,
        pausing: bool,
        between: &mut dyn FnMut(usize),
    ) -> Batch<K::Output>
    where
        T: Send,
        K: Task<T>,
        K::Output: Send,
        I: Iterator<Item = T> + Send,
    {
        let shared = Shared {
            items: Mutex::new((chunk.items.enumerate(), 0)),
            count: chunk.count,
            threads: self.threads,
            stop: AtomicBool::new(false),
            signal: AtomicU64::new(0),
            segments: Mutex::new(Vec::new()),
            per_thread: (0..self.threads).map(|_| AtomicU64::new(0)).collect(),
        };
        let run = Run {
            task,
            policy,
            first: chunk.first,
            again: chunk.again,
        };
        let helpers = self.helpers.as_ref().expect("threaded runs have helpers");
        helpers.in_place_scope(|scope| {
            for thread in 1..self.threads {
                let (shared, run, states) = (&shared, &run, states);
                scope.spawn(move |_| shared.work(run, states, thread, false, &mut |_| {}));
            }
            shared.work(&run, states, 0, pausing, between);
        });
        shared.merge(chunk.count)
    }
}

/// The item function and failure policy of one chunk.
struct Run<'a, T, K> {
    task: &'a K,
    policy: OnError,
    first: usize,
    again: &'a (dyn Fn(usize) -> T + Sync),
}

impl<T, K: Task<T>> Run<'_, T, K> {
    /// Maps items (with their offsets within the chunk) into `batch`,
    /// pausing for `between` every batch the pacer sizes, when given; stops
    /// early when `stop` is raised by another thread.
    fn map<It: Iterator<Item = (usize, T)>>(
        &self,
        state: &mut K::State,
        items: &mut It,
        batch: &mut Batch<K::Output>,
        mut pacer: Option<&mut Pacer>,
        between: &mut dyn FnMut(usize),
        stop: Option<&AtomicBool>,
    ) {
        if self.task.batched() {
            return self.map_runs(state, items, batch, stop);
        }
        loop {
            let pause = pacer.as_ref().map_or(usize::MAX, |p| p.batch);
            let started = Instant::now();
            let mut current = 0;
            // One catch covers a run of items (a catch per item costs more
            // than mapping a cheap one); the item that panicked is `current`.
            let results = &mut batch.results;
            let ran = catch(|| {
                let mut n = 0usize;
                for (i, item) in &mut *items {
                    if i % 64 == 0 {
                        if let Some(signal) = interrupt::requested() {
                            return Stop::Signal(signal);
                        }
                        if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
                            return Stop::Signal(0);
                        }
                    }
                    current = i;
                    match self.task.call(state, self.first + i, item) {
                        Ok(u) => results.push(u),
                        Err(message) => return Stop::Failed(i, message),
                    }
                    n += 1;
                    if n == pause {
                        return Stop::Pause;
                    }
                }
                Stop::Done
            });
            let ran = ran.unwrap_or_else(|panic| {
                Stop::Failed(current, format!("{}{panic}", ItemFailure::PANICKED))
            });
            match ran {
                Stop::Done => return,
                Stop::Pause => {
                    if let Some(pacer) = pacer.as_deref_mut() {
                        pacer.adapt(started.elapsed());
                    }
                    between(batch.results.len() + batch.outcome.failures.len());
                }
                Stop::Signal(signal) => {
                    batch.outcome.complete = false;
                    batch.stopped_by = signal;
                    return;
                }
                Stop::Failed(i, message) => {
                    // A failure during a walltime signal is the signal's
                    // doing (a killed child): abandon, map again on resume.
                    if let Some(signal) = interrupt::requested() {
                        batch.outcome.complete = false;
                        batch.stopped_by = signal;
                        return;
                    }
                    if !self.settle(state, i, message, batch) {
                        return;
                    }
                }
            }
        }
    }

    /// [`Run::map`] for a batched task: runs of up to [`RUN`] items go to
    /// [`Task::call_run`] at once; failed items are settled one by one.
    fn map_runs<It: Iterator<Item = (usize, T)>>(
        &self,
        state: &mut K::State,
        items: &mut It,
        batch: &mut Batch<K::Output>,
        stop: Option<&AtomicBool>,
    ) {
        loop {
            if let Some(signal) = interrupt::requested() {
                batch.outcome.complete = false;
                batch.stopped_by = signal;
                return;
            }
            if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
                batch.outcome.complete = false;
                return;
            }
            let run: Vec<(usize, T)> = items.by_ref().take(RUN).collect();
            let Some(&(first, _)) = run.first() else {
                return;
            };
            let count = run.len();
            let values = run.into_iter().map(|(_, item)| item).collect();
            let results = match catch(|| self.task.call_run(state, self.first + first, values)) {
                Ok(results) if results.len() == count => results,
                Ok(results) => (0..count)
                    .map(|_| {
                        Err(format!(
                            "the task returned {} results for {count} items",
                            results.len()
                        ))
                    })
                    .collect(),
                // The panic fails the run's first item; the rest are mapped again.
                Err(panic) => std::iter::once(Err(format!("{}{panic}", ItemFailure::PANICKED)))
                    .chain((1..count).map(|k| {
                        let index = self.first + first + k;
                        let again = (self.again)(index);
                        catch(|| self.task.call_run(state, index, vec![again]))
                            .ok()
                            .and_then(|mut r| r.pop())
                            .unwrap_or_else(|| Err("the task failed".into()))
                    }))
                    .collect(),
            };
            for (k, result) in results.into_iter().enumerate() {
                match result {
                    Ok(u) => batch.results.push(u),
                    Err(message) => {
                        if let Some(signal) = interrupt::requested() {
                            batch.outcome.complete = false;
                            batch.stopped_by = signal;
                            return;
                        }
                        if !self.settle(state, first + k, message, batch) {
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Item at offset `i` failed with `message`: retries it if the policy
    /// says so, else records the failure. Returns whether the run goes on.
    fn settle(
        &self,
        state: &mut K::State,
        i: usize,
        message: String,
        batch: &mut Batch<K::Output>,
    ) -> bool {
        let index = self.first + i;
        if let OnError::Retry(n) = self.policy {
            for _ in 0..n {
                let item = (self.again)(index);
                let retried = catch(|| {
                    if self.task.batched() {
                        self.task.call_run(state, index, vec![item]).pop()
                    } else {
                        Some(self.task.call(state, index, item))
                    }
                });
                if let Ok(Some(Ok(u))) = retried {
                    batch.results.push(u);
                    return true;
                }
            }
        }
        batch.outcome.failures.push((index as u64, message));
        if self.policy == OnError::Skip {
            return true;
        }
        batch.outcome.complete = false;
        false
    }
}

/// A run of consecutive items mapped by one thread.
struct Segment<U> {
    offset: usize,
    batch: Batch<U>,
    run: ThreadRun,
}

/// What the threads of one chunk share.
struct Shared<I, U> {
    /// The items not claimed yet, and how many were claimed.
    items: Mutex<(I, usize)>,
    count: usize,
    threads: usize,
    /// Set when a thread stopped at a failure or a signal: the others stop too.
    stop: AtomicBool,
    signal: AtomicU64,
    segments: Mutex<Vec<Segment<U>>>,
    /// Items each thread mapped.
    per_thread: Vec<AtomicU64>,
}

impl<T, I, U> Shared<I, U>
where
    I: Iterator<Item = (usize, T)>,
{
    /// Claims runs of items and maps them until none are left.
    fn work<K>(
        &self,
        run: &Run<'_, T, K>,
        states: &States<K::State>,
        thread: usize,
        pausing: bool,
        between: &mut dyn FnMut(usize),
    ) where
        K: Task<T, Output = U>,
    {
        let mut slot = states.slots[thread].lock().expect("state lock");
        let state = slot.get_or_insert_with(|| run.task.init(thread));
        let mut pacer = Pacer::new();
        // `between` learns the chunk's claimed items, not this run's.
        let mut between = |_: usize| {
            let claimed = self.items.lock().expect("items lock").1;
            between(claimed);
        };
        while !self.stop.load(Ordering::Relaxed) {
            let (claimed, offset) = {
                let mut items = self.items.lock().expect("items lock");
                let left = self.count - items.1;
                if left == 0 {
                    break;
                }
                let take = left.div_ceil(2 * self.threads).clamp(1, 4096);
                let offset = items.1;
                let claimed: Vec<(usize, T)> = items.0.by_ref().take(take).collect();
                items.1 += claimed.len();
                if claimed.is_empty() {
                    break;
                }
                (claimed, offset)
            };
            let mut batch = Batch::new(claimed.len());
            let started = Instant::now();
            let mut claimed = claimed.into_iter();
            let pacer = pausing.then_some(&mut pacer);
            run.map(
                state,
                &mut claimed,
                &mut batch,
                pacer,
                &mut between,
                Some(&self.stop),
            );
            let mapped = batch.results.len() + batch.outcome.failures.len();
            let span = ThreadRun {
                thread,
                first: run.first + offset,
                count: mapped,
                start: started,
                end: Instant::now(),
            };
            self.per_thread[thread].fetch_add(mapped as u64, Ordering::Relaxed);
            if !batch.outcome.complete {
                self.stop.store(true, Ordering::Relaxed);
                if batch.stopped_by != 0 {
                    self.signal.store(batch.stopped_by, Ordering::Relaxed);
                }
            }
            self.segments.lock().expect("segments lock").push(Segment {
                offset,
                batch,
                run: span,
            });
        }
    }

    /// The chunk's batch from the threads' segments, in item order.
    fn merge(self, count: usize) -> Batch<U> {
        let mut segments = self.segments.into_inner().expect("segments lock");
        segments.sort_by_key(|s| s.offset);
        let mut batch = Batch::new(count);
        let mut covered = 0;
        for Segment {
            offset,
            batch: b,
            run,
        } in segments
        {
            batch.runs.push(run);
            if offset != covered || !b.outcome.complete {
                batch.outcome.complete = false;
            }
            covered = offset + b.results.len() + b.outcome.failures.len();
            batch.results.extend(b.results);
            batch.outcome.failures.extend(b.outcome.failures);
        }
        if covered != count || self.stop.load(Ordering::Relaxed) {
            batch.outcome.complete = false;
        }
        batch.stopped_by = self.signal.load(Ordering::Relaxed);
        batch.per_thread = self
            .per_thread
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .collect();
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{Fallible, Func, WithState};

    fn chunk<'a, T: Clone + Send + Sync>(
        items: &[T],
        again: &'a (dyn Fn(usize) -> T + Sync),
    ) -> Chunk<'a, T, impl Iterator<Item = T> + Send> {
        Chunk {
            first: 100,
            count: items.len(),
            items: items.iter().cloned(),
            again,
        }
    }

    #[test]
    fn every_thread_count_gives_the_serial_results_in_order() {
        let items: Vec<u64> = (0..10_000).collect();
        let again = |i: usize| (i - 100) as u64;
        let serial: Vec<u64> = items.iter().map(|x| x * 3).collect();
        for threads in [1, 2, 3, 8] {
            let ex = Executor::new(threads).unwrap();
            let task = Func(|x: u64| x * 3);
            let states = States::new(threads);
            let mut polls = 0;
            let mut poll = |_| polls += 1;
            let b = ex.run(
                &task,
                &states,
                OnError::Abort,
                chunk(&items, &again),
                Some(&mut poll),
            );
            assert_eq!(b.results, serial, "{threads} threads");
            assert!(b.outcome.complete && b.outcome.failures.is_empty());
            if threads == 1 {
                assert!(polls > 0, "the main thread paused to poll");
            }
            assert_eq!(b.per_thread.len(), threads);
            assert_eq!(b.per_thread.iter().sum::<u64>(), 10_000);
            // Items that take time are shared by every thread.
            let slow = Func(|x: u64| {
                std::thread::sleep(std::time::Duration::from_micros(50));
                x
            });
            let b = ex.run(
                &slow,
                &States::new(threads),
                OnError::Abort,
                chunk(&items[..400], &again),
                None,
            );
            assert_eq!(
                b.per_thread.iter().filter(|&&n| n > 0).count(),
                threads,
                "{:?}",
                b.per_thread
            );
        }
    }

    #[test]
    fn per_thread_state_is_made_once_per_thread_and_map() {
        use std::sync::atomic::AtomicUsize;
        let made = AtomicUsize::new(0);
        let task = WithState {
            init: |thread: usize| {
                made.fetch_add(1, Ordering::Relaxed);
                (thread, 0usize)
            },
            f: |s: &mut (usize, usize), x: u32| {
                s.1 += 1;
                x + 1
            },
        };
        let ex = Executor::new(3).unwrap();
        let states = States::new(3);
        let items: Vec<u32> = (0..3000).collect();
        let again = |i: usize| (i - 100) as u32;
        for _ in 0..4 {
            let b = ex.run(&task, &states, OnError::Abort, chunk(&items, &again), None);
            assert_eq!(b.results.len(), 3000);
        }
        assert!(made.load(Ordering::Relaxed) <= 3, "one state per thread");
        let per_thread: usize = states
            .slots
            .iter()
            .map(|s| s.lock().unwrap().as_ref().map_or(0, |s| s.1))
            .sum();
        assert_eq!(per_thread, 4 * 3000, "states live across the map's chunks");
    }

    #[test]
    fn failures_follow_the_policy_on_any_thread_count() {
        let items: Vec<i64> = (0..500).collect();
        let again = |i: usize| (i - 100) as i64;
        let bad = |x: i64| {
            if x == 123 || x == 321 {
                Err(format!("{x} is bad"))
            } else {
                Ok(x)
            }
        };
        for threads in [1, 3] {
            let ex = Executor::new(threads).unwrap();
            let states = States::new(threads);
            let task = Fallible(bad);
            let skip = ex.run(&task, &states, OnError::Skip, chunk(&items, &again), None);
            assert!(skip.outcome.complete);
            assert_eq!(skip.results.len(), 498);
            assert_eq!(
                skip.outcome.failures,
                [
                    (223, "123 is bad".to_string()),
                    (421, "321 is bad".to_string())
                ]
            );
            let abort = ex.run(&task, &states, OnError::Abort, chunk(&items, &again), None);
            assert!(!abort.outcome.complete);
            assert!(
                abort
                    .outcome
                    .failures
                    .iter()
                    .any(|f| f.0 == 223 || f.0 == 421)
            );
            // A panic is a failure like an Err, with its message.
            let panics = Func(|x: i64| {
                assert!(x != 7, "seven");
                x
            });
            let p = ex.run(
                &panics,
                &States::new(threads),
                OnError::Skip,
                chunk(&items, &again),
                None,
            );
            assert_eq!(p.outcome.failures.len(), 1);
            assert_eq!(p.outcome.failures[0].0, 107);
            assert!(
                p.outcome.failures[0].1.starts_with("panicked: seven"),
                "{:?}",
                p.outcome
            );
        }
    }

    #[test]
    fn retries_use_the_item_again() {
        use std::sync::atomic::AtomicUsize;
        let tries = AtomicUsize::new(0);
        let flaky = Fallible(|x: u8| {
            if x == 5 && tries.fetch_add(1, Ordering::Relaxed) < 2 {
                Err("flaky")
            } else {
                Ok(x)
            }
        });
        let items: Vec<u8> = (0..10).collect();
        let again = |i: usize| (i - 100) as u8;
        let ex = Executor::new(1).unwrap();
        let b = ex.run(
            &flaky,
            &States::new(1),
            OnError::Retry(2),
            chunk(&items, &again),
            None,
        );
        assert!(b.outcome.complete && b.outcome.failures.is_empty());
        assert_eq!(b.results, items);
        tries.store(0, Ordering::Relaxed);
        let b = ex.run(
            &flaky,
            &States::new(1),
            OnError::Retry(1),
            chunk(&items, &again),
            None,
        );
        assert!(!b.outcome.complete, "one retry is not enough: abort");
        assert_eq!(b.outcome.failures, [(105, "flaky".to_string())]);
    }

    /// Answers a run at once, like a pipe to a worker process would.
    struct Runs(std::sync::atomic::AtomicUsize);

    impl Task<u32> for Runs {
        type Output = u32;
        type State = ();
        fn init(&self, _: usize) {}
        fn call(&self, _: &mut (), _: usize, _: u32) -> Result<u32, String> {
            unreachable!("batched tasks get runs")
        }
        fn call_run(&self, _: &mut (), first: usize, items: Vec<u32>) -> Vec<Result<u32, String>> {
            self.0.fetch_add(1, Ordering::Relaxed);
            items
                .into_iter()
                .enumerate()
                .map(|(k, x)| {
                    if first + k == 107 {
                        Err("bad".into())
                    } else {
                        Ok(x * 2)
                    }
                })
                .collect()
        }
        fn batched(&self) -> bool {
            true
        }
    }

    #[test]
    fn batched_tasks_get_runs_and_failures_are_settled_per_item() {
        let items: Vec<u32> = (0..50).collect();
        let again = |i: usize| (i - 100) as u32;
        for threads in [1, 3] {
            let task = Runs(std::sync::atomic::AtomicUsize::new(0));
            let ex = Executor::new(threads).unwrap();
            let b = ex.run(
                &task,
                &States::new(threads),
                OnError::Skip,
                chunk(&items, &again),
                None,
            );
            assert_eq!(b.results.len(), 49);
            assert_eq!(b.outcome.failures, [(107, "bad".to_string())]);
            assert!(task.0.load(Ordering::Relaxed) < 25, "runs, not items");
            let b = ex.run(
                &task,
                &States::new(threads),
                OnError::Retry(2),
                chunk(&items, &again),
                None,
            );
            assert!(!b.outcome.complete, "a retry of a hopeless item gives up");
        }
    }
}
