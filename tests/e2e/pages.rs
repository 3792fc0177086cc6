//! The web pages of `cascade serve`, through real HTTP on loopback: every page of a finished
//! example campaign, every link on them, hostile values shown escaped, credentials masked,
//! actions from a page's form with its token, reason and one-use nonce, and the live stream.

use std::collections::{BTreeSet, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::serve::{Server, served_eve_mc};
use crate::support::{TempDir, cascade, cascade_bin, status_json, text};

/// The site-internal links of a page (`href="/..."`), entities decoded.
fn links(html: &str) -> Vec<String> {
    html.split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|l| l.starts_with('/'))
        .map(|l| l.replace("&amp;", "&").replace("&#x2f;", "/"))
        .collect()
}

/// The text of HTML as a reader sees it (the entities minijinja writes, decoded).
fn unescaped(html: &str) -> String {
    html.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#x2f;", "/")
        .replace("&amp;", "&")
}

fn page(server: &Server, path: &str) -> String {
    let (code, content_type, body) = server.request("GET", path);
    assert_eq!(code, 200, "{path}: {body}");
    assert_eq!(content_type, "text/html; charset=utf-8", "{path}");
    body
}

#[test]
fn every_page_of_a_finished_campaign_answers_and_every_link_leads_somewhere() {
    let (state, server) = served_eve_mc("pages-crawl");

    let home = page(&server, "/");
    assert!(home.contains("eve/eve-mc"), "{home}");
    assert!(
        home.contains("state-Succeeded"),
        "all five stages completed"
    );
    // The namespace filter: eve's campaigns, and none of another namespace.
    assert!(page(&server, "/?namespace=eve").contains("eve/eve-mc"));
    assert!(!page(&server, "/?namespace=other").contains("eve/eve-mc"));

    let campaign = page(&server, "/campaigns/eve/eve-mc");
    assert!(campaign.contains("<svg"), "the stage graph is drawn");
    assert_eq!(
        campaign.matches("class=\"stage state-Completed\"").count(),
        5,
        "five stage boxes, each coloured as completed"
    );
    for pattern in ["%.gen.root", "%.g4.root", "%.detsim.root", "%.reco.root"] {
        assert!(campaign.contains(pattern), "edge label {pattern}");
    }

    // The stage page: its submissions, their jobs and the explanation `explain` prints.
    let stage = page(&server, "/stages/eve/mc-reco");
    let status = status_json(state.path());
    let reco: Vec<&str> = status["submissions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["submission"]["stage"]["name"] == "mc-reco")
        .map(|s| s["submission"]["id"].as_str().unwrap())
        .collect();
    assert!(!reco.is_empty());
    for id in &reco {
        assert!(
            stage.contains(&format!("data-submission=\"{id}\"")),
            "{id} listed"
        );
    }
    let explain = cascade(&["explain", "mc-reco", "--state", state.path()]);
    let first_line = text(&explain.stdout).lines().next().unwrap().to_string();
    assert!(unescaped(&stage).contains(&first_line), "{first_line}");
    assert!(
        stage.contains("of 90.0% needed"),
        "the completion threshold"
    );

    // A submission: its history ends Located; its outputs have their parents.
    let sub = page(&server, "/submissions/eve.mc-g4.1");
    assert!(sub.contains("state-Located"));
    assert!(sub.contains(".g4.root"), "its outputs are listed");
    assert!(
        sub.contains(".gen.root"),
        "with their parents, mc-gen's outputs"
    );

    // Crawl: every link of every page answers (pages with 200, the API and metrics too).
    let mut seen = BTreeSet::new();
    let mut queue = VecDeque::from(["/".to_string()]);
    while let Some(path) = queue.pop_front() {
        if !seen.insert(path.clone()) || seen.len() > 400 {
            continue;
        }
        let (code, content_type, body) = server.request("GET", &path);
        assert_eq!(code, 200, "{path} (linked from a page): {body}");
        if content_type.starts_with("text/html") {
            queue.extend(links(&body));
        }
    }
    for must in [
        "/stages/eve/mc-ana",
        "/submissions/eve.mc-gen.1",
        "/catalog",
        "/assets/cascade.css",
    ] {
        assert!(seen.contains(must), "{must} is reachable: {seen:?}");
    }
    assert!(
        seen.iter().any(|p| p.starts_with("/catalog/files/")),
        "file pages are linked"
    );
}

#[test]
fn missing_objects_and_bad_queries_say_so_on_a_page() {
    let (_state, server) = served_eve_mc("pages-missing");
    for path in [
        "/campaigns/eve/nope",
        "/stages/eve/nope",
        "/submissions/nope",
        "/catalog/files/nope.root",
    ] {
        let (code, content_type, body) = server.request("GET", path);
        assert_eq!(code, 404, "{path}");
        assert!(content_type.starts_with("text/html"), "{path}");
        assert!(body.contains("in this state"), "{path}: {body}");
    }
    // A query with an error: the page points at the column, as the command line does.
    let body = page(&server, "/catalog?q=size%20%3E");
    let cli = cascade(&["catalog", "query", "size >", "--state", _state.path()]);
    let said = text(&cli.stderr);
    let located = said.lines().next().unwrap();
    assert!(unescaped(&body).contains(located), "{located} in {body}");
    let ok = page(&server, "/catalog?q=file_name%20like%20%27%25.ana.root%27");
    let ntuples = crate::support::catalog_query(_state.path(), "file_name like '%.ana.root'");
    assert!(!ntuples.is_empty());
    assert!(ok.contains(&format!("<p>{} files", ntuples.len())), "{ok}");
    for name in &ntuples {
        assert!(
            ok.contains(&format!("href=\"/catalog/files/{name}\"")),
            "{name}: {ok}"
        );
    }
}

/// A generator campaign whose keyword is HTML, whose login setup and launch assign
/// credentials, and whose launch prints them all.
fn hostile_campaign(dir: &TempDir) -> std::path::PathBuf {
    let yaml = r#"apiVersion: cascade.dev/v1alpha1
kind: LoginSetup
metadata: {name: here, namespace: exp}
spec: {host: localhost, account: prod, setup: "export X509_USER_PROXY=/tmp/x509up_u4242"}
---
apiVersion: cascade.dev/v1alpha1
kind: JobType
metadata: {name: job, namespace: exp}
spec:
  launchScript: 'echo %(note)s; export BEARER_TOKEN=s3cr3tvalue; echo "token $BEARER_TOKEN proxy $X509_USER_PROXY"; cascade submit -- true'
  outputFilePatterns: ["%.out"]
---
apiVersion: cascade.dev/v1alpha1
kind: Campaign
metadata: {name: c, namespace: exp}
spec:
  keywords: {note: "<img src=x onerror=alert(1)></pre><script>alert(2)</script>"}
  defaults: {loginSetup: here, jobType: job, softwareVersion: v1, completion: {type: complete, percent: 100}}
---
apiVersion: cascade.dev/v1alpha1
kind: CampaignStage
metadata: {name: gen, namespace: exp}
spec: {campaign: c, type: generator}
"#;
    let file = dir.0.join("hostile.yaml");
    std::fs::write(&file, yaml).unwrap();
    file
}

#[test]
fn html_in_keywords_and_launch_logs_is_shown_escaped_and_credentials_never() {
    let dir = TempDir::new("pages-hostile");
    let file = hostile_campaign(&dir);
    let state = dir.0.join("state");
    let run = cascade(&[
        "run",
        file.to_str().unwrap(),
        "--state",
        state.to_str().unwrap(),
        "-q",
    ]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let log = std::fs::read_to_string(state.join("launches/exp.gen.1.log")).unwrap();
    assert!(
        log.contains("<script>alert(2)</script>") && log.contains("s3cr3tvalue"),
        "the launch printed both: {log}"
    );
    let server = Server::start(state.to_str().unwrap());
    for path in [
        "/",
        "/campaigns/exp/c",
        "/stages/exp/gen",
        "/submissions/exp.gen.1",
    ] {
        let body = page(&server, path);
        for raw in ["<img src=x", "<script>alert", "</pre><script>"] {
            assert!(!body.contains(raw), "{path} shows {raw} raw");
        }
        for secret in ["s3cr3tvalue", "x509up_u4242"] {
            assert!(
                !body.contains(secret),
                "{path} shows the credential {secret}"
            );
        }
    }
    let sub = page(&server, "/submissions/exp.gen.1");
    assert!(
        sub.contains("&lt;img src=x onerror=alert(1)&gt;&lt;&#x2f;pre&gt;&lt;script&gt;"),
        "the keyword is shown, escaped"
    );
    assert!(sub.contains("token ••••••"), "the log is shown, masked");
    // Scripts only from the server itself, whatever a page holds.
    let (_, _, head) = raw_head(&server, "/submissions/exp.gen.1");
    assert!(
        head.contains("content-security-policy: default-src 'self'; script-src 'self'"),
        "{head}"
    );
}

/// (status, content type, head) of a GET.
fn raw_head(server: &Server, path: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        server.addr
    )
    .unwrap();
    let mut head = String::new();
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
        head.push_str(&line.to_ascii_lowercase());
    }
    let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|l| l.strip_prefix("content-type: ").map(str::to_string))
        .unwrap_or_default();
    (code, content_type, head)
}

/// The nonce of the first form of a page.
fn nonce(server: &Server, path: &str) -> String {
    let body = page(server, path);
    body.split("name=\"nonce\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no form nonce on {path}: {body}"))
        .to_string()
}

fn form(server: &Server, path: &str, fields: &str, origin: Option<&str>) -> (u16, String) {
    let mut headers = vec!["Content-Type: application/x-www-form-urlencoded".to_string()];
    if let Some(o) = origin {
        headers.push(format!("Origin: {o}"));
    }
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    let (code, _, body) = server.send("POST", path, &headers, fields);
    (code, body)
}

#[test]
fn a_page_action_needs_the_token_a_reason_and_a_fresh_nonce() {
    let (state, _) = served_eve_mc("pages-actions");
    let s = state.path();
    // Without a token the pages offer no form.
    let plain = Server::start(s);
    assert!(page(&plain, "/stages/eve/mc-reco").contains("Actions are off"));
    drop(plain);

    let token_file = state.0.join("token");
    std::fs::write(&token_file, "page-token-1\n").unwrap();
    let server = Server::start_with(s, &["--token-file", token_file.to_str().unwrap()]);
    let stage = "/stages/eve/mc-reco";
    let post = "/actions/eve/stages/mc-reco";
    let own = format!("http://{}", server.addr);
    let fields = |nonce: &str, token: &str| {
        format!("nonce={nonce}&verb=pause&why=disk+full+at+the+site&who=alice&token={token}")
    };

    // No nonce, a made-up nonce, no token, a wrong token, another site: refused.
    let (code, body) = form(&server, post, &fields("", "page-token-1"), Some(&own));
    assert_eq!(code, 403, "{body}");
    let (code, _) = form(&server, post, &fields("00ff", "page-token-1"), Some(&own));
    assert_eq!(code, 403);
    let (code, _) = form(
        &server,
        post,
        &fields(&nonce(&server, stage), ""),
        Some(&own),
    );
    assert_eq!(code, 401);
    let (code, _) = form(
        &server,
        post,
        &fields(&nonce(&server, stage), "wrong"),
        Some(&own),
    );
    assert_eq!(code, 401);
    let (code, body) = form(
        &server,
        post,
        &fields(&nonce(&server, stage), "page-token-1"),
        Some("http://evil.example"),
    );
    assert_eq!(code, 403, "{body}");
    // No reason: refused, and nothing recorded so far.
    let n = nonce(&server, stage);
    let (code, body) = form(
        &server,
        post,
        &format!("nonce={n}&verb=pause&why=&token=page-token-1"),
        Some(&own),
    );
    assert_eq!(code, 400, "{body}");
    assert!(
        status_json(s)["operatorActions"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // An oversized form is refused before anything is read of it.
    let huge = format!(
        "nonce={}&verb=pause&token=page-token-1&why={}",
        nonce(&server, stage),
        "x".repeat(100 * 1024)
    );
    let (code, _) = form(&server, post, &huge, Some(&own));
    assert_eq!(code, 413);

    // Done once, with who and why; the same form sent again is refused.
    let n = nonce(&server, stage);
    let (code, body) = form(&server, post, &fields(&n, "page-token-1"), Some(&own));
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("Done"), "{body}");
    let (code, body) = form(&server, post, &fields(&n, "page-token-1"), Some(&own));
    assert_eq!(code, 403, "replayed: {body}");
    let actions = status_json(s)["operatorActions"].clone();
    let actions = actions.as_array().unwrap();
    assert_eq!(actions.len(), 1, "{actions:?}");
    assert_eq!(actions[0]["who"], "alice");
    assert_eq!(actions[0]["why"], "disk full at the site");
    assert!(page(&server, stage).contains("Paused by alice"));
}

#[test]
fn the_live_stream_says_when_the_state_changes() {
    let (state, server) = served_eve_mc("pages-live");
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    write!(
        stream,
        "GET /events HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
        server.addr
    )
    .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    reader.read_line(&mut head).unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // Change the state the way an operator does.
    let paused = std::process::Command::new(cascade_bin())
        .args([
            "pause",
            "mc-ana",
            "--why",
            "checking the live stream",
            "--state",
            state.path(),
        ])
        .output()
        .unwrap();
    assert!(paused.status.success(), "{}", text(&paused.stderr));
    let start = Instant::now();
    let mut seen = String::new();
    while !seen.contains("event: changed") {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no change event: {seen}"
        );
        let mut line = String::new();
        if reader.read_line(&mut line).is_ok() {
            seen.push_str(&line);
        }
    }
}
