//! POMS campaign `.ini` files as Python's `ConfigParser(interpolation=None)` reads them
//! (reference §8.1): `[section]` headers, `key = value` or `key: value`, keys case-folded,
//! values raw (`%%` stays `%%`), indented lines continue the previous value, `#` and `;`
//! start full-line comments, duplicate sections and keys are errors. Every section and key
//! keeps its line, for messages.

use std::collections::HashMap;

use crate::model::yaml::Pos;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    pub pos: Pos,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub pos: Pos,
    pub entries: Vec<Entry>,
}

impl Section {
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key == key)
    }

    /// The section's kind and its argument: `campaign_stage gen` -> (`campaign_stage`, `gen`).
    pub fn kind_and_name(&self) -> (&str, &str) {
        match self.name.split_once(' ') {
            Some((kind, name)) => (kind, name.trim()),
            None => (self.name.as_str(), ""),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IniError {
    pub pos: Pos,
    pub message: String,
    pub hint: String,
}

pub fn parse(text: &str) -> Result<Vec<Section>, IniError> {
    let mut sections: Vec<Section> = Vec::new();
    // Section name -> its first line, and the keys of the current section: hashed, so that a
    // file of many sections or keys is not quadratic.
    let mut section_lines: HashMap<String, u32> = HashMap::new();
    let mut keys: HashMap<String, u32> = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i as u32 + 1;
        let trimmed = raw.trim();
        let at = |col: usize| Pos {
            line,
            col: col as u32 + 1,
        };
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        let indent = raw.len() - raw.trim_start().len();
        if indent > 0
            && let Some(entry) = sections.last_mut().and_then(|s| s.entries.last_mut())
        {
            // A continuation line of a multi-line value.
            entry.value.push('\n');
            entry.value.push_str(trimmed);
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix('[') {
            let Some(name) = rest.strip_suffix(']') else {
                return Err(IniError {
                    pos: at(indent),
                    message: "section header without its closing `]`".into(),
                    hint: "write `[campaign_stage NAME]`".into(),
                });
            };
            let name = name.trim().to_string();
            if let Some(first) = section_lines.get(&name) {
                return Err(IniError {
                    pos: at(indent),
                    message: format!("duplicate section `[{name}]`"),
                    hint: format!(
                        "the first is at line {first}; POMS refuses such files too: merge them"
                    ),
                });
            }
            section_lines.insert(name.clone(), line);
            keys.clear();
            sections.push(Section {
                name,
                pos: at(indent),
                entries: Vec::new(),
            });
            continue;
        }
        let Some(split) = trimmed.find(['=', ':']) else {
            return Err(IniError {
                pos: at(indent),
                message: format!("`{trimmed}` is neither a section header nor `key = value`"),
                hint: "continuation lines must be indented".into(),
            });
        };
        let Some(section) = sections.last_mut() else {
            return Err(IniError {
                pos: at(indent),
                message: "a key before any section".into(),
                hint: "start the file with `[campaign]`".into(),
            });
        };
        let key = trimmed[..split].trim().to_lowercase();
        let value = trimmed[split + 1..].trim().to_string();
        if let Some(first) = keys.get(&key) {
            return Err(IniError {
                pos: at(indent),
                message: format!("duplicate key `{key}` in `[{}]`", section.name),
                hint: format!("the first is at line {first}"),
            });
        }
        keys.insert(key.clone(), line);
        section.entries.push(Entry {
            key,
            value,
            pos: at(indent),
        });
    }
    Ok(sections)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configparser_rules() {
        let s = parse("# comment\n[campaign]\nName = x\n; other\nkeywords: {\"a\":\n  \"b\"}\n\n[campaign_stage  gen ]\nsplit=nfiles( 5 )\n").unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].get("name").unwrap().value, "x");
        assert_eq!(s[0].get("keywords").unwrap().value, "{\"a\":\n\"b\"}");
        assert_eq!(s[1].kind_and_name(), ("campaign_stage", "gen"));
        assert_eq!(s[1].get("split").unwrap().pos, Pos { line: 9, col: 1 });
    }

    #[test]
    fn duplicates_and_garbage_are_located() {
        let e = parse("[a]\nk=1\n[a]\n").unwrap_err();
        assert_eq!(
            (e.pos.line, e.message.as_str()),
            (3, "duplicate section `[a]`")
        );
        let e = parse("[a]\nk=1\nK=2\n").unwrap_err();
        assert_eq!(
            (e.pos.line, e.message.as_str()),
            (3, "duplicate key `k` in `[a]`")
        );
        let e = parse("k=1\n").unwrap_err();
        assert_eq!(e.message, "a key before any section");
        let e = parse("[a\n").unwrap_err();
        assert_eq!(e.message, "section header without its closing `]`");
    }
}
