//! Loading YAML into the desired graph, and semantic validation (pure: bytes in, graph or
//! located diagnostics out).

pub mod de;
pub mod diagnostic;
pub mod graph;
pub mod load;
pub mod validate;
pub mod yaml;

pub use diagnostic::{Diagnostic, Severity};
pub use graph::{DesiredGraph, Edge, ObjectKey, Stage};
pub use load::{Resource, SourceFile, load};
pub use validate::{Validated, validate};

/// Loads and validates a set of files in one step.
pub fn load_and_validate(files: &[SourceFile]) -> (Vec<Resource>, Validated) {
    let (resources, diags) = load(files);
    let validated = validate(&resources, diags);
    (resources, validated)
}
