//! Shared parts of the examples: the demo server's seeded database and its protocol stand-ins.

pub mod demo;
