//! The desired graph: what validation hands to the planner.
//!
//! Everything in it has been checked: references resolve within the namespace, names are
//! unique, campaign defaults are applied, split policies are parsed into their typed form and
//! fit their data, templates refer only to known variables, schedules parse, and the
//! dependency graph is acyclic (self-dependencies aside). Stages are in dependency order.

use std::collections::BTreeMap;
use std::fmt;

use cascade_crd::stage::SplitData;
use cascade_crd::{
    CampaignSpec, Completion, DependencyTrigger, JobTypeSpec, LoginSetupSpec, Param, SplitPolicy,
    StageType,
};

/// A resource's identity: namespace (the experiment) and name.
#[derive(
    Clone,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
pub struct ObjectKey {
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ObjectKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct DesiredGraph {
    pub login_setups: BTreeMap<ObjectKey, LoginSetupSpec>,
    pub job_types: BTreeMap<ObjectKey, JobTypeSpec>,
    pub campaigns: BTreeMap<ObjectKey, CampaignSpec>,
    /// In dependency order: every stage after its upstream stages.
    pub stages: Vec<Stage>,
    pub notifiers: BTreeMap<ObjectKey, cascade_crd::NotifierSpec>,
}

impl DesiredGraph {
    pub fn stage(&self, key: &ObjectKey) -> Option<&Stage> {
        self.stages.iter().find(|s| &s.key == key)
    }

    pub fn stage_by_name(&self, name: &str) -> Option<&Stage> {
        self.stages
            .iter()
            .find(|s| s.key.name == name || s.key.to_string() == name)
    }

    /// Stages whose `dependsOn` names `key` (self-dependencies excluded).
    pub fn dependents<'a>(&'a self, key: &'a ObjectKey) -> impl Iterator<Item = &'a Stage> + 'a {
        self.stages
            .iter()
            .filter(move |s| &s.key != key && s.depends_on.iter().any(|e| &e.upstream == key))
    }

    pub fn login_setup_of(&self, stage: &Stage) -> &LoginSetupSpec {
        &self.login_setups[&stage.login_setup]
    }

    pub fn job_type_of(&self, stage: &Stage) -> &JobTypeSpec {
        &self.job_types[&stage.job_type]
    }

    pub fn campaign_of(&self, stage: &Stage) -> &CampaignSpec {
        &self.campaigns[&stage.campaign]
    }
}

/// A validated stage with its campaign's defaults applied.
#[derive(Clone, Debug, PartialEq)]
pub struct Stage {
    pub key: ObjectKey,
    pub campaign: ObjectKey,
    pub login_setup: ObjectKey,
    pub job_type: ObjectKey,
    pub software_version: String,
    pub vo_role: String,
    pub dataset: Option<SplitData>,
    pub split: Option<SplitPolicy>,
    pub test_split: Option<SplitPolicy>,
    pub completion: Completion,
    pub parameter_overrides: Vec<Param>,
    pub test_parameter_overrides: Vec<Param>,
    pub merge_default_overrides: bool,
    /// A cron expression known to parse.
    pub schedule: Option<String>,
    pub paused: bool,
    /// Split resets the definitions declare (`splitResets`).
    pub split_resets: u32,
    pub stage_type: StageType,
    pub output_ancestor_depth: u32,
    pub clear_schedule_on_exhaustion: bool,
    pub join: bool,
    pub depends_on: Vec<Edge>,
    pub generation: Option<i64>,
    /// The names POMS knew the stage and its campaign by, when import renamed them.
    pub poms_name: Option<String>,
    pub campaign_poms_name: Option<String>,
    /// The file that defines its job type: launches run in that file's directory, so a
    /// launch script's relative paths are relative to where they are written (a campaign
    /// cloned elsewhere still finds the scripts of the job types it shares).
    pub job_type_source: std::sync::Arc<str>,
}

impl Stage {
    /// The split data as text (dataset name, comma list, project), if it is text.
    pub fn dataset_text(&self) -> Option<&str> {
        self.dataset.as_ref().and_then(SplitData::as_text)
    }

    pub fn self_dependent(&self) -> bool {
        self.depends_on.iter().any(|e| e.upstream == self.key)
    }

    /// Upstream edges other than a self-dependency.
    pub fn upstream_edges(&self) -> impl Iterator<Item = &Edge> {
        self.depends_on.iter().filter(|e| e.upstream != self.key)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edge {
    pub upstream: ObjectKey,
    pub file_pattern: String,
    pub trigger: DependencyTrigger,
}
