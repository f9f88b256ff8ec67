//! The lecture's `Process` + `Queue` example as point-to-point messages:
//!
//! ```python
//! def f(q):
//!     q.put([42, None, 'hello'])
//! q = Queue(); p = Process(target=f, args=(q,)); p.start()
//! print("This happens in parallel.")
//! print(q.get()); p.join()
//! ```
//!
//! Rank 1 plays the child process and sends a mixed list to the root, which
//! prints while the message is on its way, then receives it.
//! Run: `mpirun -n 2 target/release/examples/process_queue`.

use serde::{Deserialize, Serialize};

/// Python's list holds values of any type; in Rust that is an enum.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Value {
    Int(i64),
    None,
    Str(String),
}

const QUEUE: i32 = 1;

fn main() {
    let pool = hpcmap::Pool::init().expect("MPI starts");
    if pool.size() < 2 {
        eprintln!("process_queue needs at least 2 ranks: mpirun -n 2 ...");
        std::process::exit(1);
    }
    match pool.rank() {
        0 => {
            println!("This happens in parallel.");
            let (message, from): (Vec<Value>, usize) = pool.receive(None, QUEUE);
            println!("{message:?} (from rank {from})");
            assert_eq!(
                message,
                [Value::Int(42), Value::None, Value::Str("hello".into())]
            );
        }
        1 => pool.send(
            0,
            QUEUE,
            &vec![Value::Int(42), Value::None, Value::Str("hello".into())],
        ),
        _ => {} // extra ranks have nothing to do, like an idle pool worker
    }
}
