//! Campaigns on a real Slurm: the single-node cluster `scripts/slurm-up.sh` brings up on
//! loopback (`scripts/test.sh` starts it). These tests share that cluster, so they run one at
//! a time (`.config/nextest.toml`), and what they expect is checked against Slurm's own
//! account of the jobs (`squeue`), not only against Cascade's.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::*;

/// Fails with the way to start Slurm when it is not running.
fn require_slurm() {
    let up = Command::new("sinfo")
        .args(["-h", "-o", "%T"])
        .output()
        .is_ok_and(|o| o.status.success() && !o.stdout.is_empty());
    assert!(
        up,
        "Slurm is not running here: start it with `bash scripts/slurm-up.sh` (scripts/test.sh does)"
    );
}

/// Slurm's own word on each task of a job: (task id, state), from `squeue`.
fn slurm_states(job: &str) -> Vec<(String, String)> {
    let out = Command::new("squeue")
        .args(["-h", "--states=all", "-o", "%i %T", "-j", job])
        .output()
        .expect("squeue");
    let mut tasks: Vec<(String, String)> = text(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    tasks.sort();
    tasks
}

/// The Slurm job id Cascade bound to a submission (`batchId` is `N@slurm`).
fn slurm_id(state: &str, id: &str) -> String {
    let batch = submission(state, id)["batchId"]
        .as_str()
        .unwrap_or("")
        .to_string();
    batch
        .strip_suffix("@slurm")
        .unwrap_or_else(|| panic!("{id} is not bound to a Slurm job: {batch:?}"))
        .to_string()
}

/// A one-stage campaign `exp/c` whose generator's jobs run on Slurm.
fn slurm_campaign(dir: &Path, launch_script: &str) {
    let yaml = generator_campaign(launch_script, "{}")
        .replace("  launchScript:", "  batchSystem: slurm\n  launchScript:");
    std::fs::write(dir.join("campaign.yaml"), yaml).unwrap();
}

/// `cascade run examples/eve_slurm` to its successful end.
fn run_example(state: &str) {
    let out = Command::new(cascade_bin())
        .args(["run", "examples/eve_slurm", "--state", state])
        .args(["--batch-poll", "300ms", "-q"])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// A one-stage Slurm campaign of `launch_script` running in the background: its directory,
/// its state directory and the run.
fn start_campaign(name: &str, launch_script: &str) -> (TempDir, String, Child) {
    require_slurm();
    let dir = TempDir::new(name);
    slurm_campaign(&dir, launch_script);
    let state = dir.join("state").to_str().unwrap().to_string();
    let run = start_run(&dir, &state);
    (dir, state, run)
}

/// `cascade run` in the background, polling Slurm often.
fn start_run(dir: &Path, state: &str) -> Child {
    Command::new(cascade_bin())
        .arg("run")
        .arg(dir.join("campaign.yaml"))
        .args(["--state", state, "--batch-poll", "300ms", "-q"])
        .current_dir(root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn slurm_example_campaign_runs_an_array_per_slice_and_recovers_a_failed_task() {
    require_slurm();
    let dir = TempDir::new("slurm-example");
    let state = dir.join("state");
    let s = state.to_str().unwrap();
    run_example(s);
    for stage in ["eve/slurm-gen", "eve/slurm-reco", "eve/slurm-summary"] {
        assert_eq!(stage_state(s, stage).0, "Completed", "{stage}");
    }
    // Generation: one array of 4 tasks, all of which Slurm ran to completion.
    let gen_id = slurm_id(s, "eve.slurm-gen.1");
    let tasks = slurm_states(&gen_id);
    assert_eq!(tasks.len(), 4, "{tasks:?}");
    assert!(tasks.iter().all(|(_, st)| st == "COMPLETED"), "{tasks:?}");
    let gen_jobs = &submission(s, "eve.slurm-gen.1")["submission"]["jobs"];
    assert_eq!(
        (gen_jobs["total"].as_u64(), gen_jobs["succeeded"].as_u64()),
        (Some(4), Some(4))
    );
    // Reconstruction: eve.sh fails job 0 of 4 (`--fail-one-in=4`); Slurm says so, Cascade
    // counts it, and the recovery round reruns just that file, with more memory.
    let reco_id = slurm_id(s, "eve.slurm-reco.1");
    let reco = slurm_states(&reco_id);
    assert_eq!(
        reco.iter().filter(|(_, st)| st == "FAILED").count(),
        1,
        "{reco:?}"
    );
    let reco_jobs = &submission(s, "eve.slurm-reco.1")["submission"]["jobs"];
    assert_eq!(
        (
            reco_jobs["succeeded"].as_u64(),
            reco_jobs["failed"].as_u64()
        ),
        (Some(3), Some(1))
    );
    let round = submission(s, "eve.slurm-reco.2");
    assert_eq!(round["submission"]["origin"]["kind"], "recovery");
    assert!(
        round["command"]
            .as_str()
            .unwrap()
            .contains("--memory=4000MB")
    );
    assert_eq!(slurm_states(&slurm_id(s, "eve.slurm-reco.2")).len(), 1);
    // Every generated file was reconstructed exactly once, across the array and its round.
    let generated = catalog_query(s, "file_name like '%.gen.root'");
    let reconstructed = catalog_query(s, "file_name like '%.reco.root'");
    assert_eq!(generated.len(), 4);
    assert_eq!(reconstructed.len(), 4, "{reconstructed:?}");
    // The summary's launch script called sbatch itself: bound by the id sbatch printed.
    let summary = slurm_states(&slurm_id(s, "eve.slurm-summary.1"));
    assert_eq!(summary.len(), 1);
    assert_eq!(summary[0].1, "COMPLETED");
    assert_eq!(
        catalog_query(s, "file_name like '%.summary.txt'"),
        ["eve.slurm-summary.1.summary.txt"],
        "the summary job declared its own output"
    );
}

#[test]
fn slurm_hold_and_release_go_through_scontrol_and_the_run_completes() {
    // Three tasks on a two-core node: one waits, so the hold has something to hold.
    let (_dir, s, run) = start_campaign(
        "slurm-hold",
        "cascade submit --batch-system slurm --jobs 3 -- sh -c 'sleep 3; echo done > $CASCADE_OUTPUT_DIR/$CASCADE_JOB_INDEX.out'",
    );
    wait_for("the array to be bound", Duration::from_secs(30), || {
        submission(&s, "exp.gen.1")["batchId"]
            .as_str()
            .is_some_and(|b| b.ends_with("@slurm"))
    });
    let id = slurm_id(&s, "exp.gen.1");
    let out = cascade(&["hold", "exp.gen.1", "--state", &s, "--why", "inspect"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Slurm holds what has not started; Cascade sees the hold in its next poll.
    wait_for("a held task", Duration::from_secs(30), || {
        submission(&s, "exp.gen.1")["submission"]["jobs"]["held"]
            .as_u64()
            .unwrap_or(0)
            > 0
    });
    let pending = Command::new("squeue")
        .args(["-h", "--states=PENDING", "-o", "%r", "-j", &id])
        .output()
        .unwrap();
    assert!(
        text(&pending.stdout).contains("JobHeld"),
        "Slurm holds the waiting task: {}",
        text(&pending.stdout)
    );
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        submission(&s, "exp.gen.1")["submission"]["status"],
        "Held",
        "a held task keeps the submission Held"
    );
    let out = cascade(&["release", "exp.gen.1", "--state", &s, "--why", "go on"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (code, said) = finish(run, Duration::from_secs(60));
    assert_eq!(code, Some(0), "{said}");
    let tasks = slurm_states(&id);
    assert_eq!(tasks.len(), 3);
    assert!(tasks.iter().all(|(_, st)| st == "COMPLETED"), "{tasks:?}");
}

#[test]
fn slurm_kill_cancels_the_array_and_the_submission_is_removed() {
    let (_dir, s, run) = start_campaign(
        "slurm-kill",
        "cascade submit --batch-system slurm --jobs 2 -- sleep 120",
    );
    wait_for("both tasks running", Duration::from_secs(30), || {
        submission(&s, "exp.gen.1")["submission"]["jobs"]["running"].as_u64() == Some(2)
    });
    let id = slurm_id(&s, "exp.gen.1");
    let out = cascade(&["kill", "exp.gen.1", "--state", &s, "--why", "wrong release"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("2 jobs"),
        "{}",
        text(&out.stdout)
    );
    let (_, said) = finish(run, Duration::from_secs(60));
    let tasks = slurm_states(&id);
    assert!(
        tasks.iter().all(|(_, st)| st == "CANCELLED"),
        "Slurm cancelled every task: {tasks:?}"
    );
    let sub = submission(&s, "exp.gen.1");
    assert_eq!(sub["submission"]["status"], "Removed", "{said}");
    assert_eq!(
        sub["submission"]["jobs"]["removed"].as_u64(),
        Some(2),
        "{sub}"
    );
}

#[test]
fn slurm_a_launch_that_prints_no_job_id_is_launch_failed_not_completed() {
    require_slurm();
    let dir = TempDir::new("slurm-noid");
    slurm_campaign(&dir, "echo pretending to submit");
    let state = dir.join("state");
    let s = state.to_str().unwrap();
    let out = Command::new(cascade_bin())
        .arg("run")
        .arg(dir.join("campaign.yaml"))
        .args([
            "--state",
            s,
            "--batch-poll",
            "300ms",
            "--launch-timeout",
            "2s",
            "-q",
        ])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out.stdout));
    assert_eq!(
        submission(s, "exp.gen.1")["submission"]["status"],
        "LaunchFailed"
    );
    assert_ne!(stage_state(s, "exp/gen").0, "Completed");
}

/// slurmctld stopped while tasks run: the stage is Degraded with Slurm's error, no job or
/// submission is taken as failed, and when slurmctld is back the campaign completes.
#[test]
fn slurm_controller_down_mid_campaign_is_degraded_not_failed() {
    let (_dir, s, run) = start_campaign(
        "slurm-down",
        "cascade submit --batch-system slurm --jobs 2 -- sh -c 'sleep 4; echo ok > $CASCADE_OUTPUT_DIR/$CASCADE_JOB_INDEX.out'",
    );
    wait_for("both tasks running", Duration::from_secs(30), || {
        submission(&s, "exp.gen.1")["submission"]["jobs"]["running"].as_u64() == Some(2)
    });
    let pid = std::fs::read_to_string("/run/slurmctld.pid").unwrap();
    let stopped = Command::new("kill").arg(pid.trim()).status().unwrap();
    assert!(stopped.success());
    // Bring it back however the test ends.
    struct Restart;
    impl Drop for Restart {
        fn drop(&mut self) {
            let _ = Command::new("bash")
                .arg(root().join("scripts/slurm-up.sh"))
                .stdout(Stdio::null())
                .status();
        }
    }
    let restart = Restart;
    wait_for("the stage to be Degraded", Duration::from_secs(60), || {
        stage_state(&s, "exp/gen").0 == "Degraded"
    });
    let (_, reason) = stage_state(&s, "exp/gen");
    assert!(
        reason.contains("slurm") && reason.contains("cannot be observed"),
        "{reason}"
    );
    // The tasks ended meanwhile, unseen: nothing is decided about them.
    std::thread::sleep(Duration::from_secs(5));
    let sub = submission(&s, "exp.gen.1");
    assert_ne!(sub["submission"]["status"], "Failed", "{sub}");
    assert_eq!(
        sub["submission"]["jobs"]["failed"].as_u64(),
        Some(0),
        "{sub}"
    );
    drop(restart);
    let (code, said) = finish(run, Duration::from_secs(90));
    assert_eq!(code, Some(0), "{said}");
    assert_eq!(stage_state(&s, "exp/gen").0, "Completed");
    let sub = submission(&s, "exp.gen.1");
    assert_eq!(
        sub["submission"]["jobs"]["succeeded"].as_u64(),
        Some(2),
        "{sub}"
    );
}

/// The controller killed with SIGKILL at arbitrary moments of the Slurm example, and restarted
/// each time: every submission has exactly one array, by Cascade's bindings and by Slurm's own
/// count of the jobs carrying each submission's tag, and the campaign completes.
#[test]
fn slurm_kill_9_of_the_controller_submits_nothing_twice() {
    require_slurm();
    let dir = TempDir::new("slurm-crash");
    let state = dir.join("state");
    let s = state.to_str().unwrap().to_string();
    let mut rng = Rng(20261129);
    let mut kills = 0;
    for _ in 0..30 {
        let mut child = Command::new(cascade_bin())
            .args([
                "run",
                "examples/eve_slurm",
                "--state",
                &s,
                "--batch-poll",
                "300ms",
                "-q",
            ])
            .current_dir(root())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(50 + rng.below(400)));
        if child.try_wait().unwrap().is_some() {
            break;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
    }
    assert!(kills >= 5, "only {kills} kills landed during the campaign");
    run_example(&s);
    let status = status_now(&s);
    let subs = status["submissions"].as_array().unwrap();
    assert_eq!(
        subs.len(),
        4,
        "gen, reco, its recovery round, summary: {subs:#?}"
    );
    // Slurm's own record: the comment (tag) of every job, one line per array.
    let out = Command::new("squeue")
        .args(["-h", "--states=all", "-r", "-o", "%F %k"])
        .output()
        .unwrap();
    let listing = text(&out.stdout);
    for sub in subs {
        let id = sub["submission"]["id"].as_str().unwrap();
        let bound = slurm_id(&s, id);
        let tag = Command::new("squeue")
            .args(["-h", "--states=all", "-o", "%k", "-j", &bound])
            .output()
            .unwrap();
        let tag = text(&tag.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        if !tag.starts_with("cascade:") {
            continue; // the summary's own sbatch call: bound by the id it printed
        }
        let arrays: std::collections::BTreeSet<&str> = listing
            .lines()
            .filter(|l| l.split_once(' ').is_some_and(|(_, c)| c == tag))
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        assert_eq!(
            arrays.len(),
            1,
            "{id}: Slurm has arrays {arrays:?} tagged {tag}"
        );
    }
}

/// sbatch refuses the array (a partition that does not exist): the launch failed and says
/// sbatch's words at once, rather than waiting out the launch timeout.
#[test]
fn slurm_an_array_sbatch_refuses_is_launch_failed_with_its_error() {
    require_slurm();
    let dir = TempDir::new("slurm-refused");
    slurm_campaign(
        &dir,
        "cascade submit --batch-system slurm --jobs 2 --partition no-such-partition -- true",
    );
    let state = dir.join("state");
    let s = state.to_str().unwrap();
    let out = Command::new(cascade_bin())
        .arg("run")
        .arg(dir.join("campaign.yaml"))
        .args(["--state", s, "--batch-poll", "300ms", "-q"])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out.stdout));
    let sub = submission(s, "exp.gen.1");
    assert_eq!(sub["submission"]["status"], "LaunchFailed", "{sub}");
    let log = std::fs::read_to_string(sub["launchLog"].as_str().unwrap()).unwrap();
    assert!(log.contains("sbatch") && log.contains("partition"), "{log}");
}
