//! `cascade validate PATH...`

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use super::Exit;
use crate::model::{Diagnostic, Resource, load_and_validate};
use crate::source::dir::read_paths;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Files or directories of YAML resources (directories are searched for *.yaml, *.yml)
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

pub fn run(args: &Args) -> std::io::Result<Exit> {
    let files = read_paths(&args.paths)?;
    let (resources, validated) = load_and_validate(&files);
    // Buffered: a generated set can have thousands of diagnostics.
    let mut err = std::io::BufWriter::new(std::io::stderr().lock());
    print_diagnostics(&mut err, &validated.diagnostics)?;
    let errors = validated
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .count();
    if errors > 0 {
        writeln!(err, "error: {errors} error(s) in {} file(s)", files.len())?;
        err.flush()?;
        return Ok(Exit::Rejected);
    }
    err.flush()?;
    println!("ok: {}", summary(&resources));
    Ok(Exit::Ok)
}

pub fn print_diagnostics(out: &mut impl Write, diags: &[Diagnostic]) -> std::io::Result<()> {
    for d in diags {
        writeln!(out, "{d}")?;
    }
    Ok(())
}

/// `12 resources (1 Campaign, 5 CampaignStages, ...)`
pub fn summary(resources: &[Resource]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in resources {
        *counts.entry(r.kind()).or_default() += 1;
    }
    let parts: Vec<String> = cascade_crd::KINDS
        .iter()
        .filter_map(|k| {
            counts
                .get(k)
                .map(|n| format!("{n} {k}{}", if *n == 1 { "" } else { "s" }))
        })
        .collect();
    let n = resources.len();
    let noun = if n == 1 { "resource" } else { "resources" };
    if parts.is_empty() {
        return format!("{n} {noun}");
    }
    format!("{n} {noun} ({})", parts.join(", "))
}
