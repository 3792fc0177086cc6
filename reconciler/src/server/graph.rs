//! A campaign's stage graph as SVG: one box per stage, coloured by its state, and one arrow
//! per dependency, labelled with its file pattern (a stage-complete trigger is dashed; a join
//! is said in the box). The layout is `layout-rs`'s (a Graphviz-style layered layout); its
//! SVG writer escapes every text it draws, and the only attributes added here are class names
//! made of letters and a stage name escaped for an attribute.

use layout::backends::svg::SVGWriter;
use layout::core::base::Orientation;
use layout::core::color::Color;
use layout::core::style::{LineStyleKind, StyleAttr};
use layout::std_shapes::render::get_shape_size;
use layout::std_shapes::shapes::{Arrow, Element, LineEndKind, ShapeKind};
use layout::topo::layout::VisualGraph;

use crate::ledger::SavedStage;
use cascade_crd::DependencyTrigger;

/// Fill colour of a stage in a state (the page's legend says the same).
fn fill(state: &str) -> &'static str {
    match state {
        "Completed" | "Exhausted" => "#c8e6c9",
        "Running" => "#bbdefb",
        "Failed" => "#ffcdd2",
        "Degraded" => "#ffe0b2",
        _ => "#eeeeee",
    }
}

/// Letters only: a state read from the ledger becomes a class name.
fn class_word(state: &str) -> String {
    state.chars().filter(char::is_ascii_alphabetic).collect()
}

/// The SVG of the stages' graph, or `None` when there is nothing to draw (or the layout
/// failed, in which case the page lists the stages without a drawing).
pub fn campaign_svg(stages: &[&SavedStage]) -> Option<String> {
    if stages.is_empty() {
        return None;
    }
    let drawn = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| draw(stages)));
    drawn.ok()
}

fn draw(stages: &[&SavedStage]) -> String {
    let mut graph = VisualGraph::new(Orientation::TopToBottom);
    let mut handles = Vec::with_capacity(stages.len());
    for s in stages {
        let shape = s.status.as_ref().map(|st| &st.shape);
        let mut label = format!("{}\n{}", s.stage.name, s.state);
        if let Some(st) = &s.status {
            label.push_str(&format!("\n{:.0}%", st.progress * 100.0));
        }
        if shape.is_some_and(|sh| sh.join) {
            label.push_str("\n(join)");
        }
        let kind = ShapeKind::new_box(&label);
        let look = StyleAttr::new(
            Color::fast("#37474f"),
            2,
            Some(Color::fast(fill(&s.state))),
            6,
            14,
        );
        let size = get_shape_size(Orientation::TopToBottom, &kind, look.font_size, false);
        let properties = format!(
            "class=\"stage state-{}\" data-stage=\"{}\"",
            class_word(&s.state),
            super::pages::escape_attribute(&s.stage.name)
        );
        let element =
            Element::create_with_properties(kind, look, Orientation::TopToBottom, size, properties);
        handles.push(graph.add_node(element));
    }
    for (i, s) in stages.iter().enumerate() {
        let Some(st) = &s.status else { continue };
        for edge in &st.shape.depends_on {
            let Some(from) = stages.iter().position(|u| u.stage.name == edge.stage) else {
                continue;
            };
            let whole = edge.trigger == DependencyTrigger::StageComplete;
            let text = if whole {
                format!("{} (stage complete)", edge.file_pattern)
            } else {
                edge.file_pattern.clone()
            };
            let look = StyleAttr::new(Color::fast("#455a64"), 2, None, 0, 12);
            let arrow = Arrow::new(
                LineEndKind::None,
                LineEndKind::Arrow,
                if whole {
                    LineStyleKind::Dashed
                } else {
                    LineStyleKind::Normal
                },
                &text,
                &look,
                &None,
                &None,
            );
            graph.add_edge(arrow, handles[from], handles[i]);
        }
    }
    let mut svg = SVGWriter::new();
    graph.do_it(false, false, false, &mut svg);
    let text = svg.finalize();
    // Inlined in HTML: the XML declaration has no place there.
    match text.find("<svg") {
        Some(at) => text[at..].to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ObjectKey;
    use crate::plan::{ShapeEdge, StageShape, StageState, StageStatus};

    fn stage(name: &str, state: StageState, upstream: &[(&str, DependencyTrigger)]) -> SavedStage {
        let mut status: StageStatus = serde_json::from_value(serde_json::json!({
            "stage": {"namespace": "exp", "name": name},
            "campaign": {"namespace": "exp", "name": "c"},
            "state": state,
            "reason": "r",
            "settled": false, "blocked": false, "locatedPercent": 0.0, "progress": 0.5,
            "submissions": 0, "chainsLocated": 0, "chainsFailed": 0, "chainsInFlight": 0,
            "jobs": {"total": 0, "idle": 0, "running": 0, "held": 0, "succeeded": 0, "failed": 0, "removed": 0},
            "launches": 0, "queued": [], "nextFire": null, "drift": null,
        }))
        .unwrap();
        status.shape = StageShape {
            stage_type: "regular".into(),
            depends_on: upstream
                .iter()
                .map(|(u, t)| ShapeEdge {
                    stage: u.to_string(),
                    file_pattern: "%.root<script>".into(),
                    trigger: *t,
                })
                .collect(),
            join: upstream.len() > 1,
            completion: None,
        };
        SavedStage {
            stage: ObjectKey::new("exp", name),
            campaign: "c".into(),
            state: state.as_str().into(),
            reason: "r".into(),
            drift: None,
            since: 0,
            status: Some(status),
        }
    }

    #[test]
    fn draws_every_stage_and_edge_with_text_escaped() {
        use DependencyTrigger::*;
        let stages = [
            stage("gen\"><b>x</b>", StageState::Completed, &[]),
            stage(
                "reco",
                StageState::Running,
                &[("gen\"><b>x</b>", Submission)],
            ),
            stage("merge", StageState::Waiting, &[("reco", StageComplete)]),
            stage(
                "both",
                StageState::Failed,
                &[("reco", Submission), ("merge", Submission)],
            ),
        ];
        let refs: Vec<&SavedStage> = stages.iter().collect();
        let svg = campaign_svg(&refs).expect("a drawing");
        assert!(svg.starts_with("<svg"), "{svg}");
        assert_eq!(svg.matches("class=\"stage state-").count(), 4);
        // Four edges, each an arrow path with its label.
        assert_eq!(svg.matches("<textPath").count(), 4, "{svg}");
        assert!(
            svg.contains("stroke-dasharray"),
            "the stage-complete edge is dashed"
        );
        assert!(svg.contains("(join)"));
        assert!(!svg.contains("<script>") && !svg.contains("<b>"), "{svg}");
        assert!(svg.contains("data-stage=\"gen&quot;&gt;&lt;b&gt;x&lt;/b&gt;\""));
        assert!(
            svg.contains(fill("Failed")),
            "the failed stage is filled red"
        );
    }

    #[test]
    fn a_stage_that_relaunches_itself_draws() {
        let stages = [stage(
            "scan",
            StageState::Running,
            &[("scan", DependencyTrigger::Submission)],
        )];
        let refs: Vec<&SavedStage> = stages.iter().collect();
        assert!(campaign_svg(&refs).is_some());
    }
}
