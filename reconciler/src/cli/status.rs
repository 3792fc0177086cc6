//! `cascade status`: the stages and submissions of a state directory, for people or as JSON.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;

use cascade_crd::{CampaignStatus, SplitSpec};

use super::Exit;
use super::state::StateArg;
use crate::ledger::{SavedStage, SubmissionRow};
use crate::model::ObjectKey;
use crate::plan::{CampaignProgress, StageStatus, format_time, resource_status, rfc3339};

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub state: StateArg,
    /// Also list every status change of every submission
    #[arg(long)]
    pub history: bool,
    /// Output for people (`text`) or machines (`json`)
    #[arg(long, value_enum, default_value = "text")]
    pub format: super::plan::Format,
}

pub fn status(args: &StatusArgs) -> std::io::Result<Exit> {
    let ledger = match args.state.open_existing() {
        Ok(l) => l,
        Err(e) => return Ok(e),
    };
    let mut out = std::io::stdout().lock();
    if let super::plan::Format::Json = args.format {
        let value = status_json(&ledger).map_err(std::io::Error::other)?;
        serde_json::to_writer_pretty(&mut out, &value)?;
        writeln!(out)?;
        return Ok(Exit::Ok);
    }
    let stages = ledger.saved_stage_status().map_err(std::io::Error::other)?;
    let subs = ledger.submission_rows().map_err(std::io::Error::other)?;
    if let Some(d) = definitions(&ledger).map_err(std::io::Error::other)? {
        write_definitions(&mut out, &d)?;
    }
    let mut campaign = None;
    for s in &stages {
        if campaign != Some(&s.campaign) {
            writeln!(out, "Campaign {}/{}:", s.stage.namespace, s.campaign)?;
            campaign = Some(&s.campaign);
        }
        writeln!(out, "  {:<24} {:<10} {}", s.stage.name, s.state, s.reason)?;
        if let Some(line) = s.status.as_ref().and_then(split_line) {
            writeln!(out, "  {:<24} {:<10} {line}", "", "")?;
        }
    }
    let drifted: Vec<_> = stages.iter().filter(|s| s.drift.is_some()).collect();
    if !drifted.is_empty() {
        writeln!(out, "\nDrift (the state contradicts the definitions):")?;
        for s in drifted {
            writeln!(
                out,
                "  {}: {}",
                s.stage,
                s.drift.as_deref().unwrap_or_default()
            )?;
        }
    }
    let notes = ledger
        .notification_summary()
        .map_err(std::io::Error::other)?;
    write_notifications(&mut out, &notes)?;
    writeln!(out, "\nSubmissions:")?;
    writeln!(
        out,
        "  {:<28} {:<24} {:<13} {:>5} {:>5} {:>5} {:>5}  BATCH ID",
        "ID", "ORIGIN", "STATUS", "JOBS", "RUN", "OK", "FAIL"
    )?;
    for r in &subs {
        let s = &r.submission;
        writeln!(
            out,
            "  {:<28} {:<24} {:<13} {:>5} {:>5} {:>5} {:>5}  {}",
            s.id,
            s.origin.describe(),
            s.status.as_str(),
            s.jobs.total,
            s.jobs.running,
            s.jobs.succeeded,
            s.jobs.failed,
            r.batch_id.as_deref().unwrap_or("-")
        )?;
    }
    if args.history {
        writeln!(out, "\nOperator actions:")?;
        for a in ledger.operator_actions().map_err(std::io::Error::other)? {
            writeln!(
                out,
                "  {}  {}: {} {} ({})",
                format_time(a.at),
                a.who,
                a.action,
                a.target,
                a.why
            )?;
        }
        writeln!(out, "\nHistory:")?;
        for h in ledger.history(None).map_err(std::io::Error::other)? {
            writeln!(
                out,
                "  {}  {:<28} {:<13} {}",
                format_time(h.at),
                h.submission,
                h.status,
                h.reason
            )?;
        }
    }
    Ok(Exit::Ok)
}

/// What `status --format json` prints (and `GET /api/v1/status` serves): campaigns, stages
/// with their status, submissions, their history, operator actions, the definitions in force
/// and the notifications.
#[derive(serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusDocument {
    pub operator_actions: Vec<crate::ledger::OperatorAction>,
    /// Each campaign's status, keyed `namespace/name`.
    pub campaigns: BTreeMap<String, CampaignStatus>,
    pub stages: Vec<StageEntry>,
    pub submissions: Vec<SubmissionRow>,
    pub history: Vec<crate::ledger::HistoryRow>,
    /// What a git source offered; absent for definitions read from files.
    pub definitions: Option<Definitions>,
    pub notifications: crate::ledger::NotificationSummary,
}

/// A stage's entry in the status document.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct StageEntry {
    /// `namespace/name`.
    pub stage: String,
    pub campaign: String,
    pub state: String,
    pub reason: String,
    pub drift: Option<String>,
    /// Its status as the resource's status subresource has it.
    pub status: Option<cascade_crd::CampaignStageStatus>,
}

/// A stage's entry and its submissions (`GET /api/v1/namespaces/NS/stages/NAME`).
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct StageDocument {
    pub stage: StageEntry,
    pub submissions: Vec<SubmissionRow>,
}

pub fn status_document(ledger: &crate::ledger::Ledger) -> crate::ledger::Result<StatusDocument> {
    let stages = ledger.saved_stage_status()?;
    let subs = ledger.submission_rows()?;
    let mut counts = submission_counts(&subs);
    let entries = stages
        .iter()
        .map(|s| stage_entry(s, counts.remove(&s.stage).unwrap_or_default()))
        .collect();
    Ok(StatusDocument {
        operator_actions: ledger.operator_actions()?,
        campaigns: campaign_statuses(&stages),
        stages: entries,
        history: ledger.history(None)?,
        definitions: definitions(ledger)?,
        notifications: ledger.notification_summary()?,
        submissions: subs,
    })
}

/// The status document as JSON.
pub fn status_json(ledger: &crate::ledger::Ledger) -> crate::ledger::Result<serde_json::Value> {
    serde_json::to_value(status_document(ledger)?)
        .map_err(|e| crate::ledger::LedgerError::Invalid(e.to_string()))
}

/// Notifications sent, pending and given up, and why the undelivered ones were not.
fn write_notifications(
    out: &mut impl Write,
    n: &crate::ledger::NotificationSummary,
) -> std::io::Result<()> {
    if n.pending + n.sent + n.failed == 0 {
        return Ok(());
    }
    writeln!(
        out,
        "\nNotifications: {} sent, {} pending, {} failed",
        n.sent, n.pending, n.failed
    )?;
    for p in &n.problems {
        let what = if p.state == "failed" {
            format!("given up after {} attempts", p.attempts)
        } else {
            format!("retrying ({} attempts so far)", p.attempts)
        };
        let subject = if p.subject.is_empty() {
            String::new()
        } else {
            format!(" {}", p.subject)
        };
        writeln!(
            out,
            "  {} {}{subject}: {what}: {}",
            p.notifier, p.event, p.error
        )?;
    }
    Ok(())
}

/// One stage's entry in the status document, with its submissions' counts by status.
pub fn stage_entry(s: &SavedStage, counts: BTreeMap<String, u32>) -> StageEntry {
    StageEntry {
        stage: s.stage.to_string(),
        campaign: s.campaign.clone(),
        state: s.state.clone(),
        reason: s.reason.clone(),
        drift: s.drift.clone(),
        status: s
            .status
            .as_ref()
            .map(|st| resource_status::stage_status(st, &rfc3339(s.since), None, counts)),
    }
}

/// A stage's entry (as in the status document) and its submissions, if there is such a stage.
pub fn stage_document(
    ledger: &crate::ledger::Ledger,
    key: &ObjectKey,
) -> crate::ledger::Result<Option<StageDocument>> {
    let Some(saved) = ledger.saved_stage(key)? else {
        return Ok(None);
    };
    let subs = ledger.stage_submission_rows(key)?;
    Ok(Some(StageDocument {
        stage: stage_entry_of(&saved, &subs),
        submissions: subs,
    }))
}

/// A stage's entry, its submissions (`subs`, all of that stage) counted by status.
pub fn stage_entry_of(saved: &SavedStage, subs: &[SubmissionRow]) -> StageEntry {
    let counts = submission_counts(subs)
        .remove(&saved.stage)
        .unwrap_or_default();
    stage_entry(saved, counts)
}

/// `split nfiles(n=10) at slice 3` (`, exhausted`): the split in its normalised form.
fn split_line(s: &StageStatus) -> Option<String> {
    let split = s.split.as_ref()?;
    let policy = SplitSpec::Mapping(split.clone()).policy().ok().flatten()?;
    Some(format!(
        "split {policy} at {}{}",
        s.split_position.as_deref().unwrap_or("start"),
        if s.exhausted { ", exhausted" } else { "" }
    ))
}

/// Each stage's submissions by status, as a status subresource counts them.
fn submission_counts(subs: &[SubmissionRow]) -> HashMap<&ObjectKey, BTreeMap<String, u32>> {
    let mut counts: HashMap<&ObjectKey, BTreeMap<String, u32>> = HashMap::new();
    for r in subs {
        *counts
            .entry(&r.submission.stage)
            .or_default()
            .entry(r.submission.status.as_str().to_string())
            .or_default() += 1;
    }
    counts
}

/// Each campaign's status from its stages' saved statuses, keyed `namespace/name`.
pub fn campaign_statuses(stages: &[SavedStage]) -> BTreeMap<String, CampaignStatus> {
    let mut by_campaign: BTreeMap<ObjectKey, (Vec<&StageStatus>, i64)> = BTreeMap::new();
    for s in stages {
        let key = ObjectKey::new(s.stage.namespace.clone(), s.campaign.clone());
        let entry = by_campaign.entry(key).or_default();
        entry.0.extend(s.status.as_ref());
        entry.1 = entry.1.max(s.since);
    }
    by_campaign
        .into_iter()
        .map(|(key, (list, since))| {
            let name = key.to_string();
            let progress = CampaignProgress::of(key, &list);
            let status = resource_status::campaign_status(&progress, &list, &rfc3339(since));
            (name, status)
        })
        .collect()
}

/// What a git source offered: the revision in force, and the newer one refused (or the
/// branch gone, or the repository unreachable) if any.
#[derive(serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Definitions {
    applied: Option<crate::ledger::RevisionRow>,
    /// The latest record, when it is not the applied revision's.
    problem: Option<crate::ledger::RevisionRow>,
}

fn definitions(ledger: &crate::ledger::Ledger) -> crate::ledger::Result<Option<Definitions>> {
    let Some(last) = ledger.last_revision(None)? else {
        return Ok(None);
    };
    let applied = ledger.last_revision(Some("applied"))?;
    let problem = (last.state != "applied").then_some(last);
    Ok(Some(Definitions { applied, problem }))
}

fn write_definitions(out: &mut impl Write, d: &Definitions) -> std::io::Result<()> {
    match &d.applied {
        Some(a) => writeln!(
            out,
            "Definitions: commit {} (applied {})",
            a.commit,
            format_time(a.at)
        )?,
        None => writeln!(out, "Definitions: no revision applied yet")?,
    }
    if let Some(p) = &d.problem {
        let what = match p.state.as_str() {
            "rejected" => format!("commit {} was not applied: it does not validate", p.commit),
            "missing" => format!(
                "branch `{}` is gone; nothing changes until it comes back",
                p.detail
            ),
            _ => "the repository cannot be fetched; retrying".to_string(),
        };
        writeln!(out, "  {what} ({})", format_time(p.at))?;
        if p.state != "missing" {
            for line in p.detail.lines().take(10) {
                writeln!(out, "    {line}")?;
            }
        }
    }
    writeln!(out)
}
