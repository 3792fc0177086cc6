//! The HTTP side: the read-only API and metrics over a state directory, webhooks of git
//! hosts, and health.

pub mod api;
pub mod runtime_metrics;
pub mod webhook;
