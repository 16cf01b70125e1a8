//! `for_each`: a source run once per element of a list, with `$item` and `$index`, bounded
//! concurrency (in virtual time, and against a real server that counts what is in flight),
//! identical elements fetched once, per-element `on_error` and conditions, and what the
//! validator says about it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use api_orchestrator::RequestContext;
use api_orchestrator::config::{ConfigFiles, LoadError, Loader};
use api_orchestrator::engine::{ExecuteError, Outcome};
use api_orchestrator::source::{DataSource, SourceCall, SourceError};
use serde_json::{Value, json};
use tests::{builder, ms, orchestrator, plan_from_yaml};
use tokio::time::Instant;

fn body(items: Value) -> RequestContext {
    RequestContext::new().with_body(json!({ "items": items }))
}

/// N elements whose calls take L each, C at once, take ceil(N / C) · L.
#[tokio::test(start_paused = true)]
async fn elements_run_concurrency_at_a_time() {
    for (n, c, rounds) in [(10usize, 3usize, 4u128), (8, 8, 1), (9, 1, 9), (17, 16, 2)] {
        let o = orchestrator(&format!(
            r#"
endpoints:
  each:
    data_sources:
      - name: s
        type: sleep
        for_each: "$request.body.items"
        concurrency: {c}
        params: {{ms: 100, n: "$item", at: "$index"}}
    primary_source: s
"#
        ));
        let items: Vec<Value> = (0..n).map(|i| json!(i * 10)).collect();
        let start = Instant::now();
        let out = o.execute("each", body(json!(items))).await.unwrap();
        assert_eq!(ms(start.elapsed()), 100 * rounds, "n={n} c={c}");
        let got = out.response.as_array().unwrap();
        assert_eq!(got.len(), n);
        for (i, r) in got.iter().enumerate() {
            // In input order, each with its own element and position.
            assert_eq!(
                (r["n"].clone(), r["at"].clone()),
                (json!(i * 10), json!(i)),
                "{r}"
            );
        }
        let t = &out.trace.sources[0];
        assert_eq!((t.outcome, t.attempts as usize), (Outcome::Ok, n), "{t:?}");
        assert_eq!(
            t.notes[0],
            format!("for_each: {n} elements, {n} calls"),
            "{t:?}"
        );
    }
}

/// The default concurrency, and a null or empty list.
#[tokio::test(start_paused = true)]
async fn the_default_concurrency_and_empty_lists() {
    let o = orchestrator(
        r#"
endpoints:
  each:
    data_sources:
      - {name: s, type: sleep, for_each: "$request.body.items", params: {ms: 100, n: "$item"}}
    primary_source: s
"#,
    );
    let items: Vec<Value> = (0..40).map(|i| json!(i)).collect();
    let start = Instant::now();
    o.execute("each", body(json!(items))).await.unwrap();
    let per_round = api_orchestrator::plan::ForEach::DEFAULT_CONCURRENCY as u128;
    assert_eq!(ms(start.elapsed()), 100 * 40_u128.div_ceil(per_round));
    for empty in [json!([]), Value::Null] {
        let start = Instant::now();
        let out = o.execute("each", body(empty)).await.unwrap();
        assert_eq!((out.response.clone(), ms(start.elapsed())), (json!([]), 0));
    }
    let Err(ExecuteError::SourceFailed { error, .. }) =
        o.execute("each", body(json!({"a": 1}))).await
    else {
        panic!("an object is not a list")
    };
    assert!(
        error
            .message
            .contains("`for_each` of `s` gave an object, not a list"),
        "{error:?}"
    );
}

/// Counts its calls; answers its params.
#[derive(Debug, Default)]
struct Counting(Arc<AtomicUsize>);

#[async_trait::async_trait]
impl DataSource for Counting {
    async fn fetch(&self, call: SourceCall<'_>) -> Result<Value, SourceError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(Value::Object(call.params.clone()))
    }
}

#[tokio::test]
async fn identical_elements_are_fetched_once_and_conditions_apply_per_element() {
    let calls = Arc::new(AtomicUsize::new(0));
    let plan = tests::plan_with_types(
        r#"
endpoints:
  each:
    data_sources:
      - name: s
        type: counting
        for_each: "$request.body.items"
        condition: "$item != 3"
        params: {id: "$item"}
    primary_source: s
"#,
        &["counting"],
    );
    let o = builder()
        .register("counting", Counting(calls.clone()))
        .build(plan)
        .unwrap();
    let out = o
        .execute("each", body(json!([1, 2, 1, 3, 2, 1])))
        .await
        .unwrap();
    assert_eq!(
        out.response,
        json!([{"id": 1}, {"id": 2}, {"id": 1}, null, {"id": 2}, {"id": 1}])
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2, "1 and 2, once each");
    assert_eq!(
        out.trace.sources[0].notes[0],
        "for_each: 6 elements, 2 calls, 1 skipped by the condition, 3 sharing another element's call"
    );
}

/// A condition that does not read the element is judged once: false skips the whole source.
#[tokio::test]
async fn a_condition_without_the_element_skips_the_source() {
    let o = orchestrator(
        r#"
endpoints:
  each:
    data_sources:
      - {name: s, type: fixture, operation: profile, for_each: "$request.body.items", condition: "$request.body.go", params: {echo: "$item"}}
    response_mapping: {s: "$s"}
"#,
    );
    let out = o
        .execute(
            "each",
            RequestContext::new().with_body(json!({"items": [1], "go": false})),
        )
        .await
        .unwrap();
    assert_eq!(out.response, json!({"s": null}));
    assert_eq!(out.trace.sources[0].outcome, Outcome::Skipped);
}

/// Per-element failures follow `on_error`: `skip` leaves the element null, `default` puts the
/// default there, `fail` fails the request naming the element.
#[tokio::test(start_paused = true)]
async fn failures_follow_on_error_per_element() {
    let yaml = |on_error: &str| {
        format!(
            r#"
endpoints:
  each:
    data_sources:
      - name: s
        type: flaky
        for_each: "$request.body.items"
        params: {{failures: "$item", n: "$index"}}
        {on_error}
    primary_source: s
"#
        )
    };
    // `failures: 0` answers at once; `failures: 9` always fails.
    let items = json!([0, 9, 0, 9, 0]);
    let o = orchestrator(&yaml("on_error: skip"));
    let out = o.execute("each", body(items.clone())).await.unwrap();
    assert_eq!(
        out.response,
        json!([{"attempt": 1}, null, {"attempt": 1}, null, {"attempt": 1}])
    );
    let t = &out.trace.sources[0];
    assert_eq!(t.outcome, Outcome::Partial);
    assert_eq!(t.degraded(), Some("partial"));
    assert_eq!(
        t.notes[0],
        "for_each: 5 elements, 5 calls, 2 failed and skipped"
    );
    assert!(
        t.notes
            .iter()
            .any(|n| n.starts_with("[1] skip (unavailable)")),
        "{t:?}"
    );

    let o = orchestrator(&yaml("on_error: default\n        default: {attempt: 0}"));
    let out = o.execute("each", body(items.clone())).await.unwrap();
    assert_eq!(
        out.response,
        json!([{"attempt": 1}, {"attempt": 0}, {"attempt": 1}, {"attempt": 0}, {"attempt": 1}])
    );

    let o = orchestrator(&yaml(""));
    let Err(ExecuteError::SourceFailed { error, .. }) = o.execute("each", body(items)).await else {
        panic!("an element that fails with `on_error: fail` fails the request")
    };
    assert!(error.message.starts_with("element 1: "), "{error:?}");
}

/// Above `ForEach::ITEM_NOTES_UP_TO` elements the trace has the counts only.
#[tokio::test]
async fn many_elements_are_counted_not_listed() {
    let o = orchestrator(
        r#"
endpoints:
  each:
    data_sources:
      - {name: s, type: flaky, for_each: "$request.body.items", params: {failures: "$item", n: "$index"}, on_error: skip}
    primary_source: s
"#,
    );
    let items: Vec<Value> = (0..50)
        .map(|i| json!(if i % 10 == 0 { 9 } else { 0 }))
        .collect();
    let out = o.execute("each", body(json!(items))).await.unwrap();
    let t = &out.trace.sources[0];
    assert_eq!(
        t.notes,
        ["for_each: 50 elements, 50 calls, 5 failed and skipped"],
        "{t:?}"
    );
    assert_eq!(
        out.response
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v.is_null())
            .count(),
        5
    );
}

/// An API operation per element with `concurrency: 8`: the server never has more than 8
/// of them in flight (it counts), and every element gets its own answer, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_per_element_never_has_more_than_concurrency_in_flight() {
    let upstream = tests::upstream::Upstream::start().await;
    let dir = tests::config_dir(&[
        (
            "integrations/api_sources.yaml",
            &format!(
                r#"
api:
  sources:
    items:
      base_url: "{}"
      max_concurrent: 64
      operations:
        get_item: {{path: "/slow", query: {{ms: 20, id: "{{id}}"}}}}
"#,
                upstream.url()
            ),
        ),
        (
            "domains/shop.yaml",
            r#"
endpoints:
  details:
    data_sources:
      - {name: detail, type: api, operation: get_item, for_each: "$request.body.items", concurrency: 8, params: {id: "$item"}}
    response_mapping: {targets: "$detail[*].target"}
"#,
        ),
    ]);
    let o = api_orchestrator::Orchestrator::from_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let items: Vec<Value> = (0..64).map(|i| json!(i)).collect();
    let out = o
        .execute("details", body(json!(items)))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let targets = out.response["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 64);
    for (i, t) in targets.iter().enumerate() {
        assert_eq!(t, &json!(format!("/slow?id={i}&ms=20")));
    }
    assert_eq!(upstream.calls("/slow"), 64);
    let most = upstream.max_in_flight();
    assert!(most <= 8, "{most} calls were in flight at once");
    assert!(most > 1, "the calls ran concurrently: {most}");
}

fn load(domain: &str) -> Result<api_orchestrator::ValidPlan, String> {
    Loader::new()
        .with_source_type("sleep")
        .load(&ConfigFiles::new().with_file("domains/test.yaml", domain))
        .map_err(|e| match e {
            LoadError::Invalid(d) => d.to_string(),
            other => other.to_string(),
        })
}

#[test]
fn the_validator_knows_where_item_and_index_exist() {
    let bad = load(
        r#"
endpoints:
  e:
    data_sources:
      - {name: a, type: sleep, params: {x: "$item", i: "$index"}}
      - {name: b, type: sleep, for_each: "$item.list", params: {x: "$item"}}
      - {name: c, type: sleep, concurrency: 4}
      - {name: d, type: sleep, for_each: "$d", concurrency: 0}
      - {name: f, type: sleep, for_each: "$request.body.ids", batch: {size: 10}}
      - {name: g, type: sleep, batch: {size: 10}}
    response_mapping: {a: "$a", b: "$b", c: "$c", d: "$d", f: "$f", g: "$g"}
"#,
    )
    .unwrap_err();
    for expected in [
        "error[not-yet-available]: `$item` only exists inside a `transform` step or a `for_each` source\n --> domains/test.yaml:5:44",
        "error[not-yet-available]: `$index` only exists inside a `for_each` source\n --> domains/test.yaml:5:56",
        "--> domains/test.yaml:6:42",
        "`for_each` makes the elements `$item`",
        "error[invalid-value]: `concurrency` goes with `for_each`",
        "error[invalid-value]: `concurrency: 0` would never call the source",
        "error[not-yet-available]: the `for_each` list of `d` refers to its own result",
        "error[invalid-value]: a `sleep` source cannot take several elements in one call",
        "`batch` works with `feast` sources (several entities per lookup), `ml` sources",
        "error[invalid-value]: `batch` goes with `for_each`",
    ] {
        assert!(bad.contains(expected), "missing {expected:?} in:\n{bad}");
    }
    assert_eq!(bad.matches("error[").count(), 8, "{bad}");
    // The list's sources run first.
    let plan = plan_from_yaml(
        r#"
endpoints:
  e:
    data_sources:
      - {name: each, type: sleep, for_each: "$list.items", params: {x: "$item"}}
      - {name: list, type: sleep}
    primary_source: each
"#,
    );
    assert_eq!(plan.endpoints[0].dependencies(), [vec![1], vec![]]);
}

/// SQL `IN` batches: elements go two per query, each gets what a query of its own would
/// return (a row or null; its rows), in input order.
async fn sql_batches(db: &tests::db::TestDb) {
    db.exec(
        "CREATE TABLE products (product_id INTEGER PRIMARY KEY, name VARCHAR(20) NOT NULL, price DOUBLE PRECISION);
         INSERT INTO products VALUES (1, 'kettle', 20.5), (2, 'lamp', 30), (3, 'rug', 99.5);
         CREATE TABLE reviews (review_id INTEGER PRIMARY KEY, product_id INTEGER NOT NULL, stars INTEGER NOT NULL);
         INSERT INTO reviews VALUES (1, 1, 5), (2, 1, 4), (3, 3, 2)",
    )
    .await;
    let dir = tests::config_dir(&[
        (
            "database.yaml",
            &format!(
                r#"
database:
  sources:
    default: {{connection_string: "{}"}}
  operations:
    product:
      query: "SELECT product_id, name, price FROM products WHERE product_id IN (:ids)"
      params: {{ids: integer}}
      batch: {{param: ids, key: product_id}}
    reviews:
      query: "SELECT product_id, stars FROM reviews WHERE product_id IN (:ids) ORDER BY review_id"
      params: {{ids: integer}}
      return_type: list
      batch: {{param: ids, key: product_id}}
"#,
                db.url
            ),
        ),
        (
            "domains/shop.yaml",
            r#"
endpoints:
  products:
    data_sources:
      - {name: p, type: database, operation: product, for_each: "$request.body.items", batch: {size: 2}, params: {ids: "$item"}}
      - {name: r, type: database, operation: reviews, for_each: "$request.body.items", batch: {size: 3}, params: {ids: "$item"}}
    response_mapping: {names: "$p[*].name", p: "$p", stars: "$r"}
"#,
        ),
    ]);
    let o = api_orchestrator::Orchestrator::builder()
        .register_factory("database", db.factory())
        .load_dir(dir.path())
        .unwrap_or_else(|e| panic!("{e}"));
    let out = o
        .execute("products", body(json!([3, 1, 99, 2, 1])))
        .await
        .unwrap_or_else(|e| panic!("{:?}: {e}", db.backend));
    assert_eq!(
        out.response["p"],
        json!([
            {"product_id": 3, "name": "rug", "price": 99.5},
            {"product_id": 1, "name": "kettle", "price": 20.5},
            null,
            {"product_id": 2, "name": "lamp", "price": 30.0},
            {"product_id": 1, "name": "kettle", "price": 20.5}
        ]),
        "{:?}",
        db.backend
    );
    assert_eq!(
        out.response["stars"],
        json!([
            [{"product_id": 3, "stars": 2}],
            [{"product_id": 1, "stars": 5}, {"product_id": 1, "stars": 4}],
            [],
            [],
            [{"product_id": 1, "stars": 5}, {"product_id": 1, "stars": 4}]
        ]),
        "{:?}",
        db.backend
    );
    // Four distinct ids: two queries of two, and two of up to three.
    let attempts: Vec<u32> = out.trace.sources.iter().map(|s| s.attempts).collect();
    assert_eq!(attempts, [2, 2], "{:?}", out.trace.sources);
    // A path param's text finds the integer key.
    let one = o.execute("products", body(json!(["2"]))).await.unwrap();
    assert_eq!(one.response["names"], json!(["lamp"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_in_batches_on_sqlite() {
    tests::db::TestDb::open(tests::db::Backend::SqliteFile)
        .await
        .unwrap()
        .run(sql_batches)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_in_batches_on_postgres() {
    if let Some(db) = tests::db::TestDb::open(tests::db::Backend::Postgres).await {
        db.run(sql_batches).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_in_batches_on_mysql() {
    if let Some(db) = tests::db::TestDb::open(tests::db::Backend::MySql).await {
        db.run(sql_batches).await;
    }
}

#[test]
fn sql_batches_need_an_operation_that_says_how() {
    let files = ConfigFiles::new()
        .with_file(
            "database.yaml",
            r#"
database:
  sources:
    default: {connection_string: "sqlite::memory:"}
  operations:
    one: {query: "SELECT * FROM t WHERE id = :id", params: {id: integer}}
    many:
      query: "SELECT * FROM t WHERE id IN (:ids) AND kind = :kind"
      params: {ids: integer, kind: string}
      batch: {param: idz, key: id}
"#,
        )
        .with_file(
            "domains/test.yaml",
            r#"
endpoints:
  e:
    data_sources:
      - {name: a, type: database, operation: one, for_each: "$request.body.ids", batch: {size: 10}, params: {id: "$item"}}
      - {name: b, type: database, operation: many, for_each: "$request.body.ids", batch: {size: 10}, params: {ids: "$item", kind: "$item.kind"}}
    response_mapping: {a: "$a", b: "$b"}
"#,
        );
    let Err(LoadError::Invalid(d)) = Loader::new().load(&files) else {
        panic!("these batches cannot work")
    };
    let text = d.to_string();
    for expected in [
        "operation `one` does not say how to take several elements in one call",
        "give the operation an `IN (:ids)` list and `batch: {param: ids, key: <the column matched back>}`",
        "error[sql-parameter]: `idz` is not a declared parameter",
        "did you mean `ids`?",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

/// An API operation that takes many keys: 1,000 distinct keys (and 50 repeated) in batches
/// of 100 make 10 calls with the body's list, 20 where the operation takes at most 50 as a
/// repeated query value; each element gets its own product back, whatever order the service
/// answers in, and null for a product it does not know.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_batches_send_many_keys_and_match_the_answers_back() {
    let upstream = tests::upstream::Upstream::start().await;
    let dir = tests::config_dir(&[
        (
            "integrations/api_sources.yaml",
            &format!(
                r#"
api:
  sources:
    catalog:
      base_url: "{}"
      operations:
        by_query:
          path: /products
          query: {{id: "{{ids}}"}}
          extract: /products
          batch: {{param: ids, match: id, size: 50}}
        by_body:
          method: POST
          path: /products
          body: {{ids: "{{ids}}"}}
          extract: /products
          batch: {{param: ids, match: id}}
"#,
                upstream.url()
            ),
        ),
        (
            "domains/shop.yaml",
            r#"
endpoints:
  by_query:
    data_sources:
      - {name: p, type: api, operation: by_query, for_each: "$request.body.items", batch: {size: 100}, params: {ids: "$item"}}
    primary_source: p
  by_body:
    data_sources:
      - {name: p, type: api, operation: by_body, for_each: "$request.body.items", batch: {size: 100}, params: {ids: "$item"}}
    primary_source: p
  one:
    data_sources:
      - {name: p, type: api, operation: by_body, params: {ids: "$request.body.id"}}
    primary_source: p
"#,
        ),
    ]);
    let o = api_orchestrator::Orchestrator::from_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    // 1,000 distinct keys, some of them unknown (1000 and above), then 50 repeats.
    let mut items: Vec<u64> = (0..1000).map(|i| (i * 7) % 1100).collect();
    items.extend_from_slice(&items.clone()[..50]);
    for (endpoint, method, calls) in [("by_body", "POST", 10), ("by_query", "GET", 20)] {
        let out = o
            .execute(endpoint, body(json!(items)))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let got = out.response.as_array().unwrap();
        assert_eq!(got.len(), items.len());
        for (key, product) in items.iter().zip(got) {
            let expected = if *key < 1000 {
                json!({"id": key.to_string(), "name": format!("product {key}")})
            } else {
                Value::Null
            };
            assert_eq!(product, &expected, "{endpoint}: key {key}");
        }
        let seen: Vec<_> = upstream
            .seen()
            .into_iter()
            .filter(|s| s.method == method)
            .collect();
        assert_eq!(seen.len(), calls, "{endpoint}");
        let t = &out.trace.sources[0];
        assert!(
            t.notes[0].starts_with(&format!("for_each: 1050 elements, {calls} calls")),
            "{t:?}"
        );
    }
    // The body carried the keys as a JSON list; the query as one `id=` per key.
    let posted = upstream
        .seen()
        .into_iter()
        .find(|s| s.method == "POST")
        .unwrap();
    assert_eq!(posted.body["ids"].as_array().unwrap().len(), 100);
    let got = upstream
        .seen()
        .into_iter()
        .find(|s| s.method == "GET")
        .unwrap();
    assert_eq!(got.target.matches("id=").count(), 50, "{}", got.target);
    // Called with one key, the operation answers with that key's product.
    let out = o
        .execute("one", RequestContext::new().with_body(json!({"id": 42})))
        .await
        .unwrap();
    assert_eq!(out.response, json!({"id": "42", "name": "product 42"}));
}

#[test]
fn api_batches_need_an_operation_that_says_how() {
    let files = ConfigFiles::new()
        .with_file(
            "integrations/api_sources.yaml",
            r#"
api:
  sources:
    catalog:
      base_url: "http://127.0.0.1:9"
      operations:
        one: {path: "/products/{id}"}
        in_path: {path: "/products/{ids}", batch: {param: ids}}
        misspelt: {path: /products, query: {id: "{ids}"}, batch: {param: idz, match: id}}
"#,
        )
        .with_file(
            "domains/test.yaml",
            r#"
endpoints:
  e:
    data_sources:
      - {name: a, type: api, operation: one, for_each: "$request.body.ids", batch: {size: 10}, params: {id: "$item"}}
    response_mapping: {a: "$a"}
"#,
        );
    let Err(LoadError::Invalid(d)) = Loader::new().load(&files) else {
        panic!("these batches cannot work")
    };
    let text = d.to_string();
    for expected in [
        "operation `one` does not say how to take several elements in one call",
        "`batch: {param: ids, match: <the answer field holding the key>}`",
        "`ids` is a path placeholder: a batch of keys cannot go into one path segment",
        "`idz` is not a placeholder of the operation",
        "did you mean `ids`?",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}
