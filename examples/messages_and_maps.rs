//! A user's own messages and the pool's maps side by side: messages sent
//! with any tag through `Pool::send` (here, the tags and payload shapes the
//! pool itself once used) between two maps, or left unreceived while a map
//! runs, never disturb a map, and are received intact afterwards. The pool's
//! traffic travels on a private duplicate of the world communicator.
//! Run: `mpirun -n 3 target/release/examples/messages_and_maps` (2 ranks or more).

use hpcmap::{MapOptions, Schedule};

fn main() {
    let pool = hpcmap::Pool::init().expect("MPI starts");
    if pool.size() < 2 {
        eprintln!("messages_and_maps needs at least 2 ranks: mpirun -n 2 ...");
        std::process::exit(1);
    }
    let items = 1000u64;
    let serial: Vec<u64> = (0..items).map(|x| x * 3 + 1).collect();
    // Tags 11, 12, 13 with payloads that would not decode as the pool's own
    // frames, and one message to the root.
    let user_tags = [11, 12, 13, 0];
    if pool.rank() == 0 {
        pool.send(1, 11, &vec![u64::MAX; 3]);
        pool.send(1, 12, &"not a chunk".to_string());
        pool.send(1, 13, &(7u8, -1i64));
    }
    if pool.rank() == 1 {
        pool.send(0, 0, &[1u32, 2, 3]);
    }
    for schedule in [Schedule::Dynamic, Schedule::Guided, Schedule::Static] {
        for chunk in [Some(1), Some(7), None] {
            let options = MapOptions {
                schedule,
                chunk,
                ..MapOptions::default()
            };
            let input = pool.is_root().then(|| (0..items).collect::<Vec<u64>>());
            let mapped = pool
                .map_with(input.as_deref(), &options, |x: u64| x * 3 + 1)
                .expect("the map succeeds");
            if let Some(results) = mapped.results {
                assert_eq!(results, serial, "{schedule} chunk {chunk:?}");
            }
        }
    }
    // The user's messages are still there, intact, in order.
    if pool.rank() == 1 {
        let (a, from): (Vec<u64>, usize) = pool.receive(Some(0), user_tags[0]);
        let (b, _): (String, usize) = pool.receive(Some(0), user_tags[1]);
        let (c, _): ((u8, i64), usize) = pool.receive(Some(0), user_tags[2]);
        assert_eq!(
            (a, from, b.as_str(), c),
            (vec![u64::MAX; 3], 0, "not a chunk", (7, -1))
        );
    }
    if pool.rank() == 0 {
        let (d, from): ([u32; 3], usize) = pool.receive(None, user_tags[3]);
        assert_eq!((d, from), ([1, 2, 3], 1));
    }
    pool.barrier();
    if pool.is_root() {
        println!(
            "9 maps at {} ranks with user messages pending: every result correct, every message intact",
            pool.size()
        );
    }
}
