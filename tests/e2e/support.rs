//! Finding and running the built binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root (the workspace), where examples and fixtures live.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The `cascade` binary built alongside this test (target/<profile>/cascade).
pub fn cascade_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current test executable");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test executable lives in target/<profile>/deps");
    let bin = dir.join(format!("cascade{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} not built: build it first with `cargo build --workspace --bins` (scripts/test.sh does)",
        bin.display()
    );
    bin
}

/// Runs `cascade ARGS` in the repository root.
pub fn cascade(args: &[&str]) -> Output {
    Command::new(cascade_bin())
        .args(args)
        .current_dir(root())
        .output()
        .expect("run cascade")
}

/// Runs `cascade` expecting it to fail with `code` and say `needle` on stderr; returns stderr.
pub fn expect_failure(args: &[&str], code: i32, needle: &str) -> String {
    let out = cascade(args);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
    assert!(
        stderr.contains(needle),
        "{args:?}: no `{needle}` in:\n{stderr}"
    );
    stderr
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A fresh directory under the system's temporary directory, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("cascade-e2e-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // Jobs of a failed test may still write here for a moment; best effort.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `cascade status --format json` of a state directory.
pub fn status_json(state: &str) -> serde_json::Value {
    let out = cascade(&["status", "--state", state, "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("status json")
}

/// The files a catalog query selects.
pub fn catalog_query(state: &str, query: &str) -> Vec<String> {
    let out = cascade(&["catalog", "query", "--state", state, query]);
    assert!(out.status.success(), "{query}: {}", text(&out.stderr));
    text(&out.stdout).lines().map(String::from).collect()
}

/// eve_mc's outputs in a state's catalog: each tier once, four files each, two ntuples.
pub fn assert_eve_mc_outputs(state: &str, context: &str) {
    for (tier, n) in [
        ("gen", 4),
        ("g4", 4),
        ("detsim", 4),
        ("reco", 4),
        ("ana", 2),
    ] {
        let files = catalog_query(state, &format!("file_name like '%.{tier}.root'"));
        assert_eq!(files.len(), n, "{context}: {tier}: {files:?}");
    }
}
