//! Crash safety: the controller is killed with SIGKILL at arbitrary moments of a campaign,
//! many times, and restarted each time. Launch commands, the batch daemon and running jobs
//! outlive it, as they would in production. At the end every stage converged, no slice was
//! launched twice, no submission is lost, and the ledger is consistent.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{Match, TempDir, assert_eve_mc_converged, cascade, cascade_bin, root, text};

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
    let errors = state.0.join("controller.stderr");
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

    assert_eve_mc_converged(state.path(), &format!("seed {seed}"), Match::Exact);
}
