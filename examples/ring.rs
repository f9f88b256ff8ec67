//! Processes that must exchange data: a ring. Each rank passes what it holds
//! to its right neighbour and receives from its left, `size` times, adding
//! up what passes through; afterwards every rank has the sum of all ranks.
//!
//! `exchange` (MPI_Sendrecv) sends and receives at once, so the ring cannot
//! deadlock whatever the message size (with blocking sends in a ring, every
//! rank could wait in `send` for a receive that never starts).
//! Run: `mpirun -n 4 target/release/examples/ring`.

fn main() {
    let pool = hpcmap::Pool::init().expect("MPI starts");
    let (rank, size) = (pool.rank(), pool.size());
    let right = (rank + 1) % size;
    let left = (rank + size - 1) % size;

    let mut passing = rank as u64;
    let mut sum = 0u64;
    for _ in 0..size {
        sum += passing;
        passing = pool.exchange(&passing, right, left, 7);
    }
    let expected = (size * (size - 1) / 2) as u64;
    assert_eq!(sum, expected, "rank {rank}");
    // Everyone checked; the root reports.
    pool.barrier();
    if pool.is_root() {
        println!("ring of {size}: every rank holds the sum of ranks {sum}");
    }
}
