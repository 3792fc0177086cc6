//! The HTTP side: the web pages, the API and metrics over a state directory, webhooks of git
//! hosts, and health.

pub mod api;
pub mod graph;
pub mod openapi;
pub mod pages;
pub mod runtime_metrics;
pub mod webhook;
