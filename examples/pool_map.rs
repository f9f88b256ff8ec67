//! The lecture's `multiprocessing` example, on MPI ranks:
//!
//! ```python
//! with Pool(5) as p:
//!     print(p.map(square, [1, 2, 3]))
//! ```
//!
//! Run: `mpirun -n 5 target/release/examples/pool_map` (any rank count works).

fn square(x: u64) -> u64 {
    x * x
}

fn main() {
    let pool = hpcmap::Pool::init().expect("MPI starts");
    // Only the root holds the input; every rank calls map.
    let input = pool.is_root().then(|| vec![1u64, 2, 3]);
    let mapped = pool.map(input.as_deref(), square).expect("map succeeds");
    if let Some(squares) = mapped.results {
        println!("{squares:?}");
        assert_eq!(squares, [1, 4, 9]);
    }
}
