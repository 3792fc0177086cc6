//! The controller following real git servers on loopback: a bare repository served by
//! `git daemon` (git://), and by `git http-backend` (smart HTTP) behind the small CGI host
//! below, with webhooks signed as GitHub signs them. Pushes are real `git push`es.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::*;

/// Runs git in `dir`, failing the test on error; what it printed.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Production Manager")
        .env("GIT_AUTHOR_EMAIL", "pm@example.org")
        .env("GIT_COMMITTER_NAME", "Production Manager")
        .env("GIT_COMMITTER_EMAIL", "pm@example.org")
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
    text(&out.stdout).trim().to_string()
}

/// A working repository and the bare one it pushes to (`served/campaigns.git`).
struct Repos {
    work: PathBuf,
    served: PathBuf,
}

impl Repos {
    fn new(dir: &Path) -> Repos {
        let served = dir.join("served");
        std::fs::create_dir_all(&served).unwrap();
        git(
            &served,
            &["init", "--bare", "-q", "-b", "main", "campaigns.git"],
        );
        // A branch may be deleted as on a hosted repository.
        git(
            &served.join("campaigns.git"),
            &["config", "receive.denyDeleteCurrent", "ignore"],
        );
        let work = dir.join("work");
        std::fs::create_dir_all(&work).unwrap();
        git(&work, &["init", "-q", "-b", "main"]);
        git(
            &work,
            &[
                "remote",
                "add",
                "origin",
                served.join("campaigns.git").to_str().unwrap(),
            ],
        );
        Repos { work, served }
    }

    /// Writes the campaign with `events` as its generator's parameter, commits, pushes;
    /// returns the commit.
    fn commit(&self, campaign: &str, message: &str) -> String {
        std::fs::create_dir_all(self.work.join("prod")).unwrap();
        std::fs::write(self.work.join("prod/campaign.yaml"), campaign).unwrap();
        git(&self.work, &["add", "-A"]);
        git(&self.work, &["commit", "-q", "-m", message]);
        git(&self.work, &["push", "-q", "origin", "main"]);
        git(&self.work, &["rev-parse", "HEAD"])
    }
}

/// One generator stage whose launch script takes `--events=N` from the job type.
fn campaign(events: u32) -> String {
    generator_campaign(
        "cascade submit --jobs 1 -- sh -c 'touch $CASCADE_OUTPUT_DIR/$CASCADE_SUBMISSION_ID.out'",
        "{}",
    )
    .replace(
        "  outputFilePatterns:",
        &format!("  parameters: [[\"--events=\", \"{events}\"]]\n  outputFilePatterns:"),
    )
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn git_daemon(base: &Path, port: u16) -> Server {
    // `git daemon` would run git-daemon as its child, which a kill would leave serving.
    let exec_path = text(
        &Command::new("git")
            .arg("--exec-path")
            .output()
            .unwrap()
            .stdout,
    );
    let child = Command::new(Path::new(exec_path.trim()).join("git-daemon"))
        .args([
            "--reuseaddr",
            "--export-all",
            "--listen=127.0.0.1",
            &format!("--port={port}"),
            &format!("--base-path={}", base.display()),
        ])
        .arg(base)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("git daemon", Duration::from_secs(10), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    Server(child)
}

/// `cascade run -q` once over the repository at `url`, its definitions under `prod/`.
fn run_from_git(state: &str, url: &str) -> Command {
    let mut run = Command::new(cascade_bin());
    run.args([
        "run", "-q", "--state", state, "--git", url, "--path", "prod",
    ])
    .current_dir(root());
    run
}

fn controller(state: &str, args: &[&str]) -> Server {
    let child = Command::new(cascade_bin())
        .args(["run", "--watch", "-q", "--state", state])
        .args(args)
        .current_dir(root())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(Path::new(state).with_extension("stderr")).unwrap())
        .spawn()
        .unwrap();
    Server(child)
}

fn submissions(state: &str) -> Vec<serde_json::Value> {
    status_now(state)["submissions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The command line `cascade plan --base --head` predicts for stage `exp/gen` after the
/// change.
fn predicted(work: &Path, base: &str, head: &str) -> String {
    let out = cascade(&[
        "plan",
        "--repo",
        work.to_str().unwrap(),
        "--base",
        base,
        "--head",
        head,
        "--path",
        "prod",
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let review: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let stage = review["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == "exp/gen")
        .unwrap_or_else(|| panic!("no impact on exp/gen: {review}"));
    let relaunch = stage["effects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["effect"] == "relaunches")
        .unwrap_or_else(|| panic!("no relaunch: {stage}"));
    relaunch["after"].as_str().unwrap().to_string()
}

#[test]
fn git_daemon_pushes_are_applied_bad_commits_are_not_and_force_pushes_are_followed() {
    let dir = TempDir::new("gitops-daemon");
    let repos = Repos::new(&dir);
    let first = repos.commit(&campaign(100), "first campaign");
    let port = free_port();
    let _daemon = git_daemon(&repos.served, port);
    let state = dir.join("state").to_str().unwrap().to_string();
    let url = format!("git://127.0.0.1:{port}/campaigns.git");
    let _controller = controller(
        &state,
        &["--git", &url, "--path", "prod", "--interval", "300ms"],
    );
    // Pushed: launched, under that commit.
    wait_for("the first launch", Duration::from_secs(30), || {
        submissions(&state).len() == 1
    });
    let explain = text(&cascade(&["explain", "gen", "--state", &state]).stdout);
    assert!(explain.contains(&format!("revision: {first}")), "{explain}");

    // An edit: the plan of the pull request says what the next launch will run.
    let second = repos.commit(&campaign(500), "more events");
    let after = predicted(&repos.work, &first, &second);
    wait_for("the edit applied", Duration::from_secs(30), || {
        status_now(&state)["definitions"]["applied"]["commit"] == second.as_str()
    });
    let out = cascade(&["launch", "gen", "--state", &state, "--why", "more events"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    wait_for("the second launch", Duration::from_secs(30), || {
        submissions(&state).len() == 2
    });
    let subs = submissions(&state);
    assert_eq!(
        subs[1]["display"],
        after.as_str(),
        "as `plan --base --head` predicted"
    );
    assert!(
        subs[1]["command"]
            .as_str()
            .unwrap()
            .contains("--events=500")
    );
    assert_eq!(subs[1]["revision"], second.as_str());
    assert_eq!(subs[0]["revision"], first.as_str());

    // An invalid commit is not applied; status names it, with its error.
    let bad = repos.commit("apiVersion: cascade.dev/v1alpha1\nkind: JobType\nmetadata: {name: job, namespace: exp}\nspec: {launchScript: 3, colour: red}\n", "broken");
    wait_for("the bad commit refused", Duration::from_secs(30), || {
        status_now(&state)["definitions"]["problem"]["commit"] == bad.as_str()
    });
    let status = status_now(&state);
    assert_eq!(status["definitions"]["applied"]["commit"], second.as_str());
    assert_eq!(status["definitions"]["problem"]["state"], "rejected");
    let errors = status["definitions"]["problem"]["detail"].as_str().unwrap();
    assert!(errors.contains("prod/campaign.yaml:4"), "located: {errors}");
    let text_status = text(&cascade(&["status", "--state", &state]).stdout);
    assert!(
        text_status.contains(&format!("commit {bad} was not applied")),
        "{text_status}"
    );

    // A force-push back to the first commit: the branch as it is now is what applies.
    git(&repos.work, &["reset", "-q", "--hard", &first]);
    git(&repos.work, &["push", "-q", "--force", "origin", "main"]);
    wait_for("the force-push applied", Duration::from_secs(30), || {
        status_now(&state)["definitions"]["applied"]["commit"] == first.as_str()
    });

    // The branch deleted: nothing changes until it comes back.
    git(&repos.work, &["push", "-q", "origin", "--delete", "main"]);
    wait_for("the deletion seen", Duration::from_secs(30), || {
        status_now(&state)["definitions"]["problem"]["state"] == "missing"
    });
    assert_eq!(
        status_now(&state)["definitions"]["applied"]["commit"],
        first.as_str()
    );
    assert_eq!(submissions(&state).len(), 2, "nothing launched or lost");
}

/// A minimal CGI host for `git http-backend` (smart HTTP), one request per connection.
fn serve_git_http(root: PathBuf) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let root = root.clone();
            std::thread::spawn(move || {
                let _ = cgi(stream, &root);
            });
        }
    });
    port
}

fn cgi(stream: TcpStream, root: &Path) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if let Some(n) = header("content-length").and_then(|n| n.parse::<usize>().ok()) {
        body.resize(n, 0);
        reader.read_exact(&mut body)?;
    } else if header("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    let mut child = Command::new("git")
        .arg("http-backend")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", method)
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("CONTENT_TYPE", header("content-type").unwrap_or_default())
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("GIT_PROTOCOL", header("git-protocol").unwrap_or_default())
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    child.stdin.take().unwrap().write_all(&body)?;
    let out = child.wait_with_output()?;
    let split = out
        .stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| {
            out.stdout
                .windows(2)
                .position(|w| w == b"\n\n")
                .map(|i| (i, 2))
        });
    let (head, content) = match split {
        Some((i, n)) => (&out.stdout[..i], &out.stdout[i + n..]),
        None => (&out.stdout[..0], &out.stdout[..]),
    };
    let head = String::from_utf8_lossy(head);
    let status = head
        .lines()
        .find_map(|l| l.strip_prefix("Status:"))
        .map_or("200 OK".to_string(), |s| s.trim().to_string());
    let mut w = stream;
    write!(w, "HTTP/1.1 {status}\r\n")?;
    for l in head.lines().filter(|l| !l.starts_with("Status:")) {
        write!(w, "{l}\r\n")?;
    }
    write!(
        w,
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        content.len()
    )?;
    w.write_all(content)?;
    w.flush()
}

/// POSTs a push event to the controller's webhook; the HTTP status it answered.
fn post_webhook(port: u16, headers: &[(&str, &str)], body: &str) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut request = format!(
        "POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    // A server refusing a body that is too large may answer and close before reading it all.
    let _ = s.write_all(request.as_bytes());
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[test]
fn smart_http_with_a_webhook_fetches_at_once_and_refuses_bad_signatures() {
    let dir = TempDir::new("gitops-http");
    let repos = Repos::new(&dir);
    repos.commit(&campaign(100), "first campaign");
    let http = serve_git_http(repos.served.clone());
    let hook = free_port();
    let secret = "It's a Secret to Everybody";
    std::fs::write(dir.join("secret"), secret).unwrap();
    let state = dir.join("state").to_str().unwrap().to_string();
    let url = format!("http://127.0.0.1:{http}/campaigns.git");
    // Polling once an hour: only the webhook can bring a push in time.
    let listen = format!("127.0.0.1:{hook}");
    let _controller = controller(
        &state,
        &[
            "--git",
            &url,
            "--path",
            "prod",
            "--interval",
            "1h",
            "--listen",
            &listen,
            "--webhook-secret-file",
            dir.join("secret").to_str().unwrap(),
        ],
    );
    wait_for("the first launch", Duration::from_secs(30), || {
        submissions(&state).len() == 1
    });
    let second = repos.commit(
        &campaign(100).replace("name: gen,", "name: gen2,"),
        "a second stage",
    );
    let body = format!(r#"{{"ref":"refs/heads/main","after":"{second}"}}"#);
    // Unsigned, and signed with another secret: refused, and nothing is fetched.
    assert_eq!(
        post_webhook(hook, &[("X-GitHub-Event", "push")], &body),
        401
    );
    let forged = cascade::server::webhook::sign(b"guess", body.as_bytes());
    assert_eq!(
        post_webhook(
            hook,
            &[("X-GitHub-Event", "push"), ("X-Hub-Signature-256", &forged)],
            &body
        ),
        401
    );
    let ping = cascade::server::webhook::sign(secret.as_bytes(), b"{}");
    assert_eq!(
        post_webhook(
            hook,
            &[("X-GitHub-Event", "ping"), ("X-Hub-Signature-256", &ping)],
            "{}"
        ),
        200
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_ne!(
        status_now(&state)["definitions"]["applied"]["commit"],
        second.as_str(),
        "a refused webhook fetches nothing"
    );
    let signed = cascade::server::webhook::sign(secret.as_bytes(), body.as_bytes());
    assert_eq!(
        post_webhook(
            hook,
            &[("X-GitHub-Event", "push"), ("X-Hub-Signature-256", &signed)],
            &body
        ),
        202
    );
    wait_for("the pushed stage launched", Duration::from_secs(10), || {
        submissions(&state)
            .iter()
            .any(|s| s["submission"]["stage"]["name"] == "gen2")
    });
    let big = "x".repeat(2 * 1024 * 1024);
    assert_eq!(post_webhook(hook, &[("X-GitHub-Event", "push")], &big), 413);
    let log = std::fs::read_to_string(Path::new(&state).with_extension("stderr")).unwrap();
    assert!(log.contains("webhook refused"), "{log}");
    assert!(
        !log.contains("refs/heads/main"),
        "bodies are never logged: {log}"
    );
}

/// Two campaigns whose generators run a long job: `keep` lets removed work finish, `stop`
/// kills it.
fn two_campaigns(with_stages: bool) -> String {
    let mut yaml = String::from(
        r#"apiVersion: cascade.dev/v1alpha1
kind: LoginSetup
metadata: {name: here, namespace: exp}
spec: {host: localhost, account: prod}
---
apiVersion: cascade.dev/v1alpha1
kind: JobType
metadata: {name: long, namespace: exp}
spec:
  launchScript: cascade submit --jobs 1 -- sleep 60
  outputFilePatterns: ["%.out"]
"#,
    );
    for (name, policy) in [("keep", "finish"), ("stop", "kill")] {
        yaml.push_str(&format!(
            "---\napiVersion: cascade.dev/v1alpha1\nkind: Campaign\nmetadata: {{name: {name}, namespace: exp}}\nspec:\n  removalPolicy: {policy}\n  defaults: {{loginSetup: here, jobType: long, softwareVersion: v1, completion: {{type: complete, percent: 100}}}}\n"
        ));
        if with_stages {
            yaml.push_str(&format!(
                "---\napiVersion: cascade.dev/v1alpha1\nkind: CampaignStage\nmetadata: {{name: {name}-gen, namespace: exp}}\nspec: {{campaign: {name}, type: generator}}\n"
            ));
        }
    }
    yaml
}

#[test]
fn stages_removed_from_git_launch_nothing_more_and_their_work_finishes_or_is_killed_as_declared() {
    let dir = TempDir::new("gitops-removal");
    let repos = Repos::new(&dir);
    let first = repos.commit(&two_campaigns(true), "two campaigns");
    let state = dir.join("state").to_str().unwrap().to_string();
    let url = format!("file://{}", repos.served.join("campaigns.git").display());
    let _controller = controller(
        &state,
        &["--git", &url, "--path", "prod", "--interval", "300ms"],
    );
    let running = |stage: &str| {
        submissions(&state).iter().any(|s| {
            s["submission"]["stage"]["name"] == stage
                && s["submission"]["jobs"]["running"].as_u64() == Some(1)
        })
    };
    wait_for("both jobs running", Duration::from_secs(30), || {
        running("keep-gen") && running("stop-gen")
    });
    // The plan of the removal says what will happen to each.
    let second = repos.commit(&two_campaigns(false), "remove both stages");
    let out = cascade(&[
        "plan",
        "--repo",
        repos.work.to_str().unwrap(),
        "--base",
        &first,
        "--head",
        &second,
        "--path",
        "prod",
        "--state",
        &state,
    ]);
    let plan = text(&out.stdout);
    assert!(
        plan.contains("run to their end (removalPolicy: finish)")
            && plan.contains("are killed (removalPolicy: kill)")
            && plan.contains("open submissions: exp.stop-gen.1"),
        "{plan}"
    );
    wait_for("the removal applied", Duration::from_secs(30), || {
        status_now(&state)["definitions"]["applied"]["commit"] == second.as_str()
    });
    let find = |stage: &str| {
        submissions(&state)
            .into_iter()
            .find(|s| s["submission"]["stage"]["name"] == stage)
            .unwrap()
    };
    wait_for("the killed job removed", Duration::from_secs(30), || {
        find("stop-gen")["submission"]["jobs"]["removed"].as_u64() == Some(1)
    });
    assert_eq!(find("stop-gen")["submission"]["status"], "Removed");
    let keep = find("keep-gen");
    assert_eq!(
        keep["submission"]["jobs"]["running"].as_u64(),
        Some(1),
        "{keep}"
    );
    assert_ne!(keep["submission"]["status"], "Removed");
    let history = text(&cascade(&["status", "--state", &state, "--history"]).stdout);
    assert!(
        history.contains("removed from the definitions at"),
        "{history}"
    );
    let out = cascade(&[
        "kill",
        "exp.keep-gen.1",
        "--state",
        &state,
        "--why",
        "test over",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// Every `cascade` command line in the shipped CI templates: their YAML parses, and each
/// option they pass is one `cascade` accepts (its `--help` lists it).
#[test]
fn ci_templates_parse_and_call_cascade_with_options_it_has() {
    let files = [
        "examples/ci/.github/workflows/cascade.yml",
        "examples/ci/.gitlab-ci.yml",
    ];
    let mut commands = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(root().join(f)).unwrap();
        let doc: serde_json::Value =
            serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{f}: {e}"));
        fn scripts(v: &serde_json::Value, out: &mut Vec<String>) {
            match v {
                serde_json::Value::String(s) => out.push(s.clone()),
                serde_json::Value::Array(a) => a.iter().for_each(|x| scripts(x, out)),
                serde_json::Value::Object(o) => o.values().for_each(|x| scripts(x, out)),
                _ => {}
            }
        }
        let mut strings = Vec::new();
        scripts(&doc, &mut strings);
        let joined = strings.join("\n").replace("\\\n", " ");
        commands.extend(
            joined
                .lines()
                .map(str::trim)
                .filter(|l| l.starts_with("cascade "))
                .map(String::from),
        );
    }
    assert!(
        commands
            .iter()
            .any(|c| c.starts_with("cascade validate --format github"))
    );
    assert!(
        commands
            .iter()
            .filter(|c| c.starts_with("cascade plan --repo"))
            .count()
            == 2
    );
    for command in &commands {
        let words: Vec<&str> = command.split_whitespace().collect();
        let help = text(&cascade(&[words[1], "--help"]).stdout);
        for flag in words.iter().filter(|w| w.starts_with("--")) {
            assert!(
                help.contains(flag),
                "`{command}`: `cascade {}` has no {flag}",
                words[1]
            );
        }
    }
}

/// A CGI host that asks for HTTP basic credentials (`user:password`) before serving git.
fn serve_git_http_with_password(root: PathBuf, user: &str, password: &str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let expected = format!("Basic {}", base64(&format!("{user}:{password}")));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (root, expected) = (root.clone(), expected.clone());
            std::thread::spawn(move || {
                let mut peek = [0u8; 8192];
                let n = stream.peek(&mut peek).unwrap_or(0);
                let head = String::from_utf8_lossy(&peek[..n]).to_string();
                let authorized = head.lines().any(|l| {
                    l.to_ascii_lowercase().starts_with("authorization:")
                        && l[14..].trim() == expected
                });
                if authorized {
                    let _ = cgi(stream, &root);
                } else {
                    let mut s = stream;
                    let _ = s.write_all(b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                }
            });
        }
    });
    port
}

fn base64(text: &str) -> String {
    const TABLE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn credentials_open_a_private_repository_and_never_show() {
    let dir = TempDir::new("gitops-auth");
    let repos = Repos::new(&dir);
    let first = repos.commit(&campaign(100), "first campaign");
    let password = "hunter2-s3cret";
    let http = serve_git_http_with_password(repos.served.clone(), "bot", password);
    let url = format!("http://127.0.0.1:{http}/campaigns.git");
    // Without credentials: refused, said, nothing applied.
    let state = dir.join("nocreds").to_str().unwrap().to_string();
    let out = run_from_git(&state, &url).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("authentication"),
        "{}",
        text(&out.stderr)
    );
    // With them (from the environment): applied and run to the end.
    let state = dir.join("state").to_str().unwrap().to_string();
    let out = run_from_git(&state, &url)
        .env("CASCADE_GIT_USERNAME", "bot")
        .env("CASCADE_GIT_PASSWORD", password)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        status_now(&state)["definitions"]["applied"]["commit"],
        first.as_str()
    );
    // And written into the URL: shown without them.
    let inline = format!("http://bot:{password}@127.0.0.1:1/campaigns.git");
    let out = Command::new(cascade_bin())
        .args([
            "run",
            "-q",
            "--state",
            dir.join("inline").to_str().unwrap(),
            "--git",
            &inline,
        ])
        .current_dir(root())
        .output()
        .unwrap();
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(!out.status.success());
    assert!(
        said.contains("http://***@127.0.0.1:1/campaigns.git"),
        "{said}"
    );
    for state in ["nocreds", "state", "inline"] {
        let status = text(
            &cascade(&[
                "status",
                "--state",
                dir.join(state).to_str().unwrap(),
                "--format",
                "json",
            ])
            .stdout,
        );
        assert!(!status.contains(password), "{state}: {status}");
    }
    assert!(!said.contains(password), "{said}");
}

#[test]
fn a_repository_that_cannot_be_fetched_disturbs_nothing_and_work_resumes_when_it_returns() {
    let dir = TempDir::new("gitops-outage");
    let repos = Repos::new(&dir);
    repos.commit(&campaign(100), "first campaign");
    let port = free_port();
    let daemon = git_daemon(&repos.served, port);
    let state = dir.join("state").to_str().unwrap().to_string();
    let url = format!("git://127.0.0.1:{port}/campaigns.git");
    let _controller = controller(
        &state,
        &["--git", &url, "--path", "prod", "--interval", "200ms"],
    );
    wait_for("the first launch", Duration::from_secs(30), || {
        submissions(&state).len() == 1
    });
    drop(daemon);
    wait_for("the outage said", Duration::from_secs(30), || {
        status_now(&state)["definitions"]["problem"]["state"] == "unreachable"
    });
    let text_status = text(&cascade(&["status", "--state", &state]).stdout);
    assert!(text_status.contains("cannot be fetched"), "{text_status}");
    // Work goes on meanwhile: an operator's launch runs under the revision in force.
    let out = cascade(&[
        "launch",
        "gen",
        "--state",
        &state,
        "--why",
        "during the outage",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    wait_for(
        "a launch during the outage",
        Duration::from_secs(30),
        || submissions(&state).len() == 2,
    );
    // Back, with a new stage pushed meanwhile: it is fetched (after the back-off) and applied.
    let second = repos.commit(
        &campaign(100).replace("name: gen,", "name: gen2,"),
        "a second stage",
    );
    let _daemon = git_daemon(&repos.served, port);
    wait_for("the new revision applied", Duration::from_secs(60), || {
        status_now(&state)["definitions"]["applied"]["commit"] == second.as_str()
    });
    assert!(status_now(&state)["definitions"]["problem"].is_null());
}

#[test]
fn the_pull_request_that_adds_the_first_campaign_plans_its_launches() {
    let dir = TempDir::new("gitops-first");
    let repos = Repos::new(&dir);
    std::fs::write(repos.work.join("README"), "campaigns\n").unwrap();
    git(&repos.work, &["add", "-A"]);
    git(&repos.work, &["commit", "-q", "-m", "empty"]);
    let empty = git(&repos.work, &["rev-parse", "HEAD"]);
    let first = repos.commit(&campaign(100), "first campaign");
    let out = cascade(&[
        "plan",
        "--repo",
        repos.work.to_str().unwrap(),
        "--base",
        &empty,
        "--head",
        &first,
        "--path",
        "prod",
        "--exit-code",
    ]);
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{said}{}", text(&out.stderr));
    assert!(
        said.contains("exp/gen") && said.contains("new stage: launches now"),
        "{said}"
    );
    // A revision that does not exist is an error, not an empty production.
    let out = cascade(&[
        "plan",
        "--repo",
        repos.work.to_str().unwrap(),
        "--base",
        "no-such-branch",
        "--head",
        &first,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no revision `no-such-branch`"),
        "{}",
        text(&out.stderr)
    );
}

/// Commit statuses on the revision the controller applied, as GitHub's and GitLab's APIs take
/// them, sent to a receiver on loopback standing in for both (their real servers are not
/// reachable from here).
#[test]
fn commit_statuses_are_set_on_the_applied_revision() {
    let dir = TempDir::new("gitops-statuses");
    let receiver = crate::notify::Receiver::start(&[201]);
    let token = dir.join("forge-token");
    std::fs::write(&token, "forge-t0ken\n").unwrap();
    let repos = Repos::new(&dir);
    let mut yaml = campaign(100);
    for (name, kind) in [("gh", "github"), ("gl", "gitlab")] {
        yaml.push_str(&format!(
            "---\napiVersion: cascade.dev/v1alpha1\nkind: Notifier\nmetadata: {{name: {name}, namespace: exp}}\nspec:\n  type: {kind}\n  address: http://127.0.0.1:{}/\n  repository: org/prod\n  tokenFile: {}\n  events: [stageCompleted, campaignSucceeded]\n",
            receiver.port,
            token.display()
        ));
    }
    let commit = repos.commit(&yaml, "a campaign and its commit statuses");
    let port = free_port();
    let _daemon = git_daemon(&repos.served, port);
    let state = dir.join("state").to_str().unwrap().to_string();
    let url = format!("git://127.0.0.1:{port}/campaigns.git");
    let out = run_from_git(&state, &url).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let got = receiver.received();
    let mut seen: Vec<(String, String)> = got
        .iter()
        .map(|r| {
            let state = r.body["state"].as_str().unwrap_or("?").to_string();
            (r.path.clone(), state)
        })
        .collect();
    seen.sort();
    let github = format!("/repos/org/prod/statuses/{commit}");
    let gitlab = format!("/api/v4/projects/org%2Fprod/statuses/{commit}");
    let mut expected = vec![
        (github.clone(), "pending".to_string()),
        (github.clone(), "success".to_string()),
        (gitlab.clone(), "running".to_string()),
        (gitlab.clone(), "success".to_string()),
    ];
    expected.sort();
    assert_eq!(seen, expected, "{got:#?}");
    for r in &got {
        let headers = r.headers.to_ascii_lowercase();
        if r.path == github {
            assert!(
                headers.contains("authorization: bearer forge-t0ken"),
                "{headers}"
            );
            assert_eq!(r.body["context"], "cascade/exp/c");
        } else {
            assert!(headers.contains("private-token: forge-t0ken"), "{headers}");
            assert_eq!(r.body["name"], "cascade/exp/c");
        }
        assert!(
            r.body["description"]
                .as_str()
                .is_some_and(|d| !d.is_empty())
        );
    }
    assert_eq!(status_json(&state)["notifications"]["sent"], 4);
}
