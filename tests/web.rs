//! Plans mounted in an axum host and in an actix-web host, beside the host's own routes: one
//! behavioural suite runs against both over real sockets.

use std::sync::Arc;
use std::time::Duration;

use api_orchestrator::Orchestrator;
use api_orchestrator::source::{DataSource, SourceCall, SourceError};
use api_orchestrator::web::{Api, Body};
use http::Request;
use serde_json::{Value, json};
use tests::hosts::{self, Running};
use tests::{Flaky, Sleep, config_dir};

/// Returns null for customer 0 (so the endpoint answers 404), the id otherwise.
struct Lookup;

#[async_trait::async_trait]
impl DataSource for Lookup {
    async fn fetch(&self, call: SourceCall<'_>) -> Result<Value, SourceError> {
        Ok(match call.params.get("customer_id") {
            Some(Value::String(id)) if id == "0" => Value::Null,
            Some(id) => json!({"customer_id": id}),
            None => json!({"customer_id": null}),
        })
    }
}

/// Waits until two calls are inside at once: it only returns if requests run concurrently.
struct Gate(Arc<tokio::sync::Barrier>);

#[async_trait::async_trait]
impl DataSource for Gate {
    async fn fetch(&self, _: SourceCall<'_>) -> Result<Value, SourceError> {
        self.0.wait().await;
        Ok(json!({"passed": true}))
    }
}

const ENDPOINTS: &str = r#"
endpoints:
  greet:
    description: Greets someone
    path: /greet/{name}
    method: [GET]
    input:
      path: {name: string}
      query: {times: {type: integer, required: false, description: How many times}}
    data_sources:
      - {name: hello, type: direct, params: {name: "$request.name", times: "$request.times"}}
    response_mapping: {name: "$hello.name", times: "$hello.times", kind: greeting}
  lookup:
    data_sources:
      - {name: row, type: lookup, params: {customer_id: "$request.customer_id"}}
  order:
    path: /orders
    method: [POST]
    input:
      body: {customer_id: integer, amount: number}
    data_sources:
      - {name: o, type: direct, params: {customer_id: "$request.body.customer_id", amount: "$request.body.amount"}}
    response_mapping: {accepted: true, customer_id: "$o.customer_id", amount: "$o.amount"}
  broken:
    data_sources:
      - {name: flaky, type: flaky, params: {kind: rejected}}
  slow:
    timeout: 300ms
    data_sources:
      - {name: nap, type: sleep, params: {ms: 10000}}
  gate:
    data_sources:
      - {name: gate, type: gate}
"#;

/// A config that leaves `tracking:` at its defaults.
const NO_TRACKING: &str = "defaults:\n  timeout: 30s\n";

const TRACKING: &str =
    "server:\n  max_body_bytes: 1024\ntracking:\n  debug_view: true\n  admin: true\n  recent: 50\n";

/// A builder with the source types `ENDPOINTS` uses.
fn builder() -> api_orchestrator::OrchestratorBuilder {
    Orchestrator::builder()
        .register("lookup", Lookup)
        .register("flaky", Flaky::default())
        .register(
            "sleep",
            Sleep {
                epoch: tokio::time::Instant::now(),
            },
        )
        .register("gate", Gate(Arc::new(tokio::sync::Barrier::new(2))))
}

fn api(config_yaml: &str) -> (tempfile::TempDir, Api) {
    let dir = config_dir(&[
        ("config.yaml", config_yaml),
        ("domains/shop.yaml", ENDPOINTS),
    ]);
    let o = builder()
        .load_dir(dir.path())
        .unwrap_or_else(|e| panic!("{e}"));
    (dir, Api::new(&o))
}

/// A host with its own `/health` route, the plans under `/api` and the admin service under
/// `/api/admin`.
#[derive(Debug, Clone, Copy)]
enum Host {
    /// `Router::nest_service("/api", api)`: the API as a `tower` service.
    Axum,
    Actix,
}

async fn start(host: Host, api: Api) -> Running {
    match host {
        Host::Axum => {
            hosts::axum(
                axum::Router::new()
                    .route("/health", axum::routing::get(|| async { "ok" }))
                    .nest_service("/api/admin", api.admin())
                    .nest_service("/api", api),
            )
            .await
        }
        Host::Actix => hosts::actix(move |cfg| {
            cfg.route("/health", actix_web::web::get().to(|| async { "ok" }))
                .service(
                    actix_web::web::scope("/api/admin")
                        .configure(api_orchestrator::web::actix::configure(api.admin())),
                )
                .service(
                    actix_web::web::scope("/api")
                        .configure(api_orchestrator::web::actix::configure(api.clone())),
                );
        }),
    }
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Asserts a problem+json answer with this status and type, and returns it.
    fn problem(&self, status: u16, kind: &str) -> Value {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(self.header("content-type"), "application/problem+json");
        let p = self.json();
        assert_eq!(p["type"], format!("urn:orchestrator:problem:{kind}"), "{p}");
        assert_eq!(p["status"], status);
        assert_eq!(p["request_id"], self.header("x-request-id"));
        p
    }
}

/// The body as JSON (reqwest's `json` feature is not needed for this).
trait JsonBody {
    fn json_body(self, v: &Value) -> Self;
}

impl JsonBody for reqwest::RequestBuilder {
    fn json_body(self, v: &Value) -> Self {
        self.header("content-type", "application/json")
            .body(v.to_string())
    }
}

async fn send(req: reqwest::RequestBuilder) -> Reply {
    let r = req.send().await.unwrap();
    Reply {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        text: r.text().await.unwrap(),
    }
}

async fn suite(host: Host) {
    let (_dir, api) = api(TRACKING);
    let server = start(host, api).await;
    let c = client();
    let url = |p: &str| format!("{}{p}", server.base);

    // The host's own route still works.
    let r = send(c.get(url("/health"))).await;
    assert_eq!((r.status, r.text.as_str()), (200, "ok"), "{host:?}");

    // A mounted endpoint: typed input, request id echoed, one Server-Timing entry per source.
    let r = send(
        c.get(url("/api/greet/Zo%C3%AB?times=3"))
            .header("x-request-id", "req-42"),
    )
    .await;
    assert_eq!(r.status, 200, "{host:?}: {}", r.text);
    assert_eq!(
        r.json(),
        json!({"name": "Zoë", "times": 3, "kind": "greeting"})
    );
    assert_eq!(r.header("x-request-id"), "req-42");
    assert_eq!(r.header("content-type"), "application/json");
    // Encoded characters that mean something in a URI stay data in every host.
    let r = send(c.get(url("/api/greet/a%20b%3Fc%23d%2Fe%25f?times=1"))).await;
    assert_eq!(r.status, 200, "{host:?}: {}", r.text);
    assert_eq!(r.json()["name"], "a b?c#d/e%f", "{host:?}");
    assert_eq!(r.json()["times"], 1, "{host:?}");
    let timing = r.header("server-timing");
    assert!(
        timing.starts_with("hello;dur=")
            && timing.contains("desc=\"direct\"")
            && timing.contains("total;dur="),
        "{timing}"
    );
    // Without a request id, one is made up.
    let r = send(c.get(url("/api/greet/Ada"))).await;
    assert_eq!(r.header("x-request-id").len(), 32);

    // 400: declared inputs, and bodies that are not JSON.
    let p = send(c.get(url("/api/greet/Ada?times=often")))
        .await
        .problem(400, "invalid-input");
    assert_eq!(
        p["errors"],
        json!([{"in": "query", "name": "times", "problem": "must be an integer"}])
    );
    let r = send(
        c.post(url("/api/orders"))
            .json_body(&json!({"customer_id": 7, "amount": 9.5})),
    )
    .await;
    assert_eq!(
        r.json(),
        json!({"accepted": true, "customer_id": 7, "amount": 9.5}),
        "{host:?}"
    );
    let p = send(
        c.post(url("/api/orders"))
            .json_body(&json!({"customer_id": "seven"})),
    )
    .await
    .problem(400, "invalid-input");
    assert_eq!(p["errors"].as_array().unwrap().len(), 2, "{p}");
    send(
        c.post(url("/api/orders"))
            .header("content-type", "application/json")
            .body("{\"customer_id\": "),
    )
    .await
    .problem(400, "invalid-body");

    // 404: no route; the primary source found nothing.
    send(c.get(url("/api/nowhere")))
        .await
        .problem(404, "not-found");
    send(c.get(url("/api"))).await.problem(404, "not-found");
    if !matches!(host, Host::Axum) {
        // axum's nesting leaves `/api/` to the host; actix's scope answers it.
        send(c.get(url("/api/"))).await.problem(404, "not-found");
    }
    // A path that merely starts with the mount point's letters is the host's, not ours.
    let r = send(c.get(url("/apiary/greet/Ada"))).await;
    assert_eq!(r.status, 404, "{host:?}: {}", r.text);
    assert!(r.headers.get("x-request-id").is_none(), "{host:?}");
    send(c.get(url("/api/shop/lookup/0")))
        .await
        .problem(404, "no-result");
    let r = send(c.get(url("/api/shop/lookup/12"))).await;
    assert_eq!(r.json(), json!({"customer_id": "12"}));

    // HEAD wherever GET is: the GET's headers, no body.
    let get = send(c.get(url("/api/greet/Ada?times=2"))).await;
    let head = send(c.head(url("/api/greet/Ada?times=2"))).await;
    assert_eq!((get.status, head.status), (200, 200), "{host:?}");
    assert!(head.text.is_empty(), "{host:?}: {}", head.text);
    assert_eq!(
        head.header("content-length"),
        get.text.len().to_string(),
        "{host:?}"
    );
    assert_eq!(head.header("content-type"), "application/json", "{host:?}");

    // 405 with Allow.
    let r = send(c.delete(url("/api/greet/Ada"))).await;
    r.problem(405, "method-not-allowed");
    assert_eq!(r.header("allow"), "GET");

    // 413 beyond `server.max_body_bytes` (1 KiB here).
    let big = json!({"customer_id": 1, "amount": 1, "pad": "x".repeat(4096)});
    send(c.post(url("/api/orders")).json_body(&big))
        .await
        .problem(413, "payload-too-large");

    // 502: a failed source; its error text stays out of the answer.
    let r = send(c.get(url("/api/shop/broken"))).await;
    let p = r.problem(502, "source-failed");
    assert_eq!(p["detail"], "data source `flaky` failed");
    assert!(
        !r.text.contains("refused"),
        "internal error text leaked: {}",
        r.text
    );
    assert!(r.header("server-timing").starts_with("flaky;dur="));

    // 504: the endpoint's budget ran out.
    send(c.get(url("/api/shop/slow")))
        .await
        .problem(504, "deadline-exceeded");

    // Debug view (enabled in this config): the trace comes with the response.
    let r = send(c.get(url("/api/greet/Ada")).header("x-debug-trace", "1")).await;
    let doc = r.json();
    assert_eq!(doc["data"]["name"], "Ada");
    assert_eq!(doc["trace"]["endpoint"], "greet");
    assert_eq!(doc["trace"]["sources"][0]["name"], "hello");

    // Admin route (enabled): the latest executions, newest first.
    let r = send(c.get(url("/api/admin/executions"))).await;
    let recent = r.json();
    assert_eq!(recent["executions"][0]["endpoint"], "greet", "{recent}");
    assert!(
        recent["executions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["request_id"] == "req-42")
    );

    // A request target or headers longer than the library reads: 414 / 431, as problems.
    let long = "x".repeat(api_orchestrator::web::Api::MAX_URI_BYTES);
    let r = send(c.get(url(&format!("/api/greet/{long}")))).await;
    assert_eq!(r.status, 414, "{host:?}: {}", r.text);
    assert_eq!(r.header("content-type"), "application/problem+json");
    assert_eq!(r.json()["type"], "urn:orchestrator:problem:uri-too-long");
    let big = "y".repeat(8 * 1024);
    let mut req = c.get(url("/api/greet/Ada?times=1"));
    for i in 0..5 {
        req = req.header(format!("x-big-{i}"), big.as_str());
    }
    let r = send(req).await;
    assert_eq!(r.status, 431, "{host:?}: {}", r.text);
    assert_eq!(
        r.json()["type"],
        "urn:orchestrator:problem:headers-too-large"
    );

    // The OpenAPI document and the docs page, both below the mount point.
    let doc = send(c.get(url("/api/openapi.json"))).await.json();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/greet/{name}"]["get"].is_object(), "{doc}");
    let r = send(c.get(url("/api/docs/"))).await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").starts_with("text/html"));
    let init = send(c.get(url("/api/docs/swagger-initializer.js"))).await;
    assert!(init.text.contains("../openapi.json"), "{}", init.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_host() {
    suite(Host::Axum).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actix_host() {
    suite(Host::Actix).await;
}

/// Two requests whose source waits for the other: they only finish if neither blocks the
/// other. The timeout turns a deadlock into a failure instead of a hang.
async fn concurrency(host: Host) {
    let (_dir, api) = api(TRACKING);
    let server = start(host, api).await;
    let c = client();
    let url = format!("{}/api/shop/gate", server.base);
    let both = futures::future::join(send(c.get(&url)), send(c.get(&url)));
    let (a, b) = tokio::time::timeout(Duration::from_secs(30), both)
        .await
        .unwrap_or_else(|_| panic!("{host:?}: the requests blocked each other"));
    assert_eq!((a.status, b.status), (200, 200), "{}\n{}", a.text, b.text);
    assert_eq!(a.json(), json!({"passed": true}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_requests_do_not_block_each_other() {
    concurrency(Host::Axum).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actix_requests_do_not_block_each_other() {
    concurrency(Host::Actix).await;
}

fn get(path: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut request = Request::get(path);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    request.body(Body::Empty).unwrap()
}

#[tokio::test]
async fn debug_view_and_execution_records_are_off_by_default() {
    let (_dir, api) = api(NO_TRACKING);
    let admin = api.admin().handle(get("/executions", &[])).await;
    assert_eq!(admin.status(), 404);
    // The API itself never answers the operator routes.
    let r = api.handle(get("/admin/executions", &[])).await;
    assert_eq!(r.status(), 404);
    let plain = api
        .handle(get("/greet/Ada", &[("x-debug-trace", "1")]))
        .await;
    let body: Value = serde_json::from_slice(plain.body()).unwrap();
    assert_eq!(body["name"], "Ada", "no trace wrapper: {body}");
    assert!(body.get("trace").is_none());
    assert_eq!(api.recorded(), 0);
}

#[tokio::test]
async fn the_admin_ring_buffer_stays_bounded() {
    let (_dir, api) = api(TRACKING);
    for i in 0..10_000 {
        let r = api
            .handle(get("/greet/Ada", &[("x-request-id", &format!("r{i}"))]))
            .await;
        assert_eq!(r.status(), 200);
        assert!(api.recorded() <= 50);
    }
    assert_eq!(api.recorded(), 50);
    let admin = api.admin().handle(get("/executions", &[])).await;
    let doc: Value = serde_json::from_slice(admin.body()).unwrap();
    let executions = doc["executions"].as_array().unwrap();
    assert_eq!(executions.len(), 50);
    assert_eq!(executions[0]["request_id"], "r9999");
    assert_eq!(executions[49]["request_id"], "r9950");
}

#[tokio::test]
async fn default_routes_capture_the_id_segment() {
    // A default route captures the id segment under the name the endpoint reads.
    let (_dir, api) = api(NO_TRACKING);
    let r = api.handle(get("/shop/lookup/77", &[])).await;
    assert_eq!(
        serde_json::from_slice::<Value>(r.body()).unwrap(),
        json!({"customer_id": "77"})
    );
}

#[tokio::test]
async fn reloading_plans_built_in_code_is_a_conflict() {
    let files =
        api_orchestrator::config::ConfigFiles::new().with_file("domains/shop.yaml", ENDPOINTS);
    let plan = ["lookup", "flaky", "sleep", "gate"]
        .into_iter()
        .fold(api_orchestrator::config::Loader::new(), |l, t| {
            l.with_source_type(t)
        })
        .load(&files)
        .unwrap_or_else(|e| panic!("{e}"));
    let o = builder().build(plan).unwrap();
    let request = Request::post("/reload").body(Body::Empty).unwrap();
    let r = Api::new(&o).admin().handle(request).await;
    assert_eq!(r.status(), 409);
    let problem: Value = serde_json::from_slice(r.body()).unwrap();
    assert_eq!(problem["type"], "urn:orchestrator:problem:not-reloadable");
}
