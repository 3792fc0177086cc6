//! Compiling a parsed query into portable SQL over the catalog tables (`files`,
//! `file_metadata`, `file_parents`, `snapshot_files`, `project_files`, `definitions`).
//!
//! Each condition becomes a predicate on a file row, so `and`/`or`/`minus` are plain boolean
//! operators and the planner of the database picks the indexes. Definitions are expanded in
//! place (a definition is a stored query), with a bound against definitions that refer to
//! themselves.

use super::query::{Expr, Op, Query, QueryError, parse};

/// SQL text with `?` placeholders, and the values in order.
pub struct Compiled {
    pub sql: String,
    pub params: Vec<Value>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Text(String),
    Int(i64),
}

/// How to find a definition's query text.
pub type Definitions<'a> = dyn Fn(&str) -> Option<String> + 'a;

const MAX_EXPANSIONS: usize = 32;

/// A `SELECT id FROM files` in catalog order for the query.
pub fn compile(query: &Query, defs: &Definitions) -> Result<Compiled, QueryError> {
    let mut c = Compiler {
        params: Vec::new(),
        defs,
        expansions: 0,
        alias: 0,
    };
    let pred = c.expr(&query.expr, "f")?;
    let offset = query.offset.unwrap_or(0) as i64;
    let sql = match query.stride {
        Some(stride) => {
            let mut sql = format!(
                "SELECT id FROM (SELECT f.id AS id, ROW_NUMBER() OVER (ORDER BY f.id) - 1 AS rn FROM files f WHERE {pred}) numbered WHERE rn >= {offset} AND (rn - {offset}) % {} = 0 ORDER BY id",
                stride.max(1)
            );
            if let Some(limit) = query.limit {
                sql.push_str(&format!(" LIMIT {limit}"));
            }
            sql
        }
        None => {
            let mut sql = format!("SELECT f.id FROM files f WHERE {pred} ORDER BY f.id");
            match (query.limit, offset) {
                (Some(limit), o) => sql.push_str(&format!(" LIMIT {limit} OFFSET {o}")),
                (None, 0) => {}
                (None, o) => sql.push_str(&format!(" LIMIT -1 OFFSET {o}")),
            }
            sql
        }
    };
    Ok(Compiled {
        sql,
        params: c.params,
    })
}

struct Compiler<'a, 'b> {
    params: Vec<Value>,
    defs: &'a Definitions<'b>,
    expansions: usize,
    alias: usize,
}

impl Compiler<'_, '_> {
    fn text(&mut self, v: &str) -> &'static str {
        self.params.push(Value::Text(v.to_string()));
        "?"
    }

    fn fresh(&mut self) -> String {
        self.alias += 1;
        format!("f{}", self.alias)
    }

    fn expr(&mut self, e: &Expr, f: &str) -> Result<String, QueryError> {
        Ok(match e {
            Expr::And(a, b) => format!("({} AND {})", self.expr(a, f)?, self.expr(b, f)?),
            Expr::Or(a, b) => format!("({} OR {})", self.expr(a, f)?, self.expr(b, f)?),
            Expr::Minus(a, b) => format!("({} AND NOT {})", self.expr(a, f)?, self.expr(b, f)?),
            Expr::Defname(name) => {
                self.expansions += 1;
                let text = (self.expansions <= MAX_EXPANSIONS)
                    .then(|| (self.defs)(name))
                    .flatten()
                    .ok_or_else(|| QueryError {
                        offset: 0,
                        message: if self.expansions > MAX_EXPANSIONS {
                            format!(
                                "definition `{name}` expands too deeply (does it refer to itself?)"
                            )
                        } else {
                            format!("no definition named `{name}`")
                        },
                        hint: "list definitions with `cascade catalog show --definitions`".into(),
                    })?;
                let inner = parse(&text).map_err(|e| QueryError {
                    message: format!("in definition `{name}`: {}", e.message),
                    ..e
                })?;
                if inner.limit.is_some() || inner.offset.is_some() || inner.stride.is_some() {
                    // A sliced definition is a fixed list of files: select it by id.
                    let compiled = compile(&inner, self.defs)?;
                    self.params.extend(compiled.params);
                    format!("{f}.id IN ({})", compiled.sql)
                } else {
                    self.expr(&inner.expr, f)?
                }
            }
            Expr::ChildOf(inner) => {
                let g = self.fresh();
                let p = self.expr(inner, &g)?;
                format!(
                    "{f}.id IN (SELECT fp.child FROM file_parents fp JOIN files {g} ON {g}.id = fp.parent WHERE {p})"
                )
            }
            Expr::ParentOf(inner) => {
                let g = self.fresh();
                let p = self.expr(inner, &g)?;
                format!(
                    "{f}.id IN (SELECT fp.parent FROM file_parents fp JOIN files {g} ON {g}.id = fp.child WHERE {p})"
                )
            }
            Expr::SnapshotId(id) => {
                self.params.push(Value::Int(*id as i64));
                format!("{f}.id IN (SELECT file FROM snapshot_files WHERE snapshot = ?)")
            }
            Expr::Project { name, statuses } => {
                let q = self.text(name);
                let mut sql =
                    format!("{f}.id IN (SELECT file FROM project_files WHERE project = {q}");
                if let Some(statuses) = statuses {
                    let marks: Vec<&str> = statuses.iter().map(|s| self.text(s)).collect();
                    sql.push_str(&format!(" AND status IN ({})", marks.join(", ")));
                }
                sql.push(')');
                sql
            }
            Expr::FileName { pattern, like } => {
                let q = self.text(pattern);
                if *like {
                    format!("{f}.name LIKE {q}")
                } else {
                    format!("{f}.name = {q}")
                }
            }
            Expr::Run { low, high, subrun } => {
                self.params.push(Value::Int(*low as i64));
                self.params.push(Value::Int(*high as i64));
                let mut sql = format!(
                    "{f}.id IN (SELECT file FROM file_metadata WHERE key = 'run_number' AND num >= ? AND num <= ?"
                );
                if let Some(s) = subrun {
                    self.params.push(Value::Int(*s as i64));
                    sql.push_str(
                        " AND file IN (SELECT file FROM file_metadata WHERE key = 'subrun' AND num = ?)",
                    );
                }
                sql.push(')');
                sql
            }
            Expr::Meta { key, op, value } => self.meta(f, key, *op, value),
        })
    }

    fn meta(&mut self, f: &str, key: &str, op: Op, value: &str) -> String {
        // Columns of the file row itself.
        let column = match key {
            "file_size" | "size" => Some("size"),
            "create_date" | "created" => Some("created"),
            "checksum" => Some("checksum"),
            _ => None,
        };
        if let Some(col) = column {
            let v = if col == "created" {
                parse_time(value).map(Value::Int)
            } else if col == "size" {
                value.parse().ok().map(Value::Int)
            } else {
                None
            };
            self.params
                .push(v.unwrap_or_else(|| Value::Text(value.to_string())));
            return format!("{f}.{col} {} ?", op.sql());
        }
        let k = self.text(key);
        // Numbers compare as numbers, everything else as text.
        match value.parse::<f64>() {
            Ok(_) if op != Op::Like && op != Op::Eq && op != Op::Ne => {
                self.params.push(Value::Text(value.to_string()));
                format!(
                    "{f}.id IN (SELECT file FROM file_metadata WHERE key = {k} AND num {} CAST(? AS REAL))",
                    op.sql()
                )
            }
            _ => {
                let v = self.text(value);
                format!(
                    "{f}.id IN (SELECT file FROM file_metadata WHERE key = {k} AND value {} {v})",
                    op.sql()
                )
            }
        }
    }
}

/// `2026-01-31`, `2026-01-31T12:00:00`, `2026-01-31 12:00:00` (UTC) or unix seconds.
pub fn parse_time(text: &str) -> Option<i64> {
    use chrono::{NaiveDate, NaiveDateTime};
    if let Ok(n) = text.parse::<i64>() {
        return Some(n);
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
