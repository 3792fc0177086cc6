//! The ledger: durable observed state in an embedded SQLite database under the state
//! directory (WAL, one transaction per change of state). The catalog and the local batch
//! system keep their tables in the same database, so a job finishing, its outputs being
//! declared and its input files being marked consumed commit together.

mod notifications;
mod revisions;
mod schema;
mod submissions;

pub use notifications::{NotificationProblem, NotificationSummary, Outgoing};
pub use revisions::RevisionRow;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

pub use submissions::{HistoryRow, LaunchEnd, SavedStage, SubmissionRow};

pub const DB_FILE: &str = "cascade.db";

/// Names are stored as text.
impl rusqlite::ToSql for crate::model::graph::Name {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("state database {path}: {source}")]
    Sql {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("{0}")]
    Invalid(String),
    /// Input the user must fix (definitions that do not validate, no state yet).
    #[error("{0}")]
    Rejected(String),
    /// Stopped by Ctrl-C or SIGTERM; the state is saved.
    #[error(
        "interrupted: the state is saved; jobs already submitted keep running (`cascade q` lists them, `cascade kill` stops a submission's); run again to continue"
    )]
    Interrupted,
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T> = std::result::Result<T, LedgerError>;

pub struct Ledger {
    pub(crate) conn: Connection,
    pub dir: PathBuf,
}

/// Wraps a SQL error with the database path, for messages people can act on.
pub(crate) trait SqlContext<T> {
    fn at(self, ledger: &Ledger) -> Result<T>;
}

impl<T> SqlContext<T> for rusqlite::Result<T> {
    fn at(self, ledger: &Ledger) -> Result<T> {
        self.map_err(|source| sql_error(&ledger.dir.join(DB_FILE), source))
    }
}

/// Our own refusals travel through rusqlite as `ToSqlConversionFailure`; they are messages for
/// people, not database failures.
fn sql_error(path: &Path, source: rusqlite::Error) -> LedgerError {
    match source {
        rusqlite::Error::ToSqlConversionFailure(e) => LedgerError::Invalid(e.to_string()),
        source => LedgerError::Sql {
            path: path.to_path_buf(),
            source,
        },
    }
}

/// An operator's action as the ledger recorded it.
#[derive(Clone, Debug, serde::Serialize, schemars::JsonSchema)]
pub struct OperatorAction {
    pub at: i64,
    pub who: String,
    pub action: String,
    pub target: String,
    pub why: String,
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// The database refused to be written (a read-only file, directory or file system).
fn is_read_only(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::ReadOnly | rusqlite::ErrorCode::CannotOpen)
    )
}

/// Makes the state directory if there is none, with a clear message when it cannot be.
pub fn prepare_state_dir(dir: &Path) -> Result<()> {
    check_not_dangling(dir)?;
    std::fs::create_dir_all(dir).map_err(|e| {
        LedgerError::Invalid(format!(
            "cannot create state directory {}: {e}",
            dir.display()
        ))
    })
}

/// A state directory given as a symlink to nothing gets a clear message rather than the
/// `File exists` of creating it.
fn check_not_dangling(dir: &Path) -> Result<()> {
    let is_link = std::fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_symlink());
    if is_link && !dir.exists() {
        let target = std::fs::read_link(dir)
            .map(|t| t.display().to_string())
            .unwrap_or_else(|_| "?".into());
        return Err(LedgerError::Invalid(format!(
            "state directory {} is a symlink to {target}, which does not exist: create it, or pass another --state",
            dir.display()
        )));
    }
    Ok(())
}

/// A state directory whose database is missing or empty while jobs or launches were
/// recorded there lost its ledger: starting a new one would launch everything again and
/// take the old jobs' files for new outputs.
fn check_not_lost(dir: &Path) -> Result<()> {
    let db = dir.join(DB_FILE);
    let empty = std::fs::metadata(&db).map_or(true, |m| m.len() == 0);
    let used = ["jobs", "launches"].iter().any(|d| dir.join(d).is_dir());
    if empty && used {
        return Err(LedgerError::Invalid(format!(
            "{} is {} but {} holds jobs or launches of an earlier run: its ledger is lost, and a new one would launch everything again. Restore {DB_FILE} from a backup, or start over in a new state directory (or remove its jobs/ and launches/ first)",
            db.display(),
            if db.exists() { "empty" } else { "missing" },
            dir.display()
        )));
    }
    Ok(())
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Ledger {
    /// Opens (creating if needed) the state database in `dir` and brings its schema up to date.
    pub fn open(dir: &Path) -> Result<Ledger> {
        prepare_state_dir(dir)?;
        check_not_lost(dir)?;
        Self::connect(dir)
    }

    /// Opens the state database of an existing state directory. A state that cannot be
    /// written (a read-only directory or file system) is opened read-only: the reading
    /// commands still work.
    pub fn open_existing(dir: &Path) -> Result<Ledger> {
        check_not_dangling(dir)?;
        if !dir.join(DB_FILE).exists() {
            return Err(LedgerError::Rejected(format!(
                "no state in {}: run `cascade run` first, or pass the right --state",
                dir.display()
            )));
        }
        check_not_lost(dir)?;
        match Self::connect(dir) {
            Err(LedgerError::Sql { source, .. }) if is_read_only(&source) => {
                Self::connect_read_only(dir)
            }
            other => other,
        }
    }

    /// A read-only connection. In WAL mode SQLite needs to write beside the database even to
    /// read; where it cannot, the file is read as immutable (nothing else can be writing a
    /// state on a read-only file system).
    fn connect_read_only(dir: &Path) -> Result<Ledger> {
        let path = dir.join(DB_FILE);
        let flags =
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI;
        let uri = |extra: &str| format!("file:{}?mode=ro{extra}", path.display());
        let wrap = |source| LedgerError::Sql {
            path: path.clone(),
            source,
        };
        let readable = |conn: Connection| -> rusqlite::Result<Connection> {
            conn.query_row("SELECT COUNT(*) FROM schema_migrations", [], |r| {
                r.get::<_, i64>(0)
            })?;
            Ok(conn)
        };
        let conn = Connection::open_with_flags(uri(""), flags)
            .and_then(readable)
            .or_else(|_| Connection::open_with_flags(uri("&immutable=1"), flags).and_then(readable))
            .map_err(wrap)?;
        conn.execute_batch("PRAGMA case_sensitive_like = ON;")
            .map_err(wrap)?;
        Ok(Ledger {
            conn,
            dir: dir.to_path_buf(),
        })
    }

    fn connect(dir: &Path) -> Result<Ledger> {
        let path = dir.join(DB_FILE);
        let conn = Connection::open(&path).map_err(|source| LedgerError::Sql {
            path: path.clone(),
            source,
        })?;
        let mut ledger = Ledger {
            conn,
            dir: dir.to_path_buf(),
        };
        ledger
            .conn
            .busy_timeout(Duration::from_secs(60))
            .at(&ledger)?;
        // Switching a new database to WAL takes an exclusive lock without waiting on the busy
        // handler: processes opening the same new state at once (a controller, `cascade q`,
        // a launch's `cascade submit`) retry instead of failing.
        let mut attempts = 0;
        loop {
            match ledger.conn.execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA case_sensitive_like = ON;",
            ) {
                Ok(()) => break,
                Err(e) if is_busy(&e) && attempts < 500 => {
                    attempts += 1;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(e).at(&ledger),
            }
        }
        ledger.migrate()?;
        Ok(ledger)
    }

    fn migrate(&mut self) -> Result<()> {
        // Most opens (every job runner) find the schema current: check without the write lock.
        let newest = schema::MIGRATIONS.last().map_or(0, |m| m.0);
        let current: Option<u32> = self
            .conn
            .query_row("SELECT MAX(version) FROM schema_migrations", [], |r| {
                r.get(0)
            })
            .optional()
            .ok()
            .flatten()
            .flatten();
        if current == Some(newest) {
            return Ok(());
        }
        let path = self.dir.join(DB_FILE);
        let wrap = |source| LedgerError::Sql {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(wrap)?;
        tx.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at BIGINT NOT NULL)",
            [],
        )
        .map_err(wrap)?;
        let current: u32 = tx
            .query_row(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                [],
                |r| r.get(0),
            )
            .map_err(wrap)?;
        if current > newest {
            return Err(LedgerError::Invalid(format!(
                "{} has schema version {current}, newer than this cascade knows ({newest}): upgrade cascade",
                path.display()
            )));
        }
        for (version, description, sql) in schema::MIGRATIONS.iter().filter(|m| m.0 > current) {
            tx.execute_batch(sql).map_err(wrap)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)",
                params![version, description, now()],
            )
            .map_err(wrap)?;
        }
        tx.commit().map_err(wrap)
    }

    pub fn schema_version(&self) -> Result<u32> {
        self.conn
            .query_row("SELECT MAX(version) FROM schema_migrations", [], |r| {
                r.get(0)
            })
            .at(self)
    }

    /// Runs `f` in one immediate transaction: all of it commits, or none.
    pub fn write<T>(
        &mut self,
        f: impl FnOnce(&rusqlite::Transaction) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let path = self.dir.join(DB_FILE);
        let wrap = |source| sql_error(&path, source);
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(wrap)?;
        let value = f(&tx).map_err(wrap)?;
        tx.commit().map_err(wrap)?;
        Ok(value)
    }

    /// Runs `f` inside one read transaction: every read it makes sees the same committed
    /// state, whatever other processes commit meanwhile (launches recording their outcome,
    /// jobs ending). Returns what `f` returned and the `data_version` of that state, so a
    /// commit made after it is noticed.
    pub fn consistent_read<T>(&self, f: impl FnOnce(&Ledger) -> Result<T>) -> Result<(T, i64)> {
        self.conn.execute_batch("BEGIN DEFERRED").at(self)?;
        // The first read fixes the snapshot; `data_version` is read in it.
        let read = self.data_version().and_then(|v| Ok((f(self)?, v)));
        let end = self.conn.execute_batch("COMMIT").at(self);
        let read = read?;
        end?;
        Ok(read)
    }

    /// Records an operator action with who and why.
    pub fn record_action(
        &mut self,
        who: &str,
        action: &str,
        target: &str,
        why: &str,
    ) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO operator_actions (at, who, action, target, why) VALUES (?, ?, ?, ?, ?)",
                params![now(), who, action, target, why],
            )
            .map(|_| ())
        })
    }

    /// Operator actions, oldest first.
    pub fn operator_actions(&self) -> Result<Vec<OperatorAction>> {
        self.rows(
            "SELECT at, who, action, target, why FROM operator_actions ORDER BY id",
            [],
            |r| {
                Ok(OperatorAction {
                    at: r.get(0)?,
                    who: r.get(1)?,
                    action: r.get(2)?,
                    target: r.get(3)?,
                    why: r.get(4)?,
                })
            },
        )
    }

    /// Changes whenever another connection commits (SQLite's `data_version`).
    pub fn data_version(&self) -> Result<i64> {
        self.scalar_i64("PRAGMA data_version")
    }

    /// The rows a query returns, each made by `row`.
    pub fn rows<T, P: rusqlite::Params>(
        &self,
        sql: &str,
        params: P,
        row: impl FnMut(&rusqlite::Row) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        let mut stmt = self.conn.prepare(sql).at(self)?;
        let rows = stmt.query_map(params, row).at(self)?;
        rows.collect::<rusqlite::Result<Vec<T>>>().at(self)
    }

    pub fn scalar_i64(&self, sql: &str) -> Result<i64> {
        self.conn.query_row(sql, [], |r| r.get(0)).at(self)
    }

    pub fn optional_text(&self, sql: &str, arg: &str) -> Result<Option<String>> {
        self.conn
            .query_row(sql, [arg], |r| r.get(0))
            .optional()
            .at(self)
    }

    /// This state directory's own random identity, made the first time it is asked for. It
    /// tells this installation's jobs from another's on a shared batch system, where
    /// submission ids (`exp.gen.1`) repeat.
    pub fn installation(&mut self) -> Result<String> {
        let read = |l: &Ledger| l.optional_text("SELECT id FROM installation WHERE ?1 = ?1", "");
        if let Some(id) = read(self)? {
            return Ok(id);
        }
        let id = random_hex(8)?;
        self.write(|tx| {
            tx.execute(
                "INSERT INTO installation (id) SELECT ? WHERE NOT EXISTS (SELECT 1 FROM installation)",
                [&id],
            )
        })?;
        Ok(read(self)?.unwrap_or(id))
    }
}

/// `n` random bytes from the kernel, in hex.
pub fn random_hex(n: usize) -> std::io::Result<String> {
    let mut bytes = vec![0u8; n];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut bytes)?;
    Ok(crate::digest::hex(&bytes))
}

#[cfg(test)]
mod tests;
