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
use std::sync::Mutex;

use tokio::sync::Notify;

use super::objects::{ObjRef, Objects, PLURALS, api_resource, slim};

/// The objects as they stand, and whether their definitions changed since the last one.
#[derive(Clone)]
pub struct Snapshot {
    pub objects: Arc<Objects>,
    pub definitions_changed: bool,
}

/// How long events may keep coming before the map is handed on (a `kubectl apply` of many
/// objects arrives as a burst).
const SETTLE: Duration = Duration::from_millis(100);

/// The latest snapshot not taken yet. Only the latest matters (it holds every object as it
/// stands), so a controller busy planning never has a queue of old maps holding old
/// versions of every object in memory; whether a definition changed accumulates.
pub struct Snapshots {
    pending: Arc<Mutex<Option<Snapshot>>>,
    ready: Arc<Notify>,
    /// Set when the watchers ended (the runtime is shutting down).
    ended: Arc<std::sync::atomic::AtomicBool>,
}

impl Snapshots {
    /// The next snapshot; `None` once the watchers ended.
    pub async fn recv(&mut self) -> Option<Snapshot> {
        loop {
            if let Some(snap) = self.take() {
                return Some(snap);
            }
            if self.ended.load(std::sync::atomic::Ordering::Acquire) {
                return None;
            }
            self.ready.notified().await;
        }
    }

    fn take(&self) -> Option<Snapshot> {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }
}

struct Publisher {
    pending: Arc<Mutex<Option<Snapshot>>>,
    ready: Arc<Notify>,
    ended: Arc<std::sync::atomic::AtomicBool>,
}

impl Publisher {
    /// Hands the map on; false when no one takes snapshots any more.
    fn publish(&self, objects: &Objects, changed: bool) -> bool {
        if Arc::strong_count(&self.pending) == 1 {
            return false;
        }
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let earlier = pending.take().is_some_and(|s| s.definitions_changed);
        *pending = Some(Snapshot {
            objects: Arc::new(objects.clone()),
            definitions_changed: changed || earlier,
        });
        drop(pending);
        self.ready.notify_one();
        true
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.ended.store(true, std::sync::atomic::Ordering::Release);
        self.ready.notify_one();
    }
}

/// Starts the watchers; the receiver gets the latest snapshot after each burst of events.
pub fn spawn(client: kube::Client, namespaces: &[String]) -> Snapshots {
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
    let rx = Snapshots {
        pending: Arc::default(),
        ready: Arc::new(Notify::new()),
        ended: Arc::default(),
    };
    let tx = Publisher {
        pending: rx.pending.clone(),
        ready: rx.ready.clone(),
        ended: rx.ended.clone(),
    };
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
                            if !tx.publish(&objects, changed) {
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
                    objects.insert(key, Arc::new(slim(obj)));
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
