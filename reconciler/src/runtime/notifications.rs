//! Delivering notifications: a thread of its own (a slow or dead receiver never holds up the
//! reconcile loop) takes the due ones from the ledger, sends each, and records the outcome:
//! sent, retried later with exponential backoff, or given up with the reason (shown by
//! `cascade status` and the metrics).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cascade_crd::{NotifierSpec, NotifierType, NotifyEvent};

use crate::ledger::{Ledger, Outgoing, now};
use crate::plan::notify::Happening;
use crate::server::runtime_metrics::RUNTIME;

/// Attempts before a notification is given up.
pub const MAX_ATTEMPTS: u32 = 8;

/// The longest wait between two attempts.
const MAX_BACKOFF_SECONDS: i64 = 300;

/// One request's time limit.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the sender looks for due notifications.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// Seconds before attempt `attempts + 1` (after `attempts` failed ones): 1, 2, 4, ... 300.
pub fn backoff_seconds(attempts: u32) -> i64 {
    1i64.checked_shl(attempts.min(20))
        .unwrap_or(MAX_BACKOFF_SECONDS)
        .min(MAX_BACKOFF_SECONDS)
}

/// A request to send: method POST, a URL, headers and a JSON body.
#[derive(Debug, PartialEq)]
pub struct Request {
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: serde_json::Value,
}

/// The commit status an event sets: GitHub's and GitLab's words.
fn commit_state(event: NotifyEvent, kind: NotifierType) -> &'static str {
    let github = kind == NotifierType::Github;
    match event {
        NotifyEvent::CampaignSucceeded => "success",
        NotifyEvent::StageFailed | NotifyEvent::LaunchFailed if github => "failure",
        NotifyEvent::StageFailed | NotifyEvent::LaunchFailed => "failed",
        NotifyEvent::Drift if github => "error",
        NotifyEvent::StageCompleted if !github => "running",
        NotifyEvent::StageCompleted | NotifyEvent::Drift => "pending",
    }
}

/// At most `n` characters (forges refuse longer descriptions).
fn cut(text: &str, n: usize) -> String {
    if text.chars().count() <= n {
        return text.to_string();
    }
    let mut out: String = text.chars().take(n - 1).collect();
    out.push('…');
    out
}

/// What to send to `target` about `h`, with the token if the notifier has one. Pure: the
/// same happening gives the same request.
pub fn request_for(
    target: &NotifierSpec,
    h: &Happening,
    token: Option<&str>,
) -> Result<Request, String> {
    let base = target.address.trim().trim_end_matches('/');
    let mut headers = vec![
        ("Content-Type", "application/json".to_string()),
        (
            "User-Agent",
            format!("cascade/{}", env!("CARGO_PKG_VERSION")),
        ),
    ];
    let context = format!("cascade/{}/{}", h.namespace, h.campaign);
    let (url, body) = match target.kind {
        NotifierType::Generic => {
            if let Some(t) = token {
                headers.push(("Authorization", format!("Bearer {t}")));
            }
            (
                target.address.trim().to_string(),
                serde_json::json!({
                    "event": h.event.as_str(),
                    "namespace": h.namespace,
                    "campaign": h.campaign,
                    "subject": h.subject,
                    "message": h.message,
                    "revision": h.revision,
                    "at": crate::plan::rfc3339(h.at),
                }),
            )
        }
        NotifierType::Slack => {
            let revision = h
                .revision
                .as_deref()
                .map(|r| format!(" (definitions at {})", cut(r, 12)))
                .unwrap_or_default();
            (
                target.address.trim().to_string(),
                serde_json::json!({"text": format!("[cascade] {}{revision}", h.message)}),
            )
        }
        kind @ (NotifierType::Github | NotifierType::Gitlab) => {
            let Some(sha) = h.revision.as_deref() else {
                return Err(
                    "no git revision: commit statuses need definitions applied from git (`cascade run --git`)".into(),
                );
            };
            let repo = target.repository.as_deref().unwrap_or_default().trim();
            let token = token.ok_or("a commit status needs the notifier's token (`tokenFile`)")?;
            let state = commit_state(h.event, kind);
            if kind == NotifierType::Github {
                headers.push(("Authorization", format!("Bearer {token}")));
                headers.push(("Accept", "application/vnd.github+json".into()));
                headers.push(("X-GitHub-Api-Version", "2022-11-28".into()));
                (
                    format!("{base}/repos/{repo}/statuses/{sha}"),
                    serde_json::json!({
                        "state": state,
                        "description": cut(&h.message, 140),
                        "context": context,
                    }),
                )
            } else {
                headers.push(("PRIVATE-TOKEN", token.to_string()));
                (
                    format!(
                        "{base}/api/v4/projects/{}/statuses/{sha}",
                        crate::server::pages::percent_encode(repo)
                    ),
                    serde_json::json!({
                        "state": state,
                        "description": cut(&h.message, 255),
                        "name": context,
                    }),
                )
            }
        }
    };
    Ok(Request { url, headers, body })
}

/// How an attempt ended.
enum Attempt {
    Sent,
    /// Worth trying again (the receiver is down, busy, or answered 5xx).
    Retry(String),
    /// Trying again cannot help (the receiver refused the request itself).
    GiveUp(String),
}

fn token(target: &NotifierSpec) -> Result<Option<String>, String> {
    let Some(file) = &target.token_file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read the token file {file}: {e}"))?;
    let token = text.lines().next().unwrap_or("").trim().to_string();
    if token.is_empty() {
        return Err(format!("the token file {file} holds no token"));
    }
    Ok(Some(token))
}

fn attempt(agent: &ureq::Agent, n: &Outgoing) -> Attempt {
    let token = match token(&n.target) {
        Ok(t) => t,
        Err(e) => return Attempt::Retry(e),
    };
    let request = match request_for(&n.target, &n.happening, token.as_deref()) {
        Ok(r) => r,
        Err(e) => return Attempt::GiveUp(e),
    };
    let mut call = agent.post(&request.url);
    for (name, value) in &request.headers {
        call = call.header(*name, value);
    }
    match call.send(request.body.to_string()) {
        Ok(mut answer) => {
            let code = answer.status().as_u16();
            if (200..300).contains(&code) {
                return Attempt::Sent;
            }
            let body = answer
                .body_mut()
                .read_to_string()
                .unwrap_or_default()
                .chars()
                .take(200)
                .collect::<String>();
            let said = format!("{} answered {code}: {}", request.url, body.trim());
            // A refusal of the request itself will be repeated: give up. Timeouts, rate
            // limits and server errors pass.
            if (400..500).contains(&code) && ![408, 425, 429].contains(&code) {
                Attempt::GiveUp(said)
            } else {
                Attempt::Retry(said)
            }
        }
        Err(e) => Attempt::Retry(format!("{}: {e}", request.url)),
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(REQUEST_TIMEOUT))
        .http_status_as_error(false)
        .build()
        .into()
}

/// Sends the notifications due now; returns how many were taken.
pub fn deliver_due(ledger: &mut Ledger, agent: &ureq::Agent) -> crate::ledger::Result<usize> {
    let due = ledger.due_notifications(now(), 32)?;
    for n in &due {
        match attempt(agent, n) {
            Attempt::Sent => {
                tracing::info!(
                    notifier = %n.notifier,
                    event = n.happening.event.as_str(),
                    subject = %n.happening.subject,
                    "notification sent"
                );
                ledger.notification_sent(n.id)?
            }
            Attempt::Retry(e) if n.attempts + 1 < MAX_ATTEMPTS => {
                RUNTIME.notification_errors.inc();
                let wait = backoff_seconds(n.attempts);
                tracing::warn!(
                    notifier = %n.notifier,
                    event = n.happening.event.as_str(),
                    error = %e,
                    retry_seconds = wait,
                    "notification not delivered; retrying"
                );
                let at = now() + wait;
                ledger.notification_failed(n.id, &e, Some(at))?;
            }
            Attempt::Retry(e) | Attempt::GiveUp(e) => {
                RUNTIME.notification_errors.inc();
                tracing::error!(
                    notifier = %n.notifier,
                    event = n.happening.event.as_str(),
                    subject = %n.happening.subject,
                    error = %e,
                    "notification given up"
                );
                ledger.notification_failed(n.id, &e, None)?;
            }
        }
    }
    Ok(due.len())
}

/// The sender thread; stopped when dropped.
pub struct Sender {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sender {
    pub fn start(state: &Path) -> Sender {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let state: PathBuf = state.to_path_buf();
        let thread = std::thread::spawn(move || {
            let agent = agent();
            let mut ledger = None;
            while !flag.load(Ordering::Relaxed) {
                if ledger.is_none() {
                    ledger = Ledger::open_existing(&state).ok();
                }
                if let Some(l) = ledger.as_mut()
                    && let Err(e) = deliver_due(l, &agent)
                {
                    tracing::error!(error = %e, "notifications: cannot read the ledger");
                    ledger = None;
                }
                // Short naps: a stop is seen at once.
                for _ in 0..10 {
                    if flag.load(Ordering::Relaxed) {
                        break;
                    }
                    std::thread::sleep(LOOK_EVERY / 10);
                }
            }
        });
        Sender {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Delivers what is pending until nothing is or `limit` passed (the end of `cascade run`);
/// returns how many are still pending (the next controller sends them).
pub fn flush(state: &Path, limit: Duration) -> crate::ledger::Result<u64> {
    let mut ledger = Ledger::open_existing(state)?;
    let agent = agent();
    let deadline = std::time::Instant::now() + limit;
    loop {
        deliver_due(&mut ledger, &agent)?;
        let Some(next) = ledger.next_notification_at()? else {
            return Ok(0);
        };
        let wait = Duration::from_secs((next - now()).max(0) as u64).max(LOOK_EVERY / 10);
        if std::time::Instant::now() + wait > deadline {
            return Ok(ledger.notification_summary()?.pending);
        }
        std::thread::sleep(wait);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn happening(event: NotifyEvent, revision: Option<&str>) -> Happening {
        Happening {
            event,
            namespace: "eve".into(),
            campaign: "mc".into(),
            subject: "reco".into(),
            message: "stage eve/reco is Completed: completed".into(),
            revision: revision.map(str::to_string),
            at: 0,
        }
    }

    fn spec(kind: NotifierType, address: &str, repository: Option<&str>) -> NotifierSpec {
        NotifierSpec {
            kind,
            address: address.into(),
            repository: repository.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        let waits: Vec<i64> = (0..10).map(backoff_seconds).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]);
        assert_eq!(backoff_seconds(u32::MAX), 300);
    }

    #[test]
    fn each_kind_of_notifier_gets_its_own_request() {
        let h = happening(NotifyEvent::StageCompleted, Some("0123456789abcdef"));
        let generic = request_for(
            &spec(NotifierType::Generic, "http://127.0.0.1:9/hook", None),
            &h,
            Some("t0k"),
        )
        .unwrap();
        assert_eq!(generic.url, "http://127.0.0.1:9/hook");
        assert_eq!(generic.body["event"], "stageCompleted");
        assert_eq!(generic.body["subject"], "reco");
        assert!(
            generic
                .headers
                .contains(&("Authorization", "Bearer t0k".into()))
        );

        let slack = request_for(&spec(NotifierType::Slack, "http://h/x", None), &h, None).unwrap();
        assert_eq!(
            slack.body,
            serde_json::json!({"text": "[cascade] stage eve/reco is Completed: completed (definitions at 0123456789a…)"})
        );

        let github = request_for(
            &spec(
                NotifierType::Github,
                "https://api.github.com/",
                Some("org/prod"),
            ),
            &happening(NotifyEvent::StageFailed, Some("abc")),
            Some("ghp"),
        )
        .unwrap();
        assert_eq!(
            github.url,
            "https://api.github.com/repos/org/prod/statuses/abc"
        );
        assert_eq!(github.body["state"], "failure");
        assert_eq!(github.body["context"], "cascade/eve/mc");

        let gitlab = request_for(
            &spec(
                NotifierType::Gitlab,
                "https://gl.example",
                Some("group/sub/proj"),
            ),
            &happening(NotifyEvent::CampaignSucceeded, Some("abc")),
            Some("glp"),
        )
        .unwrap();
        assert_eq!(
            gitlab.url,
            "https://gl.example/api/v4/projects/group%2Fsub%2Fproj/statuses/abc"
        );
        assert_eq!(gitlab.body["state"], "success");
        assert!(gitlab.headers.contains(&("PRIVATE-TOKEN", "glp".into())));
    }

    #[test]
    fn a_commit_status_without_a_revision_or_token_is_refused_with_the_reason() {
        let gh = spec(NotifierType::Github, "https://api.github.com", Some("o/r"));
        let e = request_for(&gh, &happening(NotifyEvent::Drift, None), Some("t")).unwrap_err();
        assert!(e.contains("git revision"), "{e}");
        let e = request_for(&gh, &happening(NotifyEvent::Drift, Some("abc")), None).unwrap_err();
        assert!(e.contains("token"), "{e}");
    }

    #[test]
    fn descriptions_are_cut_to_what_forges_take() {
        let mut h = happening(NotifyEvent::StageFailed, Some("abc"));
        h.message = "é".repeat(500);
        let gh = spec(NotifierType::Github, "https://api.github.com", Some("o/r"));
        let r = request_for(&gh, &h, Some("t")).unwrap();
        assert_eq!(r.body["description"].as_str().unwrap().chars().count(), 140);
    }
}
