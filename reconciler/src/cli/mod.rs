//! The `cascade` command line: thin commands over the library.
//!
//! Exit codes: 0 success; 1 user input rejected (validation errors); 2 unexpected failure
//! (IO, internal).

pub mod batch;
pub mod catalog;
pub mod explain;
pub mod generate;
pub mod ini;
pub mod logging;
pub mod operator;
pub mod plan;
pub mod review;
pub mod run;
pub mod serve;
pub mod state;
pub mod status;
pub mod validate;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "cascade",
    version,
    about = "Declarative production campaigns: validate, plan and run campaign definitions",
    after_help = "Exit status: 0 success, 1 input rejected (validation errors), 2 unexpected failure, 3 a stage failed (`run`)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check campaign definitions: every error, located, and warnings
    Validate(validate::Args),
    /// Show what the next reconcile would do (a first one without --state): launches with
    /// their exact command lines, and why the other stages wait
    Plan(plan::Args),
    /// Write one JSON Schema per kind
    Schema(generate::SchemaArgs),
    /// Write the CustomResourceDefinitions
    Crd(generate::CrdArgs),
    /// Run the controller in the foreground until every stage has settled
    Run(run::RunArgs),
    /// Run the controller for good: `run --watch` (what a service or a Deployment runs)
    Controller(run::RunArgs),
    /// Show the stage table and the submissions (also while `run` is going)
    Status(status::StatusArgs),
    /// Say why a stage is where it is, with its submissions and their history
    Explain(explain::ExplainArgs),
    /// Serve web pages, an HTTP API (JSON) and Prometheus metrics over a state
    Serve(serve::ServeArgs),
    /// Submit jobs to the local batch system (what launch scripts call); prints the job id
    Submit(batch::SubmitArgs),
    /// List the local batch system's jobs
    Q(batch::QueueArgs),
    /// Hold the jobs of a submission or a stage (running ones are stopped)
    Hold(operator::JobsArgs),
    /// Release held jobs of a submission or a stage
    Release(operator::JobsArgs),
    /// Kill the jobs of a submission or a stage; the submissions become Removed
    Kill(operator::JobsArgs),
    /// Remove jobs of the local batch system (a job id, a submission, or `all`)
    Rm(batch::ControlArgs),
    /// Ask for a launch of a stage: the next slice, or a given dataset; `--test` for a test
    /// launch
    Launch(operator::LaunchArgs),
    /// Queue a campaign's or a stage's future launches
    Pause(operator::TargetArgs),
    /// Release a paused campaign or stage; queued launches go out in order
    Resume(operator::TargetArgs),
    /// Start a stage's split again from its first slice
    ResetSplit(operator::TargetArgs),
    /// Locate a submission as soon as it is completed, whatever its files
    ForceLocated(operator::TargetArgs),
    /// Approve a submission of an approval stage: it becomes Completed and its dependents go
    Approve(operator::TargetArgs),
    /// Launch a recovery of a submission with the given recovery type
    Recover(operator::RecoverArgs),
    /// Write a copy of a campaign under a new name, as new YAML (POMS cloning rules)
    Clone(operator::CloneArgs),
    /// Convert POMS campaign .ini files into Cascade YAML (several files import as one set)
    ImportIni(ini::ImportArgs),
    /// Write a campaign as a POMS .ini file
    ExportIni(ini::ExportArgs),
    /// The catalog: files, definitions, snapshots
    #[command(subcommand)]
    Catalog(catalog::CatalogCommand),
    /// The local batch system's daemon (started on demand)
    #[command(hide = true)]
    Batchd(batch::DaemonArgs),
    /// Run one job of a Slurm array submitted by `cascade submit --batch-system slurm`
    #[command(hide = true)]
    RunTask(batch::RunTaskArgs),
}

/// Hands what a command built back to the operating system with the process, unfreed: the
/// command ends next, and freeing 100,000 resources one allocation at a time takes longer
/// than reading them.
pub fn leave<T>(built: T) {
    std::mem::forget(built);
}

/// `n` things, in the singular for one: `1 error`, `2 errors`.
pub fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Exit statuses by error class (the README's table).
pub enum Exit {
    /// 0
    Ok,
    /// 1: input rejected (bad definitions, usage, no state yet).
    Rejected,
    /// 2: an unexpected failure of the environment (unreadable files, a broken state).
    Failed,
    /// 3: a stage failed or is degraded (`run`).
    StageFailed,
    /// 130: stopped by Ctrl-C or SIGTERM, as shells report a SIGINT.
    Interrupted,
}

impl Exit {
    /// The exit status of an error of the state or the controller.
    pub fn of(e: &crate::ledger::LedgerError) -> Exit {
        match e {
            crate::ledger::LedgerError::Rejected(_) => Exit::Rejected,
            crate::ledger::LedgerError::Interrupted => Exit::Interrupted,
            _ => Exit::Failed,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        match e {
            Exit::Ok => ExitCode::SUCCESS,
            Exit::Rejected => ExitCode::from(1),
            Exit::Failed => ExitCode::from(2),
            Exit::StageFailed => ExitCode::from(3),
            Exit::Interrupted => ExitCode::from(130),
        }
    }
}

pub fn run(cli: Cli) -> Exit {
    let result = match cli.command {
        Command::Validate(args) => validate::run(&args),
        Command::Plan(args) => plan::run(&args),
        Command::Schema(args) => generate::schema(&args),
        Command::Crd(args) => generate::crd(&args),
        Command::Run(args) => {
            let level = if args.watch { "info" } else { "warn" };
            logging::init(&args.log, level);
            run::run(&args)
        }
        Command::Controller(mut args) => {
            crate::memory::long_lived();
            logging::init(&args.log, "info");
            args.watch = true;
            run::run(&args)
        }
        Command::Status(args) => status::status(&args),
        Command::Serve(args) => {
            logging::init(&args.log, "info");
            serve::serve(&args)
        }
        Command::Explain(args) => explain::explain(&args),
        Command::Submit(args) => batch::submit(&args),
        Command::Q(args) => batch::queue(&args),
        Command::Hold(args) => operator::jobs(&args, crate::batch::local::Control::Hold),
        Command::Release(args) => operator::jobs(&args, crate::batch::local::Control::Release),
        Command::Kill(args) => operator::jobs(&args, crate::batch::local::Control::Remove),
        Command::Rm(args) => batch::control(&args, crate::batch::local::Control::Remove),
        Command::Launch(args) => operator::launch(&args),
        Command::Pause(args) => operator::pause(&args, operator::Pause::Pause),
        Command::Resume(args) => operator::pause(&args, operator::Pause::Resume),
        Command::ResetSplit(args) => operator::reset_split(&args),
        Command::ForceLocated(args) => operator::force_located(&args),
        Command::Approve(args) => operator::approve(&args),
        Command::Recover(args) => operator::recover(&args),
        Command::Clone(args) => operator::clone(&args),
        Command::Catalog(cmd) => catalog::run(&cmd),
        Command::ImportIni(args) => ini::import_ini(&args),
        Command::ExportIni(args) => ini::export_ini(&args),
        Command::Batchd(args) => batch::daemon(&args),
        Command::RunTask(args) => batch::run_task(&args),
    };
    match result {
        Ok(exit) => exit,
        // A reader that went away (`cascade status | head -1`) is no failure.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Exit::Ok,
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Failed
        }
    }
}
