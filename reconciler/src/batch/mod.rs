//! Batch systems: where a submission's jobs run and how they are observed and controlled.

pub mod local;
pub mod process;
pub mod runner;
