use super::*;
use crate::model::{SourceFile, load_and_validate};

const BASE: &str = r#"apiVersion: cascade.dev/v1alpha1
kind: LoginSetup
metadata: {name: here, namespace: exp}
spec: {host: localhost, account: prod}
---
apiVersion: cascade.dev/v1alpha1
kind: JobType
metadata: {name: job, namespace: exp}
spec:
  launchScript: fife_launch -c gen.cfg
  parameters: [["-Osubmit.N=", "5"], ["-Oglobal.release=", "%(version)s"]]
  outputFilePatterns: ["%.root"]
---
apiVersion: cascade.dev/v1alpha1
kind: Campaign
metadata: {name: c, namespace: exp}
spec:
  removalPolicy: kill
  defaults: {loginSetup: here, jobType: job, softwareVersion: v1}
---
apiVersion: cascade.dev/v1alpha1
kind: CampaignStage
metadata: {name: gen, namespace: exp}
spec: {campaign: c, type: generator}
---
apiVersion: cascade.dev/v1alpha1
kind: CampaignStage
metadata: {name: reco, namespace: exp}
spec:
  campaign: c
  dependsOn: [{stage: gen, filePattern: "%.root"}]
"#;

fn load(text: &str) -> (Vec<Resource>, Option<DesiredGraph>) {
    let (resources, validated) = load_and_validate(&[SourceFile {
        path: "c.yaml".into(),
        bytes: text.as_bytes().into(),
    }]);
    (resources, validated.graph)
}

fn review_of(base: &str, head: &str, observed: &Observed) -> Review {
    let (b, bg) = load(base);
    let (h, hg) = load(head);
    let settings = LaunchSettings::default();
    review(
        &Revision {
            resources: &b,
            graph: bg.as_ref(),
        },
        &Revision {
            resources: &h,
            graph: hg.as_ref(),
        },
        &Context {
            observed,
            launching_now: &BTreeSet::new(),
            experimenter: "alice",
            settings: &settings,
        },
    )
}

fn effects(r: &Review, stage: &str) -> Vec<Effect> {
    r.stages
        .iter()
        .find(|s| s.stage == stage)
        .map(|s| s.effects.clone())
        .unwrap_or_default()
}

#[test]
fn reformatting_and_reordering_change_nothing() {
    let head = BASE.replace(
        "spec: {host: localhost, account: prod}",
        "spec:\n  account: prod\n  host: localhost   # same thing",
    );
    let r = review_of(BASE, &head, &Observed::default());
    assert!(r.resources.is_empty(), "{:?}", r.resources);
    assert!(!r.alters_production());
}

#[test]
fn a_parameter_change_relaunches_every_stage_of_the_job_type_with_a_word_diff() {
    let head = BASE.replace(r#"["-Osubmit.N=", "5"]"#, r#"["-Osubmit.N=", "50"]"#);
    let r = review_of(BASE, &head, &Observed::default());
    assert!(r.alters_production());
    for stage in ["exp/gen", "exp/reco"] {
        let found = effects(&r, stage);
        let [
            Effect::Relaunches {
                before,
                after,
                words,
            },
        ] = found.as_slice()
        else {
            panic!("{stage}: {found:?}");
        };
        assert!(before.contains("-Osubmit.N=5 ") && after.contains("-Osubmit.N=50 "));
        assert!(
            words.contains("[--Osubmit.N=5-]{+-Osubmit.N=50+}"),
            "{words}"
        );
    }
    let [job] = r.resources.as_slice() else {
        panic!("{:?}", r.resources);
    };
    assert_eq!(
        (job.kind, job.key.as_str(), &job.change),
        ("JobType", "exp/job", &Change::Modified)
    );
    assert!(
        job.diff.contains("\"5\"") && job.diff.contains("\"50\""),
        "{}",
        job.diff
    );
}

#[test]
fn a_removed_stage_stops_under_its_campaigns_policy_and_names_its_open_submissions() {
    let head = BASE[..BASE.rfind("---").unwrap()].to_string();
    let mut observed = Observed::default();
    for (id, status) in [
        ("exp.reco.1", crate::plan::Status::Running),
        ("exp.reco.2", crate::plan::Status::Located),
    ] {
        observed.submissions.push(crate::plan::Submission {
            id: id.into(),
            stage: ObjectKey::new("exp", "reco").into(),
            seq: 1,
            origin: crate::plan::Origin::Join,
            test: false,
            dataset: None,
            input: None,
            cursor_after: None,
            cursor_snapshot: None,
            status,
            jobs: Default::default(),
            launched: true,
            created: 0,
            force_located: false,
        });
    }
    let r = review_of(BASE, &head, &observed);
    let reco = r.stages.iter().find(|s| s.stage == "exp/reco").unwrap();
    assert_eq!(
        reco.effects,
        [Effect::Stops {
            policy: RemovalPolicy::Kill
        }]
    );
    assert_eq!(reco.open_submissions, ["exp.reco.1"]);
    assert!(effects(&r, "exp/gen").is_empty());
}

#[test]
fn pausing_splitting_recovering_and_completing_differently_are_each_said() {
    let head = BASE
        .replace(
            "spec: {campaign: c, type: generator}",
            "spec: {campaign: c, type: generator, paused: true}",
        )
        .replace(
            "  dependsOn: [{stage: gen, filePattern: \"%.root\"}]\n",
            "  dependsOn: [{stage: gen, filePattern: \"%.root\"}]\n  split: nfiles(10)\n  completion: {type: complete, percent: 80}\n",
        )
        .replace(
            "  outputFilePatterns: [\"%.root\"]\n",
            "  outputFilePatterns: [\"%.root\"]\n  recoveries: [{type: consumed_status}]\n",
        );
    let r = review_of(BASE, &head, &Observed::default());
    assert!(effects(&r, "exp/gen").contains(&Effect::Pauses));
    let reco = effects(&r, "exp/reco");
    assert!(reco.iter().any(|e| matches!(e, Effect::SplitChanges { before, after } if before.starts_with("none") && after.contains("nfiles"))), "{reco:?}");
    assert!(
        reco.iter().any(
            |e| matches!(e, Effect::RecoveriesChange { after, .. } if after == "consumed_status")
        ),
        "{reco:?}"
    );
    assert!(
        reco.iter()
            .any(|e| matches!(e, Effect::CompletionChanges { .. })),
        "{reco:?}"
    );
}

#[test]
fn an_invalid_head_has_no_impact() {
    let head = BASE.replace(
        "launchScript: fife_launch -c gen.cfg",
        "launchScript: fife_launch -c gen.cfg\n  colour: red",
    );
    assert!(load(&head).1.is_none(), "the head must not validate");
    let r = review_of(BASE, &head, &Observed::default());
    assert!(r.stages.is_empty());
    assert!(!r.alters_production());
}

#[test]
fn a_new_stage_launches() {
    let head = format!(
        "{BASE}---\napiVersion: cascade.dev/v1alpha1\nkind: CampaignStage\nmetadata: {{name: ana, namespace: exp}}\nspec:\n  campaign: c\n  dependsOn: [{{stage: reco, filePattern: \"%.root\"}}]\n"
    );
    let r = review_of(BASE, &head, &Observed::default());
    assert_eq!(effects(&r, "exp/ana"), [Effect::Launches { now: false }]);
    assert_eq!(r.resources.len(), 1);
    assert_eq!(r.resources[0].change, Change::Added);
}

#[test]
fn the_first_definitions_launch_every_stage() {
    let settings = LaunchSettings::default();
    let (h, hg) = load(BASE);
    let r = review(
        &Revision {
            resources: &[],
            graph: None,
        },
        &Revision {
            resources: &h,
            graph: hg.as_ref(),
        },
        &Context {
            observed: &Observed::default(),
            launching_now: &BTreeSet::new(),
            experimenter: "alice",
            settings: &settings,
        },
    );
    assert!(!r.base_invalid);
    assert_eq!(effects(&r, "exp/gen"), [Effect::Launches { now: false }]);
    assert_eq!(effects(&r, "exp/reco"), [Effect::Launches { now: false }]);
}

#[test]
fn an_invalid_base_claims_no_impact_and_cannot_be_taken_for_no_change() {
    let base = BASE.replace(
        "launchScript: fife_launch -c gen.cfg",
        "launchScript: fife_launch -c gen.cfg\n  colour: red",
    );
    let r = review_of(&base, BASE, &Observed::default());
    assert!(r.base_invalid);
    assert!(
        r.stages.is_empty(),
        "no stage is claimed new: {:?}",
        r.stages
    );
    assert!(r.alters_production());
}
