//! How ranks talk: the small trait every schedule is written against.
//!
//! A map moves bytes (encoded chunks and frames, see `wire`) between ranks:
//! point-to-point messages that are sent without blocking, and a few
//! collectives rooted at rank 0. [`mpi::Mpi`] implements the trait with
//! rsmpi on a private duplicate of the world communicator, so nothing a user
//! sends through `Pool::send` or `Pool::world()` can be taken for the pool's
//! own traffic; `loopback::Loopback` implements it in-process (one thread
//! per rank) so that the schedules' root and worker logic is unit-tested
//! without MPI.
//!
//! Every method says which ranks call it. Collectives are entered by every
//! rank in the same order; point-to-point messages between one pair of ranks
//! with one tag arrive in the order they were sent (MPI's non-overtaking rule).

#[cfg(test)]
pub mod loopback;
pub mod mpi;
mod outbox;

/// A message tag on the pool's private channel.
pub type Tag = i32;

/// The rank that holds the input and receives the results.
pub const ROOT: usize = 0;

/// Bytes between ranks; see the module docs.
pub trait Transport {
    /// This process's rank.
    fn rank(&self) -> usize;

    /// Number of ranks.
    fn size(&self) -> usize;

    /// Whether this is the root rank.
    fn is_root(&self) -> bool {
        self.rank() == ROOT
    }

    /// Point-to-point: starts sending `bytes` to `dest` and returns at once;
    /// the transport owns the buffer until the send completes.
    fn send(&self, dest: usize, tag: Tag, bytes: Vec<u8>);

    /// Point-to-point: the next message with `tag` from `source` (any rank
    /// when `None`), with its sender. Blocks until one arrives, without
    /// hogging the core while nothing does.
    fn receive(&self, source: Option<usize>, tag: Tag) -> (usize, Vec<u8>);

    /// Point-to-point: like [`Transport::receive`], into `buf` (kept from
    /// message to message, so a stream of big messages does not fault in
    /// fresh pages for each); returns the sender and the message's length
    /// (its bytes are `buf[..len]`).
    fn receive_into(&self, source: Option<usize>, tag: Tag, buf: &mut Vec<u8>) -> (usize, usize) {
        let (from, bytes) = self.receive(source, tag);
        let len = bytes.len();
        *buf = bytes;
        (from, len)
    }

    /// Point-to-point: like [`Transport::receive`] when a message has
    /// arrived, else `None` at once.
    fn try_receive(&self, source: Option<usize>, tag: Tag) -> Option<(usize, Vec<u8>)>;

    /// Lets sends in flight progress and frees the finished ones' buffers.
    fn progress(&self) {}

    /// Waits until every send started on this rank has completed.
    fn flush(&self);

    /// Collective: the root's `bytes` are copied into every rank's `bytes`
    /// (every rank passes a buffer of the same length).
    fn broadcast(&self, bytes: &mut [u8]);

    /// Collective (Scatterv): the root passes `send`, the concatenation of
    /// every rank's part, and the part lengths; rank `r` receives part `r`
    /// into `recv` (whose length it knows already, e.g. from
    /// [`scatter_lens`]). Other ranks pass `None`.
    fn scatterv(&self, send: Option<(&[u8], &[usize])>, recv: &mut [u8]);

    /// Collective (Gatherv): every rank sends `send`; the root passes a
    /// buffer and every rank's length, and receives the parts concatenated
    /// in rank order. Other ranks pass `None`.
    fn gatherv(&self, send: &[u8], recv: Option<(&mut [u8], &[usize])>);

    /// Collective: returns once every rank has entered it.
    fn barrier(&self);
}

/// The largest byte count one collective or message can carry: MPI counts
/// and displacements are `i32`.
pub const MAX_MESSAGE: usize = i32::MAX as usize;

/// Collective: every rank gets the root's `bytes` (others pass `None`).
pub fn broadcast_bytes(t: &dyn Transport, bytes: Option<Vec<u8>>) -> Vec<u8> {
    let mut len = (bytes.as_ref().map_or(0, Vec::len) as u64).to_le_bytes();
    t.broadcast(&mut len);
    let len = u64::from_le_bytes(len) as usize;
    let mut bytes = bytes.unwrap_or_else(|| vec![0; len]);
    if len > 0 {
        t.broadcast(&mut bytes);
    }
    bytes
}

/// Collective: rank `r` gets `lens[r]` (only the root's `lens` is read).
pub fn scatter_lens(t: &dyn Transport, lens: Option<&[usize]>) -> usize {
    let send: Option<Vec<u8>> =
        lens.map(|l| l.iter().flat_map(|&v| (v as u64).to_le_bytes()).collect());
    let eights = vec![8; t.size()];
    let mut mine = [0u8; 8];
    t.scatterv(send.as_deref().map(|s| (s, &eights[..])), &mut mine);
    u64::from_le_bytes(mine) as usize
}

/// Collective: every rank's `bytes` (of any length) on the root, by rank.
pub fn gather_bytes(t: &dyn Transport, bytes: &[u8]) -> Option<Vec<Vec<u8>>> {
    let root = t.is_root();
    let eights = vec![8; t.size()];
    let mut lens = vec![0u8; if root { 8 * t.size() } else { 0 }];
    t.gatherv(
        &(bytes.len() as u64).to_le_bytes(),
        root.then_some((&mut lens[..], &eights[..])),
    );
    let lens: Vec<usize> = lens
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("eight bytes")) as usize)
        .collect();
    let mut all = vec![0u8; lens.iter().sum()];
    t.gatherv(bytes, root.then_some((&mut all[..], &lens[..])));
    root.then(|| {
        let mut at = 0;
        lens.iter()
            .map(|&l| {
                at += l;
                all[at - l..at].to_vec()
            })
            .collect()
    })
}
