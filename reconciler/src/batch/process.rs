//! The processes of the local batch system: whether a recorded job is still the process
//! that was started (a pid can be reused), whether its process group still has members (what
//! a job started outlives the job), and signals sent only to the group recorded.
//!
//! A job is started as the leader of its own process group, so its pid is the group id.
//! Linux does not hand out a pid while a process group of that id has members; so when the
//! pid belongs to another process (another start time), the recorded group is empty and
//! nothing may be signalled.

/// The start time of process `pid` in clock ticks since boot (field 22 of
/// `/proc/<pid>/stat`), or `None` if there is no such process.
pub fn start_time(pid: i64) -> Option<u64> {
    if pid <= 0 {
        return None;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces and `)`.
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Fields from 3 (state) on; the start time is field 22.
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// What is left of a job's process group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    /// The group's leader recorded still runs.
    Alive,
    /// The leader ended, but other processes of its group still run.
    Orphaned,
    /// Nothing of it is left (or its pid now names another process).
    Gone,
}

/// What is left of the group led by the process started as `pid` at `started` (its start time; `None` for
/// jobs recorded before start times were kept, trusted by pid alone).
pub fn group(pid: i64, started: Option<u64>) -> Group {
    match start_time(pid) {
        Some(now) if started.is_none_or(|s| s == now) => Group::Alive,
        Some(_) => Group::Gone,
        None if group_exists(pid) => Group::Orphaned,
        None => Group::Gone,
    }
}

fn group_exists(pgid: i64) -> bool {
    // Signal 0 checks without signalling; EPERM still means the group exists.
    pgid > 0
        && (unsafe { libc::kill(-(pgid as libc::pid_t), 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM))
}

/// Sends `signal` to the process group of the process started as `pid` at `started`, if
/// anything of it is left; returns whether it was sent.
pub fn signal_group(pid: i64, started: Option<u64>, signal: libc::c_int) -> bool {
    match group(pid, started) {
        Group::Alive | Group::Orphaned => unsafe { libc::kill(-(pid as libc::pid_t), signal) == 0 },
        Group::Gone => false,
    }
}

/// An exit status as a shell reports it: the exit code, or 128 + the signal that ended the
/// process (`SIGSEGV` is 139, `SIGTERM` 143, `SIGKILL` 137).
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(128)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::process::Command;

    #[test]
    fn a_process_is_known_by_its_start_time() {
        let me = std::process::id() as i64;
        let started = start_time(me).expect("our own start time");
        assert_eq!(group(me, Some(started)), Group::Alive);
        assert_eq!(group(me, None), Group::Alive);
        // The same pid with another start time is another process: never ours to signal.
        assert_eq!(group(me, Some(started + 1)), Group::Gone);
        assert!(!signal_group(me, Some(started + 1), 0));
    }

    #[test]
    fn an_orphaned_group_is_seen_and_killed() {
        // A leader that starts a long child in its own group, then exits: the group lives on.
        let leader = Command::new("sh")
            .args(["-c", "sleep 30 >/dev/null 2>&1 & echo $!"])
            .process_group(0)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let pgid = leader.id() as i64;
        let started = start_time(pgid);
        let out = leader.wait_with_output().unwrap();
        let child: i64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        assert_eq!(group(pgid, started), Group::Orphaned);
        assert!(signal_group(pgid, started, libc::SIGKILL));
        for _ in 0..100 {
            if start_time(child).is_none() || group(pgid, started) == Group::Gone {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // The killed child may linger as a zombie of init; its group is empty of live work.
        let state = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
        assert!(state.is_empty() || state.contains(") Z"), "{state}");
    }

    #[test]
    fn signals_are_told_apart_in_exit_codes() {
        for (script, code) in [
            ("exit 3", 3),
            ("kill -SEGV $$", 139),
            ("kill -TERM $$", 143),
            ("kill -KILL $$", 137),
        ] {
            let status = Command::new("sh").args(["-c", script]).status().unwrap();
            assert_eq!(exit_code(status), code, "{script}");
        }
    }
}
