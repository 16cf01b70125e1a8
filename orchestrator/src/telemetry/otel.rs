//! OpenTelemetry traces (feature `otel`): the spans the library makes, and [`Tracing`], the
//! OTLP/HTTP exporter the bundled server installs from `telemetry:`.
//!
//! The spans are made with the OpenTelemetry API directly (not through `tracing`), with the
//! tracer the host hands to [`OrchestratorBuilder::tracer`](crate::OrchestratorBuilder::tracer):
//! a span of a trace that is not sampled is never built, and the `traceparent` each source
//! call sends names the client span exported for that call.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt as _, Tracer as _, get_active_span};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};

use crate::plan::Settings;

pub(crate) use opentelemetry::trace::SpanRef;

/// Calls `f` with the active span when it is being recorded (sampled): where a layer or a
/// source adds attributes and events to the span it runs in.
pub(crate) fn annotate(f: impl FnOnce(&SpanRef<'_>)) {
    get_active_span(|span| {
        if span.is_recording() {
            f(&span);
        }
    });
}

/// Adds event `name` to the active span when it is being recorded; `attributes` are built only
/// then.
pub(crate) fn event(name: &'static str, attributes: impl FnOnce() -> Vec<KeyValue>) {
    annotate(|span| span.add_event(name, attributes()));
}

/// The context a request's spans descend from: the incoming `traceparent` (and `tracestate`)
/// when valid, otherwise the host's current context.
pub(crate) fn incoming(traceparent: Option<&str>, tracestate: Option<&str>) -> Context {
    use opentelemetry::propagation::{Extractor, TextMapPropagator as _};
    struct Headers<'a>(Option<&'a str>, Option<&'a str>);
    impl Extractor for Headers<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            match key {
                "traceparent" => self.0,
                "tracestate" => self.1,
                _ => None,
            }
        }
        fn keys(&self) -> Vec<&str> {
            vec!["traceparent", "tracestate"]
        }
    }
    let current = Context::current();
    if traceparent.is_none() {
        return current;
    }
    opentelemetry_sdk::propagation::TraceContextPropagator::new()
        .extract_with_context(&current, &Headers(traceparent, tracestate))
}

/// Whether spans made under `cx` may be sampled: a parent that is valid and not sampled
/// decides for its children, so none is built.
pub(crate) fn may_sample(cx: &Context) -> bool {
    let span = cx.span();
    let sc = span.span_context();
    !sc.is_valid() || sc.is_sampled()
}

/// Starts a span of `kind` under `parent`.
pub(crate) fn start(
    tracer: &SdkTracer,
    name: impl Into<Cow<'static, str>>,
    kind: SpanKind,
    parent: &Context,
) -> Context {
    let span = tracer
        .span_builder(name)
        .with_kind(kind)
        .start_with_context(tracer, parent);
    parent.with_span(span)
}

/// Ends the span of `cx`, marked as an error with `message` when there is one.
pub(crate) fn end(cx: &Context, error: Option<(&'static str, String)>) {
    let span = cx.span();
    if let Some((kind, message)) = error
        && span.is_recording()
    {
        span.set_attribute(KeyValue::new("error.type", kind));
        span.set_status(Status::error(message));
    }
    span.end();
}

/// Why the exporter could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TracingError {
    /// The exporter could not be built (a bad endpoint URL, no thread for its runtime).
    #[error("cannot build the OTLP exporter: {0}")]
    Exporter(String),
}

/// Traces exported over OTLP/HTTP (protobuf), in batches, from a background thread of its own
/// (the application's runtime never encodes or sends a span). Dropping it exports what is
/// left and shuts the exporter down.
///
/// Built from `telemetry:` in `config.yaml` and the standard variables, which win over it:
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (the whole URL), `OTEL_EXPORTER_OTLP_ENDPOINT` (the
/// collector; `/v1/traces` is appended), `OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER_ARG` (the
/// ratio) and `OTEL_SDK_DISABLED=true`. New traces are sampled at the ratio; a request that
/// continues a trace follows its caller's decision.
///
/// ```no_run
/// # #[cfg(feature = "axum")]
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use api_orchestrator::{Orchestrator, config::{ConfigFiles, Loader}, telemetry::Tracing};
///
/// let settings = Loader::new().settings(&ConfigFiles::read_dir("config")?)?;
/// let tracing = Tracing::from_settings(&settings)?;
/// let mut builder = Orchestrator::builder();
/// if let Some(t) = &tracing {
///     builder = builder.tracer(t.tracer());
/// }
/// let orchestrator = builder.load_dir("config")?;
/// // … serve; `tracing` flushes what is left when dropped.
/// # Ok(()) }
/// ```
pub struct Tracing {
    provider: SdkTracerProvider,
    endpoint: String,
}

impl fmt::Debug for Tracing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracing")
            .field("endpoint", &crate::redact::url(&self.endpoint))
            .finish_non_exhaustive()
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Tracing {
    /// The exporter `settings.telemetry` and the `OTEL_*` variables ask for; `None` when
    /// neither names an endpoint, or `OTEL_SDK_DISABLED` is `true`.
    pub fn from_settings(settings: &Settings) -> Result<Option<Self>, TracingError> {
        if env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        let t = &settings.telemetry;
        let endpoint = match env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            Some(url) => url,
            None => match env("OTEL_EXPORTER_OTLP_ENDPOINT").or_else(|| t.endpoint.clone()) {
                None => return Ok(None),
                Some(base) if base.trim_end_matches('/').ends_with("/v1/traces") => base,
                Some(base) => format!("{}/v1/traces", base.trim_end_matches('/')),
            },
        };
        let ratio = env("OTEL_TRACES_SAMPLER_ARG")
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|r| (0.0..=1.0).contains(r))
            .unwrap_or(t.sampling_ratio);
        let mut resource = Resource::builder();
        if env("OTEL_SERVICE_NAME").is_none() {
            resource = resource.with_service_name(
                t.service_name
                    .clone()
                    .or_else(|| settings.app.name.clone())
                    .unwrap_or_else(|| "api-orchestrator".into()),
            );
        }
        Self::build(endpoint, ratio, resource.build()).map(Some)
    }

    fn build(endpoint: String, ratio: f64, resource: Resource) -> Result<Self, TracingError> {
        use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| TracingError::Exporter(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| TracingError::Exporter(format!("no runtime for the exporter: {e}")))?;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_http_client(OnRuntime { client, runtime })
            .with_endpoint(endpoint.clone())
            .build()
            .map_err(|e| {
                TracingError::Exporter(format!("{} ({e})", crate::redact::url(&endpoint)))
            })?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                ratio,
            ))))
            .with_resource(resource)
            .build();
        Ok(Self { provider, endpoint })
    }

    /// The tracer to hand to [`OrchestratorBuilder::tracer`](crate::OrchestratorBuilder::tracer)
    /// (and to the host's own instrumentation, if it likes).
    pub fn tracer(&self) -> SdkTracer {
        use opentelemetry::trace::TracerProvider as _;
        self.provider.tracer("api-orchestrator")
    }

    /// The provider, e.g. to install as the global one
    /// (`opentelemetry::global::set_tracer_provider`).
    pub fn provider(&self) -> &SdkTracerProvider {
        &self.provider
    }

    /// Exports the spans not yet sent and waits for the collector to take them.
    pub fn flush(&self) -> Result<(), TracingError> {
        self.provider
            .force_flush()
            .map_err(|e| TracingError::Exporter(e.to_string()))
    }
}

impl Drop for Tracing {
    fn drop(&mut self) {
        let _ = self.provider.shutdown();
    }
}

/// The exporter's HTTP client. The batch processor exports from a thread of its own, outside
/// any tokio runtime: the request runs there, on a small runtime of the exporter's, so the
/// application's workers never spend time on exports. Called from within a runtime (a
/// processor of the host's that exports on the caller's thread), it runs on that runtime.
#[derive(Debug)]
struct OnRuntime {
    client: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for OnRuntime {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, opentelemetry_http::HttpError> {
        let client = self.client.clone();
        let send = async move {
            let response = client.execute(reqwest::Request::try_from(request)?).await?;
            let mut out = http::Response::builder().status(response.status());
            if let Some(headers) = out.headers_mut() {
                *headers = response.headers().clone();
            }
            let body = response.bytes().await?;
            Ok::<_, opentelemetry_http::HttpError>(out.body(body)?)
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => handle.spawn(send).await?,
            Err(_) => self.runtime.block_on(send),
        }
    }
}
