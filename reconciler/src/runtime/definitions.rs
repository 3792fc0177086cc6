//! The definitions in force and where they come from: a directory (watched), or a branch of a
//! git repository (fetched on an interval and on webhooks). A revision that does not
//! validate is never applied: the last good one stays in force and the ledger says which
//! commit failed and why. Removing a stage or campaign launches nothing more for it; its open
//! submissions finish or are killed as its campaign's `removalPolicy` says.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cascade_crd::RemovalPolicy;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use crate::batch::local::{self, Control};
use crate::batch::observer;
use crate::ledger::{Ledger, LedgerError, Result};
use crate::model::{DesiredGraph, ObjectKey, Stage};
use crate::plan::Status;
use crate::source::dir::read_paths;
use crate::source::git::{self, GitSource, Head};

/// Where the controller reads its definitions.
pub enum SourceSpec {
    Dir(Vec<PathBuf>),
    Git(GitFollow),
    /// Custom resources in a Kubernetes cluster.
    Kube(crate::k8s::KubeFollow),
}

/// A git branch to follow.
pub struct GitFollow {
    pub source: GitSource,
    /// How often the branch is fetched when no webhook says it moved.
    pub interval: Duration,
    /// Where webhooks are received (`POST /webhook`), if anywhere.
    pub listen: Option<SocketAddr>,
    /// The webhooks' shared secret (HMAC key, GitLab token).
    pub secret: Option<Vec<u8>>,
}

/// The definitions in force.
pub struct Applied {
    pub graph: DesiredGraph,
    /// The git commit they come from.
    pub revision: Option<String>,
    /// Its checkout, where launches run.
    pub checkout: Option<PathBuf>,
}

impl Applied {
    /// Where a stage's launches run: the directory of the file that defines its job type (in
    /// the revision's checkout for a git source).
    pub fn launch_dir(&self, stage: Option<&Stage>) -> PathBuf {
        let dir = stage
            .and_then(|s| Path::new(&*s.job_type_source).parent())
            .map(Path::to_path_buf)
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        let dir = match &self.checkout {
            Some(root) => root.join(dir),
            None => dir,
        };
        std::path::absolute(&dir).unwrap_or(dir)
    }
}

use crate::model::graph_or_errors as validate;

pub fn load_dir(paths: &[PathBuf]) -> std::result::Result<DesiredGraph, String> {
    validate(&read_paths(paths).map_err(|e| e.to_string())?)
}

/// The revision at a fetched head, if it validates; recorded either way.
fn take(
    ledger: &mut Ledger,
    state: &Path,
    source: &GitSource,
    commit: &str,
) -> Result<std::result::Result<Applied, String>> {
    let graph = source.files(state, commit).and_then(|f| validate(&f));
    let graph = match graph {
        Ok(g) => g,
        Err(errors) => {
            ledger.record_revision(commit, "rejected", &errors)?;
            return Ok(Err(errors));
        }
    };
    let checkout = match source.checkout(state, commit) {
        Ok(dir) => dir,
        Err(e) => {
            ledger.record_revision(commit, "unreachable", &e)?;
            return Ok(Err(e));
        }
    };
    ledger.record_revision(commit, "applied", "")?;
    Ok(Ok(Applied {
        graph,
        revision: Some(commit.to_string()),
        checkout: Some(checkout),
    }))
}

/// The definitions to start with: the branch's head if it validates, else the last revision
/// applied before (its errors said); with neither, the controller cannot start.
pub fn initial_git(ledger: &mut Ledger, state: &Path, follow: &GitFollow) -> Result<Applied> {
    let source = &follow.source;
    let head = source.fetch(state);
    let fallback = |ledger: &mut Ledger, why: String| -> Result<Applied> {
        match ledger.last_revision(Some("applied"))? {
            Some(last) => {
                tracing::warn!(
                    revision = %git::short(&last.commit),
                    "{why}; keeping the last applied revision {}",
                    git::short(&last.commit)
                );
                let graph = source
                    .files(state, &last.commit)
                    .and_then(|f| validate(&f))
                    .map_err(LedgerError::Rejected)?;
                let checkout = source
                    .checkout(state, &last.commit)
                    .map_err(LedgerError::Invalid)?;
                Ok(Applied {
                    graph,
                    revision: Some(last.commit),
                    checkout: Some(checkout),
                })
            }
            None => Err(LedgerError::Rejected(format!(
                "{why}, and no revision of {} was applied before",
                git::redact(&source.url)
            ))),
        }
    };
    match head {
        Ok(Head::Commit(commit)) => match take(ledger, state, source, &commit)? {
            Ok(applied) => Ok(applied),
            Err(errors) => fallback(
                ledger,
                format!(
                    "commit {} of {} does not validate:\n{errors}\n",
                    git::short(&commit),
                    source.branch
                ),
            ),
        },
        Ok(Head::Missing) => {
            ledger.record_revision("", "missing", &source.branch)?;
            fallback(
                ledger,
                format!(
                    "branch `{}` does not exist in {}",
                    source.branch,
                    git::redact(&source.url)
                ),
            )
        }
        Err(e) => {
            ledger.record_revision("", "unreachable", &e)?;
            fallback(ledger, e)
        }
    }
}

/// What a fetch brought, acted on: a new valid revision to apply, or nothing (recorded).
pub fn on_fetch(
    ledger: &mut Ledger,
    state: &Path,
    source: &GitSource,
    fetched: std::result::Result<Head, String>,
    current: Option<&str>,
) -> Result<Option<Applied>> {
    match fetched {
        Ok(Head::Commit(commit)) if Some(commit.as_str()) != current => {
            let rejected = ledger
                .last_revision(Some("rejected"))?
                .is_some_and(|r| r.commit == commit);
            if rejected {
                return Ok(None);
            }
            match take(ledger, state, source, &commit)? {
                Ok(applied) => Ok(Some(applied)),
                Err(errors) => {
                    tracing::warn!(
                        commit = %git::short(&commit),
                        "commit {} does not validate; keeping {}:\n{errors}",
                        git::short(&commit),
                        current.map_or("the definitions in force", git::short)
                    );
                    Ok(None)
                }
            }
        }
        Ok(Head::Commit(_)) => Ok(None),
        Ok(Head::Missing) => {
            // A deleted branch changes nothing until it comes back.
            ledger.record_revision(current.unwrap_or(""), "missing", &source.branch)?;
            Ok(None)
        }
        Err(e) => {
            ledger.record_revision(current.unwrap_or(""), "unreachable", &e)?;
            Ok(None)
        }
    }
}

/// Fetches the branch every `interval` and whenever a webhook asks, on its own task, and
/// sends each result. A failing fetch is tried again after twice the delay (up to ten
/// minutes), without disturbing anything else.
pub fn spawn_fetcher(
    follow: &GitFollow,
    state: &Path,
    mut triggers: UnboundedReceiver<()>,
    out: UnboundedSender<std::result::Result<Head, String>>,
) {
    let (source, state, interval) = (follow.source.clone(), state.to_path_buf(), follow.interval);
    tokio::spawn(async move {
        let mut delay = interval;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                Some(()) = triggers.recv() => while triggers.try_recv().is_ok() {},
            }
            let (source, state) = (source.clone(), state.clone());
            let fetched = tokio::task::spawn_blocking(move || source.fetch(&state))
                .await
                .unwrap_or_else(|e| Err(format!("the fetch stopped: {e}")));
            delay = match &fetched {
                Ok(_) => interval,
                Err(_) => delay.saturating_mul(2).min(Duration::from_secs(600)),
            };
            if out.send(fetched).is_err() {
                return;
            }
        }
    });
}

/// Serves webhooks (and `/healthz`) on `addr`; each verified push sends on `fetch`.
pub async fn serve_webhooks(
    addr: SocketAddr,
    secret: Vec<u8>,
    fetch: UnboundedSender<()>,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| LedgerError::Invalid(format!("cannot listen on {addr}: {e}")))?;
    let app = crate::server::webhook::router(secret, fetch);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "webhook server stopped");
        }
    });
    Ok(())
}

/// Stages of `old` that `new` no longer has, with the policy their campaign declared.
pub fn removed_stages(old: &DesiredGraph, new: &DesiredGraph) -> Vec<(ObjectKey, RemovalPolicy)> {
    old.stages
        .iter()
        .filter(|s| new.stage(&s.key).is_none())
        .map(|s| (s.key.clone(), old.campaign_of(s).removal_policy))
        .collect()
}

/// Applies the removal policy of stages taken out of the definitions: `kill` removes their
/// open submissions' jobs (recorded as done by Cascade, with the revision); `finish` lets
/// them run.
pub fn apply_removals(
    ledger: &mut Ledger,
    removed: &[(ObjectKey, RemovalPolicy)],
    revision: Option<&str>,
) -> Result<()> {
    let why = match revision {
        Some(r) => format!(
            "removed from the definitions at {} (removalPolicy: kill)",
            git::short(r)
        ),
        None => "removed from the definitions (removalPolicy: kill)".to_string(),
    };
    for (stage, policy) in removed {
        if *policy != RemovalPolicy::Kill {
            continue;
        }
        let open: Vec<String> = ledger
            .submission_rows()?
            .into_iter()
            .filter(|r| *r.submission.stage == *stage && !r.submission.status.is_final())
            .map(|r| r.submission.id.into())
            .collect();
        for id in open {
            local::control(ledger, &id, Control::Remove)?;
            if let Err(e) = observer::control(ledger, &id, Control::Remove)? {
                tracing::error!(submission = %id, error = %e, "could not kill its jobs");
                continue;
            }
            ledger.operator_status(&id, Status::Removed, "cascade", &why)?;
        }
    }
    Ok(())
}
