//! Batch systems: where a submission's jobs run and how they are observed and controlled.

pub mod condor;
pub mod external;
pub mod kubernetes;
pub mod local;
pub mod observer;
pub mod process;
pub mod runner;
pub mod sbatch;
pub mod slurm;
pub mod supervisor;
