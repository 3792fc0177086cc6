//! Submission chains: where each original submission and its recovery rounds stand, which
//! failed chains an operator's relaunch took the place of, and the stage's tally of them.

use super::*;

impl<'a> Planner<'a> {
    /// Tallies the stage's chains; recovery rounds due are added to the work's candidates.
    pub(super) fn tally_chains(
        &mut self,
        stage: &Stage,
        subs: &[&'a Submission],
        work: &mut Work,
    ) -> Chains<'a> {
        let mut t = Chains::default();
        // Chains that ended without success and that an operator relaunched: the relaunch
        // takes their place (a failed slice relaunched can still complete the stage).
        let superseded = self.superseded(stage, subs);
        let mut states: Map<&str, &'static str> = Map::default();
        let mut last_slice: Option<&str> = None;
        for original in subs.iter().filter(|s| !s.origin.is_recovery()) {
            let chain = self.chain(stage, original);
            if matches!(
                original.origin,
                Origin::Split { test: false, .. } | Origin::Schedule { .. }
            ) {
                last_slice = Some(original.id.as_str());
            }
            if matches!(chain, Chain::Failed) && superseded.contains_key(original.id.as_str()) {
                continue;
            }
            let state = match chain {
                Chain::Recover(c) => {
                    work.candidates.push(*c);
                    t.in_flight += 1;
                    "in flight"
                }
                Chain::InFlight => {
                    t.in_flight += 1;
                    if self.status_of_sub(original) == Status::AwaitingApproval {
                        t.awaiting.push(original.id.to_string());
                    }
                    "in flight"
                }
                Chain::Located => {
                    t.located += 1;
                    t.located_chains.push(original);
                    "located"
                }
                Chain::Failed => {
                    t.failed += 1;
                    t.failed_chains
                        .push((original.id.as_str(), original.dataset.as_deref()));
                    "failed"
                }
            };
            // Only the chains a later slice can follow are looked up again.
            if matches!(
                original.origin,
                Origin::Split { .. } | Origin::Schedule { .. } | Origin::Request { .. }
            ) {
                states.insert(original.id.as_str(), state);
            }
        }
        t.last_slice = last_slice.map(|mut id| {
            while let Some(next) = superseded.get(id) {
                id = next;
            }
            states.get(id).copied().unwrap_or("in flight")
        });
        t
    }

    pub(super) fn chain(&mut self, stage: &Stage, original: &'a Submission) -> Chain {
        let original_status = self.status_of_sub(original);
        if original_status.is_unsuccessful_end() {
            return Chain::Failed;
        }
        let decided: Vec<&RecoveryRound> = self
            .rounds
            .get(original.id.as_str())
            .cloned()
            .unwrap_or_default();
        let head = decided
            .iter()
            .rev()
            .find_map(|r| r.submission.as_deref())
            .unwrap_or(original.id.as_str());
        let head_status = if head == original.id {
            original_status
        } else {
            self.status_of(head)
        };
        let head_settled = if head == original.id {
            head_status == Status::Located
        } else {
            head_status.is_final()
        };
        if !head_settled {
            return Chain::InFlight;
        }
        let recipe = &self.input.graph.job_type_of(stage).recoveries;
        if recipe.len() <= decided.len() {
            return Chain::Located;
        }
        // Built first: the basis borrows the planner, which the loop then changes.
        let queries_by_round: Vec<(usize, String)> = {
            let basis = self.recovery_basis(stage, original, head);
            recipe
                .iter()
                .enumerate()
                .skip(decided.len())
                .map(|(round, step)| (round, queries::recovery(step.kind, &basis)))
                .collect()
        };
        for (round, query) in queries_by_round {
            let step = &recipe[round];
            let round = round as u32;
            // A round is skipped only when the catalog says it has nothing: a question without
            // an answer decides nothing and is asked again.
            let Some(files) = self.count(&stage.key, &query) else {
                return Chain::InFlight;
            };
            if files == 0 {
                self.actions.push(Action::SkipRecovery {
                    original: original.id.to_string(),
                    round,
                    kind: step.kind,
                    reference: head.to_string(),
                });
                continue;
            }
            let mut c = Candidate::new(
                Origin::Recovery {
                    original: original.id.clone(),
                    round,
                },
                original.test,
            );
            c.dataset = Some(format!("cascade_recover_{}_{}", original.id, round + 1));
            c.input = Some(query);
            c.define = Define::Query;
            c.overrides = step.parameter_overrides.clone();
            c.parent = Some(original.id.to_string());
            c.recovery = Some(RecoveryRound {
                original: original.id.to_string(),
                round,
                kind: step.kind,
                reference: head.to_string(),
                submission: None,
            });
            return Chain::Recover(Box::new(c));
        }
        Chain::Located
    }

    /// An operator's recovery of `original` with `kind`, at its chain's current position, or
    /// `None` when it has nothing to recover.
    pub(super) fn manual_recovery(
        &self,
        stage: &Stage,
        origin: Origin,
        test: bool,
        original: &str,
        kind: RecoveryType,
    ) -> Option<Candidate> {
        let sub = self.by_id().get(original)?;
        let head = self
            .rounds
            .get(original)
            .and_then(|rs| rs.iter().rev().find_map(|r| r.submission.as_deref()))
            .unwrap_or(original);
        let query = queries::recovery(kind, &self.recovery_basis(stage, sub, head));
        if self.count(&stage.key, &query)? == 0 {
            return None;
        }
        let Origin::Request { id } = origin else {
            return None;
        };
        let mut c = Candidate::new(origin, test || sub.test);
        c.dataset = Some(format!("cascade_recover_{original}_request{id}"));
        c.input = Some(query);
        c.define = Define::Query;
        c.parent = Some(original.to_string());
        c.overrides = self
            .input
            .graph
            .job_type_of(stage)
            .recoveries
            .iter()
            .find(|step| step.kind == kind)
            .map(|step| step.parameter_overrides.clone())
            .unwrap_or_default();
        Some(c)
    }

    /// Unsuccessful chains of the stage that a later operator launch took the place of: a
    /// launch over the same dataset, or a manual recovery of that submission. Maps the
    /// original to the submission that replaced it.
    pub(super) fn superseded(
        &self,
        stage: &Stage,
        subs: &[&'a Submission],
    ) -> Map<&'a str, &'a str> {
        let requests: Map<u64, &crate::plan::Request> = self
            .input
            .observed
            .requests
            .iter()
            .filter(|r| r.stage == stage.key)
            .map(|r| (r.id, r))
            .collect();
        let mut out = Map::default();
        for relaunch in subs {
            let Origin::Request { id } = relaunch.origin else {
                continue;
            };
            let recovered = requests
                .get(&id)
                .and_then(|r| r.recovery.as_ref())
                .map(|(original, _)| original.as_str());
            let replaced = subs.iter().find(|old| {
                old.seq < relaunch.seq
                    && !old.origin.is_recovery()
                    && !out.contains_key(old.id.as_str())
                    && self.status_of_sub(old).is_unsuccessful_end()
                    && match recovered {
                        Some(original) => old.id == original,
                        None => old.dataset == relaunch.dataset,
                    }
            });
            if let Some(old) = replaced {
                out.insert(old.id.as_str(), relaunch.id.as_str());
            }
        }
        out
    }

    /// What a recovery round of `original` is computed from, with `head` the submission of the
    /// chain that got located last.
    pub(super) fn recovery_basis<'b>(
        &'b self,
        stage: &'b Stage,
        original: &'b Submission,
        head: &'b str,
    ) -> queries::RecoveryBasis<'b> {
        queries::RecoveryBasis {
            reference: head,
            reference_created: self
                .by_id()
                .get(head)
                .map_or(original.created, |s| s.created),
            input: original.input.as_deref(),
            output_patterns: &self.input.graph.job_type_of(stage).output_file_patterns,
            version: self.version(&stage.key),
            depth: stage.output_ancestor_depth,
        }
    }
}
