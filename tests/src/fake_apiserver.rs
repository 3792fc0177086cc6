//! A fake Kubernetes API server, in process, over real HTTP on loopback.
//!
//! No Kubernetes API server can be installed on these machines, so the controller's
//! Kubernetes side is tested against this one, driven through the real `kube` client in the
//! real `cascade` binary. It keeps objects as JSON and answers in the API's shapes: lists with
//! a `resourceVersion`, watches as newline-delimited events (with `BOOKMARK`s, and an `ERROR`
//! event with `410 Gone` for a resource version it has forgotten, which forces a relist),
//! `409 Conflict` for a write carrying a stale `resourceVersion` or a create of an existing
//! name, the status subresource, finalizers (a delete only marks an object that has some),
//! and owner references (deleting an owner deletes what it owns). Server-side apply is
//! approximated: an apply patch is merged like a JSON merge patch (on the status subresource,
//! it sets `status`). Every request is recorded for tests to assert on.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

/// Where an object lives: (API prefix such as `apis/cascade.dev/v1alpha1`, plural, namespace, name).
pub type Key = (String, String, String, String);

/// One recorded request: method, path (without the query) and content type.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_type: String,
    pub body: Value,
}

#[derive(Default)]
struct Store {
    rv: u64,
    uid: u64,
    objects: BTreeMap<Key, Value>,
    /// Every change, in order: (resource version, event type, key, object).
    log: Vec<(u64, &'static str, Key, Value)>,
    /// Watches that start from a resource version below this get `410 Gone`.
    forgotten_below: u64,
    requests: Vec<Request>,
    /// Answer the next PATCH of this path with 409 once (a write that lost a race).
    conflict_once: Vec<String>,
}

/// A running fake API server.
#[derive(Clone)]
pub struct FakeApiServer {
    pub addr: SocketAddr,
    store: Arc<Mutex<Store>>,
    changes: broadcast::Sender<u64>,
    /// Ends every open watch (to be reopened by the client).
    drop_watches: broadcast::Sender<()>,
}

impl FakeApiServer {
    /// Starts one on its own thread, on a free loopback port.
    pub fn start() -> FakeApiServer {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let (changes, _) = broadcast::channel(4096);
                let (drop_watches, _) = broadcast::channel(16);
                let server = FakeApiServer {
                    addr: listener.local_addr().unwrap(),
                    store: Arc::default(),
                    changes,
                    drop_watches,
                };
                tx.send(server.clone()).unwrap();
                let app = Router::new().fallback(handle).with_state(server);
                axum::serve(listener, app).await.unwrap();
            });
        });
        rx.recv().expect("the fake API server started")
    }

    /// A kubeconfig that points the `kube` client here.
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: default\ncurrent-context: fake\nusers:\n- name: fake\n  user:\n    token: fake-token\n",
            self.addr
        )
    }

    /// Creates or updates an object (as `kubectl apply` would): its spec replaces the
    /// stored one, its status is kept.
    pub fn apply(&self, object: Value) {
        let key = key_of(&object);
        let mut store = self.store.lock().unwrap();
        let next = match store.objects.get(&key) {
            Some(old) => {
                let mut next = old.clone();
                next["spec"] = object["spec"].clone();
                for field in ["labels", "annotations"] {
                    if let Some(v) = object["metadata"].get(field) {
                        next["metadata"][field] = v.clone();
                    }
                }
                if old["spec"] != next["spec"] {
                    bump_generation(&mut next);
                }
                next
            }
            None => store.fresh(object),
        };
        let rv = store.put(key, next, "MODIFIED");
        drop(store);
        let _ = self.changes.send(rv);
    }

    /// Sets an object's status, as the controller that owns it would (the Job controller
    /// for a Job: no such controller runs here).
    pub fn set_status(&self, plural: &str, namespace: &str, name: &str, status: Value) {
        let mut store = self.store.lock().unwrap();
        let key = store
            .objects
            .keys()
            .find(|k| k.1 == plural && k.2 == namespace && k.3 == name)
            .cloned()
            .expect("the object exists");
        let mut next = store.objects[&key].clone();
        next["status"] = status;
        let rv = store.put(key, next, "MODIFIED");
        drop(store);
        let _ = self.changes.send(rv);
    }

    /// An object as stored.
    pub fn get(&self, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        let store = self.store.lock().unwrap();
        store
            .objects
            .iter()
            .find(|(k, _)| k.1 == plural && k.2 == namespace && k.3 == name)
            .map(|(_, v)| v.clone())
    }

    /// Every stored object of a plural.
    pub fn list(&self, plural: &str) -> Vec<Value> {
        let store = self.store.lock().unwrap();
        store
            .objects
            .iter()
            .filter(|(k, _)| k.1 == plural)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Deletes as `kubectl delete` does (an object with finalizers is only marked).
    pub fn delete(&self, plural: &str, namespace: &str, name: &str) {
        let mut store = self.store.lock().unwrap();
        let key = store
            .objects
            .keys()
            .find(|k| k.1 == plural && k.2 == namespace && k.3 == name)
            .cloned();
        if let Some(key) = key {
            let rv = store.delete(&key);
            drop(store);
            let _ = self.changes.send(rv);
        }
    }

    /// Forgets the history of changes: a watch resumed from an older version gets 410 Gone.
    /// Open watches are ended, so clients resume at once.
    pub fn forget_history(&self) {
        let mut store = self.store.lock().unwrap();
        store.forgotten_below = store.rv + 1;
        store.log.clear();
        drop(store);
        let _ = self.drop_watches.send(());
    }

    /// The next PATCH of this path (without query) is answered 409 Conflict.
    pub fn conflict_once(&self, path: &str) {
        self.store
            .lock()
            .unwrap()
            .conflict_once
            .push(path.to_string());
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<Request> {
        self.store.lock().unwrap().requests.clone()
    }
}

impl Store {
    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    /// A new object: uid, generation 1, creation time.
    fn fresh(&mut self, mut object: Value) -> Value {
        self.uid += 1;
        let meta = &mut object["metadata"];
        meta["uid"] = json!(format!("00000000-0000-4000-8000-{:012}", self.uid));
        meta["generation"] = json!(1);
        meta["creationTimestamp"] = json!("2026-12-06T10:00:00Z");
        object
    }

    fn put(&mut self, key: Key, mut object: Value, kind: &'static str) -> u64 {
        let rv = self.next_rv();
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        let kind = if self.objects.contains_key(&key) {
            kind
        } else {
            "ADDED"
        };
        self.log.push((rv, kind, key.clone(), object.clone()));
        self.objects.insert(key, object);
        rv
    }

    fn delete(&mut self, key: &Key) -> u64 {
        let Some(object) = self.objects.get(key).cloned() else {
            return self.rv;
        };
        let finalizers = object["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        if finalizers {
            if object["metadata"].get("deletionTimestamp").is_some() {
                return self.rv;
            }
            let mut marked = object;
            marked["metadata"]["deletionTimestamp"] = json!("2026-12-06T11:00:00Z");
            return self.put(key.clone(), marked, "MODIFIED");
        }
        self.remove(key)
    }

    /// Removes an object for good, and (the garbage collector's part) what it owns.
    fn remove(&mut self, key: &Key) -> u64 {
        let Some(mut object) = self.objects.remove(key) else {
            return self.rv;
        };
        let rv = self.next_rv();
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        let uid = object["metadata"]["uid"].clone();
        self.log.push((rv, "DELETED", key.clone(), object));
        let owned: Vec<Key> = self
            .objects
            .iter()
            .filter(|(_, o)| {
                o["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid))
            })
            .map(|(k, _)| k.clone())
            .collect();
        let mut last = rv;
        for k in owned {
            last = self.delete(&k);
        }
        last
    }
}

fn bump_generation(object: &mut Value) {
    let g = object["metadata"]["generation"].as_i64().unwrap_or(0);
    object["metadata"]["generation"] = json!(g + 1);
}

/// The key of an object from its apiVersion, kind, namespace and name.
fn key_of(object: &Value) -> Key {
    let api_version = object["apiVersion"].as_str().unwrap_or("v1");
    let prefix = if api_version.contains('/') {
        format!("apis/{api_version}")
    } else {
        format!("api/{api_version}")
    };
    let kind = object["kind"].as_str().unwrap_or_default().to_lowercase();
    let plural = if kind.ends_with('s') {
        format!("{kind}es")
    } else {
        format!("{kind}s")
    };
    (
        prefix,
        plural,
        object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string(),
        object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let map = target.as_object_mut().unwrap();
    for (k, v) in patch {
        if v.is_null() {
            map.remove(k);
        } else {
            merge(map.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

fn status(code: u16, reason: &str, message: &str) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code,
    });
    (
        StatusCode::from_u16(code).unwrap(),
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn ok(value: &Value) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        value.to_string(),
    )
        .into_response()
}

/// The parts of a request path: (prefix, namespace, plural, name, subresource).
struct Target {
    prefix: String,
    namespace: Option<String>,
    plural: String,
    name: Option<String>,
    subresource: Option<String>,
}

fn target(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (prefix, rest) = match parts.as_slice() {
        ["api", v, rest @ ..] => (format!("api/{v}"), rest),
        ["apis", g, v, rest @ ..] => (format!("apis/{g}/{v}"), rest),
        _ => return None,
    };
    let s = |x: &&str| x.to_string();
    Some(match rest {
        [plural] => Target {
            prefix,
            namespace: None,
            plural: s(plural),
            name: None,
            subresource: None,
        },
        ["namespaces", ns, plural] => Target {
            prefix,
            namespace: Some(s(ns)),
            plural: s(plural),
            name: None,
            subresource: None,
        },
        ["namespaces", ns, plural, name] => Target {
            prefix,
            namespace: Some(s(ns)),
            plural: s(plural),
            name: Some(s(name)),
            subresource: None,
        },
        ["namespaces", ns, plural, name, sub] => Target {
            prefix,
            namespace: Some(s(ns)),
            plural: s(plural),
            name: Some(s(name)),
            subresource: Some(s(sub)),
        },
        _ => return None,
    })
}

/// `%2F` and the like, as a client encodes a query value.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether an object's labels match an equality selector (`a=b,c=d`; the only form the
/// controller uses).
fn selects(selector: &str, object: &Value) -> bool {
    selector
        .split(',')
        .filter(|t| !t.is_empty())
        .all(|term| match term.split_once('=') {
            Some((k, v)) => object["metadata"]["labels"][k.trim_end_matches('=')] == v,
            None => false,
        })
}

fn query_param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

async fn handle(
    State(server): State<FakeApiServer>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let query = uri.query().unwrap_or("").to_string();
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    server.store.lock().unwrap().requests.push(Request {
        method: method.to_string(),
        path: path.clone(),
        query: query.clone(),
        content_type: content_type.clone(),
        body: parsed.clone(),
    });
    let Some(t) = target(&path) else {
        return status(404, "NotFound", &format!("no route {path}"));
    };
    let in_scope = |k: &Key| {
        k.0 == t.prefix && k.1 == t.plural && t.namespace.as_ref().is_none_or(|ns| &k.2 == ns)
    };
    match (&method, &t.name) {
        (&Method::GET, None)
            if query_param(&query, "watch").is_some_and(|w| w == "true" || w == "1") =>
        {
            let from: u64 = query_param(&query, "resourceVersion")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let bookmarks = query_param(&query, "allowWatchBookmarks") == Some("true");
            watch(server.clone(), t, from, bookmarks)
        }
        (&Method::GET, None) => {
            let store = server.store.lock().unwrap();
            let selector = query_param(&query, "labelSelector").map(percent_decode);
            let items: Vec<Value> = store
                .objects
                .iter()
                .filter(|(k, v)| in_scope(k) && selector.as_deref().is_none_or(|s| selects(s, v)))
                .map(|(_, v)| v.clone())
                .collect();
            ok(&json!({
                "apiVersion": t.prefix.trim_start_matches("apis/").trim_start_matches("api/"),
                "kind": "List",
                "metadata": {"resourceVersion": store.rv.to_string()},
                "items": items,
            }))
        }
        (&Method::POST, None) => {
            let mut object = parsed;
            let ns = t.namespace.clone().unwrap_or_default();
            object["metadata"]["namespace"] = json!(ns);
            let name = object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let key = (t.prefix.clone(), t.plural.clone(), ns, name.clone());
            let mut store = server.store.lock().unwrap();
            if store.objects.contains_key(&key) {
                return status(
                    409,
                    "AlreadyExists",
                    &format!("{} \"{name}\" already exists", t.plural),
                );
            }
            let object = store.fresh(object);
            let rv = store.put(key.clone(), object, "ADDED");
            let stored = store.objects[&key].clone();
            drop(store);
            let _ = server.changes.send(rv);
            (
                StatusCode::CREATED,
                [("content-type", "application/json")],
                stored.to_string(),
            )
                .into_response()
        }
        (_, Some(name)) => {
            let key = (
                t.prefix.clone(),
                t.plural.clone(),
                t.namespace.clone().unwrap_or_default(),
                name.clone(),
            );
            one(
                &server,
                &method,
                &key,
                t.subresource.as_deref(),
                &path,
                parsed,
                &content_type,
            )
        }
        _ => status(405, "MethodNotAllowed", "not supported here"),
    }
}

/// GET, PUT, PATCH or DELETE of one object (or its status).
fn one(
    server: &FakeApiServer,
    method: &Method,
    key: &Key,
    subresource: Option<&str>,
    path: &str,
    body: Value,
    content_type: &str,
) -> Response {
    let mut store = server.store.lock().unwrap();
    let Some(current) = store.objects.get(key).cloned() else {
        return status(
            404,
            "NotFound",
            &format!("{} \"{}\" not found", key.1, key.3),
        );
    };
    let stale = |given: &Value| {
        given["metadata"]["resourceVersion"]
            .as_str()
            .is_some_and(|rv| Some(rv) != current["metadata"]["resourceVersion"].as_str())
    };
    let conflict = || {
        status(
            409,
            "Conflict",
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    };
    let next = match *method {
        Method::GET => return ok(&current),
        Method::DELETE => {
            let rv = store.delete(key);
            drop(store);
            let _ = server.changes.send(rv);
            return ok(&current);
        }
        Method::PUT => {
            if stale(&body) {
                return conflict();
            }
            let mut next = body;
            for kept in ["uid", "creationTimestamp", "generation"] {
                next["metadata"][kept] = current["metadata"][kept].clone();
            }
            if subresource == Some("status") {
                let mut whole = current.clone();
                whole["status"] = next["status"].clone();
                whole
            } else {
                next["status"] = current["status"].clone();
                if next["spec"] != current["spec"] {
                    bump_generation(&mut next);
                }
                next
            }
        }
        Method::PATCH => {
            if let Some(i) = store.conflict_once.iter().position(|p| p == path) {
                store.conflict_once.remove(i);
                return conflict();
            }
            if stale(&body) {
                return conflict();
            }
            let mut patch = body;
            if let Some(meta) = patch.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.remove("resourceVersion");
            }
            let mut next = current.clone();
            if subresource == Some("status") {
                next["status"] = patch["status"].clone();
            } else if content_type.starts_with("application/apply-patch")
                || content_type.starts_with("application/merge-patch")
                || content_type.starts_with("application/strategic-merge-patch")
            {
                merge(&mut next, &patch);
                next["status"] = current["status"].clone();
                if next["spec"] != current["spec"] {
                    bump_generation(&mut next);
                }
            } else {
                return status(415, "UnsupportedMediaType", content_type);
            }
            next
        }
        _ => return status(405, "MethodNotAllowed", "not supported here"),
    };
    let mut next = next;
    if next.get("status").is_some_and(Value::is_null) {
        next.as_object_mut().unwrap().remove("status");
    }
    let finished = next["metadata"].get("deletionTimestamp").is_some()
        && next["metadata"]["finalizers"]
            .as_array()
            .is_none_or(|f| f.is_empty());
    let mut rv = store.put(key.clone(), next, "MODIFIED");
    let stored = store.objects[key].clone();
    if finished {
        rv = store.remove(key);
    }
    drop(store);
    let _ = server.changes.send(rv);
    ok(&stored)
}

/// A watch: the changes after `from` in scope, then each new one as it happens, a bookmark
/// every second when asked, until the client goes or the watches are dropped.
fn watch(server: FakeApiServer, t: Target, from: u64, bookmarks: bool) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(256);
    let mut changes = server.changes.subscribe();
    let mut dropped = server.drop_watches.subscribe();
    let in_scope = move |k: &Key| {
        k.0 == t.prefix && k.1 == t.plural && t.namespace.as_ref().is_none_or(|ns| &k.2 == ns)
    };
    tokio::spawn(async move {
        let line = |v: Value| Ok(Bytes::from(format!("{v}\n")));
        let forgotten_below = server.store.lock().unwrap().forgotten_below;
        if from != 0 && from < forgotten_below {
            let gone = json!({"type": "ERROR", "object": {
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": format!("too old resource version: {from} ({forgotten_below})"),
                "reason": "Expired", "code": 410,
            }});
            let _ = tx.send(line(gone)).await;
            return;
        }
        let mut sent = from;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            let pending: Vec<Value> = {
                let store = server.store.lock().unwrap();
                let out = store
                    .log
                    .iter()
                    .filter(|(rv, _, k, _)| *rv > sent && in_scope(k))
                    .map(|(_, kind, _, o)| json!({"type": kind, "object": o}))
                    .collect();
                sent = sent.max(store.rv);
                out
            };
            for event in pending {
                if tx.send(line(event)).await.is_err() {
                    return;
                }
            }
            tokio::select! {
                _ = changes.recv() => {}
                _ = dropped.recv() => return,
                _ = tick.tick() => {
                    if bookmarks {
                        let mark = json!({"type": "BOOKMARK", "object": {
                            "apiVersion": "cascade.dev/v1alpha1", "kind": "Bookmark",
                            "metadata": {"resourceVersion": sent.to_string()},
                        }});
                        if tx.send(line(mark)).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
    });
    let stream = tokio_stream_of(rx);
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(Body::from_stream(stream))
        .unwrap()
}

fn tokio_stream_of(
    mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
