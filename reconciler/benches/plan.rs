//! Planning time for 10,000 stages with 1,000,000 observed submissions.
//! Run with `cargo bench -p cascade --bench plan`.
//!
//! 100 campaigns of 100-stage chains; each chain's first stage splits a 100-item list, and
//! every stage has 100 submissions: 1,000,000 in all, nearly all located, the last ten of
//! each campaign's last stage with one job of ten still running (enough to complete them:
//! the plan has transitions and location checks to make, not only a settled graph to walk).
//!
//! Then, how the planner's input is read from a ledger of 200,000 submissions: the
//! submissions alone (`observed`) against the rows with their launch texts.

use compact_str::format_compact;
use std::time::Instant;

use cascade::model::load_and_validate;
use cascade::plan::{
    FixedCatalog, JobCounts, Observed, Origin, PlanInput, Status, Submission, plan,
};
use cascade::split::Cursor;

mod common;
use common::{generate, peak_rss_kib};

const CAMPAIGNS: usize = 100;
const STAGES: usize = 100;
const SLICES: usize = 100;

/// Writes `n` launched submissions with launch texts of a realistic length into a fresh
/// ledger, then reads the planner's input (`observed`) and the full rows, in that order (peak
/// RSS only grows, so the smaller read is measured first).
fn read_from_ledger(n: usize) {
    let dir = std::env::temp_dir().join(format!("cascade-bench-plan-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    drop(cascade::ledger::Ledger::open(&dir).expect("state"));
    let mut conn = rusqlite::Connection::open(dir.join(cascade::ledger::DB_FILE)).expect("db");
    let tx = conn.transaction().expect("tx");
    {
        let mut sub = tx.prepare("INSERT INTO submissions (id, namespace, stage, seq, origin, origin_json, test, status, launch_state, approval, command, display, argv, env, launch_dir, launch_attempts, launch_log, launcher, force_located, created, updated, dataset, input) VALUES (?1, 'exp', ?2, ?3, ?4, ?5, 0, 'located', 'launched', 0, ?6, ?7, '[]', '[]', '/tmp', 1, ?8, 'prod', 0, 0, 0, ?9, ?10)").expect("insert");
        for i in 0..n {
            let stage = format!("c{}-s{}", i / 10_000, (i / 100) % 100);
            let origin = Origin::Split {
                test: false,
                index: (i % 100) as u64,
            };
            let command = format!(
                "fife_launch -c gen.cfg --stage=gen -Oglobal.release=v1 -Oglobal.sam_dataset=ds{i} -Oglobal.submission=exp.{stage}.{}",
                i % 100 + 1
            );
            sub.execute(rusqlite::params![
                format!("exp.{stage}.{}", i % 100 + 1),
                stage,
                (i % 100 + 1) as i64,
                origin.key(),
                serde_json::to_string(&origin).expect("origin"),
                command,
                format!("/bin/sh -c 'export X=exp\n{command}'"),
                format!("{}/launches/exp.{stage}.{}.log", dir.display(), i % 100 + 1),
                format!("ds{i}"),
                format!("defname: ds{i}"),
            ])
            .expect("submission");
        }
    }
    tx.commit().expect("commit");
    drop(conn);
    let ledger = cascade::ledger::Ledger::open(&dir).expect("state");
    let mib = |k: Option<u64>| k.unwrap_or(0) as f64 / 1024.0;
    let base = peak_rss_kib();
    let started = Instant::now();
    let observed = ledger.observed().expect("observed");
    let (observed_s, observed_peak) = (started.elapsed().as_secs_f64(), peak_rss_kib());
    drop(observed);
    let started = Instant::now();
    let rows = ledger.submission_rows().expect("rows");
    let (rows_s, rows_peak) = (started.elapsed().as_secs_f64(), peak_rss_kib());
    println!(
        "plan: reading {n} submissions from a ledger: the planner's input in {:.0} ms (peak RSS +{:.0} MiB); the rows with their launch texts in {:.0} ms (peak RSS +{:.0} MiB)",
        observed_s * 1e3,
        mib(observed_peak) - mib(base),
        rows_s * 1e3,
        mib(rows_peak) - mib(base),
    );
    drop(rows);
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    let files = generate(CAMPAIGNS, STAGES, SLICES);
    let (_, validated) = load_and_validate(&files);
    let graph = validated.graph.expect("generated definitions validate");
    let mut observed = Observed::default();
    for stage in &graph.stages {
        let (campaign, index) = stage.key.name[1..]
            .split_once("-s")
            .expect("generated name");
        let index: usize = index.parse().expect("stage index");
        // One key per stage, shared by its submissions, as the ledger reads them.
        let key = std::sync::Arc::new(stage.key.clone());
        for i in 0..SLICES {
            let origin = if index == 0 {
                Origin::Split {
                    test: false,
                    index: i as u64,
                }
            } else {
                Origin::Upstream {
                    submission: format_compact!("exp.c{campaign}-s{}.{}", index - 1, i + 1),
                }
            };
            let running = index == STAGES - 1 && i >= SLICES - 10;
            observed.submissions.push(Submission {
                id: format_compact!("exp.{}.{}", stage.key.name, i + 1),
                stage: key.clone(),
                seq: i as u64 + 1,
                origin,
                test: false,
                dataset: Some(format_compact!("ds{i}")),
                input: Some(format_compact!("defname: ds{i}")),
                cursor_after: (index == 0).then(|| Box::new(Cursor::Index(i as u64 + 1))),
                cursor_snapshot: None,
                status: if running {
                    Status::Running
                } else {
                    Status::Located
                },
                jobs: JobCounts {
                    total: 10,
                    running: if running { 1 } else { 0 },
                    succeeded: if running { 9 } else { 10 },
                    ..JobCounts::default()
                },
                launched: true,
                created: 0,
                force_located: false,
            });
        }
    }
    let catalog = FixedCatalog::default();
    let before = peak_rss_kib();
    let mut best = f64::MAX;
    let mut actions = 0;
    for _ in 0..3 {
        let started = Instant::now();
        let p = plan(&PlanInput {
            graph: &graph,
            observed: &observed,
            catalog: &catalog,
            now: 1_000,
            experimenter: "bench",
            launch_timeout: cascade::plan::submission::DEFAULT_LAUNCH_TIMEOUT_SECONDS,
            local_offset: 0,
            settings: &Default::default(),
        });
        best = best.min(started.elapsed().as_secs_f64());
        actions = p.actions.len();
        assert_eq!(p.stages.len(), CAMPAIGNS * STAGES);
    }
    println!(
        "plan: {} stages, {} observed submissions, {actions} actions",
        graph.stages.len(),
        observed.submissions.len()
    );
    println!(
        "plan: best of 3 = {:.0} ms ({:.2} µs per submission)",
        best * 1e3,
        best * 1e6 / observed.submissions.len() as f64
    );
    if let (Some(b), Some(p)) = (before, peak_rss_kib()) {
        println!(
            "plan: peak RSS {:.0} MiB (graph and observations alone: {:.0} MiB)",
            p as f64 / 1024.0,
            b as f64 / 1024.0
        );
    }
    // Last: peak RSS only grows, and reading rows with their launch texts peaks above the plan.
    read_from_ledger(common::arg("--ledger-submissions", 200_000usize));
}
