//! `cascade plan PATH [--state DIR] [--format text|json]`

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

use super::Exit;
use super::validate::print_diagnostics;
use crate::model::{ObjectKey, load_and_validate};
use crate::plan::{Action, FixedCatalog, LaunchAction, Observed, Plan, PlanInput, plan};
use crate::source::dir::read_paths;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Files or directories of YAML resources
    #[arg(required_unless_present = "repo")]
    pub paths: Vec<PathBuf>,
    /// A git repository: review the change from --base to --head (a pull request) instead
    #[arg(long, conflicts_with = "paths", requires_all = ["base", "head"])]
    pub repo: Option<PathBuf>,
    /// The revision before the change (a branch, tag or commit)
    #[arg(long, requires = "repo")]
    pub base: Option<String>,
    /// The revision after the change
    #[arg(long, requires = "repo")]
    pub head: Option<String>,
    /// The directory of the repository that holds the definitions
    #[arg(long, default_value = ".", requires = "repo")]
    pub path: String,
    /// With --repo: exit 2 when the change alters what production launches (a CI gate)
    #[arg(long, requires = "repo")]
    pub exit_code: bool,
    /// State directory of a controller: plan against what it has observed (without it, the
    /// plan of a first reconcile)
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Output for people (`text`), a pull-request comment (`markdown`, with --repo) or
    /// machines (`json`)
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// User the launches are made for (`%(experimenter)s`); default: $USER
    #[arg(long)]
    pub experimenter: Option<String>,
    #[command(flatten)]
    pub launch_timeout: LaunchTimeoutArg,
    #[command(flatten)]
    pub launch_settings: LaunchSettingsArgs,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Format {
    Text,
    Markdown,
    Json,
}

pub fn experimenter(given: &Option<String>) -> String {
    given
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "cascade".into())
}

/// Settings of the installation that launches carry in their environment.
#[derive(clap::Args, Debug, Clone)]
pub struct LaunchSettingsArgs {
    /// Where an experiment's uploaded files live, exported to launches as `UPLOADS`
    /// (`{experiment}` is the namespace); default: STATE/uploads/{experiment}
    #[arg(long, env = "CASCADE_UPLOADS")]
    pub uploads: Option<String>,
    /// `POMS_TEST` for POMS wrappers: which POMS instance they report to (empty on production)
    #[arg(long = "poms-test", env = "CASCADE_POMS_TEST", default_value = "")]
    pub poms_test: String,
}

impl LaunchSettingsArgs {
    /// The settings of launches made with the state directory `state`.
    pub fn settings(&self, state: &std::path::Path) -> crate::launch::compose::LaunchSettings {
        let state = std::path::absolute(state).unwrap_or_else(|_| state.to_path_buf());
        crate::launch::compose::LaunchSettings {
            state_dir: state.display().to_string(),
            uploads: self.uploads.clone().unwrap_or_else(|| {
                state
                    .join("uploads")
                    .join("{experiment}")
                    .display()
                    .to_string()
            }),
            poms_test: self.poms_test.clone(),
        }
    }
}

/// How long a launch may go without any job seen before it is `LaunchFailed`.
#[derive(clap::Args, Debug, Clone)]
pub struct LaunchTimeoutArg {
    /// A launch that shows no job within this time is LaunchFailed (`90s`, `30m`, `4h`, `1d`)
    #[arg(
        long = "launch-timeout",
        env = "CASCADE_LAUNCH_TIMEOUT",
        default_value = "4h",
        value_parser = parse_timeout
    )]
    pub seconds: i64,
}

fn parse_timeout(text: &str) -> Result<i64, String> {
    cascade_crd::split::parse_duration(text)
        .and_then(|s| i64::try_from(s).ok())
        .filter(|s| *s > 0)
        .ok_or_else(|| format!("`{text}` is not a duration: write a positive number with s, m, h, d or w, e.g. `4h`"))
}

pub fn run(args: &Args) -> std::io::Result<Exit> {
    if let Some(repo) = &args.repo {
        return super::review::run(args, repo);
    }
    let files = read_paths(&args.paths)?;
    let (resources, validated) = load_and_validate(&files);
    // The loaded resources and validation's temporaries were allocated on several threads'
    // heaps, where planning on this thread would not reuse them: they are freed and their
    // pages given back while this thread plans (a tenth of a second for 100,000 resources).
    let freeing = crate::memory::free_beside(resources);
    print_diagnostics(&mut std::io::stderr().lock(), &validated.diagnostics)?;
    let Some(graph) = validated.graph else {
        eprintln!("error: the definitions do not validate; nothing to plan");
        return Ok(Exit::Rejected);
    };
    let experimenter = experimenter(&args.experimenter);
    let settings = args.launch_settings.settings(
        args.state
            .as_deref()
            .unwrap_or(std::path::Path::new(".cascade")),
    );
    let plan = match plan_for(args, &graph, &settings, &experimenter) {
        Ok(plan) => plan,
        Err(exit) => return Ok(exit),
    };
    // Buffered: a plan of 100,000 stages is hundreds of thousands of lines, and the standard
    // output writes each line by itself otherwise.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match args.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &plan)?;
            writeln!(out)?;
        }
        Format::Text | Format::Markdown => print_text(&mut out, &plan, args.state.is_none())?,
    }
    out.flush()?;
    freeing.join();
    super::leave((files, validated.diagnostics, graph, plan));
    Ok(Exit::Ok)
}

/// The next reconcile's plan: against `--state` when given, else a first reconcile.
pub fn plan_for(
    args: &Args,
    graph: &crate::model::DesiredGraph,
    settings: &crate::launch::compose::LaunchSettings,
    experimenter: &str,
) -> Result<Plan, Exit> {
    let now = chrono::Utc::now().timestamp();
    Ok(match &args.state {
        Some(dir) => {
            let store = match crate::ledger::Ledger::open_existing(dir) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Err(Exit::Failed);
                }
            };
            let observed = store.observed().map_err(|e| {
                eprintln!("error: {e}");
                Exit::Failed
            })?;
            let catalog = store.catalog_view();
            plan(&PlanInput {
                graph,
                observed: &observed,
                catalog: &catalog,
                now,
                experimenter,
                launch_timeout: args.launch_timeout.seconds,
                local_offset: crate::runtime::local_offset(now),
                settings,
            })
        }
        None => plan(&PlanInput {
            graph,
            observed: &Observed::default(),
            catalog: &FixedCatalog::default(),
            now,
            experimenter,
            launch_timeout: args.launch_timeout.seconds,
            local_offset: crate::runtime::local_offset(now),
            settings,
        }),
    })
}

fn print_text(out: &mut impl Write, plan: &Plan, first: bool) -> std::io::Result<()> {
    let launches = plan.launches().count();
    writeln!(
        out,
        "{} of {}: {}, {}\n",
        if first {
            "First reconcile"
        } else {
            "Next reconcile"
        },
        super::count(plan.stages.len(), "stage", "stages"),
        super::count(launches, "launch", "launches"),
        super::count(
            plan.actions.len() - launches,
            "other action",
            "other actions"
        )
    )?;
    for action in &plan.actions {
        match action {
            Action::SetStatus {
                submission,
                from,
                to,
                reason,
            } => writeln!(out, "{submission}: {from} -> {to} ({reason})")?,
            Action::SkipRecovery {
                original,
                round,
                kind,
                ..
            } => writeln!(
                out,
                "{original}: recovery round {} ({}) has nothing to recover",
                round + 1,
                kind.as_str()
            )?,
            Action::ResetSplit { stage, to } => writeln!(
                out,
                "{stage}: split starts again from its first slice (splitResets: {to})"
            )?,
            Action::FirstSeen { .. } | Action::Launch(_) => {}
        }
    }
    let mut by_stage: HashMap<&ObjectKey, Vec<&LaunchAction>> = HashMap::new();
    for l in plan.launches() {
        by_stage.entry(&l.stage).or_default().push(l);
    }
    for status in &plan.stages {
        let mine = by_stage.remove(&status.stage).unwrap_or_default();
        if mine.is_empty() {
            writeln!(out, "{}: {}", status.stage, status.reason)?;
        }
        for l in mine {
            writeln!(
                out,
                "{}: launch submission {} ({}){}",
                l.stage,
                l.id,
                l.origin.describe(),
                l.dataset
                    .as_ref()
                    .map(|s| format!(" over `{s}`"))
                    .unwrap_or_default()
            )?;
            writeln!(out, "  command: {}", l.launch.command)?;
            writeln!(out, "  runs:    {}", l.launch.display)?;
            // The whole environment, as the JSON form has it, as shell assignments.
            writeln!(out, "  env:")?;
            for (k, v) in &l.launch.env {
                writeln!(out, "    {k}={}", crate::launch::shell::quote(v))?;
            }
        }
    }
    Ok(())
}
