//! Versioned migrations of the state database. The SQL stays portable (SQLite and
//! PostgreSQL): plain types, `ON CONFLICT DO NOTHING`, no SQLite-only column affinities.

pub const MIGRATIONS: &[(u32, &str, &str)] = &[
    (1, "ledger, catalog and local batch system", V1),
    (2, "when each stage's state last changed", V2),
    (
        3,
        "definitions' owners; snapshots of delivered files; runners' start times",
        V3,
    ),
    (4, "jobs of batch systems Cascade observes", V4),
    (5, "revisions of the definitions applied from git", V5),
    (
        6,
        "notifications to deliver, and when each notifier was first seen",
        V6,
    ),
];

/// `notifications`: one row per message a notifier is to be sent, written in the transaction
/// that saved the stage states it tells of; `target` is the notifier's spec when it was
/// decided, `payload` what happened. `state`: `pending` (due at `next_at`), `sent`, `failed`
/// (given up; `last_error` says why). `notifiers_seen`: launch failures older than a
/// notifier are not announced by it. The indexes on submissions' statuses and jobs' states
/// let the metrics count without reading every row.
const V6: &str = r#"
CREATE INDEX submissions_status ON submissions (status);
CREATE INDEX jobs_delegated_state ON jobs (delegated, state);
CREATE TABLE notifications (
    id         INTEGER PRIMARY KEY,
    namespace  TEXT NOT NULL,
    notifier   TEXT NOT NULL,
    event      TEXT NOT NULL,
    subject    TEXT NOT NULL,
    target     TEXT NOT NULL,
    payload    TEXT NOT NULL,
    state      TEXT NOT NULL,
    attempts   INTEGER NOT NULL,
    next_at    BIGINT NOT NULL,
    last_error TEXT,
    created    BIGINT NOT NULL,
    sent_at    BIGINT
);
CREATE INDEX notifications_due ON notifications (state, next_at);
CREATE INDEX notifications_subject ON notifications (namespace, notifier, event, subject);
CREATE TABLE notifiers_seen (
    namespace TEXT NOT NULL,
    name      TEXT NOT NULL,
    since     BIGINT NOT NULL,
    PRIMARY KEY (namespace, name)
);
"#;

/// `revisions`: what became of each revision the source offered: `applied`, `rejected` (it
/// does not validate; `detail` has the errors), `missing` (the branch is gone), `unreachable`
/// (the fetch failed). `submissions.revision`: the revision in force when it was launched.
const V5: &str = r#"
CREATE TABLE revisions (
    id     INTEGER PRIMARY KEY,
    commit_id TEXT NOT NULL,
    state  TEXT NOT NULL,
    detail TEXT NOT NULL,
    at     BIGINT NOT NULL
);
ALTER TABLE submissions ADD COLUMN revision TEXT;
"#;

/// `submissions.batch_system`: where the submission's jobs run (its job type's, when it was
/// reserved). `batch_clusters`: the job ids (Slurm job or array ids, HTCondor clusters) bound
/// to a submission, from what its launch printed or the identity found on the jobs.
/// `batch_jobs`: each job (array task, cluster proc) as last observed. `batch_health`: the last
/// observation of each batch system, and its error while it cannot be observed.
/// `installation`: the state directory's random identity, part of the tag on its jobs.
/// `jobs.delegated`: the job runs on another batch system (a Slurm array task runs it with
/// `cascade run-task`): the local daemon never starts, adopts or requeues it.
const V4: &str = r#"
CREATE TABLE installation (id TEXT PRIMARY KEY);
ALTER TABLE jobs ADD COLUMN delegated INTEGER NOT NULL DEFAULT 0;
ALTER TABLE submissions ADD COLUMN batch_system TEXT NOT NULL DEFAULT 'local';
CREATE TABLE batch_clusters (
    system     TEXT NOT NULL,
    cluster    TEXT NOT NULL,
    submission TEXT NOT NULL,
    bound      BIGINT NOT NULL,
    PRIMARY KEY (system, cluster)
);
CREATE INDEX batch_clusters_submission ON batch_clusters (submission);
CREATE TABLE batch_jobs (
    system     TEXT NOT NULL,
    job        TEXT NOT NULL,
    cluster    TEXT NOT NULL,
    submission TEXT NOT NULL,
    state      TEXT NOT NULL,
    exit_code  INTEGER,
    reason     TEXT NOT NULL,
    updated    BIGINT NOT NULL,
    PRIMARY KEY (system, job)
);
CREATE INDEX batch_jobs_submission ON batch_jobs (submission);
CREATE TABLE batch_health (
    system  TEXT PRIMARY KEY,
    error   TEXT,
    since   BIGINT NOT NULL,
    checked BIGINT NOT NULL
);
"#;

/// `definitions.submission`: the launch that wrote a definition under a name of Cascade's own
/// (a slice, a dependency or recovery dataset); NULL for definitions people made. A launch
/// never overwrites a definition people made. `submissions.cursor_snapshot`: the catalog
/// snapshot of the files delivered so far, for the splits whose cursor is such a set.
/// `jobs.pid_start`: the start time of the job's runner, so a reused pid is never taken for
/// it; `jobs.attempts`: runs of the job whose runner died before recording an end;
/// `stage_status.position`: the stage's place in its pipeline, so `status` lists stages in the
/// order they run.
const V3: &str = r#"
ALTER TABLE definitions ADD COLUMN submission TEXT;
ALTER TABLE submissions ADD COLUMN cursor_snapshot BIGINT;
ALTER TABLE jobs ADD COLUMN pid_start BIGINT;
ALTER TABLE jobs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE stage_status ADD COLUMN position INTEGER NOT NULL DEFAULT 0;
"#;

/// `since`: when the stage's state last changed (conditions' lastTransitionTime); 0 for rows
/// saved before it was kept.
const V2: &str = r#"
ALTER TABLE stage_status ADD COLUMN since BIGINT NOT NULL DEFAULT 0;
"#;

const V1: &str = r#"
CREATE TABLE submissions (
    id            TEXT PRIMARY KEY,
    namespace     TEXT NOT NULL,
    stage         TEXT NOT NULL,
    seq           INTEGER NOT NULL,
    origin        TEXT NOT NULL,
    origin_json   TEXT NOT NULL,
    test          INTEGER NOT NULL,
    dataset       TEXT,
    input         TEXT,
    cursor_after  TEXT,
    status        TEXT NOT NULL,
    launch_state  TEXT NOT NULL,
    approval      INTEGER NOT NULL,
    command       TEXT NOT NULL,
    display       TEXT NOT NULL,
    argv          TEXT NOT NULL,
    env           TEXT NOT NULL,
    launch_dir    TEXT NOT NULL,
    batch_id      TEXT,
    launch_exit   INTEGER,
    launch_attempts INTEGER NOT NULL,
    launch_log    TEXT NOT NULL,
    launcher      TEXT NOT NULL,
    force_located INTEGER NOT NULL,
    created       BIGINT NOT NULL,
    updated       BIGINT NOT NULL,
    UNIQUE (namespace, stage, origin),
    UNIQUE (namespace, stage, seq)
);
CREATE INDEX submissions_stage ON submissions (namespace, stage);
CREATE INDEX submissions_open ON submissions (launch_state);

CREATE TABLE submission_history (
    submission TEXT NOT NULL,
    status     TEXT NOT NULL,
    at         BIGINT NOT NULL,
    at_ms      BIGINT NOT NULL,
    reason     TEXT NOT NULL
);
CREATE INDEX submission_history_sub ON submission_history (submission);

CREATE TABLE recovery_rounds (
    original   TEXT NOT NULL,
    round      INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    reference  TEXT NOT NULL,
    submission TEXT,
    decided_at BIGINT NOT NULL,
    PRIMARY KEY (original, round)
);

CREATE TABLE requests (
    id        INTEGER PRIMARY KEY,
    namespace TEXT NOT NULL,
    stage     TEXT NOT NULL,
    test      INTEGER NOT NULL,
    dataset   TEXT,
    recover_of   TEXT,
    recover_type TEXT,
    who       TEXT NOT NULL,
    why       TEXT NOT NULL,
    created   BIGINT NOT NULL
);

CREATE TABLE split_resets (
    namespace TEXT NOT NULL,
    stage     TEXT NOT NULL,
    after_seq BIGINT NOT NULL,
    who       TEXT NOT NULL,
    why       TEXT NOT NULL,
    created   BIGINT NOT NULL
);

CREATE TABLE pauses (
    namespace TEXT NOT NULL,
    name      TEXT NOT NULL,
    who       TEXT NOT NULL,
    why       TEXT NOT NULL,
    created   BIGINT NOT NULL,
    PRIMARY KEY (namespace, name)
);

CREATE TABLE first_seen (
    namespace TEXT NOT NULL,
    stage     TEXT NOT NULL,
    at        BIGINT NOT NULL,
    PRIMARY KEY (namespace, stage)
);

CREATE TABLE operator_actions (
    id     INTEGER PRIMARY KEY,
    at     BIGINT NOT NULL,
    who    TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    why    TEXT NOT NULL
);

CREATE TABLE stage_status (
    namespace TEXT NOT NULL,
    stage     TEXT NOT NULL,
    campaign  TEXT NOT NULL,
    state     TEXT NOT NULL,
    reason    TEXT NOT NULL,
    detail    TEXT NOT NULL,
    updated   BIGINT NOT NULL,
    PRIMARY KEY (namespace, stage)
);

CREATE TABLE jobs (
    id         INTEGER PRIMARY KEY,
    submission TEXT NOT NULL,
    idx        INTEGER NOT NULL,
    argv       TEXT NOT NULL,
    cwd        TEXT NOT NULL,
    env        TEXT NOT NULL,
    patterns   TEXT NOT NULL,
    state      TEXT NOT NULL,
    pid        INTEGER,
    exit_code  INTEGER,
    created    BIGINT NOT NULL,
    started    BIGINT,
    finished   BIGINT,
    finished_ms BIGINT,
    UNIQUE (submission, idx)
);
CREATE INDEX jobs_state ON jobs (state);
CREATE INDEX jobs_submission ON jobs (submission);

CREATE TABLE job_inputs (
    job  INTEGER NOT NULL,
    file INTEGER NOT NULL,
    PRIMARY KEY (job, file)
);

CREATE TABLE files (
    id       INTEGER PRIMARY KEY,
    name     TEXT NOT NULL UNIQUE,
    size     BIGINT NOT NULL,
    checksum TEXT NOT NULL,
    location TEXT NOT NULL,
    created  BIGINT NOT NULL
);

CREATE TABLE file_metadata (
    file  INTEGER NOT NULL,
    key   TEXT NOT NULL,
    value TEXT NOT NULL,
    num   DOUBLE PRECISION,
    PRIMARY KEY (file, key)
);
CREATE INDEX file_metadata_value ON file_metadata (key, value);
CREATE INDEX file_metadata_num ON file_metadata (key, num);

CREATE TABLE file_parents (
    child  INTEGER NOT NULL,
    parent INTEGER NOT NULL,
    PRIMARY KEY (child, parent)
);
CREATE INDEX file_parents_parent ON file_parents (parent);

CREATE TABLE definitions (
    name    TEXT PRIMARY KEY,
    query   TEXT NOT NULL,
    creator TEXT NOT NULL,
    created BIGINT NOT NULL
);

CREATE TABLE snapshots (
    id         INTEGER PRIMARY KEY,
    definition TEXT NOT NULL,
    created    BIGINT NOT NULL
);

CREATE TABLE snapshot_files (
    snapshot INTEGER NOT NULL,
    file     INTEGER NOT NULL,
    PRIMARY KEY (snapshot, file)
);

CREATE TABLE projects (
    name     TEXT PRIMARY KEY,
    snapshot INTEGER NOT NULL,
    created  BIGINT NOT NULL
);

CREATE TABLE project_files (
    project TEXT NOT NULL,
    file    INTEGER NOT NULL,
    status  TEXT NOT NULL,
    updated BIGINT NOT NULL,
    PRIMARY KEY (project, file)
);
"#;
