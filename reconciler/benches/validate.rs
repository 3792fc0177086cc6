//! Time and peak memory to load and validate 10,000 generated resources.
//! Run with `cargo bench -p cascade --bench validate`.

use std::time::Instant;

use cascade::model::load_and_validate;

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
}
