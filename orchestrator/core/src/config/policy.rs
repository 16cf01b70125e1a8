//! Readers of the policy keys: `cache:` (config.yaml, data sources, HTTP services),
//! `circuit_breaker:` and `max_concurrent:` (HTTP services), `max_in_flight:`, `rate_limit:`
//! and `on_degraded:` (endpoints).

use std::time::Duration;

use serde_json::Value;

use super::keys;
use super::read::{Object, ValueReader, parse_duration};
use crate::diagnostic::{Code, Diagnostic, KeyPath};
use crate::plan::{
    CachePolicy, CacheSettings, CacheStore, CircuitBreaker, InFlightLimit, OnDegraded, RateLimit,
    RateLimitKey,
};

/// `cache:` in config.yaml: `{store, url, default_ttl, max_entries, max_bytes, timeout}`.
pub(crate) fn cache_settings(cx: &mut ValueReader, path: &KeyPath, v: &Value) -> CacheSettings {
    let mut settings = CacheSettings::default();
    let Some(o) = cx.object(path, v, &keys::CACHE_SETTINGS) else {
        return settings;
    };
    let store = o.opt(cx, "store", |cx, p, v| {
        cx.choice(p, v, CacheStore::NAMES, |s| {
            CacheStore::NAMES.contains(&s).then(|| s.to_owned())
        })
    });
    let url = o.opt_string(cx, "url");
    match (store.as_deref(), url) {
        (Some("redis"), Some(url)) => {
            if url.starts_with("redis://")
                || url.starts_with("rediss://")
                || url.starts_with("redis+unix://")
            {
                settings.store = CacheStore::Redis { url: url.into() };
            } else {
                cx.report(
                    Diagnostic::new(
                        Code::InvalidValue,
                        o.at("url"),
                        "the Redis URL does not start with `redis://` or `rediss://`",
                    )
                    .with_help(
                        "write `url: redis://127.0.0.1:6379/0` (a password goes in `${env:…}`)",
                    ),
                );
            }
        }
        (Some("redis"), None) => cx.report(
            Diagnostic::new(
                Code::MissingKey,
                path.clone(),
                "`store: redis` needs the server's `url`",
            )
            .with_help("add `url: redis://127.0.0.1:6379/0`"),
        ),
        (_, Some(_)) => cx.report(
            Diagnostic::new(
                Code::InvalidValue,
                o.at("url"),
                "`url` is for `store: redis`",
            )
            .at_key()
            .with_help("add `store: redis`, or remove `url:`"),
        ),
        _ => {}
    }
    if let Some(ttl) = o.opt_duration(cx, "default_ttl") {
        settings.default_ttl = ttl;
    }
    if let Some(t) = o.opt_duration(cx, "timeout") {
        settings.timeout = t;
    }
    settings.max_entries = o.opt(cx, "max_entries", positive);
    settings.max_bytes = o.opt(cx, "max_bytes", positive);
    if settings.max_entries.is_some() && settings.max_bytes.is_some() {
        cx.report(
            Diagnostic::new(
                Code::InvalidValue,
                o.at("max_bytes"),
                "the cache is bounded by `max_entries` or by `max_bytes`, not both",
            )
            .at_key()
            .with_help("keep one of the two"),
        );
    }
    settings
}

/// A whole number above zero.
pub(crate) fn positive<T: TryFrom<u64> + PartialEq + Default>(
    cx: &mut ValueReader,
    path: &KeyPath,
    v: &Value,
) -> Option<T> {
    let n: T = cx.uint(path, v)?;
    if n == T::default() {
        cx.report(
            Diagnostic::new(Code::InvalidValue, path.clone(), "`0` is not allowed here")
                .with_help("use a whole number above zero, or remove the key"),
        );
        return None;
    }
    Some(n)
}

/// `cache: 30s` or `cache: {ttl, stale_if_error, error_ttl}` on a data source or a service.
pub(crate) fn cache_policy(cx: &mut ValueReader, path: &KeyPath, v: &Value) -> Option<CachePolicy> {
    if v.is_number() || v.is_string() {
        return cx.duration(path, v).map(|ttl| CachePolicy {
            ttl: Some(ttl),
            ..CachePolicy::default()
        });
    }
    if !v.is_object() {
        cx.wrong_type(
            path,
            "a ttl (`30s`) or `{ttl, stale_if_error, error_ttl}`",
            v,
        );
        return None;
    }
    let o = cx.object(path, v, &keys::CACHE_POLICY)?;
    Some(CachePolicy {
        ttl: o.opt_duration(cx, "ttl"),
        stale_if_error: o.opt_duration(cx, "stale_if_error"),
        error_ttl: o.opt_duration(cx, "error_ttl"),
    })
}

/// `circuit_breaker: {failures, open_for, probes}` (each optional).
pub(crate) fn circuit_breaker(
    cx: &mut ValueReader,
    path: &KeyPath,
    v: &Value,
) -> Option<CircuitBreaker> {
    let o = cx.object(path, v, &keys::CIRCUIT_BREAKER)?;
    let mut b = CircuitBreaker::default();
    if let Some(n) = o.opt(cx, "failures", positive) {
        b.failures = n;
    }
    if let Some(d) = o.opt_duration(cx, "open_for") {
        b.open_for = d;
    }
    if let Some(n) = o.opt(cx, "probes", positive) {
        b.probes = n;
    }
    Some(b)
}

/// `max_concurrent: 8` on a service.
pub(crate) fn max_concurrent(o: &Object<'_>, cx: &mut ValueReader) -> Option<usize> {
    o.opt(cx, "max_concurrent", positive)
}

/// `max_in_flight: 4` or `max_in_flight: {limit: 4, queue: 16}` on an endpoint.
pub(crate) fn in_flight(cx: &mut ValueReader, path: &KeyPath, v: &Value) -> Option<InFlightLimit> {
    if v.is_number() {
        return positive(cx, path, v).map(|limit| InFlightLimit { limit, queue: 0 });
    }
    if !v.is_object() {
        cx.wrong_type(path, "a number or `{limit, queue}`", v);
        return None;
    }
    let o = cx.object(path, v, &keys::IN_FLIGHT)?;
    Some(InFlightLimit {
        limit: o.req(cx, "limit", "the executions allowed at once", positive)?,
        queue: o.opt(cx, "queue", ValueReader::uint).unwrap_or(0),
    })
}

const RATE_HELP: &str = "write `100/s`, `600/m`, `5/10s` or `{rate: 100/s, burst: 20, key: client | global | header:x-api-key}`";

/// `rate_limit: 100/s` or `rate_limit: {rate, burst, key}` on an endpoint.
pub(crate) fn rate_limit(cx: &mut ValueReader, path: &KeyPath, v: &Value) -> Option<RateLimit> {
    if let Value::String(rate) = v {
        let Some((requests, per)) = parse_rate(rate) else {
            bad_rate(cx, path, rate);
            return None;
        };
        return Some(RateLimit {
            requests,
            per,
            burst: requests,
            key: RateLimitKey::default(),
        });
    }
    if !v.is_object() {
        cx.wrong_type(path, "a rate such as `100/s`, or `{rate, burst, key}`", v);
        return None;
    }
    let o = cx.object(path, v, &keys::RATE_LIMIT)?;
    let burst = o.opt(cx, "burst", positive);
    let key = o.opt(cx, "key", rate_key).unwrap_or_default();
    let rate = o.req(cx, "rate", "a rate such as `100/s`", ValueReader::string)?;
    let Some((requests, per)) = parse_rate(&rate) else {
        bad_rate(cx, &o.at("rate"), &rate);
        return None;
    };
    Some(RateLimit {
        requests,
        per,
        burst: burst.unwrap_or(requests),
        key,
    })
}

fn bad_rate(cx: &mut ValueReader, path: &KeyPath, rate: &str) {
    cx.report(
        Diagnostic::new(
            Code::InvalidValue,
            path.clone(),
            format!("`{rate}` is not a rate"),
        )
        .with_help(RATE_HELP),
    );
}

/// `100/s`, `600/m`, `3600/h`, `5/10s`: requests (above zero) per a positive period.
fn parse_rate(s: &str) -> Option<(u32, Duration)> {
    let (n, per) = s.split_once('/')?;
    let n: u32 = n.trim().parse().ok().filter(|&n| n > 0)?;
    let per = per.trim();
    let per = match per {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        other => parse_duration(other)?,
    };
    (!per.is_zero()).then_some((n, per))
}

fn rate_key(cx: &mut ValueReader, path: &KeyPath, v: &Value) -> Option<RateLimitKey> {
    let s = cx.string(path, v)?;
    match s.as_str() {
        "client" => Some(RateLimitKey::Client),
        "global" => Some(RateLimitKey::Global),
        other => match other.strip_prefix("header:").map(str::trim) {
            Some(name)
                if !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b)) =>
            {
                Some(RateLimitKey::Header(name.to_ascii_lowercase()))
            }
            _ => {
                cx.report(
                    Diagnostic::new(
                        Code::InvalidValue,
                        path.clone(),
                        format!("unknown rate limit key `{s}`"),
                    )
                    .with_help("use `client`, `global` or `header:<name>` (`header:x-api-key`)"),
                );
                None
            }
        },
    }
}

/// `on_degraded: answer | fail`.
pub(crate) fn on_degraded(cx: &mut ValueReader, path: &KeyPath, v: &Value) -> Option<OnDegraded> {
    cx.choice(path, v, &["answer", "fail"], |s| match s {
        "answer" => Some(OnDegraded::Answer),
        "fail" => Some(OnDegraded::Fail),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        assert_eq!(parse_rate("100/s"), Some((100, Duration::from_secs(1))));
        assert_eq!(parse_rate("600 / m"), Some((600, Duration::from_secs(60))));
        assert_eq!(parse_rate("5/10s"), Some((5, Duration::from_secs(10))));
        assert_eq!(parse_rate("1/250ms"), Some((1, Duration::from_millis(250))));
        assert_eq!(parse_rate("0/s"), None);
        assert_eq!(parse_rate("100"), None);
        assert_eq!(parse_rate("100/0s"), None);
        assert_eq!(parse_rate("x/s"), None);
    }
}
