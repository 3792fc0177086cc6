//! Planning (pure). This first part answers what a first reconcile would do with no observed
//! state: for each stage, the launch it would run now, or what it waits for and why.

use serde::Serialize;

use crate::launch::compose::{LaunchRequest, compose};
use crate::model::{DesiredGraph, Stage};
use crate::split::{Cursor, FileFact, Next, next};
use cascade_crd::{CampaignState, DependencyTrigger};

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "camelCase")]
pub enum StagePlan {
    /// Launch now.
    #[serde(rename_all = "camelCase")]
    Launch {
        stage: String,
        submission: String,
        slice: Option<String>,
        command: String,
        argv: Vec<String>,
        env: Vec<(String, String)>,
        display: String,
    },
    /// Nothing to launch; `reason` says why, in one sentence.
    #[serde(rename_all = "camelCase")]
    Wait { stage: String, reason: String },
}

/// The plan of a first reconcile. `files` gives the catalog's files of a dataset name (none
/// without a catalog), `experimenter` the launching user.
pub fn first_reconcile(
    graph: &DesiredGraph,
    files: &dyn Fn(&str) -> Vec<FileFact>,
    experimenter: &str,
) -> Vec<StagePlan> {
    graph
        .stages
        .iter()
        .map(|stage| plan_stage(graph, stage, files, experimenter))
        .collect()
}

fn plan_stage(
    graph: &DesiredGraph,
    stage: &Stage,
    files: &dyn Fn(&str) -> Vec<FileFact>,
    experimenter: &str,
) -> StagePlan {
    let name = stage.key.to_string();
    let wait = |reason: String| StagePlan::Wait {
        stage: name.clone(),
        reason,
    };
    let campaign = graph.campaign_of(stage);
    if campaign.state == CampaignState::Inactive {
        return wait(format!("campaign `{}` is inactive", stage.campaign.name));
    }
    if campaign.paused {
        return wait(format!(
            "campaign `{}` is paused: launches are queued until it resumes",
            stage.campaign.name
        ));
    }
    if stage.paused {
        return wait("stage is paused: launches are queued until it resumes".into());
    }
    let upstream: Vec<_> = stage.upstream_edges().collect();
    if !upstream.is_empty() {
        let percent = |e: &crate::model::Edge| {
            graph
                .stage(&e.upstream)
                .map_or(0.0, |u| u.completion.percent)
        };
        let reason = if stage.join {
            let names: Vec<String> = upstream
                .iter()
                .map(|e| format!("`{}` (needs {}%)", e.upstream.name, percent(e)))
                .collect();
            format!(
                "waiting for all of stages {} to complete: none has started",
                names.join(" and ")
            )
        } else {
            let parts: Vec<String> = upstream
                .iter()
                .map(|e| match e.trigger {
                    DependencyTrigger::Submission => format!(
                        "stage `{}`: 0 submissions located yet; each located submission launches this stage over its `{}` outputs",
                        e.upstream.name, e.file_pattern
                    ),
                    DependencyTrigger::StageComplete => format!(
                        "stage `{}` to reach {}%: not started",
                        e.upstream.name,
                        percent(e)
                    ),
                })
                .collect();
            format!("waiting for {}", parts.join("; and for "))
        };
        return wait(reason);
    }
    if stage.schedule.is_some() {
        return wait(format!(
            "launches on its schedule `{}`",
            stage.schedule.as_deref().unwrap_or_default()
        ));
    }
    let (slice, slice_index) = match (&stage.split, &stage.dataset) {
        (Some(policy), Some(data)) => {
            let facts = stage.dataset_text().map(files).unwrap_or_default();
            match next(policy, data, &Cursor::Start, &facts, 0) {
                Next::Slice { slice, .. } => (Some(slice.name), 0),
                Next::Exhausted => {
                    return wait(format!(
                        "split `{policy}` has nothing to launch: the catalog holds no files of dataset `{}`",
                        stage.dataset_text().unwrap_or_default()
                    ));
                }
            }
        }
        (None, Some(_)) => (stage.dataset_text().map(String::from), 0),
        _ => (None, 0),
    };
    let submission = format!("{}-s{slice_index}", stage.key.name);
    let req = LaunchRequest {
        stage,
        dataset: slice.as_deref(),
        submission_id: &submission,
        parent_submission_id: None,
        test: false,
        explicit_overrides: &[],
        experimenter,
    };
    match compose(graph, &req) {
        Ok(l) => StagePlan::Launch {
            stage: name,
            submission,
            slice,
            command: l.command,
            argv: l.argv,
            env: l.env,
            display: l.display,
        },
        Err(e) => wait(format!("cannot compose its launch: {e}")),
    }
}
