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
//!             .service(web::scope("/api").configure(configure(api.clone())))
//!     })
//!     .bind(("127.0.0.1", 8000))?
//!     .run(),
//! )
//! # }
//! ```

use std::borrow::Cow;

use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use futures::StreamExt as _;

use super::{Api, Body, WebRequest};

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");

/// Registers the plans as the default service of the scope (or app) being configured:
/// `web::scope("/api").configure(configure(api))`.
pub fn configure(api: Api) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(web::Data::new(api))
            .default_service(web::to(handle));
    }
}

async fn handle(api: web::Data<Api>, req: HttpRequest, mut payload: web::Payload) -> HttpResponse {
    let limit = api.max_body_bytes();
    let mut bytes = Vec::new();
    let mut too_large = false;
    while let Some(chunk) = payload.next().await {
        match chunk {
            Ok(chunk) if (bytes.len() + chunk.len()) as u64 <= limit => {
                bytes.extend_from_slice(&chunk)
            }
            _ => {
                too_large = true;
                break;
            }
        }
    }
    let body = match (too_large, bytes.is_empty()) {
        (true, _) => Body::TooLarge,
        (false, true) => Body::Empty,
        (false, false) => Body::Bytes(bytes),
    };
    let path = match req.match_info().unprocessed() {
        "" => "/".to_owned(),
        p if p.starts_with('/') => p.to_owned(),
        p => format!("/{p}"),
    };
    let request =
        WebRequest {
            method: req.method().as_str().to_owned(),
            path,
            query: Some(req.query_string().to_owned()).filter(|q| !q.is_empty()),
            headers: {
                let mut headers = Vec::with_capacity(req.headers().len());
                headers.extend(req.headers().iter().filter_map(|(k, v)| {
                    Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned()))
                }));
                headers
            },
            body,
        };
    let out = api.handle(request).await;
    let mut response = HttpResponse::build(
        StatusCode::from_u16(out.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
    );
    for (k, v) in out.headers {
        // As in the axum adapter: known names are constants, and values are not copied.
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
            response.append_header((k, v));
        }
    }
    response.body(out.body)
}
