use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    match cascade::cli::Cli::try_parse() {
        Ok(cli) => cascade::cli::run(cli).into(),
        // Help and version are answers; anything else clap refuses is input rejected (exit 1,
        // as for every other refused input), not clap's own code 2, which Cascade keeps for
        // failures of its environment.
        Err(e) => {
            let _ = e.print();
            if e.use_stderr() {
                cascade::cli::Exit::Rejected.into()
            } else {
                ExitCode::SUCCESS
            }
        }
    }
}
