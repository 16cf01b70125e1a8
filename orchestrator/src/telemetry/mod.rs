//! What leaves the process about executions: OpenTelemetry traces (feature `otel`) and
//! Prometheus metrics (feature `metrics`). Both are off until the host hands an instrument to
//! the [`OrchestratorBuilder`](crate::OrchestratorBuilder); the `tracing` events and spans
//! (logs) are there either way. The operator's view of all three is
//! `api_orchestrator::docs::operating`.

#[cfg(feature = "metrics")]
pub(crate) mod metrics;
#[cfg(feature = "otel")]
pub(crate) mod otel;

#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub use metrics::Metrics;
/// The tracer type [`OrchestratorBuilder::tracer`](crate::OrchestratorBuilder::tracer) takes.
#[cfg(feature = "otel")]
#[cfg_attr(docsrs, doc(cfg(feature = "otel")))]
pub use opentelemetry_sdk::trace::SdkTracer;
#[cfg(feature = "otel")]
#[cfg_attr(docsrs, doc(cfg(feature = "otel")))]
pub use otel::{Tracing, TracingError};

/// The instruments an orchestrator reports to, kept by the registry and each engine.
#[derive(Clone, Default)]
pub(crate) struct Instruments {
    #[cfg(feature = "otel")]
    pub(crate) tracer: Option<SdkTracer>,
    #[cfg(feature = "metrics")]
    pub(crate) metrics: Option<Metrics>,
}

impl std::fmt::Debug for Instruments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Instruments");
        #[cfg(feature = "otel")]
        d.field("tracer", &self.tracer.is_some());
        #[cfg(feature = "metrics")]
        d.field("metrics", &self.metrics.is_some());
        d.finish()
    }
}
