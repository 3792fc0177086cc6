//! Running one recorded job: its command in a fresh directory with its output into a capped
//! log, then, in one transaction, its exit code, its input files marked consumed or failed,
//! and the outputs that match the job type's patterns declared with the inputs as parents.
//!
//! The local batch daemon does this for many jobs at once (`supervisor.rs`); `run_job` does it
//! for one, blocking, where another batch system runs the process (a Slurm array task's
//! `cascade run-task`).

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rusqlite::{OptionalExtension, params};

use super::local::{ENV_STATE_DIR, job_dir};
use super::process;
use crate::catalog::NewFile;
use crate::catalog::store::declare;
use crate::ledger::{Ledger, LedgerError, Result, SqlContext, now};

/// The most of a job's output kept in its `job.log`; the rest is discarded, and the log says
/// where it was cut.
pub const LOG_CAP_BYTES: u64 = 16 * 1024 * 1024;

/// How long, after the job's command ended, its log waits for output that processes it left
/// behind still write.
pub(super) const LOG_DRAIN: Duration = Duration::from_secs(2);

/// A job as recorded by `cascade submit`.
pub(super) struct Job {
    pub id: i64,
    pub submission: String,
    pub index: i64,
    argv: Vec<String>,
    cwd: String,
    env: Vec<(String, String)>,
    patterns: Vec<String>,
    /// (name, location) of each input file.
    inputs: Vec<(String, String)>,
}

/// Runs one job to its end and records it, blocking.
pub fn run_job(state: &Path, id: i64) -> Result<i32> {
    let mut ledger = Ledger::open(state)?;
    let job = load(&ledger, id)?;
    if !wait_until_runnable(&ledger, id)? {
        return Ok(0); // removed before it ran
    }
    let dir = fresh_dir(state, &job)?;
    let code = run_command(state, &job, &dir)?;
    let outputs = outputs_if_succeeded(&ledger, &job, &dir, code)?;
    let conflicts = record_end(&mut ledger, &job, code, &outputs)?;
    if !conflicts.is_empty() {
        let mut log = File::options().append(true).open(dir.join("job.log"))?;
        note_conflicts(&mut log, &conflicts)?;
    }
    Ok(code)
}

/// Says in a job's log why it failed although its command succeeded.
pub(super) fn note_conflicts(
    log: &mut impl Write,
    conflicts: &[(String, String)],
) -> std::io::Result<()> {
    for (name, by) in conflicts {
        writeln!(
            log,
            "cascade: output `{name}` is already in the catalog (declared by {by}); nothing of this job was declared and the job is failed"
        )?;
    }
    Ok(())
}

pub(super) fn load(ledger: &Ledger, id: i64) -> Result<Job> {
    let row = ledger
        .conn
        .query_row(
            "SELECT submission, idx, argv, cwd, env, patterns FROM jobs WHERE id = ?",
            [id],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                ))
            },
        )
        .optional()
        .at(ledger)?
        .ok_or_else(|| LedgerError::Invalid(format!("no job {id}")))?;
    let (submission, index, argv, cwd, env, patterns) = row;
    let inputs = ledger.rows(
        "SELECT f.name, f.location FROM job_inputs j JOIN files f ON f.id = j.file WHERE j.job = ? ORDER BY f.id",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(Job {
        id,
        submission,
        index,
        argv: serde_json::from_str(&argv).unwrap_or_default(),
        cwd,
        env: serde_json::from_str(&env).unwrap_or_default(),
        patterns: serde_json::from_str(&patterns).unwrap_or_default(),
        inputs,
    })
}

/// Waits while an operator holds the job (a hold can land between the daemon claiming the
/// job and this runner starting); `false` when the job was removed instead.
fn wait_until_runnable(ledger: &Ledger, id: i64) -> Result<bool> {
    loop {
        let state: String = ledger
            .conn
            .query_row("SELECT state FROM jobs WHERE id = ?", [id], |r| r.get(0))
            .at(ledger)?;
        match state.as_str() {
            "running" => return Ok(true),
            "held" => std::thread::sleep(Duration::from_millis(100)),
            _ => return Ok(false),
        }
    }
}

/// The job's own directory, emptied: files left there by an earlier run are never taken
/// for this run's outputs.
pub(super) fn fresh_dir(state: &Path, job: &Job) -> Result<PathBuf> {
    let dir = job_dir(state, &job.submission, job.index);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// A started job: its process, and the reading end of the pipe its output goes to.
pub(super) struct Started {
    pub child: std::process::Child,
    pub output: std::io::PipeReader,
}

/// Starts the job's command in `dir` (its process group's leader, so that a hold, a kill or
/// an orphan's clean-up reaches everything it starts). Returns the exit code a shell would
/// give when it cannot be started (127 without a command, 126 otherwise), after saying why
/// in the log.
pub(super) fn start(
    state: &Path,
    job: &Job,
    dir: &Path,
    log: &mut impl Write,
) -> Result<std::result::Result<Started, i32>> {
    use std::os::unix::process::CommandExt;
    let Some((program, args)) = job.argv.split_first() else {
        writeln!(log, "cascade: the job has no command")?;
        return Ok(Err(127));
    };
    let input_paths: Vec<String> = job
        .inputs
        .iter()
        .map(|(name, location)| Path::new(location).join(name).display().to_string())
        .collect();
    let (reader, writer) = std::io::pipe()?;
    let mut command = Command::new(program);
    command
        .args(args)
        .current_dir(&job.cwd)
        .envs(job.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("CASCADE_JOB_ID", job.id.to_string())
        .env("CASCADE_JOB_INDEX", job.index.to_string())
        .env("CASCADE_SUBMISSION_ID", &job.submission)
        .env("CASCADE_INPUT_FILES", input_paths.join("\n"))
        .env("CASCADE_OUTPUT_DIR", dir)
        .env(ENV_STATE_DIR, state)
        .stdin(Stdio::null())
        .stdout(writer.try_clone()?)
        .stderr(writer)
        .process_group(0);
    let spawned = command.spawn();
    // Our copies of the pipe's writing end go with the command, so the log ends when the
    // job's processes close theirs.
    drop(command);
    match spawned {
        Ok(child) => Ok(Ok(Started {
            child,
            output: reader,
        })),
        Err(e) => {
            writeln!(log, "cascade: cannot start `{program}`: {e}")?;
            Ok(Err(126))
        }
    }
}

/// Runs the job's command; its output goes to `job.log`, capped. Returns the exit code as a
/// shell reports it (128 + n for signal n; 126 when the command could not be started).
fn run_command(state: &Path, job: &Job, dir: &Path) -> Result<i32> {
    let mut log = CappedLog::new(File::create(dir.join("job.log"))?, LOG_CAP_BYTES);
    let mut started = match start(state, job, dir, &mut log.to)? {
        Ok(started) => started,
        Err(code) => return Ok(code),
    };
    let reader = started.output;
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = copy_capped(reader, &mut log);
        let _ = done_tx.send(());
    });
    let status = started.child.wait()?;
    let _ = done_rx.recv_timeout(LOG_DRAIN);
    Ok(process::exit_code(status))
}

/// A job's log: the first `cap` bytes of its output, then a line saying where it was cut.
pub(super) struct CappedLog<W: Write> {
    pub to: W,
    cap: u64,
    written: u64,
    cut: bool,
}

impl<W: Write> CappedLog<W> {
    pub fn new(to: W, cap: u64) -> Self {
        CappedLog {
            to,
            cap,
            written: 0,
            cut: false,
        }
    }

    pub fn write(&mut self, buf: &[u8]) -> std::io::Result<()> {
        let keep = (self.cap.saturating_sub(self.written) as usize).min(buf.len());
        if keep > 0 {
            self.to.write_all(&buf[..keep])?;
            self.written += keep as u64;
        }
        if keep < buf.len() && !self.cut {
            self.cut = true;
            writeln!(
                self.to,
                "\n[cascade: job log cut at {} MiB; the rest of the job's output was discarded]",
                self.cap / (1024 * 1024)
            )?;
        }
        Ok(())
    }
}

/// Copies all of `from` into the log.
fn copy_capped<W: Write>(mut from: impl Read, log: &mut CappedLog<W>) -> std::io::Result<()> {
    let mut buf = [0u8; 64 * 1024];
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        log.write(&buf[..n])?;
    }
}

/// The outputs to declare for a job that ended with `code`: none unless it succeeded.
pub(super) fn outputs_if_succeeded(
    ledger: &Ledger,
    job: &Job,
    dir: &Path,
    code: i32,
) -> Result<Vec<NewFile>> {
    if code == 0 {
        outputs_of(ledger, job, dir)
    } else {
        Ok(Vec::new())
    }
}

/// The files the job left in its directory that match the job type's output patterns.
fn outputs_of(ledger: &Ledger, job: &Job, dir: &Path) -> Result<Vec<NewFile>> {
    let mut env: Vec<(String, String)> = job.env.clone();
    env.push(("CASCADE_SUBMISSION_ID".into(), job.submission.clone()));
    env.push(("CASCADE_JOB_ID".into(), job.id.to_string()));
    let metadata = output_metadata(&|key| {
        env.iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    });
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)?.filter_map(|e| e.ok()) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if crate::catalog::store::like_any(&ledger.conn, &job.patterns, &name).at(ledger)? {
            names.push(name);
        }
    }
    names.sort();
    let mut outputs = Vec::new();
    for name in names {
        let path = dir.join(&name);
        outputs.push(NewFile {
            size: std::fs::metadata(&path)?.len() as i64,
            checksum: checksum(&path)?,
            location: dir.display().to_string(),
            metadata: metadata.clone(),
            parents: job.inputs.iter().map(|(n, _)| n.clone()).collect(),
            name,
        });
    }
    Ok(outputs)
}

/// Records the job's end in one transaction. An output whose name the catalog already holds
/// (two jobs writing the same name) fails the job instead of being dropped silently; returns
/// those names with who declared them. While the disk is full the record is retried, so the
/// job's end is not lost and the run goes on once space is freed.
fn record_end(
    ledger: &mut Ledger,
    job: &Job,
    code: i32,
    outputs: &[NewFile],
) -> Result<Vec<(String, String)>> {
    loop {
        match ledger.write(|tx| record_end_in(tx, job, code, outputs)) {
            Err(LedgerError::Sql { source, .. })
                if source.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) =>
            {
                std::thread::sleep(Duration::from_secs(1));
            }
            other => return other,
        }
    }
}

pub(super) fn record_end_in(
    tx: &rusqlite::Transaction,
    job: &Job,
    code: i32,
    outputs: &[NewFile],
) -> rusqlite::Result<Vec<(String, String)>> {
    // A job removed while it ran declares nothing: its end is the operator's.
    let state: String = tx.query_row("SELECT state FROM jobs WHERE id = ?", [job.id], |r| {
        r.get(0)
    })?;
    if state == "removed" {
        return Ok(Vec::new());
    }
    let mut conflicts = Vec::new();
    {
        let mut stmt = tx.prepare_cached(
            "SELECT COALESCE((SELECT value FROM file_metadata m WHERE m.file = f.id AND m.key = 'submission'), 'a person') FROM files f WHERE f.name = ?",
        )?;
        for f in outputs {
            if let Some(by) = stmt
                .query_row([&f.name], |r| r.get::<_, String>(0))
                .optional()?
            {
                conflicts.push((f.name.clone(), by));
            }
        }
    }
    let ok = code == 0 && conflicts.is_empty();
    if conflicts.is_empty() {
        declare(tx, outputs)?;
    }
    mark_end(tx, &job.submission, job.id, code, ok)?;
    Ok(conflicts)
}

/// A job's end: its input files consumed (or failed) and its state, in the caller's
/// transaction (the runner's, or the observer's for a job another batch system ran).
pub(super) fn mark_end(
    tx: &rusqlite::Transaction,
    submission: &str,
    job: i64,
    code: i32,
    ok: bool,
) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE project_files SET status = ?, updated = ? WHERE project = ? AND file IN (SELECT file FROM job_inputs WHERE job = ?)",
        params![if ok { "consumed" } else { "failed" }, now(), submission, job],
    )?;
    tx.execute(
        "UPDATE jobs SET state = ?, exit_code = ?, finished = ?, finished_ms = ? WHERE id = ? AND state IN ('running', 'held', 'idle')",
        params![
            if ok { "succeeded" } else { "failed" },
            code,
            now(),
            chrono::Utc::now().timestamp_millis(),
            job
        ],
    )?;
    Ok(())
}

/// The metadata a job's outputs carry, from the job's environment: which submission, job,
/// stage and software version made them. Dependency and location queries select on these.
pub fn output_metadata(env: &dyn Fn(&str) -> Option<String>) -> Vec<(String, String)> {
    let mut metadata = Vec::new();
    if let Some(s) = env("CASCADE_SUBMISSION_ID") {
        metadata.push(("submission".to_string(), s));
    }
    if let Some(j) = env("CASCADE_JOB_ID") {
        metadata.push(("job".to_string(), j));
    }
    if let (Some(ns), Some(stage)) = (env("CASCADE_NAMESPACE"), env("CASCADE_STAGE")) {
        metadata.push(("stage".into(), format!("{ns}/{stage}")));
    }
    if let Some(v) = env("CASCADE_SOFTWARE_VERSION") {
        metadata.push(("version".into(), v));
    }
    metadata
}

/// Adler-32 of a file: cheap, and enough to tell copies apart in a catalog listing.
pub fn checksum(path: &Path) -> std::io::Result<String> {
    let mut f = File::open(path)?;
    let (mut a, mut b) = (1u32, 0u32);
    let mut buf = [0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        for &byte in &buf[..n] {
            a = (a + u32::from(byte)) % 65_521;
            b = (b + a) % 65_521;
        }
    }
    Ok(format!("adler32:{:08x}", (b << 16) | a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_is_cut_at_its_cap_and_says_so() {
        let input = vec![b'x'; 3 * 1024 * 1024 + 17];
        let mut log = CappedLog::new(Vec::new(), 1024 * 1024);
        copy_capped(&input[..], &mut log).unwrap();
        let out = log.to;
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with(&"x".repeat(1024 * 1024)));
        assert!(text.ends_with(
            "[cascade: job log cut at 1 MiB; the rest of the job's output was discarded]\n"
        ));
        assert_eq!(out.len(), 1024 * 1024 + text[1024 * 1024..].len());
        let mut small = CappedLog::new(Vec::new(), 1024);
        copy_capped(&b"short"[..], &mut small).unwrap();
        assert_eq!(small.to, b"short");
    }
}
