//! Status types written by the controller (the CR status subresource in Kubernetes, the
//! ledger elsewhere). Status holds aggregates only; per-job and per-file detail lives in the
//! ledger and the catalog.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::split::SplitFields;

/// A condition following the Kubernetes API conventions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Stages: `Ready` (succeeded: its outputs are there for what waits on the stage),
    /// `Progressing` (launching or running), `Degraded` (submissions failed). Campaigns:
    /// `Succeeded` (every stage succeeded), `Degraded` (a stage failed).
    #[serde(rename = "type")]
    pub kind: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// CamelCase machine-readable reason.
    pub reason: String,
    /// One sentence for people.
    pub message: String,
    /// RFC 3339 time the status last changed.
    pub last_transition_time: String,
}

/// Status of LoginSetup and JobType: whether the resource is valid and in use.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SimpleStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Status of a Campaign.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CampaignStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Progress over all stages, each weighted equally, each counted as its share of the way
    /// to its own completion threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_percent: Option<f64>,
    /// Number of stages in each phase.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub stages: BTreeMap<String, u32>,
    /// Git revision (or resource version) of the desired state last applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
}

/// Status of a CampaignStage.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CampaignStageStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Waiting`, `Running`, `Completed`, `Exhausted` or `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Why the stage is where it is, in one sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Completion of the stage in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_percent: Option<f64>,
    /// Number of submissions in each status.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub submissions: BTreeMap<String, u32>,
    /// The split policy in normalised typed form (every parameter explicit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<SplitFields>,
    /// Where the split's cursor stands (`slice 3`, `run 5`, `time 1700000000`,
    /// `12 files delivered`), for a stage that splits its own dataset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_position: Option<String>,
    /// True once the split policy has no further slice.
    #[serde(default)]
    pub exhausted: bool,
    /// Git revision (or resource version) of the desired state last applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
}
