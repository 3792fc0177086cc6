//! What each page shows, read from the ledger: plain data for the templates, which escape
//! every value they print.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use super::secrets::Secrets;
use crate::ledger::{Ledger, Result, SavedStage};
use crate::model::ObjectKey;
use crate::plan::{format_time, rfc3339};

/// Files listed at most on one page (the count says how many there are in all).
pub const FILES_SHOWN: usize = 500;

/// Campaigns listed on one page of the campaigns list.
pub const CAMPAIGNS_PER_PAGE: usize = 100;

/// Bytes of a launch log shown (its end, where the errors are).
pub const LOG_TAIL_BYTES: u64 = 64 * 1024;

/// A campaign's overall state, from its stages' states: what a production manager looks for
/// first in the list.
fn campaign_state(stages: &BTreeMap<String, u32>) -> &'static str {
    let has = |s: &str| stages.get(s).copied().unwrap_or(0) > 0;
    let total: u32 = stages.values().sum();
    let done = stages.get("Completed").copied().unwrap_or(0)
        + stages.get("Exhausted").copied().unwrap_or(0);
    if total > 0 && done == total {
        "Succeeded"
    } else if has("Failed") {
        "Failed"
    } else if has("Degraded") {
        "Degraded"
    } else if has("Running") {
        "Running"
    } else {
        "Waiting"
    }
}

#[derive(Serialize)]
struct CampaignRow {
    namespace: String,
    name: String,
    state: &'static str,
    progress: f64,
    stages: BTreeMap<String, u32>,
    last_activity: String,
}

/// The campaigns page: the campaigns (of `namespace`, when given), [`CAMPAIGNS_PER_PAGE`]
/// at a time from page `page` (1-based).
pub fn campaigns(ledger: &Ledger, namespace: Option<&str>, page: usize) -> Result<Value> {
    let stages = ledger.saved_stage_status()?;
    let mut namespaces: Vec<String> = stages
        .iter()
        .map(|s| s.stage.namespace.to_string())
        .collect();
    namespaces.sort();
    namespaces.dedup();
    let statuses = crate::cli::status::campaign_statuses(&stages);
    let chosen: Vec<_> = statuses
        .into_iter()
        .filter(|(key, _)| {
            namespace.is_none_or(|want| key.split_once('/').is_some_and(|(ns, _)| ns == want))
        })
        .collect();
    let total = chosen.len();
    let pages = total.div_ceil(CAMPAIGNS_PER_PAGE).max(1);
    let page = page.clamp(1, pages);
    let shown: Vec<_> = chosen
        .into_iter()
        .skip((page - 1) * CAMPAIGNS_PER_PAGE)
        .take(CAMPAIGNS_PER_PAGE)
        .collect();
    // When each shown campaign last changed: a stage's state, or one of its submissions.
    let of_shown: Vec<&SavedStage> = stages
        .iter()
        .filter(|s| {
            shown.iter().any(|(key, _)| {
                key.split_once('/')
                    .is_some_and(|(ns, name)| s.stage.namespace == ns && s.campaign == name)
            })
        })
        .collect();
    let keys: Vec<&ObjectKey> = of_shown.iter().map(|s| &s.stage).collect();
    let activity = ledger.last_submission_updates(&keys)?;
    let mut rows = Vec::new();
    for (key, status) in shown {
        let (ns, name) = key.split_once('/').unwrap_or(("", &key));
        let last = of_shown
            .iter()
            .filter(|s| s.stage.namespace == ns && s.campaign == name)
            .map(|s| s.since.max(activity.get(&s.stage).copied().unwrap_or(0)))
            .max()
            .unwrap_or(0);
        rows.push(CampaignRow {
            namespace: ns.to_string(),
            name: name.to_string(),
            state: campaign_state(&status.stages),
            progress: status.progress_percent.unwrap_or(0.0),
            stages: status.stages,
            last_activity: if last > 0 {
                format_time(last)
            } else {
                "-".into()
            },
        });
    }
    Ok(json!({
        "campaigns": rows,
        "namespaces": namespaces,
        "namespace": namespace,
        "page": page,
        "pages": pages,
        "total": total,
    }))
}

/// One stage as the campaign and stage pages show it.
fn stage_row(s: &SavedStage) -> Value {
    let status = s.status.as_ref();
    json!({
        "namespace": s.stage.namespace,
        "name": s.stage.name,
        "state": s.state,
        "reason": s.reason,
        "drift": s.drift,
        "since": format_time(s.since),
        "progress": status.map_or(0.0, |st| st.progress * 100.0),
        "located_percent": status.map(|st| st.located_percent),
        "submissions": status.map_or(0, |st| st.submissions),
        "jobs": status.map(|st| st.jobs),
        "split": status.and_then(|st| st.split.as_ref()).and_then(|f| {
            cascade_crd::SplitSpec::Mapping(f.clone()).policy().ok().flatten().map(|p| p.to_string())
        }),
        "split_position": status.and_then(|st| st.split_position.clone()),
        "exhausted": status.is_some_and(|st| st.exhausted),
        "completion": status.and_then(|st| st.shape.completion.clone()),
        "stage_type": status.map(|st| st.shape.stage_type.clone()),
        "depends_on": status.map(|st| st.shape.depends_on.clone()).unwrap_or_default(),
        "join": status.is_some_and(|st| st.shape.join),
        "queued": status.map(|st| st.queued.clone()).unwrap_or_default(),
    })
}

/// The campaign page: its stages with their reasons, and their graph.
pub fn campaign(ledger: &Ledger, key: &ObjectKey) -> Result<Option<Value>> {
    let all = ledger.saved_campaign_stages(key)?;
    let stages: Vec<&SavedStage> = all.iter().collect();
    if stages.is_empty() {
        return Ok(None);
    }
    let mut counts = BTreeMap::new();
    for s in &stages {
        *counts.entry(s.state.clone()).or_insert(0u32) += 1;
    }
    let progress = stages
        .iter()
        .map(|s| s.status.as_ref().map_or(0.0, |st| st.progress))
        .sum::<f64>()
        / stages.len() as f64;
    Ok(Some(json!({
        "namespace": key.namespace,
        "name": key.name,
        "state": campaign_state(&counts),
        "progress": progress * 100.0,
        "counts": counts,
        "stages": stages.iter().map(|s| stage_row(s)).collect::<Vec<_>>(),
        "graph": crate::server::graph::campaign_svg(&stages),
        "paused": paused(ledger, &key.namespace, &key.name)?,
    })))
}

/// Who paused `namespace/name` and why, if it is paused by an operator.
fn paused(ledger: &Ledger, namespace: &str, name: &str) -> Result<Option<Value>> {
    let rows: Vec<(String, String, i64)> = ledger.rows(
        "SELECT who, why, created FROM pauses WHERE namespace = ? AND name = ?",
        [namespace, name],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    Ok(rows
        .into_iter()
        .next()
        .map(|(who, why, at)| json!({"who": who, "why": why, "at": format_time(at)})))
}

/// A submission's environment as it was launched with.
fn environment(ledger: &Ledger, id: &str) -> Result<Vec<(String, String)>> {
    let text = ledger.optional_text("SELECT env FROM submissions WHERE id = ?", id)?;
    Ok(text
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default())
}

/// The stage page: where its split stands, its completion against the threshold, every
/// submission, and the explanation `cascade explain` prints.
pub fn stage(ledger: &Ledger, key: &ObjectKey) -> Result<Option<Value>> {
    let Some(saved) = ledger.saved_stage(key)? else {
        return Ok(None);
    };
    let subs = ledger.stage_submission_rows(key)?;
    let rounds: Vec<(String, u32, String, Option<String>)> = ledger.rows(
        "SELECT r.original, r.round, r.kind, r.submission FROM recovery_rounds r JOIN submissions s ON s.id = r.original WHERE s.namespace = ? AND s.stage = ? ORDER BY r.original, r.round",
        [&key.namespace, &key.name],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    let mut secrets_env = Vec::new();
    let mut commands = Vec::new();
    let mut rows = Vec::new();
    for r in &subs {
        let s = &r.submission;
        secrets_env.extend(environment(ledger, &s.id)?);
        commands.extend([r.command.as_str(), r.display.as_str()]);
        let recovery: Vec<Value> = rounds
            .iter()
            .filter(|(original, ..)| *original == s.id)
            .map(|(_, round, kind, sub)| json!({"round": round + 1, "kind": kind, "submission": sub}))
            .collect();
        rows.push(json!({
            "id": s.id,
            "origin": s.origin.describe(),
            "status": s.status.as_str(),
            "test": s.test,
            "jobs": s.jobs,
            "batch_id": r.batch_id,
            "revision": r.revision,
            "updated": format_time(r.updated),
            "recovery": recovery,
        }));
    }
    let secrets = Secrets::of(&secrets_env, &commands);
    let mut explanation = Vec::new();
    crate::cli::explain::write_explanation(&mut explanation, ledger, &saved, &subs)
        .map_err(crate::ledger::LedgerError::Io)?;
    let campaign = saved.campaign.clone();
    Ok(Some(json!({
        "stage": stage_row(&saved),
        "campaign": campaign,
        "submissions": rows,
        "explanation": secrets.mask(&String::from_utf8_lossy(&explanation)),
        "paused": paused(ledger, &key.namespace, &key.name)?,
    })))
}

/// The end of a launch log, at most [`LOG_TAIL_BYTES`], and whether its start was cut.
fn log_tail(path: &str) -> (String, bool) {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return (String::new(), false);
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let cut = len > LOG_TAIL_BYTES;
    if cut && f.seek(SeekFrom::Start(len - LOG_TAIL_BYTES)).is_err() {
        return (String::new(), false);
    }
    let mut bytes = Vec::new();
    let _ = f.take(LOG_TAIL_BYTES).read_to_end(&mut bytes);
    (String::from_utf8_lossy(&bytes).into_owned(), cut)
}

/// The submission page: how it was launched, what it printed, its history, its input and its
/// outputs with their parents. Credentials in the environment are masked everywhere.
pub fn submission(ledger: &Ledger, id: &str) -> Result<Option<Value>> {
    let Some(row) = ledger.submission(id)? else {
        return Ok(None);
    };
    let env = environment(ledger, id)?;
    let secrets = Secrets::of(&env, &[&row.command, &row.display]);
    let s = &row.submission;
    let history: Vec<Value> = ledger
        .history(Some(id))?
        .into_iter()
        .map(|h| json!({"at": format_time(h.at), "status": h.status, "reason": h.reason}))
        .collect();
    let (input_files, input_count, input_error) = match &s.input {
        Some(q) => match ledger.query_names(q) {
            Ok(names) => {
                let n = names.len();
                (names.into_iter().take(FILES_SHOWN).collect(), n, None)
            }
            Err(e) => (Vec::new(), 0, Some(e.to_string())),
        },
        None => (Vec::new(), 0, None),
    };
    let outputs: Vec<(String, String)> = ledger.rows(
        "SELECT f.name, COALESCE((SELECT GROUP_CONCAT(pf.name, ' ') FROM file_parents p JOIN files pf ON pf.id = p.parent WHERE p.child = f.id), '') FROM files f JOIN file_metadata m ON m.file = f.id WHERE m.key = 'submission' AND m.value = ? ORDER BY f.id",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let output_count = outputs.len();
    let outputs: Vec<Value> = outputs
        .into_iter()
        .take(FILES_SHOWN)
        .map(|(name, parents)| {
            json!({"name": name, "parents": parents.split(' ').filter(|p| !p.is_empty()).collect::<Vec<_>>()})
        })
        .collect();
    let (log, log_cut) = log_tail(&row.launch_log);
    Ok(Some(json!({
        "id": s.id,
        "namespace": s.stage.namespace,
        "stage": s.stage.name,
        "origin": s.origin.describe(),
        "status": s.status.as_str(),
        "launch_state": row.launch_state,
        "test": s.test,
        "dataset": s.dataset,
        "jobs": s.jobs,
        "batch_id": row.batch_id,
        "revision": row.revision,
        "created": format_time(s.created),
        "updated": format_time(row.updated),
        "command": secrets.mask(&row.command),
        "run_as": secrets.mask(&row.display),
        "launcher": row.launcher,
        "environment": Secrets::mask_env(&env),
        "log_path": row.launch_log,
        "log": secrets.mask(&log),
        "log_cut": log_cut,
        "history": history,
        "input": s.input,
        "input_files": input_files,
        "input_count": input_count,
        "input_error": input_error,
        "outputs": outputs,
        "output_count": output_count,
        "files_shown": FILES_SHOWN,
    })))
}

/// The catalog page: a query's files (or where it is wrong) and the definitions.
pub fn catalog(ledger: &Ledger, query: Option<&str>) -> Result<Value> {
    let definitions: Vec<Value> = ledger
        .definitions()?
        .into_iter()
        .map(|(name, query)| json!({"name": name, "query": query}))
        .collect();
    let mut result =
        json!({"definitions": definitions, "query": query, "files_shown": FILES_SHOWN});
    if let Some(q) = query.filter(|q| !q.trim().is_empty()) {
        match ledger.query_names(q) {
            Ok(names) => {
                result["count"] = json!(names.len());
                result["files"] = json!(names.into_iter().take(FILES_SHOWN).collect::<Vec<_>>());
            }
            Err(crate::catalog::CatalogError::Query(e)) => {
                result["error"] = json!({
                    "column": e.offset + 1,
                    "message": e.message,
                    "hint": e.hint,
                    "before": q.get(..e.offset).unwrap_or(q),
                    "after": q.get(e.offset..).unwrap_or(""),
                });
            }
            Err(crate::catalog::CatalogError::Ledger(e)) => return Err(e),
        }
    }
    Ok(result)
}

/// A file's page: its metadata, its parents and its children.
pub fn file(ledger: &Ledger, name: &str) -> Result<Option<Value>> {
    Ok(ledger.file_info(name)?.map(|info| {
        json!({
            "name": info.name,
            "size": info.size,
            "checksum": info.checksum,
            "location": info.location,
            "created": rfc3339(info.created),
            "metadata": info.metadata,
            "parents": info.parents,
            "children": info.children,
        })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{StageState, StageStatus};

    fn stage(campaign: usize, namespace: &str) -> StageStatus {
        serde_json::from_value(json!({
            "stage": {"namespace": namespace, "name": format!("s{campaign}")},
            "campaign": {"namespace": namespace, "name": format!("c{campaign:03}")},
            "state": StageState::Running, "reason": "r",
            "settled": false, "blocked": false, "locatedPercent": 0.0, "progress": 0.5,
            "submissions": 0, "chainsLocated": 0, "chainsFailed": 0, "chainsInFlight": 0,
            "jobs": {"total": 0, "idle": 0, "running": 0, "held": 0, "succeeded": 0, "failed": 0, "removed": 0},
            "launches": 0, "queued": [], "nextFire": null, "drift": null,
        }))
        .unwrap()
    }

    #[test]
    fn the_campaigns_list_comes_in_pages_within_a_namespace() {
        let dir = std::env::temp_dir().join(format!("cascade-views-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut ledger = Ledger::open(&dir).unwrap();
        let mut stages: Vec<StageStatus> = (0..250).map(|c| stage(c, "exp")).collect();
        stages.extend((0..3).map(|c| stage(c, "other")));
        ledger.save_stage_status(&stages).unwrap();
        let names = |v: &Value| -> Vec<String> {
            v["campaigns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    format!(
                        "{}/{}",
                        c["namespace"].as_str().unwrap(),
                        c["name"].as_str().unwrap()
                    )
                })
                .collect()
        };
        let first = campaigns(&ledger, Some("exp"), 1).unwrap();
        assert_eq!(
            (
                first["page"].clone(),
                first["pages"].clone(),
                first["total"].clone()
            ),
            (json!(1), json!(3), json!(250))
        );
        assert_eq!(names(&first).len(), CAMPAIGNS_PER_PAGE);
        assert_eq!(names(&first)[0], "exp/c000");
        let last = campaigns(&ledger, Some("exp"), 3).unwrap();
        assert_eq!(names(&last).len(), 50);
        assert_eq!(names(&last)[49], "exp/c249");
        // Past the end: the last page; before the start: the first.
        assert_eq!(campaigns(&ledger, Some("exp"), 99).unwrap()["page"], 3);
        assert_eq!(campaigns(&ledger, Some("exp"), 0).unwrap()["page"], 1);
        let other = campaigns(&ledger, Some("other"), 1).unwrap();
        assert_eq!(names(&other), ["other/c000", "other/c001", "other/c002"]);
        assert_eq!(campaigns(&ledger, None, 1).unwrap()["total"], 253);
        drop(ledger);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
