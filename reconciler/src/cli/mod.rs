//! The `cascade` command line: thin commands over the library.
//!
//! Exit codes: 0 success; 1 user input rejected (validation errors); 2 unexpected failure
//! (IO, internal).

pub mod generate;
pub mod plan;
pub mod validate;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "cascade",
    version,
    about = "Declarative production campaigns: validate, plan and run campaign definitions",
    after_help = "Exit status: 0 success, 1 input rejected (validation errors), 2 unexpected failure."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check campaign definitions: every error, located, and warnings
    Validate(validate::Args),
    /// Show what a first reconcile would launch, with exact command lines, and why the other
    /// stages wait
    Plan(plan::Args),
    /// Write one JSON Schema per kind
    Schema(generate::SchemaArgs),
    /// Write the CustomResourceDefinitions
    Crd(generate::CrdArgs),
}

/// Exit statuses by error class.
pub enum Exit {
    Ok,
    Rejected,
    Failed,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        match e {
            Exit::Ok => ExitCode::SUCCESS,
            Exit::Rejected => ExitCode::from(1),
            Exit::Failed => ExitCode::from(2),
        }
    }
}

pub fn run(cli: Cli) -> Exit {
    let result = match cli.command {
        Command::Validate(args) => validate::run(&args),
        Command::Plan(args) => plan::run(&args),
        Command::Schema(args) => generate::schema(&args),
        Command::Crd(args) => generate::crd(&args),
    };
    match result {
        Ok(exit) => exit,
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Failed
        }
    }
}
