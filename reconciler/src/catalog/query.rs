//! The catalog query language, a subset of SAM dimensions (pure: text in, syntax tree out).
//!
//! ```text
//! query   := expr [with (limit N | offset N | stride N)+]
//! expr    := term ((or | minus) term)*
//! term    := factor (and factor)*
//! factor  := ( query )                                 (a slice of a sub-query, or grouping)
//!          | defname: NAME
//!          | ischildof: ( expr ) | isparentof: ( expr )
//!          | snapshot_id N | snapshot_for_project_name NAME
//!          | project_name NAME [and consumed_status STATUS[,STATUS...]]
//!          | file_name [like] VALUE
//!          | run_number RUN[.SUBRUN] | run_number LOW-HIGH
//!          | KEY (= | != | < | <= | > | >= | like) VALUE
//!          | KEY VALUE                                   (equality, SAM style)
//! ```
//! Values are bare words or `'quoted'` strings (`''` is a quote). Keywords are
//! case-insensitive. Errors carry the column and a hint.
//!
//! Limits, each a located error past it: [`MAX_CONDITIONS`] conditions in a query (with its
//! definitions expanded: the database evaluates them as one expression), [`MAX_DEPTH`] levels
//! of parentheses and `ischildof:`/`isparentof:`, `limit`/`offset`/`snapshot_id` up to
//! 2^63 − 1, `stride` at least 1. [`Query`]'s `Display` prints the canonical form, which
//! parses back to the same query.

use std::fmt;

#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    pub expr: Expr,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
    pub stride: Option<u64>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// A parenthesised query with its own `with limit/offset/stride`.
    Sliced(Box<Query>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Minus(Box<Expr>, Box<Expr>),
    Defname(String),
    ChildOf(Box<Expr>),
    ParentOf(Box<Expr>),
    SnapshotId(u64),
    /// Files delivered to a project, optionally only those with one of these statuses.
    Project {
        name: String,
        statuses: Option<Vec<String>>,
    },
    FileName {
        pattern: String,
        like: bool,
    },
    Run {
        low: u64,
        high: u64,
        subrun: Option<u64>,
    },
    Meta {
        key: String,
        op: Op,
        value: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Like,
}

impl Op {
    pub fn sql(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "<>",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Like => "LIKE",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryError {
    /// Byte offset in the query text.
    pub offset: usize,
    pub message: String,
    pub hint: String,
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "query:1:{}: error: {}\n  help: {}",
            self.offset + 1,
            self.message,
            self.hint
        )
    }
}

impl std::error::Error for QueryError {}

/// Nesting bound: queries come from users and from definitions that refer to each other.
pub const MAX_DEPTH: usize = 32;

/// Conditions in one query, definitions expanded. SQLite refuses expressions nested more than
/// 1000 deep, and each `and`/`or` nests one level: past this bound a query is refused with a
/// located error before it reaches the database.
pub const MAX_CONDITIONS: usize = 400;

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Word(String),
    Quoted(String),
    Open,
    Close,
    Op(Op),
    End,
}

struct Lexer<'a> {
    text: &'a str,
    toks: Vec<(Tok, usize)>,
}

fn lex(text: &str) -> Result<Vec<(Tok, usize)>, QueryError> {
    let mut lexer = Lexer {
        text,
        toks: Vec::new(),
    };
    lexer.run()?;
    Ok(lexer.toks)
}

impl Lexer<'_> {
    fn run(&mut self) -> Result<(), QueryError> {
        let bytes = self.text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let c = bytes[i];
            let start = i;
            if let Some(ch) = self.text[i..]
                .chars()
                .next()
                .filter(|ch| ch.is_whitespace())
            {
                i += ch.len_utf8();
                continue;
            }
            match c {
                b'(' => {
                    self.toks.push((Tok::Open, i));
                    i += 1;
                }
                b')' => {
                    self.toks.push((Tok::Close, i));
                    i += 1;
                }
                b'\'' => {
                    let mut value = String::new();
                    i += 1;
                    loop {
                        match self.text[i..].find('\'') {
                            None => {
                                return Err(QueryError {
                                    offset: start,
                                    message: "unterminated quoted value".into(),
                                    hint: "close it with `'`; write a quote inside as `''`".into(),
                                });
                            }
                            Some(k) => {
                                value.push_str(&self.text[i..i + k]);
                                i += k + 1;
                                if bytes.get(i) == Some(&b'\'') {
                                    value.push('\'');
                                    i += 1;
                                } else {
                                    break;
                                }
                            }
                        }
                    }
                    self.toks.push((Tok::Quoted(value), start));
                }
                b'=' | b'!' | b'<' | b'>' => {
                    let two = self.text.get(i..i + 2).unwrap_or("");
                    let (op, len) = match (c, two) {
                        (_, "!=") | (_, "<>") => (Op::Ne, 2),
                        (_, "<=") => (Op::Le, 2),
                        (_, ">=") => (Op::Ge, 2),
                        (b'=', _) => (Op::Eq, 1),
                        (b'<', _) => (Op::Lt, 1),
                        (b'>', _) => (Op::Gt, 1),
                        _ => {
                            return Err(QueryError {
                                offset: i,
                                message: "`!` must be followed by `=`".into(),
                                hint: "write `key != value`".into(),
                            });
                        }
                    };
                    self.toks.push((Tok::Op(op), i));
                    i += len;
                }
                _ => {
                    let end = self.text[i..]
                        .find(|ch: char| ch.is_whitespace() || "()'=!<>".contains(ch))
                        .map_or(self.text.len(), |k| i + k);
                    self.toks
                        .push((Tok::Word(self.text[i..end].to_string()), start));
                    i = end;
                }
            }
        }
        self.toks.push((Tok::End, self.text.len()));
        Ok(())
    }
}

pub fn parse(text: &str) -> Result<Query, QueryError> {
    let toks = lex(text)?;
    let mut p = Parser {
        toks,
        pos: 0,
        conditions: 0,
    };
    let q = p.query(0)?;
    match p.peek() {
        Tok::End => Ok(q),
        Tok::Close => Err(p.error("unbalanced `)`", "remove it or add the matching `(`")),
        _ => Err(p.error(
            "expected `and`, `or`, `minus`, `with` or the end of the query",
            "join conditions with `and`, `or` or `minus`",
        )),
    }
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    conditions: usize,
}

impl Parser {
    /// `expr [with ...]`: a whole query, or one in parentheses.
    fn query(&mut self, depth: usize) -> Result<Query, QueryError> {
        let expr = self.expr(depth)?;
        let mut q = Query {
            expr,
            limit: None,
            offset: None,
            stride: None,
        };
        if !self.keyword("with") {
            return Ok(q);
        }
        self.pos += 1;
        let mut any = false;
        loop {
            let word = if self.keyword("limit") {
                "limit"
            } else if self.keyword("offset") {
                "offset"
            } else if self.keyword("stride") {
                "stride"
            } else {
                break;
            };
            self.pos += 1;
            let at = self.offset();
            let n = self.number()?;
            if word == "stride" && n == 0 {
                return Err(QueryError {
                    offset: at,
                    message: "`stride 0` selects no pattern of files".into(),
                    hint: "a stride is at least 1: `stride 3` takes every third file".into(),
                });
            }
            let slot = match word {
                "limit" => &mut q.limit,
                "offset" => &mut q.offset,
                _ => &mut q.stride,
            };
            *slot = Some(n);
            any = true;
        }
        if !any {
            return Err(self.error(
                "expected `limit`, `offset` or `stride` after `with`",
                "for example `with limit 10 offset 20`",
            ));
        }
        Ok(q)
    }

    fn peek(&self) -> &Tok {
        &self.toks[self.pos].0
    }

    fn offset(&self) -> usize {
        self.toks[self.pos].1
    }

    fn error(&self, message: &str, hint: &str) -> QueryError {
        QueryError {
            offset: self.offset(),
            message: message.into(),
            hint: hint.into(),
        }
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Tok::Word(w) if w.eq_ignore_ascii_case(word))
    }

    fn keyword_at(&self, ahead: usize, word: &str) -> bool {
        matches!(self.toks.get(self.pos + ahead), Some((Tok::Word(w), _)) if w.eq_ignore_ascii_case(word))
    }

    fn expr(&mut self, depth: usize) -> Result<Expr, QueryError> {
        if depth > MAX_DEPTH {
            return Err(self.error(
                "query nested too deeply",
                "at most 32 levels of parentheses and ischildof/isparentof",
            ));
        }
        let mut left = self.term(depth)?;
        loop {
            if self.keyword("or") {
                self.pos += 1;
                left = Expr::Or(Box::new(left), Box::new(self.term(depth)?));
            } else if self.keyword("minus") {
                self.pos += 1;
                left = Expr::Minus(Box::new(left), Box::new(self.term(depth)?));
            } else {
                return Ok(left);
            }
        }
    }

    fn term(&mut self, depth: usize) -> Result<Expr, QueryError> {
        let mut left = self.factor(depth)?;
        while self.keyword("and") {
            self.pos += 1;
            left = Expr::And(Box::new(left), Box::new(self.factor(depth)?));
        }
        Ok(left)
    }

    fn value(&mut self, what: &str) -> Result<String, QueryError> {
        match self.peek().clone() {
            Tok::Word(w) => {
                self.pos += 1;
                Ok(w)
            }
            Tok::Quoted(q) => {
                self.pos += 1;
                Ok(q)
            }
            _ => Err(self.error(
                &format!("expected {what}"),
                "a bare word or a 'quoted value'",
            )),
        }
    }

    /// A whole number the database can hold (at most 2^63 − 1).
    fn number(&mut self) -> Result<u64, QueryError> {
        let at = self.offset();
        let v = self.value("a number")?;
        match v.parse::<u64>() {
            Ok(n) if i64::try_from(n).is_ok() => Ok(n),
            Ok(_) => Err(QueryError {
                offset: at,
                message: format!("`{v}` is too large"),
                hint: format!("at most {}", i64::MAX),
            }),
            Err(_) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => Err(QueryError {
                offset: at,
                message: format!("`{v}` is too large"),
                hint: format!("at most {}", i64::MAX),
            }),
            Err(_) => Err(QueryError {
                offset: at,
                message: format!("`{v}` is not a whole number"),
                hint: "use digits only, e.g. 10".into(),
            }),
        }
    }

    fn parenthesised(&mut self, depth: usize, after: &str) -> Result<Expr, QueryError> {
        if self.peek() != &Tok::Open {
            return Err(self.error(
                &format!("expected `(` after `{after}`"),
                &format!("write `{after}( query )`"),
            ));
        }
        self.pos += 1;
        let q = self.query(depth + 1)?;
        if self.peek() != &Tok::Close {
            return Err(self.error("expected `)`", "close the parenthesis opened before"));
        }
        self.pos += 1;
        if q.limit.is_none() && q.offset.is_none() && q.stride.is_none() {
            Ok(q.expr)
        } else if after.is_empty() {
            Ok(Expr::Sliced(Box::new(q)))
        } else {
            Err(QueryError {
                offset: self.toks[self.pos - 1].1,
                message: format!("`with` inside `{after}( ... )`"),
                hint: format!(
                    "slice the files before relating them: `{after}( (query with limit N) )`"
                ),
            })
        }
    }

    fn factor(&mut self, depth: usize) -> Result<Expr, QueryError> {
        let at = self.offset();
        self.conditions += 1;
        if self.conditions > MAX_CONDITIONS {
            return Err(QueryError {
                offset: at,
                message: format!("more than {MAX_CONDITIONS} conditions in one query"),
                hint: "select the files by what they share (a run range such as `run_number 40-45`, a metadata value, a definition) rather than one by one".into(),
            });
        }
        let word = match self.peek().clone() {
            Tok::Open => return self.parenthesised(depth, ""),
            Tok::Word(w) => w,
            Tok::End => {
                return Err(self.error(
                    "the query ends where a condition was expected",
                    "for example `defname: mydata` or `file_name like '%.root'`",
                ));
            }
            _ => {
                return Err(self.error(
                    "expected a condition",
                    "for example `defname: mydata` or `version v1_2`",
                ));
            }
        };
        self.pos += 1;
        let lower = word.to_ascii_lowercase();
        // `defname:NAME` may be written without a space.
        if let Some(rest) = lower.strip_prefix("defname:") {
            let name = if rest.is_empty() {
                self.value("a definition name")?
            } else {
                word["defname:".len()..].to_string()
            };
            return Ok(Expr::Defname(name));
        }
        match lower.as_str() {
            "ischildof:" => Ok(Expr::ChildOf(Box::new(
                self.parenthesised(depth, "ischildof:")?,
            ))),
            "isparentof:" => Ok(Expr::ParentOf(Box::new(
                self.parenthesised(depth, "isparentof:")?,
            ))),
            "snapshot_id" => Ok(Expr::SnapshotId(self.number()?)),
            "snapshot_for_project_name" => Ok(Expr::Project {
                name: self.value("a project name")?,
                statuses: None,
            }),
            "project_name" => {
                let name = self.value("a project name")?;
                let statuses = if self.keyword("and") && self.keyword_at(1, "consumed_status") {
                    self.pos += 2;
                    let v = self.value("a consumed status")?;
                    Some(v.split(',').map(|s| s.trim().to_string()).collect())
                } else {
                    None
                };
                Ok(Expr::Project { name, statuses })
            }
            "file_name" => {
                let like = self.keyword("like");
                if like || self.peek() == &Tok::Op(Op::Eq) {
                    self.pos += 1;
                }
                Ok(Expr::FileName {
                    pattern: self.value("a file name or pattern")?,
                    like,
                })
            }
            "run_number" => {
                match self.peek() {
                    Tok::Op(Op::Eq) => self.pos += 1,
                    Tok::Op(op) => {
                        let op = *op;
                        self.pos += 1;
                        let at = self.offset();
                        let value = self.value("a run number")?;
                        if value.parse::<u64>().is_err() {
                            return Err(QueryError {
                                offset: at,
                                message: format!("`{value}` is not a run number"),
                                hint: "compare runs with whole numbers, e.g. `run_number >= 40`"
                                    .into(),
                            });
                        }
                        return Ok(Expr::Meta {
                            key: lower,
                            op,
                            value,
                        });
                    }
                    _ => {}
                }
                let at = self.offset();
                let v = self.value("a run number")?;
                parse_run(&v).ok_or_else(|| QueryError {
                    offset: at,
                    message: format!("`{v}` is not a run number"),
                    hint: "write `run_number 42`, `run_number 42.0003` (run.subrun) or `run_number 40-45`".into(),
                })
            }
            "and" | "or" | "minus" | "with" => Err(QueryError {
                offset: at,
                message: format!("`{word}` where a condition was expected"),
                hint: "a condition is missing before it".into(),
            }),
            _ if word.ends_with(':') => Err(QueryError {
                offset: at,
                message: format!("unknown dimension `{word}`"),
                hint: "known: `defname:`, `ischildof:`, `isparentof:`".into(),
            }),
            _ => {
                let op = match self.peek() {
                    Tok::Op(op) => {
                        let op = *op;
                        self.pos += 1;
                        op
                    }
                    _ if self.keyword("like") => {
                        self.pos += 1;
                        Op::Like
                    }
                    _ => Op::Eq,
                };
                let at = self.offset();
                let value = self.value(&format!("a value for `{word}`"))?;
                if is_time_key(&lower) && op != Op::Like && parse_time(&value).is_none() {
                    return Err(QueryError {
                        offset: at,
                        message: format!("`{value}` is not a time"),
                        hint: "write a date `2026-01-31`, a UTC time `2026-01-31T12:00:00` or unix seconds".into(),
                    });
                }
                Ok(Expr::Meta {
                    key: lower,
                    op,
                    value,
                })
            }
        }
    }
}

/// Keys that compare as times: the file's creation time, and the metadata of when its data
/// was taken (declared as unix seconds or as a time, kept as unix seconds).
pub fn is_time_key(key: &str) -> bool {
    matches!(key, "create_date" | "created" | "start_time" | "end_time")
}

/// `2026-01-31`, `2026-01-31T12:00:00`, `2026-01-31 12:00:00` (UTC, a trailing `Z` allowed),
/// a time with its offset (`2026-01-31T12:00:00-05:00`) or unix seconds. A date that does not exist (`2026-13-45`) is none.
pub fn parse_time(text: &str) -> Option<i64> {
    use chrono::{NaiveDate, NaiveDateTime};
    if let Ok(n) = text.parse::<i64>() {
        return Some(n);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp());
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text.trim_end_matches('Z'), fmt) {
            return Some(t.and_utc().timestamp());
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp())
}

impl Query {
    /// The definitions the query names (`defname:`), each once, in order of appearance.
    pub fn definitions(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        let mut stack: Vec<&Expr> = vec![&self.expr];
        while let Some(e) = stack.pop() {
            match e {
                Expr::Defname(n) if !names.contains(&n.as_str()) => names.push(n),
                Expr::Sliced(q) => stack.push(&q.expr),
                Expr::And(a, b) | Expr::Or(a, b) | Expr::Minus(a, b) => {
                    stack.push(b);
                    stack.push(a);
                }
                Expr::ChildOf(e) | Expr::ParentOf(e) => stack.push(e),
                _ => {}
            }
        }
        names
    }
}

/// A value as the canonical form writes it: always quoted, `'` doubled.
fn quoted(v: &str) -> String {
    format!("'{}'", v.replace('\'', "''"))
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}", self.expr)?;
        if self.limit.is_none() && self.offset.is_none() && self.stride.is_none() {
            return Ok(());
        }
        f.write_str(" with")?;
        for (word, n) in [
            ("limit", self.limit),
            ("offset", self.offset),
            ("stride", self.stride),
        ] {
            if let Some(n) = n {
                write!(f, " {word} {n}")?;
            }
        }
        Ok(())
    }
}

/// The canonical form: every `and`/`or`/`minus` in parentheses, every value quoted.
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Expr::Sliced(q) => write!(f, "({q})"),
            Expr::And(a, b) => write!(f, "({a} and {b})"),
            Expr::Or(a, b) => write!(f, "({a} or {b})"),
            Expr::Minus(a, b) => write!(f, "({a} minus {b})"),
            Expr::Defname(name) => write!(f, "defname: {}", quoted(name)),
            Expr::ChildOf(e) => write!(f, "ischildof:( {e} )"),
            Expr::ParentOf(e) => write!(f, "isparentof:( {e} )"),
            Expr::SnapshotId(id) => write!(f, "snapshot_id {id}"),
            Expr::Project {
                name,
                statuses: None,
            } => write!(f, "snapshot_for_project_name {}", quoted(name)),
            Expr::Project {
                name,
                statuses: Some(list),
            } => write!(
                f,
                "project_name {} and consumed_status {}",
                quoted(name),
                quoted(&list.join(","))
            ),
            Expr::FileName {
                pattern,
                like: true,
            } => write!(f, "file_name like {}", quoted(pattern)),
            Expr::FileName {
                pattern,
                like: false,
            } => write!(f, "file_name = {}", quoted(pattern)),
            Expr::Run {
                low,
                high,
                subrun: Some(s),
            } if low == high => write!(f, "run_number {low}.{s}"),
            Expr::Run { low, high, .. } if low == high => write!(f, "run_number {low}"),
            Expr::Run { low, high, .. } => write!(f, "run_number {low}-{high}"),
            Expr::Meta { key, op, value } => {
                let op = match op {
                    Op::Eq => "=",
                    Op::Ne => "!=",
                    Op::Lt => "<",
                    Op::Le => "<=",
                    Op::Gt => ">",
                    Op::Ge => ">=",
                    Op::Like => "like",
                };
                write!(f, "{key} {op} {}", quoted(value))
            }
        }
    }
}

fn parse_run(v: &str) -> Option<Expr> {
    if let Some((lo, hi)) = v.split_once('-') {
        let (low, high) = (lo.parse().ok()?, hi.parse().ok()?);
        return (low <= high).then_some(Expr::Run {
            low,
            high,
            subrun: None,
        });
    }
    let (run, subrun) = match v.split_once('.') {
        Some((r, s)) => (r.parse().ok()?, Some(s.parse().ok()?)),
        None => (v.parse().ok()?, None),
    };
    Some(Expr::Run {
        low: run,
        high: run,
        subrun,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_split_and_planner_queries() {
        for q in [
            "defname: raw with limit 10 offset 20",
            "defname: raw with stride 3 offset 1",
            "defname: raw and run_number 42",
            "defname: raw and run_number 42.0003",
            "project_name pre and consumed_status 'consumed' with limit 4",
            "snapshot_for_project_name 'eve.reco.3' and isparentof:( isparentof:( file_name like '%.a' and version 'v1' ) )",
            "snapshot_for_project_name 's' minus (project_name 's' and consumed_status 'consumed')",
            "(submission 'a' or submission 'a.r1') and file_name like '%.gen.root' and version 'v1'",
            "stage 'eve/gen' and (data_tier raw) and create_date > '2026-01-01'",
            "defname:raw minus snapshot_id 3",
            "run_number 40-45 and size >= 100",
        ] {
            parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
        }
    }

    #[test]
    fn precedence_and_binds_tighter_than_or() {
        let q = parse("a 1 or b 2 and c 3").unwrap();
        assert!(matches!(q.expr, Expr::Or(_, ref r) if matches!(**r, Expr::And(..))));
    }

    #[test]
    fn errors_are_located_with_a_hint() {
        let e = parse("defname: raw and").unwrap_err();
        assert_eq!(e.offset, 16);
        assert_eq!(e.message, "the query ends where a condition was expected");
        let e = parse("file_name like 'x").unwrap_err();
        assert_eq!(
            (e.offset, e.message.as_str()),
            (15, "unterminated quoted value")
        );
        let e = parse("defname: raw with limit ten").unwrap_err();
        assert_eq!(
            e.to_string(),
            "query:1:25: error: `ten` is not a whole number\n  help: use digits only, e.g. 10"
        );
        let e = parse("isparentof: file_name x").unwrap_err();
        assert_eq!(e.message, "expected `(` after `isparentof:`");
        let e = parse("(version v1").unwrap_err();
        assert_eq!(e.message, "expected `)`");
        let e = parse("version v1)").unwrap_err();
        assert_eq!(e.message, "unbalanced `)`");
        let e = parse("bogus: x").unwrap_err();
        assert_eq!(e.message, "unknown dimension `bogus:`");
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let q = format!("{}version v1{}", "(".repeat(10_000), ")".repeat(10_000));
        assert_eq!(parse(&q).unwrap_err().message, "query nested too deeply");
    }

    #[test]
    fn quotes_inside_values() {
        let q = parse("file_name 'it''s.root'").unwrap();
        assert_eq!(
            q.expr,
            Expr::FileName {
                pattern: "it's.root".into(),
                like: false
            }
        );
    }

    #[test]
    fn long_chains_are_refused_at_the_condition_past_the_bound() {
        for joiner in [" and ", " or ", " minus "] {
            let terms: Vec<String> = (0..16_000).map(|i| format!("version v{i}")).collect();
            let q = terms.join(joiner);
            let e = parse(&q).unwrap_err();
            assert_eq!(
                e.message,
                format!("more than {MAX_CONDITIONS} conditions in one query")
            );
            let prefix: usize = terms[..MAX_CONDITIONS]
                .iter()
                .map(|t| t.len() + joiner.len())
                .sum();
            assert_eq!(e.offset, prefix, "located at the first condition too many");
        }
        let within: Vec<String> = (0..MAX_CONDITIONS).map(|i| format!("v {i}")).collect();
        parse(&within.join(" or ")).expect("the bound itself is accepted");
    }

    #[test]
    fn numbers_the_database_cannot_hold_and_stride_zero_are_located_errors() {
        let e = parse("defname: raw with limit 9223372036854775808").unwrap_err();
        assert_eq!(
            (e.offset, e.message.as_str()),
            (24, "`9223372036854775808` is too large")
        );
        let e = parse("defname: raw with offset 99999999999999999999999").unwrap_err();
        assert_eq!(e.message, "`99999999999999999999999` is too large");
        let e = parse("snapshot_id 18446744073709551615").unwrap_err();
        assert_eq!(e.message, "`18446744073709551615` is too large");
        let e = parse("defname: raw with stride 0").unwrap_err();
        assert_eq!(
            (e.offset, e.message.as_str()),
            (25, "`stride 0` selects no pattern of files")
        );
        parse("defname: raw with limit 9223372036854775807").unwrap();
    }

    #[test]
    fn times_that_are_not_times_are_located_errors() {
        let e = parse("create_date < 'garbage'").unwrap_err();
        assert_eq!(
            (e.offset, e.message.as_str()),
            (14, "`garbage` is not a time")
        );
        let e = parse("version v1 and create_date > '2026-13-45'").unwrap_err();
        assert_eq!(e.message, "`2026-13-45` is not a time");
        parse("create_date > '2026-01-31T12:00:00Z'").unwrap();
        parse("create_date >= 1700000000").unwrap();
    }

    #[test]
    fn a_sliced_sub_query_parses_where_a_condition_may_stand() {
        // The added_files recovery of a sliced input (reference §5.1).
        let q = parse("(defname: raw with limit 2 offset 0) minus snapshot_for_project_name 's'")
            .unwrap();
        let Expr::Minus(left, _) = &q.expr else {
            panic!("{q:?}")
        };
        assert!(
            matches!(&**left, Expr::Sliced(inner) if inner.limit == Some(2) && inner.offset == Some(0))
        );
        let e = parse("ischildof:( version v1 with limit 2 )").unwrap_err();
        assert_eq!(e.message, "`with` inside `ischildof:( ... )`");
    }

    #[test]
    fn definitions_named_are_listed_once() {
        let q = parse("defname: a or (defname: b minus defname: a) and ischildof:( defname: c )")
            .unwrap();
        assert_eq!(q.definitions(), vec!["a", "b", "c"]);
    }

    /// Queries built from the grammar's parts, to print and parse back.
    fn arb_expr() -> impl proptest::strategy::Strategy<Value = Expr> {
        use proptest::prelude::*;
        let key = "[a-z][a-z0-9_]{0,8}".prop_filter("reserved word", |k| {
            ![
                "and",
                "or",
                "minus",
                "with",
                "like",
                "file_name",
                "run_number",
                "snapshot_id",
                "project_name",
                "snapshot_for_project_name",
                "consumed_status",
                "create_date",
                "created",
            ]
            .contains(&k.as_str())
        });
        let value = "\\PC{0,12}";
        let op = prop_oneof![
            Just(Op::Eq),
            Just(Op::Ne),
            Just(Op::Lt),
            Just(Op::Le),
            Just(Op::Gt),
            Just(Op::Ge),
            Just(Op::Like)
        ];
        let status = "[a-z]{1,8}";
        let leaf = prop_oneof![
            (key, op, value).prop_map(|(key, op, value)| Expr::Meta { key, op, value }),
            value.prop_map(Expr::Defname),
            (0..=i64::MAX as u64).prop_map(Expr::SnapshotId),
            (
                value,
                proptest::option::of(proptest::collection::vec(status, 1..3))
            )
                .prop_map(|(name, statuses)| Expr::Project { name, statuses }),
            (value, any::<bool>()).prop_map(|(pattern, like)| Expr::FileName { pattern, like }),
            (0u64..1000, 0u64..1000).prop_map(|(a, b)| Expr::Run {
                low: a.min(b),
                high: a.max(b),
                subrun: None
            }),
            (0u64..1000, 0u64..100).prop_map(|(r, s)| Expr::Run {
                low: r,
                high: r,
                subrun: Some(s)
            }),
        ];
        leaf.prop_recursive(4, 24, 2, |inner| {
            let slice = (1..=i64::MAX as u64, 1..=i64::MAX as u64);
            prop_oneof![
                (inner.clone(), inner.clone())
                    .prop_map(|(a, b)| Expr::And(Box::new(a), Box::new(b))),
                (inner.clone(), inner.clone())
                    .prop_map(|(a, b)| Expr::Or(Box::new(a), Box::new(b))),
                (inner.clone(), inner.clone())
                    .prop_map(|(a, b)| Expr::Minus(Box::new(a), Box::new(b))),
                inner.clone().prop_map(|e| Expr::ChildOf(Box::new(e))),
                inner.clone().prop_map(|e| Expr::ParentOf(Box::new(e))),
                (inner, slice).prop_map(|(e, (limit, stride))| Expr::Sliced(Box::new(Query {
                    expr: e,
                    limit: Some(limit),
                    offset: None,
                    stride: Some(stride),
                }))),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,80}") {
            let _ = parse(&s);
        }

        /// The canonical form parses back to the same query.
        #[test]
        fn printing_then_parsing_gives_the_same_query(
            expr in arb_expr(),
            limit in proptest::option::of(0..=i64::MAX as u64),
            offset in proptest::option::of(0..=i64::MAX as u64),
        ) {
            let q = Query { expr, limit, offset, stride: None };
            let text = q.to_string();
            let back = parse(&text).map_err(|e| proptest::test_runner::TestCaseError::fail(format!("{text}: {e}")))?;
            proptest::prop_assert_eq!(back, q, "{}", text);
        }
    }
}
