//! The validator: every plan rule, checked once, for both front-ends.
//!
//! [`validate`] collects every diagnostic in one pass. Each names the file (from the item's
//! [`Origin`](crate::plan::Origin)), the key path of the offending node and a help line; the YAML
//! loader adds line:col, the macro maps the path to a token span.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::diagnostic::{Code, Diagnostic, KeyPath, suggest};
use crate::expr::{BinaryOp, Expr, RequestPart, Root, Segment, Template, describe};
use crate::plan::{
    DbConnection, DbOperation, Endpoint, Integrations, Plan, RESERVED_SOURCE_NAMES, ReturnType,
    SourceStep, SqlDriver, Transform,
};
use crate::sql_text::{self, Token};

/// Source types every plan may use.
pub const BUILTIN_SOURCE_TYPES: &[&str] = &["database", "api", "feast", "ml", "direct"];

/// Options of [`validate`].
#[derive(Debug, Clone, Default)]
pub struct ValidateOptions {
    /// Host-registered source types accepted besides the built-in ones. Their operations are
    /// not checked (the host's source defines them).
    pub source_types: Vec<String>,
}

/// `found` without the findings about a node part of which could not be read (a reading
/// diagnostic lies inside it): such findings judge incomplete data, and the reading error
/// already says what to fix.
pub fn without_follow_ons(reading: &[Diagnostic], found: Vec<Diagnostic>) -> Vec<Diagnostic> {
    found
        .into_iter()
        .filter(|v| {
            !reading
                .iter()
                .any(|r| r.file == v.file && r.path.is_inside(&v.path))
        })
        .collect()
}

/// Checks every rule on `plan` and returns all diagnostics (empty when the plan is valid).
pub fn validate(plan: &Plan, options: &ValidateOptions) -> Vec<Diagnostic> {
    let mut v = Validator {
        plan,
        options,
        out: Vec::new(),
        file: None,
    };
    v.integrations();
    v.endpoint_names();
    for e in &plan.endpoints {
        v.file = e.origin.file.clone();
        v.endpoint(e);
    }
    v.routes();
    v.out
}

struct Validator<'p> {
    plan: &'p Plan,
    options: &'p ValidateOptions,
    out: Vec<Diagnostic>,
    file: Option<Arc<str>>,
}

/// Where a reference appears, which decides what it may refer to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Site<'a> {
    /// Params, condition or `depends_on` of this source.
    Source(&'a str),
    /// A transform step of this source (`$item` allowed).
    Transform(&'a str),
    /// The response mapping.
    Mapping,
}

fn endpoint_path(e: &Endpoint) -> KeyPath {
    KeyPath::root().key("endpoints").key(&e.name)
}

impl<'p> Validator<'p> {
    fn report(&mut self, d: Diagnostic) {
        let file = d.file.clone().or_else(|| self.file.clone());
        self.out.push(d.in_file(file));
    }

    fn integrations(&mut self) {
        for (_, i) in self.plan.integrations.iter() {
            for (server, f) in &i.feast.sources {
                for (name, op) in &f.operations {
                    let Some(id) = op
                        .database_fallback
                        .as_ref()
                        .and_then(|fb| fb.source_id.as_ref())
                    else {
                        continue;
                    };
                    if !i.database.sources.contains_key(id) {
                        let path = KeyPath::root()
                            .key("feast")
                            .key("sources")
                            .key(server)
                            .key("operations")
                            .key(name)
                            .key("database_fallback")
                            .key("source_id");
                        self.report(
                            Diagnostic::new(
                                Code::UnknownSourceId,
                                path,
                                format!("unknown database connection `{id}`"),
                            )
                            .in_file(op.origin.file.clone())
                            .with_opt_help(
                                suggest(
                                    id,
                                    i.database.sources.keys().map(String::as_str),
                                    "connections are",
                                )
                                .or_else(|| {
                                    Some(
                                        "define it under `database.sources` in database.yaml"
                                            .into(),
                                    )
                                }),
                            ),
                        );
                    }
                }
            }
            for (name, op) in &i.database.operations {
                let path = KeyPath::root().key("database").key("operations").key(name);
                let file = op.origin.file.clone();
                match &op.source_id {
                    Some(id) if !i.database.sources.contains_key(id) => self.report(
                        Diagnostic::new(Code::UnknownSourceId, path.key("source_id"), format!("unknown database connection `{id}`"))
                            .in_file(file)
                            .with_opt_help(suggest(id, i.database.sources.keys().map(String::as_str), "connections are")),
                    ),
                    None if i.database.sources.len() > 1 => self.report(
                        Diagnostic::new(Code::MissingKey, path.clone(), "several database connections are defined; this operation must pick one")
                            .in_file(file)
                            .with_help(format!("add `source_id:` with one of: {}", i.database.sources.keys().cloned().collect::<Vec<_>>().join(", "))),
                    ),
                    None if i.database.sources.is_empty() => self.report(
                        Diagnostic::new(Code::UnknownSourceId, path.clone(), "no database connection is defined for this operation")
                            .in_file(file)
                            .with_help("add a connection under `database.sources` (e.g. `default: {connection_string: \"sqlite:///app.db\"}`)"),
                    ),
                    _ => {}
                }
                self.sql_operation(i, name, op, &path);
            }
            for (name, conn) in &i.database.sources {
                if conn.statement_timeout.is_some() && conn.driver() == Some(SqlDriver::Sqlite) {
                    let path = KeyPath::root()
                        .key("database")
                        .key("sources")
                        .key(name)
                        .key("statement_timeout");
                    self.report(
                        Diagnostic::new(
                            Code::InvalidValue,
                            path,
                            "SQLite has no server-side statement timeout",
                        )
                        .in_file(conn.origin.file.clone())
                        .at_key()
                        .with_help("remove it; the data source's `timeout` bounds every query"),
                    );
                }
            }
        }
    }

    /// Placeholders in the query against the declared `params`.
    fn sql_operation(&mut self, i: &Integrations, name: &str, op: &DbOperation, path: &KeyPath) {
        let file = op.origin.file.clone();
        let driver = op
            .source_id
            .as_ref()
            .and_then(|id| i.database.sources.get(id))
            .or_else(|| i.database.sources.values().next())
            .and_then(DbConnection::driver);
        let declared: Vec<&str> = op.params.iter().map(|p| p.name.as_str()).collect();
        let tokens = sql_text::scan(&op.query);
        let mut used = BTreeSet::new();
        for token in &tokens {
            match token {
                Token::Named { name: p, range } => {
                    used.insert(*p);
                    if !declared.contains(p) {
                        self.report(
                            Diagnostic::new(
                                Code::SqlParameter,
                                path.key("query"),
                                format!("placeholder `:{p}` is not a declared parameter"),
                            )
                            .in_file(file.clone())
                            .at_offset(range.start)
                            .with_help(
                                match suggest(
                                    p,
                                    declared.iter().copied(),
                                    "declared parameters are",
                                ) {
                                    Some(h) => h,
                                    None => format!("add `{p}` to `params` of operation `{name}`"),
                                },
                            ),
                        );
                    }
                }
                Token::Positional { text, range } => {
                    if *text == "?" && driver == Some(SqlDriver::Postgres) {
                        continue; // PostgreSQL's JSON key-exists operator
                    }
                    self.report(
                        Diagnostic::new(
                            Code::SqlParameter,
                            path.key("query"),
                            format!("positional placeholder `{text}` in a named-parameter query"),
                        )
                        .in_file(file.clone())
                        .at_offset(range.start)
                        .with_help("write `:name` and declare `name` in `params`; values are bound in the driver's own form"),
                    );
                }
            }
        }
        let mut seen = BTreeSet::new();
        for (n, p) in op.params.iter().enumerate() {
            let at = path.key("params").index(n);
            if !seen.insert(p.name.as_str()) {
                self.report(
                    Diagnostic::new(
                        Code::SqlParameter,
                        at,
                        format!("parameter `{}` is declared twice", p.name),
                    )
                    .in_file(file.clone()),
                );
            } else if !used.contains(p.name.as_str()) {
                let at = if p.ty.is_some() {
                    path.key("params").key(&p.name)
                } else {
                    at
                };
                self.report(
                    Diagnostic::new(
                        Code::SqlParameter,
                        at,
                        format!(
                            "parameter `{}` has no `:{}` placeholder in the query",
                            p.name, p.name
                        ),
                    )
                    .in_file(file.clone())
                    .with_help(format!(
                        "use `:{}` in the query, or remove it from `params`",
                        p.name
                    )),
                );
            }
        }
    }

    fn endpoint_names(&mut self) {
        let mut seen: HashMap<&str, &Endpoint> = HashMap::new();
        for e in &self.plan.endpoints {
            if let Some(first) = seen.get(e.name.as_str()) {
                let at = first
                    .origin
                    .file
                    .as_deref()
                    .map_or(String::new(), |f| format!(" in `{f}`"));
                self.report(
                    Diagnostic::new(Code::DuplicateEndpoint, endpoint_path(e), format!("endpoint `{}` is defined twice", e.name))
                        .at_key()
                        .in_file(e.origin.file.clone())
                        .with_help(format!("the first definition is{at}; endpoint names are unique across all domains, rename one")),
                );
            } else {
                seen.insert(&e.name, e);
            }
        }
    }

    fn routes(&mut self) {
        let mut seen: BTreeMap<(String, String), &str> = BTreeMap::new();
        for e in &self.plan.endpoints {
            for r in e.routes() {
                let shape: Vec<String> = r
                    .path
                    .as_str()
                    .split('/')
                    .map(|s| {
                        if s.starts_with('{') {
                            "{}".into()
                        } else {
                            s.to_owned()
                        }
                    })
                    .collect();
                let key = (r.method.to_string(), shape.join("/"));
                if let Some(other) = seen.get(&key) {
                    if *other != e.name {
                        self.file = e.origin.file.clone();
                        self.report(
                            Diagnostic::new(
                                Code::Route,
                                endpoint_path(e).key("path"),
                                format!("route `{r}` is also served by endpoint `{other}`"),
                            )
                            .with_help("give one of the endpoints another `path` or `method`"),
                        );
                    }
                } else {
                    seen.insert(key, &e.name);
                }
            }
        }
    }

    fn endpoint(&mut self, e: &'p Endpoint) {
        let path = endpoint_path(e);
        let integrations = self.plan.integrations_for(e);
        let mut names: Vec<&str> = Vec::with_capacity(e.sources.len());
        for s in &e.sources {
            if !names.contains(&s.name.as_str()) {
                names.push(&s.name);
            }
        }

        // Source names.
        let mut seen = BTreeSet::new();
        for (i, s) in e.sources.iter().enumerate() {
            let sp = path.key("data_sources").index(i);
            if !seen.insert(s.name.as_str()) {
                self.report(
                    Diagnostic::new(
                        Code::DuplicateSource,
                        sp.key("name"),
                        format!(
                            "source `{}` is defined twice in endpoint `{}`",
                            s.name, e.name
                        ),
                    )
                    .with_help("source names are unique within an endpoint; rename one"),
                );
            }
            if RESERVED_SOURCE_NAMES.contains(&s.name.as_str()) {
                self.report(
                    Diagnostic::new(
                        Code::ReservedName,
                        sp.key("name"),
                        format!("`{}` is reserved and cannot name a source", s.name),
                    )
                    .with_help(format!(
                        "`${}` already means something in expressions; pick another name",
                        s.name
                    )),
                );
            } else if !crate::expr::is_identifier(&s.name) {
                self.report(
                    Diagnostic::new(Code::InvalidValue, sp.key("name"), format!("source name `{}` is not an identifier", s.name))
                        .with_help("use letters, digits and `_`, starting with a letter or `_`, so `$name` can refer to it"),
                );
            }
            self.source_type(s, &sp, integrations);
        }

        // endpoint_type against the sources.
        if let Some(t) = e.endpoint_type
            && let Some(required) = t.required_source_type()
        {
            for (i, s) in e.sources.iter().enumerate() {
                if s.kind != required && s.kind != "direct" && !s.kind.is_empty() {
                    self.report(
                        Diagnostic::new(Code::EndpointType, path.key("data_sources").index(i).key("type"), format!(
                            "endpoint `{}` is declared `endpoint_type: {}` but source `{}` has type `{}`",
                            e.name, t.as_str(), s.name, s.kind
                        ))
                        .with_help("use `endpoint_type: composite` for endpoints that mix source types"),
                    );
                }
            }
        }

        // primary_source and the null-mapping rule.
        match &e.primary_source {
            Some(p) if !names.contains(&p.as_str()) => self.report(
                Diagnostic::new(Code::PrimarySource, path.key("primary_source"), format!("primary source `{p}` is not among the endpoint's sources"))
                    .with_opt_help(suggest(p, names.iter().copied(), "sources are")),
            ),
            None if e.response_mapping.is_none() && e.sources.len() != 1 => self.report(
                Diagnostic::new(Code::PrimarySource, path.clone(), "without a `response_mapping`, the endpoint needs a `primary_source`")
                    .at_key()
                    .with_help("add `primary_source:` naming the source whose result is the response, or add a `response_mapping`"),
            ),
            _ => {}
        }

        // References.
        let allowed_path_params = allowed_path_params(e);
        for f in &e.input.path {
            if !allowed_path_params.contains(&f.name) {
                self.report(
                    Diagnostic::new(
                        Code::ImpossiblePath,
                        path.key("input").key("path").key(&f.name),
                        format!(
                            "path input `{}` is not captured by the endpoint's route",
                            f.name
                        ),
                    )
                    .at_key()
                    .with_opt_help(
                        suggest(
                            &f.name,
                            allowed_path_params.iter().map(String::as_str),
                            "the route captures",
                        )
                        .or_else(|| {
                            Some(format!(
                                "the route captures: {}",
                                allowed_path_params.join(", ")
                            ))
                        }),
                    ),
                );
            }
        }
        for (i, s) in e.sources.iter().enumerate() {
            let sp = path.key("data_sources").index(i);
            for (key, t) in &s.params {
                self.template_refs(
                    e,
                    &names,
                    t,
                    &sp.key("params").key(key),
                    Site::Source(&s.name),
                    &allowed_path_params,
                );
            }
            if let Some(c) = &s.condition {
                let cp = sp.key("condition");
                self.expr_refs(
                    e,
                    &names,
                    c,
                    &cp,
                    Site::Source(&s.name),
                    &allowed_path_params,
                );
                self.boolean_position(c, &cp, "condition");
            }
            for (j, d) in s.depends_on.iter().enumerate() {
                let dp = if s.depends_on.len() == 1 {
                    sp.key("depends_on")
                } else {
                    sp.key("depends_on").index(j)
                };
                self.source_name(&names, d, &dp, Site::Source(&s.name));
            }
            for (j, t) in s.transform.iter().enumerate() {
                let tp = sp.key("transform").index(j).key(t.key());
                let site = Site::Transform(&s.name);
                match t {
                    Transform::Compute(fields) => {
                        for (k, t) in fields {
                            self.template_refs(
                                e,
                                &names,
                                t,
                                &tp.key(k),
                                site,
                                &allowed_path_params,
                            );
                        }
                    }
                    Transform::Map(t) => {
                        self.template_refs(e, &names, t, &tp, site, &allowed_path_params)
                    }
                    Transform::Filter(x) => {
                        self.expr_refs(e, &names, x, &tp, site, &allowed_path_params);
                        self.boolean_position(x, &tp, "filter");
                    }
                    Transform::Select(_)
                    | Transform::Rename(_)
                    | Transform::Defaults(_)
                    | Transform::Flatten => {}
                }
            }
        }
        if let Some(m) = &e.response_mapping {
            self.template_refs(
                e,
                &names,
                m,
                &path.key("response_mapping"),
                Site::Mapping,
                &allowed_path_params,
            );
        }
        self.cycles(e, &path);
    }

    fn source_type(&mut self, s: &SourceStep, sp: &KeyPath, integrations: &Integrations) {
        if s.kind.is_empty() {
            return; // reported as a missing key already
        }
        let host = self.options.source_types.contains(&s.kind);
        if !BUILTIN_SOURCE_TYPES.contains(&s.kind.as_str()) && !host {
            let candidates: Vec<&str> = BUILTIN_SOURCE_TYPES
                .iter()
                .copied()
                .chain(self.options.source_types.iter().map(String::as_str))
                .collect();
            self.report(
                Diagnostic::new(
                    Code::UnknownSourceType,
                    sp.key("type"),
                    format!("unknown source type `{}`", s.kind),
                )
                .with_opt_help(suggest(
                    &s.kind,
                    candidates.iter().copied(),
                    "source types are",
                )),
            );
            return;
        }
        if s.kind == "direct" {
            if s.operation.is_some() {
                self.report(
                    Diagnostic::new(
                        Code::InvalidValue,
                        sp.key("operation"),
                        "`direct` sources take no operation",
                    )
                    .at_key()
                    .with_help(
                        "a `direct` source returns its resolved params; remove `operation:`",
                    ),
                );
            }
            return;
        }
        let Some(ops) = integrations.operations_of(&s.kind) else {
            return;
        };
        let what = if s.kind == "ml" { "model" } else { "operation" };
        let file_hint = match s.kind.as_str() {
            "database" => "database.yaml",
            "api" => "integrations/api_sources.yaml",
            "feast" => "integrations/feast_config.yaml",
            _ => "integrations/ml_config.yaml",
        };
        if let Some(id) = &s.source_id {
            let ids = integrations.source_ids_of(&s.kind);
            if !ids.contains(&id.as_str()) {
                self.report(
                    Diagnostic::new(
                        Code::UnknownSourceId,
                        sp.key("source_id"),
                        format!("no `{}` integration named `{id}`", s.kind),
                    )
                    .with_opt_help(
                        suggest(id, ids.iter().copied(), "defined here are")
                            .or_else(|| Some(format!("define it in {file_hint}"))),
                    ),
                );
                return;
            }
        }
        let Some(op) = &s.operation else {
            self.report(
                Diagnostic::new(
                    Code::MissingKey,
                    sp.clone(),
                    format!("a `{}` source needs an `operation`", s.kind),
                )
                .with_help(format!(
                    "add `operation:` naming a {what} defined in {file_hint}"
                )),
            );
            return;
        };
        // For the database, `source_id` on the step selects the connection, not the operation.
        let matches: Vec<_> = ops
            .iter()
            .filter(|(name, id)| {
                name == op
                    && (s.kind == "database"
                        || s.source_id.is_none()
                        || *id == s.source_id.as_deref())
            })
            .collect();
        match matches.len() {
            0 => {
                let names: BTreeSet<&str> = ops.iter().map(|(n, _)| *n).collect();
                self.report(
                    Diagnostic::new(
                        Code::UnknownOperation,
                        sp.key("operation"),
                        format!("unknown {} {what} `{op}`", s.kind),
                    )
                    .with_opt_help(
                        suggest(
                            op,
                            names.iter().copied(),
                            &format!("{what}s defined in {file_hint} are"),
                        )
                        .or_else(|| Some(format!("define `{op}` in {file_hint}"))),
                    ),
                );
            }
            1 => {
                let service = matches[0].1;
                self.step_params(integrations, s, sp, op, service);
            }
            _ => self.report(
                Diagnostic::new(
                    Code::UnknownOperation,
                    sp.key("operation"),
                    format!(
                        "{what} `{op}` is defined by several `{}` integrations",
                        s.kind
                    ),
                )
                .with_help(format!(
                    "add `source_id:` with one of: {}",
                    matches
                        .iter()
                        .filter_map(|(_, id)| *id)
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            ),
        }
    }

    /// A step passes exactly the params its operation uses: a SQL operation's declared
    /// `params`, an API operation's `{name}` placeholders, a feature lookup's entity keys, a
    /// model's `inputs` (or one `rows` param holding a batch).
    fn step_params(
        &mut self,
        i: &Integrations,
        s: &SourceStep,
        sp: &KeyPath,
        op: &str,
        service: Option<&str>,
    ) {
        let (what, expected): (&str, Vec<&str>) = match s.kind.as_str() {
            "database" => match i.database.operations.get(op) {
                Some(o) => (
                    "operation",
                    o.params.iter().map(|p| p.name.as_str()).collect(),
                ),
                None => return,
            },
            "api" => match service
                .and_then(|id| i.api.sources.get(id))
                .and_then(|svc| svc.operations.get(op))
            {
                Some(o) => ("operation", o.placeholders().into_iter().collect()),
                None => return,
            },
            "feast" => match service
                .and_then(|id| i.feast.sources.get(id))
                .and_then(|f| f.operations.get(op))
            {
                Some(o) => (
                    "feature lookup",
                    o.entity_keys.iter().map(String::as_str).collect(),
                ),
                None => return,
            },
            "ml" => match service
                .and_then(|id| i.ml.sources.get(id))
                .and_then(|m| m.models.get(op))
            {
                // A `json` model without declared inputs posts whatever it is given.
                Some(m) if m.inputs.is_empty() => return,
                Some(_) if s.params.len() == 1 && s.params[0].0 == "rows" => return,
                Some(m) => ("model", m.inputs.iter().map(String::as_str).collect()),
                None => return,
            },
            _ => return,
        };
        for (key, _) in &s.params {
            if !expected.contains(&key.as_str()) {
                self.report(
                    Diagnostic::new(
                        Code::Parameter,
                        sp.key("params").key(key),
                        format!("{what} `{op}` has no parameter `{key}`"),
                    )
                    .at_key()
                    .with_help(
                        suggest(key, expected.iter().copied(), "its parameters are")
                            .unwrap_or_else(|| {
                                if expected.is_empty() {
                                    format!("the {what} takes no parameters; remove it")
                                } else {
                                    format!("its parameters are: {}", expected.join(", "))
                                }
                            }),
                    ),
                );
            }
        }
        let missing: Vec<&str> = expected
            .iter()
            .copied()
            .filter(|d| !s.params.iter().any(|(k, _)| k == d))
            .collect();
        if !missing.is_empty() {
            let path = if s.params.is_empty() {
                sp.clone()
            } else {
                sp.key("params")
            };
            let mut help = format!(
                "pass it under `params:`, e.g. `{}: \"$request.{}\"`",
                missing[0], missing[0]
            );
            if s.kind == "ml" {
                help.push_str(", or pass a batch as `rows: [{…}, …]`");
            }
            self.report(
                Diagnostic::new(
                    Code::Parameter,
                    path,
                    format!(
                        "{what} `{op}` needs {} {}",
                        if missing.len() == 1 {
                            "parameter"
                        } else {
                            "parameters"
                        },
                        missing
                            .iter()
                            .map(|m| format!("`{m}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
                .with_help(help),
            );
        }
    }

    fn template_refs(
        &mut self,
        e: &Endpoint,
        names: &[&str],
        t: &Template,
        path: &KeyPath,
        site: Site<'_>,
        pp: &[String],
    ) {
        let mut found = Vec::new();
        t.visit_exprs(&mut Vec::new(), &mut |steps, x| {
            found.push((steps.to_vec(), x.clone()))
        });
        for (steps, x) in found {
            self.expr_refs(e, names, &x, &path.join(&steps), site, pp);
        }
    }

    fn expr_refs(
        &mut self,
        e: &Endpoint,
        names: &[&str],
        x: &Expr,
        path: &KeyPath,
        site: Site<'_>,
        pp: &[String],
    ) {
        let mut refs = Vec::new();
        x.visit_references(&mut |r| refs.push(r.clone()));
        for r in refs {
            match &r.root {
                Root::Source(name) => {
                    if self.source_name(names, name, path, site) {
                        self.result_shape(e, name, &r.path, path);
                    }
                }
                Root::Item => {
                    if !matches!(site, Site::Transform(_)) {
                        self.report(
                            Diagnostic::new(Code::NotYetAvailable, path.clone(), "`$item` only exists inside a `transform` step")
                                .with_help("refer to a source by name (`$orders`), or move this into the source's `transform:`"),
                        );
                    }
                }
                Root::Request(RequestPart::PathParams) => {
                    if let Some(name) = r.first_field()
                        && !pp.iter().any(|a| a == name)
                    {
                        self.report(
                            Diagnostic::new(Code::ImpossiblePath, path.clone(), format!("the route never captures a path param `{name}`"))
                                .with_opt_help(
                                    suggest(name, pp.iter().map(String::as_str), "captured params are")
                                        .or_else(|| Some("add `{name}` to the endpoint's `path`, or read it from the query".into())),
                                ),
                        );
                    }
                }
                Root::Request(_) => {}
            }
        }
        self.literal_types(x, path);
    }

    /// Checks a referenced source name; returns whether it names an available source.
    fn source_name(&mut self, names: &[&str], name: &str, path: &KeyPath, site: Site<'_>) -> bool {
        if !names.contains(&name) {
            self.report(
                Diagnostic::new(
                    Code::UnknownSource,
                    path.clone(),
                    format!("unknown source `{name}`"),
                )
                .with_opt_help(suggest(
                    name,
                    names.iter().copied(),
                    "sources of this endpoint are",
                )),
            );
            return false;
        }
        match site {
            Site::Source(own) if own == name => {
                self.report(
                    Diagnostic::new(Code::NotYetAvailable, path.clone(), format!("source `{name}` refers to its own result, which cannot exist before it runs"))
                        .with_help("read the value from the request or from another source"),
                );
                false
            }
            Site::Transform(own) if own == name => {
                self.report(
                    Diagnostic::new(
                        Code::NotYetAvailable,
                        path.clone(),
                        format!("`${name}` inside its own transform is the result being built"),
                    )
                    .with_help("use `$item` for the record the step is applied to"),
                );
                false
            }
            _ => true,
        }
    }

    /// A path into a source's result that can never resolve, for results whose shape is known.
    fn result_shape(&mut self, e: &Endpoint, name: &str, segs: &[Segment], path: &KeyPath) {
        let Some(s) = e.source(name) else { return };
        if s.kind != "database"
            || !s.transform.is_empty()
            || !matches!(
                s.on_error,
                crate::plan::OnError::Fail | crate::plan::OnError::Skip
            )
        {
            return;
        }
        let Some(op) = s
            .operation
            .as_ref()
            .and_then(|o| self.plan.integrations_for(e).database.operations.get(o))
        else {
            return;
        };
        let problem = match (op.return_type, segs.first()) {
            (ReturnType::Value, Some(_)) => Some((
                "returns a single value (`return_type: value`), which has no fields",
                "refer to it as a whole: `$".to_owned() + name + "`",
            )),
            (ReturnType::List, Some(Segment::Field(_))) => Some((
                "returns a list (`return_type: list`), which has no fields",
                format!("pick a row (`${name}[0].field`) or project (`${name}[*].field`)"),
            )),
            (ReturnType::Single, Some(Segment::Index(_) | Segment::All)) => Some((
                "returns one row (`return_type: single`), which is not a list",
                format!("use a field: `${name}.field`"),
            )),
            _ => None,
        };
        if let Some((what, help)) = problem {
            self.report(
                Diagnostic::new(
                    Code::ImpossiblePath,
                    path.clone(),
                    format!("source `{name}` {what}"),
                )
                .with_help(help),
            );
        }
    }

    /// Operators applied to literals of the wrong type, which would always give null.
    fn literal_types(&mut self, x: &Expr, path: &KeyPath) {
        let mut bad = Vec::new();
        x.visit(&mut |sub| {
            let message = match sub {
                Expr::Binary(op, a, b) => match (&**a, &**b) {
                    (Expr::Literal(l), Expr::Literal(r))
                        if !matches!(
                            op,
                            BinaryOp::And | BinaryOp::Or | BinaryOp::Eq | BinaryOp::Ne
                        ) =>
                    {
                        crate::expr::binary_literal_error(*op, l, r)
                    }
                    _ => None,
                },
                Expr::Neg(a) => match &**a {
                    Expr::Literal(l) if !l.is_number() => {
                        Some(format!("cannot negate {}", describe(l)))
                    }
                    _ => None,
                },
                _ => None,
            };
            bad.extend(message);
        });
        for m in bad {
            self.report(
                Diagnostic::new(Code::LiteralType, path.clone(), m)
                    .with_help("operands of arithmetic are numbers (`+` also joins strings); comparisons need two numbers or two strings"),
            );
        }
    }

    fn boolean_position(&mut self, x: &Expr, path: &KeyPath, what: &str) {
        if let Expr::Literal(v) = x
            && !v.is_boolean()
        {
            self.report(
                Diagnostic::new(
                    Code::LiteralType,
                    path.clone(),
                    format!(
                        "a {what} must be a boolean expression, found {}",
                        describe(v)
                    ),
                )
                .with_help("write a comparison such as `$profile.status == 'active'`, or `true`"),
            );
        }
    }

    fn cycles(&mut self, e: &Endpoint, path: &KeyPath) {
        let deps = dependencies(e);
        // Iterative DFS with colours; report each cycle once, from its first source.
        let n = e.sources.len();
        let mut colour = vec![0u8; n];
        let mut reported = BTreeSet::new();
        for start in 0..n {
            if colour[start] != 0 {
                continue;
            }
            let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
            colour[start] = 1;
            while let Some(&mut (node, ref mut next)) = stack.last_mut() {
                if let Some(&dep) = deps[node].get(*next) {
                    *next += 1;
                    match colour[dep] {
                        0 => {
                            colour[dep] = 1;
                            stack.push((dep, 0));
                        }
                        1 => {
                            let pos = stack.iter().position(|(n, _)| *n == dep).unwrap_or(0);
                            let mut members: Vec<usize> =
                                stack[pos..].iter().map(|(n, _)| *n).collect();
                            let key: BTreeSet<usize> = members.iter().copied().collect();
                            if reported.insert(key) {
                                members.push(dep);
                                // Dependencies point backwards; show the order data flows in.
                                members.reverse();
                                let chain: Vec<&str> = members
                                    .iter()
                                    .map(|&i| e.sources[i].name.as_str())
                                    .collect();
                                let first = members[0];
                                self.report(
                                    Diagnostic::new(Code::Cycle, path.key("data_sources").index(first).key("name"), format!(
                                        "sources depend on each other in a cycle: {}",
                                        chain.join(" → ")
                                    ))
                                    .with_help("break the cycle: one of these sources must not read the other's result"),
                                );
                            }
                        }
                        _ => {}
                    }
                } else {
                    colour[node] = 2;
                    stack.pop();
                }
            }
        }
    }
}

/// The path params a reference may read: the route's captures.
fn allowed_path_params(e: &Endpoint) -> Vec<String> {
    match &e.path {
        Some(p) => p.params().map(str::to_owned).collect(),
        None => {
            let id = crate::plan::id_param_of(e);
            if id == crate::plan::ENTITY_ID {
                vec![id]
            } else {
                vec![id, crate::plan::ENTITY_ID.to_owned()]
            }
        }
    }
}

/// For each source (by index), the indices of the sources it needs first: those its params,
/// condition and transform steps refer to, and its `depends_on`. Unknown names are ignored
/// (they are reported separately).
pub(crate) fn dependencies(e: &Endpoint) -> Vec<Vec<usize>> {
    let index: HashMap<&str, usize> = e
        .sources
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    e.sources
        .iter()
        .enumerate()
        .map(|(me, s)| {
            let mut deps = BTreeSet::new();
            let mut add = |name: &str| {
                if let Some(&i) = index.get(name)
                    && i != me
                {
                    deps.insert(i);
                }
            };
            for (_, t) in &s.params {
                t.visit_references(&mut |r| r.source().into_iter().for_each(&mut add));
            }
            if let Some(c) = &s.condition {
                c.visit_references(&mut |r| r.source().into_iter().for_each(&mut add));
            }
            for t in &s.transform {
                match t {
                    Transform::Compute(fields) => fields.iter().for_each(|(_, t)| {
                        t.visit_references(&mut |r| r.source().into_iter().for_each(&mut add))
                    }),
                    Transform::Map(t) => {
                        t.visit_references(&mut |r| r.source().into_iter().for_each(&mut add))
                    }
                    Transform::Filter(x) => {
                        x.visit_references(&mut |r| r.source().into_iter().for_each(&mut add))
                    }
                    _ => {}
                }
            }
            for d in &s.depends_on {
                add(d);
            }
            deps.into_iter().collect()
        })
        .collect()
}
