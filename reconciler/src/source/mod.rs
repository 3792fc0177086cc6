//! Sources of desired state. Each produces `(path, bytes)` pairs for the one loader.

pub mod dir;
pub mod git;
