//! The imperative shell: the controller loop and the executor of launches.

pub mod controller;
pub mod definitions;
pub mod executor;
pub mod notifications;

/// The UTC offset of the machine's time zone at `t` (unix seconds), in seconds. Read by the
/// shell and handed to the planner, which stays free of the environment.
pub fn local_offset(t: i64) -> i32 {
    use chrono::{Local, Offset, TimeZone};
    Local
        .timestamp_opt(t, 0)
        .single()
        .map_or(0, |d| d.offset().fix().local_minus_utc())
}
