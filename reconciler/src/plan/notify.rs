//! What is worth telling people: the transitions between the stages' last saved states and
//! the new ones (a stage completed or failed, a campaign succeeded, drift appeared), and which
//! notifier is told what. Pure: the ledger records what this decides in the transaction that
//! saves the new states, so a crash neither loses nor repeats a notification.

use std::collections::{BTreeMap, BTreeSet};

use cascade_crd::{NotifierSpec, NotifyEvent};
use serde::{Deserialize, Serialize};

use super::StageStatus;
use crate::model::ObjectKey;

/// A stage as last saved.
#[derive(Clone, Debug, PartialEq)]
pub struct Prior {
    pub stage: ObjectKey,
    pub campaign: String,
    pub state: String,
    pub drift: bool,
}

/// Something that happened, as notifiers are told it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Happening {
    pub event: NotifyEvent,
    pub namespace: String,
    pub campaign: String,
    /// The stage's name, or the submission's id for a launch failure; empty for a campaign.
    pub subject: String,
    /// One sentence for people.
    pub message: String,
    /// The revision of the definitions in force (a git commit), if any.
    pub revision: Option<String>,
    /// Unix seconds.
    pub at: i64,
}

fn succeeded(state: &str) -> bool {
    matches!(state, "Completed" | "Exhausted")
}

/// The happenings between `before` (the saved stages) and `after` (the new statuses). A stage
/// seen for the first time has no transition: a notifier added to a finished campaign does not
/// announce it again.
pub fn stage_happenings(
    before: &[Prior],
    after: &[StageStatus],
    revision: Option<&str>,
    at: i64,
) -> Vec<Happening> {
    let prior: BTreeMap<&ObjectKey, &Prior> = before.iter().map(|p| (&p.stage, p)).collect();
    let happening = |event, s: &StageStatus, subject: &str, message: String| Happening {
        event,
        namespace: s.stage.namespace.to_string(),
        campaign: s.campaign.name.to_string(),
        subject: subject.to_string(),
        message,
        revision: revision.map(str::to_string),
        at,
    };
    let mut out = Vec::new();
    for s in after {
        let Some(p) = prior.get(&s.stage) else {
            continue;
        };
        let state = s.state.as_str();
        if state != p.state {
            if succeeded(state) && !succeeded(&p.state) {
                out.push(happening(
                    NotifyEvent::StageCompleted,
                    s,
                    &s.stage.name,
                    format!("stage {} is {state}: {}", s.stage, s.reason),
                ));
            } else if state == "Failed" {
                out.push(happening(
                    NotifyEvent::StageFailed,
                    s,
                    &s.stage.name,
                    format!("stage {} failed: {}", s.stage, s.reason),
                ));
            }
        }
        if let (Some(drift), false) = (&s.drift, p.drift) {
            out.push(happening(
                NotifyEvent::Drift,
                s,
                &s.stage.name,
                format!("stage {} drifted: {drift}", s.stage),
            ));
        }
    }
    // Campaigns all of whose stages succeeded now, and not all before (each had been seen).
    let mut campaigns: BTreeMap<ObjectKey, Vec<&StageStatus>> = BTreeMap::new();
    for s in after {
        campaigns.entry(s.campaign.clone()).or_default().push(s);
    }
    for (campaign, stages) in campaigns {
        let all_now = stages.iter().all(|s| s.state.succeeded());
        let all_before = stages
            .iter()
            .all(|s| prior.get(&s.stage).is_none_or(|p| succeeded(&p.state)));
        let all_known = stages.iter().all(|s| prior.contains_key(&s.stage));
        if all_now && all_known && !all_before {
            out.push(Happening {
                event: NotifyEvent::CampaignSucceeded,
                namespace: campaign.namespace.to_string(),
                campaign: campaign.name.to_string(),
                subject: String::new(),
                message: format!(
                    "campaign {campaign} succeeded: all {} stages completed",
                    stages.len()
                ),
                revision: revision.map(str::to_string),
                at,
            });
        }
    }
    out
}

/// Whether `notifier` (of `namespace`) is told of `h`.
pub fn wants(namespace: &str, notifier: &NotifierSpec, h: &Happening) -> bool {
    h.namespace == namespace
        && (notifier.campaigns.is_empty() || notifier.campaigns.contains(&h.campaign))
        && (notifier.events.is_empty() || notifier.events.contains(&h.event))
}

/// Each happening with the notifiers that are told of it.
pub fn deliveries<'a>(
    notifiers: &'a BTreeMap<ObjectKey, NotifierSpec>,
    happenings: &'a [Happening],
) -> Vec<(&'a ObjectKey, &'a NotifierSpec, &'a Happening)> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for h in happenings {
        for (key, spec) in notifiers {
            if wants(&key.namespace, spec, h)
                && seen.insert((key, h.event, &h.subject, &h.campaign))
            {
                out.push((key, spec, h));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::StageState;

    fn status(stage: &str, campaign: &str, state: StageState, drift: Option<&str>) -> StageStatus {
        let mut s: StageStatus = serde_json::from_value(serde_json::json!({
            "stage": {"namespace": "exp", "name": stage},
            "campaign": {"namespace": "exp", "name": campaign},
            "state": state, "reason": "because",
            "settled": false, "blocked": false, "locatedPercent": 0.0, "progress": 0.0,
            "submissions": 0, "chainsLocated": 0, "chainsFailed": 0, "chainsInFlight": 0,
            "jobs": {"total": 0, "idle": 0, "running": 0, "held": 0, "succeeded": 0, "failed": 0, "removed": 0},
            "launches": 0, "queued": [], "nextFire": null, "drift": null,
        }))
        .unwrap();
        s.drift = drift.map(str::to_string);
        s
    }

    fn prior(stage: &str, campaign: &str, state: &str, drift: bool) -> Prior {
        Prior {
            stage: ObjectKey::new("exp", stage),
            campaign: campaign.into(),
            state: state.into(),
            drift,
        }
    }

    fn events(h: &[Happening]) -> Vec<(NotifyEvent, &str)> {
        h.iter()
            .map(|h| {
                (
                    h.event,
                    if h.subject.is_empty() {
                        h.campaign.as_str()
                    } else {
                        h.subject.as_str()
                    },
                )
            })
            .collect()
    }

    #[test]
    fn transitions_are_told_once_and_first_sightings_never() {
        use NotifyEvent::*;
        let before = [
            prior("gen", "c", "Completed", false),
            prior("reco", "c", "Running", false),
            prior("ana", "d", "Running", false),
            prior("sim", "d", "Running", false),
        ];
        let after = [
            status("gen", "c", StageState::Completed, None),
            status("reco", "c", StageState::Exhausted, None),
            status("ana", "d", StageState::Failed, None),
            status("sim", "d", StageState::Running, Some("paused by alice")),
            // Never saved before: no transition.
            status("new", "e", StageState::Completed, None),
        ];
        let h = stage_happenings(&before, &after, Some("abc123"), 7);
        assert_eq!(
            events(&h),
            vec![
                (StageCompleted, "reco"),
                (StageFailed, "ana"),
                (Drift, "sim"),
                (CampaignSucceeded, "c"),
            ]
        );
        assert!(
            h.iter()
                .all(|h| h.revision.as_deref() == Some("abc123") && h.at == 7)
        );
        // The same states again: nothing new.
        let again: Vec<Prior> = after
            .iter()
            .map(|s| {
                prior(
                    &s.stage.name,
                    &s.campaign.name,
                    s.state.as_str(),
                    s.drift.is_some(),
                )
            })
            .collect();
        assert!(stage_happenings(&again, &after, None, 8).is_empty());
    }

    #[test]
    fn notifiers_are_told_what_they_chose_of_their_namespace() {
        let h = Happening {
            event: NotifyEvent::StageFailed,
            namespace: "exp".into(),
            campaign: "c".into(),
            subject: "reco".into(),
            message: String::new(),
            revision: None,
            at: 0,
        };
        let spec = |events: Vec<NotifyEvent>, campaigns: Vec<&str>| NotifierSpec {
            address: "http://127.0.0.1:1/".into(),
            events,
            campaigns: campaigns.into_iter().map(str::to_string).collect(),
            ..Default::default()
        };
        assert!(wants("exp", &spec(vec![], vec![]), &h));
        assert!(!wants("other", &spec(vec![], vec![]), &h));
        assert!(wants(
            "exp",
            &spec(vec![NotifyEvent::StageFailed], vec!["c"]),
            &h
        ));
        assert!(!wants("exp", &spec(vec![NotifyEvent::Drift], vec![]), &h));
        assert!(!wants("exp", &spec(vec![], vec!["d"]), &h));
    }
}
