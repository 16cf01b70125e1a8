//! SQLite: the embedded default. Values carry their own storage class (integer, real, text,
//! blob); a column's declared type adds what the storage class cannot say (`BOOLEAN`,
//! `DATE`, `DATETIME`/`TIMESTAMP`, `TIME`): text in a common date or time shape is
//! normalized to the spelling the other drivers use, anything else is returned as stored.

use std::str::FromStr as _;

use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqliteRow};
use sqlx::types::chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime};
use sqlx::{AssertSqlSafe, Column as _, Row as _, TypeInfo as _, ValueRef as _};

use super::value::{self, Bind};
use super::{PoolSettings, Row, RunError};

pub(super) fn connect_lazy(url: &str, settings: &PoolSettings) -> Result<SqlitePool, sqlx::Error> {
    // `sqlite::memory:` becomes a uniquely named shared-cache database, so every connection
    // of the pool sees the same data; it lives as long as the pool keeps a connection.
    let options = SqliteConnectOptions::from_str(url)?;
    // An in-process database has no peer that can hang up: pinging before every query would
    // only add a round trip to the connection's worker thread.
    Ok(settings
        .options()
        .test_before_acquire(false)
        .connect_lazy_with(options))
}

pub(super) async fn run<'a>(
    pool: &SqlitePool,
    sql: &std::sync::Arc<str>,
    binds: impl Iterator<Item = &'a Bind>,
    one: bool,
    max_rows: usize,
) -> Result<Vec<Row>, RunError> {
    let mut query = sqlx::query(AssertSqlSafe(sql.clone()));
    for b in binds {
        query = match b {
            Bind::Null(_) => query.bind(None::<String>),
            Bind::Bool(v) => query.bind(*v),
            Bind::Int(v) => query.bind(*v),
            Bind::Float(v) => query.bind(*v),
            Bind::Text(v) => query.bind(v.as_str()),
            Bind::Json(v) => query.bind(v.to_string()),
        };
    }
    super::fetch(pool, query, one, max_rows)
        .await?
        .iter()
        .map(decode)
        .collect()
}

fn decode(row: &SqliteRow) -> Result<Row, RunError> {
    let mut out = Row::with_capacity(row.columns().len());
    for (i, col) in row.columns().iter().enumerate() {
        let raw = row.try_get_raw(i)?;
        let v = if raw.is_null() {
            Value::Null
        } else {
            let declared = col.type_info().name();
            let storage = raw.type_info().name().to_owned();
            match storage.as_str() {
                "INTEGER" | "NUMERIC" => {
                    let n: i64 = row.try_get_unchecked(i)?;
                    match declared {
                        "BOOLEAN" => Value::Bool(n != 0),
                        _ => Value::from(n),
                    }
                }
                "REAL" => value::float(row.try_get_unchecked(i)?),
                "BLOB" => value::bytes(&row.try_get_unchecked::<Vec<u8>, _>(i)?),
                _ => {
                    let s: String = row.try_get_unchecked(i)?;
                    match declared {
                        "DATETIME" => normalize_timestamp(s),
                        "DATE" => NaiveDate::parse_from_str(&s, "%Y-%m-%d")
                            .map_or(Value::String(s), value::date),
                        "TIME" => NaiveTime::parse_from_str(&s, "%H:%M:%S%.f")
                            .map_or(Value::String(s), value::time),
                        "BOOLEAN" => match s.as_str() {
                            "true" | "TRUE" => Value::Bool(true),
                            "false" | "FALSE" => Value::Bool(false),
                            _ => Value::String(s),
                        },
                        _ => Value::String(s),
                    }
                }
            }
        };
        out.insert(col.name().to_owned(), v);
    }
    Ok(out)
}

/// SQLite keeps timestamps as text in whatever shape they were written; the common ones
/// (`2024-01-15 10:30:00`, ISO 8601 with `T`, RFC 3339 with an offset) are normalized.
fn normalize_timestamp(s: String) -> Value {
    if let Ok(t) = DateTime::parse_from_rfc3339(&s) {
        return value::timestamp_utc(t.to_utc());
    }
    for format in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(&s, format) {
            return value::timestamp_naive(t);
        }
    }
    Value::String(s)
}

/// The result columns of `sql` (in this driver's placeholder style), as the server describes
/// the statement without running it: names, types and nullability.
pub(super) async fn describe(
    pool: &SqlitePool,
    sql: &str,
) -> Result<Vec<crate::snapshot::Column>, sqlx::Error> {
    use sqlx::SqlSafeStr as _;
    let d = sqlx::Executor::describe(pool, AssertSqlSafe(sql.to_owned()).into_sql_str()).await?;
    Ok(d.columns()
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let ty = c.type_info().name();
            crate::snapshot::Column::new(c.name(), ty, json_type(ty), d.nullable(i))
        })
        .collect())
}

/// The JSON type [`decode`] gives a column of this type.
fn json_type(type_name: &str) -> crate::snapshot::ValueType {
    use crate::snapshot::ValueType;
    match type_name {
        "INTEGER" => ValueType::Integer,
        "BOOLEAN" => ValueType::Boolean,
        "REAL" | "NUMERIC" => ValueType::Number,
        "TEXT" | "DATETIME" | "DATE" | "TIME" | "BLOB" => ValueType::String,
        // An expression's type is known only when a row has it.
        _ => ValueType::Unknown,
    }
}
