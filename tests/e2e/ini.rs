//! `cascade import-ini` and `cascade export-ini` over the corpus in `tests/ini/`.

use std::fs;

use crate::support::{TempDir, cascade, root, text};

/// `cascade import-ini ARGS...`, which must succeed.
fn import_ok(args: &[&str]) -> std::process::Output {
    let mut all = vec!["import-ini"];
    all.extend(args);
    let res = cascade(&all);
    assert!(res.status.success(), "{args:?}: {}", text(&res.stderr));
    res
}

#[test]
fn the_corpus_imports_into_yaml_that_validates() {
    let out = TempDir::new("import");
    let mut args = vec!["import-ini", "--namespace", "nova", "--out", out.path()];
    let files: Vec<String> = ["shared", "nd_mc", "calib", "ana_user"]
        .iter()
        .map(|f| format!("tests/ini/good/{f}.ini"))
        .collect();
    args.extend(files.iter().map(String::as_str));
    let res = cascade(&args);
    assert!(res.status.success(), "{}", text(&res.stderr));
    assert_eq!(
        text(&res.stdout),
        format!("imported 19 resources from 4 files into {}\n", out.path())
    );
    // Nothing is dropped silently: what is not carried is said, with its line.
    let stderr = text(&res.stderr);
    assert!(
        stderr.contains(
            "tests/ini/good/nd_mc.ini:71:1: warning[not-carried]: `[node_positions]` is not carried"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("tests/ini/good/ana_user.ini:3:1: warning[not-carried]: poms_role `analysis` is not carried"), "{stderr}");
    let written: Vec<String> = {
        let mut v: Vec<String> = fs::read_dir(&out.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        written,
        ["ana_user.yaml", "calib.yaml", "nd_mc.yaml", "shared.yaml"]
    );
    let res = cascade(&["validate", out.path()]);
    assert!(res.status.success(), "{}", text(&res.stderr));
    assert!(text(&res.stdout).starts_with("ok: 19 resources"));
}

#[test]
fn bad_files_give_every_problem_located_and_write_nothing() {
    for (args, expected) in [
        (
            vec!["tests/ini/good/shared.ini", "tests/ini/bad/problems.ini"],
            "tests/ini/bad/problems.stderr",
        ),
        (
            vec!["tests/ini/bad/duplicate.ini"],
            "tests/ini/bad/duplicate.stderr",
        ),
    ] {
        let out = TempDir::new("import-bad");
        let dir = out.0.join("never");
        let mut full = vec!["import-ini", "--out", dir.to_str().unwrap()];
        full.extend(args.iter());
        let res = cascade(&full);
        assert_eq!(res.status.code(), Some(1), "{args:?}");
        let want = fs::read_to_string(root().join(expected)).unwrap();
        assert_eq!(text(&res.stderr), want, "{expected}");
        assert!(!dir.exists(), "nothing half-written");
    }
}

#[test]
fn an_example_exports_and_imports_back_the_same() {
    let dir = TempDir::new("export");
    let ini = dir.0.join("eve-mc.ini");
    let res = cascade(&[
        "export-ini",
        "examples/eve_mc",
        "--campaign",
        "eve-mc",
        "--out",
        ini.to_str().unwrap(),
    ]);
    assert!(res.status.success(), "{}", text(&res.stderr));
    assert_eq!(text(&res.stderr), "", "everything carried");
    // What POMS's save needs and how its own export writes patterns.
    let written = fs::read_to_string(&ini).unwrap();
    assert!(
        written.contains("[campaign_defaults]\ndataset_or_split_data=None\n"),
        "{written}"
    );
    assert!(written.contains("file_pattern_1=%.gen.root\n"), "{written}");
    assert!(
        written.contains("output_file_patterns=%.gen.root\n"),
        "{written}"
    );
    assert!(!written.contains("%%"), "{written}");
    let yaml = dir.0.join("yaml");
    import_ok(&[ini.to_str().unwrap(), "--out", yaml.to_str().unwrap()]);
    // The imported campaign plans the same first launch as the original.
    let a = cascade(&["plan", "examples/eve_mc", "--experimenter", "x"]);
    let b = cascade(&["plan", yaml.to_str().unwrap(), "--experimenter", "x"]);
    assert_eq!(text(&a.stdout), text(&b.stdout));
    let res = cascade(&["export-ini", "examples/eve_mc", "--campaign", "nope"]);
    assert_eq!(res.status.code(), Some(1));
    assert!(
        text(&res.stderr).contains("no campaign `default/nope`"),
        "{}",
        text(&res.stderr)
    );
}

/// POMS reads stages from their sections and ignores `campaign_stage_list` when it saves: a
/// stale list entry, or dependencies of a stage that has no section, are warnings, and the
/// rest of the campaign imports.
#[test]
fn a_stale_stage_list_warns_and_the_campaign_imports() {
    let dir = TempDir::new("import-stale");
    let ini = dir.0.join("stale.ini");
    fs::write(
        &ini,
        "[campaign]\nexperiment = nova\nname = stale\ncampaign_stage_list = gen, retired\n\n\
         [campaign_defaults]\nvo_role = Production\nsoftware_version = v1\ndataset_or_split_data = none\n\
         cs_split_type = None\ncompletion_type = complete\ncompletion_pct = 100\nparam_overrides = []\n\
         test_param_overrides = []\nmerge_overrides = False\nlogin_setup = nova_prod_launch\njob_type = nova_fcl_gen\nstage_type = generator\n\n\
         [campaign_stage gen]\n\n[dependencies retired]\ncampaign_stage_1 = gen\nfile_pattern_1 = %.root\n",
    )
    .unwrap();
    let out_dir = dir.0.join("out");
    let res = cascade(&[
        "import-ini",
        "tests/ini/good/shared.ini",
        ini.to_str().unwrap(),
        "--namespace",
        "nova",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    let stderr = text(&res.stderr);
    assert!(res.status.success(), "{stderr}");
    assert!(
        stderr
            .contains("stale.ini:4:1: warning[unknown-stage]: campaign_stage_list names `retired`"),
        "{stderr}"
    );
    assert!(stderr.contains("warning[unknown-stage]: `[dependencies retired]` is for a stage that has no `[campaign_stage retired]` section"), "{stderr}");
    let yaml = fs::read_to_string(out_dir.join("stale.yaml")).unwrap();
    assert!(yaml.contains("name: gen"), "{yaml}");
    assert!(!yaml.contains("retired"), "{yaml}");
}

/// A campaign file alone names login setups and job types that POMS keeps in its database:
/// one error lists them all with where they are named. Converted once (`shared.ini`), they
/// are passed with `--with`, and each campaign file imports on its own.
#[test]
fn missing_shared_resources_are_listed_together_and_with_resolves_them() {
    let dir = TempDir::new("import-with");
    let res = cascade(&[
        "import-ini",
        "tests/ini/good/nd_mc.ini",
        "--out",
        dir.path(),
    ]);
    assert_eq!(res.status.code(), Some(1));
    let stderr = text(&res.stderr);
    assert_eq!(
        stderr.matches("error[unknown-reference]").count(),
        1,
        "{stderr}"
    );
    for name in [
        "job type `nova_ana`",
        "job type `nova_art`",
        "job type `nova_fcl_gen`",
        "login setup `nova_prod_launch`",
    ] {
        assert!(stderr.contains(name), "{name}: {stderr}");
    }
    assert!(
        stderr.contains("tests/ini/good/nd_mc.ini:19:1: error[unknown-reference]"),
        "{stderr}"
    );
    let shared = dir.0.join("shared");
    // A file of shared resources has no experiment of its own: it is given one.
    import_ok(&[
        "tests/ini/good/shared.ini",
        "--namespace",
        "nova",
        "--out",
        shared.to_str().unwrap(),
    ]);
    let campaign = dir.0.join("campaign");
    import_ok(&[
        "tests/ini/good/nd_mc.ini",
        "--with",
        shared.to_str().unwrap(),
        "--out",
        campaign.to_str().unwrap(),
    ]);
    // Only the campaign file's own resources are written; with the shared ones they validate.
    assert!(!campaign.join("shared.yaml").exists());
    let res = cascade(&[
        "validate",
        shared.to_str().unwrap(),
        campaign.to_str().unwrap(),
    ]);
    assert!(res.status.success(), "{}", text(&res.stderr));
}

/// Names that had to change keep their POMS form: an annotation on the resource, written
/// back by `export-ini`, and reported to POMS's wrappers in the launch environment.
#[test]
fn poms_names_are_kept_exported_and_reported_to_launches() {
    let dir = TempDir::new("import-names");
    let yaml = dir.0.join("yaml");
    import_ok(&[
        "tests/ini/good/shared.ini",
        "tests/ini/good/nd_mc.ini",
        "--namespace",
        "nova",
        "--out",
        yaml.to_str().unwrap(),
    ]);
    let campaign = fs::read_to_string(yaml.join("nd_mc.yaml")).unwrap();
    assert!(
        campaign.contains("cascade.dev/poms-name: nd_mc_2025"),
        "{campaign}"
    );
    let ini = dir.0.join("back.ini");
    let res = cascade(&[
        "export-ini",
        yaml.to_str().unwrap(),
        "--campaign",
        "nova/nd-mc-2025",
        "--out",
        ini.to_str().unwrap(),
    ]);
    assert!(res.status.success(), "{}", text(&res.stderr));
    let back = fs::read_to_string(&ini).unwrap();
    for line in [
        "name=nd_mc_2025\n",
        "login_setup=nova_prod_launch\n",
        "[login_setup nova_prod_launch]\n",
        "[job_type nova_art]\n",
    ] {
        assert!(back.contains(line), "{line:?} in\n{back}");
    }
    let plan = cascade(&["plan", yaml.to_str().unwrap(), "--format", "json"]);
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    let env = plan["actions"][0]["launch"]["env"]
        .as_array()
        .unwrap()
        .clone();
    let get = |k: &str| {
        env.iter()
            .find(|kv| kv[0] == k)
            .map(|kv| kv[1].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(get("POMS4_CAMPAIGN_NAME"), "nd_mc_2025");
    assert_eq!(get("CASCADE_CAMPAIGN"), "nd-mc-2025");
    assert!(
        get("POMS_CAMPAIGN_NAME").starts_with("nd_mc_2025__"),
        "{}",
        get("POMS_CAMPAIGN_NAME")
    );
}

/// A problem only the converted YAML shows (here: shared resources converted into another
/// namespace) is told at the `.ini` section it comes from, never at a YAML file that was not
/// written.
#[test]
fn problems_of_the_converted_yaml_point_at_the_ini_lines() {
    let dir = TempDir::new("import-lines");
    let shared = dir.0.join("shared");
    import_ok(&[
        "tests/ini/good/shared.ini",
        "--out",
        shared.to_str().unwrap(),
    ]);
    let out = dir.0.join("campaign");
    let res = cascade(&[
        "import-ini",
        "tests/ini/good/nd_mc.ini",
        "--with",
        shared.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(res.status.code(), Some(1));
    let stderr = text(&res.stderr);
    assert!(
        stderr.contains("tests/ini/good/nd_mc.ini:24:1: error[unknown-reference]: JobType `nova-fcl-gen` does not exist in namespace `nova`"),
        "{stderr}"
    );
    assert!(!stderr.contains(".yaml:"), "{stderr}");
    assert!(!out.exists(), "nothing written");
}

/// A shared file of job types and login setups imports whole, used or not, and exports back
/// as one (`export-ini --shared`): the round trip keeps every one of them.
#[test]
fn a_shared_file_round_trips_every_resource() {
    let dir = TempDir::new("import-shared");
    let a = dir.0.join("a");
    let res = import_ok(&[
        "tests/ini/good/shared.ini",
        "--namespace",
        "nova",
        "--out",
        a.to_str().unwrap(),
    ]);
    assert!(text(&res.stdout).starts_with("imported 5 resources from 1 file"));
    let ini = dir.0.join("back.ini");
    let res = cascade(&[
        "export-ini",
        a.to_str().unwrap(),
        "--shared",
        "nova",
        "--out",
        ini.to_str().unwrap(),
    ]);
    assert!(res.status.success(), "{}", text(&res.stderr));
    let b = dir.0.join("b");
    import_ok(&[
        ini.to_str().unwrap(),
        "--namespace",
        "nova",
        "--out",
        b.to_str().unwrap(),
    ]);
    let body = |p: std::path::PathBuf| {
        let t = fs::read_to_string(p).unwrap();
        t.lines().skip(1).collect::<Vec<_>>().join("\n")
    };
    assert_eq!(body(a.join("shared.yaml")), body(b.join("back.yaml")));
}
