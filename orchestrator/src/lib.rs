#![doc = include_str!("../README.md")]
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

pub use diagnostic::{Diagnostic, Diagnostics};
pub use plan::Plan;
pub use request::RequestContext;

#[cfg(feature = "runtime")]
#[cfg_attr(docsrs, doc(cfg(feature = "runtime")))]
pub use orchestrator::{Error, Orchestrator, OrchestratorBuilder};
