//! `Pool`: MPI set-up, the map entry points, and typed messages between ranks.
//!
//! Every rank of the job creates one `Pool` and calls the same methods in the
//! same order (SPMD). Collective methods say so; the root (rank 0) holds the
//! input and receives the results, the other ranks get `None` back.

use mpi::Threading;
use mpi::environment::Universe;
use mpi::point_to_point::{Destination, Source as _};
use mpi::topology::{Communicator, Rank, SimpleCommunicator};
use mpi::traits::*;
use serde::{Serialize, de::DeserializeOwned};

use crate::codec;
use crate::collect::{Collector, FnSink, Sink};
use crate::error::MapError;
use crate::executor::Executor;
use crate::failure::{fatal, install_panic_hook};
use crate::journal::Journal;
use crate::schedule::{self, Map, MapOptions, Order};
use crate::source::Source;
use crate::stats::MapStats;
use crate::task::{Fallible, Func, Task, WithState};
use crate::transport::mpi::{Mpi, real};
use crate::transport::{self, Transport};

/// Why a pool could not be created.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// MPI was already initialized in this process (only one pool per process).
    #[error("MPI is already initialized in this process: create one Pool per process")]
    AlreadyInitialized,
    /// The compute threads could not be started.
    #[error("cannot start {threads} compute threads: {source}")]
    Threads {
        /// Requested thread count.
        threads: usize,
        /// rayon's reason.
        source: rayon::ThreadPoolBuildError,
    },
}

/// What the root may attach to a map besides its sink (other ranks pass
/// the default).
#[derive(Default)]
pub struct Hooks<'a> {
    /// Append every complete chunk here, and take the chunks it already
    /// holds from it instead of mapping them again.
    pub journal: Option<&'a mut Journal>,
    /// Counters to follow the map by, from another thread.
    pub progress: Option<&'a crate::progress::Progress>,
}

/// The outcome of one map.
#[derive(Debug)]
pub struct Mapped<U> {
    /// The results in input order on the root; `None` on every other rank.
    pub results: Option<Vec<U>>,
    /// Measurements: complete on the root, this rank's own on the others.
    pub stats: MapStats,
}

/// A process pool spanning every rank of the MPI job.
///
/// ```no_run
/// // Run under `mpirun -n 5`: the lecture's Pool(5).map(square, [1, 2, 3]).
/// let pool = hpcmap::Pool::init().unwrap();
/// let input = pool.is_root().then(|| vec![1u64, 2, 3]);
/// let mapped = pool.map(input.as_deref(), |x: u64| x * x).unwrap();
/// if let Some(squares) = mapped.results {
///     assert_eq!(squares, [1, 4, 9]);
/// }
/// ```
pub struct Pool {
    /// The pool's own traffic, on a private duplicate of the world communicator.
    transport: Mpi,
    /// The world communicator, for the user's messages.
    world: SimpleCommunicator,
    executor: Executor,
    buffers: crate::buffers::Buffers,
    hosts: Vec<String>,
    // Dropped last: finalizes MPI.
    _universe: Universe,
}

impl Pool {
    /// Collective: initializes MPI and gathers every rank's hostname on the root.
    ///
    /// Installs a panic hook that aborts the whole job (naming the rank), so
    /// a panic outside an item on one rank never leaves the others blocked;
    /// a panic inside an item is caught and reported instead (see
    /// [`crate::OnError`]). Compute uses one thread per rank; see
    /// [`Pool::with_threads`].
    ///
    /// # Errors
    /// [`PoolError::AlreadyInitialized`] when MPI is already up in this process.
    pub fn init() -> Result<Pool, PoolError> {
        // Funneled: only the main thread talks MPI; compute threads never do.
        let (universe, _) = mpi::initialize_with_threading(Threading::Funneled)
            .ok_or(PoolError::AlreadyInitialized)?;
        let world = universe.world();
        let transport = Mpi::new(&world);
        let host = mpi::environment::processor_name().unwrap_or_else(|_| "unknown".into());
        install_panic_hook(transport.rank(), host.clone());
        let hosts = match transport::gather_bytes(&transport, host.as_bytes()) {
            Some(all) => all
                .iter()
                .map(|h| String::from_utf8_lossy(h).into_owned())
                .collect(),
            None => vec![host],
        };
        Ok(Pool {
            transport,
            world,
            executor: Executor::new(1).expect("one thread needs no helpers"),
            buffers: crate::buffers::Buffers::default(),
            hosts,
            _universe: universe,
        })
    }

    /// Maps with `threads` compute threads per rank (hybrid ranks x threads).
    ///
    /// # Errors
    /// [`PoolError::Threads`] when the threads cannot be started.
    pub fn with_threads(mut self, threads: usize) -> Result<Pool, PoolError> {
        self.executor =
            Executor::new(threads).map_err(|source| PoolError::Threads { threads, source })?;
        Ok(self)
    }

    /// This process's rank (0 is the root).
    pub fn rank(&self) -> usize {
        self.transport.rank()
    }

    /// Number of ranks in the job.
    pub fn size(&self) -> usize {
        self.transport.size()
    }

    /// Whether this is the root rank, which holds the input and gets the results.
    pub fn is_root(&self) -> bool {
        self.transport.is_root()
    }

    /// Compute threads per rank.
    pub fn threads(&self) -> usize {
        self.executor.threads()
    }

    /// Hostname of every rank, by rank, on the root; this rank's own elsewhere.
    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }

    /// The world communicator, for code that needs rsmpi directly. The pool's
    /// own messages travel on a private duplicate, so nothing sent here can
    /// disturb a map.
    pub fn world(&self) -> &SimpleCommunicator {
        &self.world
    }

    /// Collective: `Pool.map` with the default options (static schedule, one
    /// block per rank, abort on a failed item). See [`Pool::map_with`].
    ///
    /// # Errors
    /// As [`Pool::map_with`].
    pub fn map<I, T, U, F>(&self, input: Option<&I>, f: F) -> Result<Mapped<U>, MapError>
    where
        I: Source<Item = T> + Sync + ?Sized,
        T: Serialize + DeserializeOwned + Send + 'static,
        U: Serialize + DeserializeOwned + Send + 'static,
        F: Fn(T) -> U + Sync,
    {
        self.map_with(input, &MapOptions::default(), f)
    }

    /// Collective: applies `f` to every input item on some rank and returns
    /// the results in input order on the root.
    ///
    /// Every rank calls it with the same `options`; the root passes
    /// `Some(input)`, the others `None` (it is ignored there). The root maps
    /// a share too, straight from the input. Items travel to the other ranks
    /// as bincode chunks, and each rank maps its chunks on
    /// [`Pool::threads`] threads.
    ///
    /// # Errors
    /// On the root: [`MapError::ItemFailed`] when an item panicked under
    /// [`crate::OnError::Abort`] (or its retries ran out); the panic is
    /// caught on the rank that mapped it, and the map ends cleanly on every
    /// rank. [`MapError::Interrupted`] when a walltime signal (see
    /// [`crate::interrupt`]) stopped it. [`MapError::TooLarge`] when one
    /// collective would move over 2 GiB and [`MapError::Codec`] when an
    /// input item fails to serialize (the other ranks get
    /// [`MapError::RootFailed`] then). A map never returns `Ok` unless every
    /// item is accounted for: mapped, or failed and skipped under
    /// [`crate::OnError::Skip`] (listed in [`MapStats::skipped`]).
    ///
    /// # Panics
    /// When the root passes `None`. A panic outside `f` (a bug, a failed
    /// write of the journal) aborts the whole job with `MPI_Abort`, naming
    /// the rank.
    ///
    /// ```no_run
    /// use hpcmap::{MapOptions, OnError, Schedule};
    /// let pool = hpcmap::Pool::init().unwrap();
    /// let options = MapOptions {
    ///     schedule: Schedule::Dynamic,
    ///     chunk: Some(16),
    ///     on_error: OnError::Retry(2),
    ///     ..MapOptions::default()
    /// };
    /// let input = pool.is_root().then(|| (0..1000u32).collect::<Vec<_>>());
    /// let mapped = pool.map_with(input.as_deref(), &options, |x: u32| x.count_ones()).unwrap();
    /// ```
    pub fn map_with<I, T, U, F>(
        &self,
        input: Option<&I>,
        options: &MapOptions,
        f: F,
    ) -> Result<Mapped<U>, MapError>
    where
        I: Source<Item = T> + Sync + ?Sized,
        T: Serialize + DeserializeOwned + Send + 'static,
        U: Serialize + DeserializeOwned + Send + 'static,
        F: Fn(T) -> U + Sync,
    {
        self.collect(input, options, &Func(f))
    }

    /// Collective: [`Pool::map_with`] for a fallible function: an `Err(e)`
    /// fails the item, exactly like a panic, with `e`'s text, and the
    /// failure policy decides what happens.
    ///
    /// # Errors
    /// As [`Pool::map_with`].
    ///
    /// ```no_run
    /// let pool = hpcmap::Pool::init().unwrap();
    /// let input = pool.is_root().then(|| vec!["1".to_string(), "x".into()]);
    /// let parsed = pool.try_map_with(input.as_deref(), &Default::default(), |s: String| {
    ///     s.parse::<u64>()
    /// });
    /// assert!(parsed.is_err() || !pool.is_root()); // "x" fails under the abort policy
    /// ```
    pub fn try_map_with<I, T, U, E, F>(
        &self,
        input: Option<&I>,
        options: &MapOptions,
        f: F,
    ) -> Result<Mapped<U>, MapError>
    where
        I: Source<Item = T> + Sync + ?Sized,
        T: Serialize + DeserializeOwned + Send + 'static,
        U: Serialize + DeserializeOwned + Send + 'static,
        E: std::fmt::Display,
        F: Fn(T) -> Result<U, E> + Sync,
    {
        self.collect(input, options, &Fallible(f))
    }

    /// Collective: [`Pool::map_with`] with per-thread state, like rayon's
    /// `map_init`: `init(thread)` runs once per compute thread of each rank
    /// (on its first item), and `f(&mut state, item)` maps each item that
    /// thread takes. The states are dropped when the map ends.
    ///
    /// # Errors
    /// As [`Pool::map_with`].
    ///
    /// ```no_run
    /// let pool = hpcmap::Pool::init().unwrap().with_threads(2).unwrap();
    /// let input = pool.is_root().then(|| vec![3u64, 4, 5]);
    /// // A scratch buffer per thread, reused for every item it maps.
    /// let mapped = pool.map_init(
    ///     input.as_deref(),
    ///     &Default::default(),
    ///     |_thread| Vec::<u64>::with_capacity(64),
    ///     |scratch: &mut Vec<u64>, n: u64| {
    ///         scratch.clear();
    ///         scratch.extend(0..n);
    ///         scratch.iter().sum::<u64>()
    ///     },
    /// ).unwrap();
    /// ```
    pub fn map_init<I, T, U, S, N, F>(
        &self,
        input: Option<&I>,
        options: &MapOptions,
        init: N,
        f: F,
    ) -> Result<Mapped<U>, MapError>
    where
        I: Source<Item = T> + Sync + ?Sized,
        T: Serialize + DeserializeOwned + Send + 'static,
        U: Serialize + DeserializeOwned + Send + 'static,
        S: Send,
        N: Fn(usize) -> S + Sync,
        F: Fn(&mut S, T) -> U + Sync,
    {
        self.collect(input, options, &WithState { init, f })
    }

    /// Collective: like [`Pool::map_with`], but on the root each result is
    /// handed to `sink(index, result)` instead of being collected: in input
    /// order under [`Order::Input`] (chunks that arrive early wait), as they
    /// arrive under [`Order::Completion`] (no reorder buffer; the checksum is
    /// the same). For folds and streaming writers that need no `Vec` of all
    /// results.
    ///
    /// # Errors
    /// As [`Pool::map_with`].
    pub fn map_each<I, T, U, F, S>(
        &self,
        input: Option<&I>,
        options: &MapOptions,
        f: F,
        sink: S,
    ) -> Result<MapStats, MapError>
    where
        I: Source<Item = T> + Sync + ?Sized,
        T: Serialize + DeserializeOwned + Send + 'static,
        U: Serialize + DeserializeOwned + Send + 'static,
        F: Fn(T) -> U + Sync,
        S: FnMut(usize, U),
    {
        self.map_task(input, options, &Func(f), Hooks::default(), FnSink(sink))
    }

    /// Collective: the general map. Applies `task` (see [`crate::Task`]:
    /// state per thread, fallible items, items that wait on other processes)
    /// and hands each result to `sink` on the root, in `options.order`. With
    /// a journal in `hooks` (root only), every complete chunk is appended to
    /// it as it arrives, and chunks it already holds are not computed again
    /// but handed to `sink` from the file, so a resumed run gives the same
    /// results and checksum as an uninterrupted one; with a
    /// [`crate::progress::Progress`], the root counts as results arrive.
    ///
    /// # Errors
    /// As [`Pool::map_with`].
    pub fn map_task<I, T, K, S>(
        &self,
        input: Option<&I>,
        options: &MapOptions,
        task: &K,
        hooks: Hooks<'_>,
        sink: S,
    ) -> Result<MapStats, MapError>
    where
        I: Source<Item = T> + Sync + ?Sized,
        T: Serialize + DeserializeOwned + Send + 'static,
        K: Task<T>,
        K::Output: Serialize + DeserializeOwned + Send + 'static,
        S: Sink<K::Output>,
    {
        if options.chunk == Some(0) {
            return Err(MapError::Invalid("chunk size must be at least 1".into()));
        }
        if self.is_root() {
            assert!(
                input.is_some(),
                "the root rank must pass Some(input) to map"
            );
        }
        crate::interrupt::clear_stop();
        crate::interrupt::set_deadline(options.deadline);
        let Hooks { journal, progress } = hooks;
        let total = input.map_or(0, Source::len);
        // The root maps only what the journal does not hold yet.
        let todo = match (&journal, input) {
            (Some(j), Some(_)) => j.todo(total),
            (None, Some(_)) => std::iter::once(0..total).collect(),
            (_, None) => Vec::new(),
        };
        if let Some(p) = progress.filter(|_| self.is_root()) {
            p.start(
                total,
                journal.as_ref().map_or(0, |j| j.done_items()),
                self.size(),
            );
        }
        if options.trace {
            // The ranks' clocks start together (to within the barrier).
            self.transport.barrier();
        }
        let progress = progress.filter(|_| self.is_root());
        let mut collector =
            Collector::new(options.order == Order::Input, journal, sink).with_progress(progress);
        let map = Map {
            transport: &self.transport,
            executor: &self.executor,
            buffers: &self.buffers,
            input,
            todo,
            options,
            task,
            reorder_limit: schedule::REORDER_LIMIT_BYTES,
            progress,
            started: std::time::Instant::now(),
        };
        let stats = schedule::run(map, &mut collector);
        if let Some(p) = progress {
            p.finish();
        }
        let stats = stats?;
        if !self.is_root() {
            return Ok(stats);
        }
        collector.conclude(stats, total, &self.hosts)
    }

    /// [`Pool::map_task`] collecting the results into a `Vec` on the root.
    fn collect<I, T, K>(
        &self,
        input: Option<&I>,
        options: &MapOptions,
        task: &K,
    ) -> Result<Mapped<K::Output>, MapError>
    where
        I: Source<Item = T> + Sync + ?Sized,
        T: Serialize + DeserializeOwned + Send + 'static,
        K: Task<T>,
        K::Output: Serialize + DeserializeOwned + Send + 'static,
    {
        let total = input.map_or(0, Source::len);
        let mut sink = Collect::new(options.order, total);
        let stats = self.map_task(input, options, task, Hooks::default(), &mut sink)?;
        let results = sink.results();
        Ok(Mapped {
            results: self.is_root().then_some(results),
            stats,
        })
    }

    /// Collective: every rank gets the root's `value` (others pass `None`).
    ///
    /// # Panics
    /// When the root passes `None`.
    pub fn broadcast<T: Serialize + DeserializeOwned>(&self, value: Option<&T>) -> T {
        let mut len = [0u64];
        let mut bytes = Vec::new();
        if self.is_root() {
            let value = value.expect("the root rank must pass Some(value) to broadcast");
            bytes = codec::encode_value(value).unwrap_or_else(|e| fatal(&e.to_string()));
            len[0] = bytes.len() as u64;
        }
        self.root().broadcast_into(&mut len[..]);
        bytes.resize(len[0] as usize, 0);
        if !bytes.is_empty() {
            self.root().broadcast_into(&mut bytes[..]);
        }
        codec::decode_value(&bytes).unwrap_or_else(|e| fatal(&e.to_string()))
    }

    /// Collective: every rank's `value` on the root, by rank; `None` on the
    /// other ranks.
    pub fn gather<T: Serialize + DeserializeOwned>(&self, value: &T) -> Option<Vec<T>> {
        let bytes = codec::encode_value(value).unwrap_or_else(|e| fatal(&e.to_string()));
        transport::gather_bytes(&self.transport, &bytes).map(|all| {
            all.iter()
                .map(|b| codec::decode_value(b).unwrap_or_else(|e| fatal(&e.to_string())))
                .collect()
        })
    }

    /// Point-to-point on the world communicator: sends `value` to rank
    /// `dest` (a `Queue.put` across ranks). Blocks until MPI can take it.
    pub fn send<T: Serialize>(&self, dest: usize, tag: i32, value: &T) {
        let bytes = codec::encode_value(value).unwrap_or_else(|e| fatal(&e.to_string()));
        self.world
            .process_at_rank(dest as Rank)
            .send_with_tag(real(&bytes), tag);
    }

    /// Point-to-point on the world communicator: receives a value sent with
    /// `tag` from `source`, or from any rank when `None` (a `Queue.get`).
    /// Returns the sender's rank too.
    pub fn receive<T: DeserializeOwned>(&self, source: Option<usize>, tag: i32) -> (T, usize) {
        let (bytes, status) = match source {
            Some(s) => self
                .world
                .process_at_rank(s as Rank)
                .matched_probe_with_tag(tag)
                .matched_receive_vec::<u8>(),
            None => self
                .world
                .any_process()
                .matched_probe_with_tag(tag)
                .matched_receive_vec::<u8>(),
        };
        let from = status.source_rank() as usize;
        let value = codec::decode_value(&bytes)
            .unwrap_or_else(|e| fatal(&format!("message from rank {from}: {e}")));
        (value, from)
    }

    /// Point-to-point both ways (MPI_Sendrecv on the world communicator):
    /// sends `value` to `dest` while receiving from `source`. Deadlock-free
    /// in rings and shifts, whatever the message size.
    pub fn exchange<T: Serialize, U: DeserializeOwned>(
        &self,
        value: &T,
        dest: usize,
        source: usize,
        tag: i32,
    ) -> U {
        let bytes = codec::encode_value(value).unwrap_or_else(|e| fatal(&e.to_string()));
        let to = self.world.process_at_rank(dest as Rank);
        let from = self.world.process_at_rank(source as Rank);
        let (len, _) = mpi::point_to_point::send_receive_with_tags::<u64, _, u64, _>(
            &(bytes.len() as u64),
            &to,
            tag,
            &from,
            tag,
        );
        // A real allocation even when empty: an empty slice's address is MPI_IN_PLACE.
        let mut back = Vec::with_capacity((len as usize).max(1));
        back.resize(len as usize, 0u8);
        mpi::point_to_point::send_receive_into_with_tags(
            real(&bytes),
            &to,
            tag,
            &mut back[..],
            &from,
            tag,
        );
        codec::decode_value(&back)
            .unwrap_or_else(|e| fatal(&format!("message from rank {source}: {e}")))
    }

    /// Point-to-point on the world communicator: sends raw bytes (no
    /// serialization), for benchmarks.
    pub fn send_raw(&self, dest: usize, tag: i32, bytes: &[u8]) {
        self.world
            .process_at_rank(dest as Rank)
            .send_with_tag(real(bytes), tag);
    }

    /// Point-to-point: receives exactly `buf.len()` raw bytes from `source`.
    pub fn receive_raw_into(&self, source: usize, tag: i32, buf: &mut [u8]) {
        self.world
            .process_at_rank(source as Rank)
            .receive_into_with_tag(buf, tag);
    }

    /// Collective: waits until every rank gets here.
    pub fn barrier(&self) {
        self.world.barrier();
    }

    fn root(&self) -> mpi::topology::Process<'_> {
        self.world.process_at_rank(0)
    }
}

/// The sink of [`Pool::map_with`]: every result into one `Vec`, in input
/// order (results that arrive out of order wait in place).
struct Collect<U> {
    ordered: bool,
    results: Vec<U>,
    slots: Vec<Option<U>>,
}

impl<U> Collect<U> {
    fn new(order: Order, total: usize) -> Collect<U> {
        let ordered = order == Order::Input;
        Collect {
            ordered,
            // Reserved at once: no reallocation copies of a growing result.
            results: crate::buffers::vec_with_capacity(if ordered {
                total.min(1 << 30)
            } else {
                0
            }),
            slots: Vec::new(),
        }
    }

    fn results(self) -> Vec<U> {
        if self.ordered {
            self.results
        } else {
            self.slots.into_iter().flatten().collect()
        }
    }
}

impl<U> Sink<U> for Collect<U> {
    fn append_to(&mut self, first: usize) -> Option<&mut Vec<U>> {
        (self.ordered && first == self.results.len()).then_some(&mut self.results)
    }

    fn item(&mut self, index: usize, result: U) {
        if self.ordered {
            self.results.push(result);
        } else {
            if self.slots.len() <= index {
                self.slots.resize_with(index + 1, || None);
            }
            self.slots[index] = Some(result);
        }
    }

    fn run(&mut self, first: usize, results: Vec<U>) {
        if self.ordered {
            if self.results.is_empty() {
                // The first chunk is kept, not copied; growing it in place
                // (mremap for big blocks) makes room for the rest.
                let room = self.results.capacity();
                self.results = results;
                self.results
                    .reserve(room.saturating_sub(self.results.len()));
                crate::buffers::advise_huge(&mut self.results);
            } else {
                self.results.extend(results);
            }
        } else {
            for (k, result) in results.into_iter().enumerate() {
                self.item(first + k, result);
            }
        }
    }
}
