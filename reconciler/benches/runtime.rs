//! The embedded runtime, measured with the real `cascade` binary:
//! - overhead per job of the local batch system on 10,000 trivial jobs, against plain
//!   `xargs -P 2` running the same command in the same run (both with two slots);
//! - time from the end of an upstream submission's last job (when its chain became located)
//!   to its dependent's reservation, over the eve_mc example's chain;
//! - the controller's memory during that run (sampled from /proc).
//!
//! Run with `cargo bench -p cascade --bench runtime` (`-- JOBS` to change the job count).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cascade::ledger::Ledger;
use cascade::plan::Origin;

mod common;
use common::rss_field;

fn cascade() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cascade"))
}

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cascade-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn batch_overhead(jobs: usize) {
    let state = temp("batch");
    std::fs::create_dir_all(&state).expect("state dir");
    let t = Instant::now();
    let status = Command::new("sh")
        .args(["-c", &format!("seq {jobs} | xargs -P 2 -n 1 true")])
        .status()
        .expect("xargs");
    assert!(status.success());
    let xargs = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let out = common::submit_trivial_jobs(&state, jobs)
        .output()
        .expect("submit");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let submitted = t.elapsed().as_secs_f64();
    let ledger = Ledger::open(&state).expect("ledger");
    loop {
        let left = ledger
            .scalar_i64("SELECT COUNT(*) FROM jobs WHERE state IN ('idle', 'running')")
            .expect("count");
        if left == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let local = t.elapsed().as_secs_f64();
    let ok = ledger
        .scalar_i64("SELECT COUNT(*) FROM jobs WHERE state = 'succeeded'")
        .expect("count");
    println!("batch: {jobs} trivial jobs (`true`), 2 slots each");
    println!(
        "batch:   xargs -P 2        {xargs:>8.2} s  ({:.2} ms per job)",
        xargs * 1e3 / jobs as f64
    );
    println!(
        "batch:   cascade submit    {local:>8.2} s  ({:.2} ms per job; submit itself {:.2} s; {ok} succeeded)",
        local * 1e3 / jobs as f64,
        submitted
    );
    println!(
        "batch:   overhead per job  {:.2} ms (its directory and log, output copied by the daemon, and a share of the transaction recording ends and claiming the next jobs)",
        (local - xargs) * 1e3 / jobs as f64
    );
    let _ = std::fs::remove_dir_all(&state);
}

fn chain_latency_and_memory() {
    let state = temp("run");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/eve_mc");
    let mut child = cascade()
        .args(["run", "-q", "--state"])
        .arg(&state)
        .arg(&example)
        .stdout(Stdio::null())
        .spawn()
        .expect("run");
    let pid = child.id().to_string();
    let (mut peak, mut samples, mut sum) = (0u64, 0u64, 0u64);
    let t = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if let Some(rss) = rss_field(&pid, "VmRSS:") {
            peak = peak.max(rss);
            samples += 1;
            sum += rss;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let wall = t.elapsed().as_secs_f64();
    println!(
        "controller: eve_mc ran in {wall:.2} s; RSS peak {:.1} MiB, mean {:.1} MiB over {samples} samples",
        peak as f64 / 1024.0,
        sum as f64 / 1024.0 / samples.max(1) as f64
    );
    let ledger = Ledger::open(&state).expect("ledger");
    let history = ledger.history(None).expect("history");
    let mut located: HashMap<&str, i64> = HashMap::new();
    let mut reserved: HashMap<&str, i64> = HashMap::new();
    for h in &history {
        match h.status.as_str() {
            "Located" => located.insert(&h.submission, h.at_ms),
            "New" => reserved.insert(&h.submission, h.at_ms),
            _ => None,
        };
    }
    let observed = ledger.observed().expect("observed");
    // An upstream chain ends with the last job of its last recovery round.
    let chain_end = |original: &str| {
        observed
            .submissions
            .iter()
            .filter(|s| {
                s.id == original
                    || matches!(&s.origin, Origin::Recovery { original: o, .. } if o == original)
            })
            .filter(|s| located.contains_key(s.id.as_str()))
            .filter_map(|s| {
                ledger
                    .scalar_i64(&format!(
                        "SELECT COALESCE(MAX(finished_ms), 0) FROM jobs WHERE submission = '{}'",
                        s.id
                    ))
                    .ok()
            })
            .max()
    };
    let mut delays = Vec::new();
    for s in &observed.submissions {
        if let Origin::Upstream { submission } = &s.origin
            && let (Some(end), Some(start)) = (chain_end(submission), reserved.get(s.id.as_str()))
        {
            delays.push((start - end, format!("{submission} -> {}", s.id)));
        }
    }
    for (ms, edge) in &delays {
        println!("latency: upstream's last job ended -> dependent reserved {ms:>4} ms  {edge}");
    }
    if let Some(max) = delays.iter().map(|d| d.0).max() {
        println!(
            "latency: worst {max} ms over {} dependency launches",
            delays.len()
        );
    }
    let _ = std::fs::remove_dir_all(&state);
}

fn main() {
    let jobs = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10_000);
    chain_latency_and_memory();
    batch_overhead(jobs);
}
