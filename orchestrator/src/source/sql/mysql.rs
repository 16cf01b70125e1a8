//! MySQL and MariaDB: values decoded by the column's type; the statement timeout is set per
//! session with the server's own variable (`max_statement_time` on MariaDB,
//! `max_execution_time` on MySQL).

use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlRow};
use sqlx::types::Json;
use sqlx::types::chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use sqlx::{
    AssertSqlSafe, Column as _, Decode, Executor as _, MySql, Row as _, Type, TypeInfo as _,
    ValueRef as _,
};

use super::value::{self, Bind};
use super::{PoolSettings, Row, RunError};

pub(super) fn connect_lazy(url: &str, settings: &PoolSettings) -> Result<MySqlPool, sqlx::Error> {
    let options = MySqlConnectOptions::from_str(url)?;
    let pool = settings.options();
    let pool = match settings.statement_timeout {
        Some(t) => pool.after_connect(move |conn: &mut sqlx::MySqlConnection, _| {
            Box::pin(async move {
                let version: String = sqlx::query_scalar("SELECT VERSION()")
                    .fetch_one(&mut *conn)
                    .await?;
                conn.execute(AssertSqlSafe(statement_timeout_sql(&version, t)))
                    .await?;
                Ok(())
            })
        }),
        None => pool,
    };
    Ok(pool.connect_lazy_with(options))
}

fn statement_timeout_sql(version: &str, t: Duration) -> String {
    if version.contains("MariaDB") {
        format!("SET SESSION max_statement_time = {}", t.as_secs_f64())
    } else {
        format!("SET SESSION max_execution_time = {}", t.as_millis().max(1))
    }
}

pub(super) async fn run<'a>(
    pool: &MySqlPool,
    sql: &Arc<str>,
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
            Bind::Json(v) => query.bind(Json(v)),
        };
    }
    if pool.size() == 0 {
        let o = pool.connect_options();
        super::refused(o.get_socket(), o.get_host(), o.get_port()).await?;
    }
    super::fetch(pool, query, one, max_rows)
        .await?
        .iter()
        .map(decode)
        .collect()
}

/// Decodes column `i` as `T` without sqlx's type check (the caller matched the type name).
fn get<'r, T>(row: &'r MySqlRow, i: usize, f: impl Fn(T) -> Value) -> Result<Value, sqlx::Error>
where
    T: Decode<'r, MySql>,
{
    Ok(row
        .try_get_unchecked::<Option<T>, _>(i)?
        .map_or(Value::Null, f))
}

fn decode(row: &MySqlRow) -> Result<Row, RunError> {
    let mut out = Row::with_capacity(row.columns().len());
    for (i, col) in row.columns().iter().enumerate() {
        if row.try_get_raw(i)?.is_null() {
            out.insert(col.name().to_owned(), Value::Null);
            continue;
        }
        let ty = col.type_info();
        let v = match ty.name() {
            "NULL" => Value::Null,
            "BOOLEAN" => get::<i64>(row, i, |n| Value::Bool(n != 0))?,
            "TINYINT" | "SMALLINT" | "MEDIUMINT" | "INT" | "BIGINT" | "YEAR" => {
                get::<i64>(row, i, Value::from)?
            }
            "TINYINT UNSIGNED" | "SMALLINT UNSIGNED" | "MEDIUMINT UNSIGNED" | "INT UNSIGNED"
            | "BIGINT UNSIGNED" => get::<u64>(row, i, Value::from)?,
            "BIT" => get::<Vec<u8>>(row, i, |b| {
                Value::from(b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
            })?,
            "FLOAT" => get::<f32>(row, i, |f| value::float(f.into()))?,
            "DOUBLE" => get::<f64>(row, i, value::float)?,
            // DECIMAL travels as text in both protocols: every digit is kept.
            "DECIMAL" => get::<&str>(row, i, |s| Value::String(s.to_owned()))?,
            "DATE" => get::<NaiveDate>(row, i, value::date)?,
            "TIME" => get::<NaiveTime>(row, i, value::time)?,
            "DATETIME" => get::<NaiveDateTime>(row, i, value::timestamp_naive)?,
            "TIMESTAMP" => get::<DateTime<Utc>>(row, i, value::timestamp_utc)?,
            "JSON" => get::<Value>(row, i, |v| v)?,
            "ENUM" | "SET" => get::<String>(row, i, Value::String)?,
            "CHAR" | "VARCHAR" | "TINYTEXT" | "TEXT" | "MEDIUMTEXT" | "LONGTEXT" | "BINARY"
            | "VARBINARY" | "TINYBLOB" | "BLOB" | "MEDIUMBLOB" | "LONGBLOB" => {
                // Text unless the column's collation is `binary` (a `_bin` collation is text).
                if <String as Type<MySql>>::compatible(ty) {
                    get::<String>(row, i, Value::String)?
                } else {
                    get::<Vec<u8>>(row, i, |b| value::bytes(&b))?
                }
            }
            name => {
                return Err(RunError::Column {
                    column: col.name().to_owned(),
                    type_name: name.to_owned(),
                    message: "no JSON form for this type; convert it in the query, e.g. `ST_AsText(…)` or `CAST(… AS CHAR)`".into(),
                });
            }
        };
        out.insert(col.name().to_owned(), v);
    }
    Ok(out)
}

/// The result columns of `sql` (in this driver's placeholder style), as the server describes
/// the statement without running it: names, types and nullability.
pub(super) async fn describe(
    pool: &MySqlPool,
    sql: &str,
) -> Result<Vec<crate::snapshot::Column>, sqlx::Error> {
    use sqlx::SqlSafeStr as _;
    if pool.size() == 0 {
        // A refused port fails at once, not after the acquire timeout.
        let o = pool.connect_options();
        if let Err(super::RunError::Sqlx(e)) =
            super::refused(o.get_socket(), o.get_host(), o.get_port()).await
        {
            return Err(e);
        }
    }
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
        "BOOLEAN" => ValueType::Boolean,
        "TINYINT" | "SMALLINT" | "MEDIUMINT" | "INT" | "BIGINT" | "YEAR" | "TINYINT UNSIGNED"
        | "SMALLINT UNSIGNED" | "MEDIUMINT UNSIGNED" | "INT UNSIGNED" | "BIGINT UNSIGNED" => {
            ValueType::Integer
        }
        "FLOAT" | "DOUBLE" => ValueType::Number,
        // DECIMAL keeps its scale as a decimal string.
        "DECIMAL" | "DATE" | "TIME" | "DATETIME" | "TIMESTAMP" | "ENUM" | "SET" | "CHAR"
        | "VARCHAR" | "TINYTEXT" | "TEXT" | "MEDIUMTEXT" | "LONGTEXT" | "BINARY" | "VARBINARY"
        | "TINYBLOB" | "BLOB" | "MEDIUMBLOB" | "LONGBLOB" => ValueType::String,
        "JSON" => ValueType::Json,
        _ => ValueType::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_timeout_per_server() {
        let t = Duration::from_millis(1500);
        assert_eq!(
            statement_timeout_sql("10.11.19-MariaDB-0+deb12u1", t),
            "SET SESSION max_statement_time = 1.5"
        );
        assert_eq!(
            statement_timeout_sql("8.4.0", t),
            "SET SESSION max_execution_time = 1500"
        );
    }
}
