//! `cascade serve`: the web pages, the HTTP API and Prometheus metrics over a state
//! directory, beside a running controller or without one.

use std::net::SocketAddr;

use super::Exit;
use super::state::StateArg;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Pages (open http://ADDR/ in a browser):\n  /                                           the campaigns\n  /campaigns/NS/NAME, /stages/NS/NAME         a campaign's graph, a stage's submissions\n  /submissions/ID                             command, launch log, history, files\n  /catalog?q=QUERY, /catalog/files/NAME       catalog queries, definitions, parentage\n\nEndpoints:\n  GET /api/v1/status                          what `cascade status --format json` prints\n  GET /api/v1/campaigns                       the campaigns' statuses\n  GET /api/v1/namespaces/NS/stages/NAME       a stage's status and its submissions\n  GET /api/v1/submissions/ID                  a submission and its history\n  GET /metrics                                Prometheus metrics\n  GET /healthz\n  POST /api/v1/namespaces/NS/KIND/NAME/ACTION  an operator action (with --token-file):\n      campaigns: pause, resume; stages: pause, resume, launch, hold, release, kill,\n      reset-split; submissions: hold, release, kill, approve, force-located, recover.\n      Body: {\"why\": \"...\", \"who\": \"...\"} (launch: \"test\", \"dataset\"; recover: \"type\")\n\nExamples:\n  cascade serve --state .cascade\n  curl -s http://127.0.0.1:7878/api/v1/campaigns"
)]
pub struct ServeArgs {
    #[command(flatten)]
    pub state: StateArg,
    /// Address to listen on. The default answers this machine only; anyone who can reach
    /// another address can read every campaign's status and launch commands
    #[arg(long, default_value = "127.0.0.1:7878")]
    pub listen: SocketAddr,
    /// Take operator actions over HTTP (`POST .../{action}` with `Authorization: Bearer
    /// TOKEN`), the token being the first line of this file. Without it the API only reads
    #[arg(long)]
    pub token_file: Option<std::path::PathBuf>,
    /// Requests per second answered, in bursts of up to twice that (more get 429); 0: no limit
    #[arg(long, default_value_t = crate::server::api::DEFAULT_RATE_LIMIT)]
    pub rate_limit: u32,
    /// Let other hosts read the pages and the API (by default they answer clients on this
    /// machine's loopback only; /metrics and /healthz answer everyone)
    #[arg(long)]
    pub public_read: bool,
    #[command(flatten)]
    pub log: super::logging::LogArgs,
}

pub fn serve(args: &ServeArgs) -> std::io::Result<Exit> {
    // Refuse a directory that holds no state now, rather than answer 503 for ever.
    if let Err(e) = args.state.open_existing() {
        return Ok(e);
    }
    let token = match crate::server::api::read_token(args.token_file.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(Exit::Rejected);
        }
    };
    // Requests read the ledger in blocking tasks; the event loop itself needs one thread.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = match tokio::net::TcpListener::bind(args.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: cannot listen on {}: {e}", args.listen);
                return Ok(Exit::Failed);
            }
        };
        let addr = listener.local_addr()?;
        // Installed before saying we serve: a stop sent on that word is a clean stop.
        let stop = stopped()?;
        eprintln!(
            "cascade: serving {} on http://{addr}/ (pages /, API /api/v1/status, metrics /metrics); Ctrl-C stops",
            args.state.state.display()
        );
        let options = crate::server::api::ApiOptions {
            rate_limit: args.rate_limit,
            token,
            runtime_metrics: false,
            public_read: args.public_read,
        };
        crate::server::api::serve(listener, &args.state.state, options, stop).await?;
        Ok(Exit::Ok)
    })
}

/// A future that completes on SIGINT or SIGTERM (the handlers are installed now).
fn stopped() -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}
