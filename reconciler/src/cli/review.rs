//! `cascade plan --repo DIR --base REF --head REF`: what a pull request would do to
//! production, as text, Markdown (a pull-request comment) or JSON.

use std::collections::BTreeSet;
use std::io::Write;

use super::Exit;
use super::plan::{Args, Format};
use crate::model::{Diagnostic, load_and_validate};
use crate::plan::Observed;
use crate::plan::review::{Change, Context, Effect, Review, Revision, review};
use crate::source::git;

/// Sections longer than this many lines are folded in Markdown (`<details>`).
const FOLD_LINES: usize = 20;

pub fn run(args: &Args, repo: &std::path::Path) -> std::io::Result<Exit> {
    let (Some(base), Some(head)) = (&args.base, &args.head) else {
        eprintln!("error: --repo needs --base REF and --head REF");
        return Ok(Exit::Rejected);
    };
    let read = |rev: &str| git::files_at_ref(repo, rev, &args.path);
    let base_files = match read(base) {
        Ok(f) => f,
        Err(e) => return refuse(&e),
    };
    let head_files = match read(head) {
        Ok(f) => f,
        Err(e) => return refuse(&e),
    };
    let (base_resources, base_valid) = load_and_validate(&base_files);
    let (head_resources, head_valid) = load_and_validate(&head_files);
    let state = args.state.as_deref();
    let observed = match state {
        Some(dir) => match crate::ledger::Ledger::open_existing(dir) {
            Ok(l) => l.observed().map_err(std::io::Error::other)?,
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(Exit::Failed);
            }
        },
        None => Observed::default(),
    };
    let experimenter = super::plan::experimenter(&args.experimenter);
    let settings = args
        .launch_settings
        .settings(state.unwrap_or(std::path::Path::new(".cascade")));
    let launching_now: BTreeSet<_> = match &head_valid.graph {
        Some(graph) => match super::plan::plan_for(args, graph, &settings, &experimenter) {
            Ok(plan) => plan,
            Err(exit) => return Ok(exit),
        }
        .launches()
        .map(|l| l.stage.clone())
        .collect(),
        None => BTreeSet::new(),
    };
    let result = review(
        &Revision {
            resources: &base_resources,
            graph: base_valid.graph.as_ref(),
        },
        &Revision {
            resources: &head_resources,
            graph: head_valid.graph.as_ref(),
        },
        &Context {
            observed: &observed,
            launching_now: &launching_now,
            experimenter: &experimenter,
            settings: &settings,
        },
    );
    let errors: Vec<&Diagnostic> = head_valid
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .collect();
    let refs = (base.as_str(), head.as_str());
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            let doc = serde_json::json!({
                "base": base, "head": head,
                "headValid": errors.is_empty(),
                "baseValid": !result.base_invalid,
                "altersProduction": result.alters_production(),
                "errors": errors.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
                "resources": result.resources,
                "stages": result.stages,
            });
            serde_json::to_writer_pretty(&mut out, &doc)?;
            writeln!(out)?;
        }
        Format::Markdown => markdown(&mut out, &result, &errors, refs)?,
        Format::Text => text(&mut out, &result, &errors, refs)?,
    }
    Ok(if !errors.is_empty() {
        Exit::Rejected
    } else if args.exit_code && result.alters_production() {
        Exit::Failed
    } else {
        Exit::Ok
    })
}

fn refuse(e: &str) -> std::io::Result<Exit> {
    eprintln!("error: {e}");
    Ok(Exit::Rejected)
}

fn effect_line(e: &Effect) -> String {
    match e {
        Effect::Launches { now: true } => "new stage: launches now".into(),
        Effect::Launches { now: false } => "new stage: launches when its inputs are ready".into(),
        Effect::Stops { policy } => format!(
            "removed: launches nothing more; its open submissions {} (removalPolicy: {})",
            match policy {
                cascade_crd::RemovalPolicy::Finish => "run to their end",
                cascade_crd::RemovalPolicy::Kill => "are killed",
            },
            policy.as_str()
        ),
        Effect::Pauses => "paused: its launches are queued".into(),
        Effect::Resumes => "resumed: queued launches go, in order".into(),
        Effect::Relaunches { .. } => "its next launches run a different command".into(),
        Effect::SplitChanges { before, after } => format!("split: {before} -> {after}"),
        Effect::RecoveriesChange { before, after } => {
            format!("recovery rounds: {before} -> {after}")
        }
        Effect::CompletionChanges { before, after } => format!("completion: {before} -> {after}"),
    }
}

fn summary(r: &Review, errors: &[&Diagnostic]) -> String {
    if !errors.is_empty() {
        return format!(
            "the head revision does not validate ({})",
            super::count(errors.len(), "error", "errors")
        );
    }
    let changed = r.resources.len();
    if r.base_invalid {
        return format!(
            "{} changed; the base revision does not validate, so its impact on production cannot be computed",
            super::count(changed, "resource", "resources")
        );
    }
    let stages = r.stages.len();
    if stages == 0 {
        format!(
            "{} changed; no change to what production launches",
            super::count(changed, "resource", "resources")
        )
    } else {
        format!(
            "{} changed; {} affected",
            super::count(changed, "resource", "resources"),
            super::count(stages, "stage", "stages")
        )
    }
}

fn text(
    out: &mut impl Write,
    r: &Review,
    errors: &[&Diagnostic],
    (base, head): (&str, &str),
) -> std::io::Result<()> {
    writeln!(out, "{base} -> {head}: {}", summary(r, errors))?;
    for d in errors {
        writeln!(out, "{d}")?;
    }
    if !r.stages.is_empty() {
        writeln!(out, "\nImpact:")?;
    }
    for s in &r.stages {
        writeln!(out, "  {}", s.stage)?;
        for e in &s.effects {
            writeln!(out, "    {}", effect_line(e))?;
            if let Effect::Relaunches {
                before,
                after,
                words,
            } = e
            {
                writeln!(out, "      before: {before}")?;
                writeln!(out, "      after:  {after}")?;
                writeln!(out, "      words:  {words}")?;
            }
        }
        if !s.open_submissions.is_empty() {
            writeln!(
                out,
                "    open submissions: {}",
                s.open_submissions.join(", ")
            )?;
        }
    }
    if !r.resources.is_empty() {
        writeln!(out, "\nResources:")?;
    }
    for c in &r.resources {
        writeln!(out, "  {:?} {} {}", c.change, c.kind, c.key)?;
        for line in c.diff.lines() {
            writeln!(out, "    {line}")?;
        }
    }
    Ok(())
}

/// A section folded when long, so that a large change stays readable as a comment.
fn section(out: &mut impl Write, title: &str, body: &str) -> std::io::Result<()> {
    if body.lines().count() > FOLD_LINES {
        writeln!(
            out,
            "<details><summary>{title}</summary>\n\n{body}\n</details>\n"
        )
    } else {
        writeln!(out, "#### {title}\n\n{body}\n")
    }
}

/// Text placed inside a Markdown code fence: a fence in the text itself is broken up.
fn fenced(lang: &str, text: &str) -> String {
    format!(
        "```{lang}\n{}\n```",
        text.trim_end().replace("```", "`\u{200b}``")
    )
}

/// Text in a Markdown line: characters that would start markup or HTML are escaped.
fn inline(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\`*_[]<>|#".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn markdown(
    out: &mut impl Write,
    r: &Review,
    errors: &[&Diagnostic],
    (base, head): (&str, &str),
) -> std::io::Result<()> {
    writeln!(
        out,
        "### Cascade plan: `{}` → `{}`\n\n**{}**\n",
        // Inside a code span nothing is markup or HTML; only a backquote could end it.
        base.replace('`', ""),
        head.replace('`', ""),
        inline(&summary(r, errors))
    )?;
    if !errors.is_empty() {
        let list: Vec<String> = errors.iter().map(|d| d.to_string()).collect();
        section(
            out,
            "Validation errors in the head revision",
            &fenced("text", &list.join("\n")),
        )?;
    }
    if !r.stages.is_empty() {
        let mut body = String::new();
        for s in &r.stages {
            body.push_str(&format!("- **{}**\n", inline(&s.stage)));
            for e in &s.effects {
                body.push_str(&format!("  - {}\n", inline(&effect_line(e))));
                if let Effect::Relaunches { before, after, .. } = e {
                    let diff = format!("- {before}\n+ {after}");
                    body.push_str(&indent(&fenced("diff", &diff), "    "));
                }
            }
            if !s.open_submissions.is_empty() {
                body.push_str(&format!(
                    "  - open submissions: {}\n",
                    inline(&s.open_submissions.join(", "))
                ));
            }
        }
        section(out, "Impact on production", &body)?;
    }
    for c in &r.resources {
        let verb = match c.change {
            Change::Added => "added",
            Change::Removed => "removed",
            Change::Modified => "changed",
        };
        section(
            out,
            &format!("{} {} {verb}", c.kind, inline(&c.key)),
            &fenced("diff", &c.diff),
        )?;
    }
    Ok(())
}

fn indent(text: &str, by: &str) -> String {
    text.lines().map(|l| format!("{by}{l}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::review::{ResourceChange, StageImpact};

    /// Lines outside code fences, and whether every fence closed.
    fn outside_fences(md: &str) -> (Vec<&str>, bool) {
        let mut inside = false;
        let mut out = Vec::new();
        for line in md.lines() {
            if line.trim_start().starts_with("```") {
                inside = !inside;
            } else if !inside {
                out.push(line);
            }
        }
        (out, !inside)
    }

    #[test]
    fn hostile_commands_and_names_stay_text_in_a_markdown_comment() {
        let evil =
            "sh -c 'echo ```\n</details><img src=x onerror=alert(1)> **bold** [x](javascript:y)'";
        let review = Review {
            resources: vec![ResourceChange {
                kind: "JobType",
                key: "exp/<b>job</b>".into(),
                change: Change::Modified,
                diff: format!("-{evil}\n+{evil} 2\n"),
            }],
            stages: vec![StageImpact {
                stage: "exp/gen".into(),
                effects: vec![Effect::Relaunches {
                    before: evil.into(),
                    after: format!("{evil} 2"),
                    words: String::new(),
                }],
                open_submissions: vec!["exp.gen.1".into()],
            }],
            base_invalid: false,
        };
        let mut out = Vec::new();
        markdown(&mut out, &review, &[], ("main", "<feature>")).unwrap();
        let md = String::from_utf8(out).unwrap();
        let (outside, closed) = outside_fences(&md);
        assert!(closed, "a fence was left open:\n{md}");
        for line in outside {
            // Code spans show their text as it is.
            let spans_removed: String = line.split('`').step_by(2).collect();
            let raw = spans_removed
                .replace("<details><summary>", "")
                .replace("</summary>", "")
                .replace("</details>", "");
            assert!(
                !raw.contains('<') || raw.contains("\\<"),
                "raw HTML outside a fence: {line}\n{md}"
            );
            assert!(!raw.contains("onerror") || raw.contains("\\<"), "{line}");
        }
    }
}
