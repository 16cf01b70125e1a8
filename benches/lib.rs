//! Benchmarks of `orchestrator`.
