//! `cascade plan` with no state: what a first reconcile would do.

use crate::support::{cascade, text};

#[test]
fn eve_mc_plan_shows_first_command_and_four_waiting_stages() {
    let out = cascade(&["plan", "examples/eve_mc", "--experimenter", "alice"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("First reconcile of 5 stages: 1 launch, 0 other actions\n"),
        "{stdout}"
    );
    assert!(stdout.contains(
        "eve/mc-gen: launch submission eve.mc-gen.1 (slice 0)\n  command: cascade submit --jobs 4 -- sh ../bin/eve.sh --stage=gen --events=100 --release=v1_2\n"
    ), "{stdout}");
    assert!(
        stdout.contains(
            "eve/mc-g4: waiting for stage `mc-gen`: 0 of 1 submissions located, needs 100%\n"
        ),
        "{stdout}"
    );
    for (stage, upstream, pattern) in [
        ("mc-detsim", "mc-g4", "%.g4.root"),
        ("mc-reco", "mc-detsim", "%.detsim.root"),
        ("mc-ana", "mc-reco", "%.reco.root"),
    ] {
        let line = format!(
            "eve/{stage}: waiting for stage `{upstream}`: not started; each of its located submissions launches this stage over its `{pattern}` outputs\n"
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
    let launch = &plan["actions"][0];
    assert_eq!(launch["action"], "launch");
    assert_eq!(launch["dataset"], "electron_1GeV");
    assert!(
        launch["launch"]["command"]
            .as_str()
            .unwrap()
            .contains("--particle=electron_1GeV")
    );
    assert_eq!(plan["stages"][1]["state"], "waiting");
    assert_eq!(plan["campaigns"][0]["progress"], 0.0);
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
