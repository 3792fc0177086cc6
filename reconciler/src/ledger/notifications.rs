//! Notifications: decided with the stage states they tell of (one transaction, so a crash
//! neither loses nor repeats one), then delivered by a sender that retries with backoff.

use std::collections::BTreeMap;

use cascade_crd::{NotifierSpec, NotifyEvent};
use rusqlite::{OptionalExtension, Transaction, params};
use serde::Serialize;

use super::submissions::{json, upsert_stage_status};
use super::{Ledger, Result, now};
use crate::model::ObjectKey;
use crate::plan::StageStatus;
use crate::plan::notify::{Happening, Prior, deliveries, stage_happenings};

/// A notification due for delivery.
#[derive(Clone, Debug)]
pub struct Outgoing {
    pub id: i64,
    pub notifier: ObjectKey,
    pub target: NotifierSpec,
    pub happening: Happening,
    pub attempts: u32,
}

/// What `status` and the metrics say of notifications.
#[derive(Clone, Debug, Default, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationSummary {
    pub pending: u64,
    pub sent: u64,
    pub failed: u64,
    /// The latest undelivered ones (given up, or retrying after an error), newest first.
    pub problems: Vec<NotificationProblem>,
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationProblem {
    pub notifier: String,
    pub event: String,
    pub subject: String,
    pub state: String,
    pub attempts: u32,
    pub error: String,
}

/// Problems listed at most.
const PROBLEMS_SHOWN: usize = 10;

fn priors(tx: &Transaction) -> rusqlite::Result<Vec<Prior>> {
    let mut stmt =
        tx.prepare("SELECT namespace, stage, campaign, state, detail FROM stage_status")?;
    let rows = stmt.query_map([], |r| {
        let detail: String = r.get(4)?;
        let drift = serde_json::from_str::<StageStatus>(&detail)
            .ok()
            .is_some_and(|s| s.drift.is_some());
        Ok(Prior {
            stage: ObjectKey::new(r.get::<_, String>(0)?, r.get::<_, String>(1)?),
            campaign: r.get(2)?,
            state: r.get(3)?,
            drift,
        })
    })?;
    rows.collect()
}

/// Launches that failed since each notifier was first seen and that it was not yet told of.
fn launch_failures(
    tx: &Transaction,
    notifiers: &BTreeMap<ObjectKey, NotifierSpec>,
    stages: &[StageStatus],
    revision: Option<&str>,
    at: i64,
) -> rusqlite::Result<Vec<Happening>> {
    let campaign_of: BTreeMap<&ObjectKey, &str> = stages
        .iter()
        .map(|s| (&s.stage, s.campaign.name.as_str()))
        .collect();
    let mut out = Vec::new();
    let namespaces: std::collections::BTreeSet<&str> =
        notifiers.keys().map(|k| k.namespace.as_str()).collect();
    for ns in namespaces {
        let mut stmt = tx.prepare_cached(
            "SELECT s.id, s.stage, COALESCE((SELECT h.reason FROM submission_history h WHERE h.submission = s.id ORDER BY h.rowid DESC LIMIT 1), '')
             FROM submissions s
             WHERE s.namespace = ?1 AND s.status = 'LaunchFailed'
               AND s.updated >= (SELECT MIN(since) FROM notifiers_seen WHERE namespace = ?1)
               AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.namespace = ?1 AND n.event = 'launchFailed' AND n.subject = s.id)
             ORDER BY s.created",
        )?;
        let rows = stmt.query_map([ns], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        for row in rows {
            let (id, stage, reason) = row?;
            let key = ObjectKey::new(ns, stage);
            let Some(campaign) = campaign_of.get(&key) else {
                continue;
            };
            out.push(Happening {
                event: NotifyEvent::LaunchFailed,
                namespace: ns.to_string(),
                campaign: campaign.to_string(),
                subject: id.clone(),
                message: format!("launch of {id} ({key}) failed: {reason}"),
                revision: revision.map(str::to_string),
                at,
            });
        }
    }
    Ok(out)
}

impl Ledger {
    /// Saves the stages' statuses and, in the same transaction, the notifications their
    /// transitions (and new launch failures) call for. Returns how many were decided.
    pub fn save_stage_status_notifying(
        &mut self,
        stages: &[StageStatus],
        notifiers: &BTreeMap<ObjectKey, NotifierSpec>,
        revision: Option<&str>,
    ) -> Result<usize> {
        let at = now();
        self.write(|tx| {
            let before = if notifiers.is_empty() {
                Vec::new()
            } else {
                priors(tx)?
            };
            upsert_stage_status(tx, stages, at)?;
            if notifiers.is_empty() {
                return Ok(0);
            }
            for key in notifiers.keys() {
                tx.execute(
                    "INSERT INTO notifiers_seen (namespace, name, since) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                    params![key.namespace, key.name, at],
                )?;
            }
            let mut happenings = stage_happenings(&before, stages, revision, at);
            happenings.extend(launch_failures(tx, notifiers, stages, revision, at)?);
            let chosen = deliveries(notifiers, &happenings);
            for (key, spec, h) in &chosen {
                tx.execute(
                    "INSERT INTO notifications (namespace, notifier, event, subject, target, payload, state, attempts, next_at, created) VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?)",
                    params![key.namespace, key.name, h.event.as_str(), h.subject, json(spec), json(h), at, at],
                )?;
            }
            Ok(chosen.len())
        })
    }

    /// Pending notifications due by `at`, oldest first.
    pub fn due_notifications(&mut self, at: i64, limit: usize) -> Result<Vec<Outgoing>> {
        let rows: Vec<(i64, String, String, String, String, u32)> = self.rows(
            "SELECT id, namespace, notifier, target, payload, attempts FROM notifications WHERE state = 'pending' AND next_at <= ? ORDER BY next_at, id LIMIT ?",
            params![at, limit as i64],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
        )?;
        let mut out = Vec::new();
        for (id, ns, name, target, payload, attempts) in rows {
            match (
                serde_json::from_str(&target),
                serde_json::from_str(&payload),
            ) {
                (Ok(target), Ok(happening)) => out.push(Outgoing {
                    id,
                    notifier: ObjectKey::new(ns, name),
                    target,
                    happening,
                    attempts,
                }),
                _ => self.notification_failed(
                    id,
                    "the recorded notification cannot be read (written by a newer Cascade?)",
                    None,
                )?,
            }
        }
        Ok(out)
    }

    /// When the next pending notification is due, if any is.
    pub fn next_notification_at(&self) -> Result<Option<i64>> {
        self.conn
            .query_row(
                "SELECT MIN(next_at) FROM notifications WHERE state = 'pending'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map(Option::flatten)
            .map_err(|e| super::sql_error(&self.dir.join(super::DB_FILE), e))
    }

    pub fn notification_sent(&mut self, id: i64) -> Result<()> {
        let at = now();
        self.write(|tx| {
            tx.execute(
                "UPDATE notifications SET state = 'sent', attempts = attempts + 1, sent_at = ?, last_error = NULL WHERE id = ? AND state = 'pending'",
                params![at, id],
            )
        })?;
        Ok(())
    }

    /// Records a failed attempt: retried at `retry_at`, or given up (`None`).
    pub fn notification_failed(
        &mut self,
        id: i64,
        error: &str,
        retry_at: Option<i64>,
    ) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE notifications SET attempts = attempts + 1, last_error = ?, state = CASE WHEN ? IS NULL THEN 'failed' ELSE 'pending' END, next_at = COALESCE(?, next_at) WHERE id = ? AND state = 'pending'",
                params![error, retry_at, retry_at, id],
            )
        })?;
        Ok(())
    }

    pub fn notification_summary(&self) -> Result<NotificationSummary> {
        let counts: Vec<(String, i64)> = self.rows(
            "SELECT state, COUNT(*) FROM notifications GROUP BY state",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let mut summary = NotificationSummary::default();
        for (state, n) in counts {
            let n = n as u64;
            match state.as_str() {
                "pending" => summary.pending = n,
                "sent" => summary.sent = n,
                _ => summary.failed += n,
            }
        }
        summary.problems = self.rows(
            "SELECT namespace, notifier, event, subject, state, attempts, last_error FROM notifications WHERE last_error IS NOT NULL AND state <> 'sent' ORDER BY id DESC LIMIT ?",
            [PROBLEMS_SHOWN as i64],
            |r| {
                Ok(NotificationProblem {
                    notifier: format!("{}/{}", r.get::<_, String>(0)?, r.get::<_, String>(1)?),
                    event: r.get(2)?,
                    subject: r.get(3)?,
                    state: r.get(4)?,
                    attempts: r.get(5)?,
                    error: r.get(6)?,
                })
            },
        )?;
        Ok(summary)
    }
}
