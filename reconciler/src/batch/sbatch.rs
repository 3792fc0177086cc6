//! Jobs described natively (`cascade submit` in a job type whose `batchSystem` is `slurm`):
//! Cascade records the jobs as the local batch system does (command, input files dealt out
//! round robin) but marks them delegated (the local daemon leaves them alone), and writes one
//! `sbatch --array` call whose task N runs job N with `cascade run-task`. The task's runner is the local one, so input files
//! are consumed or failed and outputs declared exactly as for local jobs; Slurm runs, holds
//! and kills the tasks, and its observation gives the job counts.

use std::path::{Path, PathBuf};

use rusqlite::{OptionalExtension, params};

use super::external::{Adapter, run, tag_of};
use super::local::{JobSpec, record_delegated};
use super::slurm::Slurm;
use crate::launch::shell::quote;
use crate::ledger::{Ledger, LedgerError, Result, SqlContext, now};

/// Resources asked of Slurm for each task (`sbatch` options).
#[derive(Clone, Debug, Default)]
pub struct Resources {
    /// `--time` (e.g. `10:00`, `1-00:00:00`).
    pub time: Option<String>,
    /// `--mem` (e.g. `2G`).
    pub mem: Option<String>,
    /// `--cpus-per-task`.
    pub cpus: Option<u32>,
    /// `--partition`.
    pub partition: Option<String>,
    /// Any other `sbatch` options, as given (each one argument, e.g. `--qos=short`).
    pub extra: Vec<String>,
}

/// The `sbatch` arguments for an array of `tasks` tasks running `script`.
pub fn sbatch_args(
    submission: &str,
    tag: &str,
    tasks: usize,
    cwd: &Path,
    output: &Path,
    script: &Path,
    r: &Resources,
) -> Vec<String> {
    let mut args = vec![
        "--parsable".to_string(),
        format!("--array=0-{}", tasks.saturating_sub(1)),
        format!("--job-name={submission}"),
        format!("--comment={tag}"),
        format!("--chdir={}", cwd.display()),
        format!("--output={}", output.display()),
    ];
    args.extend(r.time.as_ref().map(|t| format!("--time={t}")));
    args.extend(r.mem.as_ref().map(|m| format!("--mem={m}")));
    args.extend(r.cpus.map(|c| format!("--cpus-per-task={c}")));
    args.extend(r.partition.as_ref().map(|p| format!("--partition={p}")));
    args.extend(r.extra.iter().cloned());
    args.push(script.display().to_string());
    args
}

/// The batch script every task runs: the task index picks the job.
pub fn task_script(exe: &Path, state: &Path, submission: &str) -> String {
    format!(
        "#!/bin/sh\nexec {} run-task --state {} --submission {} --index \"$SLURM_ARRAY_TASK_ID\"\n",
        quote(&exe.display().to_string()),
        quote(&state.display().to_string()),
        quote(submission),
    )
}

/// Records the jobs and submits them as one Slurm array. Idempotent: once an array is bound
/// to the submission it is never submitted again. Returns the Slurm job id of the array.
pub fn submit(
    ledger: &mut Ledger,
    submission: &str,
    input: Option<&str>,
    spec: &JobSpec,
    resources: &Resources,
) -> Result<String> {
    let tasks = record_delegated(ledger, submission, input, spec)?;
    if let Some(bound) = bound_array(ledger, submission)? {
        return Ok(bound);
    }
    let tag = tag_of(&ledger.installation()?, submission);
    // A launch run again after a crash between sbatch's answer and its binding: Slurm knows
    // the array by its tag, so it is bound, not submitted twice.
    let earlier = Slurm
        .observe(&[])
        .map_err(LedgerError::Invalid)?
        .into_iter()
        .find(|j| j.tag.as_deref() == Some(tag.as_str()));
    if let Some(job) = earlier {
        bind(ledger, &job.cluster, submission)?;
        return Ok(job.cluster);
    }
    let state = std::path::absolute(&ledger.dir)?;
    let dir: PathBuf = state.join("jobs").join(submission);
    std::fs::create_dir_all(&dir)?;
    let script = dir.join("slurm-task.sh");
    std::fs::write(
        &script,
        task_script(&std::env::current_exe()?, &state, submission),
    )?;
    let args = sbatch_args(
        submission,
        &tag,
        tasks,
        spec.cwd,
        &dir.join("slurm-%a.out"),
        &script,
        resources,
    );
    let printed = run("sbatch", &args).map_err(LedgerError::Invalid)?;
    let id: String = printed.trim().split(';').next().unwrap_or("").to_string();
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(LedgerError::Invalid(format!(
            "`sbatch --parsable` printed `{}`, not a job id",
            printed.trim()
        )));
    }
    // Bound at once, so that a launch run again after a crash finds it and submits nothing.
    bind(ledger, &id, submission)?;
    Ok(id)
}

fn bind(ledger: &mut Ledger, cluster: &str, submission: &str) -> Result<()> {
    ledger.write(|tx| super::observer::bind(tx, "slurm", cluster, submission))
}

fn bound_array(ledger: &Ledger, submission: &str) -> Result<Option<String>> {
    ledger
        .conn
        .query_row(
            "SELECT cluster FROM batch_clusters WHERE system = 'slurm' AND submission = ? ORDER BY bound LIMIT 1",
            [submission],
            |r| r.get(0),
        )
        .optional()
        .at(ledger)
}

/// Runs job `index` of `submission` inside its Slurm task; returns the job's exit code, which
/// the task exits with (so Slurm reports the job's failure as the task's).
pub fn run_task(state: &Path, submission: &str, index: i64) -> Result<i32> {
    let mut ledger = Ledger::open(state)?;
    let row: Option<(i64, String, Option<i64>)> = ledger
        .conn
        .query_row(
            "SELECT id, state, exit_code FROM jobs WHERE submission = ? AND idx = ? AND delegated = 1",
            params![submission, index],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .at(&ledger)?;
    let Some((id, job_state, exit)) = row else {
        return Err(LedgerError::Invalid(format!(
            "submission `{submission}` has no job {index}"
        )));
    };
    // A task Slurm runs again (requeued after a node failure) finds its job running; one that
    // ended already is not run twice.
    if !matches!(job_state.as_str(), "idle" | "running") {
        eprintln!(
            "cascade: job {index} of {submission} already ended ({job_state}); not run again"
        );
        return Ok(exit.unwrap_or(1) as i32);
    }
    ledger.write(|tx| {
        tx.execute(
            "UPDATE jobs SET state = 'running', started = ? WHERE id = ?",
            params![now(), id],
        )
    })?;
    drop(ledger);
    super::runner::run_job(state, id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_array_of_n_tasks_counts_from_zero_and_carries_the_identity() {
        let r = Resources {
            time: Some("10:00".into()),
            mem: Some("2G".into()),
            cpus: Some(2),
            partition: None,
            extra: vec!["--qos=short".into()],
        };
        let args = sbatch_args(
            "exp.gen.1",
            "cascade:0123456789abcdef/exp.gen.1",
            5,
            Path::new("/w"),
            Path::new("/s/o-%a"),
            Path::new("/s/t.sh"),
            &r,
        );
        assert_eq!(
            args,
            [
                "--parsable",
                "--array=0-4",
                "--job-name=exp.gen.1",
                "--comment=cascade:0123456789abcdef/exp.gen.1",
                "--chdir=/w",
                "--output=/s/o-%a",
                "--time=10:00",
                "--mem=2G",
                "--cpus-per-task=2",
                "--qos=short",
                "/s/t.sh"
            ]
        );
    }

    #[test]
    fn the_task_script_keeps_hostile_paths_literal() {
        let script = task_script(
            Path::new("/opt/cascade bin/cascade"),
            Path::new("/srv/st'ate;rm -rf ~"),
            "exp.gen.1",
        );
        // Run the script's exec line through the real shell with `printf` in place of the
        // program: each value arrives as one argument, unchanged.
        let line = script.lines().nth(1).unwrap().replacen(
            "exec '/opt/cascade bin/cascade'",
            "printf '%s\\n'",
            1,
        );
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(&line)
            .env("SLURM_ARRAY_TASK_ID", "3")
            .output()
            .unwrap();
        let args: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        assert_eq!(
            args,
            [
                "run-task",
                "--state",
                "/srv/st'ate;rm -rf ~",
                "--submission",
                "exp.gen.1",
                "--index",
                "3"
            ]
        );
    }
}
