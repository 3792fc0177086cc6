//! Time and peak memory to load and validate 10,000 generated resources.
//! Run with `cargo bench -p cascade --bench validate`.

use std::time::Instant;

use cascade::model::{SourceFile, load_and_validate};

fn generate(campaigns: usize, stages_per_campaign: usize) -> Vec<SourceFile> {
    let mut files = Vec::new();
    files.push(SourceFile {
        path: "setup.yaml".into(),
        bytes: "apiVersion: cascade.dev/v1alpha1\nkind: LoginSetup\nmetadata: {name: ls, namespace: exp}\nspec: {host: localhost, account: prod, setup: 'export X=%(experiment)s'}\n---\napiVersion: cascade.dev/v1alpha1\nkind: JobType\nmetadata: {name: jt, namespace: exp}\nspec:\n  launchScript: fife_launch -c gen.cfg\n  parameters:\n    - [\"--stage=\", gen]\n    - [\"-Oglobal.release=\", \"%(version)s\"]\n  outputFilePatterns: [\"%.root\"]\n".as_bytes().to_vec(),
    });
    for c in 0..campaigns {
        let mut text = format!(
            "apiVersion: cascade.dev/v1alpha1\nkind: Campaign\nmetadata: {{name: camp{c}, namespace: exp}}\nspec:\n  keywords: {{release: v{c}}}\n  defaults: {{loginSetup: ls, jobType: jt, softwareVersion: \"%(release)s\"}}\n"
        );
        for s in 0..stages_per_campaign {
            text.push_str(&format!(
                "---\napiVersion: cascade.dev/v1alpha1\nkind: CampaignStage\nmetadata: {{name: c{c}-s{s}, namespace: exp}}\nspec:\n  campaign: camp{c}\n  completion: {{type: located, percent: 90}}\n  parameterOverrides:\n    - [\"-Oglobal.sam_dataset=\", \"%(dataset)s\"]\n"
            ));
            if s == 0 {
                text.push_str("  dataset: ds\n  split: nfiles(10)\n");
            } else {
                text.push_str(&format!(
                    "  dependsOn: [{{stage: c{c}-s{}, filePattern: \"%.root\"}}]\n",
                    s - 1
                ));
            }
        }
        files.push(SourceFile {
            path: format!("campaign{c}.yaml"),
            bytes: text.into_bytes(),
        });
    }
    files
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn main() {
    let files = generate(100, 99);
    let bytes: usize = files.iter().map(|f| f.bytes.len()).sum();
    let before = peak_rss_kib();
    let mut best = f64::MAX;
    let mut count = 0;
    for _ in 0..3 {
        let started = Instant::now();
        let (resources, validated) = load_and_validate(&files);
        let secs = started.elapsed().as_secs_f64();
        assert!(
            validated.graph.is_some(),
            "{:?}",
            validated.diagnostics.first()
        );
        count = resources.len();
        best = best.min(secs);
    }
    println!(
        "validate: {count} resources, {:.1} MiB of YAML",
        bytes as f64 / 1_048_576.0
    );
    println!(
        "validate: best of 3 = {:.1} ms ({:.1} µs per resource)",
        best * 1e3,
        best * 1e6 / count as f64
    );
    if let (Some(b), Some(p)) = (before, peak_rss_kib()) {
        println!(
            "validate: peak RSS {:.1} MiB (before loading: {:.1} MiB)",
            p as f64 / 1024.0,
            b as f64 / 1024.0
        );
    }
}
