//! The execution trace every execution returns.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::source::{CacheStatus, CircuitState, SourceErrorKind};

/// What happened during one execution.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Trace {
    /// The endpoint executed.
    pub endpoint: Arc<str>,
    /// The config version it ran on.
    pub config_version: u64,
    /// The request id.
    pub request_id: String,
    /// Total duration.
    #[serde(rename = "duration_ms", serialize_with = "millis")]
    pub duration: Duration,
    /// One entry per data source, in declaration order.
    pub sources: Vec<SourceTrace>,
}

/// What happened to one data source.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct SourceTrace {
    /// The source's name.
    pub name: Arc<str>,
    /// Its type.
    pub kind: Arc<str>,
    /// When it started, from the start of the execution.
    #[serde(rename = "start_ms", serialize_with = "millis")]
    pub start: Duration,
    /// How long it took, retries and backoff included.
    #[serde(rename = "duration_ms", serialize_with = "millis")]
    pub duration: Duration,
    /// Attempts made (0 when it never ran).
    pub attempts: u32,
    /// How it ended.
    pub outcome: Outcome,
    /// The last error, when there was one.
    pub error: Option<TraceError>,
    /// What the source reported besides its result (missing features, a fallback taken).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// What the cache did, when the source has one (`cache:`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheStatus>,
    /// The state of its service's circuit breaker when the source last met it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub circuit: Option<CircuitState>,
}

impl SourceTrace {
    /// How the source's result was stood in for, when it was: `skip`, `default`, `fallback`,
    /// `stale`, or `partial` for some elements of a `for_each` source (the values of the
    /// `x-degraded` response header).
    pub fn degraded(&self) -> Option<&'static str> {
        Some(match self.outcome {
            Outcome::FailedSkipped => "skip",
            Outcome::FailedDefaulted => "default",
            Outcome::Fallback => "fallback",
            Outcome::Stale => "stale",
            Outcome::Partial => "partial",
            _ => return None,
        })
    }
}

/// How a source ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// It succeeded.
    Ok,
    /// Its `condition` was false; its result is null.
    Skipped,
    /// It failed with `on_error: skip`; its result is null.
    FailedSkipped,
    /// It failed with `on_error: default`; its result is the default.
    FailedDefaulted,
    /// It failed and its `fallback:` answered; its result is the fallback's.
    Fallback,
    /// It failed and an expired cache entry answered (`cache: {stale_if_error}`).
    Stale,
    /// A `for_each` source some of whose elements failed and were stood in for (`on_error:
    /// skip` or `default`, a fallback or a stale entry, per element); the rest answered.
    Partial,
    /// It failed and failed the execution.
    Failed,
    /// It was running when the execution ended (another source failed, or the deadline passed).
    Cancelled,
    /// It never started.
    NotRun,
}

/// A source error as recorded in the trace. The message is for operators, not HTTP clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TraceError {
    /// The error kind.
    pub kind: SourceErrorKind,
    /// Details.
    pub message: String,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}
