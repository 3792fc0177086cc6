//! What a stage wants launched, from each of its origins (operator requests, its own split
//! or schedule, a join, its upstream stages), and what the gates let through.

use super::*;
use crate::model::Edge;
use compact_str::ToCompactString;

impl<'a> Planner<'a> {
    /// Operator launch requests, oldest first: a manual recovery, a launch over a dataset,
    /// or the next slice of the real or test split (whose cursors move as slices are taken).
    pub(super) fn operator_requests(
        &mut self,
        stage: &Stage,
        cursors: &mut [Cursor; 2],
        work: &mut Work,
    ) {
        let mut requests: Vec<_> = self
            .input
            .observed
            .requests
            .iter()
            .filter(|r| r.stage == stage.key)
            .collect();
        requests.sort_by_key(|r| r.id);
        for r in requests {
            let origin = Origin::Request { id: r.id };
            if self.has_origin(&stage.key, &origin) {
                continue;
            }
            if let Some((original, kind)) = &r.recovery {
                match self.manual_recovery(stage, origin, r.test, original, *kind) {
                    Some(mut c) => {
                        c.launcher = Some(r.who.clone());
                        work.candidates.push(c);
                    }
                    None => work.request_notes.push(format!(
                        "request {} by {}: no recovery needed for {original} ({}), launch skipped",
                        r.id,
                        r.who,
                        kind.as_str()
                    )),
                }
                continue;
            }
            let candidate = match &r.dataset {
                Some(d) => {
                    let mut c = Candidate::new(origin, r.test);
                    c.dataset = Some(d.clone());
                    // A generator's dataset is a parameter, not files.
                    c.input =
                        (stage.stage_type != StageType::Generator).then(|| format!("defname: {d}"));
                    Some(c)
                }
                None => self.slice(stage, origin, r.test, &cursors[usize::from(r.test)]),
            };
            match candidate {
                Some(mut c) => {
                    if let Some(cur) = &c.cursor_after {
                        cursors[usize::from(r.test)] = cur.clone();
                    }
                    c.launcher = Some(r.who.clone());
                    work.candidates.push(c);
                }
                None => work.request_notes.push(format!(
                    "request {} by {} has nothing to launch: the split is exhausted",
                    r.id, r.who
                )),
            }
        }
    }

    /// A stage without upstream stages launches its first slice, then (with a
    /// self-dependency) the next one each time the latest is located; with a schedule, a
    /// slice per fire time.
    pub(super) fn own_launches(
        &mut self,
        stage: &Stage,
        subs: &[&'a Submission],
        chains: &Chains,
        cursor: &Cursor,
        work: &mut Work,
    ) {
        if let Some(expr) = &stage.schedule {
            self.scheduled_launch(stage, expr, subs, cursor, work);
            return;
        }
        let index = subs
            .iter()
            .filter_map(|s| match s.origin {
                Origin::Split { test: false, index } => Some(index + 1),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        let origin = Origin::Split { test: false, index };
        let wanted = index == 0 || (stage.self_dependent() && chains.last_slice == Some("located"));
        if wanted {
            match self.slice(stage, origin.clone(), false, cursor) {
                Some(c) => work.candidates.push(c),
                None => work.exhausted = true,
            }
        }
        if stage.self_dependent() && index > 0 && self.slice(stage, origin, false, cursor).is_none()
        {
            work.exhausted = true;
        }
    }

    /// A scheduled stage launches once per fire time (missed fires collapse), anchored at
    /// when it was first seen.
    pub(super) fn scheduled_launch(
        &mut self,
        stage: &Stage,
        expr: &str,
        subs: &[&'a Submission],
        cursor: &Cursor,
        work: &mut Work,
    ) {
        let anchor = match self.input.observed.first_seen.get(&stage.key) {
            Some(t) => *t,
            None => {
                self.actions.push(Action::FirstSeen {
                    stage: stage.key.clone(),
                    at: self.input.now,
                });
                self.input.now
            }
        };
        let last = subs
            .iter()
            .filter_map(|s| match s.origin {
                Origin::Schedule { fire } => Some(fire),
                _ => None,
            })
            .max()
            .unwrap_or(anchor)
            .max(anchor);
        let (due, upcoming) = schedule_fires(expr, last, self.input.now);
        let exhausted_now = self
            .slice(stage, Origin::Schedule { fire: 0 }, false, cursor)
            .is_none();
        if exhausted_now && stage.clear_schedule_on_exhaustion {
            work.exhausted = true;
            return;
        }
        if let Some(fire) = due
            && let Some(c) = self.slice(stage, Origin::Schedule { fire }, false, cursor)
        {
            work.candidates.push(c);
        }
        work.next_fire = upcoming;
        if let Some(t) = upcoming {
            self.wake(t);
        }
        work.more_possible = true;
        work.waiting.push(match upcoming {
            Some(t) => format!(
                "next launch on its schedule `{expr}` at {}",
                crate::plan::format_time(t)
            ),
            None => format!("its schedule `{expr}` has no future fire time"),
        });
    }

    /// A join launches once, over all its upstream stages' outputs, when every one of them
    /// reached its completion percentage.
    pub(super) fn join_launch(&mut self, stage: &Stage, work: &mut Work) {
        let mut parts = Vec::new();
        let mut all = true;
        for e in stage.upstream_edges() {
            let o = &self.outcomes[&e.upstream];
            if !(o.settled && o.state.succeeded()) {
                all = false;
                if !o.settled {
                    work.more_possible = true;
                    work.waiting_on_live |= !o.blocked;
                }
            }
            parts.push(format!("`{}` {}", e.upstream.name, outcome_words(o)));
        }
        if !all {
            work.waiting.push(format!(
                "waiting for all of stages {} to complete",
                parts.join(", ")
            ));
        } else if !self.has_origin(&stage.key, &Origin::Join) {
            let queries_by_edge: Vec<String> = stage
                .upstream_edges()
                .map(|e| {
                    let outputs = queries::stage_outputs(
                        &e.upstream.to_string(),
                        &e.file_pattern,
                        self.version(&e.upstream),
                    );
                    format!("({outputs})")
                })
                .collect();
            let mut c = Candidate::new(Origin::Join, false);
            c.dataset = Some(format!("{}_join", stage.key.name));
            c.define = Define::Query;
            c.input = Some(queries_by_edge.join(" or "));
            work.candidates.push(c);
        }
    }

    /// Dependents of each upstream stage: one launch per located upstream chain, over its
    /// outputs (reference §4.4, §4.5), or one once the upstream stage completed.
    pub(super) fn dependent_launches(&mut self, stage: &Stage, work: &mut Work) {
        for e in stage.upstream_edges() {
            match e.trigger {
                DependencyTrigger::Submission => self.per_submission_launches(stage, e, work),
                DependencyTrigger::StageComplete => self.stage_complete_launch(stage, e, work),
            }
        }
    }

    fn per_submission_launches(&mut self, stage: &Stage, e: &Edge, work: &mut Work) {
        let up = self.stages[&e.upstream];
        let o = &self.outcomes[&e.upstream];
        for chain in &o.located_chains {
            let original = chain.id.as_str();
            let origin = Origin::Upstream {
                submission: original.into(),
            };
            if self.has_origin(&stage.key, &origin) {
                continue;
            }
            let members = self.members(chain);
            let upstream_input = chain.input.as_deref().unwrap_or("defname: none");
            let mut c = Candidate::new(origin, chain.test);
            c.dataset = Some(format!("{}_from_{original}", stage.key.name));
            c.define = Define::Query;
            c.input = Some(match up.stage_type {
                // An approval has no project of its own: its dependents run over its dataset
                // as it is, without a pattern (§4.4).
                StageType::Approval => upstream_input.to_string(),
                StageType::Datatransfer => format!(
                    "({upstream_input}) and {}",
                    queries::pattern_bits(&e.file_pattern)
                ),
                _ => queries::outputs_of(&members, &e.file_pattern, self.version(&e.upstream)),
            });
            work.candidates.push(c);
        }
        if o.settled {
            return;
        }
        work.more_possible = true;
        work.waiting_on_live |= !o.blocked;
        work.waiting.push(if o.chains_total == 0 {
            format!(
                "waiting for stage `{}`: not started; each of its located submissions launches this stage over its `{}` outputs",
                e.upstream.name, e.file_pattern
            )
        } else {
            format!(
                "waiting for stage `{}`: {} of {} submissions located, needs {}%",
                e.upstream.name,
                o.located_chains.len(),
                o.chains_total,
                up.completion.percent
            )
        });
    }

    fn stage_complete_launch(&mut self, stage: &Stage, e: &Edge, work: &mut Work) {
        let up = self.stages[&e.upstream];
        let o = &self.outcomes[&e.upstream];
        let origin = Origin::StageComplete {
            upstream: e.upstream.to_compact_string(),
        };
        if o.settled && o.state.succeeded() {
            if !self.has_origin(&stage.key, &origin) {
                let mut c = Candidate::new(origin, false);
                c.dataset = Some(format!("{}_after_{}", stage.key.name, e.upstream.name));
                c.define = Define::Query;
                c.input = Some(queries::stage_outputs(
                    &e.upstream.to_string(),
                    &e.file_pattern,
                    self.version(&e.upstream),
                ));
                work.candidates.push(c);
            }
        } else if !o.settled {
            work.more_possible = true;
            work.waiting_on_live |= !o.blocked;
            work.waiting.push(format!(
                "waiting for stage `{}` to reach {}%: {:.0}% located ({} of {} submissions)",
                e.upstream.name,
                up.completion.percent,
                o.located_percent,
                o.located_chains.len(),
                o.chains_total
            ));
        }
    }

    /// A stage with upstream stages and a self-dependency: each of its located submissions
    /// launches the next slice of its own split, as POMS does (reference §4.5).
    pub(super) fn next_own_slice(
        &mut self,
        stage: &Stage,
        subs: &[&'a Submission],
        chains: &Chains,
        cursor: &Cursor,
        work: &mut Work,
    ) {
        if !stage.self_dependent() || stage.split.is_none() {
            return;
        }
        let slices = subs
            .iter()
            .filter(|s| matches!(s.origin, Origin::Split { test: false, .. }))
            .count() as u32;
        if slices < chains.located {
            let origin = Origin::Split {
                test: false,
                index: u64::from(slices),
            };
            match self.slice(stage, origin, false, cursor) {
                Some(c) => work.candidates.push(c),
                None => work.exhausted = true,
            }
        }
    }

    /// Inactive campaigns and paused stages or campaigns launch nothing: what they would
    /// launch is queued. Otherwise every candidate with files is composed and launched.
    pub(super) fn gate(
        &mut self,
        stage: &Stage,
        subs: &[&'a Submission],
        candidates: Vec<Candidate>,
    ) -> Gate {
        let observed = self.input.observed;
        let campaign = self.input.graph.campaign_of(stage);
        let mut gate = Gate {
            paused_by: if stage.paused || observed.paused.contains(&stage.key) {
                Some(format!("stage `{}`", stage.key.name))
            } else if campaign.paused || observed.paused.contains(&stage.campaign) {
                Some(format!("campaign `{}`", stage.campaign.name))
            } else {
                None
            },
            inactive: campaign.state == CampaignState::Inactive,
            paused_by_definitions: stage.paused || campaign.paused,
            ..Gate::default()
        };
        let operator_paused =
            observed.paused.contains(&stage.key) || observed.paused.contains(&stage.campaign);
        // An imperative pause the definitions do not say is drift, shown until the
        // definitions agree or the pause is withdrawn.
        gate.drift = (operator_paused && !stage.paused && !campaign.paused).then(|| {
            "paused by an operator while the definitions say it runs: set `paused: true` in the definitions or `cascade resume` it".to_string()
        });
        // Split resets: the definitions ask for more than were made (make one, launch nothing
        // from the old cursor meanwhile), or an operator made more than they say (drift).
        let (made, by) = observed
            .split_reset_counts
            .get(&stage.key)
            .cloned()
            .unwrap_or((0, String::new()));
        if stage.split_resets > made {
            self.actions.push(Action::ResetSplit {
                stage: stage.key.clone(),
                to: made + 1,
            });
            gate.reset_pending = true;
            return gate;
        }
        if made > stage.split_resets {
            let reset = format!(
                "its split was reset by an operator ({by}): {made} reset{} made, the definitions say `splitResets: {}`; set `splitResets: {made}` to agree",
                if made == 1 { "" } else { "s" },
                stage.split_resets
            );
            gate.drift = Some(match gate.drift.take() {
                Some(pause) => format!("{pause}; {reset}"),
                None => reset,
            });
        }
        if gate.inactive || gate.paused_by.is_some() {
            gate.queued = candidates
                .iter()
                .map(|c| match c.origin {
                    Origin::Request { .. } if c.test => format!("{} (test)", c.origin.describe()),
                    _ => c.origin.describe(),
                })
                .collect();
            return gate;
        }
        let mut seq = subs.iter().map(|s| s.seq).max().unwrap_or(0);
        for c in candidates {
            match self.input_is_empty(stage, &c) {
                Some(false) => {}
                Some(true) => {
                    gate.empty_inputs.push(format!(
                        "nothing launched for {}: its input `{}` selects no files",
                        c.origin.describe(),
                        c.input.as_deref().unwrap_or_default()
                    ));
                    continue;
                }
                None => continue,
            }
            seq += 1;
            match self.launch(stage, seq, c) {
                Ok(action) => {
                    gate.launches += 1;
                    self.actions.push(Action::Launch(Box::new(action)));
                }
                Err(e) => {
                    gate.compose_error = Some(e);
                    break;
                }
            }
        }
        gate
    }

    /// Whether a launch's input is known to hold no files: from the split's facts when it
    /// has them, else by asking the catalog (a view that cannot tell is not taken to mean
    /// empty). Generators and value splits have no input files (`Some(false)`); `None` when
    /// the catalog cannot answer.
    pub(super) fn input_is_empty(&self, stage: &Stage, c: &Candidate) -> Option<bool> {
        if c.define == Define::Snapshot {
            return Some(c.input_files.is_empty());
        }
        // An approval runs nothing: a person signs off whatever its dataset holds.
        if stage.stage_type == StageType::Approval {
            return Some(false);
        }
        match &c.input {
            None => Some(false),
            // A recovery round was counted when it was decided.
            Some(_) if c.recovery.is_some() => Some(false),
            Some(q) => match self.input.catalog.is_empty(q) {
                Ok(empty) => Some(empty.unwrap_or(false)),
                Err(e) => {
                    self.degrade(&stage.key, catalog_unanswered(&e));
                    None
                }
            },
        }
    }

    pub(super) fn launch(
        &self,
        stage: &Stage,
        seq: u64,
        c: Candidate,
    ) -> Result<LaunchAction, String> {
        let id = format!("{}.{}.{seq}", stage.key.namespace, stage.key.name);
        let experimenter = c.launcher.as_deref().unwrap_or(self.input.experimenter);
        let request = LaunchRequest {
            stage,
            dataset: c.dataset.as_deref(),
            submission_id: &id,
            parent_submission_id: c.parent.as_deref(),
            test: c.test,
            explicit_overrides: &c.overrides,
            experimenter,
            settings: self.input.settings,
        };
        let launch = compose(self.input.graph, &request).map_err(|e| e.to_string())?;
        let recovery = c.recovery.map(|mut r| {
            r.submission = Some(id.clone());
            r
        });
        Ok(LaunchAction {
            id,
            stage: stage.key.clone(),
            seq,
            origin: c.origin,
            test: c.test || self.input.graph.campaign_of(stage).test,
            dataset: c.dataset,
            input: c.input,
            input_files: c.input_files,
            define: c.define,
            cursor_after: c.cursor_after,
            approval: stage.stage_type == StageType::Approval,
            recovery,
            batch_system: self.input.graph.job_type_of(stage).batch_system,
            launch,
        })
    }
}
