//! The watchers: one `kube-runtime` watcher per kind (and per namespace when the controller
//! is limited to some), folded into one map of every Cascade object. The map is handed on
//! after each burst of events once every watcher has listed, with a flag saying whether a
//! definition changed (a status written by the controller itself changes none, and so
//! reloads nothing).
//!
//! The watcher relists by itself when the API server says the resource version is too old
//! (`410 Gone`), uses bookmarks, and backs off on errors; errors are logged, never fatal.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use super::objects::{ObjRef, Objects, PLURALS, api_resource};

/// The objects as they stand, and whether their definitions changed since the last one.
#[derive(Clone)]
pub struct Snapshot {
    pub objects: Arc<Objects>,
    pub definitions_changed: bool,
}

/// How long events may keep coming before the map is handed on (a `kubectl apply` of many
/// objects arrives as a burst).
const SETTLE: Duration = Duration::from_millis(100);

/// Starts the watchers; the receiver gets a snapshot after each burst of events.
pub fn spawn(client: kube::Client, namespaces: &[String]) -> UnboundedReceiver<Snapshot> {
    let mut streams = Vec::new();
    for (i, (kind, plural)) in PLURALS.iter().enumerate() {
        let ar = api_resource(kind, plural);
        let apis: Vec<Api<DynamicObject>> = if namespaces.is_empty() {
            vec![Api::all_with(client.clone(), &ar)]
        } else {
            namespaces
                .iter()
                .map(|ns| Api::namespaced_with(client.clone(), ns, &ar))
                .collect()
        };
        for api in apis {
            let source = streams.len();
            let stream = watcher::watcher(api, watcher::Config::default().any_semantic())
                .default_backoff()
                .map(move |e| (i, source, e));
            streams.push(stream.boxed());
        }
    }
    let watchers = streams.len();
    let (tx, rx) = unbounded_channel();
    tokio::spawn(async move {
        let mut events = futures_util::stream::select_all(streams);
        let mut objects = Objects::new();
        // Per watcher: what its current listing holds so far, and whether it listed once.
        let mut listing: HashMap<usize, BTreeSet<ObjRef>> = HashMap::new();
        let mut listed: BTreeSet<usize> = BTreeSet::new();
        // Which watcher each object came from (its listing decides what it deleted).
        let mut owner: HashMap<ObjRef, usize> = HashMap::new();
        let mut changed = false;
        let mut dirty = false;
        loop {
            let next = if dirty {
                match tokio::time::timeout(SETTLE, events.next()).await {
                    Ok(next) => next,
                    Err(_) => {
                        // A quiet moment: hand the map on once every watcher has listed.
                        if listed.len() == watchers {
                            let snap = Snapshot {
                                objects: Arc::new(objects.clone()),
                                definitions_changed: changed,
                            };
                            if tx.send(snap).is_err() {
                                return;
                            }
                            changed = false;
                        }
                        dirty = false;
                        continue;
                    }
                }
            } else {
                events.next().await
            };
            let Some((kind_index, source, event)) = next else {
                return;
            };
            let kind = PLURALS[kind_index].0;
            match event {
                Ok(Event::Apply(obj)) | Ok(Event::InitApply(obj)) => {
                    let key = ObjRef::of(kind, &obj);
                    listing.entry(source).or_default().insert(key.clone());
                    owner.insert(key.clone(), source);
                    changed |= objects
                        .get(&key)
                        .is_none_or(|old| defines_differently(old, &obj));
                    objects.insert(key, Arc::new(obj));
                }
                Ok(Event::Delete(obj)) => {
                    let key = ObjRef::of(kind, &obj);
                    owner.remove(&key);
                    changed |= objects.remove(&key).is_some();
                }
                Ok(Event::Init) => {
                    listing.insert(source, BTreeSet::new());
                }
                Ok(Event::InitDone) => {
                    // What this watcher had but its new listing lacks was deleted meanwhile.
                    let seen = listing.remove(&source).unwrap_or_default();
                    let before = objects.len();
                    objects.retain(|k, _| owner.get(k) != Some(&source) || seen.contains(k));
                    owner.retain(|k, _| objects.contains_key(k));
                    changed |= objects.len() != before;
                    changed |= listed.insert(source);
                }
                Err(e) => {
                    tracing::warn!(kind, error = %e, "watching the API server");
                    continue;
                }
            }
            dirty = true;
        }
    });
    rx
}

/// Whether two versions of an object define something different: a status write, or a
/// change of the server's bookkeeping, does not.
pub fn defines_differently(old: &DynamicObject, new: &DynamicObject) -> bool {
    let (a, b) = (&old.metadata, &new.metadata);
    a.generation != b.generation
        || a.deletion_timestamp != b.deletion_timestamp
        || a.labels != b.labels
        || a.annotations != b.annotations
        || a.uid != b.uid
        || old.data.get("spec") != new.data.get("spec")
}
