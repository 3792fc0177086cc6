//! The state directory flag shared by the commands that read or write a controller's state.

use std::path::PathBuf;

use super::Exit;
use crate::ledger::Ledger;

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
    Exit::of(&e)
}
