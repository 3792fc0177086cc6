//! The web pages: what POMS users look at every day, server-rendered from the ledger and
//! usable without JavaScript (a small script reloads a page when the state changes, told by
//! Server-Sent Events on `/events`).
//!
//! - `/`: the campaigns, filtered by namespace;
//! - `/campaigns/{ns}/{name}`: a campaign's stage graph and each stage's reason;
//! - `/stages/{ns}/{name}`: a stage's split, completion, submissions and explanation;
//! - `/submissions/{id}`: a submission's command, environment, launch log, history, input and
//!   outputs;
//! - `/catalog?q=...`, `/catalog/files/{name}`: catalog queries, definitions, a file's
//!   parents and children.
//!
//! Templates escape every value (minijinja's HTML auto-escaping); the one raw insertion is the
//! stage graph, whose SVG writer escapes its texts. Scripts may come only from this server
//! (Content-Security-Policy). Actions are forms that need the server's token, a reason and a
//! one-use nonce from the page, and go through the same code as the API and the command line.

mod nonces;
pub mod secrets;
mod views;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Form, Path as UrlPath, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::api::{ACTIONS, ActionBody, ApiError, Dir, act, authorize, read};
use crate::model::ObjectKey;

/// Live-refresh streams served at once; more are refused (the pages still work, unrefreshed).
const MAX_STREAMS: usize = 32;

/// How often a stream looks whether the state changed.
const STREAM_LOOK: Duration = Duration::from_secs(1);

/// The pages' templates, nonces and stream slots.
pub struct Pages {
    templates: minijinja::Environment<'static>,
    nonces: nonces::Nonces,
    streams: Arc<tokio::sync::Semaphore>,
}

/// Percent-encodes all but the unreserved characters: a value fit for a path segment or a
/// query parameter.
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Escapes text for a double-quoted HTML or SVG attribute.
pub fn escape_attribute(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

impl Pages {
    pub fn new() -> Pages {
        let mut env = minijinja::Environment::new();
        macro_rules! template {
            ($($name:literal),*) => {$(
                // Built into the binary and rendered by the tests; were one broken, its pages
                // would answer 500 saying so (`render`), and the server would still serve.
                if let Err(e) = env.add_template($name, include_str!(concat!("templates/", $name))) {
                    tracing::error!(template = $name, error = %e, "a page template does not parse");
                }
            )*};
        }
        template!(
            "base.html",
            "macros.html",
            "campaigns.html",
            "campaign.html",
            "stage.html",
            "submission.html",
            "catalog.html",
            "file.html",
            "message.html"
        );
        env.add_filter("seg", |v: String| percent_encode(&v));
        env.add_filter("urlquery", |v: String| percent_encode(&v));
        Pages {
            templates: env,
            nonces: nonces::Nonces::default(),
            streams: Arc::new(tokio::sync::Semaphore::new(MAX_STREAMS)),
        }
    }
}

impl Default for Pages {
    fn default() -> Self {
        Pages::new()
    }
}

pub(super) fn routes() -> Router<Dir> {
    Router::new()
        .route("/", get(campaigns))
        .route("/campaigns/{namespace}/{name}", get(campaign))
        .route("/stages/{namespace}/{name}", get(stage))
        .route("/submissions/{id}", get(submission))
        .route("/catalog", get(catalog))
        .route("/catalog/files/{name}", get(file))
        .route("/events", get(events))
        .route("/assets/cascade.css", get(css))
        .route("/assets/live.js", get(script))
        .route(
            "/actions/{namespace}/{kind}/{name}",
            post(form_action).layer(axum::extract::DefaultBodyLimit::max(
                super::api::MAX_ACTION_BYTES,
            )),
        )
}

/// Every answer's security headers; reads answered to this machine only unless the server was
/// told otherwise (metrics and health probes answer everyone).
pub(super) async fn guard(State(shared): State<Dir>, request: Request, next: Next) -> Response {
    let reading = matches!(*request.method(), Method::GET | Method::HEAD);
    let path = request.uri().path();
    let open_to_all =
        shared.options.public_read || path == "/healthz" || path == "/readyz" || path == "/metrics";
    if reading && !open_to_all {
        let local = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .is_some_and(|ConnectInfo(peer)| peer.ip().is_loopback());
        if !local {
            return ApiError(
                StatusCode::FORBIDDEN,
                "pages and the API answer this machine only; start the server with --public-read to let other hosts read them".into(),
            )
            .into_response();
        }
    }
    let method = request.method().clone();
    let path = path.to_string();
    let started = std::time::Instant::now();
    let mut response = next.run(request).await;
    let status = response.status().as_u16();
    let ms = started.elapsed().as_secs_f64() * 1e3;
    if reading {
        tracing::debug!(%method, %path, status, ms, "request");
    } else {
        tracing::info!(%method, %path, status, ms, "request");
    }
    let headers = response.headers_mut();
    let set = |h: &mut HeaderMap, name, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::REFERRER_POLICY, "same-origin");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    response
}

/// Renders `template` with `context` and the values every page has.
fn render(shared: &Dir, template: &str, status: StatusCode, mut context: Value) -> Response {
    context["state_dir"] = json!(shared.dir.display().to_string());
    context["now"] = json!(crate::plan::format_time(chrono::Utc::now().timestamp()));
    context["writable"] = json!(shared.options.token.is_some());
    let html = shared
        .pages
        .templates
        .get_template(template)
        .and_then(|t| t.render(minijinja::Value::from(minijinja::value::Serde(&context))));
    match html {
        Ok(html) => (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html,
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot render {template}: {e}"),
        )
            .into_response(),
    }
}

/// A page that says one thing: an error, or what an action did.
fn message(
    shared: &Dir,
    status: StatusCode,
    title: &str,
    text: &str,
    back: Option<String>,
) -> Response {
    let kind = if status.is_success() { "ok" } else { "error" };
    render(
        shared,
        "message.html",
        status,
        json!({"title": title, "message": text, "kind": kind, "back": back}),
    )
}

/// Reads the page's data; a missing object is a 404 page, a ledger failure a 503 page.
async fn page(
    shared: Dir,
    template: &'static str,
    what: String,
    actions: Option<&'static str>,
    f: impl FnOnce(&mut crate::ledger::Ledger) -> crate::ledger::Result<Option<Value>> + Send + 'static,
) -> Response {
    let data = read(shared.clone(), move |l| Ok(f(l)?)).await;
    match data {
        Ok(Some(mut context)) => {
            if let Some(kind) = actions {
                if shared.options.token.is_some() {
                    match shared.pages.nonces.issue() {
                        Ok(n) => context["nonce"] = json!(n),
                        Err(e) => {
                            return message(
                                &shared,
                                StatusCode::INTERNAL_SERVER_ERROR,
                                "Error",
                                &format!("cannot make a form nonce: {e}"),
                                None,
                            );
                        }
                    }
                }
                let verbs = ACTIONS
                    .iter()
                    .find(|(k, _)| *k == kind)
                    .map(|(_, v)| v.to_vec())
                    .unwrap_or_default();
                context["verbs"] = json!(verbs);
            }
            render(&shared, template, StatusCode::OK, context)
        }
        Ok(None) => message(
            &shared,
            StatusCode::NOT_FOUND,
            "Not found",
            &format!("No {what} in this state."),
            Some("/".into()),
        ),
        Err(ApiError(code, text)) => message(&shared, code, "Error", &text, None),
    }
}

#[derive(serde::Deserialize)]
struct CampaignsQuery {
    namespace: Option<String>,
    page: Option<usize>,
}

async fn campaigns(State(shared): State<Dir>, Query(query): Query<CampaignsQuery>) -> Response {
    let namespace = query.namespace.filter(|n| !n.is_empty());
    let number = query.page.unwrap_or(1);
    page(shared, "campaigns.html", String::new(), None, move |l| {
        views::campaigns(l, namespace.as_deref(), number).map(Some)
    })
    .await
}

async fn campaign(
    State(shared): State<Dir>,
    UrlPath((namespace, name)): UrlPath<(String, String)>,
) -> Response {
    let key = ObjectKey::new(namespace, name);
    let what = format!("campaign `{key}`");
    page(shared, "campaign.html", what, Some("campaigns"), move |l| {
        views::campaign(l, &key)
    })
    .await
}

async fn stage(
    State(shared): State<Dir>,
    UrlPath((namespace, name)): UrlPath<(String, String)>,
) -> Response {
    let key = ObjectKey::new(namespace, name);
    let what = format!("stage `{key}`");
    page(shared, "stage.html", what, Some("stages"), move |l| {
        views::stage(l, &key)
    })
    .await
}

async fn submission(State(shared): State<Dir>, UrlPath(id): UrlPath<String>) -> Response {
    let what = format!("submission `{id}`");
    page(
        shared,
        "submission.html",
        what,
        Some("submissions"),
        move |l| views::submission(l, &id),
    )
    .await
}

#[derive(serde::Deserialize)]
struct CatalogQuery {
    q: Option<String>,
}

async fn catalog(State(shared): State<Dir>, Query(query): Query<CatalogQuery>) -> Response {
    page(shared, "catalog.html", String::new(), None, move |l| {
        views::catalog(l, query.q.as_deref()).map(Some)
    })
    .await
}

async fn file(State(shared): State<Dir>, UrlPath(name): UrlPath<String>) -> Response {
    let what = format!("file `{name}` in the catalog");
    page(shared, "file.html", what, None, move |l| {
        views::file(l, &name)
    })
    .await
}

async fn css() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("assets/cascade.css"),
    )
        .into_response()
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("assets/live.js"),
    )
        .into_response()
}

/// What tells a change of the state: the database's and its log's sizes and times.
fn fingerprint(dir: &std::path::Path) -> Vec<(u64, Option<std::time::SystemTime>)> {
    let db = crate::ledger::DB_FILE;
    [db.to_string(), format!("{db}-wal")]
        .iter()
        .map(|f| match std::fs::metadata(dir.join(f)) {
            Ok(m) => (m.len(), m.modified().ok()),
            Err(_) => (0, None),
        })
        .collect()
}

/// `changed` each time the state changes, looked at every second; a comment every 15 s keeps
/// proxies from closing the stream.
async fn events(State(shared): State<Dir>) -> Response {
    let Ok(slot) = shared.pages.streams.clone().try_acquire_owned() else {
        return ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{MAX_STREAMS} live streams are open already; the pages work without one"),
        )
        .into_response();
    };
    let dir = shared.dir.clone();
    let first = fingerprint(&dir);
    let stream =
        futures_util::stream::unfold((dir, first, slot), |(dir, mut last, slot)| async move {
            loop {
                tokio::time::sleep(STREAM_LOOK).await;
                let now = fingerprint(&dir);
                if now != last {
                    last = now;
                    let event = Event::default().event("changed").data("state");
                    return Some((Ok::<_, Infallible>(event), (dir, last, slot)));
                }
            }
        });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// A form of a page's Actions section.
#[derive(serde::Deserialize)]
struct ActionForm {
    #[serde(default)]
    nonce: String,
    #[serde(default)]
    token: String,
    verb: String,
    #[serde(default)]
    why: String,
    #[serde(default)]
    who: String,
    #[serde(default)]
    test: Option<String>,
    #[serde(default)]
    dataset: String,
    #[serde(default, rename = "type")]
    recovery: String,
}

/// Whether the request came from a page of this server: an `Origin` (or, without one, a
/// `Referer`) naming another host is refused.
fn same_origin(headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let from = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|h| h.to_str().ok());
    match (host, from) {
        (_, None) => true,
        (Some(host), Some(from)) => {
            let rest = from
                .strip_prefix("http://")
                .or_else(|| from.strip_prefix("https://"))
                .unwrap_or("");
            rest.split('/').next() == Some(host)
        }
        (None, Some(_)) => false,
    }
}

async fn form_action(
    State(shared): State<Dir>,
    headers: HeaderMap,
    UrlPath((namespace, kind, name)): UrlPath<(String, String, String)>,
    Form(form): Form<ActionForm>,
) -> Response {
    let back = match kind.as_str() {
        "campaigns" => format!(
            "/campaigns/{}/{}",
            percent_encode(&namespace),
            percent_encode(&name)
        ),
        "stages" => format!(
            "/stages/{}/{}",
            percent_encode(&namespace),
            percent_encode(&name)
        ),
        _ => format!("/submissions/{}", percent_encode(&name)),
    };
    let refuse =
        |code: StatusCode, text: &str| message(&shared, code, "Not done", text, Some(back.clone()));
    if !same_origin(&headers) {
        return refuse(
            StatusCode::FORBIDDEN,
            "this form was sent from another site; actions are taken only from this server's pages",
        );
    }
    if let Err(refused) = shared.pages.nonces.redeem(&form.nonce) {
        return refuse(StatusCode::FORBIDDEN, &refused.to_string());
    }
    let token = if form.token.is_empty() {
        Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "an action needs the server's token".into(),
        ))
    } else {
        Ok(form.token.as_str())
    };
    if let Err(ApiError(code, text)) = authorize(&shared, token) {
        return refuse(code, &text);
    }
    let body = ActionBody {
        why: form.why,
        // Recorded as the page's, unless the person says who they are.
        who: Some(form.who)
            .filter(|w| !w.trim().is_empty())
            .or_else(|| Some("web".to_string())),
        test: form.test.is_some(),
        dataset: Some(form.dataset).filter(|d| !d.trim().is_empty()),
        recovery: Some(form.recovery).filter(|r| !r.trim().is_empty()),
    };
    match act(shared.clone(), namespace, kind, name, form.verb, body).await {
        Ok(done) => message(&shared, StatusCode::OK, "Done", &done, Some(back)),
        Err(ApiError(code, text)) => refuse(code, &text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding_keeps_only_unreserved_characters() {
        assert_eq!(percent_encode("eve.mc-gen_1~"), "eve.mc-gen_1~");
        assert_eq!(percent_encode("a/b?c#d e\"<"), "a%2Fb%3Fc%23d%20e%22%3C");
        assert_eq!(percent_encode("é"), "%C3%A9");
    }

    #[test]
    fn forms_from_another_site_are_refused() {
        let headers = |pairs: &[(header::HeaderName, &str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(k, HeaderValue::from_str(v).unwrap());
            }
            h
        };
        let host = (header::HOST, "127.0.0.1:7878");
        assert!(same_origin(&headers(std::slice::from_ref(&host))));
        assert!(same_origin(&headers(&[
            host.clone(),
            (header::ORIGIN, "http://127.0.0.1:7878")
        ])));
        assert!(!same_origin(&headers(&[
            host.clone(),
            (header::ORIGIN, "http://evil.example")
        ])));
        assert!(!same_origin(&headers(&[
            host.clone(),
            (header::REFERER, "http://127.0.0.1:7878.evil.example/x")
        ])));
        assert!(same_origin(&headers(&[
            host,
            (header::REFERER, "http://127.0.0.1:7878/stages/a/b")
        ])));
    }

    /// A peer on another host cannot be made on this machine (tests talk to loopback only):
    /// the router is called directly with the peer address the server would have recorded.
    #[test]
    fn reads_answer_other_hosts_only_when_told_to() {
        use tower::ServiceExt;
        let state = std::env::temp_dir().join(format!("cascade-guard-{}", std::process::id()));
        std::fs::create_dir_all(&state).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let ask = |public_read: bool, peer: &str, path: &str| -> StatusCode {
            let options = crate::server::api::ApiOptions {
                rate_limit: 0,
                token: None,
                runtime_metrics: false,
                public_read,
            };
            let mut request = Request::builder()
                .uri(path)
                .body(axum::body::Body::empty())
                .unwrap();
            request
                .extensions_mut()
                .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
            let router = crate::server::api::router(&state, options);
            runtime.block_on(router.oneshot(request)).unwrap().status()
        };
        let far = "192.0.2.7:40000";
        assert_eq!(ask(false, far, "/campaigns/a/b"), StatusCode::FORBIDDEN);
        assert_eq!(ask(false, far, "/api/v1/status"), StatusCode::FORBIDDEN);
        assert_eq!(ask(false, far, "/healthz"), StatusCode::OK);
        // Loopback peers, or any peer when told: past the guard.
        assert_eq!(
            ask(false, "[::1]:40000", "/assets/cascade.css"),
            StatusCode::OK
        );
        assert_eq!(
            ask(false, "127.0.0.1:40000", "/assets/live.js"),
            StatusCode::OK
        );
        assert_eq!(ask(true, far, "/assets/cascade.css"), StatusCode::OK);
        assert_ne!(ask(true, far, "/api/v1/status"), StatusCode::FORBIDDEN);
        std::fs::remove_dir_all(&state).unwrap();
    }

    #[test]
    fn every_template_renders_hostile_values_escaped() {
        let pages = Pages::new();
        let evil = "<script>alert(1)</script>\"'&";
        let jobs = json!({"total": 1, "idle": 0, "running": 0, "held": 0, "succeeded": 1, "failed": 0, "removed": 0});
        let contexts = [
            (
                "campaigns.html",
                json!({"campaigns": [{"namespace": evil, "name": evil, "state": evil, "progress": 50.0, "stages": {evil: 1}, "last_activity": evil}], "namespaces": [evil], "namespace": evil, "page": 2, "pages": 3, "total": 250}),
            ),
            (
                "campaign.html",
                json!({"namespace": evil, "name": evil, "state": evil, "progress": 10.0, "counts": {evil: 1}, "stages": [{"namespace": evil, "name": evil, "state": evil, "progress": 1.0, "reason": evil, "join": true, "depends_on": [{"stage": evil, "filePattern": evil, "trigger": "stageComplete"}]}], "graph": null, "paused": {"who": evil, "why": evil, "at": evil}, "verbs": ["pause"], "nonce": "n", "writable": true}),
            ),
            (
                "stage.html",
                json!({"campaign": evil, "stage": {"namespace": evil, "name": evil, "state": evil, "reason": evil, "drift": evil, "since": evil, "progress": 1.0, "located_percent": 2.0, "completion": {"type": "located", "percent": 90.0}, "split": evil, "split_position": evil, "exhausted": false, "jobs": jobs, "depends_on": [], "stage_type": evil}, "submissions": [{"id": evil, "origin": evil, "status": evil, "test": true, "jobs": jobs, "batch_id": evil, "revision": evil, "updated": evil, "recovery": [{"round": 1, "kind": evil, "submission": evil}]}], "explanation": evil, "paused": null, "verbs": ["launch"], "nonce": "n", "writable": true}),
            ),
            (
                "submission.html",
                json!({"id": evil, "namespace": evil, "stage": evil, "origin": evil, "status": evil, "launch_state": evil, "test": false, "dataset": evil, "jobs": jobs, "batch_id": evil, "revision": evil, "created": evil, "updated": evil, "command": evil, "launcher": evil, "environment": [[evil, evil]], "log_path": evil, "log": evil, "log_cut": true, "history": [{"at": evil, "status": evil, "reason": evil}], "input": evil, "input_files": [evil], "input_count": 1, "input_error": evil, "outputs": [{"name": evil, "parents": [evil]}], "output_count": 1, "files_shown": 500, "verbs": ["kill"], "nonce": "n", "writable": true}),
            ),
            (
                "catalog.html",
                json!({"definitions": [{"name": evil, "query": evil}], "query": evil, "files": [evil], "count": 1, "files_shown": 500}),
            ),
            (
                "catalog.html",
                json!({"definitions": [], "query": evil, "error": {"column": 3, "message": evil, "hint": evil, "before": evil, "after": evil}, "files_shown": 500}),
            ),
            (
                "file.html",
                json!({"name": evil, "size": 1, "checksum": evil, "location": evil, "created": evil, "metadata": [[evil, evil]], "parents": [evil], "children": [evil]}),
            ),
            (
                "message.html",
                json!({"title": evil, "message": evil, "kind": "error", "back": "/"}),
            ),
        ];
        for (name, mut context) in contexts {
            context["state_dir"] = json!(evil);
            context["now"] = json!(evil);
            let html = pages
                .templates
                .get_template(name)
                .unwrap()
                .render(minijinja::Value::from(minijinja::value::Serde(&context)))
                .unwrap_or_else(|e| panic!("{name}: {e:#}"));
            assert!(!html.contains("<script>alert"), "{name}: {html}");
            assert!(!html.contains("\"'&"), "{name} left quotes raw");
            assert!(
                html.contains("&lt;script&gt;"),
                "{name} shows the value escaped"
            );
        }
    }
}
