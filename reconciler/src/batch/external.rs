//! Batch systems that Cascade observes but does not run: Slurm, HTCondor (directly or
//! through jobsub) and Kubernetes. A launch script submits their jobs; an adapter binds the submission to
//! them from what the script printed (and from the submission identity found on the jobs),
//! observes all open submissions' jobs in one batched call per poll, and holds, releases or
//! removes them with the batch system's own commands.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cascade_crd::BatchSystem;

use super::local::Control;

/// A job's state in the words the ledger keeps (the local batch system's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JobState {
    Idle,
    Running,
    Held,
    Succeeded,
    Failed,
    Removed,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Idle => "idle",
            JobState::Running => "running",
            JobState::Held => "held",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Removed => "removed",
        }
    }

    pub fn is_over(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Removed
        )
    }
}

/// One job (an array task, a cluster's proc) as the batch system reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobSeen {
    /// The job's own id: `1234`, `1234_7` (array task), `5678.0@schedd`.
    pub job: String,
    /// The id the submission is bound by: the Slurm job or array id, the HTCondor cluster
    /// (with its schedd).
    pub cluster: String,
    pub state: JobState,
    pub exit_code: Option<i32>,
    /// Why it is in that state, in the batch system's words (hold reason, Slurm reason).
    pub reason: String,
    /// The identity the job carries (a Slurm comment, the HTCondor ClassAd
    /// `CascadeSubmission`) when it is a Cascade tag (see [`tag_of`]).
    pub tag: Option<String>,
}

/// The identity Cascade writes on the jobs whose submission command it builds, and that
/// launch scripts find in `CASCADE_JOB_TAG`: the installation (a state directory's random
/// id, since submission ids repeat across installations) and the submission.
pub fn tag_of(installation: &str, submission: &str) -> String {
    format!("cascade:{installation}/{submission}")
}

/// The tag in a job's comment or ClassAd value, if it is one of Cascade's.
pub fn tag_in(text: &str) -> Option<String> {
    text.trim()
        .starts_with("cascade:")
        .then(|| text.trim().to_string())
        .filter(|t| t.contains('/'))
}

/// What a launch exports so that its own submit command can tag its jobs.
pub const ENV_JOB_TAG: &str = "CASCADE_JOB_TAG";

/// How a batch system is driven. Every method that runs a command returns the batch
/// system's own error text when it fails, never a guess.
pub trait Adapter: Send + Sync {
    fn system(&self) -> BatchSystem;
    /// The job ids a launch printed (`Submitted batch job 12`, `submitted to cluster 34.`),
    /// as clusters, in the order printed, without repeats.
    fn printed_ids(&self, log: &str) -> Vec<String>;
    /// Every job of the given clusters, and any job tagged with a Cascade submission, in one
    /// batched observation (a poll).
    fn observe(&self, clusters: &[String]) -> Result<Vec<JobSeen>, String>;
    /// Holds, releases or removes every job of the given clusters.
    fn control(&self, clusters: &[String], action: Control) -> Result<(), String>;
    /// The index of the delegated job (`cascade submit`'s job N) whose end this observation
    /// is, when the jobs cannot record their ends themselves (Kubernetes pods do not reach
    /// the ledger; Slurm tasks run `cascade run-task`, which does).
    fn index_of(&self, _job: &JobSeen) -> Option<i64> {
        None
    }
}

/// The adapter of a batch system Cascade observes; `None` for the local one (which Cascade
/// runs itself) and for systems without an adapter.
pub fn adapter(system: BatchSystem) -> Option<Box<dyn Adapter>> {
    match system {
        BatchSystem::Slurm => Some(Box::new(super::slurm::Slurm)),
        BatchSystem::Condor => Some(Box::new(super::condor::Condor)),
        BatchSystem::Kubernetes => Some(Box::new(super::kubernetes::Kubernetes)),
        BatchSystem::Local => None,
    }
}

pub fn parse_system(text: &str) -> Option<BatchSystem> {
    serde_json::from_value(serde_json::Value::String(text.to_string())).ok()
}

/// Longest a batch system command may take before it counts as failed (a controller that
/// does not answer must not stop observation of the others, nor hang the controller).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// What a batch command printed on success.
pub struct Output {
    pub stdout: String,
    pub stderr: String,
    pub status: Option<i32>,
}

/// Runs a batch system command with a deadline; its stdout on exit 0, otherwise an error
/// with the command, its exit status and what it said.
pub fn run(program: &str, args: &[String]) -> Result<String, String> {
    let out = run_any(program, args)?;
    if out.status == Some(0) {
        Ok(out.stdout)
    } else {
        Err(failure(program, &out))
    }
}

/// The error text of a batch command that did not succeed.
pub fn failure(program: &str, out: &Output) -> String {
    let said = first_lines(if out.stderr.trim().is_empty() {
        &out.stdout
    } else {
        &out.stderr
    });
    match out.status {
        Some(code) => format!("`{program}` exited with {code}: {said}"),
        None => format!("`{program}` was ended by a signal: {said}"),
    }
}

/// Runs a command with a deadline and returns whatever it printed and its exit status.
pub fn run_any(program: &str, args: &[String]) -> Result<Output, String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run `{program}`: {e}"))?;
    // Both pipes are read on threads so that a command printing much never blocks on a full
    // pipe while we wait for it.
    let (Some(mut stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
        let _ = child.kill();
        return Err(format!("cannot read what `{program}` prints"));
    };
    let out = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stdout.read_to_end(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stderr.read_to_end(&mut s);
        s
    });
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "`{program}` did not answer within {} s",
                    COMMAND_TIMEOUT.as_secs()
                ));
            }
            Err(e) => return Err(format!("cannot wait for `{program}`: {e}")),
        }
    };
    let text = |h: std::thread::JoinHandle<Vec<u8>>| {
        String::from_utf8_lossy(&h.join().unwrap_or_default()).into_owned()
    };
    Ok(Output {
        stdout: text(out),
        stderr: text(err),
        status: status.code(),
    })
}

fn first_lines(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(3)
        .collect();
    if lines.is_empty() {
        "(it printed nothing)".into()
    } else {
        lines.join(" / ")
    }
}

/// Adds `id` unless it is there already (ids keep the order they were printed in).
pub fn push_unique(ids: &mut Vec<String>, id: String) {
    if !ids.contains(&id) {
        ids.push(id);
    }
}

/// A JSON number that newer batch system versions wrap as `{"set": true, "number": N}`.
pub fn json_number(v: Option<&serde_json::Value>) -> Option<i64> {
    let v = v?;
    if let Some(n) = v.as_i64() {
        return Some(n);
    }
    if v.get("set").and_then(|s| s.as_bool()) == Some(false) {
        return None;
    }
    v.get("number").and_then(|n| n.as_i64())
}

/// A JSON string that newer versions give as a list of strings (the first one counts).
pub fn json_text(v: Option<&serde_json::Value>) -> String {
    match v {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str())
            .collect::<Vec<_>>()
            .join(","),
        _ => String::new(),
    }
}

/// The job `id` among `jobs` (tests of the adapters' parsers).
#[cfg(test)]
pub fn job_named<'a>(jobs: &'a [JobSeen], id: &str) -> &'a JobSeen {
    jobs.iter()
        .find(|j| j.job == id)
        .unwrap_or_else(|| panic!("no job {id} in {jobs:#?}"))
}
