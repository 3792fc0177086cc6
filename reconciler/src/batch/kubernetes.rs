//! The `kubernetes` batch system: a submission's jobs as one `batch/v1` Indexed Job.
//!
//! `cascade submit` (in a launch of a job type whose `batchSystem` is `kubernetes`) records
//! the jobs as the local batch system does (input files dealt out round robin), marked
//! delegated, and creates one Job with one completion index per job: index N runs job N's
//! command with job N's input files in `CASCADE_INPUT_FILES`. Pods cannot reach the ledger,
//! so the controller reads each index's end from the Job's status (`completedIndexes`,
//! `failedIndexes`) and its pods, and records it as a local job's end is recorded: the
//! index's input files consumed or failed. Pausing is `suspend`, killing is deleting the Job
//! with its pods.
//!
//! The Job's name comes from the submission's tag (installation and submission), so a launch
//! run again after a crash finds the Job it created (`409 AlreadyExists`) instead of creating
//! a second one.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use cascade_crd::BatchSystem;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

use super::external::{Adapter, JobSeen, JobState, push_unique, tag_of};
use super::local::{Control, JobSpec, record_delegated};
use crate::launch::shell::quote;
use crate::ledger::{Ledger, LedgerError, Result};

pub struct Kubernetes;

/// The label every Cascade Job and its pods carry, with the submission (as a label value).
pub const SUBMISSION_LABEL: &str = "cascade.dev/submission";
/// The annotation with the submission's full tag (a label value cannot hold it).
pub const TAG_ANNOTATION: &str = "cascade.dev/tag";
/// The label Kubernetes puts on an Indexed Job's pods with their index.
const INDEX_LABEL: &str = "batch.kubernetes.io/job-completion-index";
/// The label Kubernetes puts on a Job's pods with the Job's name.
const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";

/// What each index's pod gets (the `cascade submit` options of a `kubernetes` job type).
#[derive(Clone, Debug, Default)]
pub struct PodSpec {
    /// The container image the jobs run in.
    pub image: String,
    /// The namespace of the Job (default: the kubeconfig's, or the pod's in a cluster).
    pub namespace: Option<String>,
    /// CPU request and limit (`500m`, `2`).
    pub cpu: Option<String>,
    /// Memory request and limit (`2Gi`).
    pub memory: Option<String>,
    /// Most indexes running at once (default: all).
    pub parallelism: Option<u32>,
}

/// The Job's name: `cascade-` and a digest of the tag (a DNS label, the same for the same
/// submission of the same installation, different across installations).
pub fn job_name(tag: &str) -> String {
    format!("cascade-{}", crate::digest::sha256_hex(tag.as_bytes(), 10))
}

/// A label value for any text: at most 63 of `[A-Za-z0-9._-]`, starting and ending with an
/// alphanumeric (the rest replaced by `_`); the full text is in the tag annotation.
pub fn label_value(text: &str) -> String {
    let mut v: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(63)
        .collect();
    while v.ends_with(|c: char| !c.is_ascii_alphanumeric()) {
        v.pop();
    }
    let start = v
        .find(|c: char| c.is_ascii_alphanumeric())
        .unwrap_or(v.len());
    v.split_off(start)
}

/// The pod's command: job N's files from `CASCADE_SLICE_N` (N from Kubernetes'
/// `JOB_COMPLETION_INDEX`, a number), then the job's command, each word quoted. Nothing of
/// the files or the command is ever evaluated by the shell.
pub fn pod_script(argv: &[String]) -> String {
    let command: Vec<String> = argv.iter().map(|a| quote(a)).collect();
    format!(
        "CASCADE_JOB_INDEX=\"$JOB_COMPLETION_INDEX\"\nCASCADE_INPUT_FILES=\"$(printenv \"CASCADE_SLICE_$JOB_COMPLETION_INDEX\")\"\nexport CASCADE_JOB_INDEX CASCADE_INPUT_FILES\nexec {}\n",
        command.join(" ")
    )
}

/// The Indexed Job of a submission (pure).
pub fn job_manifest(
    name: &str,
    submission: &str,
    tag: &str,
    argv: &[String],
    env: &[(String, String)],
    slices: &[Vec<String>],
    pod: &PodSpec,
) -> Value {
    let labels = json!({
        SUBMISSION_LABEL: label_value(submission),
        "app.kubernetes.io/managed-by": "cascade",
    });
    let mut vars: Vec<Value> = env
        .iter()
        .filter(|(k, _)| !k.starts_with("CASCADE_SLICE_"))
        .map(|(k, v)| json!({"name": k, "value": v}))
        .collect();
    vars.push(json!({"name": "CASCADE_SUBMISSION_ID", "value": submission}));
    vars.push(json!({"name": super::external::ENV_JOB_TAG, "value": tag}));
    for (i, files) in slices.iter().enumerate() {
        vars.push(json!({"name": format!("CASCADE_SLICE_{i}"), "value": files.join("\n")}));
    }
    let mut container = json!({
        "name": "job",
        "image": pod.image,
        "command": ["/bin/sh", "-c", pod_script(argv)],
        "env": vars,
    });
    let mut resources = serde_json::Map::new();
    if let Some(cpu) = &pod.cpu {
        resources.insert("cpu".into(), json!(cpu));
    }
    if let Some(memory) = &pod.memory {
        resources.insert("memory".into(), json!(memory));
    }
    if !resources.is_empty() {
        container["resources"] = json!({"requests": resources, "limits": resources});
    }
    let n = slices.len();
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {TAG_ANNOTATION: tag},
        },
        "spec": {
            "completionMode": "Indexed",
            "completions": n,
            "parallelism": pod.parallelism.map_or(n, |p| (p as usize).min(n)),
            // Each index runs once: Cascade's recoveries decide what runs again, as for
            // every batch system; one failed index does not stop the others.
            "backoffLimitPerIndex": 0,
            "backoffLimit": n,
            "template": {
                "metadata": {"labels": labels, "annotations": {TAG_ANNOTATION: tag}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [container],
                },
            },
        },
    })
}

/// The indexes of `0-2,5` (Kubernetes' `completedIndexes` form).
pub fn parse_indexes(text: &str) -> BTreeSet<i64> {
    let mut out = BTreeSet::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<i64>(), b.parse::<i64>()) {
                    // A range as the API server writes it; a hostile one is not expanded
                    // beyond what a Job can hold.
                    out.extend(a..=b.min(a.saturating_add(1_000_000)));
                }
            }
            None => {
                if let Ok(i) = part.parse() {
                    out.insert(i);
                }
            }
        }
    }
    out
}

/// Each index of a Job as Cascade counts it, from the Job and its pods (pure). `cluster` is
/// how the submission is bound (`NAMESPACE/NAME`); a job is `NAMESPACE/NAME/INDEX`.
///
/// A Job that is not Indexed (one a launch script created with `kubectl`) has no indexes of
/// its own: its completions are counted from `succeeded` and `active`, and fail only with the
/// Job (a failed pod may be retried).
pub fn index_states(cluster: &str, job: &Value, pods: &[Value]) -> Vec<JobSeen> {
    let status = &job["status"];
    let indexed = job["spec"]["completionMode"] == "Indexed";
    let completions = job["spec"]["completions"]
        .as_i64()
        .unwrap_or(if indexed { 0 } else { 1 })
        .max(0);
    let count = |field: &str| status[field].as_i64().unwrap_or(0).clamp(0, completions);
    let (done, failed, running) = if indexed {
        (
            parse_indexes(status["completedIndexes"].as_str().unwrap_or("")),
            parse_indexes(status["failedIndexes"].as_str().unwrap_or("")),
            None,
        )
    } else {
        let succeeded = if condition(status, "Complete").is_some() {
            completions
        } else {
            count("succeeded")
        };
        let active = succeeded..succeeded.saturating_add(count("active"));
        ((0..succeeded).collect(), BTreeSet::new(), Some(active))
    };
    let suspended = job["spec"]["suspend"].as_bool() == Some(true);
    let job_failed = condition(status, "Failed");
    let tag = job["metadata"]["annotations"][TAG_ANNOTATION]
        .as_str()
        .and_then(super::external::tag_in);
    // The latest pod of each index (a pod replaced after an eviction leaves its old one).
    let mut by_index: BTreeMap<i64, &Value> = BTreeMap::new();
    for pod in pods {
        let Some(i) = pod["metadata"]["labels"][INDEX_LABEL]
            .as_str()
            .or_else(|| pod["metadata"]["annotations"][INDEX_LABEL].as_str())
            .and_then(|i| i.parse().ok())
        else {
            continue;
        };
        let newer = by_index.get(&i).is_none_or(|old| {
            old["metadata"]["creationTimestamp"].as_str()
                <= pod["metadata"]["creationTimestamp"].as_str()
        });
        if newer {
            by_index.insert(i, pod);
        }
    }
    (0..completions)
        .map(|i| {
            let pod = by_index.get(&i).copied();
            let exit = pod.and_then(exit_code);
            let (state, exit_code, reason) = if done.contains(&i) {
                (JobState::Succeeded, Some(0), String::new())
            } else if failed.contains(&i) {
                (JobState::Failed, exit.or(Some(1)), pod_reason(pod))
            } else if let Some((_, why)) = &job_failed {
                (JobState::Failed, exit, why.clone())
            } else if suspended {
                (JobState::Held, None, "the Job is suspended".into())
            } else if let Some(active) = &running {
                let state = if active.contains(&i) {
                    JobState::Running
                } else {
                    JobState::Idle
                };
                (state, None, String::new())
            } else {
                match pod.and_then(|p| p["status"]["phase"].as_str()) {
                    Some("Running") => (JobState::Running, None, String::new()),
                    _ => (JobState::Idle, None, pod_reason(pod)),
                }
            };
            JobSeen {
                job: format!("{cluster}/{i}"),
                cluster: cluster.to_string(),
                state,
                exit_code,
                reason,
                tag: tag.clone(),
            }
        })
        .collect()
}

/// A `True` condition of a Job's status: (type, its reason and message).
fn condition(status: &Value, kind: &str) -> Option<(String, String)> {
    status["conditions"].as_array()?.iter().find_map(|c| {
        (c["type"] == kind && c["status"] == "True").then(|| {
            let reason = c["reason"].as_str().unwrap_or_default();
            let message = c["message"].as_str().unwrap_or_default();
            (
                kind.to_string(),
                format!("{reason}: {message}")
                    .trim_matches([':', ' '])
                    .to_string(),
            )
        })
    })
}

fn exit_code(pod: &Value) -> Option<i32> {
    pod["status"]["containerStatuses"]
        .as_array()?
        .iter()
        .find_map(|c| c["state"]["terminated"]["exitCode"].as_i64())
        .map(|c| c as i32)
}

/// Why a pod is where it is, in Kubernetes' words (`ImagePullBackOff`, `OOMKilled`).
fn pod_reason(pod: Option<&Value>) -> String {
    let Some(pod) = pod else {
        return String::new();
    };
    let statuses = pod["status"]["containerStatuses"].as_array();
    for c in statuses.into_iter().flatten() {
        for state in ["waiting", "terminated"] {
            if let Some(r) = c["state"][state]["reason"].as_str() {
                return r.to_string();
            }
        }
    }
    pod["status"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn jobs_api(client: kube::Client, namespace: &str) -> Api<DynamicObject> {
    let ar =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("batch", "v1", "Job"), "jobs");
    Api::namespaced_with(client, namespace, &ar)
}

fn pods_api(client: kube::Client, namespace: &str) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("", "v1", "Pod"), "pods");
    Api::namespaced_with(client, namespace, &ar)
}

/// Runs a Kubernetes call from synchronous code (the batch poller's thread, a command, or a
/// controller step), on a thread of its own so that it never nests in a running runtime.
fn block_on<T: Send>(
    f: impl Future<Output = std::result::Result<T, String>> + Send,
) -> std::result::Result<T, String> {
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start a runtime: {e}"))?
                .block_on(f)
        })
        .join()
        .unwrap_or_else(|_| Err("the Kubernetes call panicked".into()))
    })
}

async fn client() -> std::result::Result<kube::Client, String> {
    kube::Client::try_default()
        .await
        .map_err(|e| format!("cannot reach the Kubernetes API server: {e}"))
}

/// `NAMESPACE/NAME` of a bound Job.
fn split_cluster(cluster: &str) -> (&str, &str) {
    cluster.split_once('/').unwrap_or(("default", cluster))
}

/// The input files of each job of a submission, as paths, by index.
fn slices(ledger: &Ledger, submission: &str) -> Result<Vec<Vec<String>>> {
    let rows: Vec<(i64, Option<String>, Option<String>)> = ledger.rows(
        "SELECT j.idx, f.name, f.location FROM jobs j
           LEFT JOIN job_inputs i ON i.job = j.id LEFT JOIN files f ON f.id = i.file
          WHERE j.submission = ? ORDER BY j.idx, f.id",
        [submission],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let mut out: Vec<Vec<String>> = Vec::new();
    for (idx, name, location) in rows {
        let idx = idx as usize;
        if out.len() <= idx {
            out.resize(idx + 1, Vec::new());
        }
        if let (Some(name), Some(location)) = (name, location) {
            out[idx].push(
                std::path::Path::new(&location)
                    .join(name)
                    .display()
                    .to_string(),
            );
        }
    }
    Ok(out)
}

/// Records the jobs and creates their Indexed Job. Idempotent: a Job created before (by a
/// launch that crashed before it returned) is bound, not created again. Returns what a
/// launch prints, in kubectl's words (`job.batch/NAME created in namespace NS`, or
/// `unchanged` for the Job found), which is also how its output binds the Job.
pub fn submit(
    ledger: &mut Ledger,
    submission: &str,
    input: Option<&str>,
    spec: &JobSpec,
    pod: &PodSpec,
) -> Result<String> {
    if pod.image.trim().is_empty() {
        return Err(LedgerError::Invalid(
            "a `kubernetes` job needs an image to run in: give `--image`".into(),
        ));
    }
    record_delegated(ledger, submission, input, spec)?;
    let tag = tag_of(&ledger.installation()?, submission);
    let name = job_name(&tag);
    let slices = slices(ledger, submission)?;
    let manifest = job_manifest(&name, submission, &tag, spec.argv, spec.env, &slices, pod);
    let wanted_namespace = pod.namespace.clone();
    let job_named = name.clone();
    let (namespace, created) = block_on(async move {
        let name = job_named;
        let client = client().await?;
        let namespace = wanted_namespace.unwrap_or_else(|| client.default_namespace().to_string());
        let job: DynamicObject = serde_json::from_value(manifest).map_err(|e| e.to_string())?;
        let created = match jobs_api(client, &namespace)
            .create(&PostParams::default(), &job)
            .await
        {
            Ok(_) => true,
            // Created by this submission's earlier launch (the name is the tag's).
            Err(kube::Error::Api(s)) if s.code == 409 => false,
            Err(e) => return Err(format!("cannot create Job `{name}` in `{namespace}`: {e}")),
        };
        Ok((namespace, created))
    })
    .map_err(LedgerError::Invalid)?;
    let cluster = format!("{namespace}/{name}");
    ledger.write(|tx| super::observer::bind(tx, "kubernetes", &cluster, submission))?;
    let said = if created { "created" } else { "unchanged" };
    Ok(format!("job.batch/{name} {said} in namespace {namespace}"))
}

impl Adapter for Kubernetes {
    fn system(&self) -> BatchSystem {
        BatchSystem::Kubernetes
    }

    /// `job.batch/NAME created` or `unchanged` (kubectl's words, and `cascade submit`'s,
    /// which adds `in namespace NS`); without a namespace, `default`.
    fn printed_ids(&self, log: &str) -> Vec<String> {
        let mut ids = Vec::new();
        for line in log.lines() {
            let Some(rest) = line.trim().strip_prefix("job.batch/") else {
                continue;
            };
            let mut words = rest.split_whitespace();
            let (Some(name), Some("created" | "unchanged")) = (words.next(), words.next()) else {
                continue;
            };
            let namespace = match (words.next(), words.next(), words.next()) {
                (Some("in"), Some("namespace"), Some(ns)) => ns,
                _ => "default",
            };
            push_unique(&mut ids, format!("{namespace}/{name}"));
        }
        ids
    }

    fn observe(&self, clusters: &[String]) -> std::result::Result<Vec<JobSeen>, String> {
        let clusters = clusters.to_vec();
        block_on(async move {
            let client = client().await?;
            let mut out = Vec::new();
            for cluster in &clusters {
                let (namespace, name) = split_cluster(cluster);
                let job = match jobs_api(client.clone(), namespace).get_opt(name).await {
                    Ok(Some(job)) => job,
                    Ok(None) => {
                        out.push(JobSeen {
                            job: cluster.clone(),
                            cluster: cluster.clone(),
                            state: JobState::Removed,
                            exit_code: None,
                            reason: "the Job no longer exists".into(),
                            tag: None,
                        });
                        continue;
                    }
                    Err(e) => return Err(format!("cannot read Job `{cluster}`: {e}")),
                };
                let pods = pods_api(client.clone(), namespace)
                    .list(&ListParams::default().labels(&format!("{JOB_NAME_LABEL}={name}")))
                    .await
                    .map_err(|e| format!("cannot list the pods of Job `{cluster}`: {e}"))?;
                let job = serde_json::to_value(&job).map_err(|e| e.to_string())?;
                let pods: Vec<Value> = pods
                    .items
                    .iter()
                    .filter_map(|p| serde_json::to_value(p).ok())
                    .collect();
                out.extend(index_states(cluster, &job, &pods));
            }
            Ok(out)
        })
    }

    fn control(&self, clusters: &[String], action: Control) -> std::result::Result<(), String> {
        let clusters = clusters.to_vec();
        block_on(async move {
            let client = client().await?;
            for cluster in &clusters {
                let (namespace, name) = split_cluster(cluster);
                let api = jobs_api(client.clone(), namespace);
                let result = match action {
                    Control::Hold | Control::Release => {
                        let patch = json!({"spec": {"suspend": action == Control::Hold}});
                        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                            .await
                            .map(|_| ())
                    }
                    Control::Remove => api
                        .delete(name, &DeleteParams::background())
                        .await
                        .map(|_| ()),
                };
                match result {
                    Ok(()) => {}
                    // Gone already: nothing left to hold or remove.
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => return Err(format!("cannot change Job `{cluster}`: {e}")),
                }
            }
            Ok(())
        })
    }

    fn index_of(&self, job: &JobSeen) -> Option<i64> {
        job.job
            .strip_prefix(&format!("{}/", job.cluster))?
            .parse()
            .ok()
    }
}

#[cfg(test)]
mod tests;
