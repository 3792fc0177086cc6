//! Planning (pure): from the desired graph, the observed state, a catalog view and `now`, the
//! ordered actions to take and each stage's status with the reason it is not advancing.

pub mod notify;
pub mod observed;
mod planner;
pub mod queries;
pub mod resource_status;
pub mod review;
pub mod submission;

#[cfg(test)]
mod tests;

pub use observed::{
    CatalogError, CatalogView, FixedCatalog, JobCounts, Observed, Origin, RecoveryRound, Request,
    Status, Submission,
};
pub use planner::{
    Action, CampaignProgress, Define, LaunchAction, Plan, PlanInput, ShapeEdge, StageShape,
    StageState, StageStatus, plan, schedule_fires,
};

/// A unix time in RFC 3339 (`2026-11-24T10:00:00Z`), as Kubernetes statuses write times.
pub fn rfc3339(t: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| t.to_string())
}

/// A unix time as people read it, in UTC.
pub fn format_time(t: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_else(|| t.to_string())
}

/// A number of seconds as people write it: `4h`, `90s`, `1h30m`.
pub fn format_duration(seconds: i64) -> String {
    if seconds <= 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let mut rest = seconds;
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if rest >= size {
            out.push_str(&format!("{}{unit}", rest / size));
            rest %= size;
        }
    }
    out
}
