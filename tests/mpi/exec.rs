//! `hpcmap exec` and `hpcmap pipe` with real programs (shell tools, a real
//! Python 3) under real mpirun: results against the same work done here,
//! serially; failures ending as documented; nothing left running.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::util::{
    Run, hpcmap, leftovers, mpirun, reap, signal, start, temp_dir, wait, wait_for_file,
};

const RANKS: [usize; 4] = [1, 2, 3, 8];
const SCHEDULES: [&str; 3] = ["static", "dynamic", "guided"];

fn hpcmap_cmd(ranks: usize, args: &[&str]) -> Run {
    mpirun(ranks, &hpcmap(), args)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `count` files of pseudo-random bytes in `dir`, sorted by name.
fn data_files(dir: &Path, count: usize) -> Vec<PathBuf> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    (0..count)
        .map(|k| {
            let path = dir.join(format!("f{k:03}.dat"));
            let bytes: Vec<u8> = (0..(1000 + 37 * k))
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            std::fs::write(&path, bytes).unwrap();
            path
        })
        .collect()
}

#[test]
fn exec_maps_real_programs_like_a_serial_loop() {
    let dir = temp_dir("exec-sha");
    let files = data_files(&dir, 40);
    // The serial reference: the same program, one file after another.
    let mut expected = Vec::new();
    for f in &files {
        expected.extend(Command::new("sha256sum").arg(f).output().unwrap().stdout);
    }
    let pattern = format!("{}/*.dat", dir.display());
    for ranks in RANKS {
        for schedule in SCHEDULES {
            let r = hpcmap_cmd(
                ranks,
                &[
                    "exec",
                    "--files",
                    &pattern,
                    "--schedule",
                    schedule,
                    "-q",
                    "--",
                    "sha256sum",
                    "{}",
                ],
            )
            .ok();
            assert!(
                r.stdout_bytes == expected,
                "{ranks} ranks, {schedule}: output differs"
            );
            assert!(
                r.stderr.contains("answer: 40 items done, 0 failed"),
                "{}",
                r.stderr
            );
        }
    }
    // Threads: several commands at once per rank; output to a file.
    let out = dir.join("out.txt");
    hpcmap_cmd(
        2,
        &[
            "exec",
            "--files",
            &pattern,
            "--threads",
            "3",
            "-q",
            "--results",
            s(&out),
            "--",
            "sha256sum",
            "{}",
        ],
    )
    .ok();
    assert_eq!(std::fs::read(&out).unwrap(), expected);
    assert!(leftovers(s(&dir)).is_empty());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn exec_output_is_captured_whole_whatever_its_bytes() {
    let dir = temp_dir("exec-bytes");
    let out = dir.join("out.bin");
    let r = hpcmap_cmd(
        3,
        &[
            "exec", "--shell", "-q", "--results", s(&out), "--",
            "case {} in big) head -c 10000000 /dev/zero | tr '\\000' x;; bin) printf '\\000\\001\\377\\n';; *) echo {};; esac",
            ":::", "a", "big", "bin", "z",
        ],
    )
    .ok();
    assert!(
        r.stdout_bytes.is_empty(),
        "--results takes what stdout would get"
    );
    let got = std::fs::read(&out).unwrap();
    let mut expected = b"a\n".to_vec();
    expected.extend(std::iter::repeat_n(b'x', 10_000_000));
    expected.extend_from_slice(b"\x00\x01\xff\nz\n");
    assert!(
        got == expected,
        "{} bytes, expected {}",
        got.len(),
        expected.len()
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn quoting_keeps_every_item_one_argument() {
    let items = [
        "with space",
        "it's \"quoted\"",
        "$HOME and $(date)",
        "a; rm -rf x",
        "ünïcödé ✓",
        "-n",
    ];
    let expected: String = items.iter().map(|i| format!("[{i}]\n")).collect();
    let dir = temp_dir("quoting");
    let lines = dir.join("items.txt");
    std::fs::write(&lines, items.join("\n")).unwrap();
    for shell in [false, true] {
        let mut inline = vec!["exec", "-q"];
        if shell {
            inline.push("--shell");
        }
        // With --shell the command is shell code: its own quotes are the user's.
        let format = if shell { "'[%s]\\n'" } else { "[%s]\\n" };
        inline.extend(["--", "printf", format, "{}", ":::"]);
        inline.extend(items);
        let r = hpcmap_cmd(2, &inline).ok();
        assert_eq!(r.stdout, expected, "inline, shell {shell}");
        let mut from_file = vec!["exec", "-q", "--lines", s(&lines)];
        if shell {
            from_file.push("--shell");
        }
        from_file.extend(["--", "printf", format, "{}"]);
        let r = hpcmap_cmd(3, &from_file).ok();
        assert_eq!(r.stdout, expected, "--lines, shell {shell}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn exec_failures_end_promptly_with_the_documented_code() {
    let dir = temp_dir("exec-fail");
    let marker = dir.join("marker");
    let m = s(&marker);
    // A malformed glob: a usage error on every rank, before any work.
    let glob = format!("{}/[.txt", s(&dir));
    let r = hpcmap_cmd(2, &["exec", "--files", &glob, "--", "cat", "{}"]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("is not a valid pattern"), "{}", r.stderr);
    // A command that exits non-zero (abort: exit 3, named).
    let r = hpcmap_cmd(
        2,
        &[
            "exec",
            "--shell",
            "-q",
            "--",
            &format!("test {{}} != 2 || {{ echo broke >&2; exit 3; }} # {m}"),
            ":::",
            "1",
            "2",
            "3",
        ],
    );
    assert_eq!(r.code, Some(3), "{}", r.stderr);
    assert!(
        r.stderr.contains("exit status 3; stderr: broke"),
        "{}",
        r.stderr
    );
    // Named by its {#} (the second item), as the joblog and stderr tags do.
    assert!(
        r.stderr.contains("item 2 failed on rank")
            && r.stderr.contains("; the run was ended (--on-error abort)"),
        "{}",
        r.stderr
    );
    // Killed by a signal.
    let r = hpcmap_cmd(
        3,
        &[
            "exec",
            "--shell",
            "-q",
            "--",
            &format!("kill -SEGV $$ # {m}"),
            ":::",
            "x",
        ],
    );
    assert_eq!(r.code, Some(3), "{}", r.stderr);
    assert!(r.stderr.contains("killed by SIGSEGV"), "{}", r.stderr);
    // Past --timeout: its whole process group is killed.
    let r = hpcmap_cmd(
        2,
        &[
            "exec",
            "--timeout",
            "1",
            "--shell",
            "-q",
            "--",
            &format!("sleep 30 & sleep 31 # {m}"),
            ":::",
            "a",
        ],
    );
    assert_eq!(r.code, Some(3), "{}", r.stderr);
    assert!(r.stderr.contains("timed out after 1 s"), "{}", r.stderr);
    // Under skip the others' output stays, in order, and the run exits 4.
    let r = hpcmap_cmd(
        3,
        &[
            "exec",
            "--on-error",
            "skip",
            "--shell",
            "-q",
            "--",
            &format!("test {{}} != 2 && echo {{}} # {m}"),
            ":::",
            "1",
            "2",
            "3",
        ],
    );
    assert_eq!(r.code, Some(4), "{}", r.stderr);
    assert_eq!(r.stdout, "1\n3\n");
    // A program that does not exist fails its item, clearly.
    let r = hpcmap_cmd(
        2,
        &["exec", "-q", "--", "/nonexistent/program", m, ":::", "x"],
    );
    assert_eq!(r.code, Some(3), "{}", r.stderr);
    assert!(
        r.stderr.contains("cannot start `/nonexistent/program"),
        "{}",
        r.stderr
    );
    assert!(leftovers(m).is_empty(), "{:?}", leftovers(m));
    let _ = std::fs::remove_dir_all(dir);
}

fn pool_worker() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/pool_worker.py")
}

/// What examples/pool_worker.py answers for `x`, computed here.
fn pool_answer(x: u64) -> String {
    json!({"x": x, "square": x * x}).to_string()
}

#[test]
fn pipe_gives_the_python_functions_results() {
    let dir = temp_dir("pipe");
    let items = dir.join("items.jsonl");
    std::fs::write(
        &items,
        (1..=500).map(|x| format!("{x}\n")).collect::<String>(),
    )
    .unwrap();
    let expected: String = (1..=500).map(|x| pool_answer(x) + "\n").collect();
    let worker = pool_worker();
    for (ranks, schedule, threads) in [
        (1, "guided", "1"),
        (2, "dynamic", "1"),
        (3, "static", "1"),
        (2, "guided", "2"),
        (8, "guided", "1"),
    ] {
        let r = hpcmap_cmd(
            ranks,
            &[
                "pipe",
                "--lines",
                s(&items),
                "--schedule",
                schedule,
                "--threads",
                threads,
                "-q",
                "--",
                "python3",
                "-u",
                s(&worker),
            ],
        )
        .ok();
        assert_eq!(
            r.stdout, expected,
            "{ranks} ranks, {schedule}, {threads} threads"
        );
    }
    assert!(leftovers(s(&worker)).is_empty());
    let _ = std::fs::remove_dir_all(dir);
}

/// Under `--on-error abort` a worker that fails item after item (here it
/// buffers its answers: each item stalls) ends the map at its first failed
/// item, instead of first failing the rest of its run one stall at a time.
#[test]
fn abort_stops_a_failing_workers_run_at_its_first_failure() {
    let dir = temp_dir("pipe-abort");
    let starts = dir.join("starts");
    let script = dir.join("buffered.py");
    std::fs::write(
        &script,
        format!(
            "import sys\n\
             open({starts:?}, 'a').write('start\\n')\n\
             out = open(1, 'w', buffering=1 << 16, closefd=False)\n\
             for line in sys.stdin:\n\
             \x20   print(line.strip(), file=out)\n"
        ),
    )
    .unwrap();
    let items = (1..=20).map(|x| x.to_string()).collect::<Vec<_>>();
    let mut args = vec!["pipe", "-q", "--schedule", "dynamic", "--chunk", "20"];
    args.extend(["--", "python3", s(&script), ":::"]);
    args.extend(items.iter().map(String::as_str));
    let r = hpcmap_cmd(1, &args);
    assert_eq!(r.code, Some(3), "{}", r.stderr);
    assert!(r.stderr.contains("item 1 failed"), "{}", r.stderr);
    assert!(r.stderr.contains("flush each line"), "{}", r.stderr);
    // The first worker stalls on the run, a fresh one on item 1 alone: two
    // starts (one per item of the run, 21, before).
    let starts = std::fs::read_to_string(&starts).unwrap().lines().count();
    assert!(starts <= 3, "{starts} worker starts");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn pipe_worker_failures_fail_only_their_item() {
    let dir = temp_dir("pipe-fail");
    let script = dir.join("bad.py");
    std::fs::write(
        &script,
        "import sys, os, time\n\
         for line in sys.stdin:\n\
         \x20   x = int(line)\n\
         \x20   if x == 13: os._exit(7)\n\
         \x20   if x == 21: print(x); print(x)\n\
         \x20   elif x == 33: time.sleep(60)\n\
         \x20   elif x == 41: sys.stdout.write(str(x))\n\
         \x20   elif x == 45: sys.stdout.write(f'{x}\\nEXTRA\\n')\n\
         \x20   else: print(x * 2)\n\
         \x20   sys.stdout.flush()\n",
    )
    .unwrap();
    let items = dir.join("items.txt");
    std::fs::write(
        &items,
        (1..=50).map(|x| format!("{x}\n")).collect::<String>(),
    )
    .unwrap();
    let json = dir.join("r.jsonl");
    for ranks in [1, 2] {
        let r = hpcmap_cmd(
            ranks,
            &[
                "pipe",
                "--lines",
                s(&items),
                "--timeout",
                "2",
                "--on-error",
                "skip",
                "-q",
                "--json",
                s(&json),
                "--",
                "python3",
                "-u",
                s(&script),
            ],
        );
        assert_eq!(r.code, Some(4), "{}", r.stderr);
        let expected: String = (1..=50u64)
            .filter(|x| ![13, 21, 33, 41, 45].contains(x))
            .map(|x| format!("{}\n", 2 * x))
            .collect();
        assert_eq!(r.stdout, expected, "{ranks} ranks");
        let record: serde_json::Value = serde_json::from_str(
            std::fs::read_to_string(&json)
                .unwrap()
                .lines()
                .last()
                .unwrap(),
        )
        .unwrap();
        let skipped: Vec<(u64, String)> = record["skipped"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["index"].as_u64().unwrap(),
                    f["message"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(
            skipped.iter().map(|f| f.0).collect::<Vec<_>>(),
            [12, 20, 32, 40, 44]
        );
        assert!(skipped[0].1.contains("exit status 7"), "{skipped:?}");
        assert!(skipped[1].1.contains("more than one line"), "{skipped:?}");
        assert!(skipped[2].1.contains("timed out"), "{skipped:?}");
        // A lost newline: named, never glued to the next item's answer.
        assert!(
            skipped[3].1.contains("printed `41` without a newline"),
            "{skipped:?}"
        );
        // Two lines in one write.
        assert!(skipped[4].1.contains("more than one line"), "{skipped:?}");
    }
    // A worker whose output is buffered (sed without -u) answers nothing
    // until its input ends: the run says so instead of waiting forever.
    let r = hpcmap_cmd(1, &["pipe", "-q", "--", "sed", "s/^/x/", ":::", "1", "2"]);
    assert_eq!(r.code, Some(3), "{}", r.stderr);
    assert!(r.stderr.contains("buffered output"), "{}", r.stderr);
    // A worker that cannot start stops the run before any work.
    let r = hpcmap_cmd(2, &["pipe", "-q", "--", "/nonexistent/worker", ":::", "1"]);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(
        r.stderr.contains("could not start") && r.stderr.contains("cannot start worker"),
        "{}",
        r.stderr
    );
    let r = hpcmap_cmd(
        2,
        &[
            "pipe",
            "-q",
            "--",
            "python3",
            "-c",
            "import sys; print('no', file=sys.stderr); sys.exit(2)",
            ":::",
            "1",
        ],
    );
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(
        r.stderr.contains("before its first item; stderr: no"),
        "{}",
        r.stderr
    );
    assert!(leftovers(s(&script)).is_empty());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn killed_runs_resume_to_byte_identical_output_and_leave_no_process() {
    let dir = temp_dir("exec-resume");
    // Item 700 of each run opens a gate (GATE.reached) and waits for the
    // test's (GATE.go): the kill lands mid-run however fast the machine.
    let slow = dir.join("slow.py");
    std::fs::write(
        &slow,
        "import os, sys, time\n\
         gate = sys.argv[1]\n\
         for line in sys.stdin:\n\
         \x20   if line.strip() == 'item-700':\n\
         \x20       open(gate + '.reached', 'w').close()\n\
         \x20       for _ in range(3000):\n\
         \x20           if os.path.exists(gate + '.go'):\n\
         \x20               break\n\
         \x20           time.sleep(0.01)\n\
         \x20   time.sleep(0.002)\n\
         \x20   print(line.strip()[::-1], flush=True)\n",
    )
    .unwrap();
    let items = dir.join("items.txt");
    std::fs::write(
        &items,
        (0..1500).map(|x| format!("item-{x}\n")).collect::<String>(),
    )
    .unwrap();
    let reference: String = (0..1500)
        .map(|x| {
            format!(
                "{}\n",
                format!("item-{x}").chars().rev().collect::<String>()
            )
        })
        .collect();
    let gate = |mode: &str| dir.join(format!("gate-{mode}"));
    let (pipe_gate, exec_gate) = (gate("pipe"), gate("exec"));
    let script = format!(
        "if [ {{}} = item-700 ]; then touch {g}.reached; i=0; \
         while [ ! -e {g}.go ] && [ $i -lt 3000 ]; do sleep 0.01; i=$((i+1)); done; fi; \
         sleep 0.004; echo {{}} | rev # {}",
        s(&slow),
        g = s(&exec_gate),
    );
    let cases: [(&str, Vec<&str>); 2] = [
        ("pipe", vec!["--", "python3", "-u", s(&slow), s(&pipe_gate)]),
        ("exec", vec!["--shell", "--", &script]),
    ];
    for (mode, command) in cases {
        let gate = gate(mode);
        let journal = dir.join(format!("j-{mode}"));
        let results = dir.join(format!("r-{mode}.txt"));
        let mut args = vec![
            "--lines",
            s(&items),
            "--journal",
            s(&journal),
            "--results",
            s(&results),
            "-q",
        ];
        args.extend(command.iter().copied());
        let mut all: Vec<String> = vec![mode.to_string()];
        all.extend(args.iter().map(|a| a.to_string()));
        let mut job = start(2, &all);
        wait_for_file(&gate.with_extension("reached"), Duration::from_secs(60));
        signal(job.id(), "KILL");
        let _ = wait(&mut job, Duration::from_secs(20));
        reap(s(&journal));
        assert!(
            leftovers(s(&slow)).is_empty(),
            "{mode}: {:?}",
            leftovers(s(&slow))
        );
        assert!(!results.exists(), "{mode}: no partial output");
        std::fs::write(gate.with_extension("go"), "").unwrap();
        let mut resume = vec![mode, "--resume"];
        resume.extend(args.iter().copied());
        hpcmap_cmd(2, &resume).ok();
        assert!(
            std::fs::read_to_string(&results).unwrap() == reference,
            "{mode}: resumed output differs"
        );
    }
    // A changed input is refused on resume.
    std::fs::write(&items, "changed\n").unwrap();
    let journal = dir.join("j-pipe");
    let r = hpcmap_cmd(
        2,
        &[
            "pipe",
            "--resume",
            "--journal",
            s(&journal),
            "--lines",
            s(&items),
            "-q",
            "--",
            "python3",
            "-u",
            s(&slow),
            s(&pipe_gate),
        ],
    );
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(
        r.stderr.contains("written by a different run"),
        "{}",
        r.stderr
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_walltime_signal_stops_running_commands_and_exits_75() {
    let dir = temp_dir("exec-signal");
    let journal = dir.join("j");
    // A sleep under the test's folder: a survivor shows in `leftovers`.
    std::fs::copy("/bin/sleep", dir.join("sleep")).unwrap();
    let all: Vec<String> = [
        "exec",
        "--journal",
        s(&journal),
        "--shell",
        "-q",
        "--",
        // `#`: the item, appended as no {} is given, is a comment.
        &format!("touch {d}/started; {d}/sleep 20 #", d = s(&dir)),
        ":::",
        "a",
        "b",
        "c",
        "d",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    let mut job = start(2, &all);
    // A command runs: every rank is inside the map, its handlers installed.
    wait_for_file(&dir.join("started"), Duration::from_secs(60));
    signal(job.id(), "USR1");
    assert_eq!(
        wait(&mut job, Duration::from_secs(15)),
        Some(75),
        "interrupted, resumable"
    );
    assert!(leftovers(s(&dir)).is_empty(), "{:?}", leftovers(s(&dir)));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_joblog_reads_like_gnu_parallels() {
    let dir = temp_dir("joblog");
    let log = dir.join("jobs.tsv");
    // In input order under every schedule: a failure, which arrives with
    // its chunk, waits for the items before it.
    for schedule in ["static", "guided", "dynamic"] {
        let r = hpcmap_cmd(
            2,
            &[
                "exec",
                "--joblog",
                s(&log),
                "--on-error",
                "skip",
                "--schedule",
                schedule,
                "--shell",
                "-q",
                "--",
                "test {} != b || exit 5; echo {}",
                ":::",
                "a",
                "b",
                "c",
            ],
        );
        assert_eq!(r.code, Some(4), "{}", r.stderr);
        let text = std::fs::read_to_string(&log).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next().unwrap(),
            "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand"
        );
        let rows: Vec<Vec<&str>> = lines.map(|l| l.split('\t').collect()).collect();
        assert_eq!(rows.len(), 3, "{schedule}: {text}");
        for (row, (seq, exit, received)) in
            rows.iter()
                .zip([("1", "0", "2"), ("2", "5", "0"), ("3", "0", "2")])
        {
            assert_eq!(
                (row[0], row[6], row[5], row[7]),
                (seq, exit, received, "0"),
                "{schedule}: {row:?}"
            );
            assert!(
                row[2].parse::<f64>().unwrap() > 1.7e9 && row[3].parse::<f64>().unwrap() >= 0.0
            );
            assert!(row[8].starts_with("sh -c "), "{row:?}");
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Under `--part` every rank numbers items as the whole input does: `{#}`
/// on every rank, a pipe worker's stderr tags, the joblog and the report
/// of a failed item (item d is the 4th, the 2nd of part 2/2).
#[test]
fn a_part_numbers_its_items_as_the_whole_input_does() {
    let dir = temp_dir("part-numbers");
    let letters = ["a", "b", "c", "d", "e", "f", "g", "h"];
    for ranks in [2, 3] {
        let mut args = vec!["exec", "--part", "2/2", "--chunk", "1", "-q"];
        args.extend(["--", "echo", "{#}", "{}", ":::"]);
        args.extend(letters);
        let r = hpcmap_cmd(ranks, &args);
        assert_eq!(r.code, Some(0), "{}", r.stderr);
        assert_eq!(r.stdout, "5 e\n6 f\n7 g\n8 h\n", "{ranks} ranks");
        let mut args = vec!["pipe", "--part", "2/2", "-q", "--"];
        args.extend([
            "sh",
            "-c",
            // A pause on each side of the stderr line: a line is tagged with
            // the oldest unanswered item, which then is its own.
            "while read x; do sleep 0.1; echo $x >&2; sleep 0.1; echo $x; done",
            ":::",
        ]);
        args.extend(letters);
        let r = hpcmap_cmd(ranks, &args);
        assert_eq!(r.code, Some(0), "{}", r.stderr);
        assert_eq!(r.stdout, "e\nf\ng\nh\n", "{ranks} ranks");
        // Each line is tagged with the oldest item in flight on its worker:
        // its own (the pauses), or if the root was slow to read an answer
        // an earlier one; always a number of the part's items.
        for (seq, x) in [(5, "e"), (6, "f"), (7, "g"), (8, "h")] {
            let tagged = |n: usize| r.stderr.contains(&format!("[{n}] {x}\n"));
            assert!((5..=seq).any(tagged), "{}", r.stderr);
        }
        assert!(
            (1..=4).all(|n| !r.stderr.contains(&format!("[{n}] "))),
            "{}",
            r.stderr
        );
    }
    let log = dir.join("part.tsv");
    let r = hpcmap_cmd(
        2,
        &[
            "exec",
            "--part",
            "2/2",
            "--joblog",
            s(&log),
            "--on-error",
            "skip",
            "--",
            "test",
            "{}",
            "!=",
            "d",
            ":::",
            "a",
            "b",
            "c",
            "d",
        ],
    );
    assert_eq!(r.code, Some(4), "{}", r.stderr);
    assert!(r.stderr.contains("  item 4 on rank "), "{}", r.stderr);
    let text = std::fs::read_to_string(&log).unwrap();
    let failed: Vec<&str> = text
        .lines()
        .filter(|l| l.split('\t').nth(6) == Some("1"))
        .collect();
    assert!(failed.len() == 1 && failed[0].starts_with("4\t"), "{text}");
    // The same items in the same part, moved by an item added before it:
    // their {#} changed, so the journal of the first run is not theirs.
    let journal = dir.join("j");
    let run = |before: &[&str], resume: bool| {
        let mut args = vec!["exec", "--part", "3/3", "-q", "--journal", s(&journal)];
        args.extend(resume.then_some("--resume"));
        args.extend(["--", "echo", "{#}", "{}", ":::"]);
        args.extend(before);
        args.extend(["x", "y"]);
        hpcmap_cmd(2, &args)
    };
    let r = run(&["a", "b", "c"], false);
    assert_eq!((r.code, r.stdout.as_str()), (Some(0), "4 x\n5 y\n"));
    let r = run(&["a", "b", "c", "d"], true);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(
        r.stderr.contains("written by a different run"),
        "{}",
        r.stderr
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// A run interrupted while item 1 still runs has journaled the items after
/// it, which the log (in output order) had not reached; the resumed run
/// logs them: in the end every item is in the joblog exactly once.
#[test]
fn an_interrupted_then_resumed_run_logs_every_item_once() {
    let dir = temp_dir("joblog-resume");
    let (log, journal, marks, go) = (
        dir.join("jobs.tsv"),
        dir.join("j"),
        dir.join("marks"),
        dir.join("go"),
    );
    std::fs::create_dir_all(&marks).unwrap();
    // Item 1 waits for the file the test writes (30 s at most: a failed
    // test leaves nothing running).
    let command = format!(
        "if [ {{}} = 1 ]; then n=0; while [ ! -e {go} ] && [ $n -lt 1500 ]; do sleep 0.02; n=$((n+1)); done; fi; touch {marks}/{{}}; echo item {{}}",
        go = s(&go),
        marks = s(&marks)
    );
    let items: Vec<String> = (1..=10).map(|k| k.to_string()).collect();
    let mut all: Vec<&str> = vec![
        "exec",
        "-q",
        "--shell",
        "--journal",
        s(&journal),
        "--joblog",
        s(&log),
        "--",
        &command,
        ":::",
    ];
    all.extend(items.iter().map(String::as_str));
    let owned: Vec<String> = all.iter().map(|a| a.to_string()).collect();
    let mut job = start(2, &owned);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    // Items 2-10 run, but for those queued behind item 1 (a rank keeps a
    // few milliseconds of work queued ahead): wait until no more finish.
    let (mut seen, mut since) = (0, std::time::Instant::now());
    loop {
        let now = std::fs::read_dir(&marks).unwrap().count();
        if now != seen {
            (seen, since) = (now, std::time::Instant::now());
        } else if seen >= 5 && since.elapsed() > Duration::from_millis(500) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "items 2-10 never ran");
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(crate::util::rank_pid(s(&journal), 0), "USR1");
    assert_eq!(wait(&mut job, Duration::from_secs(30)), Some(75));
    std::fs::write(&go, "").unwrap();
    all.insert(1, "--resume");
    let r = hpcmap_cmd(2, &all);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let expected: String = items.iter().map(|k| format!("item {k}\n")).collect();
    assert_eq!(r.stdout, expected);
    let text = std::fs::read_to_string(&log).unwrap();
    let mut seqs: Vec<u32> = text
        .lines()
        .skip(1)
        .map(|l| l.split('\t').next().unwrap().parse().unwrap())
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=10).collect::<Vec<u32>>(), "{text}");
    reap(s(&journal));
    let _ = std::fs::remove_dir_all(dir);
}

/// With `--threads 2` and no `--chunk`, two commands (or two pipe workers)
/// of one rank run at once: each item waits until both have started, so a
/// run that ran them one after the other would fail its items.
#[test]
fn threads_run_commands_side_by_side_by_default() {
    let dir = temp_dir("exec-threads");
    let meet = dir.join("meet");
    // Item $x leaves a mark, waits (at most 10 s) for the other's, then
    // answers with its name, or fails.
    let rendezvous = format!(
        "touch {m}/$x; n=0; while [ $(ls {m} | wc -l) -lt 2 ] && [ $n -lt 200 ]; do sleep 0.05; n=$((n+1)); done; [ $n -lt 200 ] && echo $x",
        m = s(&meet)
    );
    let exec = format!("x=$1; {rendezvous}");
    let pipe = format!("while read x; do {rendezvous} || exit 1; done");
    for (mode, script, arg) in [("exec", &exec, Some("{}")), ("pipe", &pipe, None)] {
        let _ = std::fs::remove_dir_all(&meet);
        std::fs::create_dir_all(&meet).unwrap();
        let mut a = vec![mode, "--threads", "2", "-q", "--", "sh", "-c", script];
        if let Some(arg) = arg {
            a.extend(["sh", arg]);
        }
        a.extend([":::", "a", "b"]);
        let r = hpcmap_cmd(1, &a);
        assert_eq!(r.code, Some(0), "{mode}: {}", r.stderr);
        assert_eq!(r.stdout, "a\nb\n", "{mode}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// A correct worker that reads ahead on one thread while another works on
/// the item (and answers in order, flushed) owes answers while blocked
/// reading its stdin: that is no stall, and nothing fails.
#[test]
fn a_worker_reading_ahead_on_a_thread_is_not_stalled() {
    let dir = temp_dir("pipe-reader-thread");
    let script = dir.join("threaded.py");
    std::fs::write(
        &script,
        "import sys, threading, queue, time\n\
         q = queue.Queue()\n\
         def work():\n\
         \x20   while True:\n\
         \x20       x = q.get()\n\
         \x20       time.sleep(1.5)\n\
         \x20       print(int(x) * 3, flush=True)\n\
         threading.Thread(target=work, daemon=True).start()\n\
         for line in sys.stdin:\n\
         \x20   q.put(line)\n",
    )
    .unwrap();
    let r = hpcmap_cmd(
        1,
        &[
            "pipe",
            "-q",
            "--",
            "python3",
            "-u",
            s(&script),
            ":::",
            "1",
            "2",
        ],
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(r.stdout, "3\n6\n");
    assert!(leftovers(s(&script)).is_empty());
    let _ = std::fs::remove_dir_all(dir);
}
