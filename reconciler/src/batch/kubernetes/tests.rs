//! The Indexed Job Cascade writes and how it reads one back. The pod's script runs here
//! through the real `sh` (as the container's `/bin/sh -c` would), with the environment the
//! Job gives each index.

use std::process::Command;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

fn pod() -> PodSpec {
    PodSpec {
        image: "registry.example.org/eve:v1_2".into(),
        namespace: None,
        cpu: Some("500m".into()),
        memory: Some("2Gi".into()),
        parallelism: Some(2),
    }
}

/// Runs the container command of `manifest` for `index` with the Job's environment; what it
/// printed.
fn run_index(manifest: &Value, index: usize) -> String {
    let container = &manifest["spec"]["template"]["spec"]["containers"][0];
    let command: Vec<&str> = container["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(&command[..2], ["/bin/sh", "-c"]);
    let mut sh = Command::new("sh");
    sh.arg("-c").arg(command[2]).env_clear();
    sh.env("PATH", std::env::var("PATH").unwrap_or_default());
    for var in container["env"].as_array().unwrap() {
        sh.env(
            var["name"].as_str().unwrap(),
            var["value"].as_str().unwrap(),
        );
    }
    sh.env("JOB_COMPLETION_INDEX", index.to_string());
    let out = sh.output().expect("run sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A job that prints its index, its files and its arguments, one per line.
fn echo_job(args: &[&str]) -> Vec<String> {
    let mut argv = vec![
        "sh".to_string(),
        "-c".into(),
        "printf 'index=%s\\n' \"$CASCADE_JOB_INDEX\"; printf 'files=%s\\n' \"$CASCADE_INPUT_FILES\"; shift; for a in \"$@\"; do printf 'arg=%s\\n' \"$a\"; done".into(),
        "job".into(),
        "job".into(),
    ];
    argv.extend(args.iter().map(|a| a.to_string()));
    argv
}

#[test]
fn the_job_is_indexed_one_index_per_job_with_the_submission_identity() {
    let slices = vec![
        vec!["/data/a.root".to_string()],
        vec!["/data/b.root".to_string()],
        vec![],
    ];
    let m = job_manifest(
        "cascade-0123",
        "eve.mc-gen.3",
        "cascade:inst/eve.mc-gen.3",
        &["true".to_string()],
        &[("CASCADE_STAGE".into(), "mc-gen".into())],
        &slices,
        &pod(),
    );
    assert_eq!(m["apiVersion"], "batch/v1");
    assert_eq!(m["kind"], "Job");
    let spec = &m["spec"];
    assert_eq!(spec["completionMode"], "Indexed");
    assert_eq!(spec["completions"], 3);
    assert_eq!(spec["parallelism"], 2);
    assert_eq!(spec["backoffLimitPerIndex"], 0);
    assert_eq!(m["metadata"]["labels"][SUBMISSION_LABEL], "eve.mc-gen.3");
    assert_eq!(
        m["metadata"]["annotations"][TAG_ANNOTATION],
        "cascade:inst/eve.mc-gen.3"
    );
    let template = &spec["template"];
    assert_eq!(
        template["metadata"]["labels"][SUBMISSION_LABEL],
        "eve.mc-gen.3"
    );
    assert_eq!(template["spec"]["restartPolicy"], "Never");
    let c = &template["spec"]["containers"][0];
    assert_eq!(c["image"], "registry.example.org/eve:v1_2");
    assert_eq!(
        c["resources"]["limits"],
        json!({"cpu": "500m", "memory": "2Gi"})
    );
    let env = c["env"].as_array().unwrap();
    let var = |n: &str| {
        env.iter()
            .find(|v| v["name"] == n)
            .map(|v| v["value"].clone())
    };
    assert_eq!(var("CASCADE_STAGE"), Some(json!("mc-gen")));
    assert_eq!(
        var("CASCADE_JOB_TAG"),
        Some(json!("cascade:inst/eve.mc-gen.3"))
    );
    assert_eq!(var("CASCADE_SLICE_1"), Some(json!("/data/b.root")));
    assert_eq!(var("CASCADE_SLICE_2"), Some(json!("")));
}

#[test]
fn each_index_gets_its_own_files_and_the_command_as_written() {
    let slices = vec![
        vec!["/data/a.root".to_string(), "/data/c.root".to_string()],
        vec!["/data/b.root".to_string()],
    ];
    let m = job_manifest(
        "j",
        "s",
        "t",
        &echo_job(&["--events=5"]),
        &[],
        &slices,
        &pod(),
    );
    assert_eq!(
        run_index(&m, 0),
        "index=0\nfiles=/data/a.root\n/data/c.root\narg=--events=5\n"
    );
    assert_eq!(
        run_index(&m, 1),
        "index=1\nfiles=/data/b.root\narg=--events=5\n"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Whatever the arguments and file names hold (quotes, `$(...)`, backquotes, newlines),
    /// the pod's shell passes them to the job as they are and runs nothing of them.
    #[test]
    fn hostile_arguments_and_file_names_stay_values(
        arg in "[ -~\n]{0,40}",
        file in "[!-~]{1,30}",
    ) {
        let slices = vec![vec![format!("/data/{file}")]];
        let m = job_manifest("j", "s", "t", &echo_job(&[&arg]), &[], &slices, &pod());
        let printed = run_index(&m, 0);
        prop_assert_eq!(printed, format!("index=0\nfiles=/data/{file}\narg={arg}\n"));
    }
}

#[test]
fn names_and_labels_follow_the_kubernetes_rules() {
    let a = job_name("cascade:one/eve.mc-gen.1");
    let b = job_name("cascade:two/eve.mc-gen.1");
    assert_ne!(a, b, "two installations' submissions get two Jobs");
    assert_eq!(
        a,
        job_name("cascade:one/eve.mc-gen.1"),
        "a relaunch finds its Job"
    );
    assert!(a.len() <= 63 && a.starts_with("cascade-"));
    assert!(
        a.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    );
    assert_eq!(label_value("eve.mc-gen.1"), "eve.mc-gen.1");
    assert_eq!(label_value("-a b/c-"), "a_b_c");
    assert_eq!(label_value(&"x".repeat(100)).len(), 63);
}

#[test]
fn completed_and_failed_indexes_read_as_kubernetes_writes_them() {
    assert_eq!(parse_indexes("0-2,5"), [0, 1, 2, 5].into());
    assert_eq!(parse_indexes(""), Default::default());
    assert_eq!(parse_indexes("7"), [7].into());
    assert_eq!(parse_indexes("x,3-y,4"), [4].into());
}

fn pod_of(index: i64, phase: &str, exit: Option<i64>, created: &str) -> Value {
    let mut p = json!({
        "metadata": {"labels": {"batch.kubernetes.io/job-completion-index": index.to_string()},
                     "creationTimestamp": created},
        "status": {"phase": phase},
    });
    if let Some(code) = exit {
        p["status"]["containerStatuses"] =
            json!([{"state": {"terminated": {"exitCode": code, "reason": "Error"}}}]);
    }
    p
}

#[test]
fn each_index_counts_from_the_job_status_and_its_pods() {
    let job = json!({
        "metadata": {"annotations": {TAG_ANNOTATION: "cascade:inst/s.1"}},
        "spec": {"completions": 5, "completionMode": "Indexed"},
        "status": {"completedIndexes": "0,2", "failedIndexes": "1"},
    });
    let pods = vec![
        pod_of(1, "Failed", Some(3), "2026-12-06T10:00:00Z"),
        pod_of(3, "Failed", Some(137), "2026-12-06T10:00:00Z"),
        // Index 3 was replaced; the newer pod runs.
        pod_of(3, "Running", None, "2026-12-06T10:05:00Z"),
        pod_of(4, "Pending", None, "2026-12-06T10:00:00Z"),
    ];
    let seen = index_states("eve/cascade-0123", &job, &pods);
    let states: Vec<(String, JobState, Option<i32>)> = seen
        .iter()
        .map(|j| (j.job.clone(), j.state, j.exit_code))
        .collect();
    assert_eq!(
        states,
        vec![
            ("eve/cascade-0123/0".into(), JobState::Succeeded, Some(0)),
            ("eve/cascade-0123/1".into(), JobState::Failed, Some(3)),
            ("eve/cascade-0123/2".into(), JobState::Succeeded, Some(0)),
            ("eve/cascade-0123/3".into(), JobState::Running, None),
            ("eve/cascade-0123/4".into(), JobState::Idle, None),
        ]
    );
    assert!(
        seen.iter()
            .all(|j| j.tag.as_deref() == Some("cascade:inst/s.1"))
    );
    assert_eq!(Kubernetes.index_of(&seen[3]), Some(3));
}

#[test]
fn a_suspended_job_holds_what_has_not_ended() {
    let job = json!({
        "spec": {"completions": 2, "completionMode": "Indexed", "suspend": true},
        "status": {"completedIndexes": "0",
                   "conditions": [{"type": "Suspended", "status": "True"}]},
    });
    let seen = index_states("ns/j", &job, &[]);
    assert_eq!(seen[0].state, JobState::Succeeded);
    assert_eq!(seen[1].state, JobState::Held);
}

#[test]
fn a_failed_job_fails_what_has_not_ended_with_its_reason() {
    let job = json!({
        "spec": {"completions": 2, "completionMode": "Indexed"},
        "status": {"completedIndexes": "0",
                   "conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded",
                                   "message": "Job was active longer than specified deadline"}]},
    });
    let seen = index_states("ns/j", &job, &[]);
    assert_eq!(seen[1].state, JobState::Failed);
    assert!(
        seen[1].reason.starts_with("DeadlineExceeded"),
        "{}",
        seen[1].reason
    );
}

#[test]
fn created_jobs_are_bound_from_what_kubectl_and_cascade_submit_print() {
    let log = "+ kubectl create -f job.yaml\njob.batch/eve-gen created\njob.batch/cascade-0a1b created in namespace eve\njob.batch/eve-gen created\njob.batch/other configured\njob.batch/again unchanged in namespace eve\n";
    assert_eq!(
        Kubernetes.printed_ids(log),
        vec![
            "default/eve-gen".to_string(),
            "eve/cascade-0a1b".to_string(),
            "eve/again".to_string()
        ]
    );
}

#[test]
fn a_job_a_launch_script_created_counts_its_completions() {
    // `kubectl create job` makes a NonIndexed Job: no indexes, counts only.
    let job = |status: Value| json!({"spec": {"completions": 3, "completionMode": "NonIndexed"}, "status": status});
    let states = |status: Value| -> Vec<JobState> {
        index_states("ns/j", &job(status), &[])
            .iter()
            .map(|j| j.state)
            .collect()
    };
    use JobState::*;
    assert_eq!(
        states(json!({"succeeded": 1, "active": 1, "failed": 2})),
        [Succeeded, Running, Idle]
    );
    assert_eq!(
        states(json!({"succeeded": 3, "conditions": [{"type": "Complete", "status": "True"}]})),
        [Succeeded; 3]
    );
    assert_eq!(
        states(
            json!({"succeeded": 1, "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]})
        ),
        [Succeeded, Failed, Failed]
    );
    // Without `completions` (a single pod), one job.
    let single = json!({"spec": {}, "status": {"succeeded": 1}});
    assert_eq!(index_states("ns/j", &single, &[]).len(), 1);
    assert_eq!(index_states("ns/j", &single, &[])[0].state, Succeeded);
}
