//! The Slurm adapter: job ids from `sbatch` output (`Submitted batch job 12`), observation
//! from `squeue --json` (every job slurmctld still holds, finished ones for `MinJobAge`) and
//! `sacct --json` (accounting, for jobs slurmctld no longer holds), control with
//! `scontrol hold|release` and `scancel`.
//!
//! The JSON formats are Slurm's OpenAPI data (v0.0.38 in Slurm 22.05, where numbers are
//! plain and states are strings; newer versions wrap numbers as `{"set", "number"}` and give
//! states as lists): both are read.

use std::collections::BTreeSet;

use cascade_crd::BatchSystem;
use serde_json::Value;

use super::external::{
    Adapter, JobSeen, JobState, json_number, json_text, push_unique, run, run_any, tag_in,
};
use super::local::Control;

pub struct Slurm;

/// Most tasks one pending array entry may stand for (`0-999999` is Slurm's own limit).
const MAX_ARRAY_TASKS: usize = 1_000_000;

impl Adapter for Slurm {
    fn system(&self) -> BatchSystem {
        BatchSystem::Slurm
    }

    fn printed_ids(&self, log: &str) -> Vec<String> {
        let mut ids = Vec::new();
        for line in log.lines() {
            if let Some(rest) = line.split("Submitted batch job ").nth(1) {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                if !digits.is_empty() {
                    push_unique(&mut ids, digits);
                }
            }
        }
        ids
    }

    fn observe(&self, clusters: &[String]) -> Result<Vec<JobSeen>, String> {
        // Slurm 22.05 ignores filters with --json; newer ones honour them, but fail on an id
        // they no longer know. All jobs, filtered here, works with both.
        let live = parse_squeue(&run("squeue", &["--json".into(), "--states=all".into()])?)?;
        let wanted: BTreeSet<&str> = clusters.iter().map(String::as_str).collect();
        let mut seen: Vec<JobSeen> = live
            .into_iter()
            .filter(|j| wanted.contains(j.cluster.as_str()) || j.tag.is_some())
            .collect();
        let present: BTreeSet<String> = seen.iter().map(|j| j.cluster.clone()).collect();
        let gone: Vec<String> = clusters
            .iter()
            .filter(|c| !present.contains(*c))
            .cloned()
            .collect();
        if !gone.is_empty() {
            seen.extend(accounting(&gone)?);
        }
        Ok(seen)
    }

    fn control(&self, clusters: &[String], action: Control) -> Result<(), String> {
        if clusters.is_empty() {
            return Ok(());
        }
        let list = clusters.join(",");
        let (program, args): (&str, Vec<String>) = match action {
            Control::Hold => ("scontrol", vec!["hold".into(), list]),
            Control::Release => ("scontrol", vec!["release".into(), list]),
            Control::Remove => ("scancel", clusters.to_vec()),
        };
        let out = run_any(program, &args)?;
        // scontrol exits 1 when some task of an array has already finished, and says so per
        // task: that is no failure of the hold.
        let benign = |l: &str| {
            l.trim().is_empty() || l.contains("No error") || l.contains("already finished")
        };
        if out.status == Some(0) || out.stderr.lines().chain(out.stdout.lines()).all(benign) {
            Ok(())
        } else {
            Err(super::external::failure(program, &out))
        }
    }
}

/// Jobs of `clusters` from accounting. Slurm says "Nothing found" (9003) for ids it has no
/// record of, which is an answer, not an error.
fn accounting(clusters: &[String]) -> Result<Vec<JobSeen>, String> {
    let text = run(
        "sacct",
        &["--json".into(), format!("--jobs={}", clusters.join(","))],
    )?;
    parse_sacct(&text)
}

fn parse_json(text: &str, what: &str) -> Result<Value, String> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| format!("`{what} --json` printed something that is not JSON: {e}"))?;
    let errors: Vec<String> = v
        .get("errors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|e| json_number(e.get("error_number")) != Some(9003))
        .map(|e| {
            let d = json_text(e.get("description"));
            if d.is_empty() {
                json_text(e.get("error"))
            } else {
                d
            }
        })
        .collect();
    if !errors.is_empty() {
        return Err(format!("`{what}` reported: {}", errors.join("; ")));
    }
    Ok(v)
}

/// The `jobs` entries that have a job id, with it.
fn entries(v: &Value) -> impl Iterator<Item = (&Value, i64)> {
    v.get("jobs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|j| json_number(j.get("job_id")).map(|id| (j, id)))
}

/// Jobs from `squeue --json` output. A pending array not yet split into tasks is one entry
/// standing for all of its pending tasks (`array_task_string`).
pub fn parse_squeue(text: &str) -> Result<Vec<JobSeen>, String> {
    let v = parse_json(text, "squeue")?;
    let mut out = Vec::new();
    for (j, job_id) in entries(&v) {
        let array = json_number(j.get("array_job_id")).filter(|a| *a > 0);
        let cluster = array.unwrap_or(job_id).to_string();
        let state_name = json_text(j.get("job_state"));
        let reason = json_text(j.get("state_reason"));
        let state = state_of(first(&state_name), &reason);
        let exit_code = if state.is_over() {
            exit_of(j.get("exit_code"))
        } else {
            None
        };
        let tag = tag_in(&json_text(j.get("comment")));
        let reason = describe(&state_name, &reason);
        let mut push = |job: String| {
            out.push(JobSeen {
                job,
                cluster: cluster.clone(),
                state,
                exit_code,
                reason: reason.clone(),
                tag: tag.clone(),
            })
        };
        match (array, json_number(j.get("array_task_id"))) {
            (Some(a), Some(task)) => push(format!("{a}_{task}")),
            (Some(a), None) => {
                for task in expand_array(&json_text(j.get("array_task_string")))? {
                    push(format!("{a}_{task}"));
                }
            }
            (None, _) => push(job_id.to_string()),
        }
    }
    Ok(out)
}

/// Jobs from `sacct --json` output (steps are not jobs; the allocation's state counts).
pub fn parse_sacct(text: &str) -> Result<Vec<JobSeen>, String> {
    let v = parse_json(text, "sacct")?;
    let mut out = Vec::new();
    for (j, job_id) in entries(&v) {
        let array = j.get("array");
        let array_id = json_number(array.and_then(|a| a.get("job_id"))).filter(|a| *a > 0);
        let task = json_number(array.and_then(|a| a.get("task_id")));
        let state_name = json_text(j.get("state").and_then(|s| s.get("current")));
        let reason = json_text(j.get("state").and_then(|s| s.get("reason")));
        let state = state_of(first(&state_name), &reason);
        let exit_code = if state.is_over() {
            sacct_exit(j.get("exit_code"), state)
        } else {
            None
        };
        let (job, cluster) = match (array_id, task) {
            (Some(a), Some(t)) => (format!("{a}_{t}"), a.to_string()),
            _ => (job_id.to_string(), job_id.to_string()),
        };
        out.push(JobSeen {
            job,
            cluster,
            state,
            exit_code,
            reason: describe(&state_name, &reason),
            tag: tag_in(&json_text(j.get("comment").and_then(|c| c.get("job")))),
        });
    }
    Ok(out)
}

fn first(state: &str) -> &str {
    state.split(',').next().unwrap_or("")
}

fn describe(state: &str, reason: &str) -> String {
    if reason.is_empty() || reason == "None" {
        state.to_string()
    } else {
        format!("{state} ({reason})")
    }
}

/// Slurm's job states (`man squeue`, JOB STATE CODES) in the ledger's words. A held job is
/// pending with a hold reason; a running job keeps running when held.
pub fn state_of(state: &str, reason: &str) -> JobState {
    match state {
        "PENDING" | "REQUEUED" | "REQUEUE_FED" | "RESV_DEL_HOLD"
            if reason.starts_with("JobHeld") =>
        {
            JobState::Held
        }
        "REQUEUE_HOLD" | "SUSPENDED" | "STOPPED" | "RESV_DEL_HOLD" => JobState::Held,
        "RUNNING" | "COMPLETING" | "CONFIGURING" | "RESIZING" | "SIGNALING" | "STAGE_OUT" => {
            JobState::Running
        }
        "COMPLETED" => JobState::Succeeded,
        "CANCELLED" => JobState::Removed,
        "FAILED" | "TIMEOUT" | "NODE_FAIL" | "OUT_OF_MEMORY" | "BOOT_FAIL" | "DEADLINE"
        | "PREEMPTED" | "SPECIAL_EXIT" => JobState::Failed,
        // PENDING, REQUEUED and any state this version does not know yet: not over.
        _ => JobState::Idle,
    }
}

/// squeue's `exit_code`: a wait status (22.05) or `{return_code, signal}` (newer).
fn exit_of(v: Option<&Value>) -> Option<i32> {
    let v = v?;
    if let Some(status) = v.as_i64() {
        let status = status as i32;
        return Some(if status & 0x7f == 0 {
            (status >> 8) & 0xff
        } else {
            128 + (status & 0x7f)
        });
    }
    // `signal.signal_id` (sacct, 22.05) or `signal.id` (newer).
    let signal = v
        .get("signal")
        .and_then(|s| json_number(s.get("signal_id")).or_else(|| json_number(s.get("id"))));
    match signal {
        Some(s) if s > 0 => Some(128 + s as i32),
        _ => json_number(v.get("return_code")).map(|c| c as i32),
    }
}

/// sacct's `exit_code` is `{status, return_code}`; Slurm 22.05 reports `SUCCESS, 0` for some
/// failed jobs, so a code of 0 is only believed for a job that succeeded.
fn sacct_exit(v: Option<&Value>, state: JobState) -> Option<i32> {
    let code = exit_of(v)?;
    (code != 0 || state == JobState::Succeeded).then_some(code)
}

/// The task ids of an array expression: `0-3`, `1,3,5-7`, `0-15:4`, `0-999%10`.
pub fn expand_array(text: &str) -> Result<Vec<u64>, String> {
    let body = text.split('%').next().unwrap_or("");
    let bad = || format!("cannot read the array task list `{text}` that Slurm reported");
    let mut tasks = Vec::new();
    for part in body.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (range, step) = match part.split_once(':') {
            Some((r, s)) => (r, s.parse::<u64>().map_err(|_| bad())?),
            None => (part, 1),
        };
        let (lo, hi) = match range.split_once('-') {
            Some((a, b)) => (
                a.parse::<u64>().map_err(|_| bad())?,
                b.parse::<u64>().map_err(|_| bad())?,
            ),
            None => {
                let n = range.parse::<u64>().map_err(|_| bad())?;
                (n, n)
            }
        };
        if step == 0 || hi < lo || tasks.len() as u64 + (hi - lo) / step >= MAX_ARRAY_TASKS as u64 {
            return Err(bad());
        }
        tasks.extend((lo..=hi).step_by(step as usize));
    }
    Ok(tasks)
}

#[cfg(test)]
mod tests;
