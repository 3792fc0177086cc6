//! What a change to the definitions would do to production, for review in a pull request:
//! each resource's normalised YAML before and after, and per stage the impact: launching,
//! stopping (with the removal policy), pausing, every future command line that changes, the
//! split and recovery rounds that change, and the open submissions affected. Pure: two
//! loaded revisions (and what a controller observed) in, a review out.

use std::collections::{BTreeMap, BTreeSet};

use cascade_crd::RemovalPolicy;
use serde::Serialize;
use similar::{ChangeTag, TextDiff};

use super::observed::Observed;
use crate::launch::compose::{LaunchRequest, LaunchSettings, compose};
use crate::model::load::Spec;
use crate::model::{DesiredGraph, ObjectKey, Resource, Stage};

/// One revision of the definitions, loaded.
pub struct Revision<'a> {
    pub resources: &'a [Resource],
    /// The validated graph; `None` when the revision does not validate.
    pub graph: Option<&'a DesiredGraph>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Change {
    Added,
    Removed,
    Modified,
}

/// A resource whose normalised YAML differs between the revisions.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceChange {
    pub kind: &'static str,
    pub key: String,
    pub change: Change,
    /// Unified diff of the normalised YAML (`---`/`+++` headers, `@@` hunks).
    pub diff: String,
}

/// What a change does to one stage.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase", tag = "effect")]
pub enum Effect {
    /// A new stage: it launches once its inputs are ready (at once when `now`).
    Launches {
        now: bool,
    },
    /// Removed: launches nothing more; its open submissions finish or are killed.
    Stops {
        policy: RemovalPolicy,
    },
    Pauses,
    Resumes,
    /// Its launches from now on run a different command (open submissions keep theirs).
    Relaunches {
        before: String,
        after: String,
        /// Word diff: `[-old-]{+new+}`.
        words: String,
    },
    SplitChanges {
        before: String,
        after: String,
    },
    RecoveriesChange {
        before: String,
        after: String,
    },
    CompletionChanges {
        before: String,
        after: String,
    },
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StageImpact {
    pub stage: String,
    pub effects: Vec<Effect>,
    /// Its submissions not yet final (with a controller's state), which the effects touch.
    pub open_submissions: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Review {
    pub resources: Vec<ResourceChange>,
    pub stages: Vec<StageImpact>,
    /// The base revision does not validate: nothing is known of what it launched, so no
    /// impact is claimed.
    pub base_invalid: bool,
}

impl Review {
    /// Whether the change alters what production launches (for CI gates); when the base does
    /// not validate that cannot be ruled out, so it counts as altering.
    pub fn alters_production(&self) -> bool {
        self.base_invalid || self.stages.iter().any(|s| !s.effects.is_empty())
    }
}

/// What `cascade plan --base --head` needs besides the two revisions.
pub struct Context<'a> {
    pub observed: &'a Observed,
    /// Stages that would launch now at the head revision (from the planner).
    pub launching_now: &'a BTreeSet<ObjectKey>,
    pub experimenter: &'a str,
    pub settings: &'a LaunchSettings,
}

pub fn review(base: &Revision, head: &Revision, ctx: &Context) -> Review {
    let empty = DesiredGraph::default();
    // No definitions at all before (the change adds the first ones) is an empty production.
    let base_graph = match base.graph {
        Some(g) => Some(g),
        None if base.resources.is_empty() => Some(&empty),
        None => None,
    };
    Review {
        resources: resource_changes(base.resources, head.resources),
        stages: match (base_graph, head.graph) {
            (Some(b), Some(h)) => stage_impacts(b, h, ctx),
            _ => Vec::new(),
        },
        base_invalid: base_graph.is_none(),
    }
}

/// A resource as it is compared: identity and spec, serialised in one canonical form (so a
/// reordered key or a reformatted file is no change).
#[derive(Serialize)]
struct Normalised<'a> {
    kind: &'static str,
    name: &'a str,
    namespace: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: &'a BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: &'a BTreeMap<String, String>,
    spec: SpecRef<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum SpecRef<'a> {
    LoginSetup(&'a cascade_crd::LoginSetupSpec),
    JobType(&'a cascade_crd::JobTypeSpec),
    Campaign(&'a cascade_crd::CampaignSpec),
    Stage(&'a cascade_crd::CampaignStageSpec),
    Notifier(&'a cascade_crd::NotifierSpec),
}

pub fn normalised_yaml(r: &Resource) -> String {
    let spec = match &r.spec {
        Spec::LoginSetup(s) => SpecRef::LoginSetup(s),
        Spec::JobType(s) => SpecRef::JobType(s),
        Spec::Campaign(s) => SpecRef::Campaign(s),
        Spec::CampaignStage(s) => SpecRef::Stage(s),
        Spec::Notifier(s) => SpecRef::Notifier(s),
    };
    let n = Normalised {
        kind: r.kind(),
        name: r.name(),
        namespace: r.namespace(),
        labels: &r.meta.labels,
        annotations: &r.meta.annotations,
        spec,
    };
    serde_saphyr::to_string(&n).unwrap_or_else(|e| format!("# cannot write: {e}\n"))
}

fn by_identity(resources: &[Resource]) -> BTreeMap<(&'static str, String), &Resource> {
    resources
        .iter()
        .map(|r| ((r.kind(), format!("{}/{}", r.namespace(), r.name())), r))
        .collect()
}

fn resource_changes(base: &[Resource], head: &[Resource]) -> Vec<ResourceChange> {
    let (before, after) = (by_identity(base), by_identity(head));
    let keys: BTreeSet<_> = before.keys().chain(after.keys()).cloned().collect();
    keys.into_iter()
        .filter_map(|(kind, key)| {
            let id = (kind, key.clone());
            let old = before
                .get(&id)
                .map(|r| normalised_yaml(r))
                .unwrap_or_default();
            let new = after
                .get(&id)
                .map(|r| normalised_yaml(r))
                .unwrap_or_default();
            if old == new {
                return None;
            }
            let change = match (before.contains_key(&id), after.contains_key(&id)) {
                (false, _) => Change::Added,
                (_, false) => Change::Removed,
                _ => Change::Modified,
            };
            let label = format!("{kind} {key}");
            let diff = TextDiff::from_lines(&old, &new)
                .unified_diff()
                .header(&label, &label)
                .to_string();
            Some(ResourceChange {
                kind,
                key,
                change,
                diff,
            })
        })
        .collect()
}

/// The command a stage's next launch would run, with the same placeholder identity on both
/// sides so that only the definitions make a difference.
fn next_command(graph: &DesiredGraph, stage: &Stage, ctx: &Context) -> String {
    let id = format!("{}.{}.next", stage.key.namespace, stage.key.name);
    let request = LaunchRequest {
        stage,
        dataset: stage.dataset_text(),
        submission_id: &id,
        parent_submission_id: None,
        test: false,
        explicit_overrides: &[],
        experimenter: ctx.experimenter,
        settings: ctx.settings,
    };
    match compose(graph, &request) {
        Ok(l) => l.display,
        Err(e) => format!("(cannot compose: {})", e.0),
    }
}

/// `[-removed-]{+added+}` over words.
pub fn word_diff(before: &str, after: &str) -> String {
    let mut out = String::new();
    for change in TextDiff::from_words(before, after).iter_all_changes() {
        let text = change.value();
        match change.tag() {
            ChangeTag::Equal => out.push_str(text),
            ChangeTag::Delete => out.push_str(&format!("[-{text}-]")),
            ChangeTag::Insert => out.push_str(&format!("{{+{text}+}}")),
        }
    }
    out
}

fn split_text(stage: &Stage) -> String {
    let one = |p: &Option<Box<cascade_crd::SplitPolicy>>| {
        p.as_ref().map_or("none".to_string(), |p| p.to_string())
    };
    format!(
        "{}, test split {}, resets {}",
        one(&stage.split),
        one(&stage.test_split),
        stage.split_resets
    )
}

fn recoveries_text(graph: &DesiredGraph, stage: &Stage) -> String {
    let steps: Vec<String> = graph
        .job_type_of(stage)
        .recoveries
        .iter()
        .map(|r| {
            let overrides: Vec<String> = r
                .parameter_overrides
                .iter()
                .map(|p| format!("{}{}", p.key, p.value))
                .collect();
            if overrides.is_empty() {
                r.kind.as_str().to_string()
            } else {
                format!("{} ({})", r.kind.as_str(), overrides.join(" "))
            }
        })
        .collect();
    if steps.is_empty() {
        "none".into()
    } else {
        steps.join(", then ")
    }
}

fn completion_text(stage: &Stage) -> String {
    serde_json::to_string(&stage.completion).unwrap_or_default()
}

fn stage_impacts(base: &DesiredGraph, head: &DesiredGraph, ctx: &Context) -> Vec<StageImpact> {
    let open = |key: &ObjectKey| -> Vec<String> {
        ctx.observed
            .submissions
            .iter()
            .filter(|s| *s.stage == *key && !s.status.is_final())
            .map(|s| s.id.to_string())
            .collect()
    };
    let mut out = Vec::new();
    for stage in &head.stages {
        let mut effects = Vec::new();
        match base.stage(&stage.key) {
            None => effects.push(Effect::Launches {
                now: ctx.launching_now.contains(&stage.key),
            }),
            Some(old) => {
                let paused = |g: &DesiredGraph, s: &Stage| s.paused || g.campaign_of(s).paused;
                match (paused(base, old), paused(head, stage)) {
                    (false, true) => effects.push(Effect::Pauses),
                    (true, false) => effects.push(Effect::Resumes),
                    _ => {}
                }
                let (before, after) =
                    (next_command(base, old, ctx), next_command(head, stage, ctx));
                if before != after {
                    effects.push(Effect::Relaunches {
                        words: word_diff(&before, &after),
                        before,
                        after,
                    });
                }
                let (before, after) = (split_text(old), split_text(stage));
                if before != after {
                    effects.push(Effect::SplitChanges { before, after });
                }
                let (before, after) = (recoveries_text(base, old), recoveries_text(head, stage));
                if before != after {
                    effects.push(Effect::RecoveriesChange { before, after });
                }
                let (before, after) = (completion_text(old), completion_text(stage));
                if before != after {
                    effects.push(Effect::CompletionChanges { before, after });
                }
            }
        }
        if !effects.is_empty() {
            out.push(StageImpact {
                stage: stage.key.to_string(),
                open_submissions: open(&stage.key),
                effects,
            });
        }
    }
    for old in &base.stages {
        if head.stage(&old.key).is_none() {
            out.push(StageImpact {
                stage: old.key.to_string(),
                effects: vec![Effect::Stops {
                    policy: base.campaign_of(old).removal_policy,
                }],
                open_submissions: open(&old.key),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests;
