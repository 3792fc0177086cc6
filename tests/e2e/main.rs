//! End-to-end tests: they run the built `cascade` binary as a user would, from the
//! repository root, and check its exit status and output.

mod batch;
mod browser;
mod cli;
mod condor;
mod crash;
mod datasets;
mod faults;
mod gitops;
mod ini;
mod kube;
mod notify;
mod operator;
mod pages;
mod plan;
mod processes;
mod run;
mod serve;
mod slurm;
mod stress;
mod support;
mod validate;
