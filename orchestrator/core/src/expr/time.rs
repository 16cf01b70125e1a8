//! The time functions: `parse_time`, `format_time`, `add_time`, `diff_time` (and `now()`,
//! in `eval`). Times are RFC 3339 strings in UTC with milliseconds
//! (`2026-12-01T14:28:52.123Z`), what `now()` and the SQL sources give; anything that
//! cannot be read as a time gives null, like every other function on the wrong type.

use std::fmt::Write as _;

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, TimeDelta, Utc};
use serde_json::Value;

/// A time from a value: RFC 3339 text (any offset), `YYYY-MM-DD HH:MM:SS[.f]` or
/// `YYYY-MM-DDTHH:MM:SS[.f]` (UTC), `YYYY-MM-DD` (midnight UTC), or a number of seconds since
/// the Unix epoch.
pub(crate) fn read(v: &Value) -> Option<DateTime<Utc>> {
    match v {
        Value::String(s) => {
            let s = s.trim();
            if let Ok(t) = DateTime::parse_from_rfc3339(s) {
                return Some(t.to_utc());
            }
            for f in [
                "%Y-%m-%d %H:%M:%S%.f",
                "%Y-%m-%dT%H:%M:%S%.f",
                "%Y-%m-%d %H:%M",
            ] {
                if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
                    return Some(t.and_utc());
                }
            }
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
        }
        Value::Number(n) => {
            let secs = n.as_f64()?;
            if !secs.is_finite() || secs.abs() > 1.0e13 {
                return None;
            }
            let millis = (secs * 1000.0).round() as i64;
            DateTime::from_timestamp_millis(millis)
        }
        _ => None,
    }
}

/// The RFC 3339 spelling of a time: UTC, milliseconds, `Z`.
pub(crate) fn write(t: DateTime<Utc>) -> Value {
    Value::String(t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// A strftime format, or `None` when it has an invalid directive (which would fail when
/// formatting).
fn format_items(format: &str) -> Option<Vec<Item<'_>>> {
    let items: Vec<Item<'_>> = StrftimeItems::new(format).collect();
    (!items.iter().any(|i| matches!(i, Item::Error))).then_some(items)
}

/// `parse_time(text)` / `parse_time(text, format)`.
pub(crate) fn parse(text: &Value, format: Option<&Value>) -> Value {
    let t = match format {
        None => read(text),
        Some(f) => {
            let (Some(s), Some(f)) = (text.as_str(), f.as_str()) else {
                return Value::Null;
            };
            if format_items(f).is_none() {
                return Value::Null;
            }
            DateTime::parse_from_str(s, f)
                .map(|t| t.to_utc())
                .or_else(|_| NaiveDateTime::parse_from_str(s, f).map(|t| t.and_utc()))
                .ok()
                .or_else(|| {
                    NaiveDate::parse_from_str(s, f)
                        .ok()
                        .and_then(|d| d.and_hms_opt(0, 0, 0))
                        .map(|t| t.and_utc())
                })
        }
    };
    t.map_or(Value::Null, write)
}

/// `format_time(time, format)`: strftime directives (`%Y-%m-%d`, `%H:%M`, `%s`, …).
pub(crate) fn format(time: &Value, format: &Value) -> Value {
    let (Some(t), Some(f)) = (read(time), format.as_str()) else {
        return Value::Null;
    };
    let Some(items) = format_items(f) else {
        return Value::Null;
    };
    // (`to_string` would panic on a directive the time cannot fill; `write!` reports it)
    let mut out = String::new();
    match write!(out, "{}", t.format_with_items(items.into_iter())) {
        Ok(()) => Value::String(out),
        Err(_) => Value::Null,
    }
}

/// A duration: a number of seconds, or text like `90s`, `15m`, `2h`, `7d`, `250ms`, `-1d`.
fn duration(v: &Value) -> Option<TimeDelta> {
    let millis = match v {
        Value::Number(n) => n.as_f64()? * 1000.0,
        Value::String(s) => {
            let s = s.trim();
            let (neg, s) = match s.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, s.strip_prefix('+').unwrap_or(s)),
            };
            let split = s
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(s.len());
            let (num, unit) = s.split_at(split);
            let n: f64 = num.parse().ok()?;
            let scale = match unit.trim() {
                "ms" => 1.0,
                "" | "s" => 1000.0,
                "m" => 60_000.0,
                "h" => 3_600_000.0,
                "d" => 86_400_000.0,
                "w" => 604_800_000.0,
                _ => return None,
            };
            if neg { -n * scale } else { n * scale }
        }
        _ => return None,
    };
    (millis.is_finite() && millis.abs() < 1.0e15)
        .then(|| TimeDelta::milliseconds(millis.round() as i64))
}

/// `add_time(time, duration)`.
pub(crate) fn add(time: &Value, by: &Value) -> Value {
    match (read(time), duration(by)) {
        (Some(t), Some(d)) => t.checked_add_signed(d).map_or(Value::Null, write),
        _ => Value::Null,
    }
}

/// `diff_time(a, b)` / `diff_time(a, b, unit)`: `a - b` in seconds, or in `ms`, `m`, `h`,
/// `d`.
pub(crate) fn diff(a: &Value, b: &Value, unit: Option<&Value>) -> Value {
    let (Some(a), Some(b)) = (read(a), read(b)) else {
        return Value::Null;
    };
    let per = match unit.map(Value::as_str) {
        None | Some(Some("s")) => 1000.0,
        Some(Some("ms")) => 1.0,
        Some(Some("m")) => 60_000.0,
        Some(Some("h")) => 3_600_000.0,
        Some(Some("d")) => 86_400_000.0,
        _ => return Value::Null,
    };
    let millis = (a - b).num_milliseconds() as f64;
    serde_json::Number::from_f64(millis / per).map_or(Value::Null, |n| {
        // Whole results stay integers (`diff_time(a, b, 'd')` is `3`, not `3.0`).
        match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Value::from(f as i64),
            _ => Value::Number(n),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn times_read_write_add_and_diff() {
        assert_eq!(
            parse(&json!("2026-12-01 14:28:52"), None),
            json!("2026-12-01T14:28:52.000Z")
        );
        assert_eq!(
            parse(&json!("2026-12-01T16:28:52+02:00"), None),
            json!("2026-12-01T14:28:52.000Z")
        );
        assert_eq!(
            parse(&json!("01/12/2026"), Some(&json!("%d/%m/%Y"))),
            json!("2026-12-01T00:00:00.000Z")
        );
        assert_eq!(parse(&json!("yesterday"), None), Value::Null);
        assert_eq!(parse(&json!(0), None), json!("1970-01-01T00:00:00.000Z"));
        assert_eq!(
            format(&json!("2026-12-01T14:28:52Z"), &json!("%d.%m.%Y %H:%M")),
            json!("01.12.2026 14:28")
        );
        assert_eq!(
            format(&json!("2026-12-01"), &json!("%Q")),
            Value::Null,
            "an invalid directive"
        );
        assert_eq!(
            add(&json!("2026-12-31"), &json!("1d")),
            json!("2027-01-01T00:00:00.000Z")
        );
        assert_eq!(
            add(&json!("2026-12-31T00:00:00Z"), &json!(-90)),
            json!("2026-12-30T23:58:30.000Z")
        );
        assert_eq!(add(&json!("2026-12-31"), &json!("soon")), Value::Null);
        assert_eq!(
            diff(
                &json!("2026-12-04"),
                &json!("2026-12-01"),
                Some(&json!("d"))
            ),
            json!(3)
        );
        assert_eq!(
            diff(
                &json!("2026-12-01T00:00:01.500Z"),
                &json!("2026-12-01"),
                None
            ),
            json!(1.5)
        );
        assert_eq!(diff(&json!("2026-12-01"), &json!(null), None), Value::Null);
        assert_eq!(add(&json!(1.0e300), &json!("1d")), Value::Null);
    }
}
