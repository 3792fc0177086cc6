//! The `local` batch system: a small real one in the state database.
//!
//! `cascade submit` records a submission's jobs (idle) and makes sure a batch daemon runs.
//! The daemon (one per state directory, held by a lock file) starts idle jobs under a
//! concurrency limit, each as its own process group, copies their output into capped logs,
//! and records each job's end in one transaction: the exit code, the job's input files
//! consumed or failed, and the outputs that match the job type's patterns declared with the
//! inputs as parents (`supervisor.rs`). Jobs outlive the controller; a daemon that starts
//! after one died kills what is left of that one's jobs and runs them again.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::process;
use super::supervisor::{self, Supervisor};
use crate::ledger::{Ledger, Result, SqlContext, now};

/// Environment a launch passes to `cascade submit` (besides the CASCADE_* of composition).
pub const ENV_STATE_DIR: &str = "CASCADE_STATE_DIR";
pub const ENV_OUTPUT_PATTERNS: &str = "CASCADE_OUTPUT_PATTERNS";
pub const ENV_SLOTS: &str = "CASCADE_LOCAL_SLOTS";

/// Runs of a job that may be lost (the daemon running it died) before the job is failed.
pub const MAX_LOST_RUNS: i64 = 3;

/// How long an idle daemon waits for new jobs before it exits.
const DAEMON_IDLE: Duration = Duration::from_secs(5);
/// How long the daemon waits for its jobs' output before it looks for jobs that ended
/// without closing it, and for new jobs; a job's output closing wakes it at once. Rarely
/// when it has no jobs: a commit to the ledger wakes it then.
const DAEMON_BUSY_TICK: Duration = Duration::from_millis(20);
const DAEMON_IDLE_TICK: Duration = Duration::from_millis(50);

#[derive(Clone, Debug, Serialize)]
pub struct JobRow {
    pub id: i64,
    pub submission: String,
    pub index: i64,
    pub state: String,
    pub pid: Option<i64>,
    /// The runner's start time, telling it from a later process with the same pid.
    pub pid_start: Option<i64>,
    /// The job's exit code; 128 + n when signal n ended it.
    pub exit_code: Option<i64>,
    pub created: i64,
    pub started: Option<i64>,
    pub finished: Option<i64>,
    pub command: String,
}

pub fn job_dir(state: &Path, submission: &str, index: i64) -> PathBuf {
    state.join("jobs").join(submission).join(index.to_string())
}

/// What `submit` records: the command of each job, where and how it runs.
pub struct JobSpec<'a> {
    pub jobs: u32,
    pub argv: &'a [String],
    pub cwd: &'a Path,
    pub env: &'a [(String, String)],
    pub patterns: &'a [String],
    /// The jobs run on another batch system (`cascade run-task` in a Slurm array task): they
    /// are recorded as delegated, and this one never starts, adopts or requeues them.
    pub delegated: bool,
}

/// Records `jobs` jobs of `submission` running `argv` in `cwd`; distributes the files of the
/// submission's project over them (round robin), never more jobs than files when there is a
/// project. Without a project (a submit outside any launch), `input` makes one from a
/// catalog query. Returns the first job's id and how many jobs there are. Idempotent: a
/// second submit for the same submission adds nothing and returns the same.
pub fn record_jobs(
    ledger: &mut Ledger,
    submission: &str,
    input: Option<&str>,
    spec: &JobSpec,
) -> Result<(i64, usize)> {
    let JobSpec {
        jobs,
        argv,
        cwd,
        env,
        patterns,
        delegated,
    } = *spec;
    let argv_json = serde_json::to_string(argv).unwrap_or_default();
    let env_json = serde_json::to_string(env).unwrap_or_default();
    let patterns_json = serde_json::to_string(patterns).unwrap_or_default();
    let cwd = cwd.display().to_string();
    ledger.write(|tx| {
        let existing: Option<i64> = tx
            .query_row("SELECT MIN(id) FROM jobs WHERE submission = ?", [submission], |r| r.get(0))
            .optional()?
            .flatten();
        if let Some(id) = existing {
            let n: i64 = tx.query_row("SELECT COUNT(*) FROM jobs WHERE submission = ?", [submission], |r| r.get(0))?;
            return Ok((id, n as usize));
        }
        let has_project = |tx: &rusqlite::Transaction| -> rusqlite::Result<bool> {
            tx.query_row("SELECT COUNT(*) FROM projects WHERE name = ?", [submission], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n > 0)
        };
        if let Some(query) = input
            && !has_project(tx)?
        {
            crate::catalog::store::select_ids(tx, query)
                .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))??;
            crate::catalog::store::create_project(tx, submission, Some(query), &[], now())?;
        }
        let files: Vec<i64> = {
            let mut stmt = tx.prepare("SELECT file FROM project_files WHERE project = ? ORDER BY file")?;
            stmt.query_map([submission], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?
        };
        let n = if has_project(tx)? { (jobs as usize).min(files.len()) } else { jobs as usize };
        let t = now();
        let mut first = 0;
        for index in 0..n {
            tx.execute(
                "INSERT INTO jobs (submission, idx, argv, cwd, env, patterns, state, created, delegated) VALUES (?, ?, ?, ?, ?, ?, 'idle', ?, ?)",
                params![submission, index as i64, argv_json, cwd, env_json, patterns_json, t, delegated],
            )?;
            let id = tx.last_insert_rowid();
            if index == 0 {
                first = id;
            }
            for f in files.iter().skip(index).step_by(n) {
                tx.execute("INSERT INTO job_inputs (job, file) VALUES (?, ?)", params![id, f])?;
            }
        }
        Ok((first, n))
    })
}

/// Records the jobs another batch system will run (see `record_jobs`); how many. Refuses a
/// submission left with none (its project has no files): nothing is submitted for it.
pub fn record_delegated(
    ledger: &mut Ledger,
    submission: &str,
    input: Option<&str>,
    spec: &JobSpec,
) -> Result<usize> {
    let (_, tasks) = record_jobs(ledger, submission, input, spec)?;
    if tasks == 0 {
        return Err(crate::ledger::LedgerError::Invalid(format!(
            "submission `{submission}` has no input files to run jobs on: nothing was submitted"
        )));
    }
    Ok(tasks)
}

/// Records the jobs (see `record_jobs`) and makes sure the daemon runs them. Returns the
/// batch id.
pub fn submit(
    ledger: &mut Ledger,
    submission: &str,
    input: Option<&str>,
    spec: &JobSpec,
) -> Result<String> {
    let (first, _) = record_jobs(ledger, submission, input, spec)?;
    ensure_daemon(&ledger.dir)?;
    Ok(format!("{first}@local"))
}

/// Starts a batch daemon for the state directory unless one holds its lock. The daemon is
/// reaped by a thread of this process, so a long-lived caller (the controller) leaves no
/// zombie behind.
pub fn ensure_daemon(state: &Path) -> Result<()> {
    if daemon_running(state)? {
        return Ok(());
    }
    let exe = std::env::current_exe()?;
    use std::os::unix::process::CommandExt;
    let mut child = Command::new(exe)
        .arg("batchd")
        .arg("--state")
        .arg(state)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()?;
    std::thread::spawn(move || child.wait());
    Ok(())
}

/// Whether a daemon holds the state directory's lock.
pub fn daemon_running(state: &Path) -> Result<bool> {
    let lock = lock_file(state)?;
    Ok(match lock.try_lock() {
        Ok(()) => {
            lock.unlock()?;
            false
        }
        Err(_) => true,
    })
}

fn lock_file(state: &Path) -> Result<File> {
    Ok(File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(state.join("batchd.lock"))?)
}

pub fn slots() -> usize {
    std::env::var(ENV_SLOTS)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
}

/// The daemon's loop; returns when there has been nothing to do for a while.
pub fn daemon(state: &Path) -> Result<()> {
    let lock = lock_file(state)?;
    if lock.try_lock().is_err() {
        return Ok(()); // another daemon serves this state directory
    }
    let mut ledger = Ledger::open(state)?;
    supervisor::requeue_orphans(&mut ledger)?;
    let mut jobs = Supervisor::new(state, slots());
    let mut idle_since = Instant::now();
    // The ledger's state when idle jobs were last looked for: another look is worth it only
    // once another process committed (a submit, a release) or a slot freed.
    let mut looked_at: Option<i64> = None;
    loop {
        let version = ledger.data_version().ok();
        let started = if jobs.has_ends() || (jobs.free() > 0 && version != looked_at) {
            looked_at = version;
            jobs.record_and_start(&mut ledger)?
        } else {
            0
        };
        if jobs.busy() || started > 0 {
            idle_since = Instant::now();
            jobs.wait(DAEMON_BUSY_TICK);
            continue;
        }
        if idle_since.elapsed() > DAEMON_IDLE {
            // Release the lock, then look once more: a submit that found the lock held
            // relies on us to see its jobs.
            lock.unlock()?;
            let waiting = ledger
                .scalar_i64("SELECT COUNT(*) FROM jobs WHERE state = 'idle' AND delegated = 0")?;
            if waiting == 0 || lock.try_lock().is_err() {
                return Ok(());
            }
            idle_since = Instant::now();
            looked_at = None;
        }
        wait_for_a_commit(&ledger, DAEMON_IDLE_TICK);
    }
}

/// Sleeps up to `limit`, waking as soon as another process commits to the ledger (a submit
/// of new jobs): an idle daemon starts a job within a few milliseconds of its submission
/// without scanning the jobs table at that pace.
fn wait_for_a_commit(ledger: &Ledger, limit: Duration) {
    const LOOK: Duration = Duration::from_millis(2);
    let seen = ledger.data_version().ok();
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        std::thread::sleep(LOOK);
        if ledger.data_version().ok() != seen {
            return;
        }
    }
}

pub fn jobs(ledger: &Ledger, submission: Option<&str>) -> Result<Vec<JobRow>> {
    ledger.rows(
"SELECT id, submission, idx, state, pid, exit_code, created, started, finished, argv, pid_start FROM jobs WHERE (?1 IS NULL OR submission = ?1) AND delegated = 0 ORDER BY id",
[submission],
|r| {
            let argv: String = r.get(9)?;
            let argv: Vec<String> = serde_json::from_str(&argv).unwrap_or_default();
            Ok(JobRow {
                id: r.get(0)?,
                submission: r.get(1)?,
                index: r.get(2)?,
                state: r.get(3)?,
                pid: r.get(4)?,
                pid_start: r.get(10)?,
                exit_code: r.get(5)?,
                created: r.get(6)?,
                started: r.get(7)?,
                finished: r.get(8)?,
                command: argv.join(" "),
            })
        })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    Hold,
    Release,
    Remove,
}

/// Holds, releases or removes jobs (by job id, submission id or `all`); returns how many
/// changed. Running jobs are stopped and continued with their whole process group.
pub fn control(ledger: &mut Ledger, target: &str, action: Control) -> Result<usize> {
    let matching: Vec<i64> = jobs(ledger, None)?
        .into_iter()
        .filter(|j| {
            target == "all"
                || j.submission == target
                || j.id.to_string() == target
                || format!("{}@local", j.id) == target
        })
        .map(|j| j.id)
        .collect();
    let mut changed = 0;
    for id in matching {
        changed += usize::from(control_job(ledger, id, action)?);
    }
    Ok(changed)
}

/// One job: read its state, decide, compare-and-set; again if the daemon or the runner
/// changed it meanwhile (a job being started while it is removed, say).
fn control_job(ledger: &mut Ledger, id: i64, action: Control) -> Result<bool> {
    for _ in 0..10 {
        let Some(j) = jobs(ledger, None)?.into_iter().find(|j| j.id == id) else {
            return Ok(false);
        };
        if let Some(changed) = control_as_read(ledger, &j, action)? {
            return Ok(changed);
        }
    }
    Ok(false)
}

/// Applies `action` to the job as it was read (`j`); `None` when the job changed since, and
/// must be read again. The compare-and-set covers the pid as well as the state: a job
/// claimed but not yet started has no pid, and if the daemon records the pid of its new
/// process between the read and the change, a removal that matched the state alone would
/// mark the job removed and signal nobody, leaving the process running.
fn control_as_read(ledger: &mut Ledger, j: &JobRow, action: Control) -> Result<Option<bool>> {
    let signal = |sig| {
        if let Some(pid) = j.pid {
            process::signal_group(pid, j.pid_start.map(|s| s as u64), sig);
        }
    };
    let next = match (action, j.state.as_str()) {
        (Control::Hold, "idle" | "running") => "held",
        (Control::Release, "held") if j.pid.is_some() => "running",
        (Control::Release, "held") => "idle",
        (Control::Remove, "idle" | "held" | "running") => "removed",
        _ => return Ok(Some(false)),
    };
    let n = ledger.write(|tx| {
        tx.execute(
            "UPDATE jobs SET state = ?, finished = CASE WHEN ? = 'removed' THEN ? ELSE finished END WHERE id = ? AND state = ? AND pid IS ?",
            params![next, next, now(), j.id, j.state, j.pid],
        )
    })?;
    if n == 0 {
        return Ok(None);
    }
    match (action, j.state.as_str()) {
        (Control::Hold, "running") => {
            signal(libc::SIGSTOP);
            // The job may have ended between our change and the signal: its runner, stopped
            // after recording the end, would never be released. Let it finish.
            let now_state: String = ledger
                .conn
                .query_row("SELECT state FROM jobs WHERE id = ?", [j.id], |r| r.get(0))
                .at(ledger)?;
            if now_state != "held" {
                signal(libc::SIGCONT);
            }
        }
        (Control::Release, _) => signal(libc::SIGCONT),
        (Control::Remove, _) => {
            signal(libc::SIGCONT);
            signal(libc::SIGKILL);
        }
        _ => {}
    }
    Ok(Some(true))
}

#[cfg(test)]
mod tests {
    //! Controls against a real ledger and a real process.
    use super::*;
    use std::os::unix::process::CommandExt;

    /// A child killed and reaped however the test ends.
    struct Reaped(std::process::Child);

    impl Drop for Reaped {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[test]
    fn a_removal_read_before_the_pid_was_recorded_kills_the_process_started_meanwhile() {
        let dir = std::env::temp_dir().join(format!("cascade-control-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut ledger = Ledger::open(&dir).unwrap();
        let argv = ["sleep".to_string(), "30".to_string()];
        let spec = JobSpec {
            jobs: 1,
            argv: &argv,
            cwd: &dir,
            env: &[],
            patterns: &[],
            delegated: false,
        };
        let (id, _) = record_jobs(&mut ledger, "exp.s.1", None, &spec).unwrap();
        // The daemon claims the job: running, no process yet.
        let claim = "UPDATE jobs SET state = 'running', started = ? WHERE id = ?";
        ledger
            .write(|tx| tx.execute(claim, params![now(), id]))
            .unwrap();
        let read = jobs(&ledger, None).unwrap().remove(0);
        assert_eq!((read.state.as_str(), read.pid), ("running", None));
        // Meanwhile the daemon starts the process and records its pid.
        let mut child = Reaped(
            Command::new("sleep")
                .arg("30")
                .process_group(0)
                .spawn()
                .unwrap(),
        );
        let pid = i64::from(child.0.id());
        let start = process::start_time(pid).map(|s| s as i64);
        let record = "UPDATE jobs SET pid = ?, pid_start = ? WHERE id = ?";
        ledger
            .write(|tx| tx.execute(record, params![pid, start, id]))
            .unwrap();

        // The removal decided on the stale read changes nothing...
        assert!(matches!(
            control_as_read(&mut ledger, &read, Control::Remove),
            Ok(None)
        ));
        assert_eq!(jobs(&ledger, None).unwrap()[0].state, "running");
        // ...and read again, it removes the job and kills the process it now knows.
        assert_eq!(control(&mut ledger, "exp.s.1", Control::Remove).unwrap(), 1);
        let status = child.0.wait().unwrap();
        assert_eq!(process::exit_code(status), 128 + libc::SIGKILL);
        assert_eq!(jobs(&ledger, None).unwrap()[0].state, "removed");
        drop(ledger);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
