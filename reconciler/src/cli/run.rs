//! `cascade run`, `cascade status`, `cascade explain`.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use super::Exit;
use crate::ledger::Ledger;
use crate::plan::format_time;
use crate::runtime::controller::{self, Options};

/// The state directory flag shared by the runtime commands.
#[derive(clap::Args, Debug, Clone)]
pub struct StateArg {
    /// State directory (ledger, catalog, job logs)
    #[arg(
        long,
        env = "CASCADE_STATE_DIR",
        hide_env_values = true,
        default_value = ".cascade"
    )]
    pub state: PathBuf,
}

impl StateArg {
    /// The state database, created if needed. A failure is reported here.
    pub fn open(&self) -> Result<Ledger, Exit> {
        Ledger::open(&self.state).map_err(report)
    }

    /// The state database of a directory a controller has used. A failure is reported here.
    pub fn open_existing(&self) -> Result<Ledger, Exit> {
        Ledger::open_existing(&self.state).map_err(report)
    }
}

fn report(e: crate::ledger::LedgerError) -> Exit {
    eprintln!("error: {e}");
    Exit::Failed
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Files or directories of YAML resources
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub state: StateArg,
    /// User the launches are made for (`%(experimenter)s`); default: $USER
    #[arg(long)]
    pub experimenter: Option<String>,
    /// Keep running and watching the definitions after every stage settled
    #[arg(long)]
    pub watch: bool,
    /// No live progress, only the summary
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn run(args: &RunArgs) -> std::io::Result<Exit> {
    let opts = Options {
        paths: args.paths.clone(),
        state: args.state.state.clone(),
        experimenter: super::plan::experimenter(&args.experimenter),
        tick: Duration::from_millis(250),
        progress: !args.quiet,
        watch: args.watch,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let summary = match runtime.block_on(controller::run(opts)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(Exit::Failed);
        }
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "\nSummary:")?;
    for s in &summary.stages {
        writeln!(out, "  {}: {} ({})", s.stage, s.state.as_str(), s.reason)?;
    }
    for c in &summary.plan.campaigns {
        writeln!(
            out,
            "  campaign {}: {:.0}% done, {} of {} stages succeeded, {} failed",
            c.campaign,
            c.progress * 100.0,
            c.stages_succeeded,
            c.stages,
            c.stages_failed
        )?;
    }
    Ok(if summary.failed() {
        Exit::StageFailed
    } else {
        Exit::Ok
    })
}

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub state: StateArg,
    /// Also list every status change of every submission
    #[arg(long)]
    pub history: bool,
    /// Output for people (`text`) or machines (`json`)
    #[arg(long, value_enum, default_value = "text")]
    pub format: super::plan::Format,
}

pub fn status(args: &StatusArgs) -> std::io::Result<Exit> {
    let ledger = match args.state.open_existing() {
        Ok(l) => l,
        Err(e) => return Ok(e),
    };
    let stages = ledger.saved_stage_status().map_err(std::io::Error::other)?;
    let subs = ledger.submission_rows().map_err(std::io::Error::other)?;
    let mut out = std::io::stdout().lock();
    if let super::plan::Format::Json = args.format {
        let history = ledger.history(None).map_err(std::io::Error::other)?;
        let actions = ledger.operator_actions().map_err(std::io::Error::other)?;
        let value = serde_json::json!({
            "operatorActions": actions,
            "stages": stages.iter().map(|s| serde_json::json!({
                "stage": s.stage.to_string(),
                "campaign": s.campaign,
                "state": s.state,
                "reason": s.reason,
                "drift": s.drift,
            })).collect::<Vec<_>>(),
            "submissions": subs,
            "history": history,
        });
        serde_json::to_writer_pretty(&mut out, &value)?;
        writeln!(out)?;
        return Ok(Exit::Ok);
    }
    let mut campaign = None;
    for s in &stages {
        if campaign != Some(&s.campaign) {
            writeln!(out, "Campaign {}/{}:", s.stage.namespace, s.campaign)?;
            campaign = Some(&s.campaign);
        }
        writeln!(out, "  {:<24} {:<10} {}", s.stage.name, s.state, s.reason)?;
    }
    let drifted: Vec<_> = stages.iter().filter(|s| s.drift.is_some()).collect();
    if !drifted.is_empty() {
        writeln!(out, "\nDrift (the state contradicts the definitions):")?;
        for s in drifted {
            writeln!(
                out,
                "  {}: {}",
                s.stage,
                s.drift.as_deref().unwrap_or_default()
            )?;
        }
    }
    writeln!(out, "\nSubmissions:")?;
    writeln!(
        out,
        "  {:<28} {:<24} {:<13} {:>5} {:>5} {:>5} {:>5}  BATCH ID",
        "ID", "ORIGIN", "STATUS", "JOBS", "RUN", "OK", "FAIL"
    )?;
    for r in &subs {
        let s = &r.submission;
        writeln!(
            out,
            "  {:<28} {:<24} {:<13} {:>5} {:>5} {:>5} {:>5}  {}",
            s.id,
            s.origin.describe(),
            s.status.as_str(),
            s.jobs.total,
            s.jobs.running,
            s.jobs.succeeded,
            s.jobs.failed,
            r.batch_id.as_deref().unwrap_or("-")
        )?;
    }
    if args.history {
        writeln!(out, "\nOperator actions:")?;
        for a in ledger.operator_actions().map_err(std::io::Error::other)? {
            writeln!(
                out,
                "  {}  {}: {} {} ({})",
                format_time(a.at),
                a.who,
                a.action,
                a.target,
                a.why
            )?;
        }
        writeln!(out, "\nHistory:")?;
        for h in ledger.history(None).map_err(std::io::Error::other)? {
            writeln!(
                out,
                "  {}  {:<28} {:<13} {}",
                format_time(h.at),
                h.submission,
                h.status,
                h.reason
            )?;
        }
    }
    Ok(Exit::Ok)
}

#[derive(clap::Args, Debug)]
pub struct ExplainArgs {
    /// The stage (`name` or `namespace/name`)
    pub stage: String,
    #[command(flatten)]
    pub state: StateArg,
}

pub fn explain(args: &ExplainArgs) -> std::io::Result<Exit> {
    let ledger = match args.state.open_existing() {
        Ok(l) => l,
        Err(e) => return Ok(e),
    };
    let stages = ledger.saved_stage_status().map_err(std::io::Error::other)?;
    let Some(found) = stages
        .iter()
        .find(|s| s.stage.name == args.stage || s.stage.to_string() == args.stage)
    else {
        let known: Vec<String> = stages.iter().map(|s| s.stage.to_string()).collect();
        let known: Vec<&str> = known.iter().map(String::as_str).collect();
        eprintln!(
            "error: no stage `{}` in {}\n  help: {}",
            args.stage,
            args.state.state.display(),
            crate::model::de::suggest(&args.stage, &known, "stages")
        );
        return Ok(Exit::Rejected);
    };
    let mut out = std::io::stdout().lock();
    let (ns, name) = (&found.stage.namespace, &found.stage.name);
    writeln!(out, "{} is {}: {}", found.stage, found.state, found.reason)?;
    let subs = ledger.submission_rows().map_err(std::io::Error::other)?;
    for r in subs
        .iter()
        .filter(|r| r.submission.stage.namespace == *ns && r.submission.stage.name == *name)
    {
        let s = &r.submission;
        writeln!(
            out,
            "\n  {} ({}): {}, jobs {} of {} succeeded, {} failed",
            s.id,
            s.origin.describe(),
            s.status,
            s.jobs.succeeded,
            s.jobs.total,
            s.jobs.failed
        )?;
        if let Some(input) = &s.input {
            writeln!(out, "    input: {input}")?;
        }
        writeln!(out, "    command: {}", r.command)?;
        writeln!(out, "    launch log: {}", r.launch_log)?;
        for h in ledger.history(Some(&s.id)).map_err(std::io::Error::other)? {
            writeln!(
                out,
                "    {}  {:<13} {}",
                format_time(h.at),
                h.status,
                h.reason
            )?;
        }
    }
    Ok(Exit::Ok)
}
