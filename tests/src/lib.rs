//! Support shared by the end-to-end tests and benchmarks.

pub mod fake_apiserver;
