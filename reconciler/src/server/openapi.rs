//! The OpenAPI 3.1 description of the HTTP API, generated from the types the handlers
//! answer with (their JSON Schemas, by `schemars`), so it cannot drift from what is served.
//! Served at `/api/v1/openapi.json` and written to `schemas/openapi.json` by `cascade schema`.

use schemars::generate::{Contract, SchemaSettings};
use serde_json::{Value, json};

use super::api::{ActionAnswer, ActionBody, CatalogAnswer, DefinitionAnswer, ErrorAnswer};
use crate::cli::explain::{ExplainDocument, SubmissionDocument};
use crate::cli::status::{StageDocument, StatusDocument};

/// A JSON answer of `schema`.
fn json_answer(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

fn error(description: &str) -> Value {
    json_answer(
        description,
        json!({"$ref": "#/components/schemas/ErrorAnswer"}),
    )
}

fn path_parameter(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": description, "schema": {"type": "string"}})
}

pub fn document() -> Value {
    // Answers are described as they are written (fields always written are required); the
    // action's body as it is read.
    let mut answers = SchemaSettings::draft2020_12();
    answers.definitions_path = "/components/schemas".into();
    answers.contract = Contract::Serialize;
    answers.meta_schema = None;
    let mut generator = answers.into_generator();
    let status = generator.subschema_for::<StatusDocument>().to_value();
    let campaigns = generator
        .subschema_for::<std::collections::BTreeMap<String, cascade_crd::CampaignStatus>>()
        .to_value();
    let stage = generator.subschema_for::<StageDocument>().to_value();
    let submission = generator.subschema_for::<SubmissionDocument>().to_value();
    let explanation = generator.subschema_for::<ExplainDocument>().to_value();
    let answer = generator.subschema_for::<ActionAnswer>().to_value();
    let files = generator.subschema_for::<CatalogAnswer>().to_value();
    let file = generator
        .subschema_for::<crate::catalog::FileInfo>()
        .to_value();
    let definitions = generator
        .subschema_for::<Vec<DefinitionAnswer>>()
        .to_value();
    generator.subschema_for::<ErrorAnswer>();
    let mut schemas = generator.take_definitions(true);
    let mut requests = SchemaSettings::draft2020_12();
    requests.definitions_path = "/components/schemas".into();
    requests.meta_schema = None;
    let mut generator = requests.into_generator();
    let body = generator.subschema_for::<ActionBody>().to_value();
    schemas.extend(generator.take_definitions(true));

    let ns = path_parameter("namespace", "the namespace (experiment)");
    let reads = |summary: &str, id: &str, schema: Value, params: Vec<Value>| {
        json!({"get": {
            "operationId": id,
            "summary": summary,
            "parameters": params,
            "responses": {
                "200": json_answer("as the ledger has it now", schema),
                "404": error("no such object in this state"),
                "429": error("over the rate limit; see Retry-After"),
                "503": error("the state cannot be read (no reconcile yet?)"),
            }
        }})
    };
    let text = |summary: &str, id: &str| {
        json!({"get": {"operationId": id, "summary": summary, "responses": {
            "200": {"description": "text", "content": {"text/plain": {"schema": {"type": "string"}}}}
        }}})
    };
    json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "Cascade",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The state of Cascade's campaigns (what `cascade status --format json` prints), and the operator actions. Reads answer clients on the server's loopback unless it was started with --public-read; actions need the server's token.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "paths": {
            "/api/v1/status": reads("Everything `cascade status --format json` prints", "status", status, vec![]),
            "/api/v1/campaigns": reads("Each campaign's status, keyed namespace/name", "campaigns", campaigns, vec![]),
            "/api/v1/namespaces/{namespace}/stages/{name}": reads(
                "A stage's status and its submissions",
                "stage",
                stage,
                vec![ns.clone(), path_parameter("name", "the stage's name")],
            ),
            "/api/v1/namespaces/{namespace}/stages/{name}/explain": reads(
                "Why a stage is where it is, with each submission and its history (`cascade explain --format json`)",
                "explain",
                explanation,
                vec![ns.clone(), path_parameter("name", "the stage's name")],
            ),
            "/api/v1/submissions/{id}": reads(
                "A submission and its status history",
                "submission",
                submission,
                vec![path_parameter("id", "the submission's id (`namespace.stage.N`)")],
            ),
            "/api/v1/catalog/files": {"get": {
                "operationId": "catalogQuery",
                "summary": "The files a catalog query selects (as `cascade catalog query`)",
                "parameters": [
                    {"name": "query", "in": "query", "required": true, "description": "the catalog query", "schema": {"type": "string"}},
                    {"name": "limit", "in": "query", "required": false, "description": "list at most this many names (at most 10,000)", "schema": {"type": "integer", "minimum": 0}},
                ],
                "responses": {
                    "200": json_answer("the count and the names", files),
                    "400": error("the query is wrong: `query:1:COLUMN: error: ...` with a hint"),
                    "429": error("over the rate limit; see Retry-After"),
                    "503": error("the state cannot be read"),
                }
            }},
            "/api/v1/catalog/files/{name}": reads(
                "A file: its metadata, parents and children",
                "catalogFile",
                file,
                vec![path_parameter("name", "the file's name")],
            ),
            "/api/v1/catalog/definitions": reads("The catalog's named definitions", "catalogDefinitions", definitions, vec![]),
            "/api/v1/namespaces/{namespace}/{kind}/{name}/{action}": {"post": {
                "operationId": "act",
                "summary": "An operator action, recorded with who and why: campaigns pause, resume; stages pause, resume, launch, hold, release, kill, reset-split; submissions hold, release, kill, approve, force-located, recover",
                "security": [{"bearer": []}],
                "parameters": [
                    ns,
                    {"name": "kind", "in": "path", "required": true, "schema": {"enum": ["campaigns", "stages", "submissions"]}},
                    path_parameter("name", "the campaign's or stage's name, or the submission's id"),
                    path_parameter("action", "what to do"),
                ],
                "requestBody": {"required": true, "content": {"application/json": {"schema": body}}},
                "responses": {
                    "200": json_answer("done; what the command line would say", answer),
                    "400": error("no reason, an action the kind does not take, or a body that is not the expected JSON"),
                    "401": error("no token, or a wrong one"),
                    "403": error("the server takes no actions (started without a token)"),
                    "404": error("no such object, or not in that namespace"),
                    "413": error("a body over 64 KiB"),
                    "422": error("refused as the command line refuses it"),
                    "429": error("over the rate limit; see Retry-After"),
                }
            }},
            "/api/v1/openapi.json": {"get": {"operationId": "openapi", "summary": "This description", "responses": {
                "200": {"description": "OpenAPI 3.1", "content": {"application/json": {"schema": {"type": "object"}}}}
            }}},
            "/metrics": text("Prometheus metrics (text format 0.0.4)", "metrics"),
            "/healthz": text("`ok` while the server answers", "health"),
            "/readyz": text("`ready` once the state answers (503 before)", "ready"),
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "the first line of the server's --token-file"}},
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `$ref` of the document names a schema it holds.
    #[test]
    fn every_reference_resolves() {
        let doc = document();
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let mut refs = 0;
        for part in text.split("\"$ref\":\"").skip(1) {
            let target = part.split('"').next().unwrap();
            let name = target
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("a reference outside the components: {target}"));
            assert!(schemas.contains_key(name), "{name} is not described");
            refs += 1;
        }
        assert!(refs > 10, "{refs} references");
        for kind in [
            "StatusDocument",
            "SubmissionRow",
            "Origin",
            "ErrorAnswer",
            "ActionBody",
        ] {
            assert!(schemas.contains_key(kind), "{kind}");
        }
        let body = &schemas["ActionBody"];
        assert_eq!(body["required"], json!(["why"]), "{body}");
    }
}
