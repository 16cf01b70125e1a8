//! Serving plans over HTTP on the `http` crate's types: [`Api`] answers an
//! `http::Request<Body>` with an `http::Response<Bytes>` and is a [`tower::Service`], so an
//! axum (or any tower) host mounts it with `Router::nest_service`; the [`actix`] submodule
//! (feature `actix`) mounts the same service in actix-web, so both behave the same.
//!
//! ```no_run
//! # #[cfg(feature = "axum")]
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use api_orchestrator::{Orchestrator, web::Api};
//!
//! let api = Api::new(&Orchestrator::from_dir("config")?);
//! let app = axum::Router::new()
//!     .route("/health", axum::routing::get(|| async { "ok" })) // the host's own routes
//!     .nest_service("/api", api.clone())                       // the plans, below /api
//!     .nest_service("/ops", api.admin());                      // operator routes, behind the host's auth
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! (Until 0.2, `web::axum::router_at` mounted the plans without axum's prefix stripping; the
//! load harness now measures the two within 0.1 % of a request's instructions, so
//! `nest_service` is the one way.)
//!
//! Inside the mount point:
//!
//! - each endpoint's routes (`GET|POST /<domain>/<endpoint>[/{id}]`, or its own `path` and
//!   `method`), matched against the plan version current when the request arrives: a reload
//!   adds or removes endpoints without touching the host's router;
//! - `GET /openapi.json` and `GET /docs/` (feature `openapi`);
//! - the original Python service's URLs below `api.prefix` (default `/orchestrator`):
//!   `{prefix}/{domain}/{operation}[/{entity_id}]`, `{prefix}/model_scoring/{model}[/{entity_id}]`
//!   (the `predict` endpoint of domain `model_scoring_{model}`), `{prefix}/domains` and
//!   `{prefix}/model_scoring` (see the migration guide, `api_orchestrator::docs::migrating`).
//!
//! With `auth:` on, every orchestrated route wants an HS256 bearer token; its verified claims
//! are `$request.auth.<claim>`. CORS and compression are layers around the mount
//! ([`layers`], feature `axum`).
//!
//! A host that serves only some endpoints at a prefix mounts [`Api::only`] with a [`Select`]ion
//! (by domain, `tags:` or name); several such mounts share one orchestrator and its reloads.
//! What the host knows about a request reaches the plans as `$request.context` ([`HostContext`],
//! and the captures of the mount prefix).
//!
//! The operator routes are a separate service, [`Admin`] (from [`Api::admin`]): the host mounts
//! it where it wants, behind its own authentication: `GET /executions` (the recent executions,
//! recorded when `tracking.admin` is on) and `POST /reload`.
//!
//! Every response carries `x-request-id` (the client's, when it sent a valid one) and a
//! `Server-Timing` header with one entry per data source (unless `tracking.server_timing` is
//! off). Errors are `application/problem+json`
//! ([`Problem`], RFC 9457) with a stable `type`, the request id, and a `detail` written for
//! clients: no SQL, upstream bodies or file paths, which stay in logs and traces.
//!
//! | status | `type` (after `urn:orchestrator:problem:`) | when |
//! |---|---|---|
//! | 401 | `unauthorized` | `auth:` is on and the bearer token is missing, invalid or expired (`WWW-Authenticate: Bearer`) |
//! | 400 | `invalid-body`, `invalid-input` | the body is not JSON or ended early; a declared input is missing or ill-typed (`errors` lists each) |
//! | 400 | `invalid-parameter` | a source rejected a parameter taken from the request alone (`abc` for an integer id, a `..` path segment); `parameter` names it |
//! | 404 | `not-found`, `no-result` | no route; the endpoint answers with its primary source and that found nothing |
//! | 405 | `method-not-allowed` | the route exists for other methods (`Allow` lists them) |
//! | 413 | `payload-too-large` | the body is larger than `server.max_body_bytes` |
//! | 409 | `not-reloadable` | `POST /reload` of the [`Admin`] service for plans built in code |
//! | 422 | `reload-failed` | `POST /reload` of the [`Admin`] service with a config that does not load (`diagnostics` holds why) |
//! | 502 | `source-failed` | a required data source failed |
//! | 504 | `deadline-exceeded` | the endpoint's time budget ran out |
//!
//! ```
//! # #[cfg(feature = "macros")]
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use api_orchestrator::web::{Api, Body};
//! use api_orchestrator::{Orchestrator, orchestrate};
//!
//! let api = Api::new(&Orchestrator::builder().build(orchestrate! {
//!     endpoints: { hello: { path: "/hello/{name}",
//!         data_sources: [ { name: it, type: direct, params: { name: $request.name } } ] } },
//! })?);
//! let request = http::Request::get("/hello/Ada").body(Body::Empty)?;
//! let response = api.handle(request).await;
//! assert_eq!(response.status(), 200);
//! assert_eq!(&response.body()[..], br#"{"name":"Ada"}"#);
//! # Ok(()) }
//! ```

mod admin;
mod auth;
mod input;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod layers;
#[cfg(feature = "openapi")]
#[cfg_attr(docsrs, doc(cfg(feature = "openapi")))]
pub mod openapi;
mod original;
mod problem;

#[cfg(feature = "actix")]
#[cfg_attr(docsrs, doc(cfg(feature = "actix")))]
pub mod actix;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tracing::Instrument as _;

pub use admin::Admin;
/// The `http` crate, whose `Request` and `Response` [`Api::handle`] takes and returns.
pub use http;
pub use problem::Problem;

use crate::engine::{Engine, ExecuteError, Execution, Trace};
use crate::plan::{ENTITY_ID, Endpoint, HttpMethod, TrackingSettings};
use crate::{Orchestrator, RequestContext};

/// The error type of request bodies.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body as the adapters read it: whole, and at most [`Api::max_body_bytes`] long.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum Body {
    /// No body.
    #[default]
    Empty,
    /// The bytes, at most [`Api::max_body_bytes`] of them.
    Bytes(Bytes),
    /// The body was larger than [`Api::max_body_bytes`]; reading stopped there.
    TooLarge,
    /// The body could not be read to its end (the client closed the connection, or sent
    /// fewer bytes than its `Content-Length`).
    Incomplete,
}

impl Body {
    /// Reads `body` whole, stopping after `limit` bytes (`Content-Length` over the limit stops
    /// before reading).
    pub async fn read<B>(body: B, headers: &HeaderMap, limit: u64) -> Self
    where
        B: http_body::Body,
        B::Error: Into<BoxError>,
    {
        let declared = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit) {
            return Self::TooLarge;
        }
        if body.is_end_stream() {
            // Most GETs: nothing to collect.
            return Self::Empty;
        }
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        match http_body_util::Limited::new(body, limit).collect().await {
            Ok(collected) => match collected.to_bytes() {
                b if b.is_empty() => Self::Empty,
                b => Self::Bytes(b),
            },
            Err(e) if e.is::<http_body_util::LengthLimitError>() => Self::TooLarge,
            Err(_) => Self::Incomplete,
        }
    }
}

/// The names of the headers the library sets.
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");
const X_DEGRADED: HeaderName = HeaderName::from_static("x-degraded");
const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");

/// A JSON response.
fn json_response(status: StatusCode, value: &Value) -> Response<Bytes> {
    let mut r = Response::new(Bytes::from(serde_json::to_vec(value).unwrap_or_default()));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, APPLICATION_JSON);
    r
}

/// The client's address, as a request extension: what `rate_limit: {key: client}` counts by.
/// The actix-web mount sets it; in a tower host, insert it where the connection is accepted
/// (with axum, from `ConnectInfo`):
///
/// ```
/// # async fn demo(api: api_orchestrator::web::Api) {
/// use std::net::SocketAddr;
///
/// use api_orchestrator::web::ClientAddr;
/// use axum::extract::{ConnectInfo, Request};
/// use axum::middleware::{self, Next};
///
/// async fn client_addr(ConnectInfo(addr): ConnectInfo<SocketAddr>, mut req: Request, next: Next) -> axum::response::Response {
///     req.extensions_mut().insert(ClientAddr(addr));
///     next.run(req).await
/// }
///
/// let app = axum::Router::new()
///     .nest_service("/api", api)
///     .layer(middleware::from_fn(client_addr));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
/// let serve = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>());
/// # drop(serve);
/// # }
/// ```
///
/// Without it, `key: client` counts every request of the endpoint together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub std::net::SocketAddr);

/// Values a host attaches to a request for its plans, read as `$request.context.<name>`: the
/// tenant it resolved, the user its own authentication found, claims it verified. Insert it as
/// a request extension — in axum from a middleware (or `Extension` layer), in actix-web into
/// the request's extensions from a middleware (`wrap_fn`):
///
/// ```
/// # async fn demo(api: api_orchestrator::web::Api) {
/// use api_orchestrator::web::HostContext;
/// use axum::extract::Request;
/// use axum::middleware::{self, Next};
///
/// async fn who(mut req: Request, next: Next) -> axum::response::Response {
///     // Whatever the host's own authentication found.
///     req.extensions_mut().insert(HostContext::new().with("user_id", 42));
///     next.run(req).await
/// }
///
/// let app: axum::Router = axum::Router::new()
///     .nest_service("/tenants/{tenant}/api", api)
///     .layer(middleware::from_fn(who));
/// # drop(app);
/// # }
/// ```
///
/// A source then reads `$request.context.user_id`. The captures of the prefix the host
/// mounted the plans at (`tenant` above, in axum's `nest_service` and actix-web's `scope`)
/// are in `$request.context` too; a value of the `HostContext` wins over a capture of the
/// same name. They are not path params: the plan cannot know the host's prefix, and the
/// validator checks `$request.path_params` against the endpoint's own path.
///
/// The values reach sources' params and mappings like any other input; they are not
/// logged, and appear in the execution trace only as the params a source was called with.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostContext(serde_json::Map<String, Value>);

impl HostContext {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a value (`$request.context.<name>`).
    pub fn with(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.insert(name, value);
        self
    }

    /// Sets a value, replacing one of the same name.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<Value>) {
        self.0.insert(name.into(), value.into());
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }
}

impl From<serde_json::Map<String, Value>> for HostContext {
    fn from(values: serde_json::Map<String, Value>) -> Self {
        Self(values)
    }
}

/// The captures of the host's mount prefix, as the framework adapters find them.
#[derive(Debug, Clone, Default)]
struct MountCaptures(Vec<(String, String)>);

/// Which endpoints a subset mount serves ([`Api::only`]): those of the listed domains, those
/// with one of the listed `tags:`, and those named; an endpoint matching any entry is served.
///
/// ```
/// use api_orchestrator::web::Select;
///
/// let public = Select::new().domain("products").tag("public").endpoint("get_customer_360");
/// # drop(public);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Select {
    domains: Vec<String>,
    tags: Vec<String>,
    endpoints: Vec<String>,
}

impl Select {
    /// A selection of nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the endpoints of domain `name` (`domains/<name>.yaml`).
    pub fn domain(mut self, name: impl Into<String>) -> Self {
        self.domains.push(name.into());
        self
    }

    /// Adds the endpoints whose `tags:` hold `tag`.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// Adds the endpoint named `name`.
    pub fn endpoint(mut self, name: impl Into<String>) -> Self {
        self.endpoints.push(name.into());
        self
    }

    /// Whether endpoint `e` is selected.
    pub fn matches(&self, e: &Endpoint) -> bool {
        e.domain.as_ref().is_some_and(|d| self.domains.contains(d))
            || e.tags.iter().any(|t| self.tags.contains(t))
            || self.endpoints.contains(&e.name)
    }

    /// The entries no endpoint of `endpoints` matches, as `domain x`, `tag x`, `endpoint x`.
    fn unmatched(&self, endpoints: &[Endpoint]) -> Vec<String> {
        let domains = self
            .domains
            .iter()
            .filter(|d| !endpoints.iter().any(|e| e.domain.as_ref() == Some(*d)))
            .map(|d| format!("domain `{d}`"));
        let tags = self
            .tags
            .iter()
            .filter(|t| !endpoints.iter().any(|e| e.tags.contains(*t)))
            .map(|t| format!("tag `{t}`"));
        let names = self
            .endpoints
            .iter()
            .filter(|n| !endpoints.iter().any(|e| &e.name == *n))
            .map(|n| format!("endpoint `{n}`"));
        domains.chain(tags).chain(names).collect()
    }
}

/// Plans served over HTTP: clone it into as many routers or app factories as needed (it is a
/// handle to shared state).
#[derive(Clone)]
pub struct Api {
    inner: Arc<Inner>,
    view: Arc<View>,
}

/// What one mount serves: all endpoints, or a [`Select`]ion, and the routes of the engine it
/// last served.
#[derive(Default)]
struct View {
    select: Option<Select>,
    mounted: ArcSwapOption<Mounted>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api").finish_non_exhaustive()
    }
}

/// What an [`Api`], its subset mounts and its [`Admin`] share.
struct Inner {
    orchestrator: Orchestrator,
    recent: Mutex<VecDeque<Value>>,
}

impl Inner {
    /// Whether executions are recorded for the admin service (`tracking.admin`).
    fn records_executions(&self) -> bool {
        self.orchestrator.engine().plan().settings.tracking.admin
    }
}

/// The routes of one engine (one config version).
struct Mounted {
    engine: Arc<Engine>,
    /// The endpoints served, when not all of them (for the OpenAPI document and the original
    /// service's listings).
    select: Option<Select>,
    router: matchit::Router<Vec<RouteEntry>>,
    #[cfg(feature = "openapi")]
    openapi: tokio::sync::OnceCell<Bytes>,
}

#[derive(Debug, Clone)]
struct RouteEntry {
    method: HttpMethod,
    endpoint: usize,
    /// The route as mounted (`/customers/get_customer/{id}`): the `http.route` of spans.
    #[cfg_attr(not(feature = "otel"), allow(dead_code))]
    route: Arc<str>,
    /// On default routes, the id capture is also exposed as `entity_id`.
    alias_entity_id: bool,
}

impl Mounted {
    fn new(engine: Arc<Engine>, select: Option<&Select>) -> Self {
        if let Some(select) = select {
            let unmatched = select.unmatched(&engine.plan().endpoints);
            if !unmatched.is_empty() {
                tracing::warn!(
                    unmatched = %unmatched.join(", "),
                    "a subset mount selects what this config does not have"
                );
            }
        }
        // Paths in the order they were first seen, and where each is: linear in the routes (a
        // config of 20,000 endpoints used to take seconds here, on the first request).
        let mut table: Vec<(String, Vec<RouteEntry>)> = Vec::new();
        let mut at: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        let mut add = |path: String, entry: RouteEntry| match at.get(&path) {
            Some(&i) => table[i].1.push(entry),
            None => {
                at.insert(path.clone(), table.len());
                table.push((path, vec![entry]));
            }
        };
        let prefix = engine.plan().settings.app.original_routes.clone();
        for (i, e) in engine.plan().endpoints.iter().enumerate() {
            if select.is_some_and(|s| !s.matches(e)) {
                continue;
            }
            for route in e.routes() {
                let entry = RouteEntry {
                    method: route.method,
                    endpoint: i,
                    route: route.path.as_str().into(),
                    alias_entity_id: e.path.is_none(),
                };
                add(route.path.as_str().to_owned(), entry);
            }
            // The original service's URLs: GET and POST, with and without the id.
            for base in prefix.iter().flat_map(|p| original::routes_of(p, e)) {
                for path in [original::with_id(&base, e), base] {
                    let route: Arc<str> = path.as_str().into();
                    for method in [HttpMethod::Get, HttpMethod::Post] {
                        let entry = RouteEntry {
                            method,
                            endpoint: i,
                            route: route.clone(),
                            alias_entity_id: true,
                        };
                        add(path.clone(), entry);
                    }
                }
            }
        }
        let mut router = matchit::Router::new();
        for (path, entries) in table {
            if let Err(e) = router.insert(path.clone(), entries) {
                tracing::warn!(route = %path, error = %e, "route not mounted: it conflicts with another");
            }
        }
        Self {
            engine,
            select: select.cloned(),
            router,
            #[cfg(feature = "openapi")]
            openapi: tokio::sync::OnceCell::new(),
        }
    }

    fn tracking(&self) -> &TrackingSettings {
        &self.engine.plan().settings.tracking
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A new random request id.
fn new_request_id() -> String {
    String::from_utf8_lossy(&crate::source::random_hex()).into_owned()
}

/// The client's `x-request-id` when it is a sane token, a new random one otherwise.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=".contains(&b))
        })
        .map_or_else(new_request_id, str::to_owned)
}

fn decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}

/// Headers a data source may read through `$request.headers`: all but credentials.
fn forwarded_header(name: &HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "authorization" | "proxy-authorization" | "cookie" | "set-cookie"
    )
}

/// A method's name for metrics and spans: the standard ones, `_OTHER` for the rest (a client
/// must not grow a label's values).
#[cfg(any(feature = "metrics", feature = "otel"))]
fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "_OTHER",
    }
}

/// The plan's method for an HTTP method; `None` for methods no route uses.
fn plan_method(method: &Method) -> Option<HttpMethod> {
    Some(match *method {
        Method::GET => HttpMethod::Get,
        Method::POST => HttpMethod::Post,
        Method::PUT => HttpMethod::Put,
        Method::PATCH => HttpMethod::Patch,
        Method::DELETE => HttpMethod::Delete,
        _ => return None,
    })
}

impl Api {
    /// Serves the plans of `orchestrator` (and of whatever version it serves later).
    pub fn new(orchestrator: &Orchestrator) -> Self {
        Self {
            inner: Arc::new(Inner {
                orchestrator: orchestrator.clone(),
                recent: Mutex::new(VecDeque::new()),
            }),
            view: Arc::default(),
        }
    }

    /// A mount of the same plans that serves only the endpoints `select` picks (its routes,
    /// its `/openapi.json` and `/docs`), for a host that mounts several subsets at prefixes of
    /// their own: `nest_service("/public", api.only(Select::new().tag("public")))`. It shares
    /// this API's orchestrator (and so its reloads, each mount re-reading the current
    /// version) and its [`Admin`]'s records. A selection that names what the config does not
    /// have serves nothing of it and logs a warning.
    pub fn only(&self, select: Select) -> Self {
        Self {
            inner: self.inner.clone(),
            view: Arc::new(View {
                select: Some(select),
                mounted: ArcSwapOption::empty(),
            }),
        }
    }

    /// The operator routes of this API, a service of their own for the host to mount where
    /// it wants, behind its own authentication (see [`Admin`]).
    pub fn admin(&self) -> Admin {
        Admin::new(self.inner.clone())
    }

    /// The largest request body accepted (`server.max_body_bytes`); adapters stop reading
    /// beyond it and pass [`Body::TooLarge`].
    pub fn max_body_bytes(&self) -> u64 {
        self.inner
            .orchestrator
            .engine()
            .plan()
            .settings
            .server
            .max_body_bytes
    }

    /// The routes of the engine now being served.
    fn mounted(&self) -> Arc<Mounted> {
        let engine = self.inner.orchestrator.engine();
        if let Some(m) = self.view.mounted.load_full()
            && Arc::ptr_eq(&m.engine, &engine)
        {
            return m;
        }
        let m = Arc::new(Mounted::new(engine, self.view.select.as_ref()));
        self.view.mounted.store(Some(m.clone()));
        m
    }

    /// The longest request target (path and query) read: a longer one answers 414
    /// `uri-too-long`. (hyper itself answers 414 or 431, without a body, to a request head
    /// over its buffer, about 400 KiB.)
    pub const MAX_URI_BYTES: usize = 8 * 1024;

    /// The most header bytes (names and values) read: more answer 431 `headers-too-large`.
    pub const MAX_HEADER_BYTES: usize = 32 * 1024;

    /// Handles one request; its path is relative to where the API is mounted
    /// (`/customers/get_customer/42`).
    pub async fn handle(&self, req: Request<Body>) -> Response<Bytes> {
        let id = request_id(req.headers());
        let head = req.method() == Method::HEAD;
        let m = self.mounted();
        #[cfg(feature = "metrics")]
        let metrics = m
            .engine
            .instruments()
            .metrics
            .as_ref()
            .map(|metrics| (metrics, metrics.in_flight(), std::time::Instant::now()));
        #[cfg(feature = "metrics")]
        let method = method_name(req.method());
        #[cfg(feature = "otel")]
        let (mut response, entry) = match &m.engine.instruments().tracer {
            Some(tracer) => self.traced(tracer, &m, req, &id).await,
            None => self.logged(&m, req, &id).await,
        };
        #[cfg(not(feature = "otel"))]
        let (mut response, entry) = self.logged(&m, req, &id).await;
        #[cfg(feature = "metrics")]
        if let Some((metrics, _in_flight, started)) = metrics {
            let (status, took) = (response.status().as_u16(), started.elapsed());
            match entry.and_then(|e| m.engine.endpoint_metrics(e.endpoint)) {
                Some(endpoint) => endpoint.request(method, status, took),
                None => metrics.unmatched(method, status, took),
            }
        }
        #[cfg(not(feature = "metrics"))]
        let _ = entry;
        if let Ok(v) = HeaderValue::try_from(id) {
            response.headers_mut().insert(X_REQUEST_ID, v);
        }
        if head {
            let length = response.body().len();
            *response.body_mut() = Bytes::new();
            response
                .headers_mut()
                .insert(CONTENT_LENGTH, HeaderValue::from(length));
        }
        response
    }

    /// [`Api::route`] in a debug-level `tracing` span when one is listened to.
    async fn logged<'m>(
        &self,
        m: &'m Mounted,
        req: Request<Body>,
        id: &str,
    ) -> (Response<Bytes>, Option<&'m RouteEntry>) {
        if !tracing::enabled!(tracing::Level::DEBUG) {
            return self.route(m, req, id).await;
        }
        let span = tracing::debug_span!(
            "request",
            method = %req.method(),
            path = %req.uri().path(),
            request_id = %id,
            endpoint = tracing::field::Empty,
            status = tracing::field::Empty,
        );
        let (response, entry) = self.route(m, req, id).instrument(span.clone()).await;
        span.record("status", response.status().as_u16());
        (response, entry)
    }

    /// [`Api::logged`] in an OpenTelemetry server span: the parent of the sources' spans.
    #[cfg(feature = "otel")]
    async fn traced<'m>(
        &self,
        tracer: &crate::telemetry::SdkTracer,
        m: &'m Mounted,
        req: Request<Body>,
        id: &str,
    ) -> (Response<Bytes>, Option<&'m RouteEntry>) {
        use opentelemetry::KeyValue;
        use opentelemetry::trace::{FutureExt as _, SpanKind, TraceContextExt as _};
        let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
        let parent = crate::telemetry::otel::incoming(header("traceparent"), header("tracestate"));
        let method = method_name(req.method());
        let cx = crate::telemetry::otel::start(tracer, method, SpanKind::Server, &parent);
        let (response, entry) = self.logged(m, req, id).with_context(cx.clone()).await;
        let span = cx.span();
        if span.is_recording() {
            let status = response.status();
            span.set_attributes([
                KeyValue::new("http.request.method", method),
                KeyValue::new("http.response.status_code", i64::from(status.as_u16())),
                KeyValue::new("orchestrator.request_id", id.to_owned()),
                KeyValue::new("orchestrator.config_version", m.engine.version() as i64),
            ]);
            if let Some(e) = entry {
                span.update_name(format!("{method} {}", e.route));
                span.set_attributes([
                    KeyValue::new("http.route", e.route.to_string()),
                    KeyValue::new(
                        "orchestrator.endpoint",
                        m.engine.plan().endpoints[e.endpoint].name.clone(),
                    ),
                ]);
            }
            if status.is_server_error() {
                span.set_attribute(KeyValue::new("error.type", status.as_str().to_owned()));
                span.set_status(opentelemetry::trace::Status::error(""));
            }
        }
        span.end();
        (response, entry)
    }

    async fn route<'m>(
        &self,
        m: &'m Mounted,
        req: Request<Body>,
        id: &str,
    ) -> (Response<Bytes>, Option<&'m RouteEntry>) {
        let response = |r| (r, None);
        let (parts, body) = req.into_parts();
        if let Some(problem) = Problem::oversized(&parts) {
            return response(problem.into_response(id));
        }
        let path = parts.uri.path();
        #[cfg(feature = "openapi")]
        if let Some(r) = openapi::serve(m, path, parts.method == Method::GET).await {
            return response(r);
        }
        let plan = m.engine.plan();
        // Every orchestrated route (the listings too) wants the token when `auth:` is on.
        let claims = match &plan.settings.auth {
            None => None,
            Some(settings) => match auth::verify(settings, &parts.headers, now_ms() / 1000) {
                Ok(claims) => Some(claims),
                Err(rejected) => {
                    return response(Problem::unauthorized(rejected.detail()).into_response(id));
                }
            },
        };
        if let Some(prefix) = &plan.settings.app.original_routes
            && let Some(r) = original::serve(
                plan,
                m.select.as_ref(),
                prefix,
                path,
                parts.method == Method::GET,
            )
        {
            return response(r);
        }
        let (entry, captures) = match find_route(m, path, &parts.method) {
            Ok(found) => found,
            Err(problem) => return response(problem.into_response(id)),
        };
        let response = |r| (r, Some(entry));
        let endpoint = &m.engine.plan().endpoints[entry.endpoint];
        if tracing::enabled!(tracing::Level::DEBUG) {
            tracing::Span::current().record("endpoint", endpoint.name.as_str());
        }
        let debug = m.tracking().debug_view
            && parts
                .headers
                .get("x-debug-trace")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| matches!(v.trim(), "1" | "true"));
        let mut ctx = match request_context(
            entry,
            &captures,
            parts.uri.query(),
            parts.headers.clone(),
            body,
            m.engine.plan().settings.server.max_body_bytes,
            id,
        ) {
            Ok(ctx) => ctx,
            Err(problem) => return response(problem.into_response(id)),
        };
        ctx.client = parts.extensions.get::<ClientAddr>().map(|a| a.0.ip());
        if let Some(MountCaptures(captures)) = parts.extensions.get::<MountCaptures>() {
            for (name, value) in captures {
                ctx.context
                    .insert(name.clone(), Value::String(value.clone()));
            }
        }
        if let Some(HostContext(values)) = parts.extensions.get::<HostContext>() {
            ctx.context
                .extend(values.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        if let Some(claims) = claims {
            ctx.auth = claims;
        }
        if let Err(errors) = input::apply(&endpoint.input, &mut ctx) {
            return response(
                Problem::new(
                    400,
                    "invalid-input",
                    "Invalid input",
                    "some declared inputs are missing or ill-typed",
                )
                .with("errors", Value::Array(errors))
                .into_response(id),
            );
        }
        let result = m.engine.execute_at(entry.endpoint, &ctx).await;
        let (answer, trace) = respond(endpoint, result, debug, id);
        let answer = match &trace {
            Some(t) => with_trace_headers(answer, t, m.tracking().server_timing),
            None => answer,
        };
        if m.tracking().admin {
            self.record(m, &endpoint.name, answer.status(), trace.as_ref(), id);
        }
        response(answer)
    }

    /// Keeps the execution in the bounded ring buffer the [`Admin`] service reads.
    fn record(
        &self,
        m: &Mounted,
        endpoint: &str,
        status: StatusCode,
        trace: Option<&Trace>,
        id: &str,
    ) {
        let capacity = m.tracking().recent;
        let entry = json!({
            "request_id": id,
            "endpoint": endpoint,
            "status": status.as_u16(),
            "at_ms": now_ms(),
            "trace": trace,
        });
        if let Ok(mut recent) = self.inner.recent.lock() {
            while recent.len() >= capacity {
                recent.pop_front();
            }
            recent.push_back(entry);
        }
    }

    /// The number of executions the admin buffer holds now (for tests and metrics).
    pub fn recorded(&self) -> usize {
        self.inner.recent.lock().map_or(0, |r| r.len())
    }
}

/// The route entry for `path` and `method`, with the path's captures; 404 or 405 otherwise.
fn find_route<'m, 'p>(
    m: &'m Mounted,
    path: &'p str,
    method: &Method,
) -> Result<(&'m RouteEntry, matchit::Params<'m, 'p>), Box<Problem>> {
    let found = m
        .router
        .at(path)
        .map_err(|_| Box::new(Problem::not_found()))?;
    // HEAD is answered like GET, without the body.
    let method = if method == Method::HEAD {
        &Method::GET
    } else {
        method
    };
    match plan_method(method).and_then(|want| found.value.iter().find(|e| e.method == want)) {
        Some(entry) => Ok((entry, found.params)),
        None => {
            let mut allow: Vec<&str> = found.value.iter().map(|e| e.method.as_str()).collect();
            allow.dedup();
            Err(Box::new(Problem::method_not_allowed(&allow.join(", "))))
        }
    }
}

/// The request context of an execution: path captures (the id capture of a default route also
/// as `entity_id`), query params, the JSON body and the headers sources may read.
fn request_context(
    entry: &RouteEntry,
    captures: &matchit::Params<'_, '_>,
    query: Option<&str>,
    headers: HeaderMap,
    body: Body,
    max_body_bytes: u64,
    id: &str,
) -> Result<RequestContext, Box<Problem>> {
    let body = match body {
        Body::TooLarge => {
            return Err(Box::new(Problem::new(
                413,
                "payload-too-large",
                "Payload too large",
                format!("the body is larger than {max_body_bytes} bytes"),
            )));
        }
        Body::Incomplete => {
            return Err(Box::new(Problem::new(
                400,
                "invalid-body",
                "Invalid body",
                "the body ended before it was complete",
            )));
        }
        Body::Empty => Value::Null,
        Body::Bytes(b) if b.iter().all(u8::is_ascii_whitespace) => Value::Null,
        Body::Bytes(b) => serde_json::from_slice(&b).map_err(|e| {
            Box::new(Problem::new(
                400,
                "invalid-body",
                "Invalid body",
                format!("the body is not valid JSON: {e}"),
            ))
        })?,
    };
    let mut ctx = RequestContext::new().with_request_id(id).with_body(body);
    for (name, value) in captures.iter() {
        let value = decode(value);
        if entry.alias_entity_id && name != ENTITY_ID {
            ctx.path_params
                .insert(ENTITY_ID.into(), Value::String(value.clone()));
        }
        ctx.path_params
            .insert(name.to_owned(), Value::String(value));
    }
    if let Some(q) = query {
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            ctx = ctx.with_query_param(k.into_owned(), v.into_owned());
        }
    }
    let mut last = None;
    for (name, value) in headers {
        // `None` repeats the previous name (a header sent several times): the last value wins.
        let name = match name {
            Some(n) => last.insert(n),
            None => match &last {
                Some(n) => n,
                None => continue,
            },
        };
        let Ok(value) = value.to_str() else {
            continue;
        };
        if forwarded_header(name) {
            ctx.headers
                .insert(name.as_str().to_owned(), Value::String(value.to_owned()));
        } else if name == "cookie" {
            // Cookies may arrive in several fields (HTTP/2 splits them): one list, as HTTP/1.1
            // sends it on.
            ctx.credentials.append_cookie(value);
        } else if name != "set-cookie" {
            ctx.credentials.insert(name.as_str(), value);
        }
    }
    Ok(ctx)
}

/// The response to an execution's result, and its trace.
fn respond(
    endpoint: &Endpoint,
    result: Result<Execution, ExecuteError>,
    debug: bool,
    id: &str,
) -> (Response<Bytes>, Option<Trace>) {
    match result {
        Ok(exec)
            if endpoint.response_mapping.is_none()
                && (exec.response.is_null()
                    || exec.response.as_object().is_some_and(|m| m.is_empty())) =>
        {
            (
                Problem::new(
                    404,
                    "no-result",
                    "Not found",
                    format!("`{}` found nothing for this request", endpoint.name),
                )
                .into_response(id),
                Some(exec.trace),
            )
        }
        Ok(exec) if debug => (
            json_response(
                StatusCode::OK,
                &json!({"data": exec.response, "trace": exec.trace}),
            ),
            Some(exec.trace),
        ),
        Ok(exec) => (
            json_response(StatusCode::OK, &exec.response),
            Some(exec.trace),
        ),
        Err(e) => {
            if matches!(
                e,
                ExecuteError::NotFound { .. } | ExecuteError::InvalidParameter { .. }
            ) {
                // The client's side: not the operator's concern.
                tracing::debug!(request_id = %id, error = ?e.to_string(), "nothing to answer");
            } else {
                tracing::warn!(request_id = %id, error = ?e.to_string(), "execution failed");
            }
            let mut problem = Problem::from(&e);
            let trace = match e {
                ExecuteError::DeadlineExceeded { trace, .. }
                | ExecuteError::SourceFailed { trace, .. }
                | ExecuteError::InvalidParameter { trace, .. }
                | ExecuteError::NotFound { trace, .. } => Some(*trace),
                _ => None,
            };
            if debug && let Some(t) = &trace {
                problem = problem.with("trace", serde_json::to_value(t).unwrap_or_default());
            }
            (problem.into_response(id), trace)
        }
    }
}

/// `Server-Timing`, and `x-degraded` when a source's result was stood in for.
fn with_trace_headers(
    mut response: Response<Bytes>,
    trace: &Trace,
    timing: bool,
) -> Response<Bytes> {
    if timing && let Ok(v) = HeaderValue::try_from(server_timing(trace)) {
        response.headers_mut().insert(SERVER_TIMING, v);
    }
    if let Some(v) = degraded(trace).and_then(|d| HeaderValue::try_from(d).ok()) {
        response.headers_mut().insert(X_DEGRADED, v);
    }
    response
}

/// `credit=fallback, history=skip`: each source whose result was stood in for, and how.
fn degraded(trace: &Trace) -> Option<String> {
    let mut out = String::new();
    for s in &trace.sources {
        if let Some(how) = s.degraded() {
            if !out.is_empty() {
                out.push_str(", ");
            }
            out.push_str(&s.name);
            out.push('=');
            out.push_str(how);
        }
    }
    (!out.is_empty()).then_some(out)
}

/// A service the web layer can mount: [`Api`] or [`Admin`].
pub trait Mount: sealed::Serve {}

impl Mount for Api {}
impl Mount for Admin {}
#[cfg(feature = "metrics")]
impl Mount for crate::telemetry::Metrics {}

pub(crate) mod sealed {
    use super::{Body, Bytes, Request, Response};

    /// What the mounts and the `tower::Service` impls call.
    pub trait Serve: Clone + Send + Sync + 'static {
        /// The largest body accepted.
        fn max_body_bytes(&self) -> u64;
        /// Handles a request whose path is relative to the mount point.
        fn serve(&self, req: Request<Body>) -> impl Future<Output = Response<Bytes>> + Send + '_;
    }

    impl Serve for super::Api {
        fn max_body_bytes(&self) -> u64 {
            Self::max_body_bytes(self)
        }
        fn serve(&self, req: Request<Body>) -> impl Future<Output = Response<Bytes>> + Send + '_ {
            self.handle(req)
        }
    }

    impl Serve for super::Admin {
        fn max_body_bytes(&self) -> u64 {
            Self::max_body_bytes(self)
        }
        fn serve(&self, req: Request<Body>) -> impl Future<Output = Response<Bytes>> + Send + '_ {
            self.handle(req)
        }
    }

    /// The scrape: the text of [`Metrics::render`](crate::telemetry::Metrics::render) for a
    /// GET (or HEAD) at any path of the mount.
    #[cfg(feature = "metrics")]
    impl Serve for crate::telemetry::Metrics {
        fn max_body_bytes(&self) -> u64 {
            0
        }
        fn serve(&self, req: Request<Body>) -> impl Future<Output = Response<Bytes>> + Send + '_ {
            let response = if matches!(*req.method(), http::Method::GET | http::Method::HEAD) {
                let mut r = Response::new(Bytes::from(self.render()));
                r.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static(Self::CONTENT_TYPE),
                );
                r
            } else {
                super::Problem::method_not_allowed("GET").into_response("")
            };
            std::future::ready(response)
        }
    }
}

/// A response body as `tower` hosts take it.
pub type ResponseBody = http_body_util::Full<Bytes>;

/// Reads the body (up to the limit), then serves the request; the response never fails.
fn call<S: Mount, B>(
    service: &S,
    req: Request<B>,
) -> Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, Infallible>> + Send>>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let service = service.clone();
    Box::pin(async move {
        #[cfg_attr(not(feature = "axum"), expect(unused_mut))]
        let (mut parts, body) = req.into_parts();
        #[cfg(feature = "axum")]
        axum_captures(&mut parts).await;
        let body = Body::read(body, &parts.headers, service.max_body_bytes()).await;
        let response = service.serve(Request::from_parts(parts, body)).await;
        Ok(response.map(http_body_util::Full::new))
    })
}

/// The captures of the prefix an axum host nested the service at (`/tenants/{tenant}/api`),
/// kept for `$request.context`.
#[cfg(feature = "axum")]
async fn axum_captures(parts: &mut http::request::Parts) {
    use axum::extract::FromRequestParts as _;
    if let Ok(params) = axum::extract::RawPathParams::from_request_parts(parts, &()).await {
        let captures: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        if !captures.is_empty() {
            parts.extensions.insert(MountCaptures(captures));
        }
    }
}

/// `tower::Service` for a [`Mount`]: it reads the body (up to the limit), then serves.
macro_rules! tower_service {
    ($(#[$doc:meta])* $ty:ty) => {
        $(#[$doc])*
        impl<B> tower::Service<Request<B>> for $ty
        where
            B: http_body::Body + Send + 'static,
            B::Data: Send,
            B::Error: Into<BoxError>,
        {
            type Response = Response<ResponseBody>;
            type Error = Infallible;
            type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

            fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
                Poll::Ready(Ok(()))
            }

            fn call(&mut self, req: Request<B>) -> Self::Future {
                call(self, req)
            }
        }
    };
}

tower_service!(
    /// Mounted with `axum::Router::nest_service("/api", api)`, or wherever a `tower` service
    /// goes. A path below the mount point arrives as the request's path (axum strips the
    /// prefix).
    Api
);
tower_service!(
    /// Mounted like [`Api`], where the host wants its operator routes.
    Admin
);
#[cfg(feature = "metrics")]
tower_service!(
    /// The Prometheus scrape, for `axum::Router::route_service("/metrics", metrics)`.
    crate::telemetry::Metrics
);

/// `name;dur=12.345;desc="database", …, total;dur=…` from a trace (milliseconds with
/// microsecond precision). Written without `fmt`: an endpoint with many sources writes many
/// entries per request.
fn server_timing(t: &Trace) -> String {
    fn dur(out: &mut String, digits: &mut itoa::Buffer, d: std::time::Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        out.push_str("dur=");
        out.push_str(digits.format(us / 1000));
        out.push('.');
        let frac = us % 1000;
        for digit in [frac / 100, frac / 10 % 10, frac % 10] {
            out.push(char::from(b'0' + digit as u8));
        }
    }
    let mut digits = itoa::Buffer::new();
    let mut out = String::with_capacity(
        t.sources
            .iter()
            .map(|s| s.name.len() + s.kind.len() + 24)
            .sum::<usize>()
            + 24,
    );
    for s in &t.sources {
        out.push_str(&s.name);
        out.push(';');
        dur(&mut out, &mut digits, s.duration);
        out.push_str(";desc=\"");
        out.push_str(&s.kind);
        out.push('"');
        if let Some(cache) = s.cache {
            out.push_str(";cache=");
            out.push_str(cache.as_str());
        }
        out.push_str(", ");
    }
    out.push_str("total;");
    dur(&mut out, &mut digits, t.duration);
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::engine::{Outcome, SourceTrace};

    #[test]
    fn server_timing_lists_sources_then_total_in_milliseconds() {
        let source = |name: &str, kind: &str, us: u64| SourceTrace {
            name: name.into(),
            kind: kind.into(),
            start: Duration::ZERO,
            duration: Duration::from_micros(us),
            attempts: 1,
            outcome: Outcome::Ok,
            error: None,
            notes: Vec::new(),
            cache: None,
            circuit: None,
        };
        let mut cached = source("credit", "api", 5);
        cached.cache = Some(crate::source::CacheStatus::Hit);
        let trace = Trace {
            endpoint: "e".into(),
            config_version: 1,
            request_id: "r".into(),
            duration: Duration::from_micros(12_000_999),
            sources: vec![
                source("profile", "database", 1_234),
                cached,
                source("slow", "api", 20_050),
            ],
        };
        assert_eq!(
            server_timing(&trace),
            "profile;dur=1.234;desc=\"database\", credit;dur=0.005;desc=\"api\";cache=hit, \
             slow;dur=20.050;desc=\"api\", total;dur=12000.999"
        );
        let empty = Trace {
            sources: Vec::new(),
            ..trace
        };
        assert_eq!(server_timing(&empty), "total;dur=12000.999");
    }
}
