//! The jobs the local batch daemon runs: started by the daemon itself, each as the leader of
//! its own process group, so a job costs one fork and exec and nothing else of its own (no
//! runner process per job). The daemon copies each job's output into its capped log, reaps
//! it, and records the ends of the jobs that finished together in the transaction that
//! claims the idle jobs taking their slots.
//!
//! A job outlives nothing: when the daemon dies, the next daemon kills what is left of the
//! jobs it was running and runs them again (`requeue_orphans`), as a machine's failure, not
//! the jobs'.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::params;

use super::process;
use super::runner::{self, CappedLog, Job, LOG_CAP_BYTES, LOG_DRAIN};
use crate::catalog::NewFile;
use crate::ledger::{Ledger, LedgerError, Result, now};

/// A job whose command runs.
struct Running {
    job: Job,
    dir: PathBuf,
    child: std::process::Child,
    /// The process's start time, which tells its group from a later one with the same id.
    start: Option<u64>,
    /// The job's output until its processes close it.
    output: Option<std::io::PipeReader>,
    log: CappedLog<File>,
    /// Exit code and when it was seen; the job ends when its output closes too, or
    /// [`LOG_DRAIN`] later (a process it left behind may hold the output open for ever).
    exited: Option<(i32, Instant)>,
}

/// A job that ended, waiting for its end to be recorded.
struct Ended {
    job: Job,
    dir: PathBuf,
    code: i32,
    log: CappedLog<File>,
}

pub struct Supervisor {
    state: PathBuf,
    slots: usize,
    running: Vec<Running>,
    ended: Vec<Ended>,
    /// While the disk is full, ends wait to be recorded until then (nothing is lost).
    retry_at: Option<Instant>,
}

impl Supervisor {
    pub fn new(state: &Path, slots: usize) -> Self {
        Supervisor {
            state: state.to_path_buf(),
            slots,
            running: Vec::new(),
            ended: Vec::new(),
            retry_at: None,
        }
    }

    /// Whether any job runs or waits for its end to be recorded.
    pub fn busy(&self) -> bool {
        !self.running.is_empty() || !self.ended.is_empty()
    }

    /// Free slots (a held job keeps its slot).
    pub fn free(&self) -> usize {
        self.slots.saturating_sub(self.running.len())
    }

    /// Whether ends wait to be recorded now.
    pub fn has_ends(&self) -> bool {
        !self.ended.is_empty() && self.retry_at.is_none_or(|t| Instant::now() >= t)
    }

    /// Waits up to `limit` for output of a running job, then copies what came into the logs
    /// and collects the jobs that ended.
    pub fn wait(&mut self, limit: Duration) {
        let mut fds: Vec<libc::pollfd> = self
            .running
            .iter()
            .filter_map(|r| r.output.as_ref())
            .map(|o| libc::pollfd {
                fd: o.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let timeout = limit.as_millis().min(i32::MAX as u128) as i32;
        // An interrupted or failed poll only shortens the wait.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        self.collect();
    }

    /// Copies available output into the logs, reaps exited jobs, and moves the ended ones
    /// to be recorded.
    fn collect(&mut self) {
        let mut i = 0;
        while i < self.running.len() {
            let r = &mut self.running[i];
            let closed = pump(r);
            if r.exited.is_none() {
                r.exited = reap(&mut r.child, closed).map(|code| (code, Instant::now()));
            }
            let over = match r.exited {
                Some((_, at)) => r.output.is_none() || at.elapsed() >= LOG_DRAIN,
                None => false,
            };
            if !over {
                i += 1;
                continue;
            }
            let r = self.running.swap_remove(i);
            let (code, _) = r.exited.unwrap_or((128, Instant::now()));
            // A hold that raced with the end leaves what the job left behind stopped.
            process::signal_group(i64::from(r.child.id()), r.start, libc::SIGCONT);
            self.ended.push(Ended {
                job: r.job,
                dir: r.dir,
                code,
                log: r.log,
            });
        }
    }

    /// Records the ended jobs and claims idle jobs for the free slots, in one transaction,
    /// then starts them. Returns how many started.
    pub fn record_and_start(&mut self, ledger: &mut Ledger) -> Result<usize> {
        let record = self.has_ends();
        let ended: Vec<Ended> = if record {
            std::mem::take(&mut self.ended)
        } else {
            Vec::new()
        };
        let mut outputs: Vec<Vec<NewFile>> = Vec::with_capacity(ended.len());
        for e in &ended {
            outputs.push(runner::outputs_if_succeeded(
                ledger, &e.job, &e.dir, e.code,
            )?);
        }
        // Slots of the jobs ending now are free once their ends are recorded.
        let free = self.free() as i64;
        let written = ledger.write(|tx| {
            let mut conflicts = Vec::with_capacity(ended.len());
            for (e, out) in ended.iter().zip(&outputs) {
                conflicts.push(runner::record_end_in(tx, &e.job, e.code, out)?);
            }
            let claimed: Vec<i64> = {
                let mut stmt = tx.prepare_cached(
                    "UPDATE jobs SET state = 'running', started = ?1 WHERE id IN (SELECT id FROM jobs WHERE state = 'idle' AND delegated = 0 ORDER BY id LIMIT ?2) RETURNING id",
                )?;
                stmt.query_map(params![now(), free], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?
            };
            Ok((conflicts, claimed))
        });
        let (conflicts, mut claimed) = match written {
            Ok(w) => w,
            Err(LedgerError::Sql { source, .. })
                if source.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) =>
            {
                self.ended = ended;
                self.retry_at = Some(Instant::now() + Duration::from_secs(1));
                return Ok(0);
            }
            Err(e) => return Err(e),
        };
        self.retry_at = None;
        for (mut e, conflicts) in ended.into_iter().zip(conflicts) {
            if !conflicts.is_empty() {
                runner::note_conflicts(&mut e.log.to, &conflicts)?;
            }
        }
        claimed.sort_unstable();
        self.start(ledger, &claimed)?;
        Ok(claimed.len())
    }

    /// Starts the claimed jobs, then records their pids. A hold or a removal that landed
    /// between the claim and the start is applied to the started process here.
    fn start(&mut self, ledger: &mut Ledger, claimed: &[i64]) -> Result<()> {
        let mut started = Vec::with_capacity(claimed.len());
        for &id in claimed {
            let job = runner::load(ledger, id)?;
            let dir = runner::fresh_dir(&self.state, &job)?;
            let mut log = CappedLog::new(File::create(dir.join("job.log"))?, LOG_CAP_BYTES);
            match runner::start(&self.state, &job, &dir, &mut log.to)? {
                Ok(s) => {
                    set_nonblocking(&s.output)?;
                    let pid = i64::from(s.child.id());
                    let start = process::start_time(pid);
                    started.push((id, pid, start));
                    self.running.push(Running {
                        job,
                        dir,
                        child: s.child,
                        start,
                        output: Some(s.output),
                        log,
                        exited: None,
                    });
                }
                Err(code) => self.ended.push(Ended {
                    job,
                    dir,
                    code,
                    log,
                }),
            }
        }
        if started.is_empty() {
            return Ok(());
        }
        let states: Vec<Option<String>> = ledger.write(|tx| {
            let mut stmt = tx.prepare_cached(
                "UPDATE jobs SET pid = ?, pid_start = ?, state = CASE state WHEN 'idle' THEN 'running' ELSE state END WHERE id = ? AND state IN ('running', 'held', 'idle') RETURNING state",
            )?;
            started
                .iter()
                .map(|(id, pid, start)| {
                    let mut rows = stmt.query(params![pid, start.map(|s| s as i64), id])?;
                    rows.next()?.map(|r| r.get(0)).transpose()
                })
                .collect()
        })?;
        for ((_, pid, start), state) in started.iter().zip(states) {
            match state.as_deref() {
                Some("held") => {
                    process::signal_group(*pid, *start, libc::SIGSTOP);
                }
                None => {
                    process::signal_group(*pid, *start, libc::SIGKILL);
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Reads of one job's output per look: a job that writes without end (`yes`) must not keep
/// the daemon from the other jobs.
const READS_PER_LOOK: usize = 16;

/// Copies what the job wrote into its log (up to [`READS_PER_LOOK`] reads); returns whether
/// its output just closed.
fn pump(r: &mut Running) -> bool {
    let Some(output) = r.output.as_mut() else {
        return false;
    };
    let mut buf = [0u8; 64 * 1024];
    for _ in 0..READS_PER_LOOK {
        match output.read(&mut buf) {
            Ok(0) => {
                r.output = None;
                return true;
            }
            Ok(n) => {
                // A log that cannot be written (a full disk) loses output, not the job.
                let _ = r.log.write(&buf[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return false, // nothing more for now
        }
    }
    false
}

/// The job's exit code if it has exited. Its output closing means it is exiting: it is
/// waited for a moment, so that a short job's end is seen now, not at the next look.
fn reap(child: &mut std::process::Child, closing: bool) -> Option<i32> {
    let tries = if closing { 50 } else { 1 };
    for attempt in 0..tries {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(process::exit_code(status));
        }
        if attempt + 1 < tries {
            std::thread::sleep(Duration::from_micros(100));
        }
    }
    None
}

fn set_nonblocking(output: &std::io::PipeReader) -> std::io::Result<()> {
    let fd = output.as_raw_fd();
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Jobs that a daemon which died was running (or had claimed): what is left of their
/// process groups is killed (so their inputs are never processed twice at once), and they
/// run again from the start, up to [`super::local::MAX_LOST_RUNS`] times, after which they
/// fail. Called by a daemon as it starts, holding the lock, so no other daemon runs them.
pub fn requeue_orphans(ledger: &mut Ledger) -> Result<usize> {
    let rows: Vec<(i64, Option<i64>, Option<u64>)> = ledger.rows(
        "SELECT id, pid, pid_start FROM jobs WHERE state IN ('running', 'held') AND delegated = 0",
        [],
        |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get::<_, Option<i64>>(2)?.map(|s| s as u64),
            ))
        },
    )?;
    if rows.is_empty() {
        return Ok(0);
    }
    for (_, pid, start) in &rows {
        if let Some(pid) = *pid {
            process::signal_group(pid, *start, libc::SIGCONT);
            process::signal_group(pid, *start, libc::SIGKILL);
        }
    }
    ledger.write(|tx| {
        for (id, pid, _) in &rows {
            // Claimed but never known to have started: not counted as a run.
            let counted = i64::from(pid.is_some());
            let requeued = tx.execute(
                "UPDATE jobs SET state = CASE state WHEN 'held' THEN 'held' ELSE 'idle' END, pid = NULL, pid_start = NULL, started = NULL, attempts = attempts + ?1 WHERE id = ?2 AND state IN ('running', 'held') AND attempts + ?1 <= ?3",
                params![counted, id, super::local::MAX_LOST_RUNS],
            )?;
            if requeued > 0 {
                continue;
            }
            tx.execute(
                "UPDATE jobs SET state = 'failed', finished = ? WHERE id = ? AND state IN ('running', 'held')",
                params![now(), id],
            )?;
            tx.execute(
                "UPDATE project_files SET status = 'failed', updated = ? WHERE file IN (SELECT file FROM job_inputs WHERE job = ?) AND project = (SELECT submission FROM jobs WHERE id = ?) AND status = 'delivered'",
                params![now(), id, id],
            )?;
        }
        Ok(())
    })?;
    Ok(rows.len())
}
