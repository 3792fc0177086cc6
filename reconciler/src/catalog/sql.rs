//! Compiling a parsed query into portable SQL over the catalog tables (`files`,
//! `file_metadata`, `file_parents`, `snapshot_files`, `project_files`, `definitions`).
//!
//! Each condition becomes a predicate on a file row, so `and`/`or`/`minus` are plain boolean
//! operators and the planner of the database picks the indexes. Definitions are expanded in
//! place (a definition is a stored query), with a bound against definitions that refer to
//! themselves.

use super::query::{Expr, MAX_CONDITIONS, Op, Query, QueryError, is_time_key, parse, parse_time};

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
        conditions: 0,
        alias: 0,
    };
    let sql = c.query(query)?;
    Ok(Compiled {
        sql,
        params: c.params,
    })
}

struct Compiler<'a, 'b> {
    params: Vec<Value>,
    defs: &'a Definitions<'b>,
    /// Definitions expanded so far, in this query and every query it refers to.
    expansions: usize,
    /// Conditions so far, definitions expanded.
    conditions: usize,
    alias: usize,
}

impl Compiler<'_, '_> {
    fn query(&mut self, query: &Query) -> Result<String, QueryError> {
        let pred = self.expr(&query.expr, "f")?;
        let offset = query.offset.unwrap_or(0);
        Ok(match query.stride {
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
        })
    }

    /// Counts one more condition; past the bound the query is refused.
    fn condition(&mut self) -> Result<(), QueryError> {
        self.conditions += 1;
        if self.conditions > MAX_CONDITIONS {
            return Err(QueryError {
                offset: 0,
                message: format!(
                    "more than {MAX_CONDITIONS} conditions once its definitions are expanded"
                ),
                hint: "select the files by what they share (a run range, a metadata value), or freeze a large selection with `cascade catalog snapshot` and use `snapshot_id N`".into(),
            });
        }
        Ok(())
    }

    fn text(&mut self, v: &str) -> &'static str {
        self.params.push(Value::Text(v.to_string()));
        "?"
    }

    fn fresh(&mut self) -> String {
        self.alias += 1;
        format!("f{}", self.alias)
    }

    /// A chain of `and`/`or`/`minus` is walked down its left side in a loop, not recursively:
    /// the parser builds chains as deep as they are long, and only parentheses (bounded by the
    /// parser) nest to the right.
    fn expr(&mut self, e: &Expr, f: &str) -> Result<String, QueryError> {
        let mut chain: Vec<(&'static str, &Expr)> = Vec::new();
        let mut left = e;
        loop {
            let (op, a, b) = match left {
                Expr::And(a, b) => (" AND ", a, b),
                Expr::Or(a, b) => (" OR ", a, b),
                Expr::Minus(a, b) => (" AND NOT ", a, b),
                _ => break,
            };
            chain.push((op, b));
            left = a;
        }
        let mut sql = self.condition_sql(left, f)?;
        for (op, right) in chain.into_iter().rev() {
            let right = self.expr(right, f)?;
            sql = format!("({sql}{op}{right})");
        }
        Ok(sql)
    }

    fn condition_sql(&mut self, e: &Expr, f: &str) -> Result<String, QueryError> {
        self.condition()?;
        Ok(match e {
            Expr::Sliced(q) => format!("{f}.id IN ({})", self.query(q)?),
            Expr::And(..) | Expr::Or(..) | Expr::Minus(..) => self.expr(e, f)?,
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
                    format!("{f}.id IN ({})", self.query(&inner)?)
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
        if is_time_key(key)
            && op != Op::Like
            && let Some(t) = parse_time(value)
        {
            let k = self.text(key);
            self.params.push(Value::Int(t));
            return format!(
                "{f}.id IN (SELECT file FROM file_metadata WHERE key = {k} AND num {} ?)",
                op.sql()
            );
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
