//! Launch composition (pure): turns a stage, its campaign, login setup and job type into the
//! exact command a launch runs.

pub mod compose;
pub mod shell;
pub mod template;
