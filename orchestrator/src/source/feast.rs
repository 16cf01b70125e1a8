//! The `feast` source type: online features from a Feast feature server
//! (`integrations/feast_config.yaml`), `POST /get-online-features`.
//!
//! The entity keys come from the data source's params, named after the join keys. A scalar
//! value asks for one entity and returns `{feature: value, …}`; arrays (one per key, equally
//! long) ask for several and return one such object per entity, in order. The server's
//! column-oriented answer is zipped by `metadata.feature_names` (never by position: the server
//! may reorder columns); a row-oriented answer, as some servers send, is read too. Names are
//! the server's: bare (`total_spend`) or, with `full_feature_names: true`, `view__feature`.
//! Join keys are included.
//!
//! A value whose status is `NOT_FOUND` or `OUTSIDE_MAX_AGE` becomes null (and a note in the
//! trace says how many), or fails the source with `on_missing: error`.
//!
//! With a `database_fallback`, a failed feature server call (unreachable, timed out, an error
//! status, an unreadable answer) is answered from a table instead, through the `database`
//! connection named by the fallback; the trace notes it. The server's own `timeout` then bounds
//! the server call, and the data source's timeout bounds call and fallback together.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::http::{HttpClient, Outgoing};
use super::{DataSource, Notes, SourceCall, SourceError, SourceErrorKind, SourceFactory};
use crate::plan::{FeastOperation, Integrations, OnMissing};

/// Builds the `feast` source for each config version and domain scope.
#[derive(Debug, Clone, Default)]
pub struct FeastFactory {
    #[cfg(feature = "sql")]
    sql: Option<super::sql::SqlFactory>,
}

impl FeastFactory {
    /// A factory whose database fallbacks build their own pools.
    pub fn new() -> Self {
        Self::default()
    }

    /// Database fallbacks use `sql`'s pools, the ones its `database` source uses (pass the
    /// same factory you register as `database`, e.g. one with host pools).
    #[cfg(feature = "sql")]
    #[must_use]
    pub fn with_database(mut self, sql: super::sql::SqlFactory) -> Self {
        self.sql = Some(sql);
        self
    }
}

impl SourceFactory for FeastFactory {
    fn build(&self, integrations: &Integrations) -> Result<Arc<dyn DataSource>, SourceError> {
        let mut servers = HashMap::new();
        for (id, server) in &integrations.feast.sources {
            let client = Arc::new(HttpClient::new(
                id,
                server.url.expose(),
                &server.http,
                Vec::new(),
                Vec::new(),
            )?);
            let mut ops = HashMap::new();
            for (name, op) in &server.operations {
                let fallback = match &op.database_fallback {
                    None => None,
                    Some(_) => Some(self.fallback(integrations, name, op)?),
                };
                ops.insert(
                    name.clone(),
                    Arc::new(Lookup {
                        op: op.clone(),
                        fallback,
                        server_timeout: server.http.timeout,
                    }),
                );
            }
            servers.insert(id.clone(), Server { client, ops });
        }
        Ok(Arc::new(FeastSource { servers }))
    }
}

impl FeastFactory {
    #[cfg(feature = "sql")]
    fn fallback(
        &self,
        integrations: &Integrations,
        name: &str,
        op: &FeastOperation,
    ) -> Result<Fallback, SourceError> {
        let fb = op.database_fallback.as_ref().expect("caller checked");
        let db = &integrations.database;
        let (conn_name, conn) = match &fb.source_id {
            Some(id) => db.sources.get_key_value(id),
            None => db.sources.iter().next(),
        }
        .ok_or_else(|| {
            SourceError::new(
                SourceErrorKind::Config,
                format!(
                    "feature lookup `{name}`: its database fallback names no database connection"
                ),
            )
        })?;
        let sql = self.sql.clone().unwrap_or_default();
        let pool = sql.pool(conn_name, conn)?;
        // Identifiers were checked at load (letters, digits, `_`): they are safe to write here.
        let mut columns = vec![format!("{} AS {}", fb.entity_key, fb.entity_key)];
        let mut names = Vec::new();
        for (feature, column) in &fb.mapping {
            names.push((output_name(feature, op.full_feature_names), column.clone()));
            columns.push(column.clone());
        }
        let query = format!(
            "SELECT {} FROM {} WHERE {} = :entity",
            columns.join(", "),
            fb.table,
            fb.entity_key
        );
        Ok(Fallback {
            pool,
            query,
            entity_key: fb.entity_key.clone(),
            names,
            features: op
                .features
                .iter()
                .map(|f| output_name(f, op.full_feature_names))
                .collect(),
        })
    }

    #[cfg(not(feature = "sql"))]
    fn fallback(
        &self,
        _: &Integrations,
        name: &str,
        _: &FeastOperation,
    ) -> Result<Fallback, SourceError> {
        Err(SourceError::new(
            SourceErrorKind::Config,
            format!(
                "feature lookup `{name}` has a database fallback, but no SQL driver is compiled in; enable the `sqlite`, `postgres` or `mysql` feature"
            ),
        ))
    }
}

/// `view:feature` as the server names it in its answer.
#[cfg_attr(not(feature = "sql"), allow(dead_code))]
fn output_name(feature: &str, full: bool) -> String {
    match feature.split_once(':') {
        Some((view, f)) if full => format!("{view}__{f}"),
        Some((_, f)) => f.to_owned(),
        None => feature.to_owned(),
    }
}

struct Server {
    client: Arc<HttpClient>,
    ops: HashMap<String, Arc<Lookup>>,
}

struct Lookup {
    op: FeastOperation,
    fallback: Option<Fallback>,
    server_timeout: Option<Duration>,
}

/// A generated `SELECT` answering a lookup from a table.
struct Fallback {
    #[cfg(feature = "sql")]
    pool: super::sql::SqlPool,
    #[cfg_attr(not(feature = "sql"), allow(dead_code))]
    query: String,
    #[cfg_attr(not(feature = "sql"), allow(dead_code))]
    entity_key: String,
    /// Output name → column.
    #[cfg_attr(not(feature = "sql"), allow(dead_code))]
    names: Vec<(String, String)>,
    /// Every requested feature's output name (unmapped ones are null).
    #[cfg_attr(not(feature = "sql"), allow(dead_code))]
    features: Vec<String>,
}

struct FeastSource {
    servers: HashMap<String, Server>,
}

/// The entities of one call: join key → values, and whether the caller asked for one.
struct Entities {
    keys: Vec<(String, Vec<Value>)>,
    single: bool,
}

impl Entities {
    /// The entity rows of a lookup; an error says why, and names the entity key (a param)
    /// when its value is missing.
    fn from_params(
        op: &FeastOperation,
        params: &Map<String, Value>,
    ) -> Result<Self, (String, Option<String>)> {
        let mut keys = Vec::with_capacity(op.entity_keys.len());
        let mut single = None;
        let mut len = None;
        for key in &op.entity_keys {
            let values = match params.get(key) {
                None | Some(Value::Null) => {
                    return Err((
                        format!("entity key `{key}` has no value"),
                        Some(key.clone()),
                    ));
                }
                Some(Value::Array(items)) => {
                    if single == Some(true) {
                        return Err(("entity keys mix single values and lists".into(), None));
                    }
                    single = Some(false);
                    items.clone()
                }
                Some(v) => {
                    if single == Some(false) {
                        return Err(("entity keys mix single values and lists".into(), None));
                    }
                    single = Some(true);
                    vec![v.clone()]
                }
            };
            if let Some(n) = len
                && n != values.len()
            {
                return Err(("entity key lists differ in length".into(), None));
            }
            len = Some(values.len());
            keys.push((key.clone(), values));
        }
        Ok(Self {
            keys,
            single: single.unwrap_or(true),
        })
    }

    fn rows(&self) -> usize {
        self.keys.first().map_or(0, |(_, v)| v.len())
    }
}

#[async_trait::async_trait]
impl DataSource for FeastSource {
    async fn fetch(&self, call: SourceCall<'_>) -> Result<Value, SourceError> {
        let name = call.operation.unwrap_or_default();
        let (client, lookup) = match call.source_id {
            Some(id) => self
                .servers
                .get(id)
                .and_then(|s| s.ops.get(name).map(|l| (&s.client, l))),
            None => self
                .servers
                .values()
                .find_map(|s| s.ops.get(name).map(|l| (&s.client, l))),
        }
        .ok_or_else(|| {
            SourceError::new(
                SourceErrorKind::Config,
                format!("unknown feature lookup `{name}`"),
            )
        })?;
        let op = &lookup.op;
        let entities = Entities::from_params(op, call.params).map_err(|(e, key)| {
            let error = SourceError::new(
                SourceErrorKind::Rejected,
                format!("feature lookup `{name}`: {e}"),
            );
            match key {
                Some(key) => error.with_param(key),
                None => error,
            }
        })?;
        if entities.rows() == 0 {
            return Ok(Value::Array(Vec::new()));
        }
        let mut body = json!({
            "entities": entities.keys.iter().map(|(k, v)| (k.clone(), Value::Array(v.clone()))).collect::<Map<_, _>>(),
            "full_feature_names": op.full_feature_names,
        });
        match &op.feature_service {
            Some(service) => body["feature_service"] = json!(service),
            None => body["features"] = json!(op.features),
        }
        let out = Outgoing {
            method: reqwest::Method::POST,
            path: "/get-online-features".into(),
            body: Some(body),
            ..Outgoing::default()
        };
        let answer = match (&lookup.fallback, lookup.server_timeout) {
            (Some(_), Some(limit)) => {
                match tokio::time::timeout(limit, client.send(&call, out)).await {
                    Ok(r) => r,
                    Err(_) => Err(SourceError::new(
                        SourceErrorKind::Timeout,
                        format!("the feature server did not answer within {limit:?}"),
                    )),
                }
            }
            _ => client.send(&call, out).await,
        };
        let rows = answer.and_then(|v| {
            parse(&v, entities.rows()).map_err(|e| {
                SourceError::new(
                    SourceErrorKind::InvalidResponse,
                    format!("unexpected answer: {e}"),
                )
            })
        });
        let rows = match (rows, &lookup.fallback) {
            (Ok(rows), _) => self::statuses(rows, op, call.notes).map_err(|e| {
                SourceError::new(
                    SourceErrorKind::InvalidResponse,
                    format!("feature lookup `{name}`: {e}"),
                )
            })?,
            (Err(e), Some(fallback)) if e.kind != SourceErrorKind::Rejected => {
                call.notes.push(format!(
                    "feature server failed ({}); answered from the database fallback",
                    kind_name(e.kind)
                ));
                tracing::debug!(lookup = name, error = %e, "feature server failed; using the database fallback");
                from_database(fallback, &entities).await.map_err(|fe| {
                    SourceError::new(
                        fe.kind,
                        format!(
                            "feature lookup `{name}`: {}; the database fallback failed too: {}",
                            e.message, fe.message
                        ),
                    )
                })?
            }
            (Err(e), _) => {
                return Err(SourceError::new(
                    e.kind,
                    format!("feature lookup `{name}`: {}", e.message),
                ));
            }
        };
        Ok(if entities.single {
            rows.into_iter().next().map_or(Value::Null, Value::Object)
        } else {
            Value::Array(rows.into_iter().map(Value::Object).collect())
        })
    }
}

/// For the fuzzer (`orchestrator/core/fuzz`, target `upstream`): `body` read as a feature
/// server's answer to a lookup of `rows` entities, as a lookup with `on_missing: null` reads it.
#[doc(hidden)]
pub fn __fuzz_answer(body: &[u8], rows: usize) -> Result<Vec<Map<String, Value>>, String> {
    let answer: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    statuses(
        parse(&answer, rows)?,
        &FeastOperation::default(),
        &Notes::default(),
    )
}

fn kind_name(kind: SourceErrorKind) -> String {
    match kind {
        SourceErrorKind::Upstream { status } => format!("HTTP {status}"),
        other => serde_json::to_value(other)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("{other:?}")),
    }
}

/// One feature value with its status.
type Cell = (Value, Option<String>);

/// The answer as rows of `name → (value, status)`.
fn parse(v: &Value, n: usize) -> Result<Vec<Vec<(String, Cell)>>, String> {
    let names: Vec<&str> = v
        .pointer("/metadata/feature_names")
        .and_then(Value::as_array)
        .ok_or("no `metadata.feature_names`")?
        .iter()
        .map(|x| x.as_str().ok_or("a feature name that is not a string"))
        .collect::<Result<_, _>>()?;
    let results = v
        .get("results")
        .and_then(Value::as_array)
        .ok_or("no `results`")?;
    let vectors: Vec<(&Vec<Value>, Option<&Vec<Value>>)> = results
        .iter()
        .map(|r| {
            let values = r
                .get("values")
                .and_then(Value::as_array)
                .ok_or("a result without `values`")?;
            Ok((values, r.get("statuses").and_then(Value::as_array)))
        })
        .collect::<Result<_, &str>>()?;
    let status = |s: Option<&Vec<Value>>, i: usize| {
        s.and_then(|s| s.get(i))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    // Column-oriented (the protocol): one vector per name, each as long as the entity list.
    if vectors.len() == names.len() && vectors.iter().all(|(v, _)| v.len() == n) {
        return Ok((0..n)
            .map(|row| {
                names
                    .iter()
                    .zip(&vectors)
                    .map(|(name, (values, statuses))| {
                        (
                            (*name).to_owned(),
                            (values[row].clone(), status(*statuses, row)),
                        )
                    })
                    .collect()
            })
            .collect());
    }
    // Row-oriented: one vector per entity, each as long as the name list.
    if vectors.len() == n && vectors.iter().all(|(v, _)| v.len() == names.len()) {
        return Ok(vectors
            .iter()
            .map(|(values, statuses)| {
                names
                    .iter()
                    .enumerate()
                    .map(|(i, name)| {
                        (
                            (*name).to_owned(),
                            (values[i].clone(), status(*statuses, i)),
                        )
                    })
                    .collect()
            })
            .collect());
    }
    Err(format!(
        "{} results for {} names and {n} entities fit neither orientation",
        vectors.len(),
        names.len()
    ))
}

/// Rows as JSON objects; missing values per `on_missing`, counted in the trace notes.
fn statuses(
    rows: Vec<Vec<(String, Cell)>>,
    op: &FeastOperation,
    notes: &Notes,
) -> Result<Vec<Map<String, Value>>, String> {
    let mut missing: Vec<(String, String, usize)> = Vec::new();
    let total = rows.len();
    let out = rows
        .into_iter()
        .map(|row| {
            row.into_iter()
                .map(|(name, (value, status))| {
                    let value = match status.as_deref() {
                        Some(s @ ("NOT_FOUND" | "OUTSIDE_MAX_AGE")) => {
                            match missing.iter_mut().find(|(n, st, _)| *n == name && st == s) {
                                Some(m) => m.2 += 1,
                                None => missing.push((name.clone(), s.to_owned(), 1)),
                            }
                            Value::Null
                        }
                        _ => value,
                    };
                    (name, value)
                })
                .collect()
        })
        .collect();
    if missing.is_empty() {
        return Ok(out);
    }
    let described: Vec<String> = missing
        .iter()
        .map(|(name, status, count)| format!("`{name}` {status} for {count} of {total} entities"))
        .collect();
    if op.on_missing == OnMissing::Error {
        return Err(format!("missing features: {}", described.join(", ")));
    }
    for d in described {
        notes.push(format!("feature {d}; returned null"));
    }
    Ok(out)
}

#[cfg(feature = "sql")]
async fn from_database(
    fb: &Fallback,
    entities: &Entities,
) -> Result<Vec<Map<String, Value>>, SourceError> {
    let Some((_, keys)) = entities
        .keys
        .iter()
        .find(|(k, _)| *k == fb.entity_key)
        .or(entities.keys.first())
    else {
        return Ok(Vec::new());
    };
    let mut rows = Vec::with_capacity(keys.len());
    for key in keys {
        let found = fb.pool.first_row(&fb.query, &[("entity", key)]).await?;
        let mut row = Map::new();
        row.insert(fb.entity_key.clone(), key.clone());
        for f in &fb.features {
            row.insert(f.clone(), Value::Null);
        }
        if let Some(found) = found {
            for (name, column) in &fb.names {
                row.insert(
                    name.clone(),
                    found.get(column).cloned().unwrap_or(Value::Null),
                );
            }
        }
        rows.push(row);
    }
    Ok(rows)
}

#[cfg(not(feature = "sql"))]
async fn from_database(_: &Fallback, _: &Entities) -> Result<Vec<Map<String, Value>>, SourceError> {
    Err(SourceError::new(
        SourceErrorKind::Config,
        "no SQL driver is compiled in",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer() -> Value {
        json!({
            "metadata": {"feature_names": ["customer_id", "num_orders", "total_spend"]},
            "results": [
                {"values": [1001, 9999], "statuses": ["PRESENT", "PRESENT"]},
                {"values": [1, null], "statuses": ["PRESENT", "NOT_FOUND"]},
                {"values": [11.5, null], "statuses": ["PRESENT", "NOT_FOUND"]}
            ]
        })
    }

    #[test]
    fn reads_both_orientations() {
        let cols = parse(&answer(), 2).unwrap();
        assert_eq!(
            cols[0][1],
            (
                "num_orders".to_owned(),
                (json!(1), Some("PRESENT".to_owned()))
            )
        );
        assert_eq!(cols[1][2].1, (Value::Null, Some("NOT_FOUND".to_owned())));
        let rows = json!({
            "metadata": {"feature_names": ["customer_id", "num_orders", "total_spend"]},
            "results": [
                {"values": [1001, 1, 11.5], "statuses": ["PRESENT", "PRESENT", "PRESENT"]},
                {"values": [9999, null, null], "statuses": ["PRESENT", "NOT_FOUND", "NOT_FOUND"]}
            ]
        });
        assert_eq!(parse(&rows, 2).unwrap(), cols);
        assert!(parse(&json!({"results": []}), 1).is_err());
    }

    #[test]
    fn output_names_follow_full_feature_names() {
        assert_eq!(
            output_name("customer_stats:total_spend", false),
            "total_spend"
        );
        assert_eq!(
            output_name("customer_stats:total_spend", true),
            "customer_stats__total_spend"
        );
    }
}
