//! Declarative API orchestration: endpoints declared in YAML (loaded at run time, reloadable)
//! or in Rust tokens with [`orchestrate!`](macro@crate::orchestrate) (checked at compile time)
//! become one validated plan ([`ValidPlan`]); the [`engine`] runs each endpoint's data sources
//! concurrently where the data allows, maps the results into one JSON document and records an
//! execution [`Trace`](engine::Trace). The [`web`] module mounts the plans into an axum or
//! actix-web application beside the host's own routes.
//!
//! ```toml
//! [dependencies]
//! api-orchestrator = { version = "0.2", features = ["axum", "macros"] }
//! ```
//!
//! # Mounting plans in axum
//!
//! ```no_run
//! # #[cfg(all(feature = "axum", feature = "macros"))]
//! # async fn mount() -> Result<(), Box<dyn std::error::Error>> {
//! use api_orchestrator::web::Api;
//! use api_orchestrator::{Orchestrator, orchestrate};
//!
//! // Endpoints from a config directory (reloaded by `Orchestrator::reload` or `watch`)…
//! let from_yaml = Orchestrator::from_dir("config")?;
//! // …or written in Rust, checked when this crate compiles.
//! let from_rust = Orchestrator::builder().build(orchestrate! {
//!     domain: greetings,
//!     endpoints: {
//!         hello: {
//!             data_sources: [ { name: it, type: direct, params: { name: $request.name } } ],
//!             response_mapping: { greeting: $= "Hello, " + $it.name },
//!         },
//!     },
//! })?;
//!
//! let app = axum::Router::new()
//!     .route("/health", axum::routing::get(|| async { "ok" }))
//!     .nest_service("/api", Api::new(&from_yaml))  // Api is a tower::Service
//!     .nest_service("/rust", Api::new(&from_rust)); // GET /rust/greetings/hello?name=Ada
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! # Running plans without HTTP
//!
//! ```no_run
//! use api_orchestrator::{Orchestrator, RequestContext};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let orchestrator = Orchestrator::from_dir("config")?;
//! let request = RequestContext::new().with_path_param("customer_id", 42);
//! let out = orchestrator.execute("get_customer_360", request).await?;
//! println!("{}", out.response);
//! for source in &out.trace.sources {
//!     println!("{} {:?} in {:?}", source.name, source.outcome, source.duration);
//! }
//! # Ok(()) }
//! ```
//!
//! A config error prints as `check` prints it, `Debug` included, so `main` returning
//! `Result<(), Box<dyn Error>>` shows `error[unknown-key] … --> domains/shop.yaml:6:14`.
//!
//! # Modules
//!
//! - [`docs::config`]: the config reference (every key of every file, the expression language,
//!   the diagnostics).
//! - [`config`]: the config directory (`config.yaml`, `database.yaml`, `domains/`,
//!   `integrations/`) → [`ValidPlan`], with every problem reported at once as a [`Diagnostic`].
//! - [`plan`]: the plain-data model both front-ends produce.
//! - [`validate`]: the rules, shared by the loader and the `orchestrate!` macro.
//! - [`expr`]: the `$request.x` / `$source.path` expression language.
//! - [`engine`], [`source`] (feature `runtime`): execution, and the [`DataSource`](source::DataSource)
//!   trait with the built-in source types: `database` (with a SQL driver feature), `api`,
//!   `feast` and `ml` (feature `http`), `direct`.
//! - [`web`] (features `axum`, `actix`): the plans as HTTP endpoints inside a host application.
//! - [`telemetry`] (features `otel`, `metrics`): traces and metrics for operators
//!   ([`docs::operating`]).
//!
//! # Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `runtime` | yes | the engine, the source registry and [`Orchestrator`] (tokio, futures) |
//! | `sqlite` | yes | `type: database` on SQLite (bundled) |
//! | `postgres` | no | `type: database` on PostgreSQL |
//! | `mysql` | no | `type: database` on MySQL and MariaDB |
//! | `http` | yes | `type: api`, `feast` and `ml` over HTTP (reqwest, rustls) |
//! | `macros` | no | [`orchestrate!`](macro@crate::orchestrate): plans in Rust tokens, checked at compile time |
//! | `axum` | no | [`web`]: the plans as a tower service for axum's `Router::nest_service` |
//! | `actix` | no | [`web::actix`]: mount the plans in an actix-web app |
//! | `openapi` | no | `/openapi.json` and an offline `/docs` page |
//! | `reload` | no | `Orchestrator::watch`: reload the config directory when it changes |
//! | `redis` | no | `cache: {store: redis}`: cached answers shared by replicas in Redis |
//! | `otel` | no | [`telemetry::Tracing`]: OpenTelemetry spans per request, source and attempt, exported over OTLP |
//! | `metrics` | no | [`telemetry::Metrics`]: Prometheus metrics of requests, sources, cache, circuits, pools and reloads |
//!
//! With `default-features = false` the crate is the plan model, loader, expression parser and
//! validator only (the crate `api-orchestrator-core`, re-exported).
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use api_orchestrator_core::{
    Credentials, Diagnostic, Diagnostics, Plan, RequestContext, ValidPlan,
};
pub use api_orchestrator_core::{
    config, diagnostic, expr, plan, redact, snapshot, transform, types, validate,
};

#[cfg(feature = "cli")]
#[cfg_attr(docsrs, doc(cfg(feature = "cli")))]
pub mod cli;
#[cfg(feature = "runtime")]
#[cfg_attr(docsrs, doc(cfg(feature = "runtime")))]
pub mod engine;
#[cfg(feature = "runtime")]
#[cfg_attr(docsrs, doc(cfg(feature = "runtime")))]
pub mod layer;
#[cfg(feature = "runtime")]
mod orchestrator;
#[cfg(any(feature = "sql", feature = "http"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "sqlite", feature = "http"))))]
pub mod prepare;
#[cfg(feature = "runtime")]
#[cfg_attr(docsrs, doc(cfg(feature = "runtime")))]
pub mod source;
#[cfg(feature = "runtime")]
#[cfg_attr(docsrs, doc(cfg(feature = "runtime")))]
pub mod telemetry;
#[cfg(feature = "web")]
#[cfg_attr(docsrs, doc(cfg(any(feature = "axum", feature = "actix"))))]
pub mod web;

#[cfg(feature = "macros")]
#[cfg_attr(docsrs, doc(cfg(feature = "macros")))]
pub use api_orchestrator_macros::orchestrate;

/// Long-form documentation.
pub mod docs {
    /// The config reference: every file and key, the expression language, execution, HTTP and
    /// the diagnostics.
    #[doc = include_str!("../docs/config.md")]
    pub mod config {}

    /// Moving from the original Python service: every key and route, what changed and why.
    #[doc = include_str!("../docs/migrating.md")]
    pub mod migrating {}

    /// Operating it: logs, the Prometheus metrics, the OpenTelemetry spans and their
    /// attributes, and the queries an operator starts with.
    #[doc = include_str!("../docs/operating.md")]
    pub mod operating {}

    /// Security: the threat model, what is never printed, the limits and their defaults, and
    /// every status the library answers with.
    #[doc = include_str!("../docs/security.md")]
    pub mod security {}

    /// Checked against your sources: the schema snapshot workflow (prepare, commit, check in
    /// CI), what is recorded from each source type and what is checked with it.
    #[doc = include_str!("../docs/snapshots.md")]
    pub mod snapshots {}
}

/// What code generated by `orchestrate!` refers to. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use serde_json;

    /// A plan checked when the crate was compiled.
    pub fn checked(plan: crate::Plan) -> crate::ValidPlan {
        crate::ValidPlan::__assume_valid(plan)
    }

    /// A plan checked when the crate was compiled whose config files (`files`, of the
    /// directory `base_dir` as written) are read again at start-up.
    pub fn at_start_up(
        plan: crate::Plan,
        (base_dir, compiled_dir): (&str, &str),
        files: &[(&str, &str)],
    ) -> crate::ValidPlan {
        crate::ValidPlan::__with_start_up_config(
            plan,
            crate::validate::StartUpConfig {
                base_dir: base_dir.into(),
                compiled_dir: compiled_dir.into(),
                files: files
                    .iter()
                    .map(|(rel, text)| ((*rel).to_owned(), (*text).to_owned()))
                    .collect(),
            },
        )
    }

    /// An owned string; out of line so generated plans stay small and quick to optimize.
    #[inline(never)]
    pub fn s(text: &str) -> String {
        text.to_owned()
    }

    /// The schema snapshot a macro plan was checked against, from the JSON text the macro
    /// embedded (written by this crate's own version, so it reads back).
    #[inline(never)]
    pub fn snapshot(text: &str) -> Option<std::sync::Arc<crate::snapshot::Snapshot>> {
        crate::snapshot::Snapshot::from_json(text)
            .ok()
            .map(std::sync::Arc::new)
    }

    /// A JSON string value, out of line for the same reason.
    #[inline(never)]
    pub fn js(text: &str) -> serde_json::Value {
        serde_json::Value::String(text.to_owned())
    }
}

#[cfg(feature = "reload")]
#[cfg_attr(docsrs, doc(cfg(feature = "reload")))]
pub use orchestrator::Watcher;
#[cfg(feature = "runtime")]
#[cfg_attr(docsrs, doc(cfg(feature = "runtime")))]
pub use orchestrator::{Error, Orchestrator, OrchestratorBuilder, ReloadReport};

/// What [`Orchestrator::execute`] takes: an endpoint's name (with a [`RequestContext`]), or
/// a typed handle that `orchestrate!`'s `mod` form generates per endpoint, whose input is the
/// struct of the inputs the endpoint declares, so that a call names an endpoint the compiler
/// knows and passes what it takes:
///
/// ```
/// # #[cfg(feature = "macros")]
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use api_orchestrator::{Orchestrator, orchestrate};
///
/// orchestrate! {
///     mod shop;
///     endpoints: {
///         price: {
///             path: "/price/{sku}",
///             input: { path: { sku: string }, query: { quantity: { type: integer, required: false } } },
///             data_sources: [ { name: it, type: direct, params: { sku: $request.sku, n: $request.quantity } } ],
///         },
///     },
/// }
///
/// let o = Orchestrator::builder().build(shop::plan())?;
/// let input = shop::endpoints::PriceInput { sku: "kettle".into(), quantity: Some(2) };
/// let out = o.execute(shop::endpoints::price, input).await?;
/// assert_eq!(out.response["n"], 2);
/// # Ok(()) }
/// ```
///
/// A handle names its endpoint; an orchestrator serving a plan without it answers
/// [`ExecuteError::UnknownEndpoint`](engine::ExecuteError) as for a name.
pub trait EndpointHandle {
    /// What a call takes.
    type Input: Into<RequestContext>;

    /// The endpoint's name in the plan.
    fn name(&self) -> &str;
}

impl EndpointHandle for &str {
    type Input = RequestContext;

    fn name(&self) -> &str {
        self
    }
}

impl EndpointHandle for &String {
    type Input = RequestContext;

    fn name(&self) -> &str {
        self
    }
}

impl EndpointHandle for String {
    type Input = RequestContext;

    fn name(&self) -> &str {
        self
    }
}
