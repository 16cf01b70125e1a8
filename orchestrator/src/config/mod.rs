//! The YAML front-end: a config directory in, one validated [`Plan`] out.
//!
//! This is the only module that names the YAML crate.
//!
//! # Layout
//!
//! ```text
//! config/
//!   config.yaml                      server: {host, port}; defaults: {timeout, source_timeout}
//!   database.yaml                    database: {sources, operations}
//!   domains/<domain>.yaml            endpoints: {<name>: {...}}
//!   domains/<domain>/database.yaml   replaces database.yaml for that domain's endpoints
//!   domains/<domain>/integrations/*  replace the matching integration file for that domain
//!   integrations/api_sources.yaml    api: {sources: {<id>: {base_url, ..., operations}}}
//!   integrations/feast_config.yaml   feast: {sources: {<id>: {url, ..., operations}}}
//!   integrations/ml_config.yaml      ml: {sources: {<id>: {base_url, ..., models}}}
//! ```
//!
//! Every file is optional. Fixed file names are spelled `.yaml`; domain files may also be `.yml`. Every key is documented in the README's config reference; an unknown
//! key is an error with a "did you mean". `${env:NAME}` (or `${env:NAME:-default}`) in
//! `config.yaml`, `database.yaml` and the integration files is replaced at load; a missing
//! variable is an error naming it.
//!
//! A per-domain file replaces the whole global file of the same name for that domain's
//! endpoints; files the domain does not override are shared.

mod env;
mod position;
mod read;
mod schema;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

pub use env::EnvLookup;

use crate::diagnostic::{Code, Diagnostic, Diagnostics, KeyPath, suggest};
use crate::plan::{Integrations, Plan, ScopedIntegrations};
use crate::validate::{self, ValidateOptions};
use position::PositionIndex;
use read::Cx;

/// Why a config directory could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// A file or directory could not be read.
    #[error("cannot read `{}`: {source}", path.display())]
    Io {
        /// What could not be read.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The config was read but is invalid; every problem is listed.
    #[error("{0}")]
    Invalid(Diagnostics),
}

impl LoadError {
    /// The diagnostics, when the config was readable but invalid.
    pub fn diagnostics(&self) -> Option<&Diagnostics> {
        match self {
            Self::Invalid(d) => Some(d),
            Self::Io { .. } => None,
        }
    }
}

/// Loads config directories. [`load_dir`] is the shorthand with default options.
pub struct Loader {
    env: Arc<EnvLookup>,
    validate: ValidateOptions,
}

impl fmt::Debug for Loader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Loader")
            .field("validate", &self.validate)
            .finish_non_exhaustive()
    }
}

impl Default for Loader {
    fn default() -> Self {
        Self {
            env: Arc::new(|name: &str| std::env::var(name).ok()),
            validate: ValidateOptions::default(),
        }
    }
}

/// Loads and validates the config directory at `dir` with default options (environment from
/// the process, only built-in source types).
///
/// ```
/// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/config");
/// let plan = orchestrator::config::load_dir(dir).expect("the shipped example config is valid");
/// assert!(plan.endpoint("get_customer_360").is_some());
/// ```
pub fn load_dir(dir: impl AsRef<Path>) -> Result<Plan, LoadError> {
    Loader::default().load_dir(dir)
}

const INTEGRATION_FILES: &[&str] = &["api_sources.yaml", "feast_config.yaml", "ml_config.yaml"];
const TOP_FILES: &[&str] = &["config.yaml", "database.yaml"];

impl Loader {
    /// A loader with default options.
    pub fn new() -> Self {
        Self::default()
    }

    /// Looks `${env:NAME}` references up with `lookup` instead of the process environment.
    #[must_use]
    pub fn with_env(
        mut self,
        lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.env = Arc::new(lookup);
        self
    }

    /// Accepts `kind` as a source type (a host-registered [`DataSource`](crate::source)).
    #[must_use]
    pub fn with_source_type(mut self, kind: impl Into<String>) -> Self {
        self.validate.source_types.push(kind.into());
        self
    }

    /// Loads and validates a config directory.
    pub fn load_dir(&self, dir: impl AsRef<Path>) -> Result<Plan, LoadError> {
        let dir = dir.as_ref();
        let mut files = Files::default();
        let mut diags = Vec::new();
        let io = |path: &Path, source| LoadError::Io {
            path: path.to_owned(),
            source,
        };
        let meta = std::fs::metadata(dir).map_err(|e| io(dir, e))?;
        if !meta.is_dir() {
            return Err(io(
                dir,
                std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
            ));
        }

        // Top-level files, and anything unexpected beside them.
        for entry in list_dir(dir)? {
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_yaml(&name) && !TOP_FILES.contains(&name.as_str()) {
                diags.push(unknown_file(&name, &name, TOP_FILES));
            }
        }
        let mut plan = Plan::default();
        if let Some(doc) = files.read(dir, "config.yaml", &mut diags)? {
            let mut cx = files.cx("config.yaml", &self.env, &doc);
            let doc = cx.1;
            plan.settings = schema::settings(&mut cx.0, &doc);
            diags.append(&mut cx.0.diags);
        }
        plan.integrations.global = self.integrations(dir, "", None, &mut files, &mut diags)?;

        // Domains.
        let domains_dir = dir.join("domains");
        if domains_dir.is_dir() {
            let mut domain_files = BTreeMap::new();
            let mut domain_dirs = Vec::new();
            for entry in list_dir(&domains_dir)? {
                let name = entry.file_name().to_string_lossy().into_owned();
                if entry.path().is_dir() {
                    domain_dirs.push(name);
                } else if let Some(stem) = name
                    .strip_suffix(".yaml")
                    .or_else(|| name.strip_suffix(".yml"))
                    && let Some(other) = domain_files.insert(stem.to_owned(), name.clone())
                {
                    {
                        diags.push(
                            Diagnostic::new(
                                Code::UnknownFile,
                                KeyPath::root(),
                                format!(
                                    "domain `{stem}` is defined by both `{other}` and `{name}`"
                                ),
                            )
                            .in_file(Some(format!("domains/{name}").into()))
                            .with_help("keep one of the two files"),
                        );
                    }
                }
            }
            for d in domain_dirs {
                if !domain_files.contains_key(&d) {
                    let file = format!("domains/{d}/");
                    diags.push(
                        Diagnostic::new(Code::UnknownFile, KeyPath::root(), format!("domain directory `{d}` has no `domains/{d}.yaml`"))
                            .in_file(Some(file.into()))
                            .with_opt_help(
                                suggest(&d, domain_files.keys().map(String::as_str), "domains are")
                                    .or_else(|| Some(format!("add `domains/{d}.yaml` with the domain's endpoints, or remove the directory"))),
                            ),
                    );
                    continue;
                }
                let over = self.integrations(
                    dir,
                    &format!("domains/{d}/"),
                    Some(&plan.integrations.global),
                    &mut files,
                    &mut diags,
                )?;
                if over != plan.integrations.global {
                    plan.integrations.domains.insert(d, over);
                }
            }
            for (domain, file) in &domain_files {
                let rel = format!("domains/{file}");
                if let Some(doc) = files.read(dir, &rel, &mut diags)? {
                    let mut cx = Cx::new(Some(rel.as_str().into()));
                    plan.endpoints
                        .extend(schema::endpoints(&mut cx, Some(domain), &doc));
                    diags.append(&mut cx.diags);
                }
            }
        }

        // A rule about a node that could not be read in full judges incomplete data (a step
        // whose `params` had the wrong type "misses" every parameter): the reading error
        // already says what to fix, so such follow-on findings are dropped.
        let validated =
            validate::without_follow_ons(&diags, validate::validate(&plan, &self.validate));
        diags.extend(validated);
        if diags.is_empty() {
            return Ok(plan);
        }
        Err(LoadError::Invalid(files.locate(diags)))
    }

    /// Reads the integration files under `prefix` (`""` or `domains/<d>/`). With `fallback`, a
    /// file that is absent keeps the fallback's section.
    fn integrations(
        &self,
        dir: &Path,
        prefix: &str,
        fallback: Option<&Integrations>,
        files: &mut Files,
        diags: &mut Vec<Diagnostic>,
    ) -> Result<Integrations, LoadError> {
        let mut out = fallback.cloned().unwrap_or_default();
        let base = dir.join(prefix);
        // An absent file keeps the fallback's (global) section.
        if let Some(doc) = files.read(dir, &format!("{prefix}database.yaml"), diags)? {
            let (mut cx, doc) = files.cx(&format!("{prefix}database.yaml"), &self.env, &doc);
            out.database = schema::database(&mut cx, &doc, dir);
            diags.append(&mut cx.diags);
        }
        if !prefix.is_empty() {
            for entry in list_dir(&base)? {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !entry.path().is_dir() && is_yaml(&name) && name != "database.yaml" {
                    diags.push(unknown_file(
                        &format!("{prefix}{name}"),
                        &name,
                        &["database.yaml"],
                    ));
                } else if entry.path().is_dir() && name != "integrations" {
                    diags.push(unknown_file(
                        &format!("{prefix}{name}/"),
                        &name,
                        &["integrations"],
                    ));
                }
            }
        }
        let int_dir = base.join("integrations");
        if int_dir.is_dir() {
            for entry in list_dir(&int_dir)? {
                let name = entry.file_name().to_string_lossy().into_owned();
                if is_yaml(&name) && !INTEGRATION_FILES.contains(&name.as_str()) {
                    diags.push(unknown_file(
                        &format!("{prefix}integrations/{name}"),
                        &name,
                        INTEGRATION_FILES,
                    ));
                }
            }
            for file in INTEGRATION_FILES {
                let rel = format!("{prefix}integrations/{file}");
                let Some(doc) = files.read(dir, &rel, diags)? else {
                    continue;
                };
                let (mut cx, doc) = files.cx(&rel, &self.env, &doc);
                match *file {
                    "api_sources.yaml" => out.api = schema::api(&mut cx, &doc),
                    "feast_config.yaml" => out.feast = schema::feast(&mut cx, &doc),
                    _ => out.ml = schema::ml(&mut cx, &doc),
                }
                diags.append(&mut cx.diags);
            }
        }
        Ok(out)
    }
}

/// Reads endpoints from an already-parsed domain document (the `endpoints:` mapping), as the
/// YAML loader does for `domains/<domain>.yaml`. Used by front-ends that produce the document
/// tree themselves (the `orchestrate!` macro).
pub fn endpoints_from_value(
    domain: Option<&str>,
    file: Option<&str>,
    doc: &Value,
) -> (Vec<crate::plan::Endpoint>, Vec<Diagnostic>) {
    let mut cx = Cx::new(file.map(Into::into));
    let endpoints = schema::endpoints(&mut cx, domain, doc);
    (endpoints, cx.diags)
}

/// Builds a scoped-integrations value from parsed integration documents (see
/// [`endpoints_from_value`]). Each argument is the whole document of that file.
pub fn integrations_from_values(
    database: Option<&Value>,
    api: Option<&Value>,
    feast: Option<&Value>,
    ml: Option<&Value>,
) -> (ScopedIntegrations, Vec<Diagnostic>) {
    let mut cx = Cx::new(None);
    let mut i = Integrations::default();
    if let Some(d) = database {
        i.database = schema::database(&mut cx, d, Path::new("."));
    }
    if let Some(d) = api {
        i.api = schema::api(&mut cx, d);
    }
    if let Some(d) = feast {
        i.feast = schema::feast(&mut cx, d);
    }
    if let Some(d) = ml {
        i.ml = schema::ml(&mut cx, d);
    }
    (
        ScopedIntegrations {
            global: i,
            domains: BTreeMap::new(),
        },
        cx.diags,
    )
}

fn is_yaml(name: &str) -> bool {
    name.ends_with(".yaml") || name.ends_with(".yml")
}

fn unknown_file(rel: &str, name: &str, known: &[&str]) -> Diagnostic {
    Diagnostic::new(
        Code::UnknownFile,
        KeyPath::root(),
        format!("unexpected file `{rel}`"),
    )
    .in_file(Some(rel.into()))
    .with_opt_help(suggest(name, known.iter().copied(), "files read here are"))
}

fn list_dir(dir: &Path) -> Result<Vec<std::fs::DirEntry>, LoadError> {
    let io = |source| LoadError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut entries = std::fs::read_dir(dir)
        .map_err(io)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(io)?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    Ok(entries)
}

/// The texts of the files read, for locating diagnostics afterwards.
#[derive(Default)]
struct Files {
    texts: HashMap<Arc<str>, String>,
}

impl Files {
    /// Reads and parses `rel` if it exists. A YAML syntax error becomes a diagnostic.
    fn read(
        &mut self,
        dir: &Path,
        rel: &str,
        diags: &mut Vec<Diagnostic>,
    ) -> Result<Option<Value>, LoadError> {
        let path = dir.join(rel);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(LoadError::Io { path, source }),
        };
        let file: Arc<str> = rel.into();
        let parsed = parse_yaml(&text, &file);
        self.texts.insert(file, text);
        match parsed {
            Ok(v) => Ok(Some(v)),
            Err(d) => {
                diags.push(*d);
                Ok(None)
            }
        }
    }

    /// A reading context for an integration-style file, with `${env:…}` resolved in `doc`.
    fn cx(&self, rel: &str, env: &Arc<EnvLookup>, doc: &Value) -> (Cx, Value) {
        let mut cx = Cx::new(Some(rel.into()));
        let mut doc = doc.clone();
        env::substitute(&mut cx, &KeyPath::root(), &mut doc, env.as_ref());
        (cx, doc)
    }

    /// Fills in line:col for every diagnostic whose file was read, and sorts them.
    fn locate(&self, mut diags: Vec<Diagnostic>) -> Diagnostics {
        let mut indexes: HashMap<&str, PositionIndex> = HashMap::new();
        for d in &mut diags {
            if d.location.is_some() {
                continue;
            }
            let Some(file) = d.file.as_deref() else {
                continue;
            };
            let Some(text) = self.texts.get(file) else {
                continue;
            };
            let index = indexes
                .entry(file)
                .or_insert_with(|| PositionIndex::build(text));
            d.location = index.locate(&d.path, d.target);
        }
        diags.sort_by(|a, b| {
            let key = |d: &Diagnostic| {
                (
                    d.file.clone(),
                    d.location.as_ref().map(|l| (l.line, l.column)),
                )
            };
            key(a).cmp(&key(b))
        });
        Diagnostics(diags)
    }
}

/// Parses YAML text into a JSON tree (keys kept in order). Mapping keys must be scalars; tags
/// are rejected.
fn parse_yaml(text: &str, file: &Arc<str>) -> Result<Value, Box<Diagnostic>> {
    let doc: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| {
        let location = e
            .location()
            .map(|l| diagnostic_location(text, l.line(), l.column()));
        let mut d = Diagnostic::new(Code::Syntax, KeyPath::root(), format!("invalid YAML: {e}"))
            .in_file(Some(file.clone()))
            .with_help(
                "check indentation and quoting; strings starting with `$`, `{` or `*` need quotes",
            );
        d.location = location;
        Box::new(d)
    })?;
    let mut path = KeyPath::root();
    yaml_to_json(doc, &mut path).map_err(|(path, msg)| {
        Box::new(Diagnostic::new(Code::WrongType, path, msg).in_file(Some(file.clone())))
    })
}

fn diagnostic_location(text: &str, line: usize, column: usize) -> crate::diagnostic::Location {
    crate::diagnostic::Location {
        line,
        column,
        line_text: text
            .lines()
            .nth(line.saturating_sub(1))
            .unwrap_or_default()
            .to_owned(),
    }
}

fn yaml_to_json(v: serde_yaml::Value, path: &mut KeyPath) -> Result<Value, (KeyPath, String)> {
    use serde_yaml::Value as Y;
    Ok(match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                serde_json::Number::from_f64(f)
                    .map(Value::Number)
                    .ok_or_else(|| (path.clone(), format!("`{f}` is not a finite number")))?
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                let mut p = path.index(i);
                out.push(yaml_to_json(item, &mut p)?);
            }
            Value::Array(out)
        }
        Y::Mapping(map) => {
            let mut out = serde_json::Map::with_capacity(map.len());
            for (k, v) in map {
                let key = match k {
                    Y::String(s) => s,
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    other => {
                        return Err((
                            path.clone(),
                            format!("mapping keys must be strings, found `{other:?}`"),
                        ));
                    }
                };
                let mut p = path.key(&key);
                out.insert(key, yaml_to_json(v, &mut p)?);
            }
            Value::Object(out)
        }
        Y::Tagged(t) => {
            return Err((
                path.clone(),
                format!("YAML tags are not supported (`{}`)", t.tag),
            ));
        }
    })
}
