//! The reference's §3.6 vectors as golden tests. Fake dataset `gen_cfg` = 5 files f1..f5 with
//! runs 1.0, 1.1, 2.0, 2.1, 3.0 and end times 2016-10-01..05 01:00 UTC. Where POMS has a bug the
//! test name says what differs.

use super::*;
use cascade_crd::split::parse_legacy;

fn gen_cfg() -> Vec<FileFact> {
    let runs = [(1, 0), (1, 1), (2, 0), (2, 1), (3, 0)];
    (0..5)
        .map(|i| FileFact {
            name: format!("f{}", i + 1),
            run: Some(runs[i]),
            end_time: Some(1_475_283_600 + 86_400 * i as i64),
        })
        .collect()
}

fn text(s: &str) -> SplitData {
    SplitData::Text(s.into())
}

/// Runs `policy` until exhausted (at most `limit` calls): (slice names, files per slice).
fn drain(
    spec: &str,
    data: &SplitData,
    files: &[FileFact],
    limit: usize,
) -> (Vec<String>, Vec<Vec<String>>, bool) {
    let policy = parse_legacy(spec).unwrap().unwrap();
    let mut cursor = Cursor::Start;
    let (mut names, mut sets) = (Vec::new(), Vec::new());
    for _ in 0..limit {
        match next(&policy, data, &cursor, files, &SplitContext::default()) {
            Next::Slice { slice, cursor: c } => {
                names.push(slice.name);
                sets.push(slice.files);
                cursor = c;
            }
            Next::Exhausted => return (names, sets, true),
        }
    }
    (names, sets, false)
}

fn v(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn list_takes_each_item_then_ends() {
    let (names, _, ended) = drain("list()", &text("a,b,gen_cfg"), &[], 10);
    assert_eq!(names, v(&["a", "b", "gen_cfg"]));
    assert!(ended);
}

#[test]
fn multiparam_first_list_varies_fastest() {
    let lists = SplitData::Lists(vec![v(&["a", "b"]), v(&["c", "d"]), v(&["e", "f"])]);
    let (names, _, ended) = drain("multiparam()", &lists, &[], 20);
    assert_eq!(
        names,
        v(&[
            "a_c_e", "b_c_e", "a_d_e", "b_d_e", "a_c_f", "b_c_f", "a_d_f", "b_d_f"
        ])
    );
    assert!(ended);
    let guide = SplitData::Lists(vec![v(&["electron", "muon"]), v(&["1GeV", "3GeV"])]);
    let (names, _, _) = drain("multiparam", &guide, &[], 20);
    assert_eq!(
        names,
        v(&["electron_1GeV", "muon_1GeV", "electron_3GeV", "muon_3GeV"])
    );
}

#[test]
fn byrun_high_is_exclusive() {
    let (names, sets, ended) = drain("byrun(low=1,high=4)", &text("gen_cfg"), &gen_cfg(), 10);
    assert_eq!(
        names,
        v(&["gen_cfg_run_1", "gen_cfg_run_2", "gen_cfg_run_3"])
    );
    assert_eq!(sets, vec![v(&["f1", "f2"]), v(&["f3", "f4"]), v(&["f5"])]);
    assert!(ended);
    let (names, _, ended) = drain("byrun(low=1,high=3)", &text("gen_cfg"), &gen_cfg(), 10);
    assert_eq!(names.len(), 2);
    assert!(ended);
}

#[test]
fn byrun_with_spaces_honours_parameters_unlike_poms() {
    // POMS ignores parameters written with spaces and never ends; we parse them.
    let (names, _, ended) = drain("byrun( low=1, high=4 ) ", &text("gen_cfg"), &gen_cfg(), 10);
    assert_eq!(names.len(), 3);
    assert!(ended);
}

#[test]
fn byexistingruns_one_slice_per_run_and_subrun() {
    let (names, sets, ended) = drain("byexistingruns()", &text("gen_cfg"), &gen_cfg(), 10);
    assert_eq!(names[0], "gen_cfg_slice_0_run_1.0000");
    assert_eq!(names[1], "gen_cfg_slice_1_run_1.0001");
    assert_eq!(
        sets,
        vec![v(&["f1"]), v(&["f2"]), v(&["f3"]), v(&["f4"]), v(&["f5"])]
    );
    assert!(ended);
}

#[test]
fn draining_returns_the_dataset_forever() {
    let (names, _, ended) = drain("draining", &text("gen_cfg"), &gen_cfg(), 5);
    assert_eq!(names, v(&["gen_cfg"; 5]));
    assert!(!ended);
}

#[test]
fn mod_takes_every_nth_file() {
    for spec in ["mod(3)", "mod( 3 )"] {
        let (names, sets, ended) = drain(spec, &text("gen_cfg"), &gen_cfg(), 10);
        assert_eq!(
            names,
            v(&[
                "gen_cfg_slice0_of_3",
                "gen_cfg_slice1_of_3",
                "gen_cfg_slice2_of_3"
            ])
        );
        assert_eq!(sets, vec![v(&["f1", "f4"]), v(&["f2", "f5"]), v(&["f3"])]);
        assert!(ended);
    }
}

#[test]
fn mod_underscore_form_is_rejected_with_a_hint() {
    assert!(parse_legacy("mod_3").is_err());
}

#[test]
fn nfiles_exhaustion_known_before_an_empty_slice_unlike_poms() {
    // POMS creates a 4th, empty definition before noticing the end; we answer Exhausted.
    let (names, sets, ended) = drain("nfiles(2)", &text("gen_cfg"), &gen_cfg(), 10);
    assert_eq!(
        names,
        v(&[
            "gen_cfg_slice0_files2",
            "gen_cfg_slice1_files2",
            "gen_cfg_slice2_files2"
        ])
    );
    assert_eq!(sets, vec![v(&["f1", "f2"]), v(&["f3", "f4"]), v(&["f5"])]);
    assert!(ended);
}

#[test]
fn drainingn_takes_undelivered_files() {
    let (names, sets, ended) = drain("drainingn(2)", &text("gen_cfg"), &gen_cfg(), 10);
    assert_eq!(
        names,
        v(&[
            "gen_cfg_slice_0_stage_2",
            "gen_cfg_slice_2_stage_2",
            "gen_cfg_slice_4_stage_2"
        ])
    );
    assert_eq!(sets, vec![v(&["f1", "f2"]), v(&["f3", "f4"]), v(&["f5"])]);
    assert!(ended);
}

#[test]
fn stagedfiles_takes_consumed_files_of_the_project() {
    let (names, sets, ended) = drain("stagedfiles(2)", &text("P"), &gen_cfg(), 10);
    assert_eq!(names[0], "P_slice_0_stage_2");
    assert_eq!(sets.len(), 3);
    assert!(ended);
}

#[test]
fn limitn_same_files_every_time() {
    let (names, sets, ended) = drain("limitn(2)", &text("gen_cfg"), &gen_cfg(), 4);
    assert_eq!(names, v(&["gen_cfg_limit2"; 4]));
    assert!(sets.iter().all(|s| s == &v(&["f1", "f2"])));
    assert!(!ended);
}

#[test]
fn new_windows_with_lasttime_parsed_correctly_unlike_poms() {
    // POMS drops lasttime's first digit and ends after one window; parsed correctly there is a
    // second window 10-02 -> 10-03, then the end (1475452800 > lasttime - fts - window).
    let (names, sets, ended) = drain(
        "new(firsttime=1475280000,window=1d,lasttime=1475539200)",
        &text("gen_cfg"),
        &gen_cfg(),
        10,
    );
    assert_eq!(
        names,
        v(&[
            "gen_cfg_time_1475280000__1475366400",
            "gen_cfg_time_1475366400__1475452800"
        ])
    );
    assert_eq!(sets, vec![v(&["f1"]), v(&["f2"])]);
    assert!(ended);
}

#[test]
fn new_window_query_is_iso_utc() {
    let policy = parse_legacy("new(firsttime=1475280000,window=1d,lasttime=1475539200)")
        .unwrap()
        .unwrap();
    let Next::Slice { slice, .. } = next(
        &policy,
        &text("gen_cfg"),
        &Cursor::Start,
        &gen_cfg(),
        &SplitContext::default(),
    ) else {
        panic!()
    };
    assert_eq!(
        slice.query,
        "defname: gen_cfg and end_time > '2016-10-01T00:00:00' and end_time <= '2016-10-02T00:00:00'"
    );
}

#[test]
fn new_with_spaces_honours_parameters_unlike_poms() {
    let (names, _, _) = drain(
        "new( firsttime=1475280000, window=1d, lasttime=1475539200 )",
        &text("gen_cfg"),
        &gen_cfg(),
        10,
    );
    assert_eq!(names.len(), 2);
}

/// `round` truncates the window and rounds its first start down; `localtime=1` rounds in the
/// controller's zone and writes the query's times with that offset.
#[test]
fn new_windows_round_in_utc_or_in_local_time() {
    // 2016-10-05T13:00:00Z; fts 0, window 1d, round 1d.
    let now = 1_475_672_400;
    let first = |spec: &str, local_offset: i32| {
        let policy = parse_legacy(spec).unwrap().unwrap();
        let ctx = SplitContext {
            now,
            delivered_snapshot: None,
            local_offset,
        };
        match next(&policy, &text("d"), &Cursor::Start, &[], &ctx) {
            Next::Slice { slice, cursor } => (slice, cursor),
            Next::Exhausted => panic!("{spec}: exhausted"),
        }
    };
    // bound = floor_1d(now - 1d) = 2016-10-04T00:00Z = 1475539200.
    let (slice, cursor) = first("new(window=1d,round=1d,fts=0)", 0);
    assert_eq!(slice.name, "d_time_1475539200__1475625600");
    assert_eq!(cursor, Cursor::Time(1_475_625_600));
    // A 36 h window truncated to a multiple of a day is one day.
    let (slice, _) = first("new(window=36h,round=1d,fts=0)", 0);
    assert_eq!(slice.name, "d_time_1475539200__1475625600");
    // Five hours west of UTC (-18000 s), local midnight of 2016-10-04 is 05:00Z.
    let (slice, _) = first("new(window=1d,round=1d,fts=0,localtime=1)", -18_000);
    assert_eq!(slice.name, "d_time_1475557200__1475643600");
    assert_eq!(
        slice.query,
        "defname: d and end_time > '2016-10-04T00:00:00-05:00' and end_time <= '2016-10-05T00:00:00-05:00'"
    );
}

/// The cumulative policies leave out what was delivered by the snapshot the ledger recorded
/// for it, or by name when none was recorded.
#[test]
fn delivered_files_are_left_out_by_their_snapshot() {
    let policy = parse_legacy("drainingn(2)").unwrap().unwrap();
    let seen = Cursor::Delivered(["f1".to_string(), "f2".to_string()].into());
    let query = |delivered_snapshot| match next(
        &policy,
        &text("gen_cfg"),
        &seen,
        &gen_cfg(),
        &SplitContext {
            now: 0,
            delivered_snapshot,
            local_offset: 0,
        },
    ) {
        Next::Slice { slice, .. } => slice.query,
        Next::Exhausted => panic!("exhausted"),
    };
    assert_eq!(
        query(Some(17)),
        "defname: gen_cfg minus snapshot_id 17 with limit 2"
    );
    assert_eq!(
        query(None),
        "defname: gen_cfg minus (file_name 'f1' or file_name 'f2') with limit 2"
    );
}
