//! Cascade's resource types: `LoginSetup`, `JobType`, `Campaign`, `CampaignStage` and `Notifier`
//! (`apiVersion: cascade.dev/v1alpha1`), their status types, and the pure parts of their
//! meaning that need no context: the split-policy grammar and the completion settings.
//!
//! This crate does no IO and pulls in nothing async: it is shared by the loader, the planner,
//! the Kubernetes source and the CRD/JSON-Schema generators.

pub mod campaign;
pub mod common;
pub mod job_type;
pub mod login_setup;
pub mod notifier;
pub mod split;
pub mod stage;
pub mod status;

pub use campaign::{Campaign, CampaignSpec, CampaignState, RemovalPolicy};
pub use common::{Completion, CompletionType, Param};
pub use job_type::{BatchSystem, JobType, JobTypeSpec, RecoveryStep, RecoveryType};
pub use login_setup::{LoginSetup, LoginSetupSpec};
pub use notifier::{Notifier, NotifierSpec, NotifierType, NotifyEvent};
pub use split::{SplitFields, SplitPolicy, SplitSpec, SplitType};
pub use stage::{
    CampaignStage, CampaignStageSpec, Dependency, DependencyTrigger, StageDefaults, StageType,
};
pub use status::{CampaignStageStatus, CampaignStatus, Condition, SimpleStatus};

/// Annotation keeping the name a resource had in POMS when `import-ini` had to change it to a
/// Kubernetes name; `export-ini` writes it back and launches report it to POMS's wrappers.
pub const POMS_NAME_ANNOTATION: &str = "cascade.dev/poms-name";

/// API group of every Cascade resource.
pub const GROUP: &str = "cascade.dev";
/// API version of every Cascade resource.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` as written in documents.
pub const API_VERSION: &str = "cascade.dev/v1alpha1";

/// The CustomResourceDefinitions of the kinds, in [`KINDS`] order.
pub fn crds()
-> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>
{
    use kube::CustomResourceExt;
    vec![
        LoginSetup::crd(),
        JobType::crd(),
        Campaign::crd(),
        CampaignStage::crd(),
        Notifier::crd(),
    ]
}

/// The kinds, in the order their references resolve (a stage needs the three before it; a
/// notifier names campaigns).
pub const KINDS: [&str; 5] = [
    "LoginSetup",
    "JobType",
    "Campaign",
    "CampaignStage",
    "Notifier",
];

/// `skip_serializing_if` helper for flags that default to false.
pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}
