//! Shell quoting for values substituted into author-written shell.
//!
//! Template text (launch scripts, parameters, login setups) is shell written and reviewed by the
//! campaign's authors, so it keeps its shell meaning. Values substituted into it (dataset and
//! slice names, multiparam values, keywords, user names) are not: each is quoted for the quoting
//! context it lands in, so none can inject shell.

/// Quoting context at a point of a shell text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Context {
    Unquoted,
    Single,
    Double,
}

/// Tracks the quoting context across consecutive pieces of author text.
#[derive(Clone, Copy, Debug)]
pub struct Tracker {
    ctx: Context,
    escaped: bool,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker {
            ctx: Context::Unquoted,
            escaped: false,
        }
    }
}

impl Tracker {
    pub fn context(&self) -> Context {
        self.ctx
    }

    /// Advances over author text.
    pub fn feed(&mut self, text: &str) {
        for c in text.chars() {
            if self.escaped {
                self.escaped = false;
                continue;
            }
            self.ctx = match (self.ctx, c) {
                (Context::Unquoted, '\\') | (Context::Double, '\\') => {
                    self.escaped = true;
                    self.ctx
                }
                (Context::Unquoted, '\'') => Context::Single,
                (Context::Unquoted, '"') => Context::Double,
                (Context::Single, '\'') => Context::Unquoted,
                (Context::Double, '"') => Context::Unquoted,
                (ctx, _) => ctx,
            };
        }
    }
}

/// `value` made literal in `ctx`.
pub fn quote_in(ctx: Context, value: &str) -> String {
    match ctx {
        Context::Unquoted => quote(value),
        // Close the quote, add an escaped quote, reopen: `'` becomes `'\''`.
        Context::Single => value.replace('\'', r"'\''"),
        Context::Double => {
            let mut out = String::with_capacity(value.len());
            for c in value.chars() {
                if matches!(c, '\\' | '"' | '$' | '`') {
                    out.push('\\');
                }
                out.push(c);
            }
            out
        }
    }
}

/// A word on its own: left bare when it is plainly safe, single-quoted otherwise.
pub fn quote(value: &str) -> String {
    let safe = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.,/:=+@%".contains(c));
    if safe {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_quotes() {
        let mut t = Tracker::default();
        t.feed("echo 'a");
        assert_eq!(t.context(), Context::Single);
        t.feed("' \"b");
        assert_eq!(t.context(), Context::Double);
        t.feed("\\\" still\"");
        assert_eq!(t.context(), Context::Unquoted);
    }

    #[test]
    fn quotes_only_when_needed() {
        assert_eq!(quote("ds_A"), "ds_A");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }
}
