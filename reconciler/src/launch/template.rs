//! POMS's `%`-templates: `%(name)s` substitutes a variable, `%%` is a literal `%`, and any
//! other `%` is an error (POMS formats with Python's `%` operator, so a stray `%` breaks the
//! launch; Cascade reports it when the campaign is validated instead).

use std::fmt;

/// One piece of a parsed template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment<'a> {
    Text(&'a str),
    /// A literal `%` (written `%%`).
    Percent,
    /// `%(name)s`, with the character offset of its `%`.
    Var {
        name: &'a str,
        offset: usize,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateError {
    /// Character offset of the offending `%`.
    pub offset: usize,
    pub message: String,
    pub hint: &'static str,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.message)
    }
}

const PERCENT_HINT: &str = "write `%%` for a literal `%`, and `%(name)s` for a variable";

/// Splits a template into text, literal `%` and variables.
pub fn parse(text: &str) -> Result<Vec<Segment<'_>>, TemplateError> {
    let mut out = Vec::new();
    let mut rest = text;
    let mut consumed_chars = 0;
    while let Some(i) = rest.find('%') {
        if i > 0 {
            out.push(Segment::Text(&rest[..i]));
        }
        let offset = consumed_chars + rest[..i].chars().count();
        let after = &rest[i + 1..];
        let used = if after.starts_with('%') {
            out.push(Segment::Percent);
            2
        } else if let Some(inner) = after.strip_prefix('(') {
            let close = inner.find(')').ok_or_else(|| TemplateError {
                offset,
                message: "`%(` is not closed by `)s`".into(),
                hint: PERCENT_HINT,
            })?;
            let name = &inner[..close];
            if !inner[close + 1..].starts_with('s') {
                return Err(TemplateError {
                    offset,
                    message: format!("`%({name})` must be followed by `s`"),
                    hint: PERCENT_HINT,
                });
            }
            if name.is_empty() {
                return Err(TemplateError {
                    offset,
                    message: "`%()s` names no variable".into(),
                    hint: PERCENT_HINT,
                });
            }
            out.push(Segment::Var { name, offset });
            // `%(` + name + `)s`
            3 + name.len() + 1
        } else {
            return Err(TemplateError {
                offset,
                message: "stray `%`".into(),
                hint: PERCENT_HINT,
            });
        };
        consumed_chars = offset + rest[i..i + used].chars().count();
        rest = &rest[i + used..];
    }
    if !rest.is_empty() {
        out.push(Segment::Text(rest));
    }
    Ok(out)
}

/// Built-in variables, available everywhere (POMS `input_dict`).
pub const BUILTINS: [&str; 6] = [
    "dataset",
    "parameter",
    "version",
    "group",
    "experimenter",
    "experiment",
];

/// The variables a template uses that `known` does not define, with their offsets.
pub fn unknown_variables<'a>(
    segments: &[Segment<'a>],
    known: impl Fn(&str) -> bool,
) -> Vec<(&'a str, usize)> {
    segments
        .iter()
        .filter_map(|s| match s {
            Segment::Var { name, offset } if !known(name) => Some((*name, *offset)),
            _ => None,
        })
        .collect()
}

/// Substitutes variables; `lookup` returns the replacement text for a name.
pub fn render(
    segments: &[Segment<'_>],
    mut lookup: impl FnMut(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::new();
    for s in segments {
        match s {
            Segment::Text(t) => out.push_str(t),
            Segment::Percent => out.push('%'),
            Segment::Var { name, .. } => match lookup(name) {
                Some(v) => out.push_str(&v),
                None => return Err(format!("unknown variable `%({name})s`")),
            },
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_variables_and_escapes() {
        let segs = parse("a %(x)s b %% c").unwrap();
        assert_eq!(
            segs,
            vec![
                Segment::Text("a "),
                Segment::Var {
                    name: "x",
                    offset: 2
                },
                Segment::Text(" b "),
                Segment::Percent,
                Segment::Text(" c"),
            ]
        );
    }

    #[test]
    fn escaped_variable_stays_literal() {
        let segs = parse("'%%(global.outdir)s/%(fred)s'").unwrap();
        let out = render(&segs, |n| (n == "fred").then(|| "kw".to_string())).unwrap();
        assert_eq!(out, "'%(global.outdir)s/kw'");
    }

    #[test]
    fn stray_percent_is_located() {
        let e = parse("ab%d").unwrap_err();
        assert_eq!((e.offset, e.message.as_str()), (2, "stray `%`"));
        assert_eq!(parse("é%(x)").unwrap_err().offset, 1);
        assert!(parse("%(x").is_err());
        assert!(parse("x%").is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,30}") {
            let _ = parse(&s);
        }
    }
}
