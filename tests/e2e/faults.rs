//! The fault suite: the controller, and the batch daemon killed at random moments,
//! operator commands racing a running campaign from several processes, a full disk, a lost,
//! corrupted or read-only state, and inputs that cannot run. Each run that can finish is then
//! checked against what a clean run leaves (`assert_eve_mc_converged`). Seeds are printed in
//! every failure message; set CASCADE_FAULT_SEED to replay one.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{
    Match, Rng, TempDir, assert_eve_mc_converged, cascade, cascade_bin, expect_failure,
    generator_campaign, root, status_json, text,
};

fn seed() -> u64 {
    std::env::var("CASCADE_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_2026)
}

fn start_run(state: &str, job_seconds: &str) -> std::process::Child {
    Command::new(cascade_bin())
        .args(["run", "examples/eve_mc", "--state", state, "-q"])
        .current_dir(root())
        .env("EVE_JOB_SECONDS", job_seconds)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start controller")
}

fn finish_run(state: &str, context: &str) {
    let out = Command::new(cascade_bin())
        .args(["run", "examples/eve_mc", "--state", state, "-q"])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{context}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// Pids of processes whose command line contains all of `words`.
fn pids_with(words: &[&str]) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if words.iter().all(|w| cmdline.contains(w)) {
            pids.push(pid);
        }
    }
    pids
}

/// SIGKILL of the controller at random moments, many times, and of the batch daemon (whose
/// running jobs the next daemon kills and runs again) twice: the campaign still converges to
/// a clean run's result, nothing twice. (A job's third lost run fails it, by design: see
/// `processes::a_job_that_kills_its_daemon_fails_after_three_lost_runs`.)
#[test]
fn kills_of_controller_and_daemon_converge_to_a_clean_run() {
    let seed = seed();
    let mut rng = Rng(seed | 1);
    let state = TempDir::new("fault-kills");
    let s = state.path();
    let mut kills = Vec::new();
    for round in 0..30 {
        let mut controller = start_run(s, "0.3");
        std::thread::sleep(Duration::from_millis(20 + rng.below(300)));
        let daemon_kills = kills
            .iter()
            .filter(|k: &&String| k.ends_with("daemon"))
            .count();
        let victim = match rng.below(3) {
            0 if daemon_kills < 2 => "daemon",
            _ => "controller",
        };
        let pids = match victim {
            "daemon" => pids_with(&["batchd", s]),
            _ => Vec::new(),
        };
        match pids.get(rng.below(pids.len().max(1) as u64) as usize) {
            Some(pid) => unsafe {
                libc::kill(*pid, libc::SIGKILL);
            },
            None => {
                let _ = controller.kill();
            }
        }
        kills.push(format!("{round}:{victim}"));
        if controller.try_wait().unwrap().is_none() {
            let _ = controller.kill();
        }
        let _ = controller.wait();
    }
    let context = format!("seed {seed}, kills {kills:?}");
    // Jobs of killed daemons ran again; recovery rounds and reruns are the campaign's own
    // business, but the end must be a clean run's.
    finish_run(s, &context);
    assert_eve_mc_converged(s, &context, Match::Exact);
}

/// Operators pausing, resuming, holding and releasing from several processes while the
/// campaign runs: once they stop, the campaign ends as a clean run does.
#[test]
fn operator_commands_racing_a_running_campaign_change_nothing_in_the_end() {
    let seed = seed();
    let state = TempDir::new("fault-operators");
    let s = state.path().to_string();
    let mut controller = start_run(&s, "0.2");
    let stop = Instant::now() + Duration::from_secs(4);
    let operators: Vec<_> = (0..3u64)
        .map(|n| {
            let s = s.clone();
            std::thread::spawn(move || {
                let mut rng = Rng((seed + n) | 1);
                let stages = ["mc-gen", "mc-g4", "mc-detsim", "mc-reco", "mc-ana"];
                while Instant::now() < stop {
                    let stage = stages[rng.below(5) as usize];
                    let action = ["pause", "resume", "hold", "release"][rng.below(4) as usize];
                    let _ = cascade(&[action, stage, "--state", &s, "--why", "racing"]);
                }
            })
        })
        .collect();
    for o in operators {
        o.join().unwrap();
    }
    for stage in ["mc-gen", "mc-g4", "mc-detsim", "mc-reco", "mc-ana"] {
        let _ = cascade(&["resume", stage, "--state", &s, "--why", "done racing"]);
        let _ = cascade(&["release", stage, "--state", &s, "--why", "done racing"]);
    }
    let _ = cascade(&["release", "all", "--state", &s, "--why", "done racing"]);
    let _ = controller.kill();
    let _ = controller.wait();
    let context = format!("seed {seed}");
    finish_run(&s, &context);
    assert_eve_mc_converged(&s, &context, Match::Exact);
}

/// Mounts a tmpfs of `size` at `dir`; false (with the reason printed) where the machine does
/// not allow it.
fn mount_tmpfs(dir: &std::path::Path, size: &str) -> bool {
    std::fs::create_dir_all(dir).unwrap();
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .output();
    match out {
        Ok(o) if o.status.success() => true,
        Ok(o) => {
            eprintln!(
                "skipped: cannot mount a tmpfs here: {}",
                text(&o.stderr).trim()
            );
            false
        }
        Err(e) => {
            eprintln!("skipped: cannot run mount: {e}");
            false
        }
    }
}

struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The state on a small file system that fills up: the run fails with a clear error and a
/// consistent ledger, and once space is freed the campaign goes on to a clean run's end.
#[test]
fn a_full_disk_is_reported_and_the_run_goes_on_when_space_is_freed() {
    let dir = TempDir::new("fault-disk");
    let mount = dir.0.join("fs");
    if !mount_tmpfs(&mount, "1m") {
        return;
    }
    let _unmount = Unmount(mount.clone());
    let state = mount.join("state");
    let s = state.to_str().unwrap();
    // Filler the jobs' outputs cannot fit beside.
    let filler = mount.join("filler");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=1k", "count=700"])
        .arg(format!("of={}", filler.display()))
        .stderr(Stdio::null())
        .status();
    let out = Command::new(cascade_bin())
        .args(["run", "examples/eve_mc", "--state", s, "-q"])
        .current_dir(root())
        .output()
        .unwrap();
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        !out.status.success(),
        "a run on a full disk cannot succeed: {said}"
    );
    assert!(
        said.contains("full") || said.contains("No space left"),
        "the error says the disk is full: {said}"
    );
    // Space comes back: the same state goes on, nothing lost or doubled.
    std::fs::remove_file(&filler).unwrap();
    let grown = Command::new("mount")
        .args(["-o", "remount,size=64m"])
        .arg(&mount)
        .status()
        .unwrap();
    assert!(grown.success());
    // The run goes on (it does not hang on jobs that ended while the disk was full). Jobs
    // that failed for want of space failed for real; an operator takes the way forward each
    // failed stage names: relaunch a generator, recover a processing stage.
    for attempt in 0..6 {
        let start = Instant::now();
        let out = Command::new(cascade_bin())
            .args(["run", "examples/eve_mc", "--state", s, "-q"])
            .current_dir(root())
            .output()
            .unwrap();
        assert!(start.elapsed() < Duration::from_secs(60), "the run hung");
        if out.status.success() {
            break;
        }
        assert_ne!(
            attempt,
            5,
            "never recovered: {}{}\n{}",
            text(&out.stdout),
            text(&out.stderr),
            text(&cascade(&["status", "--state", s]).stdout)
        );
        let status = status_json(s);
        for stage in status["stages"].as_array().unwrap() {
            if stage["state"] != "Failed" {
                continue;
            }
            let name = stage["stage"].as_str().unwrap().trim_start_matches("eve/");
            let failed: Vec<&str> = status["submissions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| &r["submission"])
                .filter(|sub| {
                    sub["stage"]["name"] == name
                        && (sub["status"] == "Failed" || sub["status"] == "LaunchFailed")
                })
                .map(|sub| sub["id"].as_str().unwrap())
                .collect();
            for id in failed {
                let out = if name == "mc-gen" {
                    cascade(&["launch", name, "--state", s, "--why", "the disk was full"])
                } else {
                    cascade(&[
                        "recover",
                        id,
                        "--type",
                        "consumed_status",
                        "--state",
                        s,
                        "--why",
                        "the disk was full",
                    ])
                };
                assert!(out.status.success(), "{}", text(&out.stderr));
            }
        }
    }
    assert_eve_mc_converged(s, "after the disk was full", Match::SameEnd);
}

#[test]
fn a_lost_or_empty_ledger_beside_old_jobs_is_refused() {
    let state = TempDir::new("fault-lost");
    let s = state.path();
    finish_run(s, "first run");
    for f in ["cascade.db", "cascade.db-wal", "cascade.db-shm"] {
        let _ = std::fs::remove_file(state.0.join(f));
    }
    expect_failure(
        &["run", "examples/eve_mc", "--state", s, "-q"],
        2,
        "is missing but",
    );
    std::fs::write(state.0.join("cascade.db"), b"").unwrap();
    let err = expect_failure(&["status", "--state", s], 2, "is empty but");
    assert!(err.contains("its ledger is lost"), "{err}");
    // Nothing was launched again meanwhile.
    assert_eq!(
        std::fs::metadata(state.0.join("cascade.db")).unwrap().len(),
        0
    );
}

#[test]
fn a_corrupted_ledger_is_a_clear_error() {
    let state = TempDir::new("fault-corrupt");
    let s = state.path();
    finish_run(s, "first run");
    for f in ["cascade.db-wal", "cascade.db-shm"] {
        let _ = std::fs::remove_file(state.0.join(f));
    }
    std::fs::write(state.0.join("cascade.db"), vec![0x5a; 8192]).unwrap();
    let err = expect_failure(&["status", "--state", s], 2, "cascade.db");
    assert!(err.contains("not a database"), "{err}");
    expect_failure(
        &["run", "examples/eve_mc", "--state", s, "-q"],
        2,
        "not a database",
    );
}

#[test]
fn a_read_only_state_can_still_be_read() {
    let dir = TempDir::new("fault-ro");
    let state = dir.0.join("state");
    let s = state.to_str().unwrap();
    finish_run(s, "first run");
    let view = dir.0.join("view");
    std::fs::create_dir_all(&view).unwrap();
    let bound = Command::new("mount")
        .arg("--bind")
        .arg(&state)
        .arg(&view)
        .status();
    if !bound.is_ok_and(|b| b.success()) {
        eprintln!("skipped: cannot bind-mount here");
        return;
    }
    let _unmount = Unmount(view.clone());
    let ro = Command::new("mount")
        .args(["-o", "remount,bind,ro"])
        .arg(&view)
        .status()
        .unwrap();
    assert!(ro.success());
    let v = view.to_str().unwrap();
    for args in [
        vec!["status", "--state", v],
        vec!["q", "--state", v],
        vec!["explain", "mc-reco", "--state", v],
        vec![
            "catalog",
            "query",
            "--state",
            v,
            "file_name like '%.ana.root'",
        ],
    ] {
        let out = cascade(&args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        assert!(!out.stdout.is_empty(), "{args:?}");
    }
    assert_eq!(
        status_json(v)["stages"].as_array().unwrap().len(),
        5,
        "the read-only view shows the campaign"
    );
}

#[test]
fn a_dangling_symlink_as_state_says_so() {
    let dir = TempDir::new("fault-link");
    let link = dir.0.join("state");
    std::os::unix::fs::symlink(dir.0.join("gone"), &link).unwrap();
    let err = expect_failure(
        &[
            "run",
            "examples/eve_mc",
            "--state",
            link.to_str().unwrap(),
            "-q",
        ],
        2,
        "is a symlink to",
    );
    assert!(err.contains("which does not exist"), "{err}");
    assert!(!err.contains("os error 17"), "{err}");
}

/// A launch command longer than the system takes is reported as such, not as "killed".
#[test]
fn an_over_long_launch_is_reported_as_too_long() {
    let dir = TempDir::new("fault-e2big");
    let defs = dir.0.join("long.yaml");
    let keywords = format!("{{big: {}}}", "x".repeat(200_000));
    std::fs::write(
        &defs,
        generator_campaign("cascade submit -- echo %(big)s", &keywords),
    )
    .unwrap();
    let s = dir.0.join("state");
    let s = s.to_str().unwrap();
    let out = cascade(&["run", defs.to_str().unwrap(), "--state", s, "-q"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let status = status_json(s);
    let history = status["history"].as_array().unwrap();
    let failed = history
        .iter()
        .find(|h| h["status"] == "LaunchFailed")
        .expect("LaunchFailed recorded");
    let reason = failed["reason"].as_str().unwrap();
    assert!(reason.contains("too long for the system"), "{reason}");
    assert!(!reason.contains("killed"), "{reason}");
}

#[test]
fn operator_commands_that_cannot_apply_say_why() {
    let state = TempDir::new("fault-operator");
    let s = state.path();
    finish_run(s, "first run");
    expect_failure(
        &["reset-split", "mc-gen", "--state", s, "--why", "again"],
        1,
        "stage `eve/mc-gen` has no split",
    );
    // A missing --why is input rejected.
    expect_failure(&["pause", "mc-gen", "--state", s], 1, "--why");
    let before = status_json(s)["history"].as_array().unwrap().len();
    expect_failure(
        &["kill", "eve.mc-gen.1", "--state", s, "--why", "x"],
        1,
        "is Located already: nothing to kill",
    );
    assert_eq!(status_json(s)["history"].as_array().unwrap().len(), before);
}

#[test]
fn an_ini_file_of_no_known_section_imports_nothing_and_says_so() {
    let dir = TempDir::new("fault-ini");
    let ini = dir.0.join("other.ini");
    std::fs::write(&ini, "[settings]\ncolour = blue\n").unwrap();
    let out = cascade(&[
        "import-ini",
        ini.to_str().unwrap(),
        "--out",
        dir.0.join("out").to_str().unwrap(),
    ]);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("warning[nothing-imported]: nothing imported: no section of this file is one Cascade reads ([settings])"),
        "{stderr}"
    );
}
