//! Split policies: how a stage's dataset is cut into the slices its submissions process.
//!
//! A policy is written either as the POMS string (`nfiles(10)`, `drainingn( 5 )`,
//! `byrun(low=1,high=4)`, `new(window=1d,fts=30m)`) or as a mapping (`{type: nfiles, n: 10}`).
//! Both become one [`SplitPolicy`]; the string goes through a real parser that tolerates
//! whitespace (POMS silently ignores parameters written with spaces) and names what it rejects.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, de};

use crate::common::string_or_structure_schema;

/// A split policy as written: the POMS string or the typed mapping.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum SplitSpec {
    Legacy(String),
    Mapping(SplitFields),
}

impl<'de> Deserialize<'de> for SplitSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = SplitSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a split string such as `nfiles(10)` or a mapping such as `{type: nfiles, n: 10}`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<SplitSpec, E> {
                Ok(SplitSpec::Legacy(v.to_string()))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<SplitSpec, A::Error> {
                SplitFields::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(SplitSpec::Mapping)
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for SplitSpec {
    fn schema_name() -> Cow<'static, str> {
        "SplitSpec".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let mapping = generator.subschema_for::<SplitFields>();
        string_or_structure_schema(
            generator,
            "Split policy: a POMS string such as `nfiles(10)` or a mapping such as `{type: nfiles, n: 10}`.",
            mapping,
        )
    }
}

/// The mapping form of a split policy. Which fields apply depends on `type`; validation
/// reports fields that do not apply and fields that are missing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SplitFields {
    /// The split type.
    #[serde(rename = "type")]
    pub kind: SplitType,
    /// Files per slice (`nfiles`, `limitn`, `drainingn`, `stagedfiles`) or slice count (`mod`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u64>,
    /// First run (`byrun`). Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low: Option<u64>,
    /// Run bound, exclusive (`byrun`). Default 999999.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high: Option<u64>,
    /// Window length (`new`), e.g. `1d`, `6h`, `3600`. Default `1w`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// Windows are truncated to a multiple of this (`new`). Default `1s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round: Option<String>,
    /// Assumed delay before files are catalogued (`new`). Default `30m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fts: Option<String>,
    /// Windows in local time rather than UTC (`new`). Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub localtime: Option<bool>,
    /// Start of the first window, unix seconds (`new`). Default: the latest complete window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firsttime: Option<i64>,
    /// End of the last window, unix seconds (`new`). Default: now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lasttime: Option<i64>,
}

/// The eleven POMS split types.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SplitType {
    #[default]
    Draining,
    List,
    Multiparam,
    Nfiles,
    Mod,
    Limitn,
    Byrun,
    Byexistingruns,
    Drainingn,
    Stagedfiles,
    New,
}

impl SplitType {
    pub const ALL: [SplitType; 11] = [
        SplitType::Draining,
        SplitType::List,
        SplitType::Multiparam,
        SplitType::Nfiles,
        SplitType::Mod,
        SplitType::Limitn,
        SplitType::Byrun,
        SplitType::Byexistingruns,
        SplitType::Drainingn,
        SplitType::Stagedfiles,
        SplitType::New,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SplitType::Draining => "draining",
            SplitType::List => "list",
            SplitType::Multiparam => "multiparam",
            SplitType::Nfiles => "nfiles",
            SplitType::Mod => "mod",
            SplitType::Limitn => "limitn",
            SplitType::Byrun => "byrun",
            SplitType::Byexistingruns => "byexistingruns",
            SplitType::Drainingn => "drainingn",
            SplitType::Stagedfiles => "stagedfiles",
            SplitType::New => "new",
        }
    }

    fn from_name(name: &str) -> Option<SplitType> {
        SplitType::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// The fields of [`SplitFields`] besides `type` that this type reads.
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            SplitType::Draining
            | SplitType::List
            | SplitType::Multiparam
            | SplitType::Byexistingruns => &[],
            SplitType::Nfiles
            | SplitType::Mod
            | SplitType::Limitn
            | SplitType::Drainingn
            | SplitType::Stagedfiles => &["n"],
            SplitType::Byrun => &["low", "high"],
            SplitType::New => &[
                "window",
                "round",
                "fts",
                "localtime",
                "firsttime",
                "lasttime",
            ],
        }
    }
}

/// A validated split policy: the normalised typed form reported in status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SplitPolicy {
    /// The dataset itself every time (it excludes processed files by itself); never exhausts.
    Draining,
    /// One slice per item of the comma list in `dataset`.
    List,
    /// One slice per combination of the lists in `dataset`, first list varying fastest.
    Multiparam,
    /// Consecutive slices of `n` files.
    Nfiles { n: u64 },
    /// `n` slices taking every `n`-th file.
    Mod { n: u64 },
    /// The first `n` files, every time.
    Limitn { n: u64 },
    /// One slice per run number in `[low, high)`.
    Byrun { low: u64, high: u64 },
    /// One slice per (run, subrun) present in the dataset.
    Byexistingruns,
    /// `n` files not yet delivered, from a possibly growing dataset.
    Drainingn { n: u64 },
    /// `n` files that a prestage project has marked consumed.
    Stagedfiles { n: u64 },
    /// Time windows of files by end time.
    New(NewWindows),
}

/// Parameters of the `new` split, durations in seconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewWindows {
    pub window_seconds: u64,
    pub round_seconds: u64,
    pub fts_seconds: u64,
    pub localtime: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firsttime: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lasttime: Option<i64>,
}

impl Default for NewWindows {
    fn default() -> Self {
        NewWindows {
            window_seconds: 604_800,
            round_seconds: 1,
            fts_seconds: 1800,
            localtime: false,
            firsttime: None,
            lasttime: None,
        }
    }
}

impl SplitPolicy {
    pub fn kind(&self) -> SplitType {
        match self {
            SplitPolicy::Draining => SplitType::Draining,
            SplitPolicy::List => SplitType::List,
            SplitPolicy::Multiparam => SplitType::Multiparam,
            SplitPolicy::Nfiles { .. } => SplitType::Nfiles,
            SplitPolicy::Mod { .. } => SplitType::Mod,
            SplitPolicy::Limitn { .. } => SplitType::Limitn,
            SplitPolicy::Byrun { .. } => SplitType::Byrun,
            SplitPolicy::Byexistingruns => SplitType::Byexistingruns,
            SplitPolicy::Drainingn { .. } => SplitType::Drainingn,
            SplitPolicy::Stagedfiles { .. } => SplitType::Stagedfiles,
            SplitPolicy::New(_) => SplitType::New,
        }
    }

    /// The mapping form with every parameter explicit: what status reports.
    pub fn to_fields(&self) -> SplitFields {
        let kind = self.kind();
        match self {
            SplitPolicy::Nfiles { n }
            | SplitPolicy::Mod { n }
            | SplitPolicy::Limitn { n }
            | SplitPolicy::Drainingn { n }
            | SplitPolicy::Stagedfiles { n } => SplitFields {
                kind,
                n: Some(*n),
                ..SplitFields::default()
            },
            SplitPolicy::Byrun { low, high } => SplitFields {
                kind,
                low: Some(*low),
                high: Some(*high),
                ..SplitFields::default()
            },
            SplitPolicy::New(w) => SplitFields {
                kind,
                window: Some(w.window_seconds.to_string()),
                round: Some(w.round_seconds.to_string()),
                fts: Some(w.fts_seconds.to_string()),
                localtime: Some(w.localtime),
                firsttime: w.firsttime,
                lasttime: w.lasttime,
                ..SplitFields::default()
            },
            _ => SplitFields {
                kind,
                ..SplitFields::default()
            },
        }
    }

    /// Whether this policy can run out of slices (POMS §3.4).
    pub fn can_exhaust(&self) -> bool {
        match self {
            SplitPolicy::Draining | SplitPolicy::Limitn { .. } => false,
            // Windows up to a fixed `lasttime` run out; without it they follow the clock.
            SplitPolicy::New(w) => w.lasttime.is_some(),
            _ => true,
        }
    }
}

/// Canonical POMS-style string, the inverse of [`parse_legacy`].
impl fmt::Display for SplitPolicy {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            SplitPolicy::Draining
            | SplitPolicy::List
            | SplitPolicy::Multiparam
            | SplitPolicy::Byexistingruns => f.write_str(self.kind().as_str()),
            SplitPolicy::Nfiles { n }
            | SplitPolicy::Mod { n }
            | SplitPolicy::Limitn { n }
            | SplitPolicy::Drainingn { n }
            | SplitPolicy::Stagedfiles { n } => write!(f, "{}({n})", self.kind().as_str()),
            SplitPolicy::Byrun { low, high } => write!(f, "byrun(low={low},high={high})"),
            SplitPolicy::New(w) => {
                write!(
                    f,
                    "new(window={},round={},fts={}",
                    w.window_seconds, w.round_seconds, w.fts_seconds
                )?;
                if w.localtime {
                    f.write_str(",localtime=1")?;
                }
                if let Some(t) = w.firsttime {
                    write!(f, ",firsttime={t}")?;
                }
                if let Some(t) = w.lasttime {
                    write!(f, ",lasttime={t}")?;
                }
                f.write_str(")")
            }
        }
    }
}

/// A problem in a split string or mapping. `offset` is a character offset into the string
/// form (0 for the mapping form), `field` the mapping field concerned, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitError {
    pub offset: usize,
    pub field: Option<&'static str>,
    pub message: String,
    pub hint: Option<String>,
}

impl SplitError {
    fn at(offset: usize, message: impl Into<String>) -> Self {
        SplitError {
            offset,
            field: None,
            message: message.into(),
            hint: None,
        }
    }
    fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for SplitError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Parses the POMS string form. `Ok(None)` means "no splitting" (`None`, `none` or blank).
///
/// Grammar (whitespace allowed between any two tokens):
/// `name`, `name()`, `name(int)`, `name(key=value, ...)`; POMS's `new_local(...)` is `new`
/// with `localtime=1`.
pub fn parse_legacy(text: &str) -> Result<Option<SplitPolicy>, SplitError> {
    let trimmed = text.trim();
    if trimmed.is_empty() || trimmed.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let chars: Vec<char> = text.chars().collect();
    let mut pos = 0;
    skip_ws(&chars, &mut pos);
    let name_start = pos;
    while pos < chars.len() && (chars[pos].is_ascii_alphanumeric() || chars[pos] == '_') {
        pos += 1;
    }
    let name: String = chars[name_start..pos].iter().collect();
    let (kind, local) = match name.as_str() {
        "new_local" => (SplitType::New, true),
        n => match SplitType::from_name(n) {
            Some(t) => (t, false),
            None => {
                let hint = suggest_type(n);
                return Err(
                    SplitError::at(name_start, format!("unknown split type `{name}`")).hint(hint),
                );
            }
        },
    };
    skip_ws(&chars, &mut pos);
    let args = if pos < chars.len() && chars[pos] == '(' {
        let open = pos;
        pos += 1;
        let args = parse_args(&chars, &mut pos)?;
        if pos >= chars.len() || chars[pos] != ')' {
            return Err(SplitError::at(
                pos,
                format!(
                    "expected `)` to close `{name}(` opened at column {}",
                    open + 1
                ),
            ));
        }
        pos += 1;
        args
    } else {
        Vec::new()
    };
    skip_ws(&chars, &mut pos);
    if pos < chars.len() {
        return Err(SplitError::at(
            pos,
            format!("unexpected `{}` after the split type", chars[pos]),
        ));
    }
    let mut fields = SplitFields {
        kind,
        localtime: local.then_some(true),
        ..SplitFields::default()
    };
    for arg in args {
        fields.assign(arg)?;
    }
    fields.to_policy().map(Some)
}

/// One argument of the string form: positional (`nfiles(10)`) or named (`low=1`).
struct Arg {
    offset: usize,
    key: Option<String>,
    value: String,
}

fn skip_ws(chars: &[char], pos: &mut usize) {
    while *pos < chars.len() && chars[*pos].is_whitespace() {
        *pos += 1;
    }
}

fn parse_args(chars: &[char], pos: &mut usize) -> Result<Vec<Arg>, SplitError> {
    let mut args = Vec::new();
    loop {
        skip_ws(chars, pos);
        if *pos >= chars.len() || chars[*pos] == ')' {
            return Ok(args);
        }
        let offset = *pos;
        let word = take_word(chars, pos);
        if word.is_empty() {
            return Err(SplitError::at(
                *pos,
                format!("unexpected `{}` in split parameters", chars[*pos]),
            ));
        }
        skip_ws(chars, pos);
        let arg = if *pos < chars.len() && chars[*pos] == '=' {
            *pos += 1;
            skip_ws(chars, pos);
            let value_at = *pos;
            let value = take_word(chars, pos);
            if value.is_empty() {
                return Err(SplitError::at(value_at, format!("`{word}=` needs a value")));
            }
            Arg {
                offset,
                key: Some(word),
                value,
            }
        } else {
            Arg {
                offset,
                key: None,
                value: word,
            }
        };
        args.push(arg);
        skip_ws(chars, pos);
        if *pos < chars.len() && chars[*pos] == ',' {
            *pos += 1;
        } else if *pos < chars.len() && chars[*pos] != ')' {
            return Err(SplitError::at(
                *pos,
                format!("expected `,` or `)`, found `{}`", chars[*pos]),
            ));
        }
    }
}

fn take_word(chars: &[char], pos: &mut usize) -> String {
    let start = *pos;
    while *pos < chars.len() && (chars[*pos].is_ascii_alphanumeric() || "_-.".contains(chars[*pos]))
    {
        *pos += 1;
    }
    chars[start..*pos].iter().collect()
}

fn suggest_type(name: &str) -> String {
    if let Some((base, _)) = name.split_once('_')
        && SplitType::from_name(base).is_some()
    {
        return format!("write `{base}(...)` with the parameter in parentheses");
    }
    let names: Vec<&str> = SplitType::ALL.iter().map(|t| t.as_str()).collect();
    format!("split types are: {}", names.join(", "))
}

impl SplitFields {
    fn assign(&mut self, arg: Arg) -> Result<(), SplitError> {
        let key = match (&arg.key, self.kind.fields()) {
            (Some(k), _) => k.as_str(),
            (None, [only]) => only,
            (None, []) => {
                return Err(SplitError::at(
                    arg.offset,
                    format!("split type `{}` takes no parameters", self.kind.as_str()),
                ));
            }
            (None, _) => {
                return Err(SplitError::at(
                    arg.offset,
                    format!(
                        "split type `{}` takes named parameters ({})",
                        self.kind.as_str(),
                        self.kind.fields().join(", ")
                    ),
                ));
            }
        };
        let int = |v: &str| {
            v.parse::<i64>().map_err(|_| {
                SplitError::at(
                    arg.offset,
                    format!("`{key}` must be an integer, found `{v}`"),
                )
            })
        };
        let unsigned = |v: &str| {
            v.parse::<u64>().map_err(|_| {
                SplitError::at(
                    arg.offset,
                    format!("`{key}` must be a non-negative integer, found `{v}`"),
                )
            })
        };
        let v = arg.value.as_str();
        match key {
            "n" if self.kind.fields() == ["n"] => self.n = Some(unsigned(v)?),
            "low" if self.kind == SplitType::Byrun => self.low = Some(unsigned(v)?),
            "high" if self.kind == SplitType::Byrun => self.high = Some(unsigned(v)?),
            "window" if self.kind == SplitType::New => self.window = Some(v.to_string()),
            "round" if self.kind == SplitType::New => self.round = Some(v.to_string()),
            "fts" if self.kind == SplitType::New => self.fts = Some(v.to_string()),
            "localtime" if self.kind == SplitType::New => {
                self.localtime = Some(matches!(v, "1" | "true" | "True"))
            }
            "firsttime" if self.kind == SplitType::New => self.firsttime = Some(int(v)?),
            "lasttime" if self.kind == SplitType::New => self.lasttime = Some(int(v)?),
            other => {
                let takes = self.kind.fields();
                let hint = if takes.is_empty() {
                    "it takes no parameters".to_string()
                } else {
                    format!("it takes: {}", takes.join(", "))
                };
                return Err(SplitError::at(
                    arg.offset,
                    format!(
                        "split type `{}` has no parameter `{other}`",
                        self.kind.as_str()
                    ),
                )
                .hint(hint));
            }
        }
        Ok(())
    }

    /// Checks that the fields fit the type and builds the typed policy.
    pub fn to_policy(&self) -> Result<SplitPolicy, SplitError> {
        let present = [
            ("n", self.n.is_some()),
            ("low", self.low.is_some()),
            ("high", self.high.is_some()),
            ("window", self.window.is_some()),
            ("round", self.round.is_some()),
            ("fts", self.fts.is_some()),
            ("localtime", self.localtime.is_some()),
            ("firsttime", self.firsttime.is_some()),
            ("lasttime", self.lasttime.is_some()),
        ];
        let takes = self.kind.fields();
        if let Some((field, _)) = present
            .iter()
            .find(|(name, set)| *set && !takes.contains(name))
        {
            return Err(SplitError {
                offset: 0,
                field: Some(field),
                message: format!(
                    "`{field}` does not apply to split type `{}`",
                    self.kind.as_str()
                ),
                hint: Some(if takes.is_empty() {
                    format!("`{}` takes no parameters", self.kind.as_str())
                } else {
                    format!("`{}` takes: {}", self.kind.as_str(), takes.join(", "))
                }),
            });
        }
        let need_n = || match self.n {
            Some(0) => Err(SplitError {
                offset: 0,
                field: Some("n"),
                message: format!(
                    "`n` of split type `{}` must be at least 1",
                    self.kind.as_str()
                ),
                hint: None,
            }),
            Some(n) => Ok(n),
            None => Err(SplitError {
                offset: 0,
                field: None,
                message: format!("split type `{}` needs `n`", self.kind.as_str()),
                hint: Some(format!(
                    "e.g. `{}(10)` or `{{type: {}, n: 10}}`",
                    self.kind.as_str(),
                    self.kind.as_str()
                )),
            }),
        };
        Ok(match self.kind {
            SplitType::Draining => SplitPolicy::Draining,
            SplitType::List => SplitPolicy::List,
            SplitType::Multiparam => SplitPolicy::Multiparam,
            SplitType::Byexistingruns => SplitPolicy::Byexistingruns,
            SplitType::Nfiles => SplitPolicy::Nfiles { n: need_n()? },
            SplitType::Mod => SplitPolicy::Mod { n: need_n()? },
            SplitType::Limitn => SplitPolicy::Limitn { n: need_n()? },
            SplitType::Drainingn => SplitPolicy::Drainingn { n: need_n()? },
            SplitType::Stagedfiles => SplitPolicy::Stagedfiles { n: need_n()? },
            SplitType::Byrun => {
                let low = self.low.unwrap_or(1);
                let high = self.high.unwrap_or(999_999);
                if high <= low {
                    return Err(SplitError {
                        offset: 0,
                        field: Some("high"),
                        message: format!("`high` ({high}) must be greater than `low` ({low})"),
                        hint: Some(
                            "`high` is exclusive: byrun(low=1,high=4) covers runs 1, 2 and 3"
                                .into(),
                        ),
                    });
                }
                SplitPolicy::Byrun { low, high }
            }
            SplitType::New => {
                let d = NewWindows::default();
                let secs = |field: &'static str, v: &Option<String>, default: u64| match v {
                    None => Ok(default),
                    Some(text) => parse_duration(text).ok_or_else(|| SplitError {
                        offset: 0,
                        field: Some(field),
                        message: format!("`{field}` is not a duration: `{text}`"),
                        hint: Some(
                            "write seconds, or a number with w, d, h, m or s, e.g. `1d` or `30m`"
                                .into(),
                        ),
                    }),
                };
                let window = secs("window", &self.window, d.window_seconds)?;
                if window == 0 {
                    return Err(SplitError {
                        offset: 0,
                        field: Some("window"),
                        message: "`window` must be longer than 0 seconds".into(),
                        hint: None,
                    });
                }
                SplitPolicy::New(NewWindows {
                    window_seconds: window,
                    round_seconds: secs("round", &self.round, d.round_seconds)?.max(1),
                    fts_seconds: secs("fts", &self.fts, d.fts_seconds)?,
                    localtime: self.localtime.unwrap_or(false),
                    firsttime: self.firsttime,
                    lasttime: self.lasttime,
                })
            }
        })
    }
}

/// `90`, `30m`, `1d`, `2w`, ... in seconds (POMS `new` units).
pub fn parse_duration(text: &str) -> Option<u64> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (&text[..i], c),
        _ => (text, 's'),
    };
    let n: u64 = digits.trim().parse().ok()?;
    let scale = match unit {
        'w' => 604_800,
        'd' => 86_400,
        'h' => 3_600,
        'm' => 60,
        's' => 1,
        _ => return None,
    };
    n.checked_mul(scale)
}

impl SplitSpec {
    /// The typed policy, whichever form was written. `Ok(None)`: no splitting.
    pub fn policy(&self) -> Result<Option<SplitPolicy>, SplitError> {
        match self {
            SplitSpec::Legacy(text) => parse_legacy(text),
            SplitSpec::Mapping(fields) => fields.to_policy().map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> SplitPolicy {
        parse_legacy(s).unwrap().unwrap()
    }

    #[test]
    fn parses_every_type_with_stray_whitespace() {
        assert_eq!(ok("nfiles(10)"), SplitPolicy::Nfiles { n: 10 });
        assert_eq!(ok(" drainingn( 5 ) "), SplitPolicy::Drainingn { n: 5 });
        assert_eq!(ok("mod( 3 )"), SplitPolicy::Mod { n: 3 });
        assert_eq!(ok("limitn(2)"), SplitPolicy::Limitn { n: 2 });
        assert_eq!(ok("stagedfiles(4)"), SplitPolicy::Stagedfiles { n: 4 });
        assert_eq!(ok("list"), SplitPolicy::List);
        assert_eq!(ok("list()"), SplitPolicy::List);
        assert_eq!(ok("multiparam"), SplitPolicy::Multiparam);
        assert_eq!(ok("draining"), SplitPolicy::Draining);
        assert_eq!(ok("byexistingruns()"), SplitPolicy::Byexistingruns);
        // POMS ignores parameters written with spaces; we honour them.
        assert_eq!(
            ok("byrun( low=1, high=4 ) "),
            SplitPolicy::Byrun { low: 1, high: 4 }
        );
        assert_eq!(
            ok("new(window=1d,fts=30m)"),
            SplitPolicy::New(NewWindows {
                window_seconds: 86_400,
                fts_seconds: 1_800,
                ..NewWindows::default()
            })
        );
        assert_eq!(
            ok("new_local(window=2h)"),
            SplitPolicy::New(NewWindows {
                window_seconds: 7_200,
                localtime: true,
                ..NewWindows::default()
            })
        );
    }

    #[test]
    fn none_means_no_split() {
        for s in ["", "None", "none", "  "] {
            assert_eq!(parse_legacy(s).unwrap(), None);
        }
    }

    #[test]
    fn rejects_with_position_and_hint() {
        let e = parse_legacy("mod_3").unwrap_err();
        assert_eq!(e.message, "unknown split type `mod_3`");
        assert_eq!(
            e.hint.as_deref(),
            Some("write `mod(...)` with the parameter in parentheses")
        );
        let e = parse_legacy("nfiles(ten)").unwrap_err();
        assert_eq!(
            (e.offset, e.message.as_str()),
            (7, "`n` must be a non-negative integer, found `ten`")
        );
        let e = parse_legacy("nfiles(10").unwrap_err();
        assert!(e.message.starts_with("expected `)`"), "{e}");
        assert!(
            parse_legacy("nfiles")
                .unwrap_err()
                .message
                .contains("needs `n`")
        );
        assert!(parse_legacy("byrun(low=4,high=1)").is_err());
        assert!(parse_legacy("list(3)").is_err());
        assert!(parse_legacy("nfiles(0)").is_err());
        assert!(
            parse_legacy("byrun(lo=1)")
                .unwrap_err()
                .message
                .contains("no parameter `lo`")
        );
    }

    #[test]
    fn canonical_form_round_trips() {
        for s in [
            "nfiles(10)",
            "byrun(low=1,high=4)",
            "list",
            "new(window=86400,round=1,fts=1800,firsttime=1475280000)",
        ] {
            let p = ok(s);
            assert_eq!(ok(&p.to_string()), p);
            assert_eq!(p.to_fields().to_policy().unwrap(), p);
        }
    }

    proptest::proptest! {
        #[test]
        fn parser_never_panics(s in "\\PC{0,40}") {
            let _ = parse_legacy(&s);
        }
    }
}
