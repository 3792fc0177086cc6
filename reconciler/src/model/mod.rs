//! Loading YAML into the desired graph, and semantic validation (pure: bytes in, graph or
//! located diagnostics out).

pub mod clone;
pub mod de;
pub mod diagnostic;
pub mod document;
pub mod graph;
pub mod load;
pub mod validate;
pub mod yaml;

pub use diagnostic::{Diagnostic, Severity};
pub use graph::{DesiredGraph, Edge, ObjectKey, Stage};
pub use load::{Identity, Loaded, Resource, SourceFile, load};
pub use validate::{Validated, validate};

/// The graph of a set of files, or every diagnostic as one text, a line each.
pub fn graph_or_errors(files: &[SourceFile]) -> Result<DesiredGraph, String> {
    let (_, validated) = load_and_validate(files);
    validated.graph.ok_or_else(|| {
        validated
            .diagnostics
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    })
}

/// Loads and validates a set of files in one step.
pub fn load_and_validate(files: &[SourceFile]) -> (Vec<Resource>, Validated) {
    let loaded = load(files);
    let validated = validate(&loaded.resources, &loaded.broken, loaded.diagnostics);
    (loaded.resources, validated)
}

#[cfg(test)]
mod fuzz_tests {
    //! The loader and validator are fed random and mutated documents: whatever comes in, they
    //! answer with a graph or diagnostics, never a panic.
    use super::*;
    use proptest::prelude::*;

    const SEEDS: [&str; 3] = [
        include_str!("../../../examples/eve_mc/setup.yaml"),
        include_str!("../../../examples/eve_mc/campaign.yaml"),
        include_str!("../../../examples/particle_scan/campaign.yaml"),
    ];

    fn run(text: Vec<u8>) {
        let files = [SourceFile {
            path: "fuzz.yaml".into(),
            bytes: text.into(),
        }];
        let (_, validated) = load_and_validate(&files);
        for d in &validated.diagnostics {
            assert!(d.pos.line >= 1, "unlocated diagnostic: {d}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            run(bytes);
        }

        #[test]
        fn random_yaml_like_text_never_panics(text in "[a-zA-Z:\\-\\[\\]{}&*!|>'\"%#, \n]{0,300}") {
            run(text.into_bytes());
        }

        #[test]
        fn mutated_examples_never_panic(
            seed in 0..SEEDS.len(),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..3, any::<u8>()), 1..8),
        ) {
            let mut bytes = SEEDS[seed].as_bytes().to_vec();
            for (at, op, byte) in edits {
                let i = at.index(bytes.len().max(1));
                match op {
                    0 if !bytes.is_empty() => { bytes.remove(i.min(bytes.len() - 1)); }
                    1 => bytes.insert(i.min(bytes.len()), b" :-[{&*%\t\n"[byte as usize % 10]),
                    _ if !bytes.is_empty() => { let j = i.min(bytes.len() - 1); bytes[j] = byte; }
                    _ => {}
                }
            }
            run(bytes);
        }
    }
}
