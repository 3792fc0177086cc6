//! `cascade validate PATH...`

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use super::Exit;
use crate::model::{Diagnostic, Resource, load_and_validate};
use crate::source::dir::read_paths;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  cascade validate examples/\n  cascade validate --format github campaigns/   (annotations on a pull request)\n\nExit status: 0 valid (warnings allowed), 1 an error was found, 2 a path could not be read."
)]
pub struct Args {
    /// Files or directories of YAML resources (directories are searched for *.yaml, *.yml)
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// `text` for people; `json` (one array of diagnostics on stdout) for tools; `github` for
    /// workflow annotations on a pull request's files
    #[arg(long, value_enum, default_value = "text")]
    pub format: DiagnosticFormat,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiagnosticFormat {
    Text,
    Json,
    Github,
}

pub fn run(args: &Args) -> std::io::Result<Exit> {
    let files = read_paths(&args.paths)?;
    let (resources, validated) = load_and_validate(&files);
    let errors = validated
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .count();
    let exit = if errors > 0 { Exit::Rejected } else { Exit::Ok };
    match args.format {
        DiagnosticFormat::Text => {}
        DiagnosticFormat::Json => {
            let mut out = std::io::stdout().lock();
            let list: Vec<serde_json::Value> = validated.diagnostics.iter().map(to_json).collect();
            serde_json::to_writer_pretty(&mut out, &list)?;
            writeln!(out)?;
            return Ok(exit);
        }
        DiagnosticFormat::Github => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for d in &validated.diagnostics {
                writeln!(out, "{}", github_annotation(d))?;
            }
            out.flush()?;
            return Ok(exit);
        }
    }
    // Buffered: a generated set can have thousands of diagnostics.
    let mut err = std::io::BufWriter::new(std::io::stderr().lock());
    print_diagnostics(&mut err, &validated.diagnostics)?;
    if errors > 0 {
        writeln!(
            err,
            "error: {} in {}",
            super::count(errors, "error", "errors"),
            super::count(files.len(), "file", "files")
        )?;
        err.flush()?;
        return Ok(Exit::Rejected);
    }
    err.flush()?;
    println!("ok: {}", summary(&resources));
    super::leave((files, resources, validated));
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

fn severity(d: &Diagnostic) -> &'static str {
    if d.is_error() { "error" } else { "warning" }
}

fn to_json(d: &Diagnostic) -> serde_json::Value {
    serde_json::json!({
        "severity": severity(d),
        "file": d.file,
        "line": d.pos.line,
        "column": d.pos.col,
        "code": d.code,
        "message": d.message,
        "hint": d.hint,
    })
}

/// `::error file=F,line=L,col=C,title=cascade code::message` (GitHub workflow command): the
/// message shows on the line of the pull request's diff.
fn github_annotation(d: &Diagnostic) -> String {
    // Workflow-command escaping: properties also escape `:` and `,`.
    let data = |s: &str| {
        s.replace('%', "%25")
            .replace('\r', "%0D")
            .replace('\n', "%0A")
    };
    let property = |s: &str| data(s).replace(':', "%3A").replace(',', "%2C");
    let message = match &d.hint {
        Some(h) => format!("{}\nhelp: {h}", d.message),
        None => d.message.clone(),
    };
    format!(
        "::{} file={},line={},col={},title={}::{}",
        severity(d),
        property(&d.file),
        d.pos.line,
        d.pos.col,
        property(&format!("cascade {}", d.code)),
        data(&message)
    )
}
