//! Cascade: declarative production campaigns.
//!
//! The pipeline: a source gives `(path, bytes)` pairs; [`model`] loads and validates them into
//! a [`model::DesiredGraph`] (pure); the planner decides; the shell executes.

pub mod batch;
pub mod catalog;
pub mod cli;
pub mod digest;
pub mod fast;
pub mod ini;
pub mod k8s;
pub mod launch;
pub mod ledger;
pub mod memory;
pub mod model;
pub mod parallel;
pub mod plan;
pub mod runtime;
pub mod server;
pub mod source;
pub mod split;
