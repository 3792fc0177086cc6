//! The webhook's verdicts on the example campaign's objects, changed as users change them.

use std::sync::Arc;

use kube::api::DynamicObject;
use serde_json::{Value, json};

use super::{Verdict, review, schema_errors};
use crate::k8s::objects::{ObjRef, Objects};

const EXAMPLE: &[&str] = &[
    include_str!("../../../../examples/eve_mc/setup.yaml"),
    include_str!("../../../../examples/eve_mc/campaign.yaml"),
];

fn example() -> Vec<(String, DynamicObject)> {
    EXAMPLE
        .iter()
        .flat_map(|text| text.split("\n---"))
        .filter(|doc| doc.contains("kind:"))
        .map(|doc| {
            let value: Value = serde_saphyr::from_str(doc).expect("example parses");
            let kind = value["kind"].as_str().expect("kind").to_string();
            (kind, serde_json::from_value(value).expect("an object"))
        })
        .collect()
}

fn namespace(objects: &[(String, DynamicObject)]) -> Objects {
    objects
        .iter()
        .map(|(kind, o)| (ObjRef::of(kind, o), Arc::new(o.clone())))
        .collect()
}

fn find(objects: &[(String, DynamicObject)], name: &str) -> (String, DynamicObject) {
    objects
        .iter()
        .find(|(_, o)| o.metadata.name.as_deref() == Some(name))
        .cloned()
        .unwrap_or_else(|| panic!("no {name} in the example"))
}

#[test]
fn every_example_object_is_admitted_among_the_others() {
    let all = example();
    let context = namespace(&all);
    for (kind, obj) in &all {
        let verdict = review(kind, obj, &context);
        assert_eq!(
            verdict,
            Verdict::default(),
            "{kind} {:?}",
            obj.metadata.name
        );
    }
}

#[test]
fn a_wrong_type_is_refused_with_the_loaders_located_message() {
    let all = example();
    let (kind, mut stage) = find(&all, "mc-gen");
    stage.data["spec"]["completion"]["percent"] = json!("ninety");
    let refusal = review(&kind, &stage, &namespace(&all))
        .refusal
        .expect("refused");
    // `NS/Kind/NAME.yaml:LINE:COL: error[...]`, as `cascade validate` prints.
    let located = refusal
        .strip_prefix("eve/CampaignStage/mc-gen.yaml:")
        .expect("located in the object's document");
    let (line, rest) = located.split_once(':').expect("a line");
    let (col, _) = rest.split_once(':').expect("a column");
    assert!(
        line.parse::<u32>().is_ok() && col.parse::<u32>().is_ok(),
        "{refusal}"
    );
    assert!(refusal.contains("`ninety`"), "{refusal}");
}

#[test]
fn the_schema_check_locates_by_json_pointer() {
    let all = example();
    let (kind, mut stage) = find(&all, "mc-gen");
    assert_eq!(
        schema_errors(&ObjRef::of(&kind, &stage), &stage),
        Vec::<String>::new()
    );
    stage.data["spec"]["campaign"] = json!(12);
    let errors = schema_errors(&ObjRef::of(&kind, &stage), &stage);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("eve/CampaignStage/mc-gen.yaml: error[schema]: at `/spec/campaign`:"),
        "{errors:?}"
    );
}

#[test]
fn an_unknown_field_is_refused() {
    let all = example();
    let (kind, mut campaign) = find(&all, "eve-mc");
    campaign.data["spec"]["stagez"] = json!([]);
    let refusal = review(&kind, &campaign, &namespace(&all))
        .refusal
        .expect("refused");
    assert!(refusal.contains("stagez"), "{refusal}");
}

#[test]
fn a_validation_error_is_refused_with_the_located_message_validate_prints() {
    let all = example();
    let (kind, mut stage) = find(&all, "mc-g4");
    // Schema-valid, refused by the validator's `invalid-percent` rule.
    stage.data["spec"]["completion"] = json!({"type": "located", "percent": 250});
    let refusal = review(&kind, &stage, &namespace(&all))
        .refusal
        .expect("refused");
    assert!(
        refusal.starts_with("eve/CampaignStage/mc-g4.yaml:"),
        "{refusal}"
    );
    assert!(refusal.contains("error[invalid-percent]"), "{refusal}");
}

#[test]
fn a_reference_to_an_object_not_applied_yet_is_a_warning() {
    let all = example();
    // Only the stage, as the first file of `kubectl apply -f dir/` would send it.
    let (kind, stage) = find(&all, "mc-g4");
    let verdict = review(&kind, &stage, &Objects::new());
    assert_eq!(verdict.refusal, None);
    assert!(!verdict.warnings.is_empty());
    assert!(
        verdict
            .warnings
            .iter()
            .all(|w| w.contains("unknown-reference")),
        "{:?}",
        verdict.warnings
    );
}

#[test]
fn an_object_that_breaks_another_is_refused_naming_both() {
    let all = example();
    // mc-gen made to depend on mc-g4, which depends on mc-gen: a cycle through two objects.
    let (kind, mut stage) = find(&all, "mc-gen");
    stage.data["spec"]["dependsOn"] = json!([{"stage": "mc-g4", "filePattern": "%.g4.root"}]);
    stage.data["spec"]["type"] = json!("regular");
    let refusal = review(&kind, &stage, &namespace(&all))
        .refusal
        .expect("a cycle is refused");
    assert!(refusal.contains("mc-gen"), "{refusal}");
}

#[test]
fn hostile_text_in_a_reference_is_named_and_not_acted_on() {
    let all = example();
    let (kind, mut stage) = find(&all, "mc-gen");
    stage.data["spec"]["jobType"] = json!("$(rm -rf /)");
    let verdict = review(&kind, &stage, &namespace(&all));
    // No such job type: admitted with a warning, and the controller sets the stage aside.
    assert_eq!(verdict.refusal, None);
    assert!(
        verdict
            .warnings
            .iter()
            .any(|w| w.contains("`$(rm -rf /)` does not exist")),
        "{:?}",
        verdict.warnings
    );
}

#[test]
fn an_object_created_by_generate_name_is_checked_under_a_stand_in_name() {
    use kube::core::admission::AdmissionReview;
    let all = example();
    let (_, mut stage) = find(&all, "mc-g4");
    stage.metadata.name = None;
    stage.metadata.generate_name = Some("mc-g4-".into());
    let review: AdmissionReview<DynamicObject> = serde_json::from_value(json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "u1",
            "kind": {"group": "cascade.dev", "version": "v1alpha1", "kind": "CampaignStage"},
            "resource": {"group": "cascade.dev", "version": "v1alpha1", "resource": "campaignstages"},
            "name": "",
            "namespace": "eve",
            "operation": "CREATE",
            "userInfo": {},
            "object": stage,
        }
    }))
    .expect("a review");
    let req = review.try_into().expect("a request");
    let response = super::answer(&req, Ok(namespace(&all)));
    assert!(response.allowed, "{:?}", response.result);
    assert_eq!(response.uid, "u1");
}

#[test]
fn an_object_is_not_blamed_for_another_that_was_invalid_already() {
    let mut all = example();
    for (_, obj) in all.iter_mut() {
        if obj.metadata.name.as_deref() == Some("mc-g4") {
            obj.data["spec"]["completion"] = json!({"type": "located", "percent": 250});
        }
    }
    let context = namespace(&all);
    let (kind, campaign) = find(&all, "eve-mc");
    assert_eq!(review(&kind, &campaign, &context), Verdict::default());
}
