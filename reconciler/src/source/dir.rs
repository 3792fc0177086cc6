//! The directory source: YAML files named on the command line, or found under directories.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::model::SourceFile;
use crate::model::load::MAX_FILE_BYTES;

/// Collects `*.yaml` / `*.yml` files under each path (files named directly are taken whatever
/// their extension), sorted so that messages come in a stable order. Hidden entries (`.git`)
/// are skipped.
pub fn read_paths(paths: &[PathBuf]) -> io::Result<Vec<SourceFile>> {
    let mut found = Vec::new();
    for path in paths {
        let meta = fs::metadata(path).map_err(|e| annotate(e, path))?;
        if meta.is_dir() {
            let before = found.len();
            walk(path, &mut found)?;
            if found.len() == before {
                // Most likely a wrong path: say so rather than validate nothing and pass.
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no *.yaml or *.yml file under `{}`", path.display()),
                ));
            }
        } else {
            found.push(path.clone());
        }
    }
    found.sort();
    found.dedup();
    // A file costs an open and two reads: from 64 files on, two threads read faster than one.
    crate::parallel::map_weighed(&found, |_| 8, |p| read_one(p))
        .into_iter()
        .collect()
}

/// Paths in the order of their components, as `read_paths` sorts them: each directory's
/// entries by name, a directory's files where its name falls (so the final sort finds them
/// in order, which costs one comparison each instead of a full sort of paths).
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    let mut entries = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| annotate(e, dir))? {
        let entry = entry?;
        // Each name is copied once: sorting by `file_name()` would copy two per comparison.
        let name = entry.file_name();
        if !name.as_encoded_bytes().starts_with(b".") {
            entries.push((name, entry));
        }
    }
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    for (_, entry) in entries {
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            walk(&path, out)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            out.push(path);
        }
    }
    Ok(())
}

const READ_FIRST: usize = 16 * 1024;

/// Reads at most one byte past the loader's size limit: the loader refuses the file from
/// that, and a huge file (or `/dev/zero`) is never held in memory.
fn read_one(path: &Path) -> io::Result<SourceFile> {
    let file = fs::File::open(path).map_err(|e| annotate(e, path))?;
    // Most definition files are a few KiB: one read takes the whole file and one more sees
    // its end (asking for the size first would be a third call per file).
    let mut bytes = Vec::with_capacity(READ_FIRST);
    file.take(MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| annotate(e, path))?;
    Ok(SourceFile {
        path: display_path(path),
        bytes: bytes.into(),
    })
}

fn display_path(path: &Path) -> String {
    path.strip_prefix("./")
        .unwrap_or(path)
        .display()
        .to_string()
}

fn annotate(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(
        e.kind(),
        format!("failed to read `{}`: {e}", path.display()),
    )
}
