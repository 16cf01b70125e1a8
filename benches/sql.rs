//! One named `single` lookup on SQLite through the engine, against the same query through
//! sqlx directly (same database file, same pool settings, a prepared statement each time).
//! The difference is the engine's share: param binding by declared type, placeholder
//! rewriting done at load, row → JSON decoding, the trace.
//!
//! ```text
//! cargo bench -p benches --bench sql
//! ```

use api_orchestrator::{Orchestrator, RequestContext};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Map, Value, json};
use sqlx::{Column as _, Row as _, SqlitePool};

const SCHEMA: &[&str] = &[
    "CREATE TABLE customers (customer_id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT, segment TEXT, credit_limit REAL)",
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000) \
     INSERT INTO customers SELECT i, 'Customer ' || i, 'c' || i || '@example.com', 'gold', 1000.5 FROM n",
];

const QUERY: &str =
    "SELECT customer_id, name, email, segment, credit_limit FROM customers WHERE customer_id = ?1";

fn setup(rt: &tokio::runtime::Runtime) -> (tempfile::TempDir, Orchestrator, SqlitePool) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bench.db");
    let url = format!("sqlite:{}", db.display());
    let pool = rt.block_on(async {
        let seed = SqlitePool::connect(&format!("{url}?mode=rwc"))
            .await
            .unwrap();
        for s in SCHEMA {
            sqlx::raw_sql(*s).execute(&seed).await.unwrap();
        }
        seed.close().await;
        sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(4)
            .connect(&url)
            .await
            .unwrap()
    });
    std::fs::create_dir_all(dir.path().join("domains")).unwrap();
    std::fs::write(
        dir.path().join("database.yaml"),
        format!(
            r#"
database:
  sources:
    default: {{connection_string: "{url}", pool_size: 4}}
  operations:
    get_customer:
      query: "SELECT customer_id, name, email, segment, credit_limit FROM customers WHERE customer_id = :customer_id"
      params: {{customer_id: integer}}
"#
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("domains/customers.yaml"),
        r#"
endpoints:
  get_customer:
    data_sources:
      - {name: profile, type: database, operation: get_customer, params: {customer_id: "$request.customer_id"}}
"#,
    )
    .unwrap();
    let o = Orchestrator::from_dir(dir.path()).unwrap();
    (dir, o, pool)
}

/// What a hand-written handler would do: bind, fetch one row, build the same JSON object.
async fn direct(pool: &SqlitePool, id: i64) -> Value {
    let row = sqlx::query(QUERY)
        .bind(id)
        .fetch_optional(pool)
        .await
        .unwrap();
    row.map_or(Value::Null, |r| {
        let mut m = Map::new();
        m.insert(r.column(0).name().into(), json!(r.get::<i64, _>(0)));
        m.insert(r.column(1).name().into(), json!(r.get::<String, _>(1)));
        m.insert(
            r.column(2).name().into(),
            json!(r.get::<Option<String>, _>(2)),
        );
        m.insert(
            r.column(3).name().into(),
            json!(r.get::<Option<String>, _>(3)),
        );
        m.insert(r.column(4).name().into(), json!(r.get::<Option<f64>, _>(4)));
        Value::Object(m)
    })
}

fn sql(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (_dir, o, pool) = setup(&rt);
    let request = RequestContext::new()
        .with_path_param("customer_id", "42")
        .with_request_id("bench");
    // Sanity: both paths produce the same document.
    let via_engine = rt
        .block_on(o.execute("get_customer", request.clone()))
        .unwrap()
        .response;
    assert_eq!(via_engine, rt.block_on(direct(&pool, 42)));
    assert_eq!(via_engine["name"], "Customer 42");

    let mut g = c.benchmark_group("sqlite_single_lookup");
    let engine = o.engine();
    g.bench_function("engine", |b| {
        b.to_async(&rt)
            .iter(|| engine.execute("get_customer", &request));
    });
    g.bench_function("sqlx_direct", |b| {
        b.to_async(&rt).iter(|| direct(&pool, 42));
    });
    g.finish();
}

criterion_group!(benches, sql);
criterion_main!(benches);
