//! The catalog queries the planner asks (pure string building). They are written in the
//! catalog's query language, modelled on SAM dimensions (see `catalog::query`).

use cascade_crd::RecoveryType;

/// A quoted literal: `'text'`, with `'` doubled.
pub fn lit(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A dependency file pattern: a SAM dimension fragment (it contains a space) is used verbatim,
/// anything else is a `file_name like` pattern (reference §4.4).
pub fn pattern_bits(pattern: &str) -> String {
    if pattern.contains(' ') {
        format!("({pattern})")
    } else {
        format!("file_name like {}", lit(pattern))
    }
}

/// Files declared by any of `submissions` that match `pattern` and `version`.
pub fn outputs_of(submissions: &[&str], pattern: &str, version: &str) -> String {
    let subs: Vec<String> = submissions
        .iter()
        .map(|s| format!("submission {}", lit(s)))
        .collect();
    format!(
        "({}) and {} and version {}",
        subs.join(" or "),
        pattern_bits(pattern),
        lit(version)
    )
}

/// Files declared by any submission of `stage` (`namespace/name`) matching the pattern.
pub fn stage_outputs(stage: &str, pattern: &str, version: &str) -> String {
    format!(
        "stage {} and {} and version {}",
        lit(stage),
        pattern_bits(pattern),
        lit(version)
    )
}

/// The input files delivered to a submission's project.
pub fn project_inputs(submission: &str) -> String {
    format!("snapshot_for_project_name {}", lit(submission))
}

/// The input files a submission's jobs consumed.
pub fn consumed_inputs(submission: &str) -> String {
    format!(
        "project_name {} and consumed_status 'consumed'",
        lit(submission)
    )
}

/// Inputs of a submission's project that have, for every pattern, a descendant at `depth`
/// generations of this version, made since `since` (unix seconds; reference §4.3 b, §5.1).
///
/// The catalog keeps times to the second, so an output made in the submission's own second
/// counts (`>=`): a job can finish within the second it was launched in, and an output of an
/// earlier submission of the same slice is at least a second older than its relaunch.
pub fn located_inputs(
    submission: &str,
    patterns: &[String],
    version: &str,
    depth: u32,
    since: i64,
) -> String {
    let mut q = project_inputs(submission);
    for p in dedup_consecutive(patterns) {
        let inner = format!(
            "{} and version {} and create_date >= {since}",
            pattern_bits(p),
            lit(version)
        );
        let mut wrapped = inner;
        for _ in 0..depth.max(1) {
            wrapped = format!("isparentof:( {wrapped} )");
        }
        q.push_str(" and ");
        q.push_str(&wrapped);
    }
    q
}

/// POMS collapses repeated consecutive patterns (reference §4.3).
fn dedup_consecutive(patterns: &[String]) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for p in patterns {
        if out.last() != Some(&p.as_str()) {
            out.push(p);
        }
    }
    out
}

/// What a recovery round's dataset is computed from (reference §5.1).
pub struct RecoveryBasis<'a> {
    /// The submission whose project the round is computed against.
    pub reference: &'a str,
    /// When the reference submission was made (outputs older than it do not count).
    pub reference_created: i64,
    /// The original's input query, for `added_files`.
    pub input: Option<&'a str>,
    /// The job type's output patterns and the stage's software version and ancestor depth,
    /// for `pending_files`.
    pub output_patterns: &'a [String],
    pub version: &'a str,
    pub depth: u32,
}

/// The dataset of a recovery round of `kind` (reference §5.1).
pub fn recovery(kind: RecoveryType, basis: &RecoveryBasis) -> String {
    let reference = basis.reference;
    let snapshot = project_inputs(reference);
    let project = format!("project_name {}", lit(reference));
    match kind {
        // Our jobs mark a file `failed` when they exit non-zero, so "not consumed" already
        // includes the files whose process failed: both types select the same files.
        RecoveryType::ConsumedStatus | RecoveryType::ProcessStatus => {
            format!("{snapshot} minus ({project} and consumed_status 'consumed')")
        }
        RecoveryType::AddedFiles => match basis.input {
            Some(q) => format!("({q}) minus {snapshot}"),
            None => format!("{snapshot} minus {snapshot}"),
        },
        RecoveryType::PendingFiles => {
            let located = located_inputs(
                reference,
                basis.output_patterns,
                basis.version,
                basis.depth,
                basis.reference_created,
            );
            format!("{snapshot} minus ({located})")
        }
        // Fixed from POMS, whose query leaves the project name unfilled ([Q] in §5.1).
        RecoveryType::DeliveredNotConsumed => {
            format!("{project} and consumed_status 'delivered'")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_double_quotes_so_names_cannot_end_the_string() {
        assert_eq!(lit("it's"), "'it''s'");
    }

    #[test]
    fn dimension_fragments_are_kept_verbatim() {
        assert_eq!(pattern_bits("%.root"), "file_name like '%.root'");
        assert_eq!(pattern_bits("data_tier raw"), "(data_tier raw)");
    }

    #[test]
    fn located_query_ands_every_distinct_pattern_at_depth() {
        let q = located_inputs(
            "eve.reco.3",
            &["%.a".into(), "%.a".into(), "%.b".into()],
            "v1",
            2,
            100,
        );
        assert_eq!(
            q,
            "snapshot_for_project_name 'eve.reco.3' and isparentof:( isparentof:( file_name like '%.a' and version 'v1' and create_date >= 100 ) ) and isparentof:( isparentof:( file_name like '%.b' and version 'v1' and create_date >= 100 ) )"
        );
    }

    #[test]
    fn delivered_not_consumed_names_the_project_unlike_poms() {
        let basis = RecoveryBasis {
            reference: "s1",
            reference_created: 0,
            input: None,
            output_patterns: &[],
            version: "v",
            depth: 1,
        };
        let q = recovery(RecoveryType::DeliveredNotConsumed, &basis);
        assert_eq!(q, "project_name 's1' and consumed_status 'delivered'");
    }
}
