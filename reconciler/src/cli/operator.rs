//! The POMS actions, as commands against a state directory (while a controller runs, it acts
//! on them at its next reconcile). Each is recorded in the ledger with who and why.

use std::path::PathBuf;

use super::Exit;
use super::state::StateArg;
use crate::batch::local::{self, Control};
use crate::ledger::{Ledger, LedgerError};
use crate::model::ObjectKey;
use crate::plan::Status;
use cascade_crd::RecoveryType;

/// Who acts and why, recorded with every operator action.
#[derive(clap::Args, Debug, Clone)]
pub struct Reason {
    /// Why (recorded in the ledger)
    #[arg(long)]
    pub why: String,
    /// Who (default: $USER)
    #[arg(long)]
    pub who: Option<String>,
}

impl Reason {
    fn who(&self) -> String {
        super::plan::experimenter(&self.who)
    }
}

#[derive(clap::Args, Debug)]
pub struct LaunchArgs {
    /// The stage (`name` or `namespace/name`)
    pub stage: String,
    /// A test launch: test split, test overrides, POMS4_TEST_LAUNCH=True
    #[arg(long)]
    pub test: bool,
    /// Launch over this dataset instead of the next slice of the split
    #[arg(long)]
    pub dataset: Option<String>,
    #[command(flatten)]
    pub reason: Reason,
    #[command(flatten)]
    pub state: StateArg,
}

#[derive(clap::Args, Debug)]
pub struct TargetArgs {
    /// A campaign, a stage (`name` or `namespace/name`), or a submission, as the command takes
    pub target: String,
    #[command(flatten)]
    pub reason: Reason,
    #[command(flatten)]
    pub state: StateArg,
}

/// `hold`, `release` and `kill`: what their jobs belong to.
#[derive(clap::Args, Debug)]
pub struct JobsArgs {
    /// A submission, a stage (`name` or `namespace/name`: every open submission of it); for
    /// `hold` and `release` also a job id (`12` or `12@local`) or `all`
    pub target: String,
    #[command(flatten)]
    pub reason: Reason,
    #[command(flatten)]
    pub state: StateArg,
}

#[derive(clap::Args, Debug)]
pub struct RecoverArgs {
    /// The original submission
    pub submission: String,
    /// Recovery type: consumed_status, process_status, added_files, pending_files,
    /// delivered_not_consumed
    #[arg(long = "type")]
    pub kind: String,
    #[command(flatten)]
    pub reason: Reason,
    #[command(flatten)]
    pub state: StateArg,
}

#[derive(clap::Args, Debug)]
pub struct CloneArgs {
    /// The campaign to clone (`name` or `namespace/name`)
    pub campaign: String,
    /// Name of the new campaign
    pub new_name: String,
    /// Files or directories of YAML resources holding the campaign
    #[arg(long = "from", required = true)]
    pub paths: Vec<PathBuf>,
    /// File to write the new resources to (default: stdout)
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug)]
pub enum Pause {
    Pause,
    Resume,
}

/// What a name given on the command line designates in the state directory.
enum Target {
    Campaign(ObjectKey),
    Stage(ObjectKey),
    Submission(String),
}

fn resolve(ledger: &Ledger, text: &str) -> Result<Target, String> {
    if ledger
        .submission(text)
        .map_err(|e| e.to_string())?
        .is_some()
    {
        return Ok(Target::Submission(text.to_string()));
    }
    let stages = ledger.saved_stage_status().map_err(|e| e.to_string())?;
    let matches = |ns: &str, name: &str| text == name || text == format!("{ns}/{name}");
    let found: Vec<&ObjectKey> = stages
        .iter()
        .map(|s| &s.stage)
        .filter(|k| matches(&k.namespace, &k.name))
        .collect();
    match found.as_slice() {
        [one] => return Ok(Target::Stage((*one).clone())),
        [] => {}
        many => {
            let names: Vec<String> = many.iter().map(|k| k.to_string()).collect();
            return Err(format!(
                "`{text}` names several stages: {}; write `namespace/name`",
                names.join(", ")
            ));
        }
    }
    if let Some(s) = stages
        .iter()
        .find(|s| matches(&s.stage.namespace, &s.campaign))
    {
        return Ok(Target::Campaign(ObjectKey::new(
            s.stage.namespace.clone(),
            s.campaign.clone(),
        )));
    }
    if stages.is_empty() {
        return Err(format!(
            "no campaign, stage or submission `{text}` in this state directory (no stages yet: run the controller first, or pause with `namespace/name` before it)"
        ));
    }
    // Suggest among campaigns and stages, in the form given (`name` or `namespace/name`).
    let qualified = text.contains('/');
    let form = |ns: &str, name: &str| {
        if qualified {
            format!("{ns}/{name}")
        } else {
            name.to_string()
        }
    };
    let mut known: Vec<String> = stages
        .iter()
        .flat_map(|s| {
            [
                form(&s.stage.namespace, &s.stage.name),
                form(&s.stage.namespace, &s.campaign),
            ]
        })
        .collect();
    known.sort();
    known.dedup();
    let known: Vec<&str> = known.iter().map(String::as_str).collect();
    Err(format!(
        "no campaign, stage or submission `{text}` in this state directory\n  help: {} (`cascade status` lists the submissions)",
        crate::model::de::suggest(text, &known, "campaigns and stages")
    ))
}

/// Operator commands record into the state, making it if there is none yet: a pause can be
/// recorded before the first run.
fn open(state: &StateArg) -> Result<Ledger, Exit> {
    state.open()
}

/// Runs `f` on the ledger, reporting refusals as input errors.
fn act(state: &StateArg, f: impl FnOnce(&mut Ledger) -> Result<String, String>) -> Exit {
    let mut ledger = match open(state) {
        Ok(l) => l,
        Err(e) => return e,
    };
    match f(&mut ledger) {
        Ok(message) => {
            println!("{message}");
            Exit::Ok
        }
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Rejected
        }
    }
}

/// Performs one action from the command line: said on stdout, or refused on stderr.
fn act_as(state: &StateArg, reason: &Reason, action: Action) -> std::io::Result<Exit> {
    Ok(act(state, |ledger| {
        perform(ledger, &action, &reason.who(), &reason.why)
    }))
}

fn text(e: LedgerError) -> String {
    e.to_string()
}

fn stage_of(ledger: &Ledger, text: &str) -> Result<ObjectKey, String> {
    match resolve(ledger, text)? {
        Target::Stage(k) => Ok(k),
        _ => Err(format!("`{text}` is not a stage")),
    }
}

pub fn launch(args: &LaunchArgs) -> std::io::Result<Exit> {
    act_as(
        &args.state,
        &args.reason,
        Action::Launch {
            stage: &args.stage,
            test: args.test,
            dataset: args.dataset.as_deref(),
        },
    )
}

pub fn pause(args: &TargetArgs, what: Pause) -> std::io::Result<Exit> {
    act_as(&args.state, &args.reason, Action::Pause(&args.target, what))
}

fn no_stages_yet(ledger: &Ledger) -> Result<bool, String> {
    Ok(ledger.saved_stage_status().map_err(text)?.is_empty())
}

/// The submissions a target designates (a stage: all of its submissions not yet final).
fn submissions(ledger: &Ledger, target: &str) -> Result<Vec<String>, String> {
    match resolve(ledger, target)? {
        Target::Submission(s) => Ok(vec![s]),
        Target::Stage(k) => Ok(ledger
            .submission_rows()
            .map_err(text)?
            .into_iter()
            .filter(|r| *r.submission.stage == k && !r.submission.status.is_final())
            .map(|r| r.submission.id.into())
            .collect()),
        Target::Campaign(k) => Err(format!("`{k}` is a campaign: name a stage or a submission")),
    }
}

/// `kill`, `hold` and `release` of a submission's or a stage's jobs.
pub fn jobs(args: &JobsArgs, action: Control) -> std::io::Result<Exit> {
    act_as(
        &args.state,
        &args.reason,
        Action::Jobs(&args.target, action),
    )
}

pub fn reset_split(args: &TargetArgs) -> std::io::Result<Exit> {
    act_as(&args.state, &args.reason, Action::ResetSplit(&args.target))
}

pub fn force_located(args: &TargetArgs) -> std::io::Result<Exit> {
    act_as(
        &args.state,
        &args.reason,
        Action::ForceLocated(&args.target),
    )
}

pub fn approve(args: &TargetArgs) -> std::io::Result<Exit> {
    act_as(&args.state, &args.reason, Action::Approve(&args.target))
}

pub fn recover(args: &RecoverArgs) -> std::io::Result<Exit> {
    act_as(
        &args.state,
        &args.reason,
        Action::Recover {
            submission: &args.submission,
            kind: &args.kind,
        },
    )
}

/// An operator action, as the command line and the HTTP API name it.
#[derive(Clone, Copy, Debug)]
pub enum Action<'a> {
    Launch {
        stage: &'a str,
        test: bool,
        dataset: Option<&'a str>,
    },
    Pause(&'a str, Pause),
    Jobs(&'a str, Control),
    ResetSplit(&'a str),
    ForceLocated(&'a str),
    Approve(&'a str),
    Recover {
        submission: &'a str,
        kind: &'a str,
    },
}

/// Performs `action` on the state, recorded as done by `who` because of `why`: what to tell
/// the operator, or why it is refused. The one path of every operator action, whether it
/// comes from the command line or over HTTP.
pub fn perform(
    ledger: &mut Ledger,
    action: &Action,
    who: &str,
    why: &str,
) -> Result<String, String> {
    match *action {
        Action::Launch {
            stage,
            test,
            dataset,
        } => launch_on(ledger, stage, test, dataset, who, why),
        Action::Pause(target, what) => pause_on(ledger, target, what, who, why),
        Action::Jobs(target, control) => jobs_on(ledger, target, control, who, why),
        Action::ResetSplit(target) => reset_split_on(ledger, target, who, why),
        Action::ForceLocated(target) => force_located_on(ledger, target, who, why),
        Action::Approve(target) => approve_on(ledger, target, who, why),
        Action::Recover { submission, kind } => recover_on(ledger, submission, kind, who, why),
    }
}

fn launch_on(
    ledger: &mut Ledger,
    stage: &str,
    test: bool,
    dataset: Option<&str>,
    who: &str,
    why: &str,
) -> Result<String, String> {
    let stage = stage_of(ledger, stage)?;
    let id = ledger
        .add_request(&stage, test, dataset, None, who, why)
        .map_err(text)?;
    let saved = ledger.saved_stage_status().map_err(text)?;
    let paused = saved.iter().find(|s| s.stage == stage).is_some_and(|s| {
        s.drift.is_some() || s.status.as_ref().is_some_and(|st| st.paused_by_definitions)
    });
    Ok(if paused {
        format!(
            "launch request {id} for {stage} recorded; the stage is paused, so it is queued and launched when it resumes"
        )
    } else {
        format!(
            "launch request {id} for {stage} recorded; the controller launches it at its next reconcile"
        )
    })
}

fn pause_on(
    ledger: &mut Ledger,
    target: &str,
    what: Pause,
    who: &str,
    why: &str,
) -> Result<String, String> {
    let key = match resolve(ledger, target) {
        Ok(Target::Campaign(k) | Target::Stage(k)) => k,
        Ok(Target::Submission(s)) => {
            return Err(format!(
                "`{s}` is a submission: pause its stage, or hold its jobs with `cascade hold`"
            ));
        }
        // Before the first run nothing is known yet: a `namespace/name` is taken as given
        // (a campaign or a stage), so that a campaign can start paused.
        Err(_) if no_stages_yet(ledger)? && target.contains('/') => {
            let (ns, name) = target.split_once('/').unwrap_or_default();
            ObjectKey::new(ns, name)
        }
        Err(e) => return Err(e),
    };
    let paused = matches!(what, Pause::Pause);
    ledger.set_paused(&key, paused, who, why).map_err(text)?;
    Ok(if paused {
        format!("{key} paused: its launches are queued until `cascade resume {key}`")
    } else {
        format!("{key} resumed: queued launches are released in order")
    })
}

fn jobs_on(
    ledger: &mut Ledger,
    target: &str,
    action: Control,
    who: &str,
    why: &str,
) -> Result<String, String> {
    // Jobs of the local batch system named directly: a job id, `all`, or a submission
    // made by `cascade submit` outside any launch.
    let t = target;
    let job_id = t.strip_suffix("@local").unwrap_or(t).parse::<i64>().is_ok();
    let bare = ledger.submission(t).map_err(text)?.is_none()
        && !local::jobs(ledger, Some(t)).map_err(text)?.is_empty();
    if action != Control::Remove && (t == "all" || job_id || bare) {
        let n = local::control(ledger, t, action).map_err(text)?;
        if n == 0 {
            return Err(format!("no job of `{t}` can be changed that way"));
        }
        let verb = if action == Control::Hold {
            "hold"
        } else {
            "release"
        };
        ledger.record_action(who, verb, t, why).map_err(text)?;
        return Ok(format!("{n} job(s) changed"));
    }
    let subs = submissions(ledger, target)?;
    if let [one] = subs.as_slice()
        && action == Control::Remove
        && let Some(row) = ledger.submission(one).map_err(text)?
        && row.submission.status.is_final()
    {
        return Err(format!(
            "`{one}` is {} already: nothing to kill",
            row.submission.status
        ));
    }
    let mut changed = 0;
    for s in &subs {
        changed += local::control(ledger, s, action).map_err(text)?;
        // Jobs on Slurm or HTCondor: their own commands; a refusal is said, and a kill
        // that did not happen does not mark the submission Removed.
        changed += crate::batch::observer::control(ledger, s, action)
            .map_err(text)?
            .map_err(|e| format!("{s}: {e}"))?;
        if action == Control::Remove {
            ledger
                .operator_status(s, Status::Removed, who, why)
                .map_err(text)?;
        }
    }
    let verb = match action {
        Control::Hold => "hold",
        Control::Release => "release",
        Control::Remove => "kill",
    };
    if action != Control::Remove {
        ledger.record_action(who, verb, target, why).map_err(text)?;
    }
    Ok(format!(
        "{verb}: {} of {} changed",
        super::count(changed, "job", "jobs"),
        super::count(subs.len(), "submission", "submissions")
    ))
}

fn reset_split_on(
    ledger: &mut Ledger,
    target: &str,
    who: &str,
    why: &str,
) -> Result<String, String> {
    let stage = stage_of(ledger, target)?;
    let saved = ledger.saved_stage_status().map_err(text)?;
    let split = saved
        .iter()
        .find(|s| s.stage == stage)
        .and_then(|s| s.status.as_ref())
        .map(|s| s.split.is_some());
    if split == Some(false) {
        return Err(format!(
            "stage `{stage}` has no split: there is no position to reset (to launch its dataset again, `cascade launch {}`)",
            stage.name
        ));
    }
    ledger.reset_split(&stage, who, why).map_err(text)?;
    Ok(format!(
        "{stage}: the split starts again from its first slice at the next launch"
    ))
}

fn force_located_on(
    ledger: &mut Ledger,
    target: &str,
    who: &str,
    why: &str,
) -> Result<String, String> {
    ledger.force_located(target, who, why).map_err(text)?;
    Ok(format!("{}: located as soon as it is completed", target))
}

fn approve_on(ledger: &mut Ledger, target: &str, who: &str, why: &str) -> Result<String, String> {
    let row = ledger
        .submission(target)
        .map_err(text)?
        .ok_or_else(|| format!("no submission `{}`", target))?;
    if row.submission.status != Status::AwaitingApproval {
        return Err(format!(
            "`{}` is {}, not awaiting approval",
            target, row.submission.status
        ));
    }
    ledger
        .operator_status(target, Status::Completed, who, why)
        .map_err(text)?;
    Ok(format!("{} approved", target))
}

fn recover_on(
    ledger: &mut Ledger,
    submission: &str,
    kind: &str,
    who: &str,
    why: &str,
) -> Result<String, String> {
    let kind: RecoveryType = serde_json::from_value(serde_json::Value::String(kind.to_string()))
        .map_err(|_| format!("unknown recovery type `{}`: known: consumed_status, process_status, added_files, pending_files, delivered_not_consumed", kind))?;
    let row = ledger
        .submission(submission)
        .map_err(text)?
        .ok_or_else(|| format!("no submission `{}`", submission))?;
    if row.submission.origin.is_recovery() {
        return Err(format!(
            "`{}` is itself a recovery: recover its original submission",
            submission
        ));
    }
    let id = ledger
        .add_request(
            &row.submission.stage,
            row.submission.test,
            None,
            Some((submission, kind)),
            who,
            why,
        )
        .map_err(text)?;
    Ok(format!(
        "recovery request {id} recorded; at its next reconcile the controller launches it, or says in `cascade explain {}` that there is nothing to recover",
        row.submission.stage.name
    ))
}

pub fn clone(args: &CloneArgs) -> std::io::Result<Exit> {
    let files = crate::source::dir::read_paths(&args.paths)?;
    let (resources, validated) = crate::model::load_and_validate(&files);
    super::validate::print_diagnostics(&mut std::io::stderr().lock(), &validated.diagnostics)?;
    let Some(graph) = validated.graph else {
        eprintln!("error: the definitions do not validate; nothing to clone");
        return Ok(Exit::Rejected);
    };
    let key = match args.campaign.split_once('/') {
        Some((ns, n)) => ObjectKey::new(ns, n),
        None => match graph.campaigns.keys().find(|k| k.name == args.campaign) {
            Some(k) => k.clone(),
            None => {
                eprintln!("error: no campaign `{}` in the definitions", args.campaign);
                return Ok(Exit::Rejected);
            }
        },
    };
    let (documents, notes) =
        match crate::model::clone::clone(&resources, &graph, &key, &args.new_name) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(Exit::Rejected);
            }
        };
    for n in notes {
        eprintln!("note: {n}");
    }
    let mut text = format!(
        "# Cloned from campaign {key} by `cascade clone`; login setups and job types are shared.\n"
    );
    for (n, d) in documents.iter().enumerate() {
        if n > 0 {
            text.push_str("---\n");
        }
        text.push_str(&d.to_yaml());
    }
    // The clone must validate beside the definitions it came from.
    let mut all = files.clone();
    all.push(crate::model::SourceFile {
        path: args
            .out
            .as_ref()
            .map_or("<clone>".into(), |p| p.display().to_string()),
        bytes: text.as_bytes().into(),
    });
    let (_, checked) = crate::model::load_and_validate(&all);
    if checked.graph.is_none() {
        super::validate::print_diagnostics(&mut std::io::stderr().lock(), &checked.diagnostics)?;
        eprintln!("error: the clone does not validate beside its source; nothing written");
        return Ok(Exit::Rejected);
    }
    match &args.out {
        Some(path) => std::fs::write(path, text)?,
        None => print!("{text}"),
    }
    Ok(Exit::Ok)
}
