//! `JobType`: what a launch runs (POMS "campaign definition").

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::Param;
use crate::status::SimpleStatus;

/// What a launch runs: the launch script, its ordered parameters, the outputs its jobs write,
/// the recovery rounds to run over failed work, and the batch system its jobs land on.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "cascade.dev",
    version = "v1alpha1",
    kind = "JobType",
    namespaced,
    status = "SimpleStatus",
    shortname = "jt",
    category = "cascade",
    printcolumn = r#"{"name":"Batch","type":"string","jsonPath":".spec.batchSystem"}"#,
    printcolumn = r#"{"name":"Script","type":"string","jsonPath":".spec.launchScript"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobTypeSpec {
    /// Command that submits the jobs, e.g. `fife_launch -c gen.cfg` or
    /// `cascade submit --jobs 5 -- ./gen.sh`. Shell written by the campaign's authors.
    pub launch_script: String,
    /// Ordered parameters appended to the launch script, `[key, value]` pairs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<Param>,
    /// File-name patterns (SQL LIKE, `%` wildcard) of the outputs its jobs write, or catalog
    /// query fragments when they contain a space. Used to locate outputs when the stage has no
    /// dependent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output_file_patterns: Vec<String>,
    /// Ordered recovery rounds run after a submission is located, each once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recoveries: Vec<RecoveryStep>,
    /// Batch system the launched jobs run on, which Cascade observes. Default `local`.
    #[serde(default)]
    pub batch_system: BatchSystem,
    /// Expected input files per job (informational, POMS `input_files_per_job`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_files_per_job: Option<u32>,
    /// Expected output files per job (informational, POMS `output_files_per_job`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_files_per_job: Option<u32>,
    /// Free text shown to people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// One recovery round: which files to relaunch and the parameter overrides for the relaunch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecoveryStep {
    /// Which input files the recovery relaunches.
    #[serde(rename = "type")]
    pub kind: RecoveryType,
    /// Overrides applied to the recovery launch (e.g. more memory).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameter_overrides: Vec<Param>,
}

/// Recovery types of POMS (reference §5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecoveryType {
    /// Files the original jobs did not mark consumed.
    ConsumedStatus,
    /// Like `consumed_status`, plus files whose job reported failure (`proj_status` in old files).
    #[serde(alias = "proj_status")]
    ProcessStatus,
    /// Files added to the input dataset since the submission ran.
    AddedFiles,
    /// Inputs that have no located output for this software version.
    PendingFiles,
    /// Files delivered to a job but never consumed.
    DeliveredNotConsumed,
}

impl RecoveryType {
    pub fn as_str(self) -> &'static str {
        match self {
            RecoveryType::ConsumedStatus => "consumed_status",
            RecoveryType::ProcessStatus => "process_status",
            RecoveryType::AddedFiles => "added_files",
            RecoveryType::PendingFiles => "pending_files",
            RecoveryType::DeliveredNotConsumed => "delivered_not_consumed",
        }
    }
}

/// Batch system a job type's jobs run on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BatchSystem {
    /// Cascade's embedded batch system (`cascade submit`).
    #[default]
    Local,
    /// Slurm (`sbatch`, observed with `squeue`).
    Slurm,
    /// Kubernetes `batch/v1` Jobs.
    Kubernetes,
    /// HTCondor through `jobsub`/`condor_*` commands.
    Condor,
}

impl BatchSystem {
    pub fn as_str(self) -> &'static str {
        match self {
            BatchSystem::Local => "local",
            BatchSystem::Slurm => "slurm",
            BatchSystem::Kubernetes => "kubernetes",
            BatchSystem::Condor => "condor",
        }
    }
}
