//! The operator routes, a service apart from the API so the host decides where they live and
//! who may call them.

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use super::{Body, Inner, Problem, json_response, request_id};

/// The operator routes of an [`Api`](super::Api) (from [`Api::admin`](super::Api::admin)),
/// relative to where the host mounts them:
///
/// - `GET /executions`: the latest executions, newest first, with their traces (recorded
///   while `tracking.admin` is on; 404 otherwise);
/// - `POST /reload`: re-reads the config directory; 200 with the new version, 422
///   `reload-failed` with the diagnostics while the previous version keeps serving, or 409
///   `not-reloadable` for plans built in code (the macro, `OrchestratorBuilder::build`).
///
/// Mount it behind the host's own authentication:
///
/// ```no_run
/// # #[cfg(feature = "axum")]
/// # fn mount(api: api_orchestrator::web::Api) -> axum::Router {
/// axum::Router::new()
///     .nest_service("/api", api.clone())
///     .nest_service("/ops", api.admin()) // add the host's auth layer here
/// # }
/// ```
#[derive(Clone)]
pub struct Admin {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin").finish_non_exhaustive()
    }
}

impl Admin {
    pub(super) fn new(inner: Arc<Inner>) -> Self {
        Self { inner }
    }

    /// Requests to these routes carry no body worth reading.
    pub(super) fn max_body_bytes(&self) -> u64 {
        0
    }

    /// Handles one request; its path is relative to where the service is mounted.
    pub async fn handle(&self, req: Request<Body>) -> Response<Bytes> {
        let id = request_id(req.headers());
        let mut response = match (req.uri().path(), req.method()) {
            ("/executions", &Method::GET) => self.executions(&id),
            ("/reload", &Method::POST) => self.reload(&id).await,
            ("/executions", _) => Problem::method_not_allowed("GET").into_response(&id),
            ("/reload", _) => Problem::method_not_allowed("POST").into_response(&id),
            _ => Problem::not_found().into_response(&id),
        };
        if let Ok(v) = http::HeaderValue::try_from(id) {
            response.headers_mut().insert(super::X_REQUEST_ID, v);
        }
        response
    }

    fn executions(&self, id: &str) -> Response<Bytes> {
        if !self.inner.records_executions() {
            return Problem::new(
                404,
                "not-found",
                "Not found",
                "executions are recorded only with `tracking.admin: true` in config.yaml",
            )
            .into_response(id);
        }
        let recent: Vec<Value> = self
            .inner
            .recent
            .lock()
            .map(|r| r.iter().rev().cloned().collect())
            .unwrap_or_default();
        json_response(StatusCode::OK, &json!({"executions": recent}))
    }

    async fn reload(&self, id: &str) -> Response<Bytes> {
        let orchestrator = self.inner.orchestrator.clone();
        match tokio::task::spawn_blocking(move || orchestrator.reload()).await {
            Ok(Ok(version)) => json_response(
                StatusCode::OK,
                &json!({"reloaded": true, "version": version}),
            ),
            Ok(Err(crate::Error::NotReloadable)) => Problem::new(
                409,
                "not-reloadable",
                "Not reloadable",
                "these plans were built in code, not loaded from a directory: there is nothing to re-read",
            )
            .into_response(id),
            Ok(Err(e)) => Problem::new(
                422,
                "reload-failed",
                "Reload failed",
                "the config did not load; the previous version keeps serving",
            )
            .with("diagnostics", json!(e.to_string()))
            .with("version", json!(self.inner.orchestrator.version()))
            .into_response(id),
            Err(_) => Problem::new(500, "internal", "Internal error", "the reload task failed")
                .into_response(id),
        }
    }
}
