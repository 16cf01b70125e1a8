//! Shared parts of the examples: the demo server's seeded database and its protocol
//! stand-ins, and the schema snapshot workflow of `check` and `server`.

pub mod demo;
pub mod snapshot;
