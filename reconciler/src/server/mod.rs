//! The controller's HTTP side: webhooks of git hosts and health.

pub mod webhook;
