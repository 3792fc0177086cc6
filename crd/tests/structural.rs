//! The CRDs' schemas are structural, as the Kubernetes API server requires before it accepts a
//! CustomResourceDefinition. No API server runs here, so this checks the published rules
//! ("Specifying a structural schema", Kubernetes docs) on the generated schemas directly.

use serde_json::Value;

const TYPES: [&str; 6] = ["object", "array", "string", "integer", "number", "boolean"];
/// Fields a schema inside `anyOf`/`oneOf`/`allOf`/`not` may not set.
const NOT_IN_JUNCTORS: [&str; 5] = [
    "description",
    "type",
    "default",
    "additionalProperties",
    "nullable",
];

fn crds() -> Vec<(String, Value)> {
    cascade_crd::crds()
        .into_iter()
        .map(|crd| {
            let name = crd.metadata.name.clone().unwrap_or_default();
            (name, serde_json::to_value(crd).unwrap())
        })
        .collect()
}

fn flag(node: &Value, key: &str) -> bool {
    node.get(key).and_then(Value::as_bool) == Some(true)
}

/// Every node specified by `properties`, `additionalProperties` or `items` has a type, unless
/// it is int-or-string or preserves unknown fields; tuple `items` are not allowed.
fn check_node(node: &Value, path: &str, errors: &mut Vec<String>) {
    let exempt = flag(node, "x-kubernetes-int-or-string")
        || flag(node, "x-kubernetes-preserve-unknown-fields");
    match node.get("type").and_then(Value::as_str) {
        Some(t) if TYPES.contains(&t) => {}
        Some(t) => errors.push(format!("{path}: unknown type `{t}`")),
        None if exempt => {}
        None => errors.push(format!("{path}: no type")),
    }
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            check_node(v, &format!("{path}.{k}"), errors);
        }
    }
    if let Some(extra) = node.get("additionalProperties").filter(|v| v.is_object()) {
        check_node(extra, &format!("{path}[*]"), errors);
    }
    match node.get("items") {
        Some(items) if items.is_array() => errors.push(format!("{path}: tuple `items`")),
        Some(items) => check_node(items, &format!("{path}[]"), errors),
        None => {}
    }
    if node.get("prefixItems").is_some() || node.get("$ref").is_some() {
        errors.push(format!("{path}: `prefixItems`/`$ref` are not allowed"));
    }
    for junctor in ["anyOf", "oneOf", "allOf"] {
        for (i, sub) in node
            .get(junctor)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            check_junctor(node, sub, &format!("{path}.{junctor}[{i}]"), errors);
        }
    }
    if let Some(sub) = node.get("not") {
        check_junctor(node, sub, &format!("{path}.not"), errors);
    }
}

/// Inside a junctor: no types or descriptions (except int-or-string's own pattern), and every
/// property or item named must also be specified outside it.
fn check_junctor(outer: &Value, sub: &Value, path: &str, errors: &mut Vec<String>) {
    let int_or_string = flag(outer, "x-kubernetes-int-or-string");
    for key in NOT_IN_JUNCTORS {
        if sub.get(key).is_some() && !(int_or_string && key == "type") {
            errors.push(format!("{path}: sets `{key}` inside a junctor"));
        }
    }
    if let Some(props) = sub.get("properties").and_then(Value::as_object) {
        for k in props.keys() {
            if outer.pointer(&format!("/properties/{k}")).is_none() {
                errors.push(format!("{path}: property `{k}` not specified outside"));
            }
        }
    }
    if sub.get("items").is_some() && outer.get("items").is_none() {
        errors.push(format!("{path}: items not specified outside"));
    }
}

#[test]
fn every_crd_schema_is_structural() {
    let mut errors = Vec::new();
    for (name, crd) in crds() {
        let versions = crd["spec"]["versions"].as_array().unwrap();
        assert!(!versions.is_empty(), "{name}: no versions");
        for v in versions {
            let version = v["name"].as_str().unwrap();
            let schema = &v["schema"]["openAPIV3Schema"];
            assert!(schema.is_object(), "{name}/{version}: no schema");
            check_node(schema, &format!("{name}/{version}"), &mut errors);
            // metadata: only name and generateName may be restricted.
            if let Some(meta) = schema.pointer("/properties/metadata") {
                let keys: Vec<&String> = meta
                    .as_object()
                    .unwrap()
                    .keys()
                    .filter(|k| *k != "type")
                    .collect();
                if !keys.is_empty() {
                    errors.push(format!("{name}/{version}: metadata restricted by {keys:?}"));
                }
            }
            assert!(
                v.pointer("/subresources/status").is_some(),
                "{name}/{version}: no status subresource"
            );
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

/// The checker itself: it finds what the API server would refuse.
#[test]
fn the_checker_refuses_non_structural_schemas() {
    let bad: Value = serde_json::json!({
        "type": "object",
        "properties": {
            "untyped": {"description": "no type"},
            "either": {
                "anyOf": [{"type": "string"}, {"properties": {"n": {"type": "integer"}}}]
            },
            "tuple": {"type": "array", "items": [{"type": "string"}]}
        }
    });
    let mut errors = Vec::new();
    check_node(&bad, "bad", &mut errors);
    let text = errors.join("\n");
    for expected in [
        "bad.untyped: no type",
        "bad.either: no type",
        "bad.either.anyOf[0]: sets `type` inside a junctor",
        "bad.either.anyOf[1]: property `n` not specified outside",
        "bad.tuple: tuple `items`",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
}
