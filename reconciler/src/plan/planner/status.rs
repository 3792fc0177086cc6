//! A stage's status from what its planning steps found: its state with the sentence that
//! says why, whether it can still move by itself, its progress, and what its dependents read.

use super::*;

/// The stage's submission counts once this plan's launches are made.
struct Totals {
    chains: u32,
    located_percent: f64,
    jobs: JobCounts,
}

/// Whether the stage is settled (nothing in flight, queued or still possible: it will not
/// change by itself) and, if not, whether it is blocked: nothing moves it without a person or
/// the clock (paused with launches queued, waiting for a schedule or only on stages like
/// that, awaiting approval). A degraded stage waits for the catalog and for a person to read
/// what it said.
fn motion(state: StageState, chains: &Chains, work: &Work, gate: &Gate) -> (bool, bool) {
    let idle = chains.in_flight == 0 && gate.launches == 0;
    let settled = state != StageState::Degraded
        && (idle && gate.queued.is_empty() && !work.more_possible
            || state == StageState::Failed && idle);
    let live = chains.in_flight as usize - chains.awaiting.len();
    let blocked = state == StageState::Degraded
        || !settled
            && live == 0
            && gate.launches == 0
            && (!chains.awaiting.is_empty()
                || !gate.queued.is_empty()
                || (work.more_possible && !work.waiting_on_live));
    (settled, blocked)
}

impl<'a> Planner<'a> {
    pub(super) fn conclude(
        &mut self,
        stage: &'a Stage,
        subs: &[&'a Submission],
        chains: Chains<'a>,
        work: Work,
        gate: Gate,
    ) -> StageStatus {
        let mut jobs = JobCounts::default();
        for s in subs {
            jobs.add(&s.jobs);
        }
        let total = chains.located + chains.failed + chains.in_flight + gate.launches;
        let totals = Totals {
            chains: total,
            located_percent: if total == 0 {
                0.0
            } else {
                f64::from(chains.located) * 100.0 / f64::from(total)
            },
            jobs,
        };
        let (state, reason) = self.verdict(stage, subs, &chains, &work, &gate, &totals);
        let mut reason = match &gate.drift {
            Some(d) => format!("{reason} (drift: {d})"),
            None => reason,
        };
        for note in work.request_notes.iter().chain(&gate.empty_inputs) {
            reason.push_str("; ");
            reason.push_str(note);
        }
        let (settled, mut blocked) = motion(state, &chains, &work, &gate);
        // A batch system that does not answer comes back by itself: not blocked, waiting.
        if self.batch_unobserved.contains(&stage.key)
            && !self.catalog_failed.borrow().contains(&stage.key)
        {
            blocked = false;
        }
        let expected = self.expected_chains(stage, totals.chains, work.exhausted);
        let split_cursor = self.cursor(stage, false);
        // Only a stage without upstream stages walks its own split.
        let split_exhausted = stage.split.is_some()
            && stage.upstream_edges().next().is_none()
            && (work.exhausted
                || self
                    .slice(
                        stage,
                        Origin::Split {
                            test: false,
                            index: 0,
                        },
                        false,
                        &split_cursor,
                    )
                    .is_none());
        let progress = if settled && state.succeeded() {
            1.0
        } else {
            (f64::from(chains.located) / expected.max(1.0)).min(1.0)
        };
        self.outcomes.insert(
            &stage.key,
            Outcome {
                state,
                settled,
                blocked,
                located_percent: totals.located_percent,
                chains_total: totals.chains,
                located_chains: chains.located_chains,
                expected,
            },
        );
        StageStatus {
            stage: stage.key.clone(),
            campaign: stage.campaign.clone(),
            state,
            reason,
            settled,
            blocked,
            located_percent: totals.located_percent,
            progress,
            submissions: subs.len() as u32,
            chains_located: chains.located,
            chains_failed: chains.failed,
            chains_in_flight: chains.in_flight + gate.launches,
            jobs: totals.jobs,
            launches: gate.launches,
            queued: gate.queued,
            next_fire: work.next_fire,
            drift: gate.drift,
            paused_by_definitions: gate.paused_by_definitions,
            split: stage.split.as_deref().map(SplitPolicy::to_fields),
            split_position: stage.split.as_ref().map(|_| split_cursor.to_string()),
            exhausted: split_exhausted,
            shape: super::StageShape::of(stage),
        }
    }

    /// The stage's state and the sentence that says why, first reason first: the catalog,
    /// the launch, the gates, people, work in flight, upstream stages, and then the end.
    fn verdict(
        &self,
        stage: &Stage,
        subs: &[&'a Submission],
        chains: &Chains,
        work: &Work,
        gate: &Gate,
        totals: &Totals,
    ) -> (StageState, String) {
        if let Some(e) = self.degraded.borrow().get(&stage.key) {
            return (StageState::Degraded, e.clone());
        }
        if gate.reset_pending {
            return (
                StageState::Waiting,
                format!(
                    "its split starts again from the first slice, as `splitResets: {}` in the definitions asks",
                    stage.split_resets
                ),
            );
        }
        if let Some(e) = &gate.compose_error {
            return (
                StageState::Failed,
                format!("cannot compose its launch: {e}"),
            );
        }
        let queued = &gate.queued;
        if gate.inactive && !queued.is_empty() {
            return (
                StageState::Waiting,
                format!("campaign `{}` is inactive", stage.campaign.name),
            );
        }
        if let Some(by) = gate.paused_by.as_ref().filter(|_| !queued.is_empty()) {
            return (
                StageState::Waiting,
                format!(
                    "{by} is paused: {} launch{} queued ({}), released in order on resume",
                    queued.len(),
                    if queued.len() == 1 { "" } else { "es" },
                    queued.join(", ")
                ),
            );
        }
        let awaiting = &chains.awaiting;
        if gate.launches == 0 && !awaiting.is_empty() && chains.in_flight as usize == awaiting.len()
        {
            return (
                StageState::Waiting,
                format!(
                    "awaiting approval: `cascade approve {}`",
                    awaiting.join("`, `cascade approve ")
                ),
            );
        }
        if gate.launches > 0 || chains.in_flight > 0 {
            return (
                StageState::Running,
                self.running_reason(subs, chains, gate, totals),
            );
        }
        if !work.waiting.is_empty() && (work.more_possible || totals.chains == 0) {
            return (StageState::Waiting, work.waiting.join("; and "));
        }
        if totals.chains == 0 {
            // Nothing ran, so nothing succeeded: the stage waits for files or for a person.
            let dataset = stage.dataset_text().unwrap_or("its dataset");
            let why = if !gate.empty_inputs.is_empty() {
                "nothing to launch".to_string()
            } else if work.exhausted {
                format!("its split has nothing to launch: `{dataset}` holds no files")
            } else if stage.upstream_edges().next().is_none() {
                "nothing to launch".to_string()
            } else {
                "blocked: its upstream stages ended without located submissions".to_string()
            };
            return (StageState::Waiting, why);
        }
        self.end(stage, chains, work, totals)
    }

    fn running_reason(
        &self,
        subs: &[&'a Submission],
        chains: &Chains,
        gate: &Gate,
        totals: &Totals,
    ) -> String {
        let jobs = &totals.jobs;
        let mut text = format!(
            "{} of {} submissions located, {} in flight (jobs: {} idle, {} running, {} held, {} done)",
            chains.located,
            totals.chains,
            chains.in_flight + gate.launches,
            jobs.idle,
            jobs.running,
            jobs.held,
            jobs.finished()
        );
        if gate.launches > 0 {
            text.push_str(&format!("; launching {} now", gate.launches));
        }
        if let Some(note) = self.jobless_launches(subs) {
            text.push_str("; ");
            text.push_str(&note);
        }
        text
    }

    /// Nothing in flight and nothing to wait for: completed (or its open-ended split
    /// exhausted) at the percentage, failed below it.
    fn end(
        &self,
        stage: &Stage,
        chains: &Chains,
        work: &Work,
        totals: &Totals,
    ) -> (StageState, String) {
        let (located, total, percent) = (chains.located, totals.chains, totals.located_percent);
        if percent + 1e-9 < stage.completion.percent {
            return (
                StageState::Failed,
                format!(
                    "failed: {} of {total} submissions failed; {percent:.0}% located, needs {}%; {}",
                    chains.failed,
                    stage.completion.percent,
                    way_forward(&stage.key, &chains.failed_chains)
                ),
            );
        }
        let open_ended = stage
            .split
            .as_ref()
            .is_some_and(|p| !p.can_exhaust() || matches!(**p, SplitPolicy::Draining));
        let (state, word) = if work.exhausted && open_ended {
            (StageState::Exhausted, "split exhausted")
        } else {
            (StageState::Completed, "completed")
        };
        (
            state,
            format!(
                "{word}: {percent:.0}% located ({located} of {total} submissions), needs {}%",
                stage.completion.percent
            ),
        )
    }

    /// How many chains the stage should have in the end, as far as can be told now.
    pub(super) fn expected_chains(&self, stage: &Stage, total: u32, exhausted: bool) -> f64 {
        let upstream: Vec<_> = stage.upstream_edges().collect();
        let estimate = if upstream.is_empty() {
            if stage.self_dependent() && !exhausted {
                f64::from(total) + self.remaining_slices(stage) as f64
            } else {
                1.0
            }
        } else if stage.join {
            1.0
        } else {
            upstream
                .iter()
                .map(|e| match e.trigger {
                    DependencyTrigger::StageComplete => 1.0,
                    DependencyTrigger::Submission => {
                        let o = &self.outcomes[&e.upstream];
                        if o.settled {
                            o.located_chains.len() as f64
                        } else {
                            o.expected
                        }
                    }
                })
                .sum()
        };
        estimate.max(f64::from(total))
    }
}
