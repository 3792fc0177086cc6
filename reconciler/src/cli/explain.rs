//! `cascade explain STAGE`: why a stage is where it is, with every submission's command,
//! input and status history.

use std::io::Write;

use super::Exit;
use super::state::StateArg;
use crate::plan::format_time;

#[derive(clap::Args, Debug)]
pub struct ExplainArgs {
    /// The stage (`name` or `namespace/name`)
    pub stage: String,
    #[command(flatten)]
    pub state: StateArg,
    /// Output for people (`text`) or machines (`json`)
    #[arg(long, value_enum, default_value = "text")]
    pub format: super::plan::Format,
}

/// A submission and its status history (`GET /api/v1/submissions/ID`, and each submission
/// of an explanation).
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct SubmissionDocument {
    pub submission: crate::ledger::SubmissionRow,
    pub history: Vec<crate::ledger::HistoryRow>,
}

impl SubmissionDocument {
    pub fn of(
        ledger: &crate::ledger::Ledger,
        submission: crate::ledger::SubmissionRow,
    ) -> crate::ledger::Result<SubmissionDocument> {
        let history = ledger.history(Some(&submission.submission.id))?;
        Ok(SubmissionDocument {
            submission,
            history,
        })
    }
}

/// What `cascade explain --format json` prints: the stage with its reason, and every one of
/// its submissions with its history.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct ExplainDocument {
    pub stage: super::status::StageEntry,
    pub submissions: Vec<SubmissionDocument>,
}

pub fn explain_document(
    ledger: &crate::ledger::Ledger,
    found: &crate::ledger::SavedStage,
) -> crate::ledger::Result<ExplainDocument> {
    let rows = ledger.stage_submission_rows(&found.stage)?;
    let stage = super::status::stage_entry_of(found, &rows);
    let submissions = rows
        .into_iter()
        .map(|r| SubmissionDocument::of(ledger, r))
        .collect::<crate::ledger::Result<_>>()?;
    Ok(ExplainDocument { stage, submissions })
}

pub fn explain(args: &ExplainArgs) -> std::io::Result<Exit> {
    let ledger = match args.state.open_existing() {
        Ok(l) => l,
        Err(e) => return Ok(e),
    };
    let stages = ledger.saved_stage_status().map_err(std::io::Error::other)?;
    let Some(found) = stages
        .iter()
        .find(|s| s.stage.name == args.stage || s.stage.to_string() == args.stage)
    else {
        // Suggest in the form given: `name`, or `namespace/name`.
        let qualified = args.stage.contains('/');
        let known: Vec<String> = stages
            .iter()
            .map(|s| {
                if qualified {
                    s.stage.to_string()
                } else {
                    s.stage.name.to_string()
                }
            })
            .collect();
        let known: Vec<&str> = known.iter().map(String::as_str).collect();
        eprintln!(
            "error: no stage `{}` in {}\n  help: {}",
            args.stage,
            args.state.state.display(),
            crate::model::de::suggest(&args.stage, &known, "stages")
        );
        return Ok(Exit::Rejected);
    };
    let mut out = std::io::stdout().lock();
    if let super::plan::Format::Json = args.format {
        let doc = explain_document(&ledger, found).map_err(std::io::Error::other)?;
        serde_json::to_writer_pretty(&mut out, &doc)?;
        writeln!(out)?;
        return Ok(Exit::Ok);
    }
    let subs = ledger
        .stage_submission_rows(&found.stage)
        .map_err(std::io::Error::other)?;
    write_explanation(&mut out, &ledger, found, &subs)?;
    Ok(Exit::Ok)
}

/// Why `found` is where it is: its reason, then each of its submissions (`subs`) with its
/// input, command, revision, launch log and status history (what `cascade explain` prints and
/// the stage page shows).
pub fn write_explanation(
    out: &mut impl Write,
    ledger: &crate::ledger::Ledger,
    found: &crate::ledger::SavedStage,
    subs: &[crate::ledger::SubmissionRow],
) -> std::io::Result<()> {
    writeln!(out, "{} is {}: {}", found.stage, found.state, found.reason)?;
    for r in subs {
        let s = &r.submission;
        writeln!(
            out,
            "\n  {} ({}): {}, jobs {} of {} succeeded, {} failed",
            s.id,
            s.origin.describe(),
            s.status,
            s.jobs.succeeded,
            s.jobs.total,
            s.jobs.failed
        )?;
        if let Some(input) = &s.input {
            writeln!(out, "    input: {input}")?;
        }
        writeln!(out, "    command: {}", r.command)?;
        if let Some(rev) = &r.revision {
            writeln!(out, "    revision: {rev}")?;
        }
        writeln!(out, "    launch log: {}", r.launch_log)?;
        for h in ledger.history(Some(&s.id)).map_err(std::io::Error::other)? {
            writeln!(
                out,
                "    {}  {:<13} {}",
                format_time(h.at),
                h.status,
                h.reason
            )?;
        }
    }
    Ok(())
}
