//! hpcmap: Python's `multiprocessing.Pool.map`, for a cluster.
//!
//! Every rank of an MPI job creates a [`Pool`] and calls [`Pool::map`]. The
//! root (rank 0) holds the input; the pool cuts it into chunks, serializes
//! them with bincode, scatters them over the ranks (the root maps a share
//! too), and gathers the results back in input order, with [`MapStats`]
//! saying where the time went.
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
//! Modules: [`schedule`] (how chunks travel: static, dynamic, guided),
//! [`source`] (inputs in memory or generated), [`journal`] (resuming killed
//! runs), [`interrupt`] (walltime signals), [`stats`] (what was measured),
//! [`workloads`] (the built-in maps of the `hpcmap` command), [`report`]
//! (text and JSON output, network model, scaling tables and plots).

mod codec;
mod collect;
mod comm;
pub mod error;
mod failure;
pub mod interrupt;
pub mod journal;
mod kernel;
mod outbox;
pub mod plan;
mod pool;
pub mod report;
pub mod schedule;
pub mod source;
pub mod stats;
pub mod workloads;

pub use codec::{CodecError, checksum};
pub use error::MapError;
pub use pool::{Mapped, Pool, PoolError};
pub use schedule::{MapOptions, OnError, Order, Schedule};
pub use source::{Generated, Source};
pub use stats::MapStats;
