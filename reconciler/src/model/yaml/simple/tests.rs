//! The fast reader against the full one: wherever it accepts a text, both must give the same
//! documents, nodes and positions.

use proptest::prelude::*;

use super::super::{Document, parse_in_full};
use super::parse;

/// Fails unless the full reader reads `text` exactly as the fast one did, if it did.
fn agrees(text: &str) -> Result<bool, TestCaseError> {
    let Some(fast) = parse(text) else {
        return Ok(false);
    };
    let full = parse_in_full(text);
    prop_assert!(
        full.is_ok(),
        "fast reader accepted what the full one refuses: {full:?}\n{text}"
    );
    let full = full.unwrap();
    prop_assert_eq!(shape(&fast), shape(&full), "text:\n{}", text);
    Ok(true)
}

fn shape(docs: &[Document]) -> Vec<String> {
    docs.iter()
        .map(|d| format!("{:?} {:?}", d.pos, d.root))
        .collect()
}

#[test]
fn reads_resources_as_the_full_reader_does() {
    let text = "\
# A comment before the first document
apiVersion: cascade.dev/v1alpha1
kind: CampaignStage
metadata: {name: c0-s1, namespace: exp}   # trailing comment
spec:
  campaign: camp0
  completion: {type: located, percent: 90}
  parameterOverrides:
    - [\"-Oglobal.sam_dataset=\", \"%(dataset)s\"]
    - ['it''s', \"a 'b'\"]
  dependsOn: [{stage: c0-s0, filePattern: \"%.root\"}]
  recoveries:
  - type: process_status
    parameterOverrides:
      - - --memory=
        - 4000MB
  empty:
  setup: export X=%(experiment)s; cd /tmp/a:b
  nested:
      deep: [[], {}, [a b, -1, .5, ~]]
---
---   # an empty document
- a
-
  b: 1
";
    assert!(agrees(text).unwrap());
}

#[test]
fn leaves_everything_else_to_the_full_reader() {
    for text in [
        "a: |\n  block\n",
        "a: >\n  folded\n",
        "a: &x 1\nb: *x\n",
        "a: !!str 1\n",
        "a: \"esc\\n\"\n",
        "a: [1,\n  2]\n",
        "a: b\n  continued\n",
        "a: b: c\n",
        "a:\tb\n",
        "a: é\n",
        "a: 1\r\n",
        "a: 1\na: 2\n",
        "? a\n: b\n",
        "%YAML 1.2\n---\na: 1\n",
        "a: 1\n...\n",
        "a: 1\nb: 2\n  c: 3\n",
        "- a\nb: 1\n",
        "a: 1\n- b\n",
        "a: [1, ]\n",
        "\"quoted key\": 1\n",
        "a: 'unterminated\n",
        "a: #x\n  - 1\n  b: 2\n",
        "scalar document\n",
    ] {
        assert!(parse(text).is_none(), "{text:?}");
    }
}

#[test]
fn nesting_beyond_its_limit_goes_to_the_full_reader() {
    let deep = "- ".repeat(10_000) + "x\n";
    assert!(parse(&deep).is_none());
    let flow = "a: ".to_owned() + &"[".repeat(10_000);
    assert!(parse(&flow).is_none());
}

#[test]
fn every_yaml_file_of_the_project_reads_the_same() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut read = 0;
    let mut fast = 0;
    for dir in ["examples", "charts", "tests", "reconciler", "crd", "docs"] {
        for path in yaml_files(&root.join(dir)) {
            // Some test inputs are deliberately not text.
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            read += 1;
            if agrees(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display())) {
                fast += 1;
            }
        }
    }
    // The main example is plain YAML: the fast reader must take it, not only agree. (Others
    // hold folded and multi-line scalars, which the full reader reads.)
    for path in yaml_files(&root.join("examples/eve_mc")) {
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            parse(&text).is_some(),
            "{} left to the full reader",
            path.display()
        );
    }
    assert!(
        read > 10 && fast > 0,
        "{read} files read, {fast} by the fast reader"
    );
    eprintln!("{read} files read, {fast} by the fast reader");
}

fn yaml_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(yaml_files(&path));
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            found.push(path);
        }
    }
    found
}

/// Scalars and keys as written in the text, meant to cover what may and may not be plain; the
/// first `SAFE_SCALARS` and `SAFE_KEYS` are what the fast reader takes.
const SAFE_SCALARS: usize = 16;
const SAFE_KEYS: usize = 8;
const SCALARS: &[&str] = &[
    "a",
    "x y",
    "1",
    "-1",
    "-a",
    "true",
    "~",
    "null",
    "'it''s'",
    "\"x 'y'\"",
    "\"%(ds)s\"",
    "$HOME",
    "--x",
    ".5",
    "(a)",
    "+1",
    "a:b",
    "a#b",
    "http://h:80/p",
    "a: b",
    "a #b",
    "#x",
    "'q'",
    "\"d\"",
    "\"a\\nb\"",
    "[a]",
    "{a: 1}",
    "-",
    "- a",
    "...",
    "---",
    "&a x",
    "*a",
    "!t x",
    "|",
    ">",
    "%x",
    "@x",
    "`x",
    "?x",
    "? x",
    ",a",
    "a,b",
    "a ,b",
    "x ",
    "=",
    "a]",
    "a}",
    "a[",
    "\"",
    "'",
    "''",
    "\"\"",
    "a:",
    "a :",
    "x,",
    "-.5",
    "^a",
    "~x",
    "a'b",
    "a\"b",
    "%(ds)s",
    "''''",
    "'a''''b'",
    "'x'' '",
    "a  b",
    "a\\b",
    "\"a\\\\b\"",
    "'a\\b'",
    ":",
    "-:",
    "a -b",
    "0x1F",
];
const KEYS: &[&str] = &[
    "a", "b", "c1", "a.b", "a-b", "a/b", "_x", "1", "a b", "\"q\"", "'s'", "-k", "a:", "k#", "",
    "true", "x?", "?", "a", "b",
];

#[derive(Clone, Debug)]
enum Value {
    Scalar(usize),
    FlowSeq(Vec<Value>),
    FlowMap(Vec<(usize, Value)>),
    BlockSeq(Vec<Value>),
    BlockMap(Vec<(usize, Value)>),
}

fn key() -> impl Strategy<Value = usize> {
    prop_oneof![12 => 0..SAFE_KEYS, 1 => 0..KEYS.len()]
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![12 => 0..SAFE_SCALARS, 1 => 0..SCALARS.len()].prop_map(Value::Scalar);
    leaf.prop_recursive(5, 40, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::FlowSeq),
            prop::collection::vec((key(), inner.clone()), 0..4).prop_map(Value::FlowMap),
            prop::collection::vec(inner.clone(), 1..4).prop_map(Value::BlockSeq),
            prop::collection::vec((key(), inner), 1..4).prop_map(Value::BlockMap),
        ]
    })
}

/// Writes `value` as YAML, choosing among equivalent layouts with `style`'s bits.
struct Writer<'a> {
    out: String,
    style: &'a [u8],
    next: usize,
}

impl Writer<'_> {
    fn pick(&mut self, choices: u8) -> u8 {
        let b = self.style.get(self.next).copied().unwrap_or(0);
        self.next += 1;
        b % choices
    }

    fn choose(&mut self, options: &[&'static str]) -> &'static str {
        options[self.pick(options.len() as u8) as usize]
    }

    fn spaces(&mut self) -> &'static str {
        self.choose(&[" ", " ", " ", "  "])
    }

    /// How much deeper a nested block is indented.
    fn step(&mut self) -> usize {
        [2, 2, 1, 4][self.pick(4) as usize]
    }

    fn push_choice(&mut self, options: &[&'static str]) {
        let choice = self.choose(options);
        self.out.push_str(choice);
    }

    fn end_line(&mut self) {
        self.push_choice(&[" # note", "", "", ""]);
        self.out.push('\n');
        if self.pick(8) == 0 {
            self.push_choice(&["\n", "   \n", "# c\n", "  # c\n"]);
        }
    }

    fn flow(&mut self, v: &Value) {
        match v {
            Value::Scalar(i) => self.out.push_str(SCALARS[*i]),
            Value::FlowSeq(items) | Value::BlockSeq(items) => {
                self.out.push('[');
                for (n, item) in items.iter().enumerate() {
                    if n > 0 {
                        self.out.push(',');
                        self.push_choice(&[" ", " ", " ", "  "]);
                    }
                    self.flow(item);
                }
                self.out.push(']');
            }
            Value::FlowMap(entries) | Value::BlockMap(entries) => {
                self.out.push('{');
                for (n, (k, item)) in entries.iter().enumerate() {
                    if n > 0 {
                        self.out.push_str(", ");
                    }
                    self.out.push_str(KEYS[*k]);
                    self.out.push_str(": ");
                    self.flow(item);
                }
                self.out.push('}');
            }
        }
    }

    /// A block value after `key:` or `-` on the current line, whose parent is at `indent`.
    fn after_indicator(&mut self, v: &Value, indent: usize, in_map: bool) {
        match v {
            Value::BlockSeq(items) if in_map && self.pick(2) == 0 => {
                // Indentless: the items at the key's own indentation.
                self.end_line();
                self.block_seq(items, indent);
            }
            Value::BlockSeq(items) if !in_map && self.pick(2) == 0 => {
                let sp = self.spaces();
                self.out.push_str(sp);
                self.block_seq_inline(items, indent + 1 + sp.len());
            }
            Value::BlockMap(entries) if !in_map && self.pick(2) == 0 => {
                let sp = self.spaces();
                self.out.push_str(sp);
                self.block_map_inline(entries, indent + 1 + sp.len());
            }
            Value::BlockSeq(items) => {
                self.end_line();
                let step = self.step();
                self.block_seq(items, indent + step);
            }
            Value::BlockMap(entries) => {
                self.end_line();
                let step = self.step();
                self.block_map(entries, indent + step);
            }
            _ => {
                if self.pick(10) == 0 {
                    // Empty: null.
                    self.end_line();
                    return;
                }
                let sp = self.spaces();
                self.out.push_str(sp);
                self.flow(v);
                self.end_line();
            }
        }
    }

    fn block_seq(&mut self, items: &[Value], indent: usize) {
        self.out.push_str(&" ".repeat(indent));
        self.block_seq_inline(items, indent);
    }

    /// Items whose first `-` is already indented (the cursor is at `indent`).
    fn block_seq_inline(&mut self, items: &[Value], indent: usize) {
        for (n, item) in items.iter().enumerate() {
            if n > 0 {
                self.out.push_str(&" ".repeat(indent));
            }
            self.out.push('-');
            self.after_indicator(item, indent, false);
        }
    }

    fn block_map(&mut self, entries: &[(usize, Value)], indent: usize) {
        self.out.push_str(&" ".repeat(indent));
        self.block_map_inline(entries, indent);
    }

    fn block_map_inline(&mut self, entries: &[(usize, Value)], indent: usize) {
        for (n, (k, item)) in entries.iter().enumerate() {
            if n > 0 {
                self.out.push_str(&" ".repeat(indent));
            }
            self.out.push_str(KEYS[*k]);
            self.out.push(':');
            self.after_indicator(item, indent, true);
        }
    }

    fn document(&mut self, v: &Value, first: bool) {
        if !first || self.pick(3) == 0 {
            self.push_choice(&["---\n", "--- # doc\n", "---  \n"]);
        }
        match v {
            Value::BlockSeq(items) => self.block_seq(items, 0),
            Value::BlockMap(entries) => self.block_map(entries, 0),
            // Resources are mappings: a document of one scalar or flow collection is left to
            // the full reader, so it is written as a mapping's value.
            other => self.block_map(&[(0, other.clone())], 0),
        }
    }
}

fn write(docs: &[Value], style: &[u8]) -> String {
    let mut w = Writer {
        out: String::new(),
        style,
        next: 0,
    };
    for (n, doc) in docs.iter().enumerate() {
        w.document(doc, n == 0);
    }
    w.out
}

const NOISE: &[u8] = b" -:#,[]{}'\"\n&*!|>?a1.";

proptest! {
    #![proptest_config(ProptestConfig { cases: 20000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn agrees_with_the_full_reader_on_generated_yaml(
        docs in prop::collection::vec(value(), 1..3),
        style in prop::collection::vec(any::<u8>(), 64),
    ) {
        let text = write(&docs, &style);
        agrees(&text)?;
    }

    #[test]
    fn agrees_with_the_full_reader_on_edited_yaml(
        docs in prop::collection::vec(value(), 1..3),
        style in prop::collection::vec(any::<u8>(), 64),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, 0..NOISE.len()), 1..4),
    ) {
        let mut bytes = write(&docs, &style).into_bytes();
        for (at, op, c) in edits {
            let at = at.index(bytes.len() + 1);
            match op {
                0 => bytes.insert(at, NOISE[c]),
                1 if at < bytes.len() => { bytes.remove(at); }
                _ if at < bytes.len() => bytes[at] = NOISE[c],
                _ => {}
            }
        }
        agrees(&String::from_utf8(bytes).unwrap())?;
    }
}

#[test]
fn the_generator_writes_yaml_the_fast_reader_takes() {
    // Without this, a fast reader that declined everything would pass the tests above.
    let plain = Value::BlockMap(vec![
        (0, Value::Scalar(0)),
        (
            1,
            Value::BlockSeq(vec![
                Value::Scalar(2),
                Value::FlowMap(vec![(2, Value::Scalar(1))]),
            ]),
        ),
        (
            3,
            Value::BlockMap(vec![(4, Value::FlowSeq(vec![Value::Scalar(3)]))]),
        ),
    ]);
    // (A style that writes empty values leaves its empty sequence items to the full reader.)
    for style in (0..=255u8).filter(|s| s % 10 != 0) {
        let text = write(std::slice::from_ref(&plain), &[style; 64]);
        assert!(agrees(&text).unwrap(), "style {style}:\n{text}");
    }
}

#[test]
fn single_quotes_escape_by_doubling() {
    for (text, value) in [
        ("a: ''\n", ""),
        ("a: ''''\n", "'"),
        ("a: 'it''s'\n", "it's"),
        ("a: 'a''''b'\n", "a''b"),
        ("a: ['x'' ', 'y']\n", "x' "),
    ] {
        assert!(agrees(text).unwrap(), "{text:?} left to the full reader");
        let docs = parse(text).unwrap();
        let a = docs[0].root.as_ref().unwrap().get("a").unwrap();
        let found = a.as_str().or_else(|| a.at(&["0"]).and_then(|n| n.as_str()));
        assert_eq!(found, Some(value), "{text:?}");
    }
}
