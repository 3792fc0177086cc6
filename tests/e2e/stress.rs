//! Many launches released at once: forty generator stages launch in the same reconcile, each
//! with a dependent that starts from its located outputs. The controller must read launches
//! recording their outcome, jobs ending and files being declared consistently: every
//! dependent's input is exactly its upstream's located outputs, and no submission completes
//! without the jobs it submitted. Seeded (job counts and the order of the definitions); the
//! seed is in every failure message.

use crate::support::{Rng, TempDir, cascade, root, status_json, text};

const STAGES: usize = 40;

fn definitions(seed: u64) -> String {
    let eve = root().join("examples/bin/eve.sh").display().to_string();
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut out = format!(
        r#"apiVersion: cascade.dev/v1alpha1
kind: LoginSetup
metadata: {{name: here, namespace: st}}
spec: {{host: localhost, account: prod}}
---
apiVersion: cascade.dev/v1alpha1
kind: JobType
metadata: {{name: process, namespace: st}}
spec:
  launchScript: cascade submit --jobs 4 -- sh {eve} --stage=process
  outputFilePatterns: ["%.proc.root"]
---
apiVersion: cascade.dev/v1alpha1
kind: Campaign
metadata: {{name: burst, namespace: st}}
spec:
  defaults: {{loginSetup: here, softwareVersion: v1, completion: {{type: located, percent: 100}}}}
"#
    );
    let mut stages: Vec<String> = Vec::new();
    for i in 0..STAGES {
        let jobs = 1 + rng.below(4);
        stages.push(format!(
            r#"---
apiVersion: cascade.dev/v1alpha1
kind: JobType
metadata: {{name: gen{i}, namespace: st}}
spec:
  launchScript: cascade submit --jobs {jobs} -- sh {eve} --stage=gen --events=3
  outputFilePatterns: ["%.gen.root"]
---
apiVersion: cascade.dev/v1alpha1
kind: CampaignStage
metadata: {{name: gen{i}, namespace: st}}
spec: {{campaign: burst, type: generator, jobType: gen{i}}}
---
apiVersion: cascade.dev/v1alpha1
kind: CampaignStage
metadata: {{name: proc{i}, namespace: st}}
spec:
  campaign: burst
  jobType: process
  dependsOn: [{{stage: gen{i}, filePattern: "%.gen.root"}}]
"#
        ));
    }
    // Definitions in a seeded order: the order the controller meets them in changes.
    for i in (1..stages.len()).rev() {
        stages.swap(i, rng.below(i as u64 + 1) as usize);
    }
    out.push_str(&stages.concat());
    out
}

fn files(state: &str, query: &str) -> Vec<String> {
    let out = cascade(&["catalog", "query", "--state", state, query]);
    assert!(out.status.success(), "{query}: {}", text(&out.stderr));
    let mut names: Vec<String> = text(&out.stdout).lines().map(String::from).collect();
    names.sort();
    names
}

#[test]
fn forty_launches_at_once_feed_each_dependent_exactly_its_upstreams_outputs() {
    for seed in [1, 2, 3] {
        let dir = TempDir::new(&format!("stress-{seed}"));
        let defs = dir.0.join("burst.yaml");
        std::fs::write(&defs, definitions(seed)).unwrap();
        let state = dir.0.join("state").display().to_string();
        let out = cascade(&["run", defs.to_str().unwrap(), "--state", &state, "-q"]);
        assert!(
            out.status.success(),
            "seed {seed}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        let status = status_json(&state);
        for stage in status["stages"].as_array().unwrap() {
            assert_eq!(stage["state"], "Completed", "seed {seed}: {stage}");
        }
        let subs = status["submissions"].as_array().unwrap();
        assert_eq!(subs.len(), 2 * STAGES, "seed {seed}: one launch each");
        for row in subs {
            let sub = &row["submission"];
            let id = sub["id"].as_str().unwrap();
            assert_eq!(sub["status"], "Located", "seed {seed}: {id}");
            assert!(
                sub["jobs"]["total"].as_u64().unwrap() > 0,
                "seed {seed}: {id} ended without the jobs it submitted"
            );
            let Some(upstream) = sub["origin"]["submission"].as_str() else {
                continue;
            };
            let outputs = files(
                &state,
                &format!("submission '{upstream}' and file_name like '%.gen.root'"),
            );
            assert_eq!(
                outputs.len() as u64,
                subs.iter()
                    .find(|r| r["submission"]["id"] == upstream)
                    .unwrap()["submission"]["jobs"]["total"]
                    .as_u64()
                    .unwrap(),
                "seed {seed}: one output per job of {upstream}"
            );
            let input = files(&state, &format!("snapshot_for_project_name '{id}'"));
            assert_eq!(input, outputs, "seed {seed}: {id}'s input");
        }
    }
}
