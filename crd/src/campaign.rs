//! `Campaign`: a named set of stages with shared keywords and defaults.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::is_false;
use crate::stage::StageDefaults;
use crate::status::CampaignStatus;

/// A production campaign: the stages that name it in `spec.campaign`, the keywords their
/// launch commands may use as `%(name)s`, and live defaults for any stage field.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "cascade.dev",
    version = "v1alpha1",
    kind = "Campaign",
    namespaced,
    status = "CampaignStatus",
    shortname = "camp",
    category = "cascade",
    printcolumn = r#"{"name":"State","type":"string","jsonPath":".spec.state"}"#,
    printcolumn = r#"{"name":"Paused","type":"boolean","jsonPath":".spec.paused"}"#,
    printcolumn = r#"{"name":"Progress","type":"number","jsonPath":".status.progressPercent"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CampaignSpec {
    /// User variables available as `%(name)s` in launch scripts, parameters and overrides.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub keywords: BTreeMap<String, String>,
    /// Live defaults: any stage field a stage omits is taken from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defaults: Option<StageDefaults>,
    /// Queue every launch of every stage until unpaused. Default false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub paused: bool,
    /// `active` or `inactive`; an inactive campaign launches nothing. Default `active`.
    #[serde(default)]
    pub state: CampaignState,
    /// Labels for grouping and filtering (POMS tags).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Mark every launch of this campaign as a test launch (POMS `campaign_type: test`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub test: bool,
    /// Free text shown to people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// What happens to the open submissions of a stage (or of this whole campaign) when it
    /// is removed from the definitions: `finish` (default: its jobs run to their end, nothing
    /// more is launched) or `kill` (its jobs are removed, as `cascade kill` does).
    #[serde(default, skip_serializing_if = "RemovalPolicy::is_default")]
    pub removal_policy: RemovalPolicy,
}

/// What removal from the definitions does to open submissions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RemovalPolicy {
    /// Launch nothing more; let the jobs that run finish.
    #[default]
    Finish,
    /// Launch nothing more and remove the jobs.
    Kill,
}

impl RemovalPolicy {
    pub fn is_default(&self) -> bool {
        *self == RemovalPolicy::Finish
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RemovalPolicy::Finish => "finish",
            RemovalPolicy::Kill => "kill",
        }
    }
}

/// Whether a campaign launches anything.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CampaignState {
    #[default]
    Active,
    Inactive,
}
