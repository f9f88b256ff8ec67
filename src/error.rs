//! Exit codes and the errors a map can end with.
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | success |
//! | 1 | runtime error: unreadable input, unwritable output, malformed data |
//! | 2 | usage error: invalid arguments (every rank says so before MPI starts) |
//! | 3 | a rank failed (panic or fatal error): the job was aborted with `MPI_Abort` |

use crate::codec::CodecError;

/// Success.
pub const EXIT_OK: u8 = 0;
/// A runtime error such as an unreadable input file.
pub const EXIT_RUNTIME: u8 = 1;
/// Invalid command-line arguments.
pub const EXIT_USAGE: u8 = 2;
/// A rank panicked or failed; the whole job was aborted.
pub const EXIT_RANK_FAILED: i32 = 3;

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
}
