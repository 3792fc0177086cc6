//! Cascade on Slurm against raw `sbatch`, on the single-node cluster of `scripts/slurm-up.sh`:
//!
//! - an array of N trivial tasks (default 1,000) submitted with `sbatch --array`, timed from
//!   the submit until Slurm reports every task over (polling `squeue` every 200 ms);
//! - the same N tasks as a Cascade generator stage (`cascade submit --batch-system slurm`
//!   writes the array; each task runs its job through Cascade's runner), timed from
//!   `cascade run` to its end with the stage Completed;
//! - from that run: the time from the last task's end (its runner recording it) to the stage
//!   being marked Completed, with the poll interval used.
//!
//! Run with `cargo bench -p cascade --bench slurm -- [--tasks N] [--poll 1s]`. Figures are
//! printed, never asserted.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cascade::ledger::Ledger;

mod common;

fn fresh(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cascade-bench-slurm-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// Whether any task of job `id` is not over yet, as squeue says.
fn unfinished(id: &str) -> bool {
    let out = Command::new("squeue")
        .args([
            "-h",
            "-t",
            "PENDING,RUNNING,COMPLETING,CONFIGURING",
            "-o",
            "%i",
            "-j",
            id,
        ])
        .output()
        .expect("squeue");
    !out.stdout.is_empty()
}

fn raw_sbatch(tasks: usize) -> f64 {
    let dir = fresh("raw");
    let started = Instant::now();
    let out = Command::new("sbatch")
        .args([
            "--parsable",
            &format!("--array=0-{}", tasks - 1),
            "--output=/dev/null",
            "--wrap",
            "true",
        ])
        .current_dir(&dir)
        .output()
        .expect("sbatch");
    assert!(out.status.success(), "sbatch failed");
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    while unfinished(&id) {
        std::thread::sleep(Duration::from_millis(200));
    }
    started.elapsed().as_secs_f64()
}

/// (wall seconds of `cascade run`, ms from the last task's end to the stage Completed).
fn cascade_run(tasks: usize, poll: &str) -> (f64, i64) {
    let dir = fresh("cascade");
    let yaml = format!(
        "apiVersion: cascade.dev/v1alpha1\nkind: LoginSetup\nmetadata: {{name: here, namespace: exp}}\nspec: {{host: localhost, account: prod}}\n---\napiVersion: cascade.dev/v1alpha1\nkind: JobType\nmetadata: {{name: job, namespace: exp}}\nspec:\n  batchSystem: slurm\n  launchScript: cascade submit --batch-system slurm --jobs {tasks} -- true\n  outputFilePatterns: [\"%.out\"]\n---\napiVersion: cascade.dev/v1alpha1\nkind: Campaign\nmetadata: {{name: c, namespace: exp}}\nspec:\n  defaults: {{loginSetup: here, jobType: job, softwareVersion: v1, completion: {{type: complete, percent: 100}}}}\n---\napiVersion: cascade.dev/v1alpha1\nkind: CampaignStage\nmetadata: {{name: gen, namespace: exp}}\nspec: {{campaign: c, type: generator}}\n"
    );
    std::fs::write(dir.join("c.yaml"), yaml).expect("campaign");
    let state = dir.join("state");
    let started = Instant::now();
    let status = Command::new(env!("CARGO_BIN_EXE_cascade"))
        .arg("run")
        .arg(dir.join("c.yaml"))
        .arg("--state")
        .arg(&state)
        .args(["--batch-poll", poll, "-q"])
        .stdout(Stdio::null())
        .status()
        .expect("cascade run");
    let wall = started.elapsed().as_secs_f64();
    assert!(status.success(), "cascade run failed");
    let ledger = Ledger::open(&state).expect("ledger");
    let last_end = ledger
        .scalar_i64("SELECT MAX(finished_ms) FROM jobs")
        .expect("last end");
    let completed = ledger
        .scalar_i64("SELECT MIN(at_ms) FROM submission_history WHERE status = 'Completed'")
        .expect("completed");
    (wall, completed - last_end)
}

fn main() {
    let tasks: usize = common::arg("--tasks", 1000);
    let poll: String = common::arg("--poll", "1s".to_string());
    let up = Command::new("sinfo").arg("-h").output();
    if !up.is_ok_and(|o| o.status.success()) {
        eprintln!("Slurm is not running: start it with `bash scripts/slurm-up.sh`");
        std::process::exit(1);
    }
    println!("== Slurm, {tasks} trivial tasks on this node, Cascade polling every {poll}");
    let raw = raw_sbatch(tasks);
    println!(
        "raw sbatch --array:          {raw:8.1} s  ({:.1} tasks/s)",
        tasks as f64 / raw
    );
    let (wall, latency) = cascade_run(tasks, &poll);
    println!(
        "cascade run (same array):    {wall:8.1} s  ({:.1} tasks/s)",
        tasks as f64 / wall
    );
    println!(
        "overhead over raw sbatch:    {:+8.1} %",
        (wall - raw) / raw * 100.0
    );
    println!("last task's end -> stage Completed: {latency} ms (poll interval {poll})");
}
