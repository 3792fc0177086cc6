//! A YAML document tree in which every node knows its line and column.
//!
//! Built from `saphyr-parser` events with the limits that keep hostile input harmless: nesting
//! depth, alias expansion budget (against "billion laughs"), no complex keys, no duplicate keys,
//! no custom tags. Everything after parsing (serde deserialization, semantic rules) points into
//! this tree, so every message can name the file, line and column it is about.

use std::borrow::Cow;
use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

mod simple;

/// Deepest nesting accepted; real resources need fewer than ten levels.
pub const MAX_DEPTH: usize = 64;
/// Most nodes that alias expansion may add to one file.
pub const MAX_ALIAS_NODES: usize = 100_000;
/// Up to this many keys, a mapping's duplicate keys are found by searching its entries.
const SEARCHED_MAPPING_KEYS: usize = 16;

/// 1-based line and column (in characters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

impl Pos {
    fn of(span: &Span) -> Pos {
        Pos {
            line: span.start.line() as u32,
            col: span.start.col() as u32 + 1,
        }
    }
}

/// A node of a document; its texts borrow from the document's text where they are written
/// out in it (most are), so that reading a file allocates little more than its structure.
#[derive(Clone, Debug, PartialEq)]
pub struct Node<'a> {
    pub pos: Pos,
    pub kind: NodeKind<'a>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum NodeKind<'a> {
    /// A scalar; `plain` scalars are subject to type resolution (`true`, `12`, `null`), quoted
    /// and block scalars are always strings.
    Scalar {
        value: Cow<'a, str>,
        plain: bool,
    },
    Seq(Vec<Node<'a>>),
    Map(Vec<Entry<'a>>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Entry<'a> {
    pub key: Cow<'a, str>,
    pub key_pos: Pos,
    pub value: Node<'a>,
}

impl<'a> Node<'a> {
    /// The value at `key` of a mapping node.
    pub fn get(&self, key: &str) -> Option<&Node<'a>> {
        self.entry(key).map(|e| &e.value)
    }

    pub fn entry(&self, key: &str) -> Option<&Entry<'a>> {
        match &self.kind {
            NodeKind::Map(entries) => entries.iter().find(|e| e.key == key),
            _ => None,
        }
    }

    /// Follows a path of mapping keys and sequence indexes, e.g. `["spec", "dependsOn", "1"]`.
    pub fn at(&self, path: &[&str]) -> Option<&Node<'a>> {
        path.iter().try_fold(self, |node, step| match &node.kind {
            NodeKind::Map(_) => node.get(step),
            NodeKind::Seq(items) => step.parse::<usize>().ok().and_then(|i| items.get(i)),
            NodeKind::Scalar { .. } => None,
        })
    }

    /// The scalar text, if this is a scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar { value, .. } => Some(value),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(&self.kind, NodeKind::Scalar { value, plain: true } if is_null_text(value))
    }

    /// The same node holding its own texts, to be kept apart from the document's text.
    pub fn into_owned(self) -> Node<'static> {
        let kind = match self.kind {
            NodeKind::Scalar { value, plain } => NodeKind::Scalar {
                value: Cow::Owned(value.into_owned()),
                plain,
            },
            NodeKind::Seq(items) => {
                NodeKind::Seq(items.into_iter().map(Node::into_owned).collect())
            }
            NodeKind::Map(entries) => NodeKind::Map(
                entries
                    .into_iter()
                    .map(|e| Entry {
                        key: Cow::Owned(e.key.into_owned()),
                        key_pos: e.key_pos,
                        value: e.value.into_owned(),
                    })
                    .collect(),
            ),
        };
        Node {
            pos: self.pos,
            kind,
        }
    }

    pub fn describe(&self) -> &'static str {
        match &self.kind {
            NodeKind::Scalar { .. } if self.is_null() => "null",
            NodeKind::Scalar { .. } => "a scalar",
            NodeKind::Seq(_) => "a sequence",
            NodeKind::Map(_) => "a mapping",
        }
    }
}

pub(crate) fn is_null_text(s: &str) -> bool {
    matches!(s, "" | "~" | "null" | "Null" | "NULL")
}

/// One YAML document of a stream.
#[derive(Clone, Debug)]
pub struct Document<'a> {
    /// Where the document starts (its `---` or first node).
    pub pos: Pos,
    /// `None` for an empty document (a lone `---`, or only comments).
    pub root: Option<Node<'a>>,
}

impl Document<'_> {
    /// The same document holding its own texts.
    pub fn into_owned(self) -> Document<'static> {
        Document {
            pos: self.pos,
            root: self.root.map(Node::into_owned),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct YamlError {
    pub pos: Pos,
    /// Rule code: `yaml-syntax` unless the text parsed but is refused.
    pub code: &'static str,
    pub message: String,
    pub hint: Option<String>,
}

impl YamlError {
    fn new(pos: Pos, message: impl Into<String>) -> Self {
        YamlError {
            pos,
            code: "yaml-syntax",
            message: message.into(),
            hint: None,
        }
    }
    fn code(mut self, code: &'static str) -> Self {
        self.code = code;
        self
    }
    fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// Parses a YAML stream into documents. Stops at the first syntax error: after one, positions
/// of later errors would not be trustworthy.
pub fn parse_stream(text: &str) -> Result<Vec<Document<'_>>, YamlError> {
    match simple::parse(text) {
        Some(docs) => Ok(docs),
        None => parse_in_full(text),
    }
}

/// Parses any YAML stream (the general reader, which reports every error).
fn parse_in_full(text: &str) -> Result<Vec<Document<'_>>, YamlError> {
    let mut builder = Builder {
        parser: Parser::new_from_str(text),
        anchors: HashMap::new(),
        alias_nodes: 0,
    };
    builder.stream()
}

struct Builder<'a> {
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    anchors: HashMap<usize, Node<'a>>,
    alias_nodes: usize,
}

impl<'a> Builder<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Span), YamlError> {
        match self.parser.next() {
            Some(Ok(ev)) => Ok(ev),
            Some(Err(e)) => {
                let pos = Pos {
                    line: e.marker().line() as u32,
                    col: e.marker().col() as u32 + 1,
                };
                let info = e.info().to_string();
                if info.contains("recursion limit") {
                    return Err(too_deep(pos));
                }
                let err = YamlError::new(pos, format!("invalid YAML: {info}"));
                let words: Vec<&str> = info.split(|c: char| !c.is_alphanumeric()).collect();
                Err(if words.contains(&"tab") || words.contains(&"tabs") {
                    err.hint("indent with spaces: YAML does not allow tabs for indentation")
                } else if words.contains(&"unprintable") {
                    err.hint("the file holds a control character (a NUL byte, an escape code) that YAML does not allow: remove it; a file of YAML is text")
                } else {
                    err
                })
            }
            None => Err(YamlError::new(
                Pos::default(),
                "unexpected end of YAML stream",
            )),
        }
    }

    fn stream(&mut self) -> Result<Vec<Document<'a>>, YamlError> {
        let mut docs = Vec::new();
        loop {
            let (ev, span) = self.next()?;
            match ev {
                Event::StreamStart | Event::Nothing => {}
                Event::StreamEnd => return Ok(docs),
                Event::DocumentStart(_) => {
                    self.anchors.clear();
                    let pos = Pos::of(&span);
                    let (ev, span) = self.next()?;
                    let root = match ev {
                        Event::DocumentEnd => None,
                        ev => {
                            let node = self.node(ev, span, 0)?;
                            match self.next()? {
                                (Event::DocumentEnd, _) => {}
                                (_, span) => {
                                    return Err(YamlError::new(
                                        Pos::of(&span),
                                        "expected the end of the document",
                                    ));
                                }
                            }
                            // An empty plain scalar is what the parser gives for a document of
                            // only comments.
                            (!matches!(&node.kind, NodeKind::Scalar { value, plain: true } if value.is_empty()))
                                .then_some(node)
                        }
                    };
                    docs.push(Document { pos, root });
                }
                _ => return Err(YamlError::new(Pos::of(&span), "expected a YAML document")),
            }
        }
    }

    fn node(&mut self, ev: Event<'a>, span: Span, depth: usize) -> Result<Node<'a>, YamlError> {
        let pos = Pos::of(&span);
        if depth > MAX_DEPTH {
            return Err(too_deep(pos));
        }
        let (node, anchor) = match ev {
            Event::Scalar(value, style, anchor, tag) => {
                let mut plain = style == ScalarStyle::Plain;
                if let Some(tag) = tag {
                    check_tag(&tag, pos)?;
                    if tag.suffix == "str" {
                        plain = false;
                    }
                }
                if let Some(c) = value
                    .chars()
                    .find(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
                {
                    // A NUL cannot even be passed to a process; other control characters are
                    // invisible in every listing. Either way the value is not what it looks like.
                    return Err(YamlError::new(
                        pos,
                        format!("control character U+{:04X} in a value", c as u32),
                    )
                    .code("control-character")
                    .hint("values are text: remove the escape (`\\0`, `\\x..`, `\\u....`) that produces it"));
                }
                let kind = NodeKind::Scalar { value, plain };
                (Node { pos, kind }, anchor)
            }
            Event::SequenceStart(anchor, tag) => {
                if let Some(tag) = tag {
                    check_tag(&tag, pos)?;
                }
                let mut items = Vec::new();
                loop {
                    let (ev, span) = self.next()?;
                    if matches!(ev, Event::SequenceEnd) {
                        break;
                    }
                    items.push(self.node(ev, span, depth + 1)?);
                }
                let kind = NodeKind::Seq(items);
                (Node { pos, kind }, anchor)
            }
            Event::MappingStart(anchor, tag) => {
                if let Some(tag) = tag {
                    check_tag(&tag, pos)?;
                }
                let mut entries: Vec<Entry> = Vec::new();
                // Key -> index in `entries`, once the mapping is large: a linear search would
                // make a mapping of many keys (a hostile file) quadratic, and a map for each
                // of the many small mappings costs more than searching them.
                let mut seen: Option<crate::fast::Map<Cow<'a, str>, usize>> = None;
                loop {
                    let (ev, span) = self.next()?;
                    if matches!(ev, Event::MappingEnd) {
                        break;
                    }
                    let key_node = self.node(ev, span, depth + 1)?;
                    let key = match key_node.kind {
                        NodeKind::Scalar { value, .. } => value,
                        _ => {
                            return Err(YamlError::new(
                                key_node.pos,
                                "mapping keys must be plain strings",
                            ));
                        }
                    };
                    let earlier = match &seen {
                        Some(seen) => seen.get(&key).copied(),
                        None => entries.iter().position(|e| e.key == key),
                    };
                    if let Some(first) = earlier.map(|i| &entries[i]) {
                        return Err(
                            YamlError::new(key_node.pos, format!("duplicate key `{key}`")).hint(
                                format!(
                                    "`{key}` is already set at line {}, column {}; keep one",
                                    first.key_pos.line, first.key_pos.col
                                ),
                            ),
                        );
                    }
                    let (ev, span) = self.next()?;
                    let value = self.node(ev, span, depth + 1)?;
                    match &mut seen {
                        Some(seen) => {
                            seen.insert(key.clone(), entries.len());
                        }
                        None if entries.len() == SEARCHED_MAPPING_KEYS => {
                            let index = entries.iter().enumerate();
                            let mut map: crate::fast::Map<Cow<'a, str>, usize> =
                                index.map(|(i, e)| (e.key.clone(), i)).collect();
                            map.insert(key.clone(), entries.len());
                            seen = Some(map);
                        }
                        None => {}
                    }
                    entries.push(Entry {
                        key,
                        key_pos: key_node.pos,
                        value,
                    });
                }
                let kind = NodeKind::Map(entries);
                (Node { pos, kind }, anchor)
            }
            Event::Alias(id) => {
                let target = self
                    .anchors
                    .get(&id)
                    .ok_or_else(|| YamlError::new(pos, "alias refers to an unknown anchor"))?;
                self.alias_nodes += count_nodes(target);
                if self.alias_nodes > MAX_ALIAS_NODES {
                    return Err(YamlError::new(
                        pos,
                        format!("aliases expand to more than {MAX_ALIAS_NODES} nodes"),
                    )
                    .hint(
                        "this looks like an alias bomb; write the values out or use fewer aliases",
                    ));
                }
                let mut copy = target.clone();
                copy.pos = pos;
                return Ok(copy);
            }
            _ => return Err(YamlError::new(pos, "unexpected YAML event")),
        };
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        Ok(node)
    }
}

fn too_deep(pos: Pos) -> YamlError {
    YamlError::new(pos, format!("nesting deeper than {MAX_DEPTH} levels"))
        .hint("Cascade resources nest a few levels; this input looks generated or hostile")
}

fn check_tag(tag: &saphyr_parser::Tag, pos: Pos) -> Result<(), YamlError> {
    const CORE: [&str; 7] = ["str", "int", "float", "bool", "null", "map", "seq"];
    if tag.handle == "!!" && CORE.contains(&tag.suffix.as_str()) {
        return Ok(());
    }
    Err(YamlError::new(
        pos,
        format!("unsupported tag `{}{}`", tag.handle, tag.suffix),
    )
    .hint("Cascade resources use plain YAML; only the core tags (!!str, !!int, ...) are accepted"))
}

fn count_nodes(node: &Node<'_>) -> usize {
    1 + match &node.kind {
        NodeKind::Scalar { .. } => 0,
        NodeKind::Seq(items) => items.iter().map(count_nodes).sum(),
        NodeKind::Map(entries) => entries.iter().map(|e| 1 + count_nodes(&e.value)).sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let docs = parse_stream("a: 1\nb:\n  - x\n").unwrap();
        let root = docs[0].root.as_ref().unwrap();
        assert_eq!(root.get("b").unwrap().pos, Pos { line: 3, col: 3 });
        assert_eq!(root.entry("b").unwrap().key_pos, Pos { line: 2, col: 1 });
        assert_eq!(root.at(&["b", "0"]).unwrap().as_str(), Some("x"));
    }

    #[test]
    fn splits_documents_and_keeps_empty_ones() {
        let docs = parse_stream("a: 1\n---\n---\nb: 2\n").unwrap();
        assert_eq!(docs.len(), 3);
        assert!(docs[1].root.is_none());
        assert_eq!(docs[2].pos.line, 3);
    }

    #[test]
    fn rejects_duplicate_keys_with_both_positions() {
        let e = parse_stream("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(e.message, "duplicate key `a`");
        assert_eq!(e.pos, Pos { line: 3, col: 1 });
        assert!(e.hint.unwrap().contains("line 1, column 1"));
    }

    #[test]
    fn finds_duplicate_keys_in_mappings_of_every_size() {
        // Small mappings are searched and large ones indexed: a repeat of each key, at each
        // size around the change, is found and located.
        for keys in [2, 15, 16, 17, 18, 40] {
            for repeated in [0, keys / 2, keys - 1] {
                let mut text: String = (0..keys).map(|k| format!("k{k}: {k}\n")).collect();
                text.push_str(&format!("k{repeated}: again\n"));
                let e = parse_stream(&text).unwrap_err();
                assert_eq!(
                    e.message,
                    format!("duplicate key `k{repeated}`"),
                    "{keys} keys"
                );
                assert_eq!(e.pos.line as usize, keys + 1);
                let first = format!("line {}, column 1", repeated + 1);
                assert!(e.hint.unwrap().contains(&first), "{keys} keys, k{repeated}");
            }
            let distinct: String = (0..keys).map(|k| format!("k{k}: {k}\n")).collect();
            assert!(parse_stream(&distinct).is_ok(), "{keys} distinct keys");
        }
    }

    #[test]
    fn stops_alias_bombs() {
        let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            text.push_str(&format!(
                "{}: &{} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n",
                (b'a' + i) as char,
                (b'a' + i) as char,
                p = (b'a' + i - 1) as char
            ));
        }
        let e = parse_stream(&text).unwrap_err();
        assert!(e.message.contains("aliases expand"), "{e:?}");
    }

    #[test]
    fn stops_deep_nesting() {
        let text = "[".repeat(10_000);
        let e = parse_stream(&text).unwrap_err();
        assert!(e.message.contains("nesting deeper"), "{e:?}");
    }

    #[test]
    fn a_nul_byte_gets_a_control_character_hint_not_a_tab_one() {
        let e = parse_stream("a: b\u{0}c\n").unwrap_err();
        let hint = e.hint.clone().unwrap_or_default();
        assert!(hint.contains("control character"), "{e:?}");
        assert!(!hint.contains("tab"), "{e:?}");
    }

    #[test]
    fn tabs_get_a_hint() {
        let e = parse_stream("a:\n\t- b\n").unwrap_err();
        assert!(e.hint.is_some() || e.message.contains("tab"), "{e:?}");
    }
}
