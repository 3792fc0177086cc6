//! Catalog query time with 1,000,000 files. Run with `cargo bench -p cascade --bench catalog`.
//!
//! 500,000 raw files (run numbers, two versions) and 500,000 reconstructed children, one per
//! raw file, declared in batches; then the queries campaigns and the planner ask, best of 3.

use std::time::Instant;

use cascade::catalog::NewFile;
use cascade::ledger::Ledger;

mod common;
use common::peak_rss_kib;

const FILES: usize = 1_000_000;
const BATCH: usize = 20_000;

fn file(name: String, meta: Vec<(String, String)>, parents: Vec<String>) -> NewFile {
    NewFile {
        name,
        size: 1_000_000,
        checksum: String::new(),
        location: "/data".into(),
        metadata: meta,
        parents,
    }
}

fn main() {
    let dir = std::env::temp_dir().join(format!("cascade-bench-catalog-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut ledger = Ledger::open(&dir).expect("state");
    let half = FILES / 2;
    let started = Instant::now();
    for tier in ["raw", "reco"] {
        for start in (0..half).step_by(BATCH) {
            let batch: Vec<NewFile> = (start..start + BATCH)
                .map(|i| {
                    let meta = vec![
                        ("run_number".to_string(), (i / 100).to_string()),
                        (
                            "version".to_string(),
                            if i % 2 == 0 { "v1" } else { "v2" }.to_string(),
                        ),
                    ];
                    let parents = if tier == "reco" {
                        vec![format!("f{i:07}.raw")]
                    } else {
                        Vec::new()
                    };
                    file(format!("f{i:07}.{tier}"), meta, parents)
                })
                .collect();
            ledger.declare(&batch).expect("declare");
        }
    }
    let declare = started.elapsed().as_secs_f64();
    println!(
        "catalog: declared {FILES} files in {declare:.1} s ({:.1} µs per file, with metadata and parentage)",
        declare * 1e6 / FILES as f64
    );
    ledger
        .define("raw", "file_name like '%.raw'", "bench")
        .expect("define");
    for query in [
        "file_name f0123456.raw",
        "file_name like 'f012345%'",
        "run_number 4242",
        "run_number 100-120 and version v2",
        "defname: raw with limit 100 offset 250000",
        "defname: raw with stride 1000 offset 7",
        "ischildof:( run_number 777 and file_name like '%.raw' )",
        "isparentof:( file_name like 'f00012%.reco' )",
        "file_name like '%.reco' minus version v1",
    ] {
        let mut best = f64::MAX;
        let mut n = 0;
        for _ in 0..3 {
            let t = Instant::now();
            n = ledger.query_count(query).expect("query");
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!("catalog: {:>9.2} ms  {n:>7} files  {query}", best * 1e3);
    }
    if let Some(p) = peak_rss_kib() {
        println!("catalog: peak RSS {:.0} MiB", p as f64 / 1024.0);
    }
    let size = std::fs::metadata(dir.join("cascade.db"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!("catalog: database {:.0} MiB", size as f64 / 1_048_576.0);
    let _ = std::fs::remove_dir_all(&dir);
}
