//! A serde `Deserializer` over the positioned YAML tree, so that every type error, unknown
//! field and missing field points at the node it is about.

use std::fmt;

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};

use super::yaml::{Node, NodeKind, Pos, is_null_text};

/// A deserialization error at a position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeError {
    pub pos: Option<Pos>,
    pub message: String,
    pub hint: Option<String>,
}

impl DeError {
    fn at(pos: Pos, message: impl Into<String>) -> Self {
        DeError {
            pos: Some(pos),
            message: message.into(),
            hint: None,
        }
    }

    /// Errors raised by serde's derived code carry no position; the innermost node being
    /// deserialized when they surface is where they belong.
    fn or_at(mut self, pos: Pos) -> Self {
        self.pos.get_or_insert(pos);
        self
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            pos: None,
            message: msg.to_string(),
            hint: None,
        }
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        DeError {
            pos: None,
            message: format!("unknown field `{field}`"),
            hint: Some(if field == "<<" {
                "YAML merge keys are not supported; write the fields out, or use the campaign's `defaults` for stage fields".to_string()
            } else {
                suggest(field, expected, "fields")
            }),
        }
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        DeError {
            pos: None,
            message: format!("unknown value `{variant}`"),
            hint: Some(suggest(variant, expected, "values")),
        }
    }

    fn missing_field(field: &'static str) -> Self {
        DeError {
            pos: None,
            message: format!("missing field `{field}`"),
            hint: None,
        }
    }

    fn invalid_type(unexp: de::Unexpected, exp: &dyn de::Expected) -> Self {
        let found = match unexp {
            de::Unexpected::Unit => "null".to_string(),
            de::Unexpected::Str(s) => format!("`{s}`"),
            de::Unexpected::Map => "a mapping".to_string(),
            de::Unexpected::Seq => "a sequence".to_string(),
            other => other.to_string(),
        };
        <DeError as de::Error>::custom(format!("expected {exp}, found {found}"))
    }
}

/// A "did you mean" for `got` among `expected`, or the list of what is accepted (the first
/// few, when there are many). Linear in the number of candidates and cheap per candidate:
/// validating a set with thousands of unknown references stays fast.
pub fn suggest(got: &str, expected: &[&str], what: &str) -> String {
    let got_lower: Vec<char> = got.to_lowercase().chars().collect();
    let limit = 2.max(got_lower.len() / 3);
    let mut row = Vec::new();
    let best = expected
        .iter()
        .filter_map(|e| {
            let e_lower: Vec<char> = e.to_lowercase().chars().collect();
            within_distance(&got_lower, &e_lower, limit, &mut row).map(|d| (d, *e))
        })
        .min();
    match best {
        Some((_, e)) => format!("did you mean `{e}`?"),
        None => listing(expected, what),
    }
}

/// "valid {what}: `a`, `b`, ..." (the first few, when there are many).
pub fn listing(expected: &[&str], what: &str) -> String {
    const LISTED: usize = 12;
    if expected.is_empty() {
        return format!("no {what} are accepted here");
    }
    let mut listed: Vec<String> = expected
        .iter()
        .take(LISTED)
        .map(|e| format!("`{e}`"))
        .collect();
    if expected.len() > LISTED {
        listed.push(format!("and {} more", expected.len() - LISTED));
    }
    format!("valid {what}: {}", listed.join(", "))
}

/// The edit distance between `a` and `b` if it is at most `limit`. Rejects on the length
/// difference first, and stops as soon as a whole row exceeds the limit.
fn within_distance(a: &[char], b: &[char], limit: usize, row: &mut Vec<usize>) -> Option<usize> {
    if a.len().abs_diff(b.len()) > limit {
        return None;
    }
    row.clear();
    row.extend(0..=b.len());
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        let mut row_min = row[0];
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != cb))
                .min(above + 1)
                .min(row[j] + 1);
            diagonal = above;
            row_min = row_min.min(row[j + 1]);
        }
        if row_min > limit {
            return None;
        }
    }
    let d = row[b.len()];
    (d <= limit).then_some(d)
}

/// Deserializes `T` from a node.
pub fn from_node<'de, T: de::Deserialize<'de>>(node: &Node) -> Result<T, DeError> {
    T::deserialize(NodeDe(node)).map_err(|e: DeError| e.or_at(node.pos))
}

struct NodeDe<'a>(&'a Node<'a>);

impl<'a> NodeDe<'a> {
    fn scalar(&self) -> Option<(&'a str, bool)> {
        match &self.0.kind {
            NodeKind::Scalar { value, plain } => Some((value.as_ref(), *plain)),
            _ => None,
        }
    }

    fn mismatch(&self, expected: &str) -> DeError {
        let found = match self.scalar() {
            Some((v, true)) if is_null_text(v) => "null".to_string(),
            Some((v, _)) => format!("`{}`", truncate(v)),
            None => self.0.describe().to_string(),
        };
        DeError::at(self.0.pos, format!("expected {expected}, found {found}"))
    }

    fn int<T: std::str::FromStr>(&self, what: &str) -> Result<T, DeError> {
        match self.scalar() {
            Some((v, true)) => parse_int(v).ok_or_else(|| self.mismatch(what)),
            _ => Err(self.mismatch(what)),
        }
    }
}

fn truncate(v: &str) -> String {
    if v.chars().count() > 40 {
        format!("{}...", v.chars().take(40).collect::<String>())
    } else {
        v.to_string()
    }
}

fn parse_int<T: std::str::FromStr>(v: &str) -> Option<T> {
    let v = v.strip_prefix('+').unwrap_or(v);
    v.parse::<T>().ok()
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

fn parse_float(v: &str) -> Option<f64> {
    match v {
        ".inf" | ".Inf" | ".INF" | "+.inf" => Some(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => Some(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => Some(f64::NAN),
        _ if v.chars().any(|c| c.is_ascii_digit()) => v.parse().ok(),
        _ => None,
    }
}

macro_rules! int_methods {
    ($($method:ident $visit:ident $ty:ty, $what:literal;)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
                let value: $ty = self.int($what)?;
                visitor.$visit(value).map_err(|e: DeError| e.or_at(self.0.pos))
            }
        )*
    };
}

impl<'de> Deserializer<'de> for NodeDe<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let pos = self.0.pos;
        let result = match &self.0.kind {
            NodeKind::Scalar { value, plain: true } => {
                if is_null_text(value) {
                    visitor.visit_unit()
                } else if let Some(b) = parse_bool(value) {
                    visitor.visit_bool(b)
                } else if let Some(i) = parse_int::<i64>(value) {
                    visitor.visit_i64(i)
                } else if let Some(u) = parse_int::<u64>(value) {
                    visitor.visit_u64(u)
                } else if let Some(f) = parse_float(value) {
                    visitor.visit_f64(f)
                } else {
                    visitor.visit_str(value)
                }
            }
            NodeKind::Scalar { value, .. } => visitor.visit_str(value),
            NodeKind::Seq(items) => visitor.visit_seq(Seq {
                items: items.iter(),
            }),
            NodeKind::Map(entries) => visitor.visit_map(Map {
                entries: entries.iter(),
                value: None,
            }),
        };
        result.map_err(|e: DeError| e.or_at(pos))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.scalar() {
            Some((v, true)) => match parse_bool(v) {
                Some(b) => visitor
                    .visit_bool(b)
                    .map_err(|e: DeError| e.or_at(self.0.pos)),
                None => Err(DeError {
                    hint: Some("write `true` or `false`".into()),
                    ..self.mismatch("a boolean")
                }),
            },
            _ => Err(DeError {
                hint: Some("write `true` or `false` without quotes".into()),
                ..self.mismatch("a boolean")
            }),
        }
    }

    int_methods! {
        deserialize_i8 visit_i8 i8, "an integer";
        deserialize_i16 visit_i16 i16, "an integer";
        deserialize_i32 visit_i32 i32, "an integer";
        deserialize_i64 visit_i64 i64, "an integer";
        deserialize_u8 visit_u8 u8, "a non-negative integer";
        deserialize_u16 visit_u16 u16, "a non-negative integer";
        deserialize_u32 visit_u32 u32, "a non-negative integer";
        deserialize_u64 visit_u64 u64, "a non-negative integer";
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.scalar() {
            Some((v, true)) => match parse_float(v) {
                Some(f) => visitor
                    .visit_f64(f)
                    .map_err(|e: DeError| e.or_at(self.0.pos)),
                None => Err(self.mismatch("a number")),
            },
            _ => Err(self.mismatch("a number")),
        }
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.scalar() {
            // `~` and `null` are not strings; an empty value (`setup:`) is the empty string.
            Some((v, true)) if is_null_text(v) && !v.is_empty() => Err(self.mismatch("a string")),
            Some((v, _)) => visitor
                .visit_str(v)
                .map_err(|e: DeError| e.or_at(self.0.pos)),
            None => Err(self.mismatch("a string")),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.0.is_null() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.0.is_null() {
            visitor.visit_unit()
        } else {
            Err(self.mismatch("null"))
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.0.kind {
            NodeKind::Seq(items) => visitor
                .visit_seq(Seq {
                    items: items.iter(),
                })
                .map_err(|e: DeError| e.or_at(self.0.pos)),
            _ => Err(self.mismatch("a sequence")),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.0.kind {
            NodeKind::Map(entries) => visitor
                .visit_map(Map {
                    entries: entries.iter(),
                    value: None,
                })
                .map_err(|e: DeError| e.or_at(self.0.pos)),
            _ => Err(self.mismatch("a mapping")),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self.scalar() {
            Some((v, _)) => visitor
                .visit_enum(UnitVariant(v))
                .map_err(|e: DeError| e.or_at(self.0.pos)),
            None => Err(DeError {
                hint: Some(suggest("", variants, "values")),
                ..self.mismatch("one of the names listed below")
            }),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}

struct Seq<'a> {
    items: std::slice::Iter<'a, Node<'a>>,
}

impl<'de> SeqAccess<'de> for Seq<'_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.items.next() {
            Some(node) => seed
                .deserialize(NodeDe(node))
                .map(Some)
                .map_err(|e: DeError| e.or_at(node.pos)),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct Map<'a> {
    entries: std::slice::Iter<'a, super::yaml::Entry<'a>>,
    value: Option<&'a Node<'a>>,
}

impl<'de> MapAccess<'de> for Map<'_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        match self.entries.next() {
            Some(entry) => {
                self.value = Some(&entry.value);
                seed.deserialize(entry.key.as_ref().into_deserializer())
                    .map(Some)
                    .map_err(|e: DeError| e.or_at(entry.key_pos))
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let node = self
            .value
            .take()
            .ok_or_else(|| <DeError as de::Error>::custom("value requested before key"))?;
        seed.deserialize(NodeDe(node))
            .map_err(|e: DeError| e.or_at(node.pos))
    }
}

struct UnitVariant<'a>(&'a str);

impl<'de> EnumAccess<'de> for UnitVariant<'_> {
    type Error = DeError;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), DeError> {
        let v = seed.deserialize(self.0.into_deserializer())?;
        Ok((v, self))
    }
}

impl<'de> VariantAccess<'de> for UnitVariant<'_> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, _seed: T) -> Result<T::Value, DeError> {
        Err(<DeError as de::Error>::custom(format!(
            "`{}` needs a value",
            self.0
        )))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, _visitor: V) -> Result<V::Value, DeError> {
        Err(<DeError as de::Error>::custom(format!(
            "`{}` needs values",
            self.0
        )))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, DeError> {
        Err(<DeError as de::Error>::custom(format!(
            "`{}` needs fields",
            self.0
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::yaml::parse_stream;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct S {
        name: String,
        #[serde(default)]
        count: u32,
        #[serde(default)]
        flag: bool,
        #[serde(default)]
        items: Vec<String>,
    }

    fn de(text: &str) -> Result<S, DeError> {
        let docs = parse_stream(text).unwrap();
        from_node(docs[0].root.as_ref().unwrap())
    }

    #[test]
    fn reads_typed_values() {
        let s = de("name: x\ncount: 3\nflag: true\nitems: [a, 1]\n").unwrap();
        assert_eq!(s.items, vec!["a", "1"]);
        assert_eq!((s.count, s.flag), (3, true));
    }

    #[test]
    fn suggestions_are_bounded_edits_and_long_lists_are_cut() {
        assert_eq!(
            suggest("mc-rec", &["mc-gen", "mc-reco"], "names"),
            "did you mean `mc-reco`?"
        );
        assert_eq!(
            suggest("Campaing", &["Campaign"], "kinds"),
            "did you mean `Campaign`?"
        );
        assert_eq!(
            suggest("zzz", &["a", "b"], "names"),
            "valid names: `a`, `b`"
        );
        assert_eq!(
            suggest("zzzzzz", &["alpha", "beta"], "names"),
            "valid names: `alpha`, `beta`"
        );
        let many: Vec<String> = (0..100).map(|i| format!("campaign-{i:03}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let hint = suggest("unrelated-thing", &many, "Campaign names");
        assert!(hint.ends_with("`campaign-011`, and 88 more"), "{hint}");
        let mut row = Vec::new();
        let chars = |s: &str| s.chars().collect::<Vec<_>>();
        assert_eq!(
            within_distance(&chars("kitten"), &chars("sitting"), 3, &mut row),
            Some(3)
        );
        assert_eq!(
            within_distance(&chars("kitten"), &chars("sitting"), 2, &mut row),
            None
        );
        assert_eq!(
            within_distance(&chars(""), &chars("ab"), 2, &mut row),
            Some(2)
        );
    }

    #[test]
    fn unknown_field_points_at_key_with_suggestion() {
        let e = de("name: x\ncuont: 3\n").unwrap_err();
        assert_eq!(e.message, "unknown field `cuont`");
        assert_eq!(e.pos, Some(Pos { line: 2, col: 1 }));
        assert_eq!(e.hint.as_deref(), Some("did you mean `count`?"));
    }

    #[test]
    fn wrong_type_points_at_value() {
        let e = de("name: x\ncount: many\n").unwrap_err();
        assert_eq!(e.message, "expected a non-negative integer, found `many`");
        assert_eq!(e.pos, Some(Pos { line: 2, col: 8 }));
        let e = de("name: x\nflag: yes\n").unwrap_err();
        assert_eq!(e.message, "expected a boolean, found `yes`");
        let e = de("name: [a]\n").unwrap_err();
        assert_eq!(e.message, "expected a string, found a sequence");
    }

    #[test]
    fn missing_field_points_at_mapping() {
        let e = de("\n\ncount: 1\n").unwrap_err();
        assert_eq!(e.message, "missing field `name`");
        assert_eq!(e.pos, Some(Pos { line: 3, col: 1 }));
    }
}
