//! Time and peak memory to load and validate 10,000 generated resources, then the time for
//! shapes that once made validation quadratic (a long chain, a wide join, thousands of unknown
//! references, a mapping of many keys).
//! Run with `cargo bench -p cascade --bench validate`.

use std::time::Instant;

use cascade::model::{SourceFile, load_and_validate};

mod common;
use common::{generate, peak_rss_kib};

fn main() {
    let files = generate(100, 99, 1);
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
    shapes();
}

const HEADER: &str = "apiVersion: cascade.dev/v1alpha1\n";

fn shapes() {
    let base = format!(
        "{HEADER}kind: Campaign\nmetadata: {{name: c}}\nspec: {{defaults: {{loginSetup: l, jobType: j, softwareVersion: v}}}}\n---\n{HEADER}kind: LoginSetup\nmetadata: {{name: l}}\nspec: {{host: localhost, account: a}}\n---\n{HEADER}kind: JobType\nmetadata: {{name: j}}\nspec: {{launchScript: x, outputFilePatterns: [\"%\"]}}\n"
    );
    let stage = |name: String, rest: &str| {
        format!(
            "---\n{HEADER}kind: CampaignStage\nmetadata: {{name: {name}}}\nspec: {{campaign: c{rest}}}\n"
        )
    };
    const N: usize = 30_000;
    let mut chain = base.clone();
    for i in 0..N {
        let dep = if i == 0 {
            String::new()
        } else {
            format!(", dependsOn: [{{stage: s{}}}]", i - 1)
        };
        chain.push_str(&stage(format!("s{i}"), &dep));
    }
    let mut join = base.clone();
    for i in 0..N {
        join.push_str(&stage(format!("s{i}"), ", type: generator"));
    }
    let deps: Vec<String> = (0..N).map(|i| format!("{{stage: s{i}}}")).collect();
    join.push_str(&stage(
        "joined".into(),
        &format!(", join: true, dependsOn: [{}]", deps.join(", ")),
    ));
    let mut unknown = String::new();
    for i in 0..20_000 {
        unknown.push_str(&format!(
            "---\n{HEADER}kind: Campaign\nmetadata: {{name: camp{i}}}\nspec: {{}}\n"
        ));
    }
    for i in 0..20_000 {
        unknown.push_str(&format!("---\n{HEADER}kind: CampaignStage\nmetadata: {{name: s{i}}}\nspec: {{campaign: nope{i}}}\n"));
    }
    let mut keys = format!("{HEADER}kind: Campaign\nmetadata: {{name: c}}\nspec:\n  keywords:\n");
    for i in 0..600_000 {
        keys.push_str(&format!("    k{i}: v\n"));
    }
    for (what, text, ok) in [
        ("a chain of 30,000 stages", chain, true),
        ("a join of 30,000 upstream stages", join, true),
        (
            "20,000 references to unknown campaigns among 20,000",
            unknown,
            false,
        ),
        ("a mapping of 600,000 keys", keys, true),
    ] {
        let files = [SourceFile {
            path: "shape.yaml".into(),
            bytes: text.into_bytes().into(),
        }];
        let started = Instant::now();
        let (_, validated) = load_and_validate(&files);
        let secs = started.elapsed().as_secs_f64();
        assert_eq!(
            validated.graph.is_some(),
            ok,
            "{what}: {:?}",
            validated.diagnostics.first()
        );
        println!(
            "validate: {what} ({:.1} MiB): {:.0} ms, {} diagnostic(s)",
            files[0].bytes.len() as f64 / 1_048_576.0,
            secs * 1e3,
            validated.diagnostics.len()
        );
    }
}
