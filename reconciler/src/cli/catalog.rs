//! `cascade catalog declare|query|define|snapshot|show`.

use std::io::Write;

use super::Exit;
use super::state::StateArg;
use crate::catalog::{CatalogError, NewFile};

#[derive(clap::Subcommand, Debug)]
pub enum CatalogCommand {
    /// Declare files (with metadata and parents); jobs call this for their outputs
    Declare(DeclareArgs),
    /// List the files a query selects
    Query(QueryArgs),
    /// Name a query (a dataset definition)
    Define(DefineArgs),
    /// Freeze the files a query selects now
    Snapshot(QueryArgs),
    /// Show a file's metadata, parents and children, or the definitions
    Show(ShowArgs),
}

#[derive(clap::Args, Debug)]
pub struct DeclareArgs {
    /// Files to declare (their name in the catalog is the file name)
    #[arg(required = true)]
    pub files: Vec<std::path::PathBuf>,
    /// Metadata `key=value` (repeatable)
    #[arg(long = "meta", short)]
    pub meta: Vec<String>,
    /// Parent file names (repeatable); inside a job, default: the job's input files
    #[arg(long = "parent", short)]
    pub parents: Vec<String>,
    #[command(flatten)]
    pub state: StateArg,
}

#[derive(clap::Args, Debug)]
pub struct QueryArgs {
    /// A query, e.g. "defname: raw and run_number 40-45 with limit 10"
    pub query: String,
    /// Only print the number of files
    #[arg(long)]
    pub count: bool,
    #[command(flatten)]
    pub state: StateArg,
}

#[derive(clap::Args, Debug)]
pub struct DefineArgs {
    pub name: String,
    pub query: String,
    #[command(flatten)]
    pub state: StateArg,
}

#[derive(clap::Args, Debug)]
pub struct ShowArgs {
    /// A file name
    pub file: Option<String>,
    /// List the definitions
    #[arg(long)]
    pub definitions: bool,
    /// Output for people (`text`) or machines (`json`)
    #[arg(long, value_enum, default_value = "text")]
    pub format: super::plan::Format,
    #[command(flatten)]
    pub state: StateArg,
}

fn report(e: CatalogError) -> Exit {
    match e {
        // Located like a compiler's message: `query:1:5: error: ...`, `error:` said once.
        CatalogError::Query(q) => {
            eprintln!("{q}");
            Exit::Rejected
        }
        CatalogError::Ledger(l) => {
            eprintln!("error: {l}");
            Exit::of(&l)
        }
    }
}

pub fn run(cmd: &CatalogCommand) -> std::io::Result<Exit> {
    let state = match cmd {
        CatalogCommand::Declare(a) => &a.state,
        CatalogCommand::Query(a) | CatalogCommand::Snapshot(a) => &a.state,
        CatalogCommand::Define(a) => &a.state,
        CatalogCommand::Show(a) => &a.state,
    };
    // Reading commands work on a state that cannot be written; declaring and defining make
    // the state when there is none yet.
    let reading = matches!(cmd, CatalogCommand::Query(_) | CatalogCommand::Show(_));
    let opened = if reading {
        state.open_existing()
    } else {
        state.open()
    };
    let mut ledger = match opened {
        Ok(l) => l,
        Err(e) => return Ok(e),
    };
    let mut out = std::io::stdout().lock();
    match cmd {
        CatalogCommand::Declare(a) => {
            // Inside a job, files carry the job's identity and have its inputs as parents,
            // as the files the batch system declares itself do.
            let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
            let mut metadata = crate::batch::runner::output_metadata(&env);
            let parents: Vec<String> = if a.parents.is_empty() {
                env("CASCADE_INPUT_FILES")
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|p| std::path::Path::new(p).file_name())
                    .map(|n| n.to_string_lossy().into_owned())
                    .collect()
            } else {
                a.parents.clone()
            };
            for m in &a.meta {
                let Some((k, v)) = m.split_once('=') else {
                    eprintln!("error: metadata `{m}` is not `key=value`");
                    return Ok(Exit::Rejected);
                };
                metadata.retain(|(key, _)| key != k);
                metadata.push((k.to_string(), v.to_string()));
            }
            let mut files = Vec::new();
            for path in &a.files {
                let meta = std::fs::metadata(path).map_err(|e| {
                    std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
                })?;
                let abs = std::path::absolute(path)?;
                files.push(NewFile {
                    name: abs
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    size: meta.len() as i64,
                    checksum: crate::batch::runner::checksum(path)?,
                    location: abs
                        .parent()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                    metadata: metadata.clone(),
                    parents: parents.clone(),
                });
            }
            match ledger.declare(&files) {
                Ok(n) => writeln!(
                    out,
                    "declared {} of {}",
                    super::count(n, "new file", "new files"),
                    files.len()
                )?,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Ok(Exit::Rejected);
                }
            }
        }
        CatalogCommand::Query(a) => {
            if a.count {
                match ledger.query_count(&a.query) {
                    Ok(n) => writeln!(out, "{n}")?,
                    Err(e) => return Ok(report(e)),
                }
            } else {
                match ledger.query_names(&a.query) {
                    Ok(names) => {
                        for n in names {
                            writeln!(out, "{n}")?;
                        }
                    }
                    Err(e) => return Ok(report(e)),
                }
            }
        }
        CatalogCommand::Define(a) => {
            match ledger.define(&a.name, &a.query, &super::plan::experimenter(&None)) {
                Ok(()) => writeln!(out, "defined {}", a.name)?,
                Err(e) => return Ok(report(e)),
            }
        }
        CatalogCommand::Snapshot(a) => match ledger.snapshot(&a.query) {
            Ok((id, n)) => writeln!(out, "snapshot {id}: {}", super::count(n, "file", "files"))?,
            Err(e) => return Ok(report(e)),
        },
        CatalogCommand::Show(a) => {
            if a.definitions || a.file.is_none() {
                for (name, query) in ledger.definitions().map_err(std::io::Error::other)? {
                    writeln!(out, "{name}: {query}")?;
                }
            }
            if let Some(file) = &a.file {
                match ledger.file_info(file).map_err(std::io::Error::other)? {
                    Some(info) if matches!(a.format, super::plan::Format::Json) => {
                        serde_json::to_writer_pretty(&mut out, &info)?;
                        writeln!(out)?;
                    }
                    Some(info) => {
                        writeln!(out, "name:      {}", info.name)?;
                        writeln!(out, "size:      {} bytes", info.size)?;
                        writeln!(out, "checksum:  {}", info.checksum)?;
                        writeln!(out, "location:  {}", info.location)?;
                        writeln!(out, "declared:  {}", crate::plan::rfc3339(info.created))?;
                        for (k, v) in &info.metadata {
                            writeln!(out, "metadata:  {k} = {v}")?;
                        }
                        for p in &info.parents {
                            writeln!(out, "parent:    {p}")?;
                        }
                        for c in &info.children {
                            writeln!(out, "child:     {c}")?;
                        }
                    }
                    None => {
                        eprintln!("error: no file `{file}` in the catalog");
                        return Ok(Exit::Rejected);
                    }
                }
            }
        }
    }
    Ok(Exit::Ok)
}
