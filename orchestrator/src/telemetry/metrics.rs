//! Prometheus metrics (feature `metrics`), in the OpenMetrics text format of the official
//! `prometheus-client` crate.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::engine::{Outcome, SourceTrace};
use crate::source::SourceErrorKind;

/// The metrics of one or more orchestrators, rendered for a Prometheus scrape.
///
/// Nothing is recorded unless the host asks for it: hand a `Metrics` to
/// [`OrchestratorBuilder::metrics`](crate::OrchestratorBuilder::metrics) and serve
/// [`Metrics::render`] where the scraper finds it (with a web feature, `Metrics` is itself a
/// `tower::Service`, and `web::actix::configure` mounts it in actix-web):
///
/// ```no_run
/// # #[cfg(feature = "axum")]
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use api_orchestrator::{Orchestrator, telemetry::Metrics, web::Api};
///
/// let metrics = Metrics::new();
/// let orchestrator = Orchestrator::builder().metrics(&metrics).load_dir("config")?;
/// let app: axum::Router = axum::Router::new()
///     .nest_service("/api", Api::new(&orchestrator))
///     .route_service("/metrics", metrics.clone());
/// # Ok(()) }
/// ```
///
/// | metric | type | labels |
/// |---|---|---|
/// | `orchestrator_requests_total` | counter | `endpoint`, `method`, `status` |
/// | `orchestrator_request_duration_seconds` | histogram | `endpoint` |
/// | `orchestrator_requests_in_flight` | gauge | |
/// | `orchestrator_requests_shed_total` | counter | `endpoint`, `reason` (`overloaded`, `rate_limited`) |
/// | `orchestrator_source_duration_seconds` | histogram | `endpoint`, `source`, `kind` (the source type) |
/// | `orchestrator_source_calls_total` | counter | `endpoint`, `source`, `outcome` |
/// | `orchestrator_cache_total` | counter | `endpoint`, `source`, `status` (`hit`, `miss`, `coalesced`, `stale`) |
/// | `orchestrator_circuit_state` | gauge | `service`, `state`: 1 for the state the circuit is in |
/// | `orchestrator_sql_pool_connections` | gauge | `pool`, `state` (`idle`, `in_use`) |
/// | `orchestrator_sql_pool_waiting` | gauge | `pool`: queries waiting for a connection |
/// | `orchestrator_reloads_total` | counter | `result` (`ok`, `failed`) |
/// | `orchestrator_config_version` | gauge | |
///
/// A source's `outcome` is `ok`; `skipped` (its condition was false); how a failure was stood
/// in for (`skip`, `default`, `fallback`, `stale`); the kind of a failure that failed the
/// request (`timeout`, `unavailable`, `upstream_status`, `invalid_response`, `rejected`,
/// `config`, `internal`); or `cancelled`. Label values are names from the config, never
/// request data.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// A label value from the config (an endpoint, source or service name), shared rather than
/// copied per request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Name(pub(crate) Arc<str>);

impl EncodeLabelValue for Name {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> fmt::Result {
        fmt::Write::write_str(encoder, &self.0)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    endpoint: Name,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: Name,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ShedLabels {
    endpoint: Name,
    reason: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SourceLabels {
    endpoint: Name,
    source: Name,
    kind: Name,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabels {
    endpoint: Name,
    source: Name,
    outcome: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CacheLabels {
    endpoint: Name,
    source: Name,
    status: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CircuitLabels {
    service: Name,
    state: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PoolStateLabels {
    pool: Name,
    state: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PoolLabels {
    pool: Name,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReloadLabels {
    result: &'static str,
}

/// Latency buckets: 0.5 ms to about 16 s, doubling.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// What a scrape reads from the state it describes (circuits, pools) rather than from
/// counters.
pub(crate) trait Probe: Send + Sync + 'static {
    /// Each circuit breaker's service and state.
    fn circuits(&self, _out: &mut Vec<(Arc<str>, crate::source::CircuitState)>) {}
    /// Each SQL pool's name, connections, idle connections and queries in flight.
    fn pools(&self, _out: &mut Vec<PoolStats>) {}
}

/// One SQL pool at a scrape.
#[derive(Debug)]
pub(crate) struct PoolStats {
    pub(crate) name: Arc<str>,
    pub(crate) size: u32,
    pub(crate) idle: usize,
    pub(crate) queries: usize,
}

struct Inner {
    registry: Registry,
    // Recorded by the web layer.
    #[cfg_attr(not(feature = "web"), allow(dead_code))]
    requests: Family<RequestLabels, Counter>,
    #[cfg_attr(not(feature = "web"), allow(dead_code))]
    request_duration: Histograms<EndpointLabels>,
    #[cfg_attr(not(feature = "web"), allow(dead_code))]
    in_flight: Gauge,
    shed: Family<ShedLabels, Counter>,
    source_duration: Histograms<SourceLabels>,
    source_calls: Family<OutcomeLabels, Counter>,
    cache: Family<CacheLabels, Counter>,
    circuit: Family<CircuitLabels, Gauge>,
    pool_connections: Family<PoolStateLabels, Gauge>,
    pool_waiting: Family<PoolLabels, Gauge>,
    reloads: Family<ReloadLabels, Counter>,
    config_version: Gauge,
    probes: Mutex<Vec<Arc<dyn Probe>>>,
}

impl Metrics {
    /// A new set of metrics, all at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("orchestrator");
        let requests = Family::default();
        let request_duration: Histograms<EndpointLabels> = Family::new_with_constructor(latency);
        let in_flight = Gauge::default();
        let shed = Family::default();
        let source_duration: Histograms<SourceLabels> = Family::new_with_constructor(latency);
        let source_calls = Family::default();
        let cache = Family::default();
        let circuit = Family::default();
        let pool_connections = Family::default();
        let pool_waiting = Family::default();
        let reloads = Family::default();
        let config_version = Gauge::default();
        registry.register(
            "requests",
            "Requests answered, by endpoint, method and status",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time to answer a request, by endpoint",
            request_duration.clone(),
        );
        registry.register(
            "requests_in_flight",
            "Requests being answered",
            in_flight.clone(),
        );
        registry.register(
            "requests_shed",
            "Requests refused by an endpoint's max_in_flight or rate_limit",
            shed.clone(),
        );
        registry.register(
            "source_duration_seconds",
            "Time a data source took, retries included",
            source_duration.clone(),
        );
        registry.register(
            "source_calls",
            "Data source calls by outcome",
            source_calls.clone(),
        );
        registry.register("cache", "What the cache did for a call", cache.clone());
        registry.register(
            "circuit_state",
            "1 for the state each service's circuit breaker is in",
            circuit.clone(),
        );
        registry.register(
            "sql_pool_connections",
            "Connections of each SQL pool, idle or in use",
            pool_connections.clone(),
        );
        registry.register(
            "sql_pool_waiting",
            "Queries waiting for a connection of each SQL pool",
            pool_waiting.clone(),
        );
        registry.register("reloads", "Config reloads, by result", reloads.clone());
        registry.register(
            "config_version",
            "The config version being served",
            config_version.clone(),
        );
        Self {
            inner: Arc::new(Inner {
                registry,
                requests,
                request_duration,
                in_flight,
                shed,
                source_duration,
                source_calls,
                cache,
                circuit,
                pool_connections,
                pool_waiting,
                reloads,
                config_version,
                probes: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The metrics in the OpenMetrics text format (what Prometheus scrapes; its content type
    /// is [`Metrics::CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        self.refresh();
        let mut out = String::new();
        // Writing into a `String` cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.inner.registry);
        out
    }

    /// The content type of [`Metrics::render`]'s text.
    pub const CONTENT_TYPE: &'static str =
        "application/openmetrics-text; version=1.0.0; charset=utf-8";

    /// Reads the gauges that describe state (circuits, pools) from their probes.
    fn refresh(&self) {
        let probes = self
            .inner
            .probes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let (mut circuits, mut pools) = (Vec::new(), Vec::new());
        for p in &probes {
            p.circuits(&mut circuits);
            p.pools(&mut pools);
        }
        let i = &self.inner;
        i.circuit.clear();
        for (service, state) in circuits {
            for (s, name) in [
                (crate::source::CircuitState::Closed, "closed"),
                (crate::source::CircuitState::Open, "open"),
                (crate::source::CircuitState::HalfOpen, "half_open"),
            ] {
                i.circuit
                    .get_or_create(&CircuitLabels {
                        service: Name(service.clone()),
                        state: name,
                    })
                    .set(i64::from(s == state));
            }
        }
        i.pool_connections.clear();
        i.pool_waiting.clear();
        for p in pools {
            let pool = Name(p.name);
            let in_use = (p.size as usize).saturating_sub(p.idle);
            for (state, n) in [("idle", p.idle), ("in_use", in_use)] {
                i.pool_connections
                    .get_or_create(&PoolStateLabels {
                        pool: pool.clone(),
                        state,
                    })
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
            i.pool_waiting
                .get_or_create(&PoolLabels { pool })
                .set(i64::try_from(p.queries.saturating_sub(in_use)).unwrap_or(i64::MAX));
        }
    }

    /// Adds what a scrape reads state from (the orchestrator's circuits and pools).
    pub(crate) fn probe(&self, probe: Arc<dyn Probe>) {
        let mut probes = self
            .inner
            .probes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !probes.iter().any(|p| Arc::ptr_eq(p, &probe)) {
            probes.push(probe);
        }
    }

    /// Counts a request while it is answered.
    #[cfg(feature = "web")]
    pub(crate) fn in_flight(&self) -> InFlight {
        self.inner.in_flight.inc();
        InFlight(self.inner.in_flight.clone())
    }

    /// Records a request no endpoint answered (404, 405, a refused token, a listing).
    #[cfg(feature = "web")]
    pub(crate) fn unmatched(&self, method: &'static str, status: u16, took: std::time::Duration) {
        static UNMATCHED: std::sync::LazyLock<Name> =
            std::sync::LazyLock::new(|| Name("unmatched".into()));
        let endpoint = UNMATCHED.clone();
        self.inner
            .request_duration
            .get_or_create(&EndpointLabels {
                endpoint: endpoint.clone(),
            })
            .observe(took.as_secs_f64());
        self.inner
            .requests
            .get_or_create(&RequestLabels {
                endpoint,
                method,
                status,
            })
            .inc();
    }

    /// The metrics of endpoint `name`, whose requests mostly use `method`, resolved once per
    /// config version.
    pub(crate) fn endpoint(&self, name: &Arc<str>, method: &'static str) -> EndpointMetrics {
        let endpoint = Name(name.clone());
        let i = &self.inner;
        EndpointMetrics {
            duration: i
                .request_duration
                .get_or_create(&EndpointLabels {
                    endpoint: endpoint.clone(),
                })
                .clone(),
            usual: (
                method,
                i.requests
                    .get_or_create(&RequestLabels {
                        endpoint: endpoint.clone(),
                        method,
                        status: 200,
                    })
                    .clone(),
            ),
            endpoint,
            metrics: self.clone(),
        }
    }

    /// The metrics of source `source` (of type `kind`) of endpoint `endpoint`, resolved once
    /// per config version.
    pub(crate) fn step(
        &self,
        endpoint: &Arc<str>,
        source: &Arc<str>,
        kind: &Arc<str>,
    ) -> StepMetrics {
        let (endpoint, source) = (Name(endpoint.clone()), Name(source.clone()));
        let i = &self.inner;
        StepMetrics {
            duration: i
                .source_duration
                .get_or_create(&SourceLabels {
                    endpoint: endpoint.clone(),
                    source: source.clone(),
                    kind: Name(kind.clone()),
                })
                .clone(),
            ok: i
                .source_calls
                .get_or_create(&OutcomeLabels {
                    endpoint: endpoint.clone(),
                    source: source.clone(),
                    outcome: "ok",
                })
                .clone(),
            endpoint,
            source,
            metrics: self.clone(),
        }
    }

    /// Records a request an endpoint's `max_in_flight` or `rate_limit` refused.
    pub(crate) fn shed(&self, endpoint: &Arc<str>, reason: &'static str) {
        self.inner
            .shed
            .get_or_create(&ShedLabels {
                endpoint: Name(endpoint.clone()),
                reason,
            })
            .inc();
    }

    /// Records a reload and, when it succeeded, the version now served.
    pub(crate) fn reload(&self, version: Option<u64>) {
        let result = if version.is_some() { "ok" } else { "failed" };
        self.inner
            .reloads
            .get_or_create(&ReloadLabels { result })
            .inc();
        if let Some(v) = version {
            self.serving(v);
        }
    }

    /// Records the config version being served.
    pub(crate) fn serving(&self, version: u64) {
        self.inner
            .config_version
            .set(i64::try_from(version).unwrap_or(i64::MAX));
    }
}

/// An endpoint's request metrics, resolved when a plan is compiled: a request costs no label
/// lookup unless it answers something other than a 200 to the endpoint's first method.
#[cfg_attr(not(feature = "web"), allow(dead_code))]
pub(crate) struct EndpointMetrics {
    endpoint: Name,
    duration: Histogram,
    /// The counter of 200s to the endpoint's first method.
    usual: (&'static str, Counter),
    metrics: Metrics,
}

impl EndpointMetrics {
    /// Records an answered request.
    #[cfg(feature = "web")]
    pub(crate) fn request(&self, method: &'static str, status: u16, took: std::time::Duration) {
        self.duration.observe(took.as_secs_f64());
        if status == 200 && method == self.usual.0 {
            self.usual.1.inc();
            return;
        }
        self.metrics
            .inner
            .requests
            .get_or_create(&RequestLabels {
                endpoint: self.endpoint.clone(),
                method,
                status,
            })
            .inc();
    }
}

/// A step's metrics, resolved when a plan is compiled.
pub(crate) struct StepMetrics {
    endpoint: Name,
    source: Name,
    duration: Histogram,
    ok: Counter,
    metrics: Metrics,
}

impl StepMetrics {
    /// Records how the step went in one execution.
    pub(crate) fn record(&self, s: &SourceTrace) {
        let outcome = match s.outcome {
            Outcome::NotRun => return,
            Outcome::Ok => "ok",
            Outcome::Skipped => "skipped",
            Outcome::FailedSkipped => "skip",
            Outcome::FailedDefaulted => "default",
            Outcome::Fallback => "fallback",
            Outcome::Stale => "stale",
            Outcome::Partial => "partial",
            Outcome::Cancelled => "cancelled",
            Outcome::Failed => s
                .error
                .as_ref()
                .map_or(SourceErrorKind::Internal, |e| e.kind)
                .name(),
        };
        if s.outcome != Outcome::Skipped {
            self.duration.observe(s.duration.as_secs_f64());
        }
        let inner = &self.metrics.inner;
        if let Some(cache) = s.cache {
            inner
                .cache
                .get_or_create(&CacheLabels {
                    endpoint: self.endpoint.clone(),
                    source: self.source.clone(),
                    status: cache.as_str(),
                })
                .inc();
        }
        if s.outcome == Outcome::Ok {
            self.ok.inc();
            return;
        }
        inner
            .source_calls
            .get_or_create(&OutcomeLabels {
                endpoint: self.endpoint.clone(),
                source: self.source.clone(),
                outcome,
            })
            .inc();
    }
}

/// A request being answered; dropping it ends the count.
#[cfg(feature = "web")]
#[derive(Debug)]
pub(crate) struct InFlight(Gauge);

#[cfg(feature = "web")]
impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}
