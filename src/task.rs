//! What a map applies to each item: a [`Task`].
//!
//! The pool's entry points take plain closures and wrap them here:
//! [`Func`] for `Fn(T) -> U`, [`Fallible`] for `Fn(T) -> Result<U, E>` (an
//! `Err` is a failed item, handled by the failure policy exactly like a
//! panic), and [`WithState`] for per-thread state created once per compute
//! thread and map, like rayon's `map_init` (a connection, a scratch
//! buffer, a worker process). Implement [`Task`] directly for anything else.

use std::fmt::Display;

/// A per-item computation, run on every rank's compute threads.
pub trait Task<T>: Sync {
    /// What an item maps to.
    type Output;
    /// Per-thread state: created by [`Task::init`] on a compute thread's
    /// first item of a map, dropped when the map ends.
    type State: Send;

    /// Creates compute thread `thread`'s state (threads are numbered
    /// `0..threads` on each rank).
    fn init(&self, thread: usize) -> Self::State;

    /// Maps item `index` (its place in the input). `Err(message)` marks the
    /// item failed; a panic does the same, with the panic's message.
    ///
    /// # Errors
    /// When the item cannot be mapped.
    fn call(&self, state: &mut Self::State, index: usize, item: T) -> Result<Self::Output, String>;

    /// Maps a run of consecutive items, the first with index `first`; one
    /// result per item, in order. A task that gains from having several
    /// items in flight at once (a pipe to a worker process) overrides it and
    /// [`Task::batched`]; the default calls [`Task::call`] for each.
    fn call_run(
        &self,
        state: &mut Self::State,
        first: usize,
        items: Vec<T>,
    ) -> Vec<Result<Self::Output, String>> {
        items
            .into_iter()
            .enumerate()
            .map(|(i, item)| self.call(state, first + i, item))
            .collect()
    }

    /// Whether the executor should hand items over in runs ([`Task::call_run`]).
    fn batched(&self) -> bool {
        false
    }

    /// Whether an item mostly waits (on a child process, on I/O) rather than
    /// computes. The root then maps its own share on threads of its own, so
    /// that its MPI thread keeps serving the other ranks meanwhile.
    fn blocking(&self) -> bool {
        false
    }
}

/// A plain function: no state, never fails (a panic is a failed item).
pub struct Func<F>(pub F);

impl<T, U, F> Task<T> for Func<F>
where
    F: Fn(T) -> U + Sync,
{
    type Output = U;
    type State = ();

    fn init(&self, _thread: usize) {}

    #[inline]
    fn call(&self, _state: &mut (), _index: usize, item: T) -> Result<U, String> {
        Ok((self.0)(item))
    }
}

/// A fallible function: `Err(e)` fails the item with `e`'s text.
pub struct Fallible<F>(pub F);

impl<T, U, E, F> Task<T> for Fallible<F>
where
    F: Fn(T) -> Result<U, E> + Sync,
    E: Display,
{
    type Output = U;
    type State = ();

    fn init(&self, _thread: usize) {}

    #[inline]
    fn call(&self, _state: &mut (), _index: usize, item: T) -> Result<U, String> {
        (self.0)(item).map_err(|e| e.to_string())
    }
}

/// A function with per-thread state: `init(thread)` once per compute thread
/// and map, then `f(&mut state, item)` for each item that thread maps.
pub struct WithState<I, F> {
    /// Makes a compute thread's state.
    pub init: I,
    /// Maps an item with the thread's state.
    pub f: F,
}

impl<T, U, S, I, F> Task<T> for WithState<I, F>
where
    I: Fn(usize) -> S + Sync,
    F: Fn(&mut S, T) -> U + Sync,
    S: Send,
{
    type Output = U;
    type State = S;

    fn init(&self, thread: usize) -> S {
        (self.init)(thread)
    }

    #[inline]
    fn call(&self, state: &mut S, _index: usize, item: T) -> Result<U, String> {
        Ok((self.f)(state, item))
    }
}
