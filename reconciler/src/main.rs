use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cascade::cli::Cli::parse();
    cascade::cli::run(cli).into()
}
