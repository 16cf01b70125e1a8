//! Mounting plans in an axum application.
//!
//! [`Api`](super::Api) and [`Admin`](super::Admin) are `tower` services, so
//! `Router::nest_service` mounts them as they are:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::{Router, routing::get};
//! use api_orchestrator::{Orchestrator, web::Api};
//!
//! let api = Api::new(&Orchestrator::from_dir("config")?);
//! let app = Router::new()
//!     .route("/health", get(|| async { "ok" }))   // the host's own routes, state, layers
//!     .nest_service("/api", api.clone())           // the plans, below /api
//!     .nest_service("/ops", api.admin());          // executions and reload, behind the host's auth
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! [`router_at`] answers the same requests (and `prefix/` too, which `nest_service` leaves to
//! the host) for less CPU: axum's nesting rewrites every request's URI to strip the prefix
//! (about 1.5 % of a request's CPU in the load harness, see BENCHMARKS.md), while `router_at`
//! routes on the full path and skips the prefix in place.

use axum::Router;
use axum::body::Body as AxumBody;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::any;

use super::Body;
use super::Mount;

/// A router answering every route of `service` ([`Api`](super::Api) or
/// [`Admin`](super::Admin)) at its root; `nest` it wherever the host wants them, or use
/// [`router_at`]. It works under any host state type.
pub fn router<S: Clone + Send + Sync + 'static>(service: impl Mount) -> Router<S> {
    router_at("/", service)
}

/// A router answering every route of `service` below `prefix` (`"/api"`: the endpoints under
/// `/api/…`, the docs at `/api/docs/`); `merge` it into the host's router. It answers what
/// `Router::nest_service(prefix, service)` answers, and `/api/` too, without axum rewriting
/// each request's URI. It works under any host state type.
///
/// The prefix is fixed text: for a prefix with `{captures}`, use `nest_service`. Since the
/// router also answers `prefix/`, a host route at exactly that path conflicts with it (axum
/// panics when merging).
///
/// # Panics
///
/// When `prefix` does not start with `/` or holds a `{capture}`: a mistake in the host's code,
/// found when the router is built.
pub fn router_at<S: Clone + Send + Sync + 'static, M: Mount>(
    prefix: &str,
    service: M,
) -> Router<S> {
    assert!(
        prefix.starts_with('/') && !prefix.contains(['{', '}']),
        "api_orchestrator::web::axum::router_at({prefix:?}): the prefix must start with `/` and \
         hold no `{{capture}}`, like `/api`"
    );
    let prefix = prefix.trim_end_matches('/');
    let mount = Mounted {
        service,
        strip: prefix.len(),
    };
    let routes = if prefix.is_empty() {
        Router::new().route("/", any(handle::<M>))
    } else {
        Router::new()
            .route(prefix, any(handle::<M>))
            .route(&format!("{prefix}/"), any(handle::<M>))
    };
    routes
        .route(&format!("{prefix}/{{*rest}}"), any(handle::<M>))
        .with_state(mount)
}

/// The state of the mounted routes: the service and the length of the prefix to skip.
#[derive(Clone)]
struct Mounted<M> {
    service: M,
    strip: usize,
}

async fn handle<M: Mount>(
    State(Mounted { service, strip }): State<Mounted<M>>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let body = Body::read(body, &parts.headers, service.max_body_bytes()).await;
    service
        .serve(http::Request::from_parts(parts, body), strip)
        .await
        .map(AxumBody::from)
}
