//! `CampaignStage`: one step of a campaign, launching submissions over slices of a dataset.

use kube::CustomResource;
use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, de};

use crate::common::string_or_structure_schema;

use crate::common::{Completion, Param};
use crate::split::SplitSpec;
use crate::status::CampaignStageStatus;

/// Defines the stage fields that a campaign's `defaults` may supply, once, for both the stage
/// spec and the defaults type, so the two lists cannot drift apart.
macro_rules! stage_settings {
    ($( $(#[$meta:meta])* $field:ident ($yaml:literal) : $ty:ty ),* $(,)?) => {
        /// One step of a campaign: launches submissions of its job type through its login
        /// setup, over the slices its split policy cuts from its dataset, until its completion
        /// threshold is reached. Any field but `campaign` and `dependsOn` may come from the
        /// campaign's `defaults`.
        #[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
        #[kube(
            group = "cascade.dev",
            version = "v1alpha1",
            kind = "CampaignStage",
            namespaced,
            status = "CampaignStageStatus",
            shortname = "cs",
            shortname = "stage",
            category = "cascade",
            printcolumn = r#"{"name":"Campaign","type":"string","jsonPath":".spec.campaign"}"#,
            printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
            printcolumn = r#"{"name":"Percent","type":"number","jsonPath":".status.completionPercent"}"#,
            printcolumn = r#"{"name":"Located","type":"integer","jsonPath":".status.submissions.Located"}"#,
            printcolumn = r#"{"name":"Why","type":"string","jsonPath":".status.reason","priority":1}"#,
            printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
        )]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        pub struct CampaignStageSpec {
            /// Name of the Campaign this stage belongs to (same namespace).
            pub campaign: String,
            /// Upstream stages whose outputs feed this one.
            #[serde(default, skip_serializing_if = "Vec::is_empty")]
            pub depends_on: Vec<Dependency>,
            $( $(#[$meta])* #[serde(default, skip_serializing_if = "Option::is_none")] pub $field: Option<$ty>, )*
            /// How many times the stage's split has been started again from its first slice.
            /// Raising it resets the split (what `cascade reset-split` does, declared); a reset
            /// made with `cascade reset-split` shows as drift until this says as many. Default 0.
            #[serde(default, skip_serializing_if = "is_zero")]
            pub split_resets: u32,
        }

        fn is_zero(n: &u32) -> bool {
            *n == 0
        }

        /// Campaign-wide defaults for stage fields; a stage that omits a field takes it from here.
        #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        pub struct StageDefaults {
            $( $(#[$meta])* #[serde(default, skip_serializing_if = "Option::is_none")] pub $field: Option<$ty>, )*
        }

        impl CampaignStageSpec {
            /// A stage of `campaign` with these upstream edges and settings.
            pub fn from_settings(campaign: String, depends_on: Vec<Dependency>, settings: StageDefaults) -> Self {
                CampaignStageSpec { campaign, depends_on, $( $field: settings.$field, )* split_resets: 0 }
            }

            /// The stage's own settings (those it sets itself, not its campaign's defaults).
            pub fn settings(&self) -> StageDefaults {
                StageDefaults { $( $field: self.$field.clone(), )* }
            }

            /// Fills every field the stage omits from the campaign defaults (live defaults:
            /// applied at load time, never written back). Returns the camelCase names of the
            /// fields that were filled.
            pub fn apply_defaults(&mut self, defaults: &StageDefaults) -> Vec<&'static str> {
                let mut filled = Vec::new();
                $(
                    if self.$field.is_none() && defaults.$field.is_some() {
                        self.$field = defaults.$field.clone();
                        filled.push($yaml);
                    }
                )*
                filled
            }
        }

        /// camelCase names of the fields a campaign's defaults may set.
        pub const DEFAULTABLE_FIELDS: &[&str] = &[$( $yaml ),*];
    };
}

stage_settings! {
    /// Name of the LoginSetup launches run through.
    login_setup("loginSetup"): String,
    /// Name of the JobType launches run.
    job_type("jobType"): String,
    /// Software version: `%(version)s`, and the version outputs must carry to count.
    software_version("softwareVersion"): String,
    /// VO role of the launch (`Production`, `Analysis`, ...). Default `Production`.
    vo_role("voRole"): String,
    /// Input dataset, or the split data the split type reads (comma list for `list`, a list of
    /// lists for `multiparam`, a project name for `stagedfiles`).
    dataset("dataset"): SplitData,
    /// How the dataset is cut into submissions: a POMS string (`nfiles(10)`) or a mapping
    /// (`{type: nfiles, n: 10}`). Absent: one submission over the whole dataset.
    split("split"): Box<SplitSpec>,
    /// Split policy for test launches (its own cursor). Default: `split`.
    test_split("testSplit"): Box<SplitSpec>,
    /// When a submission counts as done. Default `{type: located, percent: 95}`.
    completion("completion"): Completion,
    /// Overrides merged over the job type's parameters.
    parameter_overrides("parameterOverrides"): Vec<Param>,
    /// Overrides merged on test launches only.
    test_parameter_overrides("testParameterOverrides"): Vec<Param>,
    /// Also merge the campaign defaults' `parameterOverrides` before the stage's own. Default false.
    merge_default_overrides("mergeDefaultOverrides"): bool,
    /// Cron expression (5 or 6 fields) on which the stage launches its next split.
    schedule("schedule"): String,
    /// Queue this stage's launches until unpaused. Default false.
    paused("paused"): bool,
    /// `regular`, `generator` (no input; jobs create data), `approval` (waits for a person),
    /// `datatransfer` (forwards its input). Default `regular`.
    #[serde(rename = "type")]
    stage_type("type"): StageType,
    /// Generations between inputs and the outputs counted for location (at least 1). Default 1.
    #[schemars(range(min = 1))]
    output_ancestor_depth("outputAncestorDepth"): u32,
    /// Drop the schedule once the split is exhausted. Default true.
    clear_schedule_on_exhaustion("clearScheduleOnExhaustion"): bool,
    /// With several upstream stages: launch once, when every upstream stage has reached its
    /// completion threshold, over all their outputs (a join). Default false.
    join("join"): bool,
}

/// A stage's input: a dataset name or query, a comma list (`list` split), or a list of lists of
/// parameter values (`multiparam` split).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum SplitData {
    /// A dataset (definition) name, a comma list, or a project name.
    Text(String),
    /// Lists of values whose combinations are the `multiparam` slices.
    Lists(Vec<Vec<String>>),
}

impl<'de> Deserialize<'de> for SplitData {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = SplitData;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a dataset name, or a list of lists of values for `multiparam`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<SplitData, E> {
                Ok(SplitData::Text(v.to_string()))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<SplitData, A::Error> {
                Vec::<Vec<String>>::deserialize(de::value::SeqAccessDeserializer::new(seq))
                    .map(SplitData::Lists)
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for SplitData {
    fn schema_name() -> Cow<'static, str> {
        "SplitData".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        string_or_structure_schema(
            generator,
            "Input dataset name, a comma list (`list` split), or a list of lists of values (`multiparam` split).",
            json_schema!({ "type": "array", "items": { "type": "array", "items": { "type": "string" } } }),
        )
    }
}

impl SplitData {
    pub fn as_text(&self) -> Option<&str> {
        match self {
            SplitData::Text(s) => Some(s),
            SplitData::Lists(_) => None,
        }
    }
}

/// Stage types of POMS (the label-only `test` type is the `test` flag of a campaign here).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StageType {
    #[default]
    Regular,
    Generator,
    Approval,
    Datatransfer,
}

impl StageType {
    pub fn as_str(self) -> &'static str {
        match self {
            StageType::Regular => "regular",
            StageType::Generator => "generator",
            StageType::Approval => "approval",
            StageType::Datatransfer => "datatransfer",
        }
    }
}

/// An edge from an upstream stage: its outputs matching `filePattern` feed this stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Dependency {
    /// Name of the upstream stage (same campaign). Naming this stage itself means "relaunch
    /// with the next split each time a submission is located".
    pub stage: String,
    /// Which upstream outputs feed this stage: a SQL LIKE file-name pattern (`%.reco.root`),
    /// or a catalog query fragment when it contains a space. Default `%` (all outputs).
    #[serde(default = "default_pattern")]
    pub file_pattern: String,
    /// `submission`: one launch per located upstream submission (POMS). `stageComplete`: one
    /// launch once the whole upstream stage reaches its threshold. Default `submission`.
    #[serde(default, skip_serializing_if = "DependencyTrigger::is_default")]
    pub trigger: DependencyTrigger,
}

fn default_pattern() -> String {
    "%".to_string()
}

/// When a dependency edge launches its downstream stage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum DependencyTrigger {
    #[default]
    Submission,
    StageComplete,
}

impl DependencyTrigger {
    fn is_default(&self) -> bool {
        *self == DependencyTrigger::Submission
    }
}
