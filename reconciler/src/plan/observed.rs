//! The observed state the planner reads: submissions as the ledger records them, recovery
//! decisions, operator requests and pauses. Plain values, so the planner stays pure.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use compact_str::CompactString;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::ObjectKey;
use crate::split::Cursor;
use cascade_crd::RecoveryType;

/// POMS's submission statuses (reference §1.8), in their progress order.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum Status {
    New,
    Cancelled,
    LaunchFailed,
    AwaitingApproval,
    Idle,
    Running,
    Held,
    Failed,
    Completed,
    Located,
    Removed,
}

impl Status {
    pub const ALL: [Status; 11] = [
        Status::New,
        Status::Cancelled,
        Status::LaunchFailed,
        Status::AwaitingApproval,
        Status::Idle,
        Status::Running,
        Status::Held,
        Status::Failed,
        Status::Completed,
        Status::Located,
        Status::Removed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "New",
            Status::Cancelled => "Cancelled",
            Status::LaunchFailed => "LaunchFailed",
            Status::AwaitingApproval => "Awaiting Approval",
            Status::Idle => "Idle",
            Status::Running => "Running",
            Status::Held => "Held",
            Status::Failed => "Failed",
            Status::Completed => "Completed",
            Status::Located => "Located",
            Status::Removed => "Removed",
        }
    }

    pub fn parse(text: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Ends a submission without success: no recovery, no dependents.
    pub fn is_unsuccessful_end(self) -> bool {
        matches!(
            self,
            Status::Failed | Status::Removed | Status::Cancelled | Status::LaunchFailed
        )
    }

    /// Nothing will change it any more (except an operator).
    pub fn is_final(self) -> bool {
        self == Status::Located || self.is_unsuccessful_end()
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Job counts of a submission as its batch system reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct JobCounts {
    pub total: u32,
    pub idle: u32,
    pub running: u32,
    pub held: u32,
    pub succeeded: u32,
    pub failed: u32,
    pub removed: u32,
}

impl JobCounts {
    pub fn finished(&self) -> u32 {
        self.succeeded + self.failed + self.removed
    }

    pub fn add(&mut self, other: &JobCounts) {
        self.total += other.total;
        self.idle += other.idle;
        self.running += other.running;
        self.held += other.held;
        self.succeeded += other.succeeded;
        self.failed += other.failed;
        self.removed += other.removed;
    }
}

/// Why a submission exists. Together with its stage this is the submission's identity: the
/// ledger refuses a second submission with the same (stage, origin).
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Origin {
    /// The `index`-th slice of the stage's split (its test split when `test`); a stage
    /// without a split has only index 0.
    Split { test: bool, index: u64 },
    /// One launch per located upstream submission chain (reference §4.5).
    Upstream {
        #[schemars(with = "String")]
        submission: CompactString,
    },
    /// Once, when the upstream stage as a whole reached its completion percentage.
    StageComplete {
        #[schemars(with = "String")]
        upstream: CompactString,
    },
    /// Once, when every upstream stage of a join reached its percentage.
    Join,
    /// Recovery round `round` (0-based) of the original submission.
    Recovery {
        #[schemars(with = "String")]
        original: CompactString,
        round: u32,
    },
    /// An operator's launch request.
    Request { id: u64 },
    /// A schedule fire time (unix seconds).
    Schedule { fire: i64 },
}

impl Origin {
    /// The text form stored in the ledger's unique key.
    pub fn key(&self) -> String {
        match self {
            Origin::Split { test: false, index } => format!("split:{index}"),
            Origin::Split { test: true, index } => format!("test-split:{index}"),
            Origin::Upstream { submission } => format!("upstream:{submission}"),
            Origin::StageComplete { upstream } => format!("stage-complete:{upstream}"),
            Origin::Join => "join".into(),
            Origin::Recovery { original, round } => format!("recovery:{original}:{round}"),
            Origin::Request { id } => format!("request:{id}"),
            Origin::Schedule { fire } => format!("schedule:{fire}"),
        }
    }

    pub fn is_recovery(&self) -> bool {
        matches!(self, Origin::Recovery { .. })
    }

    /// Short description for status tables.
    pub fn describe(&self) -> String {
        match self {
            Origin::Split { test, index } => {
                format!("{}slice {index}", if *test { "test " } else { "" })
            }
            Origin::Upstream { submission } => format!("after {submission}"),
            Origin::StageComplete { upstream } => format!("after stage {upstream}"),
            Origin::Join => "join".into(),
            Origin::Recovery { round, .. } => format!("recovery round {}", round + 1),
            Origin::Request { id } => format!("request {id}"),
            Origin::Schedule { fire } => format!("schedule {}", crate::plan::format_time(*fire)),
        }
    }
}

/// A submission as recorded in the ledger.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Submission {
    // Ids, datasets and queries are short texts held inline (no allocation each up to 24
    // bytes): a state holds millions of submissions.
    #[schemars(with = "String")]
    pub id: CompactString,
    // One key shared by the stage's submissions: a state holds millions of them.
    pub stage: Arc<ObjectKey>,
    /// Position among the stage's submissions (1, 2, ...).
    pub seq: u64,
    pub origin: Origin,
    pub test: bool,
    /// The dataset name the launch was given (`%(dataset)s`).
    #[schemars(with = "Option<String>")]
    pub dataset: Option<CompactString>,
    /// The catalog query of its input files (none for generators).
    #[schemars(with = "Option<String>")]
    pub input: Option<CompactString>,
    /// The split cursor after this submission's slice, for split launches.
    pub cursor_after: Option<Box<Cursor>>,
    /// For a cursor of delivered files: the catalog snapshot holding them.
    #[serde(default)]
    pub cursor_snapshot: Option<i64>,
    pub status: Status,
    pub jobs: JobCounts,
    /// The launch command ran and its jobs were recorded.
    pub launched: bool,
    /// Creation time, unix seconds.
    pub created: i64,
    pub force_located: bool,
}

/// A decided recovery round of an original submission.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryRound {
    pub original: String,
    pub round: u32,
    pub kind: RecoveryType,
    /// The submission whose project the round's dataset was computed against.
    pub reference: String,
    /// The recovery submission, or none when the round had nothing to recover.
    pub submission: Option<String>,
}

/// An operator's request to launch a stage (`cascade launch`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub id: u64,
    pub stage: ObjectKey,
    pub test: bool,
    pub dataset: Option<String>,
    /// A manual recovery: the original submission and the recovery type to apply at its
    /// chain's current position (reference §5.2).
    pub recovery: Option<(String, RecoveryType)>,
    pub who: String,
    pub created: i64,
}

/// Everything observed, as of one consistent read of the ledger.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    pub submissions: Vec<Submission>,
    pub recoveries: Vec<RecoveryRound>,
    pub requests: Vec<Request>,
    /// Stages and campaigns an operator paused (on top of `paused` in their specs).
    pub paused: BTreeSet<ObjectKey>,
    /// When each stage was first seen, the anchor of its schedule.
    pub first_seen: BTreeMap<ObjectKey, i64>,
    /// Split resets: the stage's cursor starts again after its submission `seq`.
    pub split_resets: BTreeMap<ObjectKey, u64>,
    /// How many times each stage's split was reset, with who did the last one.
    pub split_reset_counts: BTreeMap<ObjectKey, (u32, String)>,
    /// Batch systems whose last observation failed (`slurm` -> what went wrong, since when):
    /// their submissions' job counts are as last seen, and nothing is decided from them.
    pub batch_errors: BTreeMap<String, String>,
}

/// A catalog question that got no answer (a query that does not parse, a definition that is
/// missing, a database error). Never read as "no files": the stage that asked is `Degraded`.
pub type CatalogError = String;

/// What the planner may ask the catalog. An implementation answers from one consistent
/// snapshot; the planner never writes.
pub trait CatalogView {
    /// Number of files matching a query of the catalog language.
    fn count(&self, query: &str) -> Result<u64, CatalogError>;
    /// Facts about the files of a dataset (a definition name or a query), in catalog order.
    fn files(&self, dataset: &str) -> Result<Vec<crate::split::FileFact>, CatalogError>;
    /// Whether a query selects no files; `None` when this view cannot tell (a plan made
    /// without a state directory has no catalog to ask).
    fn is_empty(&self, query: &str) -> Result<Option<bool>, CatalogError> {
        self.count(query).map(|n| Some(n == 0))
    }
}

/// A catalog of fixed answers, for tests and for planning without a catalog. It counts
/// queries it was not told about as 0 files, but does not claim they are empty.
#[derive(Clone, Debug, Default)]
pub struct FixedCatalog {
    pub counts: BTreeMap<String, u64>,
    pub files: BTreeMap<String, Vec<crate::split::FileFact>>,
}

impl CatalogView for FixedCatalog {
    fn count(&self, query: &str) -> Result<u64, CatalogError> {
        Ok(self.counts.get(query).copied().unwrap_or(0))
    }

    fn files(&self, dataset: &str) -> Result<Vec<crate::split::FileFact>, CatalogError> {
        Ok(self.files.get(dataset).cloned().unwrap_or_default())
    }

    fn is_empty(&self, query: &str) -> Result<Option<bool>, CatalogError> {
        Ok(self.counts.get(query).map(|n| *n == 0))
    }
}
