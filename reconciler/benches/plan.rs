//! Planning time for 10,000 stages with 1,000,000 observed submissions.
//! Run with `cargo bench -p cascade --bench plan`.
//!
//! 100 campaigns of 100-stage chains; each chain's first stage splits a 100-item list, and
//! every stage has 100 submissions: 1,000,000 in all, nearly all located, the last ten of
//! each campaign's last stage with one job of ten still running (enough to complete them:
//! the plan has transitions and location checks to make, not only a settled graph to walk).

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
                    submission: format!("exp.c{campaign}-s{}.{}", index - 1, i + 1),
                }
            };
            let running = index == STAGES - 1 && i >= SLICES - 10;
            observed.submissions.push(Submission {
                id: format!("exp.{}.{}", stage.key.name, i + 1),
                stage: key.clone(),
                seq: i as u64 + 1,
                origin,
                test: false,
                dataset: Some(format!("ds{i}")),
                input: Some(format!("defname: ds{i}")),
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
}
