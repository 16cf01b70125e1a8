//! Recording a config's schema snapshot ([`crate::snapshot`]) from its live sources, and
//! comparing a committed one with them.
//!
//! [`prepare`] asks every configured source what it returns, without running any endpoint:
//!
//! | source | what is asked | what is recorded |
//! |---|---|---|
//! | `database` (SQLite, PostgreSQL, MySQL / MariaDB) | the database describes each operation's query (sqlx's describe, as `sqlx::query!` uses; nothing is executed) | result columns, their database and JSON types, nullability where the database knows it |
//! | `ml`, `protocol: v2` | `GET /v2/models/{model}` (the Open Inference Protocol metadata) | input and output tensors: names, datatypes, shapes |
//! | `feast`, operations with `sample: {entity_key: value}` | one `get-online-features` for the sample entity (the feature server publishes no types) | each result field and the JSON type of its value (`unknown` when the sample had none) |
//! | `api`, services with `openapi: URL or file` | the service's OpenAPI document: the operation's path and method, its 2xx JSON answer | a JSON Schema of the result (after `extract`), `$ref`s resolved |
//! | `api`, operations with `sample: {params}` (when no document describes them) | one call with those params | a JSON Schema inferred from the answer: its fields, their types |
//!
//! Other sources (`json`, `tfserving` and `mlflow` models, Feast operations and API operations
//! with neither, host source types) are not recorded ([`Prepared::skipped`] lists them), and
//! references into them are not type-checked. The
//! example `check` writes the file: `cargo run --example check -- --prepare DIR`, and with
//! `--check` compares instead of writing (exit 1 when the sources changed).

use std::collections::BTreeMap;

use crate::diagnostic::{Code, Diagnostic, Diagnostics, KeyPath};
use crate::plan::{Integrations, Plan};
use crate::snapshot::{Snapshot, Sources};

/// What [`prepare`] recorded.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Prepared {
    /// The snapshot to commit.
    pub snapshot: Snapshot,
    /// The operations it has nothing about, each with why (`` feast operation `x`: no
    /// `sample` ``).
    pub skipped: Vec<String>,
}

/// Asks every source of `plan` what it returns and records it. Every source that cannot be
/// asked is a diagnostic naming its file and key; nothing is recorded then.
pub async fn prepare(plan: &Plan) -> Result<Prepared, Diagnostics> {
    let mut out = Prepared {
        snapshot: Snapshot::new(),
        skipped: Vec::new(),
    };
    let mut problems = Vec::new();
    out.snapshot.sources = scope(
        &plan.integrations.global,
        "",
        &mut problems,
        &mut out.skipped,
    )
    .await;
    for (domain, integrations) in &plan.integrations.domains {
        let prefix = format!("domains/{domain}: ");
        let recorded = scope(integrations, &prefix, &mut problems, &mut out.skipped).await;
        out.snapshot.domains.insert(domain.clone(), recorded);
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(Diagnostics(problems))
    }
}

/// What differs between a committed snapshot and the live one, a line per source: empty when
/// they agree.
pub fn differences(committed: &Snapshot, live: &Snapshot) -> Vec<String> {
    let mut out = Vec::new();
    let mut scopes: BTreeMap<String, (Option<&Sources>, Option<&Sources>)> = BTreeMap::new();
    scopes.insert(
        String::new(),
        (Some(&committed.sources), Some(&live.sources)),
    );
    for (d, s) in &committed.domains {
        scopes.entry(format!("domains/{d}: ")).or_default().0 = Some(s);
    }
    for (d, s) in &live.domains {
        scopes.entry(format!("domains/{d}: ")).or_default().1 = Some(s);
    }
    let empty = Sources::default();
    for (prefix, (a, b)) in scopes {
        let (a, b) = (a.unwrap_or(&empty), b.unwrap_or(&empty));
        diff(
            &mut out,
            &prefix,
            "database operation",
            &a.database,
            &b.database,
        );
        diff(&mut out, &prefix, "model", &a.ml, &b.ml);
        diff(&mut out, &prefix, "feature lookup", &a.feast, &b.feast);
        diff(&mut out, &prefix, "API operation", &a.api, &b.api);
    }
    out
}

fn diff<T: PartialEq + serde::Serialize>(
    out: &mut Vec<String>,
    prefix: &str,
    what: &str,
    a: &BTreeMap<String, T>,
    b: &BTreeMap<String, T>,
) {
    let show = |t: &T| serde_json::to_string(t).unwrap_or_default();
    for (k, old) in a {
        match b.get(k) {
            None => out.push(format!(
                "{prefix}{what} `{k}` is recorded but no longer configured"
            )),
            Some(new) if new != old => out.push(format!(
                "{prefix}{what} `{k}` changed:\n    recorded: {}\n    now:      {}",
                show(old),
                show(new)
            )),
            Some(_) => {}
        }
    }
    for k in b.keys().filter(|k| !a.contains_key(*k)) {
        out.push(format!("{prefix}{what} `{k}` is not recorded"));
    }
}

async fn scope(
    i: &Integrations,
    prefix: &str,
    problems: &mut Vec<Diagnostic>,
    skipped: &mut Vec<String>,
) -> Sources {
    let mut out = Sources::default();
    #[cfg(feature = "sql")]
    sql(i, &mut out, problems).await;
    #[cfg(feature = "http")]
    {
        models(i, &mut out, problems).await;
        features(i, &mut out, problems).await;
        apis(i, &mut out, problems).await;
    }
    for (id, server) in &i.ml.sources {
        for (name, m) in &server.models {
            if !out.ml.contains_key(&format!("{id}/{name}"))
                && m.protocol != crate::plan::ModelProtocol::V2
            {
                skipped.push(format!(
                    "{prefix}model `{id}/{name}`: its protocol publishes no metadata"
                ));
            }
        }
    }
    for (id, server) in &i.feast.sources {
        for name in server.operations.keys() {
            if !out.feast.contains_key(&format!("{id}/{name}")) {
                skipped.push(format!(
                    "{prefix}feature lookup `{id}/{name}`: no `sample:` entity to look up"
                ));
            }
        }
    }
    for (id, svc) in &i.api.sources {
        for name in svc.operations.keys() {
            if !out.api.contains_key(&format!("{id}/{name}")) {
                skipped.push(format!("{prefix}API operation `{id}/{name}`: no `openapi:` document on the service and no `sample:` params"));
            }
        }
    }
    out
}

/// A problem recording an HTTP integration's operation.
#[cfg(feature = "http")]
fn http_problem(
    path: KeyPath,
    origin: &crate::plan::Origin,
    message: String,
    help: &str,
) -> Diagnostic {
    Diagnostic::new(Code::Snapshot, path, message)
        .in_file(origin.file.clone())
        .with_help(help.to_owned())
}

/// Feast operations with a `sample:` entity: the answer's fields and their value types.
#[cfg(feature = "http")]
async fn features(i: &Integrations, out: &mut Sources, problems: &mut Vec<Diagnostic>) {
    use crate::snapshot::{FeatureTypes, ValueType};
    use crate::source::SourceFactory as _;
    use serde_json::Value;

    if i.feast.sources.is_empty() {
        return;
    }
    let source = match crate::source::feast::FeastFactory::new().build(i) {
        Ok(s) => s,
        Err(_) => return, // the loader reports bad URLs
    };
    for (id, server) in &i.feast.sources {
        for (name, op) in &server.operations {
            let Some(sample) = &op.sample else { continue };
            let path = KeyPath::root()
                .key("feast")
                .key("sources")
                .key(id)
                .key("operations")
                .key(name);
            let params: serde_json::Map<String, Value> = sample.clone().into_iter().collect();
            let standalone = crate::source::Standalone::default();
            match source.fetch(standalone.call(name, Some(id), &params)).await {
                Ok(answer) => {
                    let mut features = BTreeMap::new();
                    let rows: Vec<&Value> = match &answer {
                        Value::Array(rows) => rows.iter().collect(),
                        one => vec![one],
                    };
                    for row in rows {
                        for (k, v) in row.as_object().into_iter().flatten() {
                            // A join key comes back as the data source passed it (a path
                            // param's text, a number): its type is the caller's.
                            let t = if op.entity_keys.contains(k) {
                                ValueType::Unknown
                            } else {
                                ValueType::of_value(v)
                            };
                            let e = features.entry(k.clone()).or_insert(t);
                            if *e == ValueType::Unknown
                                || (*e == ValueType::Integer && t == ValueType::Number)
                            {
                                *e = t;
                            }
                        }
                    }
                    out.feast
                        .insert(format!("{id}/{name}"), FeatureTypes { features });
                }
                Err(e) => problems.push(http_problem(
                    path,
                    &op.origin,
                    format!(
                        "cannot look up the sample entity of `{name}`: {}",
                        e.message
                    ),
                    "the feature server must be up, and `sample:` must name the entity keys",
                )),
            }
        }
    }
}

/// API operations: from the service's OpenAPI document, or from one answer to `sample:`.
#[cfg(feature = "http")]
async fn apis(i: &Integrations, out: &mut Sources, problems: &mut Vec<Diagnostic>) {
    use crate::snapshot::ApiSchema;
    use crate::source::SourceFactory as _;
    use crate::types::Ty;
    use serde_json::Value;

    if i.api.sources.is_empty() {
        return;
    }
    let source = match crate::source::api::ApiFactory.build(i) {
        Ok(s) => s,
        Err(_) => return, // the loader reports bad URLs
    };
    for (id, svc) in &i.api.sources {
        let service_path = KeyPath::root().key("api").key("sources").key(id);
        let document = match &svc.openapi {
            None => None,
            Some(at) => match openapi_document(id, svc, at).await {
                Ok(doc) => Some(doc),
                Err(why) => {
                    problems.push(http_problem(
                        service_path.key("openapi"),
                        &svc.origin,
                        format!("cannot read the OpenAPI document of `{id}`: {why}"),
                        "`openapi:` is the URL of the document the service publishes, or a file relative to the config directory",
                    ));
                    continue;
                }
            },
        };
        let base_path = url::Url::parse(svc.base_url.expose())
            .map(|u| u.path().trim_end_matches('/').to_owned())
            .unwrap_or_default();
        for (name, op) in &svc.operations {
            let path = service_path.key("operations").key(name);
            let described = document
                .as_ref()
                .and_then(|doc| described(doc, &base_path, op).map(|s| (s, doc)));
            let schema = match (described, &op.sample) {
                (Some((schema, doc)), _) => {
                    let t = Ty::from_schema(schema, doc);
                    let t = match &op.extract {
                        Some(pointer) => extract(t, pointer),
                        None => t,
                    };
                    ApiSchema {
                        from: "openapi".into(),
                        schema: t.to_schema(),
                    }
                }
                (None, Some(sample)) => {
                    let params: serde_json::Map<String, Value> =
                        sample.clone().into_iter().collect();
                    let standalone = crate::source::Standalone::default();
                    match source.fetch(standalone.call(name, Some(id), &params)).await {
                        Ok(answer) => ApiSchema {
                            from: "sample".into(),
                            schema: Ty::of_value(&answer).to_schema(),
                        },
                        Err(e) => {
                            problems.push(http_problem(
                                path,
                                &op.origin,
                                format!(
                                    "cannot call `{name}` with its `sample` params: {}",
                                    e.message
                                ),
                                "the service must be up, and `sample:` must hold params it answers",
                            ));
                            continue;
                        }
                    }
                }
                (None, None) if document.is_some() => {
                    problems.push(http_problem(
                        path,
                        &op.origin,
                        format!(
                            "the OpenAPI document of `{id}` describes no JSON answer of `{} {}`",
                            op.method.as_str(),
                            op.path
                        ),
                        "fix the operation's `path` or `method`, or add `sample:` params to record it from an answer",
                    ));
                    continue;
                }
                (None, None) => continue,
            };
            out.api.insert(format!("{id}/{name}"), schema);
        }
    }
}

/// The OpenAPI document at `at`: fetched with the service's headers, or read from a file.
#[cfg(feature = "http")]
async fn openapi_document(
    id: &str,
    svc: &crate::plan::ApiService,
    at: &str,
) -> Result<serde_json::Value, String> {
    let text = if at.starts_with("http://") || at.starts_with("https://") {
        let client =
            crate::source::http::HttpClient::new(id, at, &svc.http, Vec::new(), Vec::new())
                .map_err(|e| e.message)?;
        let standalone = crate::source::Standalone::default();
        let params = serde_json::Map::new();
        let doc = client
            .get(
                &standalone.call("openapi", Some(id), &params),
                String::new(),
            )
            .await
            .map_err(|e| e.message)?;
        return Ok(doc);
    } else {
        std::fs::read_to_string(at).map_err(|e| format!("`{at}`: {e}"))?
    };
    // JSON is YAML: one reader for both spellings of the document.
    serde_yaml::from_str(&text).map_err(|e| format!("`{at}` is not JSON or YAML: {e}"))
}

/// The schema of the JSON answer the document gives `op` (its 2xx response), matching the
/// operation's path with or without the base URL's path, whatever its placeholders are named.
#[cfg(feature = "http")]
fn described<'d>(
    doc: &'d serde_json::Value,
    base_path: &str,
    op: &crate::plan::ApiOperation,
) -> Option<&'d serde_json::Value> {
    fn shape(path: &str) -> String {
        let path = path
            .split('?')
            .next()
            .unwrap_or_default()
            .trim_end_matches('/');
        path.split('/')
            .map(|s| {
                if s.starts_with('{') && s.ends_with('}') {
                    "{}"
                } else {
                    s
                }
            })
            .collect::<Vec<_>>()
            .join("/")
    }
    let wanted = [shape(&op.path), shape(&format!("{base_path}{}", op.path))];
    let (_, item) = doc
        .get("paths")?
        .as_object()?
        .iter()
        .find(|(p, _)| wanted.contains(&shape(p)))?;
    let responses = item
        .get(op.method.as_str().to_ascii_lowercase())?
        .get("responses")?
        .as_object()?;
    let response = ["200", "201", "2XX", "2xx"]
        .iter()
        .find_map(|code| responses.get(*code))
        .or_else(|| {
            responses
                .iter()
                .find(|(c, _)| c.starts_with('2'))
                .map(|(_, r)| r)
        })
        .or_else(|| responses.get("default"))?;
    let response = match response.get("$ref").and_then(serde_json::Value::as_str) {
        Some(r) => doc.pointer(r.strip_prefix('#')?)?,
        None => response,
    };
    let content = response.get("content")?.as_object()?;
    content
        .get("application/json")
        .or_else(|| {
            content
                .iter()
                .find(|(k, _)| k.contains("json"))
                .map(|(_, v)| v)
        })?
        .get("schema")
}

/// The type at a JSON pointer (`extract`) inside `t`.
#[cfg(feature = "http")]
fn extract(t: crate::types::Ty, pointer: &str) -> crate::types::Ty {
    use crate::types::Ty;
    let mut t = t;
    for raw in pointer.split('/').skip(1) {
        let key = raw.replace("~1", "/").replace("~0", "~");
        t = match t.non_null() {
            Ty::Object { .. } => t.field(&key).cloned().unwrap_or(Ty::Null),
            Ty::Array(item) if key.parse::<usize>().is_ok() => item.as_ref().clone().or_null(),
            _ => Ty::Any,
        };
    }
    t
}

#[cfg(feature = "sql")]
async fn sql(i: &Integrations, out: &mut Sources, problems: &mut Vec<Diagnostic>) {
    use crate::snapshot::SqlResult;
    use crate::source::sql::SqlPool;

    let mut pools: BTreeMap<&str, SqlPool> = BTreeMap::new();
    for (name, op) in &i.database.operations {
        let path = KeyPath::root().key("database").key("operations").key(name);
        let problem = |message: String| {
            Diagnostic::new(Code::Snapshot, path.clone(), message)
                .in_file(op.origin.file.clone())
                .with_help(
                    "the database must be reachable and the query valid to record its columns",
                )
        };
        let Some((conn_name, conn)) = (match &op.source_id {
            Some(id) => i.database.sources.get_key_value(id),
            None => i.database.sources.iter().next(),
        }) else {
            continue; // the validator reports it
        };
        let pool = match pools.get(conn_name.as_str()) {
            Some(p) => p.clone(),
            None => match SqlPool::connect_lazy(conn_name, conn) {
                Ok(p) => pools.entry(conn_name).or_insert(p).clone(),
                Err(e) => {
                    problems.push(problem(e.message));
                    continue;
                }
            },
        };
        let params: Vec<&str> = op.params.iter().map(|p| p.name.as_str()).collect();
        match pool.describe(&op.query, &params).await {
            Ok(columns) => {
                out.database.insert(
                    name.clone(),
                    SqlResult {
                        connection: conn_name.clone(),
                        columns,
                    },
                );
            }
            Err(e) => problems.push(problem(format!(
                "cannot describe the query of operation `{name}` on `{conn_name}`: {e}"
            ))),
        }
    }
}

#[cfg(feature = "http")]
async fn models(i: &Integrations, out: &mut Sources, problems: &mut Vec<Diagnostic>) {
    use crate::plan::ModelProtocol;
    use crate::snapshot::{ModelSignature, Tensor};
    use crate::source::http::HttpClient;
    use serde_json::Value;

    fn tensors(meta: &Value, key: &str) -> Result<Vec<Tensor>, String> {
        let Some(list) = meta.get(key) else {
            return Ok(Vec::new());
        };
        let list = list
            .as_array()
            .ok_or_else(|| format!("`{key}` is not a list"))?;
        list.iter()
            .map(|t| {
                let name = t.get("name").and_then(Value::as_str);
                let datatype = t.get("datatype").and_then(Value::as_str);
                let shape: Option<Vec<i64>> = t
                    .get("shape")
                    .and_then(Value::as_array)
                    .map(|s| s.iter().filter_map(Value::as_i64).collect());
                match (name, datatype) {
                    (Some(n), Some(d)) => Ok(Tensor::new(n, d, shape.unwrap_or_default())),
                    _ => Err(format!("an entry of `{key}` has no `name` or `datatype`")),
                }
            })
            .collect()
    }

    for (id, server) in &i.ml.sources {
        let client = match HttpClient::new(
            id,
            server.base_url.expose(),
            &server.http,
            Vec::new(),
            Vec::new(),
        ) {
            Ok(c) => c,
            Err(_) => continue, // the loader reports bad URLs
        };
        for (name, model) in server
            .models
            .iter()
            .filter(|(_, m)| m.protocol == ModelProtocol::V2)
        {
            let path = KeyPath::root()
                .key("ml")
                .key("sources")
                .key(id)
                .key("models")
                .key(name);
            let recorded = crate::source::ml::metadata(&client, name, model)
                .await
                .map_err(|e| e.message)
                .and_then(|meta| {
                    Ok(ModelSignature {
                        inputs: tensors(&meta, "inputs")?,
                        outputs: tensors(&meta, "outputs")?,
                    })
                });
            match recorded {
                Ok(sig) => {
                    out.ml.insert(format!("{id}/{name}"), sig);
                }
                Err(why) => problems.push(
                    Diagnostic::new(
                        Code::Snapshot,
                        path,
                        format!("cannot read the metadata of model `{name}`: {why}"),
                    )
                    .in_file(model.origin.file.clone())
                    .with_help("the model server must be up to record its tensors"),
                ),
            }
        }
    }
}
