//! Import and export over the corpus of realistic POMS files in `tests/ini/`.

use std::collections::BTreeMap;

use super::export::export;
use super::import::{Document, Imported, Options, import, kube_name};
use crate::model::{SourceFile, load_and_validate};

fn corpus() -> Vec<(String, String)> {
    [
        (
            "shared.ini",
            include_str!("../../../tests/ini/good/shared.ini"),
        ),
        (
            "nd_mc.ini",
            include_str!("../../../tests/ini/good/nd_mc.ini"),
        ),
        (
            "calib.ini",
            include_str!("../../../tests/ini/good/calib.ini"),
        ),
        (
            "ana_user.ini",
            include_str!("../../../tests/ini/good/ana_user.ini"),
        ),
    ]
    .into_iter()
    .map(|(n, t)| (n.to_string(), t.to_string()))
    .collect()
}

/// Imports into the experiment's namespace, as its shared file needs to be told.
fn import_ok(files: &[(String, String)]) -> Vec<Imported> {
    let opts = Options {
        namespace: Some("nova".into()),
        ..Options::default()
    };
    let (imported, diags) = import(files, &opts);
    let errors: Vec<String> = diags
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.to_string())
        .collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    imported
}

/// Every document by (kind, name), as YAML.
fn documents(imported: &[Imported]) -> BTreeMap<(&'static str, String), String> {
    imported
        .iter()
        .flat_map(|i| i.documents.iter())
        .map(|d| (d.kind_and_name(), d.to_yaml()))
        .collect()
}

fn sources(imported: &[Imported]) -> Vec<SourceFile> {
    crate::cli::ini::render(imported)
        .into_iter()
        .map(|(path, text)| SourceFile {
            path,
            bytes: text.into_bytes().into(),
        })
        .collect()
}

fn find<'a>(imported: &'a [Imported], kind: &str, name: &str) -> &'a Document {
    imported
        .iter()
        .flat_map(|i| i.documents.iter())
        .find(|d| d.kind_and_name() == (kind_of(kind), name.to_string()))
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn kind_of(kind: &str) -> &'static str {
    ["LoginSetup", "JobType", "Campaign", "CampaignStage"]
        .into_iter()
        .find(|k| *k == kind)
        .unwrap()
}

#[test]
fn the_corpus_imports_as_one_set_and_validates() {
    let imported = import_ok(&corpus());
    let (resources, validated) = load_and_validate(&sources(&imported));
    assert!(validated.graph.is_some(), "{:?}", validated.diagnostics);
    assert_eq!(resources.len(), 19);
}

#[test]
fn keywords_defaults_recoveries_and_patterns_are_carried() {
    let imported = import_ok(&corpus());
    let Document::Campaign(nd) = find(&imported, "Campaign", "nd-mc-2025") else {
        unreachable!()
    };
    assert_eq!(nd.spec.keywords["release"], "v2_3");
    let defaults = nd.spec.defaults.as_ref().unwrap();
    assert_eq!(defaults.software_version.as_deref(), Some("%(release)s"));
    assert_eq!(defaults.completion.as_ref().unwrap().percent, 90.0);
    // Keywords come from [campaign] and from [campaign_defaults].
    let Document::Campaign(ana) = find(&imported, "Campaign", "jdoe-numu-ana") else {
        unreachable!()
    };
    assert_eq!(ana.spec.keywords["user"], "jdoe");
    assert_eq!(ana.spec.keywords["cut"], "numu_2025");
    assert_eq!(ana.spec.state, cascade_crd::CampaignState::Inactive);
    // proj_status is process_status; JSON written as a quoted string is read.
    let Document::JobType(art) = find(&imported, "JobType", "nova-art") else {
        unreachable!()
    };
    assert_eq!(
        art.spec.recoveries[1].kind,
        cascade_crd::RecoveryType::ProcessStatus
    );
    assert_eq!(
        art.spec.recoveries[1].parameter_overrides[0].value,
        "4000MB"
    );
    let Document::JobType(anajt) = find(&imported, "JobType", "nova-ana") else {
        unreachable!()
    };
    assert_eq!(anajt.spec.parameters.len(), 2);
    assert_eq!(
        anajt.spec.output_file_patterns,
        ["%.caf.root", "%.hist.root"]
    );
    // `%%` in patterns is `%`; a dimension fragment stays a fragment.
    let Document::Stage(ana_stage) = find(&imported, "CampaignStage", "nd-mc-2025-ana") else {
        unreachable!()
    };
    assert_eq!(
        ana_stage.spec.depends_on[0].file_pattern,
        "data_tier reco and file_name like '%.reco.root'"
    );
    assert_eq!(ana_stage.spec.merge_default_overrides, Some(true));
    // `%%` in a parameter stays: it is a template, where `%%` is a literal `%`.
    let Document::Stage(skim) = find(&imported, "CampaignStage", "jdoe-numu-ana-skim") else {
        unreachable!()
    };
    assert_eq!(
        skim.spec.parameter_overrides.as_ref().unwrap()[2].value,
        "100%%"
    );
}

#[test]
fn legacy_splits_with_stray_whitespace_and_boolean_spellings() {
    let imported = import_ok(&corpus());
    let Document::Stage(drain) = find(&imported, "CampaignStage", "calib-2025-drain") else {
        unreachable!()
    };
    assert_eq!(
        drain.spec.split.as_deref(),
        Some(&cascade_crd::SplitSpec::Legacy("drainingn(25)".into()))
    );
    assert_eq!(drain.spec.merge_default_overrides, None, "0 is false");
    let Document::Stage(guns) = find(&imported, "CampaignStage", "calib-2025-guns") else {
        unreachable!()
    };
    assert_eq!(guns.spec.merge_default_overrides, Some(true), "yes is true");
    assert_eq!(
        guns.spec.test_parameter_overrides.as_ref().unwrap()[0].value,
        "10"
    );
    let Document::Campaign(calib) = find(&imported, "Campaign", "calib-2025") else {
        unreachable!()
    };
    let d = calib.spec.defaults.as_ref().unwrap();
    assert_eq!(d.clear_schedule_on_exhaustion, Some(false));
    // A stage that sets only completion_type takes the percent from the defaults.
    let Document::Stage(guns) = find(&imported, "CampaignStage", "calib-2025-guns") else {
        unreachable!()
    };
    assert_eq!(guns.spec.completion.as_ref().unwrap().percent, 80.0);
}

#[test]
fn ini_to_yaml_to_ini_to_yaml_is_stable() {
    let first = import_ok(&corpus());
    let (resources, validated) = load_and_validate(&sources(&first));
    let graph = validated.graph.expect("valid");
    let mut exported = Vec::new();
    for key in graph.campaigns.keys() {
        let (text, notes) = export(&resources, &graph, &key.namespace, &key.name).unwrap();
        assert!(notes.is_empty(), "{notes:?}");
        exported.push((format!("{}.ini", key.name), text));
    }
    let second = import_ok(&exported);
    assert_eq!(documents(&first), documents(&second));
    // And once more: the exported text itself is stable.
    let (resources2, validated2) = load_and_validate(&sources(&second));
    let graph2 = validated2.graph.expect("valid");
    for (name, text) in &exported {
        let campaign = name.trim_end_matches(".ini");
        let (again, _) = export(&resources2, &graph2, "nova", campaign).unwrap();
        assert_eq!(&again, text);
    }
}

#[test]
fn the_same_shared_resource_twice_is_kept_once_and_a_different_one_refused() {
    let mut files = corpus();
    files.push(("again.ini".into(), "[login_setup nova_prod_launch]\nhost=novagpvm01.fnal.gov\naccount=novapro\nsetup=source /cvmfs/nova.opensciencegrid.org/novasoft/slf6/novasoft/setup/setup_nova.sh; setup fife_utils\n".into()));
    let (_, diags) = import(&files, &Options::default());
    assert!(
        diags
            .iter()
            .any(|d| d.code == "defined-again" && !d.is_error())
    );
    files.push((
        "other.ini".into(),
        "[login_setup nova_prod_launch]\nhost=elsewhere\naccount=x\n".into(),
    ));
    let (_, diags) = import(&files, &Options::default());
    let e = diags.iter().find(|d| d.code == "duplicate-name").unwrap();
    assert_eq!(
        e.to_string(),
        "other.ini:1:1: error[duplicate-name]: login setup `nova-prod-launch` is defined twice, differently\n  help: the other is at shared.ini:4; rename one of them"
    );
}

#[test]
fn names_become_kubernetes_names() {
    assert_eq!(kube_name("nd_mc_2025"), "nd-mc-2025");
    assert_eq!(kube_name("jdoe numu ana"), "jdoe-numu-ana");
    assert_eq!(kube_name("__X__"), "x");
    assert_eq!(kube_name("!!"), "unnamed");
}

#[test]
/// A stage is named after its campaign whatever else is imported with it, so that stages
/// of different campaigns never collide in a namespace.
fn same_stage_name_in_two_campaigns_gets_each_campaigns_name() {
    let a = "[campaign]\nname=a\n[campaign_defaults]\nlogin_setup=l\njob_type=j\nsoftware_version=v\n[campaign_stage gen]\n";
    let b = "[campaign]\nname=b\n[campaign_defaults]\nlogin_setup=l\njob_type=j\nsoftware_version=v\n[campaign_stage gen]\n";
    let shared = "[login_setup l]\nhost=localhost\naccount=me\n[job_type j]\nlaunch_script=true\noutput_file_patterns=%%.root\n";
    let files = vec![
        ("s.ini".into(), shared.into()),
        ("a.ini".into(), a.into()),
        ("b.ini".into(), b.into()),
    ];
    let imported = import_ok(&files);
    find(&imported, "CampaignStage", "a-gen");
    find(&imported, "CampaignStage", "b-gen");
    // Alone, `a.ini` gives the same name.
    let alone = import_ok(&[files[0].clone(), files[1].clone()]);
    find(&alone, "CampaignStage", "a-gen");
}
