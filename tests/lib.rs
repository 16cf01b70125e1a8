//! Integration tests of `orchestrator` live in `tests/`; this crate root holds shared test support.
