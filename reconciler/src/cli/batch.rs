//! The local batch system's commands: `submit`, `q`, `hold`, `release`, `rm`, and the hidden
//! `batchd` that it runs itself.

use std::io::Write;

use super::Exit;
use super::state::StateArg;
use crate::batch::local::{self, Control, ENV_OUTPUT_PATTERNS};
use crate::ledger::Ledger;
use crate::plan::format_time;

#[derive(clap::Args, Debug)]
pub struct SubmitArgs {
    /// Number of jobs (with input files: at most one job per file)
    #[arg(long, default_value_t = 1)]
    pub jobs: u32,
    /// Submission the jobs belong to (default: $CASCADE_SUBMISSION_ID, set by launches)
    #[arg(long, env = "CASCADE_SUBMISSION_ID", hide_env_values = true)]
    pub submission: String,
    /// Catalog query of the input files, when the submission has no project yet (a submit
    /// outside a launch); launches make the project themselves
    #[arg(long)]
    pub input: Option<String>,
    #[command(flatten)]
    pub state: StateArg,
    /// Where the jobs run: `local` (Cascade's own batch system), `slurm` (one `sbatch
    /// --array` call, task N running job N) or `kubernetes` (one Indexed Job, index N running
    /// job N); default: the launch's job type's batch system
    #[arg(long, env = "CASCADE_BATCH_SYSTEM", default_value = "local", value_parser = ["local", "slurm", "kubernetes"])]
    pub batch_system: String,
    #[command(flatten)]
    pub resources: SlurmResources,
    #[command(flatten)]
    pub pod: PodArgs,
    /// The job's command and arguments
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// What each Slurm task asks for (with `--batch-system slurm`).
#[derive(clap::Args, Debug)]
#[command(next_help_heading = "Slurm resources (with --batch-system slurm)")]
pub struct SlurmResources {
    /// Time limit of each task (`sbatch --time`, e.g. `30:00`)
    #[arg(long)]
    pub time: Option<String>,
    /// Memory of each task (`sbatch --mem`, e.g. `2G`)
    #[arg(long)]
    pub mem: Option<String>,
    /// CPUs of each task (`sbatch --cpus-per-task`)
    #[arg(long)]
    pub cpus: Option<u32>,
    /// Partition (`sbatch --partition`)
    #[arg(long)]
    pub partition: Option<String>,
    /// Another `sbatch` option, passed as one argument (`--sbatch-arg=--qos=short`); repeatable
    #[arg(long = "sbatch-arg", value_parser = sbatch_option, allow_hyphen_values = true)]
    pub sbatch_args: Vec<String>,
}

/// What each Kubernetes pod runs in and asks for (with `--batch-system kubernetes`).
#[derive(clap::Args, Debug)]
#[command(next_help_heading = "Kubernetes pods (with --batch-system kubernetes)")]
pub struct PodArgs {
    /// The container image the jobs run in (it must hold the job's command)
    #[arg(long, env = "CASCADE_KUBE_IMAGE")]
    pub image: Option<String>,
    /// The namespace of the Job; default: the kubeconfig's (the pod's, in a cluster)
    #[arg(long = "kube-namespace", env = "CASCADE_KUBE_NAMESPACE")]
    pub namespace: Option<String>,
    /// CPU request and limit of each pod (`500m`, `2`)
    #[arg(long = "pod-cpu")]
    pub cpu: Option<String>,
    /// Memory request and limit of each pod (`2Gi`)
    #[arg(long = "pod-memory")]
    pub memory: Option<String>,
    /// Most pods running at once; default: one per job
    #[arg(long)]
    pub parallelism: Option<u32>,
}

fn sbatch_option(text: &str) -> Result<String, String> {
    if text.starts_with("--") && text.len() > 2 {
        Ok(text.to_string())
    } else {
        Err(format!(
            "`{text}` is not an sbatch option: write it whole, as `--name=value`"
        ))
    }
}

fn open(state: &StateArg) -> Result<Ledger, Exit> {
    state.open()
}

/// A submission name becomes a directory under the state's `jobs/`: it must stay one.
fn check_submission_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@+".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "submission name `{}` is not a plain name: use letters, digits, `.`, `_`, `-`, `@` and `+`, not starting with `.` (it names a directory of the state)",
            name.escape_debug()
        ))
    }
}

pub fn submit(args: &SubmitArgs) -> std::io::Result<Exit> {
    if let Err(e) = check_submission_name(&args.submission) {
        eprintln!("error: {e}");
        return Ok(Exit::Rejected);
    }
    let mut ledger = match open(&args.state) {
        Ok(l) => l,
        Err(e) => return Ok(e),
    };
    // The job sees the launch's CASCADE_* and POMS* environment.
    let env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("CASCADE_") || k.starts_with("POMS"))
        .collect();
    let patterns: Vec<String> = std::env::var(ENV_OUTPUT_PATTERNS)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    let cwd = std::env::current_dir()?;
    let slurm = args.batch_system == "slurm";
    let kubernetes = args.batch_system == "kubernetes";
    let spec = local::JobSpec {
        jobs: args.jobs,
        argv: &args.command,
        cwd: &cwd,
        env: &env,
        patterns: &patterns,
        delegated: slurm || kubernetes,
    };
    let submitted = if kubernetes {
        let p = &args.pod;
        let pod = crate::batch::kubernetes::PodSpec {
            image: p.image.clone().unwrap_or_default(),
            namespace: p.namespace.clone(),
            cpu: p.cpu.clone(),
            memory: p.memory.clone(),
            parallelism: p.parallelism,
        };
        crate::batch::kubernetes::submit(
            &mut ledger,
            &args.submission,
            args.input.as_deref(),
            &spec,
            &pod,
        )
    } else if slurm {
        let r = &args.resources;
        let resources = crate::batch::sbatch::Resources {
            time: r.time.clone(),
            mem: r.mem.clone(),
            cpus: r.cpus,
            partition: r.partition.clone(),
            extra: r.sbatch_args.clone(),
        };
        // sbatch's own words, which is how the launch's output binds the array.
        crate::batch::sbatch::submit(
            &mut ledger,
            &args.submission,
            args.input.as_deref(),
            &spec,
            &resources,
        )
        .map(|id| format!("Submitted batch job {id}"))
    } else {
        local::submit(&mut ledger, &args.submission, args.input.as_deref(), &spec)
    };
    match submitted {
        Ok(id) => {
            println!("{id}");
            Ok(Exit::Ok)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(Exit::Failed)
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct QueueArgs {
    /// Only the jobs of this submission
    pub submission: Option<String>,
    #[command(flatten)]
    pub state: StateArg,
}

pub fn queue(args: &QueueArgs) -> std::io::Result<Exit> {
    let ledger = match args.state.open_existing() {
        Ok(l) => l,
        Err(e) => return Ok(e),
    };
    let jobs = local::jobs(&ledger, args.submission.as_deref()).map_err(std::io::Error::other)?;
    // Jobs that are not over with no daemon watching them (it died, and no controller runs to
    // start another): what this listing shows would stay as it is for ever. Start one.
    let open = |j: &local::JobRow| matches!(j.state.as_str(), "idle" | "running" | "held");
    if jobs.iter().any(open)
        && !local::daemon_running(&ledger.dir).map_err(std::io::Error::other)?
    {
        local::ensure_daemon(&ledger.dir).map_err(std::io::Error::other)?;
        eprintln!(
            "note: no batch daemon was watching these jobs; one was started (it runs again the jobs a daemon that died was running)"
        );
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<12} {:<28} {:>4} {:<10} {:>7} {:>5} {:<21} COMMAND",
        "JOB ID", "SUBMISSION", "IDX", "STATE", "PID", "EXIT", "STARTED"
    )?;
    for j in &jobs {
        writeln!(
            out,
            "{:<12} {:<28} {:>4} {:<10} {:>7} {:>5} {:<21} {}",
            format!("{}@local", j.id),
            j.submission,
            j.index,
            j.state,
            j.pid.map_or("-".into(), |p| p.to_string()),
            j.exit_code.map_or("-".into(), |c| c.to_string()),
            j.started.map_or("-".into(), format_time),
            j.command
        )?;
    }
    let count = |s: &str| jobs.iter().filter(|j| j.state == s).count();
    writeln!(
        out,
        "{} jobs: {} idle, {} running, {} held, {} succeeded, {} failed, {} removed",
        jobs.len(),
        count("idle"),
        count("running"),
        count("held"),
        count("succeeded"),
        count("failed"),
        count("removed")
    )?;
    Ok(Exit::Ok)
}

#[derive(clap::Args, Debug)]
pub struct ControlArgs {
    /// A job id (`12@local` or `12`), a submission id, or `all`
    pub target: String,
    #[command(flatten)]
    pub state: StateArg,
}

pub fn control(args: &ControlArgs, action: Control) -> std::io::Result<Exit> {
    let mut ledger = match open(&args.state) {
        Ok(l) => l,
        Err(e) => return Ok(e),
    };
    let n = local::control(&mut ledger, &args.target, action).map_err(std::io::Error::other)?;
    if n == 0 {
        eprintln!("error: no job of `{}` can be changed that way", args.target);
        return Ok(Exit::Rejected);
    }
    println!("{} changed", super::count(n, "job", "jobs"));
    Ok(Exit::Ok)
}

#[derive(clap::Args, Debug)]
pub struct DaemonArgs {
    #[command(flatten)]
    pub state: StateArg,
}

pub fn daemon(args: &DaemonArgs) -> std::io::Result<Exit> {
    local::daemon(&args.state.state).map_err(std::io::Error::other)?;
    Ok(Exit::Ok)
}

#[derive(clap::Args, Debug)]
pub struct RunTaskArgs {
    /// The submission whose job runs
    #[arg(long)]
    pub submission: String,
    /// The job's index (the array task id)
    #[arg(long)]
    pub index: i64,
    #[command(flatten)]
    pub state: StateArg,
}

/// One Slurm array task: runs its job and exits with the job's exit code.
pub fn run_task(args: &RunTaskArgs) -> std::io::Result<Exit> {
    match crate::batch::sbatch::run_task(&args.state.state, &args.submission, args.index) {
        Ok(code) => {
            std::io::stdout().flush()?;
            std::process::exit(code.clamp(0, 255));
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(Exit::Failed)
        }
    }
}
