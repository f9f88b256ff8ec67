//! What an adversarial review found: no silent partial answers, no
//! clobbered files, bounded inputs, and the conventions users rely on. Each
//! test reproduces one finding under real mpirun (a test here fails on a
//! binary without the fix: `HPCMAP_TEST_BIN=old/hpcmap cargo test`).

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::util::{Run, hpcmap, hpcmap_run, rank_pid, reap, record, signal, start, temp_dir, wait};

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn is_root() -> bool {
    // SAFETY-free: read our own uid from /proc.
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
}

/// Files in `dir` whose name says they are a temporary of ours.
fn temporaries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.to_string_lossy().contains("hpcmap-partial"))
                .collect()
        })
        .unwrap_or_default()
}

const SPIN: [&str; 6] = ["spin", "--items", "6000", "--micros", "300", "--skew"];

#[test]
fn a_signal_to_one_worker_ends_the_run_resumable_never_partial() {
    let dir = temp_dir("worker-signal");
    let reference = dir.join("reference.jsonl");
    let r = hpcmap_run(
        2,
        &[&SPIN[..], &["1", "--results", reference.to_str().unwrap()]].concat(),
    )
    .ok();
    let expected = (r.field("answer"), r.field("checksum"));
    for schedule in ["dynamic", "guided", "static"] {
        let journal = dir.join(format!("j-{schedule}"));
        let results = dir.join(format!("r-{schedule}.jsonl"));
        let mut all = args(&["run"]);
        all.extend(args(&SPIN));
        all.extend(args(&["1", "--chunk", "7", "--schedule", schedule]));
        all.extend(["--journal".into(), journal.display().to_string()]);
        all.extend(["--results".into(), results.display().to_string()]);
        let marker = journal.display().to_string();
        let mut job = start(2, &all);
        let worker = rank_pid(&marker, 1);
        // Once both ranks take the signal (a loading rank would die of
        // it), somewhere in the map.
        crate::util::wait_for_handlers(&marker, 2);
        std::thread::sleep(Duration::from_millis(400));
        signal(worker, "USR1");
        let code = wait(&mut job, Duration::from_secs(30));
        reap(&marker);
        assert_eq!(
            code,
            Some(75),
            "{schedule}: a worker's signal is an interruption"
        );
        assert!(!results.exists(), "{schedule}: no partial --results");
        let mut resume: Vec<&str> = all[1..].iter().map(String::as_str).collect();
        resume.push("--resume");
        let r = hpcmap_run(2, &resume).ok();
        assert_eq!(
            (r.field("answer"), r.field("checksum")),
            expected,
            "{schedule}"
        );
        assert_eq!(
            std::fs::read(&results).unwrap(),
            std::fs::read(&reference).unwrap()
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// A character device like `/dev/null` or `/dev/full`, made in `dir` (as
/// root) so that a binary that renames over devices cannot break the real ones.
fn device(dir: &Path, name: &str, minor: u32) -> PathBuf {
    if !is_root() {
        return PathBuf::from(format!("/dev/{name}"));
    }
    let path = dir.join(name);
    let made = Command::new("mknod")
        .arg(&path)
        .args(["c", "1", &minor.to_string()])
        .status()
        .unwrap();
    assert!(made.success(), "mknod {}", path.display());
    path
}

#[test]
fn devices_are_written_through_and_symlinks_kept() {
    let dir = temp_dir("devices");
    let null = device(&dir, "null", 3);
    let full = device(&dir, "full", 7);
    hpcmap_run(
        2,
        &[
            "square",
            "--items",
            "1000",
            "-q",
            "--results",
            null.to_str().unwrap(),
        ],
    )
    .ok();
    assert!(
        std::fs::metadata(&null)
            .unwrap()
            .file_type()
            .is_char_device()
    );
    let r = hpcmap_run(
        2,
        &[
            "square",
            "--items",
            "1000",
            "-q",
            "--results",
            full.to_str().unwrap(),
        ],
    );
    assert_eq!(
        r.code,
        Some(1),
        "a failed write to a device is an error: {}",
        r.stderr
    );
    assert!(r.stderr.contains("No space left on device"), "{}", r.stderr);
    assert!(
        std::fs::metadata(&full)
            .unwrap()
            .file_type()
            .is_char_device()
    );

    let target = dir.join("target.jsonl");
    std::fs::write(&target, "old").unwrap();
    let link = dir.join("link.jsonl");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    hpcmap_run(
        2,
        &[
            "square",
            "--items",
            "3",
            "-q",
            "--results",
            link.to_str().unwrap(),
        ],
    )
    .ok();
    assert!(link.is_symlink(), "the symlink is kept");
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "[0,1]\n[1,4]\n[2,9]\n"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn concurrent_runs_never_mix_or_delete_each_others_outputs() {
    let dir = temp_dir("concurrent");
    let results = dir.join("r.jsonl");
    let reference = dir.join("reference.jsonl");
    let work = ["spin", "--items", "3000", "--micros", "200"];
    let mut reference_args = work.to_vec();
    reference_args.extend(["-q", "--results", reference.to_str().unwrap()]);
    hpcmap_run(2, &reference_args).ok();
    let expected = std::fs::read(&reference).unwrap();

    // Two runs writing one --results at once: one run's whole output.
    let mut all = args(&["run"]);
    all.extend(args(&work));
    all.extend([
        "-q".into(),
        "--results".into(),
        results.display().to_string(),
    ]);
    let (mut a, mut b) = (start(2, &all), start(2, &all));
    assert_eq!(wait(&mut a, Duration::from_secs(30)), Some(0));
    assert_eq!(wait(&mut b, Duration::from_secs(30)), Some(0));
    assert_eq!(std::fs::read(&results).unwrap(), expected);

    // A second run refused because the journal is in use leaves the first
    // alone. The first cannot end before the test says so: its commands
    // wait for a file (no race with the second's start-up; 30 s at most,
    // so a failed test leaves nothing running).
    std::fs::remove_file(&results).unwrap();
    let go = dir.join("go");
    let journal = dir.join("j").display().to_string();
    let gate = format!(
        "n=0; while [ ! -e {} ] && [ $n -lt 1500 ]; do sleep 0.02; n=$((n+1)); done; echo $1",
        go.display()
    );
    let results_arg = results.display().to_string();
    let mut gated: Vec<&str> = vec![
        "exec",
        "-q",
        "--journal",
        &journal,
        "--results",
        &results_arg,
        "--",
        "sh",
        "-c",
        &gate,
        "sh",
        "{}",
        ":::",
    ];
    let items: Vec<String> = (1..=20).map(|k| k.to_string()).collect();
    gated.extend(items.iter().map(String::as_str));
    let mut first = start(2, &args(&gated));
    // Running once its journal exists (created under its lock).
    let deadline = Instant::now() + Duration::from_secs(20);
    while !Path::new(&journal).join("journal.hpcmap").exists() {
        assert!(
            Instant::now() < deadline,
            "the first run never opened its journal"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let r = crate::util::mpirun(2, &hpcmap(), &gated);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("in use"), "{}", r.stderr);
    std::fs::write(&go, "").unwrap();
    assert_eq!(
        wait(&mut first, Duration::from_secs(30)),
        Some(0),
        "the first run finishes"
    );
    let expected: String = items.iter().map(|k| format!("{k}\n")).collect();
    assert_eq!(std::fs::read_to_string(&results).unwrap(), expected);
    assert!(temporaries(&dir).is_empty());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn one_file_in_two_roles_is_a_usage_error_before_any_work() {
    let dir = temp_dir("roles");
    let text = dir.join("t.txt");
    std::fs::write(&text, "some words here\n").unwrap();
    let x = dir.join("x.json").display().to_string();
    let png = dir.join("o.png").display().to_string();
    let t = text.display().to_string();
    for case in [
        vec!["square", "--results", &x, "--json", &x],
        vec![
            "mandelbrot",
            "--height",
            "8",
            "--json",
            &png,
            "--output",
            &png,
        ],
        vec![
            "mandelbrot",
            "--height",
            "8",
            "--results",
            &png,
            "--output",
            &png,
        ],
        vec!["wordcount", "--input", &t, "--results", &t],
    ] {
        let r = hpcmap_run(2, &case);
        assert_eq!(r.code, Some(2), "{case:?}: {}", r.stderr);
        assert!(r.stderr.contains("name the same file"), "{}", r.stderr);
    }
    assert_eq!(std::fs::read_to_string(&text).unwrap(), "some words here\n");
    assert!(!dir.join("x.json").exists() && !dir.join("o.png").exists());
    // exec --files: a matched file that is also an output, found once
    // globbed on the root. Four ranks: the others must end with the root's
    // code 2, not race it to the launcher with a code of their own.
    let glob = format!("{}/*.txt", dir.display());
    let r = crate::util::mpirun(
        4,
        &hpcmap(),
        &["exec", "--files", &glob, "--results", &t, "--", "cat", "{}"],
    );
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("also --results"), "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(&text).unwrap(), "some words here\n");
    let _ = std::fs::remove_dir_all(dir);
}

/// A small tmpfs for full-disk tests, unmounted on drop; `None` unless root.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(dir: &Path, size: &str) -> Option<SmallDisk> {
        if !is_root() {
            eprintln!("skipped: a full disk needs root (mount -t tmpfs)");
            return None;
        }
        let path = dir.join("small");
        std::fs::create_dir_all(&path).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(SmallDisk(path))
    }

    /// Takes every free page.
    fn fill(&self) {
        let filler = self.0.join("filler");
        std::fs::write(&filler, vec![b'x'; free_bytes(&self.0) as usize]).ok();
    }
}

/// Free bytes on the file system of `path` (from `df`).
fn free_bytes(path: &Path) -> u64 {
    let out = Command::new("df")
        .args(["-B1", "--output=avail"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0)
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_fails_early_leaves_no_temporaries_and_no_torn_records() {
    let dir = temp_dir("full-disk");
    let Some(disk) = SmallDisk::mount(&dir, "1m") else {
        return;
    };
    // --results fills the disk early: the run stops there, not after all the work.
    let results = disk.0.join("r.jsonl");
    let r = hpcmap_run(
        2,
        &[
            "spin",
            "--items",
            "400000",
            "--micros",
            "0",
            "--schedule",
            "dynamic",
            "--results",
            results.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("No space left on device"), "{}", r.stderr);
    let stopped: u64 = r
        .stderr
        .split("stopped after ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("says where it stopped: {}", r.stderr));
    assert!(stopped < 400_000);
    assert!(
        temporaries(&disk.0).is_empty(),
        "{:?}",
        temporaries(&disk.0)
    );

    // The journal fills the disk: a clean error, the output's temporary removed.
    let out = dir.join("out.jsonl");
    let journal = disk.0.join("j");
    let r = hpcmap_run(
        2,
        &[
            "spin",
            "--items",
            "400000",
            "--micros",
            "0",
            "--schedule",
            "dynamic",
            "--journal",
            journal.to_str().unwrap(),
            "--results",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("cannot use journal"), "{}", r.stderr);
    assert_eq!(
        r.stderr.matches("No space left on device").count(),
        1,
        "{}",
        r.stderr
    );
    assert!(temporaries(&dir).is_empty() && !out.exists());
    std::fs::remove_dir_all(&journal).unwrap();

    // A record cut short by a full disk never merges with the next one. The
    // file's one page has room for part of a record (blank lines are no
    // records); the disk has no page to spare.
    let json = disk.0.join("runs.jsonl");
    std::fs::write(&json, "\n".repeat(3800)).unwrap();
    disk.fill();
    let json_arg = json.to_str().unwrap();
    let r = hpcmap_run(2, &["square", "--items", "100", "-q", "--json", json_arg]);
    assert_eq!(r.code, Some(1), "the short write is an error: {}", r.stderr);
    let _ = std::fs::remove_file(disk.0.join("filler"));
    hpcmap_run(2, &["square", "--items", "100", "-q", "--json", json_arg]).ok();
    let report = Command::new(hpcmap())
        .args(["report", json_arg])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&report.stdout),
        String::from_utf8_lossy(&report.stderr),
    );
    assert!(report.status.success(), "{stderr}");
    assert!(
        stderr.contains("runs.jsonl:3801: skipped"),
        "the torn line is named: {stderr}"
    );
    assert!(
        stdout.contains("square, 100 items"),
        "the next record is whole: {stdout}"
    );
    drop(disk);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_roots_threads_all_work_under_every_schedule() {
    for schedule in ["static", "dynamic", "guided"] {
        let r = record(
            1,
            &[
                "spin",
                "--items",
                "400",
                "--micros",
                "300",
                "--threads",
                "2",
                "--schedule",
                schedule,
            ],
        );
        let threads: Vec<u64> = r["per_rank"][0]["thread_items"]
            .as_array()
            .unwrap_or_else(|| panic!("per-thread counts: {r}"))
            .iter()
            .map(|n| n.as_u64().unwrap())
            .collect();
        assert_eq!(threads.len(), 2, "{schedule}: {threads:?}");
        assert_eq!(threads.iter().sum::<u64>(), 400);
        // Two threads may share one core (mpirun binds a small job's
        // ranks): each maps, whatever share the kernel gives it.
        assert!(
            threads.iter().all(|&n| n > 0),
            "{schedule}: both threads map: {threads:?}"
        );
    }
}

#[test]
fn values_that_cannot_work_are_refused_cleanly() {
    let r = hpcmap_run(2, &["square", "--items", "4294967295", "-q"]);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("over MPI's 2 GiB limit"), "{}", r.stderr);
    for case in [
        &["spin", "--items", "18446744073709551615"][..],
        &["spin", "--on-error", "retry=4294967295"],
    ] {
        let r = hpcmap_run(2, case);
        assert_eq!(r.code, Some(2), "{case:?}: {}", r.stderr);
    }
    let r = hpcmap_run(2, &["wordcount", "--input", "/dev/zero"]);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("looks binary"), "{}", r.stderr);
}

#[test]
fn resuming_maps_skipped_items_again_under_the_new_policy() {
    let dir = temp_dir("resume-skipped");
    let journal = dir.join("j");
    let j = journal.to_str().unwrap();
    // Item 42 fails once per process: skipped in the first run.
    let base = [
        "spin",
        "--items",
        "100",
        "--micros",
        "5",
        "--fail-at",
        "42",
        "--fail-times",
        "1",
        "--journal",
        j,
    ];
    let run = |extra: &[&str]| -> Run {
        let mut a = base.to_vec();
        a.extend_from_slice(extra);
        hpcmap_run(2, &a)
    };
    let r = run(&["--on-error", "skip"]);
    assert_eq!(r.code, Some(4), "{}", r.stderr);
    // Resumed under abort: item 42 is mapped again (not replayed as skipped) and fails.
    let r = run(&["--on-error", "abort", "--resume"]);
    assert_eq!(r.code, Some(3), "{}", r.stderr);
    assert!(r.stderr.contains("item 42"), "{}", r.stderr);
    // Resumed with a retry: it succeeds, and the answer covers all 100 items.
    let r = run(&["--on-error", "retry=1", "--resume"]).ok();
    assert!(r.stdout.contains("answer: 100 items"), "{}", r.stdout);
    assert!(!r.stdout.contains("skipped:"), "{}", r.stdout);
    let _ = std::fs::remove_dir_all(dir);
}

/// Where a starting rank is relative to MPI, read from `/proc/PID/status`
/// and `/proc/PID/stat`.
#[derive(Debug, PartialEq)]
enum Startup {
    /// Not yet handling SIGUSR1.
    Early,
    /// Handling SIGUSR1, one thread, almost no CPU used: MPI has not started.
    Window,
    /// MPI's threads are up (or the rank has computed): the window is gone.
    Late,
}

fn startup(pid: u32) -> Option<Startup> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
    };
    let caught = u64::from_str_radix(&field("SigCgt:")?, 16).ok()?;
    let threads: u32 = field("Threads:")?.parse().ok()?;
    // utime + stime in clock ticks (fields 14 and 15, after the command's
    // closing parenthesis): a rank that has mapped its share of spin has
    // used hundreds of milliseconds; one that has not started MPI, almost none.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let ticks: u64 = after
        .split(' ')
        .skip(11)
        .take(2)
        .filter_map(|t| t.parse::<u64>().ok())
        .sum();
    Some(if threads > 1 || ticks > 5 {
        Startup::Late
    } else if caught & (1 << (10 - 1)) != 0 {
        Startup::Window
    } else {
        Startup::Early
    })
}

/// Rank 0's pid as soon as it exists (polled without sleeping: the window
/// between its signal handlers and MPI's start lasts a few milliseconds).
fn first_sight_of_rank0(marker: &str) -> Option<u32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        for pid in crate::util::ranks_of(marker) {
            let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            if env
                .split(|&b| b == 0)
                .any(|v| v == b"OMPI_COMM_WORLD_RANK=0")
            {
                return Some(pid);
            }
        }
        std::thread::yield_now();
    }
    None
}

#[test]
fn a_walltime_signal_while_mpi_starts_is_not_fatal() {
    let dir = temp_dir("early-signal");
    // The window is short and this test may be starved by others: an
    // attempt that sees MPI up before it could signal starts again.
    for attempt in 1..=20 {
        let journal = dir.join(format!("j{attempt}"));
        let marker = journal.display().to_string();
        let all = args(&[
            "run",
            "spin",
            "--items",
            "2000",
            "--micros",
            "300",
            "--schedule",
            "dynamic",
            "--journal",
            &marker,
        ]);
        let mut job = start(2, &all);
        let signalled = first_sight_of_rank0(&marker).is_some_and(|pid| {
            loop {
                match startup(pid) {
                    Some(Startup::Early) => std::thread::yield_now(),
                    Some(Startup::Window) => {
                        signal(pid, "USR1");
                        break true;
                    }
                    Some(Startup::Late) | None => break false,
                }
            }
        });
        let code = wait(&mut job, Duration::from_secs(30));
        reap(&marker);
        if signalled {
            assert_eq!(code, Some(75), "an early signal interrupts, resumably");
            let _ = std::fs::remove_dir_all(dir);
            return;
        }
        eprintln!("attempt {attempt}: MPI was up before the signal could be sent; again");
    }
    panic!("never caught rank 0 between its signal handlers and MPI's start");
}

#[test]
fn help_version_and_messages_say_it_once_and_right() {
    let help = Command::new(hpcmap())
        .args(["run", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for code in ["  0 ", "  1 ", "  2 ", "  3 ", "  4 ", "  75 "] {
        assert!(help.contains(code), "exit code{code}listed: {help}");
    }
    assert!(
        !help.contains("RUST_LOG=info"),
        "no false claim about progress"
    );
    let version = Command::new(hpcmap()).arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&version.stdout);
    assert!(
        version.contains("commit ") && version.contains("MPI library: "),
        "{version}"
    );

    let dir = temp_dir("messages");
    let file = dir.join("plain");
    std::fs::write(&file, "").unwrap();
    let r = hpcmap_run(2, &["square", "--journal", file.to_str().unwrap()]);
    assert_eq!(r.code, Some(1));
    assert!(
        r.stderr.contains("is a file, not a directory"),
        "{}",
        r.stderr
    );
    let under_file = file.join("j");
    let r = hpcmap_run(2, &["square", "--journal", under_file.to_str().unwrap()]);
    assert_eq!(r.code, Some(1));
    assert_eq!(
        r.stderr.matches("os error").count(),
        1,
        "the OS error once: {}",
        r.stderr
    );
    let _ = std::fs::remove_dir_all(dir);
}
