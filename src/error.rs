//! The errors a map can end with.

use crate::codec::CodecError;
use crate::stats::ItemFailure;

/// Why a collective map did not produce a result.
#[derive(Debug, thiserror::Error)]
pub enum MapError {
    /// The serialized input is too large for one MPI collective (counts are `i32`).
    #[error(
        "the serialized input needs {bytes} bytes in one collective, over MPI's 2 GiB limit; \
         use more ranks or --schedule dynamic"
    )]
    TooLarge {
        /// Bytes that would have had to move at once.
        bytes: usize,
    },
    /// An item could not be serialized on the root.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The root failed before the map started; it reports the reason itself.
    #[error("the root rank failed to start the map")]
    RootFailed,
    /// The arguments to the map are inconsistent.
    #[error("{0}")]
    Invalid(String),
    /// A walltime signal stopped the map early; what was done is journaled (if
    /// a journal was given).
    #[error("interrupted by {signal}: {done} of {total} items done")]
    Interrupted {
        /// The signal's name.
        signal: String,
        /// Items done (including any replayed from the journal).
        done: u64,
        /// Items in the input.
        total: u64,
    },
    /// The journal cannot be used or written.
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
    /// An item failed (a panic or an error, after any retries) under the
    /// abort policy: the map ended cleanly on every rank.
    #[error("{}", failure.describe(host))]
    ItemFailed {
        /// The item, the rank that mapped it, and why.
        failure: ItemFailure,
        /// That rank's hostname.
        host: String,
    },
    /// Items are unaccounted for: neither mapped nor failed. A bug, never
    /// reported as success.
    #[error(
        "only {accounted} of {total} items are accounted for (mapped or failed): \
         the results are incomplete; this is a bug in hpcmap, please report it"
    )]
    Incomplete {
        /// Items mapped or skipped.
        accounted: u64,
        /// Items in the input.
        total: u64,
    },
}
