//! The catalog (the role SAM plays for POMS): files, definitions, snapshots and projects, and
//! the query language that selects files.

pub mod query;
pub mod sql;
pub mod store;

pub use store::{CatalogError, FileInfo, LedgerCatalog, NewFile};
