//! A campaign back to a POMS `.ini` (reference §8), pure: loaded resources in, text out.
//! Stage keys are those the stage sets itself (defaults stay in `[campaign_defaults]`); the
//! login setups and job types the campaign uses are included. Settings POMS has no key for
//! are written as `cascade_*` keys, which `import-ini` reads back, so a round trip loses
//! nothing; what cannot be written at all is returned as a list of notes.

use std::collections::BTreeSet;
use std::fmt::Write;

use cascade_crd::stage::SplitData;
use cascade_crd::{
    CampaignSpec, CampaignState, CompletionType, DependencyTrigger, JobTypeSpec, LoginSetupSpec,
    Param, SplitSpec, StageDefaults, StageType,
};

use crate::model::load::Spec;
use crate::model::{DesiredGraph, Resource};

fn params(ps: &[Param]) -> String {
    let pairs: Vec<[&str; 2]> = ps
        .iter()
        .map(|p| [p.key.as_str(), p.value.as_str()])
        .collect();
    serde_json::to_string(&pairs).unwrap_or_default()
}

/// POMS writes `%` in file patterns as `%%`.
fn split(s: &SplitSpec) -> String {
    match s.policy() {
        Ok(Some(p)) => p.to_string(),
        _ => "None".into(),
    }
}

/// The name POMS knows a resource by: `kind`, Cascade name -> POMS name.
type PomsNames<'a> = dyn Fn(&str, &str) -> String + 'a;

fn settings(out: &mut String, s: &StageDefaults, poms: &PomsNames) {
    let mut line = |k: &str, v: String| {
        let _ = writeln!(out, "{k}={v}");
    };
    if let Some(v) = &s.vo_role {
        line("vo_role", v.clone());
    }
    if let Some(v) = &s.software_version {
        line("software_version", v.clone());
    }
    if let Some(d) = &s.dataset {
        line(
            "dataset_or_split_data",
            match d {
                SplitData::Text(t) => t.clone(),
                SplitData::Lists(l) => serde_json::to_string(l).unwrap_or_default(),
            },
        );
    }
    if let Some(v) = &s.split {
        line("cs_split_type", split(v));
    }
    if let Some(v) = &s.test_split {
        line("test_split_type", split(v));
    }
    if let Some(c) = &s.completion {
        line(
            "completion_type",
            match c.kind {
                CompletionType::Complete => "complete",
                CompletionType::Located => "located",
            }
            .into(),
        );
        line("completion_pct", c.percent.to_string());
    }
    if let Some(v) = &s.parameter_overrides {
        line("param_overrides", params(v));
    }
    if let Some(v) = &s.test_parameter_overrides {
        line("test_param_overrides", params(v));
    }
    if let Some(v) = s.merge_default_overrides {
        line("merge_overrides", if v { "True" } else { "False" }.into());
    }
    if let Some(v) = &s.login_setup {
        line("login_setup", poms("LoginSetup", v));
    }
    if let Some(v) = &s.job_type {
        line("job_type", poms("JobType", v));
    }
    if let Some(t) = s.stage_type
        && t != StageType::Regular
    {
        line("stage_type", t.as_str().into());
    }
    if let Some(d) = s.output_ancestor_depth {
        line("output_ancestor_depth", d.to_string());
    }
    if let Some(v) = s.clear_schedule_on_exhaustion {
        line(
            "default_clear_cronjob",
            if v { "True" } else { "False" }.into(),
        );
    }
    if let Some(v) = &s.schedule {
        line("cascade_schedule", v.clone());
    }
    if s.paused == Some(true) {
        line("cascade_paused", "True".into());
    }
    if s.join == Some(true) {
        line("cascade_join", "True".into());
    }
}

fn login_setup(out: &mut String, name: &str, spec: &LoginSetupSpec) {
    let _ = writeln!(out, "\n[login_setup {name}]");
    let _ = writeln!(out, "host={}", spec.host);
    let _ = writeln!(out, "account={}", spec.account);
    // One line: POMS replaces line breaks of the setup text by `;`.
    let _ = writeln!(out, "setup={}", spec.setup.replace(['\r', '\n'], ";"));
    if let Some(d) = &spec.description {
        let _ = writeln!(out, "description={}", d.replace('\n', " "));
    }
}

fn job_type(out: &mut String, name: &str, spec: &JobTypeSpec) {
    let _ = writeln!(out, "\n[job_type {name}]");
    let _ = writeln!(out, "launch_script={}", spec.launch_script);
    let _ = writeln!(out, "parameters={}", params(&spec.parameters));
    // File patterns with a single `%`, as POMS's own export writes them.
    let _ = writeln!(
        out,
        "output_file_patterns={}",
        spec.output_file_patterns.join(",")
    );
    let recoveries: Vec<serde_json::Value> = spec
        .recoveries
        .iter()
        .map(|r| {
            let ps: Vec<[&str; 2]> = r
                .parameter_overrides
                .iter()
                .map(|p| [p.key.as_str(), p.value.as_str()])
                .collect();
            serde_json::json!([r.kind.as_str(), ps])
        })
        .collect();
    let _ = writeln!(out, "recoveries={}", serde_json::Value::Array(recoveries));
    if spec.batch_system != cascade_crd::BatchSystem::Local {
        let _ = writeln!(out, "cascade_batch_system={}", spec.batch_system.as_str());
    }
    if let Some(n) = spec.input_files_per_job {
        let _ = writeln!(out, "input_files_per_job={n}");
    }
    if let Some(n) = spec.output_files_per_job {
        let _ = writeln!(out, "output_files_per_job={n}");
    }
    if let Some(d) = &spec.description {
        let _ = writeln!(out, "description={}", d.replace('\n', " "));
    }
}

/// Every login setup and job type of `namespace` as a shared `.ini` file (no campaign), with
/// their POMS names: what experiments keep their job types in, round trip included.
pub fn export_shared(
    resources: &[Resource],
    namespace: &str,
) -> Result<(String, Vec<String>), String> {
    let mut out = String::new();
    let mut n = 0;
    for r in resources.iter().filter(|r| r.namespace() == namespace) {
        let poms = r
            .meta
            .annotations
            .get(cascade_crd::POMS_NAME_ANNOTATION)
            .cloned()
            .unwrap_or_else(|| r.name().to_string());
        match &r.spec {
            Spec::LoginSetup(spec) => login_setup(&mut out, &poms, spec),
            Spec::JobType(spec) => job_type(&mut out, &poms, spec),
            _ => continue,
        }
        n += 1;
    }
    if n == 0 {
        return Err(format!(
            "no login setup or job type in namespace `{namespace}`"
        ));
    }
    Ok((out.trim_start().to_string(), Vec::new()))
}

/// The `.ini` of campaign `name` (in `namespace`), with the notes of what it could not carry.
pub fn export(
    resources: &[Resource],
    graph: &DesiredGraph,
    namespace: &str,
    name: &str,
) -> Result<(String, Vec<String>), String> {
    let find = |kind: &str, n: &str| {
        resources
            .iter()
            .find(|r| r.kind() == kind && r.namespace() == namespace && r.name() == n)
    };
    let Some(Spec::Campaign(campaign)) = find("Campaign", name).map(|r| &r.spec) else {
        let known: Vec<String> = resources
            .iter()
            .filter(|r| r.kind() == "Campaign")
            .map(|r| format!("{}/{}", r.namespace(), r.name()))
            .collect();
        return Err(format!(
            "no campaign `{namespace}/{name}` in the definitions (campaigns: {})",
            known.join(", ")
        ));
    };
    let campaign: &CampaignSpec = campaign;
    // Names written back as POMS knew them, where import had to change them.
    let poms = |kind: &str, n: &str| -> String {
        find(kind, n)
            .and_then(|r| r.meta.annotations.get(cascade_crd::POMS_NAME_ANNOTATION))
            .cloned()
            .unwrap_or_else(|| n.to_string())
    };
    let mut notes = Vec::new();
    // Stages in dependency order, as the graph keeps them.
    let stages: Vec<(&str, &cascade_crd::CampaignStageSpec)> = graph
        .stages
        .iter()
        .filter(|s| s.campaign.name == name && s.campaign.namespace == namespace)
        .filter_map(
            |s| match find("CampaignStage", &s.key.name).map(|r| &r.spec) {
                Some(Spec::CampaignStage(spec)) => Some((s.key.name.as_str(), spec.as_ref())),
                _ => None,
            },
        )
        .collect();
    let mut out = String::new();
    let _ = writeln!(out, "[campaign]");
    let _ = writeln!(out, "experiment={namespace}");
    let _ = writeln!(out, "poms_role=production");
    let _ = writeln!(out, "name={}", poms("Campaign", name));
    let _ = writeln!(
        out,
        "state={}",
        if campaign.state == CampaignState::Inactive {
            "Inactive"
        } else {
            "Active"
        }
    );
    if !campaign.keywords.is_empty() {
        let _ = writeln!(
            out,
            "campaign_keywords={}",
            serde_json::to_string(&campaign.keywords).unwrap_or_default()
        );
    }
    let names: Vec<&str> = stages.iter().map(|(n, _)| *n).collect();
    let _ = writeln!(out, "campaign_stage_list={}", names.join(","));
    if campaign.paused {
        let _ = writeln!(out, "cascade_paused=True");
    }
    if campaign.test {
        let _ = writeln!(out, "cascade_test=True");
    }
    if !campaign.tags.is_empty() {
        let _ = writeln!(out, "tags={}", campaign.tags.join(","));
    }
    if let Some(d) = &campaign.description {
        let _ = writeln!(out, "description={}", d.replace('\n', " "));
    }
    // POMS's save needs `dataset_or_split_data` for every stage once defaults are applied;
    // `None` is what it reads as "no dataset" (generators, dependent stages).
    let _ = writeln!(out, "\n[campaign_defaults]");
    let defaults = campaign.defaults.clone().unwrap_or_default();
    if defaults.dataset.is_none() {
        let _ = writeln!(out, "dataset_or_split_data=None");
    }
    settings(&mut out, &defaults, &poms);
    let mut logins = BTreeSet::new();
    let mut jobs = BTreeSet::new();
    if let Some(d) = &campaign.defaults {
        logins.extend(d.login_setup.clone());
        jobs.extend(d.job_type.clone());
    }
    for (stage, spec) in &stages {
        let poms_stage = poms("CampaignStage", stage);
        let _ = writeln!(out, "\n[campaign_stage {poms_stage}]");
        // A name the import rule would not give back is written, so round trips keep it.
        if super::import::stage_name(name, &super::import::kube_name(&poms_stage)) != *stage {
            let _ = writeln!(out, "cascade_name={stage}");
        }
        let own = spec.settings();
        logins.extend(own.login_setup.clone());
        jobs.extend(own.job_type.clone());
        settings(&mut out, &own, &poms);
        if spec.split_resets > 0 {
            let _ = writeln!(out, "cascade_split_resets={}", spec.split_resets);
        }
    }
    for (stage, spec) in &stages {
        if spec.depends_on.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n[dependencies {}]", poms("CampaignStage", stage));
        for (k, d) in spec.depends_on.iter().enumerate() {
            let k = k + 1;
            let _ = writeln!(
                out,
                "campaign_stage_{k}={}",
                poms("CampaignStage", &d.stage)
            );
            let _ = writeln!(out, "file_pattern_{k}={}", d.file_pattern);
            if d.trigger == DependencyTrigger::StageComplete {
                let _ = writeln!(out, "cascade_trigger_{k}=stageComplete");
            }
        }
    }
    for l in &logins {
        match find("LoginSetup", l).map(|r| &r.spec) {
            Some(Spec::LoginSetup(spec)) => login_setup(&mut out, &poms("LoginSetup", l), spec),
            _ => notes.push(format!("login setup `{l}` is not in the definitions")),
        }
    }
    for j in &jobs {
        match find("JobType", j).map(|r| &r.spec) {
            Some(Spec::JobType(spec)) => job_type(&mut out, &poms("JobType", j), spec),
            _ => notes.push(format!("job type `{j}` is not in the definitions")),
        }
    }
    Ok((out, notes))
}
