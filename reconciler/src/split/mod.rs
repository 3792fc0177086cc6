//! Split policies as pure functions: `(policy, dataset, cursor, facts) -> next slice | exhausted`.
//!
//! The facts are what the catalog knows about the files of the stage's dataset (names, runs,
//! end times, which were already delivered); the slice is a catalog query and a name. Unlike
//! POMS, exhaustion is known *before* a launch is attempted: [`next`] answers `Exhausted`
//! instead of creating an empty slice, and the cursor is advanced by the caller only once the
//! launch is recorded.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use cascade_crd::SplitPolicy;
use cascade_crd::split::NewWindows;
use cascade_crd::stage::SplitData;

/// What the catalog knows about one file of the dataset being split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileFact {
    pub name: String,
    /// (run, subrun) of the file's first run entry.
    pub run: Option<(u64, u64)>,
    /// End time, unix seconds.
    pub end_time: Option<i64>,
}

/// Position of a policy in its dataset. Each policy uses one shape; `Start` is "nothing yet".
#[derive(
    Clone,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum Cursor {
    #[default]
    Start,
    /// Slices taken so far (`list`, `multiparam`, `nfiles`, `mod`).
    Index(u64),
    /// Next run number (`byrun`).
    Run(u64),
    /// End of the last window, unix seconds (`new`).
    Time(i64),
    /// Files delivered so far (`drainingn`, `stagedfiles`, `byexistingruns`): POMS keeps a
    /// cumulative snapshot; the set is that snapshot.
    Delivered(BTreeSet<String>),
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Cursor::Start => f.write_str("start"),
            Cursor::Index(i) => write!(f, "slice {i}"),
            Cursor::Run(r) => write!(f, "run {r}"),
            Cursor::Time(t) => write!(f, "time {t}"),
            Cursor::Delivered(s) => write!(f, "{} files delivered", s.len()),
        }
    }
}

/// One slice to launch over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slice {
    /// Name of the slice (the dataset name POMS would create), unique within the stage.
    pub name: String,
    /// Catalog query selecting the slice's files (for `list`/`multiparam`: the value itself).
    pub query: String,
    /// The files of the slice when they are known from the facts.
    pub files: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    Slice { slice: Slice, cursor: Cursor },
    Exhausted,
}

/// What a split needs besides its cursor and files. Plain values: the split stays pure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SplitContext {
    /// Unix seconds (used by `new` when `lasttime` is not set).
    pub now: i64,
    /// The catalog snapshot holding the files a `Delivered` cursor lists (POMS's cumulative
    /// snapshot), when the ledger recorded one.
    pub delivered_snapshot: Option<i64>,
    /// The controller's UTC offset in seconds, for `new(localtime=1)`.
    pub local_offset: i32,
}

/// The next slice of `policy` over `dataset` from `cursor`. `files` are the dataset's files
/// in catalog order (for `stagedfiles`: the files the prestage project has consumed).
pub fn next(
    policy: &SplitPolicy,
    dataset: &SplitData,
    cursor: &Cursor,
    files: &[FileFact],
    ctx: &SplitContext,
) -> Next {
    let d = match dataset {
        SplitData::Text(t) => t.as_str(),
        SplitData::Lists(_) => "",
    };
    let index = match cursor {
        Cursor::Index(i) => *i,
        _ => 0,
    };
    let delivered = match cursor {
        Cursor::Delivered(set) => Some(set),
        _ => None,
    };
    let names = |fs: &[&FileFact]| fs.iter().map(|f| f.name.clone()).collect::<Vec<_>>();
    let slice = |name: String, query: String, files: Vec<String>, cursor: Cursor| Next::Slice {
        slice: Slice { name, query, files },
        cursor,
    };
    match policy {
        SplitPolicy::Draining => slice(
            d.to_string(),
            format!("defname: {d}"),
            Vec::new(),
            cursor.clone(),
        ),
        SplitPolicy::List => {
            let items: Vec<&str> = d.split(',').collect();
            match items.get(index as usize) {
                Some(item) => slice(
                    item.to_string(),
                    item.to_string(),
                    Vec::new(),
                    Cursor::Index(index + 1),
                ),
                None => Next::Exhausted,
            }
        }
        SplitPolicy::Multiparam => {
            let SplitData::Lists(lists) = dataset else {
                return Next::Exhausted;
            };
            match multiparam_combination(lists, index) {
                Some(value) => slice(value.clone(), value, Vec::new(), Cursor::Index(index + 1)),
                None => Next::Exhausted,
            }
        }
        SplitPolicy::Nfiles { n } => {
            let chosen: Vec<&FileFact> = files
                .iter()
                .skip((index * n) as usize)
                .take(*n as usize)
                .collect();
            if chosen.is_empty() {
                return Next::Exhausted;
            }
            slice(
                format!("{d}_slice{index}_files{n}"),
                format!("defname: {d} with limit {n} offset {}", index * n),
                names(&chosen),
                Cursor::Index(index + 1),
            )
        }
        SplitPolicy::Mod { n } => {
            if index >= *n {
                return Next::Exhausted;
            }
            let chosen: Vec<&FileFact> = files
                .iter()
                .skip(index as usize)
                .step_by(*n as usize)
                .collect();
            slice(
                format!("{d}_slice{index}_of_{n}"),
                format!("defname: {d} with stride {n} offset {index}"),
                names(&chosen),
                Cursor::Index(index + 1),
            )
        }
        SplitPolicy::Limitn { n } => {
            let chosen: Vec<&FileFact> = files.iter().take(*n as usize).collect();
            if chosen.is_empty() {
                return Next::Exhausted;
            }
            // POMS names it with a fresh uuid each time; a stable name keeps plans deterministic.
            slice(
                format!("{d}_limit{n}"),
                format!("defname: {d} with limit {n}"),
                names(&chosen),
                cursor.clone(),
            )
        }
        SplitPolicy::Byrun { low, high } => {
            let run = match cursor {
                Cursor::Run(r) => *r,
                _ => *low,
            };
            if run >= *high {
                return Next::Exhausted;
            }
            let chosen: Vec<&FileFact> = files
                .iter()
                .filter(|f| f.run.is_some_and(|(r, _)| r == run))
                .collect();
            slice(
                format!("{d}_run_{run}"),
                format!("defname: {d} and run_number {run}"),
                names(&chosen),
                Cursor::Run(run + 1),
            )
        }
        SplitPolicy::Byexistingruns => {
            let seen = delivered.cloned().unwrap_or_default();
            let Some(first) = files.iter().find(|f| !seen.contains(&f.name)) else {
                return Next::Exhausted;
            };
            let Some((run, subrun)) = first.run else {
                return Next::Exhausted;
            };
            let chosen: Vec<&FileFact> = files
                .iter()
                .filter(|f| !seen.contains(&f.name) && f.run == Some((run, subrun)))
                .collect();
            let tag = format!("{run}.{subrun:04}");
            let (minus, cursor) = deliver(&seen, &chosen, ctx.delivered_snapshot);
            slice(
                format!("{d}_slice_{}_run_{tag}", seen.len()),
                // `minus` binds looser than `and`: what is left out is grouped first.
                if minus.is_empty() {
                    format!("defname: {d} and run_number {tag}")
                } else {
                    format!("(defname: {d}{minus}) and run_number {tag}")
                },
                names(&chosen),
                cursor,
            )
        }
        SplitPolicy::Drainingn { n } | SplitPolicy::Stagedfiles { n } => {
            let seen = delivered.cloned().unwrap_or_default();
            let chosen: Vec<&FileFact> = files
                .iter()
                .filter(|f| !seen.contains(&f.name))
                .take(*n as usize)
                .collect();
            if chosen.is_empty() {
                return Next::Exhausted;
            }
            let base = if matches!(policy, SplitPolicy::Stagedfiles { .. }) {
                format!("project_name {d} and consumed_status 'consumed'")
            } else {
                format!("defname: {d}")
            };
            let (minus, cursor) = deliver(&seen, &chosen, ctx.delivered_snapshot);
            slice(
                format!("{d}_slice_{}_stage_{n}", seen.len()),
                format!("{base}{minus} with limit {n}"),
                names(&chosen),
                cursor,
            )
        }
        SplitPolicy::New(w) => new_window(d, w, cursor, files, ctx),
    }
}

/// Snapshot bookkeeping of the cumulative-delivery policies: the clause of the query that
/// leaves out the files delivered so far (`minus snapshot_id S`, S the cumulative snapshot the
/// ledger recorded; the files by name where none was recorded) and the cursor after
/// delivering `chosen`.
fn deliver(
    seen: &BTreeSet<String>,
    chosen: &[&FileFact],
    snapshot: Option<i64>,
) -> (String, Cursor) {
    let minus = match snapshot {
        _ if seen.is_empty() => String::new(),
        Some(id) => format!(" minus snapshot_id {id}"),
        None => {
            let names: Vec<String> = seen
                .iter()
                .map(|n| format!("file_name {}", crate::plan::queries::lit(n)))
                .collect();
            format!(" minus ({})", names.join(" or "))
        }
    };
    let mut next = seen.clone();
    next.extend(chosen.iter().map(|f| f.name.clone()));
    (minus, Cursor::Delivered(next))
}

/// The `index`-th combination, the first list varying fastest, values joined with `_`.
pub fn multiparam_combination(lists: &[Vec<String>], mut index: u64) -> Option<String> {
    let total = lists
        .iter()
        .try_fold(1u64, |acc, l| acc.checked_mul(l.len() as u64))?;
    if index >= total || lists.is_empty() {
        return None;
    }
    let mut parts = Vec::with_capacity(lists.len());
    for list in lists {
        let len = list.len() as u64;
        parts.push(list[(index % len) as usize].as_str());
        index /= len;
    }
    Some(parts.join("_"))
}

/// POMS's `new` windows. The window length is truncated to a multiple of `round` (at least
/// one round) and the first start is rounded down to a multiple of it, in UTC or, with
/// `localtime=1`, in the controller's time zone (so `round=1d` windows start at local
/// midnight); the query then writes its times with that zone's offset.
fn new_window(
    d: &str,
    w: &NewWindows,
    cursor: &Cursor,
    files: &[FileFact],
    ctx: &SplitContext,
) -> Next {
    let round = (w.round_seconds as i64).max(1);
    let offset = if w.localtime {
        i64::from(ctx.local_offset)
    } else {
        0
    };
    let floor = |t: i64| (t + offset).div_euclid(round) * round - offset;
    let window = ((w.window_seconds as i64) / round * round).max(round);
    let last = w.lasttime.unwrap_or(ctx.now);
    let bound = floor(last - w.fts_seconds as i64 - window);
    let start = match cursor {
        Cursor::Time(t) if *t > bound => return Next::Exhausted,
        Cursor::Time(t) => *t,
        _ => w.firsttime.unwrap_or(bound),
    };
    let end = start + window;
    let chosen: Vec<String> = files
        .iter()
        .filter(|f| f.end_time.is_some_and(|t| t > start && t <= end))
        .map(|f| f.name.clone())
        .collect();
    let zone = chrono::FixedOffset::east_opt(offset as i32)
        .unwrap_or_else(|| chrono::Offset::fix(&chrono::Utc));
    let iso = |t: i64| {
        chrono::DateTime::from_timestamp(t, 0)
            .map(|dt| {
                if w.localtime {
                    dt.with_timezone(&zone)
                        .format("%Y-%m-%dT%H:%M:%S%:z")
                        .to_string()
                } else {
                    dt.format("%Y-%m-%dT%H:%M:%S").to_string()
                }
            })
            .unwrap_or_else(|| t.to_string())
    };
    Next::Slice {
        slice: Slice {
            name: format!("{d}_time_{start}__{end}"),
            query: format!(
                "defname: {d} and end_time > '{}' and end_time <= '{}'",
                iso(start),
                iso(end)
            ),
            files: chosen,
        },
        cursor: Cursor::Time(end),
    }
}

#[cfg(test)]
mod tests;
