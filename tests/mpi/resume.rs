//! Journaled runs killed at random points (SIGKILL to mpirun, SIGKILL to one
//! rank, SIGTERM and SIGUSR1 as a walltime would) resume to the answer,
//! checksum and output bytes of an uninterrupted run; damaged and foreign
//! journals get the documented behaviour. (mpirun answers SIGTERM by killing
//! the job and exiting 1, whatever the ranks do; the PBS templates therefore
//! pass a walltime SIGTERM on as SIGUSR1, which mpirun forwards as is.)

use std::path::Path;
use std::time::Duration;

use hpcmap::cli::workloads::rng::SplitMix64;

use crate::util::{
    Run, hpcmap_run, ranks_of, reap, signal, start, temp_dir, wait, wait_for_handlers,
};

const WORK: [&str; 7] = ["spin", "--items", "6000", "--micros", "300", "--skew", "1"];

fn args(schedule: &str, journal: &Path, results: &Path, resume: bool) -> Vec<String> {
    let mut a: Vec<String> = WORK.iter().map(|s| s.to_string()).collect();
    a.extend(["--schedule", schedule, "--journal"].map(String::from));
    a.push(journal.display().to_string());
    a.push("--results".into());
    a.push(results.display().to_string());
    if resume {
        a.push("--resume".into());
    }
    a
}

fn answer_and_checksum(r: &Run) -> (String, String) {
    (r.field("answer"), r.field("checksum"))
}

#[test]
fn killed_runs_resume_to_identical_results() {
    let dir = temp_dir("resume");
    let reference_results = dir.join("reference.jsonl");
    let reference = hpcmap_run(
        2,
        &[
            &WORK[..],
            &["--results", reference_results.to_str().unwrap()],
        ]
        .concat(),
    )
    .ok();
    let expected = answer_and_checksum(&reference);
    let expected_bytes = std::fs::read(&reference_results).unwrap();
    let mut rng = SplitMix64::for_item(2026, 11);
    let mut case = 0;
    for ranks in [2, 4] {
        for schedule in ["dynamic", "guided", "static"] {
            for how in ["KILL mpirun", "KILL rank", "TERM mpirun", "USR1 mpirun"] {
                case += 1;
                let journal = dir.join(format!("journal-{case}"));
                let results = dir.join(format!("results-{case}.jsonl"));
                let marker = journal.display().to_string();
                let mut run = vec!["run".to_string()];
                run.extend(args(schedule, &journal, &results, false));
                let mut child = start(ranks, &run);
                // The whole run takes about 1-2 s: kill somewhere in it. A
                // walltime signal is sent once every rank can take it (one
                // before that kills a loading rank: a plain kill, not the
                // documented wind-down this case checks).
                let delay = 300 + rng.next_u64() % 900;
                if how == "USR1 mpirun" {
                    wait_for_handlers(&marker, ranks);
                }
                std::thread::sleep(Duration::from_millis(delay));
                match how {
                    "KILL mpirun" => signal(child.id(), "KILL"),
                    "TERM mpirun" => signal(child.id(), "TERM"),
                    "USR1 mpirun" => signal(child.id(), "USR1"),
                    _ => {
                        let victims = ranks_of(&marker);
                        if let Some(&pid) = victims.last() {
                            signal(pid, "KILL");
                        }
                    }
                }
                let code = wait(&mut child, Duration::from_secs(20));
                reap(&marker);
                if how == "USR1 mpirun" {
                    // mpirun passes SIGUSR1 on; every rank winds down and the
                    // job exits 75: resumable (or the run had just finished).
                    assert!(
                        matches!(code, Some(75) | Some(0)),
                        "{how} {schedule}: exit {code:?}"
                    );
                }
                let resumed = hpcmap_run(
                    ranks,
                    &args(schedule, &journal, &results, true)
                        .iter()
                        .map(String::as_str)
                        .collect::<Vec<_>>(),
                )
                .ok();
                let what = format!("{how} after {delay} ms, {schedule}, {ranks} ranks");
                assert_eq!(answer_and_checksum(&resumed), expected, "{what}");
                assert!(
                    std::fs::read(&results).unwrap() == expected_bytes,
                    "{what}: --results differ"
                );
            }
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn damaged_and_foreign_journals() {
    let dir = temp_dir("damaged");
    let journal = dir.join("j");
    let results = dir.join("r.jsonl");
    let base: Vec<String> = args("dynamic", &journal, &results, false);
    let run = |extra: &[&str]| {
        let mut a: Vec<&str> = base.iter().map(String::as_str).collect();
        a.extend_from_slice(extra);
        hpcmap_run(2, &a)
    };
    let full = run(&[]).ok();
    let expected = answer_and_checksum(&full);
    let file = journal.join("journal.hpcmap");
    let pristine = std::fs::read(&file).unwrap();

    // A journal with records is not silently restarted.
    let r = run(&[]);
    assert_eq!(r.code, Some(1));
    assert!(r.stderr.contains("pass --resume"), "{}", r.stderr);

    // Torn last record (killed mid-write): dropped, recomputed, same answer.
    std::fs::write(&file, &pristine[..pristine.len() - 5]).unwrap();
    let r = run(&["--resume"]).ok();
    assert!(r.stderr.contains("torn or corrupt record"), "{}", r.stderr);
    assert_eq!(answer_and_checksum(&r), expected);

    // One corrupt byte in the middle: that record and the rest are recomputed.
    let mut corrupt = pristine.clone();
    let middle = corrupt.len() / 2;
    corrupt[middle] ^= 0x55;
    std::fs::write(&file, &corrupt).unwrap();
    let r = run(&["--resume"]).ok();
    assert!(r.stderr.contains("torn or corrupt record"), "{}", r.stderr);
    assert_eq!(answer_and_checksum(&r), expected);

    // Another run's journal (different parameters) is refused.
    std::fs::write(&file, &pristine).unwrap();
    let mut other: Vec<&str> = base.iter().map(String::as_str).collect();
    other[2] = "5000";
    other.push("--resume");
    let r = hpcmap_run(2, &other);
    assert_eq!(r.code, Some(1));
    assert!(
        r.stderr.contains("written by a different run"),
        "{}",
        r.stderr
    );
    assert_eq!(
        std::fs::read(&file).unwrap(),
        pristine,
        "a refused journal is left untouched"
    );

    // --resume without --journal is a usage error.
    let r = hpcmap_run(2, &["square", "--resume"]);
    assert_eq!(r.code, Some(2));
    let _ = std::fs::remove_dir_all(dir);
}

/// A journal written by hpcmap 0.2 before the plain data path (bincode for
/// every item, the old checksum), cut in the middle of a record: the current
/// binary drops the torn record, replays the rest and computes what is
/// missing, to the answer and checksum of an uninterrupted run today.
#[test]
fn a_journal_written_before_the_plain_data_path_still_resumes() {
    let dir = temp_dir("old-journal");
    let journal = dir.join("journal");
    std::fs::create_dir_all(&journal).unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/mpi/fixtures/journal-v1-square-5000.hpcmap");
    std::fs::copy(&fixture, journal.join("journal.hpcmap")).unwrap();
    let work = [
        "square",
        "--items",
        "5000",
        "--schedule",
        "dynamic",
        "--chunk",
        "100",
    ];
    let mut resume = work.to_vec();
    let j = journal.display().to_string();
    resume.extend(["--journal", &j, "--resume"]);
    for ranks in [1, 3] {
        // Each resume works on its own copy: the first completes the journal.
        std::fs::copy(&fixture, journal.join("journal.hpcmap")).unwrap();
        let resumed = hpcmap_run(ranks, &resume).ok();
        assert!(
            resumed
                .stderr
                .contains("dropped 794 bytes of a torn or corrupt record"),
            "{}",
            resumed.stderr
        );
        assert_eq!(
            resumed.field("resumed"),
            "2400 items from the journal, 2600 computed in this run"
        );
        let fresh = hpcmap_run(ranks, &work).ok();
        assert_eq!(answer_and_checksum(&resumed), answer_and_checksum(&fresh));
        // The closed form: 5000 x 5001 x 10001 / 6.
        assert_eq!(resumed.field("answer"), "sum of 5000 squares = 41679167500");
    }
    let _ = std::fs::remove_dir_all(dir);
}
