//! Schema snapshots against real databases (SQLite always; PostgreSQL and MariaDB when their
//! variables are set): `prepare` records the columns the database describes, the loader then
//! reports a mapping typo with file:line:col and the right suggestion, and after a column is
//! renamed in the database the committed snapshot no longer matches.

use api_orchestrator::config::{ConfigFiles, LoadError, Loader};
use api_orchestrator::prepare::{differences, prepare};
use api_orchestrator::snapshot::{SNAPSHOT_FILE, Snapshot, ValueType};
use tests::db::{Backend, TestDb};

fn database_yaml(url: &str) -> String {
    format!(
        r#"
database:
  sources:
    default: {{connection_string: "{url}"}}
  operations:
    get_customer:
      query: "SELECT * FROM customers WHERE customer_id = :customer_id"
      params: {{customer_id: integer}}
      return_type: single
    get_orders:
      query: "SELECT order_id, amount FROM orders WHERE customer_id = :customer_id"
      params: {{customer_id: integer}}
      return_type: list
"#
    )
}

/// A domain file whose mapping reads `field` of the customer row, and filters orders by
/// `amount_check`.
fn shop_yaml(field: &str, amount_check: &str) -> String {
    format!(
        r#"endpoints:
  customer:
    data_sources:
      - name: profile
        type: database
        operation: get_customer
        params: {{customer_id: "$request.id"}}
      - name: orders
        type: database
        operation: get_orders
        params: {{customer_id: "$request.id"}}
        transform:
          - filter: "{amount_check}"
    response_mapping:
      name: "$profile.{field}"
      orders: "$orders[*].order_id"
"#
    )
}

async fn scenario(db: &TestDb) {
    let text = if db.is(Backend::MySql) {
        "VARCHAR(100)"
    } else {
        "TEXT"
    };
    db.exec(&format!(
        "CREATE TABLE customers (customer_id INTEGER PRIMARY KEY, full_name {text} NOT NULL, email {text}, score INTEGER);
         CREATE TABLE orders (order_id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL, amount DOUBLE PRECISION NOT NULL);
         INSERT INTO customers VALUES (1, 'Ada', NULL, 700);"
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let write = |rel: &str, text: &str| {
        let path = dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write("database.yaml", &database_yaml(&db.url));
    write(
        "domains/shop.yaml",
        &shop_yaml("full_name", "$item.amount > 10"),
    );

    // Prepare: the columns as the database describes them.
    let plan = Loader::new()
        .load_dir(dir.path())
        .expect("the config loads");
    let prepared = prepare(&plan)
        .await
        .expect("the database describes the queries");
    let snapshot = prepared.snapshot;
    let customer = &snapshot.sources.database["get_customer"];
    let names: Vec<&str> = customer.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["customer_id", "full_name", "email", "score"],
        "{:?}",
        db.backend
    );
    let full_name = &customer.columns[1];
    assert_eq!(full_name.ty, ValueType::String, "{full_name:?}");
    assert_eq!(
        full_name.nullable,
        Some(false),
        "{:?}: NOT NULL is known",
        db.backend
    );
    assert_eq!(
        customer.columns[3].ty,
        ValueType::Integer,
        "{:?}",
        customer.columns[3]
    );
    assert_eq!(
        snapshot.sources.database["get_orders"].columns[1].ty,
        ValueType::Number
    );
    // What is written reads back the same.
    assert_eq!(Snapshot::from_json(&snapshot.to_json()).unwrap(), snapshot);
    write(SNAPSHOT_FILE, &snapshot.to_json());
    Loader::new()
        .load_dir(dir.path())
        .expect("the mapping agrees with the columns");

    // A typo in a field of the result, a path into a scalar and an ill-typed comparison in a
    // transform: errors that name the file, line and column.
    write(
        "domains/shop.yaml",
        &shop_yaml("full_nmae", "$item.amount > '10'"),
    );
    let Err(LoadError::Invalid(d)) = Loader::new().load_dir(dir.path()) else {
        panic!("{:?}: a mapping typo must not load", db.backend)
    };
    let text = d.to_string();
    assert!(
        text.contains("error[unknown-field]: `$profile` has no field `full_nmae`"),
        "{text}"
    );
    assert!(text.contains("did you mean `full_name`?"), "{text}");
    assert!(text.contains("--> domains/shop.yaml:15:13"), "{text}");
    assert!(
        text.contains("error[type-mismatch]: `>` cannot be applied to a number and a string"),
        "{text}"
    );
    assert!(text.contains("--> domains/shop.yaml:13:21"), "{text}");
    write(
        "domains/shop.yaml",
        &shop_yaml("full_name.first", "$item.amount > 10"),
    );
    let Err(LoadError::Invalid(d)) = Loader::new().load_dir(dir.path()) else {
        panic!("a path into a string must not load")
    };
    assert!(
        d.to_string()
            .contains("`$profile.full_name` is a string, which has no field `first`"),
        "{d}"
    );

    // The column is renamed in the database: the committed snapshot no longer matches, and
    // the mapping, checked against the new one, points at the new name.
    write(
        "domains/shop.yaml",
        &shop_yaml("full_name", "$item.amount > 10"),
    );
    db.exec("ALTER TABLE customers RENAME COLUMN full_name TO display_name")
        .await;
    let mut files = ConfigFiles::read_dir(dir.path()).unwrap();
    files.remove(SNAPSHOT_FILE);
    let plan = Loader::new().load(&files).unwrap();
    let live = prepare(&plan).await.unwrap().snapshot;
    let changed = differences(&snapshot, &live);
    assert_eq!(changed.len(), 1, "{changed:#?}");
    assert!(
        changed[0].contains("database operation `get_customer` changed")
            && changed[0].contains("display_name"),
        "{changed:#?}"
    );
    files.insert(SNAPSHOT_FILE, live.to_json());
    let Err(LoadError::Invalid(d)) = Loader::new().load(&files) else {
        panic!("the old column name must not load against the new snapshot")
    };
    assert!(
        d.to_string()
            .contains("its fields are: `customer_id`, `display_name`, `email`, `score`"),
        "{d}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    TestDb::open(Backend::SqliteFile)
        .await
        .unwrap()
        .run(scenario)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    let Some(db) = TestDb::open(Backend::Postgres).await else {
        return;
    };
    db.run(scenario).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql() {
    let Some(db) = TestDb::open(Backend::MySql).await else {
        return;
    };
    db.run(scenario).await;
}

/// A database that cannot be reached is a diagnostic naming the operation, not a snapshot
/// with holes.
#[tokio::test]
async fn an_unreachable_database_names_the_operation() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("database.yaml"),
        database_yaml("postgres://nobody@127.0.0.1:1/none"),
    )
    .unwrap();
    let plan = Loader::new().load_dir(dir.path()).unwrap();
    let Err(d) = prepare(&plan).await else {
        panic!("nothing answers on port 1")
    };
    let text = d.to_string();
    assert!(
        text.contains("error[snapshot]: cannot describe the query of operation `get_customer`"),
        "{text}"
    );
    assert!(
        !text.contains("nobody@"),
        "no connection string is printed: {text}"
    );
}

/// A model input fed from a text column is an error naming the param; the numeric one is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_input_fed_a_text_column() {
    use api_orchestrator::snapshot::{ModelSignature, Tensor};

    TestDb::open(Backend::SqliteFile)
        .await
        .unwrap()
        .run(async |db| {
            db.exec(
                "CREATE TABLE customers (customer_id INTEGER PRIMARY KEY, full_name TEXT NOT NULL, email TEXT, score INTEGER);
                 CREATE TABLE orders (order_id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL, amount DOUBLE PRECISION NOT NULL)",
            )
            .await;
            let dir = tempfile::tempdir().unwrap();
            let write = |rel: &str, text: &str| {
                let path = dir.path().join(rel);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, text).unwrap();
            };
            write("database.yaml", &database_yaml(&db.url));
            write(
                "integrations/ml_config.yaml",
                r#"
ml:
  sources:
    scoring:
      base_url: "http://127.0.0.1:1"
      models:
        risk: {protocol: v2, inputs: [name, score], outputs: {p: "predict_proba[1]"}}
"#,
            );
            write(
                "domains/risk.yaml",
                r#"endpoints:
  risk:
    data_sources:
      - {name: profile, type: database, operation: get_customer, params: {customer_id: "$request.id"}}
      - {name: model, type: ml, operation: risk, params: {name: "$profile.full_name", score: "$profile.score"}}
    response_mapping: {p: "$model.p"}
"#,
            );
            let plan = Loader::new().load_dir(dir.path()).unwrap();
            // The database part as the database describes it (the model server is not up:
            // its metadata is added as `prepare` would have recorded it).
            let mut files = ConfigFiles::read_dir(dir.path()).unwrap();
            let mut snapshot = Snapshot::new();
            snapshot.sources.database = {
                let mut only_sql = plan.into_plan();
                only_sql.integrations.global.ml = Default::default();
                prepare(&only_sql).await.unwrap().snapshot.sources.database
            };
            snapshot.sources.ml.insert(
                "scoring/risk".into(),
                ModelSignature {
                    inputs: vec![Tensor::new("input-0", "FP32", vec![-1, 2])],
                    outputs: vec![Tensor::new("predict_proba", "FP32", vec![-1, 2])],
                },
            );
            files.insert(SNAPSHOT_FILE, snapshot.to_json());
            let Err(LoadError::Invalid(d)) = Loader::new().load(&files) else {
                panic!("a text column into an FP32 tensor must not load")
            };
            let text = d.to_string();
            assert!(
                text.contains("error[type-mismatch]: model `risk` takes `name` into its FP32 input tensor, but it is fed a string"),
                "{text}"
            );
            assert!(text.contains("--> domains/risk.yaml:5:"), "{text}");
            assert_eq!(d.errors(), 1, "`score` is an integer column: {text}");
        })
        .await;
}

/// API operations: a schema from the OpenAPI document the service publishes (a file here,
/// matched with the base URL's path and other placeholder names), or inferred from one
/// answer to the operation's `sample` params (through its `extract`); a typo in either
/// result's fields is then an error with the right suggestion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_schemas_from_a_document_or_a_sample() {
    let upstream = tests::upstream::Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let write = |rel: &str, text: &str| {
        let path = dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write(
        "integrations/api_sources.yaml",
        &format!(
            r#"
api:
  sources:
    sampled:
      base_url: "{0}/v1"
      operations:
        get_score: {{path: "/scores/{{id}}", extract: /data, sample: {{id: 7}}}}
    documented:
      base_url: "{0}/v1"
      openapi: openapi/bureau.json
      operations:
        get_limit: {{path: "/limits/{{customer}}"}}
"#,
            upstream.url()
        ),
    );
    write(
        "openapi/bureau.json",
        r##"{"openapi": "3.1.0", "info": {"title": "bureau", "version": "1"},
            "paths": {"/v1/limits/{id}": {"get": {"responses": {"200": {"description": "ok",
              "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Limit"}}}}}}}},
            "components": {"schemas": {"Limit": {"type": "object", "required": ["limit"],
              "properties": {"limit": {"type": "integer"}, "currency": {"type": "string"}}}}}}"##,
    );
    let shop = |score: &str, limit: &str| {
        format!(
            r#"endpoints:
  credit:
    data_sources:
      - {{name: s, type: api, operation: get_score, params: {{id: "$request.id"}}}}
      - {{name: l, type: api, operation: get_limit, params: {{customer: "$request.id"}}}}
    response_mapping:
      score: "$s.{score}"
      limit: "$l.{limit}"
"#
        )
    };
    write("domains/shop.yaml", &shop("band", "limit"));
    let plan = Loader::new().load_dir(dir.path()).unwrap();
    let prepared = prepare(&plan).await.unwrap_or_else(|e| panic!("{e}"));
    let api = &prepared.snapshot.sources.api;
    assert_eq!(api["sampled/get_score"].from, "sample");
    assert_eq!(
        api["sampled/get_score"].schema,
        serde_json::json!({"type": "object",
            "properties": {"score": {"type": "integer"}, "band": {"type": "string"}},
            "required": ["score", "band"]})
    );
    assert_eq!(
        upstream.calls("/v1/scores/7"),
        1,
        "the sample params were sent once"
    );
    assert_eq!(api["documented/get_limit"].from, "openapi");
    assert_eq!(
        api["documented/get_limit"].schema,
        serde_json::json!({"type": "object",
            "properties": {"limit": {"type": "integer"}, "currency": {"type": ["string", "null"]}},
            "required": ["limit", "currency"]})
    );
    assert!(prepared.skipped.is_empty(), "{:?}", prepared.skipped);
    write(SNAPSHOT_FILE, &prepared.snapshot.to_json());
    Loader::new()
        .load_dir(dir.path())
        .expect("the mapping agrees");

    write("domains/shop.yaml", &shop("bnad", "limti"));
    let Err(LoadError::Invalid(d)) = Loader::new().load_dir(dir.path()) else {
        panic!("typos in API results must not load")
    };
    let text = d.to_string();
    assert!(
        text.contains("`$s` has no field `bnad`") && text.contains("did you mean `band`?"),
        "{text}"
    );
    assert!(
        text.contains("`$l` has no field `limti`") && text.contains("did you mean `limit`?"),
        "{text}"
    );

    // An operation the document does not describe, with no sample, is a diagnostic.
    let api_yaml =
        std::fs::read_to_string(dir.path().join("integrations/api_sources.yaml")).unwrap();
    write(
        "integrations/api_sources.yaml",
        &api_yaml.replace("/limits/{customer}", "/limit/{customer}"),
    );
    write("domains/shop.yaml", &shop("band", "limit"));
    let files = {
        let mut f = ConfigFiles::read_dir(dir.path()).unwrap();
        f.remove(SNAPSHOT_FILE);
        f
    };
    let plan = Loader::new().load(&files).unwrap();
    let Err(d) = prepare(&plan).await else {
        panic!("an undocumented operation without a sample")
    };
    assert!(
        d.to_string()
            .contains("the OpenAPI document of `documented` describes no JSON answer of `GET /limit/{customer}`"),
        "{d}"
    );
}

/// A `for_each` source: `$item` is an element of its list, and its result is a list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn for_each_elements_and_results_are_typed() {
    TestDb::open(Backend::SqliteFile)
        .await
        .unwrap()
        .run(async |db| {
            db.exec(
                "CREATE TABLE customers (customer_id INTEGER PRIMARY KEY, full_name TEXT NOT NULL, email TEXT, score INTEGER);
                 CREATE TABLE orders (order_id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL, amount DOUBLE PRECISION NOT NULL)",
            )
            .await;
            let mut files = ConfigFiles::new().with_file("database.yaml", database_yaml(&db.url));
            let plan = Loader::new().load(&files).unwrap();
            let snapshot = prepare(&plan).await.unwrap().snapshot;
            files.insert(SNAPSHOT_FILE, snapshot.to_json());
            let details = |param: &str, mapping: &str| {
                format!(
                    r#"endpoints:
  details:
    data_sources:
      - {{name: orders, type: database, operation: get_orders, params: {{customer_id: "$request.id"}}}}
      - {{name: each, type: database, operation: get_customer, for_each: "$orders", params: {{customer_id: "{param}"}}}}
    response_mapping: {{names: "{mapping}"}}
"#
                )
            };
            files.insert("domains/shop.yaml", details("$item.order_id", "$each[*].full_name"));
            Loader::new().load(&files).expect("element and result types agree");
            files.insert("domains/shop.yaml", details("$item.ordr_id", "$each.full_name"));
            let Err(LoadError::Invalid(d)) = Loader::new().load(&files) else {
                panic!("typos must not load")
            };
            let text = d.to_string();
            assert!(text.contains("`$item` has no field `ordr_id`") && text.contains("did you mean `order_id`?"), "{text}");
            assert!(text.contains("`$each` is a list of objects, which has no field `full_name`"), "{text}");
            assert_eq!(d.errors(), 2, "{text}");
        })
        .await;
}

/// A batch API operation records the list its sample call answered; a `for_each` source over
/// it has that list's items as elements, and a typo in their fields is caught.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_batch_items_are_typed() {
    let upstream = tests::upstream::Upstream::start().await;
    let api = format!(
        r#"
api:
  sources:
    catalog:
      base_url: "{}"
      operations:
        products:
          path: /products
          query: {{id: "{{ids}}"}}
          extract: /products
          batch: {{param: ids, match: id}}
          sample: {{ids: [1, 2]}}
"#,
        upstream.url()
    );
    let mut files = ConfigFiles::new().with_file("integrations/api_sources.yaml", api);
    let plan = Loader::new().load(&files).unwrap();
    let snapshot = prepare(&plan)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .snapshot;
    assert_eq!(
        snapshot.sources.api["catalog/products"].schema["type"], "array",
        "{:?}",
        snapshot.sources.api
    );
    files.insert(SNAPSHOT_FILE, snapshot.to_json());
    let shop = |mapping: &str| {
        format!(
            r#"endpoints:
  cart:
    data_sources:
      - {{name: p, type: api, operation: products, for_each: "$request.body.ids", batch: {{size: 50}}, params: {{ids: "$item"}}}}
    response_mapping: {{names: "{mapping}"}}
"#
        )
    };
    files.insert("domains/shop.yaml", shop("$p[*].name"));
    Loader::new().load(&files).expect("the items have a name");
    files.insert("domains/shop.yaml", shop("$p[*].nmae"));
    let Err(LoadError::Invalid(d)) = Loader::new().load(&files) else {
        panic!("a typo in the items must not load")
    };
    let text = d.to_string();
    assert!(
        text.contains("has no field `nmae`") && text.contains("did you mean `name`?"),
        "{text}"
    );
}
