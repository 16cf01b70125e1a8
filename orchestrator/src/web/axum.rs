//! Mounting plans in an axum application.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::{Router, routing::get};
//! use api_orchestrator::{Orchestrator, web::{Api, axum::router_at}};
//!
//! let api = Api::new(&Orchestrator::from_dir("config")?);
//! let app = Router::new()
//!     .route("/health", get(|| async { "ok" }))   // the host's own routes, state, layers
//!     .merge(router_at("/api", api));               // the plans, below /api
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! [`router_at`] and `Router::nest(prefix, router(api))` answer the same requests; `router_at`
//! is cheaper per request, because axum's `nest` rewrites every request's URI to strip the
//! prefix (about 1.5 % of a request's CPU in the load harness, see BENCHMARKS.md), while
//! `router_at` routes on the full path and skips the prefix in place.

use std::borrow::Cow;

use axum::Router;
use axum::body::{Body as AxumBody, Bytes, HttpBody as _};
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::any;

use super::{Api, Body, WebRequest};

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");

/// A router answering every route of the plans at its root; `nest` it wherever the host wants
/// them, or use [`router_at`]. It works under any host state type.
pub fn router<S: Clone + Send + Sync + 'static>(api: Api) -> Router<S> {
    router_at("/", api)
}

/// A router answering every route of the plans below `prefix` (`"/api"`: the endpoints under
/// `/api/…`, the docs at `/api/docs/`); `merge` it into the host's router. It answers what
/// `Router::nest(prefix, router(api))` answers, and `/api/` too (which `nest` leaves to the
/// host), without axum rewriting each request's URI. It works under any host state type.
///
/// The prefix is fixed text: for a prefix with `{captures}`, use `nest`. Since the router
/// also answers `prefix/`, a host route at exactly that path conflicts with it (axum panics
/// when merging).
///
/// # Panics
///
/// When `prefix` does not start with `/` or holds a `{capture}`: a mistake in the host's code,
/// found when the router is built.
pub fn router_at<S: Clone + Send + Sync + 'static>(prefix: &str, api: Api) -> Router<S> {
    assert!(
        prefix.starts_with('/') && !prefix.contains(['{', '}']),
        "api_orchestrator::web::axum::router_at({prefix:?}): the prefix must start with `/` and \
         hold no `{{capture}}`, like `/api`"
    );
    let prefix = prefix.trim_end_matches('/');
    let mount = Mount {
        api,
        strip: prefix.len(),
    };
    let routes = if prefix.is_empty() {
        Router::new().route("/", any(handle))
    } else {
        Router::new()
            .route(prefix, any(handle))
            .route(&format!("{prefix}/"), any(handle))
    };
    routes
        .route(&format!("{prefix}/{{*rest}}"), any(handle))
        .with_state(mount)
}

/// The state of the mounted routes: the API and the length of the prefix to skip.
#[derive(Clone)]
struct Mount {
    api: Api,
    strip: usize,
}

async fn handle(State(Mount { api, strip }): State<Mount>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let limit = api.max_body_bytes();
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let body = if declared.is_some_and(|n| n > limit) {
        Body::TooLarge
    } else if body.is_end_stream() {
        // Most GETs: nothing to collect.
        Body::Empty
    } else {
        match axum::body::to_bytes(body, usize::try_from(limit).unwrap_or(usize::MAX)).await {
            Ok(b) if b.is_empty() => Body::Empty,
            Ok(b) => Body::Bytes(b.to_vec()),
            Err(_) => Body::TooLarge,
        }
    };
    let mut headers = Vec::with_capacity(parts.headers.len());
    headers.extend(
        parts
            .headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned()))),
    );
    let req = WebRequest {
        method: parts.method.as_str().to_owned(),
        // Routing matched the prefix, so the path starts with it.
        path: match parts.uri.path().get(strip..) {
            Some("") => "/".to_owned(),
            rest => rest.unwrap_or(parts.uri.path()).to_owned(),
        },
        query: parts.uri.query().map(str::to_owned),
        headers,
        body,
    };
    let out = api.handle(req).await;
    let mut response = Response::new(AxumBody::from(out.body));
    *response.status_mut() =
        StatusCode::from_u16(out.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (k, v) in out.headers {
        // The names the library sets are known: no parsing (and no allocation) for those. A
        // constant value is referenced, an owned one taken over; neither is copied.
        let name = match &*k {
            "content-type" => Ok(CONTENT_TYPE),
            "x-request-id" => Ok(X_REQUEST_ID),
            "server-timing" => Ok(SERVER_TIMING),
            _ => HeaderName::from_bytes(k.as_bytes()),
        };
        let value = match v {
            Cow::Borrowed(v) => HeaderValue::from_maybe_shared(Bytes::from_static(v.as_bytes())),
            Cow::Owned(v) => HeaderValue::try_from(v),
        };
        if let (Ok(k), Ok(v)) = (name, value) {
            response.headers_mut().append(k, v);
        }
    }
    response
}
