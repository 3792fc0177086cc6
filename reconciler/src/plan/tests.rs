//! Planner tests: scenarios driven step by step with a simulated batch system, and property
//! tests over random campaign graphs.

use std::collections::HashSet;

use proptest::prelude::*;

use super::*;
use crate::model::{DesiredGraph, ObjectKey, SourceFile};

const BASE: &str = r#"
apiVersion: cascade.dev/v1alpha1
kind: LoginSetup
metadata: {name: ls, namespace: exp}
spec: {host: localhost, account: prod}
---
apiVersion: cascade.dev/v1alpha1
kind: JobType
metadata: {name: jt, namespace: exp}
spec:
  launchScript: cascade submit --jobs 2 -- true
  parameters: [["--in=", "%(dataset)s"]]
  outputFilePatterns: ["%.root"]
  recoveries:
    - type: consumed_status
    - type: process_status
      parameterOverrides: [["--memory=", "4000MB"]]
"#;

fn graph(campaign: &str, stages: &str) -> DesiredGraph {
    let text = format!(
        "{BASE}---\napiVersion: cascade.dev/v1alpha1\nkind: Campaign\nmetadata: {{name: camp, namespace: exp}}\nspec:\n{campaign}\n  defaults: {{loginSetup: ls, jobType: jt, softwareVersion: v1, completion: {{type: complete, percent: 100}}}}\n{stages}"
    );
    crate::model::graph_or_errors(&[SourceFile {
        path: "test.yaml".into(),
        bytes: text.into_bytes().into(),
    }])
    .unwrap_or_else(|e| panic!("{e}"))
}

fn stage(name: &str, body: &str) -> String {
    format!(
        "---\napiVersion: cascade.dev/v1alpha1\nkind: CampaignStage\nmetadata: {{name: {name}, namespace: exp}}\nspec:\n  campaign: camp\n{body}\n"
    )
}

fn key(name: &str) -> ObjectKey {
    ObjectKey::new("exp", name)
}

fn run_plan(g: &DesiredGraph, o: &Observed, c: &FixedCatalog, now: i64) -> Plan {
    plan_with(
        g,
        o,
        c,
        now,
        crate::plan::submission::DEFAULT_LAUNCH_TIMEOUT_SECONDS,
    )
}

/// A plan over any catalog view, with a launch timeout.
fn plan_with(
    g: &DesiredGraph,
    o: &Observed,
    catalog: &dyn CatalogView,
    now: i64,
    launch_timeout: i64,
) -> Plan {
    plan(&PlanInput {
        graph: g,
        observed: o,
        catalog,
        now,
        experimenter: "alice",
        launch_timeout,
        local_offset: 0,
        settings: &Default::default(),
    })
}

/// Records a plan's actions as the executor would.
fn apply(plan: &Plan, o: &mut Observed, now: i64) {
    for a in &plan.actions {
        match a {
            Action::Launch(l) => {
                if let Some(r) = &l.recovery {
                    o.recoveries.push(r.clone());
                }
                o.submissions.push(Submission {
                    id: l.id.as_str().into(),
                    stage: l.stage.clone().into(),
                    seq: l.seq,
                    origin: l.origin.clone(),
                    test: l.test,
                    dataset: l.dataset.as_deref().map(Into::into),
                    input: l.input.as_deref().map(Into::into),
                    cursor_after: l.cursor_after.clone().map(Box::new),
                    cursor_snapshot: None,
                    status: if l.approval {
                        Status::AwaitingApproval
                    } else {
                        Status::New
                    },
                    jobs: JobCounts::default(),
                    launched: false,
                    created: now,
                    force_located: false,
                });
            }
            Action::SetStatus { submission, to, .. } => {
                let s = o
                    .submissions
                    .iter_mut()
                    .find(|s| s.id == submission)
                    .unwrap();
                s.status = *to;
            }
            Action::SkipRecovery {
                original,
                round,
                kind,
                reference,
            } => o.recoveries.push(RecoveryRound {
                original: original.clone(),
                round: *round,
                kind: *kind,
                reference: reference.clone(),
                submission: None,
            }),
            Action::FirstSeen { stage, at } => {
                o.first_seen.insert(stage.clone(), *at);
            }
            Action::ResetSplit { stage, .. } => {
                let seq = o
                    .submissions
                    .iter()
                    .filter(|s| *s.stage == *stage)
                    .map(|s| s.seq)
                    .max()
                    .unwrap_or(0);
                o.split_resets.insert(stage.clone(), seq);
                o.split_reset_counts
                    .entry(stage.clone())
                    .or_insert((0, "cascade".into()))
                    .0 += 1;
            }
        }
    }
}

/// The batch system runs every launched submission's jobs to the end; `fail` picks
/// submissions whose jobs all fail.
fn finish_jobs(o: &mut Observed, fail: &dyn Fn(&Submission) -> bool) {
    for s in o.submissions.iter_mut().filter(|s| !s.launched) {
        s.launched = true;
        if s.status == Status::AwaitingApproval {
            continue;
        }
        let failed = fail(s);
        s.jobs = JobCounts {
            total: 2,
            succeeded: if failed { 0 } else { 2 },
            failed: if failed { 2 } else { 0 },
            ..JobCounts::default()
        };
    }
}

fn status_of<'p>(p: &'p Plan, name: &str) -> &'p StageStatus {
    p.stages.iter().find(|s| s.stage == key(name)).unwrap()
}

/// Runs plan / apply / finish until nothing changes; returns the last plan.
fn converge(g: &DesiredGraph, o: &mut Observed, c: &FixedCatalog) -> Plan {
    for step in 0..200 {
        let p = run_plan(g, o, c, 1_000 + step);
        if p.actions.is_empty() {
            return p;
        }
        apply(&p, o, 1_000 + step);
        finish_jobs(o, &|_| false);
    }
    panic!("did not converge in 200 steps");
}

#[test]
fn first_reconcile_of_a_chain_launches_the_root_and_says_why_the_rest_wait() {
    let g = graph(
        "  keywords: {}",
        &(stage("gen", "  type: generator")
            + &stage(
                "sim",
                "  dependsOn: [{stage: gen, filePattern: '%.gen.root'}]",
            )),
    );
    let p = run_plan(&g, &Observed::default(), &FixedCatalog::default(), 0);
    let launches: Vec<_> = p.launches().collect();
    assert_eq!(launches.len(), 1);
    assert_eq!(launches[0].id, "exp.gen.1");
    assert_eq!(
        launches[0].origin,
        Origin::Split {
            test: false,
            index: 0
        }
    );
    assert_eq!(
        launches[0].launch.command,
        "cascade submit --jobs 2 -- true --in=''"
    );
    let sim = status_of(&p, "sim");
    assert_eq!(sim.state, StageState::Waiting);
    assert_eq!(
        sim.reason,
        "waiting for stage `gen`: 0 of 1 submissions located, needs 100%"
    );
}

#[test]
fn located_upstream_submission_launches_each_dependent_once_over_its_outputs() {
    let g = graph(
        "  keywords: {}",
        &(stage(
            "gen",
            "  type: generator\n  dataset: a,b,c\n  split: list\n  dependsOn: [{stage: gen}]",
        ) + &stage(
            "sim",
            "  dependsOn: [{stage: gen, filePattern: '%.gen.root'}]",
        )),
    );
    let mut o = Observed::default();
    let last = converge(&g, &mut o, &FixedCatalog::default());
    let gen_subs: Vec<_> = o
        .submissions
        .iter()
        .filter(|s| *s.stage == key("gen"))
        .collect();
    let sim_subs: Vec<_> = o
        .submissions
        .iter()
        .filter(|s| *s.stage == key("sim"))
        .collect();
    assert_eq!(gen_subs.len(), 3, "one per list item");
    assert_eq!(sim_subs.len(), 3, "one child per upstream submission");
    assert_eq!(
        sim_subs[0].input.as_deref(),
        Some("(submission 'exp.gen.1') and file_name like '%.gen.root' and version 'v1'")
    );
    assert_eq!(status_of(&last, "gen").state, StageState::Completed);
    assert_eq!(status_of(&last, "sim").state, StageState::Completed);
    assert_eq!(last.campaigns[0].progress, 1.0);
}

#[test]
fn recovery_rounds_run_once_each_then_dependents_start_once() {
    let g = graph(
        "  keywords: {}",
        &(stage("proc", "  dataset: raw")
            + &stage("ana", "  dependsOn: [{stage: proc, filePattern: '%.root'}]")),
    );
    let mut catalog = FixedCatalog::default();
    // Round 1 finds 3 unconsumed files of the original; round 2 finds nothing.
    catalog.counts.insert(
        queries::recovery(
            cascade_crd::RecoveryType::ConsumedStatus,
            &recovery_basis("exp.proc.1", "defname: raw"),
        ),
        3,
    );
    let mut o = Observed::default();
    let last = converge(&g, &mut o, &catalog);
    let proc: Vec<_> = o
        .submissions
        .iter()
        .filter(|s| *s.stage == key("proc"))
        .collect();
    assert_eq!(
        proc.len(),
        2,
        "the original and one recovery: {:#?}",
        o.submissions
    );
    assert_eq!(
        proc[1].origin,
        Origin::Recovery {
            original: "exp.proc.1".into(),
            round: 0
        }
    );
    let rounds: Vec<_> = o
        .recoveries
        .iter()
        .filter(|r| r.original == "exp.proc.1")
        .collect();
    assert_eq!(rounds.len(), 2, "{rounds:#?}");
    assert_eq!(
        rounds[1].submission, None,
        "round 2 skipped: nothing to recover"
    );
    assert_eq!(
        rounds[1].reference, "exp.proc.2",
        "later rounds look at the last recovery"
    );
    let ana: Vec<_> = o
        .submissions
        .iter()
        .filter(|s| *s.stage == key("ana"))
        .collect();
    assert_eq!(ana.len(), 1, "dependents start once, after the last round");
    assert!(
        ana[0]
            .input
            .as_deref()
            .unwrap()
            .contains("submission 'exp.proc.2'"),
        "outputs of the recovery count"
    );
    assert_eq!(status_of(&last, "ana").state, StageState::Completed);
}

#[test]
fn recovery_launch_carries_the_rounds_overrides() {
    let g = graph("  keywords: {}", &stage("proc", "  dataset: raw"));
    let mut catalog = FixedCatalog::default();
    for reference in ["exp.proc.1", "exp.proc.2"] {
        catalog.counts.insert(
            queries::recovery(
                cascade_crd::RecoveryType::ProcessStatus,
                &recovery_basis(reference, "defname: raw"),
            ),
            1,
        );
    }
    let mut o = Observed::default();
    converge(&g, &mut o, &catalog);
    let recoveries: Vec<_> = o
        .submissions
        .iter()
        .filter(|s| s.origin.is_recovery())
        .collect();
    assert_eq!(recoveries.len(), 2, "each round runs once");
    let second = &o.recoveries[1];
    assert_eq!((second.round, second.reference.as_str()), (1, "exp.proc.2"));
    let p = {
        let mut before = o.clone();
        before.submissions.truncate(2);
        before.recoveries.truncate(1);
        run_plan(&g, &before, &catalog, 5)
    };
    let l = p.launches().next().expect("round 2 launches");
    assert!(
        l.launch
            .command
            .ends_with("--in=cascade_recover_exp.proc.1_2 --memory=4000MB"),
        "{}",
        l.launch.command
    );
    assert_eq!(
        l.launch
            .env
            .iter()
            .find(|(k, _)| k == "CASCADE_PARENT_SUBMISSION_ID")
            .unwrap()
            .1,
        "exp.proc.1"
    );
}

#[test]
fn failed_submission_blocks_its_dependents_and_fails_the_stage() {
    let g = graph(
        "  keywords: {}",
        &(stage("proc", "  dataset: raw") + &stage("ana", "  dependsOn: [{stage: proc}]")),
    );
    let mut o = Observed::default();
    let p = run_plan(&g, &o, &FixedCatalog::default(), 0);
    apply(&p, &mut o, 0);
    finish_jobs(&mut o, &|_| true);
    let p = run_plan(&g, &o, &FixedCatalog::default(), 1);
    apply(&p, &mut o, 1);
    let p = run_plan(&g, &o, &FixedCatalog::default(), 2);
    assert!(p.actions.is_empty());
    assert_eq!(status_of(&p, "proc").state, StageState::Failed);
    assert_eq!(
        status_of(&p, "proc").reason,
        "failed: 1 of 1 submissions failed; 0% located, needs 100%; to go on, relaunch exp.proc.1's slice with `cascade launch proc --dataset raw --why ...` or recover the files it did not process with `cascade recover exp.proc.1 --type consumed_status --why ...`"
    );
    let ana = status_of(&p, "ana");
    assert!(ana.settled);
    assert!(ana.reason.starts_with("blocked"), "{}", ana.reason);
}

#[test]
fn paused_stage_queues_and_resume_releases() {
    let g = graph(
        "  keywords: {}",
        &stage("gen", "  paused: true\n  dataset: a,b\n  split: list"),
    );
    let p = run_plan(&g, &Observed::default(), &FixedCatalog::default(), 0);
    assert_eq!(p.launches().count(), 0);
    assert_eq!(
        status_of(&p, "gen").reason,
        "stage `gen` is paused: 1 launch queued (slice 0), released in order on resume"
    );
    let g = graph(
        "  keywords: {}",
        &stage("gen", "  dataset: a,b\n  split: list"),
    );
    let p = run_plan(&g, &Observed::default(), &FixedCatalog::default(), 0);
    assert_eq!(p.launches().count(), 1);
}

#[test]
fn operator_pause_of_the_campaign_queues_requests_with_their_test_flag() {
    let g = graph(
        "  keywords: {}",
        &stage("gen", "  dataset: a,b,c\n  split: list\n  testSplit: list"),
    );
    let mut o = Observed::default();
    o.paused.insert(key("camp"));
    o.requests.push(Request {
        id: 7,
        stage: key("gen"),
        test: true,
        dataset: None,
        recovery: None,
        who: "bob".into(),
        created: 0,
    });
    let p = run_plan(&g, &o, &FixedCatalog::default(), 0);
    assert_eq!(p.launches().count(), 0);
    let stage = status_of(&p, "gen");
    assert_eq!(
        stage.reason,
        "campaign `camp` is paused: 2 launches queued (request 7 (test), slice 0), released in order on resume (drift: paused by an operator while the definitions say it runs: set `paused: true` in the definitions or `cascade resume` it)"
    );
    assert!(
        stage.drift.is_some(),
        "an imperative pause the definitions do not say is drift"
    );
    o.paused.clear();
    let p = run_plan(&g, &o, &FixedCatalog::default(), 0);
    let l: Vec<_> = p.launches().collect();
    assert_eq!(l.len(), 2);
    assert_eq!(l[0].origin, Origin::Request { id: 7 });
    assert!(l[0].test, "the test flag survives the queue (unlike POMS)");
    assert_eq!(l[0].dataset.as_deref(), Some("a"));
    assert_eq!(
        l[1].origin,
        Origin::Split {
            test: false,
            index: 0
        }
    );
    assert_eq!(
        l[1].dataset.as_deref(),
        Some("a"),
        "test launches use their own cursor"
    );
    assert!(
        l[0].launch
            .env
            .contains(&("CASCADE_LAUNCHER".into(), "bob".into()))
    );
}

#[test]
fn schedule_fires_once_per_fire_time_and_missed_fires_collapse() {
    let g = graph(
        "  keywords: {}",
        &stage(
            "nightly",
            "  schedule: '0 3 * * *'\n  dataset: a,b,c,d\n  split: list",
        ),
    );
    let day = 86_400;
    let mut o = Observed::default();
    let p = run_plan(&g, &o, &FixedCatalog::default(), 0);
    assert_eq!(p.launches().count(), 0);
    assert_eq!(p.wake_at, Some(3 * 3600));
    assert_eq!(status_of(&p, "nightly").next_fire, Some(3 * 3600));
    apply(&p, &mut o, 0);
    // Three days later: one launch for the latest fire, not three.
    let now = 3 * day + 4 * 3600;
    let p = run_plan(&g, &o, &FixedCatalog::default(), now);
    let l: Vec<_> = p.launches().collect();
    assert_eq!(l.len(), 1);
    assert_eq!(
        l[0].origin,
        Origin::Schedule {
            fire: 3 * day + 3 * 3600
        }
    );
    apply(&p, &mut o, now);
    let p = run_plan(&g, &o, &FixedCatalog::default(), now + 60);
    assert_eq!(
        p.launches().count(),
        0,
        "the same fire never launches twice"
    );
}

#[test]
fn stage_complete_trigger_and_join_launch_once_over_all_outputs() {
    let g = graph(
        "  keywords: {}",
        &(stage(
            "gen",
            "  type: generator\n  dataset: a,b\n  split: list\n  dependsOn: [{stage: gen}]",
        ) + &stage(
            "quiet",
            "  dependsOn: [{stage: gen, filePattern: '%.gen.root'}]",
        ) + &stage(
            "noisy",
            "  dependsOn: [{stage: gen, filePattern: '%.gen.root', trigger: stageComplete}]",
        ) + &stage(
            "compare",
            "  join: true\n  dependsOn: [{stage: quiet, filePattern: '%.root'}, {stage: noisy, filePattern: '%.root'}]",
        )),
    );
    let mut o = Observed::default();
    let last = converge(&g, &mut o, &FixedCatalog::default());
    let count = |n: &str| o.submissions.iter().filter(|s| *s.stage == key(n)).count();
    assert_eq!(
        (
            count("gen"),
            count("quiet"),
            count("noisy"),
            count("compare")
        ),
        (2, 2, 1, 1)
    );
    let compare = o
        .submissions
        .iter()
        .find(|s| *s.stage == key("compare"))
        .unwrap();
    assert_eq!(
        compare.input.as_deref(),
        Some(
            "(stage 'exp/quiet' and file_name like '%.root' and version 'v1') or (stage 'exp/noisy' and file_name like '%.root' and version 'v1')"
        )
    );
    assert!(last.stages.iter().all(|s| s.state == StageState::Completed));
}

#[test]
fn approval_stage_waits_for_an_operator() {
    let g = graph(
        "  keywords: {}",
        &(stage("sign", "  type: approval\n  dataset: raw")
            + &stage("proc", "  dependsOn: [{stage: sign}]")),
    );
    let mut o = Observed::default();
    let p = run_plan(&g, &o, &FixedCatalog::default(), 0);
    assert!(p.launches().next().unwrap().approval);
    apply(&p, &mut o, 0);
    finish_jobs(&mut o, &|_| false);
    let p = run_plan(&g, &o, &FixedCatalog::default(), 1);
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    o.submissions[0].status = Status::Completed; // approved
    let p = run_plan(&g, &o, &FixedCatalog::default(), 2);
    assert_eq!(p.launches().count(), 1);
}

#[test]
fn located_completion_counts_inputs_with_located_outputs() {
    let g = graph(
        "  keywords: {}",
        &stage(
            "proc",
            "  dataset: raw\n  completion: {type: located, percent: 75}",
        ),
    );
    let mut o = Observed::default();
    let p = run_plan(&g, &o, &FixedCatalog::default(), 0);
    apply(&p, &mut o, 0);
    finish_jobs(&mut o, &|_| false);
    let mut catalog = FixedCatalog::default();
    catalog
        .counts
        .insert(queries::project_inputs("exp.proc.1"), 5);
    catalog
        .counts
        .insert(queries::consumed_inputs("exp.proc.1"), 4);
    let located = queries::located_inputs("exp.proc.1", &["%.root".into()], "v1", 0, 0);
    catalog.counts.insert(located.clone(), 2);
    let p = run_plan(&g, &o, &catalog, 10);
    assert!(
        matches!(
            &p.actions[..],
            [Action::SetStatus {
                to: Status::Completed,
                ..
            }]
        ),
        "{:?}",
        p.actions
    );
    catalog.counts.insert(located, 3);
    let p = run_plan(&g, &o, &catalog, 10);
    assert!(p.actions.iter().any(|a| matches!(
        a,
        Action::SetStatus {
            to: Status::Located,
            ..
        }
    )));
    // Two days on, POMS's rule locates it anyway.
    let mut stale = catalog.clone();
    stale.counts.clear();
    let p = run_plan(&g, &o, &stale, 3 * 86_400);
    assert!(p.actions.iter().any(|a| matches!(
        a,
        Action::SetStatus {
            to: Status::Located,
            ..
        }
    )));
}

// ---- property tests ----

/// A random campaign: stage i may depend on earlier stages with either trigger; root stages
/// split a list with a self-dependency; some stages are paused.
/// Per stage: upstream edges (stage index, whole-stage trigger), paused, list length.
type StageShape = (Vec<(usize, bool)>, bool, u8);

#[derive(Clone, Debug)]
struct Shape {
    stages: Vec<StageShape>,
    campaign_paused: bool,
}

fn shape() -> impl Strategy<Value = Shape> {
    (1usize..6)
        .prop_flat_map(|n| {
            let stages = (0..n)
                .map(|i| {
                    let edges =
                        proptest::collection::vec((0..i.max(1), any::<bool>()), 0..=i.min(2))
                            .prop_map(move |e| if i == 0 { Vec::new() } else { e });
                    (edges, prop::bool::weighted(0.15), 1u8..4)
                })
                .collect::<Vec<_>>();
            (stages, prop::bool::weighted(0.1))
        })
        .prop_map(|(stages, campaign_paused)| Shape {
            stages,
            campaign_paused,
        })
}

fn build(shape: &Shape) -> DesiredGraph {
    let mut text = String::new();
    for (i, (edges, paused, items)) in shape.stages.iter().enumerate() {
        let mut body = String::new();
        let mut seen = HashSet::new();
        let deps: Vec<String> = edges
            .iter()
            .filter(|(u, _)| seen.insert(*u))
            .map(|(u, whole)| {
                format!(
                    "{{stage: s{u}, trigger: {}}}",
                    if *whole {
                        "stageComplete"
                    } else {
                        "submission"
                    }
                )
            })
            .collect();
        if deps.is_empty() {
            let list: Vec<String> = (0..*items).map(|k| format!("d{k}")).collect();
            body.push_str(&format!(
                "  dataset: {}\n  split: list\n  dependsOn: [{{stage: s{i}}}]\n",
                list.join(",")
            ));
        } else {
            body.push_str(&format!("  dependsOn: [{}]\n", deps.join(", ")));
        }
        if *paused {
            body.push_str("  paused: true\n");
        }
        text.push_str(&stage(&format!("s{i}"), body.trim_end()));
    }
    graph(&format!("  paused: {}", shape.campaign_paused), &text)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn planner_properties(shape in shape(), fail_mask in any::<u64>()) {
        let g = build(&shape);
        let catalog = FixedCatalog::default();
        let mut o = Observed::default();
        let mut identities = HashSet::new();
        let mut slices = HashSet::new();
        let fail = |s: &Submission| fail_mask >> (s.seq % 64) & 1 == 1 && s.seq % 7 == 3;
        let mut converged = false;
        for step in 0..300i64 {
            let p = run_plan(&g, &o, &catalog, step);
            // Deterministic: the same inputs give the same plan.
            prop_assert_eq!(&p, &run_plan(&g, &o, &catalog, step));
            for l in p.launches() {
                let stage = g.stage(&l.stage).unwrap();
                // Nothing launched for a paused stage or campaign.
                prop_assert!(!stage.paused && !shape.campaign_paused, "launched {} while paused", l.id);
                // No two launches with the same identity, nor of the same slice and round.
                prop_assert!(identities.insert((l.stage.clone(), l.origin.key())), "twice: {:?}", l.origin);
                if let (Origin::Split { .. }, Some(d)) = (&l.origin, &l.dataset) {
                    prop_assert!(slices.insert((l.stage.clone(), d.clone())), "slice {} twice", d);
                }
            }
            if p.actions.is_empty() {
                converged = true;
                // Feeding outcomes back in converged: every stage has settled.
                let anything_paused = shape.campaign_paused || shape.stages.iter().any(|s| s.1);
                for s in p.stages.iter().filter(|_| !anything_paused) {
                    prop_assert!(s.settled, "{} not settled: {}", s.stage, s.reason);
                }
                break;
            }
            apply(&p, &mut o, step);
            finish_jobs(&mut o, &fail);
        }
        prop_assert!(converged, "no convergence in 300 steps");
    }
}

/// What the planner computes a recovery round of `reference` from (the types these tests
/// use read only the reference's project).
fn recovery_basis<'a>(reference: &'a str, input: &'a str) -> queries::RecoveryBasis<'a> {
    queries::RecoveryBasis {
        reference,
        reference_created: 0,
        input: Some(input),
        output_patterns: &[],
        version: "v1",
        depth: 1,
    }
}

/// A catalog that counts how often the planner asks for a dataset's files.
struct CountingCatalog {
    files: Vec<crate::split::FileFact>,
    asked: std::cell::Cell<u32>,
}

impl CatalogView for CountingCatalog {
    fn count(&self, _: &str) -> Result<u64, crate::plan::CatalogError> {
        Ok(0)
    }

    fn files(&self, _: &str) -> Result<Vec<crate::split::FileFact>, crate::plan::CatalogError> {
        self.asked.set(self.asked.get() + 1);
        Ok(self.files.clone())
    }
}

#[test]
fn a_plan_asks_the_catalog_for_a_datasets_files_once() {
    let g = graph(
        "  keywords: {}",
        &stage(
            "proc",
            "  dataset: raw\n  split: nfiles(2)\n  dependsOn: [{stage: proc}]",
        ),
    );
    let catalog = CountingCatalog {
        files: (0..50)
            .map(|i| crate::split::FileFact {
                name: format!("f{i}"),
                run: None,
                end_time: None,
            })
            .collect(),
        asked: std::cell::Cell::new(0),
    };
    let p = plan_with(
        &g,
        &Observed::default(),
        &catalog,
        0,
        crate::plan::submission::DEFAULT_LAUNCH_TIMEOUT_SECONDS,
    );
    assert_eq!(p.launches().count(), 1);
    // The split was walked for the launch and for the progress estimate (25 slices).
    assert_eq!(status_of(&p, "proc").progress, 0.0);
    assert_eq!(catalog.asked.get(), 1);
}

/// Reference §6.4a: a launch that exited 0 but whose jobs were never seen is not success. It
/// stays `New` until the launch timeout, then is `LaunchFailed`, and its dependents never start.
#[test]
fn a_launch_without_jobs_stays_new_then_fails_and_starts_no_dependent() {
    let g = graph(
        "  keywords: {}",
        &(stage("gen", "  type: generator")
            + &stage("sim", "  dependsOn: [{stage: gen, filePattern: '%.root'}]")),
    );
    let mut o = Observed::default();
    let p = run_plan(&g, &o, &FixedCatalog::default(), 0);
    apply(&p, &mut o, 0);
    o.submissions[0].launched = true; // the command ended; no job ever appeared
    let timeout = 600;
    let plan_at = |o: &Observed, now| plan_with(&g, o, &FixedCatalog::default(), now, timeout);
    let before = plan_at(&o, timeout - 1);
    assert!(before.actions.is_empty(), "{:?}", before.actions);
    assert_eq!(status_of(&before, "gen").state, StageState::Running);
    assert!(
        status_of(&before, "gen").reason.contains("no job seen yet"),
        "{}",
        status_of(&before, "gen").reason
    );
    assert_eq!(
        before.wake_at,
        Some(timeout),
        "the controller wakes at the deadline"
    );
    let after = plan_at(&o, timeout);
    assert!(
        matches!(
            &after.actions[..],
            [Action::SetStatus { to: Status::LaunchFailed, reason, .. }] if reason.contains("no job")
        ),
        "{:?}",
        after.actions
    );
    apply(&after, &mut o, timeout);
    let last = plan_at(&o, timeout + 1);
    assert_eq!(status_of(&last, "gen").state, StageState::Failed);
    assert!(last.launches().next().is_none(), "no dependent starts");
    assert_eq!(status_of(&last, "sim").state, StageState::Waiting);
}

/// A catalog that cannot answer: every question fails.
struct BrokenCatalog;

impl CatalogView for BrokenCatalog {
    fn count(&self, q: &str) -> Result<u64, CatalogError> {
        Err(format!("database is locked while counting `{q}`"))
    }

    fn files(&self, d: &str) -> Result<Vec<crate::split::FileFact>, CatalogError> {
        Err(format!("database is locked while reading `{d}`"))
    }
}

/// A catalog question without an answer is never "0 files": no location decided, no
/// recovery round recorded as skipped, no split taken as exhausted; the stage is `Degraded`
/// and the same plan is made again once the catalog answers.
#[test]
fn a_catalog_that_cannot_answer_decides_nothing_and_degrades_the_stage() {
    let g = graph(
        "  keywords: {}",
        &(stage(
            "proc",
            "  dataset: raw\n  completion: {type: located, percent: 100}",
        ) + &stage("split", "  dataset: raw\n  split: nfiles(2)")),
    );
    let mut o = Observed::default();
    let p = run_plan(&g, &o, &FixedCatalog::default(), 0);
    apply(&p, &mut o, 0);
    finish_jobs(&mut o, &|_| false);
    o.submissions[0].status = Status::Completed;
    let p = plan_with(&g, &o, &BrokenCatalog, 10, 600);
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    for name in ["proc", "split"] {
        let s = status_of(&p, name);
        assert_eq!(s.state, StageState::Degraded, "{name}: {}", s.reason);
        assert!(s.reason.contains("database is locked"), "{}", s.reason);
        assert!(!s.settled && s.blocked);
    }
}

/// Recovery rounds are decided only from answers: with the catalog failing, the located
/// submission's rounds stay undecided (none is recorded as skipped).
#[test]
fn no_recovery_round_is_skipped_because_of_a_catalog_error() {
    let g = graph("  keywords: {}", &stage("proc", "  dataset: raw"));
    let mut o = Observed::default();
    let p = run_plan(&g, &o, &FixedCatalog::default(), 0);
    apply(&p, &mut o, 0);
    finish_jobs(&mut o, &|_| false);
    o.submissions[0].status = Status::Located;
    let p = plan_with(&g, &o, &BrokenCatalog, 10, 600);
    assert!(
        !p.actions
            .iter()
            .any(|a| matches!(a, Action::SkipRecovery { .. })),
        "{:?}",
        p.actions
    );
    assert_eq!(status_of(&p, "proc").state, StageState::Degraded);
}

/// An input known to be empty launches nothing, and says so.
#[test]
fn an_empty_dataset_launches_nothing_and_is_not_success() {
    let g = graph("  keywords: {}", &stage("proc", "  dataset: raw"));
    let mut catalog = FixedCatalog::default();
    catalog.counts.insert("defname: raw".into(), 0);
    let p = run_plan(&g, &Observed::default(), &catalog, 0);
    assert!(p.launches().next().is_none());
    let s = status_of(&p, "proc");
    assert_eq!(s.state, StageState::Waiting);
    assert!(s.settled);
    assert!(s.reason.contains("selects no files"), "{}", s.reason);
    catalog.counts.insert("defname: raw".into(), 3);
    let p = run_plan(&g, &Observed::default(), &catalog, 0);
    assert_eq!(p.launches().count(), 1);
}

/// Slices of a split are defined as snapshots of their files; the stage's own dataset and
/// list items are people's names and are never defined by a launch.
#[test]
fn launches_define_only_names_of_their_own() {
    let files = |names: &[&str]| {
        names
            .iter()
            .map(|n| crate::split::FileFact {
                name: n.to_string(),
                run: None,
                end_time: None,
            })
            .collect::<Vec<_>>()
    };
    let g = graph(
        "  keywords: {}",
        &(stage("whole", "  dataset: raw")
            + &stage("sliced", "  dataset: raw\n  split: nfiles(2)")
            + &stage("listed", "  dataset: a,b\n  split: list")),
    );
    let mut catalog = FixedCatalog::default();
    catalog
        .files
        .insert("raw".into(), files(&["f1", "f2", "f3"]));
    let p = run_plan(&g, &Observed::default(), &catalog, 0);
    let define = |stage: &str| {
        p.launches()
            .find(|l| l.stage == key(stage))
            .map(|l| (l.define, l.dataset.clone().unwrap_or_default()))
            .unwrap()
    };
    assert_eq!(define("whole"), (Define::Nothing, "raw".into()));
    assert_eq!(
        define("sliced"),
        (Define::Snapshot, "raw_slice0_files2".into())
    );
    assert_eq!(define("listed"), (Define::Nothing, "a".into()));
}

/// A stage fed by an upstream stage that also depends on itself relaunches with the next
/// slice of its own split after each of its submissions is located (reference §4.5), until
/// the split runs out.
#[test]
fn upstream_and_self_dependency_walks_the_stages_own_split() {
    let g = graph(
        "  keywords: {}",
        &(stage("gen", "  type: generator")
            + &stage(
                "proc",
                "  dataset: raw\n  split: nfiles(1)\n  dependsOn: [{stage: gen, filePattern: '%.root'}, {stage: proc}]",
            )),
    );
    let mut catalog = FixedCatalog::default();
    catalog.files.insert(
        "raw".into(),
        ["r1", "r2"]
            .iter()
            .map(|n| crate::split::FileFact {
                name: n.to_string(),
                run: None,
                end_time: None,
            })
            .collect(),
    );
    let mut o = Observed::default();
    let last = converge(&g, &mut o, &catalog);
    let origins: Vec<String> = o
        .submissions
        .iter()
        .filter(|s| *s.stage == key("proc"))
        .map(|s| s.origin.describe())
        .collect();
    assert_eq!(origins, ["after exp.gen.1", "slice 0", "slice 1"]);
    let datasets: Vec<Option<&str>> = o
        .submissions
        .iter()
        .filter(|s| *s.stage == key("proc") && matches!(s.origin, Origin::Split { .. }))
        .map(|s| s.dataset.as_deref())
        .collect();
    assert_eq!(
        datasets,
        [Some("raw_slice0_files1"), Some("raw_slice1_files1")]
    );
    assert!(status_of(&last, "proc").state.succeeded());
}

/// After an operator's kill, a recovery of the killed submission (or a relaunch of its slice)
/// takes its place: the stage can complete, and its dependents start from the replacement.
#[test]
fn a_recovery_of_a_killed_submission_takes_its_place() {
    let g = graph(
        "  keywords: {}",
        &(stage("proc", "  dataset: raw")
            + &stage("ana", "  dependsOn: [{stage: proc, filePattern: '%.root'}]")),
    );
    let mut o = Observed::default();
    let p = run_plan(&g, &o, &FixedCatalog::default(), 0);
    apply(&p, &mut o, 0);
    o.submissions[0].status = Status::Removed;
    let p = run_plan(&g, &o, &FixedCatalog::default(), 1);
    assert_eq!(status_of(&p, "proc").state, StageState::Failed);
    o.requests.push(Request {
        id: 1,
        stage: key("proc"),
        test: false,
        dataset: None,
        recovery: Some((
            "exp.proc.1".into(),
            cascade_crd::RecoveryType::ConsumedStatus,
        )),
        who: "op".into(),
        created: 2,
    });
    let mut catalog = FixedCatalog::default();
    catalog.counts.insert(
        queries::recovery(
            cascade_crd::RecoveryType::ConsumedStatus,
            &recovery_basis("exp.proc.1", "defname: raw"),
        ),
        4,
    );
    let last = converge(&g, &mut o, &catalog);
    assert_eq!(status_of(&last, "proc").state, StageState::Completed);
    assert_eq!(status_of(&last, "ana").state, StageState::Completed);
    let ana: Vec<&Origin> = o
        .submissions
        .iter()
        .filter(|s| *s.stage == key("ana"))
        .map(|s| &s.origin)
        .collect();
    assert_eq!(
        ana,
        [&Origin::Upstream {
            submission: "exp.proc.2".into()
        }]
    );
}

/// Reference §6.4a, second row: 19 failed and 1 running of 20 at 95 % is `Completed`; when
/// the last job then ends, the `Failed` that the counts now give is ignored (guard rule 4),
/// and the recovery rounds run.
#[test]
fn completed_early_stays_completed_and_its_recovery_rounds_run() {
    let g = graph(
        "  keywords: {}",
        &stage(
            "proc",
            "  dataset: raw\n  completion: {type: complete, percent: 95}",
        ),
    );
    let mut o = Observed::default();
    let p = run_plan(&g, &o, &FixedCatalog::default(), 0);
    apply(&p, &mut o, 0);
    let sub = &mut o.submissions[0];
    sub.launched = true;
    sub.status = Status::Running;
    sub.jobs = JobCounts {
        total: 20,
        failed: 19,
        running: 1,
        ..JobCounts::default()
    };
    let mut catalog = FixedCatalog::default();
    catalog.counts.insert(
        queries::recovery(
            cascade_crd::RecoveryType::ConsumedStatus,
            &recovery_basis("exp.proc.1", "defname: raw"),
        ),
        19,
    );
    let p = run_plan(&g, &o, &catalog, 1);
    assert!(
        p.actions.iter().any(|a| matches!(
            a,
            Action::SetStatus {
                from: Status::Running,
                to: Status::Completed,
                ..
            }
        )),
        "{:?}",
        p.actions
    );
    assert!(
        p.launches()
            .any(|l| matches!(l.origin, Origin::Recovery { round: 0, .. })),
        "the first recovery round runs: {:?}",
        p.actions
    );
    apply(&p, &mut o, 1);
    // The last job ends: 19 failed, 1 succeeded.
    o.submissions[0].jobs = JobCounts {
        total: 20,
        failed: 19,
        succeeded: 1,
        ..JobCounts::default()
    };
    let p = run_plan(&g, &o, &catalog, 2);
    assert!(
        !p.actions.iter().any(|a| matches!(
            a,
            Action::SetStatus {
                to: Status::Failed,
                ..
            }
        )),
        "{:?}",
        p.actions
    );
    assert_eq!(o.submissions[0].status, Status::Located);
}
