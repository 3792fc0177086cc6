//! POMS `.ini` campaigns to Cascade resources (reference §8), pure: texts in, documents and
//! diagnostics out. Several files import as one set: job types and login setups may live in
//! one file and the campaigns that use them in others. Nothing is dropped silently: every key
//! that cannot be carried and every inconsistency is a warning or an error at its line.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use cascade_crd::split::parse_legacy;
use cascade_crd::stage::SplitData;
use cascade_crd::{
    Campaign, CampaignSpec, CampaignStage, CampaignStageSpec, CampaignState, Completion,
    CompletionType, Dependency, DependencyTrigger, JobType, JobTypeSpec, LoginSetup,
    LoginSetupSpec, Param, RecoveryStep, RecoveryType, SplitSpec, StageDefaults, StageType,
};

use super::parse::{Entry, Section, parse};
use crate::model::Diagnostic;
pub use crate::model::document::Document;
use crate::model::yaml::Pos;

/// The documents made from one input file.
#[derive(Clone, Debug, Default)]
pub struct Imported {
    pub source: String,
    pub documents: Vec<Document>,
    /// The `.ini` section each document comes from (parallel to `documents`).
    pub sections: Vec<Pos>,
}

impl Imported {
    fn push(&mut self, document: Document, section: Pos) {
        self.documents.push(document);
        self.sections.push(section);
    }
}

/// Shared resources seen so far: where each was first defined, and how.
type Known<T> = BTreeMap<String, (String, Pos, T)>;

#[derive(Default)]
pub struct Options {
    /// Namespace (experiment) for everything; default: each campaign's `experiment`.
    pub namespace: Option<String>,
    /// Names of login setups and job types already converted (`import-ini --with`), which
    /// campaigns may use without a section of their own.
    pub login_setups: BTreeSet<String>,
    pub job_types: BTreeSet<String>,
}

/// A Kubernetes name for a POMS name: lowercase, `-` for anything else than letters, digits,
/// `-` and `.`, no leading or trailing `-`.
pub fn kube_name(raw: &str) -> String {
    let mut out = String::new();
    for c in raw.trim().chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() || c == '.' {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches(|c| c == '-' || c == '.').to_string();
    if out.is_empty() {
        "unnamed".into()
    } else {
        out
    }
}

struct Ctx<'a> {
    file: &'a str,
    diags: &'a mut Vec<Diagnostic>,
    /// Names already reported as renamed: each is reported once, where first seen.
    renamed: &'a mut BTreeSet<String>,
}

impl Ctx<'_> {
    fn error(&mut self, pos: Pos, code: &'static str, message: String, hint: &str) {
        self.diags
            .push(Diagnostic::error(self.file, pos, code, message).with_hint(hint));
    }

    /// Records a shared resource's definition. The same name defined again identically (each
    /// exported campaign carries the job types it uses) is kept once with a warning; defined
    /// again differently, it is an error. Returns whether this is the first definition.
    fn first_definition<T: PartialEq + Clone>(
        &mut self,
        known: &mut Known<T>,
        name: &str,
        pos: Pos,
        spec: &T,
        what: &str,
    ) -> bool {
        match known.get(name) {
            Some((file, first, other)) if other == spec => {
                let hint = format!("it is kept from {file}:{}", first.line);
                self.warn(
                    pos,
                    "defined-again",
                    format!("{what} `{name}` is defined again, identically"),
                    &hint,
                );
                false
            }
            Some((file, first, _)) => {
                let hint = format!("the other is at {file}:{}; rename one of them", first.line);
                self.error(
                    pos,
                    "duplicate-name",
                    format!("{what} `{name}` is defined twice, differently"),
                    &hint,
                );
                false
            }
            None => {
                known.insert(name.to_string(), (self.file.to_string(), pos, spec.clone()));
                true
            }
        }
    }

    fn warn(&mut self, pos: Pos, code: &'static str, message: String, hint: &str) {
        self.diags
            .push(Diagnostic::warning(self.file, pos, code, message).with_hint(hint));
    }

    /// A name, renamed to Kubernetes rules with a warning when needed.
    fn name(&mut self, raw: &str, pos: Pos, what: &str) -> String {
        let name = kube_name(raw);
        if name != raw && self.renamed.insert(format!("{what}/{raw}")) {
            self.warn(
                pos,
                "renamed",
                format!("{what} `{raw}` is named `{name}`"),
                "Cascade names follow the Kubernetes rules (lowercase letters, digits, `-`, `.`)",
            );
        }
        name
    }

    /// A JSON value; a JSON string holding JSON (as some exports write) is read once more.
    fn json(&mut self, e: &Entry, what: &str) -> Option<serde_json::Value> {
        match serde_json::from_str::<serde_json::Value>(&e.value) {
            Ok(serde_json::Value::String(inner)) => match serde_json::from_str(&inner) {
                Ok(v) => Some(v),
                Err(_) => Some(serde_json::Value::String(inner)),
            },
            Ok(v) => Some(v),
            Err(err) => {
                self.error(
                    e.pos,
                    "invalid-json",
                    format!("`{}` is not valid JSON for {what}: {err}", e.key),
                    "POMS writes JSON with double quotes, e.g. [[\"--stage=\", \"gen\"]]",
                );
                None
            }
        }
    }

    fn params(&mut self, e: &Entry) -> Option<Vec<Param>> {
        let v = self.json(e, "parameter pairs")?;
        let pairs = v.as_array().and_then(|items| {
            items
                .iter()
                .map(|p| match p.as_array().map(Vec::as_slice) {
                    Some([k, v]) => Some(Param::new(json_text(k), json_text(v))),
                    _ => None,
                })
                .collect::<Option<Vec<Param>>>()
        });
        if pairs.is_none() {
            self.error(
                e.pos,
                "invalid-parameters",
                format!("`{}` must be a list of [key, value] pairs", e.key),
                "e.g. [[\"-Oglobal.release=\", \"v1\"], [\"--stage=\", \"gen\"]]",
            );
        }
        pairs
    }

    fn boolean(&mut self, e: &Entry) -> Option<bool> {
        match e.value.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" | "y" | "t" => Some(true),
            "false" | "0" | "no" | "off" | "n" | "f" => Some(false),
            _ => {
                self.error(
                    e.pos,
                    "invalid-boolean",
                    format!("`{}` = `{}` is not a boolean", e.key, e.value),
                    "write True or False",
                );
                None
            }
        }
    }

    fn split(&mut self, e: &Entry) -> Option<SplitSpec> {
        match parse_legacy(&e.value) {
            Ok(Some(policy)) => Some(SplitSpec::Legacy(policy.to_string())),
            Ok(None) => None,
            Err(err) => {
                let pos = Pos {
                    line: e.pos.line,
                    col: e.pos.col + (e.key.len() + 1 + err.offset) as u32,
                };
                let hint = err
                    .hint
                    .unwrap_or_else(|| "for example nfiles(10) or list".into());
                self.error(
                    pos,
                    "invalid-split",
                    format!("`{}`: {}", e.key, err.message),
                    &hint,
                );
                None
            }
        }
    }
}

fn json_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// File patterns in POMS files write `%` as `%%` (it went through `%` formatting); in
/// Cascade a pattern is plain SQL LIKE.
fn pattern(text: &str) -> String {
    text.replace("%%", "%")
}

/// The stage settings a `[campaign_defaults]` or `[campaign_stage X]` section sets, and the
/// completion parts it sets (the two POMS keys form one Cascade field).
#[derive(Default)]
struct Settings {
    settings: StageDefaults,
    completion_type: Option<CompletionType>,
    completion_pct: Option<f64>,
    /// `cascade_split_resets` (a stage's own, never a default).
    split_resets: u32,
}

fn settings(ctx: &mut Ctx, section: &Section, defaults: Option<&Settings>) -> Settings {
    let mut s = Settings::default();
    for e in &section.entries {
        if e.value.is_empty() {
            continue; // POMS: an empty stage value takes the default
        }
        let st = &mut s.settings;
        match e.key.as_str() {
            "vo_role" => st.vo_role = Some(e.value.clone()),
            "software_version" => st.software_version = Some(e.value.clone()),
            "login_setup" => st.login_setup = Some(ctx.name(&e.value, e.pos, "login setup")),
            "job_type" => st.job_type = Some(ctx.name(&e.value, e.pos, "job type")),
            "dataset_or_split_data" | "dataset" => {
                if e.value != "from_parent" && e.value != "None" {
                    st.dataset = Some(
                        match serde_json::from_str::<Vec<Vec<serde_json::Value>>>(&e.value) {
                            Ok(lists) if e.value.trim_start().starts_with("[[") => {
                                SplitData::Lists(
                                    lists
                                        .iter()
                                        .map(|l| l.iter().map(json_text).collect())
                                        .collect(),
                                )
                            }
                            _ => SplitData::Text(e.value.clone()),
                        },
                    );
                }
            }
            "cs_split_type" | "split_type" => st.split = ctx.split(e).map(Box::new),
            "test_split_type" => st.test_split = ctx.split(e).map(Box::new),
            "completion_type" => match e.value.to_ascii_lowercase().as_str() {
                "complete" => s.completion_type = Some(CompletionType::Complete),
                "located" => s.completion_type = Some(CompletionType::Located),
                _ => ctx.error(
                    e.pos,
                    "invalid-completion",
                    format!(
                        "completion_type `{}` is neither `complete` nor `located`",
                        e.value
                    ),
                    "write complete or located",
                ),
            },
            "completion_pct" => match e.value.parse::<f64>() {
                Ok(p) if p > 0.0 && p <= 100.0 => s.completion_pct = Some(p),
                _ => ctx.error(
                    e.pos,
                    "invalid-percent",
                    format!(
                        "completion_pct `{}` is not a percentage in (0, 100]",
                        e.value
                    ),
                    "for example 95",
                ),
            },
            "param_overrides" => st.parameter_overrides = ctx.params(e).filter(|p| !p.is_empty()),
            "test_param_overrides" => {
                st.test_parameter_overrides = ctx.params(e).filter(|p| !p.is_empty())
            }
            "merge_overrides" => st.merge_default_overrides = ctx.boolean(e).filter(|b| *b),
            // POMS: anything except False/false keeps clearing.
            "default_clear_cronjob" => {
                st.clear_schedule_on_exhaustion =
                    (e.value.eq_ignore_ascii_case("false") || e.value == "0").then_some(false)
            }
            "stage_type" => match e.value.to_ascii_lowercase().as_str() {
                "regular" => {}
                "generator" => st.stage_type = Some(StageType::Generator),
                "approval" => st.stage_type = Some(StageType::Approval),
                "datatransfer" => st.stage_type = Some(StageType::Datatransfer),
                _ => ctx.error(
                    e.pos,
                    "invalid-stage-type",
                    format!(
                        "stage_type `{}` is not one of regular, generator, approval, datatransfer",
                        e.value
                    ),
                    "write regular, generator, approval or datatransfer",
                ),
            },
            "output_ancestor_depth" => match e.value.parse::<u32>() {
                Ok(1) => {}
                Ok(d) => st.output_ancestor_depth = Some(d),
                Err(_) => ctx.error(
                    e.pos,
                    "invalid-number",
                    format!("output_ancestor_depth `{}` is not a whole number", e.value),
                    "for example 1",
                ),
            },
            "cascade_schedule" => st.schedule = Some(e.value.clone()),
            // Read where the stage is named.
            "cascade_name" => {}
            "cascade_paused" => st.paused = ctx.boolean(e).filter(|b| *b),
            "cascade_join" => st.join = ctx.boolean(e).filter(|b| *b),
            "cascade_split_resets" => match e.value.trim().parse() {
                Ok(n) => s.split_resets = n,
                Err(_) => ctx.error(
                    e.pos,
                    "invalid-number",
                    format!("cascade_split_resets `{}` is not a whole number", e.value),
                    "for example 1",
                ),
            },
            // Read by the GUI editor, handled with [campaign].
            "campaign_keywords" => {}
            "state" => ctx.warn(
                e.pos,
                "not-carried",
                "a stage's `state` is not carried: stages have no state of their own".into(),
                "pause a stage with `paused: true`",
            ),
            other => ctx.warn(
                e.pos,
                "not-carried",
                format!("key `{other}` is not carried"),
                "Cascade has no such stage setting; check the POMS reference §8.1",
            ),
        }
    }
    // The two completion keys make one field: a stage that sets one takes the other from the
    // defaults.
    if s.completion_type.is_some() || s.completion_pct.is_some() {
        let d = defaults;
        let kind = s
            .completion_type
            .or(d.and_then(|d| d.completion_type))
            .unwrap_or_default();
        let percent = s
            .completion_pct
            .or(d.and_then(|d| d.completion_pct))
            .unwrap_or(95.0);
        s.settings.completion = Some(Completion { kind, percent });
    }
    s
}

/// Imports a set of files; returns one [`Imported`] per file with a campaign or shared
/// resources, and every diagnostic.
pub fn import(files: &[(String, String)], opts: &Options) -> (Vec<Imported>, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let mut parsed: Vec<(String, Vec<Section>)> = Vec::new();
    for (file, text) in files {
        match parse(text) {
            Ok(sections) => parsed.push((file.clone(), sections)),
            Err(e) => diags
                .push(Diagnostic::error(file, e.pos, "invalid-ini", e.message).with_hint(e.hint)),
        }
    }
    // Shared resources first: every campaign may use any of them.
    let namespace_of = |sections: &[Section]| {
        opts.namespace.clone().unwrap_or_else(|| {
            sections
                .iter()
                .find(|s| s.name == "campaign")
                .and_then(|s| s.get("experiment"))
                .map(|e| kube_name(&e.value))
                .unwrap_or_else(|| "default".into())
        })
    };
    // A file without `[campaign]` (shared login setups and job types) has no experiment of
    // its own: it takes `--namespace`, never that of other files imported with it.
    let default_ns = opts.namespace.clone().unwrap_or_else(|| "default".into());
    let mut known_login: Known<LoginSetupSpec> = BTreeMap::new();
    let mut known_job: Known<JobTypeSpec> = BTreeMap::new();
    let mut out = Vec::new();
    let mut renamed = BTreeSet::new();
    for (file, sections) in &parsed {
        let mut ctx = Ctx {
            file,
            diags: &mut diags,
            renamed: &mut renamed,
        };
        let ns = if sections.iter().any(|s| s.name == "campaign") {
            namespace_of(sections)
        } else {
            if opts.namespace.is_none()
                && sections
                    .iter()
                    .any(|s| matches!(s.kind_and_name().0, "login_setup" | "job_type"))
            {
                ctx.warn(
                    sections.first().map_or(Pos { line: 1, col: 1 }, |s| s.pos),
                    "no-experiment",
                    "this file has no `[campaign]`, so no experiment: its resources go into namespace `default`".into(),
                    "pass `--namespace EXPERIMENT` to import them where the campaigns that use them are",
                );
            }
            default_ns.clone()
        };
        let mut imported = Imported {
            source: file.clone(),
            documents: Vec::new(),
            sections: Vec::new(),
        };
        for section in sections {
            let (kind, raw) = section.kind_and_name();
            match kind {
                "login_setup" => {
                    let name = ctx.name(raw, section.pos, "login setup");
                    let r = login_setup(&mut ctx, section, &name, &ns);
                    if ctx.first_definition(
                        &mut known_login,
                        &name,
                        section.pos,
                        &r.spec,
                        "login setup",
                    ) {
                        imported.push(Document::LoginSetup(r), section.pos);
                    }
                }
                "job_type" => {
                    let name = ctx.name(raw, section.pos, "job type");
                    let Some(r) = job_type(&mut ctx, section, &name, &ns) else {
                        continue;
                    };
                    if ctx.first_definition(&mut known_job, &name, section.pos, &r.spec, "job type")
                    {
                        imported.push(Document::JobType(r), section.pos);
                    }
                }
                _ => {}
            }
        }
        out.push(imported);
    }
    for ((file, sections), imported) in parsed.iter().zip(out.iter_mut()) {
        let mut ctx = Ctx {
            file,
            diags: &mut diags,
            renamed: &mut renamed,
        };
        campaign(&mut ctx, sections, &namespace_of(sections), imported);
    }
    // A file that gives nothing says so: a wrong file, or one of sections POMS does not read.
    for ((file, sections), imported) in parsed.iter().zip(&out) {
        if imported.documents.is_empty() {
            let seen: Vec<String> = sections.iter().map(|s| format!("[{}]", s.name)).collect();
            diags.push(
                Diagnostic::warning(
                    file,
                    sections.first().map_or(Pos { line: 1, col: 1 }, |s| s.pos),
                    "nothing-imported",
                    if seen.is_empty() {
                        "nothing imported: the file has no section".to_string()
                    } else {
                        format!("nothing imported: no section of this file is one Cascade reads ({})", seen.join(", "))
                    },
                )
                .with_hint("a campaign file has [campaign] and [campaign_stage NAME] sections; shared files have [login_setup NAME] and [job_type NAME]"),
            );
        }
    }
    // References resolve across the whole set.
    check_references(&known_login, &known_job, opts, &parsed, &mut diags);
    (out, diags)
}

fn login_setup(ctx: &mut Ctx, section: &Section, name: &str, ns: &str) -> LoginSetup {
    let mut spec = LoginSetupSpec::default();
    for e in &section.entries {
        match e.key.as_str() {
            "host" => spec.host = e.value.clone(),
            "account" => spec.account = e.value.clone(),
            "setup" => spec.setup = e.value.clone(),
            "description" => spec.description = Some(e.value.clone()),
            other => ctx.warn(
                e.pos,
                "not-carried",
                format!("login setup key `{other}` is not carried"),
                "a login setup has host, account and setup",
            ),
        }
    }
    for (key, value) in [("host", &spec.host), ("account", &spec.account)] {
        if value.is_empty() {
            ctx.error(
                section.pos,
                "missing-field",
                format!("login setup `{name}` has no `{key}`"),
                &format!("add `{key} = ...`"),
            );
        }
    }
    let mut r = LoginSetup::new(name, spec);
    r.metadata.namespace = Some(ns.to_string());
    keep_poms_name(&mut r.metadata, name, section.kind_and_name().1);
    r
}

/// The name of stage `stage` (in Kubernetes form) of campaign `campaign`. Stage names are
/// unique per campaign in POMS and per namespace in Cascade, so a stage is named after its
/// campaign (`<campaign>-<stage>`, unless its name already starts so), whatever else is
/// imported with it; its POMS name is kept in an annotation.
pub fn stage_name(campaign: &str, stage: &str) -> String {
    if stage == campaign || stage.starts_with(&format!("{campaign}-")) {
        stage.to_string()
    } else {
        format!("{campaign}-{stage}")
    }
}

/// Keeps the name POMS knew a resource by when it had to change (an annotation, which
/// `export-ini` writes back and launches report to POMS's wrappers).
fn keep_poms_name(
    meta: &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    name: &str,
    poms: &str,
) {
    if name != poms {
        meta.annotations
            .get_or_insert_with(Default::default)
            .insert(cascade_crd::POMS_NAME_ANNOTATION.into(), poms.into());
    }
}

fn job_type(ctx: &mut Ctx, section: &Section, name: &str, ns: &str) -> Option<JobType> {
    let mut spec = JobTypeSpec::default();
    let mut batch_given = false;
    for e in &section.entries {
        match e.key.as_str() {
            "launch_script" => spec.launch_script = e.value.clone(),
            "parameters" => spec.parameters = ctx.params(e).unwrap_or_default(),
            "output_file_patterns" => {
                spec.output_file_patterns = e
                    .value
                    .split(',')
                    .map(|p| pattern(p.trim()))
                    .filter(|p| !p.is_empty())
                    .collect()
            }
            "recoveries" => {
                let Some(v) = ctx.json(e, "recoveries") else {
                    continue;
                };
                let steps = v.as_array().map(|items| {
                    items
                        .iter()
                        .map(|step| {
                            let (kind, overrides) = match step.as_array().map(Vec::as_slice) {
                                Some([k, o]) => (json_text(k), o.clone()),
                                Some([k]) => (json_text(k), serde_json::json!([])),
                                _ => return Err("each recovery is [type, overrides]".to_string()),
                            };
                            let kind: RecoveryType =
                                serde_json::from_value(serde_json::Value::String(kind.clone()))
                                    .map_err(|_| format!("unknown recovery type `{kind}`"))?;
                            let overrides = overrides
                                .as_array()
                                .map(|ps| {
                                    ps.iter()
                                        .filter_map(|p| match p.as_array().map(Vec::as_slice) {
                                            Some([k, v]) => {
                                                Some(Param::new(json_text(k), json_text(v)))
                                            }
                                            _ => None,
                                        })
                                        .collect()
                                })
                                .unwrap_or_default();
                            Ok(RecoveryStep {
                                kind,
                                parameter_overrides: overrides,
                            })
                        })
                        .collect::<Result<Vec<_>, String>>()
                });
                match steps {
                    Some(Ok(steps)) => spec.recoveries = steps,
                    Some(Err(msg)) => ctx.error(e.pos, "invalid-recoveries", format!("`recoveries`: {msg}"), "known types: consumed_status, process_status (proj_status), added_files, pending_files, delivered_not_consumed"),
                    None => ctx.error(e.pos, "invalid-recoveries", "`recoveries` must be a list of [type, overrides]".into(), "e.g. [[\"consumed_status\", []]]"),
                }
            }
            "cascade_batch_system" => {
                batch_given = true;
                match serde_json::from_value(serde_json::Value::String(e.value.clone())) {
                    Ok(b) => spec.batch_system = b,
                    Err(_) => ctx.error(
                        e.pos,
                        "invalid-batch-system",
                        format!("unknown batch system `{}`", e.value),
                        "local, slurm, kubernetes or condor",
                    ),
                }
            }
            "input_files_per_job" | "cascade_input_files_per_job" => {
                spec.input_files_per_job = e.value.parse().ok()
            }
            "output_files_per_job" | "cascade_output_files_per_job" => {
                spec.output_files_per_job = e.value.parse().ok()
            }
            "description" => spec.description = Some(e.value.clone()),
            other => ctx.warn(
                e.pos,
                "not-carried",
                format!("job type key `{other}` is not carried"),
                "a job type has launch_script, parameters, output_file_patterns and recoveries",
            ),
        }
    }
    if spec.launch_script.is_empty() {
        ctx.error(
            section.pos,
            "missing-field",
            format!("job type `{name}` has no `launch_script`"),
            "add `launch_script = ...`",
        );
        return None;
    }
    // POMS launches submit to HTCondor (fife_launch, jobsub): that is where their jobs are to
    // be observed, unless the script submits to Cascade's own batch system.
    if !batch_given && !spec.launch_script.contains("cascade submit") {
        spec.batch_system = cascade_crd::BatchSystem::Condor;
    }
    let mut r = JobType::new(name, spec);
    r.metadata.namespace = Some(ns.to_string());
    keep_poms_name(&mut r.metadata, name, section.kind_and_name().1);
    Some(r)
}

fn campaign(ctx: &mut Ctx, sections: &[Section], ns: &str, imported: &mut Imported) {
    let Some(head) = sections.iter().find(|s| s.name == "campaign") else {
        for s in sections {
            let (kind, _) = s.kind_and_name();
            if matches!(
                kind,
                "campaign_stage" | "dependencies" | "campaign_defaults"
            ) {
                ctx.error(
                    s.pos,
                    "missing-campaign",
                    format!("`[{}]` without a `[campaign]` section", s.name),
                    "a file with stages needs `[campaign]` with its `name`",
                );
                return;
            }
        }
        return;
    };
    let Some(raw_name) = head.get("name") else {
        ctx.error(
            head.pos,
            "missing-field",
            "`[campaign]` has no `name`".into(),
            "add `name = ...`",
        );
        return;
    };
    let name = ctx.name(&raw_name.value, raw_name.pos, "campaign");
    let mut spec = CampaignSpec::default();
    let defaults_section = sections.iter().find(|s| s.name == "campaign_defaults");
    for e in head
        .entries
        .iter()
        .chain(defaults_section.and_then(|d| d.get("campaign_keywords")))
    {
        match e.key.as_str() {
            "name" | "experiment" => {}
            "state" => match e.value.to_ascii_lowercase().as_str() {
                "active" => {}
                "inactive" => spec.state = CampaignState::Inactive,
                _ => ctx.error(
                    e.pos,
                    "invalid-state",
                    format!("state `{}` is neither Active nor Inactive", e.value),
                    "write Active or Inactive",
                ),
            },
            "campaign_keywords" => {
                if let Some(v) = ctx.json(e, "keywords") {
                    match v.as_object() {
                        Some(map) => {
                            for (k, v) in map {
                                spec.keywords.insert(k.clone(), json_text(v));
                            }
                        }
                        None => ctx.error(
                            e.pos,
                            "invalid-keywords",
                            "`campaign_keywords` must be a JSON object".into(),
                            "e.g. {\"release\": \"v2_3\"}",
                        ),
                    }
                }
            }
            "campaign_stage_list" => {}
            "poms_role" => {
                if !e.value.eq_ignore_ascii_case("production") {
                    ctx.warn(
                        e.pos,
                        "not-carried",
                        format!("poms_role `{}` is not carried", e.value),
                        "Cascade has no campaign roles; each stage has its `voRole`",
                    );
                }
            }
            "cascade_paused" => spec.paused = ctx.boolean(e).unwrap_or(false),
            "cascade_test" => spec.test = ctx.boolean(e).unwrap_or(false),
            "description" => spec.description = Some(e.value.clone()),
            "tags" => {
                spec.tags = e
                    .value
                    .split(',')
                    .map(|t| t.trim().to_string())
                    .filter(|t| !t.is_empty())
                    .collect()
            }
            other => ctx.warn(
                e.pos,
                "not-carried",
                format!("campaign key `{other}` is not carried"),
                "see the POMS reference §8.1",
            ),
        }
    }
    let defaults = defaults_section.map(|d| settings(ctx, d, None));
    if let Some(d) = &defaults
        && d.settings != StageDefaults::default()
    {
        spec.defaults = Some(d.settings.clone());
    }

    // Stages, in the order of campaign_stage_list when there is one.
    let listed: Option<Vec<(String, Pos)>> = head.get("campaign_stage_list").map(|e| {
        e.value
            .split(',')
            .map(|s| (s.trim().to_string(), e.pos))
            .filter(|(s, _)| !s.is_empty())
            .collect()
    });
    let stage_sections: Vec<&Section> = sections
        .iter()
        .filter(|s| s.kind_and_name().0 == "campaign_stage")
        .collect();
    let sectioned: HashSet<&str> = stage_sections.iter().map(|s| s.kind_and_name().1).collect();
    let listed_names: HashSet<&str> = listed.iter().flatten().map(|(l, _)| l.as_str()).collect();
    if let Some(list) = &listed {
        for (stage, pos) in list {
            if !sectioned.contains(stage.as_str()) {
                // POMS reads stages from their sections and ignores the list when it saves.
                ctx.warn(*pos, "unknown-stage", format!("campaign_stage_list names `{stage}` but there is no `[campaign_stage {stage}]`: POMS ignores the list, and so does the import"), "remove the name from the list, or add the section");
            }
        }
    }
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    for s in &stage_sections {
        let raw = s.kind_and_name().1;
        if listed.is_some() && !listed_names.contains(raw) {
            ctx.warn(
                s.pos,
                "unlisted-stage",
                format!("stage `{raw}` is not in campaign_stage_list"),
                "it is imported anyway; add it to the list",
            );
        }
        // A name Cascade gave the stage before (written back by `export-ini`) is kept.
        let full = match s.get("cascade_name") {
            Some(e) => ctx.name(&e.value, e.pos, "stage"),
            None => stage_name(&name, &ctx.name(raw, s.pos, "stage")),
        };
        names.insert(raw.to_string(), full);
    }

    // Dependencies, per downstream stage.
    let mut deps: BTreeMap<String, Vec<Dependency>> = BTreeMap::new();
    for s in sections
        .iter()
        .filter(|s| s.kind_and_name().0 == "dependencies")
    {
        let down = s.kind_and_name().1;
        if !names.contains_key(down) {
            ctx.warn(s.pos, "unknown-stage", format!("`[dependencies {down}]` is for a stage that has no `[campaign_stage {down}]` section: not imported"), "fix the stage name, or remove the section");
            continue;
        }
        let mut k = 1;
        while let Some(up) = s.get(&format!("campaign_stage_{k}")) {
            let Some(up_name) = names.get(up.value.trim()) else {
                ctx.error(
                    up.pos,
                    "unknown-stage",
                    format!(
                        "`campaign_stage_{k}` names `{}`, which is not a stage of this campaign",
                        up.value
                    ),
                    "dependencies stay within one campaign",
                );
                k += 1;
                continue;
            };
            let file_pattern = match s.get(&format!("file_pattern_{k}")) {
                Some(p) => pattern(&p.value),
                None => {
                    ctx.error(
                        up.pos,
                        "missing-field",
                        format!("`campaign_stage_{k}` has no `file_pattern_{k}`"),
                        "POMS requires a pattern per dependency; `%%` takes every output",
                    );
                    "%".into()
                }
            };
            let trigger = match s
                .get(&format!("cascade_trigger_{k}"))
                .map(|t| t.value.as_str())
            {
                Some("stageComplete") => DependencyTrigger::StageComplete,
                _ => DependencyTrigger::Submission,
            };
            deps.entry(down.to_string()).or_default().push(Dependency {
                stage: up_name.clone(),
                file_pattern,
                trigger,
            });
            k += 1;
        }
        for e in &s.entries {
            let known = ["campaign_stage_", "file_pattern_", "cascade_trigger_"]
                .iter()
                .any(|p| {
                    e.key
                        .strip_prefix(p)
                        .is_some_and(|n| n.parse::<u32>().is_ok_and(|n| n < k))
                });
            if !known {
                ctx.warn(e.pos, "not-carried", format!("`{}` is not carried", e.key), "dependencies are numbered campaign_stage_1, file_pattern_1, campaign_stage_2, ... without gaps");
            }
        }
    }

    let mut c = Campaign::new(&name, spec);
    c.metadata.namespace = Some(ns.to_string());
    keep_poms_name(&mut c.metadata, &name, raw_name.value.trim());
    imported.push(Document::Campaign(Box::new(c)), head.pos);
    for s in &stage_sections {
        let raw = s.kind_and_name().1;
        let own = settings(ctx, s, defaults.as_ref());
        // Required once defaults are applied (reference §8.1).
        let d = defaults.as_ref().map(|d| &d.settings);
        let has = |f: fn(&StageDefaults) -> bool| f(&own.settings) || d.is_some_and(f);
        for (field, present) in [
            ("job_type", has(|s| s.job_type.is_some())),
            ("login_setup", has(|s| s.login_setup.is_some())),
            ("software_version", has(|s| s.software_version.is_some())),
        ] {
            if !present {
                ctx.error(
                    s.pos,
                    "missing-field",
                    format!("stage `{raw}` has no `{field}`, nor does `[campaign_defaults]`"),
                    &format!("add `{field} = ...` to the stage or the defaults"),
                );
            }
        }
        let mut spec = CampaignStageSpec::from_settings(
            name.clone(),
            deps.remove(raw).unwrap_or_default(),
            own.settings,
        );
        spec.split_resets = own.split_resets;
        if spec.vo_role.is_none() && d.is_none_or(|d| d.vo_role.is_none()) {
            spec.vo_role = Some("Production".into());
        }
        let mut stage = CampaignStage::new(&names[raw], spec);
        stage.metadata.namespace = Some(ns.to_string());
        keep_poms_name(&mut stage.metadata, &names[raw], raw);
        imported.push(Document::Stage(Box::new(stage)), s.pos);
    }
    for s in sections {
        let (kind, _) = s.kind_and_name();
        match kind {
            "campaign" | "campaign_defaults" | "campaign_stage" | "dependencies" | "login_setup" | "job_type" => {}
            "node_positions" => ctx.warn(s.pos, "not-carried", "`[node_positions]` is not carried: it is the POMS editor's layout".into(), "nothing to do"),
            _ => ctx.warn(s.pos, "not-carried", format!("section `[{}]` is not carried", s.name), "known sections: campaign, campaign_defaults, campaign_stage, dependencies, login_setup, job_type, node_positions"),
        }
    }
}

/// Every stage's job type and login setup must be defined somewhere in the set (or by
/// `--with`). In POMS they often live only in its database, so all that are missing are
/// listed in one error, each with where it is named.
fn check_references(
    logins: &Known<LoginSetupSpec>,
    jobs: &Known<JobTypeSpec>,
    opts: &Options,
    parsed: &[(String, Vec<Section>)],
    diags: &mut Vec<Diagnostic>,
) {
    let mut missing: BTreeMap<(&str, String), Vec<(String, Pos)>> = BTreeMap::new();
    for (file, sections) in parsed {
        for (kind, what) in [("login_setup", "login setup"), ("job_type", "job type")] {
            for s in sections {
                let Some(e) = s.get(kind) else { continue };
                let name = kube_name(&e.value);
                let known = match kind {
                    "login_setup" => {
                        logins.contains_key(&name) || opts.login_setups.contains(&name)
                    }
                    _ => jobs.contains_key(&name) || opts.job_types.contains(&name),
                };
                if !e.value.is_empty() && !known {
                    missing
                        .entry((what, e.value.clone()))
                        .or_default()
                        .push((file.clone(), e.pos));
                }
            }
        }
    }
    // Said at the first place, in file and line order, that names one of them.
    let Some((file, pos)) = missing
        .values()
        .flatten()
        .min_by_key(|(f, p)| (f.clone(), p.line, p.col))
        .cloned()
    else {
        return;
    };
    let list: Vec<String> = missing
        .iter()
        .map(|((what, name), places)| {
            let at: Vec<String> = places
                .iter()
                .map(|(f, p)| format!("{f}:{}", p.line))
                .collect();
            format!("{what} `{name}` (named at {})", at.join(", "))
        })
        .collect();
    diags.push(
        Diagnostic::error(
            &file,
            pos,
            "unknown-reference",
            format!(
                "{} not defined in the imported files: {}",
                if list.len() == 1 { "one resource is" } else { "these resources are" },
                list.join("; ")
            ),
        )
        .with_hint("in POMS they often live only in its database: import the .ini files that define them (`[login_setup NAME]`, `[job_type NAME]`) together with this one, or pass what is already converted with `--with DIR`"),
    );
}
