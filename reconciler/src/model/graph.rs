//! The desired graph: what validation hands to the planner.
//!
//! Everything in it has been checked: references resolve within the namespace, names are
//! unique, campaign defaults are applied, split policies are parsed into their typed form and
//! fit their data, templates refer only to known variables, schedules parse, and the
//! dependency graph is acyclic (self-dependencies aside). Stages are in dependency order.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

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
    #[schemars(with = "String")]
    pub namespace: Name,
    #[schemars(with = "String")]
    pub name: Name,
}

impl ObjectKey {
    pub fn new(namespace: impl Into<Name>, name: impl Into<Name>) -> Self {
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

/// A name or other short text many values hold (a namespace, a campaign's name, a software
/// version), shared rather than copied: a graph names each campaign, login setup and job type
/// from every one of its stages, and a namespace from every key.
#[derive(
    Clone,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct Name(Arc<str>);

impl Name {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Name {
    fn from(s: &str) -> Self {
        Name(s.into())
    }
}

impl From<&String> for Name {
    fn from(s: &String) -> Self {
        Name(s.as_str().into())
    }
}

impl From<String> for Name {
    fn from(s: String) -> Self {
        Name(s.into())
    }
}

impl From<&Name> for Name {
    fn from(n: &Name) -> Self {
        n.clone()
    }
}

/// One [`Name`] per distinct text, so that the keys naming a resource share its name.
#[derive(Default)]
pub struct Interner(crate::fast::Set<Name>);

impl Interner {
    pub fn name(&mut self, text: &str) -> Name {
        if let Some(name) = self.0.get(text) {
            return name.clone();
        }
        let name = Name::from(text);
        self.0.insert(name.clone());
        name
    }

    pub fn key(&mut self, namespace: &str, name: &str) -> ObjectKey {
        ObjectKey {
            namespace: self.name(namespace),
            name: self.name(name),
        }
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<String> for Name {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<Name> for str {
    fn eq(&self, other: &Name) -> bool {
        *self == *other.0
    }
}

impl PartialEq<Name> for &str {
    fn eq(&self, other: &Name) -> bool {
        **self == *other.0
    }
}

impl PartialEq<Name> for String {
    fn eq(&self, other: &Name) -> bool {
        **self == *other.0
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
    // Shared: stages usually take both from their campaign's defaults.
    pub software_version: Name,
    pub vo_role: Name,
    // Boxed: most stages have no dataset (their input comes from upstream), no split or no
    // test split, and a graph may hold 100,000 stages.
    pub dataset: Option<Box<SplitData>>,
    pub split: Option<Box<SplitPolicy>>,
    pub test_split: Option<Box<SplitPolicy>>,
    pub completion: Completion,
    pub parameter_overrides: Box<[Param]>,
    pub test_parameter_overrides: Box<[Param]>,
    pub merge_default_overrides: bool,
    /// A cron expression known to parse.
    pub schedule: Option<Name>,
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
    pub poms_name: Option<Name>,
    pub campaign_poms_name: Option<Name>,
    /// The file that defines its job type: launches run in that file's directory, so a
    /// launch script's relative paths are relative to where they are written (a campaign
    /// cloned elsewhere still finds the scripts of the job types it shares).
    pub job_type_source: std::sync::Arc<str>,
}

impl Stage {
    /// The split data as text (dataset name, comma list, project), if it is text.
    pub fn dataset_text(&self) -> Option<&str> {
        self.dataset.as_deref().and_then(SplitData::as_text)
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
    pub file_pattern: Name,
    pub trigger: DependencyTrigger,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interned_keys_share_their_names() {
        let mut names = Interner::default();
        let stage = names.key("exp", "reco");
        let upstream_of_other = names.key("exp", "reco");
        assert!(Arc::ptr_eq(&stage.name.0, &upstream_of_other.name.0));
        assert!(Arc::ptr_eq(&stage.namespace.0, &names.name("exp").0));
        assert_eq!(stage, ObjectKey::new("exp", "reco"));
        assert_ne!(stage, names.key("exp", "gen"));
    }

    #[test]
    fn names_compare_and_order_as_their_text() {
        let a = Name::from("alpha");
        assert_eq!(a, "alpha");
        assert_eq!("alpha", a);
        let text = String::from("alpha");
        assert_eq!(a, text);
        let b = Name::from("beta");
        assert!(a < b);
        assert_eq!(a.to_string(), "alpha");
        let key = ObjectKey::new("exp", "alpha");
        assert_eq!(
            serde_json::to_string(&key).unwrap(),
            r#"{"namespace":"exp","name":"alpha"}"#
        );
        let back: ObjectKey =
            serde_json::from_str(r#"{"namespace":"exp","name":"alpha"}"#).unwrap();
        assert_eq!(back, key);
    }
}
