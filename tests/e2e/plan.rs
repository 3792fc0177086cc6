//! `cascade plan` with no state: what a first reconcile would do.

use crate::support::{cascade, text};

#[test]
fn eve_mc_plan_shows_first_command_and_four_waiting_stages() {
    let out = cascade(&["plan", "examples/eve_mc", "--experimenter", "alice"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("First reconcile of 5 stage(s): 1 launch(es), 4 waiting\n"),
        "{stdout}"
    );
    assert!(stdout.contains(
        "eve/mc-gen: launch submission mc-gen-s0\n  command: cascade submit --jobs 4 -- sh bin/eve.sh --stage=gen --events=100 --release=v1_2\n"
    ), "{stdout}");
    for (stage, upstream, pattern) in [
        ("mc-g4", "mc-gen", "%.gen.root"),
        ("mc-detsim", "mc-g4", "%.g4.root"),
        ("mc-reco", "mc-detsim", "%.detsim.root"),
        ("mc-ana", "mc-reco", "%.reco.root"),
    ] {
        let line = format!(
            "eve/{stage}: waiting for stage `{upstream}`: 0 submissions located yet; each located submission launches this stage over its `{pattern}` outputs\n"
        );
        assert!(stdout.contains(&line), "missing {line:?} in\n{stdout}");
    }
}

#[test]
fn plan_json_is_machine_readable() {
    let out = cascade(&[
        "plan",
        "examples/particle_scan",
        "--format",
        "json",
        "--experimenter",
        "alice",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan[0]["action"], "launch");
    assert_eq!(plan[0]["slice"], "electron_1GeV");
    assert!(
        plan[0]["command"]
            .as_str()
            .unwrap()
            .contains("--particle=electron_1GeV")
    );
    assert_eq!(plan[1]["action"], "wait");
}

#[test]
fn plan_refuses_invalid_definitions() {
    let out = cascade(&[
        "plan",
        "tests/fixtures/base.yaml",
        "tests/invalid/dependency-cycle.yaml",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("dependency cycle"));
}
