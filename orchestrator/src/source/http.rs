//! The HTTP call stack shared by the `api`, `feast` and `ml` sources: one reqwest client per
//! service and config version, request id and W3C `traceparent` on every call (and the
//! request's `tracestate` when the trace continues the request's), a response size limit, and
//! one mapping of failures to [`SourceErrorKind`]s.
//!
//! | failure | kind |
//! |---|---|
//! | connection refused, reset, DNS, TLS | `unavailable` |
//! | the server answered with a non-2xx status (redirects are not followed) | `upstream` with the status |
//! | a body that is not JSON, or larger than `max_response_bytes` | `invalid_response` |
//! | a request value that cannot be sent (a header with a line break, a `..` path segment) | `rejected` |
//!
//! Slow servers, including ones that drip their body, are cut by the data source's timeout
//! (`timeout`), which the engine applies around every attempt. The upstream's body never
//! reaches a client: a short excerpt goes into the error message, for logs and traces.

use std::fmt::Write as _;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use super::{SourceCall, SourceError, SourceErrorKind};
use crate::plan::HttpSettings;

// Not among `http`'s standard names: built once here, not parsed (and allocated) per call.
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// Everything but RFC 3986's unreserved characters is percent-encoded in a path segment or
/// query value: request data can add no `/`, `?`, `#`, `@` or `%` of its own.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes `value` for one path segment.
pub(crate) fn encode_component(value: &str) -> String {
    utf8_percent_encode(value, COMPONENT).to_string()
}

/// A JSON value as it goes into a URL or header: strings as they are, other scalars as JSON
/// text; `None` for null, arrays and objects.
pub(crate) fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// One service's client: its base URL, default headers and limits.
#[derive(Debug, Clone)]
pub(crate) struct HttpClient {
    client: reqwest::Client,
    base: reqwest::Url,
    /// Appended to every query (API keys sent as a query parameter).
    query: Vec<(String, String)>,
    max_response_bytes: u64,
}

/// A request relative to the service's base URL.
#[derive(Debug, Default)]
pub(crate) struct Outgoing {
    pub(crate) method: reqwest::Method,
    /// Already encoded path, starting with `/` (or empty), appended to the base URL's path.
    pub(crate) path: String,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) body: Option<Value>,
    /// A whole URL to call instead of the base URL and `path` (an ML model's absolute
    /// `endpoint`).
    pub(crate) absolute: Option<reqwest::Url>,
}

fn config_error(service: &str, message: impl std::fmt::Display) -> SourceError {
    SourceError::new(
        SourceErrorKind::Config,
        format!("service `{service}`: {message}"),
    )
}

impl HttpClient {
    /// Builds the client for `service`. `extra` headers (authentication) are marked sensitive
    /// so they never show up in debug output.
    pub(crate) fn new(
        service: &str,
        base_url: &str,
        http: &HttpSettings,
        extra: Vec<(HeaderName, HeaderValue)>,
        query: Vec<(String, String)>,
    ) -> Result<Self, SourceError> {
        // reqwest is built with rustls but no default provider; ring is the one the crate uses
        // (sqlx's TLS too). Installing it is idempotent and leaves a host's choice alone.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let base = reqwest::Url::parse(base_url).map_err(|e| {
            config_error(
                service,
                format_args!("base URL `{}`: {e}", crate::redact::url(base_url)),
            )
        })?;
        let mut headers = HeaderMap::new();
        for (k, v) in &http.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| config_error(service, format_args!("header `{k}`: {e}")))?;
            let value = HeaderValue::from_str(v.expose())
                .map_err(|e| config_error(service, format_args!("header `{k}`: {e}")))?;
            headers.insert(name, value);
        }
        for (name, mut value) in extra {
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        // Sent by the client itself: nothing to copy per request.
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("orchestrator/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers);
        if let Some(t) = http.timeout {
            builder = builder.connect_timeout(t);
        }
        if base.scheme() == "http" {
            // reqwest's default retry policy retries only what HTTP/2 (and 3) servers refuse
            // before processing, and a plain `http://` service is spoken to in HTTP/1.1. The
            // policy would still copy every request (headers, extensions) in case it retries.
            builder = builder.retry(reqwest::retry::never().max_retries_per_request(0));
        }
        let client = builder.build().map_err(|e| {
            config_error(service, format_args!("cannot build the HTTP client: {e}"))
        })?;
        Ok(Self {
            client,
            base,
            query,
            max_response_bytes: http
                .max_response_bytes
                .unwrap_or(HttpSettings::DEFAULT_MAX_RESPONSE_BYTES),
        })
    }

    /// The absolute URL of `out`: the base URL's scheme, host and port, its path followed by
    /// `out.path`, and the query pairs form-encoded.
    fn url(&self, out: &Outgoing) -> reqwest::Url {
        if let Some(url) = &out.absolute {
            return url.clone();
        }
        let mut url = self.base.clone();
        match self.base.path().trim_end_matches('/') {
            "" => url.set_path(&out.path),
            base => url.set_path(&format!("{base}{}", out.path)),
        }
        if !out.query.is_empty() || !self.query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in out.query.iter().chain(&self.query) {
                pairs.append_pair(k, v);
            }
        }
        url
    }

    /// Sends `out` and returns the parsed JSON body (null for an empty body).
    pub(crate) async fn send(
        &self,
        call: &SourceCall<'_>,
        out: Outgoing,
    ) -> Result<Value, SourceError> {
        // For error messages only.
        let what = || match &out.absolute {
            Some(url) => format!("{} {}", out.method, url.path()),
            None => {
                let base = self.base.path().trim_end_matches('/');
                format!("{} {base}{}", out.method, out.path)
            }
        };
        let url = self.url(&out);
        #[cfg(feature = "otel")]
        crate::telemetry::otel::annotate(|span| {
            use opentelemetry::KeyValue;
            // The address, never the URL: its path and query carry request values and may
            // carry credentials.
            span.set_attribute(KeyValue::new("http.request.method", out.method.to_string()));
            span.set_attribute(KeyValue::new("url.scheme", url.scheme().to_owned()));
            if let Some(host) = url.host_str() {
                span.set_attribute(KeyValue::new("server.address", host.to_owned()));
            }
            if let Some(port) = url.port_or_known_default() {
                span.set_attribute(KeyValue::new("server.port", i64::from(port)));
            }
        });
        let mut req = self.client.request(out.method.clone(), url);
        if !call.request.request_id.is_empty()
            && let Ok(id) = HeaderValue::from_str(&call.request.request_id)
        {
            req = req.header(X_REQUEST_ID, id);
        }
        // Hex digits and dashes: always a valid header value.
        if let Ok(tp) = HeaderValue::from_bytes(&call.trace.traceparent_bytes()) {
            req = req.header(TRACEPARENT, tp);
        }
        // Vendor data of the trace this continues, passed on unchanged (W3C Trace Context).
        if call.trace.continued()
            && let Some(state) = call
                .request
                .headers
                .get("tracestate")
                .and_then(Value::as_str)
            && let Ok(state) = HeaderValue::from_str(state)
        {
            req = req.header(TRACESTATE, state);
        }
        for (k, v) in &out.headers {
            req = req.header(k, v);
        }
        if let Some(body) = &out.body {
            let bytes = serde_json::to_vec(body).map_err(|e| {
                SourceError::new(
                    SourceErrorKind::Internal,
                    format!("cannot encode the request body: {e}"),
                )
            })?;
            req = req
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .body(bytes);
        }
        let mut resp = req.send().await.map_err(|e| transport_error(&what(), e))?;
        let status = resp.status();
        #[cfg(feature = "otel")]
        crate::telemetry::otel::annotate(|span| {
            span.set_attribute(opentelemetry::KeyValue::new(
                "http.response.status_code",
                i64::from(status.as_u16()),
            ));
        });
        let content_type = resp.headers().get(CONTENT_TYPE).cloned();
        let body = match resp.content_length() {
            Some(len) if len > self.max_response_bytes => {
                return Err(SourceError::new(
                    SourceErrorKind::InvalidResponse,
                    format!(
                        "{}: the response has {len} bytes, more than the {} allowed (`max_response_bytes`)",
                        what(),
                        self.max_response_bytes
                    ),
                ));
            }
            // Within the limit by its own account: take it whole, without copying chunks.
            Some(_) => resp
                .bytes()
                .await
                .map_err(|e| transport_error(&what(), e))?,
            None => {
                let mut body = Vec::new();
                while let Some(chunk) = resp
                    .chunk()
                    .await
                    .map_err(|e| transport_error(&what(), e))?
                {
                    if (body.len() + chunk.len()) as u64 > self.max_response_bytes {
                        return Err(SourceError::new(
                            SourceErrorKind::InvalidResponse,
                            format!(
                                "{}: the response is larger than the {} bytes allowed (`max_response_bytes`)",
                                what(),
                                self.max_response_bytes
                            ),
                        ));
                    }
                    body.extend_from_slice(&chunk);
                }
                body.into()
            }
        };
        if !status.is_success() {
            return Err(SourceError::new(
                SourceErrorKind::Upstream {
                    status: status.as_u16(),
                },
                format!("{}: HTTP {status}: {}", what(), excerpt(&body)),
            ));
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&body).map_err(|e| {
            let content_type = content_type
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            SourceError::new(
                SourceErrorKind::InvalidResponse,
                format!(
                    "{}: the response is not JSON ({e}; content-type `{content_type}`): {}",
                    what(),
                    excerpt(&body)
                ),
            )
        })
    }

    /// `GET path` (for metadata).
    pub(crate) async fn get(
        &self,
        call: &SourceCall<'_>,
        path: String,
    ) -> Result<Value, SourceError> {
        self.send(
            call,
            Outgoing {
                method: reqwest::Method::GET,
                path,
                ..Outgoing::default()
            },
        )
        .await
    }
}

fn transport_error(what: &str, e: reqwest::Error) -> SourceError {
    // The URL may carry credentials (an API key in the query): it stays out of the message.
    let e = e.without_url();
    let kind = if e.is_timeout() {
        SourceErrorKind::Timeout
    } else if e.is_builder() {
        SourceErrorKind::Rejected
    } else if e.is_decode() {
        SourceErrorKind::InvalidResponse
    } else {
        // connect, request, body: the peer could not be reached or went away
        SourceErrorKind::Unavailable
    };
    let mut message = format!("{what}: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let _ = write!(message, ": {s}");
        source = s.source();
    }
    SourceError::new(kind, message)
}

/// The first 200 characters of a body, control characters escaped: an upstream's answer
/// reaches logs and traces, and must not forge lines there.
fn excerpt(body: &[u8]) -> String {
    crate::redact::excerpt(&String::from_utf8_lossy(body), 200)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_keep_request_data_inside_one_segment() {
        assert_eq!(encode_component("../admin"), "..%2Fadmin");
        assert_eq!(encode_component("%2e%2e/x"), "%252e%252e%2Fx");
        assert_eq!(
            encode_component("a?b=c#d@evil.com"),
            "a%3Fb%3Dc%23d%40evil.com"
        );
        assert_eq!(encode_component("Zoë 1"), "Zo%C3%AB%201");
        assert_eq!(encode_component("A-z_0.9~"), "A-z_0.9~");
    }
}
