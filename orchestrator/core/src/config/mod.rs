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
mod files;
pub(crate) mod keys;
mod policy;
mod position;
pub(crate) mod read;
pub(crate) mod schema;
mod serving;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

pub use env::EnvLookup;
pub use files::ConfigFiles;

use crate::diagnostic::{Code, Diagnostic, Diagnostics, KeyPath, suggest};
use crate::plan::{Integrations, Plan};
use crate::validate::{self, ValidPlan, ValidateOptions};
use position::PositionIndex;
use read::ValueReader;

/// Why a config directory could not be loaded.
///
/// `Debug` prints the same as `Display` (the rendered diagnostics), so
/// `fn main() -> Result<(), Box<dyn Error>>` shows `error[unknown-key] … --> domains/shop.yaml:6:14`.
#[derive(thiserror::Error)]
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

impl fmt::Debug for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
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
    host_files: Vec<IntegrationFile>,
}

/// The integration file a host source type reads its settings from,
/// `integrations/<kind>.yaml` (and `domains/<d>/integrations/<kind>.yaml` for a domain), in
/// the built-ins' shape:
///
/// ```yaml
/// vector_db:            # the kind
///   sources:
///     main: {url: "${env:VECTOR_URL}", index: products}
/// ```
///
/// The loader reads it like the built-in files: `${env:…}` resolved, every entry's keys
/// checked against [`key`](Self::key)s (an unknown one is an error with a "did you mean"),
/// the [`required`](Self::required) ones present, each problem with its file, key path and
/// line. The entries reach the source's factory as
/// [`Integrations::host_settings`](crate::plan::Integrations::host_settings).
///
/// ```
/// use api_orchestrator_core::config::{ConfigFiles, IntegrationFile, Loader};
///
/// let file = IntegrationFile::new("vector_db").required("url").key("index");
/// let files = ConfigFiles::new().with_file(
///     "integrations/vector_db.yaml",
///     "vector_db:\n  sources:\n    main: {url: http://127.0.0.1:1, indx: products}\n",
/// );
/// let err = Loader::new().with_integration(file).load(&files).unwrap_err().to_string();
/// assert!(err.contains("unknown key `indx`") && err.contains("index"), "{err}");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntegrationFile {
    kind: String,
    keys: Vec<String>,
    required: Vec<String>,
}

impl IntegrationFile {
    /// The file of source type `kind`, with no keys yet.
    pub fn new(kind: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            keys: Vec::new(),
            required: Vec::new(),
        }
    }

    /// Allows key `name` in each entry.
    pub fn key(mut self, name: impl Into<String>) -> Self {
        self.keys.push(name.into());
        self
    }

    /// Requires key `name` in each entry.
    pub fn required(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.keys.push(name.clone());
        self.required.push(name);
        self
    }

    /// The source type.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The same keys for source type `kind` (the name a host registers the type under).
    pub fn with_kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = kind.into();
        self
    }

    /// Its file name in `integrations/`.
    fn file_name(&self) -> String {
        format!("{}.yaml", self.kind)
    }
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
            host_files: Vec::new(),
        }
    }
}

/// Loads and validates the config directory at `dir` with default options (environment from
/// the process, only built-in source types).
///
/// ```
/// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/config");
/// let plan = api_orchestrator_core::config::load_dir(dir).expect("the shipped example config is valid");
/// assert!(plan.endpoint("get_customer_360").is_some());
/// ```
pub fn load_dir(dir: impl AsRef<Path>) -> Result<ValidPlan, LoadError> {
    Loader::default().load_dir(dir)
}

/// The JSON Schema (draft 7) of every config file, for editors: point yaml-language-server
/// (the VS Code YAML extension) at it for completion, hover docs and checks as you type.
///
/// It is generated from the key tables the loader reads with, so it knows every key the
/// loader does (the original service's included), their types, fixed spellings and
/// required keys; one definition per mapping under `$defs`. The root accepts any file of a
/// config directory; [`json_schema_for`] gives one file's. What needs more than the shape
/// (expressions, SQL parameters, references between files) is the loader's to check.
///
/// Host source types' integration files (`integrations/<kind>.yaml`) are the host's and not
/// part of it. The `api-orchestrator schema` command prints this.
///
/// ```
/// let schema = api_orchestrator_core::config::json_schema();
/// let endpoint = &schema["$defs"]["endpoint"]["properties"];
/// assert!(endpoint.get("data_sources").is_some());
/// ```
pub fn json_schema() -> Value {
    keys::json_schema(None)
}

/// The JSON Schema of the config file at `path` (relative to the config root,
/// `/`-separated: `config.yaml`, `domains/shop.yaml`, `integrations/api_sources.yaml`…), or
/// `None` when the loader reads no file there.
///
/// ```
/// use api_orchestrator_core::config::json_schema_for;
///
/// assert!(json_schema_for("domains/shop.yaml").is_some());
/// assert!(json_schema_for("notes.yaml").is_none());
/// ```
pub fn json_schema_for(path: &str) -> Option<Value> {
    keys::document(path).map(|t| keys::json_schema(Some(t)))
}

const INTEGRATION_FILES: &[&str] = &[
    "api_sources.yaml",
    "feast_config.yaml",
    "ml_config.yaml",
    // The original service's name of the ML file.
    "ml.yaml",
];
/// Files of the original service that nothing read: reported as warnings, not read.
const UNREAD_FILES: &[&str] = &["mock_services.yaml"];
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

    /// Accepts `kind` as a source type (one the host registers with the engine).
    #[must_use]
    pub fn with_source_type(mut self, kind: impl Into<String>) -> Self {
        self.validate.source_types.push(kind.into());
        self
    }

    /// Accepts host source type `file.kind()` and reads its integration file (see
    /// [`IntegrationFile`]).
    pub fn with_integration(mut self, file: IntegrationFile) -> Self {
        if !self.validate.source_types.contains(&file.kind) {
            self.validate.source_types.push(file.kind.clone());
        }
        self.host_files.retain(|f| f.kind != file.kind);
        self.host_files.push(file);
        self
    }

    /// Reads only the settings of `config.yaml` (defaults when it is absent): what a server
    /// needs before the rest (log format, worker threads, bind address, mount prefix).
    /// Warnings are dropped here; [`Loader::load`] reports them with the plan.
    ///
    /// ```
    /// use api_orchestrator_core::config::{ConfigFiles, Loader};
    ///
    /// let mut files = ConfigFiles::default();
    /// files.insert("config.yaml", "app: {api_base_path: /v1}\nserver: {workers: 2}");
    /// let settings = Loader::new().settings(&files).unwrap();
    /// assert_eq!(settings.app.base_path, "/v1");
    /// assert_eq!(settings.server.workers, Some(2));
    /// ```
    pub fn settings(&self, files: &ConfigFiles) -> Result<crate::plan::Settings, LoadError> {
        let mut load = Load {
            files,
            env: self.env.as_ref(),
            host_files: &self.host_files,
            diags: Vec::new(),
        };
        let mut settings = crate::plan::Settings::default();
        if let Some((mut cx, doc)) = load.resolved("config.yaml") {
            settings = schema::settings(&mut cx, &doc);
            load.diags.append(&mut cx.diags);
        }
        let diags = locate(files, load.diags);
        if diags.errors() == 0 {
            Ok(settings)
        } else {
            Err(LoadError::Invalid(diags.partition().0))
        }
    }

    /// Reads the config directory at `dir` ([`ConfigFiles::read_dir`]), then loads and
    /// validates it ([`Loader::load`]).
    pub fn load_dir(&self, dir: impl AsRef<Path>) -> Result<ValidPlan, LoadError> {
        self.load(&self.read_dir(dir.as_ref())?)
    }

    /// The files of config directory `dir` this loader reads: [`ConfigFiles::read_dir`]'s,
    /// and the integration files of the host source types it knows
    /// ([`with_integration`](Self::with_integration)).
    pub fn read_dir(&self, dir: &Path) -> Result<ConfigFiles, LoadError> {
        let host: Vec<String> = self
            .host_files
            .iter()
            .map(IntegrationFile::file_name)
            .collect();
        ConfigFiles::read_dir_with(dir, &host)
    }

    /// Loads and validates a config held in memory: no file system access, so the same for
    /// the runtime loader, the `orchestrate!` macro, tests and fuzzers. Every problem is
    /// reported at once, each with its file, key path and line:col.
    pub fn load(&self, files: &ConfigFiles) -> Result<ValidPlan, LoadError> {
        let mut load = Load {
            files,
            env: self.env.as_ref(),
            host_files: &self.host_files,
            diags: Vec::new(),
        };

        // Top-level files, and anything unexpected beside them.
        for name in files.files_in("") {
            if !TOP_FILES.contains(&name) {
                load.diags.push(unknown_file(name, name, TOP_FILES));
            }
        }
        let mut plan = Plan::default();
        if let Some((mut cx, doc)) = load.resolved("config.yaml") {
            plan.settings = schema::settings(&mut cx, &doc);
            load.diags.append(&mut cx.diags);
        }
        // The rest of the load reads with the config's limits.
        let _limits = crate::limits::Scope::enter(plan.settings.limits);
        plan.integrations.global = load.integrations("", None);

        // Domains.
        if files.has_dir("domains") {
            let mut domain_files = BTreeMap::new();
            for name in files.files_in("domains") {
                let Some(stem) = name
                    .strip_suffix(".yaml")
                    .or_else(|| name.strip_suffix(".yml"))
                else {
                    continue;
                };
                if let Some(other) = domain_files.insert(stem.to_owned(), name.to_owned()) {
                    load.diags.push(
                        Diagnostic::new(
                            Code::UnknownFile,
                            KeyPath::root(),
                            format!("domain `{stem}` is defined by both `{other}` and `{name}`"),
                        )
                        .in_file(Some(format!("domains/{name}").into()))
                        .with_help("keep one of the two files"),
                    );
                }
            }
            for d in files.dirs_in("domains") {
                if !domain_files.contains_key(d) {
                    let file = format!("domains/{d}/");
                    load.diags.push(
                        Diagnostic::new(Code::UnknownFile, KeyPath::root(), format!("domain directory `{d}` has no `domains/{d}.yaml`"))
                            .in_file(Some(file.into()))
                            .with_opt_help(
                                suggest(d, domain_files.keys().map(String::as_str), "domains are")
                                    .or_else(|| Some(format!("add `domains/{d}.yaml` with the domain's endpoints, or remove the directory"))),
                            ),
                    );
                    continue;
                }
                let over =
                    load.integrations(&format!("domains/{d}/"), Some(&plan.integrations.global));
                if over != plan.integrations.global {
                    plan.integrations.domains.insert(d.to_owned(), over);
                }
            }
            for (domain, file) in &domain_files {
                let rel = format!("domains/{file}");
                if let Some(doc) = load.parsed(&rel) {
                    let mut cx = ValueReader::new(Some(rel.as_str().into()));
                    plan.domains
                        .extend(schema::domain_info(&mut cx, domain, &doc));
                    plan.endpoints
                        .extend(schema::endpoints(&mut cx, Some(domain), &doc));
                    load.diags.append(&mut cx.diags);
                }
            }
        }

        if let Some(text) = files.get(crate::snapshot::SNAPSHOT_FILE) {
            match crate::snapshot::Snapshot::from_json(text) {
                Ok(s) => plan.snapshot = Some(std::sync::Arc::new(s)),
                Err(why) => load.diags.push(
                    Diagnostic::new(
                        Code::Snapshot,
                        KeyPath::root(),
                        format!("the schema snapshot cannot be read: {why}"),
                    )
                    .in_file(Some(crate::snapshot::SNAPSHOT_FILE.into()))
                    .with_help("write it again with `check --prepare DIR`, or delete it to load without one"),
                ),
            }
        }

        // A rule about a node that could not be read in full judges incomplete data (a step
        // whose `params` had the wrong type "misses" every parameter): the reading error
        // already says what to fix, so such follow-on findings are dropped.
        let mut diags = load.diags;
        let validated =
            validate::without_follow_ons(&diags, validate::validate(&plan, &self.validate));
        diags.extend(validated);
        let diags = locate(files, diags);
        if diags.errors() == 0 {
            return Ok(ValidPlan::__assume_valid_with(plan, diags));
        }
        Err(LoadError::Invalid(diags))
    }
}

/// One load's inputs and findings.
struct Load<'a> {
    files: &'a ConfigFiles,
    env: &'a EnvLookup,
    host_files: &'a [IntegrationFile],
    diags: Vec<Diagnostic>,
}

impl Load<'_> {
    /// Parses `rel` if it exists. A YAML syntax error becomes a diagnostic.
    fn parsed(&mut self, rel: &str) -> Option<Value> {
        let text = self.files.get(rel)?;
        match parse_yaml(text, &rel.into()) {
            Ok(v) => Some(v),
            Err(d) => {
                self.diags.push(*d);
                None
            }
        }
    }

    /// Parses an integration-style file, with `${env:…}` resolved, and a reading context for
    /// it.
    fn resolved(&mut self, rel: &str) -> Option<(ValueReader, Value)> {
        let mut doc = self.parsed(rel)?;
        let mut cx = ValueReader::new(Some(rel.into()));
        env::substitute(&mut cx, &KeyPath::root(), &mut doc, self.env);
        Some((cx, doc))
    }

    /// Reads the integration files under `prefix` (`""` or `domains/<d>/`). With `fallback`, a
    /// file that is absent keeps the fallback's section.
    fn integrations(&mut self, prefix: &str, fallback: Option<&Integrations>) -> Integrations {
        let files = self.files;
        let mut out = fallback.cloned().unwrap_or_default();
        if let Some((mut cx, doc)) = self.resolved(&format!("{prefix}database.yaml")) {
            out.database = schema::database(&mut cx, &doc, files.base_dir());
            self.diags.append(&mut cx.diags);
        }
        let folder = prefix.trim_end_matches('/');
        if !prefix.is_empty() {
            for name in files.files_in(folder) {
                if name != "database.yaml" {
                    self.diags.push(unknown_file(
                        &format!("{prefix}{name}"),
                        name,
                        &["database.yaml"],
                    ));
                }
            }
            for name in files.dirs_in(folder) {
                if name != "integrations" {
                    self.diags.push(unknown_file(
                        &format!("{prefix}{name}/"),
                        name,
                        &["integrations"],
                    ));
                }
            }
        }
        let int_dir = format!("{prefix}integrations");
        if files.has_dir(&int_dir) {
            for name in files.files_in(&int_dir) {
                if UNREAD_FILES.contains(&name) {
                    self.diags.push(
                        Diagnostic::warning(
                            Code::UnknownFile,
                            KeyPath::root(),
                            format!("`{int_dir}/{name}` is not read"),
                        )
                        .in_file(Some(format!("{int_dir}/{name}").into()))
                        .with_help("the original service never read it either; point the integration files at the servers to call, or delete it"),
                    );
                } else if !INTEGRATION_FILES.contains(&name)
                    && !self.host_files.iter().any(|f| f.file_name() == name)
                {
                    let host: Vec<String> = self
                        .host_files
                        .iter()
                        .map(IntegrationFile::file_name)
                        .collect();
                    let known: Vec<&str> = INTEGRATION_FILES
                        .iter()
                        .copied()
                        .chain(host.iter().map(String::as_str))
                        .collect();
                    self.diags
                        .push(unknown_file(&format!("{int_dir}/{name}"), name, &known));
                }
            }
            if files.get(&format!("{int_dir}/ml.yaml")).is_some()
                && files.get(&format!("{int_dir}/ml_config.yaml")).is_some()
            {
                let rel = format!("{int_dir}/ml.yaml");
                self.diags.push(
                    Diagnostic::new(
                        Code::UnknownFile,
                        KeyPath::root(),
                        format!(
                            "`{rel}` and `{int_dir}/ml_config.yaml` both define the ML sources"
                        ),
                    )
                    .in_file(Some(rel.into()))
                    .with_help("keep one of them (`ml.yaml` is the original service's name)"),
                );
            }
            for file in INTEGRATION_FILES {
                let Some((mut cx, doc)) = self.resolved(&format!("{int_dir}/{file}")) else {
                    continue;
                };
                match *file {
                    "api_sources.yaml" => out.api = schema::api(&mut cx, &doc, files.base_dir()),
                    "feast_config.yaml" => out.feast = schema::feast(&mut cx, &doc),
                    _ => out.ml = schema::ml(&mut cx, &doc),
                }
                self.diags.append(&mut cx.diags);
            }
            for file in self.host_files {
                let rel = format!("{int_dir}/{}", file.file_name());
                let Some((mut cx, doc)) = self.resolved(&rel) else {
                    continue;
                };
                let entries = schema::host_integration(&mut cx, &doc, file);
                out.host.insert(file.kind.clone(), entries);
                self.diags.append(&mut cx.diags);
            }
        }
        out
    }
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

/// Fills in line:col for every diagnostic whose file was read, and sorts them.
fn locate(files: &ConfigFiles, mut diags: Vec<Diagnostic>) -> Diagnostics {
    let mut indexes: HashMap<&str, PositionIndex> = HashMap::new();
    for d in &mut diags {
        // A whole unexpected file has no line to point at.
        if d.location.is_some() || d.code == Code::UnknownFile {
            continue;
        }
        let Some(file) = d.file.as_deref() else {
            continue;
        };
        let Some(text) = files.get(file) else {
            continue;
        };
        let index = indexes
            .entry(file)
            .or_insert_with(|| PositionIndex::build(text));
        if let Some(written) = index.written(&d.path) {
            d.path = written;
        }
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

/// How deep `[` and `{` may nest in a config file unless `limits.yaml_nesting` says otherwise
/// ([`Limits`](crate::plan::Limits)). YAML parsers take time quadratic in the nesting of flow
/// collections (200 KB of `[` took 90 s), so deeper text is refused before it is parsed.
pub const MAX_FLOW_NESTING: usize = 64;

/// Where `text` first nests flow collections deeper than `max` (1-based line and column),
/// skipping quoted strings and comments.
fn too_deep(text: &str, max: usize) -> Option<(usize, usize)> {
    let (mut depth, mut line, mut column) = (0usize, 1usize, 0usize);
    let mut quote: Option<char> = None;
    let mut comment = false;
    let mut previous = '\n';
    let mut escaped = false;
    for c in text.chars() {
        column += 1;
        if c == '\n' {
            line += 1;
            column = 0;
            comment = false;
            previous = c;
            continue;
        }
        if comment {
            continue;
        }
        match quote {
            Some('"') if escaped => escaped = false,
            Some('"') if c == '\\' => escaped = true,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '#' if previous.is_whitespace() => comment = true,
                '"' | '\'' if matches!(previous, ' ' | '\t' | '[' | '{' | ',' | ':' | '\n') => {
                    quote = Some(c)
                }
                '[' | '{' => {
                    depth += 1;
                    if depth > max {
                        return Some((line, column));
                    }
                }
                ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
        previous = c;
    }
    None
}

/// Parses YAML text into a JSON tree (keys kept in order). Mapping keys must be scalars; tags
/// are rejected.
fn parse_yaml(text: &str, file: &Arc<str>) -> Result<Value, Box<Diagnostic>> {
    let max = crate::limits::current().yaml_nesting;
    if let Some((line, column)) = too_deep(text, max) {
        let mut d = Diagnostic::new(
            Code::Syntax,
            KeyPath::root(),
            format!("the YAML nests flow collections (`[`, `{{`) deeper than {max} levels"),
        )
        .in_file(Some(file.clone()))
        .with_help("check the brackets (`limits.yaml_nesting` in config.yaml raises the limit)");
        d.location = Some(diagnostic_location(text, line, column));
        return Err(Box::new(d));
    }
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
        line_text: crate::redact::line(
            text.lines().nth(line.saturating_sub(1)).unwrap_or_default(),
        ),
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
