//! The `database` source against real databases: SQLite in memory and in a file always,
//! PostgreSQL and MySQL/MariaDB when `ORCHESTRATOR_TEST_POSTGRES_URL` /
//! `ORCHESTRATOR_TEST_MYSQL_URL` are set (`.ci/run` sets both).
//!
//! Every backend runs the same operation suite (return types, typed binding, the seed's
//! `get_customer_360`, injection attempts, errors) and a type round trip of its own column
//! types.

use std::path::Path;

use api_orchestrator::engine::{ExecuteError, Outcome};
use api_orchestrator::source::{DataSource, SourceCall, SourceError, SourceErrorKind};
use api_orchestrator::{Orchestrator, RequestContext};
use serde_json::{Value, json};
use tests::Captured;
use tests::db::{Backend, TestDb};

/// Stands in for the Feast server of the seed's `get_customer_360`.
struct Features;

#[async_trait::async_trait]
impl DataSource for Features {
    async fn fetch(&self, call: SourceCall<'_>) -> Result<Value, SourceError> {
        Ok(json!({
            "customer_id": call.params["customer_id"],
            "customer_lifetime_value": 1520.75,
            "purchase_frequency": 3.2
        }))
    }
}

const SCHEMA: &str = "
CREATE TABLE customers (customer_id BIGINT PRIMARY KEY, name VARCHAR(200) NOT NULL, email VARCHAR(200), segment VARCHAR(20));
CREATE TABLE orders (order_id BIGINT PRIMARY KEY, customer_id BIGINT NOT NULL, amount DECIMAL(10,2), status VARCHAR(20));
INSERT INTO customers VALUES (1, 'Ada Lovelace', 'ada@example.com', 'gold'), (2, 'Alan Turing', NULL, 'silver');
INSERT INTO orders VALUES (10, 1, 120.50, 'shipped'), (11, 1, 35.00, 'cancelled'), (12, 2, 80.25, 'open');
";

const OPERATIONS: &str = r#"
  operations:
    get_customer:
      query: "SELECT customer_id, name, email, segment FROM customers WHERE customer_id = :customer_id"
      params: {customer_id: integer}
    get_orders:
      query: "SELECT order_id, amount, status FROM orders WHERE customer_id = :customer_id ORDER BY order_id"
      params: {customer_id: integer}
      return_type: list
      columns: {amount: number}
    count_orders:
      query: "SELECT COUNT(*) AS n FROM orders WHERE customer_id = :customer_id"
      params: {customer_id: integer}
      return_type: value
    find_by_name:
      query: "SELECT customer_id, name FROM customers WHERE name = :name"
      params: [name]
      return_type: list
    add_note:
      query: "INSERT INTO notes (id, body) VALUES (:id, :body)"
      params: {id: integer, body: string}
      return_type: list
    get_note:
      query: "SELECT body FROM notes WHERE id = :id"
      params: {id: integer}
      return_type: value
    echo:
      query: "SELECT :big AS big, :small AS small, :ratio AS ratio, :label AS label, :big AS again"
      params: {big: integer, small: integer, ratio: number, label: string}
    broken:
      query: "SELECT * FROM no_such_table WHERE id = :id"
      params: {id: integer}
    all_types:
      query: "SELECT * FROM all_types ORDER BY id"
      return_type: list
      columns: {c_json_text: json}
"#;

const SUITE_ENDPOINTS: &str = r#"
endpoints:
  orders:
    data_sources:
      - {name: orders, type: database, operation: get_orders, params: {customer_id: "$request.customer_id"}}
  order_count:
    data_sources:
      - {name: n, type: database, operation: count_orders, params: {customer_id: "$request.customer_id"}}
  find_by_name:
    data_sources:
      - {name: found, type: database, operation: find_by_name, params: {name: "$request.name"}}
  add_note:
    data_sources:
      - {name: added, type: database, operation: add_note, params: {id: "$request.id", body: "$request.text"}}
  get_note:
    data_sources:
      - {name: note, type: database, operation: get_note, params: {id: "$request.id"}}
  echo:
    data_sources:
      - name: echo
        type: database
        operation: echo
        params: {big: "$request.big", small: "$request.small", ratio: "$request.ratio", label: "$request.label"}
  broken:
    data_sources:
      - {name: broken, type: database, operation: broken, params: {id: 1}}
  all_types:
    data_sources:
      - {name: rows, type: database, operation: all_types}
"#;

/// A config directory: the seed's, with `database.yaml` pointing at `db` and the suite's own
/// endpoints beside the seed's.
fn config_dir(db: &TestDb, extra_connection: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/valid/seed");
    for sub in ["", "domains", "integrations"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        for entry in std::fs::read_dir(seed.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                std::fs::copy(&path, dir.path().join(sub).join(path.file_name().unwrap())).unwrap();
            }
        }
    }
    let database = format!(
        "database:\n  sources:\n    default:\n      connection_string: \"{}\"\n      pool_size: 4\n{extra_connection}{OPERATIONS}",
        db.url
    );
    std::fs::write(dir.path().join("database.yaml"), database).unwrap();
    std::fs::write(dir.path().join("domains/suite.yaml"), SUITE_ENDPOINTS).unwrap();
    dir
}

/// A config directory with `database` as `database.yaml` and `endpoints` as the only domain.
fn small_config(database: impl AsRef<str>, endpoints: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("domains")).unwrap();
    std::fs::write(dir.path().join("database.yaml"), database.as_ref()).unwrap();
    std::fs::write(dir.path().join("domains/test.yaml"), endpoints).unwrap();
    dir
}

fn orchestrator(db: &TestDb, dir: &Path) -> Orchestrator {
    Orchestrator::builder()
        .env(|_| Some("test-token".into()))
        .register_factory("database", db.factory())
        .register("feast", Features)
        // The seed's other endpoints need these types to exist; this suite does not call them.
        .register("api", tests::Fixtures::default())
        .register("ml", tests::Fixtures::default())
        .load_dir(dir)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn request(params: &[(&str, Value)]) -> RequestContext {
    params.iter().fold(RequestContext::new(), |r, (k, v)| {
        r.with_query_param(*k, v.clone())
    })
}

async fn ok(o: &Orchestrator, endpoint: &str, params: &[(&str, Value)]) -> Value {
    match o.execute(endpoint, request(params)).await {
        Ok(e) => e.response,
        Err(e) => panic!("{endpoint} {params:?}: {e}"),
    }
}

async fn failed(o: &Orchestrator, endpoint: &str, params: &[(&str, Value)]) -> SourceError {
    match o.execute(endpoint, request(params)).await {
        Ok(e) => panic!("{endpoint} {params:?} should fail, got {}", e.response),
        Err(ExecuteError::SourceFailed { error, trace, .. }) => {
            assert_eq!(trace.sources[0].outcome, Outcome::Failed);
            error
        }
        // A value the request alone supplied that a parameter's type rejects: the client's.
        Err(ExecuteError::InvalidParameter { message, trace, .. }) => {
            assert_eq!(trace.sources[0].outcome, Outcome::Failed);
            SourceError::new(api_orchestrator::source::SourceErrorKind::Rejected, message)
        }
        Err(other) => panic!("{endpoint}: unexpected {other}"),
    }
}

/// The operation suite every backend must pass.
async fn suite(db: &TestDb) {
    db.exec(SCHEMA).await;
    let body = if db.is(Backend::MySql) {
        "LONGTEXT"
    } else {
        "TEXT"
    };
    db.exec(&format!(
        "CREATE TABLE notes (id BIGINT PRIMARY KEY, body {body})"
    ))
    .await;
    let dir = config_dir(db, "");
    let o = orchestrator(db, dir.path());

    // The seed's composite endpoint, its profile from this database.
    let c360 = o
        .execute(
            "get_customer_360",
            RequestContext::new().with_path_param("customer_id", "1"),
        )
        .await
        .unwrap_or_else(|e| panic!("get_customer_360: {e}"));
    assert_eq!(
        c360.response,
        json!({"id": 1, "name": "Ada Lovelace", "email": "ada@example.com",
               "lifetime_value": 1520.75, "purchase_frequency": 3.2})
    );
    assert_eq!(c360.trace.sources[0].outcome, Outcome::Ok);

    // single: the row, or null; list: every row in order; value: the first column.
    let q = |id: Value| [("customer_id", id)];
    assert_eq!(
        ok(&o, "get_customer", &q(json!("2"))).await,
        json!({"customer_id": 2, "name": "Alan Turing", "email": null, "segment": "silver"})
    );
    assert_eq!(ok(&o, "get_customer", &q(json!(99))).await, Value::Null);
    assert_eq!(
        ok(&o, "orders", &q(json!(1))).await,
        json!([{"order_id": 10, "amount": 120.5, "status": "shipped"},
               {"order_id": 11, "amount": 35.0, "status": "cancelled"}])
    );
    assert_eq!(ok(&o, "orders", &q(json!(99))).await, json!([]));
    assert_eq!(ok(&o, "order_count", &q(json!("1"))).await, json!(2));

    // Typed binding: 64-bit extremes, floats and text go in and come back unchanged.
    let echoed = ok(
        &o,
        "echo",
        &[
            ("big", json!(i64::MAX.to_string())),
            ("small", json!(i64::MIN)),
            ("ratio", json!("0.125")),
            ("label", json!(42)),
        ],
    )
    .await;
    assert_eq!(
        echoed,
        json!({"big": i64::MAX, "small": i64::MIN, "ratio": 0.125, "label": "42", "again": i64::MAX})
    );

    // A value that does not fit the declared type is rejected before it reaches the database.
    let e = failed(&o, "get_customer", &q(json!("1 OR 1=1"))).await;
    assert_eq!(e.kind, SourceErrorKind::Rejected);
    assert!(
        e.message
            .contains("operation `get_customer` on connection `default`: parameter `customer_id`: expected an integer"),
        "{}",
        e.message
    );

    // SQL errors are typed and name the operation; the text stays in the error for logs.
    let e = failed(&o, "broken", &[]).await;
    assert_eq!(e.kind, SourceErrorKind::Rejected, "{}", e.message);
    assert!(
        e.message
            .starts_with("operation `broken` on connection `default`: "),
        "{}",
        e.message
    );
    assert!(e.message.contains("no_such_table"), "{}", e.message);

    injection(db, &o).await;
}

/// Hostile values are data: lookups find nothing, stored values come back byte for byte, and
/// the tables are still there.
async fn injection(db: &TestDb, o: &Orchestrator) {
    let long = format!("{}' OR '1'='1", "x".repeat(100_000));
    let payloads = [
        "' OR 1=1 --",
        "'; DROP TABLE customers; --",
        "Robert'); DROP TABLE orders;--",
        "\" OR \"\"=\"",
        "\\'; SELECT 1; --",
        ":name",
        "$1",
        "?",
        "nul\0byte",
        long.as_str(),
        "Zoë 🚀 ü — 名前 'quoted' \"double\" ; --",
    ];
    for (i, payload) in payloads.iter().enumerate() {
        let lookup = o
            .execute("find_by_name", request(&[("name", json!(payload))]))
            .await;
        let stored = o
            .execute(
                "add_note",
                request(&[("id", json!(i)), ("text", json!(payload))]),
            )
            .await;
        if payload.contains('\0') && db.is(Backend::Postgres) {
            // PostgreSQL text cannot hold NUL: the server refuses the value, as data.
            for r in [lookup.err(), stored.err()] {
                match r {
                    Some(ExecuteError::SourceFailed { error, .. }) => {
                        assert_eq!(error.kind, SourceErrorKind::Rejected, "{}", error.message)
                    }
                    other => panic!("NUL on PostgreSQL: expected a rejection, got {other:?}"),
                }
            }
            continue;
        }
        let lookup = lookup.unwrap_or_else(|e| panic!("lookup {payload:?}: {e}"));
        assert_eq!(lookup.response, json!([]), "lookup {payload:?}");
        stored.unwrap_or_else(|e| panic!("store {payload:?}: {e}"));
        let back = ok(o, "get_note", &[("id", json!(i))]).await;
        assert_eq!(back, json!(payload), "round trip of payload {i}");
    }
    assert_eq!(db.count("customers").await, 2);
    assert_eq!(db.count("orders").await, 3);
    assert_eq!(
        ok(o, "find_by_name", &[("name", json!("Ada Lovelace"))]).await,
        json!([{"customer_id": 1, "name": "Ada Lovelace"}])
    );
}

/// Creates `all_types` from `(column type, SQL literal, expected JSON)` rows, reads it back
/// through the engine, and compares: one row with the values, one row of NULLs.
async fn round_trip(db: &TestDb, columns: &[(&str, &str, Value)]) {
    let defs: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, (ty, _, _))| format!("c{i} {ty}"))
        .collect();
    db.exec(&format!(
        "CREATE TABLE all_types (id INT PRIMARY KEY, {}, c_json_text TEXT)",
        defs.join(", ")
    ))
    .await;
    let literals: Vec<&str> = columns.iter().map(|(_, lit, _)| *lit).collect();
    let nulls = vec!["NULL"; columns.len()];
    db.exec(&format!(
        "INSERT INTO all_types VALUES (1, {}, '{{\"a\": [1, 2.5, null]}}');\nINSERT INTO all_types VALUES (2, {}, NULL)",
        literals.join(", "),
        nulls.join(", ")
    ))
    .await;
    let dir = config_dir(db, "");
    let o = orchestrator(db, dir.path());
    let rows = ok(&o, "all_types", &[]).await;
    let rows = rows.as_array().expect("list");
    assert_eq!(rows.len(), 2);
    for (i, (ty, lit, expected)) in columns.iter().enumerate() {
        let c = format!("c{i}");
        assert_eq!(rows[0][&c], *expected, "{:?}: {ty} from {lit}", db.backend);
        assert_eq!(rows[1][&c], Value::Null, "{:?}: NULL {ty}", db.backend);
    }
    assert_eq!(rows[0]["c_json_text"], json!({"a": [1, 2.5, null]}));
    assert_eq!(rows[1]["c_json_text"], Value::Null);
    let names: Vec<&String> = rows[0].as_object().unwrap().keys().collect();
    assert_eq!(
        names.first().map(|s| s.as_str()),
        Some("id"),
        "columns keep select order"
    );
}

fn sqlite_types() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        ("INTEGER", "9223372036854775807", json!(i64::MAX)),
        ("INTEGER", "(-9223372036854775807 - 1)", json!(i64::MIN)),
        ("REAL", "1.5", json!(1.5)),
        ("NUMERIC(10,2)", "1234.5", json!(1234.5)),
        ("TEXT", "'héllo'", json!("héllo")),
        ("BOOLEAN", "1", json!(true)),
        ("BOOLEAN", "0", json!(false)),
        ("DATE", "'2024-01-15'", json!("2024-01-15")),
        (
            "DATETIME",
            "'2024-01-15 10:30:00'",
            json!("2024-01-15T10:30:00"),
        ),
        (
            "TIMESTAMP",
            "'2024-01-15T10:30:00.5+02:00'",
            json!("2024-01-15T08:30:00.500Z"),
        ),
        ("BLOB", "X'00FF10'", json!("AP8Q")),
    ]
}

fn postgres_types() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        ("BIGINT", "9223372036854775807", json!(i64::MAX)),
        ("BIGINT", "-9223372036854775808", json!(i64::MIN)),
        ("INTEGER", "-2147483648", json!(i32::MIN)),
        ("SMALLINT", "32767", json!(i16::MAX)),
        ("DOUBLE PRECISION", "1.5", json!(1.5)),
        ("REAL", "0.25", json!(0.25)),
        ("NUMERIC(10,2)", "12.5", json!("12.50")),
        (
            "NUMERIC(24,4)",
            "-12345678901234567890.1234",
            json!("-12345678901234567890.1234"),
        ),
        ("NUMERIC", "0.000012", json!("0.000012")),
        ("TEXT", "'héllo'", json!("héllo")),
        ("VARCHAR(10)", "'abc'", json!("abc")),
        ("BOOLEAN", "TRUE", json!(true)),
        ("DATE", "'2024-01-15'", json!("2024-01-15")),
        ("TIME", "'10:30:00'", json!("10:30:00")),
        (
            "TIMESTAMP",
            "'2024-01-15 10:30:00.25'",
            json!("2024-01-15T10:30:00.250"),
        ),
        (
            "TIMESTAMPTZ",
            "'2024-01-15 10:30:00+02'",
            json!("2024-01-15T08:30:00Z"),
        ),
        (
            "JSONB",
            "'{\"a\": [1, 2.5, null], \"b\": {\"c\": true}}'",
            json!({"a": [1, 2.5, null], "b": {"c": true}}),
        ),
        ("JSON", "'[1, \"x\"]'", json!([1, "x"])),
        ("BYTEA", "'\\x00ff10'", json!("AP8Q")),
        (
            "UUID",
            "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
            json!("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
        ),
        ("INTEGER[]", "'{1,NULL,3}'", json!([1, null, 3])),
        ("TEXT[]", "ARRAY['a', 'b']", json!(["a", "b"])),
    ]
}

fn mysql_types() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        ("BIGINT", "9223372036854775807", json!(i64::MAX)),
        ("BIGINT", "-9223372036854775808", json!(i64::MIN)),
        ("BIGINT UNSIGNED", "18446744073709551615", json!(u64::MAX)),
        ("INT", "-2147483648", json!(i32::MIN)),
        ("TINYINT(1)", "1", json!(true)),
        ("BOOLEAN", "FALSE", json!(false)),
        ("DOUBLE", "1.5", json!(1.5)),
        ("FLOAT", "0.25", json!(0.25)),
        ("DECIMAL(10,2)", "12.5", json!("12.50")),
        (
            "DECIMAL(30,4)",
            "-12345678901234567890.1234",
            json!("-12345678901234567890.1234"),
        ),
        ("VARCHAR(10)", "'héllo'", json!("héllo")),
        ("TEXT", "'long text'", json!("long text")),
        ("DATE", "'2024-01-15'", json!("2024-01-15")),
        ("TIME", "'10:30:00'", json!("10:30:00")),
        (
            "DATETIME(3)",
            "'2024-01-15 10:30:00.250'",
            json!("2024-01-15T10:30:00.250"),
        ),
        (
            "TIMESTAMP",
            "'2024-01-15 10:30:00'",
            json!("2024-01-15T10:30:00Z"),
        ),
        ("BLOB", "X'00FF10'", json!("AP8Q")),
        ("VARBINARY(8)", "X'00FF10'", json!("AP8Q")),
        ("ENUM('a','b')", "'b'", json!("b")),
    ]
}

async fn types(db: &TestDb) {
    let columns = match db.backend {
        Backend::SqliteMemory | Backend::SqliteFile => sqlite_types(),
        Backend::Postgres => postgres_types(),
        Backend::MySql => mysql_types(),
    };
    round_trip(db, &columns).await;
}

async fn everything(db: &TestDb) {
    suite(db).await;
    types(db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_in_memory() {
    TestDb::open(Backend::SqliteMemory)
        .await
        .unwrap()
        .run(everything)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file() {
    TestDb::open(Backend::SqliteFile)
        .await
        .unwrap()
        .run(everything)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    let Some(db) = TestDb::open(Backend::Postgres).await else {
        return;
    };
    db.run(async |db| {
        everything(db).await;
        statement_timeout(db, "SELECT pg_sleep(5)").await;
        cut_off_statement_frees_the_pool(&db.url, "SELECT pg_sleep(31.5)").await;
        // PostgreSQL 14+ notices the closed connection and cancels the statement.
        let running = "pg_stat_activity WHERE query = 'SELECT pg_sleep(31.5)' AND state = 'active'";
        for _ in 0..200 {
            if db.count(running).await == 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("the cut-off statement still runs on the server after 20 s");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql() {
    let Some(db) = TestDb::open(Backend::MySql).await else {
        return;
    };
    db.run(async |db| {
        everything(db).await;
        statement_timeout(db, "SELECT SLEEP(5) FROM customers").await;
        cut_off_statement_frees_the_pool(&db.url, "SELECT SLEEP(31.5)").await;
    })
    .await;
}

/// A statement that outlives the connection's `statement_timeout` is cut by the server and
/// reported as a timeout, well before the source's own 10 s timeout.
async fn statement_timeout(db: &TestDb, slow: &str) {
    let dir = small_config(
        format!(
            "database:\n  sources:\n    default:\n      connection_string: \"{}\"\n      statement_timeout: 200ms\n  operations:\n    slow:\n      query: \"{slow}\"\n",
            db.url
        ),
        "endpoints:\n  slow:\n    data_sources:\n      - {name: slow, type: database, operation: slow, timeout: 10s}\n",
    );
    let o = Orchestrator::from_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let e = failed(&o, "slow", &[]).await;
    assert_eq!(e.kind, SourceErrorKind::Timeout, "{}", e.message);
}

/// A statement cut off by the source's timeout leaves the pool with its connection: the next
/// query of a one-connection pool gets a fresh connection at once, instead of waiting past
/// its acquire timeout for the abandoned statement to end.
async fn cut_off_statement_frees_the_pool(url: &str, slow: &str) {
    let dir = small_config(
        format!(
            "database:\n  sources:\n    default: {{connection_string: \"{url}\", pool_size: 1, acquire_timeout: 1s}}\n  operations:\n    slow: {{query: \"{slow}\"}}\n    fast: {{query: \"SELECT 1 AS one\"}}\n"
        ),
        "endpoints:\n  slow:\n    data_sources: [{name: slow, type: database, operation: slow, timeout: 300ms}]\n  fast:\n    data_sources: [{name: fast, type: database, operation: fast}]\n",
    );
    let o = Orchestrator::from_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ok(&o, "fast", &[]).await, json!({"one": 1}));
    let e = failed(&o, "slow", &[]).await;
    assert_eq!(e.kind, SourceErrorKind::Timeout, "{}", e.message);
    assert_eq!(ok(&o, "fast", &[]).await, json!({"one": 1}));
}

/// The same for SQLite, whose statements wait for a lock held by another connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_cut_off_statement_frees_the_pool() {
    use sqlx::Connection as _;
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("locked.db");
    let url = format!("sqlite:{}", file.display());
    let mut blocker = sqlx::SqliteConnection::connect(&format!("{url}?mode=rwc"))
        .await
        .unwrap();
    sqlx::query("CREATE TABLE t (x INTEGER)")
        .execute(&mut blocker)
        .await
        .unwrap();
    // A write lock held until the test ends: writers wait (busy timeout), readers do not.
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut blocker)
        .await
        .unwrap();
    cut_off_statement_frees_the_pool(&url, "INSERT INTO t VALUES (1)").await;
    drop(blocker);
}

/// `sqlite::memory:` from YAML is one database shared by every connection of the pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_memory_url_is_shared_by_the_pool() {
    let dir = small_config(
        r#"
database:
  sources:
    default: {connection_string: "sqlite::memory:", pool_size: 4}
  operations:
    create: {query: "CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v INTEGER)", return_type: list}
    put: {query: "INSERT INTO kv VALUES (:k, :v)", params: {k: string, v: integer}, return_type: list}
    get: {query: "SELECT v FROM kv WHERE k = :k", params: [k], return_type: value}
"#,
        r#"
endpoints:
  create:
    data_sources: [{name: c, type: database, operation: create}]
  put:
    data_sources: [{name: p, type: database, operation: put, params: {k: "$request.k", v: "$request.v"}}]
  get:
    data_sources: [{name: g, type: database, operation: get, params: {k: "$request.k"}}]
"#,
    );
    let o = Orchestrator::from_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    ok(&o, "create", &[]).await;
    ok(&o, "put", &[("k", json!("a")), ("v", json!("7"))]).await;
    // Many concurrent reads use several pooled connections; each sees the table and the row.
    let reads = (0..16).map(|_| o.execute("get", request(&[("k", json!("a"))])));
    for r in futures::future::join_all(reads).await {
        assert_eq!(r.unwrap().response, json!(7));
    }
}

/// A pool with no free connection answers `Unavailable` once its acquire timeout passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_pool_is_unavailable() {
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(std::time::Duration::from_millis(50))
        .connect("sqlite::memory:")
        .await
        .unwrap();
    let held = pool.acquire().await.unwrap();
    let dir = small_config(
        "database:\n  sources:\n    default: {connection_string: \"sqlite::memory:\"}\n  operations:\n    one: {query: \"SELECT 1 AS one\"}\n",
        "endpoints:\n  one:\n    data_sources: [{name: one, type: database, operation: one}]\n",
    );
    let o = Orchestrator::builder()
        .register_factory(
            "database",
            api_orchestrator::source::sql::SqlFactory::new().with_pool("default", pool.clone()),
        )
        .load_dir(dir.path())
        .unwrap_or_else(|e| panic!("{e}"));
    let e = failed(&o, "one", &[]).await;
    assert_eq!(e.kind, SourceErrorKind::Unavailable, "{}", e.message);
    assert!(e.message.contains("pool exhausted"), "{}", e.message);
    drop(held);
    assert_eq!(ok(&o, "one", &[]).await, json!({"one": 1}));
}

/// A server that refuses connections is `Unavailable` (a transient error, so retries apply),
/// at once rather than after the pool's acquire timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connections_are_unavailable() {
    // Port 1 on loopback: nothing listens there.
    for url in [
        "postgres://postgres@127.0.0.1:1/test",
        "mysql://root@127.0.0.1:1/test",
    ] {
        let dir = small_config(
            format!(
                "database:\n  sources:\n    default: {{connection_string: \"{url}\", acquire_timeout: 20s}}\n  operations:\n    one: {{query: \"SELECT 1 AS one\"}}\n"
            ),
            "endpoints:\n  one:\n    data_sources: [{name: one, type: database, operation: one}]\n",
        );
        let o = Orchestrator::from_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let e = failed(&o, "one", &[]).await;
        assert_eq!(e.kind, SourceErrorKind::Unavailable, "{url}: {}", e.message);
        assert!(e.is_transient());
        // At once, not after the acquire timeout: the message is the refusal, not the pool's.
        assert!(e.message.contains("refused"), "{url}: {}", e.message);
    }
}

/// Each query gets a `sql` span with operation, connection and row count; bound values appear
/// only when the connection opts in with `log_parameters: true`.
#[tokio::test]
async fn query_spans_leave_out_parameter_values_unless_enabled() {
    for log_parameters in [false, true] {
        let dir = small_config(
            format!(
                "database:\n  sources:\n    main: {{connection_string: \"sqlite::memory:\", log_parameters: {log_parameters}}}\n  operations:\n    lookup: {{query: \"SELECT :secret AS s UNION ALL SELECT 'x'\", params: [secret], return_type: list}}\n"
            ),
            "endpoints:\n  lookup:\n    data_sources: [{name: l, type: database, operation: lookup, params: {secret: \"$request.secret\"}}]\n",
        );
        let o = Orchestrator::from_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let out = Captured::new();
        ok(&o, "lookup", &[("secret", json!("warm-up"))]).await;
        let _guard = out.capture();
        let rows = ok(&o, "lookup", &[("secret", json!("hunter2-ssn-123"))]).await;
        assert_eq!(rows, json!([{"s": "hunter2-ssn-123"}, {"s": "x"}]));
        let log = out.text();
        assert!(
            log.contains("sql{operation=lookup connection=main"),
            "{log}"
        );
        assert!(log.contains("rows=2"), "{log}");
        assert!(log.contains("duration_us="), "{log}");
        assert_eq!(
            log.contains("hunter2-ssn-123"),
            log_parameters,
            "log_parameters: {log_parameters}\n{log}"
        );
    }
}
