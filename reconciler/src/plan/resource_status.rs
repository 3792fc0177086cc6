//! The planner's view of a stage and a campaign in the form of the resources' `status`
//! (Kubernetes API conventions: a phase, a reason, conditions), as a status subresource would
//! hold it and as `cascade status --format json` prints it. Pure.

use std::collections::BTreeMap;

use cascade_crd::{CampaignStageStatus, CampaignStatus, Condition};

use super::{CampaignProgress, StageState, StageStatus};

/// A stage's status. `since` is when its state last changed (RFC 3339), the transition time of
/// its conditions; `submissions` counts its submissions by status.
pub fn stage_status(
    s: &StageStatus,
    since: &str,
    generation: Option<i64>,
    submissions: BTreeMap<String, u32>,
) -> CampaignStageStatus {
    let condition = |kind: &str, on: bool, reason: &str| Condition {
        kind: kind.to_string(),
        status: if on { "True" } else { "False" }.to_string(),
        observed_generation: generation,
        reason: reason.to_string(),
        message: s.reason.clone(),
        last_transition_time: since.to_string(),
    };
    let phase = s.state.as_str();
    let succeeded = s.settled && s.state.succeeded();
    let degraded = s.state == StageState::Failed || s.chains_failed > 0;
    CampaignStageStatus {
        conditions: vec![
            // Ready: the stage's outputs are there for whatever waits on the stage as a whole.
            condition("Ready", succeeded, phase),
            condition("Progressing", s.state == StageState::Running, phase),
            // Paused by the definitions (`paused: true` on it or its campaign) or by an operator.
            condition(
                "Paused",
                paused(s),
                if paused(s) { "Paused" } else { "NotPaused" },
            ),
            condition(
                "Degraded",
                degraded,
                if degraded {
                    "SubmissionsFailed"
                } else {
                    "NoFailures"
                },
            ),
        ],
        observed_generation: generation,
        phase: Some(phase.to_string()),
        reason: Some(s.reason.clone()),
        completion_percent: Some(s.located_percent),
        submissions,
        split: s.split.clone(),
        split_position: s.split_position.clone(),
        exhausted: s.exhausted,
        revision: None,
    }
}

/// Paused by the definitions or by an operator (`cascade pause`).
fn paused(s: &StageStatus) -> bool {
    s.paused_by_definitions || s.drift.is_some()
}

/// A campaign's status from its progress and its stages' statuses.
pub fn campaign_status(
    progress: &CampaignProgress,
    stages: &[&StageStatus],
    since: &str,
) -> CampaignStatus {
    let mut by_phase: BTreeMap<String, u32> = BTreeMap::new();
    for s in stages {
        *by_phase.entry(s.state.as_str().to_string()).or_default() += 1;
    }
    let CampaignProgress {
        stages: n,
        stages_succeeded: done,
        stages_failed: failed,
        ..
    } = *progress;
    let condition = |kind: &str, on: bool, reason: &str, message: String| Condition {
        kind: kind.to_string(),
        status: if on { "True" } else { "False" }.to_string(),
        observed_generation: None,
        reason: reason.to_string(),
        message,
        last_transition_time: since.to_string(),
    };
    let running = stages.iter().any(|s| s.state == StageState::Running);
    let all_paused = n > 0 && stages.iter().all(|s| paused(s));
    CampaignStatus {
        conditions: vec![
            condition(
                "Ready",
                done == n,
                if done == n {
                    "AllStagesReady"
                } else {
                    "StagesPending"
                },
                format!("{done} of {n} stages ready"),
            ),
            condition(
                "Progressing",
                running,
                if running {
                    "StagesRunning"
                } else {
                    "NothingRunning"
                },
                format!(
                    "{} of {n} stages running",
                    stages
                        .iter()
                        .filter(|s| s.state == StageState::Running)
                        .count()
                ),
            ),
            condition(
                "Paused",
                all_paused,
                if all_paused { "Paused" } else { "NotPaused" },
                if all_paused {
                    "every stage is paused".to_string()
                } else {
                    "not paused".to_string()
                },
            ),
            condition(
                "Succeeded",
                done == n,
                if done == n {
                    "AllStagesSucceeded"
                } else {
                    "StagesPending"
                },
                format!("{done} of {n} stages succeeded"),
            ),
            condition(
                "Degraded",
                failed > 0,
                if failed > 0 {
                    "StagesFailed"
                } else {
                    "NoFailures"
                },
                format!("{failed} of {n} stages failed"),
            ),
        ],
        observed_generation: None,
        progress_percent: Some(progress.progress * 100.0),
        stages: by_phase,
        revision: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ObjectKey;
    use crate::plan::JobCounts;
    use cascade_crd::{SplitFields, SplitType};

    fn status(state: StageState, settled: bool, failed: u32) -> StageStatus {
        StageStatus {
            stage: ObjectKey::new("exp", "gen"),
            campaign: ObjectKey::new("exp", "camp"),
            state,
            reason: "completed: 100% located (4 of 4 submissions), needs 95%".into(),
            settled,
            blocked: false,
            located_percent: 100.0,
            progress: if settled { 1.0 } else { 0.5 },
            submissions: 4,
            chains_located: 4 - failed,
            chains_failed: failed,
            chains_in_flight: 0,
            jobs: JobCounts::default(),
            launches: 0,
            queued: Vec::new(),
            next_fire: None,
            drift: None,
            paused_by_definitions: false,
            split: Some(SplitFields {
                kind: SplitType::Nfiles,
                n: Some(10),
                ..SplitFields::default()
            }),
            split_position: Some("slice 4".into()),
            exhausted: true,
            shape: Default::default(),
        }
    }

    #[test]
    fn a_completed_stage_is_ready_with_its_split_in_typed_form() {
        let counts = BTreeMap::from([("Located".to_string(), 4)]);
        let out = stage_status(
            &status(StageState::Completed, true, 0),
            "2026-11-24T10:00:00Z",
            Some(3),
            counts.clone(),
        );
        assert_eq!(out.phase.as_deref(), Some("Completed"));
        assert_eq!(out.submissions, counts);
        assert_eq!(
            out.split.as_ref().map(|s| (s.kind, s.n)),
            Some((SplitType::Nfiles, Some(10)))
        );
        assert_eq!(out.split_position.as_deref(), Some("slice 4"));
        assert!(out.exhausted);
        let get = |k: &str| out.conditions.iter().find(|c| c.kind == k).unwrap();
        assert_eq!(get("Ready").status, "True");
        assert_eq!(get("Progressing").status, "False");
        assert_eq!(get("Degraded").status, "False");
        assert!(
            out.conditions
                .iter()
                .all(|c| c.observed_generation == Some(3)
                    && c.last_transition_time == "2026-11-24T10:00:00Z")
        );
        let yaml = serde_json::to_value(&out).unwrap();
        assert_eq!(
            yaml["split"],
            serde_json::json!({"type": "nfiles", "n": 10})
        );
    }

    #[test]
    fn failures_degrade_the_stage_and_the_campaign() {
        let failed = status(StageState::Failed, true, 2);
        let running = status(StageState::Running, false, 0);
        let out = stage_status(&failed, "t", None, BTreeMap::new());
        let get = |k: &str| {
            out.conditions
                .iter()
                .find(|c| c.kind == k)
                .unwrap()
                .status
                .clone()
        };
        assert_eq!(
            (get("Ready"), get("Degraded")),
            ("False".into(), "True".into())
        );
        let list = [&failed, &running];
        let progress = CampaignProgress::of(ObjectKey::new("exp", "camp"), &list);
        let campaign = campaign_status(&progress, &list, "t");
        assert_eq!(campaign.progress_percent, Some(75.0));
        assert_eq!(campaign.stages.get("Failed"), Some(&1));
        assert_eq!(campaign.stages.get("Running"), Some(&1));
        let get = |k: &str| campaign.conditions.iter().find(|c| c.kind == k).unwrap();
        assert_eq!(get("Succeeded").status, "False");
        assert_eq!(get("Degraded").message, "1 of 2 stages failed");
    }
}
