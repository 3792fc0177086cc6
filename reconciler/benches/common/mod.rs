//! What the benchmarks share: a generated campaign set and the process's peak memory.
// Each benchmark uses only part of this module.
#![allow(dead_code)]

use cascade::model::SourceFile;

/// `campaigns` chains of `stages_per_campaign` stages: the first splits a list of `slices`
/// items with a self-dependency, each other stage runs once per upstream submission.
pub fn generate(campaigns: usize, stages_per_campaign: usize, slices: usize) -> Vec<SourceFile> {
    let mut files = Vec::new();
    files.push(SourceFile {
        path: "setup.yaml".into(),
        bytes: "apiVersion: cascade.dev/v1alpha1\nkind: LoginSetup\nmetadata: {name: ls, namespace: exp}\nspec: {host: localhost, account: prod, setup: 'export X=%(experiment)s'}\n---\napiVersion: cascade.dev/v1alpha1\nkind: JobType\nmetadata: {name: jt, namespace: exp}\nspec:\n  launchScript: fife_launch -c gen.cfg\n  parameters:\n    - [\"--stage=\", gen]\n    - [\"-Oglobal.release=\", \"%(version)s\"]\n  outputFilePatterns: [\"%.root\"]\n".as_bytes().into(),
    });
    let items: Vec<String> = (0..slices).map(|i| format!("ds{i}")).collect();
    for c in 0..campaigns {
        let mut text = format!(
            "apiVersion: cascade.dev/v1alpha1\nkind: Campaign\nmetadata: {{name: camp{c}, namespace: exp}}\nspec:\n  keywords: {{release: v{c}}}\n  defaults: {{loginSetup: ls, jobType: jt, softwareVersion: \"%(release)s\"}}\n"
        );
        for s in 0..stages_per_campaign {
            text.push_str(&format!(
                "---\napiVersion: cascade.dev/v1alpha1\nkind: CampaignStage\nmetadata: {{name: c{c}-s{s}, namespace: exp}}\nspec:\n  campaign: camp{c}\n  completion: {{type: located, percent: 90}}\n  parameterOverrides:\n    - [\"-Oglobal.sam_dataset=\", \"%(dataset)s\"]\n"
            ));
            if s == 0 {
                text.push_str(&format!(
                    "  dataset: {}\n  split: list\n  dependsOn: [{{stage: c{c}-s0}}]\n",
                    items.join(",")
                ));
            } else {
                text.push_str(&format!(
                    "  dependsOn: [{{stage: c{c}-s{}, filePattern: \"%.root\"}}]\n",
                    s - 1
                ));
            }
        }
        files.push(SourceFile {
            path: format!("campaign{c}.yaml"),
            bytes: text.into_bytes().into(),
        });
    }
    files
}

/// Peak resident memory of this process so far, in KiB.
pub fn peak_rss_kib() -> Option<u64> {
    rss_field("self", "VmHWM:")
}

/// A memory field of /proc/PID/status, in KiB.
pub fn rss_field(pid: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// `cascade submit` of `jobs` trivial jobs (`true`) on two slots into `state`.
pub fn submit_trivial_jobs(state: &std::path::Path, jobs: usize) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_cascade"));
    c.args([
        "submit",
        "--jobs",
        &jobs.to_string(),
        "--submission",
        "bench.1",
        "--state",
    ])
    .arg(state)
    .args(["--", "true"])
    .env("CASCADE_LOCAL_SLOTS", "2");
    c
}

/// The value after `name` on the command line (`-- --rounds 5`), or `default`.
pub fn arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
