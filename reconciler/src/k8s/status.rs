//! What each object's `status` should say (pure): the planner's view of stages and campaigns
//! as `cascade status --format json` prints it, an `Invalid` condition for an object set
//! aside, and `Ready` for valid login setups, job types and notifiers. Conditions keep their
//! `lastTransitionTime` unless their status changed (API conventions); every condition and
//! the status carry the `observedGeneration` they describe.

use std::collections::BTreeMap;

use cascade_crd::{CampaignStageStatus, CampaignStatus, Condition};
use serde_json::{Value, json};

use super::objects::ObjRef;
use crate::model::{Diagnostic, ObjectKey};

/// The planner's statuses, as the controller last saved them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    pub stages: BTreeMap<ObjectKey, CampaignStageStatus>,
    pub campaigns: BTreeMap<ObjectKey, CampaignStatus>,
    /// Recovery submissions of each stage (for its `RecoveryLaunched` Events).
    pub recoveries: BTreeMap<ObjectKey, u32>,
}

/// The status an object should have: `None` when there is nothing to say yet (a valid stage
/// or campaign the planner has not planned).
pub fn desired(
    obj: &ObjRef,
    generation: Option<i64>,
    report: &Report,
    errors: Option<&[Diagnostic]>,
    now: &str,
) -> Option<Value> {
    let key = ObjectKey::new(obj.namespace.clone(), obj.name.clone());
    let mut status = match errors {
        Some(errors) => invalid(obj, errors, now),
        None => match obj.kind.as_str() {
            "CampaignStage" => serde_json::to_value(report.stages.get(&key)?).ok()?,
            "Campaign" => serde_json::to_value(report.campaigns.get(&key)?).ok()?,
            _ => json!({"conditions": [condition("Ready", true, "Valid", "valid", now)]}),
        },
    };
    stamp_generation(&mut status, generation);
    Some(status)
}

/// `Ready=False, reason Invalid` with the located messages `cascade validate` prints.
fn invalid(obj: &ObjRef, errors: &[Diagnostic], now: &str) -> Value {
    let message = if errors.is_empty() {
        "could not be validated".to_string()
    } else {
        errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mut status = json!({"conditions": [condition("Ready", false, "Invalid", &message, now)]});
    if obj.kind == "CampaignStage" {
        status["phase"] = json!("Invalid");
        status["reason"] = json!(first_line(&message));
    }
    status
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

fn condition(kind: &str, on: bool, reason: &str, message: &str, now: &str) -> Value {
    serde_json::to_value(Condition {
        kind: kind.into(),
        status: if on { "True" } else { "False" }.into(),
        observed_generation: None,
        reason: reason.into(),
        message: message.into(),
        last_transition_time: now.into(),
    })
    .unwrap_or(Value::Null)
}

fn stamp_generation(status: &mut Value, generation: Option<i64>) {
    let Some(g) = generation else { return };
    status["observedGeneration"] = json!(g);
    if let Some(conditions) = status["conditions"].as_array_mut() {
        for c in conditions {
            c["observedGeneration"] = json!(g);
        }
    }
}

/// Keeps, for each condition whose status did not change since `previous`, its transition
/// time from there: a condition's time says when it last flipped, not when it was written.
pub fn keep_transition_times(previous: Option<&Value>, next: &mut Value) {
    let Some(before) = previous
        .and_then(|p| p.get("conditions"))
        .and_then(Value::as_array)
    else {
        return;
    };
    let Some(conditions) = next.get_mut("conditions").and_then(Value::as_array_mut) else {
        return;
    };
    for c in conditions {
        let same = before
            .iter()
            .find(|b| b["type"] == c["type"] && b["status"] == c["status"]);
        if let Some(time) = same.and_then(|b| b.get("lastTransitionTime")) {
            c["lastTransitionTime"] = time.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::yaml::Pos;

    fn obj(kind: &str) -> ObjRef {
        ObjRef {
            kind: kind.into(),
            namespace: "exp".into(),
            name: "gen".into(),
        }
    }

    #[test]
    fn an_invalid_stage_says_why_with_the_located_message() {
        let d = Diagnostic::error(
            "exp/CampaignStage/gen.yaml",
            Pos { line: 7, col: 3 },
            "unknown-field",
            "unknown field `splt`",
        )
        .with_hint("did you mean `split`?");
        let status = desired(
            &obj("CampaignStage"),
            Some(4),
            &Report::default(),
            Some(std::slice::from_ref(&d)),
            "2026-12-06T10:00:00Z",
        )
        .unwrap();
        let c = &status["conditions"][0];
        assert_eq!(c["type"], "Ready");
        assert_eq!(c["status"], "False");
        assert_eq!(c["reason"], "Invalid");
        assert_eq!(c["message"], d.to_string());
        assert!(
            c["message"]
                .as_str()
                .unwrap()
                .starts_with("exp/CampaignStage/gen.yaml:7:3: error")
        );
        assert_eq!(c["observedGeneration"], 4);
        assert_eq!(status["observedGeneration"], 4);
        assert_eq!(status["phase"], "Invalid");
    }

    #[test]
    fn a_planned_stage_gets_the_planners_status_and_an_unplanned_one_nothing() {
        let mut report = Report::default();
        assert!(desired(&obj("CampaignStage"), Some(1), &report, None, "t").is_none());
        report.stages.insert(
            ObjectKey::new("exp", "gen"),
            CampaignStageStatus {
                phase: Some("Running".into()),
                ..Default::default()
            },
        );
        let status = desired(&obj("CampaignStage"), Some(2), &report, None, "t").unwrap();
        assert_eq!(status["phase"], "Running");
        assert_eq!(status["observedGeneration"], 2);
        let valid = desired(&obj("JobType"), None, &report, None, "t").unwrap();
        assert_eq!(valid["conditions"][0]["status"], "True");
    }

    #[test]
    fn transition_times_move_only_when_the_status_flips() {
        let before = json!({"conditions": [
            {"type": "Ready", "status": "False", "lastTransitionTime": "T1"},
            {"type": "Progressing", "status": "True", "lastTransitionTime": "T1"},
        ]});
        let mut next = json!({"conditions": [
            {"type": "Ready", "status": "False", "lastTransitionTime": "T2"},
            {"type": "Progressing", "status": "False", "lastTransitionTime": "T2"},
            {"type": "Paused", "status": "False", "lastTransitionTime": "T2"},
        ]});
        keep_transition_times(Some(&before), &mut next);
        let times: Vec<&str> = next["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["lastTransitionTime"].as_str().unwrap())
            .collect();
        assert_eq!(times, ["T1", "T2", "T2"]);
    }
}
