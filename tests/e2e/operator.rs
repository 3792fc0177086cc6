//! The POMS actions against a state directory, with the controller acting on them: launch,
//! pause and resume (with drift), kill, reset-split, force-located, recover, clone.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{TempDir, cascade, cascade_bin, expect_failure, root, status_json, text};

fn run(example: &str, state: &str) -> std::process::Output {
    cascade(&["run", example, "--state", state, "-q"])
}

fn subs_of<'a>(status: &'a serde_json::Value, stage: &str) -> Vec<&'a serde_json::Value> {
    status["submissions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["submission"]["stage"]["name"] == stage)
        .collect()
}

fn stage<'a>(status: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    status["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"].as_str().unwrap().ends_with(&format!("/{name}")))
        .unwrap()
}

#[test]
fn test_launch_request_runs_with_the_test_flag_and_is_recorded() {
    let state = TempDir::new("op-launch");
    let s = state.path();
    assert!(run("examples/particle_scan", s).status.success());
    let out = cascade(&[
        "launch",
        "scan-gen",
        "--test",
        "--state",
        s,
        "--why",
        "check the new gun",
        "--who",
        "alice",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(run("examples/particle_scan", s).status.success());
    let status = status_json(s);
    let generation = subs_of(&status, "scan-gen");
    let test: Vec<_> = generation
        .iter()
        .filter(|g| g["submission"]["test"] == true)
        .collect();
    assert_eq!(test.len(), 1, "one test launch");
    assert_eq!(
        test[0]["submission"]["origin"],
        serde_json::json!({"kind": "request", "id": 1})
    );
    assert_eq!(
        test[0]["submission"]["dataset"], "electron_1GeV",
        "test launches have their own cursor"
    );
    assert_eq!(test[0]["launcher"], "alice");
    // The test flag propagates to the dependent launch.
    let reco_tests = subs_of(&status, "scan-reco")
        .into_iter()
        .filter(|r| r["submission"]["test"] == true)
        .count();
    assert_eq!(reco_tests, 1);
    let actions = status["operatorActions"].as_array().unwrap();
    assert_eq!(actions[0]["action"], "launch --test");
    assert_eq!(actions[0]["who"], "alice");
    assert_eq!(actions[0]["why"], "check the new gun");
}

#[test]
fn pause_queues_shows_drift_and_resume_releases() {
    let state = TempDir::new("op-pause");
    let s = state.path();
    assert!(run("examples/particle_scan", s).status.success());
    let out = cascade(&[
        "pause",
        "particle-scan",
        "--state",
        s,
        "--why",
        "inspect outputs",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "eve/particle-scan paused: its launches are queued until `cascade resume eve/particle-scan`\n"
    );
    let out = cascade(&[
        "launch",
        "scan-gen",
        "--dataset",
        "electron_5GeV",
        "--state",
        s,
        "--why",
        "one more",
    ]);
    assert!(out.status.success());
    // The run ends blocked: the launch is queued, not made.
    let out = run("examples/particle_scan", s);
    assert!(out.status.success(), "{}", text(&out.stdout));
    let status = status_json(s);
    assert_eq!(subs_of(&status, "scan-gen").len(), 4);
    let generation = stage(&status, "scan-gen");
    assert!(
        generation["reason"]
            .as_str()
            .unwrap()
            .starts_with("campaign `particle-scan` is paused: 1 launch queued (request 1)"),
        "{generation}"
    );
    assert!(
        generation["drift"]
            .as_str()
            .unwrap()
            .starts_with("paused by an operator")
    );
    let table = text(&cascade(&["status", "--state", s]).stdout);
    assert!(
        table.contains(
            "Drift (the state contradicts the definitions):\n  eve/scan-gen: paused by an operator"
        ),
        "{table}"
    );

    assert!(
        cascade(&[
            "resume",
            "particle-scan",
            "--state",
            s,
            "--why",
            "looks good"
        ])
        .status
        .success()
    );
    assert!(run("examples/particle_scan", s).status.success());
    let status = status_json(s);
    let launched = subs_of(&status, "scan-gen");
    assert_eq!(launched.len(), 5, "the queued launch went out");
    assert_eq!(launched[4]["submission"]["dataset"], "electron_5GeV");
    assert!(stage(&status, "scan-gen")["drift"].is_null());
}

#[test]
fn reset_split_starts_the_split_again() {
    let state = TempDir::new("op-reset");
    let s = state.path();
    assert!(run("examples/particle_scan", s).status.success());
    let out = cascade(&[
        "reset-split",
        "scan-gen",
        "--state",
        s,
        "--why",
        "new calibration",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(run("examples/particle_scan", s).status.success());
    let status = status_json(s);
    let datasets: Vec<&str> = subs_of(&status, "scan-gen")
        .iter()
        .map(|g| g["submission"]["dataset"].as_str().unwrap())
        .collect();
    assert_eq!(datasets.len(), 8, "{datasets:?}");
    assert_eq!(
        &datasets[4..],
        ["electron_1GeV", "muon_1GeV", "electron_3GeV", "muon_3GeV"]
    );
}

/// The particle scan with `splitResets: N` on its generator, in a directory of its own.
fn scan_with_resets(dir: &std::path::Path, resets: u32) -> String {
    let out = dir.join("scan");
    std::fs::create_dir_all(&out).unwrap();
    for f in ["setup.yaml", "campaign.yaml"] {
        let mut text =
            std::fs::read_to_string(root().join("examples/particle_scan").join(f)).unwrap();
        // Launch scripts run beside the job type's file: point them back at the examples.
        text = text.replace("../bin/", &format!("{}/examples/bin/", root().display()));
        if f == "campaign.yaml" && resets > 0 {
            text = text.replace(
                "  name: scan-gen\n  namespace: eve\nspec:\n",
                &format!("  name: scan-gen\n  namespace: eve\nspec:\n  splitResets: {resets}\n"),
            );
            assert!(
                text.contains("splitResets"),
                "the stage was not found in:\n{text}"
            );
        }
        std::fs::write(out.join(f), text).unwrap();
    }
    out.to_str().unwrap().to_string()
}

#[test]
fn a_split_reset_is_drift_until_the_definitions_declare_it_and_a_declared_one_is_made() {
    let state = TempDir::new("op-reset-drift");
    let s = state.join("state");
    let s = s.to_str().unwrap();
    let scan = scan_with_resets(&state, 0);
    assert!(run(&scan, s).status.success());
    let out = cascade(&[
        "reset-split",
        "scan-gen",
        "--state",
        s,
        "--why",
        "new calibration",
        "--who",
        "alice",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(run(&scan, s).status.success());
    let drift = stage(&status_json(s), "scan-gen")["drift"].clone();
    assert!(
        drift.as_str().is_some_and(
            |d| d.contains("reset by an operator (alice)") && d.contains("splitResets: 1")
        ),
        "{drift}"
    );
    // The definitions agree: no drift, nothing launched again.
    let scan = scan_with_resets(&state, 1);
    assert!(run(&scan, s).status.success());
    let status = status_json(s);
    assert!(stage(&status, "scan-gen")["drift"].is_null());
    assert_eq!(subs_of(&status, "scan-gen").len(), 8);
    // The definitions ask for one more: the controller makes it and the split runs again.
    let scan = scan_with_resets(&state, 2);
    assert!(run(&scan, s).status.success());
    let status = status_json(s);
    assert!(stage(&status, "scan-gen")["drift"].is_null());
    let datasets: Vec<&str> = subs_of(&status, "scan-gen")
        .iter()
        .map(|g| g["submission"]["dataset"].as_str().unwrap())
        .collect();
    assert_eq!(
        &datasets[8..],
        ["electron_1GeV", "muon_1GeV", "electron_3GeV", "muon_3GeV"],
        "{datasets:?}"
    );
    let actions = status["operatorActions"].as_array().unwrap();
    assert!(
        actions
            .iter()
            .any(|a| a["action"] == "reset-split" && a["who"] == "cascade"),
        "{actions:?}"
    );
}

#[test]
fn kill_removes_a_running_stage_and_its_dependents_are_blocked() {
    let state = TempDir::new("op-kill");
    let s = state.path();
    let mut controller = Command::new(cascade_bin())
        .args(["run", "examples/eve_mc", "--state", s, "-q"])
        .current_dir(root())
        .env("EVE_JOB_SECONDS", "30")
        .env("CASCADE_LOCAL_SLOTS", "2")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        let out = cascade(&["q", "--state", s]);
        if text(&out.stdout).contains(" running") && text(&out.stdout).contains("2 running") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "jobs never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = cascade(&[
        "kill",
        "mc-gen",
        "--state",
        s,
        "--why",
        "wrong generator tune",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let code = controller.wait().unwrap().code();
    assert_eq!(code, Some(3), "a stage failed");
    let status = status_json(s);
    assert_eq!(
        subs_of(&status, "mc-gen")[0]["submission"]["status"],
        "Removed"
    );
    assert_eq!(stage(&status, "mc-gen")["state"], "Failed");
    assert!(
        stage(&status, "mc-g4")["reason"]
            .as_str()
            .unwrap()
            .starts_with("blocked")
    );
    let q = text(&cascade(&["q", "--state", s]).stdout);
    assert!(q.contains("4 removed"), "{q}");

    // The way back: the stage says what to do, commands that cannot apply say so, and a
    // relaunch of the killed slice takes its place so the campaign completes.
    let reason = stage(&status, "mc-gen")["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        reason.contains("to go on, relaunch eve.mc-gen.1's slice with `cascade launch mc-gen"),
        "{reason}"
    );
    expect_failure(
        &["kill", "eve.mc-gen.1", "--state", s, "--why", "again"],
        1,
        "`eve.mc-gen.1` is Removed already: nothing to kill",
    );
    expect_failure(
        &["force-located", "eve.mc-gen.1", "--state", s, "--why", "x"],
        1,
        "`eve.mc-gen.1` is Removed: force-located only applies to a submission that has not ended",
    );
    // The batch daemon started by the slow run lends its environment (30 s jobs) to the jobs
    // it starts: let it go idle and exit first.
    let lock = std::fs::File::open(state.0.join("batchd.lock")).unwrap();
    let start = Instant::now();
    while lock.try_lock().is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the batch daemon never exited"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(lock);
    let history = status_json(s)["history"].as_array().unwrap().len();
    let out = cascade(&["launch", "mc-gen", "--state", s, "--why", "tune fixed"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run("examples/eve_mc", s);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let status = status_json(s);
    assert!(status["history"].as_array().unwrap().len() > history);
    for name in ["mc-gen", "mc-g4", "mc-detsim", "mc-reco", "mc-ana"] {
        assert_eq!(stage(&status, name)["state"], "Completed", "{name}");
    }
    let gens = subs_of(&status, "mc-gen");
    assert_eq!(gens.len(), 2);
    assert_eq!(gens[0]["submission"]["status"], "Removed");
    assert_eq!(gens[1]["submission"]["status"], "Located");
}

#[test]
fn force_located_and_recover_are_recorded_and_acted_on() {
    let state = TempDir::new("op-recover");
    let s = state.path();
    assert!(run("examples/eve_mc", s).status.success());
    // Located already: marking it would change nothing, and the command says so.
    expect_failure(
        &[
            "force-located",
            "eve.mc-reco.1",
            "--state",
            s,
            "--why",
            "checked by hand",
        ],
        1,
        "`eve.mc-reco.1` is Located: force-located only applies to a submission that has not ended; it is located already",
    );
    let out = cascade(&[
        "recover",
        "eve.mc-reco.1",
        "--type",
        "consumed_status",
        "--state",
        s,
        "--why",
        "again",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(run("examples/eve_mc", s).status.success());
    let explain = text(&cascade(&["explain", "mc-reco", "--state", s]).stdout);
    assert!(
        explain.contains("no recovery needed for eve.mc-reco.1 (consumed_status), launch skipped"),
        "{explain}"
    );
    let out = cascade(&[
        "recover",
        "eve.mc-reco.1",
        "--type",
        "bogus",
        "--state",
        s,
        "--why",
        "x",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("unknown recovery type `bogus`"));
    let out = cascade(&["pause", "nothing-here", "--state", s, "--why", "x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no campaign, stage or submission `nothing-here`"));
    expect_failure(
        &["pause", "mc-rec", "--state", s, "--why", "x"],
        1,
        "help: did you mean `mc-reco`?",
    );
    let actions = status_json(s)["operatorActions"].as_array().unwrap().len();
    assert_eq!(actions, 1, "only the recovery request was recorded");
}

#[test]
fn clone_writes_a_campaign_that_validates_beside_its_source() {
    let dir = TempDir::new("op-clone");
    let file = dir.0.join("clone.yaml");
    let out = cascade(&[
        "clone",
        "eve-mc",
        "eve-mc-v2",
        "--from",
        "examples/eve_mc",
        "--out",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let yaml = std::fs::read_to_string(&file).unwrap();
    assert!(yaml.contains("name: eve-mc-v2-mc-gen"), "{yaml}");
    assert!(yaml.contains("stage: eve-mc-v2-mc-g4"), "{yaml}");
    assert!(!yaml.contains("tags"), "tags are not cloned");
    let out = cascade(&["validate", "examples/eve_mc", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("ok: 16 resources"),
        "{}",
        text(&out.stdout)
    );
    let out = cascade(&["clone", "eve-mc", "eve-mc", "--from", "examples/eve_mc"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("a campaign `eve/eve-mc` exists already"));
    // The clone lives elsewhere but runs: launches run beside the job types it shares, so
    // their relative script paths (`../bin/eve.sh`) still resolve.
    let state = dir.0.join("state");
    let out = cascade(&[
        "run",
        "examples/eve_mc/setup.yaml",
        file.to_str().unwrap(),
        "--state",
        state.to_str().unwrap(),
        "-q",
    ]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let status = crate::support::status_json(state.to_str().unwrap());
    for s in status["stages"].as_array().unwrap() {
        assert_eq!(s["state"], "Completed", "{s}");
    }
}

#[test]
fn approval_stage_waits_for_approve_then_its_dependents_run() {
    let dir = TempDir::new("op-approve");
    let defs = dir.0.join("defs.yaml");
    std::fs::write(
        &defs,
        r#"apiVersion: cascade.dev/v1alpha1
kind: LoginSetup
metadata: {name: here, namespace: exp}
spec: {host: localhost, account: me}
---
apiVersion: cascade.dev/v1alpha1
kind: JobType
metadata: {name: noop, namespace: exp}
spec:
  launchScript: cascade submit --jobs 1 -- true
  outputFilePatterns: ["%.out"]
---
apiVersion: cascade.dev/v1alpha1
kind: Campaign
metadata: {name: signed, namespace: exp}
spec:
  defaults: {loginSetup: here, jobType: noop, softwareVersion: v1, completion: {type: complete, percent: 100}}
---
apiVersion: cascade.dev/v1alpha1
kind: CampaignStage
metadata: {name: sign-off, namespace: exp}
spec: {campaign: signed, type: approval, dataset: raw}
---
apiVersion: cascade.dev/v1alpha1
kind: CampaignStage
metadata: {name: process, namespace: exp}
spec:
  campaign: signed
  dependsOn: [{stage: sign-off}]
"#,
    )
    .unwrap();
    let state = dir.0.join("state");
    let s = state.to_str().unwrap();
    let raw = dir.0.join("r1.raw");
    std::fs::write(&raw, "raw").unwrap();
    let declared = cascade(&[
        "catalog",
        "declare",
        raw.to_str().unwrap(),
        "-m",
        "data_tier=raw",
        "--state",
        s,
    ]);
    assert!(declared.status.success(), "{}", text(&declared.stderr));
    let defined = cascade(&["catalog", "define", "raw", "data_tier raw", "--state", s]);
    assert!(defined.status.success(), "{}", text(&defined.stderr));
    let out = run(defs.to_str().unwrap(), s);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let status = status_json(s);
    assert_eq!(
        stage(&status, "sign-off")["reason"],
        "awaiting approval: `cascade approve exp.sign-off.1`"
    );
    assert_eq!(subs_of(&status, "process").len(), 0);
    let out = cascade(&["approve", "exp.process.1", "--state", s, "--why", "x"]);
    assert_eq!(out.status.code(), Some(1), "no such submission yet");
    let out = cascade(&[
        "approve",
        "exp.sign-off.1",
        "--state",
        s,
        "--why",
        "physics signed off",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(run(defs.to_str().unwrap(), s).status.success());
    let status = status_json(s);
    assert_eq!(stage(&status, "process")["state"], "Completed");
    // The process stage ran over the approved dataset as it is (reference §4.4).
    assert_eq!(
        subs_of(&status, "process")[0]["submission"]["input"],
        "defname: raw"
    );
}
