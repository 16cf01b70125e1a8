//! The compile-time core of [`api-orchestrator`](https://docs.rs/api-orchestrator): the plan
//! model, the config-directory reader, the expression language, the validator and its
//! diagnostics. It has no runtime dependency (no tokio, sqlx or reqwest), so the `orchestrate!`
//! macro checks plans at compile time with exactly the code the runtime loader uses.
//!
//! Use it through `api-orchestrator`, which re-exports every public module below; depend on
//! this crate directly only to read and check configs without the runtime (a linter, an editor
//! plugin).
//!
//! ```
//! use api_orchestrator_core::config::{ConfigFiles, Loader};
//!
//! let files = ConfigFiles::new().with_file(
//!     "domains/shop.yaml",
//!     "endpoints:\n  echo:\n    data_sources:\n      - {name: it, type: direct, params: {id: $request.id}}\n",
//! );
//! let plan = Loader::new().load(&files).expect("a valid plan");
//! assert!(plan.endpoint("echo").is_some());
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod config;
pub mod diagnostic;
pub mod expr;
mod limits;
pub mod macro_support;
pub mod plan;
pub mod redact;
mod request;
pub mod snapshot;
pub mod sql_text;
pub mod transform;
pub mod types;
pub mod validate;

pub use diagnostic::{Diagnostic, Diagnostics};
pub use plan::Plan;
pub use request::{Credentials, RequestContext};
pub use validate::ValidPlan;
