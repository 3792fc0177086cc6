//! Small value types used by several kinds.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// One launch parameter: a key that carries its own separator and a value, written
/// `["-Osubmit.N=", "5"]`. The command line gets `key + value` with nothing in between
/// (POMS semantics), so `["--stage ", "gen"]` gives `--stage gen`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Param {
    pub key: String,
    pub value: String,
}

impl Param {
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Param {
            key: key.into(),
            value: value.into(),
        }
    }
}

impl Serialize for Param {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // The newtype name asks YAML writers (serde-saphyr) for the flow form people write,
        // `["-Osubmit.N=", "5"]`; JSON writers ignore it.
        s.serialize_newtype_struct("__yaml_flow_seq", &(&self.key, &self.value))
    }
}

impl<'de> Deserialize<'de> for Param {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = Param;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a pair [key, value], e.g. [\"-Osubmit.N=\", \"5\"]")
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Param, A::Error> {
                let key: String = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let value: String = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(1, &self))?;
                if seq.next_element::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::invalid_length(3, &self));
                }
                Ok(Param { key, value })
            }
        }
        d.deserialize_seq(V)
    }
}

impl JsonSchema for Param {
    fn schema_name() -> Cow<'static, str> {
        "Param".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A parameter pair [key, value]; the key carries its own separator, e.g. [\"-Osubmit.N=\", \"5\"].",
            "type": "array",
            "items": { "type": "string" },
            "minItems": 2,
            "maxItems": 2
        })
    }
}

/// When a submission counts as done (POMS `completion_type`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CompletionType {
    /// Done when `percent` of its jobs have finished.
    Complete,
    /// Done when `percent` of its input files have located outputs.
    #[default]
    Located,
}

/// Completion rule of a stage's submissions: POMS `completion_type` and `completion_pct`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Completion {
    /// `complete` (jobs finished) or `located` (outputs catalogued). Default `located`.
    #[serde(default, rename = "type")]
    pub kind: CompletionType,
    /// Threshold in percent, in (0, 100]. Default 95.
    #[serde(default = "default_percent")]
    #[schemars(range(min = 0, max = 100))]
    pub percent: f64,
}

fn default_percent() -> f64 {
    95.0
}

impl Default for Completion {
    fn default() -> Self {
        Completion {
            kind: CompletionType::Located,
            percent: default_percent(),
        }
    }
}

/// Schema for a field that is either a string or a structure (a legacy string form beside a
/// typed one). JSON Schema says so with `anyOf`; a Kubernetes structural schema cannot express
/// it, so the CRD (generated with OpenAPI 3 settings) keeps the field free-form and Cascade's
/// own validation checks it.
pub(crate) fn string_or_structure_schema(
    generator: &mut SchemaGenerator,
    description: &str,
    structure: Schema,
) -> Schema {
    let openapi = generator
        .settings()
        .definitions_path
        .starts_with("/components");
    if openapi {
        json_schema!({
            "description": description,
            "x-kubernetes-preserve-unknown-fields": true
        })
    } else {
        json_schema!({
            "description": description,
            "anyOf": [ { "type": "string" }, structure ]
        })
    }
}
