//! Policies as layers: every step's source is a [`DataSource`] wrapped in the policies its plan
//! gives it, each of them a [`DataSource`] too (the shape of tower's services and Lura's
//! proxies). The engine builds the stack once per step when a plan is compiled (at start-up and
//! per reload) and calls its outermost layer; its run loop only schedules the DAG.
//!
//! From the outside in:
//!
//! | layer | when | what it does |
//! |---|---|---|
//! | [`OnErrorLayer`] | `on_error: skip` or `default` | a failure becomes null or the default; the trace keeps the error |
//! | [`FallbackLayer`] | `fallback:` | a failure tries another source (its own operation, the step's params; with its own timeout and the host layers) or a literal |
//! | cache | `cache:` (or the service's) | a fresh answer for the same definition and params answers at once; identical calls in flight share one call; an expired answer stands in for a failure within `stale_if_error` |
//! | [`RetryLayer`] | `retries:` (or the integration's) | transient failures are retried after a jittered exponential backoff, within the endpoint's deadline and a [retry budget](RetryLayer) |
//! | circuit breaker | the service's `circuit_breaker:` | while open, attempts fail at once as `unavailable` (not retried); counts each attempt's transient failures |
//! | bulkhead | the service's `max_concurrent:` | past the service's calls in flight, an attempt fails at once as `unavailable` |
//! | host layers | [`OrchestratorBuilder::layer`](crate::OrchestratorBuilder::layer) | anything: a cache, a circuit breaker, a concurrency limit, metrics; the first added is the outermost |
//! | [`TimeoutLayer`] | always | each attempt ends at the step's timeout or the endpoint's deadline, whichever comes first |
//! | the source | | the built-in or host source type |
//!
//! The cache, circuit breakers and bulkheads keep their state in the [`Registry`](crate::source::Registry)
//! (shared by its clones): a reload keeps the circuit of a service whose policy did not change,
//! and cached answers whose definition did not change.
//!
//! A host layer sees every attempt (a retried call passes through it once per attempt, with
//! [`SourceCall::attempt`] counting), and each attempt's timeout applies inside it: a circuit
//! breaker counts timeouts, a concurrency limit's wait for a permit is bounded by the endpoint's
//! deadline rather than the attempt's timeout.
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicU64, Ordering};
//!
//! use api_orchestrator::layer::{Layer, StepInfo};
//! use api_orchestrator::source::{DataSource, SourceCall, SourceError};
//! use serde_json::Value;
//!
//! /// Counts the calls of every step whose source type is `api`.
//! struct CountApiCalls(Arc<AtomicU64>);
//!
//! struct Counted {
//!     inner: Arc<dyn DataSource>,
//!     calls: Arc<AtomicU64>,
//! }
//!
//! #[async_trait::async_trait]
//! impl DataSource for Counted {
//!     async fn fetch(&self, call: SourceCall<'_>) -> Result<Value, SourceError> {
//!         self.calls.fetch_add(1, Ordering::Relaxed);
//!         self.inner.fetch(call).await
//!     }
//! }
//!
//! impl Layer for CountApiCalls {
//!     fn layer(&self, source: Arc<dyn DataSource>, step: &StepInfo<'_>) -> Arc<dyn DataSource> {
//!         if step.step.kind != "api" {
//!             return source;
//!         }
//!         Arc::new(Counted { inner: source, calls: self.0.clone() })
//!     }
//! }
//!
//! let calls = Arc::new(AtomicU64::new(0));
//! let builder = api_orchestrator::Orchestrator::builder().layer(CountApiCalls(calls.clone()));
//! ```

mod breaker;
mod cache;
#[cfg(feature = "redis")]
mod redis;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;
use tower::retry::budget::{Budget as _, TpsBudget};

use crate::plan::{
    CachePolicy, CacheSettings, CircuitBreaker, Endpoint, OnError, OnNotFound, RetryPolicy,
    SourceStep,
};
use crate::source::{DataSource, Recovery, SourceCall, SourceError, SourceErrorKind};

/// `at + d`, with `d` capped at a century: a duration from the config too long for the clock
/// must not panic a request.
pub(crate) fn after(at: Instant, d: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    at.checked_add(d.min(CENTURY)).unwrap_or(at)
}

/// Wraps the source of a step in a policy of the host's. Called once per step when a plan is
/// compiled, never per request; returning `source` unchanged leaves the step alone.
pub trait Layer: Send + Sync + 'static {
    /// `source` with this layer around it.
    fn layer(&self, source: Arc<dyn DataSource>, step: &StepInfo<'_>) -> Arc<dyn DataSource>;
}

impl<F> Layer for F
where
    F: Fn(Arc<dyn DataSource>, &StepInfo<'_>) -> Arc<dyn DataSource> + Send + Sync + 'static,
{
    fn layer(&self, source: Arc<dyn DataSource>, step: &StepInfo<'_>) -> Arc<dyn DataSource> {
        self(source, step)
    }
}

/// The step a layer is built for, with the policies the plan resolved for it.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct StepInfo<'a> {
    /// The endpoint.
    pub endpoint: &'a Endpoint,
    /// The step, as the plan declares it.
    pub step: &'a SourceStep,
    /// Each attempt's timeout: the step's own, its integration's or `defaults.source_timeout`.
    pub timeout: Duration,
    /// The retry policy: the step's own or its integration's.
    pub retry: Option<RetryPolicy>,
    /// Whether this stack calls the step's `fallback:` source rather than the step's own
    /// (its type is the fallback's; it has no retries).
    pub fallback: bool,
    /// The HTTP integration service the calls go to (its `source_id`), when there is one.
    pub service: Option<&'a str>,
}

/// What the policy layers keep across config versions: the cache store and the calls in
/// flight, each service's circuit breaker and bulkhead. A [`Registry`](crate::source::Registry)
/// holds one, shared by its clones.
#[derive(Default)]
pub(crate) struct Shared {
    store: Mutex<Option<(CacheSettings, Arc<dyn cache::Store>)>>,
    flights: Arc<cache::Flights>,
    breakers: Mutex<HashMap<(String, CircuitBreaker), Arc<breaker::Breaker>>>,
    bulkheads: Mutex<HashMap<(String, usize), Arc<tokio::sync::Semaphore>>>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

impl Shared {
    /// The store `settings` ask for: the one already built while they stay the same.
    pub(crate) fn store(
        &self,
        settings: &CacheSettings,
    ) -> Result<Arc<dyn cache::Store>, SourceError> {
        let mut slot = self.store.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((built_for, store)) = &*slot
            && built_for == settings
        {
            return Ok(store.clone());
        }
        let store = cache::store(settings)?;
        *slot = Some((settings.clone(), store.clone()));
        Ok(store)
    }

    fn breaker(&self, key: &str, name: &str, policy: CircuitBreaker) -> Arc<breaker::Breaker> {
        self.breakers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry((key.to_owned(), policy))
            .or_insert_with(|| Arc::new(breaker::Breaker::new(name.to_owned(), policy)))
            .clone()
    }

    fn bulkhead(&self, key: &str, limit: usize) -> Arc<tokio::sync::Semaphore> {
        self.bulkheads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry((key.to_owned(), limit))
            .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(limit)))
            .clone()
    }
}

#[cfg(feature = "metrics")]
impl crate::telemetry::metrics::Probe for Shared {
    fn circuits(&self, out: &mut Vec<(Arc<str>, crate::source::CircuitState)>) {
        let breakers = self.breakers.lock().unwrap_or_else(PoisonError::into_inner);
        for b in breakers.values() {
            out.push((b.service().into(), b.state()));
        }
    }
}

/// The resolved policies of one step, made by the engine when it compiles a plan.
#[derive(Default)]
pub(crate) struct Policies {
    /// `cache:` with its store, and what a call's key is made of.
    pub(crate) cache: Option<StepCache>,
    /// The service's policies for the step's own calls.
    pub(crate) service: ServicePolicies,
}

/// The circuit breaker and bulkhead of the service a stack calls.
#[derive(Default, Clone)]
pub(crate) struct ServicePolicies {
    breaker: Option<Arc<breaker::Breaker>>,
    bulkhead: Option<(String, Arc<tokio::sync::Semaphore>, usize)>,
}

impl ServicePolicies {
    /// The policies of the service whose state is kept under `key` (unique per type, id and
    /// URL), called `name` in errors and logs (never its URL, which may hold credentials).
    pub(crate) fn of(
        shared: &Shared,
        key: &str,
        name: &str,
        breaker: Option<CircuitBreaker>,
        max_concurrent: Option<usize>,
    ) -> Self {
        Self {
            breaker: breaker.map(|policy| shared.breaker(key, name, policy)),
            bulkhead: max_concurrent
                .map(|limit| (name.to_owned(), shared.bulkhead(key, limit), limit)),
        }
    }
}

/// The hash a cache keys a step's calls by: `definition` names everything the call does.
pub(crate) fn definition_hash(definition: &str) -> u128 {
    cache::definition_hash(definition)
}

impl Shared {
    /// The cache of a step with `policy`: its ttl, the store, and the step's definition hash.
    pub(crate) fn cache_for(
        &self,
        policy: CachePolicy,
        settings: &CacheSettings,
        definition: u128,
        vary: Vec<String>,
    ) -> Result<StepCache, SourceError> {
        Ok(StepCache {
            ttl: policy.ttl.unwrap_or(settings.default_ttl),
            policy,
            store: self.store(settings)?,
            definition,
            vary: vary.into(),
        })
    }
}

/// A step's cache: its policy and ttl, the store, the hash of the step's definition, and the
/// request headers its service relays (`forward_headers`), whose values key the answers too:
/// an answer fetched with one caller's token is never served to another.
pub(crate) struct StepCache {
    pub(crate) policy: CachePolicy,
    pub(crate) ttl: Duration,
    pub(crate) store: Arc<dyn cache::Store>,
    pub(crate) definition: u128,
    pub(crate) vary: Arc<[String]>,
}

/// Host layers, in the order they were added (the first is the outermost), and the tracer
/// each attempt's client span is made with.
#[derive(Clone, Default)]
pub(crate) struct Layers {
    host: Vec<Arc<dyn Layer>>,
    #[cfg(feature = "otel")]
    pub(crate) tracer: Option<crate::telemetry::SdkTracer>,
}

impl fmt::Debug for Layers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Layers({})", self.host.len())
    }
}

impl Layers {
    pub(crate) fn push(&mut self, layer: impl Layer) {
        self.host.push(Arc::new(layer));
    }

    /// What each attempt goes through: the service's circuit breaker and bulkhead around the
    /// host layers around the timeout around `source`.
    pub(crate) fn attempt(
        &self,
        source: Arc<dyn DataSource>,
        info: &StepInfo<'_>,
        service: &ServicePolicies,
    ) -> Arc<dyn DataSource> {
        #[allow(unused_mut)]
        let mut timeout = TimeoutLayer::new(source, info.timeout);
        #[cfg(feature = "otel")]
        if let Some(tracer) = &self.tracer {
            timeout.spans = Some(Arc::new(AttemptSpans::new(tracer.clone(), info)));
        }
        let mut s: Arc<dyn DataSource> = Arc::new(timeout);
        for layer in self.host.iter().rev() {
            s = layer.layer(s, info);
        }
        if let Some((name, permits, limit)) = &service.bulkhead {
            s = Arc::new(breaker::BulkheadLayer {
                inner: s,
                service: name.clone(),
                permits: permits.clone(),
                limit: *limit,
            });
        }
        if let Some(b) = &service.breaker {
            s = Arc::new(breaker::BreakerLayer {
                inner: s,
                breaker: b.clone(),
            });
        }
        s
    }

    /// The whole stack for one step around `source`; `fallback` is what the step falls back
    /// to (a fallback source comes with its own [`attempt`](Self::attempt) stack).
    pub(crate) fn stack(
        &self,
        source: Arc<dyn DataSource>,
        fallback: Option<Fallback>,
        info: &StepInfo<'_>,
        policies: Policies,
        shared: &Shared,
    ) -> Arc<dyn DataSource> {
        let mut s = self.attempt(source, info, &policies.service);
        if let Some(policy) = info.retry.filter(|p| p.max_retries > 0) {
            s = Arc::new(RetryLayer::new(s, policy));
        }
        if let Some(c) = policies.cache {
            s = Arc::new(cache::CacheLayer {
                inner: s,
                store: c.store,
                flights: shared.flights.clone(),
                definition: c.definition,
                vary: c.vary,
                ttl: c.ttl,
                stale_if_error: c.policy.stale_if_error,
                error_ttl: c.policy.error_ttl,
            });
        }
        if info.step.on_not_found != OnNotFound::Fail {
            s = Arc::new(NotFoundLayer { inner: s });
        }
        if let Some(to) = fallback {
            s = Arc::new(FallbackLayer::new(s, to));
        }
        match &info.step.on_error {
            OnError::Skip => Arc::new(OnErrorLayer::skip(s)),
            OnError::Default(v) => Arc::new(OnErrorLayer::default_to(s, v.clone())),
            // `fail`, the default: the error goes to the engine.
            _ => s,
        }
    }
}

/// Ends each attempt at the step's timeout or the endpoint's deadline
/// ([`SourceCall::deadline`]), whichever comes first, with a [`SourceErrorKind::Timeout`]
/// error; counts the attempts for the trace.
#[derive(Clone)]
pub struct TimeoutLayer {
    inner: Arc<dyn DataSource>,
    timeout: Duration,
    /// The client span of each attempt, when the orchestrator has a tracer.
    #[cfg(feature = "otel")]
    spans: Option<Arc<AttemptSpans>>,
}

impl TimeoutLayer {
    /// `inner` with `timeout` per attempt.
    pub fn new(inner: Arc<dyn DataSource>, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            #[cfg(feature = "otel")]
            spans: None,
        }
    }
}

/// What each attempt's client span is made of: the tracer, its name and the attributes that
/// every attempt of the step shares.
#[cfg(feature = "otel")]
struct AttemptSpans {
    tracer: crate::telemetry::SdkTracer,
    name: std::borrow::Cow<'static, str>,
    attributes: Vec<opentelemetry::KeyValue>,
}

#[cfg(feature = "otel")]
impl AttemptSpans {
    fn new(tracer: crate::telemetry::SdkTracer, info: &StepInfo<'_>) -> Self {
        use opentelemetry::KeyValue;
        // A fallback's stack calls the fallback source, with its own type and operation.
        let (kind, operation) = match &info.step.fallback {
            Some(crate::plan::Fallback::Source {
                kind, operation, ..
            }) if info.fallback => (kind.as_str(), operation.as_deref()),
            _ => (info.step.kind.as_str(), info.step.operation.as_deref()),
        };
        let mut attributes = vec![
            KeyValue::new("orchestrator.source", info.step.name.clone()),
            KeyValue::new("orchestrator.source.type", kind.to_owned()),
        ];
        if let Some(op) = operation {
            attributes.push(KeyValue::new("orchestrator.operation", op.to_owned()));
        }
        if let Some(service) = info.service {
            attributes.push(KeyValue::new("orchestrator.service", service.to_owned()));
        }
        if info.fallback {
            attributes.push(KeyValue::new("orchestrator.fallback", true));
        }
        Self {
            tracer,
            name: format!("{kind} {}", operation.unwrap_or(&info.step.name)).into(),
            attributes,
        }
    }
}

impl fmt::Debug for TimeoutLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeoutLayer")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl DataSource for TimeoutLayer {
    fn fetch<'a, 'c, 'f>(
        &'a self,
        call: SourceCall<'c>,
    ) -> Pin<Box<dyn Future<Output = Result<Value, SourceError>> + Send + 'f>>
    where
        'a: 'f,
        'c: 'f,
    {
        call.record.attempt();
        // An attempt of a trace that is not sampled gets no span (and costs no context lookup).
        #[cfg(feature = "otel")]
        if let Some(spans) = &self.spans
            && call.trace.sampled()
        {
            let parent = opentelemetry::Context::current();
            if crate::telemetry::otel::may_sample(&parent) {
                return Box::pin(self.traced(spans, parent, call));
            }
        }
        Box::pin(Limited {
            fetch: self.inner.fetch(call),
            timeout: self.timeout,
            deadline: call.deadline,
            attempt: call.attempt,
            timer: None,
        })
    }
}

#[cfg(feature = "otel")]
impl TimeoutLayer {
    /// The attempt in a client span of its own, whose id the call's `traceparent` carries.
    async fn traced(
        &self,
        spans: &AttemptSpans,
        parent: opentelemetry::Context,
        call: SourceCall<'_>,
    ) -> Result<Value, SourceError> {
        use opentelemetry::KeyValue;
        use opentelemetry::trace::{FutureExt as _, SpanKind, TraceContextExt as _};
        let cx = crate::telemetry::otel::start(
            &spans.tracer,
            spans.name.clone(),
            SpanKind::Client,
            &parent,
        );
        let span = cx.span();
        if span.is_recording() {
            span.set_attributes(spans.attributes.iter().cloned());
            span.set_attribute(KeyValue::new(
                "orchestrator.attempt",
                i64::from(call.attempt),
            ));
        }
        let trace = call.trace.in_span(span.span_context(), true);
        let call = SourceCall {
            trace: &trace,
            ..call
        };
        let result = Limited {
            fetch: self.inner.fetch(call),
            timeout: self.timeout,
            deadline: call.deadline,
            attempt: call.attempt,
            timer: None,
        }
        .with_context(cx.clone())
        .await;
        crate::telemetry::otel::end(
            &cx,
            result
                .as_ref()
                .err()
                .map(|e| (e.kind.name(), e.message.clone())),
        );
        result
    }
}

/// An attempt with its time limit. The timer is set when the attempt first waits: a source
/// that answers at once (a cache, an in-process lookup) costs no clock read and no timer.
struct Limited<F> {
    fetch: F,
    timeout: Duration,
    deadline: Instant,
    attempt: u32,
    /// The timer and how long it allows, once the attempt has waited.
    timer: Option<(Pin<Box<tokio::time::Sleep>>, Duration)>,
}

impl<F: Future<Output = Result<Value, SourceError>> + Unpin> Future for Limited<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(result) = Pin::new(&mut self.fetch).poll(cx) {
            return Poll::Ready(result);
        }
        let (timeout, deadline, attempt) = (self.timeout, self.deadline, self.attempt);
        let (timer, allowed) = self.timer.get_or_insert_with(|| {
            let now = Instant::now();
            let limit = after(now, timeout).min(deadline);
            (Box::pin(tokio::time::sleep_until(limit)), limit - now)
        });
        if timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        let message = format!("attempt {attempt} did not finish within {allowed:?}");
        Poll::Ready(Err(SourceError::new(SourceErrorKind::Timeout, message)))
    }
}

/// Retries transient failures ([`SourceError::is_transient`]) up to the policy's
/// `max_retries`, after a uniformly random wait between half and all of
/// `backoff * 2^(n-1)` (capped at `max_backoff`). It does not retry when the wait would reach
/// the endpoint's deadline, nor when the step's retry budget is spent.
///
/// The budget (tower's [`TpsBudget`]) keeps retries from multiplying the load on a backend that
/// is already failing: over a 10 s window, retries may add 20 % to the step's calls, plus 10 a
/// second whatever the traffic. A retry the budget refuses leaves a note in the trace.
pub struct RetryLayer {
    inner: Arc<dyn DataSource>,
    policy: RetryPolicy,
    budget: TpsBudget,
}

impl RetryLayer {
    /// `inner` retried by `policy`, within a budget of its own.
    pub fn new(inner: Arc<dyn DataSource>, policy: RetryPolicy) -> Self {
        Self {
            inner,
            policy,
            budget: TpsBudget::new(Duration::from_secs(10), 10, 0.2),
        }
    }

    /// The wait before retry number `retry` (1 for the first).
    fn backoff(&self, retry: u32) -> Duration {
        let ceiling = self.policy.backoff_ceiling(retry);
        let half = ceiling / 2;
        half + Duration::from_nanos(fastrand::u64(
            ..=u64::try_from((ceiling - half).as_nanos()).unwrap_or(u64::MAX),
        ))
    }
}

impl fmt::Debug for RetryLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryLayer")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl DataSource for RetryLayer {
    async fn fetch(&self, mut call: SourceCall<'_>) -> Result<Value, SourceError> {
        self.budget.deposit();
        loop {
            let error = match self.inner.fetch(call).await {
                Ok(v) => return Ok(v),
                Err(error) => error,
            };
            let retry = call.attempt;
            if !error.is_transient() || retry > self.policy.max_retries {
                return Err(error);
            }
            let wait = self.backoff(retry);
            if after(Instant::now(), wait) >= call.deadline {
                return Err(error);
            }
            if !self.budget.withdraw() {
                call.notes
                    .push("not retried: the step's retry budget is spent");
                return Err(error);
            }
            tracing::debug!(attempt = retry, wait_ms = wait.as_millis() as u64, error = %error, "retrying");
            #[cfg(feature = "otel")]
            crate::telemetry::otel::event("retry", || {
                use opentelemetry::KeyValue;
                vec![
                    KeyValue::new("orchestrator.attempt", i64::from(retry) + 1),
                    KeyValue::new(
                        "orchestrator.retry.wait_ms",
                        i64::try_from(wait.as_millis()).unwrap_or(i64::MAX),
                    ),
                    KeyValue::new("error.type", error.kind.name()),
                ]
            });
            tokio::time::sleep(wait).await;
            call.attempt += 1;
        }
    }
}

/// What a step falls back to.
pub(crate) enum Fallback {
    /// Another source's stack (its own timeout, no retries), and the operation it is called
    /// with.
    Source {
        source: Arc<dyn DataSource>,
        operation: Option<String>,
        source_id: Option<String>,
    },
    /// A literal.
    Value(Value),
}

/// When the source fails, answers from a fallback source (called with its own operation and
/// the step's params, unless the endpoint's deadline has passed) or a literal; the trace records
/// the source's error and the outcome `fallback`. When the fallback source fails too, the
/// source's own error stands and the fallback's is noted.
pub struct FallbackLayer {
    inner: Arc<dyn DataSource>,
    to: Fallback,
}

impl FallbackLayer {
    pub(crate) fn new(inner: Arc<dyn DataSource>, to: Fallback) -> Self {
        Self { inner, to }
    }
}

impl fmt::Debug for FallbackLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let to = match &self.to {
            Fallback::Source { .. } => "source",
            Fallback::Value(_) => "value",
        };
        f.debug_struct("FallbackLayer")
            .field("to", &to)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl DataSource for FallbackLayer {
    async fn fetch(&self, call: SourceCall<'_>) -> Result<Value, SourceError> {
        let error = match self.inner.fetch(call).await {
            Ok(v) => return Ok(v),
            Err(error) => error,
        };
        let value = match &self.to {
            Fallback::Value(v) => v.clone(),
            Fallback::Source {
                source,
                operation,
                source_id,
            } => {
                if Instant::now() >= call.deadline {
                    call.notes
                        .push("the fallback was not tried: the deadline had passed");
                    return Err(error);
                }
                let fallback = SourceCall {
                    operation: operation.as_deref(),
                    source_id: source_id.as_deref(),
                    attempt: 1,
                    ..call
                };
                match source.fetch(fallback).await {
                    Ok(v) => v,
                    Err(e) => {
                        call.notes.push(format!("the fallback failed too: {e}"));
                        return Err(error);
                    }
                }
            }
        };
        #[cfg(feature = "otel")]
        crate::telemetry::otel::event("fallback", || {
            vec![opentelemetry::KeyValue::new(
                "error.type",
                error.kind.name(),
            )]
        });
        call.record.recover(Recovery::Fallback, error);
        Ok(value)
    }
}

/// `on_not_found: empty | 404`: an upstream's `404 Not Found` is nothing found, a null
/// result (the engine answers 404 for `on_not_found: 404`), before a fallback or `on_error`
/// sees it.
pub struct NotFoundLayer {
    inner: Arc<dyn DataSource>,
}

impl fmt::Debug for NotFoundLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotFoundLayer").finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl DataSource for NotFoundLayer {
    async fn fetch(&self, call: SourceCall<'_>) -> Result<Value, SourceError> {
        match self.inner.fetch(call).await {
            Err(e) if e.kind == SourceErrorKind::Upstream { status: 404 } => {
                call.notes.push("the upstream answered 404: nothing found");
                call.record.not_found();
                Ok(Value::Null)
            }
            other => other,
        }
    }
}

/// `on_error: skip` and `on_error: default`: a failure becomes null or the default value; the
/// trace records the error.
pub struct OnErrorLayer {
    inner: Arc<dyn DataSource>,
    default: Option<Value>,
}

impl OnErrorLayer {
    /// A failure becomes null (`on_error: skip`).
    pub fn skip(inner: Arc<dyn DataSource>) -> Self {
        Self {
            inner,
            default: None,
        }
    }

    /// A failure becomes `value` (`on_error: default`).
    pub fn default_to(inner: Arc<dyn DataSource>, value: Value) -> Self {
        Self {
            inner,
            default: Some(value),
        }
    }
}

impl fmt::Debug for OnErrorLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnErrorLayer")
            .field("default", &self.default)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl DataSource for OnErrorLayer {
    async fn fetch(&self, call: SourceCall<'_>) -> Result<Value, SourceError> {
        match self.inner.fetch(call).await {
            Ok(v) => Ok(v),
            Err(error) => {
                tracing::debug!(source = call.source, error = %error, "source failed");
                Ok(match &self.default {
                    Some(v) => {
                        call.record.recover(Recovery::Defaulted, error);
                        v.clone()
                    }
                    None => {
                        call.record.recover(Recovery::Skipped, error);
                        Value::Null
                    }
                })
            }
        }
    }
}
