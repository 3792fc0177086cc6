//! Processing existing datasets, the commonest production job: files declared in the
//! catalog, a definition made by a person, and stages reading it with every split type.
//! Each job records the input files it received; the expected slices are reference §3.6's
//! test vectors over its five-file dataset (with POMS's parsing bugs fixed, as §3.6 states).

use std::collections::BTreeMap;
use std::path::Path;

use crate::support::{TempDir, cascade, catalog_query, status_json, text};

/// §3.6's dataset: five files with run.subrun and end time.
const FILES: [(&str, u64, u64, i64); 5] = [
    ("f1", 1, 0, 1_475_283_600), // 2016-10-01T01:00Z
    ("f2", 1, 1, 1_475_370_000),
    ("f3", 2, 0, 1_475_456_400),
    ("f4", 2, 1, 1_475_542_800),
    ("f5", 3, 0, 1_475_629_200),
];

const HEAD: &str = r#"apiVersion: cascade.dev/v1alpha1
kind: LoginSetup
metadata: {name: here, namespace: exp}
spec: {host: localhost, account: prod}
---
apiVersion: cascade.dev/v1alpha1
kind: JobType
metadata: {name: record, namespace: exp}
spec:
  launchScript: cascade submit --jobs 1 -- sh RECORD_SH RECEIVED
  outputFilePatterns: ["%.out"]
---
apiVersion: cascade.dev/v1alpha1
kind: Campaign
metadata: {name: reading, namespace: exp}
spec:
  defaults: {loginSetup: here, jobType: record, softwareVersion: v1, completion: {type: complete, percent: 100}}
"#;

/// A job that writes the names of the input files it received, one per line, into
/// `RECEIVED/<submission>`.
const RECORD_SH: &str = r#"#!/bin/sh
set -eu
out="$1/$CASCADE_SUBMISSION_ID"
: > "$out.tmp"
printf '%s\n' "$CASCADE_INPUT_FILES" | while IFS= read -r f; do
  if [ -n "$f" ]; then basename "$f" >> "$out.tmp"; fi
done
mv "$out.tmp" "$out"
"#;

fn stage_yaml(name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: cascade.dev/v1alpha1\nkind: CampaignStage\nmetadata: {{name: {name}, namespace: exp}}\nspec:\n  campaign: reading\n{spec}\n"
    )
}

/// A stage over `dataset` with `split`, relaunching itself with the next slice.
fn split_stage(name: &str, dataset: &str, split: &str) -> String {
    stage_yaml(
        name,
        &format!("  dataset: {dataset}\n  split: \"{split}\"\n  dependsOn: [{{stage: {name}}}]"),
    )
}

struct Setup {
    dir: TempDir,
    state: String,
}

impl Setup {
    fn new(name: &str) -> Setup {
        let dir = TempDir::new(name);
        let state = dir.0.join("state").display().to_string();
        std::fs::create_dir_all(dir.0.join("received")).unwrap();
        std::fs::write(dir.0.join("record.sh"), RECORD_SH).unwrap();
        let setup = Setup { dir, state };
        for (file, run, subrun, end) in FILES {
            let path = setup.dir.0.join(file);
            std::fs::write(&path, file).unwrap();
            setup.ok(&[
                "catalog",
                "declare",
                path.to_str().unwrap(),
                "-m",
                "data_tier=raw",
                "-m",
                &format!("run_number={run}"),
                "-m",
                &format!("subrun={subrun}"),
                "-m",
                &format!("end_time={end}"),
            ]);
        }
        setup.ok(&["catalog", "define", "raw_ds", "data_tier raw"]);
        setup
    }

    /// Runs `cascade ARGS --state STATE`, which must succeed.
    fn ok(&self, args: &[&str]) -> String {
        let mut all = args.to_vec();
        all.extend(["--state", &self.state]);
        let out = cascade(&all);
        assert!(
            out.status.success(),
            "{all:?}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    fn write_defs(&self, stages: &str) -> String {
        let head = HEAD
            .replace(
                "RECORD_SH",
                &self.dir.0.join("record.sh").display().to_string(),
            )
            .replace(
                "RECEIVED",
                &self.dir.0.join("received").display().to_string(),
            );
        let path = self.dir.0.join("defs.yaml");
        std::fs::write(&path, format!("{head}{stages}")).unwrap();
        path.display().to_string()
    }

    fn run(&self, stages: &str) {
        let defs = self.write_defs(stages);
        self.ok(&["run", &defs, "-q"]);
    }

    /// The input files each submission of `stage` received, in submission order.
    fn received(&self, stage: &str) -> Vec<Vec<String>> {
        let dir = self.dir.0.join("received");
        let mut by_seq: BTreeMap<u64, Vec<String>> = BTreeMap::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            let Some(seq) = name
                .strip_prefix(&format!("exp.{stage}."))
                .and_then(|s| s.parse().ok())
            else {
                continue;
            };
            let body = std::fs::read_to_string(dir.join(&name)).unwrap();
            by_seq.insert(seq, body.lines().map(String::from).collect());
        }
        by_seq.into_values().collect()
    }
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn stage_of<'a>(status: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    status["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == format!("exp/{name}"))
        .unwrap_or_else(|| panic!("no stage {name}"))
}

fn definitions(setup: &Setup) -> BTreeMap<String, String> {
    setup
        .ok(&["catalog", "show", "--definitions"])
        .lines()
        .filter_map(|l| {
            let (name, query) = l.split_once(':')?;
            Some((name.trim().to_string(), query.trim().to_string()))
        })
        .collect()
}

/// The issue's report: a stage reading an existing dataset processes its files, and the
/// person's definition is the same afterwards.
#[test]
fn a_stage_reads_an_existing_dataset_and_leaves_its_definition_alone() {
    let setup = Setup::new("ds-whole");
    setup.run(&stage_yaml("reco", "  dataset: raw_ds"));
    assert_eq!(
        setup.received("reco"),
        vec![names(&["f1", "f2", "f3", "f4", "f5"])]
    );
    let status = status_json(&setup.state);
    assert_eq!(stage_of(&status, "reco")["state"], "Completed");
    assert_eq!(
        catalog_query(&setup.state, "defname: raw_ds"),
        names(&["f1", "f2", "f3", "f4", "f5"]),
        "the definition still selects the dataset"
    );
    let defs = definitions(&setup);
    assert_eq!(
        defs.get("raw_ds").map(String::as_str),
        Some("data_tier raw"),
        "{defs:?}"
    );
    // `cascade launch --dataset` of the same stage goes through the same path.
    let defs_file = setup.write_defs(&stage_yaml("reco", "  dataset: raw_ds"));
    setup.ok(&["launch", "reco", "--dataset", "raw_ds", "--why", "again"]);
    setup.ok(&["run", &defs_file, "-q"]);
    assert_eq!(setup.received("reco").len(), 2);
    assert_eq!(
        setup.received("reco")[1],
        names(&["f1", "f2", "f3", "f4", "f5"])
    );
    assert_eq!(
        definitions(&setup).get("raw_ds").map(String::as_str),
        Some("data_tier raw")
    );
}

/// Every split type over the same dataset, each slice's files as §3.6 gives them, and each
/// slice's definition evaluating afterwards to exactly the files it delivered.
#[test]
fn every_split_type_delivers_the_reference_slices() {
    let setup = Setup::new("ds-splits");
    let cases: [(&str, &str, Vec<Vec<&str>>); 7] = [
        (
            "nf",
            "nfiles(2)",
            vec![vec!["f1", "f2"], vec!["f3", "f4"], vec!["f5"]],
        ),
        (
            "md",
            "mod(3)",
            vec![vec!["f1", "f4"], vec!["f2", "f5"], vec!["f3"]],
        ),
        (
            "br",
            "byrun(low=1,high=4)",
            vec![vec!["f1", "f2"], vec!["f3", "f4"], vec!["f5"]],
        ),
        (
            "ber",
            "byexistingruns",
            vec![vec!["f1"], vec!["f2"], vec!["f3"], vec!["f4"], vec!["f5"]],
        ),
        (
            "dn",
            "drainingn(2)",
            vec![vec!["f1", "f2"], vec!["f3", "f4"], vec!["f5"]],
        ),
        (
            "nw",
            "new(firsttime=1475280000,window=1d,lasttime=1475539200)",
            vec![vec!["f1"], vec!["f2"]],
        ),
        ("lm", "limitn(2)", vec![vec!["f1", "f2"]]),
    ];
    let mut stages = String::new();
    for (name, split, _) in &cases {
        stages.push_str(&if *name == "lm" {
            // limitn never runs out, so it cannot relaunch itself.
            stage_yaml(name, &format!("  dataset: raw_ds\n  split: \"{split}\""))
        } else {
            split_stage(name, "raw_ds", split)
        });
    }
    // `list` over definitions people made, and `draining` over the dataset itself.
    setup.ok(&["catalog", "define", "early", "run_number 1"]);
    setup.ok(&["catalog", "define", "late", "run_number 2-3"]);
    stages.push_str(&split_stage("ls", "early,late", "list"));
    stages.push_str(&stage_yaml("dr", "  dataset: raw_ds\n  split: draining"));
    setup.run(&stages);

    let status = status_json(&setup.state);
    let subs = status["submissions"].as_array().unwrap();
    for (name, split, want) in &cases {
        let want: Vec<Vec<String>> = want.iter().map(|s| names(s)).collect();
        assert_eq!(setup.received(name), want, "{name}: {split}");
        let state = &stage_of(&status, name)["state"];
        assert!(
            state == "Completed" || state == "Exhausted",
            "{name}: {state}"
        );
        // Each slice's definition is a snapshot of what it delivered.
        for (sub, files) in subs
            .iter()
            .filter(|s| s["submission"]["stage"]["name"] == *name)
            .zip(&want)
        {
            let dataset = sub["submission"]["dataset"].as_str().unwrap();
            assert_eq!(
                &catalog_query(&setup.state, &format!("defname: {dataset}")),
                files,
                "{name}: definition {dataset}"
            );
            // The slice's query, as the submission records it, selects the same files (the
            // dataset did not change): snapshots and times in it are real.
            let input = sub["submission"]["input"].as_str().unwrap();
            assert_eq!(
                &catalog_query(&setup.state, input),
                files,
                "{name}: input {input}"
            );
        }
    }
    assert_eq!(
        setup.received("ls"),
        vec![names(&["f1", "f2"]), names(&["f3", "f4", "f5"])]
    );
    assert_eq!(
        setup.received("dr"),
        vec![names(&["f1", "f2", "f3", "f4", "f5"])]
    );
    let defs = definitions(&setup);
    assert_eq!(defs["raw_ds"], "data_tier raw");
    assert_eq!(defs["early"], "run_number 1");
    assert_eq!(defs["late"], "run_number 2-3");
}

/// `stagedfiles(n)` slices the files a project consumed: here the project of a submission
/// that read the whole dataset.
#[test]
fn stagedfiles_slices_the_files_a_project_consumed() {
    let setup = Setup::new("ds-staged");
    let whole = stage_yaml("prestage", "  dataset: raw_ds");
    setup.run(&whole);
    let staged = split_stage("staged", "exp.prestage.1", "stagedfiles(2)");
    setup.run(&format!("{whole}{staged}"));
    assert_eq!(
        setup.received("staged"),
        vec![names(&["f1", "f2"]), names(&["f3", "f4"]), names(&["f5"])]
    );
}

/// A launch that submits no job is not success: `LaunchFailed` after the launch timeout,
/// the run says so and fails, and nothing downstream starts.
#[test]
fn a_launch_that_submits_nothing_is_launch_failed_not_completed() {
    let setup = Setup::new("ds-nojobs");
    let defs = setup.write_defs(&format!(
        "{}{}{}",
        r#"---
apiVersion: cascade.dev/v1alpha1
kind: JobType
metadata: {name: silent, namespace: exp}
spec:
  launchScript: "true"
  outputFilePatterns: ["%.out"]
"#,
        stage_yaml("gen", "  type: generator\n  jobType: silent"),
        stage_yaml("sim", "  dependsOn: [{stage: gen, filePattern: '%.out'}]"),
    ));
    let out = cascade(&[
        "run",
        &defs,
        "-q",
        "--state",
        &setup.state,
        "--launch-timeout",
        "2s",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let status = status_json(&setup.state);
    let gen_sub = &status["submissions"][0]["submission"];
    assert_eq!(gen_sub["status"], "LaunchFailed");
    assert_eq!(stage_of(&status, "gen")["state"], "Failed");
    assert_eq!(stage_of(&status, "sim")["state"], "Waiting");
    assert_eq!(status["submissions"].as_array().unwrap().len(), 1);
    let history = status["history"].as_array().unwrap();
    assert!(
        history
            .iter()
            .any(|h| h["status"] == "LaunchFailed"
                && h["reason"].as_str().unwrap().contains("no job")),
        "{history:?}"
    );
    assert!(!Path::new(&setup.dir.0.join("received/exp.sim.1")).exists());
}

/// A dataset with no files launches nothing and the stage does not claim success.
#[test]
fn an_empty_dataset_launches_nothing_and_says_so() {
    let setup = Setup::new("ds-empty");
    setup.ok(&["catalog", "define", "nothing", "data_tier none"]);
    let defs = setup.write_defs(&stage_yaml("reco", "  dataset: nothing"));
    let out = cascade(&["run", &defs, "-q", "--state", &setup.state]);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("selects no files"), "{stdout}");
    let status = status_json(&setup.state);
    assert_eq!(stage_of(&status, "reco")["state"], "Waiting");
    assert!(status["submissions"].as_array().unwrap().is_empty());
}
