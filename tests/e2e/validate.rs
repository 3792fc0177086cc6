//! `cascade validate` over the examples, the invalid corpus and hostile input.

use std::fs;
use std::time::Instant;

use crate::support::{cascade, expect_failure, root, text};

#[test]
fn examples_validate() {
    for path in [
        "examples",
        "examples/eve_mc",
        "examples/eve_noise",
        "examples/particle_scan",
    ] {
        let out = cascade(&["validate", path]);
        assert!(out.status.success(), "{path}: {}", text(&out.stderr));
        assert!(
            text(&out.stdout).starts_with("ok: "),
            "{}",
            text(&out.stdout)
        );
    }
    let out = cascade(&["validate", "examples/eve_mc"]);
    assert_eq!(
        text(&out.stdout),
        "ok: 10 resources (1 LoginSetup, 3 JobTypes, 1 Campaign, 5 CampaignStages)\n"
    );
}

/// Every file of tests/invalid fails with exactly the located message in its `.stderr`.
#[test]
fn invalid_corpus_gives_expected_messages() {
    let dir = root().join("tests/invalid");
    let mut cases: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 25, "corpus has {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let rel = case
            .strip_prefix(root())
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let expected = fs::read_to_string(case.with_extension("stderr"))
            .unwrap_or_else(|_| panic!("{rel} has no .stderr file"));
        let out = cascade(&["validate", "tests/fixtures/base.yaml", &rel]);
        let stderr = text(&out.stderr);
        if out.status.code() != Some(1) || stderr != expected {
            failures.push(format!(
                "{rel}: exit {:?}\n--- expected\n{expected}--- got\n{stderr}",
                out.status.code()
            ));
        }
        // Each message names the file, line and column.
        assert!(stderr.starts_with(&format!("{rel}:")), "{stderr}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// All errors of a set are reported at once, not just the first.
#[test]
fn reports_every_error_not_just_the_first() {
    let out = cascade(&[
        "validate",
        "tests/fixtures/base.yaml",
        "tests/invalid/unknown-field.yaml",
        "tests/invalid/percent-range.yaml",
        "tests/invalid/template-stray-percent.yaml",
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    // The three files each define stage `s1`: the later two are also duplicates.
    for needle in [
        "unknown field `completon`",
        "duplicate CampaignStage `s1`",
        "errors in 4 files",
    ] {
        assert!(stderr.contains(needle), "missing {needle:?} in\n{stderr}");
    }
}

#[test]
fn warnings_do_not_fail() {
    let dir = tempdir("warn");
    fs::write(
        dir.join("w.yaml"),
        "apiVersion: cascade.dev/v1alpha1\nkind: JobType\nmetadata: {name: quiet, namespace: exp}\nspec: {launchScript: run}\n---\napiVersion: cascade.dev/v1alpha1\nkind: CampaignStage\nmetadata: {name: lonely, namespace: exp}\nspec: {campaign: camp, jobType: quiet}\n",
    )
    .unwrap();
    let w = dir.join("w.yaml");
    let out = cascade(&["validate", "tests/fixtures/base.yaml", w.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("warning[no-outputs]: stage `lonely` has no dependents"),
        "{}",
        text(&out.stderr)
    );
}

/// A 50 MB file is refused from its size, quickly, with one located error.
#[test]
fn huge_file_is_refused() {
    let dir = tempdir("huge");
    let path = dir.join("huge.yaml");
    let line = "# padding padding padding padding padding padding padding padding padding\n";
    fs::write(&path, line.repeat(50 * 1024 * 1024 / line.len())).unwrap();
    let started = Instant::now();
    let out = cascade(&["validate", path.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains(":1:1: error[file-too-large]: file is larger than the 16 MiB limit"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().filter(|l| l.contains("error[")).count(), 1);
    eprintln!("50 MB file refused in {:?}", started.elapsed());

    // An endless file is read only up to the limit.
    expect_failure(
        &["validate", "/dev/zero"],
        1,
        "/dev/zero:1:1: error[file-too-large]",
    );
}

/// What `kubectl get campaigns,campaignstages -o yaml` prints (a `v1` List whose items carry
/// server-set metadata and status) validates as the resources it holds, at their own lines.
#[test]
fn a_kubectl_list_export_validates() {
    let dir = tempdir("kubectl-list");
    let path = dir.join("export.yaml");
    fs::write(
        &path,
        r#"apiVersion: v1
kind: List
metadata:
  resourceVersion: ""
items:
- apiVersion: cascade.dev/v1alpha1
  kind: LoginSetup
  metadata:
    name: ls
    namespace: exp
    uid: 0b7f5a
    resourceVersion: "123"
    generation: 2
    creationTimestamp: "2026-11-24T10:00:00Z"
    finalizers: [cascade.dev/ledger]
    managedFields:
    - {manager: kubectl, operation: Apply, fieldsV1: {"f:spec": {}}}
    annotations:
      kubectl.kubernetes.io/last-applied-configuration: '{"apiVersion":"cascade.dev/v1alpha1"}'
  spec: {host: localhost, account: prod}
  status: {conditions: []}
- apiVersion: cascade.dev/v1alpha1
  kind: JobType
  metadata: {name: jt, namespace: exp}
  spec: {launchScript: fife_launch, outputFilePatterns: ["%.root"], memory: 2GB}
"#,
    )
    .unwrap();
    expect_failure(
        &["validate", path.to_str().unwrap()],
        1,
        "export.yaml:25:69: error[invalid-field]: unknown field `memory`",
    );
    let fixed = fs::read_to_string(&path)
        .unwrap()
        .replace(", memory: 2GB", "");
    fs::write(&path, fixed).unwrap();
    let out = cascade(&["validate", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "ok: 2 resources (1 LoginSetup, 1 JobType)\n"
    );
}

/// Machine formats: JSON for tools, GitHub workflow annotations for pull requests.
#[test]
fn diagnostics_as_json_and_github_annotations() {
    let bad = "tests/invalid/unknown-upstream.yaml";
    let out = cascade(&[
        "validate",
        "--format",
        "json",
        "tests/fixtures/base.yaml",
        bad,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        list,
        serde_json::json!([{
            "severity": "error", "file": bad, "line": 7, "column": 15,
            "code": "unknown-reference",
            "message": "upstream stage `s0` does not exist in namespace `exp`",
            "hint": "did you mean `s1`?"
        }])
    );
    let out = cascade(&[
        "validate",
        "--format",
        "github",
        "tests/fixtures/base.yaml",
        bad,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stdout),
        format!(
            "::error file={bad},line=7,col=15,title=cascade unknown-reference::upstream stage `s0` does not exist in namespace `exp`%0Ahelp: did you mean `s1`?\n"
        )
    );
    let out = cascade(&["validate", "--format", "json", "examples"]);
    assert!(out.status.success());
    assert_eq!(text(&out.stdout), "[]\n");
}

#[test]
fn missing_path_is_an_io_failure() {
    let out = cascade(&["validate", "no/such/dir"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("failed to read `no/such/dir`"),
        "{}",
        text(&out.stderr)
    );
    // A directory without YAML is most likely a wrong path, not a valid empty set.
    let empty = tempdir("empty");
    fs::write(empty.join("notes.txt"), "not yaml").unwrap();
    expect_failure(
        &["validate", empty.to_str().unwrap()],
        2,
        "no *.yaml or *.yml file under",
    );
}

/// The checked-in schemas validate against the examples with an independent validator; here
/// we only check the generator is the one that wrote them (the test script runs
/// check-jsonschema).
#[test]
fn generated_artefacts_are_checked_in() {
    let dir = tempdir("gen");
    let out = cascade(&["schema", "--out", dir.join("schemas").to_str().unwrap()]);
    assert!(out.status.success());
    let out = cascade(&["crd", "--out", dir.join("crds").to_str().unwrap()]);
    assert!(out.status.success());
    for (generated, checked_in) in [("schemas", "schemas"), ("crds", "charts/cascade/crds")] {
        let mut names: Vec<_> = fs::read_dir(dir.join(generated))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert!(!names.is_empty());
        for name in names {
            let new = fs::read_to_string(dir.join(generated).join(&name)).unwrap();
            let old = fs::read_to_string(root().join(checked_in).join(&name)).unwrap_or_default();
            assert!(
                new == old,
                "{checked_in}/{} differs from what the code generates: run `cargo run -- {} --out {checked_in}`",
                name.to_string_lossy(),
                if generated == "crds" { "crd" } else { "schema" }
            );
        }
    }
}

/// A fresh directory for a test, removed when the test ends.
pub fn tempdir(tag: &str) -> crate::support::TempDir {
    crate::support::TempDir::new(tag)
}

#[test]
fn a_dependency_pattern_no_upstream_output_matches_is_a_warning() {
    let dir = crate::support::TempDir::new("validate-pattern");
    let defs = dir.0.join("defs.yaml");
    std::fs::write(
        &defs,
        r#"apiVersion: cascade.dev/v1alpha1
kind: CampaignStage
metadata: {name: gen, namespace: exp}
spec: {campaign: camp, type: generator}
---
apiVersion: cascade.dev/v1alpha1
kind: CampaignStage
metadata: {name: reco, namespace: exp}
spec:
  campaign: camp
  dependsOn: [{stage: gen, filePattern: "%.txt"}]
"#,
    )
    .unwrap();
    let out = cascade(&[
        "validate",
        "tests/fixtures/base.yaml",
        defs.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "a warning: {}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("defs.yaml:11:41: warning[pattern-matches-no-output]: `%.txt` matches none of the outputs of stage `gen` (its job type `jt` writes `%.root`): this stage would run over nothing"),
        "{stderr}"
    );
}
