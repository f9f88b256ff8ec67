//! `--deadline TIME|+DURATION|auto`: finish what can be finished before the
//! allocation ends, journal it, and exit 75 (resumable) well before the
//! scheduler's kill, instead of racing its SIGTERM.
//!
//! `auto` asks the scheduler how long the job has left: Slurm's
//! `scontrol show job` (TimeLimit - RunTime), PBS's `qstat -f`
//! (Resource_List.walltime - resources_used.walltime). Outside a batch job,
//! or when the scheduler cannot say, there is no deadline (with a warning).
//!
//! The map stops handing out work that its measured cost per item says
//! cannot finish before the deadline minus a grace (2% of the time left, 1
//! to 30 s: time to collect, journal and exit); past that, work in hand is
//! abandoned and mapped again on resume.

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// When the map must end.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Deadline {
    /// The allocation's end, asked from the scheduler.
    Auto,
    /// Seconds since the epoch.
    At(f64),
    /// This long after the run starts.
    In(Duration),
}

/// Parses `--deadline`: `auto`, `+DURATION` (`+90m`, `+2h`, `+3600`),
/// `@EPOCH` seconds, or `YYYY-MM-DDTHH:MM[:SS]` in local time.
///
/// # Errors
/// A usage message.
pub fn parse(s: &str) -> Result<Deadline, String> {
    let err =
        || format!("expected auto, +DURATION (+90m), @EPOCH or YYYY-MM-DDTHH:MM[:SS], got '{s}'");
    if s == "auto" {
        return Ok(Deadline::Auto);
    }
    if let Some(d) = s.strip_prefix('+') {
        return super::args::parse_duration(d)
            .map(Deadline::In)
            .map_err(|_| err());
    }
    if let Some(e) = s.strip_prefix('@') {
        return e
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .map(Deadline::At)
            .ok_or_else(err);
    }
    local_time(s).map(Deadline::At).ok_or_else(err)
}

/// `YYYY-MM-DDTHH:MM[:SS]` in local time, as seconds since the epoch.
fn local_time(s: &str) -> Option<f64> {
    let (date, time) = s.split_once('T')?;
    let d: Vec<i32> = date
        .split('-')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let t: Vec<i32> = time
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    if d.len() != 3 || !(2..=3).contains(&t.len()) {
        return None;
    }
    // SAFETY: mktime reads and normalises a tm we own.
    #[allow(unsafe_code)]
    let epoch = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        tm.tm_year = d[0] - 1900;
        tm.tm_mon = d[1] - 1;
        tm.tm_mday = d[2];
        tm.tm_hour = t[0];
        tm.tm_min = t[1];
        tm.tm_sec = t.get(2).copied().unwrap_or(0);
        tm.tm_isdst = -1;
        libc::mktime(&mut tm)
    };
    (epoch != -1).then_some(epoch as f64)
}

/// `[D-]HH:MM:SS` (or `MM:SS`) as seconds: the schedulers' durations.
fn clock_duration(s: &str) -> Option<f64> {
    let (days, rest) = match s.split_once('-') {
        Some((d, r)) => (d.parse::<f64>().ok()?, r),
        None => (0.0, s),
    };
    let parts: Vec<f64> = rest
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let secs = match parts[..] {
        [h, m, s] => h * 3600.0 + m * 60.0 + s,
        [m, s] => m * 60.0 + s,
        [s] => s,
        _ => return None,
    };
    Some(days * 86400.0 + secs)
}

/// The value of `key=` in `scontrol`-style `key=value` words.
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

/// Seconds the current batch job has left, if the scheduler says.
fn time_left() -> Result<f64, String> {
    let output = |cmd: &mut Command| -> Result<String, String> {
        let out = cmd.output().map_err(|e| format!("{e}"))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    if let Ok(job) = std::env::var("SLURM_JOB_ID") {
        if let Some(end) = std::env::var("SLURM_JOB_END_TIME")
            .ok()
            .and_then(|e| e.parse::<f64>().ok())
        {
            return Ok(end - now());
        }
        let text = output(Command::new("scontrol").args(["-o", "show", "job", &job]))
            .map_err(|e| format!("scontrol: {e}"))?;
        // An array's scontrol lists every task: take this job's line.
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("JobId={job} ")))
            .unwrap_or(text.lines().next().unwrap_or(""));
        let limit = field(line, "TimeLimit").and_then(clock_duration);
        let used = field(line, "RunTime").and_then(clock_duration);
        return match (limit, used) {
            (Some(l), Some(u)) => Ok(l - u),
            _ => Err(format!(
                "no TimeLimit/RunTime for job {job} in scontrol's answer"
            )),
        };
    }
    if let Ok(job) = std::env::var("PBS_JOBID") {
        let text =
            output(Command::new("qstat").args(["-f", &job])).map_err(|e| format!("qstat: {e}"))?;
        let value = |key: &str| {
            text.lines()
                .find_map(|l| {
                    l.trim()
                        .strip_prefix(key)?
                        .trim()
                        .strip_prefix('=')
                        .map(str::trim)
                })
                .and_then(clock_duration)
        };
        return match (
            value("Resource_List.walltime"),
            value("resources_used.walltime"),
        ) {
            (Some(limit), used) => Ok(limit - used.unwrap_or(0.0)),
            _ => Err(format!(
                "no Resource_List.walltime for job {job} in qstat's answer"
            )),
        };
    }
    Err("not inside a Slurm or PBS job".into())
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Root: seconds until the map must be done (the deadline less the
/// grace), or `None` for no deadline.
pub fn seconds_left(deadline: Option<Deadline>) -> Option<f64> {
    let left = match deadline? {
        Deadline::In(d) => d.as_secs_f64(),
        Deadline::At(at) => at - now(),
        Deadline::Auto => match time_left() {
            Ok(left) => left,
            Err(why) => {
                eprintln!("hpcmap: warning: --deadline auto: {why}; running without a deadline");
                return None;
            }
        },
    };
    let grace = (0.02 * left).clamp(1.0, 30.0);
    Some((left - grace).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_parse() {
        assert_eq!(parse("auto"), Ok(Deadline::Auto));
        assert_eq!(parse("+90m"), Ok(Deadline::In(Duration::from_secs(5400))));
        assert_eq!(parse("@1800000000"), Ok(Deadline::At(1.8e9)));
        assert!(matches!(parse("2030-01-02T03:04"), Ok(Deadline::At(t)) if t > 1.8e9));
        for bad in ["", "tomorrow", "+", "@x", "2030-01-02", "12:00"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn scheduler_durations_and_fields() {
        assert_eq!(clock_duration("01:00:05"), Some(3605.0));
        assert_eq!(clock_duration("1-00:00:00"), Some(86400.0));
        assert_eq!(clock_duration("05:30"), Some(330.0));
        let line = "JobId=7 JobName=x TimeLimit=00:10:00 RunTime=00:01:30 EndTime=2026";
        assert_eq!(
            field(line, "TimeLimit").and_then(clock_duration),
            Some(600.0)
        );
        assert_eq!(field(line, "RunTime").and_then(clock_duration), Some(90.0));
    }

    #[test]
    fn the_grace_leaves_time_to_journal() {
        let left = seconds_left(Some(Deadline::In(Duration::from_secs(100)))).unwrap();
        assert!((left - 98.0).abs() < 0.5, "{left}");
        let left = seconds_left(Some(Deadline::In(Duration::from_secs(3600)))).unwrap();
        assert!((left - 3570.0).abs() < 0.5, "{left}");
    }
}
