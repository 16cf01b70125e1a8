//! Readers of the `config.yaml` sections the original service declared (`app`, `logging`,
//! `performance`, `cors`, `auth`, `execution` and `api`), and of `telemetry`.

use std::time::Duration;

use serde_json::Value;

use super::keys;
use super::read::{Object, ValueReader};
use crate::diagnostic::{Code, Diagnostic, KeyPath};
use crate::plan::{
    AuthSettings, CachePolicy, CorsSettings, LogFile, LogFormat, LogRotation, LoggingSettings,
    RetryPolicy, Settings, TelemetrySettings,
};

/// `app: {name, environment, debug, api_base_path}`.
pub(super) fn app(cx: &mut ValueReader, o: &Object<'_>, settings: &mut Settings) {
    let Some(a) = o
        .get("app")
        .and_then(|v| cx.object(&o.at("app"), v, &keys::APP))
    else {
        return;
    };
    settings.app.name = a.opt_string(cx, "name");
    settings.app.environment = a.opt_string(cx, "environment");
    settings.app.debug = a.opt(cx, "debug", ValueReader::boolean).unwrap_or(false);
    if settings.app.debug {
        settings.tracking.debug_view = true;
    }
    if let Some(base) = a.opt(cx, "api_base_path", mount_path) {
        settings.app.base_path = base;
    }
}

/// `api: {prefix, docs_url, redoc_url}`: `prefix` is where the original's generic routes are.
pub(super) fn api(cx: &mut ValueReader, o: &Object<'_>, settings: &mut Settings) {
    let Some(v) = o.map.get("api") else {
        return;
    };
    let Some(a) = cx.object(&o.at("api"), v, &keys::API_SETTINGS) else {
        return;
    };
    match a.map.get("prefix") {
        Some(Value::Null) => settings.app.original_routes = None,
        Some(_) => settings.app.original_routes = a.opt(cx, "prefix", mount_path),
        None => {}
    }
    for key in ["docs_url", "redoc_url"] {
        a.ignored(
            cx,
            key,
            "the interactive docs are served at `<mount>/docs` and the document at `<mount>/openapi.json` (crate feature `openapi`)",
        );
    }
}

/// A mount path: `/api`, `/` or empty for the root; no trailing slash is kept.
fn mount_path(cx: &mut ValueReader, path: &KeyPath, v: &Value) -> Option<String> {
    let s = cx.string(path, v)?;
    let trimmed = s.trim_end_matches('/');
    if !trimmed.is_empty()
        && (!trimmed.starts_with('/')
            || trimmed
                .split('/')
                .skip(1)
                .any(|seg| seg.is_empty() || seg.contains(['{', '}', '?', '#'])))
    {
        cx.report(
            Diagnostic::new(
                Code::InvalidValue,
                path.clone(),
                format!("`{s}` is not a mount path"),
            )
            .with_help("write an absolute path such as `/api` (or `/` for the root)"),
        );
        return None;
    }
    Some(trimmed.to_owned())
}

/// `logging: {level, format, log_to_file, log_file_path, log_file_rotation}`, and the older
/// `server.log_level` when `logging.level` is absent.
pub(super) fn logging(cx: &mut ValueReader, o: &Object<'_>, settings: &mut Settings) {
    let Some(l) = o
        .get("logging")
        .and_then(|v| cx.object(&o.at("logging"), v, &keys::LOGGING))
    else {
        return;
    };
    let mut logging = LoggingSettings {
        level: l.opt(cx, "level", log_level),
        format: l
            .opt(cx, "format", |cx, p, v| {
                cx.choice(p, v, LogFormat::NAMES, LogFormat::parse)
            })
            .unwrap_or_default(),
        file: None,
    };
    if l.opt(cx, "log_to_file", ValueReader::boolean) == Some(true) {
        let path = l.req(
            cx,
            "log_file_path",
            "the log file's path",
            ValueReader::string,
        );
        let rotation = l
            .opt(cx, "log_file_rotation", |cx, p, v| {
                let s = cx.string(p, v)?;
                LogRotation::parse(&s).or_else(|| {
                    cx.report(
                        Diagnostic::warning(
                            Code::InvalidValue,
                            p.clone(),
                            format!("rotation `{s}` is not supported; the file rotates daily"),
                        )
                        .with_help("write `daily`, `hourly`, `minutely` or `never` (size-based rotation is not offered)"),
                    );
                    Some(LogRotation::Daily)
                })
            })
            .unwrap_or_default();
        logging.file = path.map(|path| LogFile { path, rotation });
    }
    settings.logging = logging;
}

/// A level name (Python's `INFO`, `WARNING`, `CRITICAL` included) or an `EnvFilter`
/// directive, lower-cased for the Rust side.
pub(super) fn log_level(cx: &mut ValueReader, path: &KeyPath, v: &Value) -> Option<String> {
    let s = cx.string(path, v)?;
    Some(match s.to_ascii_lowercase().as_str() {
        "warning" => "warn".into(),
        "critical" | "fatal" => "error".into(),
        "notset" => "trace".into(),
        other => other.to_owned(),
    })
}

/// `performance: {cache_enabled, cache_ttl_seconds, response_compression}`.
pub(super) fn performance(cx: &mut ValueReader, o: &Object<'_>, settings: &mut Settings) {
    let Some(p) = o
        .get("performance")
        .and_then(|v| cx.object(&o.at("performance"), v, &keys::PERFORMANCE))
    else {
        return;
    };
    let ttl = p.opt_duration(cx, "cache_ttl_seconds");
    if p.opt(cx, "cache_enabled", ValueReader::boolean) == Some(true) {
        settings.default_cache = Some(CachePolicy {
            ttl: Some(ttl.unwrap_or(Duration::from_secs(300))),
            ..CachePolicy::default()
        });
    }
    settings.compression = p
        .opt(cx, "response_compression", ValueReader::boolean)
        .unwrap_or(false);
}

/// `cors: {enabled, allow_origins, allow_methods, allow_headers, allow_credentials}`.
pub(super) fn cors(cx: &mut ValueReader, o: &Object<'_>, settings: &mut Settings) {
    let Some(c) = o
        .get("cors")
        .and_then(|v| cx.object(&o.at("cors"), v, &keys::CORS))
    else {
        return;
    };
    let defaults = CorsSettings::default();
    let cors = CorsSettings {
        allow_origins: c
            .opt(cx, "allow_origins", ValueReader::strings)
            .unwrap_or(defaults.allow_origins),
        allow_methods: c
            .opt(cx, "allow_methods", ValueReader::strings)
            .unwrap_or(defaults.allow_methods),
        allow_headers: c
            .opt(cx, "allow_headers", ValueReader::strings)
            .unwrap_or(defaults.allow_headers),
        allow_credentials: c
            .opt(cx, "allow_credentials", ValueReader::boolean)
            .unwrap_or(false),
    };
    if cors.allow_credentials && cors.allow_origins.iter().any(|o| o == "*") {
        cx.report(
            Diagnostic::new(
                Code::InvalidValue,
                c.at("allow_credentials"),
                "credentials cannot be allowed for every origin (`*`)",
            )
            .with_help("list the origins that may send credentials in `allow_origins`"),
        );
    }
    if c.opt(cx, "enabled", ValueReader::boolean) == Some(true) {
        settings.cors = Some(cors);
    }
}

/// `auth: {enabled, jwt_secret, token_expiry_minutes, refresh_token_expiry_days}`.
pub(super) fn auth(cx: &mut ValueReader, o: &Object<'_>, settings: &mut Settings) {
    let Some(a) = o
        .get("auth")
        .and_then(|v| cx.object(&o.at("auth"), v, &keys::AUTH_SETTINGS))
    else {
        return;
    };
    // The expiry keys govern issuing tokens, which is the identity provider's job; tokens are
    // checked against their own `exp`. Informational, so no warning.
    if a.opt(cx, "enabled", ValueReader::boolean) != Some(true) {
        return;
    }
    let Some(secret) = a.req(
        cx,
        "jwt_secret",
        "the HMAC secret bearer tokens are signed with",
        ValueReader::string,
    ) else {
        return;
    };
    if secret.len() < 16 {
        cx.report(
            Diagnostic::new(
                Code::InvalidValue,
                a.at("jwt_secret"),
                "`jwt_secret` is shorter than 16 bytes",
            )
            .with_help("use a long random secret, e.g. `${env:JWT_SECRET}` set from `openssl rand -hex 32`"),
        );
        return;
    }
    settings.auth = Some(AuthSettings::hs256(secret));
}

/// `execution: {timeout, retries}`: the defaults of every endpoint and source call.
pub(super) fn execution(cx: &mut ValueReader, o: &Object<'_>, settings: &mut Settings) {
    let Some(e) = o
        .get("execution")
        .and_then(|v| cx.object(&o.at("execution"), v, &keys::EXECUTION))
    else {
        return;
    };
    if let Some(t) = e.opt_duration(cx, "timeout") {
        settings.endpoint_timeout = t;
    }
    if let Some(n) = e.opt(cx, "retries", ValueReader::uint) {
        settings.default_retry = (n > 0).then(|| RetryPolicy::new(n));
    }
}

/// `server: {host, port, max_body_bytes, workers, log_level, use_https}`.
pub(super) fn server(cx: &mut ValueReader, o: &Object<'_>, settings: &mut Settings) {
    let Some(server) = o
        .get("server")
        .and_then(|v| cx.object(&o.at("server"), v, &keys::SERVER))
    else {
        return;
    };
    let s = &mut settings.server;
    if let Some(host) = server.opt_string(cx, "host") {
        s.host = host;
    }
    if let Some(port) = server.opt(cx, "port", ValueReader::uint) {
        s.port = port;
    }
    if let Some(n) = server.opt(cx, "max_body_bytes", ValueReader::uint) {
        s.max_body_bytes = n;
    }
    s.workers = server
        .opt(cx, "workers", ValueReader::uint)
        .filter(|&n: &usize| n > 0);
    if let Some(level) = server.opt(cx, "log_level", log_level)
        && settings.logging.level.is_none()
    {
        settings.logging.level = Some(level);
    }
    if server.opt(cx, "use_https", ValueReader::boolean) == Some(true) {
        cx.report(
            Diagnostic::warning(
                Code::Ignored,
                server.at("use_https"),
                "the bundled server speaks plain HTTP",
            )
            .with_help("terminate TLS in front of it (a load balancer or reverse proxy), or serve the plans from a host application that has TLS"),
        );
    }
}

/// `telemetry: {service_name, endpoint, sampling_ratio, metrics}`.
pub(super) fn telemetry(cx: &mut ValueReader, o: &Object<'_>, settings: &mut Settings) {
    let Some(t) = o
        .get("telemetry")
        .and_then(|v| cx.object(&o.at("telemetry"), v, &keys::TELEMETRY))
    else {
        return;
    };
    let defaults = TelemetrySettings::default();
    settings.telemetry = TelemetrySettings {
        service_name: t.opt_string(cx, "service_name"),
        endpoint: t.opt(cx, "endpoint", |cx, p, v| {
            let s = cx.string(p, v)?;
            if s.starts_with("http://") || s.starts_with("https://") {
                return Some(s);
            }
            cx.report(
                Diagnostic::new(
                    Code::InvalidValue,
                    p.clone(),
                    "the OTLP endpoint is not an http(s) URL",
                )
                .with_help("write the collector's OTLP/HTTP address, such as `http://127.0.0.1:4318`"),
            );
            None
        }),
        sampling_ratio: t
            .opt(cx, "sampling_ratio", |cx, p, v| match v.as_f64() {
                Some(r) if (0.0..=1.0).contains(&r) => Some(r),
                _ => {
                    cx.report(
                        Diagnostic::new(
                            Code::InvalidValue,
                            p.clone(),
                            format!("`{v}` is not a sampling ratio"),
                        )
                        .with_help("write a number from 0 (sample nothing) to 1 (sample every trace), such as `0.01`"),
                    );
                    None
                }
            })
            .unwrap_or(defaults.sampling_ratio),
        metrics: t
            .opt(cx, "metrics", ValueReader::boolean)
            .unwrap_or(defaults.metrics),
    };
}
