//! Unit tests of the schedules over the in-process transport: the root's
//! and the workers' logic, reordering, failure policies, resume replay and
//! back-pressure, at several rank and thread counts, without MPI.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::*;
use crate::codec;
use crate::journal::Journal;
use crate::task::{Fallible, Func};
use crate::transport::loopback;

/// What the root saw of one map.
struct Seen<U> {
    result: Result<MapStats, MapError>,
    results: Vec<(usize, U)>,
    /// The root's progress counters at the end.
    progress: crate::progress::Snapshot,
}

/// Runs one map over `items` on `ranks` in-process ranks; returns the root's view.
fn map_on<T, K>(
    ranks: usize,
    threads: usize,
    options: &MapOptions,
    items: &[T],
    task: &K,
    journal: Option<&Path>,
    reorder_limit: usize,
) -> Seen<K::Output>
where
    T: Serialize + DeserializeOwned + Send + Sync + Clone + 'static,
    K: Task<T>,
    K::Output: Serialize + DeserializeOwned + Send + 'static,
{
    let hosts: Vec<String> = (0..ranks).map(|r| format!("host{r}")).collect();
    let mut seen = loopback::run(ranks, |t| {
        let executor = Executor::new(threads).unwrap();
        let buffers = crate::buffers::Buffers::default();
        let mut results = Vec::new();
        let mut journal = journal
            .filter(|_| t.is_root())
            .map(|dir| Journal::open(dir, "test", true).unwrap());
        let total = items.len();
        let todo = match &journal {
            Some(j) => j.todo(total),
            None if t.is_root() => std::iter::once(0..total).collect(),
            None => Vec::new(),
        };
        let ordered = options.order == Order::Input;
        let progress = crate::progress::Progress::new();
        let resumed = journal.as_ref().map_or(0, |j| j.done_items());
        progress.start(total, resumed, ranks);
        let followed = t.is_root().then_some(&progress);
        let mut collector = Collector::new(
            ordered,
            journal.as_mut(),
            crate::FnSink(|i, u| results.push((i, u))),
        )
        .with_progress(followed);
        let map = Map {
            transport: t,
            executor: &executor,
            buffers: &buffers,
            input: t.is_root().then_some(items),
            todo,
            options,
            task,
            reorder_limit,
            progress: followed,
            started: std::time::Instant::now(),
        };
        let result = match run(map, &mut collector) {
            Ok(stats) if t.is_root() => collector.conclude(stats, total, &hosts),
            other => other,
        };
        drop(collector);
        progress.finish();
        Seen {
            result,
            results,
            progress: progress.snapshot(),
        }
    });
    seen.swap_remove(0)
}

fn options(
    schedule: Schedule,
    chunk: Option<usize>,
    on_error: OnError,
    order: Order,
) -> MapOptions {
    MapOptions {
        schedule,
        chunk,
        on_error,
        order,
        deadline: None,
        trace: false,
    }
}

fn square(x: u64) -> u64 {
    x * x
}

#[test]
fn every_schedule_gives_the_serial_results_and_checksum() {
    let items: Vec<u64> = (0..200).collect();
    let serial: Vec<u64> = items.iter().map(|&x| square(x)).collect();
    let checksum = codec::checksum(&serial).unwrap();
    for schedule in Schedule::ALL {
        for ranks in [1, 2, 3, 5] {
            for threads in [1, 2] {
                for chunk in [None, Some(1), Some(7)] {
                    for order in [Order::Input, Order::Completion] {
                        let o = options(schedule, chunk, OnError::Abort, order);
                        let what =
                            format!("{schedule} {ranks}x{threads} chunk {chunk:?} {order:?}");
                        let seen = map_on(
                            ranks,
                            threads,
                            &o,
                            &items,
                            &Func(square),
                            None,
                            REORDER_LIMIT_BYTES,
                        );
                        let stats = seen.result.unwrap_or_else(|e| panic!("{what}: {e}"));
                        let mut results = seen.results;
                        if order == Order::Completion {
                            results.sort_by_key(|r| r.0);
                        }
                        let values: Vec<u64> = results.iter().map(|r| r.1).collect();
                        assert_eq!(values, serial, "{what}");
                        assert!(results.iter().enumerate().all(|(i, r)| r.0 == i), "{what}");
                        assert_eq!(stats.checksum, checksum, "{what}");
                        assert_eq!(stats.items, 200, "{what}");
                        assert_eq!(stats.per_rank.len(), ranks, "{what}");
                        let per_rank: u64 = stats.per_rank.iter().map(|r| r.items).sum();
                        assert_eq!(per_rank, 200, "{what}");
                        let chunks: u64 = stats.per_rank.iter().map(|r| r.chunks).sum();
                        assert_eq!(chunks, stats.chunks, "{what}");
                    }
                }
            }
        }
    }
}

/// Items that wait (like a child process) rather than compute.
struct Waits;

impl Task<u32> for Waits {
    type Output = u32;
    type State = ();
    fn init(&self, _thread: usize) {}
    fn call(&self, _: &mut (), index: usize, item: u32) -> Result<u32, String> {
        std::thread::sleep(Duration::from_micros(200));
        Ok(item + index as u32)
    }
    fn blocking(&self) -> bool {
        true
    }
}

#[test]
fn blocking_items_are_mapped_off_the_roots_mpi_thread() {
    let items: Vec<u32> = (0..60).collect();
    for schedule in [Schedule::Dynamic, Schedule::Guided] {
        for ranks in [1, 3] {
            let o = options(schedule, Some(2), OnError::Abort, Order::Input);
            let seen = map_on(ranks, 1, &o, &items, &Waits, None, REORDER_LIMIT_BYTES);
            let stats = seen.result.unwrap();
            let values: Vec<u32> = seen.results.iter().map(|r| r.1).collect();
            assert_eq!(values, items.iter().map(|x| 2 * x).collect::<Vec<_>>());
            assert!(stats.per_rank[0].items > 0, "the root mapped a share");
        }
    }
}

fn fails_at(bad: &'static [u64]) -> impl Fn(u64) -> Result<u64, String> + Sync {
    move |x| {
        if bad.contains(&x) {
            Err(format!("item {x} is bad"))
        } else {
            Ok(square(x))
        }
    }
}

#[test]
fn skip_leaves_failed_items_out_and_lists_them() {
    let items: Vec<u64> = (0..100).collect();
    for schedule in Schedule::ALL {
        for (ranks, threads) in [(1, 1), (3, 1), (2, 3)] {
            let o = options(schedule, Some(9), OnError::Skip, Order::Input);
            let seen = map_on(
                ranks,
                threads,
                &o,
                &items,
                &Fallible(fails_at(&[3, 77])),
                None,
                REORDER_LIMIT_BYTES,
            );
            let stats = seen.result.unwrap();
            let skipped: Vec<u64> = stats.skipped.iter().map(|f| f.index).collect();
            assert_eq!(skipped, [3, 77], "{schedule} {ranks}x{threads}");
            assert_eq!(stats.skipped[0].message, "item 3 is bad");
            let indices: Vec<usize> = seen.results.iter().map(|r| r.0).collect();
            let expected: Vec<usize> = (0..100).filter(|&i| i != 3 && i != 77).collect();
            assert_eq!(indices, expected);
        }
    }
}

#[test]
fn abort_ends_the_map_with_the_failed_item_on_every_schedule() {
    let items: Vec<u64> = (0..100).collect();
    for schedule in Schedule::ALL {
        for (ranks, threads) in [(1, 1), (3, 1), (2, 2)] {
            let o = options(schedule, Some(5), OnError::Abort, Order::Input);
            let seen = map_on(
                ranks,
                threads,
                &o,
                &items,
                &Fallible(fails_at(&[42])),
                None,
                REORDER_LIMIT_BYTES,
            );
            match seen.result {
                Err(MapError::ItemFailed { failure, host }) => {
                    assert_eq!(failure.index, 42);
                    assert_eq!(host, format!("host{}", failure.rank));
                    assert!(failure.describe(&host).contains("item 42 failed on rank"));
                }
                other => panic!("{schedule} {ranks}x{threads}: {other:?}"),
            }
            assert!(
                seen.results.iter().all(|r| r.0 < 42),
                "nothing past the failure is handed on in order"
            );
        }
    }
}

#[test]
fn retry_maps_a_flaky_item_again() {
    let calls = AtomicUsize::new(0);
    let flaky = Fallible(|x: u64| {
        if x == 10 && calls.fetch_add(1, Ordering::Relaxed) < 2 {
            Err("flaky")
        } else {
            Ok(x)
        }
    });
    let items: Vec<u64> = (0..30).collect();
    let o = options(Schedule::Dynamic, Some(4), OnError::Retry(2), Order::Input);
    let seen = map_on(2, 1, &o, &items, &flaky, None, REORDER_LIMIT_BYTES);
    assert!(seen.result.unwrap().skipped.is_empty());
    assert_eq!(seen.results.len(), 30);
}

#[test]
fn resume_replays_the_journal_and_maps_only_what_it_lacks() {
    let items: Vec<u64> = (0..120).collect();
    let serial: Vec<u64> = items.iter().map(|&x| square(x)).collect();
    for schedule in Schedule::ALL {
        let dir =
            std::env::temp_dir().join(format!("hpcmap-sched-{}-{schedule}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // First run: item 50 fails and is skipped; every chunk is journaled.
        let o = options(schedule, Some(10), OnError::Skip, Order::Input);
        let first = map_on(
            3,
            1,
            &o,
            &items,
            &Fallible(fails_at(&[50])),
            Some(&dir),
            REORDER_LIMIT_BYTES,
        );
        assert_eq!(first.result.unwrap().skipped.len(), 1);
        // The resumed run maps only the chunk with the failure, and succeeds.
        let again = Journal::open(&dir, "test", true).unwrap().retried();
        assert!((10..120).contains(&again), "{schedule}: {again}");
        let calls = AtomicUsize::new(0);
        let counting = Func(|x: u64| {
            calls.fetch_add(1, Ordering::Relaxed);
            square(x)
        });
        let o = options(schedule, Some(4), OnError::Abort, Order::Input);
        let resumed = map_on(3, 1, &o, &items, &counting, Some(&dir), REORDER_LIMIT_BYTES);
        let stats = resumed.result.unwrap();
        assert_eq!(
            calls.load(Ordering::Relaxed),
            again,
            "{schedule}: only the failed chunk again"
        );
        let values: Vec<u64> = resumed.results.iter().map(|r| r.1).collect();
        assert_eq!(values, serial, "{schedule}");
        assert_eq!(stats.checksum, codec::checksum(&serial).unwrap());
        // A third run finds everything journaled: nothing is mapped.
        calls.store(0, Ordering::Relaxed);
        let again = map_on(2, 1, &o, &items, &counting, Some(&dir), REORDER_LIMIT_BYTES);
        assert_eq!(again.results.len(), 120);
        assert_eq!(calls.load(Ordering::Relaxed), 0);
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn back_pressure_bounds_the_reorder_buffer() {
    // Item 0 is slow; everything after it must wait in order behind it.
    let slow_first = Func(|x: u64| {
        if x == 0 {
            std::thread::sleep(Duration::from_millis(300));
        }
        x
    });
    let items: Vec<u64> = (0..2000).collect();
    for threads in [1, 2] {
        let o = options(Schedule::Dynamic, Some(1), OnError::Abort, Order::Input);
        let unbounded = map_on(3, threads, &o, &items, &slow_first, None, usize::MAX);
        let bounded = map_on(3, threads, &o, &items, &slow_first, None, 256);
        let (unbounded, bounded) = (unbounded.result.unwrap(), bounded.result.unwrap());
        // Held back, the most in flight is a full window per rank, each
        // result a frame of at most 64 bytes here.
        let bound = 256 + 3 * master::MAX_WINDOW * 64;
        assert!(
            unbounded.reorder_peak_bytes > bound as u64,
            "without a limit the others run ahead: {}",
            unbounded.reorder_peak_bytes
        );
        assert!(
            bounded.reorder_peak_bytes < bound as u64,
            "{threads} threads: held {} bytes over a 256-byte limit",
            bounded.reorder_peak_bytes
        );
    }
}

#[test]
fn traces_account_for_every_ranks_compute_and_items_and_progress_counts_all() {
    let items: Vec<u64> = (0..300).collect();
    for schedule in Schedule::ALL {
        for (ranks, threads, chunk) in [
            (1, 1, None),
            (3, 1, Some(7)),
            (3, 2, Some(20)),
            (2, 3, None),
        ] {
            let mut o = options(schedule, chunk, OnError::Abort, Order::Input);
            o.trace = true;
            let slow = |x: u64| {
                std::thread::sleep(Duration::from_micros(30));
                x + 1
            };
            let seen = map_on(
                ranks,
                threads,
                &o,
                &items,
                &Func(slow),
                None,
                REORDER_LIMIT_BYTES,
            );
            let case = format!("{schedule} ranks {ranks} threads {threads} chunk {chunk:?}");
            let stats = seen.result.expect(&case);
            let trace = stats.trace.as_ref().expect("traced");
            assert_eq!(trace.resolution.len(), ranks, "{case}");
            let mut items_in_spans = 0;
            for (rank, r) in stats.per_rank.iter().enumerate() {
                let spans = trace.total(rank as u32, crate::trace::Phase::Compute);
                assert!(
                    (spans - r.compute_s).abs() <= 1e-6 + 1e-3 * r.compute_s,
                    "{case} rank {rank}: spans {spans} vs compute {}",
                    r.compute_s
                );
                items_in_spans += trace
                    .spans
                    .iter()
                    .filter(|s| s.rank == rank as u32 && s.lane <= crate::trace::LANE_LOCAL)
                    .filter(|s| s.phase == crate::trace::Phase::Compute)
                    .map(|s| s.count)
                    .sum::<u64>();
            }
            assert_eq!(items_in_spans, 300, "{case}");
            if threads > 1 {
                let lanes = trace.lanes();
                assert!(
                    lanes.iter().any(|&(_, l)| l >= crate::trace::LANE_THREADS),
                    "{case}: {lanes:?}"
                );
            }
            let p = &seen.progress;
            assert_eq!(
                (p.done, p.total, p.failed, p.finished),
                (300, 300, 0, true),
                "{case}"
            );
            assert_eq!(p.ranks.iter().map(|r| r.items).sum::<u64>(), 300, "{case}");
        }
    }
}
