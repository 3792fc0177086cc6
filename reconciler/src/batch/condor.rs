//! The HTCondor adapter, for sites that submit with `condor_submit` or with jobsub (POMS's
//! `fife_launch`, reference §9.2). Job ids come from what the launch printed:
//! `condor_submit`'s `3 job(s) submitted to cluster 1234.`, jobsub's
//! `JobsubJobId of first job: 1234.0@schedd` and `Use job id 1234.0@schedd to retrieve output`.
//! Observation is `condor_q -json` for queued jobs and `condor_history -json` for the clusters
//! the queue no longer holds, one call of each per schedd per poll; the jobs' ClassAds
//! `CascadeSubmission` or `POMS4_SUBMISSION_ID` (set by POMS's jobsub wrapper) bind jobs that
//! were submitted without printing their id. Control is `condor_hold|release|rm`.

use std::collections::{BTreeMap, BTreeSet};

use cascade_crd::BatchSystem;
use serde_json::Value;

use super::external::{
    Adapter, JobSeen, JobState, json_number, json_text, push_unique, run, tag_in,
};
use super::local::Control;

pub struct Condor;

/// The ClassAd attributes read; asking for these alone keeps the answers small.
const ATTRIBUTES: &str = "ClusterId,ProcId,JobStatus,ExitCode,ExitBySignal,ExitSignal,HoldReason,RemoveReason,GlobalJobId,CascadeSubmission";

/// The ClassAd that carries a job's Cascade tag (`+CascadeSubmission = "$CASCADE_JOB_TAG"` in
/// a submit file). POMS's `POMS4_SUBMISSION_ID` is not used: submission ids repeat across
/// installations, so only the tag can claim a job that printed no id.
pub const TAG_ATTRIBUTE: &str = "CascadeSubmission";

impl Adapter for Condor {
    fn system(&self) -> BatchSystem {
        BatchSystem::Condor
    }

    fn printed_ids(&self, log: &str) -> Vec<String> {
        let mut with_schedd = Vec::new();
        let mut bare = Vec::new();
        for line in log.lines() {
            for marker in ["JobsubJobId of first job:", "Use job id"] {
                if let Some(rest) = line.split(marker).nth(1)
                    && let Some(id) = rest.split_whitespace().next()
                    && let Some((job, schedd)) = id.split_once('@')
                    && let Some(cluster) = job.split('.').next().filter(|c| is_digits(c))
                    && !schedd.is_empty()
                {
                    push_unique(&mut with_schedd, format!("{cluster}@{schedd}"));
                }
            }
            if let Some(rest) = line.split("submitted to cluster ").nth(1) {
                let cluster = rest.trim_end().trim_end_matches('.');
                if is_digits(cluster) {
                    push_unique(&mut bare, cluster.to_string());
                }
            }
        }
        // jobsub prints condor_submit's line too: the id with its schedd is the one to keep.
        let known: BTreeSet<&str> = with_schedd
            .iter()
            .filter_map(|id| id.split('@').next())
            .collect();
        let mut ids = with_schedd.clone();
        for c in bare {
            if !known.contains(c.as_str()) {
                push_unique(&mut ids, c);
            }
        }
        ids
    }

    fn observe(&self, clusters: &[String]) -> Result<Vec<JobSeen>, String> {
        let mut out = Vec::new();
        // Each schedd that holds a bound cluster is asked once, for those clusters and for
        // every job tagged with a Cascade submission. A submit host without a schedd of its
        // own (jobsub sends jobs to remote ones) is never asked about the local one.
        for (schedd, ids) in group_by_schedd(clusters) {
            let mut args = name_args(schedd.as_deref());
            args.extend(["-json".to_string(), "-attributes".into(), ATTRIBUTES.into()]);
            args.extend(ids.iter().cloned());
            args.extend([
                "-constraint".to_string(),
                format!("{TAG_ATTRIBUTE} =!= undefined"),
            ]);
            let queued = parse_ads(&run("condor_q", &args)?, schedd.as_deref())?;
            let present: BTreeSet<String> =
                queued.iter().map(|j| bare_cluster(&j.cluster)).collect();
            let gone: Vec<String> = ids
                .iter()
                .filter(|c| !present.contains(*c))
                .cloned()
                .collect();
            out.extend(queued);
            if !gone.is_empty() {
                let mut args = name_args(schedd.as_deref());
                args.extend(["-json".to_string(), "-attributes".into(), ATTRIBUTES.into()]);
                args.extend(gone);
                out.extend(parse_ads(
                    &run("condor_history", &args)?,
                    schedd.as_deref(),
                )?);
            }
        }
        Ok(out)
    }

    fn control(&self, clusters: &[String], action: Control) -> Result<(), String> {
        let program = match action {
            Control::Hold => "condor_hold",
            Control::Release => "condor_release",
            Control::Remove => "condor_rm",
        };
        for (schedd, ids) in group_by_schedd(clusters) {
            let mut args = name_args(schedd.as_deref());
            args.extend(ids);
            run(program, &args)?;
        }
        Ok(())
    }
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn name_args(schedd: Option<&str>) -> Vec<String> {
    schedd
        .map(|s| vec!["-name".to_string(), s.to_string()])
        .unwrap_or_default()
}

fn bare_cluster(cluster: &str) -> String {
    cluster.split('@').next().unwrap_or(cluster).to_string()
}

/// Bound clusters by schedd (`1234@schedd`; a bare `1234` is the local schedd's).
fn group_by_schedd(clusters: &[String]) -> BTreeMap<Option<String>, Vec<String>> {
    let mut out: BTreeMap<Option<String>, Vec<String>> = BTreeMap::new();
    for c in clusters {
        let (id, schedd) = match c.split_once('@') {
            Some((id, s)) => (id, Some(s.to_string())),
            None => (c.as_str(), None),
        };
        out.entry(schedd).or_default().push(id.to_string());
    }
    out
}

/// Jobs from `condor_q -json` or `condor_history -json`: a JSON list of ClassAds, or nothing
/// at all when no job matched.
pub fn parse_ads(text: &str, schedd: Option<&str>) -> Result<Vec<JobSeen>, String> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let ads: Vec<Value> = serde_json::from_str(text).map_err(|e| {
        format!("HTCondor printed something that is not a JSON list of ClassAds: {e}")
    })?;
    let mut out = Vec::new();
    for ad in &ads {
        let (Some(cluster), Some(proc_)) = (
            json_number(ad.get("ClusterId")),
            json_number(ad.get("ProcId")),
        ) else {
            continue;
        };
        let (state, exit_code, reason) = state_of(ad);
        let suffix = schedd.map(|s| format!("@{s}")).unwrap_or_default();
        let tag = tag_in(&json_text(ad.get(TAG_ATTRIBUTE)));
        out.push(JobSeen {
            job: format!("{cluster}.{proc_}{suffix}"),
            cluster: format!("{cluster}{suffix}"),
            state,
            exit_code,
            reason,
            tag,
        });
    }
    Ok(out)
}

/// `JobStatus` (1 Idle, 2 Running, 3 Removed, 4 Completed, 5 Held, 6 Transferring Output,
/// 7 Suspended) with the exit code of a completed job and the reason of a held or removed one.
fn state_of(ad: &Value) -> (JobState, Option<i32>, String) {
    let text = |k: &str| json_text(ad.get(k));
    match json_number(ad.get("JobStatus")) {
        Some(1) => (JobState::Idle, None, "Idle".into()),
        Some(2) => (JobState::Running, None, "Running".into()),
        Some(6) => (JobState::Running, None, "Transferring Output".into()),
        Some(3) => (
            JobState::Removed,
            None,
            format!("Removed: {}", text("RemoveReason")),
        ),
        Some(5) => (
            JobState::Held,
            None,
            format!("Held: {}", text("HoldReason")),
        ),
        Some(7) => (JobState::Held, None, "Suspended".into()),
        Some(4) => {
            let by_signal = ad.get("ExitBySignal").and_then(Value::as_bool) == Some(true);
            let code = if by_signal {
                json_number(ad.get("ExitSignal")).map(|s| 128 + s as i32)
            } else {
                json_number(ad.get("ExitCode")).map(|c| c as i32)
            };
            match code {
                Some(0) => (JobState::Succeeded, Some(0), "Completed".into()),
                Some(c) => (
                    JobState::Failed,
                    Some(c),
                    format!("Completed with exit code {c}"),
                ),
                // A completed job without an exit code: its end is not known to be a success.
                None => (
                    JobState::Failed,
                    None,
                    "Completed without an exit code".into(),
                ),
            }
        }
        other => (
            JobState::Idle,
            None,
            format!(
                "JobStatus {} not known to Cascade",
                other.map_or("missing".into(), |n| n.to_string())
            ),
        ),
    }
}

#[cfg(test)]
mod tests;
