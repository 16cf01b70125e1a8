//! The lean transport: plain `http://` JSON calls over kept-alive HTTP/1.1 connections, pooled
//! per service, each call written and its answer read by the calling future itself.
//!
//! reqwest is a general client: per call it re-parses the URL, copies the default headers,
//! runs a redirect layer and a proxy matcher, and hands the request over a channel to a
//! connection task that parses the answer into a header map and passes the body back through
//! another channel. A service's calls all go to one authority, carry a handful of headers
//! and answer with one small JSON document, so this transport keeps only that: an idle list of
//! connections (most recently used first), the request written in one `write`, the answer's
//! head parsed by `httparse` in the connection's own buffer, and the body framed by its
//! `Content-Length`, by `chunked` transfer coding or by the end of the connection (RFC 9112
//! §6.3). On the load harness a call costs 35,200 instructions this way, 47,700 over hyper's
//! connection API and 85,500 through reqwest (BENCHMARKS.md, "The upstream call").
//!
//! What the HTTP sources document stays the same: redirects are not followed, the connect
//! timeout is the service's `timeout`, and a call dropped mid-way (the data source's timeout)
//! closes its connection. A connection goes back to the idle list only when its answer was
//! read exactly to its end and neither side said `Connection: close`; a connection idle for
//! [`IDLE_TIMEOUT`] (reqwest's default) is not reused, and is closed when the service's next
//! call ends; at most [`MAX_IDLE`] are kept per service. A kept-alive connection the server
//! closed while it sat idle is noticed before it is reused when the close has arrived; when it
//! arrives only as the answer to the request written on it (nothing of an answer read), a safe
//! request (`GET`, `HEAD`; RFC 9110 §9.2.1) is sent again on a new connection and any other
//! fails as `unavailable`, for the data source's retry policy to decide. URLs with credentials
//! (`http://user:pass@host`) go through reqwest, which turns them into `Authorization: Basic`.
//!
//! Answers are untrusted: the head is limited to [`MAX_HEAD_BYTES`] and [`MAX_HEADERS`]
//! headers, interim answers to [`MAX_INTERIM`], chunk-size lines and trailers are limited too,
//! and the body to the service's `max_response_bytes`; consumed bytes are skipped by an offset
//! (one copy per read, not per chunk). A malformed head or chunk is an `invalid_response`; a connection that
//! fails or ends early is `unavailable`.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::Method;
use reqwest::header::HeaderValue;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::super::SourceErrorKind;

/// How long a connection may sit idle before it is closed instead of reused (reqwest's
/// default).
pub(super) const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Idle connections kept per service; more are closed when their call ends.
pub(super) const MAX_IDLE: usize = 256;
/// The largest answer head (status line and headers) read.
pub(crate) const MAX_HEAD_BYTES: usize = 64 * 1024;
/// The most headers an answer may have.
pub(crate) const MAX_HEADERS: usize = 100;
/// The longest chunk-size line (with extensions) and the most trailer bytes read.
const MAX_CHUNK_LINE: usize = 4 * 1024;
const MAX_TRAILER_BYTES: usize = 16 * 1024;
/// What a connection's buffer starts with: enough for a typical answer in one read.
const BUFFER: usize = 4 * 1024;
/// A pooled connection whose buffer grew past this gets a new one (a large answer's buffer is
/// not kept for every later call).
const KEPT_BUFFER: usize = 64 * 1024;
/// Interim `1xx` answers read before the real one.
const MAX_INTERIM: usize = 8;

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

#[derive(Debug)]
struct Idle {
    conn: Conn<TcpStream>,
    since: Instant,
}

/// A connection and its read buffer (bytes from `start` on are read but not yet consumed).
#[derive(Debug)]
pub(crate) struct Conn<S> {
    stream: S,
    buf: Vec<u8>,
    start: usize,
}

/// An answer read to its end.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: http::StatusCode,
    pub(crate) content_type: Option<HeaderValue>,
    pub(crate) body: Bytes,
    /// Whether the connection may carry the next call.
    reusable: bool,
}

/// A transport failure, classified for the one failure mapping in [`super`].
#[derive(Debug)]
pub(crate) struct Error {
    pub(crate) kind: SourceErrorKind,
    /// Empty when `too_large`: the caller words that error.
    pub(crate) message: String,
    /// The body is longer than the limit (`Some(Some(n))` when the answer said `n` bytes).
    pub(crate) too_large: Option<Option<u64>>,
    /// Nothing of an answer was read: the request may never have reached a server.
    unanswered: bool,
}

impl Error {
    fn new(kind: SourceErrorKind, message: String) -> Self {
        Self {
            kind,
            message,
            too_large: None,
            unanswered: false,
        }
    }

    fn unavailable(context: &str, e: &io::Error) -> Self {
        Self::new(SourceErrorKind::Unavailable, format!("{context}: {e}"))
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::new(SourceErrorKind::InvalidResponse, message.into())
    }

    fn too_large(declared: Option<u64>) -> Self {
        Self {
            too_large: Some(declared),
            ..Self::invalid(String::new())
        }
    }

    fn ended_early() -> Self {
        Self::new(
            SourceErrorKind::Unavailable,
            "answer: the connection closed before the end of the body".to_owned(),
        )
    }
}

impl Lean {
    /// The transport for `url`'s authority, or `None` when the URL is not plain `http://`
    /// (TLS and HTTP/2 stay with reqwest).
    pub(super) fn new(url: &reqwest::Url, connect_timeout: Option<Duration>) -> Option<Self> {
        // Credentials in the URL are reqwest's to turn into `Authorization`.
        if url.scheme() != "http" || !url.username().is_empty() || url.password().is_some() {
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
            && url.username().is_empty()
            && url.password().is_none()
            && self.host.as_bytes()
                == url[url::Position::BeforeHost..url::Position::AfterPort].as_bytes()
    }

    pub(super) fn host(&self) -> &HeaderValue {
        &self.host
    }

    /// Writes `request` (a whole HTTP/1.1 request: head and body) and reads the answer, on an
    /// idle connection or a new one.
    pub(super) async fn call(
        &self,
        method: &Method,
        request: &[u8],
        limit: u64,
    ) -> Result<Answer, Error> {
        while let Some(mut conn) = self.checkout() {
            match conn.exchange(method, request, limit).await {
                Ok(answer) => return Ok(self.checkin(conn, answer)),
                // The server closed the kept-alive connection as the request reached it.
                Err(e) if e.unanswered && method.is_safe() => continue,
                Err(e) => return Err(e),
            }
        }
        let mut conn = self.connect().await?;
        let answer = conn.exchange(method, request, limit).await?;
        Ok(self.checkin(conn, answer))
    }

    /// The most recently used idle connection that is still open, if any.
    fn checkout(&self) -> Option<Conn<TcpStream>> {
        loop {
            let Idle { conn, since } = {
                let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
                idle.pop()?
            };
            if since.elapsed() < IDLE_TIMEOUT && conn.still_open() {
                return Some(conn);
            }
        }
    }

    fn checkin(&self, mut conn: Conn<TcpStream>, answer: Answer) -> Answer {
        if answer.reusable {
            if conn.buf.capacity() > KEPT_BUFFER {
                conn.buf = Vec::with_capacity(BUFFER);
            }
            let now = Instant::now();
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            // The oldest are at the front (the list is in the order connections came back).
            let expired = idle.partition_point(|i| now.duration_since(i.since) >= IDLE_TIMEOUT);
            idle.drain(..expired);
            if idle.len() < MAX_IDLE {
                idle.push(Idle { conn, since: now });
            }
        }
        answer
    }

    async fn connect(&self) -> Result<Conn<TcpStream>, Error> {
        let connecting = async {
            match &self.target {
                Target::Addr(addr) => TcpStream::connect(addr).await,
                Target::Name(name, port) => TcpStream::connect((name.as_str(), *port)).await,
            }
        };
        let stream = match self.connect_timeout {
            Some(limit) => tokio::time::timeout(limit, connecting).await.map_err(|_| {
                Error::new(
                    SourceErrorKind::Timeout,
                    format!("connect: no connection within {limit:?}"),
                )
            })?,
            None => connecting.await,
        }
        .map_err(|e| Error::unavailable("connect", &e))?;
        // Requests are written whole: no reason to wait for more.
        let _ = stream.set_nodelay(true);
        Ok(Conn::new(stream))
    }
}

impl Conn<TcpStream> {
    /// Whether an idle connection has not been closed by its server (as far as the runtime
    /// has seen: no system call unless the socket was reported readable).
    fn still_open(&self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.stream.try_read(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    pub(crate) fn new(stream: S) -> Self {
        Self {
            stream,
            buf: Vec::with_capacity(BUFFER),
            start: 0,
        }
    }

    /// Writes `request` and reads its answer.
    pub(crate) async fn exchange(
        &mut self,
        method: &Method,
        request: &[u8],
        limit: u64,
    ) -> Result<Answer, Error> {
        self.buf.clear();
        self.start = 0;
        if let Err(e) = self.stream.write_all(request).await {
            let mut error = Error::unavailable("request", &e);
            error.unanswered = true;
            return Err(error);
        }
        self.read_answer(method, limit).await
    }

    /// The bytes read and not yet consumed.
    fn pending(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// Consumes `n` pending bytes: an offset, not a move of the rest (an answer of many small
    /// chunks read at once must not cost a copy of the buffer per chunk).
    fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.buf.len());
    }

    /// Reads more into the buffer; `Ok(0)` at the end of the connection.
    async fn fill(&mut self) -> Result<usize, Error> {
        if self.start > 0 {
            // Once per read, not per consumed piece.
            self.buf.drain(..self.start);
            self.start = 0;
        }
        if self.buf.capacity() - self.buf.len() < 512 {
            self.buf.reserve(self.buf.capacity().max(BUFFER));
        }
        self.stream
            .read_buf(&mut self.buf)
            .await
            .map_err(|e| Error::unavailable("answer", &e))
    }

    /// Reads one answer (after at most [`MAX_INTERIM`] interim `1xx` ones) to its end.
    pub(crate) async fn read_answer(
        &mut self,
        method: &Method,
        limit: u64,
    ) -> Result<Answer, Error> {
        // An interim answer counts as an answer: the request reached a server.
        let mut interim = 0;
        loop {
            let head = loop {
                if let Some(head) = parse_head(self.pending())? {
                    break head;
                }
                if self.pending().len() >= MAX_HEAD_BYTES {
                    return Err(Error::invalid(format!(
                        "the answer's head is longer than {MAX_HEAD_BYTES} bytes"
                    )));
                }
                // Closed or reset before the first byte of an answer: what a server does to a
                // kept-alive connection it has given up on.
                let unanswered = self.pending().is_empty() && interim == 0;
                match self.fill().await {
                    Ok(0) => {
                        return Err(Error {
                            unanswered,
                            ..Error::new(
                                SourceErrorKind::Unavailable,
                                "answer: the connection closed before a complete answer".to_owned(),
                            )
                        });
                    }
                    Ok(_) => {}
                    Err(e) => return Err(Error { unanswered, ..e }),
                }
            };
            self.consume(head.len);
            match head.status.as_u16() {
                // Interim answers (`100 Continue`, `103 Early Hints`): the real one follows.
                100 | 102..=199 if interim < MAX_INTERIM => {
                    interim += 1;
                    continue;
                }
                100..=199 => {
                    return Err(Error::invalid(format!(
                        "more than {MAX_INTERIM} interim answers, or a switch of protocols"
                    )));
                }
                _ => {}
            }
            let no_body = *method == Method::HEAD
                || head.status == http::StatusCode::NO_CONTENT
                || head.status == http::StatusCode::NOT_MODIFIED;
            let (body, framed) = match head.framing {
                _ if no_body => (Bytes::new(), true),
                Framing::Length(len) => (self.read_length(len, limit).await?, true),
                Framing::Chunked => (self.read_chunked(limit).await?, true),
                Framing::Close => (self.read_to_close(limit).await?, false),
            };
            return Ok(Answer {
                status: head.status,
                content_type: head.content_type,
                body,
                // Nothing may follow an answer that was not asked for.
                reusable: head.keep_alive && framed && self.pending().is_empty(),
            });
        }
    }

    async fn read_length(&mut self, len: u64, limit: u64) -> Result<Bytes, Error> {
        if len > limit {
            return Err(Error::too_large(Some(len)));
        }
        let len = usize::try_from(len).map_err(|_| Error::too_large(Some(len)))?;
        while self.pending().len() < len {
            if self.fill().await? == 0 {
                return Err(Error::ended_early());
            }
        }
        Ok(self.take(len))
    }

    async fn read_to_close(&mut self, limit: u64) -> Result<Bytes, Error> {
        loop {
            if self.pending().len() as u64 > limit {
                return Err(Error::too_large(None));
            }
            if self.fill().await? == 0 {
                let len = self.pending().len();
                return Ok(self.take(len));
            }
        }
    }

    async fn read_chunked(&mut self, limit: u64) -> Result<Bytes, Error> {
        let mut body = Vec::new();
        loop {
            let size = loop {
                match chunk_size(self.pending())? {
                    Some((size, line)) => {
                        self.consume(line);
                        break size;
                    }
                    None if self.pending().len() >= MAX_CHUNK_LINE + 2 => {
                        return Err(Error::invalid("a chunk-size line is too long"));
                    }
                    None => {
                        if self.fill().await? == 0 {
                            return Err(Error::ended_early());
                        }
                    }
                }
            };
            if size == 0 {
                self.skip_trailers().await?;
                return Ok(body.into());
            }
            // Compared without an addition that could wrap: `size` is anything a server says.
            if size > limit.saturating_sub(body.len() as u64) {
                return Err(Error::too_large(None));
            }
            let size = usize::try_from(size).map_err(|_| Error::too_large(None))?;
            let with_crlf = size.checked_add(2).ok_or_else(|| Error::too_large(None))?;
            while self.pending().len() < with_crlf {
                if self.fill().await? == 0 {
                    return Err(Error::ended_early());
                }
            }
            let chunk = &self.pending()[..with_crlf];
            if &chunk[size..] != b"\r\n" {
                return Err(Error::invalid("a chunk does not end with CRLF"));
            }
            body.extend_from_slice(&chunk[..size]);
            self.consume(with_crlf);
        }
    }

    /// Skips the trailer fields after the last chunk, up to the empty line.
    async fn skip_trailers(&mut self) -> Result<(), Error> {
        let mut skipped = 0;
        loop {
            match self.pending().windows(2).position(|w| w == b"\r\n") {
                Some(0) => {
                    self.consume(2);
                    return Ok(());
                }
                Some(end) => {
                    skipped += end + 2;
                    self.consume(end + 2);
                }
                None => {
                    if skipped + self.pending().len() > MAX_TRAILER_BYTES {
                        return Err(Error::invalid("the answer's trailers are too long"));
                    }
                    if self.fill().await? == 0 {
                        return Err(Error::ended_early());
                    }
                }
            }
            if skipped > MAX_TRAILER_BYTES {
                return Err(Error::invalid("the answer's trailers are too long"));
            }
        }
    }

    /// The first `len` pending bytes, as the body.
    fn take(&mut self, len: usize) -> Bytes {
        let body = if self.start == 0 && len == self.buf.len() && len > BUFFER {
            // A large body that is all the buffer holds: handed over without a copy.
            Bytes::from(std::mem::take(&mut self.buf))
        } else {
            Bytes::copy_from_slice(&self.pending()[..len])
        };
        self.consume(len);
        body
    }
}

/// How the body of an answer ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked,
    Close,
}

/// What the rest of an exchange needs of an answer's head.
#[derive(Debug)]
struct Head {
    /// Its length in the buffer.
    len: usize,
    status: http::StatusCode,
    content_type: Option<HeaderValue>,
    framing: Framing,
    keep_alive: bool,
}

/// Parses an answer's head at the start of `buf`; `None` while it is incomplete.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, Error> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(Error::invalid(format!("the answer is not HTTP/1.1 ({e})"))),
    };
    let status = response
        .code
        .and_then(|c| http::StatusCode::from_u16(c).ok())
        .ok_or_else(|| Error::invalid("the answer's status is not valid"))?;
    // HTTP/1.1 keeps the connection unless told otherwise; HTTP/1.0 is not reused.
    let mut keep_alive = response.version == Some(1);
    let mut content_type = None;
    let mut length: Option<u64> = None;
    let mut chunked = None;
    for h in response.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            // A list of one value repeated is accepted, as RFC 9112 §6.3 allows.
            for value in h.value.split(|&b| b == b',') {
                let n = std::str::from_utf8(value.trim_ascii())
                    .ok()
                    .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or_else(|| Error::invalid("the answer's Content-Length is not a number"))?;
                if length.is_some_and(|l| l != n) {
                    return Err(Error::invalid(
                        "the answer has two different Content-Lengths",
                    ));
                }
                length = Some(n);
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // Chunked only when it is the last coding applied (RFC 9112 §6.3).
            let last = h.value.rsplit(|&b| b == b',').next().unwrap_or_default();
            chunked = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',') {
                if token.trim_ascii().eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                }
            }
        } else if h.name.eq_ignore_ascii_case("content-type") {
            content_type = HeaderValue::from_bytes(h.value).ok();
        }
    }
    let framing = match (chunked, length) {
        (Some(true), None) => Framing::Chunked,
        // Both framings: a request smuggling pattern; read it the standard's way, then close.
        (Some(true), Some(_)) => {
            keep_alive = false;
            Framing::Chunked
        }
        (Some(false), _) | (None, None) => Framing::Close,
        (None, Some(n)) => Framing::Length(n),
    };
    Ok(Some(Head {
        len,
        status,
        content_type,
        framing,
        keep_alive,
    }))
}

/// A chunk-size line at the start of `buf`: the size and the line's length with its CRLF;
/// `None` while the line is incomplete.
fn chunk_size(buf: &[u8]) -> Result<Option<(u64, usize)>, Error> {
    // Only a line's worth is searched: the chunk's data may follow in the same buffer.
    let line = &buf[..buf.len().min(MAX_CHUNK_LINE + 2)];
    let Some(end) = line.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let line = &buf[..end];
    let digits = line
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    if digits.is_empty() || digits.len() > 16 {
        return Err(Error::invalid("a chunk size is not a hex number"));
    }
    let mut size: u64 = 0;
    for &d in digits {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            b'A'..=b'F' => d - b'A' + 10,
            _ => return Err(Error::invalid("a chunk size is not a hex number")),
        };
        size = size * 16 + u64::from(v);
    }
    Ok(Some((size, end + 2)))
}

/// The transport's answer reader over arbitrary bytes, for the fuzz target: never panics, and
/// keeps every limit.
#[doc(hidden)]
pub fn __fuzz_answer(data: &[u8], head_request: bool) -> Option<(u16, usize)> {
    let runtime = tokio::runtime::Builder::new_current_thread().build().ok()?;
    runtime.block_on(async {
        let mut conn = Conn::new(Fuzzed(data));
        let method = if head_request {
            Method::HEAD
        } else {
            Method::GET
        };
        let limit = 64 * 1024;
        let answer = conn.read_answer(&method, limit).await.ok()?;
        assert!(answer.body.len() as u64 <= limit);
        Some((answer.status.as_u16(), answer.body.len()))
    })
}

/// Bytes as a connection: reads them, accepts writes.
#[derive(Debug)]
struct Fuzzed<'a>(&'a [u8]);

impl AsyncRead for Fuzzed<'_> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        // At most 7 bytes per read: every split of the answer across reads gets exercised.
        let n = self.0.len().min(buf.remaining()).min(7);
        let (now, rest) = self.0.split_at(n);
        buf.put_slice(now);
        self.0 = rest;
        let _ = cx;
        std::task::Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Fuzzed<'_> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(answer: &[u8], method: Method) -> Result<Answer, Error> {
        Conn::new(Fuzzed(answer)).read_answer(&method, 1024).await
    }

    fn ok(answer: &[u8]) -> Answer {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(read(answer, Method::GET)).unwrap()
    }

    fn err(answer: &[u8]) -> Error {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(read(answer, Method::GET)).unwrap_err()
    }

    #[test]
    fn framings() {
        let a = ok(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1}");
        assert_eq!(
            (a.status.as_u16(), &a.body[..], a.reusable),
            (200, &b"{\"a\":1}"[..], true)
        );
        assert_eq!(a.content_type.unwrap(), "application/json");

        let a = ok(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\n{\"a\r\n4\r\n\":1}\r\n0\r\nX-T: 1\r\n\r\n");
        assert_eq!((&a.body[..], a.reusable), (&b"{\"a\":1}"[..], true));

        let a = ok(b"HTTP/1.1 200 OK\r\n\r\n{\"until\": \"close\"}");
        assert_eq!(
            (&a.body[..], a.reusable),
            (&b"{\"until\": \"close\"}"[..], false)
        );

        let a = ok(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n");
        assert_eq!(
            (a.status.as_u16(), a.body.len(), a.reusable),
            (204, 0, true)
        );

        let a =
            ok(b"HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 0\r\n\r\n");
        assert!(!a.reusable);
        let a = ok(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
        assert!(!a.reusable, "HTTP/1.0 is not reused");
        let a = ok(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\n");
        assert!(!a.reusable, "bytes after the answer");
        let a = ok(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n");
        assert_eq!((&a.body[..], a.reusable), (&b"x"[..], false));

        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let a = rt
            .block_on(read(
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
                Method::HEAD,
            ))
            .unwrap();
        assert_eq!((a.body.len(), a.reusable), (0, true));
    }

    #[test]
    fn faults_and_limits() {
        let e = err(b"SSH-2.0-OpenSSH\r\n\r\n");
        assert_eq!(e.kind, SourceErrorKind::InvalidResponse, "{}", e.message);
        let e = err(b"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n");
        assert_eq!(e.kind, SourceErrorKind::InvalidResponse, "{}", e.message);
        let a = ok(b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nab");
        assert_eq!(&a.body[..], b"ab");
        // A chunk size past any limit, and ones that would wrap the arithmetic.
        for size in ["ffffffffffffffff", "fffffffffffffffe", "7fffffffffffffff"] {
            let answer = format!(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n{size}\r\nAB"
            );
            assert!(err(answer.as_bytes()).too_large.is_some(), "{size}");
        }
        let interim = "HTTP/1.1 103 Early Hints\r\n\r\n".repeat(MAX_INTERIM + 1);
        assert_eq!(
            err(interim.as_bytes()).kind,
            SourceErrorKind::InvalidResponse
        );
        let e = err(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n");
        assert_eq!(e.kind, SourceErrorKind::InvalidResponse, "{}", e.message);
        let long = format!(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;{}\r\nx\r\n0\r\n\r\n",
            "e".repeat(MAX_CHUNK_LINE)
        );
        let e = err(long.as_bytes());
        assert_eq!(e.kind, SourceErrorKind::InvalidResponse, "{}", e.message);
        let e = err(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
        assert_eq!(e.kind, SourceErrorKind::InvalidResponse, "{}", e.message);
        let e = err(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n");
        assert_eq!(e.kind, SourceErrorKind::InvalidResponse, "{}", e.message);
        assert_eq!(
            err(b"HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n").too_large,
            Some(Some(2000))
        );
        let chunk = format!("200\r\n{}\r\n", "x".repeat(512));
        let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        let e = err(format!("{chunked}{chunk}").as_bytes());
        assert_eq!(
            e.kind,
            SourceErrorKind::Unavailable,
            "no last chunk: {}",
            e.message
        );
        assert!(
            err(format!("{chunked}{}", chunk.repeat(3)).as_bytes())
                .too_large
                .is_some()
        );
        let e = err(b"HTTP/1.1 200 OK\r\n\r\n"
            .iter()
            .chain(&[b'x'; 2000])
            .copied()
            .collect::<Vec<_>>()
            .as_slice());
        assert!(e.too_large.is_some(), "read to the close, over the limit");
        let e = err(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
        assert_eq!(
            e.kind,
            SourceErrorKind::Unavailable,
            "ended early: {}",
            e.message
        );
        let e = err(b"");
        assert!(e.unanswered && e.kind == SourceErrorKind::Unavailable);
        let e = err(b"HTTP/1.1 20");
        assert!(!e.unanswered, "part of an answer was read");
        let e = err(b"HTTP/1.1 100 Continue\r\n\r\n");
        assert!(!e.unanswered, "an interim answer was read");
        let head = format!(
            "HTTP/1.1 200 OK\r\n{}\r\n",
            "X-A: b\r\n".repeat(MAX_HEADERS + 1)
        );
        assert_eq!(err(head.as_bytes()).kind, SourceErrorKind::InvalidResponse);
        let head = format!("HTTP/1.1 200 OK\r\nX-A: {}", "b".repeat(MAX_HEAD_BYTES));
        assert_eq!(err(head.as_bytes()).kind, SourceErrorKind::InvalidResponse);
        assert_eq!(
            err(b"HTTP/1.1 101 Switching\r\n\r\n").kind,
            SourceErrorKind::InvalidResponse
        );
    }
}
