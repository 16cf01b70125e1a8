//! Serving plans over HTTP, independent of the web framework: [`Api`] turns a [`WebRequest`]
//! into a [`WebResponse`]; the `axum` and `actix` submodules (features of the same names)
//! adapt it to each framework, so both behave the same.
//!
//! Inside the mount point:
//!
//! - each endpoint's routes (`GET|POST /<domain>/<endpoint>[/{id}]`, or its own `path` and
//!   `method`), matched against the plan version current when the request arrives: a reload
//!   adds or removes endpoints without touching the host's router;
//! - `GET /openapi.json` and `GET /docs/` (feature `openapi`);
//! - `GET /admin/executions` and `POST /admin/reload` when `tracking.admin` is on.
//!
//! Every response carries `x-request-id` (the client's, when it sent a valid one) and a
//! `Server-Timing` header with one entry per data source. Errors are `application/problem+json`
//! (RFC 9457) with a stable `type`, the request id, and a `detail` written for clients: no SQL,
//! upstream bodies or file paths, which stay in logs and traces.
//!
//! | status | `type` (after `urn:orchestrator:problem:`) | when |
//! |---|---|---|
//! | 400 | `invalid-body`, `invalid-input` | the body is not JSON; a declared input is missing or ill-typed (`errors` lists each) |
//! | 404 | `not-found`, `no-result` | no route; the endpoint answers with its primary source and that found nothing |
//! | 405 | `method-not-allowed` | the route exists for other methods (`Allow` lists them) |
//! | 413 | `payload-too-large` | the body is larger than `server.max_body_bytes` |
//! | 422 | `reload-failed` | `POST /admin/reload` with a config that does not load (`diagnostics` holds why) |
//! | 502 | `source-failed` | a required data source failed |
//! | 504 | `deadline-exceeded` | the endpoint's time budget ran out |

mod input;
#[cfg(feature = "openapi")]
#[cfg_attr(docsrs, doc(cfg(feature = "openapi")))]
pub mod openapi;

#[cfg(feature = "actix")]
#[cfg_attr(docsrs, doc(cfg(feature = "actix")))]
pub mod actix;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use serde_json::{Value, json};
use tracing::Instrument as _;

use crate::engine::{Engine, ExecuteError, Trace};
use crate::plan::{ENTITY_ID, HttpMethod, TrackingSettings};
use crate::{Orchestrator, RequestContext};

/// A request as the framework adapters hand it over.
#[derive(Debug, Clone, Default)]
pub struct WebRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path below the mount point, still percent-encoded (`/customers/get_customer/42`).
    pub path: String,
    /// The raw query string, without `?`.
    pub query: Option<String>,
    /// Headers (names in any case).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Body,
}

/// A request body as read by the adapter.
#[derive(Debug, Clone, Default)]
pub enum Body {
    /// The whole body (empty when there was none).
    #[default]
    Empty,
    /// The bytes, at most [`Api::max_body_bytes`] of them.
    Bytes(Vec<u8>),
    /// The body was larger than [`Api::max_body_bytes`]; the adapter stopped reading.
    TooLarge,
}

/// What to send back.
#[derive(Debug, Clone)]
pub struct WebResponse {
    /// HTTP status.
    pub status: u16,
    /// Headers, `content-type` included. Names are lower-case; the names and the values the
    /// library sets as constants are borrowed, so a response costs no allocation for them.
    pub headers: Vec<(Cow<'static, str>, Cow<'static, str>)>,
    /// The body.
    pub body: Vec<u8>,
}

/// The names of the headers the library sets, as the adapters match them.
const CONTENT_TYPE: &str = "content-type";
const X_REQUEST_ID: &str = "x-request-id";
const SERVER_TIMING: &str = "server-timing";

impl WebResponse {
    fn json(status: u16, value: &Value) -> Self {
        Self {
            status,
            headers: vec![(CONTENT_TYPE.into(), "application/json".into())],
            body: serde_json::to_vec(value).unwrap_or_default(),
        }
    }

    fn header(mut self, name: &'static str, value: impl Into<Cow<'static, str>>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The value of header `name`, if set.
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| &**v)
    }
}

/// Plans served over HTTP: clone it into as many routers or app factories as needed (it is a
/// handle to shared state).
#[derive(Clone)]
pub struct Api {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api").finish_non_exhaustive()
    }
}

struct Inner {
    orchestrator: Orchestrator,
    mounted: ArcSwapOption<Mounted>,
    recent: Mutex<VecDeque<Value>>,
}

/// The routes of one engine (one config version).
struct Mounted {
    engine: Arc<Engine>,
    router: matchit::Router<Vec<RouteEntry>>,
    #[cfg(feature = "openapi")]
    openapi: std::sync::OnceLock<Vec<u8>>,
}

#[derive(Debug, Clone)]
struct RouteEntry {
    method: HttpMethod,
    endpoint: usize,
    /// On default routes, the id capture is also exposed as `entity_id`.
    alias_entity_id: bool,
}

impl Mounted {
    fn new(engine: Arc<Engine>) -> Self {
        let mut table: Vec<(String, Vec<RouteEntry>)> = Vec::new();
        for (i, e) in engine.plan().endpoints.iter().enumerate() {
            for route in e.routes() {
                let path = route.path.as_str().to_owned();
                let entry = RouteEntry {
                    method: route.method,
                    endpoint: i,
                    alias_entity_id: e.path.is_none(),
                };
                match table.iter_mut().find(|(p, _)| *p == path) {
                    Some((_, entries)) => entries.push(entry),
                    None => table.push((path, vec![entry])),
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
            router,
            #[cfg(feature = "openapi")]
            openapi: std::sync::OnceLock::new(),
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The client's `x-request-id` when it is a sane token, a new random one otherwise.
fn request_id(headers: &[(String, String)]) -> String {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(X_REQUEST_ID))
        .map(|(_, v)| v.trim())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=".contains(&b))
        })
        .map_or_else(
            || String::from_utf8_lossy(&crate::source::random_hex()).into_owned(),
            str::to_owned,
        )
}

fn decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}

/// A problem+json response (RFC 9457).
fn problem(
    status: u16,
    kind: &str,
    title: &str,
    detail: impl Into<String>,
    request_id: &str,
) -> WebResponse {
    problem_with(status, kind, title, detail, request_id, [])
}

/// A problem+json response with extension members (`errors`, `trace`, …).
fn problem_with(
    status: u16,
    kind: &str,
    title: &str,
    detail: impl Into<String>,
    request_id: &str,
    extensions: impl IntoIterator<Item = (&'static str, Value)>,
) -> WebResponse {
    let mut doc = json!({
        "type": format!("urn:orchestrator:problem:{kind}"),
        "title": title,
        "status": status,
        "detail": detail.into(),
        "request_id": request_id,
    });
    for (k, v) in extensions {
        doc[k] = v;
    }
    let mut r = WebResponse::json(status, &doc);
    r.headers[0].1 = Cow::Borrowed("application/problem+json");
    r
}

/// Headers a data source may read through `$request.headers`: all but credentials.
fn forwarded_header(name: &str) -> bool {
    !matches!(
        name,
        "authorization" | "proxy-authorization" | "cookie" | "set-cookie"
    )
}

impl Api {
    /// Serves the plans of `orchestrator` (and of whatever version it serves later).
    pub fn new(orchestrator: &Orchestrator) -> Self {
        Self {
            inner: Arc::new(Inner {
                orchestrator: orchestrator.clone(),
                mounted: ArcSwapOption::empty(),
                recent: Mutex::new(VecDeque::new()),
            }),
        }
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
        if let Some(m) = self.inner.mounted.load_full()
            && Arc::ptr_eq(&m.engine, &engine)
        {
            return m;
        }
        let m = Arc::new(Mounted::new(engine));
        self.inner.mounted.store(Some(m.clone()));
        m
    }

    fn tracking(m: &Mounted) -> &TrackingSettings {
        &m.engine.plan().settings.tracking
    }

    /// Handles one request.
    pub async fn handle(&self, req: WebRequest) -> WebResponse {
        let id = request_id(&req.headers);
        let span = tracing::info_span!(
            "request",
            method = %req.method,
            path = %req.path,
            request_id = %id,
            endpoint = tracing::field::Empty,
            status = tracing::field::Empty,
        );
        let response = self.route(req, &id).instrument(span.clone()).await;
        span.record("status", response.status);
        response.header(X_REQUEST_ID, id)
    }

    async fn route(&self, req: WebRequest, id: &str) -> WebResponse {
        let m = self.mounted();
        let get = req.method.eq_ignore_ascii_case("GET");
        #[cfg(feature = "openapi")]
        if let Some(r) = openapi::serve(&m, &req.path, get) {
            return r;
        }
        if req.path == "/admin/reload" && Self::tracking(&m).admin {
            if req.method != "POST" {
                return problem(
                    405,
                    "method-not-allowed",
                    "Method not allowed",
                    "use POST",
                    id,
                )
                .header("allow", "POST");
            }
            let orchestrator = self.inner.orchestrator.clone();
            let outcome = tokio::task::spawn_blocking(move || orchestrator.reload()).await;
            return match outcome {
                Ok(Ok(version)) => {
                    WebResponse::json(200, &json!({"reloaded": true, "version": version}))
                }
                Ok(Err(e)) => problem_with(
                    422,
                    "reload-failed",
                    "Reload failed",
                    "the config did not load; the previous version keeps serving",
                    id,
                    [
                        ("diagnostics", json!(e.to_string())),
                        ("version", json!(self.inner.orchestrator.version())),
                    ],
                ),
                Err(_) => problem(
                    500,
                    "internal",
                    "Internal error",
                    "the reload task failed",
                    id,
                ),
            };
        }
        if req.path == "/admin/executions" && Self::tracking(&m).admin {
            if !get {
                return problem(
                    405,
                    "method-not-allowed",
                    "Method not allowed",
                    "use GET",
                    id,
                )
                .header("allow", "GET");
            }
            let recent: Vec<Value> = self
                .inner
                .recent
                .lock()
                .map(|r| r.iter().rev().cloned().collect())
                .unwrap_or_default();
            return WebResponse::json(200, &json!({"executions": recent}));
        }
        let Ok(found) = m.router.at(&req.path) else {
            return problem(
                404,
                "not-found",
                "Not found",
                "no endpoint answers this path",
                id,
            );
        };
        let Some(entry) = HttpMethod::parse(&req.method)
            .and_then(|method| found.value.iter().find(|e| e.method == method))
        else {
            let mut allow: Vec<&str> = found.value.iter().map(|e| e.method.as_str()).collect();
            allow.dedup();
            return problem(
                405,
                "method-not-allowed",
                "Method not allowed",
                format!("this path answers {}", allow.join(", ")),
                id,
            )
            .header("allow", allow.join(", "));
        };
        let endpoint = &m.engine.plan().endpoints[entry.endpoint];
        tracing::Span::current().record("endpoint", endpoint.name.as_str());

        let body = match req.body {
            Body::TooLarge => {
                return problem(
                    413,
                    "payload-too-large",
                    "Payload too large",
                    format!("the body is larger than {} bytes", self.max_body_bytes()),
                    id,
                );
            }
            Body::Empty => Value::Null,
            Body::Bytes(b) if b.iter().all(u8::is_ascii_whitespace) => Value::Null,
            Body::Bytes(b) => match serde_json::from_slice(&b) {
                Ok(v) => v,
                Err(e) => {
                    return problem(
                        400,
                        "invalid-body",
                        "Invalid body",
                        format!("the body is not valid JSON: {e}"),
                        id,
                    );
                }
            },
        };
        let mut ctx = RequestContext::new().with_request_id(id).with_body(body);
        for (name, value) in found.params.iter() {
            let value = decode(value);
            if entry.alias_entity_id && name != ENTITY_ID {
                ctx.path_params
                    .insert(ENTITY_ID.into(), Value::String(value.clone()));
            }
            ctx.path_params
                .insert(name.to_owned(), Value::String(value));
        }
        if let Some(q) = &req.query {
            for (k, v) in form_urlencoded::parse(q.as_bytes()) {
                ctx = ctx.with_query_param(k.into_owned(), v.into_owned());
            }
        }
        let debug = Self::tracking(&m).debug_view
            && req.headers.iter().any(|(k, v)| {
                k.eq_ignore_ascii_case("x-debug-trace") && matches!(v.trim(), "1" | "true")
            });
        // The request is ours: its header strings move into the context, no copies.
        for (mut k, v) in req.headers {
            k.make_ascii_lowercase();
            if forwarded_header(&k) {
                ctx.headers.insert(k, Value::String(v));
            }
        }
        if let Err(errors) = input::apply(&endpoint.input, &mut ctx) {
            return problem_with(
                400,
                "invalid-input",
                "Invalid input",
                "some declared inputs are missing or ill-typed",
                id,
                [("errors", Value::Array(errors))],
            );
        }

        let result = m.engine.execute(&endpoint.name, &ctx).await;
        let (response, trace) = match result {
            Ok(exec) => {
                if endpoint.response_mapping.is_none() && exec.response.is_null() {
                    (
                        problem(
                            404,
                            "no-result",
                            "Not found",
                            format!("`{}` found nothing for this request", endpoint.name),
                            id,
                        ),
                        Some(exec.trace),
                    )
                } else if debug {
                    (
                        WebResponse::json(
                            200,
                            &json!({"data": exec.response, "trace": exec.trace}),
                        ),
                        Some(exec.trace),
                    )
                } else {
                    (WebResponse::json(200, &exec.response), Some(exec.trace))
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "execution failed");
                let (status, kind, title, detail, trace) = match e {
                    ExecuteError::UnknownEndpoint(_) => (
                        404,
                        "not-found",
                        "Not found",
                        "no endpoint answers this path".to_owned(),
                        None,
                    ),
                    ExecuteError::DeadlineExceeded { budget, trace, .. } => (
                        504,
                        "deadline-exceeded",
                        "Gateway timeout",
                        format!(
                            "the endpoint did not finish within {} ms",
                            budget.as_millis()
                        ),
                        Some(*trace),
                    ),
                    ExecuteError::SourceFailed {
                        source_name, trace, ..
                    } => (
                        502,
                        "source-failed",
                        "Bad gateway",
                        format!("data source `{source_name}` failed"),
                        Some(*trace),
                    ),
                };
                let debug_trace = trace
                    .as_ref()
                    .filter(|_| debug)
                    .map(|t| ("trace", serde_json::to_value(t).unwrap_or_default()));
                let r = problem_with(status, kind, title, detail, id, debug_trace);
                (r, trace)
            }
        };
        let response = match &trace {
            Some(t) => response.header(SERVER_TIMING, server_timing(t)),
            None => response,
        };
        if Self::tracking(&m).admin {
            self.record(&m, &endpoint.name, response.status, trace.as_ref(), id);
        }
        response
    }

    /// Keeps the execution in the bounded ring buffer of the admin route.
    fn record(&self, m: &Mounted, endpoint: &str, status: u16, trace: Option<&Trace>, id: &str) {
        let capacity = Self::tracking(m).recent;
        let entry = json!({
            "request_id": id,
            "endpoint": endpoint,
            "status": status,
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
        out.push_str("\", ");
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
        };
        let trace = Trace {
            endpoint: "e".into(),
            config_version: 1,
            request_id: "r".into(),
            duration: Duration::from_micros(12_000_999),
            sources: vec![
                source("profile", "database", 1_234),
                source("credit", "api", 5),
                source("slow", "api", 20_050),
            ],
        };
        assert_eq!(
            server_timing(&trace),
            "profile;dur=1.234;desc=\"database\", credit;dur=0.005;desc=\"api\", \
             slow;dur=20.050;desc=\"api\", total;dur=12000.999"
        );
        let empty = Trace {
            sources: Vec::new(),
            ..trace
        };
        assert_eq!(server_timing(&empty), "total;dur=12000.999");
    }
}
