//! `circuit_breaker:` and `max_concurrent:` on an HTTP integration service: one state per
//! service, shared by every step (of every endpoint) that calls it, and kept across reloads
//! while the service's policy stays the same.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::after;
use crate::plan::CircuitBreaker;
use crate::source::{CircuitState, DataSource, SourceCall, SourceError, SourceErrorKind};

/// A service's circuit breaker.
pub(crate) struct Breaker {
    service: String,
    policy: CircuitBreaker,
    state: Mutex<State>,
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Counting failures in a row.
    Closed { failures: u32 },
    /// Refusing calls until then.
    Open { until: Instant },
    /// Letting `probes` calls through; this many are out.
    HalfOpen { out: u32 },
}

impl fmt::Debug for Breaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Breaker")
            .field("service", &self.service)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Breaker {
    pub(crate) fn new(service: String, policy: CircuitBreaker) -> Self {
        Self {
            service,
            policy,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    /// The service's name (never its URL).
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn service(&self) -> &str {
        &self.service
    }

    /// The state a call arriving now would meet (an open circuit past its time is half-open).
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn state(&self) -> CircuitState {
        match *self.lock() {
            State::Closed { .. } => CircuitState::Closed,
            State::Open { until } if Instant::now() < until => CircuitState::Open,
            State::Open { .. } | State::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Lets a call through (with the state it met), or refuses it while open.
    fn admit(&self) -> Result<Pass<'_>, CircuitState> {
        let mut state = self.lock();
        if let State::Open { until } = *state {
            if Instant::now() < until {
                return Err(CircuitState::Open);
            }
            *state = State::HalfOpen { out: 0 };
        }
        match &mut *state {
            State::Closed { .. } => Ok(Pass {
                breaker: self,
                probe: false,
            }),
            State::HalfOpen { out } if *out < self.policy.probes => {
                *out += 1;
                Ok(Pass {
                    breaker: self,
                    probe: true,
                })
            }
            _ => Err(CircuitState::HalfOpen),
        }
    }

    fn open(&self, state: &mut State) {
        *state = State::Open {
            until: after(Instant::now(), self.policy.open_for),
        };
    }
}

/// A call the breaker let through; reports how it ended. Dropped unreported (the call was
/// cancelled), a probe gives its slot back.
struct Pass<'a> {
    breaker: &'a Breaker,
    probe: bool,
}

impl Pass<'_> {
    fn state(&self) -> CircuitState {
        if self.probe {
            CircuitState::HalfOpen
        } else {
            CircuitState::Closed
        }
    }

    /// Counts the call: a transient failure is a failure; any answer, even an error status
    /// the client caused, shows the service is up.
    fn report(mut self, result: &Result<Value, SourceError>) {
        let failed = result.as_ref().is_err_and(SourceError::is_transient);
        let b = self.breaker;
        let mut state = b.lock();
        match (*state, self.probe, failed) {
            (State::HalfOpen { .. }, true, false) => {
                *state = State::Closed { failures: 0 };
                tracing::info!(service = %b.service, "circuit breaker closed: the probe succeeded");
            }
            (State::HalfOpen { .. }, true, true) => {
                b.open(&mut state);
                tracing::warn!(service = %b.service, "circuit breaker opened again: the probe failed");
            }
            (State::Closed { .. }, false, false) => *state = State::Closed { failures: 0 },
            (State::Closed { failures }, false, true) => {
                let failures = failures.saturating_add(1);
                if failures >= b.policy.failures {
                    b.open(&mut state);
                    tracing::warn!(
                        service = %b.service,
                        failures,
                        open_for_ms = b.policy.open_for.as_millis() as u64,
                        "circuit breaker opened"
                    );
                } else {
                    *state = State::Closed { failures };
                }
            }
            // A call admitted in another state ended after the state moved on: it no longer
            // speaks for the service.
            _ => {}
        }
        self.probe = false;
    }
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        if self.probe
            && let State::HalfOpen { out } = &mut *self.breaker.lock()
        {
            *out = out.saturating_sub(1);
        }
    }
}

/// Refuses calls while the service's breaker is open, and tells the breaker how each call
/// ended. Sits inside the retries: every attempt counts, and a refusal is not retried.
pub(crate) struct BreakerLayer {
    pub(crate) inner: Arc<dyn DataSource>,
    pub(crate) breaker: Arc<Breaker>,
}

impl fmt::Debug for BreakerLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerLayer")
            .field("breaker", &self.breaker)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl DataSource for BreakerLayer {
    async fn fetch(&self, call: SourceCall<'_>) -> Result<Value, SourceError> {
        let pass = match self.breaker.admit() {
            Ok(pass) => pass,
            Err(state) => {
                call.record.set_circuit(state);
                #[cfg(feature = "otel")]
                crate::telemetry::otel::event("circuit_breaker.rejected", || {
                    vec![opentelemetry::KeyValue::new(
                        "orchestrator.service",
                        self.breaker.service.clone(),
                    )]
                });
                return Err(SourceError::new(
                    SourceErrorKind::Unavailable,
                    format!(
                        "not called: the circuit breaker of service `{}` is {}",
                        self.breaker.service,
                        match state {
                            CircuitState::HalfOpen => "half-open and its probes are out",
                            _ => "open",
                        }
                    ),
                )
                .not_retryable());
            }
        };
        call.record.set_circuit(pass.state());
        let result = self.inner.fetch(call).await;
        pass.report(&result);
        result
    }
}

/// `max_concurrent:`: calls to a service in flight at once, across steps and endpoints; one
/// more fails at once as `unavailable` rather than queueing.
pub(crate) struct BulkheadLayer {
    pub(crate) inner: Arc<dyn DataSource>,
    pub(crate) service: String,
    pub(crate) permits: Arc<Semaphore>,
    pub(crate) limit: usize,
}

impl fmt::Debug for BulkheadLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BulkheadLayer")
            .field("service", &self.service)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl DataSource for BulkheadLayer {
    async fn fetch(&self, call: SourceCall<'_>) -> Result<Value, SourceError> {
        let Ok(_permit) = self.permits.try_acquire() else {
            return Err(SourceError::new(
                SourceErrorKind::Unavailable,
                format!(
                    "not called: service `{}` already has {} calls in flight (max_concurrent)",
                    self.service, self.limit
                ),
            ));
        };
        self.inner.fetch(call).await
    }
}
