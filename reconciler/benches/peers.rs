//! Cascade against the tools users would pick instead, side by side in one run: each figure
//! runs Cascade and its peer alternately for several rounds on the same generated inputs and
//! prints the median and range of each, their ratio, and each side's peak RSS, with the
//! machine's load before and after.
//!
//! - validate 10,000 resources (the whole process) against `check-jsonschema` over the same
//!   documents, one per file;
//! - a chain of 100 stages of one job each (`cascade run`) against Snakemake running 100 chained
//!   rules with `--cores 2`;
//! - 10,000 trivial jobs on two slots (`cascade submit`, until the last job's end is recorded)
//!   against `xargs -P 2` and GNU `parallel -j 2`.
//!
//! `scripts/bench.sh` installs the peers (check-jsonschema and Snakemake into `.tools/venv`,
//! GNU parallel from Debian) and runs this with `cargo bench -p cascade --bench peers`;
//! `-- --rounds N --jobs N` change the rounds (3) and the job count. Each side of the
//! validate figure runs once unmeasured before each measured run, so that both read warm
//! files. Timings are printed, never asserted.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cascade::ledger::Ledger;

mod common;

/// One measured run: wall seconds and the peak RSS of the process and its waited children.
#[derive(Clone, Copy)]
struct Run {
    seconds: f64,
    rss_mib: f64,
}

/// Runs `command` to its end; the peak RSS comes from `wait4` (the largest of the process
/// and the descendants it waited for), which also reaps it.
#[allow(clippy::zombie_processes)]
fn measure(command: &mut Command) -> Run {
    // The figure before may leave thousands of files to write back (10,000 jobs' directories)
    // and exited processes to clean up: each side starts once they are written and the
    // machine is quiet, not while the disk and a core are busy.
    // SAFETY: sync takes no arguments and cannot fail.
    unsafe { libc::sync() };
    settle();
    let started = Instant::now();
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start");
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{command:?} failed ({status})"
    );
    Run {
        seconds: started.elapsed().as_secs_f64(),
        rss_mib: usage.ru_maxrss as f64 / 1024.0,
    }
}

/// Waits (at most 10 s) until the machine's cores were at least 90 % idle over 200 ms.
fn settle() {
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    let mut before = cpu_times();
    while Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
        let now = cpu_times();
        let (busy, idle) = (now.0 - before.0, now.1 - before.1);
        if busy + idle > 0 && idle * 10 >= (busy + idle) * 9 {
            return;
        }
        before = now;
    }
}

/// (busy, idle) jiffies of all cores since boot, from /proc/stat (zeros where unreadable).
fn cpu_times() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    let total: u64 = fields.iter().take(8).sum();
    (total - idle, idle)
}

fn cascade() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cascade"))
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

fn venv(tool: &str) -> PathBuf {
    root().join(".tools/venv/bin").join(tool)
}

fn fresh(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cascade-peers-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// How to run one side once (on inputs it prepares itself, fresh each round).
type Side = (&'static str, Box<dyn Fn() -> Run>);

/// A figure: Cascade first, then its peers.
struct Figure {
    name: &'static str,
    /// Whether each side runs once, unmeasured, right before its measured run (as `hyperfine
    /// --warmup 1`): a tenth-of-a-second figure otherwise measures whether the previous
    /// figure's work pushed its files and program out of the page cache (a cold run of
    /// `cascade validate` blocks thousands of times on reads: 0.4 s instead of 0.06 s).
    warm_up: bool,
    sides: Vec<Side>,
}

/// 10,000 resources, one document per file: a login setup, a job type, 100 campaigns and
/// their stages.
fn validate_inputs(resources: usize) -> PathBuf {
    let dir = fresh("validate");
    let write = |n: usize, text: String| {
        std::fs::write(dir.join(format!("r{n:06}.yaml")), text).expect("write");
    };
    write(0, "apiVersion: cascade.dev/v1alpha1\nkind: LoginSetup\nmetadata: {name: ls, namespace: exp}\nspec: {host: localhost, account: prod}\n".into());
    write(1, "apiVersion: cascade.dev/v1alpha1\nkind: JobType\nmetadata: {name: jt, namespace: exp}\nspec:\n  launchScript: fife_launch -c gen.cfg\n  outputFilePatterns: [\"%.root\"]\n".into());
    let campaigns = 100;
    for c in 0..campaigns {
        write(
            2 + c,
            format!(
                "apiVersion: cascade.dev/v1alpha1\nkind: Campaign\nmetadata: {{name: camp{c}, namespace: exp}}\nspec:\n  defaults: {{loginSetup: ls, jobType: jt, softwareVersion: v1}}\n"
            ),
        );
    }
    let stages = resources - 2 - campaigns;
    for s in 0..stages {
        let c = s % campaigns;
        let upstream = if s >= campaigns {
            format!(
                "  dependsOn: [{{stage: s{}, filePattern: \"%.root\"}}]\n",
                s - campaigns
            )
        } else {
            "  type: generator\n".into()
        };
        write(
            2 + campaigns + s,
            format!(
                "apiVersion: cascade.dev/v1alpha1\nkind: CampaignStage\nmetadata: {{name: s{s}, namespace: exp}}\nspec:\n  campaign: camp{c}\n{upstream}"
            ),
        );
    }
    dir
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("inputs")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files
}

/// A campaign of `n` chained stages of one job each, and the Snakefile of the same chain.
fn chain_inputs(n: usize) -> PathBuf {
    let dir = fresh("chain");
    let mut yaml = String::from(
        "apiVersion: cascade.dev/v1alpha1\nkind: LoginSetup\nmetadata: {name: here, namespace: exp}\nspec: {host: localhost, account: prod}\n---\napiVersion: cascade.dev/v1alpha1\nkind: JobType\nmetadata: {name: step, namespace: exp}\nspec:\n  launchScript: cascade submit --jobs 1 -- sh -c 'touch $CASCADE_OUTPUT_DIR/$CASCADE_SUBMISSION_ID.out'\n  outputFilePatterns: [\"%.out\"]\n---\napiVersion: cascade.dev/v1alpha1\nkind: Campaign\nmetadata: {name: chain, namespace: exp}\nspec:\n  defaults: {loginSetup: here, jobType: step, softwareVersion: v1, completion: {type: located, percent: 100}}\n",
    );
    let mut snake = String::new();
    for i in 0..n {
        yaml.push_str(&format!("---\napiVersion: cascade.dev/v1alpha1\nkind: CampaignStage\nmetadata: {{name: s{i}, namespace: exp}}\nspec:\n  campaign: chain\n"));
        if i == 0 {
            yaml.push_str("  type: generator\n");
            snake.push_str(&format!(
                "rule s{i}:\n    output: \"s{i}.out\"\n    shell: \"touch {{output}}\"\n\n"
            ));
        } else {
            yaml.push_str(&format!(
                "  dependsOn: [{{stage: s{}, filePattern: \"%.out\"}}]\n",
                i - 1
            ));
            snake.push_str(&format!("rule s{i}:\n    input: \"s{}.out\"\n    output: \"s{i}.out\"\n    shell: \"touch {{output}}\"\n\n", i - 1));
        }
    }
    let all = format!("rule all:\n    input: \"s{}.out\"\n\n", n - 1);
    std::fs::write(dir.join("chain.yaml"), yaml).expect("chain.yaml");
    std::fs::write(dir.join("Snakefile"), format!("{all}{snake}")).expect("Snakefile");
    dir
}

/// `cascade submit` of `jobs` trivial jobs, until the ledger has the last one's end.
fn cascade_jobs(jobs: usize) -> Run {
    let state = fresh("jobs");
    let started = Instant::now();
    let submit = measure(&mut common::submit_trivial_jobs(&state, jobs));
    let ledger = Ledger::open(&state).expect("ledger");
    loop {
        let done = ledger
            .scalar_i64("SELECT COUNT(*) FROM jobs WHERE state IN ('succeeded', 'failed')")
            .expect("count");
        if done as usize >= jobs {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Run {
        seconds: started.elapsed().as_secs_f64(),
        rss_mib: submit.rss_mib,
    }
}

fn median_and_range(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn main() {
    let rounds = common::arg("--rounds", 3usize).max(1);
    let jobs = common::arg("--jobs", 10_000usize);
    for tool in ["check-jsonschema", "snakemake"] {
        assert!(
            venv(tool).exists(),
            "{tool} is not in .tools/venv: run scripts/bench.sh, which installs the peers"
        );
    }
    let validate_dir = validate_inputs(10_000);
    let chain_dir = chain_inputs(100);
    let figures = [
        Figure {
            name: "validate 10k resources",
            warm_up: true,
            sides: vec![
                ("cascade validate", {
                    let d = validate_dir.clone();
                    Box::new(move || measure(cascade().arg("validate").arg(&d)))
                }),
                ("check-jsonschema", {
                    let d = validate_dir.clone();
                    Box::new(move || {
                        measure(
                            Command::new(venv("check-jsonschema"))
                                .arg("--schemafile")
                                .arg(root().join("schemas/resource.json"))
                                .args(yaml_files(&d)),
                        )
                    })
                }),
            ],
        },
        Figure {
            name: "chain of 100 one-job stages",
            warm_up: false,
            sides: vec![
                ("cascade run", {
                    let d = chain_dir.clone();
                    Box::new(move || {
                        let state = fresh("chain-state");
                        measure(
                            cascade()
                                .arg("run")
                                .arg(d.join("chain.yaml"))
                                .arg("--state")
                                .arg(&state)
                                .arg("-q"),
                        )
                    })
                }),
                ("snakemake --cores 2", {
                    let d = chain_dir.clone();
                    Box::new(move || {
                        for i in 0..100 {
                            let _ = std::fs::remove_file(d.join(format!("s{i}.out")));
                        }
                        measure(
                            Command::new(venv("snakemake"))
                                .args(["--cores", "2", "--quiet", "all"])
                                .current_dir(&d),
                        )
                    })
                }),
            ],
        },
        Figure {
            name: "10k trivial jobs, 2 slots",
            warm_up: false,
            sides: vec![
                ("cascade submit", Box::new(move || cascade_jobs(jobs))),
                (
                    "xargs -P 2",
                    Box::new(move || {
                        measure(
                            Command::new("sh")
                                .args(["-c", &format!("seq {jobs} | xargs -P 2 -n 1 true")]),
                        )
                    }),
                ),
                (
                    "parallel -j 2",
                    Box::new(move || {
                        measure(
                            Command::new("sh")
                                .args(["-c", &format!("seq {jobs} | parallel -j 2 true")]),
                        )
                    }),
                ),
            ],
        },
    ];
    let load_before = load();
    // Rounds interleave the sides, so a change in the machine's load falls on both.
    let mut runs: Vec<Vec<Vec<Run>>> = figures
        .iter()
        .map(|f| vec![Vec::new(); f.sides.len()])
        .collect();
    for round in 0..rounds {
        for (f, figure) in figures.iter().enumerate() {
            for (s, (side, run)) in figure.sides.iter().enumerate() {
                if figure.warm_up {
                    run();
                }
                let r = run();
                eprintln!(
                    "round {}: {} / {side}: {:.2} s, {:.0} MiB",
                    round + 1,
                    figure.name,
                    r.seconds,
                    r.rss_mib
                );
                runs[f][s].push(r);
            }
        }
    }
    println!(
        "machine: {} cores; load {load_before} before, {} after; {rounds} rounds, interleaved (validate: each side warmed up by one unmeasured run)",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load()
    );
    println!("| figure | side | median s (range) | vs cascade: median (range) | peak RSS MiB |");
    println!("|---|---|---|---|---|");
    for (f, figure) in figures.iter().enumerate() {
        let ours: Vec<f64> = runs[f][0].iter().map(|r| r.seconds).collect();
        for (s, (side, _)) in figure.sides.iter().enumerate() {
            let secs: Vec<f64> = runs[f][s].iter().map(|r| r.seconds).collect();
            let (m, lo, hi) = median_and_range(secs.clone());
            let ratios: Vec<f64> = secs.iter().zip(&ours).map(|(p, c)| p / c).collect();
            let (rm, rlo, rhi) = median_and_range(ratios);
            let rss = runs[f][s].iter().map(|r| r.rss_mib).fold(0.0, f64::max);
            let ratio = if s == 0 {
                "1".to_string()
            } else {
                format!("{rm:.2}× ({rlo:.2}–{rhi:.2})")
            };
            println!(
                "| {} | {side} | {m:.2} ({lo:.2}–{hi:.2}) | {ratio} | {rss:.0} |",
                if s == 0 { figure.name } else { "" }
            );
        }
    }
    for d in [validate_dir, chain_dir] {
        let _ = std::fs::remove_dir_all(d);
    }
}
