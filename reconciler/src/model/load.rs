//! Loading: `(path, bytes)` pairs into typed, positioned resources.
//!
//! The one loader for every source (a directory, a git tree at a commit, custom resources), so
//! all of them are read and checked the same way. Pure: it never touches the file system.

use std::sync::Arc;

use cascade_crd::{
    API_VERSION, CampaignSpec, CampaignStageSpec, JobTypeSpec, KINDS, LoginSetupSpec,
};
use serde::Deserialize;
use serde::de::IgnoredAny;
use std::collections::BTreeMap;

use super::de::{DeError, from_node, suggest};
use super::diagnostic::Diagnostic;
use super::graph::{Interner, Name};
use super::yaml::{Document, Node, NodeKind, Pos, parse_stream};

/// Largest file accepted. Campaign definitions are kilobytes; anything near this is a mistake.
pub const MAX_FILE_BYTES: usize = 16 * 1024 * 1024;

/// A file's name (as shown in messages) and contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFile {
    pub path: String,
    /// Shared with the resources loaded from it, which keep it for their messages.
    pub bytes: Arc<[u8]>,
}

/// `metadata` of a resource. Server-managed fields that `kubectl get -o yaml` prints are
/// accepted so that exported resources load; Cascade ignores them.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Meta {
    pub name: Name,
    // Interned while loading: one `Name` per namespace per file.
    #[serde(default)]
    pub namespace: Option<Name>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub generation: Option<i64>,
    // Server-managed: type-checked, not kept (a set may hold hundreds of thousands of
    // resources; Cascade reads none of these).
    #[serde(default)]
    uid: Unkept<Option<String>>,
    #[serde(default)]
    resource_version: Unkept<Option<String>>,
    #[serde(default)]
    creation_timestamp: Unkept<Option<String>>,
    #[serde(default)]
    finalizers: Unkept<Vec<String>>,
    // Also printed by `kubectl get -o yaml`, and of no meaning here: accepted, not kept.
    #[serde(default)]
    managed_fields: Option<IgnoredAny>,
    #[serde(default)]
    owner_references: Option<IgnoredAny>,
    #[serde(default)]
    self_link: Option<IgnoredAny>,
    #[serde(default)]
    deletion_timestamp: Option<IgnoredAny>,
    #[serde(default)]
    deletion_grace_period_seconds: Option<IgnoredAny>,
}

/// A field read as a `T` (a value of another type is an error, as it would be if kept) and
/// then dropped.
#[derive(Clone, Debug, Default, PartialEq)]
struct Unkept<T>(std::marker::PhantomData<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Unkept<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(|_| Unkept(std::marker::PhantomData))
    }
}

/// Namespace of resources that name none.
pub const DEFAULT_NAMESPACE: &str = "default";

#[derive(Clone, Debug, PartialEq)]
pub enum Spec {
    LoginSetup(Box<LoginSetupSpec>),
    JobType(Box<JobTypeSpec>),
    Campaign(Box<CampaignSpec>),
    CampaignStage(Box<CampaignStageSpec>),
    Notifier(Box<cascade_crd::NotifierSpec>),
}

/// A loaded resource, and where in its file's text it came from.
#[derive(Clone, Debug)]
pub struct Resource {
    pub file: Arc<str>,
    pub origin: Origin,
    /// Boxed, as the specs are: a set may hold hundreds of thousands of resources.
    pub meta: Box<Meta>,
    pub spec: Spec,
}

/// The text a resource was read from and which document of it (and which item of a `List`).
/// Positions are found again in that text when a message needs one, so a loaded set keeps
/// its text (about the size of the YAML) rather than a positioned tree per resource (about
/// ten times that).
#[derive(Clone, Debug)]
pub struct Origin {
    /// The file's bytes, known to be UTF-8 (with a byte-order mark, when it had one).
    pub text: Arc<[u8]>,
    pub document: u32,
    pub item: Option<u32>,
}

/// A file's bytes and its documents, parsed again for messages.
type ParsedFile = (Arc<[u8]>, Vec<Document<'static>>);

/// The text of a file loaded before, without its byte-order mark.
fn without_bom(bytes: &[u8]) -> &str {
    let text = std::str::from_utf8(bytes).unwrap_or_default();
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

impl Origin {
    /// The positioned tree of the resource, parsed again from its text. The last file
    /// parsed is kept (per thread), so the messages about one file cost one parse.
    pub fn with_node<T>(&self, f: impl FnOnce(&Node) -> T) -> T {
        thread_local! {
            static LAST: std::cell::RefCell<Option<ParsedFile>> =
                const { std::cell::RefCell::new(None) };
        }
        LAST.with(|last| {
            let mut last = last.borrow_mut();
            let cached = last
                .as_ref()
                .is_some_and(|(text, _)| Arc::ptr_eq(text, &self.text));
            if !cached {
                // It parsed when it was loaded; a stream that no longer parses is impossible.
                let docs = parse_stream(without_bom(&self.text)).unwrap_or_default();
                let docs = docs.into_iter().map(Document::into_owned).collect();
                *last = Some((self.text.clone(), docs));
            }
            let docs = last
                .as_ref()
                .map(|(_, docs)| docs.as_slice())
                .unwrap_or(&[]);
            let root = docs
                .get(self.document as usize)
                .and_then(|d| d.root.as_ref());
            let node = match (root, self.item) {
                (Some(root), Some(i)) => root
                    .get("items")
                    .and_then(|items| items.at(&[&i.to_string()])),
                (root, None) => root,
                (None, Some(_)) => None,
            };
            match node {
                Some(node) => f(node),
                None => f(&Node {
                    pos: Pos { line: 1, col: 1 },
                    kind: NodeKind::Seq(Vec::new()),
                }),
            }
        })
    }
}

impl Resource {
    pub fn kind(&self) -> &'static str {
        match self.spec {
            Spec::LoginSetup(_) => "LoginSetup",
            Spec::JobType(_) => "JobType",
            Spec::Campaign(_) => "Campaign",
            Spec::CampaignStage(_) => "CampaignStage",
            Spec::Notifier(_) => "Notifier",
        }
    }

    pub fn namespace(&self) -> &str {
        self.meta.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE)
    }

    pub fn name(&self) -> &str {
        &self.meta.name
    }

    /// Position of the deepest node that exists along `path` (so a missing field points at
    /// the mapping that should hold it).
    pub fn locate(&self, path: &[&str]) -> Pos {
        self.origin.with_node(|root| deepest(root, path).pos)
    }

    /// Position of the key `path`'s last step (for "this field should not be here").
    pub fn locate_key(&self, path: &[&str]) -> Pos {
        self.origin.with_node(|root| {
            let Some((last, parent)) = path.split_last() else {
                return root.pos;
            };
            root.at(parent)
                .and_then(|n| n.entry(last))
                .map(|e| e.key_pos)
                .unwrap_or_else(|| deepest(root, path).pos)
        })
    }

    pub fn error(&self, path: &[&str], code: &'static str, msg: impl Into<String>) -> Diagnostic {
        Diagnostic::error(&self.file, self.locate(path), code, msg)
    }

    pub fn warning(&self, path: &[&str], code: &'static str, msg: impl Into<String>) -> Diagnostic {
        Diagnostic::warning(&self.file, self.locate(path), code, msg)
    }
}

/// The deepest node that exists along `path`.
fn deepest<'n, 't>(root: &'n Node<'t>, path: &[&str]) -> &'n Node<'t> {
    let mut node = root;
    for step in path {
        match node.at(&[step]) {
            Some(next) => node = next,
            None => break,
        }
    }
    node
}

/// (kind, namespace, name) of a document that says what it is but did not load. Validation
/// knows it exists, so references to it do not add a second, misleading "does not exist".
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Identity {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
}

/// What loading a set of files gives: the resources that loaded, the identities of documents
/// that did not, and a diagnostic for each of those. A document with an error contributes no
/// resource.
#[derive(Debug, Default)]
pub struct Loaded {
    pub resources: Vec<Resource>,
    pub broken: Vec<Identity>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Loads every file (on every core: files load independently).
pub fn load(files: &[SourceFile]) -> Loaded {
    // Weighed by size: a file of many documents is as much work as as many files.
    let mut parts = crate::parallel::map_parts_weighed(
        files,
        |f| f.bytes.len(),
        512,
        |part| {
            let mut some = Loaded::default();
            let mut namespaces = Interner::default();
            for file in part {
                let from = some.resources.len();
                load_file(file, &mut some);
                for r in &mut some.resources[from..] {
                    if let Some(ns) = &mut r.meta.namespace {
                        *ns = namespaces.name(ns);
                    }
                }
            }
            some
        },
    );
    let resources = crate::parallel::concat(
        parts
            .iter_mut()
            .map(|p| std::mem::take(&mut p.resources))
            .collect(),
    );
    let broken = parts.iter_mut().flat_map(|p| p.broken.drain(..)).collect();
    let diagnostics = parts
        .iter_mut()
        .flat_map(|p| p.diagnostics.drain(..))
        .collect();
    Loaded {
        resources,
        broken,
        diagnostics,
    }
}

fn load_file(file: &SourceFile, loaded: &mut Loaded) {
    let diags = &mut loaded.diagnostics;
    let path: Arc<str> = Arc::from(file.path.as_str());
    let at = |pos: Pos, code, msg: String| Diagnostic::error(&path, pos, code, msg);
    if file.bytes.len() > MAX_FILE_BYTES {
        diags.push(
            at(
                Pos { line: 1, col: 1 },
                "file-too-large",
                format!(
                    "file is larger than the {} MiB limit",
                    MAX_FILE_BYTES / 1_048_576
                ),
            )
            .with_hint("split the resources over several files"),
        );
        return;
    }
    let text = match std::str::from_utf8(&file.bytes) {
        Ok(t) => t,
        Err(e) => {
            let valid = &file.bytes[..e.valid_up_to()];
            let line = valid.iter().filter(|b| **b == b'\n').count() as u32 + 1;
            let line_start = valid.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            let col = String::from_utf8_lossy(&valid[line_start..])
                .chars()
                .count() as u32
                + 1;
            diags.push(
                at(
                    Pos { line, col },
                    "not-utf8",
                    format!("invalid UTF-8 (byte 0x{:02x})", file.bytes[e.valid_up_to()]),
                )
                .with_hint("save the file as UTF-8"),
            );
            return;
        }
    };
    let docs = match parse_stream(text.strip_prefix('\u{feff}').unwrap_or(text)) {
        Ok(docs) => docs,
        Err(e) => {
            diags.push(at(e.pos, e.code, e.message).with_hint_opt(e.hint));
            return;
        }
    };
    if docs.iter().all(|d| d.root.is_none()) {
        diags.push(
            at(
                Pos { line: 1, col: 1 },
                "empty-file",
                "file holds no resources".into(),
            )
            .with_hint("add a resource, or remove the file from the set"),
        );
        return;
    }
    for (document, doc) in docs.into_iter().enumerate() {
        let Some(root) = doc.root else { continue };
        let (roots, is_list) = match list_items(&path, root) {
            Ok(roots) => roots,
            Err(d) => {
                loaded.diagnostics.push(d);
                continue;
            }
        };
        for (item, root) in roots.into_iter().enumerate() {
            let origin = Origin {
                text: file.bytes.clone(),
                document: document as u32,
                item: is_list.then_some(item as u32),
            };
            match load_document(&path, root, origin, &mut loaded.broken) {
                Ok(resource) => loaded.resources.push(resource),
                Err(d) => loaded.diagnostics.push(d),
            }
        }
    }
}

/// The documents a document holds: its `items` if it is a `kind: List` (what
/// `kubectl get campaigns -o yaml` prints), else itself; and whether it is a List.
fn list_items<'t>(path: &Arc<str>, root: Node<'t>) -> Result<(Vec<Node<'t>>, bool), Diagnostic> {
    let is_list = root.get("kind").and_then(Node::as_str) == Some("List")
        && root.get("apiVersion").and_then(Node::as_str) == Some("v1");
    if !is_list {
        return Ok((vec![root], false));
    }
    let pos = root.pos;
    let NodeKind::Map(entries) = root.kind else {
        return Ok((Vec::new(), true));
    };
    const LIST: [&str; 4] = ["apiVersion", "kind", "metadata", "items"];
    let mut items = None;
    for e in entries {
        match e.key.as_ref() {
            "items" => items = Some(e.value),
            k if LIST.contains(&k) => {}
            k => {
                return Err(Diagnostic::error(
                    path,
                    e.key_pos,
                    "unknown-field",
                    format!("unknown field `{k}`"),
                )
                .with_hint(suggest(k, &LIST, "fields of a List")));
            }
        }
    }
    match items {
        Some(Node {
            kind: NodeKind::Seq(items),
            ..
        }) => Ok((items, true)),
        // `items: null`, as kubectl prints an empty list.
        Some(empty) if empty.is_null() => Ok((Vec::new(), true)),
        Some(other) => Err(Diagnostic::error(
            path,
            other.pos,
            "invalid-field",
            format!(
                "`items` of a List must be a sequence of resources, found {}",
                other.describe()
            ),
        )),
        None => Err(Diagnostic::error(
            path,
            pos,
            "missing-field",
            "a List needs `items`",
        )),
    }
}

/// A document's resource, or its one error. A document whose header was readable but whose
/// spec was not is added to `broken`.
fn load_document(
    path: &Arc<str>,
    root: Node,
    origin: Origin,
    broken: &mut Vec<Identity>,
) -> Result<Resource, Diagnostic> {
    let (kind, meta) = load_header(path, &root)?;
    let spec = load_spec(path, &root, kind).inspect_err(|_| {
        broken.push(Identity {
            kind,
            namespace: meta
                .namespace
                .as_deref()
                .unwrap_or(DEFAULT_NAMESPACE)
                .to_string(),
            name: meta.name.to_string(),
        })
    })?;
    Ok(Resource {
        file: path.clone(),
        origin,
        meta: Box::new(meta),
        spec,
    })
}

fn load_spec(path: &Arc<str>, root: &Node, kind: &str) -> Result<Spec, Diagnostic> {
    let spec_node = root.get("spec").ok_or_else(|| {
        Diagnostic::error(path, root.pos, "missing-field", "missing field `spec`")
            .with_hint(format!("every {kind} needs a `spec`"))
    })?;
    match kind {
        "LoginSetup" => from_node(spec_node).map(Spec::LoginSetup),
        "JobType" => from_node(spec_node).map(Spec::JobType),
        "Campaign" => from_node(spec_node).map(|s| Spec::Campaign(Box::new(s))),
        "Notifier" => from_node(spec_node).map(|s| Spec::Notifier(Box::new(s))),
        _ => from_node(spec_node).map(|s| Spec::CampaignStage(Box::new(s))),
    }
    .map_err(|e| located(path, e, spec_node.pos))
}

fn located(path: &Arc<str>, e: DeError, fallback: Pos) -> Diagnostic {
    Diagnostic::error(path, e.pos.unwrap_or(fallback), "invalid-field", e.message)
        .with_hint_opt(e.hint)
}

/// `apiVersion`, `kind` and `metadata`: what the document is.
fn load_header(path: &Arc<str>, root: &Node) -> Result<(&'static str, Meta), Diagnostic> {
    let err = |pos: Pos, code, msg: String| Diagnostic::error(path, pos, code, msg);
    let NodeKind::Map(entries) = &root.kind else {
        return Err(err(
            root.pos,
            "not-a-resource",
            format!(
                "expected a resource (a mapping with apiVersion, kind, metadata and spec), found {}",
                root.describe()
            ),
        ));
    };
    const TOP: [&str; 5] = ["apiVersion", "kind", "metadata", "spec", "status"];
    if let Some(e) = entries.iter().find(|e| !TOP.contains(&e.key.as_ref())) {
        return Err(err(
            e.key_pos,
            "unknown-field",
            format!("unknown field `{}`", e.key),
        )
        .with_hint(suggest(&e.key, &TOP, "fields")));
    }
    let scalar = |key: &str| -> Result<(&str, Pos), Diagnostic> {
        let node = root
            .get(key)
            .ok_or_else(|| err(root.pos, "missing-field", format!("missing field `{key}`")))?;
        node.as_str()
            .filter(|_| !node.is_null())
            .map(|s| (s, node.pos))
            .ok_or_else(|| {
                err(
                    node.pos,
                    "wrong-type",
                    format!("`{key}` must be a string, found {}", node.describe()),
                )
            })
    };
    let (api_version, api_pos) = scalar("apiVersion")?;
    if api_version != API_VERSION {
        return Err(err(
            api_pos,
            "unknown-api-version",
            format!("unknown apiVersion `{api_version}`"),
        )
        .with_hint(format!("Cascade resources use `apiVersion: {API_VERSION}`")));
    }
    let (kind, kind_pos) = scalar("kind")?;
    let Some(kind) = KINDS.iter().copied().find(|k| *k == kind) else {
        return Err(
            err(kind_pos, "unknown-kind", format!("unknown kind `{kind}`"))
                .with_hint(suggest(kind, &KINDS, "kinds")),
        );
    };
    let meta_node = root
        .get("metadata")
        .ok_or_else(|| err(root.pos, "missing-field", "missing field `metadata`".into()))?;
    let meta: Meta = from_node(meta_node).map_err(|e| located(path, e, meta_node.pos))?;
    check_name(&meta.name, "name", 253).map_err(|(m, h)| {
        err(
            meta_node.get("name").map_or(meta_node.pos, |n| n.pos),
            "invalid-name",
            m,
        )
        .with_hint(h)
    })?;
    if let Some(ns) = &meta.namespace {
        check_name(ns, "namespace", 63).map_err(|(m, h)| {
            err(
                meta_node.get("namespace").map_or(meta_node.pos, |n| n.pos),
                "invalid-name",
                m,
            )
            .with_hint(h)
        })?;
    }
    Ok((kind, meta))
}

/// Kubernetes object-name rules (RFC 1123): lowercase letters, digits, `-` (and `.` in names),
/// starting and ending with a letter or digit.
fn check_name(name: &str, what: &str, max: usize) -> Result<(), (String, String)> {
    let dots = what == "name";
    let ok_char =
        |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (dots && c == '.');
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !name.is_empty()
        && name.len() <= max
        && name.chars().all(ok_char)
        && edge(name.chars().next())
        && edge(name.chars().last())
    {
        return Ok(());
    }
    let suggestion: String = name
        .to_lowercase()
        .chars()
        .map(|c| if ok_char(c) { c } else { '-' })
        .collect::<String>()
        .trim_matches('-')
        .to_string();
    Err((
        format!("invalid {what} `{name}`"),
        format!(
            "{what}s use lowercase letters, digits and `-`{}, at most {max} characters, starting and ending with a letter or digit{}",
            if dots { " or `.`" } else { "" },
            if suggestion.is_empty() {
                String::new()
            } else {
                format!(", e.g. `{suggestion}`")
            }
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, text: &str) -> SourceFile {
        SourceFile {
            path: path.into(),
            bytes: text.as_bytes().into(),
        }
    }

    /// Positions are found again from the text when a message needs one: in the right
    /// document of a stream, the right item of a List, and the right file of several.
    #[test]
    fn messages_after_loading_point_into_the_right_document_item_and_file() {
        let stage = |name: &str, campaign: &str| {
            format!(
                "apiVersion: cascade.dev/v1alpha1\nkind: CampaignStage\nmetadata: {{name: {name}}}\nspec:\n  campaign: {campaign}\n"
            )
        };
        let list = "apiVersion: v1
kind: List
items:
- apiVersion: cascade.dev/v1alpha1
  kind: CampaignStage
  metadata: {name: a}
  spec: {campaign: c}
- apiVersion: cascade.dev/v1alpha1
  kind: CampaignStage
  metadata: {name: b}
  spec:
    campaign: nowhere
";
        let stream = format!("{}---\n{}", stage("x", "c"), stage("y", "elsewhere"));
        let files = [file("list.yaml", list), file("stream.yaml", &stream)];
        let (_, validated) = super::super::load_and_validate(&files);
        let at = |name: &str| {
            validated
                .diagnostics
                .iter()
                .find(|d| d.message.contains(name))
                .map(|d| (d.file.to_string(), d.pos.line, d.pos.col))
                .unwrap_or_else(|| panic!("no message about {name}: {:?}", validated.diagnostics))
        };
        // The value of `campaign:` in the List's second item; in the stream's second document.
        assert_eq!(at("nowhere"), ("list.yaml".into(), 12, 15));
        assert_eq!(at("elsewhere"), ("stream.yaml".into(), 11, 13));
    }

    /// A file saved with a byte-order mark: messages found while loading and those found
    /// later, from the file's kept bytes, point where they do without the mark.
    /// What `kubectl get -o yaml` prints loads (server-managed metadata is not kept), and a
    /// value of the wrong type there is still refused at its place.
    #[test]
    fn server_managed_metadata_loads_and_keeps_its_types() {
        let with = |extra: &str| {
            format!(
                "apiVersion: cascade.dev/v1alpha1\nkind: JobType\nmetadata:\n  name: j\n  namespace: exp\n{extra}spec:\n  launchScript: run\n"
            )
        };
        let exported = with(
            "  uid: 0b6f1c9e-5d0a-4b7e-9a55-3f1f2f0c8e11\n  resourceVersion: \"4711\"\n  creationTimestamp: \"2026-12-06T10:00:00Z\"\n  finalizers: [cascade.dev/cleanup]\n  managedFields: [{manager: kubectl}]\n",
        );
        let loaded = load(&[file("a.yaml", &exported)]);
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        assert_eq!(loaded.resources.len(), 1);
        assert_eq!(loaded.resources[0].namespace(), "exp");
        assert_eq!(loaded.resources[0].name(), "j");

        let wrong = with("  finalizers: {not: a list}\n");
        let loaded = load(&[file("b.yaml", &wrong)]);
        assert!(loaded.resources.is_empty());
        assert_eq!(loaded.diagnostics.len(), 1, "{:?}", loaded.diagnostics);
        let d = &loaded.diagnostics[0];
        assert_eq!((d.pos.line, d.pos.col), (6, 15), "{d}");
        assert!(
            d.message.contains("finalizers") || d.message.contains("sequence"),
            "{d}"
        );
    }

    #[test]
    fn a_byte_order_mark_moves_no_message() {
        let text = "apiVersion: cascade.dev/v1alpha1\nkind: CampaignStage\nmetadata: {name: s}\nspec:\n  campaign: nowhere\n---\napiVersion: cascade.dev/v1alpha1\nkind: JobType\nmetadata: {name: j}\nspec:\n  launchScript: run\n  colour: blue\n";
        let positions = |text: &str| {
            let (_, validated) = super::super::load_and_validate(&[file("a.yaml", text)]);
            let mut found: Vec<_> = validated
                .diagnostics
                .iter()
                .map(|d| (d.code, d.pos.line, d.pos.col))
                .collect();
            found.sort();
            found
        };
        let plain = positions(text);
        // The unknown field (found while loading) and the unknown campaign (found later).
        assert_eq!(
            plain,
            vec![("invalid-field", 12, 3), ("unknown-reference", 5, 13)]
        );
        assert_eq!(positions(&format!("\u{feff}{text}")), plain);
    }
}
