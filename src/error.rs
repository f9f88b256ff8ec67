//! Exit codes and the errors a map can end with.
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | success |
//! | 1 | runtime error: unreadable input, unwritable output, malformed data |
//! | 2 | usage error: invalid arguments (every rank says so before MPI starts) |
//! | 3 | an item failed (the map ended cleanly), or a rank failed outside an item (`MPI_Abort`) |
//! | 4 | completed, but items failed and were skipped (`--on-error skip`) |
//! | 75 | interrupted by SIGTERM/SIGUSR1 (walltime): incomplete, resumable with `--journal DIR --resume` |

use crate::codec::CodecError;

/// Success.
pub const EXIT_OK: u8 = 0;
/// A runtime error such as an unreadable input file.
pub const EXIT_RUNTIME: u8 = 1;
/// Invalid command-line arguments.
pub const EXIT_USAGE: u8 = 2;
/// An item or a rank failed; the map or the whole job was ended.
pub const EXIT_RANK_FAILED: i32 = 3;
/// The run completed but skipped failed items.
pub const EXIT_SKIPPED: u8 = 4;
/// A walltime signal stopped the run; it can be resumed from its journal
/// (75 is `EX_TEMPFAIL`: try again later).
pub const EXIT_INTERRUPTED: u8 = 75;

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
    /// An item panicked (and any retries failed): the map ended cleanly.
    #[error("rank {rank} ({host}) panicked while mapping item {index}: {message}")]
    ItemFailed {
        /// The item's index in the input.
        index: u64,
        /// The rank that mapped it.
        rank: u64,
        /// That rank's hostname.
        host: String,
        /// The panic message and location.
        message: String,
    },
}
