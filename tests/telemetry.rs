//! Observability over real sockets: spans exported over OTLP/HTTP to a receiver in the test
//! (decoded with the official protobuf definitions, `opentelemetry-proto`), the `traceparent`
//! each upstream received, the Prometheus metrics, and secrets kept out of spans, metrics and
//! logs.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use api_orchestrator::Orchestrator;
use api_orchestrator::config::{ConfigFiles, Loader};
use api_orchestrator::telemetry::{Metrics, Tracing};
use api_orchestrator::web::Api;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message as _;
use serde_json::{Value, json};
use tests::{Captured, config_dir};

/// Serves `app` on a free loopback port until the test ends.
async fn serve(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// An OTLP/HTTP trace receiver: every export request, raw and decoded.
#[derive(Clone, Default)]
struct Receiver {
    raw: Arc<Mutex<Vec<u8>>>,
    spans: Arc<Mutex<Vec<Span>>>,
}

impl Receiver {
    async fn start(&self) -> SocketAddr {
        async fn export(State(r): State<Receiver>, body: Bytes) -> (StatusCode, Vec<u8>) {
            r.raw.lock().unwrap().extend_from_slice(&body);
            let Ok(request) = ExportTraceServiceRequest::decode(body) else {
                return (StatusCode::BAD_REQUEST, Vec::new());
            };
            let mut spans = r.spans.lock().unwrap();
            for rs in request.resource_spans {
                for ss in rs.scope_spans {
                    spans.extend(ss.spans);
                }
            }
            (
                StatusCode::OK,
                ExportTraceServiceResponse::default().encode_to_vec(),
            )
        }
        let app = axum::Router::new()
            .route("/v1/traces", axum::routing::post(export))
            .with_state(self.clone());
        serve(app).await
    }

    fn spans(&self) -> Vec<Span> {
        self.spans.lock().unwrap().clone()
    }
}

/// The upstream of the three sources: it records the `traceparent` of each call, and answers
/// `/b` with a 503 the first time (one retry).
#[derive(Clone, Default)]
struct Backend {
    seen: Arc<Mutex<Vec<(String, String)>>>,
}

impl Backend {
    async fn start(&self) -> SocketAddr {
        async fn answer(State(b): State<Backend>, req: Request) -> (StatusCode, String) {
            let path = req.uri().path().to_owned();
            let traceparent = req
                .headers()
                .get("traceparent")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let first_b = {
                let mut seen = b.seen.lock().unwrap();
                seen.push((path.clone(), traceparent));
                path == "/b" && seen.iter().filter(|(p, _)| p == "/b").count() == 1
            };
            if first_b {
                return (StatusCode::SERVICE_UNAVAILABLE, r#"{"busy":true}"#.into());
            }
            (StatusCode::OK, json!({"path": path}).to_string())
        }
        serve(
            axum::Router::new()
                .fallback(answer)
                .with_state(self.clone()),
        )
        .await
    }
}

const QUERY_SECRET: &str = "query-secret-4711";
const DOWN_SECRET: &str = "down-secret-1234";
const BEARER_SECRET: &str = "bearer-secret-0815";
const HEADER_SECRET: &str = "header-secret-3141";
const DB_SECRET: &str = "pg-secret-9876";
const CLIENT_SECRET: &str = "client-secret-2222";

/// A config whose `merge` endpoint calls the backend three times (with one retry) and whose
/// `leaky` endpoint meets two failing sources whose settings hold secrets.
fn config(otlp: SocketAddr, backend: SocketAddr, extra: &str) -> tempfile::TempDir {
    config_dir(&[
        (
            "config.yaml",
            &format!(
                "telemetry: {{endpoint: \"http://{otlp}\", sampling_ratio: 1, service_name: orchestrator-test}}\n{extra}"
            ),
        ),
        (
            "integrations/api_sources.yaml",
            &format!(
                r#"
api:
  sources:
    backend:
      base_url: "http://{backend}"
      auth: {{type: api_key, query: api_key, key: "{QUERY_SECRET}"}}
      retries: {{max: 1, backoff: 1ms}}
      operations:
        a: {{path: "/a/{{id}}"}}
        b: {{path: "/b"}}
        c: {{path: "/c"}}
    down:
      base_url: "http://127.0.0.1:1"
      auth: {{type: api_key, query: api_key, key: "{DOWN_SECRET}"}}
      headers: {{X-Extra: "{HEADER_SECRET}"}}
      operations:
        nothing: {{path: "/x"}}
    bearer:
      base_url: "http://127.0.0.1:1/v1"
      auth: {{type: bearer, token: "{BEARER_SECRET}"}}
      operations:
        guarded: {{path: "/y"}}
"#
            ),
        ),
        (
            "database.yaml",
            &format!(
                r#"
database:
  sources:
    pg:
      connection_string: "postgres://orchestrator:{DB_SECRET}@127.0.0.1:1/test"
      pool_timeout: 1
  operations:
    one: {{query: "SELECT 1 AS one", source_id: pg}}
"#
            ),
        ),
        (
            "domains/shop.yaml",
            r#"
endpoints:
  merge:
    data_sources:
      - {name: a, type: api, operation: a, params: {id: "$request.id"}}
      - {name: b, type: api, operation: b}
      - {name: c, type: api, operation: c}
    response_mapping: {a: "$a.path", b: "$b.path", c: "$c.path"}
  leaky:
    data_sources:
      - {name: down, type: api, operation: nothing, on_error: skip}
      - {name: guarded, type: api, operation: guarded, on_error: default, default: {}}
      - {name: db, type: database, operation: one, on_error: skip}
    response_mapping: {down: "$down", guarded: "$guarded", db: "$db"}
"#,
        ),
    ])
}

/// A test's servers: the OTLP receiver, the backend, and the orchestrator of [`config`] (a
/// tracer from its `telemetry:`, and metrics) served at `/api`.
struct Setup {
    otlp: Receiver,
    backend: Backend,
    dir: tempfile::TempDir,
    orchestrator: Orchestrator,
    tracing: Arc<Tracing>,
    metrics: Metrics,
    addr: SocketAddr,
}

impl Setup {
    async fn start(extra: &str) -> Self {
        let otlp = Receiver::default();
        let backend = Backend::default();
        let dir = config(otlp.start().await, backend.start().await, extra);
        let settings = Loader::new()
            .settings(&ConfigFiles::read_dir(dir.path()).unwrap())
            .unwrap();
        let tracing = Tracing::from_settings(&settings)
            .unwrap()
            .expect("telemetry.endpoint is set");
        let metrics = Metrics::new();
        let orchestrator = Orchestrator::builder()
            .tracer(tracing.tracer())
            .metrics(&metrics)
            .load_dir(dir.path())
            .unwrap_or_else(|e| panic!("{e}"));
        let app = axum::Router::new().nest_service("/api", Api::new(&orchestrator));
        let addr = serve(app).await;
        Self {
            otlp,
            backend,
            dir,
            orchestrator,
            tracing: Arc::new(tracing),
            metrics,
            addr,
        }
    }

    /// `GET /api/shop/{path}` with `headers`.
    async fn get(&self, path: &str, headers: &[(&str, String)]) -> reqwest::Response {
        let mut request =
            reqwest::Client::new().get(format!("http://{}/api/shop/{path}", self.addr));
        for (k, v) in headers {
            request = request.header(*k, v);
        }
        request.send().await.unwrap()
    }

    /// Exports what is left (on a blocking thread: the export itself runs on this runtime).
    async fn flush(&self) {
        let t = self.tracing.clone();
        tokio::task::spawn_blocking(move || t.flush())
            .await
            .unwrap()
            .unwrap();
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attr<'s>(span: &'s Span, key: &str) -> Option<&'s Any> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn attr_str<'s>(span: &'s Span, key: &str) -> &'s str {
    match attr(span, key) {
        Some(Any::StringValue(s)) => s,
        other => panic!("`{}` has no string `{key}`: {other:?}", span.name),
    }
}

fn attr_int(span: &Span, key: &str) -> i64 {
    match attr(span, key) {
        Some(Any::IntValue(n)) => *n,
        other => panic!("`{}` has no integer `{key}`: {other:?}", span.name),
    }
}

const INCOMING_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const INCOMING_PARENT: &str = "b7ad6b7169203331";

#[tokio::test]
async fn a_request_exports_its_server_source_and_attempt_spans_linked_as_documented() {
    let t = Setup::start("").await;
    let traceparent = format!("00-{INCOMING_TRACE}-{INCOMING_PARENT}-01");
    let response = t.get("merge?id=42", &[("traceparent", traceparent)]).await;
    assert_eq!(response.status(), 200);
    let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(body, json!({"a": "/a/42", "b": "/b", "c": "/c"}));
    t.flush().await;

    let spans = t.otlp.spans();
    for s in &spans {
        assert_eq!(
            hex(&s.trace_id),
            INCOMING_TRACE,
            "{} left the trace",
            s.name
        );
    }
    let of_kind =
        |kind: SpanKind| -> Vec<&Span> { spans.iter().filter(|s| s.kind == kind as i32).collect() };

    // One server span, a child of the caller's span.
    let servers = of_kind(SpanKind::Server);
    assert_eq!(servers.len(), 1, "{spans:#?}");
    let server = servers[0];
    assert_eq!(hex(&server.parent_span_id), INCOMING_PARENT);
    assert_eq!(server.name, "GET /shop/merge");
    assert_eq!(attr_str(server, "http.route"), "/shop/merge");
    assert_eq!(attr_str(server, "http.request.method"), "GET");
    assert_eq!(attr_int(server, "http.response.status_code"), 200);
    assert_eq!(attr_str(server, "orchestrator.endpoint"), "merge");
    assert_eq!(attr_int(server, "orchestrator.config_version"), 1);

    // One span per source call, children of the server span.
    let sources: HashMap<String, &Span> = of_kind(SpanKind::Internal)
        .into_iter()
        .map(|s| (attr_str(s, "orchestrator.source").to_owned(), s))
        .collect();
    assert_eq!(sources.len(), 3, "{spans:#?}");
    for (name, s) in &sources {
        assert_eq!(s.name, format!("source {name}"));
        assert_eq!(s.parent_span_id, server.span_id, "source {name}");
        assert_eq!(attr_str(s, "orchestrator.source.outcome"), "ok");
        assert_eq!(attr_str(s, "orchestrator.source.type"), "api");
    }
    assert_eq!(attr_int(sources["b"], "orchestrator.source.attempts"), 2);
    let retry = sources["b"]
        .events
        .iter()
        .find(|e| e.name == "retry")
        .expect("a retry event on source b");
    assert!(
        retry.attributes.iter().any(|kv| kv.key == "error.type"
            && kv.value.as_ref().and_then(|v| v.value.as_ref())
                == Some(&Any::StringValue("upstream_status".into()))),
        "{retry:?}"
    );

    // One client span per attempt, children of their source's span.
    let clients = of_kind(SpanKind::Client);
    assert_eq!(clients.len(), 4, "a, b twice, c: {spans:#?}");
    for c in &clients {
        let source = attr_str(c, "orchestrator.source");
        assert_eq!(c.parent_span_id, sources[source].span_id, "{}", c.name);
        assert_eq!(c.name, format!("api {source}"));
        assert_eq!(attr_str(c, "orchestrator.service"), "backend");
        assert_eq!(attr_str(c, "http.request.method"), "GET");
        assert_eq!(attr_str(c, "server.address"), "127.0.0.1");
    }
    let mut b_attempts: Vec<(i64, i64)> = clients
        .iter()
        .filter(|c| attr_str(c, "orchestrator.source") == "b")
        .map(|c| {
            (
                attr_int(c, "orchestrator.attempt"),
                attr_int(c, "http.response.status_code"),
            )
        })
        .collect();
    b_attempts.sort_unstable();
    assert_eq!(b_attempts, [(1, 503), (2, 200)]);
    let failed = clients
        .iter()
        .find(|c| attr_int(c, "http.response.status_code") == 503)
        .unwrap();
    assert_eq!(attr_str(failed, "error.type"), "upstream_status");
    assert_eq!(
        failed.status.as_ref().map(|s| s.code),
        Some(2),
        "status error"
    );

    // Each call's `traceparent` names the client span exported for it.
    let seen = t.backend.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 4);
    for (path, traceparent) in &seen {
        let parts: Vec<&str> = traceparent.split('-').collect();
        assert_eq!(parts.len(), 4, "{traceparent}");
        assert_eq!(parts[1], INCOMING_TRACE, "{path}");
        assert_eq!(parts[3], "01", "{path}");
        let span = clients
            .iter()
            .find(|c| hex(&c.span_id) == parts[2])
            .unwrap_or_else(|| panic!("{path} got {traceparent}: no exported span has that id"));
        let source = attr_str(span, "orchestrator.source");
        assert!(
            path.starts_with(&format!("/{source}")),
            "{path} vs {source}"
        );
    }
}

#[tokio::test]
async fn an_unsampled_request_exports_nothing_and_still_propagates_its_trace() {
    let t = Setup::start("").await;
    let traceparent = format!("00-{INCOMING_TRACE}-{INCOMING_PARENT}-00");
    let response = t.get("merge?id=1", &[("traceparent", traceparent)]).await;
    assert_eq!(response.status(), 200);
    t.flush().await;
    assert!(t.otlp.spans().is_empty(), "{:#?}", t.otlp.spans());
    for (path, traceparent) in t.backend.seen.lock().unwrap().iter() {
        assert!(
            traceparent.starts_with(&format!("00-{INCOMING_TRACE}-"))
                && traceparent.ends_with("-00"),
            "{path}: {traceparent}"
        );
    }
}

/// The first sample of `name` with exactly `labels` in the exposition `text`.
fn sample(text: &str, name: &str, labels: &str) -> Option<f64> {
    let head = if labels.is_empty() {
        format!("{name} ")
    } else {
        format!("{name}{{{labels}}} ")
    };
    text.lines()
        .find_map(|l| l.strip_prefix(&head))
        .and_then(|v| v.split(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn metrics_count_requests_sources_and_reloads() {
    let t = Setup::start("").await;
    for id in 0..3 {
        assert_eq!(t.get(&format!("merge?id={id}"), &[]).await.status(), 200);
    }
    assert_eq!(t.get("nothing", &[]).await.status(), 404);

    let text = t.metrics.render();
    let at = |name: &str, labels: &str| {
        sample(&text, name, labels).unwrap_or_else(|| panic!("no {name}{{{labels}}} in\n{text}"))
    };
    assert_eq!(
        at(
            "orchestrator_requests_total",
            r#"endpoint="merge",method="GET",status="200""#
        ),
        3.0
    );
    assert_eq!(
        at(
            "orchestrator_requests_total",
            r#"endpoint="unmatched",method="GET",status="404""#
        ),
        1.0
    );
    assert_eq!(
        at(
            "orchestrator_request_duration_seconds_count",
            r#"endpoint="merge""#
        ),
        3.0
    );
    for source in ["a", "b", "c"] {
        assert_eq!(
            at(
                "orchestrator_source_calls_total",
                &format!(r#"endpoint="merge",source="{source}",outcome="ok""#)
            ),
            3.0
        );
        assert_eq!(
            at(
                "orchestrator_source_duration_seconds_count",
                &format!(r#"endpoint="merge",source="{source}",kind="api""#)
            ),
            3.0
        );
    }
    assert_eq!(at("orchestrator_requests_in_flight", ""), 0.0);
    assert_eq!(at("orchestrator_config_version", ""), 1.0);
    assert!(
        text.contains(r#"orchestrator_sql_pool_connections{pool="pg",state="idle"} 0"#),
        "{text}"
    );

    t.orchestrator.reload().unwrap();
    std::fs::write(t.dir.path().join("domains/broken.yaml"), "endpoints: [").unwrap();
    assert!(t.orchestrator.reload().is_err());
    let text = t.metrics.render();
    assert_eq!(
        sample(&text, "orchestrator_reloads_total", r#"result="ok""#),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "orchestrator_reloads_total", r#"result="failed""#),
        Some(1.0)
    );
    assert_eq!(sample(&text, "orchestrator_config_version", ""), Some(2.0));
}

#[tokio::test]
async fn secrets_appear_in_no_span_metric_or_log_line() {
    let t = Setup::start("").await;
    let headers = [
        ("authorization", format!("Bearer {CLIENT_SECRET}")),
        ("x-request-id", "req-secrets".to_owned()),
    ];
    let logs = Captured::new();
    assert_eq!(t.get("leaky", &headers).await.status(), 200);
    assert_eq!(t.get("merge?id=5", &headers).await.status(), 200);
    let guard = logs.capture();
    assert_eq!(t.get("merge?id=6", &headers).await.status(), 200);
    let leaky = t.get("leaky", &headers).await;
    assert_eq!(leaky.status(), 200);
    assert_eq!(
        serde_json::from_slice::<Value>(&leaky.bytes().await.unwrap()).unwrap(),
        json!({"down": null, "guarded": {}, "db": null})
    );
    drop(guard);
    t.flush().await;

    // The failures were recorded (so the secrets had every chance to leak)…
    let logs = logs.text();
    assert!(
        logs.contains("its result was stood in for") && logs.contains("req-secrets"),
        "{logs}"
    );
    let spans = t.otlp.spans();
    let failed: Vec<&str> = spans
        .iter()
        .filter(|s| s.status.as_ref().is_some_and(|st| st.code == 2))
        .map(|s| attr_str(s, "orchestrator.source"))
        .collect();
    assert!(
        ["down", "guarded", "db"].iter().all(|s| failed.contains(s)),
        "{spans:#?}"
    );
    // …and no secret is in them.
    let raw = String::from_utf8_lossy(&t.otlp.raw.lock().unwrap()).into_owned();
    let text = t.metrics.render();
    for secret in [
        QUERY_SECRET,
        DOWN_SECRET,
        BEARER_SECRET,
        HEADER_SECRET,
        DB_SECRET,
        CLIENT_SECRET,
    ] {
        assert!(!raw.contains(secret), "{secret} was exported in a span");
        assert!(!text.contains(secret), "{secret} is in the metrics");
        assert!(!logs.contains(secret), "{secret} was logged:\n{logs}");
    }
}

#[tokio::test]
async fn server_timing_can_be_turned_off() {
    for (extra, expected) in [("", true), ("tracking: {server_timing: false}", false)] {
        let t = Setup::start(extra).await;
        let r = t.get("merge?id=7", &[]).await;
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers().contains_key("server-timing"),
            expected,
            "{extra}"
        );
    }
}
