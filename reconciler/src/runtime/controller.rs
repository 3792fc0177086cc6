//! The controller: watches the source directory, observes the ledger and the batch system,
//! plans, and executes, until every stage has settled.
//!
//! Each reconcile is level-triggered: it reads the whole observed state and plans from it, so
//! a crash at any point loses nothing. Launch commands run on blocking threads so the loop
//! keeps observing; it wakes on source changes, on a short tick (an upstream submission
//! located launches its dependents within a second), and on schedule fire times.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::Watcher;
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::server::runtime_metrics::RUNTIME;

use super::definitions::{
    Applied, SourceSpec, apply_removals, initial_git, load_dir, on_fetch, removed_stages,
    serve_webhooks, spawn_fetcher,
};
use super::executor::{self, MAX_ATTEMPTS, Reservation};
use crate::batch::local;
use crate::ledger::{LaunchEnd, Ledger, LedgerError, Result};
use crate::plan::{Action, Plan, PlanInput, StageState, StageStatus, plan};

pub struct Options {
    pub source: SourceSpec,
    pub state: PathBuf,
    pub experimenter: String,
    /// Seconds between reconciles when nothing wakes the controller earlier.
    pub tick: Duration,
    /// Print live progress.
    pub progress: bool,
    /// Keep running after every stage settled (a long-lived controller).
    pub watch: bool,
    /// Seconds a launch may go without any job seen before it is `LaunchFailed`.
    pub launch_timeout: i64,
    /// How often the batch systems Cascade observes (Slurm, HTCondor) are polled.
    pub batch_poll: Duration,
    /// Where launches run (`state_dir` is set from `state` when the controller starts).
    pub settings: crate::launch::compose::LaunchSettings,
}

pub struct Summary {
    pub stages: Vec<StageStatus>,
    pub plan: Plan,
}

impl Summary {
    pub fn failed(&self) -> bool {
        self.stages
            .iter()
            .any(|s| matches!(s.state, StageState::Failed | StageState::Degraded))
    }
}

pub async fn run(mut opts: Options) -> Result<Summary> {
    // Registered first, so that Ctrl-C or SIGTERM at any moment of the loop is seen (and not
    // the default action, which would end the process mid-step).
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    // Definitions that do not validate leave no state behind (a git source needs the state
    // directory to fetch into, so it is read once that exists).
    let dir_applied = match &opts.source {
        SourceSpec::Dir(paths) => Some(Applied {
            graph: load_dir(paths).map_err(LedgerError::Rejected)?,
            revision: None,
            checkout: None,
        }),
        SourceSpec::Git(_) | SourceSpec::Kube(_) => None,
    };
    crate::ledger::prepare_state_dir(&opts.state)?;
    let state = std::path::absolute(&opts.state)?;
    opts.settings.state_dir = state.display().to_string();
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(state.join("controller.lock"))?;
    // A controller killed a moment ago can leave its lock to a child in the instant between
    // fork and exec: wait a little before concluding that another controller runs.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while lock.try_lock().is_err() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if lock.try_lock().is_err() {
        return Err(LedgerError::Invalid(format!(
            "another controller is running on {}; use `cascade status --state {}` to follow it",
            state.display(),
            opts.state.display()
        )));
    }
    let mut ledger = Ledger::open(&state)?;
    let mut kube = None;
    let mut applied = match (&opts.source, dir_applied) {
        (SourceSpec::Git(follow), _) => initial_git(&mut ledger, &state, follow)?,
        (SourceSpec::Kube(follow), _) => {
            let (side, applied) = crate::k8s::KubeSide::start(follow, &state).await?;
            kube = Some(side);
            applied
        }
        (SourceSpec::Dir(_), Some(applied)) => applied,
        (SourceSpec::Dir(paths), None) => Applied {
            graph: load_dir(paths).map_err(LedgerError::Rejected)?,
            revision: None,
            checkout: None,
        },
    };
    // A git source: fetched on an interval and whenever a webhook says the branch moved.
    let (fetched_tx, mut fetched) = tokio::sync::mpsc::unbounded_channel();
    // Held for the controller's life: the fetcher ends when no one can trigger it.
    let mut _trigger = None;
    if let SourceSpec::Git(follow) = &opts.source {
        let (trigger_tx, trigger_rx) = tokio::sync::mpsc::unbounded_channel();
        if let Some(addr) = follow.listen {
            let secret = follow.secret.clone().ok_or_else(|| {
                LedgerError::Rejected(
                    "webhooks need a secret: give --webhook-secret-file FILE or CASCADE_WEBHOOK_SECRET".into(),
                )
            })?;
            serve_webhooks(addr, secret, trigger_tx.clone()).await?;
        }
        spawn_fetcher(follow, &state, trigger_rx, fetched_tx);
        _trigger = Some(trigger_tx);
    } else {
        drop(fetched_tx);
    }
    let _poller =
        crate::batch::observer::Poller::start(&state, opts.batch_poll, Duration::from_secs(60));
    let notifier = super::notifications::Sender::start(&state);

    let (tx, mut changes) = tokio::sync::mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| !e.kind.is_access()) {
            let _ = tx.send(());
        }
    })
    .map_err(|e| LedgerError::Invalid(format!("cannot watch the definitions: {e}")))?;
    if let SourceSpec::Dir(paths) = &opts.source {
        for p in paths {
            let _ = watcher.watch(p, notify::RecursiveMode::Recursive);
        }
    }

    // Other processes' commits (a job's end, a submit, an operator) write the ledger's files:
    // watching them wakes the controller at once, so the poll below can be slow.
    let (wal_tx, mut ledger_writes) = tokio::sync::mpsc::unbounded_channel();
    let mut ledger_watcher =
        notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let ledger_file = |p: &PathBuf| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("cascade.db"))
            };
            if event.is_ok_and(|e| !e.kind.is_access() && e.paths.iter().any(ledger_file)) {
                let _ = wal_tx.send(());
            }
        })
        .map_err(|e| LedgerError::Invalid(format!("cannot watch the state directory: {e}")))?;
    let _ = ledger_watcher.watch(&state, notify::RecursiveMode::NonRecursive);

    let mut launching: HashSet<String> = HashSet::new();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let mut shown = String::new();
    let mut shown_states: Vec<StageState> = Vec::new();
    let mut shown_at = std::time::Instant::now();
    let mut stale_definitions = false;
    let mut saved_stages: Option<Vec<StageStatus>> = None;
    // Whether file events arrive for the ledger's files here (they do for local file systems):
    // then the poll below is only a slow safety net.
    let mut notify_works = false;
    loop {
        if stop_requested(&mut [&mut interrupt, &mut terminate]) {
            return Err(interrupted());
        }
        while let Ok(id) = done_rx.try_recv() {
            launching.remove(&id);
        }
        // Open reservations not launched by this process: decided by asking, never blindly.
        for id in ledger.open_reservations()? {
            if launching.contains(&id) {
                continue;
            }
            match executor::inspect(&mut ledger, &id)? {
                Reservation::Running => {}
                Reservation::Launched => {
                    let batch = executor::batch_id(&ledger, &id)?;
                    ledger.record_launch(&id, &LaunchEnd::Unknown, batch.as_deref())?;
                }
                Reservation::NothingSubmitted => {
                    if ledger.count_attempt(&id)? > MAX_ATTEMPTS {
                        ledger.record_launch(&id, &LaunchEnd::Unknown, None)?;
                    } else {
                        spawn_launch(&state, &id, &mut launching, &done_tx);
                    }
                }
            }
        }
        // A daemon starts idle jobs and runs again those of a daemon that died; one is started
        // whenever jobs are not over and none runs (it exits by itself once there is nothing
        // to do).
        if ledger
            .scalar_i64(
                "SELECT COUNT(*) FROM jobs WHERE state IN ('idle', 'running', 'held') AND delegated = 0",
            )?
            > 0
        {
            local::ensure_daemon(&state)?;
        }

        let reconcile_started = std::time::Instant::now();
        let now = chrono::Utc::now().timestamp();
        // Observations and catalog answers from one snapshot: a launch recording its outcome
        // meanwhile is either wholly seen or not at all.
        let (planned, seen_version) = ledger.consistent_read(|ledger| {
            let observed = ledger.observed()?;
            let catalog = ledger.catalog_view();
            Ok(plan(&PlanInput {
                graph: &applied.graph,
                observed: &observed,
                catalog: &catalog,
                now,
                experimenter: &opts.experimenter,
                launch_timeout: opts.launch_timeout,
                local_offset: crate::runtime::local_offset(now),
                settings: &opts.settings,
            }))
        })?;
        let mut acted = false;
        for action in &planned.actions {
            if stop_requested(&mut [&mut interrupt, &mut terminate]) {
                return Err(interrupted());
            }
            acted = true;
            match action {
                Action::SetStatus {
                    submission,
                    from,
                    to,
                    reason,
                } => {
                    ledger.set_status(submission, *from, *to, reason)?;
                }
                Action::SkipRecovery {
                    original,
                    round,
                    kind,
                    reference,
                } => ledger.skip_recovery(original, *round, kind.as_str(), reference)?,
                Action::FirstSeen { stage, at } => ledger.first_seen(stage, *at)?,
                Action::ResetSplit { stage, to } => ledger.reset_split(
                    stage,
                    "cascade",
                    &format!("the definitions say splitResets: {to}"),
                )?,
                Action::Launch(l) => {
                    if kube.as_ref().is_some_and(|k| !k.leading()) {
                        return Err(lost_lead());
                    }
                    let launcher = l
                        .launch
                        .env
                        .iter()
                        .find(|(k, _)| k == "CASCADE_LAUNCHER")
                        .map_or(opts.experimenter.as_str(), |(_, v)| v.as_str());
                    let dir = applied.launch_dir(applied.graph.stage(&l.stage));
                    let reserved = ledger.reserve_at(
                        l,
                        launcher,
                        &dir.display().to_string(),
                        applied.revision.as_deref(),
                    )?;
                    if reserved {
                        observe_hop(&ledger, &l.origin)?;
                    }
                    if reserved && !l.approval {
                        spawn_launch(&state, &l.id, &mut launching, &done_tx);
                    }
                }
            }
        }
        RUNTIME
            .reconcile_seconds
            .observe(reconcile_started.elapsed().as_secs_f64());
        // Written when it changed: an idle controller does not rewrite (and so re-wake on) the
        // ledger every tick.
        if saved_stages.as_ref() != Some(&planned.stages) {
            log_transitions(saved_stages.as_deref(), &planned.stages);
            ledger.save_stage_status_notifying(
                &planned.stages,
                &applied.graph.notifiers,
                applied.revision.as_deref(),
            )?;
            saved_stages = Some(planned.stages.clone());
            if let Some(k) = &kube {
                k.report(&ledger)?;
            }
        }
        if opts.progress {
            // A block when a stage changes state, and at most one a second otherwise.
            let states: Vec<StageState> = planned.stages.iter().map(|s| s.state).collect();
            let text = progress(&planned.stages);
            let due = shown_at.elapsed() >= Duration::from_secs(1) && text != shown;
            if states != shown_states || due {
                // Progress is best effort: a closed pipe must not stop the controller.
                let mut stdout = std::io::stdout().lock();
                let _ = write!(stdout, "[{}] {text}", chrono::Utc::now().format("%H:%M:%S"));
                let _ = stdout.flush();
                shown = text;
                shown_states = states;
                shown_at = std::time::Instant::now();
            }
        }
        let settled = !acted
            && launching.is_empty()
            && ledger.open_reservations()?.is_empty()
            && planned.stages.iter().all(|s| s.settled || s.blocked);
        if settled && !opts.watch {
            // What the campaign's end calls for is told before `run` returns (within a
            // bound; the next controller sends the rest).
            drop(notifier);
            let flushed = state.clone();
            let left = tokio::task::spawn_blocking(move || {
                super::notifications::flush(&flushed, NOTIFY_FLUSH)
            })
            .await
            .map_err(|e| LedgerError::Invalid(format!("the notification sender failed: {e}")))??;
            if left > 0 {
                tracing::warn!(
                    pending = left,
                    "{left} notification(s) not delivered yet; the next `cascade run` retries them, `cascade status` shows why"
                );
            }
            return Ok(Summary {
                stages: planned.stages.clone(),
                plan: planned,
            });
        }
        if acted {
            continue; // act on our own outcomes at once (a status change may unlock launches)
        }
        // Settled, nothing is in flight: only another process's write, a definitions change
        // or the clock (`wake_at`: schedules, timeouts) can move anything, and each of those
        // wakes the controller itself, so the periodic reconcile can be rare.
        let tick = if settled { IDLE_TICK } else { opts.tick };
        let wait = planned
            .wake_at
            .map(|t| Duration::from_secs((t - now).max(0) as u64))
            .unwrap_or(tick)
            .min(tick);
        tokio::select! {
            _ = ledger_change(&ledger, seen_version, wait, &mut ledger_writes, &mut notify_works) => {}
            Some(()) = changes.recv() => {
                // Let a burst of writes finish, then reload; a bad edit keeps the last good graph.
                tokio::time::sleep(Duration::from_millis(100)).await;
                while changes.try_recv().is_ok() {}
                let SourceSpec::Dir(paths) = &opts.source else { continue };
                match load_dir(paths) {
                    Ok(g) => {
                        if stale_definitions {
                            tracing::info!("definitions valid again: applying them");
                        }
                        stale_definitions = false;
                        apply_removals(&mut ledger, &removed_stages(&applied.graph, &g), None)?;
                        applied.graph = g;
                    }
                    Err(e) => {
                        stale_definitions = true;
                        tracing::warn!("definitions changed but do not validate; keeping the last good ones:\n{e}");
                    }
                }
            }
            Some(head) = fetched.recv() => {
                let SourceSpec::Git(follow) = &opts.source else { continue };
                if let Some(next) = on_fetch(&mut ledger, &state, &follow.source, head, applied.revision.as_deref())? {
                    apply_removals(&mut ledger, &removed_stages(&applied.graph, &next.graph), next.revision.as_deref())?;
                    applied = next;
                    let mut keep = ledger.revisions_in_use()?;
                    keep.extend(applied.revision.clone());
                    crate::source::git::clean_checkouts(&state, &keep);
                }
            }
            Some(id) = done_rx.recv() => { launching.remove(&id); }
            happened = kube_event(&mut kube) => match happened {
                crate::k8s::KubeEvent::Snapshot(snap) => {
                    if let Some(k) = &mut kube {
                        k.take(snap, Some(&mut ledger), &mut applied)?;
                    }
                }
                crate::k8s::KubeEvent::LostLead => return Err(lost_lead()),
            },
            _ = interrupt.recv() => return Err(interrupted()),
            _ = terminate.recv() => return Err(interrupted()),
        }
    }
}

/// One event per stage whose state changed since the last save.
fn log_transitions(before: Option<&[StageStatus]>, after: &[StageStatus]) {
    for s in after {
        let was = before.and_then(|b| b.iter().find(|p| p.stage == s.stage));
        if was.is_none_or(|p| p.state != s.state) {
            tracing::info!(
                stage = %s.stage,
                from = was.map_or("-", |p| p.state.as_str()),
                to = s.state.as_str(),
                reason = %s.reason,
                "stage state"
            );
        }
    }
}

/// How long `cascade run` waits at its end for notifications still to deliver.
const NOTIFY_FLUSH: Duration = Duration::from_secs(20);

/// How long a settled controller waits before reconciling again when nothing wakes it.
const IDLE_TICK: Duration = Duration::from_secs(30);

/// What the Kubernetes side has to say next (never, without one).
async fn kube_event(kube: &mut Option<crate::k8s::KubeSide>) -> crate::k8s::KubeEvent {
    match kube {
        Some(k) => k.next_event().await,
        None => std::future::pending().await,
    }
}

/// Another replica leads now: stop at once, so that only one launches (the pod restarts and
/// waits for the Lease).
fn lost_lead() -> LedgerError {
    LedgerError::Invalid(
        "no longer holding the leader Lease: stopping so that only the leading replica launches"
            .into(),
    )
}

fn interrupted() -> LedgerError {
    LedgerError::Interrupted
}

/// Whether one of the stop signals arrived since it was last looked at (without waiting).
fn stop_requested(signals: &mut [&mut Signal]) -> bool {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    signals
        .iter_mut()
        .any(|s| matches!(s.poll_recv(&mut cx), std::task::Poll::Ready(Some(()))))
}

/// Returns when another process (a job's runner, `cascade submit`, an operator command) has
/// committed to the ledger since the state the plan read (`seen`), or after `wait`: a commit
/// that landed while the plan was being made still wakes the controller at once.
///
/// A write to the ledger's files wakes it; the commit becomes visible a moment after the
/// write (the WAL index is updated last), so it looks again for a few milliseconds. The
/// controller's own writes do not change `data_version`. The poll is a safety net for file
/// systems that do not report writes: every 200 ms until a file event has been seen, every
/// 2 s after (writes from other machines on a shared file system are not reported).
async fn ledger_change(
    ledger: &Ledger,
    seen: i64,
    wait: Duration,
    writes: &mut tokio::sync::mpsc::UnboundedReceiver<()>,
    notify_works: &mut bool,
) {
    const SETTLE: Duration = Duration::from_millis(1);
    let poll = if *notify_works {
        Duration::from_secs(2)
    } else {
        Duration::from_millis(200)
    };
    let changed = || ledger.data_version().ok() != Some(seen);
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if changed() {
            return;
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return;
        }
        tokio::select! {
            Some(()) = writes.recv() => {
                *notify_works = true;
                while writes.try_recv().is_ok() {}
                for _ in 0..10 {
                    if changed() {
                        return;
                    }
                    tokio::time::sleep(SETTLE).await;
                }
            }
            _ = tokio::time::sleep(poll.min(deadline - now)) => {}
        }
    }
}

/// For a launch over an upstream submission's outputs: the time since that submission's last
/// job ended (the hop a dependency takes).
fn observe_hop(ledger: &Ledger, origin: &crate::plan::Origin) -> Result<()> {
    let crate::plan::Origin::Upstream { submission } = origin else {
        return Ok(());
    };
    let ended: Option<i64> = ledger
        .rows(
            "SELECT MAX(finished_ms) FROM jobs WHERE submission = ?",
            [submission.as_str()],
            |r| r.get(0),
        )?
        .into_iter()
        .next()
        .flatten();
    if let Some(ended) = ended {
        let ms = chrono::Utc::now().timestamp_millis() - ended;
        RUNTIME.hop_seconds.observe(ms.max(0) as f64 / 1000.0);
    }
    Ok(())
}

fn spawn_launch(
    state: &Path,
    id: &str,
    launching: &mut HashSet<String>,
    done: &tokio::sync::mpsc::UnboundedSender<String>,
) {
    launching.insert(id.to_string());
    RUNTIME.launches.inc();
    let (state, id, done) = (state.to_path_buf(), id.to_string(), done.clone());
    tracing::info!(submission = %id, "launching");
    tokio::task::spawn_blocking(move || {
        if let Err(e) = executor::launch(&state, &id) {
            tracing::error!(submission = %id, error = %e, "launch failed");
        }
        let _ = done.send(id);
    });
}

/// One line per stage: state, submissions, jobs, percent located.
pub fn progress(stages: &[StageStatus]) -> String {
    let width = stages
        .iter()
        .map(|s| s.stage.to_string().len())
        .max()
        .unwrap_or(5);
    let mut out = String::new();
    let mut by_state: BTreeMap<&str, u32> = BTreeMap::new();
    for s in stages {
        *by_state.entry(s.state.as_str()).or_default() += 1;
        out.push_str(&format!(
            "  {:width$}  {:9}  {:>3} subs  jobs {:>3} idle {:>3} run {:>4} done  {:>3.0}% located\n",
            s.stage.to_string(),
            s.state.as_str(),
            s.submissions,
            s.jobs.idle + s.jobs.held,
            s.jobs.running,
            s.jobs.finished(),
            s.located_percent,
        ));
    }
    let counts: Vec<String> = by_state.iter().map(|(k, v)| format!("{v} {k}")).collect();
    format!("{}\n{out}", counts.join(", "))
}
