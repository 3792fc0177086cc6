//! Submissions: reservation before launch, the launch outcome, status history, recovery
//! rounds, requests, pauses, and the observed state the planner reads.

use std::collections::HashMap;
use std::sync::Arc;

use compact_str::CompactString;
use rusqlite::{OptionalExtension, Transaction, params};
use serde::Serialize;

use super::{Ledger, LedgerError, Result, SqlContext, now};
use crate::model::ObjectKey;
use crate::plan::{
    Define, JobCounts, LaunchAction, Observed, Origin, RecoveryRound, Request, Status, Submission,
};
use cascade_crd::RecoveryType;

/// How a launch command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LaunchEnd {
    /// Its exit code as a shell reports it (128 + n for signal n).
    Exited(i32),
    /// It never ran, and why.
    NotStarted(String),
    /// Nothing is known of its end (a restart found the launch over).
    Unknown,
}

impl Which<'_> {
    /// The SQL condition (on the submissions table, its columns prefixed with `prefix`) and
    /// its numbered parameters.
    fn condition(&self, prefix: &str) -> (String, Vec<&str>) {
        match self {
            Which::All => ("1 = 1".into(), vec![]),
            Which::Id(id) => (format!("{prefix}id = ?1"), vec![id]),
            Which::Stage(k) => (
                format!("{prefix}namespace = ?1 AND {prefix}stage = ?2"),
                vec![&k.namespace, &k.name],
            ),
        }
    }
}

/// Which submissions a read of rows takes.
/// The columns a [`Submission`] is read from, in the order the reader takes them.
const SUBMISSION_COLUMNS: &str = "id, namespace, stage, seq, origin_json, test, dataset, input, cursor_after, status, launch_state, created, force_located, cursor_snapshot";

enum Which<'a> {
    All,
    Id(&'a str),
    Stage(&'a ObjectKey),
}

/// A submission row with what status and history displays need.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubmissionRow {
    pub submission: Submission,
    pub launch_state: String,
    pub command: String,
    pub display: String,
    pub batch_id: Option<String>,
    pub launch_log: String,
    pub launcher: String,
    pub updated: i64,
    /// The revision of the definitions it was launched under (a git commit).
    pub revision: Option<String>,
}

/// The planner's last word on a stage, as the controller saved it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SavedStage {
    pub stage: ObjectKey,
    pub campaign: String,
    pub state: String,
    pub reason: String,
    pub drift: Option<String>,
    /// When `state` last changed, unix seconds.
    pub since: i64,
    /// The planner's whole view of the stage at the last reconcile (absent if unreadable).
    pub status: Option<crate::plan::StageStatus>,
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryRow {
    pub submission: String,
    pub status: String,
    pub at: i64,
    pub at_ms: i64,
    pub reason: String,
}

fn history(tx: &Transaction, id: &str, status: Status, reason: &str) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO submission_history (submission, status, at, at_ms, reason) VALUES (?, ?, ?, ?, ?)",
        params![id, status.as_str(), now(), chrono::Utc::now().timestamp_millis(), reason],
    )?;
    Ok(())
}

/// Writes each stage's status; `since` moves only when its state changes.
pub(super) fn upsert_stage_status(
    tx: &Transaction,
    stages: &[crate::plan::StageStatus],
    at: i64,
) -> rusqlite::Result<()> {
    for (position, s) in stages.iter().enumerate() {
        tx.execute(
            "INSERT INTO stage_status (namespace, stage, campaign, state, reason, detail, updated, since, position) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (namespace, stage) DO UPDATE SET campaign = excluded.campaign, state = excluded.state, reason = excluded.reason, detail = excluded.detail, updated = excluded.updated, position = excluded.position,
               since = CASE WHEN stage_status.state = excluded.state AND stage_status.since > 0 THEN stage_status.since ELSE excluded.since END",
            params![s.stage.namespace, s.stage.name, s.campaign.name, s.state.as_str(), s.reason, json(s), at, at, position as i64],
        )?;
    }
    Ok(())
}

pub(super) fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

impl Ledger {
    /// Reserves a submission before anything runs. Returns false if a submission with the same
    /// identity (stage, origin) or id exists: the launch was already planned and is not
    /// repeated. The input dataset is defined in the catalog in the same transaction.
    pub fn reserve(&mut self, l: &LaunchAction, launcher: &str, launch_dir: &str) -> Result<bool> {
        self.reserve_at(l, launcher, launch_dir, None)
    }

    /// `reserve`, recording the revision of the definitions in force (a git commit).
    pub fn reserve_at(
        &mut self,
        l: &LaunchAction,
        launcher: &str,
        launch_dir: &str,
        revision: Option<&str>,
    ) -> Result<bool> {
        let log = self
            .dir
            .join("launches")
            .join(format!("{}.log", l.id))
            .display()
            .to_string();
        self.write(|tx| {
            let status = if l.approval {
                Status::AwaitingApproval
            } else {
                Status::New
            };
            let t = now();
            let inserted = tx.execute(
                "INSERT INTO submissions (id, namespace, stage, seq, origin, origin_json, test, dataset, input, cursor_after, status, launch_state, approval, command, display, argv, env, launch_dir, launch_attempts, launch_log, launcher, force_located, created, updated, batch_system, revision)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, 0, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                params![
                    l.id,
                    l.stage.namespace,
                    l.stage.name,
                    l.seq as i64,
                    l.origin.key(),
                    json(&l.origin),
                    l.test,
                    l.dataset,
                    l.input,
                    l.cursor_after.as_ref().map(json),
                    status.as_str(),
                    if l.approval { "launched" } else { "reserved" },
                    l.approval,
                    l.launch.command,
                    l.launch.display,
                    json(&l.launch.argv),
                    json(&l.launch.env),
                    launch_dir,
                    log,
                    launcher,
                    t,
                    t,
                    l.batch_system.as_str(),
                    revision
                ],
            )?;
            if inserted == 0 {
                return Ok(false);
            }
            history(tx, &l.id, status, &format!("reserved: {}", l.origin.describe()))?;
            if let Some(r) = &l.recovery {
                tx.execute(
                    "INSERT INTO recovery_rounds (original, round, kind, reference, submission, decided_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    params![r.original, r.round, r.kind.as_str(), r.reference, l.id, t],
                )?;
            }
            // The project: the input files as of now, delivered to this submission's jobs.
            let snapshot = crate::catalog::store::create_project(
                tx,
                &l.id,
                l.input.as_deref(),
                &l.input_files,
                t,
            )?;
            // The files delivered so far, as POMS's cumulative snapshot: the next slice's
            // query leaves them out by this snapshot's id.
            if let Some(crate::split::Cursor::Delivered(files)) = &l.cursor_after {
                let names: Vec<String> = files.iter().cloned().collect();
                let delivered = crate::catalog::store::snapshot_of_names(tx, &names, t)?;
                tx.execute(
                    "UPDATE submissions SET cursor_snapshot = ? WHERE id = ?",
                    params![delivered, l.id],
                )?;
            }
            let definition = match (l.define, &l.input, snapshot) {
                (Define::Query, Some(query), _) => Some(query.clone()),
                (Define::Snapshot, _, Some(id)) => Some(format!("snapshot_id {id}")),
                _ => None,
            };
            if let (Some(name), Some(query)) = (&l.dataset, definition) {
                let defined = crate::catalog::store::define_for_submission(
                    tx, name, &query, &l.id, launcher, t,
                )?;
                if let Err(conflict) = defined {
                    tx.execute(
                        "UPDATE submissions SET status = ?, launch_state = 'failed' WHERE id = ?",
                        params![Status::LaunchFailed.as_str(), l.id],
                    )?;
                    history(tx, &l.id, Status::LaunchFailed, &conflict)?;
                }
            }
            Ok(true)
        })
    }

    /// Records the end of a launch command. A launch that failed without submitting any jobs
    /// is `LaunchFailed`.
    pub fn record_launch(
        &mut self,
        id: &str,
        ended: &LaunchEnd,
        batch_id: Option<&str>,
    ) -> Result<()> {
        let exit = match ended {
            LaunchEnd::Exited(code) => Some(*code),
            _ => None,
        };
        self.write(|tx| {
            // Jobs delegated to another batch system count once it took them (a bound id).
            let jobs: i64 = tx.query_row(
                "SELECT (SELECT COUNT(*) FROM jobs WHERE submission = ?1 AND delegated = 0) + (SELECT COUNT(*) FROM batch_clusters WHERE submission = ?1)",
                [id],
                |r| r.get(0),
            )?;
            let ok = exit == Some(0) || jobs > 0;
            tx.execute(
                "UPDATE submissions SET launch_state = ?, launch_exit = ?, batch_id = COALESCE(?, batch_id), updated = ? WHERE id = ? AND launch_state = 'reserved'",
                params![if ok { "launched" } else { "failed" }, exit, batch_id, now(), id],
            )?;
            if !ok {
                let reason = match ended {
                    LaunchEnd::Exited(code) if *code > 128 => format!(
                        "launch command was ended by signal {} and submitted no jobs",
                        code - 128
                    ),
                    LaunchEnd::Exited(code) => format!("launch command exited with {code} and submitted no jobs"),
                    LaunchEnd::NotStarted(why) => format!("launch command did not start: {why}"),
                    LaunchEnd::Unknown => "launch command ended (its end was not recorded) and submitted no jobs".to_string(),
                };
                tx.execute("UPDATE submissions SET status = ? WHERE id = ?", params![Status::LaunchFailed.as_str(), id])?;
                history(tx, id, Status::LaunchFailed, &reason)?;
            }
            Ok(())
        })
    }

    /// Counts one more attempt of a reservation's launch (after a restart found no jobs).
    pub fn count_attempt(&mut self, id: &str) -> Result<u32> {
        self.write(|tx| {
            tx.execute(
                "UPDATE submissions SET launch_attempts = launch_attempts + 1 WHERE id = ?",
                [id],
            )?;
            tx.query_row(
                "SELECT launch_attempts FROM submissions WHERE id = ?",
                [id],
                |r| r.get(0),
            )
        })
    }

    /// Submissions reserved whose launch has no recorded outcome (a reservation refused at
    /// once, such as one whose dataset name is taken, is not open).
    pub fn open_reservations(&self) -> Result<Vec<String>> {
        self.rows(
            "SELECT id FROM submissions WHERE launch_state = 'reserved' ORDER BY created, seq",
            [],
            |r| r.get(0),
        )
    }

    /// Applies a status change if the submission is still in `from` (a compare-and-set, so a
    /// stale plan cannot roll a status back).
    pub fn set_status(&mut self, id: &str, from: Status, to: Status, reason: &str) -> Result<bool> {
        self.write(|tx| {
            let n = tx.execute(
                "UPDATE submissions SET status = ?, updated = ? WHERE id = ? AND status = ?",
                params![to.as_str(), now(), id, from.as_str()],
            )?;
            if n > 0 {
                history(tx, id, to, reason)?;
            }
            Ok(n > 0)
        })
    }

    /// An operator's status change (approve, force located, kill): recorded with who and why.
    pub fn operator_status(&mut self, id: &str, to: Status, who: &str, why: &str) -> Result<()> {
        let found = self.write(|tx| {
            let n = tx.execute(
                "UPDATE submissions SET status = ?, updated = ? WHERE id = ?",
                params![to.as_str(), now(), id],
            )?;
            if n > 0 {
                history(tx, id, to, &format!("by {who}: {why}"))?;
            }
            Ok(n > 0)
        })?;
        if !found {
            return Err(LedgerError::Invalid(format!("no submission `{id}`")));
        }
        self.record_action(who, &format!("set {to}"), id, why)
    }

    pub fn skip_recovery(
        &mut self,
        original: &str,
        round: u32,
        kind: &str,
        reference: &str,
    ) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO recovery_rounds (original, round, kind, reference, submission, decided_at) VALUES (?, ?, ?, ?, NULL, ?) ON CONFLICT DO NOTHING",
                params![original, round, kind, reference, now()],
            )
            .map(|_| ())
        })
    }

    pub fn first_seen(&mut self, stage: &ObjectKey, at: i64) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO first_seen (namespace, stage, at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                params![stage.namespace, stage.name, at],
            )
            .map(|_| ())
        })
    }

    /// Records an operator's launch request (`recovery`: a manual recovery of that original
    /// submission with that type).
    pub fn add_request(
        &mut self,
        stage: &ObjectKey,
        test: bool,
        dataset: Option<&str>,
        recovery: Option<(&str, RecoveryType)>,
        who: &str,
        why: &str,
    ) -> Result<i64> {
        let id = self.write(|tx| {
            tx.execute(
                "INSERT INTO requests (namespace, stage, test, dataset, recover_of, recover_type, who, why, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                params![
                    stage.namespace,
                    stage.name,
                    test,
                    dataset,
                    recovery.map(|r| r.0),
                    recovery.map(|r| r.1.as_str()),
                    who,
                    why,
                    now()
                ],
            )?;
            Ok(tx.last_insert_rowid())
        })?;
        let action = match (recovery, test) {
            (Some((_, kind)), _) => format!("recover --type {}", kind.as_str()),
            (None, true) => "launch --test".into(),
            (None, false) => "launch".into(),
        };
        let target = match recovery {
            Some((of, _)) => of.to_string(),
            None => stage.to_string(),
        };
        self.record_action(who, &action, &target, why)?;
        Ok(id)
    }

    /// Starts a stage's split again from its first slice (POMS "reset").
    pub fn reset_split(&mut self, stage: &ObjectKey, who: &str, why: &str) -> Result<()> {
        self.write(|tx| {
            let seq: i64 = tx.query_row(
                "SELECT COALESCE(MAX(seq), 0) FROM submissions WHERE namespace = ? AND stage = ?",
                params![stage.namespace, stage.name],
                |r| r.get(0),
            )?;
            tx.execute(
                "INSERT INTO split_resets (namespace, stage, after_seq, who, why, created) VALUES (?, ?, ?, ?, ?, ?)",
                params![stage.namespace, stage.name, seq, who, why, now()],
            )
            .map(|_| ())
        })?;
        self.record_action(who, "reset-split", &stage.to_string(), why)
    }

    /// Marks a submission to be located as soon as it is completed (POMS "force located").
    /// A submission that already ended (located, failed, removed, ...) is refused: marking it
    /// would change nothing.
    pub fn force_located(&mut self, id: &str, who: &str, why: &str) -> Result<()> {
        if let Some(row) = self.submission(id)? {
            let status = row.submission.status;
            if status.is_final() {
                let next = if status == Status::Located {
                    "it is located already".to_string()
                } else {
                    format!(
                        "relaunch its slice (`cascade launch {} --dataset {} --why ...`) or recover it (`cascade recover {id} --type consumed_status --why ...`); either takes its place",
                        row.submission.stage.name,
                        row.submission.dataset.as_deref().unwrap_or("...")
                    )
                };
                return Err(LedgerError::Invalid(format!(
                    "`{id}` is {status}: force-located only applies to a submission that has not ended; {next}"
                )));
            }
        }
        let n = self.write(|tx| {
            tx.execute(
                "UPDATE submissions SET force_located = 1, updated = ? WHERE id = ?",
                params![now(), id],
            )
        })?;
        if n == 0 {
            return Err(LedgerError::Invalid(format!("no submission `{id}`")));
        }
        self.record_action(who, "force-located", id, why)
    }

    pub fn set_paused(
        &mut self,
        key: &ObjectKey,
        paused: bool,
        who: &str,
        why: &str,
    ) -> Result<()> {
        self.write(|tx| {
            if paused {
                tx.execute(
                    "INSERT INTO pauses (namespace, name, who, why, created) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    params![key.namespace, key.name, who, why, now()],
                )?;
            } else {
                tx.execute("DELETE FROM pauses WHERE namespace = ? AND name = ?", params![key.namespace, key.name])?;
            }
            Ok(())
        })?;
        self.record_action(
            who,
            if paused { "pause" } else { "resume" },
            &key.to_string(),
            why,
        )
    }

    /// Job counts per submission: the local batch system's records for its submissions, the
    /// last observation of the other batch systems for theirs.
    /// Each submission's jobs by state (of the submissions `which` takes).
    fn job_counts(&self, which: &Which) -> Result<HashMap<String, JobCounts>> {
        let mut out: HashMap<String, JobCounts> = HashMap::new();
        let (condition, values) = which.condition("s.");
        let rows = self.rows(
            &format!("SELECT j.submission, j.state, COUNT(*) FROM jobs j JOIN submissions s ON s.id = j.submission
                 WHERE s.batch_system = 'local' AND {condition} GROUP BY j.submission, j.state
             UNION ALL
             SELECT b.submission, b.state, COUNT(*) FROM batch_jobs b JOIN submissions s ON s.id = b.submission
                 WHERE {condition} GROUP BY b.submission, b.state"),
            rusqlite::params_from_iter(values),
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, u32>(2)?,
                ))
            },
        )?;
        for (sub, state, n) in rows {
            let c = out.entry(sub).or_default();
            c.total += n;
            match state.as_str() {
                "idle" => c.idle += n,
                "running" => c.running += n,
                "held" => c.held += n,
                "succeeded" => c.succeeded += n,
                "failed" => c.failed += n,
                _ => c.removed += n,
            }
        }
        Ok(out)
    }

    /// Each stage's recovery submissions (`origin` `recovery:...`), for stages that have any.
    pub fn recovery_counts(&self) -> Result<std::collections::BTreeMap<ObjectKey, u32>> {
        Ok(self
            .rows(
                "SELECT namespace, stage, COUNT(*) FROM submissions WHERE origin LIKE 'recovery:%' GROUP BY namespace, stage",
                [],
                |r| Ok((ObjectKey::new(r.get::<_, String>(0)?, r.get::<_, String>(1)?), r.get(2)?)),
            )?
            .into_iter()
            .collect())
    }

    /// Each stage's submissions counted by status (what a stage's status subresource shows).
    pub fn submission_counts(
        &self,
    ) -> Result<HashMap<ObjectKey, std::collections::BTreeMap<String, u32>>> {
        let mut out: HashMap<ObjectKey, std::collections::BTreeMap<String, u32>> = HashMap::new();
        let rows = self.rows(
            "SELECT namespace, stage, status, COUNT(*) FROM submissions GROUP BY namespace, stage, status",
            [],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, u32>(3)?,
                ))
            },
        )?;
        for (ns, stage, status, n) in rows {
            out.entry(ObjectKey::new(ns, stage))
                .or_default()
                .insert(status, n);
        }
        Ok(out)
    }

    pub fn submission_rows(&self) -> Result<Vec<SubmissionRow>> {
        self.rows_where(Which::All)
    }

    /// When a submission of each of `stages` last changed (stages without one are left out).
    pub fn last_submission_updates(
        &self,
        stages: &[&ObjectKey],
    ) -> Result<HashMap<ObjectKey, i64>> {
        let mut out = HashMap::new();
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT MAX(updated) FROM submissions WHERE namespace = ? AND stage = ?",
            )
            .at(self)?;
        for key in stages {
            let at: Option<i64> = stmt
                .query_row(params![key.namespace, key.name], |r| r.get(0))
                .at(self)?;
            if let Some(at) = at {
                out.insert((*key).clone(), at);
            }
        }
        Ok(out)
    }

    /// The submissions of one stage.
    pub fn stage_submission_rows(&self, stage: &ObjectKey) -> Result<Vec<SubmissionRow>> {
        self.rows_where(Which::Stage(stage))
    }

    fn rows_where(&self, which: Which) -> Result<Vec<SubmissionRow>> {
        let mut read = self.submission_reader(&which)?;
        let (condition, values) = which.condition("");
        self.rows(
            &format!("SELECT {SUBMISSION_COLUMNS}, command, display, batch_id, launch_log, launcher, updated, revision
                 FROM submissions WHERE {condition} ORDER BY created, rowid"),
            rusqlite::params_from_iter(values),
            |r| {
                Ok(SubmissionRow {
                    submission: read(r)?,
                    launch_state: r.get(10)?,
                    command: r.get(14)?,
                    display: r.get(15)?,
                    batch_id: r.get(16)?,
                    launch_log: r.get(17)?,
                    launcher: r.get(18)?,
                    updated: r.get(19)?,
                    revision: r.get(20)?,
                })
            },
        )
    }

    /// The submissions alone (what the planner reads), without the launch's texts.
    fn submissions_where(&self, which: Which) -> Result<Vec<Submission>> {
        let mut read = self.submission_reader(&which)?;
        let (condition, values) = which.condition("");
        self.rows(
            &format!("SELECT {SUBMISSION_COLUMNS} FROM submissions WHERE {condition} ORDER BY created, rowid"),
            rusqlite::params_from_iter(values),
            |r| read(r),
        )
    }

    /// Reads a [`Submission`] from a row that starts with [`SUBMISSION_COLUMNS`], with its
    /// job counts; a stage's submissions share one key.
    fn submission_reader(
        &self,
        which: &Which,
    ) -> Result<impl FnMut(&rusqlite::Row) -> rusqlite::Result<Submission> + use<>> {
        let jobs = self.job_counts(which)?;
        let mut stages: crate::fast::Map<ObjectKey, Arc<ObjectKey>> = Default::default();
        // Short texts are read in place (no intermediate String each).
        let text = |r: &rusqlite::Row, i| -> rusqlite::Result<Option<CompactString>> {
            Ok(r.get_ref(i)?.as_str_or_null()?.map(CompactString::new))
        };
        Ok(move |r: &rusqlite::Row| {
            let id = CompactString::new(r.get_ref(0)?.as_str()?);
            let origin: String = r.get(4)?;
            let cursor: Option<String> = r.get(8)?;
            let status: String = r.get(9)?;
            let launch_state: String = r.get(10)?;
            Ok(Submission {
                stage: shared_key(&mut stages, r.get(1)?, r.get(2)?),
                seq: r.get::<_, i64>(3)? as u64,
                origin: serde_json::from_str(&origin).unwrap_or(Origin::Join),
                test: r.get(5)?,
                dataset: text(r, 6)?,
                input: text(r, 7)?,
                cursor_after: cursor
                    .and_then(|c| serde_json::from_str(&c).ok())
                    .map(Box::new),
                cursor_snapshot: r.get(13)?,
                status: Status::parse(&status).unwrap_or(Status::New),
                jobs: jobs.get(id.as_str()).copied().unwrap_or_default(),
                launched: launch_state != "reserved",
                created: r.get(11)?,
                force_located: r.get(12)?,
                id,
            })
        })
    }

    pub fn history(&self, submission: Option<&str>) -> Result<Vec<HistoryRow>> {
        // Two statements, not `?1 IS NULL OR ...`: one submission's history is read through
        // the index.
        let sql = if submission.is_some() {
            "SELECT submission, status, at, at_ms, reason FROM submission_history WHERE submission = ?1 ORDER BY rowid"
        } else {
            "SELECT submission, status, at, at_ms, reason FROM submission_history WHERE ?1 IS NULL ORDER BY rowid"
        };
        self.rows(sql, [submission], |r| {
            Ok(HistoryRow {
                submission: r.get(0)?,
                status: r.get(1)?,
                at: r.get(2)?,
                at_ms: r.get(3)?,
                reason: r.get(4)?,
            })
        })
    }

    /// Everything the planner needs, in one consistent read.
    pub fn observed(&self) -> Result<Observed> {
        let submissions = self.submissions_where(Which::All)?;
        let recoveries = {
            self.rows(
"SELECT original, round, kind, reference, submission FROM recovery_rounds ORDER BY original, round",
[],
|r| {
                    let kind: String = r.get(2)?;
                    Ok(RecoveryRound {
                        original: r.get(0)?,
                        round: r.get(1)?,
                        kind: serde_json::from_value(serde_json::Value::String(kind))
                            .unwrap_or(cascade_crd::RecoveryType::ConsumedStatus),
                        reference: r.get(3)?,
                        submission: r.get(4)?,
                    })
                })?
        };
        let requests = {
            self.rows(
"SELECT id, namespace, stage, test, dataset, who, created, recover_of, recover_type FROM requests ORDER BY id",
[],
|r| {
                    Ok(Request {
                        id: r.get::<_, i64>(0)? as u64,
                        stage: ObjectKey::new(r.get::<_, String>(1)?, r.get::<_, String>(2)?),
                        test: r.get(3)?,
                        dataset: r.get(4)?,
                        who: r.get(5)?,
                        created: r.get(6)?,
                        recovery: match (
                            r.get::<_, Option<String>>(7)?,
                            r.get::<_, Option<String>>(8)?,
                        ) {
                            (Some(of), Some(kind)) => {
                                serde_json::from_value(serde_json::Value::String(kind))
                                    .ok()
                                    .map(|k| (of, k))
                            }
                            _ => None,
                        },
                    })
                })?
        };
        let keys = |sql: &str| -> Result<Vec<(ObjectKey, i64)>> {
            self.rows(sql, [], |r| {
                Ok((
                    ObjectKey::new(r.get::<_, String>(0)?, r.get::<_, String>(1)?),
                    r.get(2)?,
                ))
            })
        };
        Ok(Observed {
            submissions,
            recoveries,
            requests,
            paused: keys("SELECT namespace, name, created FROM pauses")?
                .into_iter()
                .map(|(k, _)| k)
                .collect(),
            first_seen: keys("SELECT namespace, stage, at FROM first_seen")?
                .into_iter()
                .collect(),
            split_resets: keys(
                "SELECT namespace, stage, MAX(after_seq) FROM split_resets GROUP BY namespace, stage",
            )?
            .into_iter()
            .map(|(k, seq)| (k, seq as u64))
            .collect(),
            split_reset_counts: self
                .rows(
                    "SELECT namespace, stage, COUNT(*), MAX(who) FROM split_resets GROUP BY namespace, stage",
                    [],
                    |r| {
                        Ok((
                            ObjectKey::new(r.get::<_, String>(0)?, r.get::<_, String>(1)?),
                            (r.get::<_, u32>(2)?, r.get::<_, String>(3)?),
                        ))
                    },
                )?
                .into_iter()
                .collect(),
            batch_errors: crate::batch::observer::errors(self)?,
        })
    }

    pub fn submission(&self, id: &str) -> Result<Option<SubmissionRow>> {
        Ok(self.rows_where(Which::Id(id))?.into_iter().next())
    }

    pub fn launch_dir(&self, id: &str) -> Result<Option<(String, String, String)>> {
        self.conn
            .query_row(
                "SELECT argv, env, launch_dir FROM submissions WHERE id = ? AND launch_state = 'reserved'",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .at(self)
    }

    /// Remembers the planner's view of each stage for `cascade status` while `run` is going.
    pub fn save_stage_status(&mut self, stages: &[crate::plan::StageStatus]) -> Result<()> {
        let at = now();
        self.write(|tx| upsert_stage_status(tx, stages, at))
    }

    /// The planner's last word on each stage, in pipeline order. Drift follows the pauses
    /// recorded since: a pause an operator just recorded shows at once, one withdrawn no more.
    pub fn saved_stage_status(&self) -> Result<Vec<SavedStage>> {
        self.saved_stages_where("1 = 1", &[])
    }

    /// The saved stages of one campaign.
    pub fn saved_campaign_stages(&self, campaign: &ObjectKey) -> Result<Vec<SavedStage>> {
        self.saved_stages_where(
            "namespace = ?1 AND campaign = ?2",
            &[&campaign.namespace, &campaign.name],
        )
    }

    /// One saved stage, if the controller saved it.
    pub fn saved_stage(&self, stage: &ObjectKey) -> Result<Option<SavedStage>> {
        Ok(self
            .saved_stages_where(
                "namespace = ?1 AND stage = ?2",
                &[&stage.namespace, &stage.name],
            )?
            .into_iter()
            .next())
    }

    fn saved_stages_where(&self, condition: &str, values: &[&str]) -> Result<Vec<SavedStage>> {
        let paused: std::collections::HashSet<(String, String)> = self
            .rows("SELECT namespace, name FROM pauses", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .into_iter()
            .collect();
        let mut saved = self.rows(
&format!("SELECT namespace, stage, campaign, state, reason, detail, since FROM stage_status WHERE {condition} ORDER BY namespace, campaign, position, stage"),
rusqlite::params_from_iter(values),
|r| {
                let detail: String = r.get(5)?;
                let status: Option<crate::plan::StageStatus> = serde_json::from_str(&detail).ok();
                Ok(SavedStage {
                    stage: ObjectKey::new(r.get::<_, String>(0)?, r.get::<_, String>(1)?),
                    campaign: r.get(2)?,
                    state: r.get(3)?,
                    reason: r.get(4)?,
                    drift: status.as_ref().and_then(|s| s.drift.clone()),
                    since: r.get(6)?,
                    status,
                })
            })?;
        for s in &mut saved {
            let ns = s.stage.namespace.to_string();
            let operator_paused = paused.contains(&(ns.clone(), s.stage.name.to_string()))
                || paused.contains(&(ns, s.campaign.clone()));
            if !operator_paused {
                // A pause withdrawn since the last reconcile is drift no more; other drift (a
                // split reset) stays until the definitions agree.
                s.drift = s.drift.take().and_then(|d| {
                    if d.starts_with("paused by an operator") {
                        d.split_once("; ").map(|(_, rest)| rest.to_string())
                    } else {
                        Some(d)
                    }
                });
            } else if s.drift.is_none()
                && s.status
                    .as_ref()
                    .is_some_and(|st| !st.paused_by_definitions)
            {
                s.drift = Some("paused by an operator while the definitions say it runs (recorded after the controller's last reconcile): set `paused: true` in the definitions or `cascade resume` it".into());
            }
        }
        Ok(saved)
    }
}

/// The key of a stage as shared by the submissions read so far, or a new one.
fn shared_key(
    stages: &mut crate::fast::Map<ObjectKey, Arc<ObjectKey>>,
    namespace: String,
    name: String,
) -> Arc<ObjectKey> {
    let key = ObjectKey::new(namespace, name);
    if let Some(shared) = stages.get(&key) {
        return shared.clone();
    }
    let shared = Arc::new(key.clone());
    stages.insert(key, shared.clone());
    shared
}
