//! The ledger's side of the batch systems Cascade observes: binding a submission to the jobs
//! its launch printed, polling each batch system for all open submissions at once and
//! recording what it said (or that it could not say), and acting on a submission's jobs.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cascade_crd::BatchSystem;
use rusqlite::{OptionalExtension, params};

use super::external::{Adapter, JobSeen, JobState, adapter, parse_system, tag_of};
use super::local::Control;
use crate::ledger::{Ledger, Result, SqlContext, now};

/// The most of a launch log read for job ids: launches print their ids early, and a runaway
/// log must not fill the controller's memory.
const LOG_READ_CAP: u64 = 16 * 1024 * 1024;

/// The batch system of a submission (`local` for one the ledger does not know).
pub fn system_of(ledger: &Ledger, submission: &str) -> Result<BatchSystem> {
    let text = ledger.optional_text(
        "SELECT batch_system FROM submissions WHERE id = ?",
        submission,
    )?;
    Ok(text
        .as_deref()
        .and_then(parse_system)
        .unwrap_or(BatchSystem::Local))
}

/// Binds a submission to the job ids its launch printed. Idempotent; returns the ids bound.
pub fn bind_printed(ledger: &mut Ledger, submission: &str) -> Result<Vec<String>> {
    let Some(adapter) = adapter(system_of(ledger, submission)?) else {
        return Ok(Vec::new());
    };
    let Some(log) = ledger.optional_text(
        "SELECT launch_log FROM submissions WHERE id = ?",
        submission,
    )?
    else {
        return Ok(Vec::new());
    };
    let mut text = Vec::new();
    if let Ok(f) = std::fs::File::open(&log) {
        f.take(LOG_READ_CAP).read_to_end(&mut text)?;
    }
    let ids = adapter.printed_ids(&String::from_utf8_lossy(&text));
    let system = adapter.system().as_str();
    ledger.write(|tx| {
        for id in &ids {
            bind(tx, system, id, submission)?;
        }
        Ok(())
    })?;
    Ok(ids)
}

/// Binds a job id of `system` to a submission (once: an id never changes hands).
pub fn bind(
    tx: &rusqlite::Transaction,
    system: &str,
    cluster: &str,
    submission: &str,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO batch_clusters (system, cluster, submission, bound) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
        params![system, cluster, submission, now()],
    )?;
    Ok(())
}

/// The first job id bound to a submission, as shown to people (`1234@slurm`).
pub fn first_cluster(ledger: &Ledger, submission: &str) -> Result<Option<String>> {
    ledger
        .conn
        .query_row(
            "SELECT cluster, system FROM batch_clusters WHERE submission = ? ORDER BY bound, rowid LIMIT 1",
            [submission],
            |r| Ok(format!("{}@{}", r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
        )
        .optional()
        .at(ledger)
}

/// Bound clusters of `system` still worth asking about: never seen yet, or with a job not
/// over. Cluster -> submission.
fn open_clusters(ledger: &Ledger, system: &str) -> Result<BTreeMap<String, String>> {
    Ok(ledger
        .rows(
            "SELECT c.cluster, c.submission FROM batch_clusters c
              WHERE c.system = ?1
                AND (NOT EXISTS (SELECT 1 FROM batch_jobs j WHERE j.system = c.system AND j.cluster = c.cluster)
                  OR EXISTS (SELECT 1 FROM batch_jobs j WHERE j.system = c.system AND j.cluster = c.cluster
                               AND j.state IN ('idle', 'running', 'held')))",
            [system],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?
        .into_iter()
        .collect())
}

/// Submissions of `system` whose jobs may still appear or change (launched, not final), by
/// the tag their jobs carry.
fn open_submissions(ledger: &mut Ledger, system: &str) -> Result<BTreeMap<String, String>> {
    let ids: Vec<String> = ledger.rows(
        "SELECT id FROM submissions WHERE batch_system = ? AND launch_state <> 'reserved'
           AND status NOT IN ('Located', 'Removed', 'Failed')",
        [system],
        |r| r.get(0),
    )?;
    if ids.is_empty() {
        return Ok(BTreeMap::new());
    }
    let installation = ledger.installation()?;
    Ok(ids
        .into_iter()
        .map(|id| (tag_of(&installation, &id), id))
        .collect())
}

/// Whether anything of `system` is open (so a poll has something to ask).
pub fn has_open_work(ledger: &mut Ledger, system: BatchSystem) -> Result<bool> {
    let s = system.as_str();
    Ok(!open_clusters(ledger, s)?.is_empty() || !open_submissions(ledger, s)?.is_empty())
}

/// One poll of one batch system: every open cluster and every job tagged with an open
/// submission, observed in one batched call and recorded in one transaction. `Ok(Err(..))`
/// when the batch system could not be observed; that is recorded (the stages using it are
/// `Degraded`) and nothing else changes: no job is taken as failed for it.
pub fn poll(
    ledger: &mut Ledger,
    adapter: &dyn Adapter,
) -> Result<std::result::Result<usize, String>> {
    let system = adapter.system().as_str();
    let clusters = open_clusters(ledger, system)?;
    let open = open_submissions(ledger, system)?;
    if clusters.is_empty() && open.is_empty() {
        return Ok(Ok(0));
    }
    let ids: Vec<String> = clusters.keys().cloned().collect();
    let seen = match adapter.observe(&ids) {
        Ok(seen) => seen,
        Err(e) => {
            record_health(ledger, system, Some(&e))?;
            return Ok(Err(e));
        }
    };
    let t = now();
    let recorded = ledger.write(|tx| {
        let mut n = 0;
        for job in &seen {
            let Some(submission) = owner(tx, system, job, &clusters, &open)? else {
                continue;
            };
            if job.job == job.cluster && job.state == JobState::Removed && remove_cluster(tx, system, job, &submission, t)? {
                n += 1;
                continue;
            }
            if job.state.is_over()
                && let Some(index) = adapter.index_of(job)
            {
                end_delegated(tx, &submission, index, job)?;
            }
            n += tx.execute(
                "INSERT INTO batch_jobs (system, job, cluster, submission, state, exit_code, reason, updated)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (system, job) DO UPDATE SET state = ?5, exit_code = ?6, reason = ?7, updated = ?8
                 WHERE batch_jobs.state <> ?5 OR batch_jobs.reason <> ?7 OR batch_jobs.exit_code IS NOT ?6",
                params![system, job.job, job.cluster, submission, job.state.as_str(), job.exit_code, job.reason, t],
            )?;
        }
        health(tx, system, None, t)?;
        Ok(n)
    })?;
    Ok(Ok(recorded))
}

/// A bound cluster the batch system no longer has (a Kubernetes Job deleted): every job of
/// it still open is removed, and so is each delegated job not ended. False when none of its
/// jobs was ever seen (the cluster itself is then recorded as one removed job, so that it
/// is not asked about again).
fn remove_cluster(
    tx: &rusqlite::Transaction,
    system: &str,
    job: &JobSeen,
    submission: &str,
    t: i64,
) -> rusqlite::Result<bool> {
    let known: i64 = tx.query_row(
        "SELECT COUNT(*) FROM batch_jobs WHERE system = ? AND cluster = ?",
        params![system, job.cluster],
        |r| r.get(0),
    )?;
    if known == 0 {
        return Ok(false);
    }
    tx.execute(
        "UPDATE batch_jobs SET state = 'removed', reason = ?, updated = ?
          WHERE system = ? AND cluster = ? AND state IN ('idle', 'running', 'held')",
        params![job.reason, t, system, job.cluster],
    )?;
    tx.execute(
        "UPDATE jobs SET state = 'removed', finished = ? WHERE submission = ? AND delegated = 1 AND state IN ('idle', 'running', 'held')",
        params![t, submission],
    )?;
    Ok(true)
}

/// The end of a delegated job that could not record it itself: its input files consumed or
/// failed, as the local runner records a job's end (once: an ended job is left alone).
fn end_delegated(
    tx: &rusqlite::Transaction,
    submission: &str,
    index: i64,
    job: &JobSeen,
) -> rusqlite::Result<()> {
    let id: Option<i64> = tx
        .query_row(
            "SELECT id FROM jobs WHERE submission = ? AND idx = ? AND delegated = 1 AND state IN ('idle', 'running', 'held')",
            params![submission, index],
            |r| r.get(0),
        )
        .optional()?;
    let Some(id) = id else { return Ok(()) };
    match job.state {
        JobState::Removed => {
            tx.execute(
                "UPDATE jobs SET state = 'removed', finished = ? WHERE id = ?",
                params![now(), id],
            )?;
        }
        state => {
            let code = job
                .exit_code
                .unwrap_or(if state == JobState::Succeeded { 0 } else { 1 });
            super::runner::mark_end(tx, submission, id, code, state == JobState::Succeeded)?;
        }
    }
    Ok(())
}

/// The submission a job belongs to: its bound cluster's, or the open submission it is tagged
/// with (which binds its cluster from then on).
fn owner(
    tx: &rusqlite::Transaction,
    system: &str,
    job: &JobSeen,
    clusters: &BTreeMap<String, String>,
    open: &BTreeMap<String, String>,
) -> rusqlite::Result<Option<String>> {
    if let Some(s) = clusters.get(&job.cluster) {
        return Ok(Some(s.clone()));
    }
    let bound: Option<String> = tx
        .query_row(
            "SELECT submission FROM batch_clusters WHERE system = ? AND cluster = ?",
            params![system, job.cluster],
            |r| r.get(0),
        )
        .optional()?;
    if bound.is_some() {
        return Ok(bound);
    }
    match job.tag.as_ref().and_then(|t| open.get(t)) {
        Some(submission) => {
            bind(tx, system, &job.cluster, submission)?;
            Ok(Some(submission.clone()))
        }
        None => Ok(None),
    }
}

fn record_health(ledger: &mut Ledger, system: &str, error: Option<&str>) -> Result<()> {
    if error.is_some() {
        crate::server::runtime_metrics::RUNTIME.batch_poll_failed(system);
    }
    ledger.write(|tx| health(tx, system, error, now()))
}

/// The last observation of a batch system; `since` is when its current condition began.
fn health(
    tx: &rusqlite::Transaction,
    system: &str,
    error: Option<&str>,
    t: i64,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO batch_health (system, error, since, checked) VALUES (?1, ?2, ?3, ?3)
         ON CONFLICT (system) DO UPDATE SET
             since = CASE WHEN (batch_health.error IS NULL) = (?2 IS NULL) THEN batch_health.since ELSE ?3 END,
             error = ?2, checked = ?3",
        params![system, error, t],
    )?;
    Ok(())
}

/// Batch systems that could not be observed at their last poll: system -> the error, with
/// since when.
pub fn errors(ledger: &Ledger) -> Result<BTreeMap<String, String>> {
    Ok(ledger
        .rows(
            "SELECT system, error, since FROM batch_health WHERE error IS NOT NULL",
            [],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    format!(
                        "{} (since {})",
                        r.get::<_, String>(1)?,
                        crate::plan::format_time(r.get(2)?)
                    ),
                ))
            },
        )?
        .into_iter()
        .collect())
}

/// Holds, releases or removes a submission's jobs on its batch system; returns how many of
/// its jobs, as last observed, the action applies to. `Ok(Err(..))` when the batch system
/// refused or could not be reached.
pub fn control(
    ledger: &mut Ledger,
    submission: &str,
    action: Control,
) -> Result<std::result::Result<usize, String>> {
    let Some(adapter) = adapter(system_of(ledger, submission)?) else {
        return Ok(Ok(0));
    };
    let system = adapter.system().as_str();
    let clusters: Vec<String> = open_clusters(ledger, system)?
        .into_iter()
        .filter(|(_, s)| s == submission)
        .map(|(c, _)| c)
        .collect();
    if clusters.is_empty() {
        return Ok(Ok(0));
    }
    let states: &[&str] = match action {
        Control::Hold => &["idle", "running"],
        Control::Release => &["held"],
        Control::Remove => &["idle", "running", "held"],
    };
    let affected = ledger
        .rows(
            "SELECT state FROM batch_jobs WHERE system = ? AND submission = ?",
            params![system, submission],
            |r| r.get::<_, String>(0),
        )?
        .iter()
        .filter(|s| states.contains(&s.as_str()))
        .count();
    if let Err(e) = adapter.control(&clusters, action) {
        return Ok(Err(e));
    }
    // What the batch system made of it, recorded now: a killed submission's jobs are seen
    // removed even when no controller runs to poll (cancelling takes Slurm a moment).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let polled = poll(ledger, adapter.as_ref())?;
        let open = open_clusters(ledger, system)?;
        let settled = action != Control::Remove || !open.values().any(|s| s == submission);
        if polled.is_err() || settled || std::time::Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(Ok(affected))
}

/// Polls every batch system that has open work, on its own thread, until dropped. A batch
/// system that cannot be observed is asked again with a growing delay (up to `max`), so a
/// struggling controller is not hammered; work resumes at the first good answer.
pub struct Poller {
    stop: Arc<AtomicBool>,
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Poller {
    pub fn start(state: &Path, interval: Duration, max: Duration) -> Poller {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let state = state.to_path_buf();
        std::thread::spawn(move || {
            let mut delays: BTreeMap<&'static str, (Duration, std::time::Instant)> =
                BTreeMap::new();
            let mut open: Option<Ledger> = None;
            while !flag.load(Ordering::Relaxed) {
                if open.is_none() {
                    open = Ledger::open(&state).ok();
                }
                let mut lost = false;
                if let Some(ledger) = open.as_mut() {
                    for system in [
                        BatchSystem::Slurm,
                        BatchSystem::Condor,
                        BatchSystem::Kubernetes,
                    ] {
                        let name = system.as_str();
                        let due = delays
                            .get(name)
                            .is_none_or(|(_, at)| std::time::Instant::now() >= *at);
                        if !due || !has_open_work(ledger, system).unwrap_or(false) {
                            continue;
                        }
                        let Some(a) = adapter(system) else { continue };
                        match poll(ledger, a.as_ref()) {
                            Ok(Ok(_)) => {
                                delays.remove(name);
                            }
                            Ok(Err(e)) => {
                                let next = delays
                                    .get(name)
                                    .map_or(interval, |(d, _)| *d)
                                    .saturating_mul(2)
                                    .min(max);
                                tracing::warn!(
                                    system = name,
                                    error = %e,
                                    retry_seconds = next.as_secs_f64(),
                                    "cannot observe jobs; asking again later"
                                );
                                delays.insert(name, (next, std::time::Instant::now() + next));
                            }
                            Err(e) => {
                                tracing::error!(system = name, error = %e, "cannot record observation");
                                lost = true;
                            }
                        }
                    }
                }
                if lost {
                    open = None; // opened again at the next round
                }
                std::thread::sleep(interval);
            }
        });
        Poller { stop }
    }
}
