//! A stage's own split: its cursor, the catalog's facts about its files, and the next slice.

use super::*;
use cascade_crd::stage::SplitData;

impl<'a> Planner<'a> {
    /// The current cursor of the stage's real or test split: the one after its latest slice.
    pub(super) fn cursor(&self, stage: &Stage, test: bool) -> Cursor {
        // An operator's reset starts the split again after the submissions made so far.
        let reset = self
            .input
            .observed
            .split_resets
            .get(&stage.key)
            .copied()
            .unwrap_or(0);
        self.subs(&stage.key)
            .iter()
            .rev()
            .filter(|s| s.seq > reset && s.test == test && !s.origin.is_recovery())
            .find_map(|s| s.cursor_after.as_deref().cloned())
            .unwrap_or_default()
    }

    /// What the split needs besides the cursor: the clock, the snapshot the ledger recorded
    /// for a cursor of delivered files, the time zone.
    pub(super) fn split_context(&self, stage: &Stage, cursor: &Cursor) -> SplitContext {
        let delivered_snapshot = match cursor {
            Cursor::Delivered(_) => self
                .subs(&stage.key)
                .iter()
                .rev()
                .find(|s| s.cursor_after.as_deref() == Some(cursor))
                .and_then(|s| s.cursor_snapshot),
            _ => None,
        };
        SplitContext {
            now: self.input.now,
            delivered_snapshot,
            local_offset: self.input.local_offset,
        }
    }

    /// The catalog's facts about the files a stage splits, asked once per plan (the catalog
    /// view is one snapshot; the split is walked several times: next slice, exhaustion,
    /// progress). `None` when the catalog cannot answer (the stage is then `Degraded`).
    pub(super) fn facts(&self, stage: &Stage, policy: &SplitPolicy) -> Option<Rc<Vec<FileFact>>> {
        if let Some(f) = self.facts.borrow().get(&stage.key) {
            return Some(Rc::clone(f));
        }
        let dataset = stage.dataset_text()?;
        // `stagedfiles` names a project: its slices are the files that project consumed.
        let query = match policy {
            SplitPolicy::Stagedfiles { .. } => format!(
                "project_name {} and consumed_status 'consumed'",
                queries::lit(dataset)
            ),
            _ => dataset.to_string(),
        };
        let facts = match self.input.catalog.files(&query) {
            Ok(f) => Rc::new(f),
            Err(e) => {
                self.degrade(&stage.key, catalog_unanswered(&e));
                return None;
            }
        };
        self.facts
            .borrow_mut()
            .insert(stage.key.clone(), Rc::clone(&facts));
        Some(facts)
    }

    /// The launch of the next slice from `cursor` that has files, or `None` when the split is
    /// exhausted (or the catalog cannot say). Without a split there is one slice, the dataset,
    /// which only an operator may launch again.
    pub(super) fn slice(
        &self,
        stage: &Stage,
        origin: Origin,
        test: bool,
        cursor: &Cursor,
    ) -> Option<Candidate> {
        let policy = if test {
            stage.test_split.as_ref().or(stage.split.as_ref())
        } else {
            stage.split.as_ref()
        };
        match (policy, &stage.dataset) {
            (Some(policy), Some(data)) => {
                self.split_slice(stage, policy, data, origin, test, cursor)
            }
            (None, data) => {
                if cursor != &Cursor::Start && !matches!(origin, Origin::Request { .. }) {
                    return None;
                }
                let mut c = Candidate::new(origin, test);
                c.dataset = data.as_ref().and_then(|d| d.as_text()).map(String::from);
                c.input = c
                    .dataset
                    .as_ref()
                    .filter(|_| stage.stage_type != StageType::Generator)
                    .map(|d| format!("defname: {d}"));
                c.cursor_after = Some(Cursor::Index(1));
                Some(c)
            }
            (Some(_), None) => None,
        }
    }

    /// The next slice of `policy` with files. Slices known to be empty are passed over: a
    /// launch over no files would run jobs that process nothing.
    fn split_slice(
        &self,
        stage: &Stage,
        policy: &SplitPolicy,
        data: &SplitData,
        origin: Origin,
        test: bool,
        cursor: &Cursor,
    ) -> Option<Candidate> {
        /// Empty slices passed over in one plan before giving up until the next.
        const MAX_EMPTY_SLICES: usize = 10_000;
        let generator = stage.stage_type == StageType::Generator;
        // Policies that slice the catalog's files know each slice's files.
        let from_facts = !matches!(
            policy,
            SplitPolicy::Draining | SplitPolicy::List | SplitPolicy::Multiparam
        );
        let facts = if from_facts {
            self.facts(stage, policy)?
        } else {
            Rc::default()
        };
        let mut cursor = cursor.clone();
        let mut empty = 0;
        let (slice, after) = loop {
            let ctx = self.split_context(stage, &cursor);
            let Next::Slice {
                slice,
                cursor: after,
            } = next(policy, data, &cursor, &facts, &ctx)
            else {
                return None;
            };
            if !(from_facts && !generator && slice.files.is_empty()) {
                break (slice, after);
            }
            empty += 1;
            if empty >= MAX_EMPTY_SLICES || after == cursor {
                return None;
            }
            cursor = after;
        };
        let mut c = Candidate::new(origin, test);
        c.input = match policy {
            _ if generator => None,
            SplitPolicy::Multiparam => None,
            SplitPolicy::List => Some(format!("defname: {}", slice.name)),
            _ => Some(slice.query),
        };
        if from_facts && !generator {
            c.define = Define::Snapshot;
        }
        c.dataset = Some(slice.name);
        c.input_files = slice.files;
        c.cursor_after = Some(after);
        Some(c)
    }

    /// Slices the split still has to give (up to a bound, for progress figures).
    pub(super) fn remaining_slices(&self, stage: &Stage) -> u64 {
        const BOUND: u64 = 10_000;
        let mut cursor = self.cursor(stage, false);
        let mut n = 0;
        while n < BOUND {
            match self.slice(
                stage,
                Origin::Split {
                    test: false,
                    index: 0,
                },
                false,
                &cursor,
            ) {
                Some(c) => {
                    let Some(after) = c.cursor_after else { break };
                    if after == cursor {
                        break;
                    }
                    cursor = after;
                    n += 1;
                }
                None => break,
            }
        }
        n
    }
}
