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

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
