//! Cascade: declarative production campaigns.
//!
//! The pipeline: a source gives `(path, bytes)` pairs; [`model`] loads and validates them into
//! a [`model::DesiredGraph`] (pure); the planner decides; the shell executes.

pub mod cli;
pub mod launch;
pub mod model;
pub mod plan;
pub mod source;
pub mod split;
