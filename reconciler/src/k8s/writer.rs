//! Writing back to the API server: each object's status (server-side apply on the status
//! subresource, field manager `cascade`, only when it differs), the finalizer of campaigns,
//! owner references from stages to their campaign, and Events on stage transitions.
//!
//! It runs beside the controller loop and is handed the latest objects and statuses; a write
//! that fails (a conflict, the server away) is tried again at the next round, which comes
//! with the next change or after a while.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::objects::{
    FINALIZER, ObjRef, Objects, api_resource, kept_status, status_digest, terminating,
};
use super::status::{self, Report};
use crate::model::Diagnostic;

/// What the writer works from.
#[derive(Clone, Default)]
pub struct Input {
    pub objects: Arc<Objects>,
    pub report: Arc<Report>,
    /// Located errors of the objects set aside, by document path.
    pub rejected: Arc<BTreeMap<String, Vec<Diagnostic>>>,
}

/// The field manager of everything Cascade writes.
pub const FIELD_MANAGER: &str = "cascade";

/// How often everything is compared again when nothing changed (and a failed write retried).
const RESYNC: Duration = Duration::from_secs(30);
const RETRY: Duration = Duration::from_secs(2);

/// Starts the writer; send it each new input.
pub fn spawn(client: kube::Client, identity: String) -> watch::Sender<Input> {
    let (tx, mut rx) = watch::channel(Input::default());
    tokio::spawn(async move {
        let mut writer = Writer {
            client: client.clone(),
            written: HashMap::new(),
            events: Events::new(client, identity),
            last_report: Arc::new(Report::default()),
        };
        loop {
            let input = rx.borrow_and_update().clone();
            let (clean, wrote) = writer.sync(&input).await;
            drop(input);
            if wrote > 0 {
                crate::memory::give_back();
            }
            let wait = if clean { RESYNC } else { RETRY };
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep(wait) => {}
            }
        }
    });
    tx
}

struct Writer {
    client: kube::Client,
    /// The digest of the status last written to each object, until its echo from the watch
    /// is back.
    written: HashMap<ObjRef, String>,
    events: Events,
    last_report: Arc<Report>,
}

impl Writer {
    /// One round over every object: whether every write went through, and how many
    /// statuses were written.
    async fn sync(&mut self, input: &Input) -> (bool, usize) {
        let mut clean = true;
        let mut wrote = 0;
        let now = now_rfc3339();
        // A campaign's status sums up its stages': it is written after theirs, so that
        // whoever reads a campaign `Succeeded` finds its stages `Completed`.
        let (campaigns, rest): (Vec<_>, Vec<_>) = input
            .objects
            .iter()
            .partition(|(r, _)| r.kind == "Campaign");
        for (r, obj) in rest.into_iter().chain(campaigns) {
            let api: Api<DynamicObject> = Api::namespaced_with(
                self.client.clone(),
                &r.namespace,
                &api_resource(&r.kind, r.plural()),
            );
            let result = async {
                self.metadata(&api, r, obj, &input.objects).await?;
                if !terminating(obj) && self.status(&api, r, obj, input, &now).await? {
                    wrote += 1;
                }
                Ok::<(), kube::Error>(())
            }
            .await;
            if let Err(e) = result {
                clean = false;
                if !is_conflict(&e) {
                    tracing::warn!(object = %r.path(), error = %e, "cannot write to the API server");
                }
            }
        }
        self.written.retain(|k, _| input.objects.contains_key(k));
        if !Arc::ptr_eq(&self.last_report, &input.report) {
            self.events
                .transitions(&self.last_report, &input.report, &input.objects)
                .await;
            self.last_report = input.report.clone();
        }
        (clean, wrote)
    }

    /// The campaign finalizer (added while it lives, removed once its deletion was applied:
    /// the controller hands over objects only after applying them), and a stage's owner
    /// reference to its campaign (so that deleting the campaign deletes its stages).
    async fn metadata(
        &self,
        api: &Api<DynamicObject>,
        r: &ObjRef,
        obj: &DynamicObject,
        objects: &Objects,
    ) -> Result<(), kube::Error> {
        let finalizers = obj.finalizers();
        let has = finalizers.iter().any(|f| f == FINALIZER);
        let rv = obj.resource_version();
        if r.kind == "Campaign" {
            let wanted: Option<Vec<String>> = match (terminating(obj), has) {
                (false, false) => Some(
                    finalizers
                        .iter()
                        .cloned()
                        .chain([FINALIZER.to_string()])
                        .collect(),
                ),
                (true, true) => Some(
                    finalizers
                        .iter()
                        .filter(|f| *f != FINALIZER)
                        .cloned()
                        .collect(),
                ),
                _ => None,
            };
            if let Some(list) = wanted {
                let patch = json!({"metadata": {"finalizers": list, "resourceVersion": rv}});
                api.patch(&r.name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
            }
        }
        if r.kind == "CampaignStage" && !terminating(obj) {
            let Some(campaign) = obj.data.pointer("/spec/campaign").and_then(Value::as_str) else {
                return Ok(());
            };
            let key = ObjRef {
                kind: "Campaign".into(),
                namespace: r.namespace.clone(),
                name: campaign.into(),
            };
            let Some(uid) = objects.get(&key).and_then(|c| c.uid()) else {
                return Ok(());
            };
            let mut owners = obj.owner_references().to_vec();
            if owners.iter().any(|o| o.uid == uid) {
                return Ok(());
            }
            // A stage moved to another campaign drops its old campaign as owner.
            owners.retain(|o| o.kind != "Campaign" || o.api_version != cascade_crd::API_VERSION);
            owners.push(
                k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                    api_version: cascade_crd::API_VERSION.into(),
                    kind: "Campaign".into(),
                    name: campaign.into(),
                    uid,
                    controller: Some(false),
                    block_owner_deletion: Some(false),
                },
            );
            let patch = json!({"metadata": {"ownerReferences": owners, "resourceVersion": rv}});
            api.patch(&r.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
        }
        Ok(())
    }

    async fn status(
        &mut self,
        api: &Api<DynamicObject>,
        r: &ObjRef,
        obj: &DynamicObject,
        input: &Input,
        now: &str,
    ) -> Result<bool, kube::Error> {
        let errors = input.rejected.get(&r.path()).map(Vec::as_slice);
        let Some(mut desired) =
            status::desired(r, obj.metadata.generation, &input.report, errors, now)
        else {
            return Ok(false);
        };
        let current = kept_status(obj);
        // Its echo is back: the object says it now.
        if current.is_some() && self.written.get(r).map(String::as_str) == current {
            self.written.remove(r);
        }
        let previous = self
            .written
            .get(r)
            .map(String::as_str)
            .or(current)
            .and_then(|text| serde_json::from_str::<Value>(text).ok());
        status::keep_transition_times(previous.as_ref(), &mut desired);
        let text = status_digest(&desired);
        if current == Some(text.as_str()) || self.written.get(r) == Some(&text) {
            return Ok(false);
        }
        let patch = json!({
            "apiVersion": cascade_crd::API_VERSION,
            "kind": r.kind,
            "status": desired,
        });
        api.patch_status(
            &r.name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
        self.written.insert(r.clone(), text);
        Ok(true)
    }
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Kubernetes Events for a stage's transitions (its phase, and submissions launched, located
/// or failed), at most one per stage and reason every [`EVENT_GAP`] and [`EVENT_BURST`] a
/// round: `kubectl describe` stays readable when hundreds of submissions end at once (the
/// counts in the next event's note catch up).
struct Events {
    recorder: Recorder,
    last: HashMap<(ObjRef, String), Instant>,
}

const EVENT_GAP: Duration = Duration::from_secs(10);
const EVENT_BURST: usize = 50;

impl Events {
    fn new(client: kube::Client, identity: String) -> Events {
        let reporter = Reporter {
            controller: "cascade".into(),
            instance: Some(identity),
        };
        Events {
            recorder: Recorder::new(client, reporter),
            last: HashMap::new(),
        }
    }

    async fn transitions(&mut self, before: &Report, after: &Report, objects: &Objects) {
        let mut sent = 0;
        for (key, st) in &after.stages {
            let r = ObjRef {
                kind: "CampaignStage".into(),
                namespace: key.namespace.to_string(),
                name: key.name.to_string(),
            };
            let Some(obj) = objects.get(&r) else { continue };
            let old = before.stages.get(key);
            let recoveries = (
                before.recoveries.get(key).copied().unwrap_or(0),
                after.recoveries.get(key).copied().unwrap_or(0),
            );
            for (reason, note, warning) in happenings(old, st, recoveries) {
                if sent >= EVENT_BURST {
                    return;
                }
                let slot = (r.clone(), reason.clone());
                if self
                    .last
                    .get(&slot)
                    .is_some_and(|t| t.elapsed() < EVENT_GAP)
                {
                    continue;
                }
                let reference = obj.object_ref(&api_resource(&r.kind, r.plural()));
                let event = Event {
                    type_: if warning {
                        EventType::Warning
                    } else {
                        EventType::Normal
                    },
                    reason: reason.clone(),
                    note: Some(note),
                    action: "Reconcile".into(),
                    secondary: None,
                };
                if let Err(e) = self.recorder.publish(&event, &reference).await {
                    tracing::warn!(stage = %key, error = %e, "cannot record an event");
                }
                self.last.insert(slot, Instant::now());
                sent += 1;
            }
        }
        self.last.retain(|_, t| t.elapsed() < EVENT_GAP);
    }
}

/// What happened to a stage between two reports: (reason, note, is a warning).
/// `recoveries` counts its recovery submissions before and after.
pub fn happenings(
    before: Option<&cascade_crd::CampaignStageStatus>,
    after: &cascade_crd::CampaignStageStatus,
    recoveries: (u32, u32),
) -> Vec<(String, String, bool)> {
    let mut out = Vec::new();
    let phase = after.phase.clone().unwrap_or_default();
    if before.and_then(|b| b.phase.as_ref()) != after.phase.as_ref() && !phase.is_empty() {
        let warning = matches!(phase.as_str(), "Failed" | "Degraded");
        let note = after.reason.clone().unwrap_or_default();
        out.push((format!("Stage{phase}"), note, warning));
    }
    let count = |s: Option<&cascade_crd::CampaignStageStatus>, status: &str| {
        s.and_then(|s| s.submissions.get(status))
            .copied()
            .unwrap_or(0)
    };
    let total = |s: Option<&cascade_crd::CampaignStageStatus>| {
        s.map_or(0, |s| s.submissions.values().sum::<u32>())
    };
    if total(Some(after)) > total(before) {
        let n = total(Some(after)) - total(before);
        out.push((
            "Launched".into(),
            format!("{n} submission(s) launched, {} in all", total(Some(after))),
            false,
        ));
    }
    let (was, is) = recoveries;
    if is > was {
        out.push((
            "RecoveryLaunched".into(),
            format!("{} recovery submission(s) launched, {is} in all", is - was),
            false,
        ));
    }
    for (status, reason, warning) in [
        ("Located", "Located", false),
        ("Failed", "SubmissionFailed", true),
        ("LaunchFailed", "LaunchFailed", true),
    ] {
        let (was, is) = (count(before, status), count(Some(after), status));
        if is > was {
            out.push((
                reason.into(),
                format!(
                    "{} submission(s) {}, {is} in all",
                    is - was,
                    status.to_lowercase()
                ),
                warning,
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use cascade_crd::CampaignStageStatus;

    fn st(phase: &str, subs: &[(&str, u32)]) -> CampaignStageStatus {
        CampaignStageStatus {
            phase: Some(phase.into()),
            reason: Some(format!("{phase} because")),
            submissions: subs.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_stage_that_launched_located_and_failed_says_each_once() {
        let before = st("Running", &[("Running", 2)]);
        let after = st("Failed", &[("Located", 1), ("Failed", 2)]);
        let got = happenings(Some(&before), &after, (0, 1));
        let reasons: Vec<&str> = got.iter().map(|(r, _, _)| r.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "StageFailed",
                "Launched",
                "RecoveryLaunched",
                "Located",
                "SubmissionFailed"
            ]
        );
        assert!(got[0].2, "a failed stage is a warning");
        assert_eq!(got[1].1, "1 submission(s) launched, 3 in all");
        assert_eq!(got[2].1, "1 recovery submission(s) launched, 1 in all");
        assert_eq!(got[4].1, "2 submission(s) failed, 2 in all");
        assert!(happenings(Some(&after), &after, (1, 1)).is_empty());
    }
}
