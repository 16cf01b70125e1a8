//! Shared parts of the examples: the demo server's seeded database and its protocol
//! stand-ins. (The schema snapshot workflow of `check` and `server` is
//! `api_orchestrator::cli::prepare`.)

pub mod demo;
