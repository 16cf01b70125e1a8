//! The `config.yaml` settings that belong around the plans, as tower layers a host adds to its
//! own router (feature `axum`; any tower stack takes them): `cors:` and
//! `performance.response_compression`. Bearer-token `auth:` is checked by [`Api`](super::Api)
//! itself, so it holds in every host.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use api_orchestrator::{Orchestrator, web::{Api, layers}};
//!
//! let orchestrator = Orchestrator::from_dir("config")?;
//! let settings = orchestrator.plan().settings.clone();
//! let mut app: axum::Router =
//!     axum::Router::new().nest_service(&settings.app.base_path, Api::new(&orchestrator));
//! if let Some(cors) = layers::cors(&settings) {
//!     app = app.layer(cors);
//! }
//! if let Some(compression) = layers::compression(&settings) {
//!     app = app.layer(compression);
//! }
//! # Ok(()) }
//! ```
//!
//! The layers are built from the settings at start: a reload that changes `cors:` or
//! `performance:` applies at the next start. (An actix-web host uses `actix-cors` and
//! `middleware::Compress` with the same settings.)

use http::{HeaderName, HeaderValue, Method};
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowHeaders, AllowMethods, AllowOrigin, CorsLayer};

use crate::plan::Settings;

/// CORS as `cors:` says (preflight answered, `*` meaning any), or `None` when it is off.
/// Origins, methods and headers that are not valid HTTP values are left out.
pub fn cors(settings: &Settings) -> Option<CorsLayer> {
    let c = settings.cors.as_ref()?;
    let any = |list: &[String]| list.iter().any(|s| s == "*");
    let origins = if any(&c.allow_origins) {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            c.allow_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok()),
        )
    };
    let methods = if any(&c.allow_methods) {
        AllowMethods::any()
    } else {
        AllowMethods::list(
            c.allow_methods
                .iter()
                .filter_map(|m| Method::from_bytes(m.to_ascii_uppercase().as_bytes()).ok()),
        )
    };
    let headers = if any(&c.allow_headers) {
        AllowHeaders::any()
    } else {
        AllowHeaders::list(
            c.allow_headers
                .iter()
                .filter_map(|h| HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes()).ok()),
        )
    };
    Some(
        CorsLayer::new()
            .allow_origin(origins)
            .allow_methods(methods)
            .allow_headers(headers)
            .allow_credentials(c.allow_credentials),
    )
}

/// gzip and brotli responses for clients that accept them
/// (`performance.response_compression: true`), or `None`.
pub fn compression(settings: &Settings) -> Option<CompressionLayer> {
    settings.compression.then(CompressionLayer::new)
}
