//! Declarative API orchestration: endpoints declared in YAML (or, soon, Rust tokens) become a
//! [`Plan`]; the [`engine`] runs each endpoint's data sources concurrently where the data allows,
//! maps the results into one JSON document and records an execution [`Trace`](engine::Trace).
//!
//! ```no_run
//! use orchestrator::{Orchestrator, RequestContext};
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
//! # Modules
//!
//! - [`config`]: the config directory (`config.yaml`, `database.yaml`, `domains/`,
//!   `integrations/`) → [`Plan`], with every problem reported at once as a [`Diagnostic`].
//! - [`plan`]: the plain-data model both front-ends produce.
//! - [`validate`]: the rules, shared by the loader and the `orchestrate!` macro.
//! - [`expr`]: the `$request.x` / `$source.path` expression language.
//! - [`engine`], [`source`] (feature `runtime`): execution, and the [`DataSource`](source::DataSource)
//!   trait with the built-in source types: `database` (with a SQL driver feature), `api`,
//!   `feast` and `ml` (feature `http`), `direct`.
//! - `web` (features `axum`, `actix`): the plans as HTTP endpoints inside a host application.
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
//! | `axum` | no | [`web::axum`]: mount the plans in an axum app |
//! | `actix` | no | [`web::actix`]: mount the plans in an actix-web app |
//! | `openapi` | no | `/openapi.json` and an offline `/docs` page |
//!
//! With `default-features = false` the crate is the plan model, loader, expression parser and
//! validator only. The config format is documented in `docs/config.md` of the repository.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod config;
pub mod diagnostic;
pub mod expr;
pub mod plan;
mod request;
mod sql_text;
pub mod transform;
pub mod validate;

#[cfg(feature = "runtime")]
#[cfg_attr(docsrs, doc(cfg(feature = "runtime")))]
pub mod engine;
#[cfg(feature = "runtime")]
mod orchestrator;
#[cfg(feature = "runtime")]
#[cfg_attr(docsrs, doc(cfg(feature = "runtime")))]
pub mod source;
#[cfg(feature = "web")]
#[cfg_attr(docsrs, doc(cfg(any(feature = "axum", feature = "actix"))))]
pub mod web;

pub use diagnostic::{Diagnostic, Diagnostics};
pub use plan::Plan;
pub use request::RequestContext;

#[cfg(feature = "runtime")]
#[cfg_attr(docsrs, doc(cfg(feature = "runtime")))]
pub use orchestrator::{Error, Orchestrator, OrchestratorBuilder};
