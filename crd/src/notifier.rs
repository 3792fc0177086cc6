//! `Notifier`: where Cascade tells people (or a forge) that something happened to a campaign.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::status::SimpleStatus;

/// Sends a message when chosen things happen to the campaigns of its namespace (or to the
/// campaigns it names): a JSON webhook, a Slack- or Mattermost-style message, or a commit
/// status on the revision of the definitions in force (GitHub, GitLab). Delivery is retried
/// with backoff; what could not be delivered shows in `cascade status` and the metrics.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "cascade.dev",
    version = "v1alpha1",
    kind = "Notifier",
    namespaced,
    status = "SimpleStatus",
    shortname = "ntf",
    category = "cascade",
    printcolumn = r#"{"name":"Type","type":"string","jsonPath":".spec.type"}"#,
    printcolumn = r#"{"name":"Address","type":"string","jsonPath":".spec.address"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotifierSpec {
    /// `generic` (a JSON document per event), `slack` (Slack or Mattermost incoming
    /// webhook), `github` or `gitlab` (a commit status on the applied revision).
    #[serde(rename = "type")]
    pub kind: NotifierType,
    /// The webhook's URL; for `github` and `gitlab`, the API's base URL
    /// (`https://api.github.com`, `https://gitlab.example.org`).
    pub address: String,
    /// What to send: any of `stageCompleted`, `stageFailed`, `campaignSucceeded`,
    /// `launchFailed`, `drift`. Default: all of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<NotifyEvent>,
    /// The campaigns of this namespace it watches. Default: all of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub campaigns: Vec<String>,
    /// A file on the controller's machine whose first line is the token sent with each
    /// message (`Authorization: Bearer`; GitLab's `PRIVATE-TOKEN`). Needed by `github` and
    /// `gitlab`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<String>,
    /// `github`: `owner/name`; `gitlab`: the project's path (`group/project`) or id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
}

/// How a notifier delivers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NotifierType {
    #[default]
    Generic,
    Slack,
    Github,
    Gitlab,
}

impl NotifierType {
    pub fn as_str(self) -> &'static str {
        match self {
            NotifierType::Generic => "generic",
            NotifierType::Slack => "slack",
            NotifierType::Github => "github",
            NotifierType::Gitlab => "gitlab",
        }
    }

    /// A commit status on the applied revision (needs a repository and a token).
    pub fn is_commit_status(self) -> bool {
        matches!(self, NotifierType::Github | NotifierType::Gitlab)
    }
}

/// What a notifier can be told about.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum NotifyEvent {
    /// A stage reached its completion threshold (or its split ran out).
    StageCompleted,
    /// A stage failed: a submission chain failed past its recoveries.
    StageFailed,
    /// Every stage of a campaign succeeded.
    CampaignSucceeded,
    /// A launch submitted nothing.
    LaunchFailed,
    /// The state began to contradict the definitions (an operator's pause).
    Drift,
}

impl NotifyEvent {
    pub const ALL: [NotifyEvent; 5] = [
        NotifyEvent::StageCompleted,
        NotifyEvent::StageFailed,
        NotifyEvent::CampaignSucceeded,
        NotifyEvent::LaunchFailed,
        NotifyEvent::Drift,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NotifyEvent::StageCompleted => "stageCompleted",
            NotifyEvent::StageFailed => "stageFailed",
            NotifyEvent::CampaignSucceeded => "campaignSucceeded",
            NotifyEvent::LaunchFailed => "launchFailed",
            NotifyEvent::Drift => "drift",
        }
    }

    pub fn parse(text: &str) -> Option<NotifyEvent> {
        NotifyEvent::ALL.into_iter().find(|e| e.as_str() == text)
    }
}
