//! The OpenAPI document and the `/docs` page: every endpoint of the shipped configs appears
//! with its parameters; the document passes a real OpenAPI 3.1 validator
//! (`ORCHESTRATOR_TEST_OPENAPI_VALIDATOR`); and headless Chromium renders each operation from
//! `/docs` with no network beyond loopback (`ORCHESTRATOR_TEST_CHROMIUM`).

use std::path::{Path, PathBuf};

use api_orchestrator::ValidPlan;
use api_orchestrator::config::Loader;
use api_orchestrator::{Orchestrator, web::Api};

use tests::db::skipped;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// The configs whose documents are checked: the example, the seed, and one with declared
/// inputs and outputs.
fn configs() -> Vec<(String, ValidPlan)> {
    let declared = tests::config_dir(&[(
        "domains/typed.yaml",
        r#"
endpoints:
  score:
    description: Scores a customer
    path: /scores/{customer_id}
    method: [GET, POST]
    input:
      path: {customer_id: integer}
      query: {model: {type: string, required: false, description: Model name}}
      body: {features: object, weights: {type: array, required: false}}
    output:
      type: object
      required: [score]
      properties: {score: {type: number}, band: {type: string, enum: [A, B, C]}}
    data_sources:
      - {name: s, type: direct, params: {id: "$request.customer_id"}}
    response_mapping: {score: 1.5, band: A}
"#,
    )]);
    let loader = Loader::new().with_env(|name| (name == "CREDIT_API_TOKEN").then(|| "x".into()));
    let mut out = Vec::new();
    for dir in [
        root().join("examples/config"),
        root().join("tests/fixtures/valid/seed"),
        declared.path().to_owned(),
    ] {
        let plan = loader
            .load_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        out.push((dir.display().to_string(), plan));
    }
    out
}

#[test]
fn every_endpoint_appears_with_its_parameters() {
    for (name, plan) in configs() {
        let doc = serde_json::to_value(api_orchestrator::web::openapi::document(&plan)).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        for e in &plan.endpoints {
            for route in e.routes() {
                let op =
                    &doc["paths"][route.path.as_str()][route.method.as_str().to_ascii_lowercase()];
                assert!(op.is_object(), "{name}: {route} missing");
                let params = op["parameters"].as_array().cloned().unwrap_or_default();
                for capture in route.path.params() {
                    assert!(
                        params.iter().any(|p| p["name"] == capture
                            && p["in"] == "path"
                            && p["required"] == true),
                        "{name}: {route} lacks path parameter {capture}: {op}"
                    );
                }
                for q in &e.input.query {
                    assert!(
                        params
                            .iter()
                            .any(|p| p["name"] == q.name.as_str() && p["in"] == "query"),
                        "{name}: {route}: {q:?}"
                    );
                }
                assert!(op["responses"]["200"].is_object());
                assert_eq!(
                    op["responses"]["502"]["content"]["application/problem+json"]["schema"]["$ref"],
                    "#/components/schemas/Problem"
                );
            }
        }
    }
}

#[test]
fn declared_inputs_and_outputs_shape_the_document() {
    let (_, plan) = configs().pop().unwrap();
    let doc = serde_json::to_value(api_orchestrator::web::openapi::document(&plan)).unwrap();
    let get = &doc["paths"]["/scores/{customer_id}"]["get"];
    assert_eq!(get["parameters"][0]["schema"]["type"], "integer");
    assert_eq!(get["parameters"][1]["required"], false);
    assert_eq!(
        get["responses"]["200"]["content"]["application/json"]["schema"]["properties"]["band"]["enum"]
            [2],
        "C"
    );
    let post = &doc["paths"]["/scores/{customer_id}"]["post"];
    let body = &post["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(body["required"], serde_json::json!(["features"]));
    assert_eq!(body["properties"]["weights"]["type"], "array");
}

/// Without an `output:`, the response schema follows the mapping: nested objects keep their
/// properties, literals their type, expressions are left open.
#[test]
fn response_schemas_follow_the_mapping() {
    let (_, plan) = configs().remove(0);
    let doc = serde_json::to_value(api_orchestrator::web::openapi::document(&plan)).unwrap();
    let (_, item) = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(path, _)| path.contains("get_customer_360"))
        .expect("the customer 360 route");
    let schema = &item["get"]["responses"]["200"]["content"]["application/json"]["schema"];
    // The demo ships its schema snapshot: the mapping's fields have the sources' types, null
    // where a column is nullable or a source may be absent.
    let at = |path: &[&str]| {
        let mut s = schema;
        for p in path {
            s = &s["properties"][*p];
        }
        s.clone()
    };
    let ty = |t: &str| serde_json::json!({"type": t});
    let or_null = |t: &str| serde_json::json!({"type": [t, "null"]});
    assert_eq!(schema["type"], "object", "{schema:#}");
    assert_eq!(at(&["customer_id"]), ty("integer"), "{schema:#}");
    assert_eq!(at(&["personal_info", "name"]), ty("string"), "{schema:#}");
    assert_eq!(
        at(&["personal_info", "email"]),
        or_null("string"),
        "{schema:#}"
    );
    assert_eq!(
        at(&["account_info", "segment"]),
        ty("string"),
        "`|| 'standard'`: {schema:#}"
    );
    assert_eq!(at(&["account_info", "active"]), ty("boolean"), "{schema:#}");
    assert_eq!(
        at(&["account_info", "credit_score"]),
        or_null("integer"),
        "{schema:#}"
    );
    assert_eq!(
        at(&["behavior", "lifetime_value"]),
        or_null("number"),
        "{schema:#}"
    );
    assert_eq!(
        at(&["predictions", "churn_probability"]),
        or_null("number"),
        "{schema:#}"
    );
    assert_eq!(
        at(&["predictions", "will_churn"]),
        or_null("integer"),
        "{schema:#}"
    );
    let orders = at(&["recent_orders"]);
    assert_eq!(orders["type"], "array", "{schema:#}");
    assert_eq!(
        orders["items"]["properties"]["order_id"],
        ty("integer"),
        "{schema:#}"
    );
    assert_eq!(
        orders["items"]["properties"]["amount"],
        ty("number"),
        "`columns:` converts it: {schema:#}"
    );
    assert_eq!(
        schema["required"],
        serde_json::json!([
            "customer_id",
            "personal_info",
            "account_info",
            "behavior",
            "recent_orders",
            "predictions"
        ]),
        "{schema:#}"
    );
    // The recommendations: the model's BYTES and FP64 output tensors, three per row.
    let (_, item) = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(path, _)| path.starts_with("/recommendations/"))
        .expect("the recommendations route");
    let schema = &item["get"]["responses"]["200"]["content"]["application/json"]["schema"];
    assert_eq!(
        schema["properties"]["recommendations"],
        serde_json::json!({"type": "array", "items": {"type": "string"}}),
        "{schema:#}"
    );
    assert_eq!(
        schema["properties"]["scores"],
        serde_json::json!({"type": "array", "items": {"type": "number"}}),
        "{schema:#}"
    );
    assert_eq!(
        schema["properties"]["customer_id"],
        ty("integer"),
        "{schema:#}"
    );

    // The document's only server is the mount point, relative to the document itself.
    assert_eq!(doc["servers"][0]["url"], ".");

    // Literals keep their type, nested; arrays of one shape have `items`, mixed ones
    // `prefixItems`.
    let dir = tests::config_dir(&[(
        "domains/shapes.yaml",
        r#"
endpoints:
  shapes:
    data_sources: [{name: s, type: direct, params: {id: "$request.id"}}]
    response_mapping:
      id: "$s.id"
      kind: customer
      n: 3
      ratio: 0.5
      flags: [true, false]
      pair: [1, "$s.id"]
      nested: {ok: true, list: [{a: 1}, {a: 2}]}
"#,
    )]);
    let plan = Loader::new().load_dir(dir.path()).unwrap();
    let doc = serde_json::to_value(api_orchestrator::web::openapi::document(&plan)).unwrap();
    let (_, item) = doc["paths"].as_object().unwrap().iter().next().unwrap();
    let schema = &item["get"]["responses"]["200"]["content"]["application/json"]["schema"];
    assert_eq!(
        *schema,
        serde_json::json!({"type": "object", "properties": {
            "id": {},
            "kind": {"type": "string"},
            "n": {"type": "integer"},
            "ratio": {"type": "number"},
            "flags": {"type": "array", "items": {"type": "boolean"}},
            "pair": {"type": "array", "prefixItems": [{"type": "integer"}, {}], "items": false},
            "nested": {"type": "object", "properties": {
                "ok": {"type": "boolean"},
                "list": {"type": "array", "items": {
                    "type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]
                }}
            }, "required": ["ok", "list"]}
        }, "required": ["id", "kind", "n", "ratio", "flags", "pair", "nested"]}),
        "{schema:#}"
    );
}

#[test]
fn documents_pass_an_openapi_3_1_validator() {
    let Some(validator) =
        std::env::var_os("ORCHESTRATOR_TEST_OPENAPI_VALIDATOR").filter(|v| !v.is_empty())
    else {
        skipped(
            "the OpenAPI validator check (run `eval \"$(.ci/python-servers)\"` to install it and set ORCHESTRATOR_TEST_OPENAPI_VALIDATOR)",
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for (i, (name, plan)) in configs().into_iter().enumerate() {
        let file = dir.path().join(format!("openapi-{i}.json"));
        std::fs::write(
            &file,
            serde_json::to_vec_pretty(&api_orchestrator::web::openapi::document(&plan)).unwrap(),
        )
        .unwrap();
        let out = std::process::Command::new(&validator)
            .arg(&file)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", Path::new(&validator).display()));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "{name}: the validator rejects the document:\n{text}"
        );
        assert!(text.contains("OK"), "{name}: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docs_page_renders_every_operation_offline() {
    let Some(chromium) = std::env::var_os("ORCHESTRATOR_TEST_CHROMIUM").filter(|v| !v.is_empty())
    else {
        skipped(
            "the headless Chromium /docs check (run `eval \"$(.ci/chromium)\"` to install it and set ORCHESTRATOR_TEST_CHROMIUM)",
        );
        return;
    };
    let o =
        Orchestrator::from_dir(root().join("examples/config")).unwrap_or_else(|e| panic!("{e}"));
    let plan = o.plan().clone();
    let app = axum::Router::new().nest_service("/api", Api::new(&o));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let profile = tempfile::tempdir().unwrap();
    let url = format!("http://{addr}/api/docs/");
    let out = tokio::process::Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            // The network is closed: nothing but loopback resolves.
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
            "--virtual-time-budget=20000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(&url)
        .output()
        .await
        .expect("chromium");
    server.abort();
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        dom.contains("swagger-ui"),
        "the page did not render:\n{dom}"
    );
    for e in &plan.endpoints {
        for route in e.routes() {
            let marker = format!("data-path=\"{}\"", route.path.as_str());
            assert!(
                dom.contains(&marker),
                "{route} ({}) is not rendered in /docs:\n{dom}",
                e.name
            );
        }
    }
    assert!(
        dom.contains("opblock-get") && dom.contains("opblock-post"),
        "operations are not rendered"
    );
}
