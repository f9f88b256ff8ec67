//! Bad input and failures end the whole job with a clear message and a
//! documented exit code, never a hang (every job runs under a timeout).

use hpcmap::chunking::StaticPlan as Plan;

use crate::util::{Run, hpcmap_run, temp_dir};

/// A rank failure ends the job with code 3 from `MPI_Abort`. OpenMPI 4.1's
/// mpirun sometimes segfaults in its own PMIx teardown right after an abort
/// (exit 139): the job still ended promptly, with our message, non-zero.
fn aborted(r: &Run) -> bool {
    matches!(r.code, Some(3) | Some(139))
}

#[test]
fn usage_errors_exit_2_said_once() {
    for args in [
        &["square", "--items", "-1"][..],
        &["square", "--items", "ten"],
        &["nosuchworkload"],
        &["square", "--chunk", "0"],
        &["mandelbrot", "--output", "image.jpg"],
        &["spin", "--micros", "-5"],
        &["spin", "--on-error", "retry=0"],
        &["spin", "--on-error", "ignore"],
        &["spin", "--fail-times", "2"],
        &["wordcount"],
    ] {
        let r = hpcmap_run(2, args);
        assert_eq!(r.code, Some(2), "{args:?}: {}", r.stderr);
        assert_eq!(
            r.stderr.matches("error:").count(),
            1,
            "rank 0 explains, once: {}",
            r.stderr
        );
    }
}

#[test]
fn unreadable_inputs_are_clear_errors() {
    let dir = temp_dir("inputs");
    let invalid = dir.join("latin1.txt");
    std::fs::write(&invalid, b"caf\xe9 au lait").unwrap();
    let binary = dir.join("blob.bin");
    std::fs::write(&binary, [1u8, 0, 2, 3]).unwrap();
    let cases = [
        (dir.join("missing.txt"), "cannot read input file"),
        (dir.clone(), "Is a directory"),
        (invalid, "not valid UTF-8 (invalid byte at offset 3)"),
        (binary, "looks binary (NUL byte at offset 1)"),
    ];
    for (path, message) in cases {
        for ranks in [1, 3] {
            let r = hpcmap_run(ranks, &["wordcount", "--input", path.to_str().unwrap()]);
            assert_eq!(r.code, Some(1), "{}: {}", path.display(), r.stderr);
            assert!(
                r.stderr.contains(message),
                "{}: expected '{message}' in {}",
                path.display(),
                r.stderr
            );
            assert!(r.stderr.contains("rank 0"), "names the rank: {}", r.stderr);
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn empty_inputs_give_empty_answers() {
    let dir = temp_dir("empty");
    let empty = dir.join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    let r = hpcmap_run(3, &["wordcount", "--input", empty.to_str().unwrap(), "-q"]).ok();
    assert_eq!(r.field("answer"), "0 words, 0 distinct; top: ");
    let r = hpcmap_run(3, &["square", "--items", "0", "-q"]).ok();
    assert_eq!(r.field("answer"), "sum of 0 squares = 0");
    let r = hpcmap_run(2, &["primes", "--limit", "0", "-q"]).ok();
    assert_eq!(r.field("answer"), "0 primes below 0");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn more_ranks_than_items() {
    let r = hpcmap_run(8, &["square", "--items", "3"]).ok();
    assert_eq!(r.field("answer"), "sum of 3 squares = 14");
}

#[test]
fn a_panicking_item_aborts_the_job_naming_rank_and_item() {
    for (ranks, threads) in [(1, "1"), (2, "1"), (3, "1"), (3, "2")] {
        let r = hpcmap_run(
            ranks,
            &[
                "spin",
                "--items",
                "50",
                "--micros",
                "20",
                "--fail-at",
                "33",
                "--threads",
                threads,
            ],
        );
        assert!(
            aborted(&r),
            "exit code {:?} at {ranks} ranks: {}",
            r.code,
            r.stderr
        );
        let plan = Plan::new(50, ranks, None);
        let owner = (33 / plan.chunk) % ranks;
        let expected = format!("rank {owner} (");
        assert!(
            r.stderr.contains(&expected),
            "names rank {owner}: {}",
            r.stderr
        );
        assert!(
            r.stderr.contains("panicked while mapping item 33"),
            "{}",
            r.stderr
        );
    }
    // In part 2/2 item 33 is the part's 9th: still named item 33.
    let r = hpcmap_run(
        2,
        &[
            "spin",
            "--items",
            "50",
            "--micros",
            "20",
            "--fail-at",
            "33",
            "--part",
            "2/2",
        ],
    );
    assert!(aborted(&r), "{:?}: {}", r.code, r.stderr);
    assert!(
        r.stderr.contains("panicked while mapping item 33:"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_panicking_item_aborts_every_schedule() {
    for schedule in ["dynamic", "guided"] {
        for (ranks, threads, chunk) in [(1, "1", "1"), (2, "1", "1"), (3, "2", "5"), (4, "1", "50")]
        {
            let r = hpcmap_run(
                ranks,
                &[
                    "spin",
                    "--items",
                    "200",
                    "--micros",
                    "20",
                    "--fail-at",
                    "133",
                    "--schedule",
                    schedule,
                    "--threads",
                    threads,
                    "--chunk",
                    chunk,
                ],
            );
            assert!(
                aborted(&r),
                "{schedule} at {ranks} ranks: {:?} {}",
                r.code,
                r.stderr
            );
            assert!(
                r.stderr.contains("panicked while mapping item 133"),
                "{}",
                r.stderr
            );
            let named = (0..ranks).any(|k| r.stderr.contains(&format!("rank {k} (")));
            assert!(named, "names a rank: {}", r.stderr);
        }
    }
}

#[test]
fn unwritable_outputs_fail_before_computing() {
    let dir = temp_dir("outputs");
    let cases = [
        (
            vec!["mandelbrot", "--output"],
            dir.join("no/such/dir/m.png"),
            "cannot write output",
        ),
        (
            vec!["mandelbrot", "--output"],
            dir.join("isdir.png"),
            "is a directory",
        ),
        (
            vec!["square", "--json"],
            dir.join("no/such/dir/r.jsonl"),
            "cannot append to --json file",
        ),
    ];
    std::fs::create_dir(dir.join("isdir.png")).unwrap();
    for (args, path, message) in cases {
        let mut all = args.clone();
        all.push(path.to_str().unwrap());
        let r = hpcmap_run(2, &all);
        assert_eq!(r.code, Some(1), "{all:?}: {}", r.stderr);
        assert!(
            r.stderr.contains(message),
            "expected '{message}': {}",
            r.stderr
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn an_existing_output_survives_a_failed_run() {
    let dir = temp_dir("keep");
    let png = dir.join("m.png");
    std::fs::write(&png, b"earlier good image").unwrap();
    // The JSON path is unwritable, so the run fails before the image is replaced.
    let json = dir.join("missing/r.jsonl");
    let r = hpcmap_run(
        2,
        &[
            "mandelbrot",
            "--output",
            png.to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, Some(1));
    assert_eq!(std::fs::read(&png).unwrap(), b"earlier good image");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn skip_leaves_failed_items_out_and_says_so() {
    use hpcmap::cli::workloads::rng::mix;
    let failing = [3u64, 77, 150];
    let expected: u64 = (0..200u64)
        .filter(|i| !failing.contains(i))
        .fold(0u64, |a, i| a.wrapping_add(mix(i)));
    let dir = temp_dir("skip");
    for (ranks, schedule, threads) in [
        (1, "static", "1"),
        (3, "static", "2"),
        (2, "dynamic", "1"),
        (4, "guided", "2"),
    ] {
        let json = dir.join(format!("{ranks}-{schedule}.jsonl"));
        let r = hpcmap_run(
            ranks,
            &[
                "spin",
                "--items",
                "200",
                "--micros",
                "5",
                "--fail-at",
                "3,77,150",
                "--on-error",
                "skip",
                "--schedule",
                schedule,
                "--threads",
                threads,
                "--json",
                json.to_str().unwrap(),
            ],
        );
        assert_eq!(r.code, Some(4), "{schedule} at {ranks}: {}", r.stderr);
        assert!(
            r.stderr.contains("3 items failed and were skipped"),
            "{}",
            r.stderr
        );
        assert!(r.stdout.contains("skipped: 3 items failed"), "{}", r.stdout);
        let record: serde_json::Value =
            serde_json::from_str(std::fs::read_to_string(&json).unwrap().trim()).unwrap();
        let skipped: Vec<u64> = record["skipped"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["index"].as_u64().unwrap())
            .collect();
        assert_eq!(skipped, failing, "{schedule} at {ranks}");
        assert_eq!(record["answer"]["value"]["items"], 197);
        assert_eq!(record["answer"]["value"]["sum"], format!("{expected:016x}"));
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn retry_recovers_flaky_items_and_gives_up_on_broken_ones() {
    for (ranks, schedule) in [(1, "static"), (2, "dynamic"), (3, "guided")] {
        // Fails twice per rank, then works: retry=2 is enough.
        let r = hpcmap_run(
            ranks,
            &[
                "spin",
                "--items",
                "100",
                "--micros",
                "5",
                "--fail-at",
                "42",
                "--fail-times",
                "2",
                "--on-error",
                "retry=2",
                "--schedule",
                schedule,
                "-q",
            ],
        )
        .ok();
        assert!(r.stdout.contains("answer: 100 items"), "{}", r.stdout);
        // Fails three times: retry=2 gives up and the run ends cleanly with code 3.
        let r = hpcmap_run(
            ranks,
            &[
                "spin",
                "--items",
                "100",
                "--micros",
                "5",
                "--fail-at",
                "42",
                "--fail-times",
                "3",
                "--on-error",
                "retry=2",
                "--schedule",
                schedule,
                "-q",
            ],
        );
        assert_eq!(r.code, Some(3), "{schedule} at {ranks}: {}", r.stderr);
        assert!(
            r.stderr.contains("panicked while mapping item 42")
                && r.stderr
                    .contains("the run was ended (--on-error retry=2: its retries failed too)"),
            "{}",
            r.stderr
        );
    }
}
