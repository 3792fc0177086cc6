//! `cascade run`: the controller in the foreground until every stage has settled.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use super::Exit;
use super::state::StateArg;
use crate::runtime::controller::{self, Options};
use crate::runtime::definitions::{GitFollow, SourceSpec};
use crate::source::git::GitSource;

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Files or directories of YAML resources
    #[arg(required_unless_present_any = ["git", "kube"], conflicts_with_all = ["git", "kube"])]
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
    /// Serve the web pages, the HTTP API and Prometheus metrics of the state on this
    /// address (`127.0.0.1:7878`), as `cascade serve` does, while the controller runs
    #[arg(long, value_name = "ADDR")]
    pub serve: Option<std::net::SocketAddr>,
    /// With --serve: take operator actions over HTTP with this bearer token (the first line
    /// of the file), as `cascade serve --token-file` does
    #[arg(long, requires = "serve")]
    pub serve_token_file: Option<PathBuf>,
    /// With --serve: let other hosts read the pages and the API, as `cascade serve
    /// --public-read` does
    #[arg(long, requires = "serve")]
    pub serve_public_read: bool,
    #[command(flatten)]
    pub log: super::logging::LogArgs,
    // Last: their help headings would otherwise also head the options after them.
    #[command(flatten)]
    pub git: GitArgs,
    #[command(flatten)]
    pub kube: KubeArgs,
}

/// Following Cascade's custom resources in a Kubernetes cluster instead of files.
#[derive(clap::Args, Debug)]
#[command(next_help_heading = "Kubernetes source")]
pub struct KubeArgs {
    /// Watch Cascade's custom resources through the Kubernetes API (the kubeconfig, or the
    /// pod's service account in a cluster) and write their status back
    #[arg(long, conflicts_with = "git")]
    pub kube: bool,
    /// Watch only these namespaces (repeat, or separate with commas); default: all
    #[arg(
        long = "namespace",
        value_delimiter = ',',
        env = "CASCADE_NAMESPACES",
        requires = "kube"
    )]
    pub namespaces: Vec<String>,
    /// Launch only while holding a `coordination.k8s.io` Lease, so that of several replicas
    /// one launches
    #[arg(long, requires = "kube")]
    pub leader_election: bool,
    /// The Lease's name
    #[arg(
        long,
        default_value = "cascade-controller",
        requires = "leader_election"
    )]
    pub lease_name: String,
    /// The Lease's namespace; default: $POD_NAMESPACE, else `default`
    #[arg(long, requires = "leader_election")]
    pub lease_namespace: Option<String>,
    /// This replica's name in the Lease and in Events; default: $POD_NAME, else the host name
    #[arg(long, requires = "kube")]
    pub identity: Option<String>,
    /// Serve the validating admission webhook (`POST /validate`, HTTPS) on this address
    /// (`0.0.0.0:8443`); every replica serves it, leading or not
    #[arg(long, value_name = "ADDR", requires = "kube")]
    pub admission_listen: Option<std::net::SocketAddr>,
    /// The webhook's PEM certificate chain (read again when it changes)
    #[arg(
        long,
        value_name = "FILE",
        default_value = "/etc/cascade/admission/tls.crt",
        requires = "admission_listen"
    )]
    pub admission_cert: PathBuf,
    /// The webhook's PEM private key
    #[arg(
        long,
        value_name = "FILE",
        default_value = "/etc/cascade/admission/tls.key",
        requires = "admission_listen"
    )]
    pub admission_key: PathBuf,
}

impl KubeArgs {
    pub fn follow(&self) -> crate::k8s::KubeFollow {
        let identity = self
            .identity
            .clone()
            .or_else(|| std::env::var("POD_NAME").ok())
            .or_else(host_name)
            .unwrap_or_else(|| format!("cascade-{}", std::process::id()));
        crate::k8s::KubeFollow {
            namespaces: self.namespaces.clone(),
            lease: self.leader_election.then(|| crate::k8s::lease::Settings {
                namespace: self
                    .lease_namespace
                    .clone()
                    .or_else(|| std::env::var("POD_NAMESPACE").ok())
                    .unwrap_or_else(|| "default".into()),
                name: self.lease_name.clone(),
                identity: identity.clone(),
                duration: crate::k8s::LEASE_DURATION,
            }),
            admission: self
                .admission_listen
                .map(|listen| crate::k8s::admission::Settings {
                    listen,
                    cert: self.admission_cert.clone(),
                    key: self.admission_key.clone(),
                }),
            identity,
        }
    }
}

fn host_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    Some(name.trim().to_string()).filter(|n| !n.is_empty())
}

/// Following a git repository instead of files.
#[derive(clap::Args, Debug)]
#[command(next_help_heading = "Git source")]
pub struct GitArgs {
    /// Follow this repository (`file://`, `git://`, `http(s)://` URL or a path)
    #[arg(long = "git", value_name = "URL")]
    pub git: Option<String>,
    /// The branch to follow
    #[arg(long, default_value = "main", requires = "git")]
    pub branch: String,
    /// The directory of the repository that holds the definitions
    #[arg(long, default_value = ".", requires = "git")]
    pub path: String,
    /// How often the branch is fetched (webhooks fetch at once)
    #[arg(long, default_value = "60s", value_parser = parse_poll, requires = "git")]
    pub interval: Duration,
    /// A file with `user:password` (or `user:token`) for http(s); default:
    /// $CASCADE_GIT_USERNAME and $CASCADE_GIT_PASSWORD
    #[arg(long, requires = "git")]
    pub git_credentials: Option<PathBuf>,
    /// Receive webhooks of git hosts on this address (`127.0.0.1:8080`): `POST /webhook`
    #[arg(long, requires = "git")]
    pub listen: Option<std::net::SocketAddr>,
    /// The webhooks' shared secret, read from this file; default: $CASCADE_WEBHOOK_SECRET
    #[arg(long, requires = "listen")]
    pub webhook_secret_file: Option<PathBuf>,
}

impl GitArgs {
    /// Where the definitions come from, or why the options cannot work.
    pub fn source(&self, paths: &[PathBuf]) -> Result<SourceSpec, String> {
        let Some(url) = &self.git else {
            return Ok(SourceSpec::Dir(paths.to_vec()));
        };
        let credentials = match &self.git_credentials {
            Some(file) => {
                let text = std::fs::read_to_string(file)
                    .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
                let line = text.lines().next().unwrap_or("").trim();
                let (user, password) = line.split_once(':').ok_or_else(|| {
                    format!(
                        "{} must hold `user:password` on its first line",
                        file.display()
                    )
                })?;
                Some((user.to_string(), password.to_string()))
            }
            None => match (
                std::env::var("CASCADE_GIT_USERNAME"),
                std::env::var("CASCADE_GIT_PASSWORD"),
            ) {
                (Ok(u), Ok(p)) => Some((u, p)),
                _ => None,
            },
        };
        let secret = match &self.webhook_secret_file {
            Some(file) => Some(
                std::fs::read_to_string(file)
                    .map_err(|e| format!("cannot read {}: {e}", file.display()))?
                    .trim()
                    .as_bytes()
                    .to_vec(),
            ),
            None => std::env::var("CASCADE_WEBHOOK_SECRET")
                .ok()
                .map(|s| s.into_bytes()),
        };
        if self.listen.is_some() && secret.as_ref().is_none_or(|s| s.is_empty()) {
            return Err(
                "webhooks need a secret: give --webhook-secret-file FILE or CASCADE_WEBHOOK_SECRET"
                    .into(),
            );
        }
        // A plain path is a local repository.
        let url = if url.contains("://") {
            url.clone()
        } else {
            let abs = std::path::absolute(url).map_err(|e| e.to_string())?;
            format!("file://{}", abs.display())
        };
        Ok(SourceSpec::Git(GitFollow {
            source: GitSource {
                url,
                branch: self.branch.clone(),
                path: self.path.clone(),
                credentials,
            },
            interval: self.interval,
            listen: self.listen,
            secret,
        }))
    }
}

fn parse_poll(text: &str) -> Result<Duration, String> {
    let millis = text
        .strip_suffix("ms")
        .and_then(|n| n.parse::<u64>().ok())
        .or_else(|| cascade_crd::split::parse_duration(text).map(|s| s.saturating_mul(1000)));
    match millis {
        Some(ms) if (100..=86_400_000).contains(&ms) => Ok(Duration::from_millis(ms)),
        _ => Err(format!(
            "`{text}` is not a poll interval: write e.g. `500ms`, `2s` or `1m` (from 100ms to 1d)"
        )),
    }
}

pub fn run(args: &RunArgs) -> std::io::Result<Exit> {
    let source = match args.git.source(&args.paths) {
        Ok(_) if args.kube.kube => SourceSpec::Kube(args.kube.follow()),
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(Exit::Rejected);
        }
    };
    let opts = Options {
        source,
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
    let serve = args.serve;
    let public_read = args.serve_public_read;
    let token = match crate::server::api::read_token(args.serve_token_file.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(Exit::Rejected);
        }
    };
    let summary = match runtime.block_on(async move {
        if let Some(addr) = serve {
            let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                crate::ledger::LedgerError::Invalid(format!("cannot listen on {addr}: {e}"))
            })?;
            let bound = listener.local_addr()?;
            eprintln!("cascade: serving the pages and API of the state on http://{bound}/ (/api/v1/status, /metrics)");
            let state = opts.state.clone();
            let options = crate::server::api::ApiOptions {
                rate_limit: crate::server::api::DEFAULT_RATE_LIMIT,
                token,
                runtime_metrics: true,
                public_read,
            };
            tokio::spawn(async move {
                let served =
                    crate::server::api::serve(listener, &state, options, std::future::pending());
                if let Err(e) = served.await {
                    eprintln!("the API server stopped: {e}");
                }
            });
        }
        controller::run(opts).await
    }) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_intervals_are_read_or_refused_with_the_accepted_range() {
        assert_eq!(parse_poll("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_poll("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_poll("1d"), Ok(Duration::from_secs(86_400)));
        for bad in ["50ms", "2w", "99999999999w", "soon", "", "-1s"] {
            let err = parse_poll(bad).unwrap_err();
            assert!(err.contains("from 100ms to 1d"), "{bad}: {err}");
        }
    }
}
