//! Mounting plans in an axum application.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::{Router, routing::get};
//! use orchestrator::{Orchestrator, web::{Api, axum::router}};
//!
//! let api = Api::new(&Orchestrator::from_dir("config")?);
//! let app = Router::new()
//!     .route("/health", get(|| async { "ok" }))   // the host's own routes, state, layers
//!     .nest("/api", router(api));                   // the plans, below /api
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```

use axum::Router;
use axum::body::Body as AxumBody;
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::any;

use super::{Api, Body, WebRequest};

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");

/// A router answering every route of the plans; nest it wherever the host wants them. It works
/// under any host state type.
pub fn router<S: Clone + Send + Sync + 'static>(api: Api) -> Router<S> {
    Router::new()
        .route("/", any(handle))
        .route("/{*rest}", any(handle))
        .with_state(api)
}

async fn handle(State(api): State<Api>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let limit = api.max_body_bytes();
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let body = if declared.is_some_and(|n| n > limit) {
        Body::TooLarge
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
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers,
        body,
    };
    let out = api.handle(req).await;
    let mut response = Response::new(AxumBody::from(out.body));
    *response.status_mut() =
        StatusCode::from_u16(out.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (k, v) in out.headers {
        // The names the library sets are known: no parsing (and no allocation) for those; the
        // value's buffer is taken over, not copied.
        let name = match k.as_str() {
            "content-type" => Ok(CONTENT_TYPE),
            "x-request-id" => Ok(X_REQUEST_ID),
            "server-timing" => Ok(SERVER_TIMING),
            _ => HeaderName::from_bytes(k.as_bytes()),
        };
        if let (Ok(k), Ok(v)) = (name, HeaderValue::try_from(v)) {
            response.headers_mut().append(k, v);
        }
    }
    response
}
