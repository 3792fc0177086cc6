//! Latency of the web pages and the API, and the server's memory, over a state of 1,000
//! campaigns (4 stages each) and 100,000 submissions (2 jobs and 3 history rows each). Run
//! with `cargo bench -p cascade --bench serve`.
//!
//! The state is written straight into the ledger (what a long production would leave), then
//! `cascade serve` (the release binary) answers real HTTP requests on loopback, one at a time:
//! p50 and p99 per endpoint, the answer's size, and the server's peak RSS.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Instant;

use cascade::ledger::Ledger;
use cascade::plan::{Origin, StageStatus};

const CAMPAIGNS: usize = 1_000;
const STAGES: usize = 4;
const SUBMISSIONS: usize = 100_000;
const PER_STAGE: usize = SUBMISSIONS / (CAMPAIGNS * STAGES);

fn stage_status(c: usize, s: usize) -> StageStatus {
    let depends = if s == 0 {
        serde_json::json!([])
    } else {
        serde_json::json!([{"stage": format!("c{c}-s{}", s - 1), "filePattern": "%.root", "trigger": "submission"}])
    };
    serde_json::from_value(serde_json::json!({
        "stage": {"namespace": "exp", "name": format!("c{c}-s{s}")},
        "campaign": {"namespace": "exp", "name": format!("camp{c}")},
        "state": if s < 2 { "completed" } else { "running" },
        "reason": "completed: 100% located (25 of 25 submissions), needs 90%",
        "settled": false, "blocked": false, "locatedPercent": 80.0, "progress": 0.8,
        "submissions": PER_STAGE, "chainsLocated": 20, "chainsFailed": 0, "chainsInFlight": 5,
        "jobs": {"total": 50, "idle": 0, "running": 10, "held": 0, "succeeded": 40, "failed": 0, "removed": 0},
        "launches": 0, "queued": [], "nextFire": null, "drift": null,
        "shape": {"stageType": "regular", "dependsOn": depends, "join": false, "completion": {"type": "located", "percent": 90.0}},
    }))
    .expect("a stage status")
}

fn populate(dir: &std::path::Path) {
    let mut ledger = Ledger::open(dir).expect("state");
    let stages: Vec<StageStatus> = (0..CAMPAIGNS)
        .flat_map(|c| (0..STAGES).map(move |s| stage_status(c, s)))
        .collect();
    ledger.save_stage_status(&stages).expect("stages");
    drop(ledger);
    let mut conn = rusqlite::Connection::open(dir.join(cascade::ledger::DB_FILE)).expect("db");
    let tx = conn.transaction().expect("tx");
    {
        let mut sub = tx.prepare("INSERT INTO submissions (id, namespace, stage, seq, origin, origin_json, test, status, launch_state, approval, command, display, argv, env, launch_dir, launch_attempts, launch_log, launcher, force_located, created, updated, batch_id) VALUES (?1, 'exp', ?2, ?3, ?4, ?5, 0, ?6, 'launched', 0, ?7, ?7, '[]', '[[\"CASCADE_STAGE\",\"x\"]]', '/tmp', 1, '/nonexistent/launch.log', 'prod', 0, ?8, ?8, ?9)").expect("insert");
        let mut job = tx.prepare("INSERT INTO jobs (submission, idx, argv, cwd, env, patterns, state, created) VALUES (?, ?, '[]', '/tmp', '[]', '[]', ?, 0)").expect("insert");
        let mut hist = tx.prepare("INSERT INTO submission_history (submission, status, at, at_ms, reason) VALUES (?, ?, ?, ?, 'jobs: 0 idle, 2 running')").expect("insert");
        let mut n = 0usize;
        for c in 0..CAMPAIGNS {
            for s in 0..STAGES {
                for k in 0..PER_STAGE {
                    let id = format!("exp.c{c}-s{s}.{}", k + 1);
                    let origin = Origin::Split {
                        test: false,
                        index: k as u64,
                    };
                    let status = if s < 2 { "Located" } else { "Running" };
                    let at = 1_700_000_000 + n as i64;
                    sub.execute(rusqlite::params![
                        id,
                        format!("c{c}-s{s}"),
                        k as i64 + 1,
                        origin.key(),
                        serde_json::to_string(&origin).unwrap(),
                        status,
                        format!(
                            "fife_launch -c gen.cfg --stage=c{c}-s{s} -Oglobal.sam_dataset=slice{k}"
                        ),
                        at,
                        format!("{}@local", n + 1),
                    ])
                    .expect("submission");
                    for j in 0..2 {
                        job.execute(rusqlite::params![
                            id,
                            j,
                            if s < 2 { "succeeded" } else { "running" }
                        ])
                        .expect("job");
                    }
                    for st in ["New", "Running", status] {
                        hist.execute(rusqlite::params![id, st, at, at * 1000])
                            .expect("history");
                    }
                    n += 1;
                }
            }
        }
    }
    tx.commit().expect("commit");
}

fn get(addr: &str, path: &str) -> (u16, usize) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read");
    let text = String::from_utf8_lossy(&answer);
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or(0, |(_, b)| b.len());
    (code, body)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    let dir = std::env::temp_dir().join(format!("cascade-bench-serve-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let started = Instant::now();
    populate(&dir);
    println!(
        "serve: state of {CAMPAIGNS} campaigns, {} stages, {SUBMISSIONS} submissions written in {:.1} s",
        CAMPAIGNS * STAGES,
        started.elapsed().as_secs_f64()
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_cascade"))
        .args(["serve", "--state"])
        .arg(&dir)
        .args(["--listen", "127.0.0.1:0", "--rate-limit", "0"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("cascade serve");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stderr.take().expect("stderr")),
        &mut line,
    )
    .expect("its address");
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .expect("an address")
        .to_string();
    let rss_idle = peak_rss_kib(child.id());
    // (name, a path for the i-th request, requests)
    type PathOf = Box<dyn Fn(usize) -> String>;
    let endpoints: Vec<(&str, PathOf, usize)> = vec![
        ("page /", Box::new(|_| "/".into()), 20),
        (
            "page campaign",
            Box::new(|i| format!("/campaigns/exp/camp{}", i * 37 % CAMPAIGNS)),
            50,
        ),
        (
            "page stage",
            Box::new(|i| format!("/stages/exp/c{}-s{}", i * 37 % CAMPAIGNS, i % STAGES)),
            50,
        ),
        (
            "page submission",
            Box::new(|i| {
                format!(
                    "/submissions/exp.c{}-s2.{}",
                    i * 37 % CAMPAIGNS,
                    i % PER_STAGE + 1
                )
            }),
            50,
        ),
        ("page catalog", Box::new(|_| "/catalog".into()), 50),
        (
            "api campaigns",
            Box::new(|_| "/api/v1/campaigns".into()),
            20,
        ),
        (
            "api stage",
            Box::new(|i| format!("/api/v1/namespaces/exp/stages/c{}-s1", i * 37 % CAMPAIGNS)),
            50,
        ),
        (
            "api submission",
            Box::new(|i| {
                format!(
                    "/api/v1/submissions/exp.c{}-s3.{}",
                    i * 37 % CAMPAIGNS,
                    i % PER_STAGE + 1
                )
            }),
            50,
        ),
        ("api status (all)", Box::new(|_| "/api/v1/status".into()), 5),
        ("metrics", Box::new(|_| "/metrics".into()), 20),
    ];
    println!(
        "{:<18} {:>9} {:>9} {:>12}",
        "endpoint", "p50 ms", "p99 ms", "answer bytes"
    );
    for (name, path, n) in endpoints {
        let mut times = Vec::with_capacity(n);
        let mut bytes = 0;
        for i in 0..n {
            let p = path(i);
            let t = Instant::now();
            let (code, size) = get(&addr, &p);
            times.push(t.elapsed().as_secs_f64() * 1e3);
            assert_eq!(code, 200, "{p}");
            bytes = size;
        }
        times.sort_by(|a, b| a.total_cmp(b));
        println!(
            "{name:<18} {:>9.1} {:>9.1} {bytes:>12}",
            percentile(&times, 0.5),
            percentile(&times, 0.99)
        );
    }
    println!(
        "server peak RSS: {} MiB (after start: {} MiB)",
        peak_rss_kib(child.id()) / 1024,
        rss_idle / 1024
    );
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
