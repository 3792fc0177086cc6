//! Shell quoting for values substituted into author-written shell.
//!
//! Template text (launch scripts, parameters, login setups) is shell written and reviewed by the
//! campaign's authors, so it keeps its shell meaning. Values substituted into it (dataset and
//! slice names, multiparam values, keywords, user names) are not: each is quoted for the quoting
//! context it lands in, so none can inject shell.
//!
//! The contexts Cascade quotes for are the three of a plain command line: unquoted, inside
//! `'...'` and inside `"..."`. The tracker also follows the constructs that nest other shell
//! inside a command (`$(...)`, backquotes, `${...}`, `$((...))`), comments and here-documents,
//! and a value that would land in one of them is refused with a reason: quoting there depends
//! on rules (backquote escapes, a comment ended by a newline inside the value, a here-document
//! body) that a value must not be able to play with.

/// Quoting context at a point of a shell text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Context {
    Unquoted,
    Single,
    Double,
    /// Inside a construct where no quoting of a value is safe: why, and what to do instead.
    Refused(&'static str),
}

/// What encloses the current point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Frame {
    Single,
    /// `$'...'`: bash reads backslash escapes in it.
    AnsiC,
    Double,
    /// `$(...)`, with the depth of parentheses opened inside it.
    Command(u32),
    Backquote,
    /// `${...}`
    Parameter,
    /// `$((...))`, with the parentheses still open (two when it starts).
    Arithmetic(u32),
}

/// Tracks the quoting context across consecutive pieces of author text.
#[derive(Clone, Debug, Default)]
pub struct Tracker {
    stack: Vec<Frame>,
    escaped: bool,
    comment: bool,
    /// A here-document was opened: its body is neither command nor quoted text.
    heredoc: bool,
    /// `case` seen inside `$(...)`: its patterns close parentheses they did not open, so
    /// where the substitution ends is no longer known.
    lost: bool,
    /// The two previous characters, to see `$(`, `$((`, `${`, `$'`, `<<` and word starts.
    prev: Option<char>,
    prev2: Option<char>,
    /// The word being read inside `$(...)`, to notice `case`.
    word: String,
}

const NESTED: &str = "a value inside `$(...)`, backquotes, `${...}`, `$((...))` or `$'...'` would be read as shell again; set a variable at the top of the script (`v=%(name)s`) and use \"$v\" inside, or read the value from the launch's environment (CASCADE_DATASET, ...)";
const COMMENT: &str = "a value inside a `#` comment ends the comment at its first newline; move the `%(name)s` out of the comment";
const HEREDOC: &str = "a value after `<<` may land in a here-document, whose body is not quoted text; pass the value through a variable or the launch's environment instead";
const LOST: &str = "after `case` inside `$(...)` the end of the substitution cannot be told; set variables before it and keep `%(name)s` out of it";

impl Tracker {
    pub fn context(&self) -> Context {
        if self.heredoc {
            return Context::Refused(HEREDOC);
        }
        if self.lost {
            return Context::Refused(LOST);
        }
        if self.comment {
            return Context::Refused(COMMENT);
        }
        match self.stack.as_slice() {
            [] => Context::Unquoted,
            [Frame::Single] => Context::Single,
            [Frame::Double] => Context::Double,
            _ => Context::Refused(NESTED),
        }
    }

    /// Advances over author text.
    pub fn feed(&mut self, text: &str) {
        for c in text.chars() {
            self.step(c);
            self.prev2 = self.prev;
            self.prev = Some(c);
        }
    }

    fn step(&mut self, c: char) {
        if self.comment {
            self.comment = c != '\n';
            return;
        }
        let top = self.stack.last().copied();
        if top == Some(Frame::Single) {
            if c == '\'' {
                self.stack.pop();
            }
            return;
        }
        if self.escaped {
            self.escaped = false;
            return;
        }
        if c == '\\' {
            self.escaped = true;
            return;
        }
        if matches!(top, Some(Frame::Command(_))) {
            self.watch_words(c);
        }
        let dollar = self.prev == Some('$');
        match top {
            Some(Frame::AnsiC) => {
                if c == '\'' {
                    self.stack.pop();
                }
            }
            Some(Frame::Double) => match c {
                '"' => {
                    self.stack.pop();
                }
                '`' => self.stack.push(Frame::Backquote),
                '(' if dollar => self.stack.push(Frame::Command(0)),
                '{' if dollar => self.stack.push(Frame::Parameter),
                _ => {}
            },
            Some(Frame::Backquote) if c == '`' => {
                self.stack.pop();
            }
            Some(Frame::Parameter) if c == '}' => {
                self.stack.pop();
            }
            Some(Frame::Arithmetic(open)) => match c {
                '(' => self.set_top(Frame::Arithmetic(open + 1)),
                ')' if open <= 1 => {
                    self.stack.pop();
                }
                ')' => self.set_top(Frame::Arithmetic(open - 1)),
                _ => {}
            },
            // `$((` is arithmetic, not a command in a subshell.
            Some(Frame::Command(0))
                if c == '(' && self.prev == Some('(') && self.prev2 == Some('$') =>
            {
                self.set_top(Frame::Arithmetic(2))
            }
            Some(Frame::Command(depth)) if c == ')' => {
                if depth == 0 {
                    self.stack.pop();
                } else {
                    self.set_top(Frame::Command(depth - 1));
                }
            }
            Some(Frame::Command(depth)) if c == '(' && !dollar => {
                self.set_top(Frame::Command(depth + 1))
            }
            _ => self.unquoted(c, dollar),
        }
    }

    /// A character where commands are read: at the top level, or inside `$(...)`,
    /// backquotes and `${...}`.
    fn unquoted(&mut self, c: char, dollar: bool) {
        let word_start = self
            .prev
            .is_none_or(|p| p.is_whitespace() || ";&|(){}".contains(p));
        match c {
            '\'' if dollar => self.stack.push(Frame::AnsiC),
            '\'' => self.stack.push(Frame::Single),
            '"' => self.stack.push(Frame::Double),
            '`' => self.stack.push(Frame::Backquote),
            '(' if dollar => self.stack.push(Frame::Command(0)),
            '{' if dollar => self.stack.push(Frame::Parameter),
            // `${#x}` is a length, not a comment.
            '#' if word_start && self.stack.last() != Some(&Frame::Parameter) => {
                self.comment = true
            }
            '<' if self.prev == Some('<') => self.heredoc = true,
            _ => {}
        }
    }

    fn watch_words(&mut self, c: char) {
        if c.is_ascii_alphanumeric() || c == '_' {
            self.word.push(c);
            return;
        }
        if self.word == "case" {
            self.lost = true;
        }
        self.word.clear();
    }

    fn set_top(&mut self, frame: Frame) {
        if let Some(top) = self.stack.last_mut() {
            *top = frame;
        }
    }
}

/// `value` made literal in `ctx`; `None` where no quoting is safe.
pub fn quote_in(ctx: Context, value: &str) -> Option<String> {
    Some(match ctx {
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
        Context::Refused(_) => return None,
    })
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
mod tests;
