//! The embedded catalog, in the state database: files with metadata, parentage and
//! locations; definitions (named queries); snapshots; projects with per-file status.

use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use serde::Serialize;

use super::query::{QueryError, parse};
use super::sql::{Value, compile};
use crate::ledger::{Ledger, LedgerError, Result, SqlContext, now};
use crate::plan::CatalogView;
use crate::split::FileFact;

/// A file to declare.
#[derive(Clone, Debug, Default)]
pub struct NewFile {
    pub name: String,
    pub size: i64,
    pub checksum: String,
    pub location: String,
    pub metadata: Vec<(String, String)>,
    pub parents: Vec<String>,
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct FileInfo {
    pub name: String,
    pub size: i64,
    pub checksum: String,
    pub location: String,
    /// When it was declared, written as RFC 3339.
    #[serde(serialize_with = "as_rfc3339")]
    #[schemars(with = "String")]
    pub created: i64,
    pub metadata: Vec<(String, String)>,
    pub parents: Vec<String>,
    pub children: Vec<String>,
}

fn as_rfc3339<S: serde::Serializer>(t: &i64, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&crate::plan::rfc3339(*t))
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("{0}")]
    Query(#[from] QueryError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

fn definition(conn: &Connection, name: &str) -> Option<String> {
    conn.query_row(
        "SELECT query FROM definitions WHERE name = ?",
        [name],
        |r| r.get(0),
    )
    .optional()
    .ok()
    .flatten()
}

/// The ids of the files a query selects, in catalog order. A bare name that is a definition
/// is read as `defname: NAME`.
pub fn select_ids(
    conn: &Connection,
    text: &str,
) -> std::result::Result<rusqlite::Result<Vec<i64>>, QueryError> {
    let started = std::time::Instant::now();
    let ids = select_ids_untimed(conn, text);
    crate::server::runtime_metrics::CATALOG_QUERY_SECONDS.observe(started.elapsed().as_secs_f64());
    ids
}

fn select_ids_untimed(
    conn: &Connection,
    text: &str,
) -> std::result::Result<rusqlite::Result<Vec<i64>>, QueryError> {
    let text = if definition(conn, text.trim()).is_some() {
        format!("defname: '{}'", text.trim().replace('\'', "''"))
    } else {
        text.to_string()
    };
    let query = parse(&text)?;
    let compiled = compile(&query, &|name| definition(conn, name))?;
    let params = compiled.params.iter().map(|v| match v {
        Value::Text(t) => rusqlite::types::Value::Text(t.clone()),
        Value::Int(i) => rusqlite::types::Value::Integer(*i),
    });
    let ids = (|| {
        let mut stmt = conn.prepare_cached(&compiled.sql)?;
        let rows = stmt.query_map(params_from_iter(params), |r| r.get(0))?;
        rows.collect()
    })();
    match ids {
        Err(e) if too_large(&e) => Err(QueryError {
            offset: 0,
            message: format!("the query is too large for the database ({e})"),
            hint: "select the files by what they share (a run range, a metadata value) rather than with many conditions".into(),
        }),
        ids => Ok(ids),
    }
}

/// The database's refusals of a query's size, which are the query's fault, not the database's.
fn too_large(e: &rusqlite::Error) -> bool {
    let text = e.to_string();
    ["too large", "too many", "stack overflow", "too deep"]
        .iter()
        .any(|m| text.contains(m))
}

/// Refuses a definition that would refer to itself, directly or through other definitions.
fn check_no_cycle(
    conn: &Connection,
    name: &str,
    query: &super::query::Query,
) -> std::result::Result<(), QueryError> {
    // (definition, the chain of names that led to it)
    let mut stack: Vec<(String, Vec<String>)> = query
        .definitions()
        .into_iter()
        .map(|d| (d.to_string(), vec![d.to_string()]))
        .collect();
    let mut seen = std::collections::HashSet::new();
    while let Some((current, chain)) = stack.pop() {
        if current == name {
            let through = if chain.len() > 1 {
                format!(
                    " through {}",
                    chain[..chain.len() - 1]
                        .iter()
                        .map(|c| format!("`{c}`"))
                        .collect::<Vec<_>>()
                        .join(" → ")
                )
            } else {
                String::new()
            };
            return Err(QueryError {
                offset: 0,
                message: format!("definition `{name}` would refer to itself{through}"),
                hint: "a definition cannot include its own files; name the files it should select directly".into(),
            });
        }
        if !seen.insert(current.clone()) {
            continue;
        }
        let Some(text) = definition(conn, &current) else {
            continue;
        };
        let Ok(inner) = parse(&text) else {
            continue;
        };
        for next in inner.definitions() {
            let mut chain = chain.clone();
            chain.push(next.to_string());
            stack.push((next.to_string(), chain));
        }
    }
    Ok(())
}

/// Whether `name` matches any of `patterns` (`%` any run of characters, `_` any one, case
/// sensitive), by the database's own `LIKE`: the one matcher the catalog's queries use too.
pub fn like_any(conn: &Connection, patterns: &[String], name: &str) -> rusqlite::Result<bool> {
    let mut stmt = conn.prepare_cached("SELECT ?1 LIKE ?2")?;
    for p in patterns {
        if stmt.query_row(params![name, p], |r| r.get::<_, bool>(0))? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A snapshot of the files with these names (names not in the catalog are left out).
pub fn snapshot_of_names(conn: &Connection, names: &[String], t: i64) -> rusqlite::Result<i64> {
    conn.execute(
        "INSERT INTO snapshots (definition, created) VALUES ('', ?)",
        [t],
    )?;
    let snapshot = conn.last_insert_rowid();
    let mut stmt = conn.prepare_cached(
        "INSERT INTO snapshot_files (snapshot, file) SELECT ?, id FROM files WHERE name = ? ON CONFLICT DO NOTHING",
    )?;
    for name in names {
        stmt.execute(params![snapshot, name])?;
    }
    Ok(snapshot)
}

/// Creates the project of a submission: a snapshot of its input files, all `delivered`.
/// Returns the snapshot, if the submission has input files.
pub fn create_project(
    conn: &Connection,
    name: &str,
    input: Option<&str>,
    files: &[String],
    t: i64,
) -> rusqlite::Result<Option<i64>> {
    let ids: Vec<i64> = if !files.is_empty() {
        let mut stmt = conn.prepare_cached("SELECT id FROM files WHERE name = ?")?;
        files
            .iter()
            .filter_map(|f| stmt.query_row([f], |r| r.get(0)).optional().transpose())
            .collect::<rusqlite::Result<_>>()?
    } else if let Some(q) = input {
        // An input the catalog cannot parse has no files: the submission sees an empty project.
        select_ids(conn, q).unwrap_or(Ok(Vec::new()))?
    } else {
        return Ok(None);
    };
    conn.execute(
        "INSERT INTO snapshots (definition, created) VALUES (?, ?)",
        params![input.unwrap_or(""), t],
    )?;
    let snapshot = conn.last_insert_rowid();
    conn.execute(
        "INSERT INTO projects (name, snapshot, created) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        params![name, snapshot, t],
    )?;
    let mut snap = conn.prepare_cached(
        "INSERT INTO snapshot_files (snapshot, file) VALUES (?, ?) ON CONFLICT DO NOTHING",
    )?;
    let mut proj = conn.prepare_cached(
        "INSERT INTO project_files (project, file, status, updated) VALUES (?, ?, 'delivered', ?) ON CONFLICT DO NOTHING",
    )?;
    for id in ids {
        snap.execute(params![snapshot, id])?;
        proj.execute(params![name, id, t])?;
    }
    Ok(Some(snapshot))
}

/// Writes a definition under a name of Cascade's own for `submission`. A name that people
/// defined differently is never overwritten: the conflict is returned.
pub fn define_for_submission(
    conn: &Connection,
    name: &str,
    query: &str,
    submission: &str,
    creator: &str,
    t: i64,
) -> rusqlite::Result<std::result::Result<(), String>> {
    let existing: Option<(String, Option<String>)> = conn
        .query_row(
            "SELECT query, submission FROM definitions WHERE name = ?",
            [name],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    if let Some((old, None)) = &existing
        && old != query
    {
        return Ok(Err(format!(
            "the dataset name `{name}` is already defined as `{old}` by a person; Cascade does not overwrite it (rename that definition, or the stage's dataset)"
        )));
    }
    if existing.as_ref().is_some_and(|(_, owner)| owner.is_none()) {
        return Ok(Ok(()));
    }
    conn.execute(
        "INSERT INTO definitions (name, query, creator, created, submission) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET query = excluded.query, submission = excluded.submission",
        params![name, query, creator, t, submission],
    )?;
    Ok(Ok(()))
}

/// Declares files (with metadata and parents) in the caller's transaction. A file already
/// declared with the same name is left as it is; returns how many were new.
pub fn declare(conn: &Connection, files: &[NewFile]) -> rusqlite::Result<usize> {
    let t = now();
    let mut new = 0;
    for f in files {
        let inserted = conn
            .execute(
                "INSERT INTO files (name, size, checksum, location, created) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                params![f.name, f.size, f.checksum, f.location, t],
            )?;
        if inserted == 0 {
            continue;
        }
        new += 1;
        let id = conn.last_insert_rowid();
        for (k, v) in &f.metadata {
            conn.execute(
                "INSERT INTO file_metadata (file, key, value, num) VALUES (?, ?, ?, ?) ON CONFLICT (file, key) DO UPDATE SET value = excluded.value, num = excluded.num",
                params![id, k.to_ascii_lowercase(), v, metadata_number(k, v)],
            )?;
        }
        for p in &f.parents {
            let parent: Option<i64> = conn
                .query_row("SELECT id FROM files WHERE name = ?", [p], |r| r.get(0))
                .optional()?;
            let parent = parent.ok_or_else(|| {
                rusqlite::Error::ToSqlConversionFailure(
                    format!(
                        "parent `{p}` of `{}` is not in the catalog: declare it first",
                        f.name
                    )
                    .into(),
                )
            })?;
            conn.execute(
                "INSERT INTO file_parents (child, parent) VALUES (?, ?) ON CONFLICT DO NOTHING",
                params![id, parent],
            )?;
        }
    }
    Ok(new)
}

/// The number a metadata value compares as: a number, or for time keys a time in unix
/// seconds.
fn metadata_number(key: &str, value: &str) -> Option<f64> {
    value.parse::<f64>().ok().or_else(|| {
        super::query::is_time_key(&key.to_ascii_lowercase())
            .then(|| super::query::parse_time(value))
            .flatten()
            .map(|t| t as f64)
    })
}

impl Ledger {
    pub fn declare(&mut self, files: &[NewFile]) -> Result<usize> {
        self.write(|tx| declare(tx, files))
    }

    pub fn define(
        &mut self,
        name: &str,
        query: &str,
        who: &str,
    ) -> std::result::Result<(), CatalogError> {
        let parsed = parse(query)?;
        check_no_cycle(&self.conn, name, &parsed)?;
        self.write(|tx| {
            tx.execute(
                "INSERT INTO definitions (name, query, creator, created) VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET query = excluded.query, creator = excluded.creator, submission = NULL",
                params![name, query, who, now()],
            )
            .map(|_| ())
        })?;
        Ok(())
    }

    pub fn query_names(&self, query: &str) -> std::result::Result<Vec<String>, CatalogError> {
        let ids = select_ids(&self.conn, query)?.at(self)?;
        let mut stmt = self
            .conn
            .prepare_cached("SELECT name FROM files WHERE id = ?")
            .at(self)?;
        let names = ids
            .iter()
            .map(|id| stmt.query_row([id], |r| r.get(0)))
            .collect::<rusqlite::Result<Vec<String>>>()
            .at(self)?;
        Ok(names)
    }

    pub fn query_count(&self, query: &str) -> std::result::Result<u64, CatalogError> {
        Ok(select_ids(&self.conn, query)?.at(self)?.len() as u64)
    }

    /// Freezes the files a query selects now; returns the snapshot id.
    pub fn snapshot(&mut self, query: &str) -> std::result::Result<(i64, usize), CatalogError> {
        let ids = select_ids(&self.conn, query)?.at(self)?;
        let id = self.write(|tx| {
            tx.execute(
                "INSERT INTO snapshots (definition, created) VALUES (?, ?)",
                params![query, now()],
            )?;
            let snapshot = tx.last_insert_rowid();
            let mut stmt =
                tx.prepare_cached("INSERT INTO snapshot_files (snapshot, file) VALUES (?, ?)")?;
            for f in &ids {
                stmt.execute(params![snapshot, f])?;
            }
            Ok(snapshot)
        })?;
        Ok((id, ids.len()))
    }

    pub fn file_info(&self, name: &str) -> Result<Option<FileInfo>> {
        let row = self
            .conn
            .query_row(
                "SELECT id, size, checksum, location, created FROM files WHERE name = ?",
                [name],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                    ))
                },
            )
            .optional()
            .at(self)?;
        let Some((id, size, checksum, location, created)) = row else {
            return Ok(None);
        };
        let list = |sql: &str| -> Result<Vec<(String, String)>> {
            self.rows(sql, [id], |r| Ok((r.get(0)?, r.get(1)?)))
        };
        let names = |sql: &str| -> Result<Vec<String>> {
            Ok(list(sql)?.into_iter().map(|(n, _)| n).collect())
        };
        Ok(Some(FileInfo {
            name: name.to_string(),
            size,
            checksum,
            location,
            created,
            metadata: list("SELECT key, value FROM file_metadata WHERE file = ? ORDER BY key")?,
            parents: names(
                "SELECT f.name, '' FROM file_parents p JOIN files f ON f.id = p.parent WHERE p.child = ? ORDER BY f.id",
            )?,
            children: names(
                "SELECT f.name, '' FROM file_parents p JOIN files f ON f.id = p.child WHERE p.parent = ? ORDER BY f.id",
            )?,
        }))
    }

    pub fn definitions(&self) -> Result<Vec<(String, String)>> {
        self.rows(
            "SELECT name, query FROM definitions ORDER BY name",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }

    /// The planner's read-only view of the catalog.
    pub fn catalog_view(&self) -> LedgerCatalog<'_> {
        LedgerCatalog { conn: &self.conn }
    }
}

/// [`CatalogView`] over the state database. A query that fails is an error for the planner
/// (the stage shows `Degraded`), never "no files".
pub struct LedgerCatalog<'a> {
    conn: &'a Connection,
}

impl LedgerCatalog<'_> {
    fn ids(&self, query: &str) -> std::result::Result<Vec<i64>, String> {
        match select_ids(self.conn, query) {
            Ok(Ok(ids)) => Ok(ids),
            Ok(Err(e)) => Err(format!("catalog query `{query}`: {e}")),
            Err(e) => Err(format!("catalog query `{query}`: {}", e.message)),
        }
    }
}

impl CatalogView for LedgerCatalog<'_> {
    fn count(&self, query: &str) -> std::result::Result<u64, String> {
        Ok(self.ids(query)?.len() as u64)
    }

    fn files(&self, dataset: &str) -> std::result::Result<Vec<FileFact>, String> {
        let ids = self.ids(dataset)?;
        let fail = |e: rusqlite::Error| format!("catalog files of `{dataset}`: {e}");
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT f.name,
                    (SELECT num FROM file_metadata WHERE file = f.id AND key = 'run_number'),
                    (SELECT num FROM file_metadata WHERE file = f.id AND key = 'subrun'),
                    (SELECT num FROM file_metadata WHERE file = f.id AND key = 'end_time')
             FROM files f WHERE f.id = ?",
            )
            .map_err(fail)?;
        ids.iter()
            .map(|id| {
                stmt.query_row([id], |r| {
                    let run: Option<f64> = r.get(1)?;
                    let subrun: Option<f64> = r.get(2)?;
                    let end: Option<f64> = r.get(3)?;
                    Ok(FileFact {
                        name: r.get(0)?,
                        run: run.map(|r| (r as u64, subrun.unwrap_or(0.0) as u64)),
                        end_time: end.map(|e| e as i64),
                    })
                })
                .map_err(fail)
            })
            .collect()
    }
}
