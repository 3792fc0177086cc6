//! Migration from POMS: its `.ini` campaign format, read and written.

pub mod export;
pub mod import;
pub mod parse;

#[cfg(test)]
mod tests;
