//! The catalog query language, a subset of SAM dimensions (pure: text in, syntax tree out).
//!
//! ```text
//! query   := expr [with (limit N | offset N | stride N)+]
//! expr    := term ((or | minus) term)*
//! term    := factor (and factor)*
//! factor  := ( expr )
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
const MAX_DEPTH: usize = 64;

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
    let mut p = Parser { toks, pos: 0 };
    let expr = p.expr(0)?;
    let mut q = Query {
        expr,
        limit: None,
        offset: None,
        stride: None,
    };
    if p.keyword("with") {
        p.pos += 1;
        let mut any = false;
        loop {
            let slot = if p.keyword("limit") {
                &mut q.limit
            } else if p.keyword("offset") {
                &mut q.offset
            } else if p.keyword("stride") {
                &mut q.stride
            } else {
                break;
            };
            p.pos += 1;
            *slot = Some(p.number()?);
            any = true;
        }
        if !any {
            return Err(p.error(
                "expected `limit`, `offset` or `stride` after `with`",
                "for example `with limit 10 offset 20`",
            ));
        }
    }
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
}

impl Parser {
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
                "at most 64 levels of parentheses and ischildof/isparentof",
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

    fn number(&mut self) -> Result<u64, QueryError> {
        let at = self.offset();
        let v = self.value("a number")?;
        v.parse().map_err(|_| QueryError {
            offset: at,
            message: format!("`{v}` is not a whole number"),
            hint: "use digits only, e.g. 10".into(),
        })
    }

    fn parenthesised(&mut self, depth: usize, after: &str) -> Result<Expr, QueryError> {
        if self.peek() != &Tok::Open {
            return Err(self.error(
                &format!("expected `(` after `{after}`"),
                &format!("write `{after}( query )`"),
            ));
        }
        self.pos += 1;
        let e = self.expr(depth + 1)?;
        if self.peek() != &Tok::Close {
            return Err(self.error("expected `)`", "close the parenthesis opened before"));
        }
        self.pos += 1;
        Ok(e)
    }

    fn factor(&mut self, depth: usize) -> Result<Expr, QueryError> {
        let at = self.offset();
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
                Ok(Expr::Meta {
                    key: lower,
                    op,
                    value: self.value(&format!("a value for `{word}`"))?,
                })
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

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,80}") {
            let _ = parse(&s);
        }
    }
}
