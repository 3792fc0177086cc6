//! Notifications, received by a real HTTP receiver on loopback: one per transition and no
//! more, retried with backoff through a receiver's failures, given up (and shown) when the
//! receiver refuses them, and kept across runs when the receiver is down.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{TempDir, cascade_bin, generator_campaign, root, status_json, text};

/// A request the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub headers: String,
    pub body: serde_json::Value,
    pub answered: u16,
}

/// An HTTP receiver on loopback answering each request with the next status of `answers`
/// (the last one for ever after).
pub struct Receiver {
    pub port: u16,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    pub fn start(answers: &[u16]) -> Receiver {
        Receiver::on(TcpListener::bind("127.0.0.1:0").unwrap(), answers)
    }

    fn on(listener: TcpListener, answers: &[u16]) -> Receiver {
        let port = listener.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let seen = got.clone();
        let answers = answers.to_vec();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let mut reader = BufReader::new(stream);
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                let mut headers = String::new();
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    headers.push_str(&line);
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let mut seen = seen.lock().unwrap();
                let answered = answers[seen.len().min(answers.len() - 1)];
                seen.push(Received {
                    path: request_line
                        .split_whitespace()
                        .nth(1)
                        .unwrap_or("")
                        .to_string(),
                    headers,
                    body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
                    answered,
                });
                drop(seen);
                let mut stream = reader.into_inner();
                let reply = if answered < 300 { "ok" } else { "no thanks" };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {answered} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                    reply.len()
                );
            }
        });
        Receiver { port, got }
    }

    pub fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

fn notifier(name: &str, kind: &str, port: u16, events: &str) -> String {
    format!(
        r#"---
apiVersion: cascade.dev/v1alpha1
kind: Notifier
metadata: {{name: {name}, namespace: eve}}
spec:
  type: {kind}
  address: http://127.0.0.1:{port}/hooks/{name}
  events: {events}
"#
    )
}

fn run(paths: &[&str], state: &str) -> (bool, String, f64) {
    let start = Instant::now();
    let out = Command::new(cascade_bin())
        .arg("run")
        .args(paths)
        .args(["--state", state, "-q"])
        .current_dir(root())
        .env("EVE_JOB_SECONDS", "0.1")
        .output()
        .unwrap();
    (
        out.status.success(),
        text(&out.stderr),
        start.elapsed().as_secs_f64(),
    )
}

#[test]
fn each_transition_is_told_once_through_a_receivers_failures() {
    let dir = TempDir::new("notify-once");
    // The receiver fails twice (a restart, say), then takes everything.
    let receiver = Receiver::start(&[500, 503, 200]);
    let extra = dir.0.join("notifier.yaml");
    std::fs::write(&extra, notifier("team", "generic", receiver.port, "[]")).unwrap();
    let state = dir.0.join("state");
    let (ok, err, _) = run(
        &["examples/eve_mc", extra.to_str().unwrap()],
        state.to_str().unwrap(),
    );
    assert!(ok, "{err}");
    let got = receiver.received();
    let delivered: Vec<(String, String)> = got
        .iter()
        .filter(|r| r.answered == 200)
        .map(|r| {
            (
                r.body["event"].as_str().unwrap_or("?").to_string(),
                r.body["subject"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect();
    let mut expected: Vec<(String, String)> = ["mc-gen", "mc-g4", "mc-detsim", "mc-reco", "mc-ana"]
        .iter()
        .map(|s| ("stageCompleted".to_string(), s.to_string()))
        .collect();
    expected.push(("campaignSucceeded".into(), String::new()));
    let mut sorted = delivered.clone();
    sorted.sort();
    expected.sort();
    assert_eq!(sorted, expected, "each once: {got:#?}");
    assert_eq!(got.len(), expected.len() + 2, "two refused, then retried");
    assert!(got.iter().all(|r| r.path == "/hooks/team"));
    assert!(got.iter().all(|r| {
        r.headers
            .to_ascii_lowercase()
            .contains("content-type: application/json")
    }));
    let success = got
        .iter()
        .find(|r| r.body["event"] == "campaignSucceeded")
        .unwrap();
    assert_eq!(success.body["campaign"], "eve-mc");
    assert_eq!(success.body["namespace"], "eve");
    let summary = &status_json(state.to_str().unwrap())["notifications"];
    assert_eq!(summary["sent"], 6, "{summary}");
    assert_eq!(summary["pending"], 0);
    assert_eq!(summary["failed"], 0);

    // Running again over the finished campaign: nothing new happened, nothing is sent.
    let (ok, err, _) = run(
        &["examples/eve_mc", extra.to_str().unwrap()],
        state.to_str().unwrap(),
    );
    assert!(ok, "{err}");
    assert_eq!(receiver.received().len(), got.len());
}

#[test]
fn a_refused_notification_is_given_up_and_shown_in_status_and_metrics() {
    let dir = TempDir::new("notify-refused");
    let receiver = Receiver::start(&[400]);
    let file = dir.0.join("c.yaml");
    // A launch that submits nothing: the launch fails, then the stage.
    let mut yaml = generator_campaign("exit 3", "{}");
    yaml.push_str(
        &notifier(
            "chat",
            "slack",
            receiver.port,
            "[launchFailed, stageFailed]",
        )
        .replace("namespace: eve", "namespace: exp"),
    );
    std::fs::write(&file, yaml).unwrap();
    let state = dir.0.join("state");
    let (_, err, _) = run(&[file.to_str().unwrap()], state.to_str().unwrap());
    let got = receiver.received();
    assert_eq!(
        got.len(),
        2,
        "one try each, no retry of a refusal: {got:#?} {err}"
    );
    let texts: Vec<&str> = got.iter().filter_map(|r| r.body["text"].as_str()).collect();
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("[cascade] launch of exp.gen.1") && t.contains("exited with 3")),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("[cascade] stage exp/gen failed")),
        "{texts:?}"
    );
    let s = state.to_str().unwrap();
    let summary = &status_json(s)["notifications"];
    assert_eq!(summary["failed"], 2, "{summary}");
    let problems = summary["problems"].as_array().unwrap();
    assert!(
        problems.iter().all(|p| p["error"]
            .as_str()
            .unwrap()
            .contains("answered 400: no thanks")),
        "{problems:?}"
    );
    let status = Command::new(cascade_bin())
        .args(["status", "--state", s])
        .output()
        .unwrap();
    let printed = text(&status.stdout);
    assert!(
        printed.contains("Notifications: 0 sent, 0 pending, 2 failed"),
        "{printed}"
    );
    assert!(printed.contains("exp/chat launchFailed exp.gen.1: given up after 1 attempts"));
    let server = crate::serve::Server::start(s);
    let (code, _, metrics) = server.request("GET", "/metrics");
    assert_eq!(code, 200);
    assert!(
        metrics.contains("cascade_notifications{state=\"failed\"} 2"),
        "{metrics}"
    );
}

#[test]
fn a_notification_the_receiver_missed_is_sent_by_the_next_run() {
    let dir = TempDir::new("notify-later");
    // A port with nobody listening: every attempt is refused by the kernel.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let extra = dir.0.join("notifier.yaml");
    std::fs::write(
        &extra,
        notifier("ops", "generic", port, "[campaignSucceeded]"),
    )
    .unwrap();
    let state = dir.0.join("state");
    let s = state.to_str().unwrap();
    let (ok, err, took) = run(&["examples/eve_mc", extra.to_str().unwrap()], s);
    assert!(ok, "{err}");
    assert!(err.contains("1 notification(s) not delivered yet"), "{err}");
    assert!(took < 60.0, "the run's end waits a bounded time: {took}s");
    let summary = &status_json(s)["notifications"];
    assert_eq!(summary["pending"], 1, "{summary}");
    assert!(
        summary["problems"][0]["error"]
            .as_str()
            .unwrap()
            .contains(&format!("127.0.0.1:{port}")),
        "{summary}"
    );

    // The receiver is back; the next run (nothing left to launch) delivers it.
    let receiver = Receiver::on(TcpListener::bind(("127.0.0.1", port)).unwrap(), &[200]);
    let deadline = Instant::now() + Duration::from_secs(400);
    loop {
        let (ok, err, _) = run(&["examples/eve_mc", extra.to_str().unwrap()], s);
        assert!(ok, "{err}");
        if !receiver.received().is_empty() || Instant::now() > deadline {
            break;
        }
    }
    let got = receiver.received();
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0].body["event"], "campaignSucceeded");
    assert_eq!(status_json(s)["notifications"]["sent"], 1);
}

#[test]
fn a_wrong_notifier_is_refused_at_its_line_with_a_hint() {
    let dir = TempDir::new("notify-invalid");
    let cases = [
        (
            "type: github\n  address: https://api.github.com\n  tokenFile: /run/t",
            "needs the repository",
            "owner/name",
        ),
        (
            "type: gitlab\n  address: https://gl.example\n  repository: g/p",
            "needs a token",
            "tokenFile",
        ),
        (
            "type: generic\n  address: ftp://example.org/x",
            "is not an http:// or https:// URL",
            "webhook's URL",
        ),
        (
            "type: generic\n  address: http://127.0.0.1:1/\n  campaigns: [eve-mcc]",
            "Campaign `eve-mcc` does not exist in namespace `eve`",
            "eve-mc",
        ),
        (
            "type: generic\n  address: http://127.0.0.1:1/\n  events: [stageDone]",
            "stageDone",
            "stageCompleted",
        ),
        (
            "type: pager\n  address: http://127.0.0.1:1/",
            "pager",
            "generic",
        ),
    ];
    for (i, (spec, message, hint)) in cases.iter().enumerate() {
        let file = dir.0.join(format!("n{i}.yaml"));
        let yaml = format!(
            "apiVersion: cascade.dev/v1alpha1\nkind: Notifier\nmetadata: {{name: n, namespace: eve}}\nspec:\n  {spec}\n"
        );
        std::fs::write(&file, yaml).unwrap();
        let out = Command::new(cascade_bin())
            .args(["validate", "examples/eve_mc", file.to_str().unwrap()])
            .current_dir(root())
            .output()
            .unwrap();
        let err = text(&out.stderr);
        assert!(!out.status.success(), "case {i} accepted");
        assert!(err.contains(message), "case {i}: {err}");
        assert!(err.contains(hint), "case {i}: no hint {hint}: {err}");
        assert!(
            err.contains(&format!("n{i}.yaml:")),
            "case {i}: located: {err}"
        );
    }
}
