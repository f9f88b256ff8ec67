//! Following runs: the progress bar in a real terminal (tmux), progress
//! lines in batch jobs, the status file read while it is rewritten, and
//! timelines checked against the run's own report.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{hpcmap, hpcmap_run, start, temp_dir, wait};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A tmux server of this test's own (its socket named for the process).
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new(name: &str) -> Tmux {
        Tmux {
            socket: format!("hpcmap-test-{}-{name}", std::process::id()),
        }
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux runs (scripts/test.sh installs it)");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn capture(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "job"])
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .arg("kill-server")
            .status();
    }
}

/// The percentages the bar showed in `screen`.
fn bar_percent(screen: &str) -> Option<f64> {
    screen.lines().find_map(|l| {
        let (before, _) = l.split_once("% (")?;
        before.rsplit(' ').next()?.parse().ok()
    })
}

#[test]
fn the_bar_advances_in_a_terminal_and_is_cleared_at_the_end() {
    let dir = temp_dir("bar");
    let done = dir.join("done");
    let tmux = Tmux::new("bar");
    // mpirun's standard error is the terminal; the ranks' is a pipe to it.
    let job = format!(
        "env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
         OMPI_MCA_rmaps_base_oversubscribe=1 timeout 60 mpirun -n 2 {} run spin \
         --items 40000 --micros 100 --schedule dynamic --chunk 200; echo $? > {}; sleep 60",
        hpcmap().display(),
        s(&done)
    );
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "job",
        "-x",
        "160",
        "-y",
        "50",
        &job,
    ]);
    let started = Instant::now();
    let mut seen = Vec::new();
    while !done.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the job did not end"
        );
        if let Some(p) = bar_percent(&tmux.capture()) {
            seen.push(p);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // tmux draws what the job wrote in its own time: read the screen until
    // the report is on it.
    let mut screen = tmux.capture();
    let drawn = Instant::now();
    while !screen.contains("answer:") && drawn.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
        screen = tmux.capture();
    }
    assert_eq!(
        std::fs::read_to_string(&done).unwrap().trim(),
        "0",
        "{screen}"
    );
    seen.dedup();
    assert!(
        seen.len() >= 3 && seen.windows(2).all(|w| w[0] <= w[1]),
        "the bar should advance: {seen:?}"
    );
    assert!(seen.iter().any(|&p| p > 0.0 && p < 100.0), "{seen:?}");
    assert!(screen.contains("answer: 40000 items"), "{screen}");
    assert!(
        bar_percent(&screen).is_none(),
        "the bar was left on screen:\n{screen}"
    );
    assert!(!screen.contains("=>"), "bar remnants:\n{screen}");
    // The report starts on the first line: the bar left no blank line above it.
    assert!(screen.starts_with("workload: spin"), "{screen}");
    let _ = std::fs::remove_dir_all(dir);
}

/// `hpcmap run ARGS` on two ranks with `env` added; its stderr.
fn stderr_with(env: &[(&str, &str)], args: &[&str]) -> String {
    let mut cmd = Command::new("timeout");
    cmd.args(["60", "mpirun", "-n", "2"]);
    for (k, _) in env {
        cmd.args(["-x", k]);
    }
    cmd.arg(hpcmap())
        .arg("run")
        .args(args)
        .envs(env.iter().copied())
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_rmaps_base_oversubscribe", "1");
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn batch_jobs_get_progress_lines_and_pipes_get_none() {
    let job = [
        "spin",
        "--items",
        "12000",
        "--micros",
        "100",
        "--schedule",
        "dynamic",
        "--progress-interval",
        "0.1",
    ];
    let lines = |text: &str| {
        text.lines()
            .filter(|l| l.starts_with("hpcmap: progress "))
            .count()
    };
    let batch = stderr_with(&[("SLURM_JOB_ID", "42")], &job);
    assert!(
        lines(&batch) >= 2,
        "a Slurm job's output file gets periodic lines:\n{batch}"
    );
    assert!(
        batch.contains("/12000 items)") && batch.contains("items/s"),
        "{batch}"
    );
    // The last line, printed as the map ends, says where it ended.
    let last = batch
        .lines()
        .rfind(|l| l.starts_with("hpcmap: progress "))
        .unwrap();
    assert!(last.contains("(12000/12000 items)"), "{batch}");
    let pbs = stderr_with(&[("PBS_JOBID", "7.server")], &job);
    assert!(lines(&pbs) >= 2, "{pbs}");
    // Not a terminal, not a batch job: nothing but the report.
    assert_eq!(lines(&stderr_with(&[], &job)), 0);
    // --quiet silences the automatic choice; an explicit mode wins over it.
    let mut quiet = job.to_vec();
    quiet.push("--quiet");
    assert_eq!(lines(&stderr_with(&[("SLURM_JOB_ID", "42")], &quiet)), 0);
    quiet.push("--progress=lines");
    assert!(lines(&stderr_with(&[], &quiet)) >= 2);
}

/// Reads the status file until the job ends; every read must parse.
fn follow_status(path: &Path, child: &mut std::process::Child) -> (Vec<Value>, Option<i32>) {
    let mut docs = Vec::new();
    let started = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            let doc: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("a half-written status file ({e}):\n{text}"));
            docs.push(doc);
        }
        if let Some(status) = child.try_wait().unwrap() {
            let text = std::fs::read_to_string(path).unwrap();
            docs.push(serde_json::from_str(&text).unwrap());
            return (docs, status.code());
        }
        assert!(started.elapsed() < Duration::from_secs(60), "hang");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn the_status_file_is_whole_at_every_read_and_ends_in_a_final_state() {
    let dir = temp_dir("status");
    let status = dir.join("status.json");
    let journal = dir.join("journal");
    let args: Vec<String> = [
        "run",
        "spin",
        "--items",
        "80000",
        "--micros",
        "100",
        "--schedule",
        "dynamic",
        "--status",
        s(&status),
        "--journal",
        s(&journal),
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    let mut child = start(3, &args);
    let (docs, code) = follow_status(&status, &mut child);
    assert_eq!(code, Some(0));
    assert!(docs.len() > 20, "read {} times", docs.len());
    let done: Vec<u64> = docs.iter().map(|d| d["done"].as_u64().unwrap()).collect();
    assert!(
        done.windows(2).all(|w| w[0] <= w[1]),
        "done must never go back: {done:?}"
    );
    assert!(
        docs.iter()
            .any(|d| d["state"] == "running" && d["done"].as_u64() > Some(0))
    );
    let last = docs.last().unwrap();
    assert_eq!(last["state"], "done", "{last}");
    assert_eq!(
        (last["done"].as_u64(), last["total"].as_u64()),
        (Some(80000), Some(80000))
    );
    assert_eq!(last["journal"]["items"].as_u64(), Some(80000), "{last}");
    let ranks = last["ranks"].as_array().unwrap();
    assert_eq!(ranks.len(), 3);
    assert_eq!(
        ranks
            .iter()
            .map(|r| r["items"].as_u64().unwrap())
            .sum::<u64>(),
        80000
    );
    assert!(ranks.iter().all(|r| r["idle_s"].as_f64().unwrap() >= 0.0));

    // Stopped by its deadline: "interrupted"; a failed item: "failed".
    let ended = |extra: &[&str]| -> (Value, Option<i32>) {
        let mut all: Vec<String> = ["run", "spin", "--micros", "100", "--status", s(&status)]
            .iter()
            .map(|a| a.to_string())
            .collect();
        all.extend(extra.iter().map(|a| a.to_string()));
        let mut child = start(2, &all);
        let code = wait(&mut child, Duration::from_secs(60));
        let doc = serde_json::from_str(&std::fs::read_to_string(&status).unwrap()).unwrap();
        (doc, code)
    };
    let (doc, code) = ended(&[
        "--items",
        "60000",
        "--schedule",
        "dynamic",
        "--deadline",
        "+2",
    ]);
    assert_eq!(
        (doc["state"].as_str(), code),
        (Some("interrupted"), Some(75)),
        "{doc}"
    );
    assert!(doc["done"].as_u64().unwrap() < 60000);
    let (doc, code) = ended(&["--items", "3000", "--fail-at", "1500"]);
    assert_eq!(
        (doc["state"].as_str(), code),
        (Some("failed"), Some(3)),
        "{doc}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// The size of a PNG from its header.
fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is not a PNG",
        path.display()
    );
    let be = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    (be(16), be(20))
}

#[test]
fn timelines_account_for_every_ranks_compute_and_items() {
    let dir = temp_dir("timeline");
    for (ranks, schedule, threads) in [
        (1, "static", "1"),
        (3, "static", "1"),
        (3, "dynamic", "1"),
        (2, "guided", "2"),
        (2, "dynamic", "2"),
    ] {
        let case = format!("{ranks} ranks, {schedule}, {threads} threads");
        let json = dir.join(format!("t{ranks}{schedule}{threads}.json"));
        let record = dir.join(format!("r{ranks}{schedule}{threads}.jsonl"));
        let run = hpcmap_run(
            ranks,
            &[
                "spin",
                "--items",
                "4000",
                "--micros",
                "20",
                "--skew",
                "3",
                "--schedule",
                schedule,
                "--threads",
                threads,
                "--timeline",
                s(&json),
                "--json",
                s(&record),
                "-q",
            ],
        )
        .ok();
        assert!(run.stdout.contains("answer: 4000 items"), "{case}");
        let record: Value = serde_json::from_str(
            std::fs::read_to_string(&record)
                .unwrap()
                .lines()
                .next()
                .unwrap(),
        )
        .unwrap();
        let trace: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap())
            .unwrap_or_else(|e| panic!("{case}: the timeline is not JSON: {e}"));
        let events = trace["traceEvents"]
            .as_array()
            .expect("Chrome trace events");
        let spans: Vec<&Value> = events.iter().filter(|e| e["ph"] == "X").collect();
        assert!(!spans.is_empty(), "{case}");
        for e in &spans {
            assert!(
                e["ts"].as_f64().unwrap() >= 0.0 && e["dur"].as_f64().unwrap() >= 0.0,
                "{e}"
            );
            assert!(
                [
                    "compute",
                    "serialize",
                    "send",
                    "receive",
                    "assemble",
                    "wait"
                ]
                .contains(&e["name"].as_str().unwrap())
            );
            assert!(
                e["args"]["first"].is_u64() && e["args"]["count"].is_u64(),
                "{e}"
            );
        }
        let names = |name: &str| {
            events
                .iter()
                .filter(|e| e["ph"] == "M" && e["name"] == name)
                .count()
        };
        assert_eq!(names("process_name"), ranks, "{case}: one process per rank");
        assert!(names("thread_name") >= ranks, "{case}");
        let per_rank = record["per_rank"].as_array().unwrap();
        let mut items = 0;
        for (rank, r) in per_rank.iter().enumerate() {
            // Compute spans on the rank's chunk lanes (0: MPI thread, 1: local worker).
            let chunk_spans = spans.iter().filter(|e| {
                e["pid"].as_u64() == Some(rank as u64)
                    && e["tid"].as_u64().unwrap() <= 1
                    && e["name"] == "compute"
            });
            let (us, count) = chunk_spans.fold((0.0, 0), |(us, n), e| {
                (
                    us + e["dur"].as_f64().unwrap(),
                    n + e["args"]["count"].as_u64().unwrap(),
                )
            });
            let reported = r["compute_s"].as_f64().unwrap();
            assert!(
                (us * 1e-6 - reported).abs() <= 0.01 * reported,
                "{case}: rank {rank}: compute spans {} s, report {reported} s",
                us * 1e-6
            );
            items += count;
        }
        assert_eq!(items, 4000, "{case}: every item in one compute span");
        if threads == "2" {
            assert!(
                spans.iter().any(|e| e["tid"].as_u64().unwrap() >= 2),
                "{case}: thread lanes"
            );
        }
    }

    // Pictures: drawn directly, and again from the JSON, of the documented size.
    let png = dir.join("t.png");
    let svg = dir.join("t.svg");
    for out in [&png, &svg] {
        hpcmap_run(
            2,
            &[
                "spin",
                "--items",
                "2000",
                "--schedule",
                "dynamic",
                "--timeline",
                s(out),
                "-q",
            ],
        )
        .ok();
    }
    // 2 ranks, one lane each: 84 px of title and legend, 22 per row, 56 of axis.
    assert_eq!(png_size(&png), (1200, 84 + 2 * 22 + 56));
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(
        text.starts_with("<svg") && text.trim_end().ends_with("</svg>"),
        "{text}"
    );
    assert!(
        text.contains("rank 1")
            && text.contains("compute")
            && text.contains("seconds since the map started")
    );
    let again = dir.join("again.png");
    let json = dir.join("t3dynamic1.json");
    let out = Command::new(hpcmap())
        .args(["report", s(&json), "--plot", s(&again)])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(png_size(&again), (1200, 84 + 3 * 22 + 56));
    // A timeline with no picture asked for is a clear error.
    let out = Command::new(hpcmap())
        .args(["report", s(&json)])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("add --plot"));
    // A timeline of an unknown kind is refused before any work.
    let bad = hpcmap_run(2, &["spin", "--timeline", s(&dir.join("t.pdf"))]);
    assert_eq!(bad.code, Some(2), "{}", bad.stderr);
    assert!(
        bad.stderr
            .contains(".json (Chrome trace events), .svg or .png"),
        "{}",
        bad.stderr
    );
    let _ = std::fs::remove_dir_all(dir);
}
