//! The local batch system's processes under faults: the daemon killed, operators holding and
//! releasing while jobs start, jobs that print too much or write the same output, signals,
//! and Ctrl-C at any moment of the controller's loop. Real processes throughout.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{
    TempDir, cascade, cascade_bin, generator_campaign, root, status_json, text, wait_for,
};

fn q(state: &str) -> String {
    text(&cascade(&["q", "--state", state]).stdout)
}

/// (state, pid, exit) of a job in `cascade q`.
fn job(state: &str, id: &str) -> (String, String, String) {
    let listing = q(state);
    let line = listing
        .lines()
        .find(|l| l.starts_with(id))
        .unwrap_or_else(|| panic!("{id} not in:\n{listing}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    (cols[3].into(), cols[4].into(), cols[5].into())
}

fn submit(state: &str, submission: &str, jobs: &str, command: &[&str], env: &[(&str, &str)]) {
    let mut args = vec![
        "submit",
        "--jobs",
        jobs,
        "--submission",
        submission,
        "--state",
        state,
        "--",
    ];
    args.extend(command);
    let out = Command::new(cascade_bin())
        .args(&args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// Processes whose process group is `pgid`, still alive (not zombies).
fn group_members(pgid: &str) -> Vec<String> {
    let mut members = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some(after) = stat.rsplit_once(") ").map(|(_, a)| a) else {
            continue;
        };
        let fields: Vec<&str> = after.split_whitespace().collect();
        // fields[0] is the state (field 3), fields[2] the process group (field 5).
        if fields.len() > 2 && fields[2] == pgid && fields[0] != "Z" {
            members.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    members
}

fn kill_daemon(state: &str) {
    let _ = Command::new("pkill")
        .args(["-9", "-f", &format!("batchd --state {state}")])
        .status();
}

/// The daemon killed while its job runs: the job's process group lives on, unwatched; the
/// next daemon kills what is left of it and runs the job again from the start (the daemon's
/// death is the machine's failure, not the job's), and counts the lost run.
#[test]
fn a_killed_daemons_jobs_are_killed_and_run_again_by_the_next_daemon() {
    let state = TempDir::new("proc-daemon");
    let s = state.path();
    let marks = state.0.join("runs");
    let script = format!("echo run >> {}; sleep 60", marks.display());
    submit(s, "r.1", "1", &["sh", "-c", &script], &[]);
    wait_for("the job to run", Duration::from_secs(20), || {
        std::fs::read_to_string(&marks).is_ok_and(|m| m.lines().count() == 1)
    });
    let (_, leader, _) = job(s, "1@local");
    assert!(
        group_members(&leader).len() >= 2,
        "the job's shell and its sleep"
    );
    kill_daemon(s);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        group_members(&leader).len() >= 2,
        "the job outlives the daemon until another daemon looks"
    );
    // Looking at the queue starts the next daemon, as the controller and any submit do.
    let out = cascade(&["q", "--state", s]);
    assert!(
        text(&out.stderr).contains("no batch daemon was watching"),
        "{}",
        text(&out.stderr)
    );
    wait_for(
        "the orphaned group to be killed",
        Duration::from_secs(20),
        || group_members(&leader).is_empty(),
    );
    wait_for("the job to run again", Duration::from_secs(20), || {
        std::fs::read_to_string(&marks).is_ok_and(|m| m.lines().count() == 2)
    });
    let (state_now, again, _) = job(s, "1@local");
    assert_eq!(state_now, "running");
    assert_ne!(again, leader, "a new process runs it");
    let attempts = cascade::ledger::Ledger::open(&state.0)
        .unwrap()
        .scalar_i64("SELECT attempts FROM jobs WHERE id = 1")
        .unwrap();
    assert_eq!(attempts, 1, "the lost run is counted");
    let out = cascade(&["rm", "r.1", "--state", s]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// A job that kills the daemon running it (its parent): each next daemon kills what is left
/// of it and runs it again, until its fourth lost run fails it; a job cannot take the local
/// batch system down for ever, and the daemons go on serving other jobs.
#[test]
fn a_job_that_kills_its_daemon_fails_after_three_lost_runs() {
    let state = TempDir::new("proc-parricide");
    let s = state.path();
    // One slot: the other jobs wait instead of being lost with each daemon the job kills.
    let one_slot = [("CASCADE_LOCAL_SLOTS", "1")];
    submit(
        s,
        "k.1",
        "1",
        &["sh", "-c", "kill -9 $PPID; sleep 30"],
        &one_slot,
    );
    let ledger = cascade::ledger::Ledger::open(&state.0).unwrap();
    let attempts = || {
        ledger
            .scalar_i64("SELECT attempts FROM jobs WHERE id = 1")
            .unwrap()
    };
    let mut others = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while job(s, "1@local").0 != "failed" {
        assert!(Instant::now() < deadline, "the job never failed:\n{}", q(s));
        // Each submit starts a daemon if none runs (the controller would do the same).
        others += 1;
        submit(s, &format!("other.{others}"), "1", &["true"], &one_slot);
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(
        attempts(),
        3,
        "three lost runs were run again, the fourth failed it"
    );
    wait_for("the other jobs to succeed", Duration::from_secs(20), || {
        q(s).contains(&format!("{others} succeeded, 1 failed"))
    });
}

/// A job that writes without end (its log is cut at the cap, the rest discarded) does not
/// keep the daemon from starting, watching and recording the other jobs.
#[test]
fn a_job_writing_without_end_does_not_starve_the_others() {
    let state = TempDir::new("proc-yes");
    let s = state.path();
    let slots = [("CASCADE_LOCAL_SLOTS", "2")];
    submit(s, "loud.1", "1", &["yes"], &slots);
    wait_for("the loud job to run", Duration::from_secs(20), || {
        job(s, "1@local").0 == "running"
    });
    submit(s, "quiet.1", "3", &["sh", "-c", "echo done"], &slots);
    wait_for(
        "the quiet jobs to succeed beside it",
        Duration::from_secs(30),
        || q(s).contains("4 jobs: 0 idle, 1 running, 0 held, 3 succeeded, 0 failed"),
    );
    let out = cascade(&["rm", "loud.1", "--state", s]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let log = state.0.join("jobs/loud.1/0/job.log");
    assert!(
        std::fs::metadata(&log).unwrap().len() <= 16 * 1024 * 1024 + 200,
        "the log is capped"
    );
}

#[test]
fn exit_codes_keep_the_signal_that_ended_a_job() {
    let state = TempDir::new("proc-signal");
    let s = state.path();
    submit(s, "sig.1", "1", &["sh", "-c", "kill -SEGV $$"], &[]);
    submit(s, "sig.2", "1", &["sh", "-c", "kill -TERM $$"], &[]);
    submit(s, "sig.3", "1", &["sh", "-c", "exit 3"], &[]);
    wait_for("all three jobs to end", Duration::from_secs(20), || {
        q(s).contains("0 idle, 0 running, 0 held, 0 succeeded, 3 failed")
    });
    assert_eq!(job(s, "1@local").2, "139", "SIGSEGV");
    assert_eq!(job(s, "2@local").2, "143", "SIGTERM");
    assert_eq!(job(s, "3@local").2, "3");
}

/// Holds and releases race with the daemon starting jobs; no job that never ran may end
/// failed, and every job runs exactly once.
#[test]
fn hold_and_release_racing_job_starts_never_fail_a_job() {
    let state = TempDir::new("proc-hold");
    let s = state.path();
    let marks = state.0.join("marks");
    std::fs::create_dir_all(&marks).unwrap();
    let script = format!(
        "echo x >> {}/$CASCADE_JOB_INDEX; sleep 0.05",
        marks.display()
    );
    submit(
        s,
        "h.1",
        "60",
        &["sh", "-c", &script],
        &[("CASCADE_LOCAL_SLOTS", "3")],
    );
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(4) {
        for action in ["hold", "release"] {
            let _ = cascade(&[action, "all", "--state", s, "--why", "race"]);
        }
    }
    let _ = cascade(&["release", "all", "--state", s, "--why", "done racing"]);
    wait_for("all jobs to end", Duration::from_secs(60), || {
        let listing = q(s);
        listing.contains("0 idle, 0 running, 0 held")
            || (listing.contains("0 running") && listing.contains(" held") && {
                let _ = cascade(&["release", "all", "--state", s, "--why", "again"]);
                false
            })
    });
    assert!(
        q(s).contains("60 jobs: 0 idle, 0 running, 0 held, 60 succeeded, 0 failed"),
        "{}",
        q(s)
    );
    for index in 0..60 {
        let runs = std::fs::read_to_string(marks.join(index.to_string())).unwrap_or_default();
        assert_eq!(
            runs.lines().count(),
            1,
            "job {index} ran {} times",
            runs.lines().count()
        );
    }
    // No job is left stopped by a hold that raced with its end: the daemon, with nothing
    // left to do, exits.
    let lock = std::fs::File::open(state.0.join("batchd.lock")).unwrap();
    wait_for("the batch daemon to exit", Duration::from_secs(30), || {
        lock.try_lock().is_ok()
    });
}

#[test]
fn two_jobs_writing_one_output_name_fail_loudly() {
    let state = TempDir::new("proc-conflict");
    let s = state.path();
    submit(
        s,
        "c.1",
        "2",
        &[
            "sh",
            "-c",
            "echo $CASCADE_JOB_INDEX > $CASCADE_OUTPUT_DIR/same.out",
        ],
        &[("CASCADE_OUTPUT_PATTERNS", "%.out")],
    );
    wait_for("both jobs to end", Duration::from_secs(20), || {
        q(s).contains("0 idle, 0 running, 0 held")
    });
    assert!(
        q(s).contains("2 jobs: 0 idle, 0 running, 0 held, 1 succeeded, 1 failed"),
        "{}",
        q(s)
    );
    let logs: String = (0..2)
        .map(|i| std::fs::read_to_string(state.0.join(format!("jobs/c.1/{i}/job.log"))).unwrap())
        .collect();
    assert!(
        logs.contains("output `same.out` is already in the catalog (declared by c.1)"),
        "{logs}"
    );
}

#[test]
fn a_job_log_is_cut_at_its_cap() {
    let state = TempDir::new("proc-log");
    let s = state.path();
    submit(
        s,
        "l.1",
        "1",
        &[
            "sh",
            "-c",
            "head -c 20000000 /dev/zero | tr '\\0' x; echo tail-never-kept",
        ],
        &[],
    );
    wait_for("the job to end", Duration::from_secs(60), || {
        q(s).contains("1 succeeded")
    });
    let log = std::fs::read(state.0.join("jobs/l.1/0/job.log")).unwrap();
    let cap = 16 * 1024 * 1024;
    assert!(
        log.len() > cap && log.len() < cap + 200,
        "{} bytes",
        log.len()
    );
    assert!(String::from_utf8_lossy(&log[cap..]).contains("job log cut at 16 MiB"));
}

#[test]
fn submit_refuses_names_that_leave_the_state_directory() {
    let state = TempDir::new("proc-name");
    for name in ["../../escape", "/abs", "..", ".hidden", "a/b", ""] {
        let out = cascade(&[
            "submit",
            "--submission",
            name,
            "--state",
            state.path(),
            "--",
            "true",
        ]);
        assert_eq!(out.status.code(), Some(1), "{name:?}");
        assert!(
            text(&out.stderr).contains("is not a plain name"),
            "{name:?}"
        );
    }
    assert!(!state.0.parent().unwrap().join("escape").exists());
}

/// SIGINT at any moment of a run: the controller stops cleanly (exit 2, says so), never
/// dies of the signal, and a later run completes what was started.
#[test]
fn ctrl_c_at_any_moment_stops_cleanly_and_the_next_run_completes() {
    let state = TempDir::new("proc-ctrl-c");
    let s = state.path();
    for round in 0..12u64 {
        let child = Command::new(cascade_bin())
            .args(["run", "examples/eve_mc", "--state", s, "-q"])
            .current_dir(root())
            .env("EVE_JOB_SECONDS", "0.2")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Once the controller holds its lock it is in its loop (its handlers are set).
        wait_for("the controller to start", Duration::from_secs(20), || {
            state.0.join("controller.lock").exists()
        });
        std::thread::sleep(Duration::from_millis(5 + (round * 37) % 400));
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let out = child.wait_with_output().unwrap();
        // The next controller makes it again once its handlers are set.
        let _ = std::fs::remove_file(state.0.join("controller.lock"));
        match out.status.code() {
            Some(0) => break, // the campaign finished before the signal
            Some(130) => assert!(text(&out.stderr).contains("interrupted: the state is saved")),
            other => panic!("round {round}: {other:?} {}", text(&out.stderr)),
        }
    }
    let out = cascade(&["run", "examples/eve_mc", "--state", s, "-q"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for stage in status_json(s)["stages"].as_array().unwrap() {
        assert_eq!(stage["state"], "Completed", "{stage}");
    }
}

/// A watching controller with jobs waiting starts one daemon, not one per reconcile, and
/// leaves no zombie behind.
#[test]
fn a_watching_controller_leaves_no_zombie_daemons() {
    let state = TempDir::new("proc-zombie");
    let s = state.path();
    let mut controller = Command::new(cascade_bin())
        .args(["run", "examples/eve_mc", "--state", s, "-q", "--watch"])
        .current_dir(root())
        .env("EVE_JOB_SECONDS", "1")
        .env("CASCADE_LOCAL_SLOTS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(4));
    let me = controller.id().to_string();
    let zombies: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| {
            let after = stat.rsplit_once(") ").map_or("", |(_, a)| a);
            let f: Vec<&str> = after.split_whitespace().collect();
            f.len() > 1 && f[0] == "Z" && f[1] == me
        })
        .collect();
    unsafe { libc::kill(controller.id() as i32, libc::SIGTERM) };
    let _ = controller.wait();
    assert!(zombies.is_empty(), "zombies of the controller: {zombies:?}");
}

/// The daemon killed while its only job runs and nothing else waits: the controller restarts
/// the daemon, which kills the orphaned job and runs it again, and the run ends instead of
/// hanging.
#[test]
fn a_dead_daemon_with_nothing_idle_does_not_hang_the_run() {
    let state = TempDir::new("proc-hang");
    let s = state.path();
    let defs = state.0.join("slow.yaml");
    std::fs::write(
        &defs,
        generator_campaign(
            "cascade submit --jobs 1 -- sh -c 'if [ -e second ]; then touch $CASCADE_OUTPUT_DIR/done.out; else touch second; sleep 30; fi'",
            "{}",
        ),
    )
    .unwrap();
    let controller = Command::new(cascade_bin())
        .args(["run", defs.to_str().unwrap(), "--state", s, "-q"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the job to run", Duration::from_secs(20), || {
        q(s).contains("1 running")
    });
    let (_, leader, _) = job(s, "1@local");
    // The job's shell and sleep live on in their group.
    kill_daemon(s);
    let start = Instant::now();
    let out = controller.wait_with_output().unwrap();
    assert!(start.elapsed() < Duration::from_secs(25), "the run hung");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(job(s, "1@local").0, "succeeded");
    assert!(group_members(&leader).is_empty());
}
