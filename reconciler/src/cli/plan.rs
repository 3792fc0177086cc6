//! `cascade plan PATH [--format text|json]`

use std::io::Write;
use std::path::PathBuf;

use super::Exit;
use super::validate::print_diagnostics;
use crate::model::load_and_validate;
use crate::plan::{StagePlan, first_reconcile};
use crate::source::dir::read_paths;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Files or directories of YAML resources
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Output for people (`text`) or machines (`json`)
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// User the launches are made for (`%(experimenter)s`); default: $USER
    #[arg(long)]
    pub experimenter: Option<String>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Format {
    Text,
    Json,
}

pub fn run(args: &Args) -> std::io::Result<Exit> {
    let files = read_paths(&args.paths)?;
    let (_, validated) = load_and_validate(&files);
    print_diagnostics(&mut std::io::stderr().lock(), &validated.diagnostics)?;
    let Some(graph) = validated.graph else {
        eprintln!("error: the definitions do not validate; nothing to plan");
        return Ok(Exit::Rejected);
    };
    let experimenter = args
        .experimenter
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "cascade".into());
    // No state yet: the plan of a first reconcile, with no catalog facts.
    let plan = first_reconcile(&graph, &|_| Vec::new(), &experimenter);
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &plan)?;
            writeln!(out)?;
        }
        Format::Text => {
            let launches = plan
                .iter()
                .filter(|p| matches!(p, StagePlan::Launch { .. }))
                .count();
            writeln!(
                out,
                "First reconcile of {} stage(s): {launches} launch(es), {} waiting\n",
                plan.len(),
                plan.len() - launches
            )?;
            for p in &plan {
                match p {
                    StagePlan::Launch {
                        stage,
                        submission,
                        slice,
                        command,
                        display,
                        env,
                        ..
                    } => {
                        writeln!(
                            out,
                            "{stage}: launch submission {submission}{}",
                            slice
                                .as_ref()
                                .map(|s| format!(" over `{s}`"))
                                .unwrap_or_default()
                        )?;
                        writeln!(out, "  command: {command}")?;
                        writeln!(out, "  runs:    {display}")?;
                        let shown: Vec<String> = env
                            .iter()
                            .filter(|(k, _)| k.starts_with("CASCADE_"))
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect();
                        writeln!(out, "  env:     {}", shown.join(" "))?;
                    }
                    StagePlan::Wait { stage, reason } => writeln!(out, "{stage}: {reason}")?,
                }
            }
        }
    }
    Ok(Exit::Ok)
}
