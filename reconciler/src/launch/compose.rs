//! Composing a launch (reference §2.3–2.6): the ordered parameter merge, `%(name)s`
//! substitution with `%%` escaping, the login setup, the environment, and local or ssh
//! execution, into a structured result.

use cascade_crd::{Param, StageType};

use super::shell::{Context, Tracker, quote, quote_in};
use super::template::{self, Segment};
use crate::model::graph::Name;
use crate::model::{DesiredGraph, Stage};

/// Where a controller runs launches: settings of the installation, not of a campaign.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LaunchSettings {
    /// The state directory, absolute (`CASCADE_STATE_DIR`: `cascade submit` finds it there).
    pub state_dir: String,
    /// Where an experiment's uploaded files live (`UPLOADS`; configurations say
    /// `-c $UPLOADS/x.cfg`). `{experiment}` in it is the namespace.
    pub uploads: String,
    /// POMS's `POMS_TEST`: which POMS instance a wrapper reports to (empty for production,
    /// `int` for integration, `1` elsewhere). Not "a test launch": that is `POMS4_TEST_LAUNCH`.
    pub poms_test: String,
}

impl Default for LaunchSettings {
    fn default() -> Self {
        LaunchSettings {
            state_dir: ".cascade".into(),
            uploads: ".cascade/uploads/{experiment}".into(),
            poms_test: String::new(),
        }
    }
}

/// What one launch is about; everything else comes from the graph.
#[derive(Clone, Debug)]
pub struct LaunchRequest<'a> {
    pub stage: &'a Stage,
    /// The dataset (slice) the launch processes, if any.
    pub dataset: Option<&'a str>,
    pub submission_id: &'a str,
    /// The original submission of a recovery round.
    pub parent_submission_id: Option<&'a str>,
    pub test: bool,
    /// Recovery or queued-launch overrides.
    pub explicit_overrides: &'a [Param],
    /// Who the launch is done for (`%(experimenter)s`).
    pub experimenter: &'a str,
    pub settings: &'a LaunchSettings,
}

/// The composed launch.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Launch {
    /// The program and arguments to execute (`sh -c` locally, `ssh` for remote hosts).
    pub argv: Vec<String>,
    /// Environment for the launch (for remote hosts also exported in the remote script).
    pub env: Vec<(String, String)>,
    /// The launch command: script and merged parameters, substituted.
    pub command: String,
    /// The whole launch as shell a person can paste (`/bin/sh -c '...'` or `ssh ... '...'`).
    pub display: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComposeError(pub String);

impl std::fmt::Display for ComposeError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Ordered merge: an existing key keeps its position and takes the new value; new keys are
/// appended (POMS `OrderedDict` semantics).
pub fn merge_into(base: &mut Vec<Param>, overrides: &[Param]) {
    for p in overrides {
        match base.iter_mut().find(|b| b.key == p.key) {
            Some(existing) => existing.value = p.value.clone(),
            None => base.push(p.clone()),
        }
    }
}

/// The parameter list of a launch, merged in POMS order: job type, campaign-default overrides
/// (when `mergeDefaultOverrides`), stage overrides, explicit overrides, test overrides, and
/// the explicit overrides again so that they beat the test overrides.
pub fn merged_parameters(graph: &DesiredGraph, req: &LaunchRequest) -> Vec<Param> {
    let stage = req.stage;
    let mut params = graph.job_type_of(stage).parameters.clone();
    if stage.merge_default_overrides
        && let Some(defaults) = graph
            .campaign_of(stage)
            .defaults
            .as_ref()
            .and_then(|d| d.parameter_overrides.as_ref())
    {
        merge_into(&mut params, defaults);
    }
    merge_into(&mut params, &stage.parameter_overrides);
    merge_into(&mut params, req.explicit_overrides);
    if req.test {
        merge_into(&mut params, &stage.test_parameter_overrides);
        merge_into(&mut params, req.explicit_overrides);
    }
    params
}

/// Renders `text`, quoting each substituted value for the shell context it lands in.
fn render(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, ComposeError> {
    let segments = template::parse(text).map_err(|e| ComposeError(format!("in `{text}`: {e}")))?;
    let mut tracker = Tracker::default();
    let mut out = String::new();
    for seg in segments {
        match seg {
            Segment::Text(t) => {
                tracker.feed(t);
                out.push_str(t);
            }
            Segment::Percent => {
                tracker.feed("%");
                out.push('%');
            }
            Segment::Var { name, .. } => {
                let value = lookup(name).ok_or_else(|| {
                    ComposeError(format!("unknown variable `%({name})s` in `{text}`"))
                })?;
                let ctx = tracker.context();
                let quoted = quote_in(ctx, &value).ok_or_else(|| {
                    let why = match ctx {
                        Context::Refused(why) => why,
                        _ => "",
                    };
                    ComposeError(format!(
                        "`%({name})s` cannot be substituted safely where it stands in `{text}`: {}",
                        why.replace("%(name)s", &format!("%({name})s"))
                    ))
                })?;
                out.push_str(&quoted);
            }
        }
    }
    Ok(out)
}

/// Expands keywords in a value (the dataset and software version), without quoting: the
/// result is a value, quoted where it is later substituted.
fn expand_value(
    text: &str,
    keywords: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ComposeError> {
    let segments = template::parse(text).map_err(|e| ComposeError(format!("in `{text}`: {e}")))?;
    template::render(&segments, keywords).map_err(ComposeError)
}

/// The stage's software version with the campaign's keywords expanded.
pub fn stage_version(graph: &DesiredGraph, stage: &Stage) -> String {
    let campaign = graph.campaign_of(stage);
    let keyword = |name: &str| campaign.keywords.get(name).cloned();
    expand_value(&stage.software_version, &keyword)
        .unwrap_or_else(|_| stage.software_version.to_string())
}

/// POMS's legacy combined name: the stage name, or `<campaign>__<rest>`.
fn combined_name(campaign: &str, stage: &str) -> String {
    let name = if stage == campaign {
        stage.to_string()
    } else if let Some(rest) = stage.strip_prefix(campaign) {
        format!("{campaign}__{rest}")
    } else {
        format!("{campaign}__{stage}")
    };
    name.replace(' ', "_")
}

/// The parts of a launch rendered from the definitions' text: every way a launch can fail
/// to compose is here, so validation renders these alone.
struct Rendered {
    experiment: String,
    group: String,
    dataset: String,
    version: String,
    test: bool,
    command: String,
    setup: String,
    host: String,
    account: String,
}

fn render_launch(graph: &DesiredGraph, req: &LaunchRequest) -> Result<Rendered, ComposeError> {
    let stage = req.stage;
    let campaign = graph.campaign_of(stage);
    let login = graph.login_setup_of(stage);
    let job_type = graph.job_type_of(stage);
    let keyword = |name: &str| campaign.keywords.get(name).cloned();
    let experiment = stage.key.namespace.to_string();
    let group = if experiment == "samdev" {
        "fermilab".to_string()
    } else {
        experiment.clone()
    };
    // A dataset written by the authors may use keywords (`%(release)s`); one derived from the
    // catalog (a slice name) is a plain value, `%` and all.
    let dataset = match req.dataset {
        Some(d) if d.contains("%(") => expand_value(d, &keyword).unwrap_or_else(|_| d.to_string()),
        Some(d) => d.to_string(),
        None => String::new(),
    };
    let version = expand_value(&stage.software_version, &keyword)?;

    let builtin = |name: &str| -> Option<String> {
        match name {
            "dataset" | "parameter" => Some(dataset.clone()),
            "version" => Some(version.clone()),
            "group" => Some(group.clone()),
            "experimenter" => Some(req.experimenter.to_string()),
            "experiment" => Some(experiment.clone()),
            _ => None,
        }
    };
    let with_keywords = |name: &str| builtin(name).or_else(|| keyword(name));

    let mut raw = job_type.launch_script.clone();
    for p in merged_parameters(graph, req) {
        raw.push(' ');
        raw.push_str(&p.key);
        raw.push_str(&p.value);
    }
    let command = render(&raw, &with_keywords)?;
    let setup = render(&login.setup, &builtin)?;
    let host = render(&login.host, &builtin)?;
    let account = render(&login.account, &builtin)?;
    Ok(Rendered {
        test: req.test || campaign.test,
        experiment,
        group,
        dataset,
        version,
        command,
        setup,
        host,
        account,
    })
}

/// Whether the launch composes, without building it (validation asks this of every launch a
/// stage can make).
pub fn check(graph: &DesiredGraph, req: &LaunchRequest) -> Result<(), ComposeError> {
    render_launch(graph, req).map(drop)
}

pub fn compose(graph: &DesiredGraph, req: &LaunchRequest) -> Result<Launch, ComposeError> {
    let stage = req.stage;
    let job_type = graph.job_type_of(stage);
    let Rendered {
        experiment,
        group,
        dataset,
        version,
        test,
        command,
        setup,
        host,
        account,
    } = render_launch(graph, req)?;

    let bool_text = |b: bool| if b { "True" } else { "False" };
    let stage_name = stage.key.name.to_string();
    let campaign_name = stage.campaign.name.to_string();
    // POMS's wrappers put the names into job attributes: the names POMS knew, where import
    // had to change them.
    let poms_stage = stage
        .poms_name
        .as_ref()
        .map_or_else(|| stage_name.clone(), Name::to_string);
    let poms_campaign = stage
        .campaign_poms_name
        .as_ref()
        .map_or_else(|| campaign_name.clone(), Name::to_string);
    let parent = req.parent_submission_id.unwrap_or("").to_string();
    let mut env: Vec<(String, String)> = vec![
        ("CASCADE_NAMESPACE", experiment.clone()),
        ("CASCADE_CAMPAIGN", campaign_name.clone()),
        ("CASCADE_STAGE", stage_name.clone()),
        ("CASCADE_STAGE_TYPE", stage.stage_type.as_str().to_string()),
        ("CASCADE_SUBMISSION_ID", req.submission_id.to_string()),
        ("CASCADE_PARENT_SUBMISSION_ID", parent.clone()),
        (
            "CASCADE_TEST_LAUNCH",
            if test { "1" } else { "0" }.to_string(),
        ),
        ("CASCADE_DATASET", dataset.clone()),
        ("CASCADE_SOFTWARE_VERSION", version.clone()),
        ("CASCADE_LAUNCHER", req.experimenter.to_string()),
        ("POMS4_CAMPAIGN_STAGE_ID", stage_name.clone()),
        ("POMS4_CAMPAIGN_STAGE_NAME", poms_stage.clone()),
        (
            "POMS4_CAMPAIGN_STAGE_TYPE",
            stage.stage_type.as_str().to_string(),
        ),
        ("POMS4_CAMPAIGN_ID", campaign_name.clone()),
        ("POMS4_CAMPAIGN_NAME", poms_campaign.clone()),
        ("POMS4_SUBMISSION_ID", req.submission_id.to_string()),
        ("POMS4_TEST_LAUNCH", bool_text(test).to_string()),
        ("POMS_CAMPAIGN_ID", stage_name.clone()),
        (
            "POMS_CAMPAIGN_NAME",
            combined_name(&poms_campaign, &poms_stage),
        ),
        ("POMS_PARENT_TASK_ID", parent),
        ("POMS_TASK_ID", req.submission_id.to_string()),
        ("POMS_LAUNCHER", req.experimenter.to_string()),
        ("POMS_TASK_DEFINITION_ID", stage.job_type.name.to_string()),
        ("POMS_TEST", req.settings.poms_test.clone()),
        ("JOBSUB_GROUP", group.clone()),
        ("GROUP", group.clone()),
        (
            "UPLOADS",
            req.settings.uploads.replace("{experiment}", &experiment),
        ),
        // What the local batch system needs from a launch: which outputs to declare, and
        // where the state is.
        (
            "CASCADE_OUTPUT_PATTERNS",
            job_type.output_file_patterns.join("\n"),
        ),
        ("CASCADE_STATE_DIR", req.settings.state_dir.clone()),
        (
            "CASCADE_BATCH_SYSTEM",
            job_type.batch_system.as_str().to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if stage.stage_type == StageType::Generator {
        env.retain(|(k, _)| k != "CASCADE_DATASET" || !dataset.is_empty());
    }

    let script = if setup.trim().is_empty() {
        command.clone()
    } else {
        format!("{setup}\n{command}")
    };
    let (argv, display) = if host == "localhost" {
        let display = format!("/bin/sh -c {}", quote(&script));
        (
            vec!["/bin/sh".to_string(), "-c".to_string(), script],
            display,
        )
    } else {
        let exports: Vec<String> = env
            .iter()
            .map(|(k, v)| format!("export {k}={}", quote(v)))
            .collect();
        let remote = format!("{}\n{script}", exports.join("\n"));
        let target = format!("{account}@{host}");
        let display = format!(
            "ssh -o BatchMode=yes -- {} {}",
            quote(&target),
            quote(&script)
        );
        (
            // `--`: nothing after it is an option, whatever the target is.
            vec![
                "ssh".into(),
                "-o".into(),
                "BatchMode=yes".into(),
                "--".into(),
                target,
                remote,
            ],
            display,
        )
    };
    Ok(Launch {
        argv,
        env,
        command,
        display,
    })
}

#[cfg(test)]
mod tests;
