//! `application/problem+json` (RFC 9457): the one shape of every error the web layer answers.

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http::{Response, StatusCode};
use serde_json::{Value, json};

use crate::engine::ExecuteError;

const PROBLEM_JSON: HeaderValue = HeaderValue::from_static("application/problem+json");

/// An error answer: a status, a stable `type` (`urn:orchestrator:problem:<kind>`), a title and
/// a `detail` written for clients (no SQL, upstream bodies or file paths: those stay in logs and
/// traces), plus extension members.
///
/// ```
/// use api_orchestrator::web::Problem;
///
/// let response = Problem::new(404, "not-found", "Not found", "no such customer")
///     .into_response("req-1");
/// assert_eq!(response.status(), 404);
/// assert_eq!(response.headers()["content-type"], "application/problem+json");
/// ```
#[derive(Debug, Clone)]
pub struct Problem {
    status: StatusCode,
    kind: &'static str,
    title: &'static str,
    detail: String,
    extensions: Vec<(&'static str, Value)>,
    allow: Option<HeaderValue>,
    retry_after: Option<u64>,
    /// Send `WWW-Authenticate: Bearer` (a 401).
    challenge: bool,
}

impl Problem {
    /// A problem with this status (500 when it is not a valid status), `type` suffix, title
    /// and detail.
    pub fn new(
        status: u16,
        kind: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            kind,
            title,
            detail: detail.into(),
            extensions: Vec::new(),
            allow: None,
            retry_after: None,
            challenge: false,
        }
    }

    /// Adds an extension member (`errors`, `trace`, …).
    #[must_use]
    pub fn with(mut self, name: &'static str, value: Value) -> Self {
        self.extensions.push((name, value));
        self
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The `type` suffix: `source-failed`, `deadline-exceeded`, …
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// The response, carrying `request_id` in the body.
    pub fn into_response(self, request_id: &str) -> Response<Bytes> {
        let mut doc = json!({
            "type": format!("urn:orchestrator:problem:{}", self.kind),
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
            "request_id": request_id,
        });
        for (k, v) in self.extensions {
            doc[k] = v;
        }
        let mut response = Response::new(Bytes::from(serde_json::to_vec(&doc).unwrap_or_default()));
        *response.status_mut() = self.status;
        response.headers_mut().insert(CONTENT_TYPE, PROBLEM_JSON);
        if let Some(allow) = self.allow {
            response.headers_mut().insert(ALLOW, allow);
        }
        if self.challenge {
            response.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer"),
            );
        }
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// 404 for an unknown endpoint, 504 when the budget ran out, 502 when a required source failed,
/// 503 past `max_in_flight` and 429 past `rate_limit` (both with `Retry-After`).
impl From<&ExecuteError> for Problem {
    fn from(e: &ExecuteError) -> Self {
        let mut problem = match e {
            ExecuteError::UnknownEndpoint(_) => Self::not_found(),
            ExecuteError::Overloaded { .. } => Self::new(
                503,
                "overloaded",
                "Service unavailable",
                "the endpoint is at its limit of requests in flight; try again shortly",
            ),
            ExecuteError::RateLimited { .. } => Self::new(
                429,
                "rate-limited",
                "Too many requests",
                "the endpoint's rate limit is reached; try again after `Retry-After` seconds",
            ),
            ExecuteError::DeadlineExceeded { budget, .. } => Self::new(
                504,
                "deadline-exceeded",
                "Gateway timeout",
                format!(
                    "the endpoint did not finish within {} ms",
                    budget.as_millis()
                ),
            ),
            ExecuteError::NotFound { endpoint, .. } => Self::new(
                404,
                "no-result",
                "Not found",
                format!("`{endpoint}` found nothing for this request"),
            ),
            ExecuteError::InvalidParameter { param, .. } => Self::new(
                400,
                "invalid-parameter",
                "Invalid parameter",
                format!("the value of `{param}` cannot be used for this request"),
            )
            .with("parameter", serde_json::Value::String(param.clone())),
            ExecuteError::SourceFailed { source_name, .. } => Self::new(
                502,
                "source-failed",
                "Bad gateway",
                format!("data source `{source_name}` failed"),
            ),
        };
        // Whole seconds, rounded up: `Retry-After: 0` would invite an immediate retry.
        problem.retry_after = e
            .retry_after()
            .map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0));
        problem
    }
}

impl Problem {
    /// 404: no route answers the path.
    pub(crate) fn not_found() -> Self {
        Self::new(
            404,
            "not-found",
            "Not found",
            "no endpoint answers this path",
        )
    }

    /// 414 or 431: the request target or the headers are longer than the library reads
    /// ([`Api::MAX_URI_BYTES`](super::Api::MAX_URI_BYTES),
    /// [`Api::MAX_HEADER_BYTES`](super::Api::MAX_HEADER_BYTES)).
    pub(crate) fn oversized(head: &http::request::Parts) -> Option<Self> {
        let uri = head.uri.path().len() + head.uri.query().map_or(0, |q| q.len() + 1);
        if uri > super::Api::MAX_URI_BYTES {
            return Some(Self::new(
                414,
                "uri-too-long",
                "URI too long",
                format!(
                    "the request target has {uri} bytes; at most {} are read",
                    super::Api::MAX_URI_BYTES
                ),
            ));
        }
        let headers: usize = head
            .headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len())
            .sum();
        (headers > super::Api::MAX_HEADER_BYTES).then(|| {
            Self::new(
                431,
                "headers-too-large",
                "Request header fields too large",
                format!(
                    "the headers have {headers} bytes; at most {} are read",
                    super::Api::MAX_HEADER_BYTES
                ),
            )
        })
    }

    /// 401 with `WWW-Authenticate: Bearer`.
    pub(crate) fn unauthorized(detail: &str) -> Self {
        let mut p = Self::new(401, "unauthorized", "Unauthorized", detail);
        p.challenge = true;
        p
    }

    /// 405 with the methods the path answers, in `detail` and the `Allow` header.
    pub(crate) fn method_not_allowed(allow: &str) -> Self {
        let mut p = Self::new(
            405,
            "method-not-allowed",
            "Method not allowed",
            format!("this path answers {allow}"),
        );
        p.allow = HeaderValue::try_from(allow).ok();
        p
    }
}
