//! Executing launches exactly once.
//!
//! A launch is reserved in the ledger first (a row with a unique identity), then its command
//! runs, then its outcome is recorded. While the command runs, a lock file is held by the
//! launch process itself (it is its stdin, inherited by everything the launch starts except
//! the batch daemon), so after a crash a restarted controller can tell a launch still running
//! (the lock is held) from one that is over. An open reservation whose launch is over is
//! resolved by asking the batch system for the submission's jobs: jobs found means launched;
//! none found means the command never got to submit, and only then is it run again.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::batch::external::{ENV_JOB_TAG, tag_of};
use crate::batch::local::ENV_STATE_DIR;
use crate::batch::observer;
use crate::ledger::{LaunchEnd, Ledger, Result};

/// Launch attempts of one reservation before it is recorded as `LaunchFailed`.
pub const MAX_ATTEMPTS: u32 = 3;

pub fn lock_path(state: &Path, id: &str) -> PathBuf {
    state.join("launches").join(format!("{id}.lock"))
}

/// What a restart finds about an open reservation.
#[derive(Debug, PartialEq, Eq)]
pub enum Reservation {
    /// Its launch command still runs (started by an earlier controller).
    Running,
    /// The launch is over and submitted jobs.
    Launched,
    /// The launch is over (or never started) and submitted nothing.
    NothingSubmitted,
}

pub fn inspect(ledger: &mut Ledger, id: &str) -> Result<Reservation> {
    let path = lock_path(&ledger.dir, id);
    if let Ok(file) = File::options().write(true).open(&path)
        && file.try_lock().is_err()
    {
        return Ok(Reservation::Running);
    }
    // Ids the launch printed before the crash are in its log.
    observer::bind_printed(ledger, id)?;
    Ok(if batch_id(ledger, id)?.is_none() {
        Reservation::NothingSubmitted
    } else {
        Reservation::Launched
    })
}

/// The submission's first job id: a job of the local batch system, or the first id its launch
/// printed on another.
pub fn batch_id(ledger: &Ledger, id: &str) -> Result<Option<String>> {
    if let Some(local) = crate::batch::local::jobs(ledger, Some(id))?.first()
        && observer::system_of(ledger, id)? == cascade_crd::BatchSystem::Local
    {
        return Ok(Some(format!("{}@local", local.id)));
    }
    observer::first_cluster(ledger, id)
}

/// Why a launch command could not be started, in words.
fn not_started(program: &str, argv: &[String], e: &std::io::Error) -> String {
    if e.raw_os_error() == Some(libc::E2BIG) {
        let bytes: usize = argv.iter().map(|a| a.len() + 1).sum();
        return format!(
            "the launch command is too long for the system ({bytes} bytes of arguments; E2BIG): the longest argument is {} bytes, and Linux takes at most 128 KiB in one",
            argv.iter().map(String::len).max().unwrap_or(0)
        );
    }
    format!("cannot start `{program}`: {e}")
}

/// Runs a reserved submission's launch command to its end and records the outcome. Blocking:
/// the controller calls it off its event loop.
pub fn launch(state: &Path, id: &str) -> Result<()> {
    let mut ledger = Ledger::open(state)?;
    let Some((argv, env, dir)) = ledger.launch_dir(id)? else {
        return Ok(());
    };
    let argv: Vec<String> = serde_json::from_str(&argv).unwrap_or_default();
    let tag = tag_of(&ledger.installation()?, id);
    let env: Vec<(String, String)> = serde_json::from_str(&env).unwrap_or_default();
    std::fs::create_dir_all(state.join("launches"))?;
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock_path(state, id))?;
    lock.lock()?;
    let log = File::options()
        .create(true)
        .append(true)
        .open(state.join("launches").join(format!("{id}.log")))?;
    let exe_dir = std::env::current_exe()?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let path = match std::env::var_os("PATH") {
        Some(p) => {
            let mut dirs = vec![exe_dir];
            dirs.extend(std::env::split_paths(&p));
            std::env::join_paths(dirs).unwrap_or(p)
        }
        None => exe_dir.into_os_string(),
    };
    let ended = match argv.split_first() {
        None => LaunchEnd::NotStarted("the launch has no command".into()),
        Some((program, args)) => match Command::new(program)
            .args(args)
            .current_dir(&dir)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env(ENV_STATE_DIR, std::path::absolute(state)?)
            .env(ENV_JOB_TAG, &tag)
            .env("PATH", path)
            .stdin(Stdio::from(lock.try_clone()?))
            .stdout(log.try_clone()?)
            .stderr(log)
            .status()
        {
            Ok(status) => LaunchEnd::Exited(crate::batch::process::exit_code(status)),
            Err(e) => LaunchEnd::NotStarted(not_started(program, &argv, &e)),
        },
    };
    observer::bind_printed(&mut ledger, id)?;
    let batch = batch_id(&ledger, id)?;
    ledger.record_launch(id, &ended, batch.as_deref())?;
    drop(lock);
    Ok(())
}
