//! Launching the real release binary under real `mpirun`, with a timeout.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// No MPI test may take longer than this; `timeout` kills mpirun and its ranks.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// The `hpcmap` binary cargo built for this test run, or `$HPCMAP_TEST_BIN`
/// (to see a test fail on an older binary).
pub fn hpcmap() -> PathBuf {
    std::env::var_os("HPCMAP_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_hpcmap")))
}

/// A built example next to the binary (`cargo build --release --examples` first).
pub fn example(name: &str) -> PathBuf {
    let path = hpcmap()
        .parent()
        .expect("binary has a directory")
        .join("examples")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: build the examples first (scripts/test.sh does)",
        path.display()
    );
    path
}

/// A fresh directory for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "hpcmap-test-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// What one job did.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stdout_bytes: Vec<u8>,
    pub stderr: String,
}

impl Run {
    /// The value of the first stdout line starting with `key: `.
    pub fn field(&self, key: &str) -> String {
        let prefix = format!("{key}: ");
        self.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| {
                panic!(
                    "no '{key}:' line in output:\n{}\n{}",
                    self.stdout, self.stderr
                )
            })
            .to_string()
    }

    /// Asserts success and returns self.
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code,
            Some(0),
            "job failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Runs `program args` on `ranks` ranks under mpirun (oversubscribed, as root if need be).
pub fn mpirun(ranks: usize, program: &Path, args: &[&str]) -> Run {
    let mpirun = which("mpirun").expect("mpirun not found: scripts/test.sh installs OpenMPI");
    let mut cmd = Command::new("timeout");
    cmd.arg("-k")
        .arg("5")
        .arg(TIMEOUT.as_secs().to_string())
        .arg(mpirun)
        .arg("-n")
        .arg(ranks.to_string())
        .arg(program)
        .args(args)
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_rmaps_base_oversubscribe", "1")
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null());
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("cannot start timeout/mpirun");
    let run = Run {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stdout_bytes: stdout,
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    };
    assert_ne!(
        run.code,
        Some(124),
        "timed out after {TIMEOUT:?}: a hang\nstdout:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
    run
}

/// Runs `hpcmap run <args>` on `ranks` ranks.
pub fn hpcmap_run(ranks: usize, args: &[&str]) -> Run {
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    mpirun(ranks, &hpcmap(), &all)
}

/// Runs a job with `--json` and returns its record.
pub fn record(ranks: usize, args: &[&str]) -> serde_json::Value {
    let dir = temp_dir("record");
    let json = dir.join("run.jsonl");
    let mut all = args.to_vec();
    let json_arg = json.to_str().unwrap().to_string();
    all.extend_from_slice(&["--quiet", "--json", &json_arg]);
    hpcmap_run(ranks, &all).ok();
    let text = std::fs::read_to_string(&json).unwrap();
    let mut lines = text.lines();
    let record = serde_json::from_str(lines.next().expect("one record")).unwrap();
    assert!(lines.next().is_none(), "exactly one record per run");
    let _ = std::fs::remove_dir_all(dir);
    record
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(program))
            .find(|p| p.is_file())
    })
}

/// Starts `hpcmap ARGS` (e.g. `run ...`) on `ranks` ranks in the
/// background, stdout discarded, stderr piped.
pub fn start(ranks: usize, args: &[String]) -> Child {
    Command::new("mpirun")
        .arg("-n")
        .arg(ranks.to_string())
        .arg(hpcmap())
        .args(args)
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_rmaps_base_oversubscribe", "1")
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mpirun starts")
}

/// Waits for `child` at most `limit`; a job that does not end is a hang.
pub fn wait(child: &mut Child, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("job did not end within {limit:?} after the kill: a hang");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Pids of the ranks (not mpirun) whose command line mentions `marker`.
pub fn ranks_of(marker: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline);
        let program = cmdline.split('\0').next().unwrap_or("");
        if cmdline.contains(marker) && program.ends_with("/hpcmap") {
            pids.push(pid);
        }
    }
    pids
}

pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// Waits up to `limit` for `path` to exist (a gate a test's command opens):
/// a test acts on what a job did, not on how long it usually takes.
pub fn wait_for_file(path: &Path, limit: Duration) {
    let deadline = Instant::now() + limit;
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} did not appear within {limit:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits up to 30 s until `ranks` ranks of the job whose command line
/// mentions `marker` catch SIGUSR1 (hpcmap's walltime handler, installed
/// before MPI starts): from then on a forwarded USR1 winds the job down
/// instead of killing a rank that is still loading.
pub fn wait_for_handlers(marker: &str, ranks: usize) {
    let catches_usr1 = |pid: &u32| {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("SigCgt:"))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .is_some_and(|mask| mask & (1 << (10 - 1)) != 0)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while ranks_of(marker).iter().filter(|p| catches_usr1(p)).count() < ranks {
        assert!(
            Instant::now() < deadline,
            "{ranks} ranks of {marker} did not start within 30 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Ends whatever is left of a killed job (ranks orphaned by a dead mpirun).
pub fn reap(marker: &str) {
    for _ in 0..50 {
        let left = ranks_of(marker);
        if left.is_empty() {
            return;
        }
        left.iter().for_each(|&p| signal(p, "KILL"));
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("ranks of {marker} would not die");
}

/// The pid of rank `rank` of the job whose command line mentions `marker`,
/// found by the rank number mpirun put in its environment; waits up to 10 s
/// for it to start.
pub fn rank_pid(marker: &str, rank: usize) -> u32 {
    let wanted = format!("OMPI_COMM_WORLD_RANK={rank}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        for pid in ranks_of(marker) {
            let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            if env.split(|&b| b == 0).any(|v| v == wanted.as_bytes()) {
                return pid;
            }
        }
        assert!(
            Instant::now() < deadline,
            "rank {rank} of {marker} never started"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Processes (other than this test) whose command line mentions `marker`,
/// e.g. a test's own directory: what a job must not leave behind. Waits up
/// to 5 s for them to go.
pub fn leftovers(marker: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let me = std::process::id().to_string();
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == me || name.parse::<u32>().is_err() {
                continue;
            }
            let Ok(cmdline) = std::fs::read(format!("/proc/{name}/cmdline")) else {
                continue;
            };
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(marker) {
                found.push(format!("{name}: {cmdline}"));
            }
        }
        if found.is_empty() || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
