//! Data sources: the [`DataSource`] trait, its error type and the [`Registry`] of source types.
//!
//! A source type (`database`, `api`, `direct`, or one a host registers) is a [`SourceFactory`]
//! that builds one [`DataSource`] per integration set and config version: clients and pools are
//! built there, once, never per request. A host that needs no per-config state registers a
//! ready [`DataSource`] with [`Registry::register`].
//!
//! ```
//! use api_orchestrator::source::{DataSource, Registry, SourceCall, SourceError};
//! use serde_json::{Value, json};
//!
//! struct Clock;
//!
//! #[async_trait::async_trait]
//! impl DataSource for Clock {
//!     async fn fetch(&self, call: SourceCall<'_>) -> Result<Value, SourceError> {
//!         Ok(json!({"operation": call.operation, "now": 1_700_000_000}))
//!     }
//! }
//!
//! let mut registry = Registry::new();
//! registry.register("clock", Clock);
//! assert!(registry.contains("clock") && registry.contains("direct"));
//! ```

#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod api;
mod direct;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod feast;
#[cfg(feature = "http")]
pub(crate) mod http;
#[cfg(feature = "http")]
#[doc(hidden)]
pub use http::__fuzz_http_answer;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod ml;
#[cfg(feature = "sql")]
#[cfg_attr(
    docsrs,
    doc(cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql")))
)]
pub mod sql;
mod trace_context;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::RequestContext;
use crate::layer::{Layer, Layers, Shared};
use crate::plan::Integrations;

pub use direct::Direct;
pub use trace_context::TraceContext;
#[cfg(feature = "web")]
pub(crate) use trace_context::random_hex;

/// One call of a source, with its resolved params.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct SourceCall<'a> {
    /// The endpoint being executed.
    pub endpoint: &'a str,
    /// The data source's name in the endpoint.
    pub source: &'a str,
    /// The named operation (or model), if the step names one.
    pub operation: Option<&'a str>,
    /// The integration entry the step picked, if any.
    pub source_id: Option<&'a str>,
    /// Resolved params.
    pub params: &'a Map<String, Value>,
    /// The request (for its id, headers to forward, …).
    pub request: &'a RequestContext,
    /// The W3C trace every call of this execution shares: the incoming request's when it
    /// carried a valid `traceparent` header, otherwise a new one. The built-in HTTP sources
    /// send [`TraceContext::traceparent`] with every call: with a tracer
    /// ([`OrchestratorBuilder::tracer`](crate::OrchestratorBuilder::tracer)) its span id is
    /// the attempt's exported client span, otherwise a new random one per call.
    pub trace: &'a TraceContext,
    /// 1 for the first attempt, 2 for the first retry, …
    pub attempt: u32,
    /// When the endpoint's budget runs out: no attempt may go on past it.
    pub deadline: tokio::time::Instant,
    /// Where the source leaves remarks for the execution trace.
    pub notes: &'a Notes,
    /// What the policy layers record for the trace (attempts, a recovered failure).
    pub record: &'a CallRecord,
}

#[cfg(any(feature = "http", feature = "sql"))]
/// The text a key of a batch compares by: a value in the answer and an element's key match
/// when their texts do (so the text `"7"` of a path param finds the integer 7, and `7.0` is
/// `7`).
pub(crate) fn key_text(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => (f as i64).to_string(),
            _ => n.to_string(),
        }),
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(any(feature = "http", feature = "sql"))]
/// A batch call's answers put back in the order of its `keys` (their [`key_text`]s): each
/// answer in `found` moves to the first key asking for it, a key asked again gets a copy, and
/// a key with no answer (or no text) gets `missing()`.
pub(crate) fn in_key_order(
    keys: impl ExactSizeIterator<Item = Option<String>>,
    mut found: std::collections::HashMap<String, Value>,
    missing: impl Fn() -> Value,
) -> Vec<Value> {
    // Where each key's answer went, for a key asked again.
    let mut placed: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut out: Vec<Value> = Vec::with_capacity(keys.len());
    for key in keys {
        let answer = match key {
            None => missing(),
            Some(key) => match found.remove(&key) {
                Some(answer) => {
                    placed.insert(key, out.len());
                    answer
                }
                None => placed
                    .get(&key)
                    .map_or_else(&missing, |&at| out[at].clone()),
            },
        };
        out.push(answer);
    }
    out
}

/// What a call made outside any endpoint execution (recording a schema snapshot, checking
/// model metadata) lends its [`SourceCall`]: an empty request, a new trace, no budget but the
/// source's own timeouts.
#[cfg(feature = "http")]
pub(crate) struct Standalone {
    request: RequestContext,
    notes: Notes,
    record: CallRecord,
    trace: TraceContext,
}

#[cfg(feature = "http")]
impl Default for Standalone {
    fn default() -> Self {
        Self {
            request: RequestContext::new(),
            notes: Notes::default(),
            record: CallRecord::default(),
            trace: TraceContext::new(),
        }
    }
}

#[cfg(feature = "http")]
impl Standalone {
    /// A call of `operation` with `params`.
    pub(crate) fn call<'a>(
        &'a self,
        operation: &'a str,
        source_id: Option<&'a str>,
        params: &'a Map<String, Value>,
    ) -> SourceCall<'a> {
        SourceCall {
            endpoint: "",
            source: "",
            operation: Some(operation),
            source_id,
            params,
            request: &self.request,
            trace: &self.trace,
            attempt: 1,
            // The source's own timeouts bound the call.
            deadline: tokio::time::Instant::now() + std::time::Duration::from_secs(3600),
            notes: &self.notes,
            record: &self.record,
        }
    }
}

/// What the policy [layers](crate::layer) around a source record about one call, for the
/// execution trace: how many attempts reached the source, and the failure a policy recovered
/// from (`on_error`, `fallback`).
#[derive(Debug, Default)]
pub struct CallRecord {
    attempts: std::sync::atomic::AtomicU32,
    recovered: std::sync::Mutex<Option<(Recovery, SourceError)>>,
    /// Most calls recover from nothing: taking the recovery then costs no lock.
    any: std::sync::atomic::AtomicBool,
    /// The cache's [`CacheStatus`] plus one, or 0.
    cache: std::sync::atomic::AtomicU8,
    /// The circuit breaker's [`CircuitState`] plus one, or 0.
    circuit: std::sync::atomic::AtomicU8,
    /// The upstream answered 404, read as nothing found (`on_not_found`).
    not_found: std::sync::atomic::AtomicBool,
}

/// What the cache did for a call (`cache:`), in the trace, `Server-Timing` and the source's
/// tracing span.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CacheStatus {
    /// A fresh entry answered; the source was not called.
    Hit,
    /// No fresh entry: the source was called (and its answer stored).
    Miss,
    /// An identical call was in flight: its answer was shared.
    Coalesced,
    /// The source failed and an expired entry answered (`stale_if_error`).
    Stale,
}

impl CacheStatus {
    const ALL: [Self; 4] = [Self::Hit, Self::Miss, Self::Coalesced, Self::Stale];

    /// `hit`, `miss`, `coalesced` or `stale`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Coalesced => "coalesced",
            Self::Stale => "stale",
        }
    }
}

/// The state of the circuit breaker of the service a call went to (`circuit_breaker:`), when
/// the call met it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CircuitState {
    /// Calls go through.
    Closed,
    /// Calls fail at once.
    Open,
    /// A few probes go through.
    HalfOpen,
}

impl CircuitState {
    const ALL: [Self; 3] = [Self::Closed, Self::Open, Self::HalfOpen];
}

/// How a policy turned a failure into a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Recovery {
    /// `on_error: skip`: the result is null.
    Skipped,
    /// `on_error: default`: the result is the default.
    Defaulted,
    /// `fallback:`: the result came from the fallback.
    Fallback,
    /// `cache: {stale_if_error}`: the result is an expired cache entry.
    Stale,
}

impl Recovery {
    /// `skip`, `default`, `fallback` or `stale`: the `x-degraded` value, in logs and spans.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Skipped => "skip",
            Self::Defaulted => "default",
            Self::Fallback => "fallback",
            Self::Stale => "stale",
        }
    }
}

impl CallRecord {
    /// Counts an attempt that reached the source.
    pub fn attempt(&self) {
        self.attempts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// How many attempts reached the source.
    pub fn attempts(&self) -> u32 {
        self.attempts.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Records that the upstream's 404 was read as nothing found (`on_not_found`).
    pub fn not_found(&self) {
        self.not_found
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether [`Self::not_found`] was recorded.
    pub(crate) fn was_not_found(&self) -> bool {
        self.not_found.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Records that `how` turned `error` into a result. The outermost policy's record wins (an
    /// `on_error` over a failed fallback keeps the source's error).
    pub fn recover(&self, how: Recovery, error: SourceError) {
        *self
            .recovered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((how, error));
        self.any.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Records what the cache did.
    pub fn set_cache(&self, status: CacheStatus) {
        self.cache
            .store(status as u8 + 1, std::sync::atomic::Ordering::Relaxed);
    }

    /// What the cache did, if the call has a cache.
    pub fn cache(&self) -> Option<CacheStatus> {
        let n = self.cache.load(std::sync::atomic::Ordering::Relaxed);
        CacheStatus::ALL
            .get(usize::from(n).checked_sub(1)?)
            .copied()
    }

    /// Records the state the service's circuit breaker was in when the call met it.
    pub fn set_circuit(&self, state: CircuitState) {
        self.circuit
            .store(state as u8 + 1, std::sync::atomic::Ordering::Relaxed);
    }

    /// The circuit breaker's state, if the call met one.
    pub fn circuit(&self) -> Option<CircuitState> {
        let n = self.circuit.load(std::sync::atomic::Ordering::Relaxed);
        CircuitState::ALL
            .get(usize::from(n).checked_sub(1)?)
            .copied()
    }

    /// Takes the recovery out (the engine, for the trace).
    pub(crate) fn take_recovery(&self) -> Option<(Recovery, SourceError)> {
        if !self.any.swap(false, std::sync::atomic::Ordering::Acquire) {
            return None;
        }
        self.recovered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

/// Remarks a source leaves for the execution trace ([`SourceTrace::notes`]): a feature the
/// server did not have, a fallback that was taken. Never request data unless the host chose so.
///
/// [`SourceTrace::notes`]: crate::engine::SourceTrace::notes
#[derive(Debug, Default)]
pub struct Notes {
    notes: std::sync::Mutex<Vec<String>>,
    /// Most sources leave none: taking them then costs no lock.
    any: std::sync::atomic::AtomicBool,
}

impl Notes {
    /// Adds a remark.
    pub fn push(&self, note: impl Into<String>) {
        self.notes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(note.into());
        self.any.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Takes the remarks out (the engine, for the trace).
    pub(crate) fn take(&self) -> Vec<String> {
        if !self.any.swap(false, std::sync::atomic::Ordering::Acquire) {
            return Vec::new();
        }
        std::mem::take(
            &mut *self
                .notes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

/// Something that produces JSON for a data source step.
#[async_trait::async_trait]
pub trait DataSource: Send + Sync + 'static {
    /// Performs one attempt. The engine applies timeouts and retries around it.
    async fn fetch(&self, call: SourceCall<'_>) -> Result<Value, SourceError>;
}

/// Builds a source type's [`DataSource`] for one integration set.
pub trait SourceFactory: Send + Sync + 'static {
    /// Builds the source for `integrations` (called once per config version and domain scope).
    /// A type that owns an integration file finds its entries with
    /// [`Integrations::host_settings`] (or all of them in `integrations.host`).
    fn build(&self, integrations: &Integrations) -> Result<Arc<dyn DataSource>, SourceError>;

    /// The integration file this type reads, `integrations/<kind>.yaml`, and the keys its
    /// entries may have: the loader reads and checks it like the built-in files (see
    /// [`IntegrationFile`](crate::config::IntegrationFile)). `None` (the default): no file.
    fn integration(&self) -> Option<crate::config::IntegrationFile> {
        None
    }
}

/// The factory of a type registered with one ready source: every config version shares it.
struct SharedSourceFactory(Arc<dyn DataSource>);

impl SourceFactory for SharedSourceFactory {
    fn build(&self, _: &Integrations) -> Result<Arc<dyn DataSource>, SourceError> {
        Ok(self.0.clone())
    }
}

/// Source types by name, and the host's [layers](crate::layer) around every step.
/// [`Registry::new`] holds the built-in types compiled in.
#[derive(Clone)]
pub struct Registry {
    kinds: HashMap<String, Arc<dyn SourceFactory>>,
    layers: Layers,
    /// The state of the cache, circuit breakers and bulkheads, kept across config versions.
    shared: Arc<Shared>,
    /// Where traces and metrics go.
    instruments: crate::telemetry::Instruments,
    /// The built-in SQL factory, whose pools the metrics describe.
    #[cfg(all(feature = "sql", feature = "metrics"))]
    sql: Option<sql::SqlFactory>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut kinds: Vec<_> = self.kinds.keys().collect();
        kinds.sort();
        f.debug_struct("Registry")
            .field("kinds", &kinds)
            .field("layers", &self.layers)
            .finish()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    /// The built-in source types of this build: `direct`; `database` when a SQL driver feature
    /// (`sqlite`, `postgres`, `mysql`) is on; `api`, `feast` and `ml` with the `http` feature.
    pub fn new() -> Self {
        let mut r = Self::empty();
        r.register("direct", Direct);
        #[cfg(feature = "sql")]
        let sql = sql::SqlFactory::new();
        #[cfg(feature = "sql")]
        r.register_factory("database", sql.clone());
        #[cfg(all(feature = "sql", feature = "metrics"))]
        {
            r.sql = Some(sql.clone());
        }
        #[cfg(feature = "http")]
        {
            r.register_factory("api", api::ApiFactory);
            let feast = feast::FeastFactory::new();
            #[cfg(feature = "sql")]
            let feast = feast.with_database(sql);
            r.register_factory("feast", feast);
            r.register_factory("ml", ml::MlFactory);
        }
        r
    }

    /// A registry with no types at all.
    pub fn empty() -> Self {
        Self {
            kinds: HashMap::new(),
            layers: Layers::default(),
            shared: Arc::default(),
            instruments: crate::telemetry::Instruments::default(),
            #[cfg(all(feature = "sql", feature = "metrics"))]
            sql: None,
        }
    }

    /// Exports a span per request, per source call and per attempt with `tracer` (see
    /// [`telemetry::Tracing`](crate::telemetry::Tracing)).
    #[cfg(feature = "otel")]
    #[cfg_attr(docsrs, doc(cfg(feature = "otel")))]
    pub fn tracer(&mut self, tracer: crate::telemetry::SdkTracer) -> &mut Self {
        self.layers.tracer = Some(tracer.clone());
        self.instruments.tracer = Some(tracer);
        self
    }

    /// Records requests, source calls, cache, circuits, pools and reloads in `metrics`.
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn metrics(&mut self, metrics: &crate::telemetry::Metrics) -> &mut Self {
        metrics.probe(self.shared.clone());
        #[cfg(feature = "sql")]
        if let Some(sql) = &self.sql {
            metrics.probe(Arc::new(sql.clone()));
        }
        self.instruments.metrics = Some(metrics.clone());
        self
    }

    pub(crate) fn instruments(&self) -> &crate::telemetry::Instruments {
        &self.instruments
    }

    /// Adds a host layer around every step's source (see [`crate::layer`] for where it sits);
    /// the first added is the outermost.
    pub fn layer(&mut self, layer: impl Layer) -> &mut Self {
        self.layers.push(layer);
        self
    }

    pub(crate) fn layers(&self) -> &Layers {
        &self.layers
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Registers (or replaces) `kind` with one source shared by every config version.
    pub fn register(&mut self, kind: impl Into<String>, source: impl DataSource) -> &mut Self {
        self.register_factory(kind, SharedSourceFactory(Arc::new(source)))
    }

    /// Registers (or replaces) `kind` with a factory called per config version and domain.
    pub fn register_factory(
        &mut self,
        kind: impl Into<String>,
        factory: impl SourceFactory,
    ) -> &mut Self {
        self.kinds.insert(kind.into(), Arc::new(factory));
        self
    }

    /// Whether `kind` is registered.
    pub fn contains(&self, kind: &str) -> bool {
        self.kinds.contains_key(kind)
    }

    /// The registered type names, sorted.
    pub fn kinds(&self) -> Vec<&str> {
        let mut k: Vec<_> = self.kinds.keys().map(String::as_str).collect();
        k.sort_unstable();
        k
    }

    pub(crate) fn factory(&self, kind: &str) -> Option<&Arc<dyn SourceFactory>> {
        self.kinds.get(kind)
    }
}

/// What kind of failure a source had. Decides retries and, at the HTTP edge, the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SourceErrorKind {
    /// The attempt ran out of time (transient).
    Timeout,
    /// The backend could not be reached or had no capacity (connection refused, pool
    /// exhausted; transient).
    Unavailable,
    /// The backend answered with an error status (transient for 5xx and 429).
    Upstream {
        /// The upstream HTTP status.
        status: u16,
    },
    /// The backend answered something that could not be understood.
    InvalidResponse,
    /// The request to the backend was rejected (bad SQL, bad params).
    Rejected,
    /// The source is misconfigured.
    Config,
    /// Anything else.
    Internal,
}

impl SourceErrorKind {
    /// A stable name for metrics labels and span attributes: `timeout`, `unavailable`,
    /// `upstream_status`, `invalid_response`, `rejected`, `config` or `internal`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Unavailable => "unavailable",
            Self::Upstream { .. } => "upstream_status",
            Self::InvalidResponse => "invalid_response",
            Self::Rejected => "rejected",
            Self::Config => "config",
            Self::Internal => "internal",
        }
    }

    /// Whether a retry may succeed.
    pub fn is_transient(self) -> bool {
        match self {
            Self::Timeout | Self::Unavailable => true,
            Self::Upstream { status } => status >= 500 || status == 429,
            _ => false,
        }
    }
}

/// A failed source attempt. The message is for logs and traces, never for HTTP clients.
#[derive(Debug, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct SourceError {
    /// What kind of failure.
    pub kind: SourceErrorKind,
    /// Details for logs and traces.
    pub message: String,
    #[source]
    cause: Option<Box<dyn std::error::Error + Send + Sync>>,
    /// Set when retrying cannot help whatever the kind (an open circuit breaker).
    final_: bool,
    /// The parameter whose value the source rejected, when one did.
    param: Option<String>,
}

impl SourceError {
    /// A new error.
    pub fn new(kind: SourceErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            cause: None,
            final_: false,
            param: None,
        }
    }

    /// A copy of the kind and message (the cause is not cloneable): what a coalesced or
    /// cached call hands to each caller.
    pub(crate) fn copy(&self) -> Self {
        Self {
            kind: self.kind,
            message: self.message.clone(),
            cause: None,
            final_: self.final_,
            param: self.param.clone(),
        }
    }

    /// Marks the error as one a retry cannot cure, whatever its kind.
    #[must_use]
    pub(crate) fn not_retryable(mut self) -> Self {
        self.final_ = true;
        self
    }

    /// Names the parameter whose value was rejected (with [`SourceErrorKind::Rejected`]): when
    /// the step takes that parameter from the request alone, the request is at fault and the
    /// web layer answers 400 `invalid-parameter` naming it, not 502.
    #[must_use]
    pub fn with_param(mut self, name: impl Into<String>) -> Self {
        self.param = Some(name.into());
        self
    }

    /// The parameter whose value was rejected, if the source named one.
    pub fn param(&self) -> Option<&str> {
        self.param.as_deref()
    }

    /// Attaches the underlying error.
    #[must_use]
    pub fn with_cause(mut self, cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.cause = Some(Box::new(cause));
        self
    }

    /// Whether a retry may succeed: the kind is transient, and the error did not come from an
    /// open circuit breaker (retrying would only meet it again).
    pub fn is_transient(&self) -> bool {
        !self.final_ && self.kind.is_transient()
    }
}
