//! `cascade serve`: the read-only HTTP API and metrics over the state of a finished example
//! campaign, through real HTTP on loopback.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

use crate::support::{TempDir, cascade, cascade_bin, root, status_json, text};

/// A `cascade serve` process and the address it listens on (it was asked for port 0).
pub struct Server {
    child: Child,
    pub addr: String,
}

impl Server {
    pub fn start(state: &str) -> Server {
        Server::start_with(state, &[])
    }

    pub fn start_with(state: &str, more: &[&str]) -> Server {
        let mut child = Command::new(cascade_bin())
            .args(["serve", "--state", state, "--listen", "127.0.0.1:0"])
            .args(more)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stderr.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        Server { child, addr }
    }

    /// (status code, content type, body) of a request.
    pub fn request(&self, method: &str, path: &str) -> (u16, String, String) {
        self.send(method, path, &[], "")
    }

    /// A request with `headers` (JSON, unless they say another `Content-Type`).
    pub fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[&str],
        body: &str,
    ) -> (u16, String, String) {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        let mut extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
        if !extra.to_ascii_lowercase().contains("content-type:") {
            extra.push_str("Content-Type: application/json\r\n");
        }
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        let content_type = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-type: ")
                    .map(str::to_string)
            })
            .unwrap_or_default();
        assert!(
            !head.to_ascii_lowercase().contains("transfer-encoding"),
            "a whole body with its length: {head}"
        );
        (code, content_type, body.to_string())
    }

    fn json(&self, path: &str) -> serde_json::Value {
        let (code, content_type, body) = self.request("GET", path);
        assert_eq!(code, 200, "{path}: {body}");
        assert_eq!(content_type, "application/json", "{path}");
        serde_json::from_str(&body).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn finished_eve_mc(state: &TempDir) {
    let out = Command::new(cascade_bin())
        .args(["run", "examples/eve_mc", "--state", state.path(), "-q"])
        .current_dir(root())
        .env("EVE_JOB_SECONDS", "0.1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// A finished eve_mc and a server over its state (dropped first, then the state).
pub fn served_eve_mc(name: &str) -> (TempDir, Server) {
    let state = TempDir::new(name);
    finished_eve_mc(&state);
    let server = Server::start(state.path());
    (state, server)
}

#[test]
fn the_api_serves_what_status_prints_by_campaign_stage_and_submission() {
    let (state, server) = served_eve_mc("serve-api");
    let s = state.path();

    // The same document as `status --format json`: the state does not change in between.
    assert_eq!(server.json("/api/v1/status"), status_json(s));

    // Every stage of eve_mc completed: the campaign is done.
    let campaigns = server.json("/api/v1/campaigns");
    assert_eq!(campaigns["eve/eve-mc"]["progressPercent"], 100.0);
    assert_eq!(campaigns["eve/eve-mc"]["stages"]["Completed"], 5);

    let stage = server.json("/api/v1/namespaces/eve/stages/mc-reco");
    assert_eq!(stage["stage"]["state"], "Completed");
    let in_status = status_json(s)["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["stage"] == "eve/mc-reco")
        .cloned()
        .unwrap();
    assert_eq!(
        stage["stage"], in_status,
        "the stage's entry as in the status"
    );
    let subs = stage["submissions"].as_array().unwrap();
    assert!(!subs.is_empty());
    for sub in subs {
        assert!(
            sub["submission"]["id"]
                .as_str()
                .unwrap()
                .starts_with("eve.mc-reco."),
            "{sub}"
        );
    }

    let id = "eve.mc-gen.1";
    let one = server.json(&format!("/api/v1/submissions/{id}"));
    assert_eq!(one["submission"]["submission"]["id"], id);
    let history = one["history"].as_array().unwrap();
    assert_eq!(
        history.last().unwrap()["status"],
        "Located",
        "its last status: {history:?}"
    );
}

#[test]
fn unknown_paths_and_methods_get_json_errors_with_fitting_codes() {
    let (_state, server) = served_eve_mc("serve-errors");
    for path in [
        "/api/v1/submissions/nope",
        "/api/v1/namespaces/eve/stages/nope",
        "/api/v1/nothing-here",
        "/api/v1/namespaces/%3Cscript%3E/stages/x",
    ] {
        let (code, content_type, body) = server.request("GET", path);
        assert_eq!(code, 404, "{path}");
        assert_eq!(content_type, "application/json", "{path}");
        let error: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(error["status"], 404);
        assert!(error["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    // Read-only: nothing changes state over this API.
    let (code, _, _) = server.request("POST", "/api/v1/status");
    assert_eq!(code, 405);
    let (code, _, body) = server.request("GET", "/healthz");
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    // Ready: the state answers (the campaign ran before the server started).
    let (code, _, body) = server.request("GET", "/readyz");
    assert_eq!((code, body.as_str()), (200, "ready\n"));
}

#[test]
fn metrics_count_what_the_ledger_holds() {
    let (state, server) = served_eve_mc("serve-metrics");
    let s = state.path();
    let (code, content_type, body) = server.request("GET", "/metrics");
    assert_eq!(code, 200);
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let sample = |name: &str| -> f64 {
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no `{name}` in:\n{body}"))
    };
    // eve_mc: five stages, all completed; every submission located in the end.
    assert_eq!(sample("cascade_stages{state=\"Completed\"}"), 5.0);
    let submissions = status_json(s)["submissions"].as_array().unwrap().len();
    assert_eq!(
        sample("cascade_submissions{status=\"Located\"}"),
        submissions as f64
    );
    // Its outputs are in the catalog, and the ledger has a size.
    let files = crate::support::catalog_query(s, "file_name like '%'").len();
    assert_eq!(sample("cascade_catalog_files"), files as f64);
    assert!(sample("cascade_ledger_bytes") > 0.0);
    // Another process's counters would read as zeros: `cascade serve` does not show them.
    assert!(!body.contains("cascade_launches"), "{body}");
    assert!(body.ends_with("# EOF\n"));
}

#[test]
fn serve_refuses_a_directory_without_state_and_stops_on_sigterm() {
    let empty = TempDir::new("serve-empty");
    let out = cascade(&["serve", "--state", empty.path(), "--listen", "127.0.0.1:0"]);
    assert!(!out.status.success());
    assert!(!text(&out.stderr).is_empty());

    let state = TempDir::new("serve-stop");
    finished_eve_mc(&state);
    let mut server = Server::start(state.path());
    unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) };
    let status = server.child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

/// `cascade run --serve`: the controller serves the API of its own state while it runs, and
/// the answers follow the campaign to its end.
#[test]
fn a_running_controller_serves_its_progress_live() {
    let state = TempDir::new("serve-live");
    let mut child = Command::new(cascade_bin())
        .args([
            "run",
            "examples/eve_mc",
            "--state",
            state.path(),
            "-q",
            "--watch",
            "--serve",
            "127.0.0.1:0",
        ])
        .current_dir(root())
        .env("EVE_JOB_SECONDS", "0.3")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("serving the pages and API") {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "no API address");
    }
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap()
        .to_string();
    let server = Server { child, addr };
    let mut seen = Vec::new();
    crate::support::wait_for(
        "the campaign to be done, seen over the API",
        std::time::Duration::from_secs(60),
        || {
            let (code, _, body) = server.request("GET", "/api/v1/campaigns");
            if code != 200 {
                return false; // the controller has not written its first status yet
            }
            let campaigns: serde_json::Value = serde_json::from_str(&body).unwrap();
            let progress = campaigns["eve/eve-mc"]["progressPercent"].as_f64();
            if seen.last() != Some(&progress) {
                seen.push(progress);
            }
            progress == Some(100.0)
        },
    );
    assert!(seen.len() >= 2, "progress seen moving: {seen:?}");

    // What only the running controller knows: eve_mc launched each of its five stages at
    // least once, four of them over an upstream submission's outputs (a hop each).
    let (_, _, metrics) = server.request("GET", "/metrics");
    let sample = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no `{name}` in:\n{metrics}"))
    };
    assert!(sample("cascade_launches_total") >= 5.0);
    assert!(sample("cascade_hop_seconds_count") >= 4.0);
    assert!(sample("cascade_reconcile_seconds_count") >= 1.0);
}

/// Operator actions over HTTP need the configured token and a reason, go through the same
/// code as the command line, and are recorded with who and why.
#[test]
fn actions_need_the_token_and_a_reason_and_are_recorded_like_the_cli() {
    let state = TempDir::new("serve-actions");
    finished_eve_mc(&state);
    let s = state.path();
    let pause = "/api/v1/namespaces/eve/stages/mc-reco/pause";
    let why = r#"{"why": "disk full at the site", "who": "alice"}"#;

    // No token configured: the API only reads.
    let reading = Server::start(s);
    let (code, _, body) = reading.send("POST", pause, &["Authorization: Bearer x"], why);
    assert_eq!(code, 403, "{body}");
    drop(reading);

    let token_file = state.0.join("token");
    std::fs::write(&token_file, "s3cret-token\n").unwrap();
    let server = Server::start_with(s, &["--token-file", token_file.to_str().unwrap()]);
    let bearer = "Authorization: Bearer s3cret-token";
    for (headers, expected) in [
        (vec![], 401),
        (vec!["Authorization: Bearer s3cret-tokeN"], 401),
        (vec!["Authorization: Bearer "], 401),
        (vec!["Authorization: s3cret-token"], 401),
    ] {
        let (code, content_type, body) = server.send("POST", pause, &headers, why);
        assert_eq!(code, expected, "{headers:?}: {body}");
        assert_eq!(content_type, "application/json");
    }
    assert!(
        status_json(s)["operatorActions"]
            .as_array()
            .unwrap()
            .is_empty(),
        "nothing was recorded by refused requests"
    );

    // No reason, a body that is not the expected JSON, an action a kind does not take.
    for (path, body, expected) in [
        (pause, r#"{"why": "  "}"#, 400),
        (pause, r#"{"who": "alice"}"#, 400),
        (pause, r#"{"why": "x", "sudo": true}"#, 400),
        (pause, "not json", 400),
        ("/api/v1/namespaces/eve/campaigns/eve-mc/kill", why, 400),
        ("/api/v1/namespaces/eve/widgets/x/pause", why, 404),
        // The path's kind is the one meant: a campaign is not paused as a stage, nor a
        // stage as a campaign.
        ("/api/v1/namespaces/eve/stages/eve-mc/pause", why, 404),
        ("/api/v1/namespaces/eve/campaigns/mc-reco/pause", why, 404),
        (
            "/api/v1/namespaces/other/submissions/eve.mc-gen.1/hold",
            why,
            404,
        ),
    ] {
        let (code, _, answer) = server.send("POST", path, &[bearer], body);
        assert_eq!(code, expected, "{path} {body}: {answer}");
    }
    let huge = format!(r#"{{"why": "{}"}}"#, "x".repeat(100 * 1024));
    let (code, _, _) = server.send("POST", pause, &[bearer], &huge);
    assert_eq!(code, 413, "a body over the limit");

    // What the command line would refuse is refused the same way, with its message.
    let (code, _, body) = server.send(
        "POST",
        "/api/v1/namespaces/eve/submissions/eve.mc-gen.1/approve",
        &[bearer],
        why,
    );
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("not awaiting approval"), "{body}");

    let (code, _, body) = server.send("POST", pause, &[bearer], why);
    assert_eq!(code, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("eve/mc-reco paused")
    );
    let actions = status_json(s)["operatorActions"].clone();
    let recorded = actions.as_array().unwrap();
    assert_eq!(recorded.len(), 1, "{actions}");
    assert_eq!(recorded[0]["who"], "alice");
    assert_eq!(recorded[0]["why"], "disk full at the site");
    assert_eq!(recorded[0]["target"], "eve/mc-reco");

    // The same as `cascade resume` from the command line, who defaulting to `api`.
    let (code, _, body) = server.send(
        "POST",
        "/api/v1/namespaces/eve/stages/mc-reco/resume",
        &[bearer],
        r#"{"why": "space freed"}"#,
    );
    assert_eq!(code, 200, "{body}");
    let actions = status_json(s)["operatorActions"].clone();
    assert_eq!(actions[1]["who"], "api", "{actions}");
}

/// A client in a loop gets 429 with `Retry-After` past the rate (bursts of twice it); health
/// probes are never limited.
#[test]
fn requests_past_the_rate_limit_get_429_but_health_probes_do_not() {
    let state = TempDir::new("serve-rate");
    finished_eve_mc(&state);
    let server = Server::start_with(state.path(), &["--rate-limit", "2"]);
    let answers: Vec<(u16, String, String)> = (0..20)
        .map(|_| server.request("GET", "/api/v1/campaigns"))
        .collect();
    let codes: Vec<u16> = answers.iter().map(|a| a.0).collect();
    // A burst of at most 4 (and what refilled meanwhile) is answered; the rest is refused.
    assert!(codes.iter().take(4).all(|c| *c == 200), "{codes:?}");
    let (_, content_type, body) = answers
        .iter()
        .find(|a| a.0 == 429)
        .unwrap_or_else(|| panic!("nothing refused: {codes:?}"));
    assert_eq!(content_type, "application/json");
    assert!(body.contains("requests a second"), "{body}");
    for _ in 0..20 {
        assert_eq!(server.request("GET", "/healthz").0, 200);
    }
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(
        server.request("GET", "/api/v1/campaigns").0,
        200,
        "refilled"
    );
}

/// What the API answers is what its OpenAPI description says, checked by an independent
/// validator (check-jsonschema, installed by `scripts/install-test-tools.sh`); the description
/// served is the one checked in (`schemas/openapi.json`, itself checked by
/// openapi-spec-validator in `scripts/test.sh`).
#[test]
fn every_answer_matches_the_openapi_description() {
    let (state, server) = served_eve_mc("serve-openapi");
    let doc = server.json("/api/v1/openapi.json");
    let checked_in: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("schemas/openapi.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        doc, checked_in,
        "regenerate with `cascade schema --out schemas`"
    );
    let checker = root().join(".tools/venv/bin/check-jsonschema");
    assert!(
        checker.exists(),
        "no {}: run `bash scripts/install-test-tools.sh`",
        checker.display()
    );
    let schema_of = |path: &str, method: &str, code: &str| -> serde_json::Value {
        let mut schema =
            doc["paths"][path][method]["responses"][code]["content"]["application/json"]["schema"]
                .clone();
        assert!(schema.is_object(), "{path} {code} is described");
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema".into();
        schema["components"] = doc["components"].clone();
        schema
    };
    let cases = [
        ("/api/v1/status", "/api/v1/status", "200"),
        ("/api/v1/campaigns", "/api/v1/campaigns", "200"),
        (
            "/api/v1/namespaces/eve/stages/mc-reco",
            "/api/v1/namespaces/{namespace}/stages/{name}",
            "200",
        ),
        (
            "/api/v1/submissions/eve.mc-reco.1",
            "/api/v1/submissions/{id}",
            "200",
        ),
        (
            "/api/v1/submissions/nope",
            "/api/v1/submissions/{id}",
            "404",
        ),
        (
            "/api/v1/catalog/files?query=file_name%20like%20%27%25.ana.root%27&limit=1",
            "/api/v1/catalog/files",
            "200",
        ),
        (
            "/api/v1/catalog/files?query=size%20%3E",
            "/api/v1/catalog/files",
            "400",
        ),
        (
            "/api/v1/catalog/files/eve.mc-gen.1_0.gen.root",
            "/api/v1/catalog/files/{name}",
            "200",
        ),
        (
            "/api/v1/catalog/definitions",
            "/api/v1/catalog/definitions",
            "200",
        ),
        (
            "/api/v1/namespaces/eve/stages/mc-reco/explain",
            "/api/v1/namespaces/{namespace}/stages/{name}/explain",
            "200",
        ),
    ];
    for (i, (url, path, code)) in cases.iter().enumerate() {
        let (got, _, body) = server.request("GET", url);
        assert_eq!(got.to_string(), *code, "{url}: {body}");
        let answer = state.0.join(format!("answer{i}.json"));
        let schema = state.0.join(format!("schema{i}.json"));
        std::fs::write(&answer, &body).unwrap();
        std::fs::write(&schema, schema_of(path, "get", code).to_string()).unwrap();
        let out = Command::new(&checker)
            .arg("--schemafile")
            .arg(&schema)
            .arg(&answer)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{url} does not match its description: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }
    // An action without a configured token: the error as described.
    let (got, _, body) = server.send(
        "POST",
        "/api/v1/namespaces/eve/stages/mc-reco/pause",
        &[],
        r#"{"why": "x"}"#,
    );
    assert_eq!(got, 403);
    let error: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["status"], 403);
}

/// Catalog queries over the API answer what `cascade catalog query` prints, and locate their
/// errors as it does.
#[test]
fn catalog_queries_answer_as_the_command_line() {
    let (state, server) = served_eve_mc("serve-catalog");
    let s = state.path();
    let query = "file_name like '%.reco.root'";
    let expected = crate::support::catalog_query(s, query);
    assert!(!expected.is_empty());
    let url = format!(
        "/api/v1/catalog/files?query={}",
        query
            .bytes()
            .map(|b| format!("%{b:02X}"))
            .collect::<String>()
    );
    let answer = server.json(&url);
    assert_eq!(answer["count"], expected.len());
    assert_eq!(answer["files"], serde_json::json!(expected));
    assert_eq!(answer["truncated"], false);
    let cut = server.json(&format!("{url}&limit=2"));
    assert_eq!(cut["count"], expected.len());
    assert_eq!(cut["files"].as_array().unwrap().len(), 2);
    assert_eq!(cut["truncated"], true);

    let (code, _, body) = server.request("GET", "/api/v1/catalog/files?query=size%20%3E");
    assert_eq!(code, 400);
    let error: serde_json::Value = serde_json::from_str(&body).unwrap();
    let cli = cascade(&["catalog", "query", "size >", "--state", s]);
    assert_eq!(
        error["error"].as_str().unwrap().trim(),
        text(&cli.stderr).trim(),
        "the same located message"
    );
    let file = server.json(&format!("/api/v1/catalog/files/{}", expected[0]));
    assert_eq!(file["name"], expected[0].as_str());
    assert!(!file["parents"].as_array().unwrap().is_empty(), "{file}");
    let (code, _, _) = server.request("GET", "/api/v1/catalog/files/nope.root");
    assert_eq!(code, 404);
    // The catalog's query time is measured.
    let (_, _, metrics) = server.request("GET", "/metrics");
    assert!(
        metrics.contains("cascade_catalog_query_seconds_count"),
        "{metrics}"
    );
}

/// The API's explanation of a stage is what `cascade explain --format json` prints; the text
/// form tells the same submissions.
#[test]
fn the_api_explains_a_stage_as_explain_does() {
    let (state, server) = served_eve_mc("serve-explain");
    let s = state.path();
    let api = server.json("/api/v1/namespaces/eve/stages/mc-reco/explain");
    let cli = cascade(&["explain", "mc-reco", "--state", s, "--format", "json"]);
    assert!(cli.status.success(), "{}", text(&cli.stderr));
    let printed: serde_json::Value = serde_json::from_str(&text(&cli.stdout)).unwrap();
    assert_eq!(api, printed);
    assert_eq!(api["stage"]["state"], "Completed");
    let plain = text(&cascade(&["explain", "mc-reco", "--state", s]).stdout);
    for sub in api["submissions"].as_array().unwrap() {
        let id = sub["submission"]["submission"]["id"].as_str().unwrap();
        assert!(plain.contains(id), "{id} in the text form too");
        assert!(!sub["history"].as_array().unwrap().is_empty());
    }
    let (code, _, _) = server.request("GET", "/api/v1/namespaces/eve/stages/nope/explain");
    assert_eq!(code, 404);
}
