//! hpcmap: Python's `multiprocessing.Pool.map`, for a cluster.
//!
//! # The model
//!
//! An MPI job runs the same program on every rank (SPMD). Every rank
//! creates one [`Pool`] and calls the same methods in the same order; the
//! *root* (rank 0) holds the input and gets the results. A map cuts the
//! input into chunks, moves them to the other ranks as bincode bytes
//! (point-to-point or collectives, by [`Schedule`]), maps them there on
//! [`Pool::threads`] threads, and brings the results back in input order,
//! with [`MapStats`] saying where the time went. The root maps a share too,
//! straight from the input. Nothing blocks forever: a panicking item is
//! caught and handled by the failure policy ([`OnError`]), anything else
//! ends the whole job with `MPI_Abort`.
//!
//! | call | who calls it | what it does |
//! |---|---|---|
//! | [`Pool::init`] | every rank, once | MPI up, panic hook, hostnames |
//! | [`Pool::map`], [`Pool::map_with`] | every rank | results in a `Vec` on the root |
//! | [`Pool::try_map_with`] | every rank | items that may fail with an `Err` |
//! | [`Pool::map_init`] | every rank | state per compute thread (rayon's `map_init`) |
//! | [`Pool::map_each`] | every rank | results to a closure on the root, in order or as they come |
//! | [`Pool::map_task`] | every rank | any [`Task`], results to a [`Sink`]; [`Hooks`]: a [`journal::Journal`] to resume killed runs, [`progress::Progress`] counters to follow the map from another thread |
//! | [`Pool::send`], [`Pool::receive`], [`Pool::exchange`] | the two ranks involved | typed messages |
//! | [`Pool::broadcast`], [`Pool::barrier`] | every rank | collectives |
//!
//! ```no_run
//! // mpirun -n 5 target/release/examples/pool_map
//! let pool = hpcmap::Pool::init().unwrap();
//! let input = pool.is_root().then(|| vec![1u64, 2, 3]);
//! let mapped = pool.map(input.as_deref(), |x: u64| x * x).unwrap();
//! if let Some(squares) = mapped.results {
//!     assert_eq!(squares, [1, 4, 9]);
//! }
//! ```
//!
//! [`MapOptions`] chooses the schedule, chunk size, failure policy, order,
//! a deadline, and whether to record a [`trace`] of where each rank's time
//! went ([`MapStats::trace`]). Plain-old-data types (integers, floats,
//! arrays of them, and `#[repr(C)]` structs given to [`register_plain`])
//! move as their bytes; everything else through bincode, with the same
//! results and checksums.
//!
//! Runnable examples, each asserting its result, are in `examples/` (run
//! them under `mpirun -n 2` or more). The pool's own messages travel on a
//! private duplicate of the world communicator, so the user's messages
//! (any tag, sent between maps or left unreceived) never disturb a map.
//!
//! # Features
//!
//! The default feature `cli` builds the `hpcmap` command (its modules are
//! under `cli`). A library user needs none of it:
//! `hpcmap = { version = "0.2", default-features = false }` compiles only
//! the map (rsmpi, serde, bincode, rayon).

mod buffers;
pub mod chunking;
mod codec;
mod collect;
pub mod error;
mod executor;
mod failure;
pub mod interrupt;
pub mod journal;
mod pool;
pub mod progress;
pub mod schedule;
pub mod source;
pub mod stats;
pub mod task;
pub mod trace;
mod transport;
mod wire;

#[cfg(feature = "cli")]
pub mod cli;

pub use codec::plain::register as register_plain;
pub use codec::{CodecError, checksum};
pub use collect::{FnSink, Sink};
pub use error::MapError;
pub use pool::{Hooks, Mapped, Pool, PoolError};
pub use schedule::{MapOptions, OnError, Order, Schedule};
pub use source::{Generated, Source};
pub use stats::MapStats;
pub use task::Task;
