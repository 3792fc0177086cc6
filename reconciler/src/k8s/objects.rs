//! Cascade's custom resources as the API server holds them, turned into the documents the one
//! loader reads (pure). The planner never learns that its definitions came from Kubernetes:
//! each object becomes one YAML document, named `NAMESPACE/KIND/NAME.yaml` in messages.
//!
//! An invalid object must not take the valid ones down with it (in git a bad commit is
//! refused whole; in a cluster each `kubectl apply` stands alone), so an object whose document
//! does not validate is set aside with its located message, and the rest load again.

use std::collections::{BTreeMap, BTreeSet};

use kube::api::{ApiResource, DynamicObject};
use serde_json::{Map, Value, json};

use crate::model::{DesiredGraph, Diagnostic, SourceFile, load, validate};

/// The finalizer that makes deleting a campaign apply its `removalPolicy` first.
pub const FINALIZER: &str = "cascade.dev/removal-policy";

/// (kind, plural) of each Cascade kind, in the order their references resolve.
pub const PLURALS: [(&str, &str); 5] = [
    ("LoginSetup", "loginsetups"),
    ("JobType", "jobtypes"),
    ("Campaign", "campaigns"),
    ("CampaignStage", "campaignstages"),
    ("Notifier", "notifiers"),
];

/// The API resource of a Cascade kind.
pub fn api_resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: cascade_crd::GROUP.into(),
        version: cascade_crd::VERSION.into(),
        api_version: cascade_crd::API_VERSION.into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// Where an object is: (kind, namespace, name).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjRef {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl ObjRef {
    pub fn of(kind: &str, obj: &DynamicObject) -> ObjRef {
        ObjRef {
            kind: kind.to_string(),
            namespace: obj.metadata.namespace.clone().unwrap_or_default(),
            name: obj.metadata.name.clone().unwrap_or_default(),
        }
    }

    /// The document's name in messages (and the directory its launches run in).
    pub fn path(&self) -> String {
        format!("{}/{}/{}.yaml", self.namespace, self.kind, self.name)
    }

    pub fn plural(&self) -> &'static str {
        PLURALS
            .iter()
            .find(|(k, _)| *k == self.kind)
            .map_or("", |(_, p)| p)
    }
}

/// Every Cascade object the watchers see, by where it is.
pub type Objects = BTreeMap<ObjRef, std::sync::Arc<DynamicObject>>;

/// Where a kept object holds its status's digest ([`status_digest`]). The controller only
/// compares a status with the one it wants and keeps its conditions' transition times; the
/// whole status as a tree would be most of the object's memory (1,000 campaigns: tens of MiB).
const STATUS_DIGEST: &str = "statusDigest";

/// What the controller keeps of a status, as JSON text: a digest of the whole (two statuses
/// with the same digest are the same) and each condition's type, status and transition time.
pub fn status_digest(status: &Value) -> String {
    // Serialized from sorted maps: the same status always gives the same text.
    let hex = crate::digest::sha256_hex(status.to_string().as_bytes(), 12);
    let conditions: Vec<Value> = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            json!({
                "type": c["type"],
                "status": c["status"],
                "lastTransitionTime": c["lastTransitionTime"],
            })
        })
        .collect();
    let mut text = json!({"digest": hex, "conditions": conditions}).to_string();
    text.shrink_to_fit();
    text
}

/// The object as the controller keeps it: its status as a digest, without the server's
/// `managedFields` and kubectl's copy of the previous object, which nothing reads.
pub fn slim(mut obj: DynamicObject) -> DynamicObject {
    obj.metadata.managed_fields = None;
    if let Some(notes) = obj.metadata.annotations.as_mut() {
        notes.remove(LAST_APPLIED);
    }
    if let Some(map) = obj.data.as_object_mut()
        && let Some(status) = map.remove("status")
    {
        map.insert(STATUS_DIGEST.into(), Value::String(status_digest(&status)));
    }
    obj
}

/// The digest of a kept object's status ([`slim`]).
pub fn kept_status(obj: &DynamicObject) -> Option<&str> {
    obj.data.get(STATUS_DIGEST).and_then(Value::as_str)
}

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// An object being deleted: its deletion is in progress, and it is no longer desired.
pub fn terminating(obj: &DynamicObject) -> bool {
    obj.metadata.deletion_timestamp.is_some()
}

/// The document of an object: what the user wrote (spec and the metadata that means
/// something), without what the server or the controller adds (status, resource version,
/// managed fields). Two snapshots whose documents are equal define the same thing.
pub fn document(obj_ref: &ObjRef, obj: &DynamicObject) -> SourceFile {
    let text = serde_saphyr::to_string(&document_value(obj_ref, obj))
        .unwrap_or_else(|e| format!("# cannot write the object: {e}\n"));
    SourceFile {
        path: obj_ref.path(),
        bytes: text.into_bytes().into(),
    }
}

/// The document of an object (see [`document`]) as JSON.
pub fn document_value(obj_ref: &ObjRef, obj: &DynamicObject) -> Value {
    let mut metadata = Map::new();
    metadata.insert("name".into(), json!(obj_ref.name));
    metadata.insert("namespace".into(), json!(obj_ref.namespace));
    let m = &obj.metadata;
    if let Some(g) = m.generation {
        metadata.insert("generation".into(), json!(g));
    }
    if let Some(labels) = m.labels.as_ref().filter(|l| !l.is_empty()) {
        metadata.insert("labels".into(), json!(labels));
    }
    if let Some(notes) = m.annotations.as_ref() {
        // kubectl keeps the whole previous object here: of no meaning, and large.
        let kept: BTreeMap<_, _> = notes
            .iter()
            .filter(|(k, _)| k.as_str() != LAST_APPLIED)
            .collect();
        if !kept.is_empty() {
            metadata.insert("annotations".into(), json!(kept));
        }
    }
    let mut doc = Map::new();
    doc.insert("apiVersion".into(), json!(cascade_crd::API_VERSION));
    doc.insert("kind".into(), json!(obj_ref.kind));
    doc.insert("metadata".into(), Value::Object(metadata));
    if let Some(spec) = obj.data.get("spec") {
        doc.insert("spec".into(), spec.clone());
    }
    Value::Object(doc)
}

/// The documents of the objects that are desired: not being deleted, and not a stage of a
/// campaign being deleted (those go with it).
pub fn documents(objects: &Objects) -> Vec<SourceFile> {
    let leaving: BTreeSet<(&str, &str)> = objects
        .iter()
        .filter(|(r, o)| r.kind == "Campaign" && terminating(o))
        .map(|(r, _)| (r.namespace.as_str(), r.name.as_str()))
        .collect();
    objects
        .iter()
        .filter(|(_, o)| !terminating(o))
        .filter(|(r, o)| {
            r.kind != "CampaignStage"
                || !o
                    .data
                    .pointer("/spec/campaign")
                    .and_then(Value::as_str)
                    .is_some_and(|c| leaving.contains(&(r.namespace.as_str(), c)))
        })
        .map(|(r, o)| document(r, o))
        .collect()
}

/// The graph of the documents that validate, and the located errors of each that does not
/// (by document path; only errors: a warning does not set a document aside).
pub struct Sorted {
    pub graph: DesiredGraph,
    pub rejected: BTreeMap<String, Vec<Diagnostic>>,
}

/// Loads the documents, setting aside each one with an error (and then each one that named
/// a set-aside document) until the rest validate.
pub fn load_valid(files: &[SourceFile]) -> Sorted {
    let mut rejected: BTreeMap<String, Vec<Diagnostic>> = BTreeMap::new();
    let mut set_aside: BTreeSet<String> = BTreeSet::new();
    // Each round sets aside at least one document, so this ends.
    loop {
        let kept: Vec<SourceFile> = files
            .iter()
            .filter(|f| !set_aside.contains(&f.path))
            .cloned()
            .collect();
        let loaded = load(&kept);
        let validated = validate(&loaded.resources, &loaded.broken, loaded.diagnostics);
        if let Some(graph) = validated.graph {
            return Sorted { graph, rejected };
        }
        let mut errors: BTreeMap<String, Vec<Diagnostic>> = BTreeMap::new();
        for mut d in validated
            .diagnostics
            .into_iter()
            .filter(Diagnostic::is_error)
        {
            if d.code == "unknown-reference" && !set_aside.is_empty() {
                // It may well exist, and be set aside: say so rather than only "does not exist".
                d.hint = Some(format!(
                    "if it exists, it is invalid: its status says why ({} set aside)",
                    set_aside.iter().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
            errors.entry(d.file.clone()).or_default().push(d);
        }
        if errors.is_empty() {
            // Nothing left to blame (the validator always says why it builds no graph):
            // set everything aside rather than loop.
            for f in &kept {
                rejected.entry(f.path.clone()).or_default();
            }
            return Sorted {
                graph: DesiredGraph::default(),
                rejected,
            };
        }
        set_aside.extend(errors.keys().cloned());
        rejected.extend(errors);
    }
}
