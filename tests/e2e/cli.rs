//! The CLI as the README documents it: one table of exit statuses, quiet closed pipes, reading
//! commands that never make state, operator commands before the first run, stages listed in
//! pipeline order.

use std::io::Read;
use std::process::{Command, Stdio};

use crate::support::{TempDir, cascade, cascade_bin, expect_failure, root, status_json, text};

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let state = TempDir::new("cli-pipe");
    let s = state.path();
    let out = cascade(&["run", "examples/eve_mc", "--state", s, "-q"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for args in [
        vec!["status", "--state", s, "--history"],
        vec!["q", "--state", s],
        vec!["explain", "mc-reco", "--state", s],
        vec!["catalog", "query", "--state", s, "file_name like '%'"],
        vec!["plan", "examples/eve_mc"],
    ] {
        let mut child = Command::new(cascade_bin())
            .args(&args)
            .current_dir(root())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Read one byte, then close the pipe, as `head -c1` does.
        let mut stdout = child.stdout.take().unwrap();
        let mut byte = [0u8; 1];
        let _ = stdout.read(&mut byte);
        drop(stdout);
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            !text(&out.stderr).contains("Broken pipe"),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn reading_commands_never_make_state() {
    let dir = TempDir::new("cli-nostate");
    let state = dir.0.join("none");
    let s = state.to_str().unwrap();
    for args in [
        vec!["status", "--state", s],
        vec!["q", "--state", s],
        vec!["explain", "mc-gen", "--state", s],
        vec!["catalog", "query", "--state", s, "version v1"],
    ] {
        let err = expect_failure(&args, 1, "no state in");
        assert!(err.contains("run `cascade run` first"), "{err}");
        assert_eq!(err.matches("error:").count(), 1, "{err}");
    }
    assert!(!state.exists(), "a reading command made the state");
}

#[test]
fn a_run_of_invalid_definitions_is_input_rejected_and_leaves_no_state() {
    let dir = TempDir::new("cli-invalid");
    let bad = dir.0.join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: cascade.dev/v1alpha1\nkind: Campaign\nmetadata: {name: c, namespace: x}\nspec: {paused: sometimes}\n",
    )
    .unwrap();
    let state = dir.0.join("state");
    expect_failure(
        &[
            "run",
            bad.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
        ],
        1,
        "bad.yaml:4:",
    );
    assert!(!state.exists());
}

#[test]
fn usage_errors_and_queries_say_error_once() {
    expect_failure(&["pause", "x"], 1, "--why");
    let state = TempDir::new("cli-query");
    let s = state.path();
    let out = cascade(&["catalog", "define", "x", "version v1", "--state", s]);
    assert!(out.status.success());
    let err = expect_failure(
        &["catalog", "query", "--state", s, "version v1 and"],
        1,
        "query:1:",
    );
    assert_eq!(err.matches("error").count(), 1, "{err}");
}

/// A pause recorded before the first run holds the campaign's launches; `status` shows an
/// operator's pause as drift at once; the launch message says "queued" only when paused.
#[test]
fn pauses_before_the_first_run_and_drift_shown_at_once() {
    let state = TempDir::new("cli-pause");
    let s = state.path();
    let out = cascade(&["pause", "eve/mc-g4", "--state", s, "--why", "tune first"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = cascade(&["run", "examples/eve_mc", "--state", s, "-q"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let status = status_json(s);
    let stage = |name: &str| {
        status["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["stage"] == format!("eve/{name}"))
            .unwrap()
            .clone()
    };
    assert_eq!(stage("mc-gen")["state"], "Completed");
    assert!(
        stage("mc-g4")["reason"]
            .as_str()
            .unwrap()
            .contains("is paused"),
        "{}",
        stage("mc-g4")
    );
    // Stages in pipeline order, as `run` prints them.
    let names: Vec<String> = status["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["stage"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "eve/mc-gen",
            "eve/mc-g4",
            "eve/mc-detsim",
            "eve/mc-reco",
            "eve/mc-ana"
        ]
    );
    let out = cascade(&["launch", "mc-g4", "--state", s, "--why", "now"]);
    assert!(
        text(&out.stdout).contains("the stage is paused, so it is queued"),
        "{}",
        text(&out.stdout)
    );
    let out = cascade(&["launch", "mc-gen", "--state", s, "--why", "again"]);
    assert!(
        !text(&out.stdout).contains("paused"),
        "{}",
        text(&out.stdout)
    );
    // A pause of a stage that was running shows as drift before any reconcile.
    let out = cascade(&["pause", "mc-gen", "--state", s, "--why", "look"]);
    assert!(out.status.success());
    let drift = &status_json(s)["stages"][0]["drift"];
    assert!(
        drift
            .as_str()
            .unwrap_or_default()
            .contains("paused by an operator"),
        "{drift}"
    );
}
