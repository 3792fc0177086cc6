//! The planner: `(desired graph, observed state, catalog view, now) -> (actions, status)`.
//!
//! Level-triggered: every call recomputes from the whole state, so a missed event or a
//! restart loses nothing, and a launch already recorded is never planned again (each launch
//! has an identity, its stage and [`Origin`], which the ledger keeps unique).
//!
//! What triggers a launch:
//! - a stage with no upstream stage launches once (slice 0 of its split); with a
//!   self-dependency it launches the next slice each time the previous chain is located,
//!   until the split is exhausted; with a schedule, once per fire time (missed fires collapse);
//! - an upstream submission chain (original plus recovery rounds) that ended located launches
//!   each per-submission dependent once, over that chain's outputs (reference §4.4–4.5);
//! - an upstream stage that completed launches each `stageComplete` dependent once, over all
//!   its outputs; a `join` stage launches once when all its upstream stages completed;
//! - a located submission whose job type has recovery rounds left launches the next non-empty
//!   round (reference §5), and its dependents wait until the last round;
//! - an operator's launch request.
//!
//! A paused stage or campaign launches nothing: what it would launch is reported as queued
//! and launched, in order, once it resumes.

use std::cell::{OnceCell, RefCell};
use std::collections::BTreeMap;

use crate::fast::{Map, Set};
use std::rc::Rc;

use serde::{Deserialize, Serialize};

use cascade_crd::{
    CampaignState, DependencyTrigger, Param, RecoveryType, SplitFields, SplitPolicy, StageType,
};

use super::observed::{
    CatalogView, JobCounts, Observed, Origin, RecoveryRound, Status, Submission,
};
use super::{queries, submission};
use crate::launch::compose::{Launch, LaunchRequest, LaunchSettings, compose, stage_version};
use crate::model::{DesiredGraph, ObjectKey, Stage};
use crate::split::{Cursor, FileFact, Next, SplitContext, next};

mod chains;
mod launches;
mod slices;
mod status;

pub struct PlanInput<'a> {
    pub graph: &'a DesiredGraph,
    pub observed: &'a Observed,
    pub catalog: &'a dyn CatalogView,
    /// Unix seconds.
    pub now: i64,
    /// Who launches are done for when no operator asked (`%(experimenter)s`).
    pub experimenter: &'a str,
    /// The controller's UTC offset in seconds (`new(localtime=1)` windows).
    pub local_offset: i32,
    /// Seconds a launch may go without any job seen before it is `LaunchFailed`.
    pub launch_timeout: i64,
    /// Where launches run: the state directory, uploads, the POMS instance.
    pub settings: &'a LaunchSettings,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "camelCase")]
pub enum Action {
    /// Reserve the submission in the ledger, then run its launch.
    Launch(Box<LaunchAction>),
    /// Record a submission's new status.
    #[serde(rename_all = "camelCase")]
    SetStatus {
        submission: String,
        from: Status,
        to: Status,
        reason: String,
    },
    /// Record that a recovery round had nothing to recover.
    #[serde(rename_all = "camelCase")]
    SkipRecovery {
        original: String,
        round: u32,
        kind: RecoveryType,
        reference: String,
    },
    /// Record when a scheduled stage was first seen (the anchor of its schedule).
    #[serde(rename_all = "camelCase")]
    FirstSeen { stage: ObjectKey, at: i64 },
    /// Start the stage's split again from its first slice, as the definitions' `splitResets`
    /// asks.
    #[serde(rename_all = "camelCase")]
    ResetSplit { stage: ObjectKey, to: u32 },
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LaunchAction {
    pub id: String,
    pub stage: ObjectKey,
    pub seq: u64,
    pub origin: Origin,
    pub test: bool,
    /// The dataset name given to the launch; the executor defines it as `input`.
    pub dataset: Option<String>,
    /// Catalog query of the input files.
    pub input: Option<String>,
    /// The input files when the split already knows them (snapshot splits).
    pub input_files: Vec<String>,
    /// What the executor records under `dataset` in the catalog.
    pub define: Define,
    pub cursor_after: Option<Cursor>,
    /// An approval stage records the submission as awaiting approval and runs nothing.
    pub approval: bool,
    pub recovery: Option<RecoveryRound>,
    /// Where its jobs run (its job type's batch system), so that they are observed there.
    pub batch_system: cascade_crd::BatchSystem,
    pub launch: Launch,
}

/// How a launch's dataset name gets its definition in the catalog.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Define {
    /// The name is the user's (the stage's dataset, a list item, `launch --dataset`) or there
    /// is no dataset: nothing is written, the user's definitions are never changed.
    #[default]
    Nothing,
    /// A name of Cascade's own (dependency, join, recovery datasets): defined as the input
    /// query, which may grow as POMS's dependency definitions do (reference §4.4).
    Query,
    /// A slice of a split: defined as a snapshot of exactly the files delivered, so it
    /// evaluates to the same files forever.
    Snapshot,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StageState {
    Waiting,
    Running,
    Completed,
    Exhausted,
    Failed,
    /// A question to the catalog got no answer: nothing is decided until it does.
    Degraded,
}

impl StageState {
    pub fn as_str(self) -> &'static str {
        match self {
            StageState::Waiting => "Waiting",
            StageState::Running => "Running",
            StageState::Completed => "Completed",
            StageState::Exhausted => "Exhausted",
            StageState::Failed => "Failed",
            StageState::Degraded => "Degraded",
        }
    }

    /// Completed or exhausted: dependents waiting for the stage as a whole may start.
    pub fn succeeded(self) -> bool {
        matches!(self, StageState::Completed | StageState::Exhausted)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StageStatus {
    pub stage: ObjectKey,
    pub campaign: ObjectKey,
    pub state: StageState,
    /// One sentence: why the stage is where it is.
    pub reason: String,
    /// Nothing is in flight, queued or still possible: the stage will not change by itself.
    pub settled: bool,
    /// Not settled, but waiting only on people or the clock (a pause, a schedule).
    pub blocked: bool,
    /// Located submission chains out of all chains, in percent.
    pub located_percent: f64,
    /// Located chains out of the chains expected in the end (0..=1).
    pub progress: f64,
    pub submissions: u32,
    pub chains_located: u32,
    pub chains_failed: u32,
    pub chains_in_flight: u32,
    pub jobs: JobCounts,
    pub launches: u32,
    pub queued: Vec<String>,
    pub next_fire: Option<i64>,
    /// How the observed state contradicts the definitions (an operator's pause).
    pub drift: Option<String>,
    /// The definitions pause the stage or its campaign.
    #[serde(default)]
    pub paused_by_definitions: bool,
    /// The split policy in normalised typed form (every parameter explicit).
    #[serde(default)]
    pub split: Option<SplitFields>,
    /// Where the split's cursor stands (`slice 3`, `run 5`, ...).
    #[serde(default)]
    pub split_position: Option<String>,
    /// The split of a stage that splits its own dataset has no further slice.
    #[serde(default)]
    pub exhausted: bool,
    /// Where the stage sits in its campaign's graph, for the pages that draw it.
    #[serde(default)]
    pub shape: StageShape,
}

/// A stage's edges and thresholds as the definitions declare them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StageShape {
    pub stage_type: String,
    pub depends_on: Vec<ShapeEdge>,
    /// Waits for all its upstream stages' outputs of one slice together.
    pub join: bool,
    pub completion: Option<cascade_crd::Completion>,
}

/// An edge from an upstream stage of the same campaign.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShapeEdge {
    /// The upstream stage's name.
    pub stage: String,
    pub file_pattern: String,
    pub trigger: cascade_crd::DependencyTrigger,
}

impl StageShape {
    pub fn of(stage: &Stage) -> StageShape {
        StageShape {
            stage_type: stage.stage_type.as_str().to_string(),
            depends_on: stage
                .depends_on
                .iter()
                .map(|e| ShapeEdge {
                    stage: e.upstream.name.to_string(),
                    file_pattern: e.file_pattern.to_string(),
                    trigger: e.trigger,
                })
                .collect(),
            join: stage.join,
            completion: Some(stage.completion.clone()),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CampaignProgress {
    pub campaign: ObjectKey,
    /// Mean progress of its stages (0..=1).
    pub progress: f64,
    pub stages: u32,
    pub stages_succeeded: u32,
    pub stages_failed: u32,
}

impl CampaignProgress {
    /// A campaign's progress from its stages', each weighted equally (a campaign without
    /// stages has nothing left to do).
    pub fn of(campaign: ObjectKey, stages: &[&StageStatus]) -> CampaignProgress {
        let n = stages.len() as u32;
        CampaignProgress {
            campaign,
            progress: if n == 0 {
                1.0
            } else {
                stages.iter().map(|s| s.progress).sum::<f64>() / f64::from(n)
            },
            stages: n,
            stages_succeeded: stages
                .iter()
                .filter(|s| s.settled && s.state.succeeded())
                .count() as u32,
            stages_failed: stages
                .iter()
                .filter(|s| s.state == StageState::Failed)
                .count() as u32,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub actions: Vec<Action>,
    pub stages: Vec<StageStatus>,
    pub campaigns: Vec<CampaignProgress>,
    /// The earliest time a schedule wants the planner to run again.
    pub wake_at: Option<i64>,
}

impl Plan {
    pub fn launches(&self) -> impl Iterator<Item = &LaunchAction> {
        self.actions.iter().filter_map(|a| match a {
            Action::Launch(l) => Some(l.as_ref()),
            _ => None,
        })
    }
}

/// A launch the planner wants, before gating and composition.
#[derive(Clone, Debug)]
struct Candidate {
    origin: Origin,
    test: bool,
    dataset: Option<String>,
    input: Option<String>,
    input_files: Vec<String>,
    define: Define,
    cursor_after: Option<Cursor>,
    overrides: Vec<Param>,
    parent: Option<String>,
    recovery: Option<RecoveryRound>,
    launcher: Option<String>,
}

impl Candidate {
    fn new(origin: Origin, test: bool) -> Self {
        Candidate {
            origin,
            test,
            dataset: None,
            input: None,
            input_files: Vec::new(),
            define: Define::Nothing,
            cursor_after: None,
            overrides: Vec::new(),
            parent: None,
            recovery: None,
            launcher: None,
        }
    }
}

/// Where a submission chain stands.
enum Chain {
    InFlight,
    Located,
    Failed,
    /// The chain needs this recovery round launched.
    Recover(Box<Candidate>),
}

/// What downstream stages need to know of a stage planned earlier.
struct Outcome<'a> {
    state: StageState,
    settled: bool,
    blocked: bool,
    located_percent: f64,
    chains_total: u32,
    /// The originals of the located chains (their members are found when needed: most
    /// stages' dependents never ask, and a million small lists would be kept meanwhile).
    located_chains: Vec<&'a Submission>,
    expected: f64,
}

/// The submission chains of a stage, tallied (reference §4.5, §5.2).
#[derive(Default)]
struct Chains<'s> {
    located: u32,
    failed: u32,
    in_flight: u32,
    /// The originals of the located chains.
    located_chains: Vec<&'s Submission>,
    /// Submissions of an approval stage waiting for a person.
    awaiting: Vec<String>,
    /// Failed chains nobody relaunched: (submission, dataset), for the way forward.
    failed_chains: Vec<(&'s str, Option<&'s str>)>,
    /// Where the chain of the stage's latest slice stands (or the relaunch that replaced it).
    last_slice: Option<&'static str>,
}

/// What the steps of planning one stage gather before its status is decided.
#[derive(Default)]
struct Work {
    candidates: Vec<Candidate>,
    /// Why the stage waits: on upstream stages, on its schedule.
    waiting: Vec<String>,
    /// More launches can still come without a person (an upstream stage still moving, a
    /// schedule).
    more_possible: bool,
    /// Waiting on an upstream stage that can still move by itself (not only on a paused or
    /// scheduled one).
    waiting_on_live: bool,
    /// Operator requests that were not launched, said whatever the stage's state.
    request_notes: Vec<String>,
    next_fire: Option<i64>,
    /// The stage's own split has no further slice.
    exhausted: bool,
}

/// The candidates after gating: launched, queued behind a pause, or left out.
#[derive(Default)]
struct Gate {
    paused_by: Option<String>,
    inactive: bool,
    /// How the observed state contradicts the definitions (an operator's pause).
    drift: Option<String>,
    queued: Vec<String>,
    launches: u32,
    compose_error: Option<String>,
    /// Launches left out because their input has no files, said in the reason.
    empty_inputs: Vec<String>,
    paused_by_definitions: bool,
    /// The definitions asked for a split reset that this plan makes: nothing is launched
    /// from the old cursor.
    reset_pending: bool,
}

pub fn plan(input: &PlanInput) -> Plan {
    Planner::new(input).run()
}

struct Planner<'a> {
    input: &'a PlanInput<'a>,
    stages: Map<&'a ObjectKey, &'a Stage>,
    /// The patterns dependents ask of each stage (its outputs are made from them when one of
    /// its submissions is checked: most stages of a large set have none open, and a first
    /// reconcile none at all), indexed when first asked for.
    wanted: OnceCell<Map<&'a ObjectKey, Vec<&'a str>>>,
    /// Each stage's software version, expanded when first asked for (the index of them too:
    /// a first reconcile asks for the versions of its launching stages only).
    versions: OnceCell<Map<&'a ObjectKey, OnceCell<String>>>,
    /// The origins each stage has launched, indexed when a stage is first asked about (most
    /// stages of a large set never are).
    origins: RefCell<Map<&'a ObjectKey, Set<&'a Origin>>>,
    /// The statuses this plan's transitions changed (the rest are as observed).
    status: Map<&'a str, Status>,
    by_stage: Map<&'a ObjectKey, Vec<&'a Submission>>,
    /// Submissions by id, indexed when first asked for (only recoveries ask).
    by_id: OnceCell<Map<&'a str, &'a Submission>>,
    rounds: Map<&'a str, Vec<&'a RecoveryRound>>,
    outcomes: Map<&'a ObjectKey, Outcome<'a>>,
    facts: RefCell<Map<ObjectKey, Rc<Vec<FileFact>>>>,
    /// The first catalog question of each stage that got no answer.
    degraded: RefCell<Map<ObjectKey, String>>,
    /// Stages degraded only because their batch system cannot be observed: they wait for it
    /// to answer again, which needs nobody.
    batch_unobserved: Set<ObjectKey>,
    catalog_failed: RefCell<Set<ObjectKey>>,
    actions: Vec<Action>,
    wake_at: Option<i64>,
}

impl<'a> Planner<'a> {
    fn new(input: &'a PlanInput<'a>) -> Self {
        let observed = input.observed;
        let mut by_stage: Map<&ObjectKey, Vec<&Submission>> = Map::default();
        for s in &observed.submissions {
            by_stage.entry(&s.stage).or_default().push(s);
        }
        for subs in by_stage.values_mut() {
            subs.sort_by_key(|s| s.seq);
        }
        let mut rounds: Map<&str, Vec<&RecoveryRound>> = Map::default();
        for r in &observed.recoveries {
            rounds.entry(r.original.as_str()).or_default().push(r);
        }
        for rs in rounds.values_mut() {
            rs.sort_by_key(|r| r.round);
        }
        Planner {
            input,
            stages: input.graph.stages.iter().map(|s| (&s.key, s)).collect(),
            wanted: OnceCell::new(),
            versions: OnceCell::new(),
            origins: RefCell::default(),
            status: Map::default(),
            by_stage,
            by_id: OnceCell::new(),
            rounds,
            outcomes: Map::default(),
            facts: RefCell::default(),
            degraded: RefCell::default(),
            batch_unobserved: Set::default(),
            catalog_failed: RefCell::default(),
            actions: Vec::new(),
            wake_at: None,
        }
    }

    fn run(mut self) -> Plan {
        let graph = self.input.graph;
        self.transitions();
        let stages: Vec<StageStatus> = graph.stages.iter().map(|s| self.stage(s)).collect();
        let campaigns = campaign_progress(graph, &stages);
        Plan {
            actions: self.actions,
            stages,
            campaigns,
            wake_at: self.wake_at,
        }
    }

    /// Phase 1: every submission's new status, so that this same plan can act on it.
    fn transitions(&mut self) {
        let mut outputs: Map<&ObjectKey, submission::Outputs> = Map::default();
        for sub in &self.input.observed.submissions {
            if sub.status.is_final() {
                continue;
            }
            let Some(stage) = self.stages.get(&*sub.stage).copied() else {
                continue;
            };
            let system = self.input.graph.job_type_of(stage).batch_system;
            if let Some(e) = self.input.observed.batch_errors.get(system.as_str()) {
                self.batch_unobserved.insert(stage.key.clone());
                self.degraded.borrow_mut().entry(stage.key.clone()).or_insert(format!(
                    "the {} batch system cannot be observed, so job counts are as last seen and nothing is decided from them: {e}",
                    system.as_str()
                ));
                continue;
            }
            let outputs = outputs.entry(&stage.key).or_insert_with(|| {
                let wanted = self
                    .wanted
                    .get_or_init(|| submission::wanted_patterns(self.input.graph))
                    .get(&stage.key);
                submission::outputs(self.input.graph, stage, wanted, self.version(&stage.key))
            });
            let mut current = sub.clone();
            // A submission may move twice in one plan (Running -> Completed -> Located).
            loop {
                let next = submission::next_status(
                    stage,
                    outputs,
                    &current,
                    self.input.catalog,
                    self.input.now,
                    self.input.launch_timeout,
                );
                let (to, reason) = match next {
                    Ok(Some(next)) => next,
                    Ok(None) => break,
                    Err(e) => {
                        self.degrade(&stage.key, catalog_unanswered(&e));
                        break;
                    }
                };
                self.actions.push(Action::SetStatus {
                    submission: sub.id.to_string(),
                    from: current.status,
                    to,
                    reason,
                });
                current.status = to;
                if to.is_final() {
                    break;
                }
            }
            if current.status == Status::New && sub.launched && sub.jobs.total == 0 {
                self.wake(sub.created + self.input.launch_timeout);
            }
            if current.status != sub.status {
                self.status.insert(sub.id.as_str(), current.status);
            }
        }
    }

    /// A stage's software version with its campaign's keywords expanded.
    fn version(&self, stage: &ObjectKey) -> &str {
        let versions = self.versions.get_or_init(|| {
            let stages = &self.input.graph.stages;
            stages.iter().map(|s| (&s.key, OnceCell::new())).collect()
        });
        versions[stage].get_or_init(|| stage_version(self.input.graph, self.stages[stage]))
    }

    /// Counts a query's files for `stage`; `None` (and the stage `Degraded`) when the catalog
    /// cannot answer.
    fn count(&self, stage: &ObjectKey, query: &str) -> Option<u64> {
        match self.input.catalog.count(query) {
            Ok(n) => Some(n),
            Err(e) => {
                self.degrade(stage, catalog_unanswered(&e));
                None
            }
        }
    }

    /// Records that the catalog gave the stage no answer: it is `Degraded` (the first reason
    /// found stays) and needs a person.
    fn degrade(&self, stage: &ObjectKey, error: String) {
        self.catalog_failed.borrow_mut().insert(stage.clone());
        self.degraded
            .borrow_mut()
            .entry(stage.clone())
            .or_insert(error);
    }

    fn wake(&mut self, at: i64) {
        self.wake_at = Some(self.wake_at.map_or(at, |w| w.min(at)));
    }

    /// Launches that ended without any job seen yet, said in the stage's reason.
    fn jobless_launches(&self, subs: &[&Submission]) -> Option<String> {
        let waiting: Vec<String> = subs
            .iter()
            .filter(|s| s.launched && s.jobs.total == 0 && self.status_of_sub(s) == Status::New)
            .map(|s| {
                format!(
                    "{} (LaunchFailed at {} unless a job appears)",
                    s.id,
                    super::format_time(s.created + self.input.launch_timeout)
                )
            })
            .collect();
        (!waiting.is_empty())
            .then(|| format!("launch ended but no job seen yet: {}", waiting.join(", ")))
    }

    /// A submission's status after this plan's transitions.
    fn status_of_sub(&self, s: &Submission) -> Status {
        if self.status.is_empty() {
            return s.status;
        }
        self.status.get(s.id.as_str()).copied().unwrap_or(s.status)
    }

    fn by_id(&self) -> &Map<&'a str, &'a Submission> {
        self.by_id.get_or_init(|| {
            let submissions = &self.input.observed.submissions;
            submissions.iter().map(|s| (s.id.as_str(), s)).collect()
        })
    }

    fn status_of(&self, id: &str) -> Status {
        match self.status.get(id) {
            Some(changed) => *changed,
            None => self.by_id().get(id).map_or(Status::New, |s| s.status),
        }
    }

    fn subs(&self, stage: &ObjectKey) -> &[&'a Submission] {
        self.by_stage.get(stage).map_or(&[], Vec::as_slice)
    }

    fn has_origin(&self, stage: &ObjectKey, origin: &Origin) -> bool {
        let Some((key, subs)) = self.by_stage.get_key_value(stage) else {
            return false;
        };
        self.origins
            .borrow_mut()
            .entry(*key)
            .or_insert_with(|| subs.iter().map(|s| &s.origin).collect())
            .contains(origin)
    }

    /// The chain of an original submission: the original and its recovery submissions.
    fn members(&self, original: &'a Submission) -> Vec<&'a str> {
        let mut ids = vec![original.id.as_str()];
        if let Some(rounds) = self.rounds.get(original.id.as_str()) {
            ids.extend(rounds.iter().filter_map(|r| r.submission.as_deref()));
        }
        ids
    }

    /// Plans one stage, in named steps: where its submission chains stand, what operators
    /// asked for, what its origins (its split or schedule, a join, its upstream stages) want
    /// launched, what the gates let through, and the status that follows.
    fn stage(&mut self, stage: &'a Stage) -> StageStatus {
        let subs: Vec<&'a Submission> = self.subs(&stage.key).to_vec();
        let mut work = Work::default();
        let chains = self.tally_chains(stage, &subs, &mut work);
        let mut cursors = [self.cursor(stage, false), self.cursor(stage, true)];
        self.operator_requests(stage, &mut cursors, &mut work);
        if stage.upstream_edges().next().is_none() {
            self.own_launches(stage, &subs, &chains, &cursors[0], &mut work);
        } else if stage.join {
            self.join_launch(stage, &mut work);
        } else {
            self.dependent_launches(stage, &mut work);
            self.next_own_slice(stage, &subs, &chains, &cursors[0], &mut work);
        }
        let candidates = std::mem::take(&mut work.candidates);
        let gate = self.gate(stage, &subs, candidates);
        self.conclude(stage, &subs, chains, work, gate)
    }
}

/// What an operator can do about failed submissions: relaunch the slice, or recover the
/// files it did not process. Either takes the failed submission's place.
fn way_forward(stage: &ObjectKey, failed: &[(&str, Option<&str>)]) -> String {
    let Some((sub, dataset)) = failed.first() else {
        return String::new();
    };
    let relaunch = match dataset {
        Some(d) => format!("`cascade launch {} --dataset {d} --why ...`", stage.name),
        None => format!("`cascade launch {} --why ...`", stage.name),
    };
    let more = if failed.len() > 1 {
        format!(
            " (and likewise for the {} other failed submissions)",
            failed.len() - 1
        )
    } else {
        String::new()
    };
    format!(
        "to go on, relaunch {sub}'s slice with {relaunch} or recover the files it did not process with `cascade recover {sub} --type consumed_status --why ...`{more}"
    )
}

fn outcome_words(o: &Outcome) -> String {
    if o.settled && o.state.succeeded() {
        "complete".into()
    } else if o.chains_total == 0 {
        "not started".into()
    } else {
        format!("at {:.0}%", o.located_percent)
    }
}

/// The latest fire time in `(after, now]`, if any, and the first one after `now`.
pub fn schedule_fires(expr: &str, after: i64, now: i64) -> (Option<i64>, Option<i64>) {
    use chrono::{DateTime, Utc};
    let Ok(cron) = expr.parse::<croner::Cron>() else {
        return (None, None);
    };
    let at = |t: i64| DateTime::<Utc>::from_timestamp(t, 0);
    let due = at(now)
        .and_then(|n| cron.find_previous_occurrence(&n, true).ok())
        .map(|t| t.timestamp())
        .filter(|t| *t > after);
    let upcoming = at(now)
        .and_then(|n| cron.find_next_occurrence(&n, false).ok())
        .map(|t| t.timestamp());
    (due, upcoming)
}

fn campaign_progress(graph: &DesiredGraph, stages: &[StageStatus]) -> Vec<CampaignProgress> {
    let mut by_campaign: BTreeMap<&ObjectKey, Vec<&StageStatus>> = BTreeMap::new();
    for (stage, status) in graph.stages.iter().zip(stages) {
        by_campaign.entry(&stage.campaign).or_default().push(status);
    }
    graph
        .campaigns
        .keys()
        .map(|key| {
            let list = by_campaign.get(key).map_or(&[][..], Vec::as_slice);
            CampaignProgress::of(key.clone(), list)
        })
        .collect()
}

/// A stage's reason when the catalog gave no answer.
pub(super) fn catalog_unanswered(error: &str) -> String {
    format!("the catalog could not answer, so nothing is decided until it does: {error}")
}
