//! Cloning a campaign under a new name (POMS rules, reference §7), pure: the stages, their
//! fields and dependencies, the defaults and keywords are copied; login setups and job types
//! are shared; submissions, split positions, pauses, schedules and tags are not cloned.
//! Stage names are unique per namespace in Cascade (per campaign in POMS), so a stage name
//! that contains the campaign's name has it replaced, and any other is prefixed with the new
//! campaign's name.

use std::collections::BTreeMap;

use cascade_crd::{Campaign, CampaignStage};

use super::document::Document;
use super::load::Spec;
use super::{DesiredGraph, ObjectKey, Resource};

fn stage_name(stage: &str, from: &str, to: &str) -> String {
    if stage.contains(from) {
        stage.replacen(from, to, 1)
    } else {
        format!("{to}-{stage}")
    }
}

/// The new campaign and its stages, and notes on what was not cloned.
pub fn clone(
    resources: &[Resource],
    graph: &DesiredGraph,
    from: &ObjectKey,
    to: &str,
) -> Result<(Vec<Document>, Vec<String>), String> {
    if graph
        .campaigns
        .contains_key(&ObjectKey::new(&from.namespace, to))
    {
        return Err(format!(
            "a campaign `{}/{to}` exists already",
            from.namespace
        ));
    }
    let find = |kind: &str, name: &str| {
        resources
            .iter()
            .find(|r| r.kind() == kind && r.namespace() == from.namespace && r.name() == name)
    };
    let Some(Spec::Campaign(spec)) = find("Campaign", &from.name).map(|r| &r.spec) else {
        return Err(format!("no campaign `{from}` in the definitions"));
    };
    let mut notes = Vec::new();
    let mut campaign_spec = spec.as_ref().clone();
    if !campaign_spec.tags.is_empty() {
        notes.push("tags are not cloned".to_string());
        campaign_spec.tags.clear();
    }
    campaign_spec.paused = false;
    let mut campaign = Campaign::new(to, campaign_spec);
    campaign.metadata.namespace = Some(from.namespace.to_string());
    let mut documents = vec![Document::Campaign(Box::new(campaign))];

    let stages: Vec<&str> = graph
        .stages
        .iter()
        .filter(|s| &s.campaign == from)
        .map(|s| s.key.name.as_str())
        .collect();
    let names: BTreeMap<&str, String> = stages
        .iter()
        .map(|s| (*s, stage_name(s, &from.name, to)))
        .collect();
    for stage in stages {
        let Some(Spec::CampaignStage(spec)) = find("CampaignStage", stage).map(|r| &r.spec) else {
            continue;
        };
        let mut spec = spec.as_ref().clone();
        spec.campaign = to.to_string();
        for d in &mut spec.depends_on {
            if let Some(n) = names.get(d.stage.as_str()) {
                d.stage = n.clone();
            }
        }
        if spec.schedule.take().is_some() {
            notes.push(format!(
                "stage `{stage}`: its schedule is not cloned (as in POMS)"
            ));
        }
        spec.paused = None;
        let mut s = CampaignStage::new(&names[stage], spec);
        s.metadata.namespace = Some(from.namespace.to_string());
        documents.push(Document::Stage(Box::new(s)));
    }
    Ok((documents, notes))
}

#[cfg(test)]
mod tests {
    use super::stage_name;

    #[test]
    fn stage_names_follow_the_campaign_name() {
        assert_eq!(stage_name("mc-gen", "mc", "mc2"), "mc2-gen");
        assert_eq!(
            stage_name("eve-mc-gen", "eve-mc", "eve-mc-v2"),
            "eve-mc-v2-gen"
        );
        assert_eq!(stage_name("gen", "eve-mc", "new"), "new-gen");
    }
}
