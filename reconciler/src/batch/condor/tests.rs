//! HTCondor daemons cannot run here: these tests read outputs recorded in HTCondor's and
//! jobsub's own formats (written from their documentation: `condor_q -json` prints a JSON
//! list of ClassAds separated by `,` lines, nothing when no job matches; `JobStatus` codes
//! 1-7), and check what Cascade makes of them against what each job did.

use super::*;
use crate::batch::external::job_named as job;

#[test]
fn condor_submit_prints_its_cluster() {
    let log = "Submitting job(s)...\n3 job(s) submitted to cluster 4521.\n";
    assert_eq!(Condor.printed_ids(log), ["4521"]);
}

#[test]
fn jobsub_lite_binds_its_cluster_with_its_schedd_once() {
    let log = include_str!("jobsub_submit.txt");
    assert_eq!(Condor.printed_ids(log), ["78245312@jobsub05.example.org"]);
}

#[test]
fn the_old_jobsub_client_prints_the_first_job_id_twice_and_binds_once() {
    let log = include_str!("jobsub_client.txt");
    assert_eq!(Condor.printed_ids(log), ["55551234@jobsub01.example.org"]);
}

#[test]
fn a_launch_that_submits_twice_binds_both_clusters_in_order() {
    let log = format!(
        "{}\n{}",
        include_str!("jobsub_client.txt"),
        include_str!("jobsub_submit.txt")
    );
    assert_eq!(
        Condor.printed_ids(&log),
        [
            "55551234@jobsub01.example.org",
            "78245312@jobsub05.example.org"
        ]
    );
}

#[test]
fn text_that_only_looks_like_an_id_binds_nothing() {
    let log = "echo submitted to cluster later.\nUse job id to retrieve output\n";
    assert!(Condor.printed_ids(log).is_empty());
}

#[test]
fn queued_jobs_are_read_with_their_states_and_hold_reasons() {
    let jobs = parse_ads(include_str!("condor_q.json"), None).unwrap();
    assert_eq!(jobs.len(), 6);
    assert_eq!(job(&jobs, "4521.0").state, JobState::Running);
    assert_eq!(job(&jobs, "4521.1").state, JobState::Idle);
    let held = job(&jobs, "4521.2");
    assert_eq!(held.state, JobState::Held);
    assert!(
        held.reason.contains("cgroup memory limit"),
        "{}",
        held.reason
    );
    // Transferring output still runs; suspended is not running.
    assert_eq!(job(&jobs, "4521.3").state, JobState::Running);
    assert_eq!(job(&jobs, "4521.4").state, JobState::Held);
    assert!(
        jobs.iter()
            .all(|j| !j.state.is_over() && j.exit_code.is_none())
    );
    // Identity: Cascade's tag; a bare submission id (which repeats across installations)
    // claims nothing.
    assert_eq!(
        job(&jobs, "4521.0").tag.as_deref(),
        Some("cascade:5f0c9a1e2b3d4c6a/exp.gen.1")
    );
    assert_eq!(job(&jobs, "4530.0").tag, None);
    assert_eq!(job(&jobs, "4521.0").cluster, "4521");
}

#[test]
fn finished_jobs_keep_their_exit_codes_and_removals() {
    let jobs = parse_ads(
        include_str!("condor_history.json"),
        Some("submit01.example.org"),
    )
    .unwrap();
    let ok = job(&jobs, "4400.0@submit01.example.org");
    assert_eq!((ok.state, ok.exit_code), (JobState::Succeeded, Some(0)));
    assert_eq!(ok.cluster, "4400@submit01.example.org");
    let failed = job(&jobs, "4400.1@submit01.example.org");
    assert_eq!(
        (failed.state, failed.exit_code),
        (JobState::Failed, Some(3))
    );
    // Killed by SIGKILL: a failure with the shell's 128 + 9.
    let killed = job(&jobs, "4400.2@submit01.example.org");
    assert_eq!(
        (killed.state, killed.exit_code),
        (JobState::Failed, Some(137))
    );
    let removed = job(&jobs, "4400.3@submit01.example.org");
    assert_eq!(removed.state, JobState::Removed);
    assert!(removed.reason.contains("condor_rm"), "{}", removed.reason);
}

#[test]
fn no_output_is_no_jobs_and_garbage_is_an_error_not_zero_jobs() {
    assert!(parse_ads("", None).unwrap().is_empty());
    assert!(parse_ads("\n", None).unwrap().is_empty());
    let err = parse_ads(
        "-- Failed to fetch ads from: <127.0.0.1:9618> : schedd\n",
        None,
    )
    .unwrap_err();
    assert!(err.contains("not a JSON list"), "{err}");
}

#[test]
fn a_completed_job_without_an_exit_code_is_not_taken_for_a_success() {
    let jobs = parse_ads(r#"[{"ClusterId": 7, "ProcId": 0, "JobStatus": 4}]"#, None).unwrap();
    assert_eq!(jobs[0].state, JobState::Failed);
    assert_eq!(jobs[0].exit_code, None);
}

#[test]
fn clusters_are_asked_of_their_own_schedd() {
    let grouped = group_by_schedd(&[
        "1@a.example.org".to_string(),
        "2".to_string(),
        "3@a.example.org".to_string(),
    ]);
    assert_eq!(grouped[&Some("a.example.org".to_string())], ["1", "3"]);
    assert_eq!(grouped[&None], ["2"]);
}

#[test]
fn output_cut_short_is_an_error_not_the_jobs_it_got_to() {
    // condor_q killed (or its connection dropped) part way through its answer.
    let full = include_str!("condor_q.json");
    let cut = &full[..full.len() / 2];
    let err = parse_ads(cut, None).unwrap_err();
    assert!(err.contains("not a JSON list"), "{err}");
}
