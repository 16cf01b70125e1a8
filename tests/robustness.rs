//! Regressions of the reliability audit: inputs from a config author, an upstream or a client
//! that used to panic, hang or answer the wrong status.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use api_orchestrator::Orchestrator;
use api_orchestrator::config::{ConfigFiles, LoadError, Loader};
use api_orchestrator::plan::Integrations;
use api_orchestrator::source::{DataSource, Direct, SourceError, SourceFactory};
use api_orchestrator::web::{Api, Body};
use http::Request;
use serde_json::{Value, json};
use tests::config_dir;
use tests::upstream::Upstream;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The diagnostics of a config that must not load.
fn rejected(files: ConfigFiles) -> String {
    match Loader::new().load(&files) {
        Err(LoadError::Invalid(d)) => d.to_string(),
        Err(other) => panic!("expected diagnostics, got {other}"),
        Ok(_) => panic!("the config loaded"),
    }
}

#[test]
fn endpoint_and_domain_names_that_cannot_be_route_segments_are_errors_not_panics() {
    for name in ["a{b}", "x/y", "}", "sp ace"] {
        let yaml = format!(
            "endpoints:\n  \"{name}\":\n    data_sources:\n      - {{name: it, type: direct, params: {{a: 1}}}}\n"
        );
        let text = rejected(ConfigFiles::new().with_file("domains/shop.yaml", yaml));
        assert!(text.contains("cannot be a route segment"), "{name}: {text}");
    }
    let text = rejected(ConfigFiles::new().with_file(
        "domains/sh{op}.yaml",
        "endpoints:\n  ok:\n    data_sources:\n      - {name: it, type: direct}\n  fine:\n    data_sources:\n      - {name: it, type: direct}\n",
    ));
    assert_eq!(
        text.matches("domain name `sh{op}`").count(),
        1,
        "once, not per endpoint: {text}"
    );
}

#[test]
fn expressions_nested_too_deep_or_too_long_are_errors_not_stack_overflows() {
    let load = |expr: String| {
        let yaml = format!(
            "endpoints:\n  e:\n    data_sources:\n      - {{name: it, type: direct, params: {{a: 1}}}}\n    response_mapping:\n      x: \"$= {expr}\"\n"
        );
        rejected(ConfigFiles::new().with_file("domains/shop.yaml", yaml))
    };
    let deep = format!("{}1{}", "(".repeat(1000), ")".repeat(1000));
    assert!(load(deep).contains("nests deeper than 32"));
    let negations = format!("{}1", "-".repeat(1000));
    assert!(load(negations).contains("nests deeper than 32"));
    let flat = vec!["$it.a"; 10_000].join(" + ");
    assert!(load(flat).contains("more than 256 operators"));
    // Within the limits, both shapes load.
    let fine = format!(
        "{}1{} + {}",
        "(".repeat(30),
        ")".repeat(30),
        vec!["2"; 200].join(" + ")
    );
    let yaml = format!(
        "endpoints:\n  e:\n    data_sources:\n      - {{name: it, type: direct}}\n    response_mapping:\n      x: \"$= {fine}\"\n"
    );
    Loader::new()
        .load(&ConfigFiles::new().with_file("domains/shop.yaml", yaml))
        .unwrap_or_else(|e| panic!("{e}"));
}

/// `limits:` in config.yaml raises the expression and YAML limits up to `Limits::MAX`, and
/// no further; at the maximum, the deepest and the longest expression and the deepest YAML
/// load and answer on a thread with a 2 MiB stack (a tokio worker's), in a debug build.
#[test]
fn limits_are_configurable_up_to_a_maximum_that_is_still_stack_safe() {
    use api_orchestrator::plan::Limits;
    let max = Limits::MAX;
    let deep = format!(
        "{}1{}",
        "(".repeat(max.expression_nesting - 1),
        ")".repeat(max.expression_nesting - 1)
    );
    let long = vec!["$it.a"; max.expression_operators + 1].join(" + ");
    let nested = format!(
        "{}7{}",
        "[".repeat(max.yaml_nesting - 4),
        "]".repeat(max.yaml_nesting - 4)
    );
    let domain = format!(
        "endpoints:\n  e:\n    data_sources:\n      - {{name: it, type: direct, params: {{a: 1}}}}\n    response_mapping:\n      deep: \"$= {deep}\"\n      long: \"$= {long}\"\n      nested: {nested}\n"
    );
    // With the defaults, all three are refused.
    let text = rejected(ConfigFiles::new().with_file("domains/shop.yaml", domain.clone()));
    assert!(text.contains("deeper than 64 levels"), "{text}");
    let refused = ConfigFiles::new().with_file("domains/shop.yaml", domain.replace(&nested, "7"));
    let text = rejected(refused);
    assert!(
        text.contains("nests deeper than 32") && text.contains("more than 256"),
        "{text}"
    );

    let raised = format!(
        "limits: {{expression_nesting: {}, expression_operators: {}, yaml_nesting: {}}}\n",
        max.expression_nesting, max.expression_operators, max.yaml_nesting
    );
    let answer = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let files = ConfigFiles::new()
                .with_file("config.yaml", raised)
                .with_file("domains/shop.yaml", domain);
            let plan = Loader::new().load(&files).unwrap_or_else(|e| panic!("{e}"));
            let o = Orchestrator::builder().build(plan).unwrap();
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(o.execute("e", api_orchestrator::RequestContext::new()))
                .unwrap()
                .response
        })
        .unwrap()
        .join()
        .expect("no stack overflow");
    assert_eq!(answer["deep"], 1);
    assert_eq!(answer["long"], max.expression_operators + 1);
    let mut v = &answer["nested"];
    while let Some(inner) = v.get(0) {
        v = inner;
    }
    assert_eq!(*v, 7);

    // Past the maximum: an error naming the key and the bound.
    let files = ConfigFiles::new()
        .with_file("config.yaml", "limits: {expression_nesting: 100000}\n")
        .with_file("domains/shop.yaml", "endpoints: {}\n");
    let text = rejected(files);
    let bound = format!(
        "`expression_nesting` is 100000; it may be 1 to {}",
        max.expression_nesting
    );
    assert!(text.contains(&bound), "{text}");
}

/// A host source type whose factory panics once told to.
struct Fragile(Arc<AtomicBool>);

impl SourceFactory for Fragile {
    fn build(&self, _: &Integrations) -> Result<Arc<dyn DataSource>, SourceError> {
        assert!(!self.0.load(Ordering::SeqCst), "the factory broke");
        Ok(Arc::new(Direct))
    }
}

#[tokio::test]
async fn a_panic_while_reloading_is_a_failed_reload_and_the_old_version_serves() {
    let dir = config_dir(&[(
        "domains/shop.yaml",
        "endpoints:\n  e:\n    data_sources:\n      - {name: it, type: fragile, params: {a: 1}}\n",
    )]);
    let broken = Arc::new(AtomicBool::new(false));
    let orchestrator = Orchestrator::builder()
        .register_factory("fragile", Fragile(broken.clone()))
        .load_dir(dir.path())
        .unwrap();
    broken.store(true, Ordering::SeqCst);
    let err = orchestrator.reload().unwrap_err();
    assert!(matches!(err, api_orchestrator::Error::Panicked(_)), "{err}");
    assert!(err.to_string().contains("the factory broke"), "{err}");
    assert_eq!(orchestrator.version(), 1);
    let out = orchestrator
        .execute("e", api_orchestrator::RequestContext::new())
        .await
        .unwrap();
    assert_eq!(out.response, json!({"a": 1}));
    // And it reloads again once the cause is gone.
    broken.store(false, Ordering::SeqCst);
    assert_eq!(orchestrator.reload().unwrap(), 2);
}

/// An API with a SQLite lookup by integer id, an API call by path id, and a lookup fed by
/// another source rather than the request.
fn shop(upstream: &Upstream) -> (tempfile::TempDir, Api) {
    let dir = config_dir(&[
        (
            "database.yaml",
            "database:\n  sources:\n    default: {connection_string: \"sqlite::memory:\"}\n  operations:\n    by_id:\n      query: \"SELECT :id AS id\"\n      params: {id: integer}\n",
        ),
        (
            "integrations/api_sources.yaml",
            &format!(
                "api:\n  sources:\n    up:\n      base_url: \"{}\"\n      operations:\n        item: {{path: \"/items/{{id}}\"}}\n        strict: {{path: \"/invalid/{{id}}\"}}\n",
                upstream.url()
            ),
        ),
        (
            "integrations/feast_config.yaml",
            &format!(
                "feast:\n  sources:\n    rows:\n      url: \"{}/rows\"\n      operations:\n        stats: {{features: [\"customer_stats:num_orders\"], entity_key: customer_id}}\n",
                upstream.url()
            ),
        ),
        (
            "domains/shop.yaml",
            r#"
endpoints:
  lookup:
    path: /lookup/{id}
    data_sources:
      - {name: row, type: database, operation: by_id, params: {id: "$request.id"}}
  remote:
    path: /remote/{id}
    data_sources:
      - {name: thing, type: api, operation: item, params: {id: "$request.id"}}
  strict:
    path: /strict/{id}
    data_sources:
      - {name: thing, type: api, operation: strict, params: {id: "$request.id"}}
  features:
    path: /features
    data_sources:
      - {name: f, type: feast, operation: stats, params: {customer_id: "$request.customer_id"}}
  echo:
    path: /echo
    method: [POST]
    data_sources:
      - {name: it, type: direct, params: {body: "$request.body"}}
  chained:
    path: /chained
    data_sources:
      - {name: seed, type: direct, params: {id: abc}}
      - {name: row, type: database, operation: by_id, params: {id: "$seed.id"}}
    primary_source: row
"#,
        ),
    ]);
    let orchestrator = Orchestrator::from_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    (dir, Api::new(&orchestrator))
}

async fn call(api: &Api, method: &str, path: &str) -> (u16, http::HeaderMap, Value) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .body(Body::Empty)
        .unwrap();
    let response = api.handle(request).await;
    let body = serde_json::from_slice(response.body()).unwrap_or(Value::Null);
    (response.status().as_u16(), response.headers().clone(), body)
}

#[tokio::test]
async fn a_value_the_request_alone_supplies_and_a_source_rejects_is_a_400_naming_it() {
    let upstream = Upstream::start().await;
    let (_dir, api) = shop(&upstream);
    let (status, _, body) = call(&api, "GET", "/lookup/abc").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["type"], "urn:orchestrator:problem:invalid-parameter");
    assert_eq!(body["parameter"], "id");
    let (status, _, body) = call(&api, "GET", "/lookup/7").await;
    assert_eq!((status, &body["id"]), (200, &json!(7)), "{body}");

    let (status, _, body) = call(&api, "GET", "/remote/..").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["parameter"], "id");
    assert_eq!(upstream.calls("/items/.."), 0);

    // An upstream's 400 to a call built from the request alone: the client's values.
    let (status, _, body) = call(&api, "GET", "/strict/x1").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["parameter"], "id", "{body}");
    // A missing entity key of a feature lookup, taken from the request: the client's too.
    let (status, _, body) = call(&api, "GET", "/features").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["parameter"], "customer_id", "{body}");

    // A value another source produced is not the client's mistake.
    let (status, _, body) = call(&api, "GET", "/chained").await;
    assert_eq!(status, 502, "{body}");
}

#[tokio::test]
async fn head_is_answered_like_get_without_the_body() {
    let upstream = Upstream::start().await;
    let (_dir, api) = shop(&upstream);
    let get = api
        .handle(Request::get("/lookup/7").body(Body::Empty).unwrap())
        .await;
    let head = api
        .handle(Request::head("/lookup/7").body(Body::Empty).unwrap())
        .await;
    assert_eq!((get.status().as_u16(), head.status().as_u16()), (200, 200));
    assert!(head.body().is_empty());
    assert_eq!(
        head.headers().get("content-length"),
        Some(&http::HeaderValue::from(get.body().len()))
    );
    assert_eq!(
        head.headers().get("content-type").unwrap(),
        "application/json"
    );
}

#[tokio::test]
async fn a_truncated_body_is_a_400_not_a_413() {
    let upstream = Upstream::start().await;
    let (_dir, api) = shop(&upstream);
    let app = axum::Router::new().nest_service("/api", api);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            b"POST /api/echo HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"id\": ",
        )
        .await
        .unwrap();
    // The client stops sending: the body ends 93 bytes early.
    stream.shutdown().await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("invalid-body"), "{answer}");
}

#[tokio::test]
async fn passwords_in_connection_strings_and_base_urls_stay_out_of_load_errors() {
    let good = config_dir(&[(
        "domains/shop.yaml",
        "endpoints:\n  e:\n    data_sources:\n      - {name: it, type: direct}\n",
    )]);
    let orchestrator = Orchestrator::from_dir(good.path()).unwrap();
    let bad = [
        (
            "database.yaml",
            "database:\n  sources:\n    default: {connection_string: \"host=db password=pw-secret-1\"}\n  operations: {}\n",
        ),
        (
            "integrations/api_sources.yaml",
            "api:\n  sources:\n    up:\n      base_url: \"http://app:pw-secret-2@[::1\"\n      operations:\n        x: {path: /x}\n",
        ),
        (
            "domains/shop.yaml",
            "endpoints:\n  e:\n    data_sources:\n      - {name: it, type: api, operation: x}\n",
        ),
    ];
    for (path, text) in bad {
        std::fs::create_dir_all(good.path().join(path).parent().unwrap()).unwrap();
        std::fs::write(good.path().join(path), text).unwrap();
    }
    // What a reload reports (the admin service's 422 body carries the same text) …
    let reloaded = orchestrator.reload().unwrap_err().to_string();
    // … and what a start reports.
    let started = Orchestrator::from_dir(good.path()).unwrap_err().to_string();
    for text in [&reloaded, &started] {
        assert!(!text.contains("pw-secret"), "{text}");
    }
    assert!(
        reloaded.contains("not a URL") || reloaded.contains("not a database URL"),
        "{reloaded}"
    );
}

#[test]
fn deeply_nested_flow_yaml_is_refused_before_it_is_parsed() {
    // 200 KB of `[` took a YAML parser 90 s of CPU; the loader refuses it up front.
    let n = 100_000;
    let yaml = format!("endpoints: {}{}\n", "[".repeat(n), "]".repeat(n));
    let text = rejected(ConfigFiles::new().with_file("domains/deep.yaml", yaml));
    assert!(
        text.contains("deeper than 64 levels"),
        "{}",
        &text[..text.len().min(400)]
    );
    assert!(
        text.contains("domains/deep.yaml:1:"),
        "{}",
        &text[..text.len().min(400)]
    );
    // The quoted line is a window around the column, not 200 KB.
    assert!(text.len() < 1_000, "{} bytes", text.len());
    // Brackets in quotes, comments and route templates are not nesting.
    let fine = format!(
        "endpoints:  # {}\n  e:\n    path: /x/{{id}}\n    data_sources:\n      - {{name: it, type: direct, params: {{a: \"{}\"}}}}\n",
        "[".repeat(100),
        "[".repeat(100)
    );
    Loader::new()
        .load(&ConfigFiles::new().with_file("domains/shop.yaml", fine))
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn a_query_returning_more_rows_than_max_rows_fails_without_reading_them_all() {
    let dir = config_dir(&[
        (
            "database.yaml",
            r#"
database:
  sources:
    default: {connection_string: "sqlite::memory:"}
  operations:
    many:
      query: "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000) SELECT i FROM n"
      return_type: list
    many_allowed:
      query: "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000) SELECT i FROM n"
      return_type: list
      max_rows: 20000
"#,
        ),
        (
            "domains/shop.yaml",
            r#"
endpoints:
  capped:
    data_sources:
      - {name: rows, type: database, operation: many}
  allowed:
    data_sources:
      - {name: rows, type: database, operation: many_allowed}
"#,
        ),
    ]);
    let o = Orchestrator::from_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let request = api_orchestrator::RequestContext::new;
    match o.execute("capped", request()).await {
        Err(api_orchestrator::engine::ExecuteError::SourceFailed { error, .. }) => {
            assert_eq!(
                error.kind,
                api_orchestrator::source::SourceErrorKind::InvalidResponse
            );
            assert!(
                error.message.contains("more than 10000 rows"),
                "{}",
                error.message
            );
        }
        other => panic!("expected the row cap, got {other:?}"),
    }
    let all = o.execute("allowed", request()).await.unwrap();
    assert_eq!(all.response.as_array().map(Vec::len), Some(20_000));
    assert!(
        Loader::new()
            .load(&ConfigFiles::new().with_file(
                "database.yaml",
                "database:\n  sources:\n    default: {connection_string: \"sqlite::memory:\"}\n  operations:\n    x: {query: \"SELECT 1\", max_rows: 0}\n"
            ))
            .is_err()
    );
}

#[tokio::test]
async fn a_sqlite_file_that_cannot_be_opened_is_unavailable_and_retried() {
    let dir = config_dir(&[
        (
            "database.yaml",
            "database:\n  sources:\n    default: {connection_string: \"sqlite:///missing-dir/x.db\", acquire_timeout: 1s}\n  operations:\n    one: {query: \"SELECT 1 AS one\"}\n",
        ),
        (
            "domains/shop.yaml",
            "endpoints:\n  e:\n    data_sources:\n      - {name: it, type: database, operation: one, retries: {max: 1, backoff: 1ms}}\n",
        ),
    ]);
    let o = Orchestrator::from_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    match o
        .execute("e", api_orchestrator::RequestContext::new())
        .await
    {
        Err(api_orchestrator::engine::ExecuteError::SourceFailed { error, trace, .. }) => {
            assert_eq!(
                error.kind,
                api_orchestrator::source::SourceErrorKind::Unavailable,
                "{}",
                error.message
            );
            assert_eq!(trace.sources[0].attempts, 2, "retried");
        }
        other => panic!("expected the file to be unavailable, got {other:?}"),
    }
}

/// Credentials held by a plan are [`Secret`](api_orchestrator::plan::Secret)s: printing the
/// whole plan with `{:?}` (as a host might, logging what it loaded) shows none of them.
#[test]
fn a_plan_printed_with_debug_shows_no_credential() {
    let files = ConfigFiles::new()
        .with_file(
            "config.yaml",
            "auth: {enabled: true, jwt_secret: s3cret-jwt-0-long-enough}\ncache: {store: redis, url: \"redis://:s3cret-redis-1@127.0.0.1:6379/0\"}\n",
        )
        .with_file(
            "database.yaml",
            "database:\n  sources:\n    default: {connection_string: \"postgres://app:s3cret-db-2@db/orders?sslpassword=s3cret-db-3\"}\n  operations: {}\n",
        )
        .with_file(
            "integrations/api_sources.yaml",
            "api:\n  sources:\n    up:\n      base_url: \"http://app:s3cret-url-4@api.example.com/v1\"\n      headers: {X-API-Key: s3cret-header-6}\n      auth: {type: bearer, token: s3cret-token-7}\n      operations:\n        x: {path: /x}\n    keyed:\n      base_url: \"http://api.example.com\"\n      auth: {type: api_key, query: key, key: s3cret-key-8}\n      operations:\n        y: {path: /y}\n    basic:\n      base_url: \"http://api.example.com\"\n      auth: {type: basic, username: app, password: s3cret-basic-9}\n      operations:\n        z: {path: /z}\n",
        )
        .with_file(
            "integrations/ml_config.yaml",
            "ml:\n  sources:\n    models:\n      base_url: \"http://m:s3cret-ml-10@127.0.0.1:8080\"\n      headers: {Authorization: \"Bearer s3cret-ml-11\"}\n      models:\n        churn: {endpoint: /predict, headers: {X-Model-Key: s3cret-ml-12}}\n",
        )
        .with_file(
            "domains/shop.yaml",
            "endpoints:\n  x:\n    data_sources:\n      - {name: x, type: api, operation: x}\n",
        );
    let plan = Loader::new()
        .load(&files)
        .unwrap_or_else(|e| panic!("{e}"))
        .into_plan();
    let shown = format!("{plan:?}");
    assert!(shown.contains("api.example.com"), "URLs stay readable");
    assert!(!shown.contains("s3cret"), "{shown}");
    // …while the code that sends them still has them.
    let api = &plan.integrations.global.api.sources["up"];
    assert_eq!(api.http.headers["X-API-Key"].expose(), "s3cret-header-6");
}

/// An upstream's 404 is a failure by default (502), nothing found with `on_not_found: empty`
/// (a null result; `required: true` answers 404), and the endpoint's own 404 with
/// `on_not_found: 404`, before `on_error` or a fallback sees it.
#[tokio::test]
async fn an_upstream_404_answers_what_on_not_found_says() {
    let upstream = Upstream::start().await;
    let dir = config_dir(&[
        (
            "integrations/api_sources.yaml",
            &format!(
                "api:\n  sources:\n    up:\n      base_url: \"{}\"\n      operations:\n        item: {{path: \"/missing/{{id}}\"}}\n",
                upstream.url()
            ),
        ),
        (
            "domains/shop.yaml",
            r#"
endpoints:
  plain:
    path: /plain/{id}
    data_sources:
      - {name: thing, type: api, operation: item, params: {id: "$request.id"}}
  empty:
    path: /empty/{id}
    data_sources:
      - {name: thing, type: api, operation: item, params: {id: "$request.id"}, on_not_found: empty}
    response_mapping: {thing: $thing, found: "$= $thing != null"}
  required:
    path: /required/{id}
    data_sources:
      - {name: thing, type: api, operation: item, params: {id: "$request.id"}, on_not_found: empty, required: true}
  answers:
    path: /answers/{id}
    data_sources:
      - {name: thing, type: api, operation: item, params: {id: "$request.id"}, on_not_found: 404, on_error: skip}
"#,
        ),
    ]);
    let o = Orchestrator::from_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let api = Api::new(&o);
    let (status, _, body) = call(&api, "GET", "/plain/7").await;
    assert_eq!(status, 502, "{body}");
    let (status, _, body) = call(&api, "GET", "/empty/7").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"thing": null, "found": false}));
    for path in ["/required/7", "/answers/7"] {
        let (status, _, body) = call(&api, "GET", path).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(body["type"], "urn:orchestrator:problem:no-result", "{body}");
    }
    assert_eq!(
        upstream.calls("/missing/7"),
        4,
        "one call each, no retry of a 404"
    );

    // A misspelt mode is a load error listing the choices.
    let bad = ConfigFiles::new().with_file(
        "domains/x.yaml",
        "endpoints:\n  x:\n    data_sources:\n      - {name: d, type: direct, on_not_found: nothing}\n",
    );
    let text = rejected(bad);
    assert!(text.contains("fail") && text.contains("empty"), "{text}");
}
