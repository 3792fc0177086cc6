//! `cascade run`: the controller in the foreground until every stage has settled.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use super::Exit;
use super::state::StateArg;
use crate::runtime::controller::{self, Options};

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
    #[command(flatten)]
    pub launch_timeout: super::plan::LaunchTimeoutArg,
    #[command(flatten)]
    pub launch_settings: super::plan::LaunchSettingsArgs,
    /// How often Slurm and HTCondor are asked about open submissions' jobs (one batched
    /// call per batch system); a batch system that does not answer is asked again after
    /// twice the delay, up to a minute
    #[arg(long, env = "CASCADE_BATCH_POLL", default_value = "2s", value_parser = parse_poll)]
    pub batch_poll: Duration,
}

fn parse_poll(text: &str) -> Result<Duration, String> {
    let millis = text
        .strip_suffix("ms")
        .and_then(|n| n.parse::<u64>().ok())
        .or_else(|| cascade_crd::split::parse_duration(text).map(|s| s.saturating_mul(1000)));
    match millis {
        Some(ms) if ms >= 100 => Ok(Duration::from_millis(ms)),
        _ => Err(format!(
            "`{text}` is not a poll interval: write e.g. `500ms`, `2s` or `1m` (at least 100ms)"
        )),
    }
}

pub fn run(args: &RunArgs) -> std::io::Result<Exit> {
    let opts = Options {
        paths: args.paths.clone(),
        state: args.state.state.clone(),
        experimenter: super::plan::experimenter(&args.experimenter),
        tick: Duration::from_secs(1),
        progress: !args.quiet,
        watch: args.watch,
        launch_timeout: args.launch_timeout.seconds,
        batch_poll: args.batch_poll,
        settings: args.launch_settings.settings(&args.state.state),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let summary = match runtime.block_on(controller::run(opts)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(Exit::of(&e));
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
