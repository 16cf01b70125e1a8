//! Shared support for the integration tests: in-process test sources and a helper that loads a
//! plan from YAML text through the real loader.

#[path = "support/db.rs"]
pub mod db;
#[path = "support/hosts.rs"]
pub mod hosts;
#[path = "support/upstream.rs"]
pub mod upstream;

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use api_orchestrator::config::{ConfigFiles, Loader};
use api_orchestrator::source::{DataSource, SourceCall, SourceError, SourceErrorKind};
use api_orchestrator::{Orchestrator, OrchestratorBuilder, ValidPlan};
use serde_json::{Value, json};

/// Whole milliseconds, for comparing virtual times.
pub fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// Sleeps `params.ms` (default 200) milliseconds of (virtual) time, then returns its params
/// plus `"finished_ms"`, the virtual time since the test started.
#[derive(Debug, Clone)]
pub struct Sleep {
    /// When the test started.
    pub epoch: tokio::time::Instant,
}

#[async_trait::async_trait]
impl DataSource for Sleep {
    async fn fetch(&self, call: SourceCall<'_>) -> Result<Value, SourceError> {
        let ms = call.params.get("ms").and_then(Value::as_u64).unwrap_or(200);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        let mut out = call.params.clone();
        out.insert(
            "finished_ms".into(),
            json!(self.epoch.elapsed().as_millis() as u64),
        );
        Ok(Value::Object(out))
    }
}

/// Fails `params.failures` times (default: always) with `params.kind` (`unavailable` or
/// `rejected`), then returns `{"attempt": n}`.
#[derive(Debug, Default)]
pub struct Flaky {
    calls: AtomicU32,
}

#[async_trait::async_trait]
impl DataSource for Flaky {
    async fn fetch(&self, call: SourceCall<'_>) -> Result<Value, SourceError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let failures = call
            .params
            .get("failures")
            .and_then(Value::as_u64)
            .map_or(u32::MAX, |n| n as u32);
        if call.attempt <= failures {
            let kind = match call.params.get("kind").and_then(Value::as_str) {
                Some("rejected") => SourceErrorKind::Rejected,
                _ => SourceErrorKind::Unavailable,
            };
            return Err(SourceError::new(
                kind,
                format!("attempt {} refused", call.attempt),
            ));
        }
        Ok(json!({"attempt": call.attempt}))
    }
}

/// Returns the fixture document named by the step's `operation`, counting calls.
#[derive(Debug, Default)]
pub struct Fixtures {
    /// How many fetches were made.
    pub calls: AtomicUsize,
}

impl Fixtures {
    /// The documents by operation name.
    pub fn document(operation: &str) -> Value {
        match operation {
            "profile" => {
                json!({"customer_id": 42, "name": "Ada Lovelace", "email": "ada@example.com",
                                "segment": "gold", "tier": null, "credit_limit": 5000})
            }
            "orders" => json!([
                {"order_id": 1, "amount": 120.5, "status": "shipped", "items": [{"sku": "A"}, {"sku": "B"}]},
                {"order_id": 2, "amount": 35, "status": "cancelled", "items": [{"sku": "C"}]},
                {"order_id": 3, "amount": 80, "status": "shipped", "items": []},
                {"order_id": 4, "amount": null, "status": "open"}
            ]),
            "features" => json!({"customer_lifetime_value": 1520.75, "purchase_frequency": 3.2}),
            other => json!({"operation": other}),
        }
    }
}

#[async_trait::async_trait]
impl DataSource for Fixtures {
    async fn fetch(&self, call: SourceCall<'_>) -> Result<Value, SourceError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut doc = Self::document(call.operation.unwrap_or_default());
        if let (Some(echo), Value::Object(map)) = (call.params.get("echo"), &mut doc) {
            map.insert("echo".into(), echo.clone());
        }
        Ok(doc)
    }
}

/// The host source types the tests register.
pub const TEST_SOURCE_TYPES: &[&str] = &["sleep", "flaky", "fixture"];

/// Loads `domain_yaml` as `domains/test.yaml` of an in-memory config with the test source
/// types accepted.
pub fn plan_from_yaml(domain_yaml: &str) -> ValidPlan {
    plan_with_types(domain_yaml, &[])
}

/// Like [`plan_from_yaml`], with the host source types `extra` accepted too.
pub fn plan_with_types(domain_yaml: &str, extra: &[&str]) -> ValidPlan {
    let files = ConfigFiles::new().with_file("domains/test.yaml", domain_yaml);
    let mut loader = Loader::new();
    for t in TEST_SOURCE_TYPES.iter().chain(extra) {
        loader = loader.with_source_type(*t);
    }
    loader.load(&files).unwrap_or_else(|e| panic!("{e}"))
}

/// A builder with the test sources registered.
pub fn builder() -> OrchestratorBuilder {
    Orchestrator::builder()
        .register(
            "sleep",
            Sleep {
                epoch: tokio::time::Instant::now(),
            },
        )
        .register("flaky", Flaky::default())
        .register("fixture", Fixtures::default())
}

/// An orchestrator for `domain_yaml` with the test sources registered.
pub fn orchestrator(domain_yaml: &str) -> Orchestrator {
    builder()
        .build(plan_from_yaml(domain_yaml))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A config directory holding `files` (relative path → contents); removed when dropped.
pub fn config_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

/// What a test reads back: every event and span close (DEBUG and up) printed on the test's
/// thread while its [`Capture`] guard lives, and those of spans the thread opened meanwhile
/// wherever they end (sqlx's SQLite worker thread holds a clone of the current span and may
/// drop it last, closing the span there, after the request has answered).
///
/// tracing caches per call site, process-wide, whether anyone listens, and while only one
/// subscriber is registered it recomputes that cache from *the calling thread's* subscriber.
/// A thread-local subscriber (`set_default`) therefore races with every other test thread:
/// one reaching or rebuilding a call site turns it off for the capturing test. So there is one
/// process-wide subscriber, installed by [`Captured::new`] before anything is reached, and it
/// writes each line into the buffer of the capture it belongs to.
#[derive(Debug, Clone, Default)]
pub struct Captured(std::sync::Arc<Buffer>);

#[derive(Debug, Default)]
struct Buffer {
    text: std::sync::Mutex<Vec<u8>>,
    /// Spans tagged with this capture whose close has not been written yet.
    open: std::sync::atomic::AtomicUsize,
}

thread_local! {
    static CAPTURING: std::cell::RefCell<Option<Captured>> = const { std::cell::RefCell::new(None) };
    /// Where the line being printed on this thread goes, and whether it closes a span: set by
    /// [`Route`] just before the formatting layer asks for its writer.
    static ROUTED: std::cell::RefCell<Option<(Captured, bool)>> = const { std::cell::RefCell::new(None) };
}

/// Stops the capture of this thread when dropped.
#[derive(Debug)]
#[must_use = "the capture stops when the guard drops"]
pub struct Capture(());

impl Drop for Capture {
    fn drop(&mut self) {
        CAPTURING.with(|c| c.borrow_mut().take());
    }
}

/// Tags each span opened by a capturing thread (or inside a tagged span) with its capture, and
/// routes a span's close and an event to the capture of the span they belong to.
struct Route;

impl<S> tracing_subscriber::Layer<S> for Route
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        _: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let Some(span) = ctx.span(id) else { return };
        let tag = CAPTURING.with(|c| c.borrow().clone()).or_else(|| {
            span.parent()
                .and_then(|p| p.extensions().get::<Captured>().cloned())
        });
        if let Some(tag) = tag {
            tag.0.open.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            span.extensions_mut().insert(tag);
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: tracing_subscriber::layer::Context<'_, S>) {
        let tag = ctx
            .event_span(event)
            .and_then(|s| s.extensions().get::<Captured>().cloned());
        ROUTED.with(|r| *r.borrow_mut() = tag.map(|t| (t, false)));
    }

    fn on_close(&self, id: tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        let tag = ctx
            .span(&id)
            .and_then(|s| s.extensions().get::<Captured>().cloned());
        ROUTED.with(|r| *r.borrow_mut() = tag.map(|t| (t, true)));
    }
}

/// The process-wide subscriber's writer: the routed capture, else the printing thread's.
struct Sink {
    out: Option<Captured>,
    /// Counts the span's close as written when the line is done.
    closes: bool,
}

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(out) = &self.out {
            out.0.text.lock().unwrap().extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if let Some(out) = self.out.as_ref().filter(|_| self.closes) {
            out.0.open.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

impl Captured {
    /// An empty buffer; installs the process-wide subscriber on first use. Call it before the
    /// test's first request so every call site is first reached with the subscriber in place.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        use tracing_subscriber::layer::SubscriberExt as _;
        static INSTALL: std::sync::Once = std::sync::Once::new();
        INSTALL.call_once(|| {
            let print = tracing_subscriber::fmt::layer()
                .with_writer(|| match ROUTED.with(|r| r.borrow_mut().take()) {
                    Some((out, closes)) => Sink {
                        out: Some(out),
                        closes,
                    },
                    None => Sink {
                        out: CAPTURING.with(|c| c.borrow().clone()),
                        closes: false,
                    },
                })
                .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
                .with_ansi(false);
            let subscriber = tracing_subscriber::registry()
                .with(tracing_subscriber::filter::LevelFilter::DEBUG)
                .with(Route)
                .with(print);
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other global subscriber in the test binaries");
        });
        Self::default()
    }

    /// Records what this thread prints until the guard drops.
    pub fn capture(&self) -> Capture {
        // A call site whose first visit straddled the installation may have kept the cache of a
        // thread without a subscriber; every thread now agrees, so one rebuild settles it.
        tracing::callsite::rebuild_interest_cache();
        CAPTURING.with(|c| *c.borrow_mut() = Some(self.clone()));
        Capture(())
    }

    /// What was written so far, once the spans opened during the capture have closed (a span
    /// a worker thread still holds closes there a moment after the answer; waits up to 10 s
    /// for spans that stay open, then reads anyway).
    pub fn text(&self) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while self.0.open.load(std::sync::atomic::Ordering::SeqCst) > 0
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        String::from_utf8_lossy(&self.0.text.lock().unwrap()).into_owned()
    }
}
