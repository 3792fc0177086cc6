//! The parsers against outputs recorded from the real Slurm 22.05 that `scripts/slurm-up.sh`
//! runs, for jobs whose fate is known from what they did:
//! - 10: `--array=0-1 --comment=cascade:exp.gen.1`, task N ran `exit $((N*3))`: 10_0 exits 0, 10_1 exits 3;
//! - 11: `--time=1 sleep 300`: killed at its time limit;
//! - 12: `sleep 300`, then `scancel`;
//! - 13: `kill -9 $$`: the batch shell killed by SIGKILL;
//! - 14: `--hold --array=0-2`: three tasks held before any started.
//!
//! The newer OpenAPI shapes (numbers as `{set, number}`, states as lists) are checked on
//! small documents written from Slurm's OpenAPI reference.

use super::*;
use crate::batch::external::job_named as job;

#[test]
fn sbatch_output_binds_its_job_id() {
    let log = "+ sbatch --array=0-3 job.sh\nSubmitted batch job 1234\nSubmitted batch job 1240 on cluster ci\n";
    assert_eq!(Slurm.printed_ids(log), ["1234", "1240"]);
    assert!(Slurm.printed_ids("Submitted batch job \n").is_empty());
}

#[test]
fn squeue_reports_each_task_with_what_it_did() {
    let jobs = parse_squeue(include_str!("squeue-22.05.json")).unwrap();
    let ok = job(&jobs, "10_0");
    assert_eq!((ok.state, ok.exit_code), (JobState::Succeeded, Some(0)));
    assert_eq!(ok.cluster, "10");
    let failed = job(&jobs, "10_1");
    assert_eq!(
        (failed.state, failed.exit_code),
        (JobState::Failed, Some(3))
    );
    assert!(
        failed.reason.contains("NonZeroExitCode"),
        "{}",
        failed.reason
    );
    // Its comment `cascade:exp.gen.1` names no installation: it claims the job for nobody.
    assert_eq!(failed.tag, None);
    // Killed at its time limit (SIGTERM): a failure, 128 + 15.
    let timeout = job(&jobs, "11");
    assert_eq!(
        (timeout.state, timeout.exit_code),
        (JobState::Failed, Some(143))
    );
    assert!(timeout.reason.starts_with("TIMEOUT"), "{}", timeout.reason);
    assert_eq!(job(&jobs, "12").state, JobState::Removed);
    let killed = job(&jobs, "13");
    assert_eq!(
        (killed.state, killed.exit_code),
        (JobState::Failed, Some(137))
    );
    // The held array is one entry standing for its three pending tasks.
    for task in ["14_0", "14_1", "14_2"] {
        let held = job(&jobs, task);
        assert_eq!(held.state, JobState::Held, "{task}");
        assert_eq!(held.cluster, "14");
    }
    assert_eq!(jobs.len(), 8, "{jobs:#?}");
}

#[test]
fn sacct_reports_finished_jobs_and_its_zero_exit_of_a_failure_is_not_believed() {
    let jobs = parse_sacct(include_str!("sacct-22.05.json")).unwrap();
    assert_eq!(job(&jobs, "10_0").state, JobState::Succeeded);
    // Slurm 22.05's sacct says `SUCCESS, 0` for this failed task: the state is believed, the
    // exit code is not.
    let failed = job(&jobs, "10_1");
    assert_eq!((failed.state, failed.exit_code), (JobState::Failed, None));
    let timeout = job(&jobs, "11");
    assert_eq!(
        (timeout.state, timeout.exit_code),
        (JobState::Failed, Some(143))
    );
    assert_eq!(job(&jobs, "12").state, JobState::Removed);
    assert_eq!(job(&jobs, "13").exit_code, Some(137));
    assert_eq!(job(&jobs, "10_1").cluster, "10");
}

#[test]
fn a_controller_that_does_not_answer_is_an_error_not_an_empty_queue() {
    let err = parse_squeue(include_str!("squeue-22.05-controller-down.json")).unwrap_err();
    assert!(err.contains("Failed while looking for jobs"), "{err}");
}

#[test]
fn sacct_nothing_found_is_an_answer() {
    let text = r#"{"meta": {}, "errors": [{"description": "Nothing found", "error_number": 9003,
        "error": "Nothing found with query", "source": "slurmdb_jobs_get"}], "jobs": []}"#;
    assert!(parse_sacct(text).unwrap().is_empty());
}

#[test]
fn newer_openapi_shapes_are_read_too() {
    let text = r#"{"errors": [], "jobs": [
      {"job_id": 7, "array_job_id": {"set": true, "infinite": false, "number": 5},
       "array_task_id": {"set": true, "infinite": false, "number": 2},
       "job_state": ["OUT_OF_MEMORY"], "state_reason": "OutOfMemory",
       "exit_code": {"status": ["SIGNALED"], "return_code": {"set": true, "number": 0},
                     "signal": {"id": {"set": true, "number": 9}, "name": "KILL"}},
       "comment": "cascade:0123456789abcdef/exp.gen.1"},
      {"job_id": 8, "array_job_id": {"set": true, "number": 0},
       "array_task_id": {"set": false, "infinite": false, "number": 0},
       "job_state": ["PENDING"], "state_reason": "JobHeldUser", "comment": ""}
    ]}"#;
    let jobs = parse_squeue(text).unwrap();
    let oom = job(&jobs, "5_2");
    assert_eq!((oom.state, oom.exit_code), (JobState::Failed, Some(137)));
    assert_eq!(
        oom.tag.as_deref(),
        Some("cascade:0123456789abcdef/exp.gen.1")
    );
    assert_eq!(job(&jobs, "8").state, JobState::Held);
}

#[test]
fn slurm_states_map_to_what_they_mean_for_a_submission() {
    for (state, reason, want) in [
        ("PENDING", "Resources", JobState::Idle),
        ("PENDING", "JobHeldAdmin", JobState::Held),
        ("RUNNING", "JobHeldAdmin", JobState::Running),
        ("COMPLETING", "None", JobState::Running),
        ("SUSPENDED", "None", JobState::Held),
        ("COMPLETED", "None", JobState::Succeeded),
        ("CANCELLED", "None", JobState::Removed),
        ("NODE_FAIL", "None", JobState::Failed),
        ("OUT_OF_MEMORY", "None", JobState::Failed),
        ("BOOT_FAIL", "None", JobState::Failed),
        ("PREEMPTED", "None", JobState::Failed),
        ("SOMETHING_NEW", "None", JobState::Idle),
    ] {
        assert_eq!(state_of(state, reason), want, "{state} {reason}");
    }
}

#[test]
fn array_task_lists_expand_as_slurm_writes_them() {
    assert_eq!(expand_array("0-3").unwrap(), [0, 1, 2, 3]);
    assert_eq!(expand_array("1,3,5-7").unwrap(), [1, 3, 5, 6, 7]);
    assert_eq!(expand_array("0-15:4").unwrap(), [0, 4, 8, 12]);
    assert_eq!(expand_array("2-4%10").unwrap(), [2, 3, 4]);
    assert!(expand_array("").unwrap().is_empty());
    for bad in ["3-1", "a-b", "0-4:0", "0-99999999"] {
        assert!(expand_array(bad).is_err(), "{bad}");
    }
}
