//! The imperative shell: the controller loop and the executor of launches.

pub mod controller;
pub mod executor;
