//! The read-only HTTP API over a state directory, and its Prometheus metrics: what
//! `cascade status --format json` prints, by campaign, stage and submission, for dashboards and
//! scripts. Every request reads the ledger afresh (its own connection, in a blocking task), so
//! the answers are as current as the ledger and a running controller is never held up.
//!
//! - `GET /api/v1/status`: the whole of `status --format json`;
//! - `GET /api/v1/campaigns`: the campaigns' statuses;
//! - `GET /api/v1/namespaces/{ns}/stages/{name}`: a stage's status and its submissions;
//! - `GET /api/v1/submissions/{id}`: a submission and its history;
//! - `GET /metrics`: Prometheus text format; `GET /healthz`.
//!
//! Errors are JSON (`{"error": ..., "status": ...}`) with a fitting status code.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::ledger::{Ledger, LedgerError};

/// A JSON error answer.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": self.1, "status": self.0.as_u16()});
        (self.0, axum::Json(body)).into_response()
    }
}

impl From<LedgerError> for ApiError {
    fn from(e: LedgerError) -> Self {
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

fn not_found(what: String) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, what)
}

type Dir = Arc<PathBuf>;

pub fn router(state: &Path) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/api/v1/status", get(status))
        .route("/api/v1/campaigns", get(campaigns))
        .route("/api/v1/namespaces/{namespace}/stages/{name}", get(stage))
        .route("/api/v1/submissions/{id}", get(submission))
        .fallback(|| async { not_found("no such resource; see /api/v1/status".into()) })
        .with_state(Arc::new(state.to_path_buf()))
}

/// Runs `f` on the ledger of `dir` in a blocking task.
async fn read<T: Send + 'static>(
    dir: Dir,
    f: impl FnOnce(&Ledger) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(move || {
        let ledger = Ledger::open_existing(&dir)
            .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
        f(&ledger)
    })
    .await
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
}

async fn status(State(dir): State<Dir>) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let value = read(dir, |l| Ok(crate::cli::status::status_json(l)?)).await?;
    Ok(axum::Json(value))
}

async fn campaigns(State(dir): State<Dir>) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let mut value = read(dir, |l| Ok(crate::cli::status::status_json(l)?)).await?;
    Ok(axum::Json(value["campaigns"].take()))
}

async fn stage(
    State(dir): State<Dir>,
    UrlPath((namespace, name)): UrlPath<(String, String)>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let key = format!("{namespace}/{name}");
    let value = read(dir, move |l| {
        let mut status = crate::cli::status::status_json(l)?;
        let stage = status["stages"]
            .as_array_mut()
            .and_then(|stages| stages.iter_mut().find(|s| s["stage"] == key.as_str()))
            .map(serde_json::Value::take)
            .ok_or_else(|| not_found(format!("no stage `{key}` in this state")))?;
        let submissions: Vec<_> = l
            .submission_rows()?
            .into_iter()
            .filter(|r| r.submission.stage.to_string() == key)
            .collect();
        Ok(serde_json::json!({"stage": stage, "submissions": submissions}))
    })
    .await?;
    Ok(axum::Json(value))
}

async fn submission(
    State(dir): State<Dir>,
    UrlPath(id): UrlPath<String>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let value = read(dir, move |l| {
        let row = l
            .submission_rows()?
            .into_iter()
            .find(|r| r.submission.id == id)
            .ok_or_else(|| not_found(format!("no submission `{id}` in this state")))?;
        let history = l.history(Some(&id))?;
        Ok(serde_json::json!({"submission": row, "history": history}))
    })
    .await?;
    Ok(axum::Json(value))
}

async fn metrics(State(dir): State<Dir>) -> Result<Response, ApiError> {
    let text = read(dir, |l| Ok(metrics_text(l)?)).await?;
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

/// The metrics, read from the ledger at the scrape.
pub fn metrics_text(ledger: &Ledger) -> crate::ledger::Result<String> {
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

/// Serves the API on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: &Path,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
