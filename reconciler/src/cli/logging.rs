//! The long-running commands' logs (`run`, `controller`, `serve`): events through `tracing`,
//! on standard error, as text for people or one JSON object per line for log collectors.
//! `CASCADE_LOG` filters them (`cascade=debug`, `warn`, ...); by default a controller or a
//! server logs from `info` up, and `cascade run`, which shows its progress itself, from `warn`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// One line per event for people
    #[default]
    Text,
    /// One JSON object per event (timestamp, level, target, fields)
    Json,
}

/// The log options of a long-running command.
#[derive(clap::Args, Debug, Clone)]
pub struct LogArgs {
    /// Log events as text or as JSON lines, on standard error (filtered by CASCADE_LOG, e.g.
    /// `info` or `cascade=debug`; default `info` for `controller` and `serve`, `warn` for `run`)
    #[arg(long, env = "CASCADE_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// Installs the subscriber (once per process; a second call changes nothing), logging from
/// `default_level` up unless `CASCADE_LOG` says otherwise.
pub fn init(args: &LogArgs, default_level: &str) {
    let filter =
        EnvFilter::try_from_env("CASCADE_LOG").unwrap_or_else(|_| EnvFilter::new(default_level));
    // A closed standard error (a supervisor gone, a pipe nobody reads) loses the logs, not
    // the process: the subscriber's own report of a failed write would panic there.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    let _ = match args.log_format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
            .try_init(),
        LogFormat::Json => builder.json().with_current_span(false).try_init(),
    };
}
