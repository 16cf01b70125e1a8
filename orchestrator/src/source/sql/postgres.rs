//! PostgreSQL: values decoded by the column's type; `statement_timeout` is set per session.

use std::fmt::Write as _;
use std::str::FromStr as _;
use std::sync::Arc;

use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPool, PgRow, PgTypeKind, PgValueFormat};
use sqlx::types::Json;
use sqlx::types::chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use sqlx::{AssertSqlSafe, Column as _, Decode, Row as _, Type, TypeInfo as _, ValueRef as _};

use super::value::{self, Bind};
use super::{PoolSettings, Row, RunError};
use crate::plan::SqlType;

pub(super) fn connect_lazy(url: &str, settings: &PoolSettings) -> Result<PgPool, sqlx::Error> {
    let mut options = PgConnectOptions::from_str(url)?;
    if let Some(t) = settings.statement_timeout {
        options = options.options([("statement_timeout", format!("{}ms", t.as_millis().max(1)))]);
    }
    // A statement cut off by the source's timeout leaves with its connection (see `fetch`);
    // PostgreSQL 14+ then notices within a second that nobody waits and cancels it. Older
    // servers reject the setting; the connection is fine without it.
    let pool = settings
        .options()
        .after_connect(|conn: &mut sqlx::PgConnection, _| {
            Box::pin(async move {
                let _ = sqlx::Executor::execute(
                    &mut *conn,
                    "SET client_connection_check_interval = 1000",
                )
                .await;
                Ok(())
            })
        });
    Ok(pool.connect_lazy_with(options))
}

pub(super) async fn run<'a>(
    pool: &PgPool,
    sql: &Arc<str>,
    binds: impl Iterator<Item = &'a Bind>,
    one: bool,
    max_rows: usize,
) -> Result<Vec<Row>, RunError> {
    let mut query = sqlx::query(AssertSqlSafe(sql.clone()));
    for b in binds {
        query = match b {
            // PostgreSQL types every parameter: a NULL gets the declared type, text otherwise.
            Bind::Null(None | Some(SqlType::String)) => query.bind(None::<String>),
            Bind::Null(Some(SqlType::Integer)) => query.bind(None::<i64>),
            Bind::Null(Some(SqlType::Number)) => query.bind(None::<f64>),
            Bind::Null(Some(SqlType::Boolean)) => query.bind(None::<bool>),
            Bind::Null(Some(SqlType::Json)) => query.bind(None::<Json<Value>>),
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

fn get<'r, T>(row: &'r PgRow, i: usize) -> Result<Value, sqlx::Error>
where
    T: Decode<'r, sqlx::Postgres> + Type<sqlx::Postgres> + Into<Value>,
{
    Ok(row
        .try_get::<Option<T>, _>(i)?
        .map_or(Value::Null, Into::into))
}

fn get_with<'r, T>(row: &'r PgRow, i: usize, f: impl Fn(T) -> Value) -> Result<Value, sqlx::Error>
where
    T: Decode<'r, sqlx::Postgres> + Type<sqlx::Postgres>,
{
    Ok(row.try_get::<Option<T>, _>(i)?.map_or(Value::Null, f))
}

fn array<'r, T>(row: &'r PgRow, i: usize, f: impl Fn(T) -> Value) -> Result<Value, sqlx::Error>
where
    Vec<Option<T>>: Decode<'r, sqlx::Postgres> + Type<sqlx::Postgres>,
{
    get_with::<Vec<Option<T>>>(row, i, |items| {
        Value::Array(
            items
                .into_iter()
                .map(|x| x.map_or(Value::Null, &f))
                .collect(),
        )
    })
}

fn decode(row: &PgRow) -> Result<Row, RunError> {
    let mut out = Row::with_capacity(row.columns().len());
    for (i, col) in row.columns().iter().enumerate() {
        let ty = col.type_info();
        let v = match ty.name() {
            "BOOL" => get::<bool>(row, i)?,
            "INT2" => get::<i16>(row, i)?,
            "INT4" => get::<i32>(row, i)?,
            "INT8" => get::<i64>(row, i)?,
            "OID" => get_with::<sqlx::postgres::types::Oid>(row, i, |o| o.0.into())?,
            "FLOAT4" => get_with::<f32>(row, i, |f| value::float(f.into()))?,
            "FLOAT8" => get_with::<f64>(row, i, value::float)?,
            "NUMERIC" => numeric(row, i)?,
            "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "CITEXT" => get::<String>(row, i)?,
            "UUID" => get_with::<sqlx::types::Uuid>(row, i, |u| u.to_string().into())?,
            "DATE" => get_with::<NaiveDate>(row, i, value::date)?,
            "TIME" => get_with::<NaiveTime>(row, i, value::time)?,
            "TIMESTAMP" => get_with::<NaiveDateTime>(row, i, value::timestamp_naive)?,
            "TIMESTAMPTZ" => get_with::<DateTime<Utc>>(row, i, value::timestamp_utc)?,
            "JSON" | "JSONB" => get_with::<Value>(row, i, |v| v)?,
            "BYTEA" => get_with::<Vec<u8>>(row, i, |b| value::bytes(&b))?,
            "BOOL[]" => array::<bool>(row, i, Value::Bool)?,
            "INT2[]" => array::<i16>(row, i, Value::from)?,
            "INT4[]" => array::<i32>(row, i, Value::from)?,
            "INT8[]" => array::<i64>(row, i, Value::from)?,
            "FLOAT4[]" => array::<f32>(row, i, |f| value::float(f.into()))?,
            "FLOAT8[]" => array::<f64>(row, i, value::float)?,
            "TEXT[]" | "VARCHAR[]" | "BPCHAR[]" | "NAME[]" => {
                array::<String>(row, i, Value::String)?
            }
            "UUID[]" => array::<sqlx::types::Uuid>(row, i, |u| u.to_string().into())?,
            "JSON[]" | "JSONB[]" => array::<Value>(row, i, |v| v)?,
            name => match ty.kind() {
                // An enum's wire form is its label.
                PgTypeKind::Enum(_) => get_with::<String>(row, i, Value::String).or_else(|_| {
                    Ok::<_, sqlx::Error>(
                        row.try_get_unchecked::<Option<String>, _>(i)?
                            .map_or(Value::Null, Value::String),
                    )
                })?,
                _ => {
                    return Err(RunError::Column {
                        column: col.name().to_owned(),
                        type_name: name.to_owned(),
                        message: format!(
                            "no JSON form for this type; cast it in the query, e.g. `{}::text`",
                            col.name()
                        ),
                    });
                }
            },
        };
        out.insert(col.name().to_owned(), v);
    }
    Ok(out)
}

/// NUMERIC as a decimal string with exactly the column's scale (`12.50` stays `"12.50"`):
/// no digit is lost to a float. `NaN` and the infinities keep their names.
fn numeric(row: &PgRow, i: usize) -> Result<Value, RunError> {
    let raw = row.try_get_raw(i)?;
    if raw.is_null() {
        return Ok(Value::Null);
    }
    let bytes = raw.as_bytes().map_err(sqlx::Error::Decode)?;
    let text = match raw.format() {
        PgValueFormat::Text => std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|e| e.to_string()),
        PgValueFormat::Binary => numeric_text(bytes),
    };
    text.map(Value::String).map_err(|message| RunError::Column {
        column: row.columns()[i].name().to_owned(),
        type_name: "NUMERIC".into(),
        message,
    })
}

/// Renders PostgreSQL's binary NUMERIC: `ndigits`, `weight`, `sign`, `dscale` (each 16 bits),
/// then `ndigits` base-10000 digits, the first of which has weight `weight`.
fn numeric_text(buf: &[u8]) -> Result<String, String> {
    let word = |at: usize| -> Result<u16, String> {
        buf.get(at..at + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| "truncated NUMERIC value".to_owned())
    };
    let ndigits = usize::from(word(0)?);
    let weight = i32::from(word(2)? as i16);
    let sign = word(4)?;
    let dscale = usize::from(word(6)?);
    let digits = (0..ndigits)
        .map(|k| word(8 + 2 * k))
        .collect::<Result<Vec<u16>, _>>()?;
    let digit = |k: i32| -> u16 {
        usize::try_from(k)
            .ok()
            .and_then(|k| digits.get(k).copied())
            .unwrap_or(0)
    };
    let mut s = String::new();
    match sign {
        0x0000 => {}
        0x4000 => s.push('-'),
        0xC000 => return Ok("NaN".into()),
        0xD000 => return Ok("Infinity".into()),
        0xF000 => return Ok("-Infinity".into()),
        other => return Err(format!("unknown NUMERIC sign {other:#x}")),
    }
    if weight < 0 {
        s.push('0');
    } else {
        for k in 0..=weight {
            let _ = if k == 0 {
                write!(s, "{}", digit(k))
            } else {
                write!(s, "{:04}", digit(k))
            };
        }
    }
    if dscale > 0 {
        let mut frac = String::with_capacity(dscale + 4);
        let mut k = weight + 1;
        while frac.len() < dscale {
            let _ = write!(frac, "{:04}", digit(k));
            k += 1;
        }
        s.push('.');
        s.push_str(&frac[..dscale]);
    }
    Ok(s)
}

/// The result columns of `sql` (in this driver's placeholder style), as the server describes
/// the statement without running it: names, types and nullability.
pub(super) async fn describe(
    pool: &PgPool,
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
        "BOOL" => ValueType::Boolean,
        "INT2" | "INT4" | "INT8" | "OID" => ValueType::Integer,
        "FLOAT4" | "FLOAT8" => ValueType::Number,
        // NUMERIC keeps its scale as a decimal string.
        "NUMERIC" | "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "CITEXT" | "UUID" | "DATE"
        | "TIME" | "TIMESTAMP" | "TIMESTAMPTZ" | "BYTEA" => ValueType::String,
        "JSON" | "JSONB" => ValueType::Json,
        t if t.ends_with("[]") => ValueType::Json,
        _ => ValueType::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::numeric_text;

    fn enc(weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
        let mut b = Vec::new();
        for w in [digits.len() as u16, weight as u16, sign, dscale]
            .into_iter()
            .chain(digits.iter().copied())
        {
            b.extend_from_slice(&w.to_be_bytes());
        }
        b
    }

    #[test]
    fn renders_binary_numeric_with_its_scale() {
        assert_eq!(numeric_text(&enc(0, 0, 2, &[12, 5000])).unwrap(), "12.50");
        assert_eq!(
            numeric_text(&enc(1, 0x4000, 0, &[1, 2345])).unwrap(),
            "-12345"
        );
        assert_eq!(numeric_text(&enc(-2, 0, 6, &[1200])).unwrap(), "0.000012");
        assert_eq!(numeric_text(&enc(0, 0, 0, &[])).unwrap(), "0");
        assert_eq!(numeric_text(&enc(0, 0, 3, &[])).unwrap(), "0.000");
        assert_eq!(
            numeric_text(&enc(4, 0, 4, &[9, 9999, 9999, 9999, 9999, 1234])).unwrap(),
            "99999999999999999.1234"
        );
        assert_eq!(numeric_text(&enc(0, 0xC000, 0, &[])).unwrap(), "NaN");
        assert!(numeric_text(&[0, 1]).is_err());
    }
}
