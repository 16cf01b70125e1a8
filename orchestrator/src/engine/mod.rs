//! The execution engine: a plan compiled once into per-endpoint DAGs, run per request.
//!
//! Each source starts as soon as the sources it reads have finished; independent sources run
//! concurrently on the calling task (no spawning), so an endpoint takes as long as its critical
//! path. No source starts once the budget has run out. Each attempt gets the source's timeout,
//! capped by what is left of the endpoint's budget (one timer per execution serves them all);
//! transient failures of sources with `retries` are retried after an exponential backoff with
//! jitter (a uniformly random wait between half and all of `backoff * 2^(n-1)`, capped at
//! `max_backoff`) as long as the budget allows. A failed source with `on_error: fail` (the
//! default) cancels the sources still running and fails the execution; `skip` and `default`
//! degrade to null or the default value and record the failure in the trace.
//!
//! A source whose `condition` is false is skipped: its result is null. Sources that read a
//! skipped or failed source still run and see null; guard them with a `condition` if they should
//! not.

mod trace;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use futures::task::AtomicWaker;
use serde_json::{Map, Value};
use tokio::time::Instant;
use tracing::Instrument as _;

pub use trace::{Outcome, SourceTrace, Trace, TraceError};

use crate::RequestContext;
use crate::ValidPlan;
use crate::expr::{Scope, truthy};
use crate::plan::{Endpoint, OnError, Plan, RetryPolicy};
use crate::source::{
    DataSource, Notes, Registry, SourceCall, SourceError, SourceErrorKind, TraceContext,
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
    /// A source factory failed (a pool or client could not be built).
    #[error("cannot build source type `{kind}`: {error}")]
    Source {
        /// The source type.
        kind: String,
        /// Why.
        error: SourceError,
    },
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
            Self::UnknownEndpoint(_) => None,
            Self::SourceFailed { trace, .. } | Self::DeadlineExceeded { trace, .. } => Some(trace),
        }
    }
}

/// A successful execution: the response and what happened.
#[derive(Debug, Clone, PartialEq)]
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
    endpoints: HashMap<String, Compiled>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("version", &self.version)
            .field("endpoints", &self.endpoints.len())
            .finish_non_exhaustive()
    }
}

struct Compiled {
    index: usize,
    name: Arc<str>,
    names: Vec<Arc<str>>,
    steps: Vec<Step>,
    roots: Vec<usize>,
    primary: Option<usize>,
    budget: Duration,
}

struct Step {
    source: Arc<dyn DataSource>,
    kind: Arc<str>,
    deps: usize,
    dependents: Vec<usize>,
    timeout: Duration,
    retry: Option<RetryPolicy>,
}

impl Engine {
    /// Builds the sources the endpoints of `plan` use from `registry` (once per source type
    /// and integration scope) and compiles each endpoint's DAG. The plan was validated when it
    /// was made (see [`ValidPlan`]); this checks only that every source type it uses is
    /// registered. `version` is recorded in every trace.
    pub fn new(plan: ValidPlan, registry: &Registry, version: u64) -> Result<Self, BuildError> {
        let plan = plan.into_plan();
        let mut built: HashMap<(Option<String>, String), Arc<dyn DataSource>> = HashMap::new();
        let mut endpoints = HashMap::with_capacity(plan.endpoints.len());
        for (index, e) in plan.endpoints.iter().enumerate() {
            let scope = e
                .domain
                .clone()
                .filter(|d| plan.integrations.domains.contains_key(d));
            let deps = e.dependencies();
            let mut steps = Vec::with_capacity(e.sources.len());
            for (i, s) in e.sources.iter().enumerate() {
                let key = (scope.clone(), s.kind.clone());
                let source = match built.get(&key) {
                    Some(src) => src.clone(),
                    None => {
                        let factory = registry.factory(&s.kind).ok_or_else(|| {
                            BuildError::UnregisteredType {
                                endpoint: e.name.clone(),
                                source_name: s.name.clone(),
                                kind: s.kind.clone(),
                                registered: registry.kinds().join(", "),
                            }
                        })?;
                        let src = factory.build(plan.integrations_for(e)).map_err(|error| {
                            BuildError::Source {
                                kind: s.kind.clone(),
                                error,
                            }
                        })?;
                        built.insert(key, src.clone());
                        src
                    }
                };
                let (timeout, retry) = plan.integrations_for(e).step_defaults(
                    &s.kind,
                    s.operation.as_deref(),
                    s.source_id.as_deref(),
                );
                steps.push(Step {
                    source,
                    kind: s.kind.as_str().into(),
                    deps: deps[i].len(),
                    dependents: Vec::new(),
                    timeout: s
                        .timeout
                        .or(timeout)
                        .unwrap_or(plan.settings.source_timeout),
                    retry: s.retry.or(retry),
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
            endpoints.insert(
                e.name.clone(),
                Compiled {
                    index,
                    name: e.name.as_str().into(),
                    names: e
                        .sources
                        .iter()
                        .map(|s| Arc::from(s.name.as_str()))
                        .collect(),
                    roots: (0..steps.len()).filter(|&i| steps[i].deps == 0).collect(),
                    steps,
                    primary,
                    budget: e.timeout.unwrap_or(plan.settings.endpoint_timeout),
                },
            );
        }
        Ok(Self {
            plan: Arc::new(plan),
            version,
            endpoints,
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

    /// Runs endpoint `name` for `request`.
    pub async fn execute(
        &self,
        name: &str,
        request: &RequestContext,
    ) -> Result<Execution, ExecuteError> {
        let compiled = self
            .endpoints
            .get(name)
            .ok_or_else(|| ExecuteError::UnknownEndpoint(name.to_owned()))?;
        let endpoint = &self.plan.endpoints[compiled.index];
        let span = tracing::info_span!("execute", endpoint = name, request_id = %request.request_id, config_version = self.version);
        self.run(compiled, endpoint, request).instrument(span).await
    }

    async fn run(
        &self,
        c: &Compiled,
        e: &Endpoint,
        request: &RequestContext,
    ) -> Result<Execution, ExecuteError> {
        let start = Instant::now();
        let deadline = start + c.budget;
        // One trace for every call this execution makes.
        let trace_context = TraceContext::continue_or_new(
            request.headers.get("traceparent").and_then(Value::as_str),
        );
        let mut state = State {
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
                })
                .collect(),
        };
        let run = Run {
            c,
            e,
            request,
            trace: &trace_context,
            start,
            deadline,
            alarms: Alarms::new(c.steps.len()),
        };
        let outcome = run.drive(&mut state).await;
        let end = Instant::now();
        for t in &mut state.sources {
            if t.outcome == Outcome::Cancelled {
                t.duration = (end - start).saturating_sub(t.start);
            }
        }
        let trace = |state: State| Trace {
            endpoint: c.name.clone(),
            config_version: self.version,
            request_id: request.request_id.clone(),
            duration: end - start,
            sources: state.sources,
        };
        match outcome {
            Ok(()) => {
                let response = match &e.response_mapping {
                    Some(mapping) => mapping.eval(&ExecScope {
                        request,
                        names: &c.names,
                        results: &state.results,
                    }),
                    None => c
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
                    endpoint: e.name.clone(),
                    budget: c.budget,
                    trace: Box::new(trace(state)),
                })
            }
            Err(Stop::Failed(i, error)) => Err(ExecuteError::SourceFailed {
                source_name: e.sources[i].name.clone(),
                error,
                trace: Box::new(trace(state)),
            }),
            Err(Stop::Deadline) => Err(ExecuteError::DeadlineExceeded {
                endpoint: e.name.clone(),
                budget: c.budget,
                trace: Box::new(trace(state)),
            }),
        }
    }
}

/// One execution's fixed inputs, shared by the DAG driver and every source attempt.
struct Run<'a> {
    c: &'a Compiled,
    e: &'a Endpoint,
    request: &'a RequestContext,
    /// The W3C trace every call of the execution shares.
    trace: &'a TraceContext,
    start: Instant,
    deadline: Instant,
    /// When each running attempt times out.
    alarms: Alarms,
}

/// Why [`Run::drive`] stopped early.
enum Stop {
    /// A required source failed: its index and last error.
    Failed(usize, SourceError),
    /// The endpoint's budget ran out.
    Deadline,
}

impl Run<'_> {
    /// Runs the DAG to completion, or stops at the first failure of a required source or when
    /// the budget runs out.
    ///
    /// One timer serves the whole execution: it is armed at the earliest of the endpoint's
    /// deadline and the running attempts' limits (see [`Alarms`]), instead of one timer per
    /// attempt plus one for the deadline. Each timer costs an allocation, a registration in
    /// tokio's timer wheel and a removal; most attempts finish long before their limit.
    async fn drive(&self, state: &mut State) -> Result<(), Stop> {
        let Self {
            c,
            e,
            request,
            start,
            deadline,
            ..
        } = *self;
        let mut running = FuturesUnordered::new();
        let mut ready: Vec<usize> = c.roots.iter().rev().copied().collect();
        // Built when the sources first wait: an execution whose sources all answer at once
        // (caches, in-process lookups) never touches the timer wheel.
        let mut timer: Option<Pin<Box<tokio::time::Sleep>>> = None;
        let mut armed = deadline;
        // Set once the budget has run out: no source starts any more, and the attempts already
        // running end (as timeouts, when the budget limited them) before the execution stops.
        let mut out_of_time = false;
        loop {
            while let Some(i) = ready.pop() {
                let step = &e.sources[i];
                let scope = ExecScope {
                    request,
                    names: &c.names,
                    results: &state.results,
                };
                let at = Instant::now();
                let now = at - start;
                if let Some(cond) = &step.condition
                    && !truthy(&cond.eval(&scope))
                {
                    state.sources[i].start = now;
                    state.sources[i].outcome = Outcome::Skipped;
                    release(c, i, &mut state.remaining, &mut ready);
                    continue;
                }
                if out_of_time || at >= deadline {
                    // It stays `NotRun`.
                    out_of_time = true;
                    continue;
                }
                let params = step.params.eval(&scope);
                state.sources[i].start = now;
                state.sources[i].outcome = Outcome::Cancelled;
                let attempt = self.attempts(i, params);
                // A span nobody listens to still costs a little to build and per poll.
                running.push(if tracing::enabled!(tracing::Level::DEBUG) {
                    let span = tracing::debug_span!("source", source = %c.names[i], kind = %c.steps[i].kind);
                    futures::future::Either::Right(attempt.instrument(span))
                } else {
                    futures::future::Either::Left(attempt)
                });
            }
            let next = std::future::poll_fn(|cx| {
                loop {
                    // Sources first: one that answers as the timer fires still counts.
                    if let Poll::Ready(next) = running.poll_next_unpin(cx) {
                        return Poll::Ready(Ok(next));
                    }
                    let wanted = self.alarms.due(start, deadline);
                    let sleep = timer.get_or_insert_with(|| {
                        armed = wanted;
                        Box::pin(tokio::time::sleep_until(wanted))
                    });
                    if wanted < armed {
                        armed = wanted;
                        sleep.as_mut().reset(armed);
                    }
                    if sleep.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    // Attempts past their limit are woken to time out (and record how many
                    // attempts they made); the timer moves on to the next limit or the deadline.
                    let now = Instant::now();
                    let next = self.alarms.expire(start, now, deadline);
                    if now >= deadline {
                        // Attempts limited by the deadline itself end as timeouts first, one
                        // per call, until none is left.
                        out_of_time = true;
                        return match running.poll_next_unpin(cx) {
                            Poll::Ready(next) => Poll::Ready(Ok(next)),
                            Poll::Pending => Poll::Ready(Err(Stop::Deadline)),
                        };
                    }
                    armed = next;
                    sleep.as_mut().reset(armed);
                }
            });
            let Some((i, attempts, notes, result)) = next.await? else {
                return if out_of_time {
                    Err(Stop::Deadline)
                } else {
                    Ok(())
                };
            };
            let t = &mut state.sources[i];
            t.attempts = attempts;
            t.notes = notes;
            t.duration = (Instant::now() - start).saturating_sub(t.start);
            let step = &e.sources[i];
            match result {
                Ok(value) => {
                    let value = if step.transform.is_empty() {
                        value
                    } else {
                        let scope = ExecScope {
                            request,
                            names: &c.names,
                            results: &state.results,
                        };
                        crate::transform::apply(&step.transform, value, &scope)
                    };
                    state.results[i] = Some(value);
                    state.sources[i].outcome = Outcome::Ok;
                }
                Err(error) => {
                    tracing::debug!(source = %c.names[i], error = %error, "source failed");
                    t.error = Some(TraceError {
                        kind: error.kind,
                        message: error.message.clone(),
                    });
                    match &step.on_error {
                        OnError::Fail => {
                            t.outcome = Outcome::Failed;
                            return Err(Stop::Failed(i, error));
                        }
                        OnError::Skip => t.outcome = Outcome::FailedSkipped,
                        OnError::Default(v) => {
                            t.outcome = Outcome::FailedDefaulted;
                            state.results[i] = Some(v.clone());
                        }
                    }
                }
            }
            release(c, i, &mut state.remaining, &mut ready);
        }
    }

    /// Runs source `i` with its timeout and retry policy. Returns its index, the attempts made,
    /// the notes the source left and the last result.
    async fn attempts(
        &self,
        i: usize,
        params: Map<String, Value>,
    ) -> (usize, u32, Vec<String>, Result<Value, SourceError>) {
        let Self {
            c,
            e,
            request,
            trace,
            deadline,
            ..
        } = *self;
        let step = &e.sources[i];
        let compiled = &c.steps[i];
        let notes = Notes::default();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let begun = Instant::now();
            let limit = (begun + compiled.timeout).min(deadline);
            let call = SourceCall {
                endpoint: &e.name,
                source: &step.name,
                operation: step.operation.as_deref(),
                source_id: step.source_id.as_deref(),
                params: &params,
                request,
                trace,
                attempt,
                notes: &notes,
            };
            let result = match (Limited {
                fetch: compiled.source.fetch(call),
                alarms: &self.alarms,
                slot: i,
                start: self.start,
                limit,
                waiting: false,
            })
            .await
            {
                Some(r) => r,
                None => Err(SourceError::new(
                    SourceErrorKind::Timeout,
                    format!(
                        "attempt {attempt} did not finish within {:?}",
                        limit - begun
                    ),
                )),
            };
            let error = match result {
                Ok(v) => return (i, attempt, notes.take(), Ok(v)),
                Err(error) => error,
            };
            let Some(policy) = compiled
                .retry
                .filter(|p| error.is_transient() && attempt <= p.max_retries)
            else {
                return (i, attempt, notes.take(), Err(error));
            };
            let ceiling = policy.backoff_ceiling(attempt);
            let half = ceiling / 2;
            let jitter = Duration::from_nanos(fastrand::u64(
                ..=u64::try_from((ceiling - half).as_nanos()).unwrap_or(u64::MAX),
            ));
            let wait = half + jitter;
            if Instant::now() + wait >= deadline {
                return (i, attempt, notes.take(), Err(error));
            }
            tracing::debug!(attempt, wait_ms = wait.as_millis() as u64, error = %error, "retrying");
            tokio::time::sleep(wait).await;
        }
    }
}

struct State {
    results: Vec<Option<Value>>,
    remaining: Vec<usize>,
    sources: Vec<SourceTrace>,
}

fn release(c: &Compiled, done: usize, remaining: &mut [usize], ready: &mut Vec<usize>) {
    for &d in &c.steps[done].dependents {
        remaining[d] -= 1;
        if remaining[d] == 0 {
            ready.push(d);
        }
    }
}

/// When each running attempt of an execution times out, for the execution's one timer.
///
/// Slot `i` belongs to source `i` (a source runs one attempt at a time). Limits are
/// nanoseconds since the execution started. The execution's future owns the timer and polls
/// the attempts itself, so nothing here is contended: the atomics only make the attempts'
/// futures `Send`.
struct Alarms {
    /// Allocated when the first attempt waits: executions whose sources all answer at once
    /// (caches, in-process lookups) skip it.
    slots: OnceLock<Box<[Alarm]>>,
    sources: usize,
    /// A lower bound of the limits in the slots: the earliest limit set since the timer last
    /// fired. A slot that is cleared leaves it early; the timer then fires for nothing once and
    /// moves on ([`Alarms::expire`]).
    earliest: AtomicU64,
}

struct Alarm {
    /// When the attempt waiting here times out; `NONE` when none waits.
    limit: AtomicU64,
    /// Set when the limit passed; the attempt then ends with a timeout.
    expired: AtomicBool,
    waker: AtomicWaker,
}

impl Alarms {
    const NONE: u64 = u64::MAX;

    fn new(sources: usize) -> Self {
        Self {
            slots: OnceLock::new(),
            sources,
            earliest: AtomicU64::new(Self::NONE),
        }
    }

    fn slot(&self, i: usize) -> &Alarm {
        let slots = self.slots.get_or_init(|| {
            (0..self.sources)
                .map(|_| Alarm {
                    limit: AtomicU64::new(Self::NONE),
                    expired: AtomicBool::new(false),
                    waker: AtomicWaker::new(),
                })
                .collect()
        });
        &slots[i]
    }

    fn nanos(start: Instant, at: Instant) -> u64 {
        u64::try_from((at - start).as_nanos()).unwrap_or(Self::NONE - 1)
    }

    /// When the timer must fire: at the earliest limit set (see `earliest`), or at `deadline`
    /// if that comes first.
    fn due(&self, start: Instant, deadline: Instant) -> Instant {
        match self.earliest.load(Relaxed) {
            Self::NONE => deadline,
            n => deadline.min(start + Duration::from_nanos(n)),
        }
    }

    /// Marks every attempt whose limit is at or before `now` as expired and wakes it. Returns
    /// when the timer must fire next.
    fn expire(&self, start: Instant, now: Instant, deadline: Instant) -> Instant {
        let now = Self::nanos(start, now);
        let mut next = Self::NONE;
        for slot in self.slots.get().into_iter().flatten() {
            match slot.limit.load(Relaxed) {
                Self::NONE => {}
                limit if limit <= now => {
                    slot.limit.store(Self::NONE, Relaxed);
                    slot.expired.store(true, Relaxed);
                    slot.waker.wake();
                }
                limit => next = next.min(limit),
            }
        }
        self.earliest.store(next, Relaxed);
        self.due(start, deadline)
    }
}

/// `fetch` with a limit, like `tokio::time::timeout_at`, but without a timer of its own: once
/// `fetch` has returned `Pending`, the limit goes into the execution's [`Alarms`], whose one
/// timer wakes the attempt when it passes. `None` when the limit passed first.
struct Limited<'a, F> {
    fetch: F,
    alarms: &'a Alarms,
    slot: usize,
    /// When the execution started, and when this attempt times out.
    start: Instant,
    limit: Instant,
    /// Whether the limit is in the slot.
    waiting: bool,
}

impl<F: Future + Unpin> Future for Limited<'_, F> {
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(v) = Pin::new(&mut self.fetch).poll(cx) {
            if self.waiting {
                let slot = self.alarms.slot(self.slot);
                slot.limit.store(Alarms::NONE, Relaxed);
                slot.expired.store(false, Relaxed);
            }
            return Poll::Ready(Some(v));
        }
        let slot = self.alarms.slot(self.slot);
        if slot.expired.swap(false, Relaxed) {
            return Poll::Ready(None);
        }
        slot.waker.register(cx.waker());
        if !self.waiting {
            self.waiting = true;
            let limit = Alarms::nanos(self.start, self.limit);
            slot.limit.store(limit, Relaxed);
            self.alarms.earliest.fetch_min(limit, Relaxed);
        }
        Poll::Pending
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
