//! The Kubernetes controller's figures, on this machine: `cascade controller --kube` (release)
//! over 1,000 campaigns and 5,000 stages (10 namespaces) served by the fake API server of
//! `cascade-tests` (real HTTP on loopback; no Kubernetes API server can run here):
//! - the first reconcile: from start to every object's status written;
//! - one change: from `kubectl apply` of one stage to its status observing the new generation;
//! - the controller's memory (peak and current RSS) once settled.
//!
//! The campaigns are paused: what is measured is the controller's side (watch, load,
//! validate, plan, status), not 1,000 launches on two cores.
//!
//! `cargo bench -p cascade --bench kube [-- --campaigns N]`. Figures are printed, never asserted.
//! To look closer: `BENCH_TRACE_RSS=1` prints the controller's RSS every 250 ms,
//! `BENCH_WRAP=heaptrack` runs it under heaptrack, `BENCH_ENV_NAME=value` sets `NAME` for it
//! (`BENCH_ENV_MALLOC_ARENA_MAX=1`).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cascade_tests::fake_apiserver::FakeApiServer;
use serde_json::{Value, json};

mod common;

const NAMESPACES: usize = 10;
const STAGES: usize = 5;

fn objects(campaigns: usize) -> Vec<Value> {
    let mut out = Vec::new();
    for n in 0..NAMESPACES {
        let ns = format!("exp{n}");
        out.push(
            json!({"apiVersion": "cascade.dev/v1alpha1", "kind": "LoginSetup",
            "metadata": {"name": "here", "namespace": ns},
            "spec": {"host": "localhost", "account": "prod"}}),
        );
        out.push(
            json!({"apiVersion": "cascade.dev/v1alpha1", "kind": "JobType",
            "metadata": {"name": "job", "namespace": ns},
            "spec": {"launchScript": "cascade submit --jobs 1 -- true",
                     "parameters": [["--events=", "100"]], "outputFilePatterns": ["%.out"]}}),
        );
    }
    for c in 0..campaigns {
        let ns = format!("exp{}", c % NAMESPACES);
        let name = format!("camp{c}");
        out.push(
            json!({"apiVersion": "cascade.dev/v1alpha1", "kind": "Campaign",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"paused": true, "defaults": {"loginSetup": "here", "jobType": "job",
                "softwareVersion": "v1", "completion": {"type": "complete", "percent": 100}}}}),
        );
        for s in 0..STAGES {
            let mut spec = json!({"campaign": name});
            if s == 0 {
                spec["type"] = json!("generator");
            } else {
                spec["dependsOn"] =
                    json!([{"stage": format!("{name}-s{}", s - 1), "filePattern": "%.out"}]);
            }
            out.push(
                json!({"apiVersion": "cascade.dev/v1alpha1", "kind": "CampaignStage",
                "metadata": {"name": format!("{name}-s{s}"), "namespace": ns}, "spec": spec}),
            );
        }
    }
    out
}

fn all_reported(api: &FakeApiServer, campaigns: usize) -> bool {
    let stages = api.list("campaignstages");
    let camps = api.list("campaigns");
    stages.len() == campaigns * STAGES
        && stages.iter().all(|s| s["status"]["phase"].is_string())
        && camps.iter().all(|c| c["status"]["conditions"].is_array())
}

fn wait(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
    start.elapsed()
}

fn main() {
    let campaigns: usize = common::arg("--campaigns", 1000);
    let api = FakeApiServer::start();
    let all = objects(campaigns);
    let count = all.len();
    for o in all {
        api.apply(o);
    }
    let dir = std::env::temp_dir().join(format!("cascade-bench-kube-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, api.kubeconfig()).expect("kubeconfig");
    let started = Instant::now();
    // BENCH_WRAP=heaptrack runs the controller under a memory profiler.
    let wrap = std::env::var("BENCH_WRAP").ok();
    let mut command = match &wrap {
        Some(w) => {
            let mut c = Command::new(w);
            c.arg(env!("CARGO_BIN_EXE_cascade"));
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_cascade")),
    };
    let mut child = command
        .args(["controller", "--kube", "--identity", "bench", "--state"])
        .arg(dir.join("state"))
        .env("KUBECONFIG", &kubeconfig)
        .env("CASCADE_LOG", "warn")
        .envs(
            std::env::vars()
                .filter_map(|(k, v)| Some((k.strip_prefix("BENCH_ENV_")?.to_string(), v))),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cascade controller --kube");
    let pid = child.id().to_string();
    if std::env::var("BENCH_TRACE_RSS").is_ok() {
        let pid = pid.clone();
        std::thread::spawn(move || {
            let t = Instant::now();
            while let Some(rss) = common::rss_field(&pid, "VmRSS:") {
                eprintln!("{:.1} s: {} MiB", t.elapsed().as_secs_f64(), rss / 1024);
                std::thread::sleep(Duration::from_millis(250));
            }
        });
    }
    let first = wait("every status", Duration::from_secs(600), || {
        all_reported(&api, campaigns)
    });
    let patches_first = api
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH")
        .count();
    println!(
        "kube: {campaigns} campaigns, {} stages, {count} objects in {NAMESPACES} namespaces",
        campaigns * STAGES
    );
    println!(
        "first reconcile (start to every status written): {:.2} s, {patches_first} PATCH requests",
        first.as_secs_f64()
    );
    // Settled: let the resync pass, then one change.
    std::thread::sleep(Duration::from_secs(2));
    let mut rounds = Vec::new();
    for round in 0..5 {
        let stage = format!("camp{}-s2", round * 7 % campaigns);
        let ns = format!("exp{}", round * 7 % campaigns % NAMESPACES);
        let mut obj = api.get("campaignstages", &ns, &stage).expect("the stage");
        let generation = obj["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
        obj["spec"]["parameterOverrides"] = json!([["--events=", format!("{}", 200 + round)]]);
        let t = Instant::now();
        api.apply(obj);
        wait(
            "the changed stage's status",
            Duration::from_secs(60),
            || {
                api.get("campaignstages", &ns, &stage)
                    .is_some_and(|s| s["status"]["observedGeneration"] == json!(generation))
            },
        );
        rounds.push(t.elapsed().as_secs_f64());
    }
    rounds.sort_by(f64::total_cmp);
    println!(
        "one stage changed to its status observing it: median {:.2} s, max {:.2} s (5 changes)",
        rounds[rounds.len() / 2],
        rounds[rounds.len() - 1]
    );
    let rss = common::rss_field(&pid, "VmRSS:").unwrap_or(0);
    let peak = common::rss_field(&pid, "VmHWM:").unwrap_or(0);
    println!(
        "controller memory: {} MiB now, {} MiB peak (goal: under 100 MiB); {:.1} s in all",
        rss / 1024,
        peak / 1024,
        started.elapsed().as_secs_f64()
    );
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
