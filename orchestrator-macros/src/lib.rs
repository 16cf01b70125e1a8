//! `orchestrate!`: endpoint definitions checked at compile time, by the same loader and
//! validator that check YAML at run time, expanding to code that builds an
//! `api_orchestrator::ValidPlan`.
//!
//! Use it through the main crate, which re-exports it behind its `macros` feature
//! (`api-orchestrator = { version = "0.2", features = ["macros"] }`): the expansion refers to
//! `::api_orchestrator`. The plan is not validated again when the program starts.
//!
//! Two forms. **Rust tokens**, with the YAML schema's keys:
//!
//! ```ignore
//! let plan: api_orchestrator::ValidPlan = api_orchestrator::orchestrate! {
//!     config: "config",          // optional: config.yaml, database.yaml, integrations/ (read at compile time)
//!     domain: customers,         // optional: the domain of default routes (`/customers/<endpoint>`)
//!     endpoints: {
//!         get_customer_360: {
//!             description: "Get comprehensive customer view",
//!             endpoint_type: composite,
//!             data_sources: [
//!                 { name: profile, type: database, operation: get_customer,
//!                   params: { customer_id: $request.customer_id } },
//!                 { name: features, type: feast, operation: get_customer_features,
//!                   params: { customer_id: $request.customer_id } },
//!             ],
//!             response_mapping: {
//!                 id: $profile.customer_id,
//!                 name: $profile.name,
//!                 lifetime_value: $features.customer_lifetime_value || 0,
//!             },
//!         },
//!     },
//! };
//! ```
//!
//! Values are `{ key: value }` objects, `[…]` lists, string / number / `true` / `false` /
//! `null` literals, bare names (`database`, `GET`), and expressions: `$` followed by anything
//! up to the next `,`, exactly as inside a YAML string (string literals in expressions are
//! written `"…"`). `source_types: [my_type, …]` accepts host-registered source types; an
//! entry `{name: vector_db, keys: [index], required: [url]}` also reads and checks that
//! type's `integrations/vector_db.yaml` in the `config:` directory, as the loader does for a
//! factory that declares it (`SourceFactory::integration`).
//!
//! **YAML at compile time**: `orchestrate!(dir = "config")` loads a whole config directory,
//! `orchestrate!(file = "config/domains/customers.yaml")` one domain file of it (the rest of the
//! directory still supplies settings and integrations); `, source_types = [...]` after the
//! path takes host source types as in the token form. Paths (here and in `config:`) are
//! relative to `CARGO_MANIFEST_DIR`, or, when nothing is there, to the calling file's
//! directory.
//! A change to any YAML file of the directory rebuilds the crate.
//!
//! **The environment of the start-up, as sqlx does it**: `${env:NAME}` references are
//! resolved at compile time only to check the config (so the compiler's environment must
//! define them, or they need a `:-default`); when a config file reads the environment or
//! names a SQLite database, the plan carries the directory's files, and
//! `OrchestratorBuilder::build` reads its settings and integrations again with the process's
//! environment (the builder's `env`): URLs, tokens and connection strings are the
//! deployment's, never frozen into the binary. Relative SQLite paths then resolve against the
//! directory as written in the macro, from the working directory — or where it was at
//! compile time when no such directory exists at start-up. A config that does not load then
//! is `BuildError::StartUp`.
//!
//! **Typed handles**: either form may start with `mod name;` (`pub mod name;`; before
//! `dir = …`, `mod name,`). The macro then expands to a module instead of an expression:
//! `name::plan()` builds the plan, and `name::endpoints` holds a handle per endpoint (a unit
//! struct named like it, `name::endpoints::get_customer_360`) for `Orchestrator::execute`.
//! An endpoint that declares `input:` takes the struct of those inputs
//! (`GetCustomer360Input { customer_id: i64 }`: `string` → `String`, `integer` → `i64`,
//! `number` → `f64`, `boolean` → `bool`, `object` / `array` → JSON, optional inputs in
//! `Option`; names made Rust names, `dry-run` → `dry_run`); the others take a
//! `RequestContext`. Calling an endpoint with another's input does not compile.
//!
//! ```ignore
//! api_orchestrator::orchestrate!(mod customers, dir = "config");
//!
//! let o = Orchestrator::builder().build(customers::plan())?;
//! let input = customers::endpoints::GetCustomer360Input { customer_id: 42 };
//! let out = o.execute(customers::endpoints::get_customer_360, input).await?;
//! ```
//!
//! Every problem is a compile error on the offending token (the unknown source name, the
//! duplicate key, the bad literal), all at once; YAML problems show their file:line:col.
//!
//! **Checked against your sources, offline.** When the config directory (`dir =`, or
//! `config:` of the token form) has a committed schema snapshot,
//! `.orchestrator/schema.json` (written by `check --prepare`, see
//! `api_orchestrator::snapshot`), the macro reads it like sqlx's `SQLX_OFFLINE` data: a field a
//! source's result does not have, a path into a scalar, a comparison of a number with a string
//! or a model input fed the wrong type is a compile error on the token, and no database or
//! server is contacted at build time. Editing the snapshot rebuilds the crate.

mod emit;
mod handles;
mod tokens;

use std::path::{Path, PathBuf};

use api_orchestrator_core::config::{ConfigFiles, IntegrationFile, LoadError, Loader};
use api_orchestrator_core::diagnostic::{Diagnostic, KeyPath, Target};
use api_orchestrator_core::expr::PathStep;
use api_orchestrator_core::macro_support::{
    did_you_mean, endpoints_from_value, without_follow_ons,
};
use api_orchestrator_core::plan::Plan;
use api_orchestrator_core::validate::{ValidateOptions, validate};
use proc_macro2::{Span, TokenStream, TokenTree};
use quote::quote;
use serde_json::{Value, json};

use emit::Emit as _;
use tokens::{Kind, Node};

/// Builds an `api_orchestrator::ValidPlan` from endpoint definitions checked at compile time. See
/// the crate documentation for the two forms.
#[proc_macro]
pub fn orchestrate(input: proc_macro::TokenStream) -> proc_macro::TokenStream {
    expand(input.into()).into()
}

fn expand(input: TokenStream) -> TokenStream {
    let (module, input) = match module_form(input) {
        Ok(split) => split,
        Err(e) => return e.to_compile_error(),
    };
    let result = match file_form(&input) {
        Some(form) => form.and_then(|(kind, lit, host)| from_yaml(&kind, &lit, &host)),
        None => from_tokens(input),
    };
    let result = result.and_then(|expanded| {
        let plan = expanded.expression();
        match &module {
            None => Ok(plan),
            Some(m) => handles::module(m, &expanded.plan, plan),
        }
    });
    match (result, module) {
        (Ok(code), _) => code,
        // A harmless value of the right type after the errors, so nothing else fails.
        (Err(e), None) => {
            let errors = e.to_compile_error();
            quote!({ #errors ::api_orchestrator::ValidPlan::default() })
        }
        (Err(e), Some(m)) => {
            let errors = e.to_compile_error();
            let (vis, name) = (&m.vis, &m.name);
            quote!(#errors #vis mod #name {
                pub fn plan() -> ::api_orchestrator::ValidPlan { ::api_orchestrator::ValidPlan::default() }
                pub mod endpoints {}
            })
        }
    }
}

/// A checked plan and what its expansion carries beside it (the files it tracks, the
/// warnings).
struct Expanded {
    plan: Plan,
    extras: TokenStream,
    /// The config directory (as written, and where it was found) and its files, when the
    /// settings or integrations are to be read again at start-up.
    start_up: Option<StartUp>,
}

/// A config read again at start-up (see `ValidPlan::start_up_config`).
struct StartUp {
    written: String,
    found: PathBuf,
    files: Vec<(String, String)>,
}

impl StartUp {
    /// The config at `found` (written `written`) when a file of it reads the environment or
    /// names a SQLite database: then the values of the start-up count, not the compiler's.
    fn of(written: &str, found: &Path, files: &ConfigFiles) -> Option<Self> {
        let depends = files.iter().any(|(rel, text)| {
            !rel.starts_with(".orchestrator/")
                && (text.contains("${env:") || text.contains("sqlite:"))
        });
        depends.then(|| Self {
            written: written.to_owned(),
            found: found.to_owned(),
            files: files
                .iter()
                .map(|(rel, text)| (rel.to_owned(), text.to_owned()))
                .collect(),
        })
    }
}

impl Expanded {
    /// The expression that builds the plan.
    fn expression(&self) -> TokenStream {
        let (extras, code) = (&self.extras, self.plan.emit());
        match &self.start_up {
            None => quote!({ #extras ::api_orchestrator::__private::checked(#code) }),
            Some(s) => {
                let (written, found) = (&s.written, s.found.display().to_string());
                let (rels, texts): (Vec<&String>, Vec<&String>) =
                    s.files.iter().map(|(r, t)| (r, t)).unzip();
                quote!({
                    #extras
                    ::api_orchestrator::__private::at_start_up(
                        #code,
                        (#written, #found),
                        &[#((#rels, #texts)),*],
                    )
                })
            }
        }
    }
}

/// The item form's head, `[pub] mod name;` (or `,`), and the rest of the input.
fn module_form(input: TokenStream) -> syn::Result<(Option<handles::Module>, TokenStream)> {
    let tokens: Vec<TokenTree> = input.clone().into_iter().collect();
    let is =
        |t: Option<&TokenTree>, word: &str| matches!(t, Some(TokenTree::Ident(i)) if i == word);
    let at = if is(tokens.first(), "mod") {
        0
    } else if is(tokens.first(), "pub") && is(tokens.get(1), "mod") {
        1
    } else {
        return Ok((None, input));
    };
    let vis = if at == 1 {
        quote!(pub)
    } else {
        TokenStream::new()
    };
    let Some(TokenTree::Ident(name)) = tokens.get(at + 1) else {
        return Err(syn::Error::new(
            tokens[at].span(),
            "expected a module name: `mod shop;`",
        ));
    };
    match tokens.get(at + 2) {
        Some(TokenTree::Punct(p)) if matches!(p.as_char(), ';' | ',') => {}
        other => {
            return Err(syn::Error::new(
                other.map_or(name.span(), TokenTree::span),
                "expected `;` after `mod name` (or `,` before `dir = …`)",
            ));
        }
    }
    let rest = tokens[at + 3..].iter().cloned().collect();
    Ok((
        Some(handles::Module {
            vis,
            name: name.clone(),
        }),
        rest,
    ))
}

/// `dir = "…"` or `file = "…"`, optionally followed by `, source_types = [...]`.
fn file_form(input: &TokenStream) -> Option<syn::Result<(String, syn::LitStr, HostTypes)>> {
    let tokens: Vec<TokenTree> = input.clone().into_iter().collect();
    let TokenTree::Ident(kind) = tokens.first()? else {
        return None;
    };
    let is_eq = matches!(tokens.get(1), Some(TokenTree::Punct(p)) if p.as_char() == '=');
    if !is_eq {
        return None;
    }
    let kind_name = kind.to_string();
    Some((|| {
        if kind_name != "dir" && kind_name != "file" {
            return Err(syn::Error::new(
                kind.span(),
                "expected `dir = \"…\"` or `file = \"…\"`",
            ));
        }
        let lit: syn::LitStr = match tokens.get(2) {
            Some(t) => syn::parse2(t.clone().into())?,
            None => {
                return Err(syn::Error::new(
                    kind.span(),
                    "expected a path string after `=`",
                ));
            }
        };
        let mut host = HostTypes::default();
        match tokens.get(3..) {
            None | Some([]) => {}
            Some(
                [
                    TokenTree::Punct(comma),
                    TokenTree::Ident(key),
                    TokenTree::Punct(eq),
                    list,
                ],
            ) if comma.as_char() == ',' && key == "source_types" && eq.as_char() == '=' => {
                let field = tokens::object(quote!(source_types: #list), list.span())?;
                if let Kind::Object(fields) = &field.kind
                    && let Some((_, _, node)) = fields.first()
                {
                    host = host_types(node)?;
                }
            }
            Some([extra, ..]) => {
                return Err(syn::Error::new(
                    extra.span(),
                    "unexpected tokens after the path: expected nothing or `, source_types = [...]`",
                ));
            }
        }
        Ok((kind_name, lit, host))
    })())
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into()))
}

/// `rel` against `CARGO_MANIFEST_DIR`; when nothing is there, against the directory of the file
/// that calls the macro (as `include_str!` resolves), which also serves tools that compile a
/// file outside its crate.
fn resolve(rel: &str) -> PathBuf {
    let from_manifest = manifest_dir().join(rel);
    if from_manifest.exists() {
        return from_manifest;
    }
    Span::call_site()
        .local_file()
        .and_then(|f| f.parent().map(|d| d.join(rel)))
        .filter(|p| p.exists())
        .unwrap_or(from_manifest)
}

/// `include_bytes!` of every YAML file under `dir` and of its schema snapshot, so editing one
/// rebuilds the crate.
fn track(dir: &Path) -> TokenStream {
    fn walk(dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out);
            } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
                out.push(p.display().to_string());
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, &mut files);
    let snapshot = dir.join(api_orchestrator_core::snapshot::SNAPSHOT_FILE);
    if snapshot.is_file() {
        files.push(snapshot.display().to_string());
    }
    quote!(#(const _: &[u8] = ::core::include_bytes!(#files);)*)
}

/// Compiler warnings for diagnostics of warning severity: stable Rust has no warning API for
/// proc macros, so each becomes the use of a `#[deprecated]` constant whose note is the message,
/// spanned at the token (or the config path) the warning is about.
fn warnings<'d>(
    diags: impl IntoIterator<Item = &'d Diagnostic>,
    span: impl Fn(&Diagnostic) -> Span,
) -> TokenStream {
    let uses = diags.into_iter().filter(|d| !d.is_error()).map(|d| {
        let note = format!("orchestrate! warning {}", message(d));
        let name = syn::Ident::new("orchestrate_warning", span(d));
        quote!({
            #[deprecated(note = #note)]
            #[allow(non_upper_case_globals)]
            const orchestrate_warning: () = ();
            let () = #name;
        })
    });
    quote!(#(#uses)*)
}

/// The host source types a macro accepts (`source_types:`): bare names, and the types that
/// own an integration file (`{name: vector_db, keys: [index], required: [url]}`), whose file
/// in the config directory is read and checked like the loader does at run time.
#[derive(Default)]
struct HostTypes {
    names: Vec<String>,
    files: Vec<IntegrationFile>,
}

impl HostTypes {
    fn kinds(&self) -> impl Iterator<Item = String> + '_ {
        self.names
            .iter()
            .cloned()
            .chain(self.files.iter().map(|f| f.kind().to_owned()))
    }
}

/// `[clock, {name: vector_db, keys: [index], required: [url]}]`.
fn host_types(node: &Node) -> syn::Result<HostTypes> {
    let Kind::Array(items) = &node.kind else {
        return Err(syn::Error::new(
            node.span,
            "expected a list of source types",
        ));
    };
    let names = |n: &Node| -> syn::Result<Vec<String>> {
        let Kind::Array(items) = &n.kind else {
            return Err(syn::Error::new(n.span, "expected a list of key names"));
        };
        items
            .iter()
            .map(|i| match &i.kind {
                Kind::Scalar(Value::String(s)) => Ok(s.clone()),
                _ => Err(syn::Error::new(i.span, "expected a key name")),
            })
            .collect()
    };
    let mut out = HostTypes::default();
    for item in items {
        match &item.kind {
            Kind::Scalar(Value::String(s)) => out.names.push(s.clone()),
            Kind::Object(fields) => {
                let mut file = None;
                let (mut keys, mut required) = (Vec::new(), Vec::new());
                for (key, key_span, value) in fields {
                    match (key.as_str(), &value.kind) {
                        ("name", Kind::Scalar(Value::String(s))) => {
                            file = Some(IntegrationFile::new(s.clone()))
                        }
                        ("keys", _) => keys = names(value)?,
                        ("required", _) => required = names(value)?,
                        _ => {
                            return Err(syn::Error::new(
                                *key_span,
                                "expected `name`, `keys` or `required`",
                            ));
                        }
                    }
                }
                let Some(mut file) = file else {
                    return Err(syn::Error::new(item.span, "missing `name: <source type>`"));
                };
                for k in keys {
                    file = file.key(k);
                }
                for k in required {
                    file = file.required(k);
                }
                out.files.push(file);
            }
            _ => {
                return Err(syn::Error::new(
                    item.span,
                    "expected a source type name or `{name, keys, required}`",
                ));
            }
        }
    }
    Ok(out)
}

fn load(dir: &Path, span: Span, host: &HostTypes) -> syn::Result<(Plan, TokenStream, ConfigFiles)> {
    let mut loader = Loader::new();
    for t in &host.names {
        loader = loader.with_source_type(t.clone());
    }
    for f in &host.files {
        loader = loader.with_integration(f.clone());
    }
    let failed = |e: LoadError| match e {
        LoadError::Invalid(d) => {
            syn::Error::new(span, format!("invalid config `{}`:\n{d}", dir.display()))
        }
        other => syn::Error::new(
            span,
            format!("cannot read config `{}`: {other}", dir.display()),
        ),
    };
    let files = loader.read_dir(dir).map_err(failed)?;
    let plan = loader.load(&files).map_err(failed)?;
    let w = warnings(plan.warnings().iter(), |_| span);
    Ok((plan.into_plan(), w, files))
}

fn from_yaml(kind: &str, lit: &syn::LitStr, host: &HostTypes) -> syn::Result<Expanded> {
    let path = resolve(&lit.value());
    let (dir, only) = if kind == "dir" {
        (path.clone(), None)
    } else {
        // `config/domains/customers.yaml` → the config dir is `config`.
        let dir = path
            .parent()
            .and_then(Path::parent)
            .filter(|_| {
                path.parent()
                    .and_then(Path::file_name)
                    .is_some_and(|n| n == "domains")
            })
            .ok_or_else(|| {
                syn::Error::new(
                    lit.span(),
                    "`file` must name a domain file: `<config dir>/domains/<domain>.yaml`",
                )
            })?;
        let rel = path
            .strip_prefix(dir)
            .unwrap_or(&path)
            .display()
            .to_string();
        (dir.to_owned(), Some(rel))
    };
    let (mut plan, warned, files) = load(&dir, lit.span(), host)?;
    // The directory as written: the path itself, or the one above `domains/` in it.
    let written = lit.value();
    let written = match &only {
        None => written,
        Some(_) => Path::new(&written)
            .parent()
            .and_then(Path::parent)
            .map(|d| d.display().to_string())
            .unwrap_or_default(),
    };
    let start_up = StartUp::of(&written, &dir, &files);
    if let Some(file) = &only {
        plan.endpoints
            .retain(|e| e.origin.file.as_deref() == Some(file.as_str()));
        if plan.endpoints.is_empty() {
            return Err(syn::Error::new(
                lit.span(),
                format!("`{file}` defines no endpoints"),
            ));
        }
    }
    let tracked = track(&dir);
    Ok(Expanded {
        plan,
        extras: quote!(#tracked #warned),
        start_up,
    })
}

fn from_tokens(input: TokenStream) -> syn::Result<Expanded> {
    let root = tokens::object(input, Span::call_site())?;
    let Kind::Object(fields) = &root.kind else {
        unreachable!("object() returns an object")
    };
    let mut config = None;
    let mut domain = None;
    let mut source_types = HostTypes::default();
    let mut endpoints = None;
    for (key, key_span, node) in fields {
        match (key.as_str(), &node.kind) {
            ("config", Kind::Scalar(Value::String(s))) => config = Some((s.clone(), node.span)),
            ("domain", Kind::Scalar(Value::String(s))) => domain = Some(s.clone()),
            ("source_types", Kind::Array(_)) => source_types = host_types(node)?,
            ("endpoints", Kind::Object(_)) => endpoints = Some(node),
            ("config", _) => {
                return Err(syn::Error::new(
                    node.span,
                    "expected a config directory path: `config: \"config\"`",
                ));
            }
            ("domain", _) => {
                return Err(syn::Error::new(
                    node.span,
                    "expected a domain name: `domain: customers`",
                ));
            }
            ("source_types", _) => {
                return Err(syn::Error::new(
                    node.span,
                    "expected a list: `source_types: [my_type, {name: other, keys: [url]}]`",
                ));
            }
            ("endpoints", _) => {
                return Err(syn::Error::new(
                    node.span,
                    "expected `endpoints: { name: { … }, … }`",
                ));
            }
            (other, _) => {
                let help = did_you_mean(other, ["config", "domain", "source_types", "endpoints"])
                    .map(|s| format!("; did you mean `{s}`?"))
                    .unwrap_or_default();
                return Err(syn::Error::new(
                    *key_span,
                    format!(
                        "unknown key `{other}`: expected `config`, `domain`, `source_types` or `endpoints`{help}"
                    ),
                ));
            }
        }
    }
    let Some(endpoints) = endpoints else {
        return Err(syn::Error::new(
            Span::call_site(),
            "missing `endpoints: { … }`",
        ));
    };

    let (mut plan, config_warnings, start_up) = match &config {
        Some((dir, span)) => {
            let found = resolve(dir);
            let (mut plan, warned, files) = load(&found, *span, &source_types)?;
            plan.endpoints.clear();
            (plan, warned, StartUp::of(dir, &found, &files))
        }
        None => (Plan::default(), TokenStream::new(), None),
    };
    let doc = json!({ "endpoints": endpoints.to_json() });
    let (parsed, reading) = endpoints_from_value(domain.as_deref(), None, &doc);
    plan.endpoints = parsed;
    let options = source_types.kinds().fold(
        ValidateOptions::default(),
        ValidateOptions::with_source_type,
    );
    let found = without_follow_ons(&reading, validate(&plan, &options));
    let diagnostics: Vec<Diagnostic> = reading.into_iter().chain(found).collect();
    let config_span = config.as_ref().map(|c| c.1);
    let warned = warnings(&diagnostics, |d| span_of(&root, d, config_span));
    if let Some(error) = diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| syn::Error::new(span_of(&root, d, config.as_ref().map(|c| c.1)), message(d)))
        .reduce(|mut all, e| {
            all.combine(e);
            all
        })
    {
        return Err(error);
    }
    let tracked = config
        .as_ref()
        .map(|(dir, _)| track(&resolve(dir)))
        .unwrap_or_default();
    Ok(Expanded {
        plan,
        extras: quote!(#tracked #config_warnings #warned),
        start_up,
    })
}

/// `error[code]: message` plus the help line.
fn message(d: &Diagnostic) -> String {
    let mut m = format!("[{}] {}", d.code.as_str(), d.message);
    if let Some(help) = &d.help {
        m.push_str("\n  help: ");
        m.push_str(help);
    }
    if let Some(file) = &d.file {
        m.push_str(&format!("\n  in: {file}"));
    }
    m
}

/// The token a diagnostic is about: the deepest node its path reaches (a scalar for paths
/// below it), its key when the key is at fault, the token at the offset inside an expression.
fn span_of(root: &Node, d: &Diagnostic, config: Option<Span>) -> Span {
    if d.file.is_some() {
        // About a file of the config directory, not the tokens.
        return config.unwrap_or_else(Span::call_site);
    }
    let (node, key_span, complete) = walk(root, &d.path);
    match d.target {
        Target::Key if complete => key_span.unwrap_or(node.span),
        Target::Value { offset } if complete => node.span_at(offset),
        _ if complete => node.span,
        // The path goes past the tokens (a missing key): point at the deepest key found.
        _ => key_span.unwrap_or(node.span),
    }
}

fn walk<'a>(root: &'a Node, path: &KeyPath) -> (&'a Node, Option<Span>, bool) {
    let mut node = root;
    let mut key_span = None;
    for step in path.steps() {
        let next = match (&node.kind, step) {
            (Kind::Object(fields), PathStep::Key(k)) => fields
                .iter()
                .find(|(name, _, _)| name == k)
                .map(|(_, ks, n)| (n, Some(*ks))),
            (Kind::Array(items), PathStep::Index(i)) => items.get(*i).map(|n| (n, None)),
            _ => None,
        };
        match next {
            Some((n, ks)) => {
                node = n;
                key_span = ks.or(key_span);
            }
            // Below a scalar is a short form's part (`sort: "$x"` for `sort: {by: "$x"}`):
            // the scalar itself, offsets counting into its text.
            None if matches!(node.kind, Kind::Scalar(_) | Kind::Expr(..)) => break,
            None => return (node, key_span, false),
        }
    }
    (node, key_span, true)
}
