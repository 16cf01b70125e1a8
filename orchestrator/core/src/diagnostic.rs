//! Diagnostics: what is wrong with a plan, where, and how to fix it.

use std::fmt::{self, Write as _};
use std::sync::Arc;

use crate::expr::PathStep;

/// The path of a node in a config document, rendered like
/// `endpoints.get_customer_360.data_sources[1].params.customer_id`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyPath(Vec<PathStep>);

impl KeyPath {
    /// The empty (document root) path.
    pub fn root() -> Self {
        Self(Vec::new())
    }

    /// This path extended by an object key.
    #[must_use]
    pub fn key(&self, key: &str) -> Self {
        let mut steps = self.0.clone();
        steps.push(PathStep::Key(key.into()));
        Self(steps)
    }

    /// This path extended by an array index.
    #[must_use]
    pub fn index(&self, index: usize) -> Self {
        let mut steps = self.0.clone();
        steps.push(PathStep::Index(index));
        Self(steps)
    }

    /// This path extended by several steps.
    #[must_use]
    pub fn join(&self, steps: &[PathStep]) -> Self {
        let mut all = self.0.clone();
        all.extend_from_slice(steps);
        Self(all)
    }

    /// The steps.
    pub fn steps(&self) -> &[PathStep] {
        &self.0
    }

    /// Whether this path lies strictly inside `node`.
    pub fn is_inside(&self, node: &KeyPath) -> bool {
        self.0.len() > node.0.len() && self.0.starts_with(&node.0)
    }
}

impl From<Vec<PathStep>> for KeyPath {
    fn from(steps: Vec<PathStep>) -> Self {
        Self(steps)
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(document root)");
        }
        for (i, step) in self.0.iter().enumerate() {
            match step {
                PathStep::Key(k) if i == 0 => f.write_str(k)?,
                PathStep::Key(k) => write!(f, ".{k}")?,
                PathStep::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// Which rule a diagnostic comes from. The code is stable; the message text may improve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Code {
    /// A file could not be parsed as YAML.
    Syntax,
    /// A key the format does not have.
    UnknownKey,
    /// A required key is absent.
    MissingKey,
    /// A value of the wrong type (a string where a number belongs, …).
    WrongType,
    /// A value outside the allowed set (an unknown `return_type`, a zero timeout, …).
    InvalidValue,
    /// A `${env:NAME}` reference to a variable that is not set.
    MissingEnv,
    /// A file in the config directory that the loader does not know.
    UnknownFile,
    /// An expression that does not parse.
    Expression,
    /// Operands of incompatible literal types (`'a' * 2`), or a literal where a boolean belongs.
    LiteralType,
    /// A reference to a source the endpoint does not have.
    UnknownSource,
    /// A reference to a source that cannot have run yet (its own result, `$item` outside a
    /// transform step).
    NotYetAvailable,
    /// A reference path that can never resolve (a field of a scalar result, a path param the
    /// route does not capture).
    ImpossiblePath,
    /// Sources that depend on each other in a cycle.
    Cycle,
    /// A source type that nothing provides.
    UnknownSourceType,
    /// An operation that the source type's integration config does not define.
    UnknownOperation,
    /// A `source_id` that names no integration entry.
    UnknownSourceId,
    /// Two endpoints with one name.
    DuplicateEndpoint,
    /// Two sources with one name in an endpoint.
    DuplicateSource,
    /// `primary_source` that is not among the sources, or missing when it is needed.
    PrimarySource,
    /// `endpoint_type` that disagrees with the source types.
    EndpointType,
    /// A malformed route template, or two endpoints on one route.
    Route,
    /// A source named like a reserved root (`request`, `item`).
    ReservedName,
    /// SQL placeholders and the operation's declared parameters that disagree.
    SqlParameter,
    /// A data source whose `params` do not match what its operation, feature lookup or model
    /// uses.
    Parameter,
    /// A model's config that disagrees with the metadata its server publishes.
    ModelMetadata,
    /// A key that is accepted (the original Python service documented it) but has no effect
    /// here; always a warning.
    Ignored,
    /// A field that the source's result does not have, by the config's schema snapshot
    /// (`.orchestrator/schema.json`).
    UnknownField,
    /// Operands or inputs whose types, by the schema snapshot, cannot work together (a number
    /// compared with a string, a text column fed to a numeric model input).
    TypeMismatch,
    /// A schema snapshot that cannot be read, or that no longer matches the live sources.
    Snapshot,
}

impl Code {
    /// The stable kebab-case name shown in brackets: `error[unknown-source]`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Syntax => "syntax",
            Self::UnknownKey => "unknown-key",
            Self::MissingKey => "missing-key",
            Self::WrongType => "wrong-type",
            Self::InvalidValue => "invalid-value",
            Self::MissingEnv => "missing-env",
            Self::UnknownFile => "unknown-file",
            Self::Expression => "expression",
            Self::LiteralType => "literal-type",
            Self::UnknownSource => "unknown-source",
            Self::NotYetAvailable => "not-yet-available",
            Self::ImpossiblePath => "impossible-path",
            Self::Cycle => "cycle",
            Self::UnknownSourceType => "unknown-source-type",
            Self::UnknownOperation => "unknown-operation",
            Self::UnknownSourceId => "unknown-source-id",
            Self::DuplicateEndpoint => "duplicate-endpoint",
            Self::DuplicateSource => "duplicate-source",
            Self::PrimarySource => "primary-source",
            Self::EndpointType => "endpoint-type",
            Self::Route => "route",
            Self::ReservedName => "reserved-name",
            Self::SqlParameter => "sql-parameter",
            Self::Parameter => "parameter",
            Self::ModelMetadata => "model-metadata",
            Self::Ignored => "ignored",
            Self::UnknownField => "unknown-field",
            Self::TypeMismatch => "type-mismatch",
            Self::Snapshot => "snapshot",
        }
    }
}

/// A line and column in a file, 1-based, with the text of that line for rendering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// Line, 1-based.
    pub line: usize,
    /// Column in characters, 1-based.
    pub column: usize,
    /// The text of the line.
    pub line_text: String,
}

/// What points at the offending node: the key itself (an unknown key) or its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The key of the node.
    Key,
    /// The node's value; for expressions, `offset` bytes into the string.
    Value {
        /// Byte offset inside a scalar string.
        offset: usize,
    },
}

/// Whether a diagnostic stops the plan from loading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Severity {
    /// The plan is rejected.
    #[default]
    Error,
    /// The plan loads; something in it deserves a look (a key that has no effect here, a
    /// behaviour that differs from the original service's).
    Warning,
}

impl Severity {
    /// `error` or `warning`, as printed before the code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warning => "warning",
        }
    }
}

/// One problem with a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Whether it rejects the plan.
    pub severity: Severity,
    /// The rule.
    pub code: Code,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub help: Option<String>,
    /// The file, relative to the config directory (`None` for plans built in code).
    pub file: Option<Arc<str>>,
    /// The offending node.
    pub path: KeyPath,
    /// Whether the key or the value is at fault.
    pub target: Target,
    /// Where in the file, when the loader could find it.
    pub location: Option<Location>,
}

impl Diagnostic {
    /// A diagnostic about the value at `path`.
    pub fn new(code: Code, path: KeyPath, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            code,
            message: message.into(),
            help: None,
            file: None,
            path,
            target: Target::Value { offset: 0 },
            location: None,
        }
    }

    /// A warning about the value at `path`: reported, but the plan loads.
    pub fn warning(code: Code, path: KeyPath, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::new(code, path, message)
        }
    }

    /// Whether it rejects the plan.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Adds a help line.
    #[must_use]
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Adds a help line when there is one.
    #[must_use]
    pub fn with_opt_help(mut self, help: Option<String>) -> Self {
        self.help = help;
        self
    }

    /// Names the file.
    #[must_use]
    pub fn in_file(mut self, file: Option<Arc<str>>) -> Self {
        self.file = file;
        self
    }

    /// Points at the key rather than the value.
    #[must_use]
    pub fn at_key(mut self) -> Self {
        self.target = Target::Key;
        self
    }

    /// Points `offset` bytes into the value string.
    #[must_use]
    pub fn at_offset(mut self, offset: usize) -> Self {
        self.target = Target::Value { offset };
        self
    }
}

impl fmt::Display for Diagnostic {
    /// Renders rustc-style:
    ///
    /// ```text
    /// error[unknown-source]: unknown source `profle`
    ///   --> domains/customers.yaml:14:25
    ///    |
    /// 14 |           customer_id: "$profle.customer_id"
    ///    |                         ^
    ///    = at: endpoints.get_customer_360.data_sources[1].params.customer_id
    ///    = help: did you mean `profile`?
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}[{}]: {}",
            self.severity.as_str(),
            self.code.as_str(),
            self.message
        )?;
        let gutter = self
            .location
            .as_ref()
            .map_or(1, |l| l.line.to_string().len());
        let pad = " ".repeat(gutter);
        match (&self.file, &self.location) {
            (Some(file), Some(loc)) => writeln!(f, "{pad}--> {file}:{}:{}", loc.line, loc.column)?,
            (Some(file), None) => writeln!(f, "{pad}--> {file}")?,
            (None, _) => {}
        }
        if let Some(loc) = &self.location {
            // A long line (minified YAML) is shown as a window around the column.
            const WIDTH: usize = 120;
            let chars: Vec<char> = loc.line_text.chars().collect();
            let column = loc.column.saturating_sub(1).min(chars.len());
            let (start, end) = if chars.len() <= WIDTH {
                (0, chars.len())
            } else {
                let start = column.saturating_sub(WIDTH / 2);
                (start, (start + WIDTH).min(chars.len()))
            };
            let mut shown: String = chars[start..end].iter().collect();
            let mut marker = String::new();
            if start > 0 {
                shown.insert(0, '…');
                marker.push(' ');
            }
            if end < chars.len() {
                shown.push('…');
            }
            for c in &chars[start..column] {
                marker.push(if *c == '\t' { '\t' } else { ' ' });
            }
            writeln!(f, "{pad} |")?;
            writeln!(f, "{} | {}", loc.line, shown)?;
            writeln!(f, "{pad} | {marker}^")?;
        }
        writeln!(f, "{pad} = at: {}", self.path)?;
        if let Some(help) = &self.help {
            writeln!(f, "{pad} = help: {help}")?;
        }
        Ok(())
    }
}

/// Every diagnostic of one load or validation, in file and position order.
///
/// `Debug` prints the same as `Display`: the diagnostics rendered as `check` prints them.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Debug for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Diagnostics {
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Iterates over them.
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }

    /// How many are errors (the rest are warnings).
    pub fn errors(&self) -> usize {
        self.0.iter().filter(|d| d.is_error()).count()
    }

    /// Splits them into errors and warnings.
    pub fn partition(self) -> (Diagnostics, Diagnostics) {
        let (errors, warnings) = self.0.into_iter().partition(Diagnostic::is_error);
        (Diagnostics(errors), Diagnostics(warnings))
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_char('\n')?;
            }
            write!(f, "{d}")?;
        }
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        let errors = self.errors();
        let warnings = self.0.len() - errors;
        match (errors, warnings) {
            (0, w) => write!(f, "\nwarning: {w} warning{}; the plan loads", plural(w)),
            (e, 0) => write!(f, "\nerror: the plan has {e} error{}", plural(e)),
            (e, w) => write!(
                f,
                "\nerror: the plan has {e} error{} and {w} warning{}",
                plural(e),
                plural(w)
            ),
        }
    }
}

impl std::error::Error for Diagnostics {}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// The closest candidate to `name`, if one is close enough to be a likely typo.
pub(crate) fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(name, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// "did you mean `x`?" when a candidate is close, else a list of what is allowed.
pub(crate) fn suggest<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str> + Clone,
    what: &str,
) -> Option<String> {
    if let Some(best) = did_you_mean(name, candidates.clone()) {
        return Some(format!("did you mean `{best}`?"));
    }
    let all: Vec<_> = candidates.into_iter().map(|c| format!("`{c}`")).collect();
    match all.len() {
        0 => None,
        1..=12 => Some(format!("{what}: {}", all.join(", "))),
        n => Some(format!(
            "{what}: {} and {} more",
            all[..12].join(", "),
            n - 12
        )),
    }
}
