//! The thin layer over rsmpi: byte buffers and small `u64` rows between ranks.
//!
//! Everything that crosses the wire in hpcmap is either bytes (bincode chunks,
//! see `codec`) or a short row of `u64` counters. Keeping the rsmpi calls here
//! means the schedules read as algorithms and the `i32` count limits of MPI
//! are checked in one place. Every function is collective or point-to-point
//! as its doc says; "root" is always rank 0.

use mpi::datatype::{Partition, PartitionMut};
use mpi::point_to_point::{Destination, Source};
use mpi::topology::{Communicator, Rank, SimpleCommunicator};
use mpi::traits::*;

use crate::error::MapError;

/// The rank that holds the input and receives the results.
pub const ROOT: Rank = 0;

/// Backing for empty byte buffers. An empty Rust slice of `u8` points to
/// address 1, which is OpenMPI's `MPI_IN_PLACE`: passing one to a collective
/// makes MPI treat it as "in place" (or reject it). A zero-length view of a
/// real allocation avoids that.
static EMPTY: [u8; 1] = [0];

/// `bytes`, or a zero-length slice at a real address when it is empty.
fn real(bytes: &[u8]) -> &[u8] {
    if bytes.is_empty() { &EMPTY[..0] } else { bytes }
}

/// A receive buffer of `len` bytes whose address is real even when `len` is 0.
fn receive_buffer(len: usize) -> Vec<u8> {
    let mut buf = Vec::with_capacity(len.max(1));
    buf.resize(len, 0);
    buf
}

/// Converts per-rank byte lengths into MPI counts and displacements.
///
/// # Errors
/// [`MapError::TooLarge`] when a count or a displacement does not fit an `i32`.
pub fn counts_and_displs(lens: &[usize]) -> Result<(Vec<Rank>, Vec<Rank>), MapError> {
    let total: usize = lens.iter().sum();
    if total > i32::MAX as usize {
        return Err(MapError::TooLarge { bytes: total });
    }
    let counts: Vec<Rank> = lens.iter().map(|&l| l as Rank).collect();
    let displs = counts
        .iter()
        .scan(0, |acc, &c| {
            let d = *acc;
            *acc += c;
            Some(d)
        })
        .collect();
    Ok((counts, displs))
}

/// World communicator plus this process's place in it.
pub struct Comm {
    world: SimpleCommunicator,
    rank: usize,
    size: usize,
}

impl Comm {
    /// Wraps the world communicator.
    pub fn new(world: SimpleCommunicator) -> Comm {
        let rank = world.rank() as usize;
        let size = world.size() as usize;
        Comm { world, rank, size }
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Number of ranks.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Whether this is the root rank.
    pub fn is_root(&self) -> bool {
        self.rank == ROOT as usize
    }

    /// The raw communicator, for callers that need rsmpi directly.
    pub fn world(&self) -> &SimpleCommunicator {
        &self.world
    }

    /// Collective: the root's `row` is copied to every rank (which pass a
    /// row of the same length).
    pub fn broadcast_u64s(&self, row: &mut [u64]) {
        if !row.is_empty() {
            self.world.process_at_rank(ROOT).broadcast_into(row);
        }
    }

    /// Collective: the root's bytes are copied to every rank (length first).
    pub fn broadcast_bytes(&self, bytes: &mut Vec<u8>) {
        let mut len = [bytes.len() as u64];
        self.broadcast_u64s(&mut len);
        if len[0] == 0 {
            bytes.clear();
            return;
        }
        bytes.resize(len[0] as usize, 0);
        self.world
            .process_at_rank(ROOT)
            .broadcast_into(&mut bytes[..]);
    }

    /// Collective: rank `r` receives `per_rank[r]`; only the root's argument is read.
    pub fn scatter_u64(&self, per_rank: Option<&[u64]>) -> u64 {
        let mut mine = 0u64;
        let root = self.world.process_at_rank(ROOT);
        match per_rank {
            Some(values) if self.is_root() => root.scatter_into_root(values, &mut mine),
            _ => root.scatter_into(&mut mine),
        }
        mine
    }

    /// Collective (Scatterv): rank `r` receives `counts[r]` bytes of `send` from
    /// `displs[r]`; `mine` is this rank's byte count (from [`Comm::scatter_u64`]).
    pub fn scatter_bytes(&self, send: Option<(&[u8], &[Rank], &[Rank])>, mine: usize) -> Vec<u8> {
        let mut buf = receive_buffer(mine);
        let root = self.world.process_at_rank(ROOT);
        match send {
            Some((bytes, counts, displs)) if self.is_root() => {
                let partition = Partition::new(real(bytes), counts, displs);
                root.scatter_varcount_into_root(&partition, &mut buf[..]);
            }
            _ => root.scatter_varcount_into(&mut buf[..]),
        }
        buf
    }

    /// Collective (Gather): every rank sends a row of `row.len()` values (the same
    /// length everywhere); the root gets all rows concatenated in rank order.
    pub fn gather_u64s(&self, row: &[u64]) -> Option<Vec<u64>> {
        let root = self.world.process_at_rank(ROOT);
        if self.is_root() {
            let mut all = vec![0u64; row.len() * self.size];
            root.gather_into_root(row, &mut all[..]);
            Some(all)
        } else {
            root.gather_into(row);
            None
        }
    }

    /// Collective (Gatherv of `u64`): rows of different lengths; the root passes
    /// every rank's length in `lens`.
    pub fn gather_u64s_varcount(&self, row: &[u64], lens: Option<&[usize]>) -> Option<Vec<u64>> {
        let root = self.world.process_at_rank(ROOT);
        match lens {
            Some(lens) if self.is_root() => {
                let (counts, displs) =
                    counts_and_displs(lens).expect("per-rank counter rows are tiny");
                let mut all = vec![0u64; lens.iter().sum()];
                let mut partition = PartitionMut::new(&mut all[..], counts, displs);
                root.gather_varcount_into_root(row, &mut partition);
                Some(all)
            }
            _ => {
                root.gather_varcount_into(row);
                None
            }
        }
    }

    /// Collective (Gatherv of bytes): the root passes every rank's count and
    /// displacement (from [`counts_and_displs`]) and gets a buffer as long as
    /// the sum of the counts.
    pub fn gather_bytes(&self, mine: &[u8], layout: Option<(&[Rank], &[Rank])>) -> Option<Vec<u8>> {
        let root = self.world.process_at_rank(ROOT);
        match layout {
            Some((counts, displs)) if self.is_root() => {
                let total = counts.iter().map(|&c| c as usize).sum();
                let mut all = receive_buffer(total);
                let mut partition = PartitionMut::new(&mut all[..], counts, displs);
                root.gather_varcount_into_root(real(mine), &mut partition);
                Some(all)
            }
            _ => {
                root.gather_varcount_into(real(mine));
                None
            }
        }
    }

    /// Point-to-point: sends `bytes` to rank `dest` with `tag`.
    pub fn send_bytes(&self, dest: usize, tag: i32, bytes: &[u8]) {
        self.world
            .process_at_rank(dest as Rank)
            .send_with_tag(real(bytes), tag);
    }

    /// Point-to-point: receives one message with `tag` from `source` (any rank when
    /// `None`); returns the sender and the bytes. Blocks until one arrives.
    pub fn receive_bytes(&self, source: Option<usize>, tag: i32) -> (usize, Vec<u8>) {
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
        (status.source_rank() as usize, bytes)
    }

    /// Point-to-point: receives a message of exactly `buf.len()` bytes with `tag`
    /// from `source` into `buf`.
    pub fn receive_into(&self, source: usize, tag: i32, buf: &mut [u8]) {
        self.world
            .process_at_rank(source as Rank)
            .receive_into_with_tag(buf, tag);
    }

    /// Point-to-point: receives the next message from `source`, whatever its
    /// tag (messages from one sender arrive in the order they were sent).
    pub fn receive_any_tag(&self, source: usize) -> (i32, Vec<u8>) {
        let (bytes, status) = self
            .world
            .process_at_rank(source as Rank)
            .matched_probe()
            .matched_receive_vec::<u8>();
        (status.tag(), bytes)
    }

    /// Point-to-point: a message with `tag` from any rank if one has arrived;
    /// returns at once either way.
    pub fn try_receive_bytes(&self, tag: i32) -> Option<(usize, Vec<u8>)> {
        self.world
            .any_process()
            .immediate_matched_probe_with_tag(tag)
            .map(|probed| {
                let (bytes, status) = probed.matched_receive_vec::<u8>();
                (status.source_rank() as usize, bytes)
            })
    }

    /// Point-to-point: starts sending `bytes` (if any) to `dest`, runs `during`
    /// while the message is in flight, then waits for the send to finish.
    /// Lets a worker compute its next chunk while its last result travels.
    pub fn send_during<R>(
        &self,
        dest: usize,
        tag: i32,
        bytes: Option<&[u8]>,
        during: impl FnOnce() -> R,
    ) -> R {
        let to = self.world.process_at_rank(dest as Rank);
        mpi::request::scope(|scope| {
            let request = bytes.map(|b| to.immediate_send_with_tag(scope, real(b), tag));
            let result = during();
            if let Some(r) = request {
                r.wait();
            }
            result
        })
    }

    /// Point-to-point, both ways at once (MPI_Sendrecv): sends `bytes` to `dest`
    /// and receives from `source`. Deadlock-free in rings and with oneself.
    pub fn exchange_bytes(&self, bytes: &[u8], dest: usize, source: usize, tag: i32) -> Vec<u8> {
        let to = self.world.process_at_rank(dest as Rank);
        let from = self.world.process_at_rank(source as Rank);
        let (len, _) = mpi::point_to_point::send_receive_with_tags::<u64, _, u64, _>(
            &(bytes.len() as u64),
            &to,
            tag,
            &from,
            tag,
        );
        let mut buf = receive_buffer(len as usize);
        mpi::point_to_point::send_receive_into_with_tags(
            real(bytes),
            &to,
            tag,
            &mut buf[..],
            &from,
            tag,
        );
        buf
    }

    /// Collective: waits until every rank gets here.
    pub fn barrier(&self) {
        self.world.barrier();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displacements_are_prefix_sums() {
        let (c, d) = counts_and_displs(&[3, 0, 5]).unwrap();
        assert_eq!(c, [3, 0, 5]);
        assert_eq!(d, [0, 3, 3]);
    }

    #[test]
    fn over_two_gib_is_refused() {
        assert!(matches!(
            counts_and_displs(&[1 << 30, 1 << 30]),
            Err(MapError::TooLarge { .. })
        ));
    }
}
