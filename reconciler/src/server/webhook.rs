//! Push webhooks of git hosts: a verified push triggers a fetch at once (polling stays as the
//! safety net). GitHub and Gitea sign the body with HMAC-SHA256 (`X-Hub-Signature-256:
//! sha256=<hex>`, `X-Gitea-Signature: <hex>`); GitLab sends the shared token
//! (`X-Gitlab-Token`). Anything unsigned or wrongly signed gets 401 and is logged without its
//! body; a body over the limit gets 413; a ping answers 200.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::mpsc::UnboundedSender;

/// The largest webhook body accepted (GitHub's pushes are at most a few hundred KiB).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What a request is, once its signature was checked.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A push (or a tag, or anything that may move the branch): fetch now.
    Push,
    /// A ping or an event that changes nothing in git: answered, ignored.
    Ignored(String),
    /// No signature, or a wrong one: 401.
    Refused(String),
}

/// Checks a request's signature against `secret` and says what it asks for.
pub fn judge(secret: &[u8], headers: &HeaderMap, body: &[u8]) -> Verdict {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (host, event, verified) = if let Some(sig) = header("x-hub-signature-256") {
        let ok = sig
            .strip_prefix("sha256=")
            .is_some_and(|hex| signed(secret, body, hex));
        ("GitHub", header("x-github-event"), ok)
    } else if let Some(sig) = header("x-gitea-signature") {
        ("Gitea", header("x-gitea-event"), signed(secret, body, sig))
    } else if let Some(token) = header("x-gitlab-token") {
        let ok = constant_time_eq(token.as_bytes(), secret);
        ("GitLab", header("x-gitlab-event"), ok)
    } else {
        return Verdict::Refused(
            "no X-Hub-Signature-256, X-Gitea-Signature or X-Gitlab-Token header".into(),
        );
    };
    if !verified {
        return Verdict::Refused(format!("{host} signature does not match the secret"));
    }
    match event.unwrap_or("") {
        "ping" => Verdict::Ignored(format!("{host} ping")),
        "push" | "Push Hook" | "Tag Push Hook" | "create" | "delete" => Verdict::Push,
        other => Verdict::Ignored(format!("{host} event `{other}`")),
    }
}

/// Whether `hex` is the HMAC-SHA256 of `body` under `secret` (compared in constant time).
fn signed(secret: &[u8], body: &[u8], hex: &str) -> bool {
    let Some(given) = decode_hex(hex.trim()) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The signature GitHub would send for `body` (for tests and for the benchmark's pushes).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    format!("sha256={}", crate::digest::hex(&bytes))
}

struct Hook {
    secret: Vec<u8>,
    fetch: UnboundedSender<()>,
}

/// The controller's HTTP endpoints: `POST /webhook` and `GET /healthz`.
pub fn router(secret: Vec<u8>, fetch: UnboundedSender<()>) -> Router {
    Router::new()
        .route("/webhook", post(webhook))
        .route("/healthz", get(|| async { "ok\n" }))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(Arc::new(Hook { secret, fetch }))
}

async fn webhook(
    State(hook): State<Arc<Hook>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    match judge(&hook.secret, &headers, &body) {
        Verdict::Push => {
            let _ = hook.fetch.send(());
            (StatusCode::ACCEPTED, "fetching\n".into())
        }
        Verdict::Ignored(what) => (StatusCode::OK, format!("ignored: {what}\n")),
        Verdict::Refused(why) => {
            // Logged without the body: it is unauthenticated input.
            tracing::warn!(bytes = body.len(), reason = %why, "webhook refused");
            (StatusCode::UNAUTHORIZED, format!("refused: {why}\n"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    // GitHub's documented example: secret "It's a Secret to Everybody", payload
    // "Hello, World!".
    #[test]
    fn githubs_documented_signature_verifies() {
        let secret = b"It's a Secret to Everybody";
        let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(sign(secret, b"Hello, World!"), sig);
        let h = headers(&[("x-hub-signature-256", sig), ("x-github-event", "push")]);
        assert_eq!(judge(secret, &h, b"Hello, World!"), Verdict::Push);
        assert!(matches!(
            judge(secret, &h, b"Hello, World?"),
            Verdict::Refused(_)
        ));
        assert!(matches!(
            judge(b"other", &h, b"Hello, World!"),
            Verdict::Refused(_)
        ));
    }

    #[test]
    fn gitea_gitlab_and_unsigned_requests() {
        let secret = b"s3cret";
        let body = br#"{"ref":"refs/heads/main"}"#;
        let hex = sign(secret, body).trim_start_matches("sha256=").to_string();
        let gitea = headers(&[("x-gitea-signature", &hex), ("x-gitea-event", "push")]);
        assert_eq!(judge(secret, &gitea, body), Verdict::Push);
        let gitlab = headers(&[
            ("x-gitlab-token", "s3cret"),
            ("x-gitlab-event", "Push Hook"),
        ]);
        assert_eq!(judge(secret, &gitlab, body), Verdict::Push);
        let wrong = headers(&[("x-gitlab-token", "s3cre"), ("x-gitlab-event", "Push Hook")]);
        assert!(matches!(judge(secret, &wrong, body), Verdict::Refused(_)));
        assert!(matches!(
            judge(secret, &HeaderMap::new(), body),
            Verdict::Refused(_)
        ));
        let odd = headers(&[
            ("x-hub-signature-256", "sha256=zz"),
            ("x-github-event", "push"),
        ]);
        assert!(matches!(judge(secret, &odd, body), Verdict::Refused(_)));
    }

    #[test]
    fn a_signed_ping_is_answered_and_changes_nothing() {
        let secret = b"s3cret";
        let body = b"{}";
        let h = headers(&[
            ("x-hub-signature-256", &sign(secret, body)),
            ("x-github-event", "ping"),
        ]);
        assert!(matches!(judge(secret, &h, body), Verdict::Ignored(_)));
    }
}
