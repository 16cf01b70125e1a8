//! Production policies: caching, circuit breakers and load limits. The engine turns each into a
//! [layer](https://docs.rs/api-orchestrator/latest/api_orchestrator/layer/) or an admission
//! check; here they are plain data, read from YAML or built by the macro.

use std::time::Duration;

use super::Secret;

/// Caching of a data source's results (`cache:` on a data source, or on an HTTP integration
/// service for every call to it). Identical calls in flight at once share one upstream call.
///
/// `cache: 30s` is the short form of `cache: {ttl: 30s}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct CachePolicy {
    /// How long an answer is served from the cache (`ttl`); `None` means `cache.default_ttl`.
    pub ttl: Option<Duration>,
    /// How long past its ttl an answer may still stand in when the source fails
    /// (`stale_if_error`); `None`: never.
    pub stale_if_error: Option<Duration>,
    /// How long a failure is cached (`error_ttl`); `None`, the default: failures are not
    /// cached.
    pub error_ttl: Option<Duration>,
}

/// The shared cache (`cache:` in `config.yaml`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheSettings {
    /// Where entries live (`store`, default `memory`).
    pub store: CacheStore,
    /// The ttl of a `cache:` that names none (`default_ttl`, default 60 s).
    pub default_ttl: Duration,
    /// Bound of the in-process store in entries (`max_entries`, default 10,000), unless
    /// `max_bytes` is set.
    pub max_entries: Option<u64>,
    /// Bound of the in-process store in bytes of JSON (`max_bytes`), instead of entries.
    pub max_bytes: Option<u64>,
    /// How long one Redis command may take before the call goes to the source instead
    /// (`timeout`, default 100 ms).
    pub timeout: Duration,
}

impl CacheSettings {
    /// The in-process bound when neither `max_entries` nor `max_bytes` is set.
    pub const DEFAULT_MAX_ENTRIES: u64 = 10_000;
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            store: CacheStore::Memory,
            default_ttl: Duration::from_secs(60),
            max_entries: None,
            max_bytes: None,
            timeout: Duration::from_millis(100),
        }
    }
}

/// Where cached answers live (`cache.store`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CacheStore {
    /// In this process, bounded (`memory`, the default).
    #[default]
    Memory,
    /// A Redis server every replica shares (`redis`, with `url`; crate feature `redis`).
    Redis {
        /// `redis://host:port/db` (may carry a password).
        url: Secret,
    },
}

impl CacheStore {
    /// Accepted `store` values.
    pub const NAMES: &'static [&'static str] = &["memory", "redis"];
}

/// A circuit breaker on an HTTP integration service (`circuit_breaker:`): after `failures`
/// failures in a row it opens and calls fail at once, without touching the network; after
/// `open_for` it lets `probes` calls through (half-open); a probe that succeeds closes it, one
/// that fails opens it again. Failures are the transient ones: timeouts, unreachable, 5xx, 429.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct CircuitBreaker {
    /// Failures in a row that open the circuit (`failures`, default 5).
    pub failures: u32,
    /// How long it stays open before probes go through (`open_for`, default 30 s).
    pub open_for: Duration,
    /// Calls let through while half-open (`probes`, default 1).
    pub probes: u32,
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        Self {
            failures: 5,
            open_for: Duration::from_secs(30),
            probes: 1,
        }
    }
}

/// An endpoint's bound on executions at once (`max_in_flight: 4` or
/// `max_in_flight: {limit: 4, queue: 16}`). Past `limit`, up to `queue` requests wait for a
/// turn (within the endpoint's timeout); past both, the request is answered 503 at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct InFlightLimit {
    /// Executions at once (`limit`).
    pub limit: usize,
    /// Requests that may wait for a turn (`queue`, default 0).
    pub queue: usize,
}

/// An endpoint's request rate limit (`rate_limit: 100/s` or
/// `rate_limit: {rate: 100/s, burst: 20, key: header:x-api-key}`): past it, 429 with
/// `Retry-After`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimit {
    /// Requests allowed per `per`.
    pub requests: u32,
    /// The period (`100/s`, `600/m`, `5/10s`).
    pub per: Duration,
    /// Requests that may arrive at once (`burst`, default `requests`).
    pub burst: u32,
    /// Who is counted separately (`key`, default `client`).
    pub key: RateLimitKey,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            requests: 1,
            per: Duration::from_secs(1),
            burst: 1,
            key: RateLimitKey::Client,
        }
    }
}

/// What a [`RateLimit`] counts separately.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RateLimitKey {
    /// Each client address (`client`); one shared count when the host does not pass addresses.
    #[default]
    Client,
    /// Each value of a request header (`header:x-api-key`); requests without it share one
    /// count.
    Header(String),
    /// All requests together (`global`).
    Global,
}

/// What an endpoint answers when a source's result was stood in for (`on_degraded:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnDegraded {
    /// A 200 listing the degraded sources in the `x-degraded` header (`answer`, the default).
    #[default]
    Answer,
    /// 502, as if the source had failed (`fail`).
    Fail,
}
