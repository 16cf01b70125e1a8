//! The `orchestrate!` macro for [`orchestrator`](https://docs.rs/orchestrator).
//!
//! This crate is a skeleton until the macro lands: it depends on `orchestrator` with
//! `default-features = false`, so that the macro validates endpoint definitions with exactly the
//! loader and validator the YAML front-end uses.

// Keep the dependency edge real so the no-runtime build of the plan model is exercised by every
// workspace build.
use orchestrator as _;
use proc_macro2 as _;
use quote as _;
use syn as _;
