//! The lean transport: plain `http://` calls over kept-alive HTTP/1.1 connections, spoken
//! with hyper's connection API and pooled per service.
//!
//! reqwest is a general client: per call it re-parses the URL, copies the default headers,
//! runs a redirect layer and a proxy matcher and checks a connection out of a pool keyed by
//! scheme and authority. A service's calls all go to one authority with the same headers, so
//! this transport keeps only what such a call needs: an idle list of connections to that
//! authority (most recently used first), a request with origin-form target, and the
//! `Host`, `User-Agent` and `Accept` headers reqwest would have sent. On the load harness a
//! call costs 47,700 instructions this way against 85,500 through reqwest (BENCHMARKS.md,
//! "The upstream call").
//!
//! Behaviour the HTTP sources document stays the same: redirects are not followed, the
//! connect timeout is the service's `timeout`, a connection found closed when it is taken from
//! the idle list is replaced (a request hyper did not start writing is sent again on a new
//! connection; anything else is the caller's failure to map), a request dropped mid-call (the
//! data source's timeout) closes its connection, and an answer not read to the end never
//! returns its connection to the pool. Idle connections are dropped after [`IDLE_TIMEOUT`],
//! like reqwest's, and at most [`MAX_IDLE`] are kept per service.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use reqwest::header::HeaderValue;

use super::super::SourceErrorKind;

/// How long a connection may sit idle before it is closed instead of reused (reqwest's
/// default).
pub(super) const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Idle connections kept per service; more are closed when their call ends.
pub(super) const MAX_IDLE: usize = 256;

/// Where a service's connections go: an address, or a name resolved per connection.
#[derive(Debug)]
enum Target {
    Addr(SocketAddr),
    Name(String, u16),
}

/// One service's connections.
#[derive(Debug)]
pub(super) struct Lean {
    target: Target,
    /// `host[:port]` as the base URL has it, for the `Host` header.
    host: HeaderValue,
    connect_timeout: Option<Duration>,
    idle: Mutex<Vec<Idle>>,
}

struct Idle {
    sender: SendRequest<Full<Bytes>>,
    since: Instant,
}

impl std::fmt::Debug for Idle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idle").field("since", &self.since).finish()
    }
}

/// A transport failure, classified for the one failure mapping in [`super`].
#[derive(Debug)]
pub(super) struct Error {
    pub(super) kind: SourceErrorKind,
    pub(super) context: &'static str,
    pub(super) source: Box<dyn std::error::Error + Send + Sync>,
}

impl Error {
    fn unavailable(
        context: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            kind: SourceErrorKind::Unavailable,
            context,
            source: source.into(),
        }
    }
}

/// A connection lent to one call: back to the idle list when the answer has been read to
/// its end ([`Lent::release`]), closed if it is dropped before.
#[derive(Debug)]
pub(super) struct Lent {
    pool: Arc<Lean>,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Lent {
    pub(super) fn release(mut self) {
        if let Some(sender) = self.sender.take() {
            let mut idle = self.pool.idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < MAX_IDLE {
                idle.push(Idle {
                    sender,
                    since: Instant::now(),
                });
            }
        }
    }
}

impl Lean {
    /// The transport for `url`'s authority, or `None` when the URL is not plain `http://`
    /// (TLS and HTTP/2 stay with reqwest).
    pub(super) fn new(url: &reqwest::Url, connect_timeout: Option<Duration>) -> Option<Self> {
        if url.scheme() != "http" {
            return None;
        }
        let port = url.port_or_known_default()?;
        let target = match url.host()? {
            url::Host::Ipv4(ip) => Target::Addr(SocketAddr::new(IpAddr::V4(ip), port)),
            url::Host::Ipv6(ip) => Target::Addr(SocketAddr::new(IpAddr::V6(ip), port)),
            url::Host::Domain(name) => Target::Name(name.to_owned(), port),
        };
        let authority = &url[url::Position::BeforeHost..url::Position::AfterPort];
        Some(Self {
            target,
            host: HeaderValue::from_str(authority).ok()?,
            connect_timeout,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Whether `url` goes to this transport's authority.
    pub(super) fn serves(&self, url: &reqwest::Url) -> bool {
        url.scheme() == "http"
            && self.host.as_bytes()
                == url[url::Position::BeforeHost..url::Position::AfterPort].as_bytes()
    }

    pub(super) fn host(&self) -> &HeaderValue {
        &self.host
    }

    /// Sends `req` (origin-form target, all headers set) on an idle connection or a new one.
    pub(super) async fn send(
        self: &Arc<Self>,
        mut req: http::Request<Full<Bytes>>,
    ) -> Result<(http::Response<Incoming>, Lent), Error> {
        while let Some(mut sender) = self.checkout().await {
            match sender.try_send_request(req).await {
                Ok(resp) => return Ok((resp, self.lend(sender))),
                // The connection closed before hyper started writing: a new one takes it.
                Err(mut e) => match e.take_message() {
                    Some(back) => req = back,
                    None => return Err(Error::unavailable("request", e.into_error())),
                },
            }
        }
        let mut sender = self.connect().await?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| Error::unavailable("request", e))?;
        Ok((resp, self.lend(sender)))
    }

    fn lend(self: &Arc<Self>, sender: SendRequest<Full<Bytes>>) -> Lent {
        Lent {
            pool: Arc::clone(self),
            sender: Some(sender),
        }
    }

    /// The most recently used idle connection that is still open, if any.
    async fn checkout(&self) -> Option<SendRequest<Full<Bytes>>> {
        loop {
            let Idle { mut sender, since } = {
                let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
                idle.pop()?
            };
            if since.elapsed() < IDLE_TIMEOUT && sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, Error> {
        let connecting = async {
            match &self.target {
                Target::Addr(addr) => tokio::net::TcpStream::connect(addr).await,
                Target::Name(name, port) => {
                    tokio::net::TcpStream::connect((name.as_str(), *port)).await
                }
            }
        };
        let stream = match self.connect_timeout {
            Some(limit) => tokio::time::timeout(limit, connecting)
                .await
                .map_err(|elapsed| Error {
                    kind: SourceErrorKind::Timeout,
                    context: "connect",
                    source: elapsed.into(),
                })?,
            None => connecting.await,
        }
        .map_err(|e| Error::unavailable("connect", e))?;
        // Requests are small and written whole: no reason to wait for more.
        let _ = stream.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| Error::unavailable("connect", e))?;
        // Reads and writes the socket until the connection closes: the peer hangs up, the
        // sender is dropped while idle, or a call is cut mid-answer.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }
}

/// Reads `body` to its end, at most `limit` bytes; `Ok(None)` when it is longer.
pub(super) async fn read_body(mut body: Incoming, limit: u64) -> Result<Option<Bytes>, Error> {
    let mut first: Option<Bytes> = None;
    let mut rest: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Error::unavailable("body", e))?;
        let Ok(chunk) = frame.into_data() else {
            continue; // trailers
        };
        let read = first.as_ref().map_or(0, Bytes::len) + rest.len();
        if (read + chunk.len()) as u64 > limit {
            return Ok(None);
        }
        // One chunk (the usual answer) is kept as it came, without a copy.
        match &first {
            None if rest.is_empty() => first = Some(chunk),
            _ => {
                if let Some(f) = first.take() {
                    rest.extend_from_slice(&f);
                }
                rest.extend_from_slice(&chunk);
            }
        }
    }
    Ok(Some(match first {
        Some(f) => f,
        None => rest.into(),
    }))
}
