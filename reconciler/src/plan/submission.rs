//! A submission's next status, from its job counts and the catalog (reference §4.2, §4.3,
//! §6.2, §6.3). Pure: the clock is an input.

use crate::fast::Map;

use cascade_crd::{CompletionType, StageType};

use super::observed::{CatalogError, CatalogView, JobCounts, Status, Submission};
use super::queries;
use crate::model::{DesiredGraph, ObjectKey, Stage};

/// A `located` submission older than this is located regardless of its files (POMS's rule).
pub const LOCATE_ANYWAY_AFTER_SECONDS: i64 = 2 * 86_400;

/// How long a launch may go without any job seen before it is `LaunchFailed` (POMS: 4 h).
pub const DEFAULT_LAUNCH_TIMEOUT_SECONDS: i64 = 4 * 3600;

/// The status the batch system's counts give, or none while the submission has no jobs yet.
///
/// The agent's rules in their order (reference §6.2), then POMS's `update_submission` rule
/// (§4.2): a `Running` report whose share of finished jobs (failed ones included) reaches the
/// completion percentage is recorded `Completed`. Held jobs keep a submission `Held` whatever
/// the share (§6.4a), and an `Idle` report never completes early.
pub fn from_jobs(jobs: &JobCounts, completion_percent: f64) -> Option<Status> {
    if jobs.total == 0 {
        return None;
    }
    let active = jobs.idle + jobs.running + jobs.held;
    if active == 0 {
        if jobs.failed * 2 > jobs.succeeded {
            return Some(Status::Failed);
        }
        // POMS asks for more than one cancelled job here; one job removed out of one is no
        // more a success than ten, so any all-removed submission is `Cancelled`.
        if jobs.removed > 0 && jobs.removed == jobs.total {
            return Some(Status::Cancelled);
        }
        return Some(Status::Completed);
    }
    if jobs.held > 0 {
        return Some(Status::Held);
    }
    if jobs.running == 0 {
        return Some(Status::Idle);
    }
    let pct = f64::from(jobs.finished()) * 100.0 / f64::from(jobs.total);
    Some(if pct >= completion_percent {
        Status::Completed
    } else {
        Status::Running
    })
}

/// How many files the location check found, and how many it needs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Location {
    pub found: u64,
    pub needed: f64,
}

/// What counts as a stage's outputs: the patterns its dependents ask for (or else its job
/// type's output patterns), at its software version.
#[derive(Clone, Debug, Default)]
pub struct Outputs {
    pub patterns: Vec<String>,
    pub version: String,
}

/// The file patterns each stage's dependents ask of it, by upstream stage: one pass over the
/// graph's edges, borrowing.
pub fn wanted_patterns(graph: &DesiredGraph) -> Map<&ObjectKey, Vec<&str>> {
    let mut wanted: Map<&ObjectKey, Vec<&str>> = Map::default();
    for stage in &graph.stages {
        for e in stage.upstream_edges() {
            wanted
                .entry(&e.upstream)
                .or_default()
                .push(e.file_pattern.as_str());
        }
    }
    wanted
}

/// [`Outputs`] of a stage at `version`, `wanted` being what [`wanted_patterns`] gave for it.
pub fn outputs(
    graph: &DesiredGraph,
    stage: &Stage,
    wanted: Option<&Vec<&str>>,
    version: &str,
) -> Outputs {
    let patterns = match wanted {
        Some(w) => w.iter().map(|p| p.to_string()).collect(),
        None => graph.job_type_of(stage).output_file_patterns.clone(),
    };
    Outputs {
        patterns,
        version: version.to_string(),
    }
}

/// The location check of a completed submission (§4.3 b/c): with input files, the share of
/// inputs that have located outputs; without (generators), outputs against jobs.
pub fn location(
    stage: &Stage,
    outputs: &Outputs,
    sub: &Submission,
    catalog: &dyn CatalogView,
) -> Result<Location, CatalogError> {
    let Outputs { patterns, version } = outputs;
    let share = stage.completion.percent / 100.0;
    let has_inputs = stage.stage_type != StageType::Generator
        && catalog.count(&queries::project_inputs(&sub.id))? > 0;
    if has_inputs {
        // POMS's base is the files the jobs consumed, not those delivered (§4.3 b); only
        // outputs made since the submission count (§6.4a).
        let consumed = catalog.count(&queries::consumed_inputs(&sub.id))?;
        let q = queries::located_inputs(
            &sub.id,
            patterns,
            version,
            stage.output_ancestor_depth,
            sub.created,
        );
        return Ok(Location {
            found: catalog.count(&q)?,
            needed: consumed as f64 * share,
        });
    }
    let mut found = None::<u64>;
    for p in patterns {
        let n = catalog.count(&queries::outputs_of(&[&sub.id], p, version))?;
        found = Some(found.map_or(n, |f| f.min(n)));
    }
    Ok(Location {
        found: found.unwrap_or(0),
        needed: f64::from(sub.jobs.total) * share,
    })
}

/// The next status of a submission, with the reason, or none if it stays as it is. A catalog
/// question without an answer leaves the submission as it is and is returned as the error.
pub fn next_status(
    stage: &Stage,
    outputs: &Outputs,
    sub: &Submission,
    catalog: &dyn CatalogView,
    now: i64,
    launch_timeout: i64,
) -> Result<Option<(Status, String)>, CatalogError> {
    let recovery = sub.origin.is_recovery();
    match sub.status {
        Status::New | Status::Idle | Status::Running | Status::Held => {
            let derived = match from_jobs(&sub.jobs, stage.completion.percent) {
                Some(s) => s,
                // No job seen is no evidence of success (§6.4a): the submission stays `New`
                // until the launch timeout says the launch submitted nothing.
                None if sub.launched && now - sub.created >= launch_timeout => {
                    return Ok(Some((
                        Status::LaunchFailed,
                        format!(
                            "the launch ended but no job of it was seen within {}",
                            crate::plan::format_duration(launch_timeout)
                        ),
                    )));
                }
                None => return Ok(None),
            };
            // A failed recovery never blocks the chain (§6.3 rule 1).
            let derived = if recovery && derived == Status::Failed {
                Status::Completed
            } else {
                derived
            };
            Ok((derived != sub.status).then(|| (derived, jobs_reason(&sub.jobs))))
        }
        Status::Completed => {
            if stage.completion.kind == CompletionType::Complete
                || stage.stage_type == StageType::Approval
            {
                return Ok(Some((
                    Status::Located,
                    "completion type is `complete`".into(),
                )));
            }
            if sub.force_located {
                return Ok(Some((
                    Status::Located,
                    "forced located by an operator".into(),
                )));
            }
            if now - sub.created > LOCATE_ANYWAY_AFTER_SECONDS {
                return Ok(Some((
                    Status::Located,
                    "completed more than two days ago (POMS's rule)".into(),
                )));
            }
            let loc = location(stage, outputs, sub, catalog)?;
            let enough = loc.found as f64 >= loc.needed && (loc.needed > 0.0 || recovery);
            Ok(enough.then(|| {
                (
                    Status::Located,
                    format!(
                        "{} files located, needs {:.0}",
                        loc.found,
                        loc.needed.ceil()
                    ),
                )
            }))
        }
        _ => Ok(None),
    }
}

fn jobs_reason(jobs: &JobCounts) -> String {
    format!(
        "jobs: {} idle, {} running, {} held, {} succeeded, {} failed, {} removed of {}",
        jobs.idle, jobs.running, jobs.held, jobs.succeeded, jobs.failed, jobs.removed, jobs.total
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jobs(total: u32, running: u32, succeeded: u32, failed: u32) -> JobCounts {
        JobCounts {
            total,
            running,
            succeeded,
            failed,
            ..JobCounts::default()
        }
    }

    #[test]
    fn agent_rules_in_order() {
        assert_eq!(from_jobs(&JobCounts::default(), 95.0), None);
        assert_eq!(from_jobs(&jobs(4, 0, 1, 3), 95.0), Some(Status::Failed));
        assert_eq!(from_jobs(&jobs(4, 0, 3, 1), 95.0), Some(Status::Completed));
        assert_eq!(from_jobs(&jobs(4, 2, 2, 0), 95.0), Some(Status::Running));
        let idle = JobCounts {
            total: 2,
            idle: 2,
            ..JobCounts::default()
        };
        assert_eq!(from_jobs(&idle, 95.0), Some(Status::Idle));
        let held = JobCounts {
            total: 2,
            held: 1,
            running: 1,
            ..JobCounts::default()
        };
        assert_eq!(from_jobs(&held, 95.0), Some(Status::Held));
    }

    /// The rows of reference §6.4a that job counts decide.
    #[test]
    fn status_vectors_of_the_reference() {
        let held = JobCounts {
            total: 4,
            succeeded: 3,
            held: 1,
            ..JobCounts::default()
        };
        assert_eq!(
            from_jobs(&held, 75.0),
            Some(Status::Held),
            "held keeps it Held"
        );
        assert_eq!(
            from_jobs(&jobs(20, 1, 0, 19), 95.0),
            Some(Status::Completed),
            "a Running report at 95% finished (failed jobs count) completes it"
        );
        assert_eq!(from_jobs(&jobs(20, 0, 1, 19), 100.0), Some(Status::Failed));
        assert_eq!(from_jobs(&jobs(3, 0, 2, 1), 100.0), Some(Status::Completed));
        let removed = JobCounts {
            total: 3,
            removed: 3,
            ..JobCounts::default()
        };
        assert_eq!(from_jobs(&removed, 100.0), Some(Status::Cancelled));
        // An Idle report never completes early, whatever the share (§4.2: only `Running`).
        let idle = JobCounts {
            total: 4,
            succeeded: 3,
            idle: 1,
            ..JobCounts::default()
        };
        assert_eq!(from_jobs(&idle, 75.0), Some(Status::Idle));
    }

    #[test]
    fn completion_percent_completes_early_as_in_poms() {
        // 3 of 4 finished is 75 %: complete at 75, still running at 95.
        assert_eq!(from_jobs(&jobs(4, 1, 3, 0), 75.0), Some(Status::Completed));
        assert_eq!(from_jobs(&jobs(4, 1, 3, 0), 95.0), Some(Status::Running));
    }
}
