//! Validation over the whole set of resources: the rules that need more than one document.
//!
//! Rule codes (stable, shown in brackets in every message):
//! `duplicate-name`, `unknown-reference`, `cross-campaign-dependency`, `duplicate-dependency`,
//! `missing-field`, `invalid-split`, `split-data`, `invalid-percent`, `invalid-schedule`,
//! `template`, `dependency-cycle`, `invalid-join`, `endless-self-dependency`,
//! `invalid-keyword`, `invalid-value`, `unsafe-substitution`;
//! warnings: `no-outputs`, `split-ignored`,
//! `keyword-shadowed`, `self-dependency-trigger`, `pattern-matches-no-output`.

use std::collections::BTreeSet;

use crate::fast::{Map as HashMap, Set as HashSet};
use std::str::FromStr;

use cascade_crd::POMS_NAME_ANNOTATION;
use cascade_crd::stage::SplitData;
use cascade_crd::{
    CampaignSpec, CampaignStageSpec, JobTypeSpec, LoginSetupSpec, Param, SplitPolicy, SplitSpec,
};

use super::diagnostic::{Diagnostic, sort_and_dedup};
use super::graph::{DesiredGraph, Edge, Interner, Name, ObjectKey, Stage};
use super::load::{Identity, Resource, Spec};
use super::yaml::{NodeKind, Pos};
use crate::launch::template::{self, BUILTINS};

/// Name comparisons spent on "did you mean" hints per validation (a few hundred milliseconds).
const SUGGESTION_BUDGET: usize = 5_000_000;

/// The outcome of validating a set: the graph if there was no error, and every diagnostic.
pub struct Validated {
    pub graph: Option<DesiredGraph>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Validates loaded resources. `load_diagnostics` (documents that did not load) are carried
/// along so that the caller gets every problem at once; any error means no graph. References
/// to a `broken` document (one that did not load) are not reported again.
pub fn validate<'r>(
    resources: &'r [Resource],
    broken: &'r [Identity],
    load_diagnostics: Vec<Diagnostic>,
) -> Validated {
    let mut diags = load_diagnostics;
    let index = Index::new(resources, broken, &mut diags);
    let mut v = Validator {
        diags,
        index: &index,
        suggestion_budget: SUGGESTION_BUDGET,
        names: Interner::default(),
    };
    let graph = v.build(resources);
    sort_and_dedup(&mut v.diags);
    let ok = !v.diags.iter().any(Diagnostic::is_error);
    Validated {
        graph: graph.filter(|_| ok),
        diagnostics: v.diags,
    }
}

/// What the checks look resources up in, made once before them.
struct Index<'r> {
    /// (kind, namespace, name) -> first resource with that identity.
    by_key: HashSet<ById<'r>>,
    /// (kind, namespace) -> the sorted names defined, for "did you mean" hints.
    /// Made when the first hint needs it: a valid set never does.
    names: std::sync::OnceLock<HashMap<(&'static str, &'r str), Vec<&'r str>>>,
    /// Documents that did not load (their error is already reported).
    broken: HashSet<(&'static str, &'r str, &'r str)>,
}

struct Validator<'r, 'i> {
    diags: Vec<Diagnostic>,
    index: &'i Index<'r>,
    /// Name comparisons left for "did you mean" hints.
    suggestion_budget: usize,
    names: Interner,
}

/// Where a stage field's value came from: the stage itself or its campaign's defaults.
struct Origin<'r> {
    stage: &'r Resource,
    campaign: Option<&'r Resource>,
    from_defaults: BTreeSet<&'static str>,
}

impl<'r> Origin<'r> {
    /// The resource and path holding stage field `field` (plus a sub-path).
    fn at(&self, field: &'static str, rest: &[&str]) -> (&'r Resource, Vec<String>) {
        let mut path: Vec<String> = match (self.from_defaults.contains(field), self.campaign) {
            (true, Some(c)) => {
                return (
                    c,
                    ["spec", "defaults", field]
                        .iter()
                        .chain(rest)
                        .map(|s| s.to_string())
                        .collect(),
                );
            }
            _ => vec!["spec".into(), field.into()],
        };
        path.extend(rest.iter().map(|s| s.to_string()));
        (self.stage, path)
    }

    fn error(
        &self,
        field: &'static str,
        rest: &[&str],
        code: &'static str,
        msg: impl Into<String>,
    ) -> Diagnostic {
        let (res, path) = self.at(field, rest);
        res.error(&as_strs(&path), code, msg)
    }
}

fn as_strs(path: &[String]) -> Vec<&str> {
    path.iter().map(String::as_str).collect()
}

/// A resource in the identity index, hashed and compared by its (kind, namespace, name): the
/// index holds a reference where a key of three names took 40 bytes more per resource.
struct ById<'r>(&'r Resource);

/// What has a (kind, namespace, name): an indexed resource, or the names it is looked up by.
trait Identified {
    fn identity(&self) -> (&'static str, &str, &str);
}

impl Identified for ById<'_> {
    fn identity(&self) -> (&'static str, &str, &str) {
        (self.0.kind(), self.0.namespace(), self.0.name())
    }
}

impl Identified for (&'static str, &str, &str) {
    fn identity(&self) -> (&'static str, &str, &str) {
        *self
    }
}

impl std::hash::Hash for dyn Identified + '_ {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.identity().hash(state);
    }
}

impl PartialEq for dyn Identified + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.identity() == other.identity()
    }
}

impl Eq for dyn Identified + '_ {}

// Hashed and compared exactly as the names it is looked up by.
impl std::hash::Hash for ById<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.identity().hash(state);
    }
}

impl PartialEq for ById<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.identity() == other.identity()
    }
}

impl Eq for ById<'_> {}

// For any shorter lifetime: names looked up live less long than the indexed resources.
impl<'b, 'a: 'b> std::borrow::Borrow<dyn Identified + 'b> for ById<'a> {
    fn borrow(&self) -> &(dyn Identified + 'b) {
        self
    }
}

impl<'r> Index<'r> {
    /// Indexes the resources; a second resource of an identity is reported in `diags`.
    fn new(resources: &'r [Resource], broken: &'r [Identity], diags: &mut Vec<Diagnostic>) -> Self {
        let mut by_key: HashSet<ById<'r>> =
            HashSet::with_capacity_and_hasher(resources.len(), Default::default());
        for r in resources {
            if let Some(&ById(first)) = by_key.get(&ById(r)) {
                let first_pos = first.locate(&["metadata", "name"]);
                diags.push(
                    r.error(
                        &["metadata", "name"],
                        "duplicate-name",
                        format!(
                            "duplicate {} `{}` in namespace `{}`",
                            r.kind(),
                            r.name(),
                            r.namespace()
                        ),
                    )
                    .with_hint(format!(
                        "already defined at {}:{}:{}; names are unique per kind and namespace",
                        first.file, first_pos.line, first_pos.col
                    )),
                );
            } else {
                by_key.insert(ById(r));
            }
        }
        Index {
            by_key,
            names: std::sync::OnceLock::new(),
            broken: broken
                .iter()
                .map(|b| (b.kind, b.namespace.as_str(), b.name.as_str()))
                .collect(),
        }
    }
}

impl<'r> Index<'r> {
    /// (kind, namespace) -> the sorted names defined.
    fn names(&self) -> &HashMap<(&'static str, &'r str), Vec<&'r str>> {
        self.names.get_or_init(|| {
            let mut names: HashMap<_, Vec<&'r str>> = HashMap::default();
            for &ById(r) in &self.by_key {
                let (kind, namespace, name) = (r.kind(), r.namespace(), r.name());
                names.entry((kind, namespace)).or_default().push(name);
            }
            for list in names.values_mut() {
                list.sort_unstable();
            }
            names
        })
    }
}

impl<'r, 'i> Validator<'r, 'i> {
    fn lookup(&self, kind: &'static str, namespace: &str, name: &str) -> Option<&'r Resource> {
        let key: &dyn Identified = &(kind, namespace, name);
        self.index.by_key.get(key).map(|found| found.0)
    }

    /// Whether a document of that identity exists but did not load.
    fn is_broken(&self, kind: &'static str, namespace: &str, name: &str) -> bool {
        self.index.broken.contains(&(kind, namespace, name))
    }

    /// Another validator over the same index, for checks made on another thread, with a
    /// share of the hint budget (so that the forks together spend no more than this one).
    fn fork(&self) -> Self {
        Validator {
            diags: Vec::new(),
            index: self.index,
            suggestion_budget: self.suggestion_budget / crate::parallel::cores(),
            names: Interner::default(),
        }
    }

    fn unknown_ref(&mut self, kind: &'static str, namespace: &str, name: &str) -> String {
        let Some(names) = self.index.names().get(&(kind, namespace)) else {
            return format!("no {kind} is defined in namespace `{namespace}`");
        };
        // Each "did you mean" compares against every name; a generated set with thousands of
        // unknown references among thousands of names would be quadratic, so past a budget
        // the hint only lists names.
        if self.suggestion_budget >= names.len() {
            self.suggestion_budget -= names.len();
            super::de::suggest(name, names, &format!("{kind} names"))
        } else {
            super::de::listing(names, &format!("{kind} names"))
        }
    }

    fn build(&mut self, resources: &'r [Resource]) -> Option<DesiredGraph> {
        let mut graph = DesiredGraph::default();
        let mut stage_res: Vec<&'r Resource> = Vec::new();
        for r in resources {
            if self
                .lookup(r.kind(), r.namespace(), r.name())
                .map(|f| std::ptr::eq(f, r))
                != Some(true)
            {
                continue; // a duplicate, already reported
            }
            let key = self.names.key(r.namespace(), r.name());
            match &r.spec {
                Spec::LoginSetup(spec) => {
                    self.check_login_setup(r, spec);
                    graph.login_setups.insert(key, (**spec).clone());
                }
                Spec::JobType(spec) => {
                    // Only the syntax here (a stray `%`): which variables exist depends on the
                    // campaign, and is checked for each stage that uses the job type.
                    self.check_job_type_templates(r, spec, &|_| true, "");
                    for (i, p) in spec.output_file_patterns.iter().enumerate() {
                        if p.trim().is_empty() {
                            self.diags.push(
                                r.error(
                                    &["spec", "outputFilePatterns", &i.to_string()],
                                    "invalid-value",
                                    "an empty output file pattern matches no file",
                                )
                                .with_hint(
                                    "an SQL LIKE pattern such as `%.root`, or `%` for every file",
                                ),
                            );
                        }
                    }
                    graph.job_types.insert(key, (**spec).clone());
                }
                Spec::Campaign(spec) => {
                    self.check_campaign(r, spec);
                    graph.campaigns.insert(key, (**spec).clone());
                }
                Spec::CampaignStage(_) => stage_res.push(r),
                Spec::Notifier(spec) => {
                    self.check_notifier(r, spec);
                    graph.notifiers.insert(key, (**spec).clone());
                }
            }
        }
        // Each stage is checked on its own (on every core), against the index.
        let (checked, forks) = crate::parallel::fill(&stage_res, |part, slots| {
            let mut fork = self.fork();
            for (&r, slot) in part.iter().zip(slots) {
                if let Spec::CampaignStage(spec) = &r.spec {
                    *slot = fork.check_stage(r, spec).map(|s| (r, s));
                }
            }
            fork
        });
        let share = self.fork().suggestion_budget;
        for fork in forks {
            self.diags.extend(fork.diags);
            let spent = share - fork.suggestion_budget;
            self.suggestion_budget = self.suggestion_budget.saturating_sub(spent);
        }
        // `filter_map` collects in place (a slot and a stage are the same size); `flatten`
        // would copy every stage into a new vector.
        #[allow(clippy::filter_map_identity)]
        let stages: Vec<(&'r Resource, Stage)> = checked.into_iter().filter_map(|s| s).collect();
        let positions: HashMap<&ObjectKey, usize> = stages
            .iter()
            .enumerate()
            .map(|(i, (_, s))| (&s.key, i))
            .collect();
        let ups = upstream_indices(&stages, &positions);
        self.check_dependencies(&stages, &ups);
        self.warn_unlocatable(&stages, &ups);
        self.check_compositions(&graph, &stages);
        self.warn_unmatched_patterns(&graph, &stages, &positions);
        graph.stages = topological(stages, &ups)?;
        Some(graph)
    }

    /// A notifier's address is a URL, a commit status names its repository and token, and the
    /// campaigns it names exist.
    fn check_notifier(&mut self, r: &Resource, spec: &cascade_crd::NotifierSpec) {
        let address = spec.address.trim();
        let host = address
            .strip_prefix("http://")
            .or_else(|| address.strip_prefix("https://"))
            .and_then(|rest| rest.split(['/', '?', '#']).next())
            .filter(|h| !h.is_empty());
        if host.is_none() || address.chars().any(char::is_whitespace) {
            self.diags.push(
                r.error(
                    &["spec", "address"],
                    "invalid-value",
                    format!(
                        "address `{}` is not an http:// or https:// URL",
                        spec.address
                    ),
                )
                .with_hint(match spec.kind {
                    cascade_crd::NotifierType::Github => "GitHub's API: `https://api.github.com`",
                    cascade_crd::NotifierType::Gitlab => {
                        "the GitLab server: `https://gitlab.example.org`"
                    }
                    _ => "the webhook's URL, such as `https://hooks.example.org/cascade`",
                }),
            );
        }
        if spec.kind.is_commit_status() {
            let what = spec.kind.as_str();
            let repo_ok = spec.repository.as_deref().is_some_and(|repo| {
                let repo = repo.trim();
                !repo.is_empty()
                    && !repo.starts_with('/')
                    && !repo.ends_with('/')
                    && (spec.kind == cascade_crd::NotifierType::Gitlab
                        || repo.matches('/').count() == 1)
            });
            if !repo_ok {
                self.diags.push(
                    r.error(
                        &["spec", "repository"],
                        "missing-field",
                        format!(
                            "a `{what}` notifier sets commit statuses: it needs the repository"
                        ),
                    )
                    .with_hint(
                        if spec.kind == cascade_crd::NotifierType::Github {
                            "`repository: owner/name`"
                        } else {
                            "`repository: group/project` (or the project's id)"
                        },
                    ),
                );
            }
            if spec
                .token_file
                .as_deref()
                .is_none_or(|f| f.trim().is_empty())
            {
                self.diags.push(
                    r.error(
                        &["spec", "tokenFile"],
                        "missing-field",
                        format!("a `{what}` notifier needs a token to set commit statuses"),
                    )
                    .with_hint(
                        "`tokenFile: /path/on/the/controller` holding the token on its first line",
                    ),
                );
            }
        }
        for (i, name) in spec.campaigns.iter().enumerate() {
            if self.lookup("Campaign", r.namespace(), name).is_none() {
                let hint = self.unknown_ref("Campaign", r.namespace(), name);
                self.diags.push(
                    r.error(
                        &["spec", "campaigns", &i.to_string()],
                        "unknown-reference",
                        format!(
                            "Campaign `{name}` does not exist in namespace `{}`",
                            r.namespace()
                        ),
                    )
                    .with_hint(hint),
                );
            }
        }
    }

    fn check_login_setup(&mut self, r: &Resource, spec: &LoginSetupSpec) {
        // The login setup is formatted with the built-ins only (no campaign keywords), as in POMS.
        let builtins = |n: &str| BUILTINS.contains(&n);
        for (field, text) in [
            ("host", &spec.host),
            ("account", &spec.account),
            ("setup", &spec.setup),
        ] {
            self.check_template(
                r,
                &["spec", field],
                text,
                &builtins,
                "the built-in variables (login setups get no campaign keywords)",
            );
        }
        // `ssh ACCOUNT@HOST`: a leading `-` would make ssh read an option.
        for (field, text) in [("host", &spec.host), ("account", &spec.account)] {
            if text.trim_start().starts_with('-') {
                self.diags.push(
                    r.error(
                        &["spec", field],
                        "invalid-value",
                        format!(
                            "{field} `{text}` starts with `-`, which ssh would read as an option"
                        ),
                    )
                    .with_hint("a host name or an account, such as `gpvm01.example.org` or `prod`"),
                );
            }
        }
    }

    /// Composes each stage's launches (normal, test, each recovery round) with stand-in
    /// values: a `%(name)s` that lands where no quoting is safe (inside `$(...)`, a comment,
    /// a here-document, ...) is refused here rather than at launch.
    /// Stages compose independently: they are composed on every core.
    fn check_compositions(&mut self, graph: &DesiredGraph, stages: &[(&'r Resource, Stage)]) {
        let refused = crate::parallel::map(stages, |(_, stage)| composition_error(graph, stage));
        for ((r, stage), error) in stages.iter().zip(refused) {
            let Some(e) = error else { continue };
            let at = self.lookup("JobType", &stage.job_type.namespace, &stage.job_type.name);
            let (res, path): (&Resource, &[&str]) = match at {
                Some(jt) => (jt, &["spec", "launchScript"]),
                None => (r, &["spec"]),
            };
            self.diags.push(
                res.error(path, "unsafe-substitution", format!("stage `{}`: {e}", stage.key.name))
                    .with_hint("Cascade quotes values for a plain command line, inside '...' and inside \"...\""),
            );
        }
    }

    fn check_campaign(&mut self, r: &Resource, spec: &CampaignSpec) {
        for name in spec.keywords.keys() {
            let ok = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-');
            if !ok {
                self.diags.push(
                    r.error(
                        &["spec", "keywords", name],
                        "invalid-keyword",
                        format!("keyword `{name}` cannot be used as `%({name})s`"),
                    )
                    .with_hint("keyword names use letters, digits, `_`, `-` and `.`"),
                );
            }
            if BUILTINS.contains(&name.as_str()) {
                self.diags.push(
                    Diagnostic::warning(
                        &r.file,
                        r.locate_key(&["spec", "keywords", name]),
                        "keyword-shadowed",
                        format!(
                            "keyword `{name}` is hidden by the built-in variable of the same name"
                        ),
                    )
                    .with_hint(
                        "built-ins win on name clashes (POMS semantics); rename the keyword",
                    ),
                );
            }
        }
        if let Some(defaults) = &spec.defaults {
            // The defaults are checked even when no stage uses them; a stage that does gets the
            // same diagnostic at the same place, and duplicates are dropped.
            if let Some(completion) = &defaults.completion {
                let path = ["spec", "defaults", "completion", "percent"];
                self.diags
                    .extend(check_percent(r, &path, completion.percent));
            }
            if let Some(expr) = &defaults.schedule {
                self.diags
                    .extend(check_schedule(r, &["spec", "defaults", "schedule"], expr));
            }
            for (field, split) in [
                ("split", &defaults.split),
                ("testSplit", &defaults.test_split),
            ] {
                if let Some(split) = split
                    && let Err(d) = parse_split(r, &["spec", "defaults", field], split)
                {
                    self.diags.push(d);
                }
            }
        }
    }

    fn check_template(
        &mut self,
        r: &Resource,
        path: &[&str],
        text: &str,
        known: &dyn Fn(&str) -> bool,
        known_desc: &str,
    ) {
        let pos_at = |offset: usize| {
            r.origin
                .with_node(|root| root.at(path).map(|n| scalar_offset_pos(n.pos, n, offset)))
                .unwrap_or_else(|| r.locate(path))
        };
        match template::parse(text) {
            Err(e) => self.diags.push(
                Diagnostic::error(&r.file, pos_at(e.offset), "template", e.message)
                    .with_hint(e.hint),
            ),
            Ok(segments) => {
                for (name, offset) in template::unknown_variables(&segments, known) {
                    self.diags.push(
                        Diagnostic::error(&r.file, pos_at(offset), "template", format!("unknown variable `%({name})s`"))
                            .with_hint(format!(
                                "available here: {known_desc}; built-ins are {}; write `%%({name})s` to pass it through literally",
                                BUILTINS.join(", ")
                            )),
                    );
                }
            }
        }
    }

    fn check_params(
        &mut self,
        r: &Resource,
        path: &[&str],
        params: &[Param],
        known: &dyn Fn(&str) -> bool,
        desc: &str,
    ) {
        for (i, p) in params.iter().enumerate() {
            let idx = i.to_string();
            for (j, text) in [(0, &p.key), (1, &p.value)] {
                let j = j.to_string();
                let mut full: Vec<&str> = path.to_vec();
                full.push(&idx);
                full.push(&j);
                self.check_template(r, &full, text, known, desc);
            }
        }
    }

    /// A stage, checked in steps: its campaign (whose defaults fill its fields), the fields
    /// it must have, the resources it names, its splits and values, its templates, its
    /// dependencies and their shape. `None` if any of them is in error.
    fn check_stage(&mut self, r: &'r Resource, spec: &CampaignStageSpec) -> Option<Stage> {
        let before = self.diags.len();
        let (campaign_res, campaign) = self.stage_campaign(r, spec)?;
        let mut spec = spec.clone();
        let filled = campaign
            .defaults
            .as_ref()
            .map(|d| spec.apply_defaults(d))
            .unwrap_or_default();
        let origin = Origin {
            stage: r,
            campaign: Some(campaign_res),
            from_defaults: filled.into_iter().collect(),
        };
        let login_setup = self.required(r, &spec, "loginSetup", &spec.login_setup);
        let job_type = self.required(r, &spec, "jobType", &spec.job_type);
        let software_version = self.required(r, &spec, "softwareVersion", &spec.software_version);
        // A reference to a document that did not load leaves the stage unbuilt, silently.
        let (_, ls_broken) =
            self.stage_reference(&origin, "LoginSetup", "loginSetup", &login_setup);
        let (jt_res, jt_broken) = self.stage_reference(&origin, "JobType", "jobType", &job_type);

        let split = self.stage_split(&origin, "split", spec.split.as_deref());
        let test_split = self.stage_split(&origin, "testSplit", spec.test_split.as_deref());
        let dataset = self.check_split_data(&origin, &spec, split.as_ref(), test_split.as_ref());
        let completion = spec.completion.clone().unwrap_or_default();
        let (res, path) = origin.at("completion", &["percent"]);
        self.diags
            .extend(check_percent(res, &as_strs(&path), completion.percent));
        if let Some(expr) = &spec.schedule {
            let (res, path) = origin.at("schedule", &[]);
            self.diags
                .extend(check_schedule(res, &as_strs(&path), expr));
        }
        self.check_stage_templates(
            &origin,
            campaign,
            &spec,
            jt_res,
            software_version.as_deref(),
        );
        let (edges, up_broken) = self.stage_edges(r, &spec);
        self.check_values(&origin, &spec);
        let join = spec.join.unwrap_or(false);
        self.check_stage_shape(&origin, split.as_ref(), &edges, join);

        let broken = ls_broken || jt_broken || up_broken;
        if broken || self.diags[before..].iter().any(Diagnostic::is_error) {
            return None;
        }
        Some(Stage {
            // Copied, not shared with the resource: the graph outlives the loaded set, and
            // names kept from it would pin the set's freed pages.
            key: self.names.key(r.namespace(), r.name()),
            campaign: self.names.key(r.namespace(), &spec.campaign),
            login_setup: self.names.key(r.namespace(), &login_setup?),
            job_type: self.names.key(r.namespace(), &job_type?),
            software_version: self.names.name(&software_version?),
            vo_role: self
                .names
                .name(spec.vo_role.as_deref().unwrap_or("Production")),
            dataset: dataset.map(Box::new),
            split: split.map(Box::new),
            test_split: test_split.map(Box::new),
            completion,
            parameter_overrides: spec.parameter_overrides.clone().unwrap_or_default().into(),
            test_parameter_overrides: spec
                .test_parameter_overrides
                .clone()
                .unwrap_or_default()
                .into(),
            merge_default_overrides: spec.merge_default_overrides.unwrap_or(false),
            schedule: spec.schedule.as_deref().map(Name::from),
            paused: spec.paused.unwrap_or(false),
            split_resets: spec.split_resets,
            stage_type: spec.stage_type.unwrap_or_default(),
            output_ancestor_depth: spec.output_ancestor_depth.unwrap_or(1),
            clear_schedule_on_exhaustion: spec.clear_schedule_on_exhaustion.unwrap_or(true),
            join,
            depends_on: edges,
            generation: r.meta.generation,
            poms_name: r.meta.annotations.get(POMS_NAME_ANNOTATION).map(Name::from),
            campaign_poms_name: campaign_res
                .meta
                .annotations
                .get(POMS_NAME_ANNOTATION)
                .map(|n| self.names.name(n)),
            job_type_source: jt_res.map_or_else(|| r.file.clone(), |j| j.file.clone()),
        })
    }

    /// The campaign a stage belongs to, or an error (none when that campaign failed to load:
    /// its own error says why).
    fn stage_campaign(
        &mut self,
        r: &'r Resource,
        spec: &CampaignStageSpec,
    ) -> Option<(&'r Resource, &'r CampaignSpec)> {
        let ns = r.namespace();
        let Some(campaign_res) = self.lookup("Campaign", ns, &spec.campaign) else {
            if !self.is_broken("Campaign", ns, &spec.campaign) {
                let hint = self.unknown_ref("Campaign", ns, &spec.campaign);
                self.diags.push(
                    r.error(
                        &["spec", "campaign"],
                        "unknown-reference",
                        format!(
                            "stage `{}` names campaign `{}`, which does not exist",
                            r.name(),
                            spec.campaign
                        ),
                    )
                    .with_hint(hint),
                );
            }
            return None;
        };
        match &campaign_res.spec {
            Spec::Campaign(campaign) => Some((campaign_res, campaign)),
            _ => None,
        }
    }

    /// A field the stage must have, given here or by its campaign's defaults.
    fn required(
        &mut self,
        r: &Resource,
        spec: &CampaignStageSpec,
        field: &'static str,
        value: &Option<String>,
    ) -> Option<String> {
        match value {
            Some(v) if !v.trim().is_empty() => Some(v.clone()),
            _ => {
                self.diags.push(
                    r.error(
                        &["spec"],
                        "missing-field",
                        format!("stage `{}` has no `{field}`", r.name()),
                    )
                    .with_hint(format!(
                        "set `spec.{field}` here or `spec.defaults.{field}` in campaign `{}`",
                        spec.campaign
                    )),
                );
                None
            }
        }
    }

    /// The resource a stage field names, and whether it names a document that did not load.
    fn stage_reference(
        &mut self,
        origin: &Origin<'r>,
        kind: &'static str,
        field: &'static str,
        name: &Option<String>,
    ) -> (Option<&'r Resource>, bool) {
        let Some(name) = name else {
            return (None, false);
        };
        let ns = origin.stage.namespace();
        let found = self.lookup(kind, ns, name);
        if found.is_some() {
            return (found, false);
        }
        if self.is_broken(kind, ns, name) {
            return (None, true);
        }
        let hint = self.unknown_ref(kind, ns, name);
        self.diags.push(
            origin
                .error(
                    field,
                    &[],
                    "unknown-reference",
                    format!("{kind} `{name}` does not exist in namespace `{ns}`"),
                )
                .with_hint(hint),
        );
        (None, false)
    }

    /// Templates: launch text sees the built-ins and the campaign's keywords; the dataset and
    /// the version see only the keywords (they are expanded before the built-ins exist).
    fn check_stage_templates(
        &mut self,
        origin: &Origin<'r>,
        campaign: &CampaignSpec,
        spec: &CampaignStageSpec,
        jt_res: Option<&'r Resource>,
        software_version: Option<&str>,
    ) {
        let keywords = &campaign.keywords;
        let with_keywords = |n: &str| BUILTINS.contains(&n) || keywords.contains_key(n);
        let keywords_only = |n: &str| keywords.contains_key(n);
        let desc = format!(
            "the built-ins and the keywords of campaign `{}`",
            spec.campaign
        );
        if let Some(jt) = jt_res
            && let Spec::JobType(jt_spec) = &jt.spec
        {
            self.check_job_type_templates(jt, jt_spec, &with_keywords, &desc);
        }
        for (field, params) in [
            ("parameterOverrides", &spec.parameter_overrides),
            ("testParameterOverrides", &spec.test_parameter_overrides),
        ] {
            if let Some(params) = params {
                let (res, path) = origin.at(field, &[]);
                self.check_params(res, &as_strs(&path), params, &with_keywords, &desc);
            }
        }
        if spec.merge_default_overrides == Some(true)
            && let Some(campaign_res) = origin.campaign
            && let Some(params) = campaign
                .defaults
                .as_ref()
                .and_then(|d| d.parameter_overrides.as_ref())
        {
            self.check_params(
                campaign_res,
                &["spec", "defaults", "parameterOverrides"],
                params,
                &with_keywords,
                &desc,
            );
        }
        let kw_desc = format!(
            "the keywords of campaign `{}` (the dataset and version are expanded before the built-ins exist)",
            spec.campaign
        );
        if let Some(SplitData::Text(text)) = &spec.dataset {
            let (res, path) = origin.at("dataset", &[]);
            self.check_template(res, &as_strs(&path), text, &keywords_only, &kw_desc);
        }
        if let Some(v) = software_version {
            let (res, path) = origin.at("softwareVersion", &[]);
            self.check_template(res, &as_strs(&path), v, &keywords_only, &kw_desc);
        }
    }

    /// The stage's dependency edges: each upstream stage exists and is of the same
    /// campaign, no edge twice (cycles are checked over the whole set). Also whether one
    /// names a stage that did not load.
    fn stage_edges(&mut self, r: &'r Resource, spec: &CampaignStageSpec) -> (Vec<Edge>, bool) {
        let ns = r.namespace();
        let mut broken = false;
        let mut edges = Vec::with_capacity(spec.depends_on.len());
        let mut seen_edges = HashSet::default();
        for (i, dep) in spec.depends_on.iter().enumerate() {
            let idx = i.to_string();
            if dep.stage != r.name() {
                broken |= self.check_upstream(r, spec, &idx, &dep.stage);
            }
            if !seen_edges.insert((dep.stage.as_str(), dep.file_pattern.as_str())) {
                self.diags.push(r.error(
                    &["spec", "dependsOn", &idx],
                    "duplicate-dependency",
                    format!(
                        "stage `{}` depends on `{}` twice with the same pattern",
                        r.name(),
                        dep.stage
                    ),
                ));
            }
            edges.push(Edge {
                upstream: self.names.key(ns, &dep.stage),
                file_pattern: self.names.name(&dep.file_pattern),
                trigger: dep.trigger,
            });
        }
        (edges, broken)
    }

    /// An upstream stage exists in the namespace and belongs to the same campaign. Returns
    /// whether it is a document that did not load.
    fn check_upstream(
        &mut self,
        r: &'r Resource,
        spec: &CampaignStageSpec,
        idx: &str,
        upstream: &str,
    ) -> bool {
        let ns = r.namespace();
        match self.lookup("CampaignStage", ns, upstream) {
            None if self.is_broken("CampaignStage", ns, upstream) => return true,
            None => {
                let hint = self.unknown_ref("CampaignStage", ns, upstream);
                self.diags.push(
                    r.error(
                        &["spec", "dependsOn", idx, "stage"],
                        "unknown-reference",
                        format!("upstream stage `{upstream}` does not exist in namespace `{ns}`"),
                    )
                    .with_hint(hint),
                );
            }
            Some(up) => {
                if let Spec::CampaignStage(up_spec) = &up.spec
                    && up_spec.campaign != spec.campaign
                {
                    self.diags.push(
                        r.error(
                            &["spec", "dependsOn", idx, "stage"],
                            "cross-campaign-dependency",
                            format!(
                                "upstream stage `{upstream}` belongs to campaign `{}`, not `{}`",
                                up_spec.campaign, spec.campaign
                            ),
                        )
                        .with_hint("dependencies link stages of one campaign"),
                    );
                }
            }
        }
        false
    }

    /// How the split and the dependencies fit together: a join needs two upstream stages, a
    /// self-dependency a split that runs out, and a split of a stage fed only by upstream
    /// stages is never used.
    fn check_stage_shape(
        &mut self,
        origin: &Origin<'r>,
        split: Option<&SplitPolicy>,
        edges: &[Edge],
        join: bool,
    ) {
        let r = origin.stage;
        let key = ObjectKey::new(r.namespace(), r.name());
        let upstreams = edges.iter().filter(|e| e.upstream != key).count();
        let self_dependent = edges.iter().any(|e| e.upstream == key);
        if join && upstreams < 2 {
            self.diags.push(
                origin.error("join", &[], "invalid-join", format!("stage `{}` joins {upstreams} upstream stage{}", r.name(), if upstreams == 1 { "" } else { "s" }))
                    .with_hint("`join: true` waits for several upstream stages; list at least two in `dependsOn`"),
            );
        }
        if split.is_some_and(|s| !s.can_exhaust()) && self_dependent {
            self.diags.push(
                origin.error("split", &[], "endless-self-dependency", format!("stage `{}` relaunches itself after each submission but its split never runs out", r.name()))
                    .with_hint("a self-dependency needs a split that exhausts (nfiles, list, multiparam, byrun, ...)"),
            );
        }
        if split.is_some() && upstreams > 0 && !self_dependent {
            self.diags.push(
                origin.error("split", &[], "split-ignored", format!("stage `{}` is launched from its upstream stages' outputs, so its split is not used", r.name()))
                    .with_hint("remove `split`, or remove `dependsOn` to split a dataset"),
            );
            if let Some(d) = self.diags.last_mut() {
                d.severity = super::diagnostic::Severity::Warning;
            }
        }
    }

    /// Values that parse but mean nothing: a depth of 0, empty patterns and roles, a trigger
    /// on a self-dependency. Messages about fields that may come from the campaign's defaults
    /// do not name the stage, so that stages sharing a default get one diagnostic.
    fn check_values(&mut self, origin: &Origin, spec: &CampaignStageSpec) {
        let name = origin.stage.name();
        if spec.output_ancestor_depth == Some(0) {
            self.diags.push(
                origin
                    .error("outputAncestorDepth", &[], "invalid-value", "outputAncestorDepth must be at least 1")
                    .with_hint("1: the outputs counted are the inputs' children (the default); 2: their grandchildren"),
            );
        }
        if spec.vo_role.as_ref().is_some_and(|r| r.trim().is_empty()) {
            self.diags.push(
                origin
                    .error("voRole", &[], "invalid-value", "voRole is empty")
                    .with_hint("`Production` (the default), `Analysis`, or your experiment's role; or leave it out"),
            );
        }
        for (i, dep) in spec.depends_on.iter().enumerate() {
            let idx = i.to_string();
            if dep.file_pattern.trim().is_empty() {
                self.diags.push(
                    origin
                        .stage
                        .error(&["spec", "dependsOn", &idx, "filePattern"], "invalid-value", format!("the dependency on `{}` has an empty filePattern, which matches no file", dep.stage))
                        .with_hint("`%` takes every output of the upstream stage (the default), `%.root` the ROOT files"),
                );
            }
            if dep.stage == name && dep.trigger != cascade_crd::DependencyTrigger::Submission {
                self.diags.push(
                    origin
                        .stage
                        .warning(&["spec", "dependsOn", &idx, "trigger"], "self-dependency-trigger", format!("stage `{name}` depends on itself with `trigger: stageComplete`, which is ignored"))
                        .with_hint("a self-dependency always relaunches with the next split after each located submission; remove `trigger`"),
                );
            }
        }
    }

    fn check_job_type_templates(
        &mut self,
        jt: &Resource,
        spec: &JobTypeSpec,
        known: &dyn Fn(&str) -> bool,
        desc: &str,
    ) {
        self.check_template(
            jt,
            &["spec", "launchScript"],
            &spec.launch_script,
            known,
            desc,
        );
        self.check_params(jt, &["spec", "parameters"], &spec.parameters, known, desc);
        for (i, step) in spec.recoveries.iter().enumerate() {
            let idx = i.to_string();
            self.check_params(
                jt,
                &["spec", "recoveries", &idx, "parameterOverrides"],
                &step.parameter_overrides,
                known,
                desc,
            );
        }
    }

    fn stage_split(
        &mut self,
        origin: &Origin,
        field: &'static str,
        split: Option<&SplitSpec>,
    ) -> Option<SplitPolicy> {
        let (res, path) = origin.at(field, &[]);
        match parse_split(res, &as_strs(&path), split?) {
            Ok(p) => p,
            Err(d) => {
                self.diags.push(d);
                None
            }
        }
    }

    /// Checks that the stage's dataset is the kind of data its split types read.
    fn check_split_data(
        &mut self,
        origin: &Origin,
        spec: &CampaignStageSpec,
        split: Option<&SplitPolicy>,
        test_split: Option<&SplitPolicy>,
    ) -> Option<SplitData> {
        let name = origin.stage.name();
        let mut dataset = spec.dataset.clone();
        // POMS stores multiparam data as a JSON string; accept it and keep the typed form.
        if let Some(SplitData::Text(text)) = &dataset
            && text.trim_start().starts_with('[')
            && let Ok(lists) = serde_json::from_str::<Vec<Vec<String>>>(text)
        {
            dataset = Some(SplitData::Lists(lists));
        }
        let generator = spec.stage_type == Some(cascade_crd::StageType::Generator);
        let fed_by_upstream = spec.depends_on.iter().any(|d| d.stage != name);
        for policy in [split, test_split].into_iter().flatten() {
            let err = |msg: String, hint: &str| {
                origin
                    .error("dataset", &[], "split-data", msg)
                    .with_hint(hint.to_string())
            };
            match (policy, &dataset) {
                (SplitPolicy::Multiparam, Some(SplitData::Lists(lists))) => {
                    if lists.is_empty() || lists.iter().any(Vec::is_empty) {
                        self.diags.push(err(format!("stage `{name}`: multiparam needs non-empty lists"), "e.g. [[electron, muon], [1GeV, 3GeV]]"));
                    }
                }
                (SplitPolicy::Multiparam, _) => self.diags.push(err(
                    format!("stage `{name}` splits with `multiparam`, which needs `dataset` to be a list of lists"),
                    "e.g. dataset: [[electron, muon], [1GeV, 3GeV]]",
                )),
                (_, Some(SplitData::Lists(_))) => self.diags.push(err(
                    format!("stage `{name}`: a list of lists is split data for `multiparam`, not `{}`", policy.kind().as_str()),
                    "use `split: multiparam`, or give a dataset name",
                )),
                (SplitPolicy::List, Some(SplitData::Text(text))) => {
                    if text.split(',').any(|item| item.trim().is_empty()) {
                        self.diags.push(err(format!("stage `{name}`: the `list` split needs a comma list without empty items, found `{text}`"), "e.g. dataset: ds_a,ds_b,ds_c"));
                    }
                }
                (_, Some(SplitData::Text(text))) if text.trim().is_empty() => self.diags.push(err(
                    format!("stage `{name}` splits with `{policy}` but `dataset` is empty"),
                    "name the dataset (catalog definition) to split",
                )),
                (_, Some(_)) => {}
                (_, None) if generator || fed_by_upstream => {}
                (_, None) => self.diags.push(
                    origin.stage.error(&["spec"], "split-data", format!("stage `{name}` splits with `{policy}` but has no `dataset`"))
                        .with_hint(match policy {
                            SplitPolicy::List => "give a comma list, e.g. dataset: ds_a,ds_b",
                            SplitPolicy::Stagedfiles { .. } => "give the prestage project name in `dataset`",
                            _ => "name the dataset (catalog definition) to split in `dataset`",
                        }),
                ),
            }
        }
        if split.is_none() && test_split.is_none() && matches!(dataset, Some(SplitData::Lists(_))) {
            self.diags.push(
                origin.error("dataset", &[], "split-data", format!("stage `{name}`: a list of lists is split data for `multiparam`, but the stage has no split"))
                    .with_hint("add `split: multiparam`"),
            );
        }
        dataset
    }

    /// `ups`: each stage's upstream stages (indices into `stages`).
    fn check_dependencies(&mut self, stages: &[(&'r Resource, Stage)], ups: &Adjacency) {
        // Cycle detection over the edges whose both ends validated, self-loops excluded.
        let mut state = vec![0u8; stages.len()]; // 0 new, 1 on stack, 2 done
        let mut reported: BTreeSet<Vec<usize>> = BTreeSet::new();
        for start in 0..stages.len() {
            if state[start] != 0 {
                continue;
            }
            // Iterative DFS: (node, next edge index).
            let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
            state[start] = 1;
            while let Some((node, edge)) = stack.last().copied() {
                if let Some(next) = ups.of(node).get(edge).map(|&i| i as usize) {
                    if let Some(top) = stack.last_mut() {
                        top.1 += 1;
                    }
                    match state[next] {
                        0 => {
                            state[next] = 1;
                            stack.push((next, 0));
                        }
                        1 => {
                            let from = stack.iter().position(|(n, _)| *n == next).unwrap_or(0);
                            let mut cycle: Vec<usize> =
                                stack[from..].iter().map(|(n, _)| *n).collect();
                            let mut canonical = cycle.clone();
                            canonical.sort();
                            if reported.insert(canonical) {
                                cycle.push(next);
                                self.report_cycle(stages, &cycle);
                            }
                        }
                        _ => {}
                    }
                } else {
                    state[node] = 2;
                    stack.pop();
                }
            }
        }
    }

    fn report_cycle(&mut self, stages: &[(&'r Resource, Stage)], cycle: &[usize]) {
        // `cycle` lists stages each depending on the next; show it in flow order.
        let names: Vec<&str> = cycle
            .iter()
            .rev()
            .map(|i| stages[*i].1.key.name.as_str())
            .collect();
        let (res, stage) = &stages[cycle[0]];
        let upstream = &stages[cycle[1]].1.key;
        let idx = stage
            .depends_on
            .iter()
            .position(|e| &e.upstream == upstream)
            .unwrap_or(0)
            .to_string();
        self.diags.push(
            res.error(&["spec", "dependsOn", &idx, "stage"], "dependency-cycle", format!("dependency cycle: {}", names.join(" → ")))
                .with_hint("stages must form a chain or tree; only a stage depending on itself (relaunch with the next split) is allowed"),
        );
    }

    fn warn_unlocatable(&mut self, stages: &[(&'r Resource, Stage)], ups: &Adjacency) {
        let mut has_dependents = vec![false; stages.len()];
        for &up in &ups.to {
            has_dependents[up as usize] = true;
        }
        for ((res, stage), has_dependents) in stages.iter().zip(has_dependents) {
            if has_dependents {
                continue;
            }
            let patterns = self
                .lookup("JobType", &stage.job_type.namespace, &stage.job_type.name)
                .and_then(|r| match &r.spec {
                    Spec::JobType(jt) => Some(jt.output_file_patterns.is_empty()),
                    _ => None,
                })
                .unwrap_or(false);
            if patterns {
                self.diags.push(
                    res.warning(&["metadata", "name"], "no-outputs", format!("stage `{}` has no dependents and job type `{}` declares no outputFilePatterns", stage.key.name, stage.job_type.name))
                        .with_hint("its outputs cannot be told apart in the catalog; add `outputFilePatterns` to the job type"),
                );
            }
        }
    }

    /// A dependency whose file pattern none of the upstream job type's output patterns can
    /// match runs over nothing (unless the upstream's jobs declare such files themselves).
    fn warn_unmatched_patterns(
        &mut self,
        graph: &DesiredGraph,
        stages: &[(&'r Resource, Stage)],
        positions: &HashMap<&ObjectKey, usize>,
    ) {
        for (res, stage) in stages {
            for (i, edge) in stage.depends_on.iter().enumerate() {
                let Some(up) = positions
                    .get(&edge.upstream)
                    .filter(|_| edge.upstream != stage.key)
                    .map(|&p| &stages[p].1)
                else {
                    continue;
                };
                let outputs = &graph.job_type_of(up).output_file_patterns;
                let fragment = |p: &str| p.contains(' ');
                if outputs.is_empty()
                    || fragment(&edge.file_pattern)
                    || outputs.iter().any(|o| fragment(o))
                    || outputs
                        .iter()
                        .any(|o| like_patterns_meet(&edge.file_pattern, o))
                {
                    continue;
                }
                self.diags.push(
                    res.warning(
                        &["spec", "dependsOn", &i.to_string(), "filePattern"],
                        "pattern-matches-no-output",
                        format!(
                            "`{}` matches none of the outputs of stage `{}` (its job type `{}` writes {}): this stage would run over nothing",
                            edge.file_pattern,
                            edge.upstream.name,
                            up.job_type.name,
                            outputs.iter().map(|o| format!("`{o}`")).collect::<Vec<_>>().join(", ")
                        ),
                    )
                    .with_hint("use a pattern of the upstream's outputs, or add it to the upstream job type's `outputFilePatterns`"),
                );
            }
        }
    }
}

/// The stages in dependency order, each after its upstream stages (`ups` as
/// [`upstream_indices`]): Kahn's algorithm in waves, each wave in key order so that the order
/// is the same on every run. `None` when a cycle prevents it (already reported).
fn topological(stages: Vec<(&Resource, Stage)>, ups: &Adjacency) -> Option<Vec<Stage>> {
    let n = stages.len();
    // Stages are large: their keys' texts are sorted beside their indices, not the stages
    // (in the order of `ObjectKey`: namespace, then name). Keys are unique (duplicates were
    // refused), so an unstable sort orders the same.
    let mut keyed: Vec<(&str, &str, Ix)> = stages
        .iter()
        .enumerate()
        .map(|(i, (_, s))| (s.key.namespace.as_str(), s.key.name.as_str(), ix(i)))
        .collect();
    keyed.sort_unstable();
    let by_key: Vec<Ix> = keyed.into_iter().map(|(_, _, i)| i).collect();
    let mut rank: Vec<Ix> = vec![0; n];
    for (position, &i) in by_key.iter().enumerate() {
        rank[i as usize] = ix(position);
    }
    let downs = ups.reversed();
    let mut waiting: Vec<Ix> = (0..n).map(|i| ix(ups.of(i).len())).collect();
    let mut wave: Vec<Ix> = by_key
        .into_iter()
        .filter(|&i| waiting[i as usize] == 0)
        .collect();
    let mut order: Vec<Ix> = Vec::with_capacity(n);
    while !wave.is_empty() {
        let mut next = Vec::new();
        for &i in &wave {
            for &down in downs.of(i as usize) {
                waiting[down as usize] -= 1;
                if waiting[down as usize] == 0 {
                    next.push(down);
                }
            }
        }
        order.extend(wave);
        next.sort_unstable_by_key(|&i| rank[i as usize]);
        wave = next;
    }
    if order.len() < n {
        return None;
    }
    // Put in order in place: a set may hold hundreds of thousands of stages.
    let mut stages: Vec<Stage> = stages.into_iter().map(|(_, s)| s).collect();
    let mut target: Vec<Ix> = vec![0; n];
    for (position, &i) in order.iter().enumerate() {
        target[i as usize] = ix(position);
    }
    for i in 0..n {
        while target[i] as usize != i {
            let t = target[i] as usize;
            stages.swap(i, t);
            target.swap(i, t);
        }
    }
    Some(stages)
}

/// A stage's position in its set: 32 bits, half a `usize`, for the lists of positions made
/// over every stage (a set holds far fewer than 2^32 documents: its files are size-limited).
type Ix = u32;

fn ix(i: usize) -> Ix {
    Ix::try_from(i).unwrap_or(Ix::MAX)
}

/// The first launch of the stage (normal, test, each recovery round) that does not compose,
/// with stand-in values.
fn composition_error(graph: &DesiredGraph, stage: &Stage) -> Option<String> {
    use crate::launch::compose::{LaunchRequest, check};
    let job_type = graph.job_type_of(stage);
    let mut overrides: Vec<&[Param]> = vec![&[]];
    overrides.extend(
        job_type
            .recoveries
            .iter()
            .map(|s| s.parameter_overrides.as_slice()),
    );
    let settings = Default::default();
    [true, false]
        .into_iter()
        .flat_map(|t| overrides.iter().map(move |o| (t, *o)))
        .find_map(|(test, explicit)| {
            let request = LaunchRequest {
                stage,
                dataset: Some("dataset"),
                submission_id: "validate",
                parent_submission_id: None,
                test,
                explicit_overrides: explicit,
                experimenter: "validate",
                settings: &settings,
            };
            check(graph, &request).err().map(|e| e.to_string())
        })
}

/// For each stage, the indices of its upstream stages (one per edge whose upstream validated;
/// self-dependencies excluded).
/// Whether some file name matches both SQL LIKE patterns (`%` any run of characters, `_` any
/// one): a search over pairs of positions in the two patterns, so it is linear in their
/// product, never exponential.
pub fn like_patterns_meet(a: &str, b: &str) -> bool {
    // Every pattern matches some name, and `%` matches every name: the common cases need
    // no search.
    if a == b || a == "%" || b == "%" {
        return true;
    }
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut seen = HashSet::default();
    let mut todo = vec![(0usize, 0usize)];
    while let Some((i, j)) = todo.pop() {
        if !seen.insert((i, j)) {
            continue;
        }
        if i == a.len() && j == b.len() {
            return true;
        }
        let (x, y) = (a.get(i), b.get(j));
        // `%` may match nothing.
        if x == Some(&'%') {
            todo.push((i + 1, j));
        }
        if y == Some(&'%') {
            todo.push((i, j + 1));
        }
        // Or both take one character they can agree on.
        let (Some(&x), Some(&y)) = (x, y) else {
            continue;
        };
        let next_i = if x == '%' { i } else { i + 1 };
        let next_j = if y == '%' { j } else { j + 1 };
        let agree = matches!(x, '%' | '_') || matches!(y, '%' | '_') || x == y;
        if agree {
            todo.push((next_i, next_j));
        }
    }
    false
}

/// Each stage's upstream stages (by position), self-dependencies left out.
fn upstream_indices(
    stages: &[(&Resource, Stage)],
    positions: &HashMap<&ObjectKey, usize>,
) -> Adjacency {
    Adjacency::from_lists(stages.iter().map(|(_, s)| {
        s.upstream_edges()
            .filter_map(|e| positions.get(&e.upstream).copied())
    }))
}

/// Each node's neighbours (by index), all in one list: a set may have hundreds of thousands
/// of stages, and a list of its own for each would be an allocation each.
struct Adjacency {
    /// Node `i`'s neighbours are `to[starts[i]..starts[i + 1]]`.
    starts: Vec<Ix>,
    to: Vec<Ix>,
}

impl Adjacency {
    fn from_lists<L: IntoIterator<Item = usize>>(lists: impl Iterator<Item = L>) -> Self {
        let mut starts = vec![0];
        let mut to = Vec::new();
        for list in lists {
            to.extend(list.into_iter().map(ix));
            starts.push(ix(to.len()));
        }
        Adjacency { starts, to }
    }

    fn of(&self, node: usize) -> &[Ix] {
        &self.to[self.starts[node] as usize..self.starts[node + 1] as usize]
    }

    /// The same edges, each the other way.
    fn reversed(&self) -> Adjacency {
        let n = self.starts.len() - 1;
        let mut counts: Vec<Ix> = vec![0; n + 1];
        for &t in &self.to {
            counts[t as usize + 1] += 1;
        }
        for i in 0..n {
            counts[i + 1] += counts[i];
        }
        let starts = counts.clone();
        let mut next = counts;
        let mut to: Vec<Ix> = vec![0; self.to.len()];
        for from in 0..n {
            for &t in self.of(from) {
                to[next[t as usize] as usize] = ix(from);
                next[t as usize] += 1;
            }
        }
        Adjacency { starts, to }
    }
}

/// Completion percent in (0, 100], as POMS's check constraint.
fn check_percent(r: &Resource, path: &[&str], percent: f64) -> Option<Diagnostic> {
    let ok = percent > 0.0 && percent <= 100.0;
    (!ok).then(|| {
        r.error(
            path,
            "invalid-percent",
            format!("completion percent {percent} is outside (0, 100]"),
        )
        .with_hint("a percentage greater than 0 and at most 100, e.g. 95")
    })
}

fn check_schedule(r: &Resource, path: &[&str], expr: &str) -> Option<Diagnostic> {
    let e = croner::Cron::from_str(expr).err()?;
    Some(
        r.error(path, "invalid-schedule", format!("invalid cron expression `{expr}`: {e}"))
            .with_hint("five fields (minute hour day-of-month month day-of-week) or six with seconds first, e.g. `0 3 * * *`"),
    )
}

/// Parses a split field, with the error located in the string (legacy form) or at the field
/// concerned (mapping form).
fn parse_split(
    r: &Resource,
    path: &[&str],
    split: &SplitSpec,
) -> Result<Option<SplitPolicy>, Diagnostic> {
    split.policy().map_err(|e| {
        let pos = match (split, e.field) {
            (SplitSpec::Legacy(_), _) => r
                .origin
                .with_node(|root| root.at(path).map(|n| scalar_offset_pos(n.pos, n, e.offset)))
                .unwrap_or_else(|| r.locate(path)),
            (SplitSpec::Mapping(_), Some(field)) => {
                let mut p = path.to_vec();
                p.push(field);
                r.locate(&p)
            }
            (SplitSpec::Mapping(_), None) => r.locate(path),
        };
        Diagnostic::error(
            &r.file,
            pos,
            "invalid-split",
            format!("invalid split: {}", e.message),
        )
        .with_hint_opt(e.hint)
    })
}

/// Position of the character at `offset` within a one-line scalar (past its opening quote if
/// quoted); the scalar's own position for multi-line scalars.
fn scalar_offset_pos(pos: Pos, node: &super::yaml::Node, offset: usize) -> Pos {
    match &node.kind {
        NodeKind::Scalar { value, plain } if !value.contains('\n') => Pos {
            line: pos.line,
            col: pos.col + offset as u32 + u32::from(!plain),
        },
        _ => pos,
    }
}

#[cfg(test)]
mod tests {
    use super::{Adjacency, like_patterns_meet};

    #[test]
    fn adjacency_keeps_each_list_and_reverses_every_edge() {
        let lists: Vec<Vec<usize>> = vec![vec![], vec![0], vec![0, 1], vec![], vec![2, 2, 3]];
        let ups = Adjacency::from_lists(lists.iter().map(|l| l.iter().copied()));
        for (i, list) in lists.iter().enumerate() {
            let list: Vec<u32> = list.iter().map(|&i| i as u32).collect();
            assert_eq!(ups.of(i), list.as_slice());
        }
        let downs = ups.reversed();
        let expected: [&[u32]; 5] = [&[1, 2], &[2], &[4, 4], &[4], &[]];
        for (i, list) in expected.iter().enumerate() {
            assert_eq!(downs.of(i), *list, "node {i}");
        }
        let none = Adjacency::from_lists(std::iter::empty::<Vec<usize>>());
        assert!(none.reversed().to.is_empty());
    }

    #[test]
    fn like_patterns_meet_when_one_name_matches_both() {
        for (a, b) in [
            ("%.reco.root", "%.root"),
            ("%", "%.gen.root"),
            ("eve_%_1.gen.root", "%.gen.root"),
            ("a_c", "abc"),
            ("%a%", "%b%"),
            ("", "%"),
        ] {
            assert!(like_patterns_meet(a, b), "{a} ~ {b}");
            assert!(like_patterns_meet(b, a), "{b} ~ {a}");
        }
        for (a, b) in [
            ("%.reco.root", "%.gen.root"),
            ("a%", "b%"),
            ("%.txt", "%.root"),
            ("a_", "abc"),
            ("", "_"),
        ] {
            assert!(!like_patterns_meet(a, b), "{a} !~ {b}");
            assert!(!like_patterns_meet(b, a), "{b} !~ {a}");
        }
        // Many wildcards stay cheap.
        let long = "%a".repeat(200);
        assert!(!like_patterns_meet(
            &format!("{long}b"),
            &format!("{long}c")
        ));
    }

    /// A set large enough to be checked on several threads: every problem is reported
    /// whichever part it falls in, in the same order as on one thread, and a valid set comes
    /// out in dependency order.
    #[test]
    fn a_large_set_checked_in_parts_reports_every_problem_and_keeps_the_order() {
        use crate::model::{SourceFile, load_and_validate};
        const HEAD: &str = "apiVersion: cascade.dev/v1alpha1\n";
        let set = |broken: &[usize]| {
            let mut text = format!(
                "{HEAD}kind: LoginSetup\nmetadata: {{name: ls}}\nspec: {{host: localhost, account: a}}\n---\n{HEAD}kind: JobType\nmetadata: {{name: jt}}\nspec: {{launchScript: run, outputFilePatterns: ['%.root']}}\n---\n{HEAD}kind: Campaign\nmetadata: {{name: c}}\nspec: {{defaults: {{loginSetup: ls, jobType: jt, softwareVersion: v1}}}}\n"
            );
            // Stage i depends on stage i + 1: the chain runs against the names' order.
            for i in 0..1_500 {
                let campaign = if broken.contains(&i) { "nowhere" } else { "c" };
                let upstream = if i + 1 < 1_500 {
                    format!(
                        "  dependsOn: [{{stage: s{:04}, filePattern: '%.root'}}]\n",
                        i + 1
                    )
                } else {
                    "  type: generator\n".to_string()
                };
                text.push_str(&format!(
                    "---\n{HEAD}kind: CampaignStage\nmetadata: {{name: s{i:04}}}\nspec:\n  campaign: {campaign}\n{upstream}"
                ));
            }
            let files = [SourceFile {
                path: "set.yaml".into(),
                bytes: text.into_bytes().into(),
            }];
            load_and_validate(&files).1
        };
        let broken = set(&[3, 1_496]);
        assert!(broken.graph.is_none());
        let named: Vec<&str> = broken
            .diagnostics
            .iter()
            .filter(|d| d.code == "unknown-reference" && d.message.contains("nowhere"))
            .map(|d| d.message.as_str())
            .collect();
        assert_eq!(named.len(), 2, "{:?}", broken.diagnostics);
        let lines: Vec<u32> = broken.diagnostics.iter().map(|d| d.pos.line).collect();
        assert!(lines.windows(2).all(|w| w[0] <= w[1]), "sorted: {lines:?}");

        let graph = set(&[]).graph.expect("valid");
        let order: Vec<&str> = graph.stages.iter().map(|s| s.key.name.as_str()).collect();
        let expected: Vec<String> = (0..1_500).rev().map(|i| format!("s{i:04}")).collect();
        assert_eq!(order, expected);
    }
}
