//! A campaign on HTCondor, followed through the HTCondor commands. HTCondor daemons cannot
//! run here, so these tests put MOCK stand-ins for `condor_submit`, `condor_q`,
//! `condor_history`, `condor_hold`, `condor_release` and `condor_rm` first on the PATH: they
//! print outputs in HTCondor's real formats (as the test scripts them, job by job) and log
//! how they were called. Everything else is real: the controller, its poller, the ledger.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::*;

/// The mock commands and the files they answer from.
struct MockCondor {
    dir: PathBuf,
}

impl MockCondor {
    fn new(dir: &Path) -> MockCondor {
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let script = |name: &str, body: &str| {
            let path = bin.join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::process::Command::new("chmod")
                .arg("+x")
                .arg(&path)
                .status()
                .unwrap();
        };
        let log = r#"echo "$(basename "$0") $*" >> "$MOCK_CONDOR/calls.log""#;
        script(
            "condor_submit",
            &format!(
                "{log}\necho 'Submitting job(s)..'\necho '2 job(s) submitted to cluster 4521.'"
            ),
        );
        // condor_q fails like an unreachable schedd while `schedd-down` exists.
        script(
            "condor_q",
            &format!(
                "{log}\nif [ -e \"$MOCK_CONDOR/schedd-down\" ]; then echo '-- Failed to fetch ads from: <127.0.0.1:9618> : localhost' >&2; echo 'SECMAN:2007:Failed to end classad message.' >&2; exit 1; fi\ncat \"$MOCK_CONDOR/q.json\" 2>/dev/null"
            ),
        );
        script(
            "condor_history",
            &format!("{log}\ncat \"$MOCK_CONDOR/history.json\" 2>/dev/null"),
        );
        for name in ["condor_hold", "condor_release", "condor_rm"] {
            script(
                name,
                &format!("{log}\necho 'All jobs in cluster 4521 have been affected'"),
            );
        }
        MockCondor {
            dir: dir.to_path_buf(),
        }
    }

    fn path(&self) -> String {
        format!(
            "{}:{}",
            self.dir.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }

    /// What `condor_q -json` prints: one ad per (proc, JobStatus, extra attributes).
    fn queue(&self, jobs: &[(u32, u32, &str)]) {
        std::fs::write(self.dir.join("q.json"), ads(jobs)).unwrap();
    }

    fn history(&self, jobs: &[(u32, u32, &str)]) {
        std::fs::write(self.dir.join("history.json"), ads(jobs)).unwrap();
    }

    fn calls(&self) -> String {
        std::fs::read_to_string(self.dir.join("calls.log")).unwrap_or_default()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(cascade_bin());
        c.args(args)
            .current_dir(root())
            .env("PATH", self.path())
            .env("MOCK_CONDOR", &self.dir);
        c
    }
}

/// ClassAds as `condor_q -json` prints them: a list, one ad per line group, `,` between; no
/// output at all for no ads.
fn ads(jobs: &[(u32, u32, &str)]) -> String {
    if jobs.is_empty() {
        return String::new();
    }
    let each: Vec<String> = jobs
        .iter()
        .map(|(proc_, status, extra)| {
            format!(
                "{{\n  \"ClusterId\": 4521,{extra}\n  \"GlobalJobId\": \"localhost#4521.{proc_}#1795930000\",\n  \"JobStatus\": {status},\n  \"ProcId\": {proc_}\n}}\n"
            )
        })
        .collect();
    format!("[\n{}]\n", each.join(",\n"))
}

fn campaign(dir: &Path) -> PathBuf {
    let yaml = generator_campaign("condor_submit gen.sub", "{}")
        .replace("  launchScript:", "  batchSystem: condor\n  launchScript:");
    let path = dir.join("campaign.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

fn start(mock: &MockCondor, campaign: &Path, state: &str) -> Child {
    mock.command(&["run", "--batch-poll", "200ms", "-q", "--state", state])
        .arg(campaign)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn mock_condor_jobs_are_bound_by_the_printed_cluster_and_followed_to_completion() {
    let dir = TempDir::new("condor-follow");
    let mock = MockCondor::new(&dir);
    let campaign = campaign(&dir);
    let state = dir.join("state");
    let s = state.to_str().unwrap().to_string();
    mock.queue(&[(0, 1, ""), (1, 1, "")]);
    let run = start(&mock, &campaign, &s);
    // The status follows the observation at the controller's next reconcile.
    wait_for(
        "two idle jobs, the submission Idle",
        Duration::from_secs(30),
        || {
            let sub = submission(&s, "exp.gen.1")["submission"].clone();
            sub["jobs"]["idle"].as_u64() == Some(2) && sub["status"] == "Idle"
        },
    );
    // One runs, one is held by the schedd: the submission is Held, with HTCondor's reason.
    mock.queue(&[
        (0, 2, ""),
        (
            1,
            5,
            "\n  \"HoldReason\": \"Job has gone over cgroup memory limit of 2000 megabytes.\",",
        ),
    ]);
    wait_for("a held job", Duration::from_secs(30), || {
        submission(&s, "exp.gen.1")["submission"]["status"] == "Held"
    });
    let out = mock
        .command(&[
            "release",
            "exp.gen.1",
            "--state",
            &s,
            "--why",
            "more memory",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        mock.calls().contains("condor_release 4521"),
        "{}",
        mock.calls()
    );
    // Both finish and leave the queue: condor_history tells how they ended.
    mock.queue(&[]);
    mock.history(&[
        (0, 4, "\n  \"ExitBySignal\": false,\n  \"ExitCode\": 0,"),
        (1, 4, "\n  \"ExitBySignal\": false,\n  \"ExitCode\": 0,"),
    ]);
    let (code, said) = finish(run, Duration::from_secs(60));
    assert_eq!(code, Some(0), "{said}");
    let sub = submission(&s, "exp.gen.1")["submission"].clone();
    assert_eq!(sub["jobs"]["succeeded"].as_u64(), Some(2), "{sub}");
    assert_eq!(stage_state(&s, "exp/gen").0, "Completed");
    // One condor_q per poll for all clusters, by id, asking only for the attributes read.
    let calls = mock.calls();
    let q = calls.lines().find(|l| l.starts_with("condor_q")).unwrap();
    assert!(
        q.contains("-json") && q.contains(" 4521 ") && q.contains("-attributes"),
        "{q}"
    );
    assert!(
        calls
            .lines()
            .any(|l| l.starts_with("condor_history") && l.contains("4521")),
        "{calls}"
    );
}

#[test]
fn mock_condor_an_unreachable_schedd_degrades_the_stage_and_fails_nothing() {
    let dir = TempDir::new("condor-down");
    let mock = MockCondor::new(&dir);
    let campaign = campaign(&dir);
    let state = dir.join("state");
    let s = state.to_str().unwrap().to_string();
    mock.queue(&[(0, 2, ""), (1, 2, "")]);
    let run = start(&mock, &campaign, &s);
    wait_for("two running jobs", Duration::from_secs(30), || {
        submission(&s, "exp.gen.1")["submission"]["jobs"]["running"].as_u64() == Some(2)
    });
    std::fs::write(dir.join("schedd-down"), "").unwrap();
    // Meanwhile the jobs fail, but nobody can see it yet.
    mock.queue(&[]);
    mock.history(&[
        (0, 4, "\n  \"ExitBySignal\": false,\n  \"ExitCode\": 0,"),
        (1, 4, "\n  \"ExitBySignal\": false,\n  \"ExitCode\": 0,"),
    ]);
    wait_for("Degraded", Duration::from_secs(30), || {
        stage_state(&s, "exp/gen").0 == "Degraded"
    });
    let (_, reason) = stage_state(&s, "exp/gen");
    assert!(reason.contains("Failed to fetch ads"), "{reason}");
    assert_eq!(
        submission(&s, "exp.gen.1")["submission"]["status"],
        "Running",
        "nothing decided while unobserved"
    );
    std::fs::remove_file(dir.join("schedd-down")).unwrap();
    let (code, said) = finish(run, Duration::from_secs(60));
    assert_eq!(code, Some(0), "{said}");
    assert_eq!(
        submission(&s, "exp.gen.1")["submission"]["jobs"]["succeeded"].as_u64(),
        Some(2)
    );
}
