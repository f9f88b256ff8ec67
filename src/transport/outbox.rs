//! Non-blocking sends that own their buffers: the root hands out chunks,
//! and workers return results, without ever waiting for the receiver.
//!
//! Why this exists: a blocking send of a large message waits until the
//! receiver enters MPI, and a rank busy computing does not. The root would
//! stall for a worker's whole chunk on every hand-out (and two ranks
//! blocking in sends to each other deadlock). rsmpi's non-blocking sends
//! borrow their buffer for a scope, which cannot express "a queue of
//! messages, each freed when its own send completes". So the buffers are
//! leaked into `'static` for the duration of the send and reclaimed once MPI
//! reports completion. This and `codec::plain` are the crate's only `unsafe`.
#![allow(unsafe_code)]

use mpi::request::{Request, StaticScope};
use mpi::topology::{Rank, SimpleCommunicator};
use mpi::traits::*;

/// A send in flight and the buffer it reads from.
struct InFlight {
    request: Request<'static, [u8], StaticScope>,
    buffer: *mut [u8],
}

/// Messages being sent without blocking.
#[derive(Default)]
pub struct Outbox {
    in_flight: Vec<InFlight>,
}

impl Outbox {
    /// Starts sending `bytes` (non-empty) to `dest` with `tag`; returns at once.
    pub fn send(&mut self, comm: &SimpleCommunicator, dest: usize, tag: i32, bytes: Vec<u8>) {
        assert!(!bytes.is_empty(), "empty messages are sent directly");
        let buffer: *mut [u8] = Box::into_raw(bytes.into_boxed_slice());
        // SAFETY: `buffer` came from `Box::into_raw` and is freed only in
        // `reclaim`, after MPI reports the send complete (or in `flush`,
        // after waiting for it). Nothing writes to it meanwhile.
        let data: &'static [u8] = unsafe { &*buffer };
        let request =
            comm.process_at_rank(dest as Rank)
                .immediate_send_with_tag(StaticScope, data, tag);
        self.in_flight.push(InFlight { request, buffer });
    }

    /// Frees the buffers of sends that have completed; lets MPI progress.
    pub fn progress(&mut self) {
        if self.in_flight.is_empty() {
            return;
        }
        let mut still = Vec::with_capacity(self.in_flight.len());
        for InFlight { request, buffer } in self.in_flight.drain(..) {
            match request.test() {
                Ok(_) => reclaim(buffer),
                Err(request) => still.push(InFlight { request, buffer }),
            }
        }
        self.in_flight = still;
    }

    /// Waits for every send to complete and frees the buffers.
    pub fn flush(&mut self) {
        for InFlight { request, buffer } in self.in_flight.drain(..) {
            request.wait();
            reclaim(buffer);
        }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        self.flush();
    }
}

fn reclaim(buffer: *mut [u8]) {
    // SAFETY: created by `Box::into_raw` in `send`; its request has completed
    // and been consumed, so no reference to the buffer remains.
    drop(unsafe { Box::from_raw(buffer) });
}
