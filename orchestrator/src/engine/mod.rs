//! The execution engine: a plan compiled once into per-endpoint DAGs, run per request.
//!
//! Each source starts as soon as the sources it reads have finished; independent sources run
//! concurrently on the calling task (no spawning), so an endpoint takes as long as its critical
//! path. No source starts once the budget has run out. The engine only schedules the DAG: each
//! step's timeout, retries, `fallback` and `on_error` are [layers](crate::layer) around its
//! source, built once when the plan is compiled. A source that still fails (`on_error: fail`,
//! the default) cancels the sources still running and fails the execution.
//!
//! A source whose `condition` is false is skipped: its result is null. Sources that read a
//! skipped or failed source still run and see null; guard them with a `condition` if they should
//! not.
//!
//! A `for_each` source runs its stack once per element of its list (`$item`, `$index`), at
//! most `concurrency` calls at once, elements with identical params once; its result is the
//! list of per-element results in input order, and its trace entry counts the elements
//! instead of listing them ([`plan::ForEach`]).

mod admission;
mod trace;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use serde_json::{Map, Value};
use tokio::time::Instant;
use tracing::Instrument as _;

pub use trace::{Outcome, SourceTrace, Trace, TraceError};

use crate::RequestContext;
use crate::ValidPlan;
use crate::expr::{Expr, Root, Scope, WithItem, truthy};
use crate::layer::{self, Policies, ServicePolicies, StepInfo};
use crate::plan::{self, Endpoint, OnNotFound, Plan};
use crate::source::{
    CacheStatus, CallRecord, CircuitState, DataSource, Notes, Recovery, Registry, SourceCall,
    SourceError, SourceErrorKind, TraceContext,
};

/// Why a plan could not be turned into an engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A source type used by the plan is not in the registry.
    #[error(
        "endpoint `{endpoint}`, source `{source_name}`: no source type `{kind}` is registered (registered: {registered}); \
         register a `DataSource` for it, or enable the crate feature that provides it"
    )]
    UnregisteredType {
        /// The endpoint.
        endpoint: String,
        /// The data source.
        source_name: String,
        /// The missing type.
        kind: String,
        /// What is registered.
        registered: String,
    },
    /// The cache store could not be built (`cache.store: redis` without the `redis` feature,
    /// a bad URL).
    #[error("cannot build the cache: {0}")]
    Cache(SourceError),
    /// A source factory failed (a pool or client could not be built).
    #[error("cannot build source type `{kind}`: {error}")]
    Source {
        /// The source type.
        kind: String,
        /// Why.
        error: SourceError,
    },
    /// The config of an `orchestrate!` plan, read again at start-up with the process's
    /// environment, does not load (a variable is missing, a value is invalid): its
    /// diagnostics.
    #[error("the plan's config, read at start-up:\n{0}")]
    StartUp(String),
}

/// Why an execution failed. Every variant but [`ExecuteError::UnknownEndpoint`] carries the
/// trace of what ran.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecuteError {
    /// No endpoint has this name.
    #[error("unknown endpoint `{0}`")]
    UnknownEndpoint(String),
    /// A required source failed.
    #[error("source `{source_name}` failed: {error}")]
    SourceFailed {
        /// The source that failed.
        source_name: String,
        /// Its last error (details for logs, not for clients).
        error: SourceError,
        /// What ran.
        trace: Box<Trace>,
    },
    /// The endpoint was at its `max_in_flight` with a full queue: nothing ran.
    #[error("endpoint `{endpoint}` is at its limit of executions in flight")]
    Overloaded {
        /// The endpoint.
        endpoint: String,
        /// When the client may try again.
        retry_after: Duration,
    },
    /// The request was past the endpoint's `rate_limit`: nothing ran.
    #[error("endpoint `{endpoint}` is past its rate limit")]
    RateLimited {
        /// The endpoint.
        endpoint: String,
        /// When a request may be admitted again.
        retry_after: Duration,
    },
    /// A source rejected a parameter whose value comes from the request alone (a path id that
    /// is not the integer the query binds, a `..` path segment): the client's mistake, 400.
    #[error(
        "endpoint `{endpoint}`: source `{source_name}` rejected parameter `{param}`: {message}"
    )]
    InvalidParameter {
        /// The endpoint.
        endpoint: String,
        /// The source.
        source_name: String,
        /// The parameter the source rejected.
        param: String,
        /// Why (for logs; the client is told which parameter).
        message: String,
        /// What ran.
        trace: Box<Trace>,
    },
    /// A source marked `required: true` found nothing: the endpoint answers 404.
    #[error("endpoint `{endpoint}`: source `{source_name}` found nothing")]
    NotFound {
        /// The endpoint.
        endpoint: String,
        /// The required source.
        source_name: String,
        /// What ran.
        trace: Box<Trace>,
    },
    /// The endpoint's budget ran out.
    #[error("endpoint `{endpoint}` did not finish within {budget:?}")]
    DeadlineExceeded {
        /// The endpoint.
        endpoint: String,
        /// Its budget.
        budget: Duration,
        /// What ran.
        trace: Box<Trace>,
    },
}

impl ExecuteError {
    /// The trace, when the execution started.
    pub fn trace(&self) -> Option<&Trace> {
        match self {
            Self::UnknownEndpoint(_) | Self::Overloaded { .. } | Self::RateLimited { .. } => None,
            Self::SourceFailed { trace, .. }
            | Self::DeadlineExceeded { trace, .. }
            | Self::InvalidParameter { trace, .. }
            | Self::NotFound { trace, .. } => Some(trace),
        }
    }

    /// When the client may try again, for a refused request (`Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Overloaded { retry_after, .. } | Self::RateLimited { retry_after, .. } => {
                Some(*retry_after)
            }
            _ => None,
        }
    }
}

/// A successful execution: the response and what happened.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Execution {
    /// The response document.
    pub response: Value,
    /// The execution trace.
    pub trace: Trace,
}

/// A plan compiled for execution, with its sources built. Immutable; one per config version.
pub struct Engine {
    plan: Arc<Plan>,
    version: u64,
    /// By position in the plan.
    endpoints: Vec<CompiledEndpoint>,
    /// `domain/name` of every endpoint, and the bare name of those whose name is unique.
    names: HashMap<String, usize>,
    /// Where traces and metrics go.
    #[cfg_attr(not(any(feature = "otel", feature = "metrics")), allow(dead_code))]
    instruments: crate::telemetry::Instruments,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("version", &self.version)
            .field("endpoints", &self.endpoints.len())
            .finish_non_exhaustive()
    }
}

/// One endpoint's DAG, ready to run.
struct CompiledEndpoint {
    index: usize,
    name: Arc<str>,
    names: Vec<Arc<str>>,
    steps: Vec<CompiledStep>,
    roots: Vec<usize>,
    primary: Option<usize>,
    budget: Duration,
    /// `max_in_flight` and `rate_limit`, when the endpoint has either.
    admission: Option<Box<admission::Admission>>,
    /// Its request metrics, when the orchestrator records metrics.
    #[cfg(feature = "metrics")]
    metrics: Option<crate::telemetry::metrics::EndpointMetrics>,
}

/// One source of a DAG: its source wrapped in its policy layers, and its edges.
struct CompiledStep {
    source: Arc<dyn DataSource>,
    kind: Arc<str>,
    /// Its metrics, when the orchestrator records metrics.
    #[cfg(feature = "metrics")]
    metrics: Option<crate::telemetry::metrics::StepMetrics>,
    deps: usize,
    dependents: Vec<usize>,
    /// For a `for_each` step with `batch: {size}`, how many elements share a call: its size,
    /// capped by an API operation's `batch.size`.
    batch: Option<usize>,
    /// For a `database` or `api` step whose operation takes many keys, the parameter they go
    /// into (`batch: {param}`).
    batch_param: Option<Arc<str>>,
}

/// Builds each source type once per integration scope.
struct SourceCache<'a> {
    plan: &'a Plan,
    registry: &'a Registry,
    built: HashMap<(Option<String>, String), Arc<dyn DataSource>>,
}

impl SourceCache<'_> {
    fn get(
        &mut self,
        e: &Endpoint,
        source_name: &str,
        kind: &str,
    ) -> Result<Arc<dyn DataSource>, BuildError> {
        let scope = e
            .domain
            .clone()
            .filter(|d| self.plan.integrations.domains.contains_key(d));
        let key = (scope, kind.to_owned());
        if let Some(src) = self.built.get(&key) {
            return Ok(src.clone());
        }
        let registry = self.registry;
        let factory = registry
            .factory(kind)
            .ok_or_else(|| BuildError::UnregisteredType {
                endpoint: e.name.clone(),
                source_name: source_name.to_owned(),
                kind: kind.to_owned(),
                registered: registry.kinds().join(", "),
            })?;
        let src = factory
            .build(self.plan.integrations_for(e))
            .map_err(|error| BuildError::Source {
                kind: kind.to_owned(),
                error,
            })?;
        self.built.insert(key, src.clone());
        Ok(src)
    }
}

impl Engine {
    /// Builds the sources the endpoints of `plan` use from `registry` (once per source type
    /// and integration scope), wraps each step's source in its policy [layers](crate::layer)
    /// and the registry's host layers, and compiles each endpoint's DAG. The plan was
    /// validated when it was made (see [`ValidPlan`]); this checks only that every source type
    /// it uses is registered. `version` is recorded in every trace.
    pub fn new(plan: ValidPlan, registry: &Registry, version: u64) -> Result<Self, BuildError> {
        if !plan.warnings().is_empty() {
            tracing::warn!(
                version,
                count = plan.warnings().len(),
                "the config loaded with warnings:\n{}",
                plan.warnings()
            );
        }
        let plan = plan.into_plan();
        let mut sources = SourceCache {
            plan: &plan,
            registry,
            built: HashMap::new(),
        };
        let mut endpoints = Vec::with_capacity(plan.endpoints.len());
        let mut names = HashMap::with_capacity(plan.endpoints.len() * 2);
        let mut bare: HashMap<&str, usize> = HashMap::new();
        for (index, e) in plan.endpoints.iter().enumerate() {
            endpoints.push(Self::compile(&plan, index, e, &mut sources)?);
            if let Some(d) = &e.domain {
                names.insert(format!("{d}/{}", e.name), index);
            }
            *bare.entry(e.name.as_str()).or_default() += 1;
        }
        for (index, e) in plan.endpoints.iter().enumerate() {
            if bare.get(e.name.as_str()) == Some(&1) {
                names.insert(e.name.clone(), index);
            }
        }
        drop(sources);
        Ok(Self {
            plan: Arc::new(plan),
            version,
            endpoints,
            names,
            instruments: registry.instruments().clone(),
        })
    }

    fn compile(
        plan: &Plan,
        index: usize,
        e: &Endpoint,
        sources: &mut SourceCache<'_>,
    ) -> Result<CompiledEndpoint, BuildError> {
        let deps = e.dependencies();
        let mut steps = Vec::with_capacity(e.sources.len());
        let integrations = plan.integrations_for(e);
        let shared = sources.registry.shared();
        for (i, s) in e.sources.iter().enumerate() {
            let source = sources.get(e, &s.name, &s.kind)?;
            let (operation, source_id) = (s.operation.as_deref(), s.source_id.as_deref());
            let (timeout, retry) = integrations.step_defaults(&s.kind, operation, source_id);
            let service = integrations.service_of(&s.kind, operation, source_id);
            let info = StepInfo {
                endpoint: e,
                step: s,
                timeout: s
                    .timeout
                    .or(timeout)
                    .unwrap_or(plan.settings.source_timeout),
                retry: s.retry.or(retry).or(plan.settings.default_retry),
                fallback: false,
                service: service.map(|svc| svc.id),
            };
            let mut policies = Policies {
                cache: None,
                service: service_policies(shared, &s.kind, service),
            };
            let cache = s
                .cache
                .or(service.and_then(|svc| service_cache(svc, operation)))
                .or_else(|| {
                    plan.settings
                        .default_cache
                        .filter(|_| reads_only(integrations, &s.kind, operation, source_id))
                });
            if let Some(cache) = cache.filter(|_| !s.no_cache) {
                let definition = definition(e, integrations, &s.kind, operation, source_id);
                policies.cache = Some(
                    shared
                        .cache_for(
                            cache,
                            &plan.settings.cache,
                            layer::definition_hash(&definition),
                            service
                                .map(|svc| svc.http().forward_headers.clone())
                                .unwrap_or_default(),
                        )
                        .map_err(BuildError::Cache)?,
                );
            }
            let fallback = match &s.fallback {
                None => None,
                Some(plan::Fallback::Value(v)) => Some(layer::Fallback::Value(v.clone())),
                Some(plan::Fallback::Source {
                    kind,
                    operation,
                    source_id,
                }) => {
                    let alternative = sources.get(e, &s.name, kind)?;
                    let service =
                        integrations.service_of(kind, operation.as_deref(), source_id.as_deref());
                    let info = StepInfo {
                        retry: None,
                        fallback: true,
                        service: service.map(|svc| svc.id),
                        ..info
                    };
                    let policies = service_policies(shared, kind, service);
                    Some(layer::Fallback::Source {
                        source: sources
                            .registry
                            .layers()
                            .attempt(alternative, &info, &policies),
                        operation: operation.clone(),
                        source_id: source_id.clone(),
                    })
                }
                Some(other) => unreachable!("every fallback of the plan is compiled: {other:?}"),
            };
            let keyed = integrations
                .keyed_batch(&s.kind, s.operation.as_deref(), s.source_id.as_deref())
                .flatten();
            steps.push(CompiledStep {
                source: sources
                    .registry
                    .layers()
                    .stack(source, fallback, &info, policies, shared),
                kind: s.kind.as_str().into(),
                #[cfg(feature = "metrics")]
                metrics: None,
                deps: deps[i].len(),
                dependents: Vec::new(),
                batch: s.for_each.as_ref().and_then(|e| e.batch).map(|size| {
                    keyed
                        .and_then(|k| k.max_size)
                        .map_or(size, |most| size.min(most))
                        .max(1)
                }),
                batch_param: keyed.map(|k| k.param.into()),
            });
        }
        for (i, ds) in deps.iter().enumerate() {
            for &d in ds {
                steps[d].dependents.push(i);
            }
        }
        let primary = match &e.primary_source {
            Some(p) => e.sources.iter().position(|s| &s.name == p),
            None if e.sources.len() == 1 => Some(0),
            None => None,
        };
        let name: Arc<str> = e.name.as_str().into();
        let names: Vec<Arc<str>> = e
            .sources
            .iter()
            .map(|s| Arc::from(s.name.as_str()))
            .collect();
        #[cfg(feature = "metrics")]
        let metrics = sources.registry.instruments().metrics.as_ref().map(|m| {
            for (step, source) in steps.iter_mut().zip(&names) {
                step.metrics = Some(m.step(&name, source, &step.kind));
            }
            let method = e.routes().first().map_or("GET", |r| r.method.as_str());
            m.endpoint(&name, method)
        });
        Ok(CompiledEndpoint {
            index,
            name,
            names,
            roots: (0..steps.len()).filter(|&i| steps[i].deps == 0).collect(),
            steps,
            primary,
            budget: e.timeout.unwrap_or(plan.settings.endpoint_timeout),
            admission: admission::Admission::of(e),
            #[cfg(feature = "metrics")]
            metrics,
        })
    }

    /// The plan this engine runs.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The plan this engine runs, shared.
    pub fn shared_plan(&self) -> Arc<Plan> {
        self.plan.clone()
    }

    /// The config version recorded in traces.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The request metrics of the endpoint at `index`.
    #[cfg(all(feature = "web", feature = "metrics"))]
    pub(crate) fn endpoint_metrics(
        &self,
        index: usize,
    ) -> Option<&crate::telemetry::metrics::EndpointMetrics> {
        self.endpoints.get(index)?.metrics.as_ref()
    }

    /// Where this engine's traces and metrics go.
    #[cfg_attr(
        not(any(feature = "metrics", all(feature = "web", feature = "otel"))),
        allow(dead_code)
    )]
    pub(crate) fn instruments(&self) -> &crate::telemetry::Instruments {
        &self.instruments
    }

    /// Runs endpoint `name` for `request`: `domain/name`, or the bare name when no other
    /// domain has an endpoint of that name.
    pub async fn execute(
        &self,
        name: &str,
        request: &RequestContext,
    ) -> Result<Execution, ExecuteError> {
        let index = *self
            .names
            .get(name)
            .ok_or_else(|| ExecuteError::UnknownEndpoint(name.to_owned()))?;
        self.execute_at(index, request).await
    }

    /// Runs the endpoint at `index` in the plan.
    pub(crate) async fn execute_at(
        &self,
        index: usize,
        request: &RequestContext,
    ) -> Result<Execution, ExecuteError> {
        let compiled = self
            .endpoints
            .get(index)
            .ok_or_else(|| ExecuteError::UnknownEndpoint(index.to_string()))?;
        let name = &*compiled.name;
        let endpoint = &self.plan.endpoints[compiled.index];
        let _turn = match &compiled.admission {
            None => None,
            Some(admission) => Some(admission.admit(request, compiled.budget).await.map_err(
                |refused| {
                    #[cfg(feature = "metrics")]
                    if let Some(m) = &self.instruments.metrics {
                        m.shed(&compiled.name, refused.reason());
                    }
                    refused.into_error(name)
                },
            )?),
        };
        let result = if tracing::enabled!(tracing::Level::DEBUG) {
            let span = tracing::debug_span!("execute", endpoint = name, request_id = %request.request_id, config_version = self.version);
            self.run(compiled, endpoint, request).instrument(span).await
        } else {
            self.run(compiled, endpoint, request).await
        };
        #[cfg(feature = "metrics")]
        if compiled.metrics.is_some() {
            let trace = match &result {
                Ok(e) => Some(&e.trace),
                Err(e) => e.trace(),
            };
            for (s, step) in trace
                .iter()
                .flat_map(|t| t.sources.iter().zip(&compiled.steps))
            {
                if let Some(m) = &step.metrics {
                    m.record(s);
                }
            }
        }
        result
    }

    async fn run(
        &self,
        compiled: &CompiledEndpoint,
        endpoint: &Endpoint,
        request: &RequestContext,
    ) -> Result<Execution, ExecuteError> {
        let start = Instant::now();
        let deadline = layer::after(start, compiled.budget);
        // One trace for every call this execution makes.
        let header = |name| request.headers.get(name).and_then(Value::as_str);
        let trace_context = TraceContext::continue_or_new(header("traceparent"));
        // Spans descend from the server span of the web layer, the host's current span or
        // the incoming `traceparent`.
        #[cfg(feature = "otel")]
        let otel = self.instruments.tracer.as_ref().map(|tracer| {
            use opentelemetry::trace::TraceContextExt as _;
            let current = opentelemetry::Context::current();
            let parent = if current.has_active_span() {
                current
            } else {
                crate::telemetry::otel::incoming(header("traceparent"), header("tracestate"))
            };
            (tracer, parent)
        });
        #[cfg(feature = "otel")]
        let trace_context = match &otel {
            Some((_, parent)) => {
                use opentelemetry::trace::TraceContextExt as _;
                trace_context.in_span(parent.span().span_context(), false)
            }
            None => trace_context,
        };
        let mut state = State::new(compiled);
        let run = Run {
            compiled,
            endpoint,
            request,
            trace: &trace_context,
            start,
            deadline,
            #[cfg(feature = "otel")]
            otel,
        };
        let outcome = run.drive(&mut state).await;
        let end = Instant::now();
        for t in &mut state.sources {
            if t.outcome == Outcome::Cancelled {
                t.duration = (end - start).saturating_sub(t.start);
            }
        }
        let trace = |state: State| Trace {
            endpoint: compiled.name.clone(),
            config_version: self.version,
            request_id: request.request_id.clone(),
            duration: end - start,
            sources: state.sources,
        };
        // `on_degraded: fail`: the first stood-in source fails the execution.
        let degraded = match endpoint.on_degraded {
            plan::OnDegraded::Fail => state.sources.iter().position(|t| t.degraded().is_some()),
            plan::OnDegraded::Answer => None,
        };
        match outcome {
            Ok(()) if degraded.is_some() => {
                let i = degraded.unwrap_or_default();
                let t = &state.sources[i];
                let error = t.error.as_ref().map_or_else(
                    || SourceError::new(SourceErrorKind::Internal, "degraded"),
                    |e| SourceError::new(e.kind, e.message.clone()),
                );
                let error = SourceError::new(
                    error.kind,
                    format!(
                        "{} (the answer was degraded to `{}`, and the endpoint has `on_degraded: fail`)",
                        error.message,
                        t.degraded().unwrap_or_default()
                    ),
                );
                Err(ExecuteError::SourceFailed {
                    source_name: endpoint.sources[i].name.clone(),
                    error,
                    trace: Box::new(trace(state)),
                })
            }
            Ok(()) => {
                let response = match &endpoint.response_mapping {
                    Some(mapping) => mapping.eval(&ExecScope {
                        request,
                        names: &compiled.names,
                        results: &state.results,
                    }),
                    None => compiled
                        .primary
                        .and_then(|p| state.results[p].take())
                        .unwrap_or(Value::Null),
                };
                Ok(Execution {
                    response,
                    trace: trace(state),
                })
            }
            Err(Stop::Failed(i, error))
                if error.kind == SourceErrorKind::Timeout && end >= deadline =>
            {
                // The endpoint's budget, not the source's own timeout, ended it.
                state.sources[i].outcome = Outcome::Cancelled;
                Err(ExecuteError::DeadlineExceeded {
                    endpoint: endpoint.name.clone(),
                    budget: compiled.budget,
                    trace: Box::new(trace(state)),
                })
            }
            Err(Stop::Failed(i, error)) => {
                let step = &endpoint.sources[i];
                // The client's mistake: a value taken from the request alone that the source
                // rejected, or an upstream refusing (`400`, `422`) a call built from the
                // request alone.
                let client_param = match error.kind {
                    SourceErrorKind::Rejected => error
                        .param()
                        .filter(|p| from_request_alone(step, p))
                        .map(str::to_owned),
                    SourceErrorKind::Upstream { status: 400 | 422 } => request_params(step),
                    _ => None,
                };
                Err(match client_param {
                    Some(param) => ExecuteError::InvalidParameter {
                        endpoint: endpoint.name.clone(),
                        source_name: step.name.clone(),
                        param,
                        message: error.message,
                        trace: Box::new(trace(state)),
                    },
                    None => ExecuteError::SourceFailed {
                        source_name: step.name.clone(),
                        error,
                        trace: Box::new(trace(state)),
                    },
                })
            }
            Err(Stop::Deadline) => Err(ExecuteError::DeadlineExceeded {
                endpoint: endpoint.name.clone(),
                budget: compiled.budget,
                trace: Box::new(trace(state)),
            }),
            Err(Stop::NotFound(i)) => Err(ExecuteError::NotFound {
                endpoint: endpoint.name.clone(),
                source_name: endpoint.sources[i].name.clone(),
                trace: Box::new(trace(state)),
            }),
        }
    }
}

/// The names of `step`'s params (`, `-separated) when they are built from the request and
/// literals alone, at least one from the request: then an upstream that refuses the call
/// refuses the client's values.
fn request_params(step: &plan::SourceStep) -> Option<String> {
    let mut names = Vec::new();
    for (name, template) in step.params.iter() {
        match reads_only_request(|f| template.visit_references(f)) {
            Some(true) => names.push(name.as_str()),
            Some(false) => return None,
            None => {}
        }
    }
    if let Some(whole) = &step.params_from {
        match reads_only_request(|f| whole.visit_references(f)) {
            Some(true) => names.push("params"),
            Some(false) => return None,
            None => {}
        }
    }
    (!names.is_empty()).then(|| names.join(", "))
}

/// Whether what `visit` visits reads the request and nothing else (`None`: reads nothing).
fn reads_only_request(visit: impl FnOnce(&mut dyn FnMut(&crate::expr::Reference))) -> Option<bool> {
    let (mut any, mut only_request) = (false, true);
    visit(&mut |r| {
        any = true;
        only_request &= matches!(r.root, crate::expr::Root::Request(_));
    });
    any.then_some(only_request)
}

/// Whether `step` takes parameter `param` from the request and nothing else: then a value the
/// source rejects is the client's mistake.
fn from_request_alone(step: &plan::SourceStep, param: &str) -> bool {
    let read = match step.params.iter().find(|(name, _)| name == param) {
        Some((_, template)) => reads_only_request(|f| template.visit_references(f)),
        None => match &step.params_from {
            Some(whole) => reads_only_request(|f| whole.visit_references(f)),
            None => None,
        },
    };
    read == Some(true)
}

/// Whether a result counts as "nothing found" for a `required` source: null, no rows, an
/// object without a value (a feature lookup of an unknown entity answers every feature null).
fn found_nothing(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.values().all(Value::is_null),
        _ => false,
    }
}

/// The circuit breaker and bulkhead of the HTTP service a step of type `kind` calls.
fn service_policies(
    shared: &layer::Shared,
    kind: &str,
    service: Option<plan::Service<'_>>,
) -> ServicePolicies {
    let Some(svc) = service else {
        return ServicePolicies::default();
    };
    let http = svc.http();
    if http.circuit_breaker.is_none() && http.max_concurrent.is_none() {
        return ServicePolicies::default();
    }
    let url = match svc.entry {
        plan::ServiceEntry::Api(a) => a.base_url.expose(),
        plan::ServiceEntry::Feast(f) => f.url.expose(),
        plan::ServiceEntry::Ml(m) => m.base_url.expose(),
        _ => "",
    };
    // A domain may define a service of the same name elsewhere: the URL tells them apart.
    let name = format!("{kind}/{}", svc.id);
    let key = format!("{name} {url}");
    ServicePolicies::of(
        shared,
        &key,
        &name,
        http.circuit_breaker,
        http.max_concurrent,
    )
}

/// The `cache:` of the service a step calls, for that step: every feature lookup and
/// inference, but among API operations only `GET`s (caching a `POST` takes the step's own
/// `cache:`).
fn service_cache(service: plan::Service<'_>, operation: Option<&str>) -> Option<plan::CachePolicy> {
    let cache = service.http().cache?;
    match service.entry {
        plan::ServiceEntry::Api(api) => {
            let op = api.operations.get(operation?)?;
            (op.method == plan::HttpMethod::Get).then_some(cache)
        }
        _ => Some(cache),
    }
}

/// Whether a step only reads, so the global default cache (`performance.cache_enabled`) may
/// keep its answers: feature lookups, inferences, API `GET`s and SQL `SELECT`s. Host types
/// and `direct` are never cached by default.
fn reads_only(
    integrations: &plan::Integrations,
    kind: &str,
    operation: Option<&str>,
    source_id: Option<&str>,
) -> bool {
    match kind {
        "feast" | "ml" => true,
        "api" => integrations
            .service_of(kind, operation, source_id)
            .is_some_and(|svc| service_cache_applies(svc, operation)),
        "database" => operation
            .and_then(|o| integrations.database.operations.get(o))
            .is_some_and(|op| {
                let q = op.query.trim_start().to_ascii_lowercase();
                q.starts_with("select") || q.starts_with("with")
            }),
        _ => false,
    }
}

/// Whether an API operation is a `GET`.
fn service_cache_applies(service: plan::Service<'_>, operation: Option<&str>) -> bool {
    match service.entry {
        plan::ServiceEntry::Api(api) => operation
            .and_then(|o| api.operations.get(o))
            .is_some_and(|op| op.method == plan::HttpMethod::Get),
        _ => true,
    }
}

/// Everything a call of a step depends on besides its params, for the cache key: its type,
/// operation and the integration entry it resolves to (so a reload that changes any of them
/// never meets old entries), or its domain scope for types without integration files.
fn definition(
    e: &Endpoint,
    integrations: &plan::Integrations,
    kind: &str,
    operation: Option<&str>,
    source_id: Option<&str>,
) -> String {
    use std::fmt::Write as _;
    let mut out = format!("{kind}\0{operation:?}\0{source_id:?}\0");
    if let Some(svc) = integrations.service_of(kind, operation, source_id) {
        let _ = write!(out, "{:?}", svc.entry);
    } else if kind == "database"
        && let Some(op) = operation.and_then(|o| integrations.database.operations.get(o))
    {
        let db = &integrations.database.sources;
        let connection = match &op.source_id {
            Some(id) => db.get(id),
            None => db.values().next(),
        };
        let _ = write!(out, "{op:?}\0{connection:?}");
    } else {
        let _ = write!(out, "{:?}", e.domain);
    }
    out
}

/// One execution's fixed inputs, shared by the DAG driver and every source call.
struct Run<'a> {
    compiled: &'a CompiledEndpoint,
    endpoint: &'a Endpoint,
    request: &'a RequestContext,
    /// The W3C trace every call of the execution shares.
    trace: &'a TraceContext,
    start: Instant,
    deadline: Instant,
    /// The tracer and the context the sources' spans descend from.
    #[cfg(feature = "otel")]
    otel: Option<(&'a crate::telemetry::SdkTracer, opentelemetry::Context)>,
}

/// Why [`Run::drive`] stopped early.
enum Stop {
    /// A required source failed: its index and last error.
    Failed(usize, SourceError),
    /// The endpoint's budget ran out.
    Deadline,
    /// A `required` source found nothing.
    NotFound(usize),
}

/// What one source call ended with.
struct Finished {
    index: usize,
    attempts: u32,
    cache: Option<CacheStatus>,
    circuit: Option<CircuitState>,
    notes: Vec<String>,
    recovered: Option<(Recovery, SourceError)>,
    /// The upstream's 404 was read as nothing found (`on_not_found`).
    not_found: bool,
    /// Some elements of a `for_each` source were stood in for.
    partial: bool,
    result: Result<Value, SourceError>,
}

/// One execution's results and trace entries, by source index.
struct State {
    results: Vec<Option<Value>>,
    /// How many of each source's dependencies have not finished.
    remaining: Vec<usize>,
    sources: Vec<SourceTrace>,
    /// Sources whose dependencies have all finished, not started yet.
    ready: Vec<usize>,
    /// Set once the budget has run out: no source starts any more.
    out_of_time: bool,
    /// A `required` source skipped by its condition.
    not_found: Option<usize>,
}

impl State {
    fn new(c: &CompiledEndpoint) -> Self {
        Self {
            results: vec![None; c.steps.len()],
            remaining: c.steps.iter().map(|s| s.deps).collect(),
            sources: c
                .steps
                .iter()
                .zip(&c.names)
                .map(|(s, name)| SourceTrace {
                    name: name.clone(),
                    kind: s.kind.clone(),
                    start: Duration::ZERO,
                    duration: Duration::ZERO,
                    attempts: 0,
                    outcome: Outcome::NotRun,
                    error: None,
                    notes: Vec::new(),
                    cache: None,
                    circuit: None,
                })
                .collect(),
            ready: c.roots.iter().rev().copied().collect(),
            out_of_time: false,
            not_found: None,
        }
    }

    /// Marks `done` finished: its dependents whose dependencies have all finished are ready.
    fn release(&mut self, c: &CompiledEndpoint, done: usize) {
        for &d in &c.steps[done].dependents {
            self.remaining[d] -= 1;
            if self.remaining[d] == 0 {
                self.ready.push(d);
            }
        }
    }
}

impl Run<'_> {
    fn scope<'s>(&'s self, state: &'s State) -> ExecScope<'s> {
        ExecScope {
            request: self.request,
            names: &self.compiled.names,
            results: &state.results,
        }
    }

    /// Runs the DAG to completion, or stops at the first failure of a required source or when
    /// the budget runs out.
    ///
    /// Every attempt ends by the deadline on its own
    /// ([`TimeoutLayer`](crate::layer::TimeoutLayer)); the one timer here ends what a host
    /// layer might keep waiting past it, and is built only when a source waits at all.
    async fn drive(&self, state: &mut State) -> Result<(), Stop> {
        let mut running = FuturesUnordered::new();
        let mut timer: Option<Pin<Box<tokio::time::Sleep>>> = None;
        loop {
            while let Some((i, work)) = self.next_to_start(state) {
                running.push(self.work(i, work));
            }
            if let Some(i) = state.not_found {
                return Err(Stop::NotFound(i));
            }
            let next = std::future::poll_fn(|cx| {
                // Sources first: one that answers as the deadline passes still counts.
                if let Poll::Ready(next) = running.poll_next_unpin(cx) {
                    return Poll::Ready(Ok(next));
                }
                let sleep =
                    timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(self.deadline)));
                match sleep.as_mut().poll(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(()) => Poll::Ready(Err(Stop::Deadline)),
                }
            });
            let Some(finished) = next.await? else {
                return if state.out_of_time {
                    Err(Stop::Deadline)
                } else {
                    Ok(())
                };
            };
            let index = finished.index;
            self.finish(state, finished)?;
            state.release(self.compiled, index);
        }
    }

    /// The next ready source to start, with its params. Sources whose condition is false are
    /// skipped on the way; once the budget has run out none starts (they stay `NotRun`).
    fn next_to_start(&self, state: &mut State) -> Option<(usize, Work)> {
        while let Some(i) = state.ready.pop() {
            let step = &self.endpoint.sources[i];
            let at = Instant::now();
            let now = at - self.start;
            if let Some(cond) = &step.condition
                && !(step.for_each.is_some() && per_element(cond))
                && !truthy(&cond.eval(&self.scope(state)))
            {
                state.sources[i].start = now;
                state.sources[i].outcome = Outcome::Skipped;
                if step.required {
                    state.not_found = Some(i);
                    return None;
                }
                state.release(self.compiled, i);
                continue;
            }
            if state.out_of_time || at >= self.deadline {
                state.out_of_time = true;
                continue;
            }
            let work = match &step.for_each {
                None => Work::One(params_of(step, &self.scope(state))),
                Some(each) => elements(step, &each.items, &self.scope(state)),
            };
            state.sources[i].start = now;
            state.sources[i].outcome = Outcome::Cancelled;
            return Some((i, work));
        }
        None
    }

    /// Records how source `index` ended; a failure of a required source stops the execution.
    fn finish(&self, state: &mut State, finished: Finished) -> Result<(), Stop> {
        let Finished {
            index: i,
            attempts,
            cache,
            circuit,
            notes,
            recovered,
            not_found,
            partial,
            result,
        } = finished;
        let t = &mut state.sources[i];
        t.attempts = attempts;
        t.notes = notes;
        t.cache = cache;
        t.circuit = circuit;
        t.duration = (Instant::now() - self.start).saturating_sub(t.start);
        let value = match result {
            Ok(value) => value,
            Err(error) => {
                t.error = Some(TraceError {
                    kind: error.kind,
                    message: error.message.clone(),
                });
                t.outcome = Outcome::Failed;
                return Err(Stop::Failed(i, error));
            }
        };
        let (outcome, transform) = match recovered {
            None if partial => (Outcome::Partial, true),
            None => (Outcome::Ok, true),
            Some((how, error)) => {
                tracing::warn!(
                    request_id = %self.request.request_id,
                    endpoint = %self.endpoint.name,
                    source = %self.endpoint.sources[i].name,
                    degraded = how.name(),
                    error = ?error.message,
                    "source failed; its result was stood in for"
                );
                t.error = Some(TraceError {
                    kind: error.kind,
                    message: error.message,
                });
                match how {
                    Recovery::Skipped => (Outcome::FailedSkipped, false),
                    Recovery::Defaulted => (Outcome::FailedDefaulted, false),
                    // A fallback's answer stands in for the source's: it is transformed.
                    Recovery::Fallback => (Outcome::Fallback, true),
                    // An expired answer of the source itself: transformed like a fresh one.
                    Recovery::Stale => (Outcome::Stale, true),
                }
            }
        };
        t.outcome = outcome;
        let timed_out = t
            .error
            .as_ref()
            .is_some_and(|e| e.kind == SourceErrorKind::Timeout);
        if outcome != Outcome::Ok && timed_out && Instant::now() >= self.deadline {
            // The budget ran out under it: a policy may stand in for the source's result, but
            // not for the endpoint's time, so the execution ends as "deadline exceeded".
            state.out_of_time = true;
        }
        if outcome == Outcome::FailedSkipped {
            return Ok(());
        }
        // Judged on the source's own answer, before its transform filters it.
        let step = &self.endpoint.sources[i];
        let answers_404 = not_found && step.on_not_found == OnNotFound::Respond;
        if (step.required || answers_404) && found_nothing(&value) {
            state.results[i] = Some(value);
            return Err(Stop::NotFound(i));
        }
        let steps = &self.endpoint.sources[i].transform;
        let value = if transform && !steps.is_empty() {
            crate::transform::apply(steps, value, &self.scope(state))
        } else {
            value
        };
        state.results[i] = Some(value);
        Ok(())
    }

    /// Runs what [`Run::next_to_start`] prepared for source `index`.
    async fn work(&self, index: usize, work: Work) -> Finished {
        match work {
            Work::One(params) => self.call(index, params).await,
            Work::Each(elements) => self.call_each(index, elements).await,
            Work::Invalid(error) => Finished {
                index,
                attempts: 0,
                cache: None,
                circuit: None,
                notes: Vec::new(),
                recovered: None,
                not_found: false,
                partial: false,
                result: Err(error),
            },
        }
    }

    /// Calls source `index`'s stack once per distinct element params, at most its
    /// `concurrency` at once, and puts the results together in the elements' order.
    async fn call_each(&self, index: usize, elements: Vec<Option<Map<String, Value>>>) -> Finished {
        let step = &self.endpoint.sources[index];
        let concurrency = step
            .for_each
            .as_ref()
            .map_or(plan::ForEach::DEFAULT_CONCURRENCY, |e| e.concurrency)
            .max(1);
        // Elements with identical params share one call.
        let mut distinct: Vec<Map<String, Value>> = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        let slots: Vec<Option<usize>> = elements
            .into_iter()
            .map(|params| {
                let params = params?;
                let key = serde_json::to_string(&params).unwrap_or_default();
                Some(*seen.entry(key).or_insert_with(|| {
                    distinct.push(params);
                    distinct.len() - 1
                }))
            })
            .collect();
        let batch = self.compiled.steps[index].batch;
        let (calls, finished) = match batch {
            None => {
                let calls = distinct.len();
                let finished: Vec<Finished> = futures::stream::iter(distinct)
                    .map(|params| self.call(index, params))
                    .buffered(concurrency)
                    .collect()
                    .await;
                (calls, finished)
            }
            Some(size) => {
                let chunks: Vec<Vec<Map<String, Value>>> = chunked(distinct, size);
                let calls = chunks.len();
                let kind = step.kind.as_str();
                let list = self.compiled.steps[index].batch_param.as_deref();
                let batches: Vec<Vec<Finished>> = futures::stream::iter(chunks)
                    .map(|chunk| async move {
                        let n = chunk.len();
                        split(self.call(index, merged(kind, list, chunk)).await, n)
                    })
                    .buffered(concurrency)
                    .collect()
                    .await;
                (calls, batches.into_iter().flatten().collect())
            }
        };
        combine(index, &slots, calls, batch, finished)
    }

    /// Calls source `index`'s stack once.
    async fn call(&self, index: usize, params: Map<String, Value>) -> Finished {
        let step = &self.endpoint.sources[index];
        let notes = Notes::default();
        let record = CallRecord::default();
        let call = SourceCall {
            endpoint: &self.endpoint.name,
            source: &step.name,
            operation: step.operation.as_deref(),
            source_id: step.source_id.as_deref(),
            params: &params,
            request: self.request,
            trace: self.trace,
            attempt: 1,
            deadline: self.deadline,
            notes: &notes,
            record: &record,
        };
        let source = &self.compiled.steps[index].source;
        #[cfg(feature = "otel")]
        if let Some((tracer, parent)) = &self.otel
            && crate::telemetry::otel::may_sample(parent)
        {
            return self.traced(tracer, parent, index, call).await;
        }
        let result = if tracing::enabled!(tracing::Level::DEBUG) {
            // A span nobody listens to still costs a little to build and per poll.
            let span = tracing::debug_span!(
                "source",
                source = %step.name,
                kind = %step.kind,
                cache = tracing::field::Empty
            );
            source.fetch(call).instrument(span).await
        } else {
            source.fetch(call).await
        };
        Finished::of(index, call, result)
    }
}

impl Finished {
    /// How source `index` ended: its result and what `call`'s layers recorded.
    fn of(index: usize, call: SourceCall<'_>, result: Result<Value, SourceError>) -> Self {
        Self {
            index,
            attempts: call.record.attempts(),
            cache: call.record.cache(),
            circuit: call.record.circuit(),
            notes: call.notes.take(),
            recovered: call.record.take_recovery(),
            not_found: call.record.was_not_found(),
            partial: false,
            result,
        }
    }
}

#[cfg(feature = "otel")]
impl Run<'_> {
    /// [`Run::call`] in a span of the source, the parent of its attempts' client spans; the
    /// cache, retry, circuit breaker and fallback layers add their events to it.
    async fn traced(
        &self,
        tracer: &crate::telemetry::SdkTracer,
        parent: &opentelemetry::Context,
        index: usize,
        call: SourceCall<'_>,
    ) -> Finished {
        use opentelemetry::KeyValue;
        use opentelemetry::trace::{FutureExt as _, SpanKind, TraceContextExt as _};
        let step = &self.endpoint.sources[index];
        let cx = crate::telemetry::otel::start(
            tracer,
            format!("source {}", step.name),
            SpanKind::Internal,
            parent,
        );
        let span = cx.span();
        let recording = span.is_recording();
        if recording {
            span.set_attributes([
                KeyValue::new("orchestrator.endpoint", self.endpoint.name.clone()),
                KeyValue::new("orchestrator.source", step.name.clone()),
                KeyValue::new("orchestrator.source.type", step.kind.clone()),
            ]);
            if let Some(op) = &step.operation {
                span.set_attribute(KeyValue::new("orchestrator.operation", op.clone()));
            }
        }
        let result = self.compiled.steps[index]
            .source
            .fetch(call)
            .with_context(cx.clone())
            .await;
        let finished = Finished::of(index, call, result);
        if recording {
            let outcome = match (&finished.recovered, &finished.result) {
                (_, Err(_)) => "failed",
                (None, Ok(_)) => "ok",
                (Some((how, _)), Ok(_)) => how.name(),
            };
            span.set_attributes([
                KeyValue::new("orchestrator.source.outcome", outcome),
                KeyValue::new("orchestrator.source.attempts", i64::from(finished.attempts)),
            ]);
            if let Some(c) = finished.cache {
                span.set_attribute(KeyValue::new("orchestrator.cache", c.as_str()));
            }
            if let Some((_, e)) = &finished.recovered {
                span.set_attribute(KeyValue::new("orchestrator.source.error", e.kind.name()));
            }
        }
        crate::telemetry::otel::end(
            &cx,
            finished
                .result
                .as_ref()
                .err()
                .map(|e| (e.kind.name(), e.message.clone())),
        );
        finished
    }
}

/// What a source is started with.
enum Work {
    /// One call with these params.
    One(Map<String, Value>),
    /// A `for_each` source: the params of each element, `None` where its condition is false.
    Each(Vec<Option<Map<String, Value>>>),
    /// A `for_each` list that is not a list: the source fails with this.
    Invalid(SourceError),
}

/// A step's params in `scope`.
fn params_of(step: &plan::SourceStep, scope: &dyn Scope) -> Map<String, Value> {
    match &step.params_from {
        None => step.params.eval(scope),
        Some(x) => match x.eval(scope).into_owned() {
            Value::Object(m) => m,
            _ => Map::new(),
        },
    }
}

/// Whether a condition reads the element (`$item`, `$index`): then a `for_each` source judges
/// it per element; otherwise once, for the whole source.
fn per_element(cond: &Expr) -> bool {
    let mut found = false;
    cond.visit_references(&mut |r| found |= matches!(r.root, Root::Item | Root::Index));
    found
}

/// The params of each element of a `for_each` list.
fn elements(step: &plan::SourceStep, items: &Expr, scope: &dyn Scope) -> Work {
    let list = items.eval(scope);
    let list = match &*list {
        Value::Null => return Work::Each(Vec::new()),
        Value::Array(list) => list,
        other => {
            return Work::Invalid(SourceError::new(
                SourceErrorKind::Rejected,
                format!(
                    "`for_each` of `{}` gave {}, not a list",
                    step.name,
                    match other {
                        Value::Object(_) => "an object",
                        Value::String(_) => "a string",
                        Value::Number(_) => "a number",
                        _ => "a boolean",
                    }
                ),
            ));
        }
    };
    let cond = step.condition.as_ref().filter(|c| per_element(c));
    Work::Each(
        list.iter()
            .enumerate()
            .map(|(k, item)| {
                let scope = WithItem {
                    inner: scope,
                    item,
                    index: Some(k),
                };
                match cond {
                    Some(c) if !truthy(&c.eval(&scope)) => None,
                    _ => Some(params_of(step, &scope)),
                }
            })
            .collect(),
    )
}

/// `items` in runs of at most `size`.
fn chunked<T>(items: Vec<T>, size: usize) -> Vec<Vec<T>> {
    let mut out = Vec::with_capacity(items.len().div_ceil(size));
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        out.push(items.by_ref().take(size).collect());
    }
    out
}

/// The params of one call for a batch of elements: for `feast`, each entity key's values as
/// a list (several entities in one lookup); for `ml`, the elements as `rows` of one tensor;
/// for `database` and `api`, the first element's params with its `list` param holding every
/// element's value (the validator makes sure only that one varies).
fn merged(kind: &str, list: Option<&str>, chunk: Vec<Map<String, Value>>) -> Map<String, Value> {
    let mut m = Map::new();
    if let Some(list) = list {
        let mut values = Vec::with_capacity(chunk.len());
        for mut params in chunk {
            values.push(params.remove(list).unwrap_or(Value::Null));
            if m.is_empty() {
                m = params;
            }
        }
        m.insert(list.to_owned(), Value::Array(values));
        return m;
    }
    if kind == "ml" {
        m.insert(
            "rows".into(),
            Value::Array(chunk.into_iter().map(Value::Object).collect()),
        );
        return m;
    }
    let n = chunk.len();
    for (i, params) in chunk.into_iter().enumerate() {
        for (k, v) in params {
            let column = m
                .entry(k)
                .or_insert_with(|| Value::Array(vec![Value::Null; n]));
            if let Value::Array(values) = column {
                values[i] = v;
            }
        }
    }
    m
}

/// A batch call's [`Finished`] as one per element: its answer split in order (it must be a
/// list of one result per element), its failure or stand-in copied to each, its attempts,
/// notes and cache status kept once.
fn split(batch: Finished, n: usize) -> Vec<Finished> {
    let Finished {
        index,
        attempts,
        cache,
        circuit,
        notes,
        recovered,
        not_found,
        partial,
        result,
    } = batch;
    let copy = |e: &SourceError| SourceError::new(e.kind, e.message.clone());
    let results: Vec<Result<Value, SourceError>> = match result {
        Ok(Value::Array(items)) if items.len() == n => items.into_iter().map(Ok).collect(),
        Ok(one) if n == 1 && !one.is_array() => vec![Ok(one)],
        // A stand-in for the whole batch (`on_error: skip` / `default`) stands in for each.
        Ok(v) if recovered.is_some() => (0..n).map(|_| Ok(v.clone())).collect(),
        Ok(v) => {
            let answered = match &v {
                Value::Array(items) => format!("{} results", items.len()),
                _ => "a single value".to_owned(),
            };
            let e = SourceError::new(
                SourceErrorKind::InvalidResponse,
                format!("a batch of {n} elements was answered with {answered}"),
            );
            (0..n).map(|_| Err(copy(&e))).collect()
        }
        Err(e) => (0..n).map(|_| Err(copy(&e))).collect(),
    };
    let mut notes = Some(notes);
    results
        .into_iter()
        .enumerate()
        .map(|(i, result)| Finished {
            index,
            attempts: if i == 0 { attempts } else { 0 },
            cache,
            circuit,
            notes: if i == 0 {
                notes.take().unwrap_or_default()
            } else {
                Vec::new()
            },
            recovered: recovered.as_ref().map(|(how, e)| (*how, copy(e))),
            not_found,
            partial,
            result,
        })
        .collect()
}

/// One [`Finished`] for a `for_each` source from its calls (`finished`, one per distinct
/// params; `slots` maps each element to its call): the results in the elements' order, the
/// first failure that `on_error` let through, and counts in the notes.
fn combine(
    index: usize,
    slots: &[Option<usize>],
    calls: usize,
    batch: Option<usize>,
    finished: Vec<Finished>,
) -> Finished {
    let mut notes = Vec::new();
    let mut attempts = 0;
    let mut circuit = None;
    let mut caches: Vec<Option<CacheStatus>> = Vec::with_capacity(finished.len());
    let (mut skipped, mut defaulted, mut other_recovery) = (0usize, 0usize, 0usize);
    let mut failure: Option<(usize, SourceError)> = None;
    let mut results: Vec<Value> = Vec::with_capacity(finished.len());
    let itemised = slots.len() <= plan::ForEach::ITEM_NOTES_UP_TO;
    let finished_len = finished.len();
    let element_of = |call: usize| slots.iter().position(|s| *s == Some(call)).unwrap_or(call);
    for (call, f) in finished.into_iter().enumerate() {
        attempts += f.attempts;
        circuit = f.circuit.or(circuit);
        caches.push(f.cache);
        if itemised {
            notes.extend(
                f.notes
                    .into_iter()
                    .map(|n| format!("[{}] {n}", element_of(call))),
            );
        }
        if let Some((how, error)) = &f.recovered {
            match how {
                Recovery::Skipped => skipped += 1,
                Recovery::Defaulted => defaulted += 1,
                Recovery::Fallback | Recovery::Stale => other_recovery += 1,
            }
            if itemised {
                notes.push(format!(
                    "[{}] {} ({}): {}",
                    element_of(call),
                    how.name(),
                    error.kind.name(),
                    error.message
                ));
            }
        }
        match f.result {
            Ok(v) => results.push(v),
            Err(e) => {
                if failure.is_none() {
                    failure = Some((element_of(call), e));
                }
                results.push(Value::Null);
            }
        }
    }
    let conditioned = slots.iter().filter(|s| s.is_none()).count();
    let mut summary = format!("for_each: {} elements, {calls} calls", slots.len());
    if let Some(size) = batch {
        summary += &format!(" in batches of up to {size}");
    }
    if conditioned > 0 {
        summary += &format!(", {conditioned} skipped by the condition");
    }
    let shared = slots.len() - conditioned - finished_len;
    if shared > 0 {
        summary += &format!(", {shared} sharing another element's call");
    }
    for (n, what) in [
        (skipped, "failed and skipped"),
        (defaulted, "failed and defaulted"),
        (other_recovery, "answered by a fallback or a stale entry"),
    ] {
        if n > 0 {
            summary += &format!(", {n} {what}");
        }
    }
    notes.insert(0, summary);
    let cache = match caches.first() {
        Some(first) if caches.iter().all(|c| c == first) => *first,
        _ => None,
    };
    let result = match failure {
        Some((element, mut e)) => {
            e.message = format!("element {element}: {}", e.message);
            Err(e)
        }
        None => {
            // Each call's result is moved to its last element, copied to the others.
            let mut uses = vec![0usize; results.len()];
            slots.iter().flatten().for_each(|&k| uses[k] += 1);
            let mut results: Vec<Option<Value>> = results.into_iter().map(Some).collect();
            Ok(Value::Array(
                slots
                    .iter()
                    .map(|s| match *s {
                        None => Value::Null,
                        Some(k) => {
                            uses[k] -= 1;
                            if uses[k] == 0 {
                                results[k].take().unwrap_or_default()
                            } else {
                                results[k].clone().unwrap_or_default()
                            }
                        }
                    })
                    .collect(),
            ))
        }
    };
    Finished {
        index,
        attempts,
        cache,
        circuit,
        notes,
        recovered: None,
        not_found: false,
        partial: skipped + defaulted + other_recovery > 0,
        result,
    }
}

struct ExecScope<'a> {
    request: &'a RequestContext,
    names: &'a [Arc<str>],
    results: &'a [Option<Value>],
}

impl Scope for ExecScope<'_> {
    fn request(&self) -> &RequestContext {
        self.request
    }

    fn source(&self, name: &str) -> Option<&Value> {
        let i = self.names.iter().position(|n| &**n == name)?;
        self.results[i].as_ref()
    }
}
