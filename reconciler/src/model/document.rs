//! Resources Cascade writes as YAML documents.

use cascade_crd::{Campaign, CampaignStage, JobType, LoginSetup};

/// A resource to write out as YAML (imported from POMS, or cloned).
#[derive(Clone, Debug)]
pub enum Document {
    LoginSetup(LoginSetup),
    JobType(JobType),
    Campaign(Box<Campaign>),
    Stage(Box<CampaignStage>),
}

impl Document {
    pub fn kind_and_name(&self) -> (&'static str, String) {
        match self {
            Document::LoginSetup(r) => ("LoginSetup", r.metadata.name.clone().unwrap_or_default()),
            Document::JobType(r) => ("JobType", r.metadata.name.clone().unwrap_or_default()),
            Document::Campaign(r) => ("Campaign", r.metadata.name.clone().unwrap_or_default()),
            Document::Stage(r) => ("CampaignStage", r.metadata.name.clone().unwrap_or_default()),
        }
    }

    pub fn to_yaml(&self) -> String {
        let text = match self {
            Document::LoginSetup(r) => serde_saphyr::to_string(r),
            Document::JobType(r) => serde_saphyr::to_string(r),
            Document::Campaign(r) => serde_saphyr::to_string(r),
            Document::Stage(r) => serde_saphyr::to_string(r),
        };
        text.unwrap_or_else(|e| format!("# cannot write this resource: {e}\n"))
    }
}
