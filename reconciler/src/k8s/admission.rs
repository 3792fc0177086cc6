//! The validating admission webhook: every create and update of a Cascade object is checked
//! as `cascade validate` would check it, with the other objects of its namespace as context,
//! so that `kubectl apply` of an invalid campaign is refused with the same located message.
//!
//! The check is the one loader and validator over the namespace with the object in it, and
//! the single document against the kind's generated JSON Schema (what `cascade schema`
//! writes), whose message is given when the loader has none. A reference to an object that does not exist (yet) is a warning, not a
//! refusal: `kubectl apply -f dir/` sends a directory's files one by one, in name order, and
//! the controller waits for what is missing. Deleting is never refused.
//!
//! The webhook answers on its own TLS listener (the API server calls webhooks over HTTPS
//! only), with the certificate of the chart's Secret, read again when it changes (cert-manager
//! renews it in place).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use axum::extract::{DefaultBodyLimit, State};
use axum::routing::post;
use axum::{Json, Router};
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use openssl::ssl::{Ssl, SslAcceptor, SslFiletype, SslMethod};

use super::objects::{
    ObjRef, Objects, PLURALS, api_resource, document_value, documents, load_valid,
};
use crate::model::Diagnostic;

/// Where the webhook listens and the certificate it presents.
#[derive(Clone, Debug)]
pub struct Settings {
    pub listen: SocketAddr,
    /// PEM certificate chain (`tls.crt` of a `kubernetes.io/tls` Secret).
    pub cert: PathBuf,
    /// PEM private key (`tls.key`).
    pub key: PathBuf,
}

/// The path the chart registers.
pub const PATH: &str = "/validate";

/// What the webhook answers about one object.
#[derive(Debug, Default, PartialEq)]
pub struct Verdict {
    /// Why the object is refused (the located messages, one per line); `None`: admitted.
    pub refusal: Option<String>,
    /// What `kubectl` prints as `Warning:` lines for an admitted object.
    pub warnings: Vec<String>,
}

/// Checks `object` (of `kind`) among the other objects of its namespace (pure).
pub fn review(kind: &str, object: &DynamicObject, namespace: &Objects) -> Verdict {
    let me = ObjRef::of(kind, object);
    let mut with = namespace.clone();
    with.insert(me.clone(), Arc::new(object.clone()));
    let after = load_valid(&documents(&with)).rejected;
    let path = me.path();
    let mut refusal = Vec::new();
    let mut warnings = Vec::new();
    for d in after.get(&path).into_iter().flatten() {
        if d.code == "unknown-reference" {
            warnings.push(format!(
                "{d}\n  (admitted: the controller waits until it exists)"
            ));
        } else {
            refusal.push(d.to_string());
        }
    }
    // What this object would break elsewhere (a cycle, a second stage of the same name):
    // errors of other objects that are valid in the namespace as it stands (with the stored
    // version of this object, for an update). One invalid already is not this object's
    // doing, whatever its errors say now. The namespace is loaded a second time only when
    // other objects have errors at all.
    let elsewhere: Vec<(&String, &Diagnostic)> = after
        .iter()
        .filter(|(p, _)| **p != path)
        .flat_map(|(p, errors)| errors.iter().map(move |d| (p, d)))
        .filter(|(_, d)| d.code != "unknown-reference")
        .collect();
    if !elsewhere.is_empty() {
        let invalid_before = load_valid(&documents(namespace)).rejected;
        for (other, d) in elsewhere {
            if !invalid_before.contains_key(other) {
                refusal.push(format!("{d}\n  (made invalid by {path})"));
            }
        }
    }
    // The loader says what the schema says with a line and column in the document and the
    // rule's words (a schema's `anyOf` says only that nothing matched): the schema's message
    // is given when the loader has none.
    if refusal.is_empty() {
        refusal = schema_errors(&me, object);
    }
    Verdict {
        refusal: (!refusal.is_empty()).then(|| refusal.join("\n")),
        warnings,
    }
}

/// The document's disagreements with its kind's JSON Schema, located by JSON pointer.
fn schema_errors(me: &ObjRef, object: &DynamicObject) -> Vec<String> {
    static VALIDATORS: OnceLock<BTreeMap<&'static str, jsonschema::Validator>> = OnceLock::new();
    let validators = VALIDATORS.get_or_init(|| {
        PLURALS
            .iter()
            .filter_map(|(kind, _)| {
                let schema = crate::cli::generate::schema_of(kind)?;
                Some((*kind, jsonschema::validator_for(&schema).ok()?))
            })
            .collect()
    });
    let Some(validator) = validators.get(me.kind.as_str()) else {
        return Vec::new();
    };
    let doc = document_value(me, object);
    validator
        .iter_errors(&doc)
        .take(20)
        .map(|e| {
            let at = e.instance_path().to_string();
            let at = if at.is_empty() { "/".to_string() } else { at };
            format!(
                "{}: error[schema]: at `{at}`: {e}\n  help: `cascade schema` writes the schema; `cascade validate` checks a file against it",
                me.path()
            )
        })
        .collect()
}

/// The admission answer to one request.
fn answer(
    req: &AdmissionRequest<DynamicObject>,
    namespace: Result<Objects, String>,
) -> AdmissionResponse {
    let response = AdmissionResponse::from(req);
    let kind = req.kind.kind.as_str();
    let (Operation::Create | Operation::Update) = req.operation else {
        return response;
    };
    let Some(object) = req.object.as_ref() else {
        return response;
    };
    if !PLURALS.iter().any(|(k, _)| *k == kind) {
        return response;
    }
    let mut object = object.clone();
    // A create by `generateName` has no name yet: validate it under a stand-in of the
    // kind the API server will give it.
    if object.metadata.name.as_deref().is_none_or(str::is_empty) {
        let stand_in = if req.name.is_empty() {
            format!(
                "{}x0000",
                object
                    .metadata
                    .generate_name
                    .as_deref()
                    .unwrap_or("unnamed-")
            )
        } else {
            req.name.clone()
        };
        object.metadata.name = Some(stand_in);
    }
    if object.metadata.namespace.is_none() {
        object.metadata.namespace = req.namespace.clone();
    }
    let (context, unread) = match namespace {
        Ok(objects) => (objects, None),
        Err(e) => (Objects::new(), Some(e)),
    };
    let verdict = review(kind, &object, &context);
    let mut warnings = verdict.warnings;
    if let Some(e) = unread {
        warnings.push(format!(
            "the other Cascade objects of the namespace could not be read ({e}): only this object was checked"
        ));
    }
    let mut response = match verdict.refusal {
        Some(why) => response.deny(why),
        None => response,
    };
    if !warnings.is_empty() {
        response.warnings = Some(warnings);
    }
    response
}

/// The other Cascade objects of a namespace, read now (a follower replica has no watchers).
async fn namespace_objects(client: &kube::Client, namespace: &str) -> Result<Objects, String> {
    let mut out = Objects::new();
    for (kind, plural) in PLURALS {
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), namespace, &api_resource(kind, plural));
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(|e| format!("listing {plural}: {e}"))?;
        for obj in list.items {
            out.insert(ObjRef::of(kind, &obj), Arc::new(obj));
        }
    }
    Ok(out)
}

/// Longest the namespace is read for one review: the API server gives a webhook 10 s.
const CONTEXT_TIMEOUT: Duration = Duration::from_secs(5);

async fn validate(
    State(client): State<kube::Client>,
    Json(review): Json<AdmissionReview<DynamicObject>>,
) -> Json<AdmissionReview<DynamicObject>> {
    let req: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(req) => req,
        Err(e) => {
            return Json(AdmissionResponse::invalid(e.to_string()).into_review());
        }
    };
    let namespace = req.namespace.clone().unwrap_or_default();
    let context =
        match tokio::time::timeout(CONTEXT_TIMEOUT, namespace_objects(&client, &namespace)).await {
            Ok(read) => read,
            Err(_) => Err(format!("no answer within {} s", CONTEXT_TIMEOUT.as_secs())),
        };
    let response = answer(&req, context);
    crate::server::runtime_metrics::RUNTIME.admission_reviewed(&req.kind.kind, response.allowed);
    tracing::info!(
        kind = %req.kind.kind,
        namespace = %namespace,
        name = %req.name,
        operation = ?req.operation,
        allowed = response.allowed,
        "admission review"
    );
    Json(response.into_review())
}

/// Admission reviews carry the object and its old version: a few MiB at most.
const BODY_LIMIT: usize = 8 * 1024 * 1024;

/// The TLS acceptor of the certificate files, built again when the certificate changes.
struct Acceptor {
    settings: Settings,
    current: Mutex<Option<(SystemTime, Arc<SslAcceptor>)>>,
}

impl Acceptor {
    fn get(&self) -> Result<Arc<SslAcceptor>, String> {
        let changed = std::fs::metadata(&self.settings.cert)
            .and_then(|m| m.modified())
            .map_err(|e| format!("cannot read {}: {e}", self.settings.cert.display()))?;
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, acceptor)) = current.as_ref()
            && *at == changed
        {
            return Ok(acceptor.clone());
        }
        let acceptor = Arc::new(build_acceptor(&self.settings.cert, &self.settings.key)?);
        *current = Some((changed, acceptor.clone()));
        Ok(acceptor)
    }
}

fn build_acceptor(cert: &Path, key: &Path) -> Result<SslAcceptor, String> {
    let mut b =
        SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).map_err(|e| e.to_string())?;
    b.set_certificate_chain_file(cert)
        .map_err(|e| format!("the certificate {}: {e}", cert.display()))?;
    b.set_private_key_file(key, SslFiletype::PEM)
        .map_err(|e| format!("the private key {}: {e}", key.display()))?;
    b.check_private_key()
        .map_err(|e| format!("the private key does not match the certificate: {e}"))?;
    Ok(b.build())
}

/// Longest a caller may take to finish the TLS handshake and send its request.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the webhook over TLS until the process ends; returns the address it listens on.
/// Fails at once when the certificate cannot be used or the address cannot be bound.
pub async fn serve(client: kube::Client, settings: Settings) -> Result<SocketAddr, String> {
    let acceptor = Arc::new(Acceptor {
        settings: settings.clone(),
        current: Mutex::new(None),
    });
    acceptor.get()?;
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", settings.listen))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let router = Router::new()
        .route(PATH, post(validate))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(client);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, peer)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let acceptor = acceptor.clone();
            let router = router.clone();
            tokio::spawn(async move {
                if let Err(e) = connection(tcp, &acceptor, router).await {
                    tracing::debug!(%peer, error = %e, "admission connection ended");
                }
            });
        }
    });
    tracing::info!(address = %bound, path = PATH, "admission webhook listening");
    Ok(bound)
}

async fn connection(
    tcp: tokio::net::TcpStream,
    acceptor: &Acceptor,
    router: Router,
) -> Result<(), String> {
    let ssl = Ssl::new(acceptor.get()?.context()).map_err(|e| e.to_string())?;
    let mut stream = tokio_openssl::SslStream::new(ssl, tcp).map_err(|e| e.to_string())?;
    tokio::time::timeout(HANDSHAKE_TIMEOUT, std::pin::Pin::new(&mut stream).accept())
        .await
        .map_err(|_| "TLS handshake timed out".to_string())?
        .map_err(|e| format!("TLS handshake: {e}"))?;
    let service = hyper_util::service::TowerToHyperService::new(router);
    hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HANDSHAKE_TIMEOUT)
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
        .await
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests;
