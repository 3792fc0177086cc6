//! `cascade run` runs the examples to the end on this machine, with the local batch system,
//! real processes and the SQLite ledger; `status`, `explain`, `q` and the catalog show it.

use crate::support::{
    TempDir, assert_eve_mc_outputs, cascade, catalog_query, expect_failure, status_json, text,
};

fn run_example(example: &str, state: &TempDir) -> String {
    let out = cascade(&["run", example, "--state", state.path(), "-q"]);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "{example}: {}\n{stdout}",
        text(&out.stderr)
    );
    stdout
}

fn stage_states(status: &serde_json::Value) -> Vec<(String, String)> {
    status["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["stage"].as_str().unwrap().to_string(),
                s["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn eve_mc_runs_to_completion_with_recovery_and_parentage() {
    let state = TempDir::new("eve-mc");
    let stdout = run_example("examples/eve_mc", &state);
    assert!(
        stdout.contains("campaign eve/eve-mc: 100% done, 5 of 5 stages succeeded, 0 failed"),
        "{stdout}"
    );
    let status = status_json(state.path());
    for (stage, st) in stage_states(&status) {
        assert_eq!(st, "Completed", "{stage}");
    }
    // Recovery rounds ran for reconstruction (one job in five fails until it gets memory).
    let subs = status["submissions"].as_array().unwrap();
    let reco: Vec<_> = subs
        .iter()
        .filter(|s| s["submission"]["stage"]["name"] == "mc-reco")
        .collect();
    assert_eq!(reco.len(), 3, "original and two recovery rounds");
    assert_eq!(reco[1]["submission"]["origin"]["kind"], "recovery");
    assert!(
        reco[2]["command"]
            .as_str()
            .unwrap()
            .contains("--memory=4000MB")
    );
    // Real files, with parentage, at every step of the chain.
    assert_eve_mc_outputs(state.path(), "eve_mc");
    let children = catalog_query(
        state.path(),
        "ischildof:( file_name like '%.detsim.root' ) and version v1_2",
    );
    assert_eq!(children.len(), 4, "reco files are children of detsim files");
    let show = cascade(&[
        "catalog",
        "show",
        "--state",
        state.path(),
        &children[0],
        "--format",
        "json",
    ]);
    let info: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(info["parents"].as_array().unwrap().len(), 1);
    assert!(
        std::path::Path::new(info["location"].as_str().unwrap())
            .join(&children[0])
            .exists()
    );

    // `explain` and `q` tell the same story.
    let explain = cascade(&["explain", "mc-reco", "--state", state.path()]);
    let explain = text(&explain.stdout);
    assert!(
        explain.starts_with("eve/mc-reco is Completed: completed: 100% located"),
        "{explain}"
    );
    assert!(explain.contains("recovery round 2"), "{explain}");
    let q = cascade(&["q", "--state", state.path()]);
    assert!(
        text(&q.stdout)
            .contains("20 jobs: 0 idle, 0 running, 0 held, 18 succeeded, 2 failed, 0 removed"),
        "{}",
        text(&q.stdout)
    );
}

#[test]
fn branching_example_joins_both_branches() {
    let state = TempDir::new("eve-noise");
    run_example("examples/eve_noise", &state);
    let status = status_json(state.path());
    assert!(stage_states(&status).iter().all(|(_, s)| s == "Completed"));
    let compare: Vec<_> = status["submissions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["submission"]["stage"]["name"] == "noise-compare")
        .collect();
    assert_eq!(compare.len(), 1, "the join launches once");
    let input = compare[0]["submission"]["input"].as_str().unwrap();
    assert!(
        input.contains("noise-sim-quiet") && input.contains("noise-sim-noisy"),
        "{input}"
    );
}

#[test]
fn scan_example_launches_each_combination_once() {
    let state = TempDir::new("scan");
    run_example("examples/particle_scan", &state);
    let status = status_json(state.path());
    let datasets: Vec<String> = status["submissions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["submission"]["stage"]["name"] == "scan-gen")
        .map(|s| s["submission"]["dataset"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        datasets,
        ["electron_1GeV", "muon_1GeV", "electron_3GeV", "muon_3GeV"]
    );
    assert_eq!(
        catalog_query(state.path(), "file_name like '%.reco.root'").len(),
        16
    );
    // The stage's status in resource form: the split normalised, where it stands, conditions.
    let generator = status["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == "eve/scan-gen")
        .expect("scan-gen in status");
    let st = &generator["status"];
    assert_eq!(st["split"], serde_json::json!({"type": "multiparam"}));
    assert_eq!(st["splitPosition"], "slice 4");
    assert_eq!(st["exhausted"], true);
    assert_eq!(st["phase"], "Completed");
    assert_eq!(st["submissions"], serde_json::json!({"Located": 4}));
    let ready = st["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(ready["status"], "True");
    assert!(ready["lastTransitionTime"].as_str().unwrap().ends_with('Z'));
    let campaign = &status["campaigns"]["eve/particle-scan"];
    assert_eq!(campaign["progressPercent"], 100.0);
    assert_eq!(campaign["stages"], serde_json::json!({"Completed": 2}));

    // A misspelt stage gets a suggestion in the form it was given.
    expect_failure(
        &["explain", "scan-gne", "--state", state.path()],
        1,
        "help: did you mean `scan-gen`?",
    );
}

#[test]
fn a_second_run_finds_everything_done_and_launches_nothing() {
    let state = TempDir::new("rerun");
    run_example("examples/particle_scan", &state);
    let before = status_json(state.path())["submissions"]
        .as_array()
        .unwrap()
        .len();
    run_example("examples/particle_scan", &state);
    let after = status_json(state.path())["submissions"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(before, after);
}

#[test]
fn plan_with_state_shows_the_next_reconcile() {
    let state = TempDir::new("plan-state");
    run_example("examples/particle_scan", &state);
    let out = cascade(&["plan", "examples/particle_scan", "--state", state.path()]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("Next reconcile of 2 stages: 0 launches, 0 other actions"),
        "{stdout}"
    );
    assert!(
        stdout.contains("eve/scan-gen: completed: 100% located (4 of 4 submissions), needs 100%"),
        "{stdout}"
    );
}

/// Copies an example and the shared job script into a fresh directory.
fn copy_example(example: &str, to: &std::path::Path) -> std::path::PathBuf {
    let root = crate::support::root();
    let defs = to.join(example);
    std::fs::create_dir_all(&defs).unwrap();
    std::fs::create_dir_all(to.join("bin")).unwrap();
    std::fs::copy(root.join("examples/bin/eve.sh"), to.join("bin/eve.sh")).unwrap();
    for entry in std::fs::read_dir(root.join("examples").join(example)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), defs.join(entry.file_name())).unwrap();
    }
    defs
}

fn wait_for_stage(state: &str, stage: &str, want: &str) {
    let start = std::time::Instant::now();
    loop {
        let out = cascade(&["status", "--state", state, "--format", "json"]);
        if out.status.success() {
            let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            if stage_states(&status)
                .iter()
                .any(|(s, st)| s == stage && st == want)
            {
                return;
            }
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "{stage} never became {want}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn a_watching_controller_applies_edits_and_keeps_the_last_good_definitions() {
    let dir = TempDir::new("watch");
    let defs = copy_example("particle_scan", &dir.0);
    let state = dir.0.join("state");
    let s = state.to_str().unwrap();
    let mut controller = std::process::Command::new(crate::support::cascade_bin())
        .args(["run", defs.to_str().unwrap(), "--state", s, "--watch", "-q"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_stage(s, "eve/scan-reco", "Completed");
    // A broken edit is refused; the controller goes on with what it had.
    std::fs::write(defs.join("broken.yaml"), "apiVersion: cascade.dev/v1alpha1\nkind: CampaignStage\nmetadata: {name: bad, namespace: eve}\nspec: {campaign: nowhere}\n").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(600));
    std::fs::remove_file(defs.join("broken.yaml")).unwrap();
    // A new stage is picked up and runs over the scan's reconstructed files.
    std::fs::write(
        defs.join("analysis.yaml"),
        "apiVersion: cascade.dev/v1alpha1\nkind: CampaignStage\nmetadata: {name: scan-ana, namespace: eve}\nspec:\n  campaign: particle-scan\n  loginSetup: scan-local\n  jobType: scan-ana-job\n  softwareVersion: v1_2\n  completion: {type: complete, percent: 100}\n  dependsOn: [{stage: scan-reco, filePattern: '%.reco.root', trigger: stageComplete}]\n",
    )
    .unwrap();
    wait_for_stage(s, "eve/scan-ana", "Completed");
    controller.kill().unwrap();
    let out = controller.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("definitions changed but do not validate; keeping the last good ones"),
        "{stderr}"
    );
    assert!(stderr.contains("unknown-reference"), "{stderr}");
    assert_eq!(catalog_query(s, "file_name like '%.ana.root'").len(), 2);
}

#[test]
fn hostile_values_reach_jobs_as_literal_text_and_run_nothing() {
    let dir = TempDir::new("hostile");
    let defs = copy_example("particle_scan", &dir.0);
    let campaign = defs.join("campaign.yaml");
    let text_before = std::fs::read_to_string(&campaign).unwrap();
    let hostile = text_before
        .replace("release: v1_2", "release: \"v1_2; touch PWNED_K\"")
        .replace(
            "dataset: [[electron, muon], [1GeV, 3GeV]]",
            "dataset: [[\"e$(touch PWNED_D)\", \"mu`touch PWNED_B`\"], [\"1GeV'\\\"\"]]",
        );
    assert_ne!(
        hostile, text_before,
        "the example changed shape: update this test"
    );
    std::fs::write(&campaign, hostile).unwrap();
    let state = dir.0.join("state");
    let out = cascade(&[
        "run",
        defs.to_str().unwrap(),
        "--state",
        state.to_str().unwrap(),
        "-q",
    ]);
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stderr),
        text(&out.stdout)
    );
    let mut found = Vec::new();
    let mut stack = vec![dir.0.clone(), crate::support::root()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if e.file_name().to_string_lossy().starts_with("PWNED") {
                found.push(p.clone());
            }
            if p.is_dir() && p.starts_with(&dir.0) {
                stack.push(p);
            }
        }
    }
    assert!(found.is_empty(), "shell ran hostile text: {found:?}");
    // The jobs saw the values as they were written.
    let gens = catalog_query(state.to_str().unwrap(), "file_name like '%.gen.root'");
    let contents: String = gens
        .iter()
        .map(|g| {
            let out = cascade(&[
                "catalog",
                "show",
                "--state",
                state.to_str().unwrap(),
                g,
                "--format",
                "json",
            ]);
            let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let path = std::path::Path::new(info["location"].as_str().unwrap()).join(g);
            std::fs::read_to_string(path).unwrap()
        })
        .collect();
    assert!(
        contents.contains("particle=e$(touch PWNED_D)_1GeV'\""),
        "{contents}"
    );
    assert!(
        contents.contains("release=v1_2; touch PWNED_K"),
        "{contents}"
    );
}

/// `--log-format json`: every line on standard error is one JSON event, and the controller
/// tells each launch and each stage's change of state.
#[test]
fn json_logs_tell_launches_and_state_changes_one_object_per_line() {
    let state = TempDir::new("run-json-logs");
    let out = std::process::Command::new(crate::support::cascade_bin())
        .args(["run", "examples/eve_mc", "--state", state.path(), "-q"])
        .args(["--log-format", "json"])
        .current_dir(crate::support::root())
        .env("EVE_JOB_SECONDS", "0.1")
        .env("CASCADE_LOG", "info")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let events: Vec<serde_json::Value> = text(&out.stderr)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let completed: Vec<&str> = events
        .iter()
        .filter(|e| e["fields"]["message"] == "stage state" && e["fields"]["to"] == "Completed")
        .map(|e| e["fields"]["stage"].as_str().unwrap())
        .collect();
    for stage in ["mc-gen", "mc-g4", "mc-detsim", "mc-reco", "mc-ana"] {
        assert!(
            completed.contains(&format!("eve/{stage}").as_str()),
            "{stage} completed: {completed:?}"
        );
    }
    assert!(events.iter().any(|e| e["fields"]["message"] == "launching"
        && e["fields"]["submission"] == "eve.mc-gen.1"
        && e["level"] == "INFO"));
    // Without CASCADE_LOG, `run` (which prints its own progress) logs warnings only.
    let quiet = TempDir::new("run-quiet-logs");
    let out = std::process::Command::new(crate::support::cascade_bin())
        .args(["run", "examples/eve_mc", "--state", quiet.path(), "-q"])
        .current_dir(crate::support::root())
        .env("EVE_JOB_SECONDS", "0.1")
        .env_remove("CASCADE_LOG")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        !text(&out.stderr).contains("launching"),
        "{}",
        text(&out.stderr)
    );
}
