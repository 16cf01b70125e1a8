//! Load harness: the library against a hand-written handler, over real sockets, one command.
//!
//! ```text
//! cargo run --release -p benches --bin load            # full run (several minutes)
//! cargo run --release -p benches --bin load -- --smoke # every scenario, tiny (what CI runs)
//! load --only ii,iii                                   # some scenarios: i, ii, iii, iv, v, vi, vii, viii, ix
//! load --profile a|b|hyper-a|actix-a|actix-b|fanN-a|fanN-b SECS  # one variant, for a profiler
//! ```
//!
//! `--profile a` / `b` drives scenario (i)'s library / hand-written variant at full
//! concurrency (`hyper-a`: the library on a bare hyper server instead of axum), `actix-a` / `actix-b` scenario (vi)'s; `fanN-a` / `fanN-b` drives scenario
//! (ii) with N sources and one client; `obs-metrics` / `obs-1` / `obs-100` scenario (i)'s
//! plans with metrics, and traces sampled at 1 % or 100 % (scenario viii); `each-VARIANT-a` /
//! `each-VARIANT-b` one variant of scenario (ix) with one client. It
//! prints the requests answered, which `benches/serving-instructions.sh` divides callgrind's
//! count by.
//!
//! In one process it starts its backends (an HTTP backend answering fixed JSON after an
//! optional per-route delay, and a SQLite file), serves the same composite endpoint two ways —
//! **(a)** the plans mounted in axum (or actix-web) through the library, **(b)** a hand-written
//! axum handler making the same calls with the same clients and building the same JSON — and
//! drives them alternately (A B A B …, warm-up excluded) with a closed-loop client at a fixed
//! concurrency, recording latencies in an HDR histogram. Each runtime (backend, server, load)
//! has its own thread, so the three share the machine's cores the same way for A and B.

/// The allocator a production deployment would pick (the demo server uses it too): with glibc's
/// malloc, memory allocated on the request thread and freed on another (the spans the OTLP
/// exporter sends, the SQLite workers' rows) costs the serving thread several percent.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use api_orchestrator::Orchestrator;
use api_orchestrator::telemetry::{Metrics, Tracing};
use api_orchestrator::web::Api;
use axum::extract::{Path as UrlPath, State};
use axum::routing::get;
use hdrhistogram::Histogram;
use serde_json::{Map, Value, json};

/// How long things run.
#[derive(Debug, Clone, Copy)]
struct Budget {
    warmup: Duration,
    round: Duration,
    rounds: usize,
    concurrency: usize,
    soak: Duration,
    fan_out: &'static [usize],
    load_sizes: &'static [usize],
}

const FULL: Budget = Budget {
    warmup: Duration::from_secs(2),
    round: Duration::from_secs(4),
    rounds: 5,
    concurrency: 32,
    soak: Duration::from_secs(60),
    fan_out: &[1, 4, 16, 64],
    load_sizes: &[10, 100, 1000, 20_000],
};

const SMOKE: Budget = Budget {
    warmup: Duration::from_millis(100),
    round: Duration::from_millis(300),
    rounds: 2,
    concurrency: 4,
    soak: Duration::from_millis(500),
    fan_out: &[1, 4],
    load_sizes: &[10, 100],
};

/// A runtime on its own thread.
fn runtime(name: &str) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

// ---------------------------------------------------------------- backends

/// `GET /delay/{ms}/{name}`: fixed JSON for `name` after `ms` milliseconds.
async fn backend_handler(UrlPath((ms, name)): UrlPath<(u64, String)>) -> axum::response::Response {
    if ms > 0 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let body = json!({
        "source": name,
        "score": 712, "band": "A", "limit": 5000,
        "ltv": 1520.5, "frequency": 3.2, "churn": 0.12,
        "items": [{"id": 1, "amount": 10.5}, {"id": 2, "amount": 20.25}],
        "meta": {"region": "eu", "tier": "gold"}
    });
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

use axum::response::IntoResponse as _;

fn start_backend(rt: &tokio::runtime::Runtime) -> SocketAddr {
    rt.block_on(async {
        let app = axum::Router::new()
            .route("/delay/{ms}/{name}", get(backend_handler))
            .route("/item/{id}", get(backend_item))
            .route("/items", axum::routing::post(backend_items));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        addr
    })
}

async fn seed_sqlite(path: &Path) {
    let pool = sqlx::SqlitePool::connect(&format!("sqlite:{}?mode=rwc", path.display()))
        .await
        .unwrap();
    sqlx::raw_sql(
        "CREATE TABLE customers (customer_id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT, segment TEXT, city TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
         INSERT INTO customers SELECT i, 'Customer ' || i, 'c' || i || '@example.com', 'gold', 'London' FROM n;",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
}

// ---------------------------------------------------------------- scenario (i): the configs

/// The overhead scenario: 3 HTTP sources + 1 SQLite lookup, a 20-field mapping.
fn overhead_config(dir: &Path, backend: SocketAddr, db: &Path) {
    let files = [
        (
            "database.yaml",
            format!(
                "database:\n  sources:\n    default: {{connection_string: \"sqlite:{}\", pool_size: 8}}\n  operations:\n    get_customer:\n      query: \"SELECT customer_id, name, email, segment, city FROM customers WHERE customer_id = :id\"\n      params: {{id: integer}}\n",
                db.display()
            ),
        ),
        (
            "integrations/api_sources.yaml",
            format!(
                "api:\n  sources:\n    backend:\n      base_url: \"http://{backend}\"\n      timeout: 5s\n      operations:\n        credit: {{path: \"/delay/0/credit\"}}\n        features: {{path: \"/delay/0/features\"}}\n        orders: {{path: \"/delay/0/orders\"}}\n"
            ),
        ),
        (
            "domains/bench.yaml",
            r#"endpoints:
  overview:
    path: /overview/{id}
    method: [GET]
    data_sources:
      - {name: profile, type: database, operation: get_customer, params: {id: "$request.id"}}
      - {name: credit, type: api, operation: credit}
      - {name: features, type: api, operation: features}
      - {name: orders, type: api, operation: orders}
    response_mapping:
      id: "$profile.customer_id"
      name: "$profile.name"
      email: "$profile.email"
      segment: "$profile.segment"
      city: "$profile.city"
      credit_score: "$credit.score"
      credit_band: "$credit.band"
      credit_limit: "$credit.limit"
      ltv: "$features.ltv"
      frequency: "$features.frequency"
      churn: "$features.churn"
      region: "$features.meta.region"
      tier: "$features.meta.tier"
      first_order: "$orders.items[0].id"
      order_ids: "$orders.items[*].id"
      first_amount: "$orders.items[0].amount"
      credit_source: "$credit.source"
      features_source: "$features.source"
      orders_source: "$orders.source"
      version: 1
"#
            .to_owned(),
        ),
    ];
    write_files(dir, &files);
}

/// Config of the fan-out scenario: endpoint `fan` (`GET /fan`) with `n` independent `api`
/// sources, each calling the backend's 20 ms route.
fn fan_out_config(dir: &Path, backend: SocketAddr, n: usize) {
    let sources: String = (0..n)
        .map(|i| format!("      - {{name: s{i}, type: api, operation: slow, params: {{}}}}\n"))
        .collect();
    write_files(
        dir,
        &[
            (
                "integrations/api_sources.yaml",
                format!(
                    "api:\n  sources:\n    backend:\n      base_url: \"http://{backend}\"\n      operations:\n        slow: {{path: \"/delay/20/slow\"}}\n"
                ),
            ),
            (
                "domains/fan.yaml",
                format!(
                    "endpoints:\n  fan:\n    path: /fan\n    method: [GET]\n    data_sources:\n{sources}    response_mapping: {{n: {n}}}\n"
                ),
            ),
        ],
    );
}

fn write_files(dir: &Path, files: &[(&str, String)]) {
    for (path, text) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

/// (b): the same endpoint written by hand with the same clients.
#[derive(Clone)]
struct Manual {
    client: reqwest::Client,
    pool: sqlx::SqlitePool,
    backend: SocketAddr,
}

impl Manual {
    /// A client and a pool of 8 of its own, like the library's.
    fn new(rt: &tokio::runtime::Runtime, db: &Path, backend: SocketAddr) -> Self {
        rt.block_on(async {
            Self {
                client: reqwest::Client::new(),
                pool: sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(8)
                    .connect(&format!("sqlite:{}", db.display()))
                    .await
                    .unwrap(),
                backend,
            }
        })
    }
}

async fn manual_overview(
    State(m): State<Manual>,
    UrlPath(id): UrlPath<String>,
) -> axum::response::Response {
    match overview_by_hand(&m, &id).await {
        Ok(body) => (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        Err(status) => axum::http::StatusCode::from_u16(status)
            .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR)
            .into_response(),
    }
}

/// (b) in actix-web, for scenario (vi): the same work as [`manual_overview`].
async fn manual_overview_actix(
    m: actix_web::web::Data<Manual>,
    id: actix_web::web::Path<String>,
) -> actix_web::HttpResponse {
    match overview_by_hand(&m, &id).await {
        Ok(body) => actix_web::HttpResponse::Ok()
            .content_type("application/json")
            .body(body),
        Err(status) => actix_web::HttpResponse::build(
            actix_web::http::StatusCode::from_u16(status)
                .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR),
        )
        .finish(),
    }
}

/// The hand-written endpoint, whatever the framework: the JSON body, or the status to answer.
async fn overview_by_hand(m: &Manual, id: &str) -> Result<Vec<u8>, u16> {
    let id = id.parse::<i64>().map_err(|_| 400_u16)?;
    let fetch = |name: &'static str| {
        let (client, backend) = (m.client.clone(), m.backend);
        async move {
            let r = client
                .get(format!("http://{backend}/delay/0/{name}"))
                .send()
                .await
                .ok()?;
            serde_json::from_slice::<Value>(&r.bytes().await.ok()?).ok()
        }
    };
    let profile = async {
        use sqlx::Row as _;
        sqlx::query("SELECT customer_id, name, email, segment, city FROM customers WHERE customer_id = ?1")
            .bind(id)
            .fetch_optional(&m.pool)
            .await
            .ok()
            .flatten()
            .map(|r| {
                json!({"customer_id": r.get::<i64, _>(0), "name": r.get::<String, _>(1), "email": r.get::<Option<String>, _>(2),
                       "segment": r.get::<Option<String>, _>(3), "city": r.get::<Option<String>, _>(4)})
            })
    };
    let (profile, credit, features, orders) =
        tokio::join!(profile, fetch("credit"), fetch("features"), fetch("orders"));
    let (Some(p), Some(c), Some(f), Some(o)) = (profile, credit, features, orders) else {
        return Err(502);
    };
    let mut out = Map::new();
    out.insert("id".into(), p["customer_id"].clone());
    out.insert("name".into(), p["name"].clone());
    out.insert("email".into(), p["email"].clone());
    out.insert("segment".into(), p["segment"].clone());
    out.insert("city".into(), p["city"].clone());
    out.insert("credit_score".into(), c["score"].clone());
    out.insert("credit_band".into(), c["band"].clone());
    out.insert("credit_limit".into(), c["limit"].clone());
    out.insert("ltv".into(), f["ltv"].clone());
    out.insert("frequency".into(), f["frequency"].clone());
    out.insert("churn".into(), f["churn"].clone());
    out.insert("region".into(), f["meta"]["region"].clone());
    out.insert("tier".into(), f["meta"]["tier"].clone());
    out.insert("first_order".into(), o["items"][0]["id"].clone());
    out.insert(
        "order_ids".into(),
        Value::Array(
            o["items"]
                .as_array()
                .map(|i| i.iter().map(|x| x["id"].clone()).collect())
                .unwrap_or_default(),
        ),
    );
    out.insert("first_amount".into(), o["items"][0]["amount"].clone());
    out.insert("credit_source".into(), c["source"].clone());
    out.insert("features_source".into(), f["source"].clone());
    out.insert("orders_source".into(), o["source"].clone());
    out.insert("version".into(), json!(1));
    serde_json::to_vec(&Value::Object(out)).map_err(|_| 500_u16)
}

/// `GET /fan/{n}`: the fan-out scenario by hand, `n` concurrent calls of the delayed backend
/// route the library's sources call, each answer parsed, then `{"n": n}`.
async fn manual_fan_out(
    State(m): State<Manual>,
    UrlPath(n): UrlPath<usize>,
) -> axum::response::Response {
    let url = format!("http://{}/delay/20/slow", m.backend);
    let calls = (0..n).map(|_| async {
        let r = m.client.get(&url).send().await.ok()?;
        serde_json::from_slice::<Value>(&r.bytes().await.ok()?).ok()
    });
    let answers = futures::future::join_all(calls).await;
    if answers.iter().any(Option::is_none) {
        return axum::http::StatusCode::BAD_GATEWAY.into_response();
    }
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(&json!({ "n": n })).unwrap(),
    )
        .into_response()
}

// ---------------------------------------------------------------- scenario (ix): for_each

/// How many elements scenario (ix)'s endpoints iterate over, and how many go in one batch.
const ITEMS: i64 = 1000;
const BATCH: usize = 100;
/// How many calls the hand-written loops keep in flight: `for_each`'s default `concurrency`.
const IN_FLIGHT: usize = api_orchestrator::plan::ForEach::DEFAULT_CONCURRENCY;

/// Scenario (ix)'s element document, as the backend and the in-process source answer it.
fn item(id: i64) -> Value {
    json!({"id": id, "name": format!("item {id}"), "price": 10.5, "stock": 3, "tags": ["eu", "gold"]})
}

/// `GET /item/{id}`: one element's document.
async fn backend_item(UrlPath(id): UrlPath<i64>) -> axum::response::Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        item(id).to_string(),
    )
        .into_response()
}

/// `POST /items` with `{"ids": [...]}`: the documents of those ids, last asked first (so
/// that answers must be matched back by `id`, not by position).
async fn backend_items(body: axum::body::Bytes) -> axum::response::Response {
    let Ok(asked) = serde_json::from_slice::<Value>(&body) else {
        return axum::http::StatusCode::BAD_REQUEST.into_response();
    };
    let items: Vec<Value> = asked["ids"]
        .as_array()
        .into_iter()
        .flatten()
        .rev()
        .filter_map(Value::as_i64)
        .map(item)
        .collect();
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        json!({ "items": items }).to_string(),
    )
        .into_response()
}

/// Scenario (ix)'s in-process source: each call answers one element's document from memory.
struct Memory;

#[async_trait::async_trait]
impl api_orchestrator::source::DataSource for Memory {
    async fn fetch(
        &self,
        call: api_orchestrator::source::SourceCall<'_>,
    ) -> Result<Value, api_orchestrator::source::SourceError> {
        Ok(item(call.params["id"].as_i64().unwrap_or_default()))
    }
}

/// Scenario (ix)'s variants: path segment, the source, what one request calls.
const FOR_EACH_VARIANTS: [(&str, &str, &str); 5] = [
    (
        "memory",
        "in-process (a registered `DataSource`), per item",
        "1,000 calls",
    ),
    ("sqlite", "SQLite, per item", "1,000 queries"),
    (
        "sqlite-batched",
        "SQLite, `batch: {size: 100}` (`IN`)",
        "10 queries",
    ),
    ("http", "HTTP backend, per item", "1,000 GETs"),
    (
        "http-batched",
        "HTTP backend, `batch: {size: 100}`",
        "10 POSTs",
    ),
];

/// Scenario (ix)'s config: one endpoint per variant, each `for_each` over the 1,000 ids a
/// `direct` source holds, answering the elements' ids and names.
fn for_each_config(dir: &Path, backend: SocketAddr, db: &Path) {
    let ids: Vec<String> = (1..=ITEMS).map(|i| i.to_string()).collect();
    let ids = ids.join(", ");
    let endpoint = |variant: &str, source: &str, id: &str| {
        format!(
            "  each_{name}:\n    path: /each/{variant}\n    method: [GET]\n    data_sources:\n      - {{name: keys, type: direct, params: {{ids: [{ids}]}}}}\n      - {{name: p, for_each: \"$keys.ids\", {source}}}\n    response_mapping: {{ids: \"$p[*].{id}\", names: \"$p[*].name\"}}\n",
            name = variant.replace('-', "_")
        )
    };
    let domain = [
        endpoint("memory", "type: memory, params: {id: \"$item\"}", "id"),
        endpoint(
            "sqlite",
            "type: database, operation: customer, params: {id: \"$item\"}",
            "customer_id",
        ),
        endpoint(
            "sqlite-batched",
            &format!("type: database, operation: customers, batch: {{size: {BATCH}}}, params: {{ids: \"$item\"}}"),
            "customer_id",
        ),
        endpoint("http", "type: api, operation: item, params: {id: \"$item\"}", "id"),
        endpoint(
            "http-batched",
            &format!("type: api, operation: items, batch: {{size: {BATCH}}}, params: {{ids: \"$item\"}}"),
            "id",
        ),
    ]
    .concat();
    write_files(
        dir,
        &[
            (
                "database.yaml",
                format!(
                    "database:\n  sources:\n    default: {{connection_string: \"sqlite:{}\", pool_size: 8}}\n  operations:\n    customer:\n      query: \"SELECT customer_id, name, email, segment, city FROM customers WHERE customer_id = :id\"\n      params: {{id: integer}}\n    customers:\n      query: \"SELECT customer_id, name, email, segment, city FROM customers WHERE customer_id IN (:ids)\"\n      params: {{ids: integer}}\n      batch: {{param: ids, key: customer_id}}\n",
                    db.display()
                ),
            ),
            (
                "integrations/api_sources.yaml",
                format!(
                    "api:\n  sources:\n    backend:\n      base_url: \"http://{backend}\"\n      timeout: 5s\n      operations:\n        item: {{path: \"/item/{{id}}\"}}\n        items: {{method: POST, path: /items, body: {{ids: \"{{ids}}\"}}, extract: /items, batch: {{param: ids, match: id}}}}\n"
                ),
            ),
            ("domains/each.yaml", format!("endpoints:\n{domain}")),
        ],
    );
}

/// `GET /each/{variant}`: scenario (ix) by hand, with the same clients as scenario (i)'s
/// hand-written handler: the same calls, [`IN_FLIGHT`] at a time, each answer parsed, batch
/// answers matched back by key, then the same `{ids, names}`.
async fn manual_for_each(
    State(m): State<Manual>,
    UrlPath(variant): UrlPath<String>,
) -> axum::response::Response {
    match for_each_by_hand(&m, &variant).await {
        Some(body) => (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        None => axum::http::StatusCode::BAD_GATEWAY.into_response(),
    }
}

async fn for_each_by_hand(m: &Manual, variant: &str) -> Option<Vec<u8>> {
    use futures::{StreamExt as _, TryStreamExt as _};
    use sqlx::Row as _;
    let ids: Vec<i64> = (1..=ITEMS).collect();
    let row = |r: sqlx::sqlite::SqliteRow| {
        json!({"customer_id": r.get::<i64, _>(0), "name": r.get::<String, _>(1), "email": r.get::<Option<String>, _>(2),
               "segment": r.get::<Option<String>, _>(3), "city": r.get::<Option<String>, _>(4)})
    };
    let get = |url: String| async move {
        let r = m.client.get(url).send().await.ok()?;
        serde_json::from_slice::<Value>(&r.bytes().await.ok()?).ok()
    };
    // Batches answered in any order, put back in the order of `ids`.
    let by_key = |answers: Vec<Vec<Value>>, key: &str| {
        let mut found: std::collections::HashMap<i64, Value> = answers
            .into_iter()
            .flatten()
            .filter_map(|v| Some((v[key].as_i64()?, v)))
            .collect();
        ids.iter()
            .map(|id| found.remove(id).unwrap_or(Value::Null))
            .collect::<Vec<_>>()
    };
    let (docs, key): (Vec<Value>, _) = match variant {
        "memory" => (
            futures::stream::iter(ids.clone())
                .map(|id| async move { item(id) })
                .buffered(IN_FLIGHT)
                .collect()
                .await,
            "id",
        ),
        "sqlite" => (
            futures::stream::iter(ids.clone())
                .map(|id| {
                    sqlx::query("SELECT customer_id, name, email, segment, city FROM customers WHERE customer_id = ?1")
                        .bind(id)
                        .fetch_optional(&m.pool)
                })
                .buffered(IN_FLIGHT)
                .map_ok(|r| r.map_or(Value::Null, row))
                .try_collect()
                .await
                .ok()?,
            "customer_id",
        ),
        "sqlite-batched" => {
            let answers: Vec<Vec<Value>> = futures::stream::iter(ids.chunks(BATCH).map(<[i64]>::to_vec))
                .map(|chunk| async move {
                    let marks = vec!["?"; chunk.len()].join(", ");
                    let sql = format!("SELECT customer_id, name, email, segment, city FROM customers WHERE customer_id IN ({marks})");
                    // Only placeholders are formatted in: the ids are bound.
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                    for id in chunk {
                        q = q.bind(id);
                    }
                    let rows = q.fetch_all(&m.pool).await?;
                    Ok::<_, sqlx::Error>(rows.into_iter().map(row).collect())
                })
                .buffered(IN_FLIGHT)
                .try_collect()
                .await
                .ok()?;
            (by_key(answers, "customer_id"), "customer_id")
        }
        "http" => (
            futures::stream::iter(ids.clone())
                .map(|id| get(format!("http://{}/item/{id}", m.backend)))
                .buffered(IN_FLIGHT)
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<Option<_>>()?,
            "id",
        ),
        "http-batched" => {
            let url = format!("http://{}/items", m.backend);
            let answers: Vec<Vec<Value>> = futures::stream::iter(ids.chunks(BATCH).map(<[i64]>::to_vec))
                .map(|chunk| {
                    let request = m
                        .client
                        .post(&url)
                        .header(axum::http::header::CONTENT_TYPE, "application/json")
                        .body(json!({ "ids": chunk }).to_string());
                    async move {
                        let r = request.send().await.ok()?;
                        let mut answer = serde_json::from_slice::<Value>(&r.bytes().await.ok()?).ok()?;
                        match answer["items"].take() {
                            Value::Array(items) => Some(items),
                            _ => None,
                        }
                    }
                })
                .buffered(IN_FLIGHT)
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<Option<_>>()?;
            (by_key(answers, "id"), "id")
        }
        _ => return None,
    };
    let ids: Vec<Value> = docs
        .iter()
        .map(|d| d[key].clone())
        .filter(|v| !v.is_null())
        .collect();
    let names: Vec<Value> = docs
        .iter()
        .map(|d| d["name"].clone())
        .filter(|v| !v.is_null())
        .collect();
    serde_json::to_vec(&json!({ "ids": ids, "names": names })).ok()
}

// ---------------------------------------------------------------- serving

/// A server under test: its base URL and a way to stop it.
struct Served {
    base: String,
    stop: Box<dyn FnOnce()>,
}

fn serve_axum(rt: &tokio::runtime::Runtime, app: axum::Router) -> Served {
    let (addr, task) = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        (
            addr,
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() }),
        )
    });
    Served {
        base: format!("http://{addr}"),
        stop: Box::new(move || task.abort()),
    }
}

/// `api` mounted at the root of a bare hyper HTTP/1.1 server (no axum router): what axum
/// costs around the library's own routing.
fn serve_hyper(rt: &tokio::runtime::Runtime, api: Api) -> Served {
    let (addr, task) = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let api = api.clone();
                let service = hyper::service::service_fn(move |req| {
                    tower::Service::call(&mut api.clone(), req)
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
                );
            }
        });
        (addr, task)
    });
    Served {
        base: format!("http://{addr}"),
        stop: Box::new(move || task.abort()),
    }
}

/// Scenario (vi)'s servers in actix-web, each with HTTP clients and pools of its own, so that
/// their connections are made (and their I/O driven) on actix's worker rather than on the axum
/// server's runtime: (a) the plans of `config` below `/api`, (b) the hand-written handler at
/// `/overview/{id}`.
fn serve_actix_pair(
    rt: &tokio::runtime::Runtime,
    config: &Path,
    db: &Path,
    backend: SocketAddr,
) -> (Served, Served) {
    let plans = rt.block_on(async { Orchestrator::from_dir(config).unwrap() });
    let api = Api::new(&plans);
    let library = serve_actix(move |cfg| {
        cfg.service(
            actix_web::web::scope("/api")
                .configure(api_orchestrator::web::actix::configure(api.clone())),
        );
    });
    let manual = actix_web::web::Data::new(Manual::new(rt, db, backend));
    let hand = serve_actix(move |cfg| {
        cfg.app_data(manual.clone()).route(
            "/overview/{id}",
            actix_web::web::get().to(manual_overview_actix),
        );
    });
    (library, hand)
}

/// An actix-web server with one worker whose app is configured by `configure`.
fn serve_actix<F>(configure: F) -> Served
where
    F: Fn(&mut actix_web::web::ServiceConfig) + Clone + Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = actix_web::HttpServer::new(move || {
                actix_web::App::new().configure(configure.clone())
            })
            .workers(1)
            .bind(("127.0.0.1", 0))
            .unwrap();
            let addr = server.addrs()[0];
            let server = server.run();
            tx.send((addr, server.handle())).unwrap();
            let _ = server.await;
        });
    });
    let (addr, handle) = rx.recv().unwrap();
    Served {
        base: format!("http://{addr}"),
        stop: Box::new(move || drop(handle.stop(false))),
    }
}

// ---------------------------------------------------------------- load generation

/// One measured round.
#[derive(Debug, Clone)]
struct Round {
    requests: u64,
    rps: f64,
    p50: Duration,
    p99: Duration,
    max: Duration,
    errors: u64,
    /// CPU time of the serving side per request: every thread but the load generator's and the
    /// backend's (so the server runtime, actix's workers and sqlx's SQLite worker).
    cpu_per_request: Duration,
}

/// CPU time used so far by the process's threads that serve (not `load`, not `backend`), from
/// `/proc/self/task/*/schedstat` (nanoseconds on CPU). Unlike throughput, this barely moves
/// with how the two cores happen to be shared between the threads.
fn serving_cpu() -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    let mut ns = 0u64;
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if matches!(comm.trim(), "load" | "backend") {
            continue;
        }
        ns += std::fs::read_to_string(task.path().join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
    }
    Duration::from_nanos(ns)
}

/// Closed loop: `concurrency` tasks each send the next request when the last one answered.
fn drive(
    rt: &tokio::runtime::Runtime,
    url: &str,
    concurrency: usize,
    warmup: Duration,
    length: Duration,
) -> Round {
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(concurrency)
            .build()
            .unwrap();
        let run = |d: Duration| {
            let client = client.clone();
            let url = url.to_owned();
            async move {
                let stop = Arc::new(AtomicBool::new(false));
                let mut tasks = Vec::new();
                for _ in 0..concurrency {
                    let (client, url, stop) = (client.clone(), url.clone(), stop.clone());
                    tasks.push(tokio::spawn(async move {
                        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
                        let mut errors = 0u64;
                        while !stop.load(Ordering::Relaxed) {
                            let t = Instant::now();
                            match client.get(&url).send().await {
                                Ok(r) if r.status().is_success() => {
                                    let _ = r.bytes().await;
                                    h.record(t.elapsed().as_micros().max(1) as u64).unwrap();
                                }
                                _ => errors += 1,
                            }
                        }
                        (h, errors)
                    }));
                }
                let start = Instant::now();
                let cpu = serving_cpu();
                tokio::time::sleep(d).await;
                stop.store(true, Ordering::Relaxed);
                let cpu = serving_cpu().saturating_sub(cpu);
                let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
                let mut errors = 0;
                for t in tasks {
                    let (h, e) = t.await.unwrap();
                    all.add(h).unwrap();
                    errors += e;
                }
                let elapsed = start.elapsed();
                Round {
                    requests: all.len(),
                    rps: all.len() as f64 / elapsed.as_secs_f64(),
                    p50: Duration::from_micros(all.value_at_quantile(0.5)),
                    p99: Duration::from_micros(all.value_at_quantile(0.99)),
                    max: Duration::from_micros(all.max()),
                    errors,
                    cpu_per_request: cpu / u32::try_from(all.len().max(1)).unwrap_or(u32::MAX),
                }
            }
        };
        run(warmup).await;
        run(length).await
    })
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn ratios(values: &mut [f64]) -> String {
    values.sort_by(f64::total_cmp);
    format!(
        "min {:.3} / median {:.3} / max {:.3}",
        values[0],
        values[values.len() / 2],
        values[values.len() - 1]
    )
}

/// The JSON `a` and `b` both answer (checked to be the same).
fn answers(load: &tokio::runtime::Runtime, a: &str, b: &str) -> Value {
    let (da, db) = load.block_on(async {
        let c = reqwest::Client::new();
        let get = |u: &str| {
            let req = c.get(u);
            async move {
                serde_json::from_slice::<Value>(&req.send().await.unwrap().bytes().await.unwrap())
                    .unwrap()
            }
        };
        (get(a).await, get(b).await)
    });
    assert_eq!(da, db, "{a} and {b} must answer the same JSON");
    da
}

/// Checks that `a` and `b` answer the same 20-field document.
fn same_document(load: &tokio::runtime::Runtime, a: &str, b: &str) {
    let da = answers(load, a, b);
    assert_eq!(da.as_object().map(Map::len), Some(20), "{da}");
}

/// Checks that `a` and `b` answer the same ids and names of all [`ITEMS`] elements, in order.
fn same_elements(load: &tokio::runtime::Runtime, a: &str, b: &str) {
    let da = answers(load, a, b);
    let ids: Vec<i64> = (1..=ITEMS).collect();
    assert_eq!(da["ids"], json!(ids), "{a}");
    assert_eq!(da["names"].as_array().map(Vec::len), Some(ids.len()), "{a}");
}

/// A B A B … rounds; prints each variant's rounds and the A/B ratios.
fn compare(title: &str, load: &tokio::runtime::Runtime, a: &str, b: &str, budget: Budget) {
    compare_named(
        title,
        load,
        ("(a) library", a),
        ("(b) hand-written", b),
        budget,
    );
}

/// [`compare`] with the variants' names.
fn compare_named(
    title: &str,
    load: &tokio::runtime::Runtime,
    (name_a, a): (&str, &str),
    (name_b, b): (&str, &str),
    budget: Budget,
) {
    println!("\n## {title}\n");
    println!(
        "| round | variant | req/s | p50 | p99 | max | serving CPU per request | errors |\n|---|---|---|---|---|---|---|---|"
    );
    let (mut rps, mut p99, mut cpu) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=budget.rounds {
        let ra = drive(load, a, budget.concurrency, budget.warmup, budget.round);
        let rb = drive(load, b, budget.concurrency, budget.warmup, budget.round);
        for (name, r) in [(name_a, &ra), (name_b, &rb)] {
            println!(
                "| {round} | {name} | {:.0} | {} | {} | {} | {:.1} µs | {} |",
                r.rps,
                ms(r.p50),
                ms(r.p99),
                ms(r.max),
                r.cpu_per_request.as_secs_f64() * 1e6,
                r.errors
            );
        }
        rps.push(ra.rps / rb.rps);
        p99.push(ra.p99.as_secs_f64() / rb.p99.as_secs_f64());
        cpu.push(ra.cpu_per_request.as_secs_f64() / rb.cpu_per_request.as_secs_f64());
    }
    println!("\nthroughput (a)/(b): {}", ratios(&mut rps));
    println!("p99 (a)/(b): {}", ratios(&mut p99));
    println!("serving CPU per request (a)/(b): {}", ratios(&mut cpu));
}

/// Serves config `dir` through the library and drives `path` with 1 and with 8 clients: one
/// client measures what orchestration adds to the sources' latency, eight add queueing on the
/// shared cores.
fn measure_dir(
    server_rt: &tokio::runtime::Runtime,
    load_rt: &tokio::runtime::Runtime,
    dir: &Path,
    path: &str,
    budget: Budget,
) -> [Round; 2] {
    let o = server_rt.block_on(async { Orchestrator::from_dir(dir).unwrap() });
    let s = serve_axum(
        server_rt,
        axum::Router::new().fallback_service(Api::new(&o)),
    );
    let url = format!("{}{path}", s.base);
    let r = [1, 8].map(|clients| drive(load_rt, &url, clients, budget.warmup, budget.round));
    (s.stop)();
    r
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// The command line: which scenarios, how long, or one variant for a profiler.
struct Args {
    budget: Budget,
    smoke: bool,
    only: Option<Vec<String>>,
    /// `--profile VARIANT SECS`.
    profile: Option<(String, u64)>,
}

impl Args {
    const SCENARIOS: [&str; 9] = ["i", "ii", "iii", "iv", "v", "vi", "vii", "viii", "ix"];

    fn parse() -> Self {
        let argv: Vec<String> = std::env::args().collect();
        let smoke = argv.iter().any(|a| a == "--smoke");
        // `--only ii,iii`: run only these scenarios (while working on one).
        let only: Option<Vec<String>> = argv
            .iter()
            .position(|a| a == "--only")
            .and_then(|i| argv.get(i + 1))
            .map(|list| list.split(',').map(str::to_owned).collect());
        if let Some(unknown) = only
            .iter()
            .flatten()
            .find(|s| !Self::SCENARIOS.contains(&s.as_str()))
        {
            panic!(
                "--only {unknown}: the scenarios are {}",
                Self::SCENARIOS.join(", ")
            );
        }
        let profile = argv.iter().position(|x| x == "--profile").map(|i| {
            (
                argv.get(i + 1).cloned().unwrap_or_else(|| "a".to_owned()),
                argv.get(i + 2).and_then(|s| s.parse().ok()).unwrap_or(20),
            )
        });
        Self {
            budget: if smoke { SMOKE } else { FULL },
            smoke,
            only,
            profile,
        }
    }

    fn wants(&self, scenario: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|o| o.iter().any(|s| s == scenario))
    }
}

/// What the OTLP sink of the `obs-…` variants received: exports, and bytes of protobuf.
static EXPORTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static EXPORTED_BYTES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Prints what the OTLP sink received since the last call.
fn print_exports() {
    let (n, bytes) = (
        EXPORTS.swap(0, Ordering::Relaxed),
        EXPORTED_BYTES.swap(0, Ordering::Relaxed),
    );
    println!(
        "\nthe OTLP sink received {n} exports, {} KiB of spans",
        bytes / 1024
    );
}

/// What the scenarios share: the runtimes, the backends, and scenario (i)'s two servers, (a)
/// the library mounted in axum and (b) the hand-written axum handlers (which also serve the
/// hand-written fan-out of scenario ii).
struct Harness {
    budget: Budget,
    server_rt: tokio::runtime::Runtime,
    load_rt: tokio::runtime::Runtime,
    backend: SocketAddr,
    work: tempfile::TempDir,
    db: std::path::PathBuf,
    /// Scenario (i)'s config directory.
    config: std::path::PathBuf,
    library: Served,
    hand: Served,
    /// Scenario (i)'s URLs: (a) and (b).
    a: String,
    b: String,
    // Last, so that it stops after the servers that call it.
    backend_rt: tokio::runtime::Runtime,
}

impl Harness {
    /// Starts the backends and scenario (i)'s servers, and checks that both answer the same.
    fn start(budget: Budget) -> Self {
        let backend_rt = runtime("backend");
        let server_rt = runtime("server");
        let load_rt = runtime("load");
        let backend = start_backend(&backend_rt);
        let work = tempfile::tempdir().unwrap();
        let db = work.path().join("bench.db");
        server_rt.block_on(seed_sqlite(&db));
        let config = work.path().join("overhead");
        overhead_config(&config, backend, &db);
        let plans = server_rt.block_on(async { Orchestrator::from_dir(&config).unwrap() });
        let library = serve_axum(
            &server_rt,
            axum::Router::new().nest_service("/api", Api::new(&plans)),
        );
        let hand = serve_axum(
            &server_rt,
            axum::Router::new()
                .route("/overview/{id}", get(manual_overview))
                .route("/fan/{n}", get(manual_fan_out))
                .route("/each/{variant}", get(manual_for_each))
                .with_state(Manual::new(&server_rt, &db, backend)),
        );
        let a = format!("{}/api/overview/42", library.base);
        let b = format!("{}/overview/42", hand.base);
        same_document(&load_rt, &a, &b);
        Self {
            budget,
            server_rt,
            load_rt,
            backend,
            work,
            db,
            config,
            library,
            hand,
            a,
            b,
            backend_rt,
        }
    }

    /// `--profile VARIANT SECS`: drives one variant only, for a profiler. VARIANT is `a` or `b`
    /// (scenario i at full concurrency), `actix-a` or `actix-b` (scenario vi) or `fanN-a` /
    /// `fanN-b` (scenario ii, N sources, 1 client).
    fn profile(&self, variant: &str, secs: u64) {
        let mut _served = Vec::new();
        // The OTLP exporter of the `obs-…` variants, kept until the run ends.
        let mut exporter = None;
        let (url, concurrency) = match variant.strip_prefix("fan").and_then(|v| v.split_once('-')) {
            Some((n, which)) => {
                let n: usize = n.parse().expect("--profile fanN-a|fanN-b");
                assert!(
                    matches!(which, "a" | "b"),
                    "--profile {variant}: use fan{n}-a or fan{n}-b"
                );
                let url = if which == "b" {
                    format!("{}/fan/{n}", self.hand.base)
                } else {
                    let dir = self.work.path().join(format!("fan{n}"));
                    fan_out_config(&dir, self.backend, n);
                    let o = self
                        .server_rt
                        .block_on(async { Orchestrator::from_dir(&dir).unwrap() });
                    let s = serve_axum(
                        &self.server_rt,
                        axum::Router::new().fallback_service(Api::new(&o)),
                    );
                    let url = format!("{}/fan", s.base);
                    _served.push(s);
                    url
                };
                (url, 1)
            }
            // Scenario (ix), one variant, one client.
            None if variant.starts_with("each-") => {
                let (each, which) = variant
                    .strip_prefix("each-")
                    .and_then(|v| v.rsplit_once('-'))
                    .filter(|(each, which)| {
                        FOR_EACH_VARIANTS.iter().any(|(v, ..)| v == each)
                            && matches!(*which, "a" | "b")
                    })
                    .unwrap_or_else(|| {
                        panic!("--profile {variant}: use each-VARIANT-a or each-VARIANT-b, VARIANT one of memory, sqlite, sqlite-batched, http, http-batched")
                    });
                let url = if which == "b" {
                    format!("{}/each/{each}", self.hand.base)
                } else {
                    let served = self.for_each_library();
                    let url = format!("{}/each/{each}", served.base);
                    _served.push(served);
                    url
                };
                (url, 1)
            }
            None if variant == "a" => (self.a.clone(), self.budget.concurrency),
            // Scenario (i)'s plans with metrics, and traces sampled at 1 % or 100 %.
            None if matches!(variant, "obs-metrics" | "obs-0" | "obs-1" | "obs-100") => {
                let ratio = match variant {
                    "obs-0" => Some(0.0),
                    "obs-1" => Some(0.01),
                    "obs-100" => Some(1.0),
                    _ => None,
                };
                let (served, tracing) = self.observed(ratio);
                let url = format!("{}/api/overview/42", served.base);
                _served.push(served);
                exporter = tracing;
                (url, self.budget.concurrency)
            }
            None if variant == "b" => (self.b.clone(), self.budget.concurrency),
            // Scenario (i)'s plans on a bare hyper server instead of axum.
            None if variant == "hyper-a" => {
                let plans = self
                    .server_rt
                    .block_on(async { Orchestrator::from_dir(&self.config).unwrap() });
                let served = serve_hyper(&self.server_rt, Api::new(&plans));
                let url = format!("{}/overview/42", served.base);
                _served.push(served);
                (url, self.budget.concurrency)
            }
            None if variant == "actix-a" || variant == "actix-b" => {
                let (library, hand) = self.actix_pair();
                let url = if variant == "actix-a" {
                    format!("{}/api/overview/42", library.base)
                } else {
                    format!("{}/overview/42", hand.base)
                };
                _served.extend([library, hand]);
                (url, self.budget.concurrency)
            }
            None => {
                panic!(
                    "--profile {variant}: use a, b, hyper-a, actix-a, actix-b, fanN-a, fanN-b, obs-metrics, obs-1, obs-100 or each-VARIANT-a|b"
                )
            }
        };
        let r = drive(
            &self.load_rt,
            &url,
            concurrency,
            Duration::ZERO,
            Duration::from_secs(secs),
        );
        println!(
            "{url}: {} requests, {:.0} req/s, p50 {}, p99 {}, serving CPU {:.1} µs per request",
            r.requests,
            r.rps,
            ms(r.p50),
            ms(r.p99),
            r.cpu_per_request.as_secs_f64() * 1e6
        );
        if exporter.is_some() {
            drop(exporter);
            print_exports();
        }
    }

    /// Scenario (vi)'s two actix-web servers, checked to answer the same document.
    fn actix_pair(&self) -> (Served, Served) {
        let (library, hand) =
            serve_actix_pair(&self.server_rt, &self.config, &self.db, self.backend);
        same_document(
            &self.load_rt,
            &format!("{}/api/overview/42", library.base),
            &format!("{}/overview/42", hand.base),
        );
        (library, hand)
    }

    /// (i) overhead, axum: library vs hand-written.
    fn overhead_axum(&self) {
        compare(
            "(i) overhead: 3 HTTP sources + 1 SQLite lookup, 20-field mapping (axum)",
            &self.load_rt,
            &self.a,
            &self.b,
            self.budget,
        );
    }

    /// (vi) the same in actix-web: the library mounted there against a handler written for it.
    fn overhead_actix(&self) {
        let (library, hand) = self.actix_pair();
        compare(
            "(vi) overhead: 3 HTTP sources + 1 SQLite lookup, 20-field mapping (actix-web)",
            &self.load_rt,
            &format!("{}/api/overview/42", library.base),
            &format!("{}/overview/42", hand.base),
            self.budget,
        );
        (library.stop)();
        (hand.stop)();
    }

    /// Scenario (i)'s plans served with metrics and traces sampled at `ratio` (or none),
    /// exported over OTLP/HTTP to a sink on the backend's runtime (a collector is another
    /// process); the exporter lives as long as the returned value.
    fn observed(&self, ratio: Option<f64>) -> (Served, Option<Tracing>) {
        let sink = serve_axum(
            &self.backend_rt,
            axum::Router::new().route(
                "/v1/traces",
                axum::routing::post(|body: axum::body::Bytes| async move {
                    EXPORTS.fetch_add(1, Ordering::Relaxed);
                    EXPORTED_BYTES.fetch_add(body.len() as u64, Ordering::Relaxed);
                    ""
                }),
            ),
        );
        let (app, tracing) = self.server_rt.block_on(async {
            let mut settings = api_orchestrator::plan::Settings::default();
            settings.telemetry.endpoint = ratio.map(|_| sink.base.clone());
            settings.telemetry.sampling_ratio = ratio.unwrap_or(1.0);
            let tracing = Tracing::from_settings(&settings).expect("the exporter builds");
            let mut builder = Orchestrator::builder();
            if let Some(t) = &tracing {
                builder = builder.tracer(t.tracer());
            }
            let m = Metrics::new();
            builder = builder.metrics(&m);
            let plans = builder.load_dir(&self.config).unwrap();
            let app = axum::Router::new()
                .nest_service("/api", Api::new(&plans))
                .route_service("/metrics", m);
            (app, tracing)
        });
        (serve_axum(&self.server_rt, app), tracing)
    }

    /// (viii) observability overhead: scenario (i)'s plans with metrics, with traces sampled
    /// at 1 % and at 100 % as well, each against the same plans with neither.
    fn observability(&self) {
        for (name, ratio) in [
            ("metrics", None),
            ("metrics + traces 1 %", Some(0.01)),
            ("metrics + traces 100 %", Some(1.0)),
        ] {
            let (served, _tracing) = self.observed(ratio);
            let url = format!("{}/api/overview/42", served.base);
            same_document(&self.load_rt, &url, &self.b);
            compare_named(
                &format!("(viii) observability: {name} vs off (scenario i's plans)"),
                &self.load_rt,
                (name, &url),
                ("off", &self.a),
                self.budget,
            );
            (served.stop)();
            drop(_tracing);
            print_exports();
        }
    }

    /// (iv) memory: RSS after warm-up and after a soak at saturation (the whole process:
    /// server, backend and load generator share it).
    fn memory(&self) {
        let budget = self.budget;
        println!("\n## (iv) memory\n");
        drive(
            &self.load_rt,
            &self.a,
            budget.concurrency,
            budget.warmup,
            budget.round,
        );
        let warm = rss_kib();
        drive(
            &self.load_rt,
            &self.a,
            budget.concurrency,
            Duration::ZERO,
            budget.soak,
        );
        let soaked = rss_kib();
        println!(
            "RSS after warm-up {warm} KiB, after {:?} at saturation {soaked} KiB: growth {:+.1} %",
            budget.soak,
            (soaked as f64 / warm.max(1) as f64 - 1.0) * 100.0
        );
    }

    /// (ii) fan-out: N independent sources, each 20 ms; the library against the same calls
    /// made by hand.
    fn fan_out(&self) {
        let budget = self.budget;
        println!("\n## (ii) fan-out: N independent sources, each answering after 20 ms\n");
        println!(
            "| N | clients | (a) library req/s | p50 | p99 | (b) hand-written req/s | p50 | p99 |\n|---|---|---|---|---|---|---|---|"
        );
        for &n in budget.fan_out {
            let dir = self.work.path().join(format!("fan{n}"));
            fan_out_config(&dir, self.backend, n);
            let library = measure_dir(&self.server_rt, &self.load_rt, &dir, "/fan", budget);
            let by_hand = [1, 8].map(|clients| {
                drive(
                    &self.load_rt,
                    &format!("{}/fan/{n}", self.hand.base),
                    clients,
                    budget.warmup,
                    budget.round,
                )
            });
            for ((clients, a), b) in [1, 8].iter().zip(library).zip(by_hand) {
                println!(
                    "| {n} | {clients} | {:.0} | {} | {} | {:.0} | {} | {} |",
                    a.rps,
                    ms(a.p50),
                    ms(a.p99),
                    b.rps,
                    ms(b.p50),
                    ms(b.p99),
                );
            }
        }
    }

    /// (iii) a chain of depth 4: each source reads the previous one's result.
    fn chain(&self) {
        println!("\n## (iii) chain of depth 4 (each hop 5 ms)\n");
        let dir = self.work.path().join("chain");
        let backend = self.backend;
        write_files(
            &dir,
            &[
                ("integrations/api_sources.yaml", format!("api:\n  sources:\n    backend:\n      base_url: \"http://{backend}\"\n      operations:\n        hop: {{path: \"/delay/5/{{from}}\"}}\n")),
                (
                    "domains/chain.yaml",
                    "endpoints:\n  chain:\n    path: /chain\n    method: [GET]\n    data_sources:\n      - {name: a, type: api, operation: hop, params: {from: start}}\n      - {name: b, type: api, operation: hop, params: {from: \"$a.source\"}}\n      - {name: c, type: api, operation: hop, params: {from: \"$b.source\"}}\n      - {name: d, type: api, operation: hop, params: {from: \"$c.source\"}}\n    response_mapping: {last: \"$d.source\"}\n".to_owned(),
                ),
            ],
        );
        println!("| depth | clients | req/s | p50 | p99 | max |\n|---|---|---|---|---|---|");
        for (clients, r) in [1, 8].iter().zip(measure_dir(
            &self.server_rt,
            &self.load_rt,
            &dir,
            "/chain",
            self.budget,
        )) {
            println!(
                "| 4 | {clients} | {:.0} | {} | {} | {} |",
                r.rps,
                ms(r.p50),
                ms(r.p99),
                ms(r.max)
            );
        }
    }

    /// (vii) a cached 20 ms source: with every request a hit, throughput is the server's, as
    /// with a source that makes no I/O, not the source's.
    fn cached(&self) {
        let budget = self.budget;
        println!(
            "\n## (vii) one 20 ms API source: uncached, cached (`cache: 1m`, every request a hit), and a `direct` source (no I/O)\n"
        );
        println!(
            "| variant | clients | req/s | p50 | p99 | serving CPU per request |\n|---|---|---|---|---|---|"
        );
        let backend = self.backend;
        for (variant, source) in [
            (
                "uncached",
                "{name: s, type: api, operation: slow, params: {}}",
            ),
            (
                "cached",
                "{name: s, type: api, operation: slow, params: {}, cache: 1m}",
            ),
            (
                "direct",
                "{name: s, type: direct, params: {source: cached, score: 712}}",
            ),
        ] {
            let dir = self.work.path().join(format!("cache-{variant}"));
            write_files(
                &dir,
                &[
                    (
                        "integrations/api_sources.yaml",
                        format!(
                            "api:\n  sources:\n    backend:\n      base_url: \"http://{backend}\"\n      operations:\n        slow: {{path: \"/delay/20/cached\"}}\n"
                        ),
                    ),
                    (
                        "domains/cache.yaml",
                        format!(
                            "endpoints:\n  cached:\n    path: /cached\n    method: [GET]\n    data_sources:\n      - {source}\n    response_mapping: {{source: \"$s.source\", score: \"$s.score\"}}\n"
                        ),
                    ),
                ],
            );
            let o = self
                .server_rt
                .block_on(async { Orchestrator::from_dir(&dir).unwrap() });
            let served = serve_axum(
                &self.server_rt,
                axum::Router::new().fallback_service(Api::new(&o)),
            );
            let r = drive(
                &self.load_rt,
                &format!("{}/cached", served.base),
                budget.concurrency,
                budget.warmup,
                budget.round * 2,
            );
            assert_eq!(r.errors, 0, "{variant}: requests failed");
            println!(
                "| {variant} | {} | {:.0} | {} | {} | {:.1} µs |",
                budget.concurrency,
                r.rps,
                ms(r.p50),
                ms(r.p99),
                r.cpu_per_request.as_secs_f64() * 1e6
            );
            (served.stop)();
        }
    }

    /// Scenario (ix)'s plans served through the library.
    fn for_each_library(&self) -> Served {
        let dir = self.work.path().join("for_each");
        for_each_config(&dir, self.backend, &self.db);
        let o = self.server_rt.block_on(async {
            Orchestrator::builder()
                .register("memory", Memory)
                .load_dir(&dir)
                .unwrap_or_else(|e| panic!("{e}"))
        });
        serve_axum(
            &self.server_rt,
            axum::Router::new().fallback_service(Api::new(&o)),
        )
    }

    /// (ix) `for_each` over 1,000 elements: per item and batched, against an in-process
    /// source, SQLite and the HTTP backend; the library against the same loops by hand.
    fn for_each(&self) {
        let budget = self.budget;
        println!(
            "\n## (ix) for_each over {ITEMS} elements: per item ({IN_FLIGHT} in flight) and batched ({BATCH} per call)\n"
        );
        println!(
            "| source | per request | clients | (a) library req/s | p50 | p99 | serving CPU per request | (b) hand-written req/s | p50 | p99 | serving CPU per request | CPU (a)/(b) |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
        );
        let library = self.for_each_library();
        for (variant, source, calls) in FOR_EACH_VARIANTS {
            let a = format!("{}/each/{variant}", library.base);
            let b = format!("{}/each/{variant}", self.hand.base);
            same_elements(&self.load_rt, &a, &b);
            for clients in [1, 8] {
                let ra = drive(&self.load_rt, &a, clients, budget.warmup, budget.round);
                let rb = drive(&self.load_rt, &b, clients, budget.warmup, budget.round);
                assert_eq!(ra.errors + rb.errors, 0, "{variant}: requests failed");
                let us = |r: &Round| r.cpu_per_request.as_secs_f64() * 1e6;
                println!(
                    "| {source} | {calls} | {clients} | {:.0} | {} | {} | {:.0} µs | {:.0} | {} | {} | {:.0} µs | {:.2} |",
                    ra.rps,
                    ms(ra.p50),
                    ms(ra.p99),
                    us(&ra),
                    rb.rps,
                    ms(rb.p50),
                    ms(rb.p99),
                    us(&rb),
                    us(&ra) / us(&rb),
                );
            }
        }
        (library.stop)();
    }

    /// (v) load + validate time of generated configs.
    fn load_time(&self) {
        println!("\n## (v) load + validate, then the first request and `/openapi.json`\n");
        println!(
            "| endpoints | load + validate (best of 3) | first request (route table) | `/openapi.json` |\n|---|---|---|---|"
        );
        for &n in self.budget.load_sizes {
            let dir = self.work.path().join(format!("gen{n}"));
            let mut domain = String::from("endpoints:\n");
            for i in 0..n {
                domain.push_str(&format!(
                    "  e{i}:\n    data_sources:\n      - {{name: a, type: direct, params: {{id: \"$request.id\", n: {i}}}}}\n      - {{name: b, type: direct, params: {{x: \"$a.n\", y: \"$= $a.n * 2\"}}, retries: 2}}\n    response_mapping: {{id: \"$a.id\", twice: \"$b.y\", label: \"$a.label || 'none'\", nested: {{a: \"$b.x\"}}}}\n"
                ));
            }
            write_files(&dir, &[("domains/gen.yaml", domain)]);
            let best = (0..3)
                .map(|_| {
                    let t = Instant::now();
                    let plan = api_orchestrator::config::load_dir(&dir).unwrap();
                    assert_eq!(plan.endpoints.len(), n);
                    t.elapsed()
                })
                .min()
                .unwrap();
            let (first, openapi) = self.server_rt.block_on(async {
                let api = Api::new(&Orchestrator::from_dir(&dir).unwrap());
                let get = |path: String| {
                    let api = api.clone();
                    async move {
                        let t = Instant::now();
                        let request = axum::http::Request::get(path)
                            .body(api_orchestrator::web::Body::Empty)
                            .unwrap();
                        let status = api.handle(request).await.status();
                        assert_eq!(status, 200);
                        t.elapsed()
                    }
                };
                let last = n - 1;
                (
                    get(format!("/gen/e{last}?id=1")).await,
                    get("/openapi.json".to_owned()).await,
                )
            });
            println!("| {n} | {} | {} | {} |", ms(best), ms(first), ms(openapi));
        }
    }
}

fn main() {
    let args = Args::parse();
    let budget = args.budget;
    let _ = rustls::crypto::ring::default_provider().install_default();
    println!(
        "# orchestrator load harness{}",
        if args.smoke { " (smoke)" } else { "" }
    );
    println!(
        "\nconcurrency {}, {} rounds of {:?} per variant after {:?} of warm-up",
        budget.concurrency, budget.rounds, budget.round, budget.warmup
    );
    let mut h = Harness::start(budget);
    if let Some((variant, secs)) = &args.profile {
        h.profile(variant, *secs);
        return;
    }
    if args.wants("i") {
        h.overhead_axum();
    }
    if args.wants("vi") {
        h.overhead_actix();
    }
    if args.wants("iv") {
        h.memory();
    }
    if args.wants("viii") {
        h.observability();
    }
    // Scenario (i)'s library server is not needed any more.
    (std::mem::replace(&mut h.library.stop, Box::new(|| {})))();
    if args.wants("ii") {
        h.fan_out();
    }
    if args.wants("iii") {
        h.chain();
    }
    if args.wants("v") {
        h.load_time();
    }
    if args.wants("vii") {
        h.cached();
    }
    if args.wants("ix") {
        h.for_each();
    }
    println!("\ndone");
}
