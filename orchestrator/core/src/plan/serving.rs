//! Settings of `config.yaml` about how the plans are served (mount prefix, CORS, compression,
//! authentication, logging): the library reads them, the web integrations and the demo server
//! apply them, and a host that mounts the plans itself can apply them with the same layers.

use super::Secret;

/// About the application (`app:` in `config.yaml`, the original service's section).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AppSettings {
    /// A name for logs and the OpenAPI title (`name`).
    pub name: Option<String>,
    /// `development`, `production`… (`environment`); informational.
    pub environment: Option<String>,
    /// `debug: true` turns on the debug trace view (`x-debug-trace: 1`) like
    /// `tracking.debug_view`.
    pub debug: bool,
    /// Where the bundled server mounts the plans (`api_base_path`, default `/api` as in the
    /// original service).
    pub base_path: String,
    /// The prefix of the original service's generic routes below `base_path` (`api.prefix`,
    /// default `/orchestrator`): `{prefix}/{domain}/{operation}[/{entity_id}]`,
    /// `{prefix}/domains`, `{prefix}/model_scoring…`. `None` (`api: {prefix: null}`) serves only
    /// the endpoints' own routes.
    pub original_routes: Option<String>,
}

impl Default for AppSettings {
    fn default() -> Self {
        Self {
            name: None,
            environment: None,
            debug: false,
            base_path: "/api".into(),
            original_routes: Some("/orchestrator".into()),
        }
    }
}

/// Log output of the bundled server (`logging:`, and `server.log_level`). A library does not
/// install a logger; hosts keep their own and may read these.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct LoggingSettings {
    /// A filter such as `info` or `api_orchestrator=debug,info` (`level`; Python's upper-case
    /// names are accepted); `RUST_LOG` wins when set.
    pub level: Option<String>,
    /// `text` (default) or `json` lines (`format`).
    pub format: LogFormat,
    /// Also write to this file (`log_to_file: true` with `log_file_path`).
    pub file: Option<LogFile>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// The names accepted in config.
    pub const NAMES: &'static [&'static str] = &["text", "json"];

    /// Parses a config name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "text" => Some(Self::Text),
            "json" => Some(Self::Json),
            _ => None,
        }
    }
}

/// A log file and how it rotates.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogFile {
    /// The file (`log_file_path`), relative to the working directory.
    pub path: String,
    /// When a new file starts (`log_file_rotation`).
    pub rotation: LogRotation,
}

/// When a log file is rotated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogRotation {
    /// One file forever.
    #[default]
    Never,
    /// A new file every minute.
    Minutely,
    /// A new file every hour.
    Hourly,
    /// A new file every day.
    Daily,
}

impl LogRotation {
    /// The names accepted in config.
    pub const NAMES: &'static [&'static str] = &["never", "minutely", "hourly", "daily"];

    /// Parses a config name (case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "never" => Some(Self::Never),
            "minutely" => Some(Self::Minutely),
            "hourly" => Some(Self::Hourly),
            "daily" => Some(Self::Daily),
            _ => None,
        }
    }
}

/// Cross-origin requests (`cors:` with `enabled: true`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CorsSettings {
    /// Origins allowed to call (`allow_origins`); `*` allows any.
    pub allow_origins: Vec<String>,
    /// Methods allowed (`allow_methods`); `*` allows any.
    pub allow_methods: Vec<String>,
    /// Request headers allowed (`allow_headers`); `*` allows any.
    pub allow_headers: Vec<String>,
    /// Whether credentials (cookies, `Authorization`) may be sent (`allow_credentials`,
    /// default false). Not together with a `*` origin.
    pub allow_credentials: bool,
}

impl Default for CorsSettings {
    fn default() -> Self {
        Self {
            allow_origins: vec!["*".into()],
            allow_methods: vec!["*".into()],
            allow_headers: vec!["*".into()],
            allow_credentials: false,
        }
    }
}

/// Bearer-token authentication of the orchestrated routes (`auth:` with `enabled: true`): an
/// HS256 JWT signed with `jwt_secret`, its `exp` enforced. Verified claims are readable as
/// `$request.auth.<claim>`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuthSettings {
    /// The HMAC secret (`jwt_secret`).
    pub jwt_secret: Secret,
}

impl AuthSettings {
    /// Settings checking tokens signed with `secret`.
    pub fn hs256(secret: impl Into<String>) -> Self {
        Self {
            jwt_secret: Secret::new(secret),
        }
    }
}

/// A domain's name and description (the domain file's `domain_name` / `description`), which
/// name and describe the domain's tag in OpenAPI.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct DomainInfo {
    /// The domain (the file stem).
    pub name: String,
    /// A display name (`domain_name`).
    pub title: Option<String>,
    /// What the domain is about (`description`).
    pub description: Option<String>,
}

/// Telemetry of the bundled server and the library's instrumentation (`telemetry:` in
/// `config.yaml`). The standard `OTEL_*` environment variables override the values here
/// (`OTEL_SERVICE_NAME`, `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
/// `OTEL_TRACES_SAMPLER_ARG`, `OTEL_SDK_DISABLED`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TelemetrySettings {
    /// The `service.name` of exported spans (`service_name`; default the app's name, else
    /// `api-orchestrator`).
    pub service_name: Option<String>,
    /// The OTLP/HTTP collector traces are exported to (`endpoint`, e.g.
    /// `http://127.0.0.1:4318`; `/v1/traces` is appended unless the path names it). `None`:
    /// no traces are exported unless `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
    pub endpoint: Option<String>,
    /// The share of new traces sampled, 0 to 1 (`sampling_ratio`, default 1). A request
    /// that continues a trace follows its caller's decision.
    pub sampling_ratio: f64,
    /// Record Prometheus metrics and serve them at `/metrics` in the bundled server
    /// (`metrics`, default true; the library records none unless the host enables them).
    pub metrics: bool,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            service_name: None,
            endpoint: None,
            sampling_ratio: 1.0,
            metrics: true,
        }
    }
}
