//! The local batch system on its own: `cascade submit`, `q`, `hold`, `release`, `rm`, with
//! real processes.

use std::time::Duration;

use crate::support::{TempDir, cascade, text};

fn wait_for(what: &str, done: impl FnMut() -> bool) {
    crate::support::wait_for(what, Duration::from_secs(20), done);
}

fn q(state: &str) -> String {
    text(&cascade(&["q", "--state", state]).stdout)
}

/// The pid `cascade q` shows for a job (the leader of its process group).
fn pid(state: &str, job: &str) -> String {
    let listing = q(state);
    let line = listing
        .lines()
        .find(|l| l.starts_with(job))
        .expect("job listed");
    line.split_whitespace()
        .nth(4)
        .expect("pid column")
        .to_string()
}

/// The process state letter of /proc/PID/stat (R, S, T, ...), if the process exists.
fn proc_state(pid: &str) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(") ").next()?.chars().next()
}

#[test]
fn submit_hold_release_remove_with_real_processes() {
    let state = TempDir::new("batch");
    let s = state.path();
    let out = cascade(&[
        "submit",
        "--jobs",
        "2",
        "--submission",
        "t.1",
        "--state",
        s,
        "--",
        "sleep",
        "30",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "1@local\n");
    // A job is listed running as soon as it is claimed, and its pid a moment later, once
    // its process started.
    wait_for("two running jobs, the first with its process", || {
        q(s).contains("0 idle, 2 running") && pid(s, "1@local") != "-"
    });
    let leader = pid(s, "1@local");

    let out = cascade(&[
        "hold",
        "1@local",
        "--state",
        s,
        "--why",
        "inspect its memory",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(q(s).contains("1 running, 1 held"), "{}", q(s));
    wait_for("the held job's process to stop", || {
        proc_state(&leader) == Some('T')
    });

    let out = cascade(&["release", "1", "--state", s, "--why", "looks fine"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(q(s).contains("2 running, 0 held"), "{}", q(s));
    wait_for("the released job's process to continue", || {
        proc_state(&leader) != Some('T')
    });

    let out = cascade(&["rm", "t.1", "--state", s]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "2 jobs changed\n");
    assert!(q(s).contains("2 jobs: 0 idle, 0 running, 0 held, 0 succeeded, 0 failed, 2 removed"));
    wait_for("the removed job's processes to end", || {
        matches!(proc_state(&leader), None | Some('Z'))
    });

    let out = cascade(&["rm", "t.1", "--state", s]);
    assert_eq!(out.status.code(), Some(1), "nothing left to remove");
    assert!(text(&out.stderr).contains("no job of `t.1` can be changed that way"));
}

#[test]
fn jobs_see_their_submission_index_and_inputs_and_outputs_are_declared() {
    let state = TempDir::new("batch-io");
    let s = state.path();
    let data = state.0.join("data");
    crate::support::declare_three_raw_files(s, &data);
    // The project delivers the files to the jobs (at most one job per file); each job copies
    // its inputs to outputs, which the batch system declares with the inputs as parents.
    let script = "for f in $CASCADE_INPUT_FILES; do cp \"$f\" \"$CASCADE_OUTPUT_DIR/$(basename \"$f\" .raw).out\"; done; echo \"$CASCADE_SUBMISSION_ID/$CASCADE_JOB_INDEX\"";
    let out = std::process::Command::new(crate::support::cascade_bin())
        .args([
            "submit",
            "--jobs",
            "5",
            "--submission",
            "io.1",
            "--input",
            "run_number 7",
            "--state",
            s,
        ])
        .args(["--", "sh", "-c", script])
        .env("CASCADE_OUTPUT_PATTERNS", "%.out")
        .env("CASCADE_NAMESPACE", "exp")
        .env("CASCADE_STAGE", "copy")
        .env("CASCADE_SOFTWARE_VERSION", "v3")
        .current_dir(crate::support::root())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    wait_for("jobs to finish", || {
        q(s).contains("3 jobs: 0 idle, 0 running, 0 held, 3 succeeded")
    });
    let log = std::fs::read_to_string(state.0.join("jobs/io.1/2/job.log")).unwrap();
    assert_eq!(log, "io.1/2\n");
    let out = cascade(&[
        "catalog",
        "query",
        "--state",
        s,
        "ischildof:( run_number 7 ) and version v3 and stage 'exp/copy'",
    ]);
    // Catalog order is declaration order, which follows the jobs' ends.
    let mut outputs: Vec<String> = text(&out.stdout).lines().map(String::from).collect();
    outputs.sort();
    assert_eq!(outputs, ["a.out", "b.out", "c.out"]);
    let out = cascade(&[
        "catalog",
        "query",
        "--state",
        s,
        "project_name 'io.1' and consumed_status consumed",
    ]);
    assert_eq!(text(&out.stdout).lines().count(), 3);
    let out = cascade(&["catalog", "query", "--state", s, "run_number 7 and"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr)
            .contains("query:1:17: error: the query ends where a condition was expected"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_job_declaring_its_own_outputs_gets_its_identity_and_parents() {
    let state = TempDir::new("batch-declare");
    let s = state.path();
    let data = state.0.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("in.raw"), "x").unwrap();
    let out = cascade(&[
        "catalog",
        "declare",
        "--state",
        s,
        data.join("in.raw").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // No output patterns: the job declares its file itself, with `cascade catalog declare`.
    let script = "echo hi > \"$CASCADE_OUTPUT_DIR/made.dat\" && cascade catalog declare -m quality=good \"$CASCADE_OUTPUT_DIR/made.dat\"";
    let bin_dir = crate::support::cascade_bin()
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = std::process::Command::new(crate::support::cascade_bin())
        .args([
            "submit",
            "--submission",
            "own.1",
            "--input",
            "file_name in.raw",
            "--state",
            s,
            "--",
            "sh",
            "-c",
            script,
        ])
        .env("CASCADE_NAMESPACE", "exp")
        .env("CASCADE_STAGE", "own")
        .env("CASCADE_SOFTWARE_VERSION", "v9")
        .env("PATH", path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    wait_for("the job", || q(s).contains("1 succeeded"));
    let out = cascade(&[
        "catalog", "show", "--state", s, "made.dat", "--format", "json",
    ]);
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["parents"], serde_json::json!(["in.raw"]));
    // Times as RFC 3339, in JSON and in the text form people read.
    let created = info["created"].as_str().unwrap();
    assert!(chrono_like(created), "{created}");
    let shown = text(&cascade(&["catalog", "show", "--state", s, "made.dat"]).stdout);
    assert!(shown.contains("parent:    in.raw\n"), "{shown}");
    assert!(
        shown.contains(&format!("declared:  {created}\n")),
        "{shown}"
    );
    let meta: Vec<(String, String)> = serde_json::from_value(info["metadata"].clone()).unwrap();
    for want in [
        ("submission", "own.1"),
        ("stage", "exp/own"),
        ("version", "v9"),
        ("quality", "good"),
    ] {
        assert!(
            meta.iter().any(|(k, v)| k == want.0 && v == want.1),
            "{want:?} in {meta:?}"
        );
    }
    assert!(info["checksum"].as_str().unwrap().starts_with("adler32:"));
}

/// `2026-11-29T04:52:09Z`
fn chrono_like(t: &str) -> bool {
    let b = t.as_bytes();
    t.len() == 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && t.ends_with('Z')
}
