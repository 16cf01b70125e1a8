//! The HTTP call stack shared by the `api`, `feast` and `ml` sources: one client per service
//! and config version, request id and W3C `traceparent` on every call (and the request's
//! `tracestate` when the trace continues the request's), a response size limit, and one
//! mapping of failures to [`SourceErrorKind`]s.
//!
//! Two transports sit under that one stack. Plain `http://` calls to the service's own
//! authority go over [`lean`] (HTTP/1.1 over kept-alive connections pooled per service, read by
//! the calling future); TLS, HTTP/2, an ML model's `endpoint` on another host, and every call
//! while an `HTTP_PROXY` / `ALL_PROXY` variable is set go through reqwest. Both send the same
//! headers and end in the same errors.
//!
//! | failure | kind |
//! |---|---|
//! | connection refused, reset, DNS, TLS, a connection that ends before the answer does | `unavailable` |
//! | the server answered with a non-2xx status (redirects are not followed) | `upstream` with the status |
//! | a body that is not JSON, or larger than `max_response_bytes`; an answer that is not HTTP/1.1 (lean transport) | `invalid_response` |
//! | a request value that cannot be sent (a header with a line break, a `..` path segment) | `rejected` |
//!
//! Slow servers, including ones that drip their body, are cut by the data source's timeout
//! (`timeout`), which the engine applies around every attempt. The upstream's body never
//! reaches a client: a short excerpt goes into the error message, for logs and traces.

use std::fmt::Write as _;
use std::sync::Arc;

use bytes::Bytes;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::header::{
    ACCEPT, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST, HeaderMap, HeaderName, HeaderValue, TE,
    TRANSFER_ENCODING, UPGRADE, USER_AGENT,
};
use serde_json::Value;

use super::{SourceCall, SourceError, SourceErrorKind};
use crate::plan::HttpSettings;

mod lean;

#[doc(hidden)]
pub use lean::__fuzz_answer as __fuzz_http_answer;

/// The `User-Agent` of every call.
const AGENT: HeaderValue =
    HeaderValue::from_static(concat!("orchestrator/", env!("CARGO_PKG_VERSION")));
/// Headers the lean transport writes itself or never sends: they frame the message or manage
/// the connection.
const HOP_BY_HOP: [HeaderName; 7] = [
    CONTENT_LENGTH,
    TRANSFER_ENCODING,
    CONNECTION,
    UPGRADE,
    TE,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
];
/// The environment variables through which reqwest takes an HTTP proxy.
const PROXY_VARIABLES: [&str; 4] = ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"];

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
    /// Plain `http://` calls to the base URL's authority, when no proxy is configured.
    lean: Option<Arc<lean::Lean>>,
    /// What reqwest's client adds to every request, for the lean transport: `User-Agent`,
    /// `Accept: */*` and the service's headers (authentication marked sensitive), without
    /// hop-by-hop headers.
    defaults: HeaderMap,
    /// Whether the service's headers set `Host` (then the URL's is not sent).
    host_configured: bool,
    base: reqwest::Url,
    /// Appended to every query (API keys sent as a query parameter).
    query: Vec<(String, String)>,
    max_response_bytes: u64,
    /// The incoming request's headers relayed with every call (`forward_headers`).
    forward: Vec<HeaderName>,
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
        // reqwest's own defaults, which the service's headers may replace.
        headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
        headers.insert(USER_AGENT, AGENT);
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
            .default_headers(headers.clone());
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
        let proxied = PROXY_VARIABLES
            .iter()
            .any(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty()));
        let lean = if proxied {
            None
        } else {
            lean::Lean::new(&base, http.timeout).map(Arc::new)
        };
        // Filtered once here, not per call.
        for name in &HOP_BY_HOP {
            headers.remove(name);
        }
        let forward = http
            .forward_headers
            .iter()
            .map(|k| {
                HeaderName::from_bytes(k.as_bytes())
                    .map_err(|e| config_error(service, format_args!("forwarded header `{k}`: {e}")))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            client,
            lean,
            host_configured: headers.contains_key(HOST),
            defaults: headers,
            base,
            query,
            max_response_bytes: http
                .max_response_bytes
                .unwrap_or(HttpSettings::DEFAULT_MAX_RESPONSE_BYTES),
            forward,
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
        let mut headers = HeaderMap::with_capacity(self.defaults.len() + out.headers.len() + 4);
        if !call.request.request_id.is_empty()
            && let Ok(id) = HeaderValue::from_str(&call.request.request_id)
        {
            headers.insert(X_REQUEST_ID, id);
        }
        // Hex digits and dashes: always a valid header value.
        if let Ok(tp) = HeaderValue::from_bytes(&call.trace.traceparent_bytes()) {
            headers.insert(TRACEPARENT, tp);
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
            headers.insert(TRACESTATE, state);
        }
        for name in &self.forward {
            let value = match call.request.credentials.get(name.as_str()) {
                Some(secret) => HeaderValue::from_str(secret).ok().map(|mut v| {
                    v.set_sensitive(true);
                    v
                }),
                None => call
                    .request
                    .headers
                    .get(name.as_str())
                    .and_then(Value::as_str)
                    .and_then(|v| HeaderValue::from_str(v).ok()),
            };
            if let Some(value) = value {
                headers.insert(name.clone(), value);
            }
        }
        for (k, v) in &out.headers {
            headers.append(k, v.clone());
        }
        let body = match &out.body {
            None => Bytes::new(),
            Some(body) => {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                serde_json::to_vec(body)
                    .map_err(|e| {
                        SourceError::new(
                            SourceErrorKind::Internal,
                            format!("cannot encode the request body: {e}"),
                        )
                    })?
                    .into()
            }
        };
        let (status, content_type, body) = match &self.lean {
            Some(lean) if lean.serves(&url) => {
                self.send_lean(lean, &out.method, &url, &headers, &body, &what)
                    .await?
            }
            _ => {
                let mut req = self
                    .client
                    .request(out.method.clone(), url)
                    .headers(headers);
                if !body.is_empty() {
                    req = req.body(body);
                }
                self.send_reqwest(req, &what).await?
            }
        };
        #[cfg(feature = "otel")]
        crate::telemetry::otel::annotate(|span| {
            span.set_attribute(opentelemetry::KeyValue::new(
                "http.response.status_code",
                i64::from(status.as_u16()),
            ));
        });
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

    /// The call over reqwest: status, content type and the body within the size limit.
    async fn send_reqwest(
        &self,
        req: reqwest::RequestBuilder,
        what: &(dyn Fn() -> String + Sync),
    ) -> Result<(http::StatusCode, Option<HeaderValue>, Bytes), SourceError> {
        let mut resp = req.send().await.map_err(|e| reqwest_error(&what(), e))?;
        let status = resp.status();
        let content_type = resp.headers().get(CONTENT_TYPE).cloned();
        let body = match resp.content_length() {
            Some(len) if len > self.max_response_bytes => {
                return Err(self.too_large(&what(), Some(len)));
            }
            // Within the limit by its own account: take it whole, without copying chunks.
            Some(_) => resp.bytes().await.map_err(|e| reqwest_error(&what(), e))?,
            None => {
                let mut body = Vec::new();
                while let Some(chunk) = resp.chunk().await.map_err(|e| reqwest_error(&what(), e))? {
                    if (body.len() + chunk.len()) as u64 > self.max_response_bytes {
                        return Err(self.too_large(&what(), None));
                    }
                    body.extend_from_slice(&chunk);
                }
                body.into()
            }
        };
        Ok((status, content_type, body))
    }

    /// The call over the lean transport: the same answer as [`Self::send_reqwest`]'s.
    async fn send_lean(
        &self,
        lean: &lean::Lean,
        method: &reqwest::Method,
        url: &reqwest::Url,
        headers: &HeaderMap,
        body: &[u8],
        what: &(dyn Fn() -> String + Sync),
    ) -> Result<(http::StatusCode, Option<HeaderValue>, Bytes), SourceError> {
        let request = self.request_bytes(lean, method, url, headers, body);
        match lean.call(method, &request, self.max_response_bytes).await {
            Ok(answer) => Ok((answer.status, answer.content_type, answer.body)),
            Err(lean::Error {
                too_large: Some(declared),
                ..
            }) => Err(self.too_large(&what(), declared)),
            Err(e) => Err(SourceError::new(
                e.kind,
                format!("{}: {}", what(), e.message),
            )),
        }
    }

    /// The whole HTTP/1.1 request: request line, `Host`, the call's headers, then each default
    /// header the call does not set (reqwest's order), `Content-Length`, and the body. The
    /// target is the URL's path and query as the URL type serializes them: percent-encoded,
    /// no space or control character.
    fn request_bytes(
        &self,
        lean: &lean::Lean,
        method: &reqwest::Method,
        url: &reqwest::Url,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Vec<u8> {
        // Path and query: a fragment is not sent.
        let target = &url[url::Position::BeforePath..url::Position::AfterQuery];
        let mut out = Vec::with_capacity(256 + target.len() + body.len());
        out.extend_from_slice(method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(target.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        // A `Host` the service configures replaces the URL's (as with reqwest).
        if !self.host_configured && !headers.contains_key(HOST) {
            out.extend_from_slice(b"host: ");
            out.extend_from_slice(lean.host().as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        // The message's framing and the connection are the transport's to say: the length of
        // the body, and no hop-by-hop header from a config (the defaults have none).
        let call = headers
            .iter()
            .filter(|(name, _)| !HOP_BY_HOP.contains(*name));
        let defaults = self
            .defaults
            .iter()
            .filter(|(name, _)| !headers.contains_key(*name));
        for (name, value) in call.chain(defaults) {
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        let has_body = !body.is_empty()
            || matches!(
                *method,
                reqwest::Method::POST | reqwest::Method::PUT | reqwest::Method::PATCH
            );
        if has_body {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
        out
    }

    /// The error of an answer over `max_response_bytes` (`len` when it said its length).
    fn too_large(&self, what: &str, len: Option<u64>) -> SourceError {
        let message = match len {
            Some(len) => format!(
                "{what}: the response has {len} bytes, more than the {} allowed (`max_response_bytes`)",
                self.max_response_bytes
            ),
            None => format!(
                "{what}: the response is larger than the {} bytes allowed (`max_response_bytes`)",
                self.max_response_bytes
            ),
        };
        SourceError::new(SourceErrorKind::InvalidResponse, message)
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

fn reqwest_error(what: &str, e: reqwest::Error) -> SourceError {
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
