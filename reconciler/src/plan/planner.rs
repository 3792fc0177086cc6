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

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;

use serde::{Deserialize, Serialize};

use cascade_crd::{
    CampaignState, DependencyTrigger, Param, RecoveryType, SplitFields, SplitPolicy, StageType,
};

use super::observed::{
    CatalogView, JobCounts, Observed, Origin, RecoveryRound, Status, Submission,
};
use super::{queries, submission};
use crate::launch::compose::{Launch, LaunchRequest, compose};
use crate::model::{DesiredGraph, ObjectKey, Stage};
use crate::split::{Cursor, FileFact, Next, SplitContext, next};

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
    /// The split policy in normalised typed form (every parameter explicit).
    #[serde(default)]
    pub split: Option<SplitFields>,
    /// Where the split's cursor stands (`slice 3`, `run 5`, ...).
    #[serde(default)]
    pub split_position: Option<String>,
    /// The split of a stage that splits its own dataset has no further slice.
    #[serde(default)]
    pub exhausted: bool,
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
struct Outcome {
    state: StageState,
    settled: bool,
    blocked: bool,
    located_percent: f64,
    chains_total: u32,
    /// Located chains: (original, members).
    located_chains: Vec<(String, Vec<String>, bool)>,
    expected: f64,
}

pub fn plan(input: &PlanInput) -> Plan {
    Planner::new(input).run()
}

struct Planner<'a> {
    input: &'a PlanInput<'a>,
    stages: HashMap<&'a ObjectKey, &'a Stage>,
    outputs: HashMap<ObjectKey, submission::Outputs>,
    origins: HashMap<&'a ObjectKey, HashSet<&'a Origin>>,
    /// Effective status of each submission after this plan's transitions.
    status: HashMap<&'a str, Status>,
    by_stage: HashMap<&'a ObjectKey, Vec<&'a Submission>>,
    by_id: HashMap<&'a str, &'a Submission>,
    rounds: HashMap<&'a str, Vec<&'a RecoveryRound>>,
    outcomes: HashMap<ObjectKey, Outcome>,
    facts: RefCell<HashMap<ObjectKey, Rc<Vec<FileFact>>>>,
    /// The first catalog question of each stage that got no answer.
    degraded: RefCell<HashMap<ObjectKey, String>>,
    actions: Vec<Action>,
    wake_at: Option<i64>,
}

impl<'a> Planner<'a> {
    fn new(input: &'a PlanInput<'a>) -> Self {
        let observed = input.observed;
        let mut by_stage: HashMap<&ObjectKey, Vec<&Submission>> = HashMap::new();
        let mut by_id = HashMap::new();
        let mut origins: HashMap<&ObjectKey, HashSet<&Origin>> = HashMap::new();
        for s in &observed.submissions {
            by_stage.entry(&s.stage).or_default().push(s);
            by_id.insert(s.id.as_str(), s);
            origins.entry(&s.stage).or_default().insert(&s.origin);
        }
        for subs in by_stage.values_mut() {
            subs.sort_by_key(|s| s.seq);
        }
        let mut rounds: HashMap<&str, Vec<&RecoveryRound>> = HashMap::new();
        for r in &observed.recoveries {
            rounds.entry(r.original.as_str()).or_default().push(r);
        }
        for rs in rounds.values_mut() {
            rs.sort_by_key(|r| r.round);
        }
        Planner {
            input,
            stages: input.graph.stages.iter().map(|s| (&s.key, s)).collect(),
            outputs: submission::outputs(input.graph),
            origins,
            status: observed
                .submissions
                .iter()
                .map(|s| (s.id.as_str(), s.status))
                .collect(),
            by_stage,
            by_id,
            rounds,
            outcomes: HashMap::new(),
            facts: RefCell::default(),
            degraded: RefCell::default(),
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
        for sub in &self.input.observed.submissions {
            if sub.status.is_final() {
                continue;
            }
            let Some(stage) = self.stages.get(&sub.stage).copied() else {
                continue;
            };
            let outputs = &self.outputs[&stage.key];
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
                        self.degrade(&stage.key, e);
                        break;
                    }
                };
                self.actions.push(Action::SetStatus {
                    submission: sub.id.clone(),
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
            self.status.insert(sub.id.as_str(), current.status);
        }
    }

    /// Counts a query's files for `stage`; `None` (and the stage `Degraded`) when the catalog
    /// cannot answer.
    fn count(&self, stage: &ObjectKey, query: &str) -> Option<u64> {
        match self.input.catalog.count(query) {
            Ok(n) => Some(n),
            Err(e) => {
                self.degrade(stage, e);
                None
            }
        }
    }

    fn degrade(&self, stage: &ObjectKey, error: String) {
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
            .filter(|s| s.launched && s.jobs.total == 0 && self.status_of(&s.id) == Status::New)
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

    fn status_of(&self, id: &str) -> Status {
        self.status.get(id).copied().unwrap_or(Status::New)
    }

    fn subs(&self, stage: &ObjectKey) -> &[&'a Submission] {
        self.by_stage.get(stage).map_or(&[], Vec::as_slice)
    }

    fn has_origin(&self, stage: &ObjectKey, origin: &Origin) -> bool {
        self.origins.get(stage).is_some_and(|o| o.contains(origin))
    }

    /// The chain of an original submission: the original and its recovery submissions.
    fn members(&self, original: &Submission) -> Vec<String> {
        let mut ids = vec![original.id.clone()];
        if let Some(rounds) = self.rounds.get(original.id.as_str()) {
            ids.extend(rounds.iter().filter_map(|r| r.submission.clone()));
        }
        ids
    }

    fn chain(&mut self, stage: &Stage, original: &'a Submission) -> Chain {
        if self.status_of(&original.id).is_unsuccessful_end() {
            return Chain::Failed;
        }
        let decided: Vec<&RecoveryRound> = self
            .rounds
            .get(original.id.as_str())
            .cloned()
            .unwrap_or_default();
        let head = decided
            .iter()
            .rev()
            .find_map(|r| r.submission.as_deref())
            .unwrap_or(original.id.as_str());
        let head_status = self.status_of(head);
        let head_settled = if head == original.id {
            head_status == Status::Located
        } else {
            head_status.is_final()
        };
        if !head_settled {
            return Chain::InFlight;
        }
        let recipe = &self.input.graph.job_type_of(stage).recoveries;
        let basis = self.recovery_basis(stage, original, head);
        for (round, step) in recipe.iter().enumerate().skip(decided.len()) {
            let query = queries::recovery(step.kind, &basis);
            let round = round as u32;
            // A round is skipped only when the catalog says it has nothing: a question without
            // an answer decides nothing and is asked again.
            let Some(files) = self.count(&stage.key, &query) else {
                return Chain::InFlight;
            };
            if files == 0 {
                self.actions.push(Action::SkipRecovery {
                    original: original.id.clone(),
                    round,
                    kind: step.kind,
                    reference: head.to_string(),
                });
                continue;
            }
            let mut c = Candidate::new(
                Origin::Recovery {
                    original: original.id.clone(),
                    round,
                },
                original.test,
            );
            c.dataset = Some(format!("cascade_recover_{}_{}", original.id, round + 1));
            c.input = Some(query);
            c.define = Define::Query;
            c.overrides = step.parameter_overrides.clone();
            c.parent = Some(original.id.clone());
            c.recovery = Some(RecoveryRound {
                original: original.id.clone(),
                round,
                kind: step.kind,
                reference: head.to_string(),
                submission: None,
            });
            return Chain::Recover(Box::new(c));
        }
        Chain::Located
    }

    /// An operator's recovery of `original` with `kind`, at its chain's current position, or
    /// `None` when it has nothing to recover.
    fn manual_recovery(
        &self,
        stage: &Stage,
        origin: Origin,
        test: bool,
        original: &str,
        kind: RecoveryType,
    ) -> Option<Candidate> {
        let sub = self.by_id.get(original)?;
        let head = self
            .rounds
            .get(original)
            .and_then(|rs| rs.iter().rev().find_map(|r| r.submission.as_deref()))
            .unwrap_or(original);
        let query = queries::recovery(kind, &self.recovery_basis(stage, sub, head));
        if self.count(&stage.key, &query)? == 0 {
            return None;
        }
        let Origin::Request { id } = origin else {
            return None;
        };
        let mut c = Candidate::new(origin, test || sub.test);
        c.dataset = Some(format!("cascade_recover_{original}_request{id}"));
        c.input = Some(query);
        c.define = Define::Query;
        c.parent = Some(original.to_string());
        c.overrides = self
            .input
            .graph
            .job_type_of(stage)
            .recoveries
            .iter()
            .find(|step| step.kind == kind)
            .map(|step| step.parameter_overrides.clone())
            .unwrap_or_default();
        Some(c)
    }

    /// Unsuccessful chains of the stage that a later operator launch took the place of: a
    /// launch over the same dataset, or a manual recovery of that submission. Maps the
    /// original to the submission that replaced it.
    fn superseded(&self, stage: &Stage, subs: &[&'a Submission]) -> HashMap<&'a str, &'a str> {
        let requests: HashMap<u64, &crate::plan::Request> = self
            .input
            .observed
            .requests
            .iter()
            .filter(|r| r.stage == stage.key)
            .map(|r| (r.id, r))
            .collect();
        let mut out = HashMap::new();
        for relaunch in subs {
            let Origin::Request { id } = relaunch.origin else {
                continue;
            };
            let recovered = requests
                .get(&id)
                .and_then(|r| r.recovery.as_ref())
                .map(|(original, _)| original.as_str());
            let replaced = subs.iter().find(|old| {
                old.seq < relaunch.seq
                    && !old.origin.is_recovery()
                    && !out.contains_key(old.id.as_str())
                    && self.status_of(&old.id).is_unsuccessful_end()
                    && match recovered {
                        Some(original) => old.id == original,
                        None => old.dataset == relaunch.dataset,
                    }
            });
            if let Some(old) = replaced {
                out.insert(old.id.as_str(), relaunch.id.as_str());
            }
        }
        out
    }

    /// What a recovery round of `original` is computed from, with `head` the submission of the
    /// chain that got located last.
    fn recovery_basis(
        &self,
        stage: &Stage,
        original: &Submission,
        head: &str,
    ) -> queries::RecoveryBasis {
        queries::RecoveryBasis {
            reference: head.to_string(),
            reference_created: self.by_id.get(head).map_or(original.created, |s| s.created),
            input: original.input.clone(),
            output_patterns: self
                .input
                .graph
                .job_type_of(stage)
                .output_file_patterns
                .clone(),
            version: self.outputs[&stage.key].version.clone(),
            depth: stage.output_ancestor_depth,
        }
    }

    /// The current cursor of the stage's real or test split: the one after its latest slice.
    fn cursor(&self, stage: &Stage, test: bool) -> Cursor {
        // An operator's reset starts the split again after the submissions made so far.
        let reset = self
            .input
            .observed
            .split_resets
            .get(&stage.key)
            .copied()
            .unwrap_or(0);
        self.subs(&stage.key)
            .iter()
            .rev()
            .filter(|s| s.seq > reset && s.test == test && !s.origin.is_recovery())
            .find_map(|s| s.cursor_after.clone())
            .unwrap_or_default()
    }

    /// What the split needs besides the cursor: the clock, the snapshot the ledger recorded
    /// for a cursor of delivered files, the time zone.
    fn split_context(&self, stage: &Stage, cursor: &Cursor) -> SplitContext {
        let delivered_snapshot = match cursor {
            Cursor::Delivered(_) => self
                .subs(&stage.key)
                .iter()
                .rev()
                .find(|s| s.cursor_after.as_ref() == Some(cursor))
                .and_then(|s| s.cursor_snapshot),
            _ => None,
        };
        SplitContext {
            now: self.input.now,
            delivered_snapshot,
            local_offset: self.input.local_offset,
        }
    }

    /// The catalog's facts about the files a stage splits, asked once per plan (the catalog
    /// view is one snapshot; the split is walked several times: next slice, exhaustion,
    /// progress). `None` when the catalog cannot answer (the stage is then `Degraded`).
    fn facts(&self, stage: &Stage, policy: &SplitPolicy) -> Option<Rc<Vec<FileFact>>> {
        if let Some(f) = self.facts.borrow().get(&stage.key) {
            return Some(Rc::clone(f));
        }
        let dataset = stage.dataset_text()?;
        // `stagedfiles` names a project: its slices are the files that project consumed.
        let query = match policy {
            SplitPolicy::Stagedfiles { .. } => format!(
                "project_name {} and consumed_status 'consumed'",
                queries::lit(dataset)
            ),
            _ => dataset.to_string(),
        };
        let facts = match self.input.catalog.files(&query) {
            Ok(f) => Rc::new(f),
            Err(e) => {
                self.degrade(&stage.key, e);
                return None;
            }
        };
        self.facts
            .borrow_mut()
            .insert(stage.key.clone(), Rc::clone(&facts));
        Some(facts)
    }

    /// The launch of the next slice from `cursor` that has files, or `None` when the split is
    /// exhausted (or the catalog cannot say). Slices known to be empty are passed over: a
    /// launch over no files would run jobs that process nothing.
    fn slice(
        &self,
        stage: &Stage,
        origin: Origin,
        test: bool,
        cursor: &Cursor,
    ) -> Option<Candidate> {
        /// Empty slices passed over in one plan before giving up until the next.
        const MAX_EMPTY_SLICES: usize = 10_000;
        let mut c = Candidate::new(origin, test);
        let policy = if test {
            stage.test_split.as_ref().or(stage.split.as_ref())
        } else {
            stage.split.as_ref()
        };
        let generator = stage.stage_type == StageType::Generator;
        match (policy, &stage.dataset) {
            (Some(policy), Some(data)) => {
                // Policies that slice the catalog's files know each slice's files.
                let from_facts = !matches!(
                    policy,
                    SplitPolicy::Draining | SplitPolicy::List | SplitPolicy::Multiparam
                );
                let facts = if from_facts {
                    self.facts(stage, policy)?
                } else {
                    Rc::default()
                };
                let mut cursor = cursor.clone();
                let mut empty = 0;
                let (slice, after) = loop {
                    let Next::Slice {
                        slice,
                        cursor: after,
                    } = next(
                        policy,
                        data,
                        &cursor,
                        &facts,
                        &self.split_context(stage, &cursor),
                    )
                    else {
                        return None;
                    };
                    if !(from_facts && !generator && slice.files.is_empty()) {
                        break (slice, after);
                    }
                    empty += 1;
                    if empty >= MAX_EMPTY_SLICES || after == cursor {
                        return None;
                    }
                    cursor = after;
                };
                c.input = match policy {
                    _ if generator => None,
                    SplitPolicy::Multiparam => None,
                    SplitPolicy::List => Some(format!("defname: {}", slice.name)),
                    _ => Some(slice.query),
                };
                if from_facts && !generator {
                    c.define = Define::Snapshot;
                }
                c.dataset = Some(slice.name);
                c.input_files = slice.files;
                c.cursor_after = Some(after);
            }
            (None, data) => {
                // Without a split there is one slice, the dataset; an operator may launch it
                // again.
                if cursor != &Cursor::Start && !matches!(c.origin, Origin::Request { .. }) {
                    return None;
                }
                c.dataset = data.as_ref().and_then(|d| d.as_text()).map(String::from);
                c.input = c
                    .dataset
                    .as_ref()
                    .filter(|_| !generator)
                    .map(|d| format!("defname: {d}"));
                c.cursor_after = Some(Cursor::Index(1));
            }
            (Some(_), None) => return None,
        }
        Some(c)
    }

    fn stage(&mut self, stage: &'a Stage) -> StageStatus {
        let graph = self.input.graph;
        let subs: Vec<&'a Submission> = self.subs(&stage.key).to_vec();
        let mut candidates: Vec<Candidate> = Vec::new();
        let (mut located, mut failed, mut in_flight) = (0u32, 0u32, 0u32);
        let mut located_chains = Vec::new();
        // Submissions of an approval stage waiting for a person.
        let mut awaiting: Vec<String> = Vec::new();
        // Chains that ended without success and that an operator relaunched: the relaunch
        // takes their place (a failed slice relaunched can still complete the stage).
        let superseded = self.superseded(stage, &subs);
        let mut chain_states: HashMap<&str, &'static str> = HashMap::new();
        let mut last_split: Option<&str> = None;
        // Failed chains nobody relaunched: (submission, dataset), for the way forward.
        let mut failed_chains: Vec<(&str, Option<&str>)> = Vec::new();
        for original in subs.iter().filter(|s| !s.origin.is_recovery()) {
            let chain = self.chain(stage, original);
            let is_split = matches!(
                original.origin,
                Origin::Split { test: false, .. } | Origin::Schedule { .. }
            );
            if is_split {
                last_split = Some(original.id.as_str());
            }
            if matches!(chain, Chain::Failed) && superseded.contains_key(original.id.as_str()) {
                continue;
            }
            let state = match chain {
                Chain::Recover(c) => {
                    candidates.push(*c);
                    in_flight += 1;
                    "in flight"
                }
                Chain::InFlight => {
                    in_flight += 1;
                    if self.status_of(&original.id) == Status::AwaitingApproval {
                        awaiting.push(original.id.clone());
                    }
                    "in flight"
                }
                Chain::Located => {
                    located += 1;
                    located_chains.push((
                        original.id.clone(),
                        self.members(original),
                        original.test,
                    ));
                    "located"
                }
                Chain::Failed => {
                    failed += 1;
                    failed_chains.push((original.id.as_str(), original.dataset.as_deref()));
                    "failed"
                }
            };
            chain_states.insert(original.id.as_str(), state);
        }
        // The last slice's chain, or the relaunch that took its place.
        let last_split_chain = last_split.map(|mut id| {
            while let Some(next) = superseded.get(id) {
                id = next;
            }
            chain_states.get(id).copied().unwrap_or("in flight")
        });

        let mut waiting: Vec<String> = Vec::new();
        let mut more_possible = false;
        // Waiting on an upstream stage that can still move by itself (not only on a paused
        // or scheduled one).
        let mut waiting_on_live = false;
        // Operator requests that were not launched, said whatever the stage's state.
        let mut request_notes: Vec<String> = Vec::new();
        let mut next_fire = None;
        let mut exhausted = false;

        // Operator requests, oldest first.
        let mut requests: Vec<_> = self
            .input
            .observed
            .requests
            .iter()
            .filter(|r| r.stage == stage.key)
            .collect();
        requests.sort_by_key(|r| r.id);
        let mut cursors = [self.cursor(stage, false), self.cursor(stage, true)];
        for r in requests {
            let origin = Origin::Request { id: r.id };
            if self.has_origin(&stage.key, &origin) {
                continue;
            }
            if let Some((original, kind)) = &r.recovery {
                match self.manual_recovery(stage, origin, r.test, original, *kind) {
                    Some(mut c) => {
                        c.launcher = Some(r.who.clone());
                        candidates.push(c);
                    }
                    None => request_notes.push(format!(
                        "request {} by {}: no recovery needed for {original} ({}), launch skipped",
                        r.id,
                        r.who,
                        kind.as_str()
                    )),
                }
                continue;
            }
            let candidate = match &r.dataset {
                Some(d) => {
                    let mut c = Candidate::new(origin, r.test);
                    c.dataset = Some(d.clone());
                    // A generator's dataset is a parameter, not files.
                    c.input =
                        (stage.stage_type != StageType::Generator).then(|| format!("defname: {d}"));
                    Some(c)
                }
                None => {
                    let cursor = &cursors[usize::from(r.test)];
                    self.slice(stage, origin, r.test, cursor)
                }
            };
            match candidate {
                Some(mut c) => {
                    if let Some(cur) = &c.cursor_after {
                        cursors[usize::from(r.test)] = cur.clone();
                    }
                    c.launcher = Some(r.who.clone());
                    candidates.push(c);
                }
                None => request_notes.push(format!(
                    "request {} by {} has nothing to launch: the split is exhausted",
                    r.id, r.who
                )),
            }
        }

        let upstream: Vec<_> = stage.upstream_edges().collect();
        if upstream.is_empty() {
            let cursor = cursors[0].clone();
            if let Some(expr) = &stage.schedule {
                let anchor = match self.input.observed.first_seen.get(&stage.key) {
                    Some(t) => *t,
                    None => {
                        self.actions.push(Action::FirstSeen {
                            stage: stage.key.clone(),
                            at: self.input.now,
                        });
                        self.input.now
                    }
                };
                let last = subs
                    .iter()
                    .filter_map(|s| match s.origin {
                        Origin::Schedule { fire } => Some(fire),
                        _ => None,
                    })
                    .max()
                    .unwrap_or(anchor)
                    .max(anchor);
                let (due, upcoming) = schedule_fires(expr, last, self.input.now);
                let exhausted_now = self
                    .slice(stage, Origin::Schedule { fire: 0 }, false, &cursor)
                    .is_none();
                if exhausted_now && stage.clear_schedule_on_exhaustion {
                    exhausted = true;
                } else {
                    if let Some(fire) = due
                        && let Some(c) =
                            self.slice(stage, Origin::Schedule { fire }, false, &cursor)
                    {
                        candidates.push(c);
                    }
                    next_fire = upcoming;
                    if let Some(t) = upcoming {
                        self.wake(t);
                    }
                    more_possible = true;
                    waiting.push(match upcoming {
                        Some(t) => format!(
                            "next launch on its schedule `{expr}` at {}",
                            super::format_time(t)
                        ),
                        None => format!("its schedule `{expr}` has no future fire time"),
                    });
                }
            } else {
                let index = subs
                    .iter()
                    .filter_map(|s| match s.origin {
                        Origin::Split { test: false, index } => Some(index + 1),
                        _ => None,
                    })
                    .max()
                    .unwrap_or(0);
                let wanted =
                    index == 0 || (stage.self_dependent() && last_split_chain == Some("located"));
                if wanted {
                    match self.slice(stage, Origin::Split { test: false, index }, false, &cursor) {
                        Some(c) => candidates.push(c),
                        None => exhausted = true,
                    }
                }
                if stage.self_dependent()
                    && index > 0
                    && self
                        .slice(stage, Origin::Split { test: false, index }, false, &cursor)
                        .is_none()
                {
                    exhausted = true;
                }
            }
        } else if stage.join {
            let mut parts = Vec::new();
            let mut all = true;
            let mut queries_by_edge = Vec::new();
            for e in &upstream {
                let o = &self.outcomes[&e.upstream];
                if !(o.settled && o.state.succeeded()) {
                    all = false;
                    if !o.settled {
                        more_possible = true;
                        waiting_on_live |= !o.blocked;
                    }
                }
                parts.push(format!("`{}` {}", e.upstream.name, outcome_words(o)));
                queries_by_edge.push(queries::stage_outputs(
                    &e.upstream.to_string(),
                    &e.file_pattern,
                    &self.outputs[&e.upstream].version,
                ));
            }
            if all && !self.has_origin(&stage.key, &Origin::Join) {
                let mut c = Candidate::new(Origin::Join, false);
                c.dataset = Some(format!("{}_join", stage.key.name));
                c.define = Define::Query;
                c.input = Some(
                    queries_by_edge
                        .iter()
                        .map(|q| format!("({q})"))
                        .collect::<Vec<_>>()
                        .join(" or "),
                );
                candidates.push(c);
            } else if !all {
                waiting.push(format!(
                    "waiting for all of stages {} to complete",
                    parts.join(", ")
                ));
            }
        } else {
            for e in &upstream {
                let up = self.stages[&e.upstream];
                let version = self.outputs[&e.upstream].version.clone();
                let o = &self.outcomes[&e.upstream];
                match e.trigger {
                    DependencyTrigger::Submission => {
                        for (original, members, test) in &o.located_chains {
                            let origin = Origin::Upstream {
                                submission: original.clone(),
                            };
                            if self.has_origin(&stage.key, &origin) {
                                continue;
                            }
                            let upstream_sub = self.by_id[original.as_str()];
                            let mut c = Candidate::new(origin, *test);
                            c.dataset = Some(format!("{}_from_{original}", stage.key.name));
                            c.define = Define::Query;
                            let upstream_input =
                                upstream_sub.input.as_deref().unwrap_or("defname: none");
                            c.input = Some(match up.stage_type {
                                // An approval has no project of its own: its dependents run
                                // over its dataset as it is, without a pattern (§4.4).
                                StageType::Approval => upstream_input.to_string(),
                                StageType::Datatransfer => format!(
                                    "({upstream_input}) and {}",
                                    queries::pattern_bits(&e.file_pattern)
                                ),
                                _ => {
                                    let ids: Vec<&str> =
                                        members.iter().map(String::as_str).collect();
                                    queries::outputs_of(&ids, &e.file_pattern, &version)
                                }
                            });
                            c.parent = None;
                            candidates.push(c);
                        }
                        if !o.settled {
                            more_possible = true;
                            waiting_on_live |= !o.blocked;
                            waiting.push(if o.chains_total == 0 {
                                format!(
                                    "waiting for stage `{}`: not started; each of its located submissions launches this stage over its `{}` outputs",
                                    e.upstream.name, e.file_pattern
                                )
                            } else {
                                format!(
                                    "waiting for stage `{}`: {} of {} submissions located, needs {}%",
                                    e.upstream.name,
                                    o.located_chains.len(),
                                    o.chains_total,
                                    up.completion.percent
                                )
                            });
                        }
                    }
                    DependencyTrigger::StageComplete => {
                        let origin = Origin::StageComplete {
                            upstream: e.upstream.to_string(),
                        };
                        if o.settled && o.state.succeeded() {
                            if !self.has_origin(&stage.key, &origin) {
                                let mut c = Candidate::new(origin, false);
                                c.dataset =
                                    Some(format!("{}_after_{}", stage.key.name, e.upstream.name));
                                c.define = Define::Query;
                                c.input = Some(queries::stage_outputs(
                                    &e.upstream.to_string(),
                                    &e.file_pattern,
                                    &version,
                                ));
                                candidates.push(c);
                            }
                        } else if !o.settled {
                            more_possible = true;
                            waiting_on_live |= !o.blocked;
                            waiting.push(format!(
                                "waiting for stage `{}` to reach {}%: {:.0}% located ({} of {} submissions)",
                                e.upstream.name,
                                up.completion.percent,
                                o.located_percent,
                                o.located_chains.len(),
                                o.chains_total
                            ));
                        }
                    }
                }
            }
            // With a self-dependency too, each located submission of the stage launches the
            // next slice of its own split, as POMS does (reference §4.5).
            if stage.self_dependent() && stage.split.is_some() {
                let slices = subs
                    .iter()
                    .filter(|s| matches!(s.origin, Origin::Split { test: false, .. }))
                    .count() as u32;
                if slices < located {
                    let origin = Origin::Split {
                        test: false,
                        index: u64::from(slices),
                    };
                    match self.slice(stage, origin, false, &cursors[0]) {
                        Some(c) => candidates.push(c),
                        None => exhausted = true,
                    }
                }
            }
        }

        // Gating: inactive and paused stages launch nothing.
        let campaign = graph.campaign_of(stage);
        let paused_by = if stage.paused || self.input.observed.paused.contains(&stage.key) {
            Some(format!("stage `{}`", stage.key.name))
        } else if campaign.paused || self.input.observed.paused.contains(&stage.campaign) {
            Some(format!("campaign `{}`", stage.campaign.name))
        } else {
            None
        };
        let operator_paused = self.input.observed.paused.contains(&stage.key)
            || self.input.observed.paused.contains(&stage.campaign);
        // An imperative pause the definitions do not say is drift, shown until the
        // definitions agree or the pause is withdrawn.
        let drift = (operator_paused && !stage.paused && !campaign.paused).then(|| {
            "paused by an operator while the definitions say it runs: set `paused: true` in the definitions or `cascade resume` it".to_string()
        });
        let inactive = campaign.state == CampaignState::Inactive;
        let mut queued = Vec::new();
        let mut launches = 0u32;
        let mut compose_error = None;
        // Launches left out because their input has no files, said in the reason.
        let mut empty_inputs: Vec<String> = Vec::new();
        if inactive || paused_by.is_some() {
            queued = candidates
                .iter()
                .map(|c| match c.origin {
                    Origin::Request { .. } if c.test => format!("{} (test)", c.origin.describe()),
                    _ => c.origin.describe(),
                })
                .collect();
        } else {
            let mut seq = subs.iter().map(|s| s.seq).max().unwrap_or(0);
            for c in candidates {
                match self.input_is_empty(stage, &c) {
                    Some(false) => {}
                    Some(true) => {
                        empty_inputs.push(format!(
                            "nothing launched for {}: its input `{}` selects no files",
                            c.origin.describe(),
                            c.input.as_deref().unwrap_or_default()
                        ));
                        continue;
                    }
                    None => continue,
                }
                seq += 1;
                match self.launch(stage, seq, c) {
                    Ok(action) => {
                        launches += 1;
                        self.actions.push(Action::Launch(Box::new(action)));
                    }
                    Err(e) => {
                        compose_error = Some(e);
                        break;
                    }
                }
            }
        }

        let mut jobs = JobCounts::default();
        for s in &subs {
            jobs.add(&s.jobs);
        }
        let chains_total = located + failed + in_flight + launches;
        let located_percent = if chains_total == 0 {
            0.0
        } else {
            f64::from(located) * 100.0 / f64::from(chains_total)
        };
        let settled = in_flight == 0 && launches == 0 && queued.is_empty() && !more_possible;
        let degraded = self.degraded.borrow().get(&stage.key).cloned();
        let (state, reason) = if let Some(e) = degraded {
            (
                StageState::Degraded,
                format!("the catalog could not answer, so nothing is decided until it does: {e}"),
            )
        } else if let Some(e) = compose_error {
            (
                StageState::Failed,
                format!("cannot compose its launch: {e}"),
            )
        } else if inactive && !queued.is_empty() {
            (
                StageState::Waiting,
                format!("campaign `{}` is inactive", stage.campaign.name),
            )
        } else if let Some(by) = paused_by.as_ref().filter(|_| !queued.is_empty()) {
            (
                StageState::Waiting,
                format!(
                    "{by} is paused: {} launch{} queued ({}), released in order on resume",
                    queued.len(),
                    if queued.len() == 1 { "" } else { "es" },
                    queued.join(", ")
                ),
            )
        } else if launches == 0 && !awaiting.is_empty() && in_flight as usize == awaiting.len() {
            (
                StageState::Waiting,
                format!(
                    "awaiting approval: `cascade approve {}`",
                    awaiting.join("`, `cascade approve ")
                ),
            )
        } else if launches > 0 || in_flight > 0 {
            let mut text = format!(
                "{located} of {chains_total} submissions located, {} in flight (jobs: {} idle, {} running, {} held, {} done)",
                in_flight + launches,
                jobs.idle,
                jobs.running,
                jobs.held,
                jobs.finished()
            );
            if launches > 0 {
                text.push_str(&format!("; launching {launches} now"));
            }
            if let Some(note) = self.jobless_launches(&subs) {
                text.push_str("; ");
                text.push_str(&note);
            }
            (StageState::Running, text)
        } else if !waiting.is_empty() && (more_possible || chains_total == 0) {
            (StageState::Waiting, waiting.join("; and "))
        } else if chains_total == 0 {
            // Nothing ran, so nothing succeeded: the stage waits for files or for a person.
            let dataset = stage.dataset_text().unwrap_or("its dataset");
            let why = if !empty_inputs.is_empty() {
                "nothing to launch".to_string()
            } else if exhausted {
                format!("its split has nothing to launch: `{dataset}` holds no files")
            } else if upstream.is_empty() {
                "nothing to launch".to_string()
            } else {
                "blocked: its upstream stages ended without located submissions".to_string()
            };
            (StageState::Waiting, why)
        } else if located_percent + 1e-9 >= stage.completion.percent {
            let open_ended = stage
                .split
                .as_ref()
                .is_some_and(|p| !p.can_exhaust() || matches!(p, SplitPolicy::Draining));
            let state = if exhausted && open_ended {
                StageState::Exhausted
            } else {
                StageState::Completed
            };
            (
                state,
                format!(
                    "{}: {located_percent:.0}% located ({located} of {chains_total} submissions), needs {}%",
                    if state == StageState::Exhausted {
                        "split exhausted"
                    } else {
                        "completed"
                    },
                    stage.completion.percent
                ),
            )
        } else {
            (
                StageState::Failed,
                format!(
                    "failed: {failed} of {chains_total} submissions failed; {located_percent:.0}% located, needs {}%; {}",
                    stage.completion.percent,
                    way_forward(&stage.key, &failed_chains)
                ),
            )
        };
        let mut reason = match &drift {
            Some(d) => format!("{reason} (drift: {d})"),
            None => reason,
        };
        for note in request_notes.iter().chain(&empty_inputs) {
            reason.push_str("; ");
            reason.push_str(note);
        }
        let settled = state != StageState::Degraded
            && (settled || state == StageState::Failed && in_flight == 0 && launches == 0);
        // Not settled, but nothing will move it without a person or the clock: paused with
        // launches queued, waiting for a schedule, or waiting only on stages like that.
        let live = in_flight as usize - awaiting.len();
        // A degraded stage waits for the catalog; a person has to look at what it said.
        let blocked = state == StageState::Degraded
            || !settled
                && live == 0
                && launches == 0
                && (!awaiting.is_empty()
                    || !queued.is_empty()
                    || (more_possible && !waiting_on_live));

        let expected = self.expected_chains(stage, chains_total, exhausted);
        let split_cursor = self.cursor(stage, false);
        // Only a stage without upstream stages walks its own split.
        let split_exhausted = stage.split.is_some()
            && stage.upstream_edges().next().is_none()
            && (exhausted
                || self
                    .slice(
                        stage,
                        Origin::Split {
                            test: false,
                            index: 0,
                        },
                        false,
                        &split_cursor,
                    )
                    .is_none());
        let progress = if settled && state.succeeded() {
            1.0
        } else {
            (f64::from(located) / expected.max(1.0)).min(1.0)
        };
        self.outcomes.insert(
            stage.key.clone(),
            Outcome {
                state,
                settled,
                blocked,
                located_percent,
                chains_total,
                located_chains,
                expected,
            },
        );
        StageStatus {
            stage: stage.key.clone(),
            campaign: stage.campaign.clone(),
            state,
            reason,
            settled,
            blocked,
            located_percent,
            progress,
            submissions: subs.len() as u32,
            chains_located: located,
            chains_failed: failed,
            chains_in_flight: in_flight + launches,
            jobs,
            launches,
            queued,
            next_fire,
            drift,
            split: stage.split.as_ref().map(SplitPolicy::to_fields),
            split_position: stage.split.as_ref().map(|_| split_cursor.to_string()),
            exhausted: split_exhausted,
        }
    }

    /// How many chains the stage should have in the end, as far as can be told now.
    fn expected_chains(&self, stage: &Stage, total: u32, exhausted: bool) -> f64 {
        let upstream: Vec<_> = stage.upstream_edges().collect();
        let estimate = if upstream.is_empty() {
            if stage.self_dependent() && !exhausted {
                f64::from(total) + self.remaining_slices(stage) as f64
            } else {
                1.0
            }
        } else if stage.join {
            1.0
        } else {
            upstream
                .iter()
                .map(|e| match e.trigger {
                    DependencyTrigger::StageComplete => 1.0,
                    DependencyTrigger::Submission => {
                        let o = &self.outcomes[&e.upstream];
                        if o.settled {
                            o.located_chains.len() as f64
                        } else {
                            o.expected
                        }
                    }
                })
                .sum()
        };
        estimate.max(f64::from(total))
    }

    /// Slices the split still has to give (up to a bound, for progress figures).
    fn remaining_slices(&self, stage: &Stage) -> u64 {
        const BOUND: u64 = 10_000;
        let mut cursor = self.cursor(stage, false);
        let mut n = 0;
        while n < BOUND {
            match self.slice(
                stage,
                Origin::Split {
                    test: false,
                    index: 0,
                },
                false,
                &cursor,
            ) {
                Some(c) => {
                    let Some(after) = c.cursor_after else { break };
                    if after == cursor {
                        break;
                    }
                    cursor = after;
                    n += 1;
                }
                None => break,
            }
        }
        n
    }

    /// Whether a launch's input is known to hold no files: from the split's facts when it
    /// has them, else by asking the catalog (a view that cannot tell is not taken to mean
    /// empty). Generators and value splits have no input files (`Some(false)`); `None` when
    /// the catalog cannot answer.
    fn input_is_empty(&self, stage: &Stage, c: &Candidate) -> Option<bool> {
        if c.define == Define::Snapshot {
            return Some(c.input_files.is_empty());
        }
        // An approval runs nothing: a person signs off whatever its dataset holds.
        if stage.stage_type == StageType::Approval {
            return Some(false);
        }
        match &c.input {
            None => Some(false),
            // A recovery round was counted when it was decided.
            Some(_) if c.recovery.is_some() => Some(false),
            Some(q) => match self.input.catalog.is_empty(q) {
                Ok(empty) => Some(empty.unwrap_or(false)),
                Err(e) => {
                    self.degrade(&stage.key, e);
                    None
                }
            },
        }
    }

    fn launch(&self, stage: &Stage, seq: u64, c: Candidate) -> Result<LaunchAction, String> {
        let id = format!("{}.{}.{seq}", stage.key.namespace, stage.key.name);
        let experimenter = c.launcher.as_deref().unwrap_or(self.input.experimenter);
        let request = LaunchRequest {
            stage,
            dataset: c.dataset.as_deref(),
            submission_id: &id,
            parent_submission_id: c.parent.as_deref(),
            test: c.test,
            explicit_overrides: &c.overrides,
            experimenter,
        };
        let launch = compose(self.input.graph, &request).map_err(|e| e.to_string())?;
        let recovery = c.recovery.map(|mut r| {
            r.submission = Some(id.clone());
            r
        });
        Ok(LaunchAction {
            id,
            stage: stage.key.clone(),
            seq,
            origin: c.origin,
            test: c.test || self.input.graph.campaign_of(stage).test,
            dataset: c.dataset,
            input: c.input,
            input_files: c.input_files,
            define: c.define,
            cursor_after: c.cursor_after,
            approval: stage.stage_type == StageType::Approval,
            recovery,
            launch,
        })
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
