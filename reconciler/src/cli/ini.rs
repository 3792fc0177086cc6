//! `cascade import-ini` and `cascade export-ini`.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::Exit;
use super::validate::print_diagnostics;
use crate::ini::import::{Imported, Options, import};
use crate::model::yaml::Pos;
use crate::model::{Diagnostic, SourceFile, load_and_validate};
use crate::source::dir::read_paths;

#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// POMS campaign .ini files, imported together as one set
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Directory to write one YAML file per .ini file into (default: print to stdout)
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Namespace (experiment) for everything (default: each campaign's `experiment`)
    #[arg(long)]
    pub namespace: Option<String>,
    /// Cascade YAML already converted (files or directories, repeatable): the login setups
    /// and job types it defines may be used by the imported campaigns
    #[arg(long = "with")]
    pub with: Vec<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// Files or directories of YAML resources
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// The campaign to export (`name` or `namespace/name`)
    #[arg(long, required_unless_present = "shared", conflicts_with = "shared")]
    pub campaign: Option<String>,
    /// Export every login setup and job type of a namespace instead (a shared file, as
    /// experiments keep their job types), used by a campaign or not
    #[arg(long, value_name = "NAMESPACE")]
    pub shared: Option<String>,
    /// File to write (default: stdout)
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// One YAML file written for an imported `.ini` file.
pub struct Rendered<'a> {
    pub name: String,
    pub text: String,
    pub source: &'a str,
    /// Where each document starts in `text` (line, 1-based) and the `.ini` section it comes
    /// from, so that a problem found in the YAML is told at the `.ini` line.
    pub origins: Vec<(u32, Pos)>,
}

/// The YAML text of each imported file, with the name it is written under.
pub fn render(imported: &[Imported]) -> Vec<(String, String)> {
    render_with_origins(imported)
        .into_iter()
        .map(|r| (r.name, r.text))
        .collect()
}

pub fn render_with_origins(imported: &[Imported]) -> Vec<Rendered<'_>> {
    imported
        .iter()
        .filter(|i| !i.documents.is_empty())
        .map(|i| {
            let stem = Path::new(&i.source)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "imported".into());
            let mut text = format!("# Imported from {} by `cascade import-ini`.\n", i.source);
            let mut origins = Vec::new();
            for (n, (d, section)) in i.documents.iter().zip(&i.sections).enumerate() {
                if n > 0 {
                    text.push_str("---\n");
                }
                origins.push((text.lines().count() as u32 + 1, *section));
                text.push_str(&d.to_yaml());
            }
            Rendered {
                name: format!("{stem}.yaml"),
                text,
                source: &i.source,
                origins,
            }
        })
        .collect()
}

/// A problem found in the converted YAML, told at the `.ini` section it comes from: that
/// YAML was never written, so pointing into it would help nobody.
fn at_ini_line(mut d: Diagnostic, rendered: &[Rendered], dir: &Path) -> Diagnostic {
    let Some(file) = rendered
        .iter()
        .find(|r| dir.join(&r.name).display().to_string() == d.file)
    else {
        return d; // a `--with` file: that one exists
    };
    if let Some((_, section)) = file
        .origins
        .iter()
        .rev()
        .find(|(line, _)| *line <= d.pos.line)
    {
        d.file = file.source.to_string();
        d.pos = *section;
    }
    d
}

pub fn import_ini(args: &ImportArgs) -> std::io::Result<Exit> {
    let mut files = Vec::new();
    for path in &args.files {
        let bytes = std::fs::read(path)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        let Ok(text) = String::from_utf8(bytes) else {
            eprintln!("{}:1:1: error[invalid-ini]: not UTF-8 text", path.display());
            return Ok(Exit::Rejected);
        };
        files.push((path.display().to_string(), text));
    }
    let with = if args.with.is_empty() {
        Vec::new()
    } else {
        read_paths(&args.with)?
    };
    let with_resources = crate::model::load(&with).resources;
    let names = |kind: &str| {
        with_resources
            .iter()
            .filter(|r| r.kind() == kind)
            .map(|r| r.name().to_string())
            .collect()
    };
    let opts = Options {
        namespace: args.namespace.clone(),
        login_setups: names("LoginSetup"),
        job_types: names("JobType"),
    };
    let (imported, mut diags) = import(&files, &opts);
    crate::model::diagnostic::sort_and_dedup(&mut diags);
    print_diagnostics(&mut std::io::stderr().lock(), &diags)?;
    if diags.iter().any(|d| d.is_error()) {
        eprintln!("error: nothing written: fix the errors above");
        return Ok(Exit::Rejected);
    }
    let rendered = render_with_origins(&imported);
    // What we write must pass `cascade validate`: check it as it will be read.
    let dir = args.out.clone().unwrap_or_default();
    // With what `--with` gives, as the two will be read together.
    let mut sources: Vec<SourceFile> = rendered
        .iter()
        .map(|r| SourceFile {
            path: dir.join(&r.name).display().to_string(),
            bytes: r.text.as_bytes().into(),
        })
        .collect();
    let converted = sources.len();
    sources.extend(with);
    let (resources, validated) = load_and_validate(&sources);
    let resources: Vec<_> = resources
        .iter()
        .filter(|r| sources[..converted].iter().any(|s| *s.path == *r.file))
        .collect();
    let mut found: Vec<Diagnostic> = validated
        .diagnostics
        .into_iter()
        .map(|d| at_ini_line(d, &rendered, &dir))
        .collect();
    crate::model::diagnostic::sort_and_dedup(&mut found);
    print_diagnostics(&mut std::io::stderr().lock(), &found)?;
    if validated.graph.is_none() {
        eprintln!("error: the converted resources do not validate; nothing written");
        return Ok(Exit::Rejected);
    }
    match &args.out {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            for r in &rendered {
                std::fs::write(dir.join(&r.name), &r.text)?;
            }
            println!(
                "imported {} from {} into {}",
                super::count(resources.len(), "resource", "resources"),
                super::count(args.files.len(), "file", "files"),
                dir.display()
            );
        }
        None => {
            let mut out = std::io::stdout().lock();
            for (n, r) in rendered.iter().enumerate() {
                if n > 0 {
                    writeln!(out, "---")?;
                }
                write!(out, "{}", r.text)?;
            }
        }
    }
    Ok(Exit::Ok)
}

pub fn export_ini(args: &ExportArgs) -> std::io::Result<Exit> {
    let files = read_paths(&args.paths)?;
    let (resources, validated) = load_and_validate(&files);
    print_diagnostics(&mut std::io::stderr().lock(), &validated.diagnostics)?;
    let Some(graph) = validated.graph else {
        eprintln!("error: the definitions do not validate; nothing to export");
        return Ok(Exit::Rejected);
    };
    let exported = match (&args.campaign, &args.shared) {
        (_, Some(namespace)) => crate::ini::export::export_shared(&resources, namespace),
        (Some(campaign), None) => {
            let (namespace, name) = match campaign.split_once('/') {
                Some((ns, n)) => (ns.to_string(), n.to_string()),
                None => {
                    let ns = graph
                        .campaigns
                        .keys()
                        .find(|k| &k.name == campaign)
                        .map(|k| k.namespace.to_string())
                        .unwrap_or_else(|| "default".into());
                    (ns, campaign.clone())
                }
            };
            crate::ini::export::export(&resources, &graph, &namespace, &name)
        }
        (None, None) => Err("name a campaign with --campaign, or --shared NAMESPACE".into()),
    };
    match exported {
        Ok((text, notes)) => {
            for n in notes {
                eprintln!("warning: {n}");
            }
            match &args.out {
                Some(path) => std::fs::write(path, text)?,
                None => print!("{text}"),
            }
            Ok(Exit::Ok)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(Exit::Rejected)
        }
    }
}
