//! `cascade controller --kube` against a fake Kubernetes API server.
//!
//! No Kubernetes API server can be installed on these machines, so the API is the in-process
//! fake of `cascade_tests::fake_apiserver` (real HTTP on loopback, the API's JSON shapes);
//! everything else is real: the `cascade` binary, its `kube` client and watchers, the ledger,
//! the local batch system and the jobs.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cascade_tests::fake_apiserver::FakeApiServer;
use serde_json::{Value, json};

use crate::support::{TempDir, cascade_bin, finish, root};

/// The objects of a multi-document YAML text, as JSON.
fn objects(yaml: &str) -> Vec<Value> {
    yaml.split("\n---")
        .map(|doc| doc.trim_start_matches('-').trim())
        .filter(|doc| doc.lines().any(|l| l.starts_with("kind:")))
        .map(|doc| serde_saphyr::from_str::<Value>(doc).unwrap_or_else(|e| panic!("{e}: {doc}")))
        .collect()
}

/// The EVE example's resources, with the job script at its absolute path (in a cluster the
/// scripts are in the controller's image; there is no checkout to be relative to).
fn eve_mc() -> Vec<Value> {
    let script = root().join("examples/bin/eve.sh");
    let mut all = Vec::new();
    for file in ["setup.yaml", "campaign.yaml"] {
        let text = std::fs::read_to_string(root().join("examples/eve_mc").join(file)).unwrap();
        let text = text.replace("../bin/eve.sh", &script.display().to_string());
        all.extend(objects(&text));
    }
    all
}

struct Controller {
    child: Option<Child>,
    state: TempDir,
    _config: TempDir,
}

impl Controller {
    fn start(api: &FakeApiServer, name: &str, extra: &[&str]) -> Controller {
        let config = TempDir::new(&format!("{name}-kubeconfig"));
        let kubeconfig = format!("{}/config", config.path());
        std::fs::write(&kubeconfig, api.kubeconfig()).unwrap();
        let state = TempDir::new(name);
        let log = std::fs::File::create(format!("{}/controller.log", config.path())).unwrap();
        let child = Command::new(cascade_bin())
            .args([
                "controller",
                "--kube",
                "--state",
                state.path(),
                "--identity",
                "replica-a",
            ])
            .args(extra)
            .env("KUBECONFIG", &kubeconfig)
            .env("CASCADE_LOG", "info")
            .current_dir(root())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start the controller");
        Controller {
            child: Some(child),
            state,
            _config: config,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(format!("{}/controller.log", self._config.path()))
            .unwrap_or_default()
    }

    /// Waits for `done`, showing the controller's log if it does not come.
    fn wait(&self, what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
        let start = Instant::now();
        while !done() {
            if start.elapsed() > limit {
                panic!(
                    "timed out waiting for {what}; the controller said:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn submissions(&self) -> Vec<Value> {
        let out =
            crate::support::cascade(&["status", "--state", self.state.path(), "--format", "json"]);
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        doc["submissions"].as_array().cloned().unwrap_or_default()
    }

    /// Stops it (SIGTERM) and returns its exit code and output.
    fn stop(mut self) -> (Option<i32>, String) {
        let child = self.child.take().unwrap();
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let (code, _) = finish(child, Duration::from_secs(20));
        (code, self.log())
    }

    /// Waits for it to exit by itself.
    fn exit(mut self, limit: Duration) -> (Option<i32>, String) {
        let (code, _) = finish(self.child.take().unwrap(), limit);
        (code, self.log())
    }
}

impl Drop for Controller {
    /// Stops the controller, and the jobs it left running (a lost Lease leaves them to the
    /// next leader; here there is none).
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let open = ["Idle", "Running", "Held"];
        for sub in self.submissions() {
            let id = sub["submission"]["id"].as_str().unwrap_or_default();
            if open.iter().any(|s| sub["submission"]["status"] == *s) {
                crate::support::cascade(&[
                    "kill",
                    id,
                    "--state",
                    self.state.path(),
                    "--why",
                    "test over",
                ]);
            }
        }
    }
}

fn condition<'v>(object: &'v Value, kind: &str) -> &'v Value {
    object["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == kind))
        .unwrap_or(&Value::Null)
}

#[test]
fn fake_apiserver_campaign_converges_with_status_finalizer_owners_and_events() {
    let api = FakeApiServer::start();
    for object in eve_mc() {
        api.apply(object);
    }
    let controller = Controller::start(&api, "kube-converge", &[]);
    controller.wait("the campaign to succeed", Duration::from_secs(120), || {
        api.get("campaigns", "eve", "eve-mc")
            .is_some_and(|c| condition(&c, "Succeeded")["status"] == "True")
    });
    let campaign = api.get("campaigns", "eve", "eve-mc").unwrap();
    assert_eq!(campaign["status"]["progressPercent"], 100.0);
    assert_eq!(
        campaign["metadata"]["finalizers"],
        json!(["cascade.dev/removal-policy"])
    );
    let uid = campaign["metadata"]["uid"].clone();
    let stages = api.list("campaignstages");
    assert_eq!(stages.len(), 5);
    for stage in &stages {
        let name = &stage["metadata"]["name"];
        assert_eq!(stage["status"]["phase"], "Completed", "{name}: {stage}");
        assert_eq!(condition(stage, "Ready")["status"], "True", "{name}");
        assert_eq!(condition(stage, "Degraded")["status"], "False", "{name}");
        assert_eq!(
            stage["status"]["observedGeneration"], stage["metadata"]["generation"],
            "{name}"
        );
        assert!(
            stage["status"]["completionPercent"].as_f64().unwrap() >= 90.0,
            "{name}"
        );
        let owners = stage["metadata"]["ownerReferences"].as_array().unwrap();
        assert!(
            owners
                .iter()
                .any(|o| o["uid"] == uid && o["kind"] == "Campaign"),
            "{name}"
        );
        assert!(
            stage["status"]["submissions"]["Located"].as_u64().unwrap() >= 1,
            "{name}: {}",
            stage["status"]
        );
    }
    for kind in ["loginsetups", "jobtypes"] {
        for object in api.list(kind) {
            assert_eq!(condition(&object, "Ready")["reason"], "Valid");
        }
    }
    // Status through server-side apply on the status subresource, by the field manager.
    let requests = api.requests();
    let status_patches: Vec<_> = requests
        .iter()
        .filter(|r| r.method == "PATCH" && r.path.ends_with("/status"))
        .collect();
    assert!(!status_patches.is_empty());
    for r in &status_patches {
        assert!(
            r.content_type.starts_with("application/apply-patch"),
            "{r:?}"
        );
        assert!(
            r.query.contains("fieldManager=cascade") && r.query.contains("force=true"),
            "{r:?}"
        );
    }
    // Events for the transitions.
    let events: Vec<_> = requests
        .iter()
        .filter(|r| r.method == "POST" && r.path.contains("/events"))
        .map(|r| r.body["reason"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(events.iter().any(|e| e == "StageCompleted"), "{events:?}");
    assert!(events.iter().any(|e| e == "Launched"), "{events:?}");

    // Settled: nothing more is written while nothing changes.
    std::thread::sleep(Duration::from_secs(3));
    let before = api
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH")
        .count();
    std::thread::sleep(Duration::from_secs(3));
    let after = api
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH")
        .count();
    assert_eq!(before, after, "a settled controller keeps patching");

    // The API server forgets its history: the watchers get 410 Gone, list again, and still
    // see what comes next. A write that loses a race (409) is made again.
    api.forget_history();
    api.conflict_once("/apis/cascade.dev/v1alpha1/namespaces/eve/campaignstages/late");
    let mut late = objects(
        "apiVersion: cascade.dev/v1alpha1\nkind: CampaignStage\nmetadata: {name: late, namespace: eve}\nspec: {campaign: eve-mc, type: generator, jobType: eve-gen, completion: {type: complete, percent: 100}}\n",
    );
    api.apply(late.remove(0));
    controller.wait(
        "the late stage to complete",
        Duration::from_secs(60),
        || {
            api.get("campaignstages", "eve", "late").is_some_and(|s| {
                s["status"]["phase"] == "Completed" && s["metadata"]["ownerReferences"].is_array()
            })
        },
    );
    let gone = api
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.query.contains("watch=true"))
        .count();
    assert!(
        gone >= 10,
        "the watchers did not watch again after 410 ({gone} watches)"
    );
    let (code, out) = controller.stop();
    assert!(code.is_some(), "{out}");
}

/// A campaign `exp/c` with one generator stage whose jobs run `script`, from the shared
/// fixture, with the given extra campaign spec (a YAML flow mapping's entries).
fn generator(script: &str, campaign_spec: &str) -> Vec<Value> {
    let text = crate::support::generator_campaign(script, "{}").replace(
        "spec:\n  keywords: {}",
        &format!("spec:\n  keywords: {{}}\n  {campaign_spec}"),
    );
    objects(&text)
}

#[test]
fn fake_apiserver_invalid_object_gets_its_located_message_and_the_rest_goes_on() {
    let api = FakeApiServer::start();
    for object in generator(
        "cascade submit --jobs 1 -- sh -c 'touch $CASCADE_JOB.out'",
        "",
    ) {
        api.apply(object);
    }
    // A second stage with a misspelt field: refused alone.
    let mut bad = objects(
        "apiVersion: cascade.dev/v1alpha1\nkind: CampaignStage\nmetadata: {name: typo, namespace: exp}\nspec:\n  campaign: c\n  type: generator\n  splt: {type: nfiles, n: 2}\n",
    );
    api.apply(bad.remove(0));
    let controller = Controller::start(&api, "kube-invalid", &[]);
    controller.wait(
        "the invalid stage's condition",
        Duration::from_secs(60),
        || {
            api.get("campaignstages", "exp", "typo")
                .is_some_and(|s| condition(&s, "Ready")["reason"] == "Invalid")
        },
    );
    let typo = api.get("campaignstages", "exp", "typo").unwrap();
    let message = condition(&typo, "Ready")["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.starts_with("exp/CampaignStage/typo.yaml:") && message.contains("splt"),
        "{message}"
    );
    assert_eq!(typo["status"]["phase"], "Invalid");
    controller.wait(
        "the valid stage to complete",
        Duration::from_secs(60),
        || {
            api.get("campaignstages", "exp", "gen")
                .is_some_and(|s| s["status"]["phase"] == "Completed")
        },
    );
    // Fixed: it is taken up.
    let mut fixed = objects(
        "apiVersion: cascade.dev/v1alpha1\nkind: CampaignStage\nmetadata: {name: typo, namespace: exp}\nspec: {campaign: c, type: generator}\n",
    );
    api.apply(fixed.remove(0));
    controller.wait(
        "the fixed stage to complete",
        Duration::from_secs(60),
        || {
            api.get("campaignstages", "exp", "typo").is_some_and(|s| {
                s["status"]["phase"] == "Completed" && s["status"]["observedGeneration"] == 2
            })
        },
    );
    let (code, out) = controller.stop();
    assert!(code.is_some(), "{out}");
}

#[test]
fn fake_apiserver_pause_in_the_spec_then_delete_kills_through_the_finalizer() {
    let api = FakeApiServer::start();
    // Jobs that run until killed; the campaign kills its open submissions when removed.
    let objects = generator(
        "cascade submit --jobs 1 -- sleep 600",
        "removalPolicy: kill\n  paused: true",
    );
    for object in objects.clone() {
        api.apply(object);
    }
    let controller = Controller::start(&api, "kube-delete", &[]);
    controller.wait(
        "the paused stage's condition",
        Duration::from_secs(60),
        || {
            api.get("campaignstages", "exp", "gen")
                .is_some_and(|s| condition(&s, "Paused")["status"] == "True")
        },
    );
    assert!(
        controller.submissions().is_empty(),
        "a paused campaign launched"
    );
    // Unpaused through the spec: it launches.
    let mut campaign = objects
        .iter()
        .find(|o| o["kind"] == "Campaign")
        .unwrap()
        .clone();
    campaign["spec"]["paused"] = json!(false);
    api.apply(campaign);
    controller.wait("a running submission", Duration::from_secs(60), || {
        controller
            .submissions()
            .iter()
            .any(|s| s["submission"]["status"] == "Running")
    });
    controller.wait("the campaign's finalizer", Duration::from_secs(10), || {
        api.get("campaigns", "exp", "c")
            .is_some_and(|c| c["metadata"]["finalizers"] == json!(["cascade.dev/removal-policy"]))
    });
    // Deleted: the finalizer holds it until its open submissions are killed, then it goes,
    // and its stage with it (owner reference).
    api.delete("campaigns", "exp", "c");
    controller.wait("the campaign to go", Duration::from_secs(60), || {
        api.get("campaigns", "exp", "c").is_none()
    });
    let subs = controller.submissions();
    assert!(!subs.is_empty());
    assert!(
        subs.iter().all(|s| s["submission"]["status"] == "Removed"),
        "the deleted campaign's submissions were not killed first: {subs:?}"
    );
    controller.wait("its stage to go", Duration::from_secs(10), || {
        api.get("campaignstages", "exp", "gen").is_none()
    });
    let (code, out) = controller.stop();
    assert!(code.is_some(), "{out}");
}

fn lease(holder: &str, renewed: &str) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "cascade-controller", "namespace": "cascade"},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15, "renewTime": renewed},
    })
}

/// Now in RFC 3339 with microseconds, as a Lease's times are written (from `date`: this test
/// crate has no date library).
fn now_micro() -> String {
    let out = Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%S.000000Z"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn fake_apiserver_only_the_lease_holder_launches_and_a_lost_lease_stops_it() {
    let api = FakeApiServer::start();
    for object in generator("cascade submit --jobs 1 -- sleep 600", "") {
        api.apply(object);
    }
    // Another replica holds the Lease, and renews it.
    api.apply(lease("replica-b", &now_micro()));
    let controller = Controller::start(
        &api,
        "kube-lease",
        &["--leader-election", "--lease-namespace", "cascade"],
    );
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(4) {
        api.apply(lease("replica-b", &now_micro()));
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(controller.submissions().is_empty(), "a follower launched");
    assert!(
        api.requests()
            .iter()
            .all(|r| !(r.method == "PATCH" && r.path.ends_with("/status"))),
        "a follower wrote status"
    );
    // The other replica goes (stops renewing, its Lease expires): this one takes over.
    controller.wait(
        "this replica to take the Lease",
        Duration::from_secs(40),
        || {
            api.get("leases", "cascade", "cascade-controller")
                .is_some_and(|l| l["spec"]["holderIdentity"] == "replica-a")
        },
    );
    controller.wait(
        "a launch by the new leader",
        Duration::from_secs(30),
        || !controller.submissions().is_empty(),
    );
    // The Lease is taken away (as by a replica that saw it expire during a pause): this one
    // stops at its next renewal rather than launch beside the other.
    let taken = Instant::now();
    while api
        .get("leases", "cascade", "cascade-controller")
        .is_some_and(|l| l["spec"]["holderIdentity"] != "replica-b")
        || taken.elapsed() < Duration::from_secs(1)
    {
        api.apply(lease("replica-b", &now_micro()));
        std::thread::sleep(Duration::from_millis(100));
        assert!(taken.elapsed() < Duration::from_secs(20));
    }
    let keep_renewing = std::thread::spawn({
        let api = api.clone();
        move || {
            for _ in 0..100 {
                api.apply(lease("replica-b", &now_micro()));
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    });
    let (code, out) = controller.exit(Duration::from_secs(30));
    assert_ne!(code, Some(0), "{out}");
    assert!(out.contains("no longer holding the leader Lease"), "{out}");
    drop(keep_renewing);
}

/// A self-signed certificate for 127.0.0.1 (`cert.pem`, `key.pem`) in `dir`, made by the
/// `openssl` command as the chart's `genSelfSignedCert` would.
fn self_signed(dir: &str, name: &str) {
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", &format!("/CN={name}")])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .args(["-keyout", &format!("{dir}/key.pem")])
        .args(["-out", &format!("{dir}/cert.pem")])
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Sends an AdmissionReview over HTTPS the way the API server does (curl trusting `ca`);
/// the `response` of the review that comes back.
fn admit(port: u16, ca: &str, operation: &str, object: &Value) -> Value {
    let kind = object["kind"].as_str().unwrap_or_default();
    let review = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "0b5d6c1e-admission",
            "kind": {"group": "cascade.dev", "version": "v1alpha1", "kind": kind},
            "resource": {"group": "cascade.dev", "version": "v1alpha1", "resource": format!("{}s", kind.to_lowercase())},
            "name": object["metadata"]["name"],
            "namespace": object["metadata"]["namespace"],
            "operation": operation,
            "userInfo": {"username": "physicist"},
            "object": if operation == "DELETE" { Value::Null } else { object.clone() },
            "oldObject": if operation == "CREATE" { Value::Null } else { object.clone() },
            "dryRun": false
        }
    });
    let mut child = Command::new("curl")
        .args([
            "-sS",
            "--fail-with-body",
            "--cacert",
            ca,
            "-H",
            "Content-Type: application/json",
        ])
        .args(["--data-binary", "@-"])
        .arg(format!("https://127.0.0.1:{port}/validate"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run curl");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(review.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "curl: {}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    let answer: Value = serde_json::from_slice(&out.stdout).expect("a JSON review");
    assert_eq!(answer["kind"], "AdmissionReview", "{answer}");
    assert_eq!(answer["response"]["uid"], "0b5d6c1e-admission", "{answer}");
    answer["response"].clone()
}

/// The review refused the object with a message containing `needle`.
fn refused_saying(answer: &Value, needle: &str) {
    assert_eq!(answer["allowed"], false, "{answer}");
    let message = answer["status"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(needle), "{answer}");
}

fn named<'v>(objects: &'v [Value], name: &str) -> &'v Value {
    objects
        .iter()
        .find(|o| o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {name}"))
}

#[test]
fn fake_apiserver_admission_webhook_refuses_invalid_objects_over_tls() {
    let api = FakeApiServer::start();
    let example = eve_mc();
    for object in &example {
        api.apply(object.clone());
    }
    let tls = TempDir::new("admission-tls");
    self_signed(tls.path(), "cascade-webhook");
    let ca = format!("{}/cert.pem", tls.path());
    let port = crate::support::free_port();
    let listen = format!("127.0.0.1:{port}");
    let cert = format!("{}/cert.pem", tls.path());
    let key = format!("{}/key.pem", tls.path());
    let serve = format!("127.0.0.1:{}", crate::support::free_port());
    let controller = Controller::start(
        &api,
        "kube-admission",
        &[
            "--serve",
            &serve,
            "--admission-listen",
            &listen,
            "--admission-cert",
            &cert,
            "--admission-key",
            &key,
        ],
    );
    controller.wait("the webhook to listen", Duration::from_secs(30), || {
        std::net::TcpStream::connect(&listen).is_ok()
    });

    // Every object of the example is admitted, as it is.
    for object in &example {
        let answer = admit(port, &ca, "UPDATE", object);
        assert_eq!(answer["allowed"], true, "{object}: {answer}");
    }
    // A completion percent out of range: refused with the message `cascade validate` prints.
    let mut stage = named(&example, "mc-g4").clone();
    stage["spec"]["completion"] = json!({"type": "located", "percent": 250});
    let answer = admit(port, &ca, "UPDATE", &stage);
    assert_eq!(answer["allowed"], false, "{answer}");
    let message = answer["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("eve/CampaignStage/mc-g4.yaml:")
            && message.contains("error[invalid-percent]"),
        "{message}"
    );
    // An unknown field: refused.
    let mut campaign = named(&example, "eve-mc").clone();
    campaign["spec"]["stagez"] = json!([]);
    refused_saying(&admit(port, &ca, "CREATE", &campaign), "stagez");
    // A stage closing a dependency cycle with another: refused, naming the cycle.
    let mut gen_stage = named(&example, "mc-gen").clone();
    gen_stage["spec"]["type"] = json!("regular");
    gen_stage["spec"]["dependsOn"] = json!([{"stage": "mc-g4", "filePattern": "%.g4.root"}]);
    refused_saying(&admit(port, &ca, "UPDATE", &gen_stage), "cycle");
    // A new stage whose job type is not applied yet: admitted, with a warning kubectl shows.
    let mut early = named(&example, "mc-gen").clone();
    early["metadata"]["name"] = json!("mc-gen-2");
    early["spec"]["jobType"] = json!("eve-gen-next");
    let answer = admit(port, &ca, "CREATE", &early);
    assert_eq!(answer["allowed"], true, "{answer}");
    let warnings = answer["warnings"].to_string();
    assert!(
        warnings.contains("eve-gen-next") && warnings.contains("unknown-reference"),
        "{answer}"
    );
    // Deleting is never refused.
    let answer = admit(port, &ca, "DELETE", &stage);
    assert_eq!(answer["allowed"], true, "{answer}");
    // The context came from the API server: the namespace's objects were listed.
    assert!(
        api.requests().iter().any(|r| r.method == "GET"
            && r.path == "/apis/cascade.dev/v1alpha1/namespaces/eve/campaignstages"
            && !r.query.contains("watch=true")),
        "the webhook did not read the namespace"
    );
    // TLS only: a plain HTTP request gets no admission answer.
    let plain = Command::new("curl")
        .args(["-sS", "--max-time", "5", "-X", "POST"])
        .arg(format!("http://127.0.0.1:{port}/validate"))
        .output()
        .unwrap();
    assert!(!plain.status.success(), "plain HTTP was answered");
    // A renewed certificate (cert-manager rewrites the Secret) is used without a restart.
    self_signed(tls.path(), "cascade-webhook-renewed");
    let renewed = TempDir::new("admission-renewed");
    std::fs::copy(&ca, format!("{}/ca.pem", renewed.path())).unwrap();
    let answer = admit(
        port,
        &format!("{}/ca.pem", renewed.path()),
        "UPDATE",
        &stage,
    );
    assert_eq!(answer["allowed"], false, "{answer}");
    // The verdicts are counted in the controller's metrics.
    let metrics = Command::new("curl")
        .args(["-sS", "--max-time", "5"])
        .arg(format!("http://{serve}/metrics"))
        .output()
        .unwrap();
    let metrics = String::from_utf8_lossy(&metrics.stdout);
    assert!(
        metrics
            .contains("cascade_admission_reviews_total{kind=\"CampaignStage\",allowed=\"false\"}"),
        "{metrics}"
    );
    let (code, log) = controller.stop();
    assert!(code.is_some(), "{log}");
    assert!(log.contains("admission review"), "{log}");
}

/// A pod of an Indexed Job, as the Job controller makes it and the kubelet reports it.
fn job_pod(job: &str, index: u32, phase: &str, exit: Option<i32>) -> Value {
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("{job}-{index}-x"), "namespace": "batch",
                     "creationTimestamp": "2026-12-06T10:00:00Z",
                     "labels": {"batch.kubernetes.io/job-name": job,
                                "batch.kubernetes.io/job-completion-index": index.to_string()}},
        "spec": {},
        "status": {"phase": phase},
    });
    if let Some(code) = exit {
        pod["status"]["containerStatuses"] = json!([{"name": "job", "state": {"terminated": {"exitCode": code, "reason": "Error"}}}]);
    }
    pod
}

#[test]
fn fake_apiserver_kubernetes_batch_system_runs_a_submission_as_an_indexed_job() {
    // No Job controller or kubelet can run here: the test plays their part (the Job's status
    // and its pods); the `cascade` binary's side is real.
    let api = FakeApiServer::start();
    let defs = TempDir::new("kube-jobs-defs");
    let campaign = crate::support::generator_campaign(
        "cascade submit --jobs 3 --image busybox:1.36 --kube-namespace batch -- sh -c 'echo \"$CASCADE_JOB_INDEX\" > \"$CASCADE_JOB_INDEX.out\"'",
        "{}",
    )
    .replace(
        "  outputFilePatterns: [\"%.out\"]",
        "  outputFilePatterns: [\"%.out\"]\n  batchSystem: kubernetes",
    );
    std::fs::write(format!("{}/campaign.yaml", defs.path()), campaign).unwrap();
    let config = TempDir::new("kube-jobs-config");
    let kubeconfig = format!("{}/config", config.path());
    std::fs::write(&kubeconfig, api.kubeconfig()).unwrap();
    let state = TempDir::new("kube-jobs-state");
    let log = std::fs::File::create(format!("{}/controller.log", config.path())).unwrap();
    let mut controller = Command::new(cascade_bin())
        .args([
            "controller",
            defs.path(),
            "--state",
            state.path(),
            "--batch-poll",
            "200ms",
        ])
        .env("KUBECONFIG", &kubeconfig)
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    // Operator commands reach the same cluster as the controller.
    let operate = |action: &str| {
        let out = Command::new(cascade_bin())
            .args([
                action,
                "exp.gen.1",
                "--why",
                "test",
                "--state",
                state.path(),
            ])
            .env("KUBECONFIG", &kubeconfig)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{action}: {}",
            crate::support::text(&out.stderr)
        );
    };
    let said =
        || std::fs::read_to_string(format!("{}/controller.log", config.path())).unwrap_or_default();
    let wait = |what: &str, done: &mut dyn FnMut() -> bool| {
        let start = Instant::now();
        while !done() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "timed out waiting for {what}:\n{}\n{}",
                said(),
                crate::support::status_now(state.path())["submissions"]
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait("the Job", &mut || !api.list("jobs").is_empty());
    let job = api.list("jobs").remove(0);
    let name = job["metadata"]["name"].as_str().unwrap().to_string();
    assert_eq!(job["metadata"]["namespace"], "batch");
    assert_eq!(job["spec"]["completionMode"], "Indexed");
    assert_eq!(job["spec"]["completions"], 3);
    assert_eq!(
        job["metadata"]["labels"]["cascade.dev/submission"],
        "exp.gen.1"
    );
    assert_eq!(
        job["spec"]["template"]["spec"]["containers"][0]["image"],
        "busybox:1.36"
    );
    let sub = |field: &str| {
        crate::support::submission(state.path(), "exp.gen.1")["submission"][field].clone()
    };
    wait("the submission bound to the Job", &mut || {
        crate::support::submission(state.path(), "exp.gen.1")["batchId"]
            == format!("batch/{name}@kubernetes")
    });

    // Held through `suspend`, and released.
    for (action, suspended) in [("hold", true), ("release", false)] {
        operate(action);
        let job = api.get("jobs", "batch", &name).unwrap();
        assert_eq!(job["spec"]["suspend"], suspended, "after {action}");
    }

    // Index 0 succeeds, index 1 fails with exit code 3, index 2 runs.
    api.apply(job_pod(&name, 0, "Succeeded", Some(0)));
    api.apply(job_pod(&name, 1, "Failed", Some(3)));
    api.apply(job_pod(&name, 2, "Running", None));
    api.set_status(
        "jobs",
        "batch",
        &name,
        json!({"completedIndexes": "0", "failedIndexes": "1", "active": 1}),
    );
    wait("the job counts", &mut || {
        let jobs = sub("jobs");
        jobs["succeeded"] == 1 && jobs["failed"] == 1 && jobs["running"] == 1
    });

    // Killed: the Job is deleted with its pods; the running index is removed.
    operate("kill");
    let deletes: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| r.method == "DELETE" && r.path.ends_with(&format!("/jobs/{name}")))
        .collect();
    assert_eq!(deletes.len(), 1, "{deletes:?}");
    assert_eq!(
        deletes[0].body["propagationPolicy"], "Background",
        "{:?}",
        deletes[0]
    );
    assert!(api.get("jobs", "batch", &name).is_none());
    wait("the submission removed", &mut || {
        let jobs = sub("jobs");
        sub("status") == "Removed"
            && jobs["removed"] == 1
            && jobs["succeeded"] == 1
            && jobs["failed"] == 1
    });
    // Exactly one Job was ever created for the submission.
    let creates = api
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/jobs"))
        .count();
    assert_eq!(creates, 1);
    let _ = controller.kill();
    let _ = controller.wait();
}

#[test]
fn fake_apiserver_kubernetes_jobs_get_their_slices_and_a_relaunch_creates_no_second_job() {
    // No Job controller can run here: the test writes the Job's status as it would.
    let api = FakeApiServer::start();
    let config = TempDir::new("kube-slices-config");
    let kubeconfig = format!("{}/config", config.path());
    std::fs::write(&kubeconfig, api.kubeconfig()).unwrap();
    let state = TempDir::new("kube-slices-state");
    let s = state.path();
    let data = std::path::PathBuf::from(format!("{}/data", config.path()));
    let cli = |args: &[&str]| {
        let out = Command::new(cascade_bin())
            .args(args)
            .env("KUBECONFIG", &kubeconfig)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    crate::support::declare_three_raw_files(s, &data);
    let submit = [
        "submit",
        "--batch-system",
        "kubernetes",
        "--image",
        "eve:v1",
        "--kube-namespace",
        "batch",
        "--jobs",
        "2",
        "--submission",
        "io.1",
        "--input",
        "run_number 7",
        "--state",
        s,
        "--",
        "eve",
        "--file list",
    ];
    let printed = cli(&submit);
    let job = api.list("jobs").remove(0);
    let name = job["metadata"]["name"].as_str().unwrap().to_string();
    assert_eq!(
        printed.trim(),
        format!("job.batch/{name} created in namespace batch")
    );
    // Three files dealt out round robin over two jobs.
    let env = job["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .clone();
    let var = |n: &str| {
        env.iter()
            .find(|v| v["name"] == n)
            .map(|v| v["value"].clone())
            .unwrap_or_default()
    };
    let path = |f: &str| data.join(f).display().to_string();
    assert_eq!(
        var("CASCADE_SLICE_0"),
        json!(format!("{}\n{}", path("a.raw"), path("c.raw")))
    );
    assert_eq!(var("CASCADE_SLICE_1"), json!(path("b.raw")));
    assert_eq!(job["spec"]["completions"], 2);

    // The launch run again (after a crash before it returned): the same Job, bound again.
    let again = cli(&submit);
    assert_eq!(
        again.trim(),
        format!("job.batch/{name} unchanged in namespace batch")
    );
    assert_eq!(api.list("jobs").len(), 1);

    // Index 0 succeeds, index 1 fails: one poll, as the controller's poller makes it,
    // records them, and the files of each index are consumed or failed.
    api.set_status(
        "jobs",
        "batch",
        &name,
        json!({"completedIndexes": "0", "failedIndexes": "1"}),
    );
    // SAFETY: nextest runs each test in a process of its own; nothing else reads the
    // environment meanwhile.
    unsafe { std::env::set_var("KUBECONFIG", &kubeconfig) };
    let mut ledger = cascade::ledger::Ledger::open(std::path::Path::new(s)).unwrap();
    let polled =
        cascade::batch::observer::poll(&mut ledger, &cascade::batch::kubernetes::Kubernetes)
            .unwrap();
    assert_eq!(polled, Ok(2), "both indexes recorded");
    let files: Vec<(String, String)> = ledger
        .rows(
            "SELECT f.name, p.status FROM project_files p JOIN files f ON f.id = p.file WHERE p.project = 'io.1' ORDER BY f.name",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        files,
        vec![
            ("a.raw".to_string(), "consumed".to_string()),
            ("b.raw".to_string(), "failed".to_string()),
            ("c.raw".to_string(), "consumed".to_string()),
        ]
    );
    let jobs: Vec<(i64, String, Option<i64>)> = ledger
        .rows(
            "SELECT idx, state, exit_code FROM jobs WHERE submission = 'io.1' ORDER BY idx",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        jobs,
        vec![
            (0, "succeeded".into(), Some(0)),
            (1, "failed".into(), Some(1))
        ]
    );
}
