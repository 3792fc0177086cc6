//! Ledger and catalog against a real SQLite database in a temporary directory.

use super::*;
use crate::catalog::NewFile;
use crate::launch::compose::Launch;
use crate::model::ObjectKey;
use crate::plan::{LaunchAction, Origin, StageState, StageStatus, Status};

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("cascade-ledger-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        Dir(d)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn file(name: &str, meta: &[(&str, &str)], parents: &[&str]) -> NewFile {
    NewFile {
        name: name.into(),
        size: 10,
        checksum: String::new(),
        location: "/data".into(),
        metadata: meta
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        parents: parents.iter().map(|p| p.to_string()).collect(),
    }
}

fn launch(id: &str, origin: Origin, input: Option<&str>) -> LaunchAction {
    LaunchAction {
        id: id.into(),
        stage: ObjectKey::new("exp", "s"),
        seq: id.rsplit('.').next().unwrap().parse().unwrap(),
        origin,
        test: false,
        dataset: input.map(|_| format!("{id}_input")),
        input: input.map(String::from),
        input_files: Vec::new(),
        define: crate::plan::Define::Query,
        cursor_after: None,
        approval: false,
        recovery: None,
        batch_system: cascade_crd::BatchSystem::Local,
        launch: Launch {
            argv: vec!["true".into()],
            env: Vec::new(),
            command: "true".into(),
            display: "true".into(),
        },
    }
}

#[test]
fn migrations_apply_once_and_reopen_cleanly() {
    let dir = Dir::new("migrate");
    let l = Ledger::open(&dir.0).unwrap();
    assert_eq!(l.schema_version().unwrap(), schema::MIGRATIONS.len() as u32);
    drop(l);
    let l = Ledger::open(&dir.0).unwrap();
    assert_eq!(
        l.scalar_i64("SELECT COUNT(*) FROM schema_migrations")
            .unwrap(),
        schema::MIGRATIONS.len() as i64
    );
    let mode: String = l
        .conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

/// A state directory written before `since` existed is upgraded in place, keeping its rows.
#[test]
fn a_version_1_state_is_migrated() {
    let dir = Dir::new("v1");
    let mut l = Ledger::open(&dir.0).unwrap();
    l.save_stage_status(&[stage_status("gen", StageState::Running)])
        .unwrap();
    l.conn
        .execute_batch(
            "DROP INDEX submissions_status; DROP INDEX jobs_delegated_state; ALTER TABLE stage_status DROP COLUMN since; ALTER TABLE definitions DROP COLUMN submission; ALTER TABLE submissions DROP COLUMN cursor_snapshot; ALTER TABLE jobs DROP COLUMN pid_start; ALTER TABLE jobs DROP COLUMN attempts; ALTER TABLE stage_status DROP COLUMN position; ALTER TABLE submissions DROP COLUMN batch_system; DROP TABLE batch_clusters; DROP TABLE batch_jobs; DROP TABLE batch_health; DROP TABLE installation; ALTER TABLE jobs DROP COLUMN delegated; DROP TABLE revisions; ALTER TABLE submissions DROP COLUMN revision; DROP TABLE notifications; DROP TABLE notifiers_seen; DELETE FROM schema_migrations WHERE version >= 2;",
        )
        .unwrap();
    drop(l);
    let l = Ledger::open(&dir.0).unwrap();
    let saved = l.saved_stage_status().unwrap();
    assert_eq!(saved.len(), 1);
    assert_eq!(
        saved[0].since, 0,
        "unknown for rows saved before the column"
    );
    assert_eq!(
        saved[0].status.as_ref().map(|s| s.state),
        Some(StageState::Running)
    );
}

/// `since` moves when the state changes, not at every save.
#[test]
fn stage_state_keeps_the_time_it_last_changed() {
    let dir = Dir::new("since");
    let mut l = Ledger::open(&dir.0).unwrap();
    l.save_stage_status(&[stage_status("gen", StageState::Running)])
        .unwrap();
    l.conn
        .execute("UPDATE stage_status SET since = 1000", [])
        .unwrap();
    l.save_stage_status(&[stage_status("gen", StageState::Running)])
        .unwrap();
    assert_eq!(l.saved_stage_status().unwrap()[0].since, 1000);
    l.save_stage_status(&[stage_status("gen", StageState::Completed)])
        .unwrap();
    let saved = &l.saved_stage_status().unwrap()[0];
    assert!(saved.since > 1000, "{}", saved.since);
    assert_eq!(saved.state, "Completed");
}

fn stage_status(name: &str, state: StageState) -> StageStatus {
    StageStatus {
        stage: ObjectKey::new("exp", name),
        campaign: ObjectKey::new("exp", "camp"),
        state,
        reason: "a reason".into(),
        settled: false,
        blocked: false,
        located_percent: 0.0,
        progress: 0.0,
        submissions: 0,
        chains_located: 0,
        chains_failed: 0,
        chains_in_flight: 0,
        jobs: Default::default(),
        launches: 0,
        queued: Vec::new(),
        next_fire: None,
        drift: None,
        paused_by_definitions: false,
        split: None,
        split_position: None,
        exhausted: false,
        shape: Default::default(),
    }
}

#[test]
fn a_newer_schema_is_refused_with_advice() {
    let dir = Dir::new("newer");
    let l = Ledger::open(&dir.0).unwrap();
    l.conn
        .execute("INSERT INTO schema_migrations VALUES (99, 'future', 0)", [])
        .unwrap();
    drop(l);
    let err = Ledger::open(&dir.0).err().unwrap().to_string();
    assert!(
        err.contains(&format!(
            "newer than this cascade knows ({}): upgrade cascade",
            schema::MIGRATIONS.len()
        )),
        "{err}"
    );
}

#[test]
fn open_existing_refuses_an_empty_directory() {
    let dir = Dir::new("missing");
    let err = Ledger::open_existing(&dir.0).err().unwrap().to_string();
    assert!(err.contains("run `cascade run` first"), "{err}");
}

#[test]
fn reservation_is_unique_per_stage_and_origin() {
    let dir = Dir::new("reserve");
    let mut l = Ledger::open(&dir.0).unwrap();
    let origin = Origin::Split {
        test: false,
        index: 0,
    };
    assert!(
        l.reserve(&launch("exp.s.1", origin.clone(), None), "alice", "/")
            .unwrap()
    );
    // The same identity under another id (a stale plan after a restart) is refused.
    assert!(
        !l.reserve(&launch("exp.s.2", origin, None), "alice", "/")
            .unwrap()
    );
    assert_eq!(l.open_reservations().unwrap(), ["exp.s.1"]);
    l.record_launch("exp.s.1", &crate::ledger::LaunchEnd::Exited(3), None)
        .unwrap();
    let o = l.observed().unwrap();
    assert_eq!(o.submissions.len(), 1);
    assert_eq!(o.submissions[0].status, Status::LaunchFailed);
    let h = l.history(Some("exp.s.1")).unwrap();
    assert_eq!(
        h.last().unwrap().reason,
        "launch command exited with 3 and submitted no jobs"
    );
}

#[test]
fn status_changes_are_compare_and_set() {
    let dir = Dir::new("cas");
    let mut l = Ledger::open(&dir.0).unwrap();
    l.reserve(&launch("exp.s.1", Origin::Join, None), "alice", "/")
        .unwrap();
    assert!(
        l.set_status("exp.s.1", Status::New, Status::Running, "r")
            .unwrap()
    );
    // A plan made before that change cannot roll it back.
    assert!(
        !l.set_status("exp.s.1", Status::New, Status::Idle, "stale")
            .unwrap()
    );
    assert_eq!(l.observed().unwrap().submissions[0].status, Status::Running);
    l.operator_status("exp.s.1", Status::Removed, "bob", "wrong release")
        .unwrap();
    let actions = l
        .scalar_i64("SELECT COUNT(*) FROM operator_actions WHERE who = 'bob'")
        .unwrap();
    assert_eq!(actions, 1);
}

#[test]
fn reservation_creates_the_project_of_its_input() {
    let dir = Dir::new("project");
    let mut l = Ledger::open(&dir.0).unwrap();
    l.declare(&[
        file("a.raw", &[], &[]),
        file("b.raw", &[], &[]),
        file("c.txt", &[], &[]),
    ])
    .unwrap();
    l.reserve(
        &launch("exp.s.1", Origin::Join, Some("file_name like '%.raw'")),
        "alice",
        "/",
    )
    .unwrap();
    assert_eq!(
        l.query_names("snapshot_for_project_name 'exp.s.1'")
            .unwrap(),
        ["a.raw", "b.raw"]
    );
    assert_eq!(
        l.query_names("defname: exp.s.1_input").unwrap(),
        ["a.raw", "b.raw"]
    );
    // The definition is a query, the project a snapshot: new files change one, not the other.
    l.declare(&[file("d.raw", &[], &[])]).unwrap();
    assert_eq!(l.query_count("defname: exp.s.1_input").unwrap(), 3);
    assert_eq!(
        l.query_count("snapshot_for_project_name 'exp.s.1'")
            .unwrap(),
        2
    );
    assert_eq!(
        l.query_count("project_name 'exp.s.1' and consumed_status 'delivered'")
            .unwrap(),
        2
    );
}

#[test]
fn catalog_query_language_over_real_files() {
    let dir = Dir::new("query");
    let mut l = Ledger::open(&dir.0).unwrap();
    let mut files = Vec::new();
    for i in 0..10 {
        let run = (40 + i / 2).to_string();
        let version = if i % 2 == 0 { "v1" } else { "v2" };
        files.push(file(
            &format!("f{i}.raw"),
            &[("run_number", &run), ("version", version)],
            &[],
        ));
    }
    l.declare(&files).unwrap();
    l.declare(&[
        file("f0.reco", &[("version", "v1")], &["f0.raw"]),
        file("f0.ana", &[], &["f0.reco"]),
    ])
    .unwrap();
    l.define("raw", "file_name like '%.raw'", "alice").unwrap();
    let q = |text: &str| l.query_names(text).unwrap();
    assert_eq!(
        q("defname: raw with limit 3 offset 2"),
        ["f2.raw", "f3.raw", "f4.raw"]
    );
    assert_eq!(
        q("defname: raw with stride 4 offset 1"),
        ["f1.raw", "f5.raw", "f9.raw"]
    );
    assert_eq!(q("defname: raw and run_number 41"), ["f2.raw", "f3.raw"]);
    assert_eq!(
        q("defname: raw and run_number 43-44 and version v2"),
        ["f7.raw", "f9.raw"]
    );
    assert_eq!(q("run_number >= 44"), ["f8.raw", "f9.raw"]);
    assert_eq!(q("isparentof:( file_name f0.reco )"), ["f0.raw"]);
    assert_eq!(
        q("ischildof:( ischildof:( file_name f0.raw ) )"),
        ["f0.ana"]
    );
    assert_eq!(
        q("defname: raw minus version v1"),
        ["f1.raw", "f3.raw", "f5.raw", "f7.raw", "f9.raw"]
    );
    assert_eq!(
        q("file_name f0.reco or file_name f0.ana"),
        ["f0.reco", "f0.ana"]
    );
    assert_eq!(q("raw").len(), 10, "a bare definition name is its query");
    assert_eq!(
        q("create_date > '2000-01-01' and file_name f1.raw"),
        ["f1.raw"]
    );
    let (snap, n) = l.snapshot("defname: raw with limit 2").unwrap();
    assert_eq!(n, 2);
    assert_eq!(
        l.query_names(&format!("snapshot_id {snap}")).unwrap(),
        ["f0.raw", "f1.raw"]
    );
    let err = l.query_names("defname: nothere").err().unwrap().to_string();
    assert!(err.contains("no definition named `nothere`"), "{err}");
    let err = l
        .define("loop", "defname: loop", "alice")
        .unwrap_err()
        .to_string();
    assert!(err.contains("would refer to itself"), "{err}");
}

#[test]
fn declaring_a_child_of_an_unknown_parent_is_refused_and_nothing_is_half_applied() {
    let dir = Dir::new("declare");
    let mut l = Ledger::open(&dir.0).unwrap();
    let err = l
        .declare(&[
            file("ok.raw", &[], &[]),
            file("child.reco", &[], &["missing.raw"]),
        ])
        .err()
        .unwrap()
        .to_string();
    assert_eq!(
        err,
        "parent `missing.raw` of `child.reco` is not in the catalog: declare it first"
    );
    assert_eq!(l.query_count("file_name like '%'").unwrap(), 0);
}

#[test]
fn a_definition_that_would_refer_to_itself_is_refused() {
    let dir = Dir::new("self-ref");
    let mut l = Ledger::open(&dir.0).unwrap();
    let refused = |l: &mut Ledger, name: &str, query: &str| match l.define(name, query, "alice") {
        Err(crate::catalog::CatalogError::Query(e)) => e.message,
        other => panic!("{name} := {query}: {other:?}"),
    };
    assert_eq!(
        refused(&mut l, "a", "defname: a"),
        "definition `a` would refer to itself"
    );
    l.define("b", "version v1", "alice").unwrap();
    l.define("c", "defname: b with limit 3", "alice").unwrap();
    assert_eq!(
        refused(&mut l, "b", "(defname: c with limit 2) or version v2"),
        "definition `b` would refer to itself through `c`"
    );
    // Nothing was half-applied: `b` is what it was.
    assert_eq!(
        l.definitions().unwrap(),
        vec![
            ("b".to_string(), "version v1".to_string()),
            ("c".to_string(), "defname: b with limit 3".to_string())
        ]
    );
}

/// A cycle written past `define` (an older state, a hand edit) is bounded at evaluation: an
/// error, never a stack overflow.
#[test]
fn a_definition_cycle_in_the_database_is_an_error_at_evaluation() {
    let dir = Dir::new("cycle");
    let l = Ledger::open(&dir.0).unwrap();
    l.conn
        .execute_batch(
            "INSERT INTO definitions (name, query, creator, created) VALUES
               ('x', 'defname: y with limit 5', 'h', 0), ('y', '(defname: x with limit 4) or version v1', 'h', 0);",
        )
        .unwrap();
    let e = l.query_count("defname: x").unwrap_err().to_string();
    assert!(e.contains("expands too deeply"), "{e}");
}

/// The largest queries the parser accepts are within what the database evaluates; the
/// shapes that reach the bound through definitions are refused as query errors.
#[test]
fn queries_at_the_size_bound_run_and_past_it_are_query_errors() {
    use crate::catalog::query::{MAX_CONDITIONS, MAX_DEPTH};
    let dir = Dir::new("size");
    let mut l = Ledger::open(&dir.0).unwrap();
    l.declare(&[file("f.raw", &[("version", "v1")], &[])])
        .unwrap();
    let terms: Vec<String> = (0..MAX_CONDITIONS)
        .map(|i| format!("version v{i}"))
        .collect();
    for joiner in [" and ", " or ", " minus "] {
        l.query_count(&terms.join(joiner)).unwrap();
    }
    let nested = format!(
        "{}version v1{}",
        "ischildof:( ".repeat(MAX_DEPTH - 1),
        " )".repeat(MAX_DEPTH - 1)
    );
    l.query_count(&nested).unwrap();
    // Definitions expanded past the bound: a query error (exit 1), not a database failure.
    let half: Vec<String> = (0..MAX_CONDITIONS / 2 + 1)
        .map(|i| format!("version v{i}"))
        .collect();
    l.define("half", &half.join(" or "), "alice").unwrap();
    match l.query_count("defname: half or defname: half") {
        Err(crate::catalog::CatalogError::Query(e)) => {
            assert!(
                e.message
                    .contains("conditions once its definitions are expanded"),
                "{e}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn one_like_matcher_the_databases() {
    let dir = Dir::new("like");
    let l = Ledger::open(&dir.0).unwrap();
    let like =
        |p: &str, n: &str| crate::catalog::store::like_any(&l.conn, &[p.to_string()], n).unwrap();
    assert!(like("%.gen.root", "eve_1.gen.root"));
    assert!(!like("%.gen.root", "eve_1.g4.root"));
    assert!(like("eve_%_b.root", "eve_a_b.root"));
    assert!(like("%", ""));
    assert!(!like("_", ""));
    assert!(
        !like("%.ROOT", "x.root"),
        "case sensitive, as the catalog's queries"
    );
    // Many wildcards against a long name: no exponential backtracking.
    let name = "a".repeat(5_000);
    assert!(!like(&format!("{}b", "%a".repeat(40)), &name));
}

/// `added_files` on a sliced input (reference §5.1): the slice's query, re-evaluated, minus
/// what the project delivered. It parses, and it counts the files added since.
#[test]
fn added_files_of_a_slice_counts_the_files_added_since() {
    let dir = Dir::new("added");
    let mut l = Ledger::open(&dir.0).unwrap();
    l.declare(&[
        file("a.raw", &[("data_tier", "raw")], &[]),
        file("b.raw", &[("data_tier", "raw")], &[]),
    ])
    .unwrap();
    l.define("raw", "data_tier raw", "alice").unwrap();
    let input = "defname: raw with limit 3 offset 0";
    assert!(
        l.reserve(
            &launch(
                "exp.s.1",
                Origin::Split {
                    test: false,
                    index: 0
                },
                Some(input)
            ),
            "alice",
            "/"
        )
        .unwrap()
    );
    let basis = crate::plan::queries::RecoveryBasis {
        reference: "exp.s.1",
        reference_created: 0,
        input: Some(input),
        output_patterns: &[],
        version: "v1",
        depth: 1,
    };
    let query = crate::plan::queries::recovery(cascade_crd::RecoveryType::AddedFiles, &basis);
    assert_eq!(l.query_count(&query).unwrap(), 0);
    l.declare(&[file("c.raw", &[("data_tier", "raw")], &[])])
        .unwrap();
    assert_eq!(l.query_names(&query).unwrap(), ["c.raw"]);
}
