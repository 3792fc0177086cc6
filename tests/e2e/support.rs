//! Finding and running the built binary.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

/// The repository root (the workspace), where examples and fixtures live.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The `cascade` binary built alongside this test (target/<profile>/cascade).
pub fn cascade_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current test executable");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test executable lives in target/<profile>/deps");
    let bin = dir.join(format!("cascade{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} not built: build it first with `cargo build --workspace --bins` (scripts/test.sh does)",
        bin.display()
    );
    bin
}

/// Runs `cascade ARGS` in the repository root.
pub fn cascade(args: &[&str]) -> Output {
    Command::new(cascade_bin())
        .args(args)
        .current_dir(root())
        .output()
        .expect("run cascade")
}

/// Runs `cascade` expecting it to fail with `code` and say `needle` on stderr; returns stderr.
pub fn expect_failure(args: &[&str], code: i32, needle: &str) -> String {
    let out = cascade(args);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
    assert!(
        stderr.contains(needle),
        "{args:?}: no `{needle}` in:\n{stderr}"
    );
    stderr
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A fresh directory under the system's temporary directory, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("cascade-e2e-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }
}

impl std::ops::Deref for TempDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // Jobs of a failed test may still write here for a moment; best effort.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Waits until `done` holds, failing the test after `limit`.
pub fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// `cascade status --format json` of a state directory.
pub fn status_json(state: &str) -> serde_json::Value {
    let out = cascade(&["status", "--state", state, "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("status json")
}

/// `cascade status --format json`, or null while the run has not made its state yet.
pub fn status_now(state: &str) -> serde_json::Value {
    let out = cascade(&["status", "--state", state, "--format", "json"]);
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

/// The submission `id` in `cascade status --format json` (null while there is none).
pub fn submission(state: &str, id: &str) -> serde_json::Value {
    status_now(state)["submissions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["submission"]["id"] == id)
        .cloned()
        .unwrap_or(serde_json::Value::Null)
}

/// A stage's state and reason (empty while there is none).
pub fn stage_state(state: &str, stage: &str) -> (String, String) {
    let status = status_now(state);
    let s = status["stages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["stage"] == stage)
        .cloned()
        .unwrap_or_default();
    (
        s["state"].as_str().unwrap_or("").to_string(),
        s["reason"].as_str().unwrap_or("").to_string(),
    )
}

/// Waits for a background run to end; its exit code and what it printed.
pub fn finish(mut child: Child, limit: Duration) -> (Option<i32>, String) {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            return (
                status.code(),
                format!("{}{}", text(&out.stdout), text(&out.stderr)),
            );
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "the run did not end within {limit:?}: {}{}",
                text(&out.stdout),
                text(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The files a catalog query selects.
pub fn catalog_query(state: &str, query: &str) -> Vec<String> {
    let out = cascade(&["catalog", "query", "--state", state, query]);
    assert!(out.status.success(), "{query}: {}", text(&out.stderr));
    text(&out.stdout).lines().map(String::from).collect()
}

/// eve_mc's outputs in a state's catalog: each tier once, four files each, two ntuples.
pub fn assert_eve_mc_outputs(state: &str, context: &str) {
    for (tier, n) in [
        ("gen", 4),
        ("g4", 4),
        ("detsim", 4),
        ("reco", 4),
        ("ana", 2),
    ] {
        let files = catalog_query(state, &format!("file_name like '%.{tier}.root'"));
        assert_eq!(files.len(), n, "{context}: {tier}: {files:?}");
    }
}

/// How closely a run must match a clean one.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Match {
    /// Exactly a clean run's submissions and outputs: nothing happened to the jobs
    /// themselves (only the controller or the daemon were disturbed).
    Exact,
    /// Jobs themselves may have failed (a full disk) and been recovered: the same end, with
    /// perhaps more recovery submissions.
    SameEnd,
}

/// eve_mc ran to the end as a clean run does, whatever happened on the way: every stage
/// completed, each slice launched once (each launch submitting its jobs once), every
/// submission located with its history from its reservation, and each dependent's input
/// exactly its upstream's located outputs; with [`Match::Exact`], also one submission per
/// stage plus reconstruction's two recovery rounds, and each tier's outputs once.
pub fn assert_eve_mc_converged(state: &str, context: &str, how: Match) {
    let status = status_json(state);
    for s in status["stages"].as_array().unwrap() {
        assert_eq!(s["state"], "Completed", "{context}: {s}");
    }
    let subs = status["submissions"].as_array().unwrap();
    let identities: std::collections::HashSet<String> = subs
        .iter()
        .map(|s| {
            format!(
                "{}/{}",
                s["submission"]["stage"]["name"], s["submission"]["origin"]
            )
        })
        .collect();
    assert_eq!(identities.len(), subs.len(), "{context}");
    if how == Match::Exact {
        assert_eq!(subs.len(), 7, "{context}: {subs:#?}");
    }
    let history = status["history"].as_array().unwrap();
    for s in subs {
        let id = s["submission"]["id"].as_str().unwrap();
        // With jobs (or launches) that failed for real, a failed submission is one an operator
        // relaunched or recovered (its stage completed, so something took its place), and a recovery
        // round may end without locating everything.
        let recovery = s["submission"]["origin"]["kind"] == "recovery";
        let launch_failed = s["submission"]["status"] == "LaunchFailed";
        let replaced = s["submission"]["status"] == "Failed" || launch_failed;
        if how == Match::Exact || !(recovery || replaced) {
            assert_eq!(s["submission"]["status"], "Located", "{context}: {id}");
        }
        if launch_failed {
            // Its launch could not submit (the disk was full); a relaunch took its place.
            continue;
        }
        assert_eq!(s["launchState"], "launched", "{context}: {id}");
        // Each launch submitted once: `cascade submit` printed one job id in the launch log.
        let log = std::fs::read_to_string(s["launchLog"].as_str().unwrap()).unwrap_or_default();
        assert_eq!(
            log.matches("@local").count(),
            1,
            "{context}: {id} log:\n{log}"
        );
        let first = history
            .iter()
            .find(|h| h["submission"] == id)
            .expect("history");
        assert_eq!(first["status"], "New", "{context}: {id}");
        // A dependent's input is exactly its upstream chain's located outputs.
        if let Some(upstream) = s["submission"]["origin"]["submission"].as_str() {
            let input = sorted(catalog_query(
                state,
                &format!("snapshot_for_project_name '{id}'"),
            ));
            let expected = sorted(catalog_query(
                state,
                s["submission"]["input"]
                    .as_str()
                    .expect("a dependent has an input"),
            ));
            assert!(
                !input.is_empty(),
                "{context}: {id} after {upstream} got no input"
            );
            assert_eq!(input, expected, "{context}: {id}'s input");
        }
    }
    if how == Match::Exact {
        assert_eve_mc_outputs(state, context);
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// A campaign `exp/c` of one generator stage `gen` whose job type runs `launch_script` on
/// this machine, with the campaign's `keywords` (a YAML flow mapping).
pub fn generator_campaign(launch_script: &str, keywords: &str) -> String {
    format!(
        r#"apiVersion: cascade.dev/v1alpha1
kind: LoginSetup
metadata: {{name: here, namespace: exp}}
spec: {{host: localhost, account: prod}}
---
apiVersion: cascade.dev/v1alpha1
kind: JobType
metadata: {{name: job, namespace: exp}}
spec:
  launchScript: {launch_script}
  outputFilePatterns: ["%.out"]
---
apiVersion: cascade.dev/v1alpha1
kind: Campaign
metadata: {{name: c, namespace: exp}}
spec:
  keywords: {keywords}
  defaults: {{loginSetup: here, jobType: job, softwareVersion: v1, completion: {{type: complete, percent: 100}}}}
---
apiVersion: cascade.dev/v1alpha1
kind: CampaignStage
metadata: {{name: gen, namespace: exp}}
spec: {{campaign: c, type: generator}}
"#
    )
}

/// A small deterministic generator (xorshift), so that a seeded test can be replayed.
pub struct Rng(pub u64);

impl Rng {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A free port on loopback (bound, then released for the server to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Writes `a.raw`, `b.raw` and `c.raw` into `dir` and declares them in the catalog of
/// `state` with `run_number=7` (the input of the jobs tests that deal files out).
pub fn declare_three_raw_files(state: &str, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for name in ["a.raw", "b.raw", "c.raw"] {
        std::fs::write(dir.join(name), name).unwrap();
        let file = dir.join(name);
        let out = cascade(&[
            "catalog",
            "declare",
            "--state",
            state,
            "-m",
            "run_number=7",
            file.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
}
