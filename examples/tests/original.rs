//! A config directory written for the original Python service, served by the demo server
//! binary with no edit: its URLs, its config.yaml settings (CORS, compression, the cache, JWT)
//! and its ML wire body, against a real SQLite database and real HTTP upstreams in this test.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Path as UrlPath, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

mod support;

use support::{copy_dir, start_server};

/// The fixture's `auth.jwt_secret`.
const SECRET: &str = "original-fixture-secret";

/// An HS256 token with these claims, signed with `secret`.
fn token(secret: &str, claims: &Value) -> String {
    let enc = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    let signed = format!(
        "{}.{}",
        enc(&json!({"alg": "HS256", "typ": "JWT"})),
        enc(claims)
    );
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(ring::hmac::sign(&key, signed.as_bytes()).as_ref());
    format!("{signed}.{sig}")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// What the upstreams received: model calls (path, headers, body) and credit API calls.
#[derive(Default)]
struct Seen {
    model_calls: Vec<(String, HeaderMap, Value)>,
    credit_calls: usize,
}

type Shared = Arc<Mutex<Seen>>;

fn json_body(v: Value) -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
}

/// The model server and the credit bureau, on one loopback port.
async fn upstreams() -> (String, Shared) {
    let seen = Shared::default();
    let app = axum::Router::new()
        .route(
            "/predict/{model}",
            post(
                |State(seen): State<Shared>,
                 UrlPath(model): UrlPath<String>,
                 headers: HeaderMap,
                 body: axum::body::Bytes| async move {
                    let body: Value = serde_json::from_slice(&body).unwrap_or_default();
                    seen.lock()
                        .unwrap()
                        .model_calls
                        .push((model.clone(), headers, body.clone()));
                    json_body(match model.as_str() {
                        "credit_risk" => json!({
                            "customer_id": body["features"]["customer_id"],
                            "prediction_date": "2026-12-01",
                            "risk_score": {"score": 22, "risk_tier": "Low", "default_probability": 0.04},
                        }),
                        _ => json!({"probability": 0.31, "risk_tier": "Medium"}),
                    })
                },
            ),
        )
        .route(
            "/api/v1/credit/customers/{id}/credit-score",
            get(
                |State(seen): State<Shared>, UrlPath(id): UrlPath<String>| async move {
                    seen.lock().unwrap().credit_calls += 1;
                    json_body(json!({"customer_id": id, "score": 780}))
                },
            ),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), seen)
}

struct Server {
    child: tokio::process::Child,
    base: String,
    client: reqwest::Client,
    bearer: String,
}

impl Server {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, HeaderMap, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.bearer);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        (
            status,
            headers,
            serde_json::from_str(&text).unwrap_or(Value::Null),
        )
    }

    async fn ok(&self, path: &str) -> Value {
        let (status, _, body) = self.call(reqwest::Method::GET, path, None).await;
        assert_eq!(status, 200, "{path}: {body}");
        body
    }
}

async fn start(config: &Path, upstream: &str) -> Server {
    let (child, base) = start_server(
        config,
        &[
            ("ORIGINAL_ML_URL", upstream.to_owned()),
            ("ORIGINAL_CREDIT_URL", format!("{upstream}/api/v1/credit")),
            // The fixture brings its own database: no demo seeding.
            ("DEMO_DATABASE_URL", "unused".to_owned()),
        ],
    )
    .await;
    Server {
        child,
        base,
        client: reqwest::Client::new(),
        bearer: token(SECRET, &json!({"sub": "ada", "exp": now() + 600})),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_original_services_config_and_urls_work_unchanged() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixtures.join("original"), dir.path(), &[]);
    // `sqlite:///customer360.db`, relative to the config directory as SQLAlchemy had it.
    let db = dir.path().join("customer360.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite:{}?mode=rwc", db.display()))
        .await
        .unwrap();
    let seed = std::fs::read_to_string(fixtures.join("original.sql")).unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(seed))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    let (upstream, seen) = upstreams().await;
    let mut server = start(dir.path(), &upstream).await;
    let api = format!("{}/api", server.base);
    server.base = format!("{api}/orchestrator");

    // The listings.
    assert_eq!(
        server.ok("/domains").await,
        json!([
            "customers",
            "hello",
            "model_scoring_churn",
            "model_scoring_credit_risk"
        ])
    );
    let models = server.ok("/model_scoring").await;
    let credit_model = models["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["model_name"] == "credit_risk")
        .expect("credit_risk is listed")
        .clone();
    assert_eq!(
        credit_model["description"],
        "Predict the credit risk of a customer"
    );
    assert_eq!(
        credit_model["endpoint"],
        "/orchestrator/model_scoring/credit_risk"
    );
    assert_eq!(
        credit_model["input_schema"]["properties"]["income"],
        json!({"type": "number", "description": "Annual income"})
    );
    assert_eq!(
        credit_model["output_schema"]["properties"]["risk_score"],
        json!({"type": "object"})
    );

    // Generic routes, with and without the entity id.
    assert_eq!(
        server.ok("/customers/get/cust_12345").await,
        json!({"customer_id": "cust_12345", "name": "Ada Lovelace", "email": "ada@example.com"})
    );
    let (status, headers, problem) = server
        .call(reqwest::Method::GET, "/customers/get/nobody", None)
        .await;
    assert_eq!(status, 404, "{problem}");
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(
        server.ok("/customers/list?limit=1").await,
        json!([{"customer_id": "cust_12345", "name": "Ada Lovelace"}]),
        "select_fields keeps the listed fields"
    );
    let (status, _, created) = server
        .call(
            reqwest::Method::POST,
            "/customers/create",
            Some(json!({"name": "Grace"})),
        )
        .await;
    assert_eq!(
        (status, created),
        (200, json!({"received": {"name": "Grace"}}))
    );
    let echoed = server.ok("/customers/echo_request/42?x=1").await;
    assert_eq!(echoed["path_params"]["entity_id"], "42");
    assert_eq!(echoed["query_params"], json!({"x": "1"}));
    assert_eq!(echoed["body"], json!({}), "{echoed}");

    // A static response with `$system.timestamp`.
    let hello = server.ok("/hello/greet").await;
    assert_eq!(hello["message"], "Hello from the orchestrator");
    assert!(
        hello["generated_at"].as_str().unwrap().ends_with('Z'),
        "{hello}"
    );

    // `response_template`, and the cache of `performance.cache_enabled`: the second identical
    // request makes no upstream call.
    let credit = server.ok("/customers/credit/cust_12345").await;
    assert_eq!(
        credit,
        json!({
            "customer_id": "cust_12345",
            "name": "Ada Lovelace",
            "credit_score": 780,
            "summary": "Customer Ada Lovelace has score 780",
        })
    );
    assert_eq!(seen.lock().unwrap().credit_calls, 1);
    assert_eq!(server.ok("/customers/credit/cust_12345").await, credit);
    assert_eq!(
        seen.lock().unwrap().credit_calls,
        1,
        "the second request was answered from the cache"
    );

    // Model scoring: the original's wire body, with the model's own headers.
    let (status, _, risk) = server
        .call(
            reqwest::Method::POST,
            "/model_scoring/credit_risk/cust_12345",
            Some(json!({"income": 90000})),
        )
        .await;
    assert_eq!(status, 200, "{risk}");
    assert_eq!(
        risk,
        json!({
            "customer_id": "cust_12345",
            "name": "Ada Lovelace",
            "risk_score": {"score": 22, "risk_tier": "Low", "default_probability": 0.04},
            "credit_profile": {"credit_score": 780, "debt_to_income": 0.25},
            "prediction_date": "2026-12-01",
        })
    );
    {
        let seen = seen.lock().unwrap();
        let (model, headers, body) = seen.model_calls.last().unwrap();
        assert_eq!(model, "credit_risk");
        assert_eq!(headers["x-model-key"], "fixture-key");
        assert_eq!(
            body,
            &json!({"features": {
                "customer_id": "cust_12345",
                "credit_score": 780,
                "debt_to_income": 0.25,
                "income": 90000,
                "outstanding_debt": 15000,
            }})
        );
    }
    // The same endpoint under its generic route; the churn model beside it (both `predict`).
    let churn = server
        .ok("/model_scoring_churn/predict/cust_67890?tickets=3")
        .await;
    assert_eq!(
        churn,
        json!({"customer_id": "cust_67890", "churn_prediction": {"probability": 0.31, "risk_tier": "Medium"}})
    );
    assert_eq!(
        server.ok("/model_scoring/churn/cust_67890?tickets=3").await,
        churn
    );
    assert_eq!(
        seen.lock().unwrap().model_calls.last().unwrap().2,
        json!({"features": {
            "customer_id": "cust_67890",
            "active_users": 3,
            "logins_last_month": 25,
            "support_tickets": "3",
        }})
    );

    // CORS: a preflight from the allowed origin is answered; a foreign origin gets no grant.
    let preflight = |origin: &'static str| {
        server
            .client
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/customers/get/cust_12345", server.base),
            )
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let allowed = preflight("http://allowed.example").await.unwrap();
    assert!(allowed.status().is_success(), "{}", allowed.status());
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "http://allowed.example"
    );
    let foreign = preflight("http://evil.example").await.unwrap();
    assert!(
        foreign
            .headers()
            .get("access-control-allow-origin")
            .is_none(),
        "{:?}",
        foreign.headers()
    );

    // Compression for clients that accept it.
    let gzipped = server
        .client
        .get(format!("{}/model_scoring", server.base))
        .bearer_auth(&server.bearer)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(gzipped.status(), 200);
    assert_eq!(gzipped.headers()["content-encoding"], "gzip");
    let bytes = gzipped.bytes().await.unwrap();
    assert_eq!(&bytes[..2], [0x1f, 0x8b], "a gzip stream");

    // JWT: missing, valid (above), expired and forged tokens.
    let path = format!("{}/customers/get/cust_12345", server.base);
    let missing = server.client.get(&path).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    assert_eq!(missing.headers()["www-authenticate"], "Bearer");
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );
    for bad in [
        token(SECRET, &json!({"sub": "ada", "exp": now() - 3600})),
        token(
            "another-secret-of-some-length",
            &json!({"sub": "ada", "exp": now() + 600}),
        ),
    ] {
        let r = server
            .client
            .get(&path)
            .bearer_auth(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }

    // The endpoints' own routes below `app.api_base_path` answer too, and OpenAPI documents
    // them: the domains as tags, the bearer scheme, 401 answers, one `predict` per domain.
    server.base = api;
    let doc = server.ok("/openapi.json").await;
    assert_eq!(doc["info"]["title"], "orchestrator-api-service");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let get = &doc["paths"]["/customers/get/{entity_id}"]["get"];
    assert!(get["responses"]["401"].is_object(), "{get}");
    assert_eq!(get["tags"], json!(["customers"]));
    let tags = doc["tags"].as_array().unwrap();
    assert!(
        tags.iter().any(|t| t["name"] == "customers"
            && t["description"]
                == "Customers: Customer lookups, listing, credit enrichment and echo endpoints"),
        "{tags:?}"
    );
    assert_eq!(
        doc["paths"]["/model_scoring_churn/predict"]["get"]["operationId"],
        "model_scoring_churn_predict_get"
    );
    assert_eq!(
        server.ok("/customers/get/cust_67890").await["name"],
        "Alan Turing"
    );
    // `logging`: JSON lines into the daily file below the working directory (the config's
    // warnings were logged at start).
    let logs: Vec<_> = std::fs::read_dir(dir.path().join("logs"))
        .expect("the log directory exists")
        .map(|e| e.unwrap().path())
        .collect();
    let log = logs
        .iter()
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("orchestrator.log")
        })
        .unwrap_or_else(|| panic!("no log file in {logs:?}"));
    let text = std::fs::read_to_string(log).unwrap();
    let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["level"], "WARN", "{text}");
    assert!(text.contains("the config loaded with warnings"), "{text}");
    server.child.kill().await.unwrap();
}
