//! Revisions of the definitions a git source offered, and what became of each.

use rusqlite::{OptionalExtension, params};

use super::{Ledger, Result, SqlContext, now};

/// One revision's fate.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct RevisionRow {
    pub commit: String,
    /// `applied`, `rejected`, `missing` or `unreachable`.
    pub state: String,
    pub detail: String,
    pub at: i64,
}

impl Ledger {
    /// Records what became of a revision, unless the last record already says the same.
    pub fn record_revision(&mut self, commit: &str, state: &str, detail: &str) -> Result<()> {
        if self
            .last_revision(None)?
            .is_some_and(|r| r.commit == commit && r.state == state && r.detail == detail)
        {
            return Ok(());
        }
        self.write(|tx| {
            tx.execute(
                "INSERT INTO revisions (commit_id, state, detail, at) VALUES (?, ?, ?, ?)",
                params![commit, state, detail, now()],
            )
            .map(|_| ())
        })
    }

    /// The latest record (of `state`, when given).
    pub fn last_revision(&self, state: Option<&str>) -> Result<Option<RevisionRow>> {
        self.conn
            .query_row(
                "SELECT commit_id, state, detail, at FROM revisions WHERE ?1 IS NULL OR state = ?1 ORDER BY id DESC LIMIT 1",
                [state],
                |r| {
                    Ok(RevisionRow {
                        commit: r.get(0)?,
                        state: r.get(1)?,
                        detail: r.get(2)?,
                        at: r.get(3)?,
                    })
                },
            )
            .optional()
            .at(self)
    }

    /// Revisions of submissions that may still be launching or running, whose checkouts
    /// must stay.
    pub fn revisions_in_use(&self) -> Result<Vec<String>> {
        self.rows(
            "SELECT DISTINCT revision FROM submissions WHERE revision IS NOT NULL AND status NOT IN ('Located', 'Removed', 'Failed')",
            [],
            |r| r.get(0),
        )
    }

    /// The revision a submission was launched under.
    pub fn revision_of(&self, submission: &str) -> Result<Option<String>> {
        Ok(self
            .rows(
                "SELECT revision FROM submissions WHERE id = ?",
                [submission],
                |r| r.get::<_, Option<String>>(0),
            )?
            .into_iter()
            .next()
            .flatten())
    }
}
