//! The `local` batch system: a small real one in the state database.
//!
//! `cascade submit` records a submission's jobs (idle) and makes sure a batch daemon runs.
//! The daemon (one per state directory, held by a lock file) starts idle jobs under a
//! concurrency limit, each in a detached runner process (its own process group) that runs the
//! job's command, then in one transaction records the exit code, marks the job's input files
//! consumed or failed, and declares the outputs that match the job type's patterns, with the
//! inputs as parents. Runners outlive the daemon and the controller; a daemon that starts
//! finds running jobs by pid and re-adopts them.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::process;
use crate::ledger::{Ledger, Result, SqlContext, now};

/// Environment a launch passes to `cascade submit` (besides the CASCADE_* of composition).
pub const ENV_STATE_DIR: &str = "CASCADE_STATE_DIR";
pub const ENV_OUTPUT_PATTERNS: &str = "CASCADE_OUTPUT_PATTERNS";
pub const ENV_SLOTS: &str = "CASCADE_LOCAL_SLOTS";

/// Runs of a job that may end with its runner's death before the job is failed.
pub const MAX_RUNNER_DEATHS: i64 = 3;

/// How long an idle daemon waits for new jobs before it exits.
const DAEMON_IDLE: Duration = Duration::from_secs(5);
/// How often the daemon looks for finished and new jobs: often while it has work, so a slot
/// does not stay empty long; rarely when it has none.
const DAEMON_BUSY_TICK: Duration = Duration::from_millis(2);
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
    let slots = slots();
    // Runners this daemon started, with their job.
    let mut children: Vec<(i64, std::process::Child)> = Vec::new();
    let mut idle_since = Instant::now();
    loop {
        children.retain_mut(|(_, c)| !matches!(c.try_wait(), Ok(Some(_))));
        continue_ended_runners(&ledger, &children)?;
        let running = adopt(&mut ledger)?;
        let free = slots.saturating_sub(running) as i64;
        let idle: Vec<i64> = ledger.rows(
            "SELECT id FROM jobs WHERE state = 'idle' AND delegated = 0 ORDER BY id LIMIT ?",
            [free],
            |r| r.get(0),
        )?;
        for id in &idle {
            children.extend(start_runner(&mut ledger, *id)?.map(|c| (*id, c)));
        }
        let busy = running > 0 || !idle.is_empty() || !children.is_empty();
        if busy {
            idle_since = Instant::now();
        } else if idle_since.elapsed() > DAEMON_IDLE {
            // Release the lock, then look once more: a submit that found the lock held
            // relies on us to see its jobs.
            lock.unlock()?;
            let waiting = ledger
                .scalar_i64("SELECT COUNT(*) FROM jobs WHERE state = 'idle' AND delegated = 0")?;
            if waiting == 0 || lock.try_lock().is_err() {
                return Ok(());
            }
            idle_since = Instant::now();
        }
        if busy {
            std::thread::sleep(DAEMON_BUSY_TICK);
        } else {
            wait_for_a_commit(&ledger, DAEMON_IDLE_TICK);
        }
    }
}

/// Runners whose job has ended are let go on: one stopped by a hold that raced with its end
/// would otherwise stay stopped, and the daemon busy, forever.
fn continue_ended_runners(ledger: &Ledger, children: &[(i64, std::process::Child)]) -> Result<()> {
    for (id, child) in children {
        let ended: Option<(String, Option<i64>)> = ledger
            .conn
            .query_row(
                "SELECT state, pid_start FROM jobs WHERE id = ?",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .at(ledger)?;
        if let Some((state, started)) = ended
            && matches!(state.as_str(), "succeeded" | "failed" | "removed")
        {
            process::signal_group(
                i64::from(child.id()),
                started.map(|s| s as u64),
                libc::SIGCONT,
            );
        }
    }
    Ok(())
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

/// Running jobs whose runner died without recording an end: what is left of their process
/// group is killed first (so their inputs are never processed twice at once), then the job
/// is run again from the start, up to [`MAX_RUNNER_DEATHS`] times, after which it is failed.
/// A runner's death is the machine's failure, not the job's. Returns how many jobs still run
/// (including held ones, which keep their slot).
fn adopt(ledger: &mut Ledger) -> Result<usize> {
    let rows: Vec<(i64, i64, Option<u64>)> = {
        ledger.rows(
            "SELECT id, pid, pid_start FROM jobs WHERE state IN ('running', 'held') AND pid IS NOT NULL AND delegated = 0",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, Option<i64>>(2)?.map(|s| s as u64))),
        )?
    };
    // A job claimed by a daemon that died before it could start the runner. Looked for
    // first, so the loop takes the write lock only when there is something to write.
    let stale = "state = 'running' AND pid IS NULL AND started < ? AND delegated = 0";
    let cutoff = now() - 60;
    let stale_claims: i64 = ledger
        .conn
        .query_row(
            &format!("SELECT COUNT(*) FROM jobs WHERE {stale}"),
            [cutoff],
            |r| r.get(0),
        )
        .at(ledger)?;
    if stale_claims > 0 {
        ledger.write(|tx| {
            tx.execute(
                &format!("UPDATE jobs SET state = 'idle', started = NULL WHERE {stale}"),
                params![cutoff],
            )
            .map(|_| ())
        })?;
    }
    let mut running = 0;
    for (id, pid, started) in rows {
        match process::runner(pid, started) {
            process::Runner::Alive => {
                running += 1;
                continue;
            }
            process::Runner::Orphaned => {
                process::signal_group(pid, started, libc::SIGCONT);
                process::signal_group(pid, started, libc::SIGKILL);
            }
            process::Runner::Gone => {}
        }
        // Re-read inside the transaction: the runner may have just recorded its end.
        ledger.write(|tx| {
            let requeued = tx.execute(
                "UPDATE jobs SET state = CASE state WHEN 'held' THEN 'held' ELSE 'idle' END, pid = NULL, pid_start = NULL, started = NULL, attempts = attempts + 1 WHERE id = ? AND state IN ('running', 'held') AND attempts < ?",
                params![id, MAX_RUNNER_DEATHS],
            )?;
            if requeued > 0 {
                return Ok(());
            }
            tx.execute(
                "UPDATE jobs SET state = 'failed', finished = ? WHERE id = ? AND state IN ('running', 'held')",
                params![now(), id],
            )?;
            tx.execute(
                "UPDATE project_files SET status = 'failed', updated = ? WHERE file IN (SELECT file FROM job_inputs WHERE job = ?) AND project = (SELECT submission FROM jobs WHERE id = ?) AND status = 'delivered'",
                params![now(), id, id],
            )?;
            Ok(())
        })?;
    }
    Ok(running)
}

/// Claims an idle job (idle -> running) and starts its runner; `None` if someone changed the
/// job first (an operator held or removed it).
fn start_runner(ledger: &mut Ledger, id: i64) -> Result<Option<std::process::Child>> {
    use std::os::unix::process::CommandExt;
    let claimed = ledger.write(|tx| {
        tx.execute(
            "UPDATE jobs SET state = 'running', started = ? WHERE id = ? AND state = 'idle'",
            params![now(), id],
        )
    })?;
    if claimed == 0 {
        return Ok(None);
    }
    let exe = std::env::current_exe()?;
    let child = Command::new(exe)
        .arg("run-job")
        .arg("--state")
        .arg(&ledger.dir)
        .arg(id.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()?;
    let pid = child.id() as i64;
    let started = process::start_time(pid).map(|t| t as i64);
    ledger.write(|tx| {
        tx.execute(
            "UPDATE jobs SET pid = ?, pid_start = ? WHERE id = ?",
            params![pid, started, id],
        )
        .map(|_| ())
    })?;
    Ok(Some(child))
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
            _ => return Ok(false),
        };
        let n = ledger.write(|tx| {
            tx.execute(
                "UPDATE jobs SET state = ?, finished = CASE WHEN ? = 'removed' THEN ? ELSE finished END WHERE id = ? AND state = ?",
                params![next, next, now(), j.id, j.state],
            )
        })?;
        if n == 0 {
            continue;
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
        return Ok(true);
    }
    Ok(false)
}
