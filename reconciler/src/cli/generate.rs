//! `cascade schema` and `cascade crd`: the generated artefacts checked in under `schemas/` and
//! `charts/cascade/crds/`.

use std::fs;
use std::path::PathBuf;

use schemars::{JsonSchema, Schema};
use serde_json::{Value, json};

use super::Exit;

#[derive(clap::Args, Debug)]
pub struct SchemaArgs {
    /// Directory to write `<kind>.json` into
    #[arg(long, default_value = "schemas")]
    pub out: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct CrdArgs {
    /// Directory to write `<plural>.cascade.dev.yaml` into
    #[arg(long, default_value = "charts/cascade/crds")]
    pub out: PathBuf,
}

/// Every generated JSON Schema: (file name, contents).
pub fn schemas() -> Vec<(String, String)> {
    let kinds = spec_schemas();
    let mut out: Vec<(String, String)> = kinds
        .iter()
        .map(|(kind, (spec, defs))| {
            (
                format!("{}.json", kind.to_lowercase()),
                pretty(&kind_schema(kind, spec, defs)),
            )
        })
        .collect();
    // One self-contained schema for any Cascade document, dispatching on `kind`, for
    // validators that take a single schema for files of mixed kinds. The kinds share their
    // `$defs` (the same Rust types), so they merge.
    let mut defs = serde_json::Map::new();
    for (_, (_, d)) in &kinds {
        if let Some(d) = d.as_object() {
            defs.extend(d.clone());
        }
    }
    let any = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Any Cascade resource",
        "type": "object",
        "required": ["kind"],
        "properties": { "kind": { "enum": cascade_crd::KINDS } },
        "allOf": kinds.iter().map(|(kind, (spec, _))| json!({
            "if": { "properties": { "kind": { "const": kind } } },
            "then": document_schema(kind, spec.clone())
        })).collect::<Vec<_>>(),
        "$defs": defs
    });
    out.push(("resource.json".into(), pretty(&any)));
    // The HTTP API's description, from the types its handlers answer with.
    out.push((
        "openapi.json".into(),
        pretty(&crate::server::openapi::document()),
    ));
    out
}

/// Each kind's spec schema and its `$defs`.
fn spec_schemas() -> [(&'static str, (Value, Value)); 5] {
    [
        ("LoginSetup", spec_schema::<cascade_crd::LoginSetupSpec>()),
        ("JobType", spec_schema::<cascade_crd::JobTypeSpec>()),
        ("Campaign", spec_schema::<cascade_crd::CampaignSpec>()),
        (
            "CampaignStage",
            spec_schema::<cascade_crd::CampaignStageSpec>(),
        ),
        ("Notifier", spec_schema::<cascade_crd::NotifierSpec>()),
    ]
}

/// The self-contained schema of one kind's documents (`<kind>.json`).
fn kind_schema(kind: &str, spec: &Value, defs: &Value) -> Value {
    let mut doc = document_schema(kind, spec.clone());
    doc["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
    doc["title"] = json!(kind);
    doc["$defs"] = defs.clone();
    doc
}

/// The schema of the documents of `kind` (as `cascade schema` writes it), if it is one of
/// Cascade's kinds.
pub fn schema_of(kind: &str) -> Option<Value> {
    spec_schemas()
        .into_iter()
        .find(|(k, _)| *k == kind)
        .map(|(k, (spec, defs))| kind_schema(k, &spec, &defs))
}

/// The schema of a spec type and its `$defs`, separated.
fn spec_schema<T: JsonSchema>() -> (Value, Value) {
    let spec: Schema = schemars::generate::SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<T>();
    let mut spec = spec.to_value();
    let defs = spec
        .as_object_mut()
        .and_then(|o| o.remove("$defs"))
        .unwrap_or_else(|| json!({}));
    if let Some(o) = spec.as_object_mut() {
        o.remove("$schema");
    }
    (spec, defs)
}

/// The schema of a whole document of `kind` around its spec schema.
fn document_schema(kind: &str, spec: Value) -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": { "const": cascade_crd::API_VERSION },
            "kind": { "const": kind },
            "metadata": {
                "type": "object",
                "additionalProperties": false,
                "required": ["name"],
                "properties": {
                    "name": { "type": "string", "pattern": "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253 },
                    "namespace": { "type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63 },
                    "labels": { "type": "object", "additionalProperties": { "type": "string" } },
                    "annotations": { "type": "object", "additionalProperties": { "type": "string" } },
                    "generation": { "type": "integer" },
                    "uid": { "type": "string" },
                    "resourceVersion": { "type": "string" },
                    "creationTimestamp": { "type": "string" }
                }
            },
            "spec": spec,
            "status": { "type": "object" }
        }
    })
}

/// Every generated CRD: (file name, YAML contents).
pub fn crds() -> Result<Vec<(String, String)>, String> {
    cascade_crd::crds()
        .into_iter()
        .map(|crd| {
            let name = crd.metadata.name.clone().unwrap_or_default();
            let yaml = serde_saphyr::to_string(&crd).map_err(|e| e.to_string())?;
            Ok((
                format!("{name}.yaml"),
                format!("# Generated by `cascade crd`; do not edit.\n{yaml}"),
            ))
        })
        .collect()
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

fn write_all(dir: &PathBuf, files: &[(String, String)]) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    for (name, contents) in files {
        let path = dir.join(name);
        fs::write(&path, contents)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

pub fn schema(args: &SchemaArgs) -> std::io::Result<Exit> {
    write_all(&args.out, &schemas())?;
    Ok(Exit::Ok)
}

pub fn crd(args: &CrdArgs) -> std::io::Result<Exit> {
    let files = crds().map_err(std::io::Error::other)?;
    write_all(&args.out, &files)?;
    Ok(Exit::Ok)
}
