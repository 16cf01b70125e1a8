//! JSON ⇄ SQL values shared by the drivers: parameter binding by declared type, column
//! conversions declared under `columns:`, and the JSON spelling of dates, times and bytes.

use std::fmt;

use base64::Engine as _;
use serde_json::{Number, Value};
use sqlx::types::chrono;

use crate::plan::SqlType;

/// A parameter value, typed for binding.
#[derive(Clone, PartialEq)]
pub(super) enum Bind {
    /// NULL, typed where the operation declares the parameter's type (PostgreSQL needs it).
    Null(Option<SqlType>),
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    Json(Value),
}

impl fmt::Debug for Bind {
    /// Shown in the query span only when the connection enables `log_parameters`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Null(_) => f.write_str("NULL"),
            Self::Bool(b) => write!(f, "{b}"),
            Self::Int(i) => write!(f, "{i}"),
            Self::Float(x) => write!(f, "{x}"),
            Self::Text(s) => write!(f, "{s:?}"),
            Self::Json(v) => write!(f, "{v}"),
        }
    }
}

impl Bind {
    /// The bound value as JSON (`None` for NULL and JSON documents).
    pub(super) fn as_json(&self) -> Option<Value> {
        match self {
            Self::Bool(b) => Some(Value::Bool(*b)),
            Self::Int(i) => Some(Value::from(*i)),
            Self::Float(f) => Number::from_f64(*f).map(Value::Number),
            Self::Text(s) => Some(Value::String(s.clone())),
            Self::Null(_) | Self::Json(_) => None,
        }
    }

    /// The value to bind for `v` given the declared type. Untyped parameters keep the JSON
    /// value's own type: strings (every path and query param) are bound as text.
    pub(super) fn from_json(v: &Value, ty: Option<SqlType>) -> Result<Self, String> {
        let expected = |what: &str| format!("expected {what}, got {}", short(v));
        Ok(match (ty, v) {
            (ty, Value::Null) => Self::Null(ty),
            (None, Value::Bool(b)) => Self::Bool(*b),
            (None, Value::Number(n)) => match n.as_i64() {
                Some(i) => Self::Int(i),
                None => Self::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            (None, Value::String(s)) => Self::Text(s.clone()),
            (None | Some(SqlType::Json), v) => Self::Json(v.clone()),
            (Some(SqlType::String), Value::String(s)) => Self::Text(s.clone()),
            (Some(SqlType::String), v) => Self::Text(v.to_string()),
            (Some(SqlType::Integer), v) => {
                Self::Int(as_integer(v).ok_or_else(|| expected("an integer"))?)
            }
            (Some(SqlType::Number), v) => {
                Self::Float(as_number(v).ok_or_else(|| expected("a number"))?)
            }
            (Some(SqlType::Boolean), v) => {
                Self::Bool(as_boolean(v).ok_or_else(|| expected("a boolean"))?)
            }
        })
    }
}

/// Converts a decoded column value in place as declared under `columns:`. Null stays null.
pub(super) fn convert_column(v: &mut Value, ty: SqlType) -> Result<(), String> {
    if v.is_null() {
        return Ok(());
    }
    let expected = |what: &str, v: &Value| format!("expected {what}, got {}", short(v));
    let converted = match ty {
        SqlType::String => match &*v {
            Value::String(_) => return Ok(()),
            other => Value::String(other.to_string()),
        },
        SqlType::Integer => as_integer(v)
            .map(Value::from)
            .ok_or_else(|| expected("an integer", v))?,
        SqlType::Number => as_number(v)
            .and_then(Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| expected("a number", v))?,
        SqlType::Boolean => as_boolean(v)
            .map(Value::Bool)
            .ok_or_else(|| expected("a boolean", v))?,
        SqlType::Json => match &*v {
            Value::String(s) => {
                serde_json::from_str(s).map_err(|e| format!("not valid JSON: {e}"))?
            }
            _ => return Ok(()),
        },
    };
    *v = converted;
    Ok(())
}

fn as_integer(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            let f = n.as_f64()?;
            (f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64).then_some(f as i64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

fn as_boolean(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_f64().map(|f| f != 0.0),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "t" | "yes" | "1" => Some(true),
            "false" | "f" | "no" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// A value for an error message, cut short (request data can be long).
fn short(v: &Value) -> String {
    let s = v.to_string();
    match s.char_indices().nth(40) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s,
    }
}

/// A float as JSON; NaN and infinities have no JSON form and become null.
pub(super) fn float(f: f64) -> Value {
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// Bytes as standard base64.
pub(super) fn bytes(b: &[u8]) -> Value {
    Value::String(base64::engine::general_purpose::STANDARD.encode(b))
}

/// `2024-01-15T10:30:00Z` (fractional seconds only when present).
pub(super) fn timestamp_utc(t: chrono::DateTime<chrono::Utc>) -> Value {
    Value::String(t.format("%Y-%m-%dT%H:%M:%S%.fZ").to_string())
}

/// `2024-01-15T10:30:00` (no offset: the database stored none).
pub(super) fn timestamp_naive(t: chrono::NaiveDateTime) -> Value {
    Value::String(t.format("%Y-%m-%dT%H:%M:%S%.f").to_string())
}

/// `2024-01-15`.
pub(super) fn date(d: chrono::NaiveDate) -> Value {
    Value::String(d.format("%Y-%m-%d").to_string())
}

/// `10:30:00` (fractional seconds only when present).
pub(super) fn time(t: chrono::NaiveTime) -> Value {
    Value::String(t.format("%H:%M:%S%.f").to_string())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn binds_by_declared_type() {
        let b = |v: Value, t| Bind::from_json(&v, t);
        assert_eq!(b(json!("42"), Some(SqlType::Integer)), Ok(Bind::Int(42)));
        assert_eq!(b(json!(42), None), Ok(Bind::Int(42)));
        assert_eq!(b(json!("42"), None), Ok(Bind::Text("42".into())));
        assert_eq!(
            b(json!(42), Some(SqlType::String)),
            Ok(Bind::Text("42".into()))
        );
        assert_eq!(b(json!("1.5"), Some(SqlType::Number)), Ok(Bind::Float(1.5)));
        assert_eq!(
            b(json!("true"), Some(SqlType::Boolean)),
            Ok(Bind::Bool(true))
        );
        assert_eq!(
            b(json!(null), Some(SqlType::Integer)),
            Ok(Bind::Null(Some(SqlType::Integer)))
        );
        assert_eq!(b(json!({"a": 1}), None), Ok(Bind::Json(json!({"a": 1}))));
        assert_eq!(
            b(json!("12abc"), Some(SqlType::Integer)),
            Err("expected an integer, got \"12abc\"".into())
        );
        assert!(b(json!(i64::MAX), Some(SqlType::Integer)) == Ok(Bind::Int(i64::MAX)));
    }

    #[test]
    fn converts_declared_columns() {
        let c = |mut v: Value, t| convert_column(&mut v, t).map(|()| v);
        assert_eq!(c(json!(1), SqlType::Boolean), Ok(json!(true)));
        assert_eq!(
            c(json!("{\"a\":[1]}"), SqlType::Json),
            Ok(json!({"a": [1]}))
        );
        assert_eq!(c(json!("12.50"), SqlType::Number), Ok(json!(12.5)));
        assert_eq!(c(json!(null), SqlType::Json), Ok(json!(null)));
        assert!(c(json!("nope"), SqlType::Json).is_err());
    }
}
