//! GitOps figures, on this machine:
//! - from `git push` returning to the pushed stage's first launch being recorded, with a
//!   webhook (polling once an hour) and with polling alone (every 1 s);
//! - `cascade plan --repo --base --head` over a repository of 1,000 campaigns, for a change to
//!   one campaign and for a change to the job type all of them share.
//!
//! `cargo bench -p cascade --bench gitops [-- --rounds N]`. Figures are printed, never
//! asserted.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cascade::ledger::Ledger;

mod common;

fn fresh(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "cascade-bench-gitops-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.org")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.org")
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

const HEADER: &str = "apiVersion: cascade.dev/v1alpha1\nkind: LoginSetup\nmetadata: {name: here, namespace: exp}\nspec: {host: localhost, account: prod}\n---\napiVersion: cascade.dev/v1alpha1\nkind: JobType\nmetadata: {name: job, namespace: exp}\nspec:\n  launchScript: cascade submit --jobs 1 -- true\n  parameters: [[\"--events=\", \"100\"]]\n  outputFilePatterns: [\"%.out\"]\n";

fn campaign(name: &str) -> String {
    format!(
        "---\napiVersion: cascade.dev/v1alpha1\nkind: Campaign\nmetadata: {{name: {name}, namespace: exp}}\nspec:\n  defaults: {{loginSetup: here, jobType: job, softwareVersion: v1, completion: {{type: complete, percent: 100}}}}\n---\napiVersion: cascade.dev/v1alpha1\nkind: CampaignStage\nmetadata: {{name: {name}-gen, namespace: exp}}\nspec: {{campaign: {name}, type: generator}}\n---\napiVersion: cascade.dev/v1alpha1\nkind: CampaignStage\nmetadata: {{name: {name}-reco, namespace: exp}}\nspec:\n  campaign: {name}\n  dependsOn: [{{stage: {name}-gen, filePattern: \"%.out\"}}]\n"
    )
}

struct Repo {
    work: PathBuf,
    bare: PathBuf,
}

fn repo(dir: &Path) -> Repo {
    let bare = dir.join("campaigns.git");
    git(
        dir,
        &["init", "--bare", "-q", "-b", "main", bare.to_str().unwrap()],
    );
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "-q", "-b", "main"]);
    git(&work, &["remote", "add", "origin", bare.to_str().unwrap()]);
    Repo { work, bare }
}

fn commit(r: &Repo, text: &str) -> String {
    std::fs::write(r.work.join("campaigns.yaml"), text).unwrap();
    git(&r.work, &["add", "-A"]);
    git(&r.work, &["commit", "-q", "-m", "change"]);
    git(&r.work, &["rev-parse", "HEAD"])
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn webhook(port: u16, secret: &str, body: &str) {
    let sig = cascade::server::webhook::sign(secret.as_bytes(), body.as_bytes());
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("webhook");
    write!(
        s,
        "POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nX-GitHub-Event: push\r\nX-Hub-Signature-256: {sig}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
}

struct Controller(Child);

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn submissions(state: &Path) -> i64 {
    Ledger::open_existing(state)
        .and_then(|l| l.scalar_i64("SELECT COUNT(*) FROM submissions"))
        .unwrap_or(0)
}

/// Milliseconds from each push to the new stage's first launch, `rounds` times.
fn push_to_launch(rounds: usize, with_webhook: bool) -> Vec<f64> {
    let dir = fresh(if with_webhook { "webhook" } else { "poll" });
    let r = repo(&dir);
    let mut text = format!("{HEADER}{}", campaign("c0"));
    commit(&r, &text);
    git(&r.work, &["push", "-q", "origin", "main"]);
    let state = dir.join("state");
    let port = free_port();
    let secret = "bench-secret";
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cascade"));
    cmd.args(["run", "--watch", "-q", "--git"])
        .arg(format!("file://{}", r.bare.display()))
        .arg("--state")
        .arg(&state)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if with_webhook {
        cmd.args(["--interval", "1h", "--listen", &format!("127.0.0.1:{port}")])
            .env("CASCADE_WEBHOOK_SECRET", secret);
    } else {
        cmd.args(["--interval", "1s"]);
    }
    let _controller = Controller(cmd.spawn().expect("controller"));
    while submissions(&state) < 1 {
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut out = Vec::new();
    for round in 1..=rounds {
        text.push_str(&campaign(&format!("c{round}")));
        let before = submissions(&state);
        let head = commit(&r, &text);
        git(&r.work, &["push", "-q", "origin", "main"]);
        let pushed = Instant::now();
        if with_webhook {
            webhook(
                port,
                secret,
                &format!(r#"{{"ref":"refs/heads/main","after":"{head}"}}"#),
            );
        }
        while submissions(&state) <= before {
            std::thread::sleep(Duration::from_millis(2));
        }
        out.push(pushed.elapsed().as_secs_f64() * 1000.0);
        // Let the launch settle before the next push.
        std::thread::sleep(Duration::from_millis(300));
    }
    out
}

fn plan_time(r: &Repo, base: &str, head: &str) -> f64 {
    let started = Instant::now();
    let status = Command::new(env!("CARGO_BIN_EXE_cascade"))
        .args(["plan", "--repo"])
        .arg(&r.work)
        .args(["--base", base, "--head", head, "--format", "json"])
        .stdout(Stdio::null())
        .status()
        .expect("plan");
    assert!(status.success());
    started.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn main() {
    let rounds = common::arg("--rounds", 7usize);
    println!(
        "== GitOps on {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for (name, hook) in [("webhook", true), ("polling every 1 s", false)] {
        let (m, lo, hi) = median(push_to_launch(rounds, hook));
        println!(
            "git push -> first launch, {name:<18}: median {m:6.0} ms (range {lo:.0}-{hi:.0}, {rounds} pushes)"
        );
    }
    let dir = fresh("plan");
    let r = repo(&dir);
    let mut text = HEADER.to_string();
    for c in 0..1000 {
        text.push_str(&campaign(&format!("c{c}")));
    }
    let base = commit(&r, &text);
    let one = commit(&r, &text.replacen("{name: c500-gen, namespace: exp}\nspec: {campaign: c500, type: generator}", "{name: c500-gen, namespace: exp}\nspec: {campaign: c500, type: generator, parameterOverrides: [[\"--events=\", \"7\"]]}", 1));
    let all = commit(
        &r,
        &text.replace("[[\"--events=\", \"100\"]]", "[[\"--events=\", \"200\"]]"),
    );
    let times: Vec<f64> = (0..3).map(|_| plan_time(&r, &base, &one)).collect();
    let (m, lo, hi) = median(times);
    println!(
        "plan --base --head, 1,000 campaigns (2,000 stages), one stage changed: median {m:.2} s (range {lo:.2}-{hi:.2})"
    );
    let times: Vec<f64> = (0..3).map(|_| plan_time(&r, &base, &all)).collect();
    let (m, lo, hi) = median(times);
    println!(
        "plan --base --head, 1,000 campaigns, the shared job type changed (2,000 stages relaunch): median {m:.2} s (range {lo:.2}-{hi:.2})"
    );
}
