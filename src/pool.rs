//! `Pool`: MPI set-up, the map entry point, and typed messages between ranks.
//!
//! Every rank of the job creates one `Pool` and calls the same methods in the
//! same order (SPMD). Collective methods say so; the root (rank 0) holds the
//! input and receives the results, the other ranks get `None` back.

use mpi::environment::Universe;
use mpi::{Threading, topology::SimpleCommunicator};
use serde::{Serialize, de::DeserializeOwned};

use crate::codec;
use crate::collect::Collector;
use crate::comm::{Comm, counts_and_displs};
use crate::error::MapError;
use crate::failure::{fatal, install_panic_hook};
use crate::journal::Journal;
use crate::kernel::Kernel;
use crate::schedule::{self, MapOptions, Order, Schedule, Work};
use crate::source::Source;
use crate::stats::MapStats;

/// Why a pool could not be created.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// MPI was already initialized in this process (only one pool per process).
    #[error("MPI is already initialized in this process: create one Pool per process")]
    AlreadyInitialized,
    /// The worker thread pool could not be built.
    #[error("cannot start {threads} compute threads: {source}")]
    Threads {
        /// Requested thread count.
        threads: usize,
        /// rayon's reason.
        source: rayon::ThreadPoolBuildError,
    },
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
    comm: Comm,
    kernel: Kernel,
    hosts: Vec<String>,
    // Dropped last: finalizes MPI.
    _universe: Universe,
}

impl Pool {
    /// Collective: initializes MPI and gathers every rank's hostname on the root.
    ///
    /// Installs a panic hook that aborts the whole job (naming the rank and
    /// the item being mapped), so a panic on one rank never leaves the others
    /// blocked. Compute uses one thread per rank; see [`Pool::with_threads`].
    ///
    /// # Errors
    /// [`PoolError::AlreadyInitialized`] when MPI is already up in this process.
    pub fn init() -> Result<Pool, PoolError> {
        // Funneled: only the main thread talks MPI; compute threads never do.
        let (universe, _) = mpi::initialize_with_threading(Threading::Funneled)
            .ok_or(PoolError::AlreadyInitialized)?;
        let comm = Comm::new(universe.world());
        let host = mpi::environment::processor_name().unwrap_or_else(|_| "unknown".into());
        install_panic_hook(comm.rank() as i32, host.clone());
        let hosts = gather_hosts(&comm, host);
        let kernel = Kernel::new(1).expect("one thread needs no pool");
        Ok(Pool {
            comm,
            kernel,
            hosts,
            _universe: universe,
        })
    }

    /// Maps with `threads` compute threads per rank (hybrid ranks x threads).
    ///
    /// # Errors
    /// [`PoolError::Threads`] when the threads cannot be started.
    pub fn with_threads(mut self, threads: usize) -> Result<Pool, PoolError> {
        self.kernel =
            Kernel::new(threads).map_err(|source| PoolError::Threads { threads, source })?;
        Ok(self)
    }

    /// This process's rank (0 is the root).
    pub fn rank(&self) -> usize {
        self.comm.rank()
    }

    /// Number of ranks in the job.
    pub fn size(&self) -> usize {
        self.comm.size()
    }

    /// Whether this is the root rank, which holds the input and gets the results.
    pub fn is_root(&self) -> bool {
        self.comm.is_root()
    }

    /// Compute threads per rank.
    pub fn threads(&self) -> usize {
        self.kernel.threads()
    }

    /// Hostname of every rank, by rank, on the root; this rank's own elsewhere.
    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }

    /// Distinct hostnames in first-seen order (the job's nodes, on the root).
    pub fn nodes(&self) -> Vec<String> {
        let mut nodes: Vec<String> = Vec::new();
        for h in &self.hosts {
            if !nodes.contains(h) {
                nodes.push(h.clone());
            }
        }
        nodes
    }

    /// The world communicator, for code that needs rsmpi directly.
    pub fn world(&self) -> &SimpleCommunicator {
        self.comm.world()
    }

    /// Collective: `Pool.map` with the default options (static schedule, one
    /// block per rank). See [`Pool::map_with`].
    pub fn map<I, T, U, F>(&self, input: Option<&I>, f: F) -> Result<Mapped<U>, MapError>
    where
        I: Source<Item = T> + ?Sized,
        T: Serialize + DeserializeOwned + Send,
        U: Serialize + DeserializeOwned + Send,
        F: Fn(T) -> U + Sync,
    {
        self.map_with(input, &MapOptions::default(), f)
    }

    /// Collective: applies `f` to every input item on some rank and returns the
    /// results in input order on the root.
    ///
    /// Every rank must call it with the same `options`; the root passes
    /// `Some(input)`, the others `None` (it is ignored there). The root maps a
    /// share too. Items are serialized with bincode, moved as chunks, and each
    /// rank maps its chunks with [`Pool::threads`] threads.
    ///
    /// # Errors
    /// [`MapError::TooLarge`] when one collective would move over 2 GiB,
    /// [`MapError::Codec`] when an input item fails to serialize on the root,
    /// and [`MapError::RootFailed`] on the other ranks in either case. All
    /// ranks return the error, so none is left blocked. On the root,
    /// [`MapError::ItemFailed`] when an item panicked under
    /// [`crate::OnError::Abort`] (or retries ran out): the panic is caught on
    /// the rank that mapped it, and the map ends cleanly on every rank.
    ///
    /// # Panics
    /// When the root passes `None`. A panic outside `f` (a bug, a failed
    /// write of the journal) aborts the whole job with `MPI_Abort`, naming
    /// the rank.
    pub fn map_with<I, T, U, F>(
        &self,
        input: Option<&I>,
        options: &MapOptions,
        f: F,
    ) -> Result<Mapped<U>, MapError>
    where
        I: Source<Item = T> + ?Sized,
        T: Serialize + DeserializeOwned + Send,
        U: Serialize + DeserializeOwned + Send,
        F: Fn(T) -> U + Sync,
    {
        let mut results = Vec::new();
        let stats = self.run_map(input, options, None, Order::Input, f, |_, item| {
            results.push(item)
        })?;
        Ok(Mapped {
            results: self.is_root().then_some(results),
            stats,
        })
    }

    /// Collective: like [`Pool::map_with`], but on the root each result is
    /// handed to `sink(index, result)` in input order instead of being
    /// collected: for folds and streaming writers that need no `Vec` of all
    /// results. Chunks that arrive early wait in a reorder buffer.
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
        I: Source<Item = T> + ?Sized,
        T: Serialize + DeserializeOwned + Send,
        U: Serialize + DeserializeOwned + Send,
        F: Fn(T) -> U + Sync,
        S: FnMut(usize, U),
    {
        self.run_map(input, options, None, Order::Input, f, sink)
    }

    /// Collective: like [`Pool::map_each`], but `sink(index, result)` is
    /// called as results arrive, in completion order. Nothing waits for an
    /// earlier item and the root holds no reorder buffer. The checksum in the
    /// returned stats equals the ordered one. (Under the static schedule
    /// results arrive in input order anyway.)
    ///
    /// # Errors
    /// As [`Pool::map_with`].
    pub fn map_each_unordered<I, T, U, F, S>(
        &self,
        input: Option<&I>,
        options: &MapOptions,
        f: F,
        sink: S,
    ) -> Result<MapStats, MapError>
    where
        I: Source<Item = T> + ?Sized,
        T: Serialize + DeserializeOwned + Send,
        U: Serialize + DeserializeOwned + Send,
        F: Fn(T) -> U + Sync,
        S: FnMut(usize, U),
    {
        self.run_map(input, options, None, Order::Completion, f, sink)
    }

    /// Collective: [`Pool::map_each`] (results in `order`) with a journal on
    /// the root: every complete chunk is appended to it as it arrives, and
    /// chunks it already holds are not computed again but handed to `sink`
    /// from the file, so a resumed run gives the same results and checksum
    /// as an uninterrupted one. Other ranks pass `None`.
    ///
    /// Under the dynamic and guided schedules a SIGTERM or SIGUSR1 (see
    /// [`crate::interrupt::install`]) stops the map early with
    /// [`MapError::Interrupted`], after journaling the chunks in flight.
    ///
    /// # Errors
    /// As [`Pool::map_with`], plus [`MapError::Interrupted`].
    pub fn map_each_journaled<I, T, U, F, S>(
        &self,
        input: Option<&I>,
        options: &MapOptions,
        journal: Option<&mut Journal>,
        order: Order,
        f: F,
        sink: S,
    ) -> Result<MapStats, MapError>
    where
        I: Source<Item = T> + ?Sized,
        T: Serialize + DeserializeOwned + Send,
        U: Serialize + DeserializeOwned + Send,
        F: Fn(T) -> U + Sync,
        S: FnMut(usize, U),
    {
        self.run_map(input, options, journal, order, f, sink)
    }

    fn run_map<I, T, U, F, S>(
        &self,
        input: Option<&I>,
        options: &MapOptions,
        journal: Option<&mut Journal>,
        order: Order,
        f: F,
        sink: S,
    ) -> Result<MapStats, MapError>
    where
        I: Source<Item = T> + ?Sized,
        T: Serialize + DeserializeOwned + Send,
        U: Serialize + DeserializeOwned + Send,
        F: Fn(T) -> U + Sync,
        S: FnMut(usize, U),
    {
        if options.chunk == Some(0) {
            return Err(MapError::Invalid("chunk size must be at least 1".into()));
        }
        let total = input.map_or(0, Source::len);
        // The root maps only what the journal does not hold yet.
        let todo = match (&journal, input) {
            (Some(j), Some(i)) => j.todo(i.len()),
            (_, Some(i)) => std::iter::once(0..i.len()).collect(),
            _ => Vec::new(),
        };
        let mut collector = Collector::new(order == Order::Input, journal, sink);
        collector.replay::<U>();
        let (comm, kernel) = (&self.comm, &self.kernel);
        let work = Work {
            input,
            todo,
            options,
        };
        let mut stats = match options.schedule {
            Schedule::Static => schedule::scatter::run(comm, kernel, work, &f, &mut collector)?,
            Schedule::Dynamic | Schedule::Guided => {
                schedule::dynamic::run(comm, kernel, work, &f, &mut collector)
            }
        };
        if let Some(signal) = stats.interrupted {
            return Err(MapError::Interrupted {
                signal: signal.to_string(),
                done: collector.done() as u64,
                total: total as u64,
            });
        }
        let mut failures = collector.failures().to_vec();
        failures.sort_by_key(|f| f.index);
        if collector.aborted() {
            let first = failures.swap_remove(0);
            return Err(MapError::ItemFailed {
                index: first.index,
                rank: first.rank,
                host: self
                    .hosts
                    .get(first.rank as usize)
                    .cloned()
                    .unwrap_or_default(),
                message: first.message,
            });
        }
        stats.skipped = failures;
        Ok(stats)
    }

    /// Collective: every rank gets the root's `value` (others pass `None`).
    ///
    /// # Panics
    /// When the root passes `None`.
    pub fn broadcast<T: Serialize + DeserializeOwned>(&self, value: Option<&T>) -> T {
        let mut bytes = if self.is_root() {
            let value = value.expect("the root rank must pass Some(value) to broadcast");
            codec::encode_value(value).unwrap_or_else(|e| fatal(&e.to_string()))
        } else {
            Vec::new()
        };
        self.comm.broadcast_bytes(&mut bytes);
        codec::decode_value(&bytes).unwrap_or_else(|e| fatal(&e.to_string()))
    }

    /// Point-to-point: sends `value` to rank `dest` (a `Queue.put` across ranks).
    pub fn send<T: Serialize>(&self, dest: usize, tag: i32, value: &T) {
        let bytes = codec::encode_value(value).unwrap_or_else(|e| fatal(&e.to_string()));
        self.comm.send_bytes(dest, tag, &bytes);
    }

    /// Point-to-point: receives a value sent with `tag` from `source`, or from
    /// any rank when `None` (a `Queue.get`). Returns the sender's rank too.
    pub fn receive<T: DeserializeOwned>(&self, source: Option<usize>, tag: i32) -> (T, usize) {
        let (from, bytes) = self.comm.receive_bytes(source, tag);
        let value = codec::decode_value(&bytes)
            .unwrap_or_else(|e| fatal(&format!("message from rank {from}: {e}")));
        (value, from)
    }

    /// Point-to-point both ways: sends `value` to `dest` while receiving from
    /// `source`. Deadlock-free in rings and shifts, whatever the message size.
    pub fn exchange<T: Serialize, U: DeserializeOwned>(
        &self,
        value: &T,
        dest: usize,
        source: usize,
        tag: i32,
    ) -> U {
        let bytes = codec::encode_value(value).unwrap_or_else(|e| fatal(&e.to_string()));
        let back = self.comm.exchange_bytes(&bytes, dest, source, tag);
        codec::decode_value(&back)
            .unwrap_or_else(|e| fatal(&format!("message from rank {source}: {e}")))
    }

    /// Point-to-point: sends raw bytes (no serialization), for benchmarks.
    pub fn send_raw(&self, dest: usize, tag: i32, bytes: &[u8]) {
        self.comm.send_bytes(dest, tag, bytes);
    }

    /// Point-to-point: receives exactly `buf.len()` raw bytes from `source`.
    pub fn receive_raw_into(&self, source: usize, tag: i32, buf: &mut [u8]) {
        self.comm.receive_into(source, tag, buf);
    }

    /// Collective: waits until every rank gets here.
    pub fn barrier(&self) {
        self.comm.barrier();
    }
}

/// Collective: every rank's hostname, by rank, on the root.
fn gather_hosts(comm: &Comm, host: String) -> Vec<String> {
    let lens = comm.gather_u64s(&[host.len() as u64]);
    let lens: Option<Vec<usize>> = lens.map(|l| l.into_iter().map(|x| x as usize).collect());
    let layout = lens
        .as_deref()
        .map(|l| counts_and_displs(l).expect("hostnames are short"));
    match comm.gather_bytes(
        host.as_bytes(),
        layout.as_ref().map(|(c, d)| (&c[..], &d[..])),
    ) {
        Some(all) => {
            let lens = lens.unwrap_or_default();
            let mut at = 0;
            lens.iter()
                .map(|&l| {
                    let name = String::from_utf8_lossy(&all[at..at + l]).into_owned();
                    at += l;
                    name
                })
                .collect()
        }
        None => vec![host],
    }
}
