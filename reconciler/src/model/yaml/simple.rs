//! A fast reader for the plain YAML resources are written in: block mappings and sequences,
//! one-line flow collections, and one-line scalars (plain, single-quoted, double-quoted
//! without escapes), with comments and `---` between documents.
//!
//! Scanning YAML in full generality was most of the time a large validation took. This reader
//! declines (returns `None`) at the first thing outside that subset or anything that is an
//! error; the full reader then parses the text and reports. Where it accepts, it builds the
//! same tree with the same positions as the full reader (checked against it by a differential
//! test), so nothing downstream can tell which one read a file.

use std::borrow::Cow;

use super::{Document, Entry, Node, NodeKind, Pos};

/// Deeper input is left to the full reader, which reports nesting beyond its own limit.
const MAX_DEPTH: usize = 32;
/// Larger mappings are left to the full reader, which indexes keys to find duplicates.
const MAX_KEYS: usize = 64;

/// The documents of `text`, or `None` when the full reader must read it.
pub(super) fn parse(text: &str) -> Option<Vec<Document<'_>>> {
    // Printable ASCII and newlines only: tabs, carriage returns, control characters and
    // multi-byte characters (whose columns count characters) go to the full reader.
    if !text
        .bytes()
        .all(|b| b == b'\n' || (b' '..=b'~').contains(&b))
    {
        return None;
    }
    Reader {
        text,
        at: 0,
        line: 1,
        line_start: 0,
    }
    .stream()
}

/// Where a plain scalar stands: in a flow collection `,[]{}` end it.
#[derive(Clone, Copy, PartialEq)]
enum Context {
    Block,
    FlowValue,
    FlowKey,
}

struct Reader<'a> {
    text: &'a str,
    at: usize,
    line: u32,
    line_start: usize,
}

impl<'a> Reader<'a> {
    fn byte(&self, i: usize) -> u8 {
        // The end of the text reads as the end of a line.
        self.text.as_bytes().get(i).copied().unwrap_or(b'\n')
    }

    fn peek(&self) -> u8 {
        self.byte(self.at)
    }

    fn eof(&self) -> bool {
        self.at >= self.text.len()
    }

    fn col(&self) -> u32 {
        (self.at - self.line_start) as u32 + 1
    }

    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            col: self.col(),
        }
    }

    fn skip_spaces(&mut self) {
        while self.peek() == b' ' && !self.eof() {
            self.at += 1;
        }
    }

    /// Past the end of the current line: what is left on it may only be spaces and a comment.
    fn end_line(&mut self) -> Option<()> {
        self.skip_spaces();
        if self.peek() == b'#' && self.byte(self.at - 1) == b' ' {
            while self.peek() != b'\n' {
                self.at += 1;
            }
        }
        if self.eof() {
            return Some(());
        }
        (self.peek() == b'\n').then(|| self.new_line())
    }

    fn new_line(&mut self) {
        self.at += 1;
        self.line += 1;
        self.line_start = self.at;
    }

    /// Moves to the first token of the next line holding one; `false` at the end of the text.
    /// Called at the start of a line.
    fn next_content(&mut self) -> bool {
        loop {
            self.skip_spaces();
            match self.peek() {
                _ if self.eof() => return false,
                b'\n' => self.new_line(),
                b'#' => {
                    while self.peek() != b'\n' {
                        self.at += 1;
                    }
                }
                _ => return true,
            }
        }
    }

    /// At a `---` that starts a document.
    fn at_document_marker(&self) -> bool {
        self.at == self.line_start
            && self.text.as_bytes()[self.at..].starts_with(b"---")
            && matches!(self.byte(self.at + 3), b' ' | b'\n')
    }

    /// At a block sequence's `-`.
    fn at_item(&self) -> bool {
        self.peek() == b'-' && matches!(self.byte(self.at + 1), b' ' | b'\n')
    }

    /// The length of the block mapping key at the cursor, if a plain key and its `:` are here.
    fn key_len(&self) -> Option<usize> {
        let bytes = &self.text.as_bytes()[self.at..];
        let first = *bytes.first()?;
        if !(first.is_ascii_alphanumeric() || first == b'_') {
            return None;
        }
        let len = bytes
            .iter()
            .position(|&b| !(b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'/')))
            .unwrap_or(bytes.len());
        (self.byte(self.at + len) == b':' && matches!(self.byte(self.at + len + 1), b' ' | b'\n'))
            .then_some(len)
    }

    fn stream(&mut self) -> Option<Vec<Document<'a>>> {
        let mut docs = Vec::new();
        while self.next_content() {
            let pos = self.pos();
            let root = if self.at_document_marker() {
                self.at += 3;
                self.end_line()?;
                if !self.next_content() || self.at_document_marker() {
                    None
                } else {
                    Some(self.block(0)?)
                }
            } else if docs.is_empty() {
                Some(self.block(0)?)
            } else {
                // A document after the first needs its `---`.
                return None;
            };
            docs.push(Document { pos, root });
            if !self.eof() && !self.at_document_marker() {
                return None;
            }
        }
        Some(docs)
    }

    /// A block collection starting at the cursor.
    fn block(&mut self, depth: usize) -> Option<Node<'a>> {
        if self.at_item() {
            self.sequence(depth, false)
        } else if self.key_len().is_some() {
            self.mapping(depth)
        } else {
            None
        }
    }

    /// Whether the collection indented at `indent` goes on at the cursor: `Some(false)` when it
    /// has ended, `None` where the text is not what the subset allows.
    fn continues(&self, indent: u32) -> Option<bool> {
        if self.eof() || self.col() < indent || self.at_document_marker() {
            Some(false)
        } else {
            (self.col() == indent).then_some(true)
        }
    }

    /// A value that ends its line; the cursor moves to the next token, which must not be
    /// deeper than `indent` (the full reader would continue the scalar or refuse the text).
    fn last_on_line(&mut self, indent: u32, depth: usize) -> Option<Node<'a>> {
        let node = self.inline(depth)?;
        self.end_line()?;
        if self.next_content() && self.col() > indent {
            return None;
        }
        Some(node)
    }

    fn mapping(&mut self, depth: usize) -> Option<Node<'a>> {
        if depth > MAX_DEPTH {
            return None;
        }
        let pos = self.pos();
        let indent = self.col();
        let mut entries: Vec<Entry> = Vec::new();
        loop {
            let len = self.key_len()?;
            let text = self.text;
            let key = &text[self.at..self.at + len];
            if entries.len() == MAX_KEYS || entries.iter().any(|e| e.key == key) {
                return None;
            }
            let key_pos = self.pos();
            self.at += len;
            let colon = self.pos();
            self.at += 1;
            self.skip_spaces();
            let value = if self.peek() == b'\n' || self.peek() == b'#' {
                self.end_line()?;
                let more = self.next_content();
                if more && self.col() > indent {
                    self.block(depth + 1)?
                } else if more && self.col() == indent && self.at_item() {
                    self.sequence(depth + 1, true)?
                } else {
                    Node {
                        pos: colon,
                        kind: NodeKind::Scalar {
                            value: Cow::Borrowed(""),
                            plain: true,
                        },
                    }
                }
            } else {
                self.last_on_line(indent, depth + 1)?
            };
            entries.push(Entry {
                key: Cow::Borrowed(key),
                key_pos,
                value,
            });
            if !self.continues(indent)? {
                break;
            }
        }
        Some(Node {
            pos,
            kind: NodeKind::Map(entries),
        })
    }

    /// A block sequence at its first `-`. An indentless one (a mapping value at the key's
    /// indentation) is placed, as the full reader places it, at its first item's content.
    fn sequence(&mut self, depth: usize, indentless: bool) -> Option<Node<'a>> {
        if depth > MAX_DEPTH {
            return None;
        }
        let mut pos = self.pos();
        let indent = self.col();
        let mut items = Vec::new();
        loop {
            self.at += 1;
            self.skip_spaces();
            let item = if self.peek() == b'\n' || self.peek() == b'#' {
                if indentless && items.is_empty() {
                    return None;
                }
                self.end_line()?;
                if !self.next_content() || self.col() <= indent {
                    return None;
                }
                self.block(depth + 1)?
            } else {
                if indentless && items.is_empty() {
                    pos = self.pos();
                }
                if self.at_item() {
                    self.sequence(depth + 1, false)?
                } else if self.key_len().is_some() {
                    self.mapping(depth + 1)?
                } else {
                    self.last_on_line(indent, depth + 1)?
                }
            };
            items.push(item);
            if !self.continues(indent)? {
                break;
            }
            if !self.at_item() {
                if indentless {
                    break;
                }
                return None;
            }
        }
        Some(Node {
            pos,
            kind: NodeKind::Seq(items),
        })
    }

    /// A value within one line: a flow collection or a scalar.
    fn inline(&mut self, depth: usize) -> Option<Node<'a>> {
        self.value(Context::Block, depth)
    }

    fn value(&mut self, context: Context, depth: usize) -> Option<Node<'a>> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek() {
            b'[' => self.flow_sequence(depth),
            b'{' => self.flow_mapping(depth),
            _ => self.scalar(context),
        }
    }

    fn scalar(&mut self, context: Context) -> Option<Node<'a>> {
        let pos = self.pos();
        let (value, plain) = match self.peek() {
            b'"' => (self.quoted(b'"')?, false),
            b'\'' => (self.quoted(b'\'')?, false),
            _ => (self.plain(context)?, true),
        };
        Some(Node {
            pos,
            kind: NodeKind::Scalar { value, plain },
        })
    }

    /// A quoted scalar on one line; a double-quoted one without escapes. Borrowed from the
    /// text unless it holds a `''`.
    fn quoted(&mut self, quote: u8) -> Option<Cow<'a, str>> {
        let text = self.text;
        self.at += 1;
        let mut value = Cow::Borrowed("");
        let mut start = self.at;
        loop {
            while !matches!(self.peek(), b'\n' | b'\\' | b'"' | b'\'') {
                self.at += 1;
            }
            match self.peek() {
                b'\n' => return None,
                b'\\' if quote == b'"' => return None,
                b'\'' if quote == b'\'' && self.byte(self.at + 1) == b'\'' => {
                    // `''` is one quote: the text up to and with the first, then on after both.
                    value.to_mut().push_str(&text[start..=self.at]);
                    self.at += 2;
                    start = self.at;
                }
                c if c == quote => {
                    let last = &text[start..self.at];
                    self.at += 1;
                    return Some(match value {
                        Cow::Borrowed(_) => Cow::Borrowed(last),
                        Cow::Owned(mut v) => {
                            v.push_str(last);
                            Cow::Owned(v)
                        }
                    });
                }
                _ => self.at += 1,
            }
        }
    }

    /// A plain scalar that starts and ends in a way no YAML reader could take otherwise.
    fn plain(&mut self, context: Context) -> Option<Cow<'a, str>> {
        let first = self.peek();
        let starts = first.is_ascii_alphanumeric()
            || matches!(
                first,
                b'_' | b'.' | b'/' | b'(' | b'$' | b'~' | b'+' | b'=' | b'^'
            )
            || (first == b'-'
                && matches!(self.byte(self.at + 1), b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z' | b'.' | b'-'));
        if !starts {
            return None;
        }
        let start = self.at;
        let mut end = self.at;
        loop {
            let c = self.peek();
            match c {
                b'\n' => break,
                b'#' if self.byte(self.at - 1) == b' ' => break,
                // Each word of a flow scalar is checked as a start: `a -]` is refused.
                b'-' if context != Context::Block
                    && self.byte(self.at - 1) == b' '
                    && !self.byte(self.at + 1).is_ascii_alphanumeric() =>
                {
                    return None;
                }
                b':' if context == Context::FlowKey => break,
                b',' | b']' | b'}' if context != Context::Block => break,
                b'[' | b']' | b'{' | b'}' | b'#' | b'"' | b'\'' if context != Context::Block => {
                    return None;
                }
                b'[' | b']' | b'{' | b'}' => return None,
                b':' if context != Context::Block
                    || matches!(self.byte(self.at + 1), b' ' | b'\n') =>
                {
                    return None;
                }
                _ => {}
            }
            self.at += 1;
            if c != b' ' {
                end = self.at;
            }
        }
        self.at = end;
        let text = self.text;
        Some(Cow::Borrowed(&text[start..end]))
    }

    fn flow_sequence(&mut self, depth: usize) -> Option<Node<'a>> {
        let pos = self.pos();
        self.at += 1;
        self.skip_spaces();
        let mut items = Vec::new();
        if self.peek() == b']' {
            self.at += 1;
        } else {
            loop {
                items.push(self.value(Context::FlowValue, depth + 1)?);
                if !self.flow_separator(b']')? {
                    break;
                }
            }
        }
        Some(Node {
            pos,
            kind: NodeKind::Seq(items),
        })
    }

    fn flow_mapping(&mut self, depth: usize) -> Option<Node<'a>> {
        let pos = self.pos();
        self.at += 1;
        self.skip_spaces();
        let mut entries: Vec<Entry> = Vec::new();
        if self.peek() == b'}' {
            self.at += 1;
        } else {
            loop {
                let key_node = self.scalar(Context::FlowKey)?;
                let key = match key_node.kind {
                    NodeKind::Scalar { value, .. } => value,
                    _ => return None,
                };
                if entries.len() == MAX_KEYS || entries.iter().any(|e| e.key == key) {
                    return None;
                }
                if self.peek() != b':' || self.byte(self.at + 1) != b' ' {
                    return None;
                }
                self.at += 1;
                self.skip_spaces();
                let value = self.value(Context::FlowValue, depth + 1)?;
                entries.push(Entry {
                    key,
                    key_pos: key_node.pos,
                    value,
                });
                if !self.flow_separator(b'}')? {
                    break;
                }
            }
        }
        Some(Node {
            pos,
            kind: NodeKind::Map(entries),
        })
    }

    /// After a flow item: `Some(true)` past a `,` with another item to come, `Some(false)` past
    /// the closing bracket.
    fn flow_separator(&mut self, close: u8) -> Option<bool> {
        self.skip_spaces();
        match self.peek() {
            b',' => {
                self.at += 1;
                self.skip_spaces();
                // A trailing comma, or a line break inside the collection.
                (!matches!(self.peek(), b'\n' | b']' | b'}' | b',')).then_some(true)
            }
            c if c == close => {
                self.at += 1;
                Some(false)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
