//! Mounting plans in an actix-web application.
//!
//! ```no_run
//! # fn run() -> std::io::Result<()> {
//! use actix_web::{App, HttpServer, web};
//! use api_orchestrator::{Orchestrator, web::{Api, actix::configure}};
//!
//! let api = Api::new(&Orchestrator::from_dir("config").expect("a valid config"));
//! actix_web::rt::System::new().block_on(
//!     HttpServer::new(move || {
//!         App::new()
//!             .route("/health", web::get().to(|| async { "ok" }))     // the host's own routes
//!             // executions and reload, behind the host's auth (before `/api`: actix matches
//!             // scopes in order)
//!             .service(web::scope("/ops").configure(configure(api.admin())))
//!             .service(web::scope("/api").configure(configure(api.clone())))
//!     })
//!     .bind(("127.0.0.1", 8000))?
//!     .run(),
//! )
//! # }
//! ```

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use futures::StreamExt as _;

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

use super::{Body, Mount, Problem};

/// Registers `service` ([`Api`](super::Api) or [`Admin`](super::Admin)) as the default
/// service of the scope (or app) being configured: `web::scope("/api").configure(configure(api))`.
pub fn configure<M: Mount>(service: M) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(web::Data::new(service))
            .default_service(web::to(handle::<M>));
    }
}

async fn read(payload: &mut web::Payload, limit: u64) -> Body {
    let mut bytes = Vec::new();
    while let Some(chunk) = payload.next().await {
        match chunk {
            Ok(chunk) if (bytes.len() + chunk.len()) as u64 <= limit => {
                bytes.extend_from_slice(&chunk)
            }
            Ok(_) | Err(actix_web::error::PayloadError::Overflow) => return Body::TooLarge,
            Err(_) => return Body::Incomplete,
        }
    }
    if bytes.is_empty() {
        Body::Empty
    } else {
        Body::Bytes(bytes.into())
    }
}

/// What a path may not hold as text: actix-web hands the path below the scope over decoded
/// (all but `%`, `/` and `+`), so these are encoded again before it becomes a URI.
const PATH: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'\\')
    .add(b'^')
    .add(b'|');

/// The request as the `http` crate spells it (actix-web has types of its own).
fn request(req: &HttpRequest, body: Body) -> Option<http::Request<Body>> {
    let path = utf8_percent_encode(req.match_info().unprocessed(), PATH);
    let slash = if req.match_info().unprocessed().starts_with('/') {
        ""
    } else {
        "/"
    };
    let uri = match req.query_string() {
        "" => format!("{slash}{path}"),
        q => format!("{slash}{path}?{q}"),
    };
    // A HEAD is served as the GET it stands for: actix-web sends the headers (the length of
    // the body included) and drops the body itself.
    let method = match req.method().as_str() {
        "HEAD" => http::Method::GET,
        m => http::Method::from_bytes(m.as_bytes()).ok()?,
    };
    let mut out = http::Request::builder()
        .method(method)
        .uri(uri)
        .body(body)
        .ok()?;
    let headers = out.headers_mut();
    headers.reserve(req.headers().len());
    for (k, v) in req.headers() {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(k.as_str().as_bytes()),
            http::HeaderValue::from_bytes(v.as_bytes()),
        ) {
            headers.append(k, v);
        }
    }
    if let Some(addr) = req.peer_addr() {
        out.extensions_mut().insert(super::ClientAddr(addr));
    }
    // The scope's captures (`web::scope("/tenants/{tenant}/api")`), and what the host attached.
    let captures: Vec<(String, String)> = req
        .match_info()
        .iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    if !captures.is_empty() {
        out.extensions_mut().insert(super::MountCaptures(captures));
    }
    if let Some(context) = actix_web::HttpMessage::extensions(req).get::<super::HostContext>() {
        out.extensions_mut().insert(context.clone());
    }
    Some(out)
}

async fn handle<M: Mount>(
    service: web::Data<M>,
    req: HttpRequest,
    mut payload: web::Payload,
) -> HttpResponse {
    let body = read(&mut payload, service.max_body_bytes()).await;
    let Some(request) = request(&req, body) else {
        let problem = Problem::new(
            400,
            "invalid-request",
            "Bad request",
            "the request's method, path or headers cannot be read",
        );
        return respond(problem.into_response(&super::new_request_id()));
    };
    respond(service.serve(request).await)
}

/// The response in actix-web's types.
fn respond(out: http::Response<Bytes>) -> HttpResponse {
    let (parts, body) = out.into_parts();
    let mut response = HttpResponse::build(
        StatusCode::from_u16(parts.status.as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
    );
    for (k, v) in &parts.headers {
        // actix-web has its own header types: names and values are copied across.
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_str().as_bytes()),
            HeaderValue::from_maybe_shared(Bytes::copy_from_slice(v.as_bytes())),
        ) {
            response.append_header((k, v));
        }
    }
    response.body(body)
}
