//! Crash safety: the controller is killed with SIGKILL at arbitrary moments of a campaign,
//! many times, and restarted each time. Launch commands, the batch daemon and running jobs
//! outlive it, as they would in production. At the end every stage converged, no slice was
//! launched twice, no submission is lost, and the ledger is consistent.

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{
    TempDir, assert_eve_mc_outputs, cascade, cascade_bin, root, status_json, text,
};

/// A small deterministic generator, so that a failure can be replayed.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

#[test]
fn kill_9_at_random_moments_loses_nothing_and_launches_nothing_twice() {
    let state = TempDir::new("crash");
    let seed = std::env::var("CASCADE_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261124);
    let mut rng = Lcg(seed);
    let mut kills = 0;
    let errors = state.0.with_extension("stderr");
    for round in 0..40 {
        let mut child = Command::new(cascade_bin())
            .args(["run", "examples/eve_mc", "--state", state.path(), "-q"])
            .current_dir(root())
            .env("EVE_JOB_SECONDS", "0.3")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&errors).expect("stderr file"))
            .spawn()
            .expect("start controller");
        std::thread::sleep(Duration::from_millis(10 + rng.next(250)));
        if let Some(exit) = child.try_wait().expect("poll") {
            // Only a campaign that finished may end a controller before its kill.
            assert!(
                exit.success(),
                "seed {seed}, round {round}: the controller failed ({exit}): {}",
                std::fs::read_to_string(&errors).unwrap_or_default()
            );
            eprintln!("round {round}: the campaign finished before the kill");
            break;
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        kills += 1;
    }
    assert!(
        kills >= 10,
        "seed {seed}: only {kills} kills landed during the campaign"
    );
    let out = cascade(&["run", "examples/eve_mc", "--state", state.path(), "-q"]);
    assert!(
        out.status.success(),
        "seed {seed}: {}\n{}",
        text(&out.stderr),
        text(&out.stdout)
    );

    let status = status_json(state.path());
    for s in status["stages"].as_array().unwrap() {
        assert_eq!(s["state"], "Completed", "seed {seed}: {s}");
    }
    let subs = status["submissions"].as_array().unwrap();
    // No slice launched twice: identities are unique, and there are exactly the submissions
    // the campaign needs (one per stage, plus reconstruction's two recovery rounds).
    let identities: HashSet<String> = subs
        .iter()
        .map(|s| {
            format!(
                "{}/{}",
                s["submission"]["stage"]["name"], s["submission"]["origin"]
            )
        })
        .collect();
    assert_eq!(identities.len(), subs.len(), "seed {seed}");
    assert_eq!(subs.len(), 7, "seed {seed}: {subs:#?}");
    for s in subs {
        let id = s["submission"]["id"].as_str().unwrap();
        assert_eq!(s["submission"]["status"], "Located", "seed {seed}: {id}");
        assert_eq!(s["launchState"], "launched", "seed {seed}: {id}");
        // Each launch submitted once: `cascade submit` printed one job id in the launch log.
        let log = std::fs::read_to_string(s["launchLog"].as_str().unwrap()).unwrap_or_default();
        assert_eq!(
            log.matches("@local").count(),
            1,
            "seed {seed}: {id} log:\n{log}"
        );
    }
    // Nothing recorded is lost: every submission's history starts at its reservation.
    let history = status["history"].as_array().unwrap();
    for s in subs {
        let id = &s["submission"]["id"];
        let first = history
            .iter()
            .find(|h| &h["submission"] == id)
            .expect("history");
        assert_eq!(first["status"], "New", "seed {seed}: {id}");
    }
    // The catalog holds each output once.
    assert_eve_mc_outputs(state.path(), &format!("seed {seed}"));
}
