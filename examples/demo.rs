//! What the demo server needs besides the library: a seeded SQLite database, and local
//! stand-ins for the services that are remote by nature (the credit bureau API, the Feast
//! feature server, the model server). Each stand-in speaks the real wire protocol
//! (PROTOCOLS.md) on a free loopback port, so the config that reaches it would reach the real
//! service unchanged.

use std::net::SocketAddr;
use std::path::Path;

use axum::Router;
use axum::extract::{Path as UrlPath, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// Creates and seeds the demo database at `path` unless it exists. Returns whether it did.
pub async fn seed_database(path: &Path) -> Result<bool, Box<dyn std::error::Error>> {
    if path.exists() {
        return Ok(false);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let pool = sqlx::SqlitePool::connect(&format!("sqlite:{}?mode=rwc", path.display())).await?;
    sqlx::raw_sql(SEED).execute(&pool).await?;
    pool.close().await;
    Ok(true)
}

const SEED: &str = "
CREATE TABLE customers (
    customer_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT,
    segment TEXT,
    city TEXT,
    country TEXT,
    signup_date DATE,
    is_active BOOLEAN NOT NULL DEFAULT 1
);
CREATE TABLE orders (
    order_id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers (customer_id),
    amount NUMERIC(10, 2) NOT NULL,
    status TEXT NOT NULL,
    order_date DATE NOT NULL
);
CREATE TABLE customer_features (
    customer_id INTEGER PRIMARY KEY,
    customer_lifetime_value REAL,
    purchase_frequency REAL,
    days_since_last_order INTEGER,
    avg_order_value REAL
);
INSERT INTO customers VALUES
    (1, 'Ada Lovelace', 'ada@example.com', 'gold', 'London', 'UK', '2019-03-14', 1),
    (2, 'Alan Turing', 'alan@example.com', 'silver', 'Manchester', 'UK', '2020-06-23', 1),
    (3, 'Grace Hopper', 'grace@example.com', NULL, 'New York', 'US', '2021-12-09', 1),
    (4, 'Edsger Dijkstra', 'edsger@example.com', 'bronze', 'Rotterdam', 'NL', '2018-05-11', 0),
    (5, 'Barbara Liskov', 'barbara@example.com', 'gold', 'Boston', 'US', '2022-11-07', 1);
INSERT INTO orders VALUES
    (101, 1, 120.50, 'shipped', '2026-10-02'),
    (102, 1, 35.00, 'cancelled', '2026-10-15'),
    (103, 1, 249.99, 'shipped', '2026-11-20'),
    (104, 2, 80.25, 'shipped', '2026-09-30'),
    (105, 2, 15.00, 'open', '2026-11-24'),
    (106, 3, 410.00, 'shipped', '2026-08-01'),
    (107, 4, 22.10, 'shipped', '2025-01-12'),
    (108, 5, 99.90, 'shipped', '2026-11-01'),
    (109, 5, 149.00, 'shipped', '2026-11-18'),
    (110, 5, 12.50, 'open', '2026-11-25');
INSERT INTO customer_features VALUES
    (1, 1520.75, 3.2, 6, 135.2),
    (2, 640.10, 1.4, 2, 47.6),
    (3, 2210.00, 0.8, 117, 410.0),
    (4, 95.30, 0.1, 683, 22.1),
    (5, 980.40, 4.1, 1, 87.1);
";

/// A stand-in running on a free loopback port.
#[derive(Debug)]
pub struct StandIn {
    /// Its address.
    pub addr: SocketAddr,
}

async fn serve(app: Router) -> std::io::Result<StandIn> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(StandIn { addr })
}

fn json_response(status: StatusCode, v: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

/// Deterministic per-customer numbers, so answers are stable between runs.
fn mix(id: i64, salt: i64) -> f64 {
    let x = (id.wrapping_mul(2_654_435_761).wrapping_add(salt * 40_503)).rem_euclid(10_000);
    x as f64 / 10_000.0
}

/// The credit bureau: `GET /api/v1/customers/{id}/credit-score` with a bearer token.
pub async fn credit_api(token: String) -> std::io::Result<StandIn> {
    let app = Router::new()
        .route(
            "/api/v1/openapi.json",
            get(|| async { json_response(StatusCode::OK, &credit_api_document()) }),
        )
        .route(
            "/api/v1/customers/{id}/credit-score",
            get(move |UrlPath(id): UrlPath<String>, req: Request| {
                let token = token.clone();
                async move {
                    let auth = req
                        .headers()
                        .get(header::AUTHORIZATION)
                        .and_then(|v| v.to_str().ok());
                    if auth != Some(format!("Bearer {token}").as_str()) {
                        return json_response(
                            StatusCode::UNAUTHORIZED,
                            &json!({"error": "bad token"}),
                        );
                    }
                    let Ok(id) = id.parse::<i64>() else {
                        return json_response(
                            StatusCode::BAD_REQUEST,
                            &json!({"error": "customer ids are numbers"}),
                        );
                    };
                    if !(1..=1000).contains(&id) {
                        return json_response(
                            StatusCode::NOT_FOUND,
                            &json!({"error": "no credit file"}),
                        );
                    }
                    json_response(
                        StatusCode::OK,
                        &json!({
                            "customer_id": id,
                            "credit_score": 560 + (mix(id, 1) * 290.0) as i64,
                            "credit_limit": 1000 * (1 + (mix(id, 2) * 9.0) as i64),
                            "debt_ratio": (mix(id, 3) * 0.8 * 100.0).round() / 100.0,
                            "late_payments": (mix(id, 4) * 5.0) as i64,
                            "bureau": "demo-bureau"
                        }),
                    )
                }
            }),
        );
    serve(app).await
}

/// The OpenAPI document the credit bureau publishes (what `prepare` records its answers from).
fn credit_api_document() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Demo credit bureau", "version": "1"},
        "servers": [{"url": "/api/v1"}],
        "paths": {"/customers/{id}/credit-score": {"get": {
            "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}}],
            "responses": {
                "200": {"description": "The credit file", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/CreditScore"}
                }}},
                "404": {"description": "No credit file"}
            }
        }}},
        "components": {"schemas": {"CreditScore": {
            "type": "object",
            "additionalProperties": false,
            "required": ["customer_id", "credit_score", "credit_limit", "debt_ratio", "late_payments", "bureau"],
            "properties": {
                "customer_id": {"type": "integer"},
                "credit_score": {"type": "integer"},
                "credit_limit": {"type": "integer"},
                "debt_ratio": {"type": "number"},
                "late_payments": {"type": "integer"},
                "bureau": {"type": "string"}
            }
        }}}
    })
}

/// The feature values the Feast stand-in knows (customers 1–5), by feature name.
fn customer_feature(id: i64, feature: &str) -> Option<Value> {
    let row = match id {
        1 => [1520.75, 3.2, 6.0, 135.2],
        2 => [640.10, 1.4, 2.0, 47.6],
        3 => [2210.00, 0.8, 117.0, 410.0],
        4 => [95.30, 0.1, 683.0, 22.1],
        5 => [980.40, 4.1, 1.0, 87.1],
        _ => return None,
    };
    Some(match feature {
        "customer_lifetime_value" => json!(row[0]),
        "purchase_frequency" => json!(row[1]),
        "days_since_last_order" => json!(row[2] as i64),
        "avg_order_value" => json!(row[3]),
        _ => return None,
    })
}

/// The Feast feature server: `POST /get-online-features`, column-oriented like `feast serve`.
pub async fn feast() -> std::io::Result<StandIn> {
    let app = Router::new()
        .route("/health", get(|| async { StatusCode::OK }))
        .route(
            "/get-online-features",
            post(|body: axum::body::Bytes| async move {
                let Ok(req) = serde_json::from_slice::<Value>(&body) else {
                    return json_response(StatusCode::UNPROCESSABLE_ENTITY, &json!("the body is not JSON"));
                };
                let features: Vec<String> = req["features"]
                    .as_array()
                    .map(|f| f.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
                    .unwrap_or_default();
                let full = req["full_feature_names"].as_bool().unwrap_or(false);
                let Some((key, ids)) = req["entities"].as_object().and_then(|e| e.iter().next()) else {
                    return json_response(StatusCode::UNPROCESSABLE_ENTITY, &json!("no entities"));
                };
                let ids: Vec<Value> = ids.as_array().cloned().unwrap_or_default();
                let epoch = "1970-01-01T00:00:00Z";
                let now = "2026-11-26T00:00:00Z";
                let mut names = vec![json!(key)];
                let mut results = vec![json!({
                    "values": ids,
                    "statuses": vec!["PRESENT"; ids.len()],
                    "event_timestamps": vec![epoch; ids.len()],
                })];
                for f in &features {
                    let (view, name) = f.split_once(':').unwrap_or(("", f));
                    names.push(json!(if full { format!("{view}__{name}") } else { name.to_owned() }));
                    let values: Vec<Option<Value>> = ids
                        .iter()
                        .map(|id| {
                            let id = id.as_i64().or_else(|| id.as_str()?.parse().ok())?;
                            customer_feature(id, name)
                        })
                        .collect();
                    results.push(json!({
                        "statuses": values.iter().map(|v| if v.is_some() { "PRESENT" } else { "NOT_FOUND" }).collect::<Vec<_>>(),
                        "event_timestamps": values.iter().map(|v| if v.is_some() { now } else { epoch }).collect::<Vec<_>>(),
                        "values": values.into_iter().map(|v| v.unwrap_or(Value::Null)).collect::<Vec<_>>(),
                    }));
                }
                json_response(StatusCode::OK, &json!({"metadata": {"feature_names": names}, "results": results}))
            }),
        );
    serve(app).await
}

/// The models the model server stand-in serves: name, number of inputs.
const MODELS: &[(&str, usize)] = &[("churn", 3), ("credit_risk", 4), ("recommender", 3)];

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// The model server: Open Inference Protocol V2 (`/v2/models/{m}` metadata and `/infer`).
pub async fn model_server() -> std::io::Result<StandIn> {
    let app = Router::new()
        .route("/v2/health/ready", get(|| async { StatusCode::OK }))
        .route(
            "/v2/models/{model}",
            get(|UrlPath(model): UrlPath<String>| async move {
                match MODELS.iter().find(|(m, _)| *m == model) {
                    Some((name, n)) => json_response(
                        StatusCode::OK,
                        &json!({
                            "name": name, "versions": ["1"], "platform": "demo",
                            "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, n]}],
                            "outputs": outputs_of(name),
                        }),
                    ),
                    None => json_response(
                        StatusCode::NOT_FOUND,
                        &json!({"error": format!("Model {model} not found")}),
                    ),
                }
            }),
        )
        .route(
            "/v2/models/{model}/infer",
            post(
                |UrlPath(model): UrlPath<String>, body: axum::body::Bytes| async move {
                    infer(&model, &body)
                },
            ),
        );
    serve(app).await
}

/// The output tensors a model's answers carry, as its metadata publishes them.
fn outputs_of(model: &str) -> Value {
    match model {
        "recommender" => json!([
            {"name": "top_products", "datatype": "BYTES", "shape": [-1, 3]},
            {"name": "scores", "datatype": "FP64", "shape": [-1, 3]},
        ]),
        _ => json!([
            {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 2]},
            {"name": "predict", "datatype": "INT64", "shape": [-1, 1]},
        ]),
    }
}

fn infer(model: &str, body: &[u8]) -> Response {
    let Some(&(_, width)) = MODELS.iter().find(|(m, _)| *m == model) else {
        return json_response(
            StatusCode::NOT_FOUND,
            &json!({"error": format!("Model {model} not found")}),
        );
    };
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        return json_response(
            StatusCode::BAD_REQUEST,
            &json!({"error": "the body is not JSON"}),
        );
    };
    let input = &req["inputs"][0];
    let data: Vec<f64> = input["data"]
        .as_array()
        .map(|d| d.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    let rows = input["shape"][0].as_u64().unwrap_or(0) as usize;
    if input["shape"][1].as_u64() != Some(width as u64) || data.len() != rows * width {
        return json_response(
            StatusCode::BAD_REQUEST,
            &json!({"error": format!("{model} takes [rows, {width}] FP64")}),
        );
    }
    let rows: Vec<&[f64]> = data.chunks(width).collect();
    let id = req["id"].clone();
    let outputs = match model {
        "recommender" => {
            let catalogue = [
                ["book-rust", "book-sql", "book-ml"],
                ["garden-hose", "garden-gloves", "garden-seeds"],
                ["kettle", "headphones", "desk-lamp"],
            ];
            let products: Vec<&str> = rows
                .iter()
                .flat_map(|r| {
                    catalogue[match r[2] as i64 {
                        1 => 0,
                        2 => 1,
                        _ => 2,
                    }]
                })
                .collect();
            let scores: Vec<f64> = rows
                .iter()
                .flat_map(|r| {
                    let base = sigmoid(r[0] / 1000.0 + r[1] / 2.0 - 1.0);
                    [base, base * 0.8, base * 0.6].map(|s| (s * 1000.0).round() / 1000.0)
                })
                .collect();
            json!([
                {"name": "top_products", "datatype": "BYTES", "shape": [rows.len(), 3], "data": products},
                {"name": "scores", "datatype": "FP64", "shape": [rows.len(), 3], "data": scores},
            ])
        }
        _ => {
            let p: Vec<f64> = rows
                .iter()
                .map(|r| match model {
                    // churn: long absence and low frequency raise it
                    "churn" => sigmoid(r[2] / 60.0 - r[1] - r[0] / 2000.0),
                    // credit_risk: [credit_score, debt_ratio, late_payments, lifetime_value]
                    _ => sigmoid((650.0 - r[0]) / 60.0 + 3.0 * r[1] + 0.6 * r[2] - r[3] / 3000.0),
                })
                .collect();
            json!([
                {"name": "predict_proba", "datatype": "FP64", "shape": [rows.len(), 2],
                 "data": p.iter().flat_map(|p| [1.0 - p, *p]).collect::<Vec<_>>()},
                {"name": "predict", "datatype": "INT64", "shape": [rows.len(), 1],
                 "data": p.iter().map(|p| i64::from(*p >= 0.5)).collect::<Vec<_>>()},
            ])
        }
    };
    json_response(
        StatusCode::OK,
        &json!({"model_name": model, "model_version": "1", "id": id, "outputs": outputs}),
    )
}
