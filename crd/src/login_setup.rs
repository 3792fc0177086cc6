//! `LoginSetup`: where and as whom launches run (POMS "launch template").

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::status::SimpleStatus;

/// Where and as whom a launch runs. `host: localhost` runs the launch on the controller's
/// machine; any other host runs it through `ssh account@host`.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "cascade.dev",
    version = "v1alpha1",
    kind = "LoginSetup",
    namespaced,
    status = "SimpleStatus",
    shortname = "ls",
    category = "cascade",
    printcolumn = r#"{"name":"Host","type":"string","jsonPath":".spec.host"}"#,
    printcolumn = r#"{"name":"Account","type":"string","jsonPath":".spec.account"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoginSetupSpec {
    /// Host the launch runs on. `localhost` runs locally; `%(experiment)s` may appear in it.
    pub host: String,
    /// Unix account the launch runs as on `host` (`ssh account@host`).
    pub account: String,
    /// Shell run before the launch script, e.g. `source /cvmfs/.../setup.sh; setup fife_utils`.
    /// Formatted with the built-in variables only (no campaign keywords), as in POMS.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub setup: String,
    /// Free text shown to people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}
