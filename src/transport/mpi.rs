//! The MPI transport: rsmpi on a private duplicate of the world communicator.
//!
//! The pool duplicates `MPI_COMM_WORLD` once (`MPI_Comm_dup`, collective) and
//! sends all of its own traffic there, as MPI libraries do: a user's message
//! on the world communicator, with any tag, sent between two maps or left
//! unreceived during one, can never be matched by the pool's receives.
//!
//! Blocking receives poll (`MPI_Improbe`) instead of entering
//! `MPI_Mprobe`: OpenMPI's blocking calls spin at full speed, which on a
//! node whose cores are all computing (or running a user's programs under
//! `hpcmap exec`) takes a core from the work. Polling spins for a few tens
//! of microseconds, which keeps fast exchanges fast, then sleeps in growing
//! steps up to a millisecond.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use mpi::datatype::{Partition, PartitionMut};
use mpi::point_to_point::{Destination, Source};
use mpi::topology::{Communicator, Rank, SimpleCommunicator};
use mpi::traits::*;

use super::outbox::Outbox;
use super::{MAX_MESSAGE, ROOT, Tag, Transport};
use crate::failure::fatal;

/// Backing for empty byte buffers. An empty Rust slice points to address
/// 1, which is OpenMPI's `MPI_IN_PLACE`: passed to a collective, MPI would
/// treat it as "in place" (or reject it). A zero-length view of a real
/// allocation avoids that.
static EMPTY: [u8; 1] = [0];

/// `bytes`, or a zero-length slice at a real address when it is empty.
pub fn real(bytes: &[u8]) -> &[u8] {
    if bytes.is_empty() { &EMPTY[..0] } else { bytes }
}

/// MPI counts and displacements of consecutive parts of the given lengths.
fn counts_and_displs(lens: &[usize]) -> (Vec<Rank>, Vec<Rank>) {
    let total: usize = lens.iter().sum();
    if total > MAX_MESSAGE {
        fatal(&format!(
            "a collective of {total} bytes is over MPI's 2 GiB limit (a bug: the schedules check this first)"
        ));
    }
    let counts: Vec<Rank> = lens.iter().map(|&l| l as Rank).collect();
    let displs = counts
        .iter()
        .scan(0, |at, &c| {
            let d = *at;
            *at += c;
            Some(d)
        })
        .collect();
    (counts, displs)
}

/// Waits with little CPU: spins briefly, then sleeps in growing steps.
pub struct Backoff {
    started: Instant,
    sleep: Duration,
}

impl Backoff {
    /// Spinning this long catches the answers of a fast exchange.
    const SPIN: Duration = Duration::from_micros(50);
    /// The longest sleep between polls: the latency a waiting rank adds.
    const MAX_SLEEP: Duration = Duration::from_millis(1);

    /// Starts waiting.
    pub fn new() -> Backoff {
        Backoff {
            started: Instant::now(),
            sleep: Duration::from_micros(10),
        }
    }

    /// Waits a little before the next poll.
    pub fn snooze(&mut self) {
        if self.started.elapsed() < Self::SPIN {
            std::thread::yield_now();
        } else {
            std::thread::sleep(self.sleep);
            self.sleep = (self.sleep * 2).min(Self::MAX_SLEEP);
        }
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new()
    }
}

/// The pool's private communicator and its sends in flight.
pub struct Mpi {
    comm: SimpleCommunicator,
    rank: usize,
    size: usize,
    outbox: RefCell<Outbox>,
}

impl Mpi {
    /// Collective over `world`: duplicates it for the pool's own traffic.
    pub fn new(world: &SimpleCommunicator) -> Mpi {
        let comm = world.duplicate();
        let (rank, size) = (comm.rank() as usize, comm.size() as usize);
        Mpi {
            comm,
            rank,
            size,
            outbox: RefCell::new(Outbox::default()),
        }
    }

    /// A message from `source` (any rank when `None`) with `tag`, matched
    /// so that no other receive can take it, if one has arrived.
    fn probe(
        &self,
        source: Option<usize>,
        tag: Tag,
    ) -> Option<(mpi::point_to_point::Message, mpi::point_to_point::Status)> {
        match source {
            Some(s) => self
                .comm
                .process_at_rank(s as Rank)
                .immediate_matched_probe_with_tag(tag),
            None => self
                .comm
                .any_process()
                .immediate_matched_probe_with_tag(tag),
        }
    }

    fn root(&self) -> mpi::topology::Process<'_> {
        self.comm.process_at_rank(ROOT as Rank)
    }
}

impl Transport for Mpi {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn send(&self, dest: usize, tag: Tag, bytes: Vec<u8>) {
        if bytes.len() > MAX_MESSAGE {
            fatal(&format!(
                "a message of {} bytes is over MPI's 2 GiB limit: use a smaller --chunk",
                bytes.len()
            ));
        }
        if bytes.is_empty() {
            // Eager and immediate: nothing to own.
            self.comm
                .process_at_rank(dest as Rank)
                .send_with_tag(real(&bytes), tag);
            return;
        }
        self.outbox.borrow_mut().send(&self.comm, dest, tag, bytes);
    }

    fn receive(&self, source: Option<usize>, tag: Tag) -> (usize, Vec<u8>) {
        let mut backoff = Backoff::new();
        loop {
            if let Some(message) = self.try_receive(source, tag) {
                return message;
            }
            self.progress();
            backoff.snooze();
        }
    }

    fn receive_into(&self, source: Option<usize>, tag: Tag, buf: &mut Vec<u8>) -> (usize, usize) {
        let mut backoff = Backoff::new();
        loop {
            if let Some((message, status)) = self.probe(source, tag) {
                let len = status.count(u8::equivalent_datatype()) as usize;
                if buf.len() < len {
                    // Grown, never shrunk: no zeroing pass over reused bytes.
                    let mut bigger = Vec::with_capacity(len);
                    crate::buffers::advise_huge(&mut bigger);
                    bigger.resize(len, 0);
                    *buf = bigger;
                }
                let mut spare = [0u8; 1];
                let into = if len == 0 {
                    &mut spare[..0]
                } else {
                    &mut buf[..len]
                };
                let status = message.matched_receive_into(into);
                return (status.source_rank() as usize, len);
            }
            self.progress();
            backoff.snooze();
        }
    }

    fn try_receive(&self, source: Option<usize>, tag: Tag) -> Option<(usize, Vec<u8>)> {
        self.probe(source, tag).map(|probed| {
            let (bytes, status) = probed.matched_receive_vec::<u8>();
            (status.source_rank() as usize, bytes)
        })
    }

    fn progress(&self) {
        self.outbox.borrow_mut().progress();
    }

    fn flush(&self) {
        self.outbox.borrow_mut().flush();
    }

    fn broadcast(&self, bytes: &mut [u8]) {
        if !bytes.is_empty() {
            self.root().broadcast_into(bytes);
        }
    }

    fn scatterv(&self, send: Option<(&[u8], &[usize])>, recv: &mut [u8]) {
        let mut spare = [0u8; 1];
        let recv = if recv.is_empty() {
            &mut spare[..0]
        } else {
            recv
        };
        match send {
            Some((bytes, lens)) if self.is_root() => {
                let (counts, displs) = counts_and_displs(lens);
                let partition = Partition::new(real(bytes), counts, displs);
                self.root().scatter_varcount_into_root(&partition, recv);
            }
            _ => self.root().scatter_varcount_into(recv),
        }
    }

    fn gatherv(&self, send: &[u8], recv: Option<(&mut [u8], &[usize])>) {
        match recv {
            Some((buffer, lens)) if self.is_root() => {
                let (counts, displs) = counts_and_displs(lens);
                let mut spare = [0u8; 1];
                let buffer = if buffer.is_empty() {
                    &mut spare[..0]
                } else {
                    buffer
                };
                let mut partition = PartitionMut::new(buffer, counts, displs);
                self.root()
                    .gather_varcount_into_root(real(send), &mut partition);
            }
            _ => self.root().gather_varcount_into(real(send)),
        }
    }

    fn barrier(&self) {
        self.comm.barrier();
    }
}

impl Drop for Mpi {
    fn drop(&mut self) {
        self.outbox.get_mut().flush();
    }
}
