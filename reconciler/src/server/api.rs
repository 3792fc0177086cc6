//! The read-only HTTP API over a state directory, and its Prometheus metrics: what
//! `cascade status --format json` prints, by campaign, stage and submission, for dashboards and
//! scripts. Every request reads the ledger afresh (its own connection, in a blocking task), so
//! the answers are as current as the ledger and a running controller is never held up.
//!
//! - `GET /api/v1/status`: the whole of `status --format json`;
//! - `GET /api/v1/campaigns`: the campaigns' statuses;
//! - `GET /api/v1/namespaces/{ns}/stages/{name}`: a stage's status and its submissions;
//! - `GET /api/v1/submissions/{id}`: a submission and its history;
//! - `GET /metrics`: Prometheus text format; `GET /healthz`;
//! - `POST /api/v1/namespaces/{ns}/{campaigns|stages|submissions}/{name}/{action}` with
//!   `Authorization: Bearer TOKEN` and a JSON body `{"why": ..., "who": ...}`: the operator
//!   actions, through the same code as the command line (`cli::operator::perform`), recorded
//!   with who and why. Without a configured token no action is taken over HTTP.
//!
//! Errors are JSON (`{"error": ..., "status": ...}`) with a fitting status code.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::cli::explain::SubmissionDocument;
use crate::ledger::{Ledger, LedgerError};

/// A JSON error answer.
pub(super) struct ApiError(pub(super) StatusCode, pub(super) String);

/// Every error's body.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct ErrorAnswer {
    /// What went wrong, and what to do about it.
    pub error: String,
    /// The HTTP status code, again.
    pub status: u16,
}

/// What an action did, as the command line says it.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct ActionAnswer {
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorAnswer {
            error: self.1,
            status: self.0.as_u16(),
        };
        (self.0, axum::Json(body)).into_response()
    }
}

impl From<LedgerError> for ApiError {
    fn from(e: LedgerError) -> Self {
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

pub(super) fn not_found(what: String) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, what)
}

/// How the API is served.
#[derive(Clone, Debug)]
pub struct ApiOptions {
    /// Requests per second answered (bursts of twice that); more get 429. 0: no limit.
    pub rate_limit: u32,
    /// The token actions need (none: no action over HTTP).
    pub token: Option<String>,
    /// Served by the controller itself: its runtime metrics (reconcile time, hop latency,
    /// launches, batch-system poll errors) are served too.
    pub runtime_metrics: bool,
    /// Pages and the read API answer other hosts too (by default only this machine's
    /// loopback clients; metrics and health probes answer everyone).
    pub public_read: bool,
}

/// What the handlers share.
pub(super) struct Shared {
    pub(super) dir: PathBuf,
    pub(super) options: ApiOptions,
    pub(super) pages: super::pages::Pages,
}

pub(super) type Dir = Arc<Shared>;

/// The largest action body accepted (a reason and a name or two).
pub const MAX_ACTION_BYTES: usize = 64 * 1024;

/// Requests per second `cascade serve` answers unless told otherwise.
pub const DEFAULT_RATE_LIMIT: u32 = 100;

/// A token bucket shared by all requests: a client in a loop cannot keep the ledger busy
/// for the controller and everyone else.
struct RateLimit {
    per_second: f64,
    burst: f64,
    bucket: std::sync::Mutex<(f64, std::time::Instant)>,
}

impl RateLimit {
    fn new(per_second: u32) -> Self {
        let burst = 2.0 * f64::from(per_second);
        RateLimit {
            per_second: f64::from(per_second),
            burst,
            bucket: std::sync::Mutex::new((burst, std::time::Instant::now())),
        }
    }

    /// Takes a token if there is one.
    fn take(&self) -> bool {
        let mut bucket = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, last) = *bucket;
        let now = std::time::Instant::now();
        let refilled =
            (tokens + now.duration_since(last).as_secs_f64() * self.per_second).min(self.burst);
        let (left, taken) = if refilled >= 1.0 {
            (refilled - 1.0, true)
        } else {
            (refilled, false)
        };
        *bucket = (left, now);
        taken
    }
}

async fn limited(
    State(limit): State<Arc<RateLimit>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if limit.take() {
        return next.run(request).await;
    }
    let mut answer = ApiError(
        StatusCode::TOO_MANY_REQUESTS,
        format!(
            "more than {} requests a second: wait and ask again",
            limit.per_second
        ),
    )
    .into_response();
    answer
        .headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    answer
}

pub fn router(state: &Path, options: ApiOptions) -> Router {
    let rate_limit = options.rate_limit;
    let api = super::pages::routes()
        .route("/metrics", get(metrics))
        .route("/api/v1/status", get(status))
        .route("/api/v1/campaigns", get(campaigns))
        .route("/api/v1/namespaces/{namespace}/stages/{name}", get(stage))
        .route(
            "/api/v1/namespaces/{namespace}/stages/{name}/explain",
            get(explain),
        )
        .route("/api/v1/submissions/{id}", get(submission))
        .route("/api/v1/catalog/files", get(catalog_query))
        .route("/api/v1/catalog/files/{name}", get(catalog_file))
        .route("/api/v1/catalog/definitions", get(catalog_definitions))
        .route(
            "/api/v1/openapi.json",
            get(|| async { axum::Json(super::openapi::document()) }),
        )
        .route(
            "/api/v1/namespaces/{namespace}/{kind}/{name}/{action}",
            post(action).layer(DefaultBodyLimit::max(MAX_ACTION_BYTES)),
        );
    let api = if rate_limit > 0 {
        api.route_layer(axum::middleware::from_fn_with_state(
            Arc::new(RateLimit::new(rate_limit)),
            limited,
        ))
    } else {
        api
    };
    // Health probes are never limited.
    let shared = Arc::new(Shared {
        dir: state.to_path_buf(),
        options,
        pages: super::pages::Pages::new(),
    });
    api.route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .fallback(|| async { not_found("no such resource; see /api/v1/status".into()) })
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            super::pages::guard,
        ))
        .with_state(shared)
}

/// Ready once the ledger answers with the controller's saved view (503 before the first
/// reconcile, or while the state cannot be read).
async fn ready(State(shared): State<Dir>) -> (StatusCode, &'static str) {
    let saved = read(shared, |ledger| Ok(ledger.saved_stage_status()?.len())).await;
    match saved {
        Ok(_) => (StatusCode::OK, "ready\n"),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
    }
}

/// Runs `f` on the ledger of `dir` in a blocking task.
pub(super) async fn read<T: Send + 'static>(
    shared: Dir,
    f: impl FnOnce(&mut Ledger) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(move || {
        let mut ledger = Ledger::open_existing(&shared.dir)
            .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
        f(&mut ledger)
    })
    .await
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
}

async fn status(
    State(dir): State<Dir>,
) -> Result<axum::Json<crate::cli::status::StatusDocument>, ApiError> {
    let doc = read(dir, |l| Ok(crate::cli::status::status_document(l)?)).await?;
    Ok(axum::Json(doc))
}

async fn campaigns(
    State(dir): State<Dir>,
) -> Result<axum::Json<std::collections::BTreeMap<String, cascade_crd::CampaignStatus>>, ApiError> {
    let campaigns = read(dir, |l| {
        Ok(crate::cli::status::campaign_statuses(
            &l.saved_stage_status()?,
        ))
    })
    .await?;
    Ok(axum::Json(campaigns))
}

async fn stage(
    State(dir): State<Dir>,
    UrlPath((namespace, name)): UrlPath<(String, String)>,
) -> Result<axum::Json<crate::cli::status::StageDocument>, ApiError> {
    let key = crate::model::ObjectKey::new(namespace, name);
    let doc = read(dir, move |l| {
        crate::cli::status::stage_document(l, &key)?
            .ok_or_else(|| not_found(format!("no stage `{key}` in this state")))
    })
    .await?;
    Ok(axum::Json(doc))
}

async fn explain(
    State(dir): State<Dir>,
    UrlPath((namespace, name)): UrlPath<(String, String)>,
) -> Result<axum::Json<crate::cli::explain::ExplainDocument>, ApiError> {
    let key = crate::model::ObjectKey::new(namespace, name);
    let doc = read(dir, move |l| {
        let saved = l
            .saved_stage(&key)?
            .ok_or_else(|| not_found(format!("no stage `{key}` in this state")))?;
        Ok(crate::cli::explain::explain_document(l, &saved)?)
    })
    .await?;
    Ok(axum::Json(doc))
}

async fn submission(
    State(dir): State<Dir>,
    UrlPath(id): UrlPath<String>,
) -> Result<axum::Json<SubmissionDocument>, ApiError> {
    let doc = read(dir, move |l| {
        let submission = l
            .submission(&id)?
            .ok_or_else(|| not_found(format!("no submission `{id}` in this state")))?;
        Ok(SubmissionDocument::of(l, submission)?)
    })
    .await?;
    Ok(axum::Json(doc))
}

/// The most file names one answer lists.
pub const MAX_FILES_LISTED: usize = 10_000;

/// `GET /api/v1/catalog/files?query=...`: the parameters.
#[derive(serde::Deserialize, schemars::JsonSchema)]
pub struct CatalogQuery {
    /// A catalog query, as `cascade catalog query` takes it.
    pub query: String,
    /// List at most this many names (default and most: 10,000); `count` is always the whole.
    #[serde(default)]
    pub limit: Option<usize>,
}

/// The files a query selects.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct CatalogAnswer {
    /// How many files the query selects.
    pub count: usize,
    /// Their names, in catalog order, up to the limit.
    pub files: Vec<String>,
    /// Fewer names are listed than the query selects.
    pub truncated: bool,
}

/// A named definition of the catalog.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct DefinitionAnswer {
    pub name: String,
    pub query: String,
}

async fn catalog_query(
    State(dir): State<Dir>,
    axum::extract::Query(q): axum::extract::Query<CatalogQuery>,
) -> Result<axum::Json<CatalogAnswer>, ApiError> {
    let limit = q.limit.unwrap_or(MAX_FILES_LISTED).min(MAX_FILES_LISTED);
    let answer = read(dir, move |l| match l.query_names(&q.query) {
        Ok(names) => {
            let count = names.len();
            let files: Vec<String> = names.into_iter().take(limit).collect();
            Ok(CatalogAnswer {
                count,
                truncated: files.len() < count,
                files,
            })
        }
        // Located as the command line locates it: `query:1:COLUMN: error: ...`.
        Err(crate::catalog::CatalogError::Query(e)) => {
            Err(ApiError(StatusCode::BAD_REQUEST, e.to_string()))
        }
        Err(crate::catalog::CatalogError::Ledger(e)) => Err(e.into()),
    })
    .await?;
    Ok(axum::Json(answer))
}

async fn catalog_file(
    State(dir): State<Dir>,
    UrlPath(name): UrlPath<String>,
) -> Result<axum::Json<crate::catalog::FileInfo>, ApiError> {
    let info = read(dir, move |l| {
        l.file_info(&name)?
            .ok_or_else(|| not_found(format!("no file `{name}` in the catalog")))
    })
    .await?;
    Ok(axum::Json(info))
}

async fn catalog_definitions(
    State(dir): State<Dir>,
) -> Result<axum::Json<Vec<DefinitionAnswer>>, ApiError> {
    let defs = read(dir, |l| {
        Ok(l.definitions()?
            .into_iter()
            .map(|(name, query)| DefinitionAnswer { name, query })
            .collect())
    })
    .await?;
    Ok(axum::Json(defs))
}

async fn metrics(State(dir): State<Dir>) -> Result<Response, ApiError> {
    let runtime = dir.options.runtime_metrics;
    let text = read(dir, move |l| Ok(metrics_text(l, runtime)?)).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

type Labels = Vec<(String, String)>;

/// A gauge family filled from `(label values, value)` rows.
fn family(label: &str, rows: Vec<(String, i64)>) -> Family<Labels, Gauge> {
    let family = Family::<Labels, Gauge>::default();
    for (value, n) in rows {
        family
            .get_or_create(&vec![(label.to_string(), value)])
            .set(n);
    }
    family
}

/// The metrics, read from the ledger at the scrape, and the process's runtime metrics when
/// `runtime` (the controller serves them).
pub fn metrics_text(ledger: &Ledger, runtime: bool) -> crate::ledger::Result<String> {
    let counts = |sql: &str| -> crate::ledger::Result<Vec<(String, i64)>> {
        ledger.rows(sql, [], |r| Ok((r.get(0)?, r.get(1)?)))
    };
    let mut registry = Registry::with_prefix("cascade");
    registry.register(
        "submissions",
        "Submissions by status",
        family(
            "status",
            counts("SELECT status, COUNT(*) FROM submissions GROUP BY status")?,
        ),
    );
    registry.register(
        "stages",
        "Stages by state, as the controller last decided",
        family(
            "state",
            counts("SELECT state, COUNT(*) FROM stage_status GROUP BY state")?,
        ),
    );
    registry.register(
        "local_jobs",
        "Jobs of the local batch system by state",
        family(
            "state",
            counts("SELECT state, COUNT(*) FROM jobs WHERE delegated = 0 GROUP BY state")?,
        ),
    );
    registry.register(
        "batch_system_up",
        "Whether the last poll of a batch system answered (1) or failed (0)",
        family(
            "system",
            counts("SELECT system, CASE WHEN error IS NULL THEN 1 ELSE 0 END FROM batch_health")?,
        ),
    );
    registry.register(
        "notifications",
        "Notifications by state: pending (to send or retry), sent, failed (given up)",
        family(
            "state",
            counts("SELECT state, COUNT(*) FROM notifications GROUP BY state")?,
        ),
    );
    let files = Gauge::<i64>::default();
    files.set(ledger.scalar_i64("SELECT COUNT(*) FROM files")?);
    registry.register("catalog_files", "Files declared in the catalog", files);
    let bytes = Gauge::<i64>::default();
    bytes.set(ledger_bytes(&ledger.dir) as i64);
    registry.register(
        "ledger_bytes",
        "Size of the state database and its write-ahead log",
        bytes,
    );
    registry.register(
        "catalog_query_seconds",
        "Time of the catalog queries this process made",
        super::runtime_metrics::CATALOG_QUERY_SECONDS.clone(),
    );
    if runtime {
        super::runtime_metrics::RUNTIME.register(&mut registry);
    }
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)
        .map_err(|e| LedgerError::Invalid(format!("cannot encode the metrics: {e}")))?;
    Ok(text)
}

fn ledger_bytes(dir: &Path) -> u64 {
    let db = crate::ledger::DB_FILE;
    [db.to_string(), format!("{db}-wal")]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

/// The body of an action.
#[derive(serde::Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ActionBody {
    pub(super) why: String,
    #[serde(default)]
    pub(super) who: Option<String>,
    /// `launch`: a test launch.
    #[serde(default)]
    pub(super) test: bool,
    /// `launch`: over this dataset instead of the next slice.
    #[serde(default)]
    pub(super) dataset: Option<String>,
    /// `recover`: the recovery type.
    #[serde(default, rename = "type")]
    pub(super) recovery: Option<String>,
}

/// The actions each kind of target takes.
pub(super) const ACTIONS: [(&str, &[&str]); 3] = [
    ("campaigns", &["pause", "resume"]),
    (
        "stages",
        &[
            "pause",
            "resume",
            "launch",
            "hold",
            "release",
            "kill",
            "reset-split",
        ],
    ),
    (
        "submissions",
        &[
            "hold",
            "release",
            "kill",
            "approve",
            "force-located",
            "recover",
        ],
    ),
];

async fn action(
    State(shared): State<Dir>,
    headers: HeaderMap,
    UrlPath((namespace, kind, name, verb)): UrlPath<(String, String, String, String)>,
    body: Bytes,
) -> Result<axum::Json<ActionAnswer>, ApiError> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            ApiError(
                StatusCode::UNAUTHORIZED,
                "an action needs `Authorization: Bearer TOKEN`".into(),
            )
        });
    authorize(&shared, given)?;
    let body: ActionBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("the body must be JSON like {{\"why\": \"...\", \"who\": \"...\"}}: {e}"),
        )
    })?;
    let message = act(shared, namespace, kind, name, verb, body).await?;
    Ok(axum::Json(ActionAnswer { message }))
}

/// Takes an operator action on `namespace/name` of `kind` (the caller has checked the
/// token), through the same code as the command line; returns what was done.
pub(super) async fn act(
    shared: Dir,
    namespace: String,
    kind: String,
    name: String,
    verb: String,
    body: ActionBody,
) -> Result<String, ApiError> {
    let Some((_, verbs)) = ACTIONS.iter().find(|(k, _)| *k == kind) else {
        return Err(not_found(format!(
            "no kind `{kind}`: campaigns, stages or submissions"
        )));
    };
    if !verbs.contains(&verb.as_str()) {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("{kind} take {}, not `{verb}`", verbs.join(", ")),
        ));
    }
    if body.why.trim().is_empty() {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "say why: `why` is recorded with the action".into(),
        ));
    }
    read(shared, move |ledger| {
        // Submission ids are global; the namespace in the path must still be theirs.
        let target = if kind == "submissions" {
            let row = ledger
                .submission(&name)?
                .ok_or_else(|| not_found(format!("no submission `{name}` in this state")))?;
            if *row.submission.stage.namespace != *namespace {
                return Err(not_found(format!(
                    "submission `{name}` is not in namespace `{namespace}`"
                )));
            }
            name
        } else {
            // The command line takes a name for whatever it designates; here the path says
            // which kind is meant, and a stage's pause must not pause a campaign.
            let stages = ledger.saved_stage_status()?;
            let exists = stages.iter().any(|s| {
                *s.stage.namespace == *namespace
                    && if kind == "stages" {
                        *s.stage.name == *name
                    } else {
                        s.campaign == name
                    }
            });
            // Before a first reconcile nothing is known: a pause is recorded as given.
            if !exists && !stages.is_empty() {
                let what = if kind == "stages" {
                    "stage"
                } else {
                    "campaign"
                };
                return Err(not_found(format!(
                    "no {what} `{namespace}/{name}` in this state"
                )));
            }
            format!("{namespace}/{name}")
        };
        let control = |c| crate::cli::operator::Action::Jobs(&target, c);
        use crate::batch::local::Control;
        use crate::cli::operator::{Action, Pause};
        let act = match verb.as_str() {
            "pause" => Action::Pause(&target, Pause::Pause),
            "resume" => Action::Pause(&target, Pause::Resume),
            "launch" => Action::Launch {
                stage: &target,
                test: body.test,
                dataset: body.dataset.as_deref(),
            },
            "hold" => control(Control::Hold),
            "release" => control(Control::Release),
            "kill" => control(Control::Remove),
            "reset-split" => Action::ResetSplit(&target),
            "approve" => Action::Approve(&target),
            "force-located" => Action::ForceLocated(&target),
            _ => Action::Recover {
                submission: &target,
                kind: body.recovery.as_deref().unwrap_or(""),
            },
        };
        let who = body.who.as_deref().unwrap_or("api");
        crate::cli::operator::perform(ledger, &act, who, &body.why)
            .map_err(|e| ApiError(StatusCode::UNPROCESSABLE_ENTITY, e))
    })
    .await
}

/// Actions need the configured token (`given`: what the request carried, or why it carried
/// none).
pub(super) fn authorize(shared: &Shared, given: Result<&str, ApiError>) -> Result<(), ApiError> {
    let Some(token) = &shared.options.token else {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            "actions over HTTP are off: start the server with a token (--token-file)".into(),
        ));
    };
    let given = given?;
    if !super::webhook::constant_time_eq(given.as_bytes(), token.as_bytes()) {
        return Err(ApiError(StatusCode::UNAUTHORIZED, "wrong token".into()));
    }
    Ok(())
}

/// Reads the actions' token from a file (its first line), if one is given; an empty one is
/// refused.
pub fn read_token(file: Option<&Path>) -> Result<Option<String>, String> {
    let Some(file) = file else { return Ok(None) };
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let token = text.lines().next().unwrap_or("").trim().to_string();
    if token.is_empty() {
        return Err(format!("{} holds no token", file.display()));
    }
    Ok(Some(token))
}

/// Serves the API on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: &Path,
    options: ApiOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state, options).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
