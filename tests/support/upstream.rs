//! A local HTTP server that plays the upstreams of the HTTP sources: it records every request
//! exactly as received (raw path and query, headers, JSON body) and answers by path, including
//! the faults the error mapping must handle.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// The request target exactly as sent: path and query, still percent-encoded.
    pub target: String,
    /// Headers.
    pub headers: HeaderMap,
    /// The body parsed as JSON (null when empty or not JSON).
    pub body: Value,
}

#[derive(Debug, Default)]
struct Shared {
    seen: Mutex<Vec<Seen>>,
    flaky: AtomicUsize,
    down: AtomicBool,
    connections: AtomicUsize,
    /// Requests being answered now, and the most there ever were at once.
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// Counts a request in flight while it lives.
struct InFlight<'a>(&'a Shared);

impl<'a> InFlight<'a> {
    fn enter(shared: &'a Shared) -> Self {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
        Self(shared)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A running upstream on a free loopback port; it stops when dropped.
#[derive(Debug)]
pub struct Upstream {
    /// Where it listens.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Upstream {
    /// Starts the server.
    pub async fn start() -> Self {
        let shared = Arc::new(Shared::default());
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let counter = shared.clone();
        let listener = axum::serve::ListenerExt::tap_io(listener, move |_| {
            counter.connections.fetch_add(1, Ordering::SeqCst);
        });
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { addr, shared, task }
    }

    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// How many requests went to `path` (the query aside).
    pub fn calls(&self, path: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.target.split('?').next() == Some(path))
            .count()
    }

    /// The most requests the server was answering at once.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// How many connections the server has accepted.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// While down, every request is answered 503 (it is still recorded).
    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::SeqCst);
    }

    /// The last request.
    pub fn last(&self) -> Seen {
        self.seen().pop().expect("the upstream saw no request")
    }
}

fn json_response(status: StatusCode, v: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let _in_flight = InFlight::enter(&shared);
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let seen = Seen {
        method: parts.method.to_string(),
        target: parts
            .uri
            .path_and_query()
            .map(ToString::to_string)
            .unwrap_or_default(),
        headers: parts.headers.clone(),
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    };
    shared.seen.lock().unwrap().push(seen.clone());
    let path = parts.uri.path();
    if shared.down.load(Ordering::SeqCst) {
        return json_response(StatusCode::SERVICE_UNAVAILABLE, json!({"error": "down"}));
    }
    match path {
        // Answers after 300 ms, or after `?ms=`.
        "/slow" => {
            let ms = parts
                .uri
                .query()
                .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("ms=")))
                .and_then(|ms| ms.parse().ok())
                .unwrap_or(300);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            json_response(StatusCode::OK, json!({"slow": true, "target": seen.target}))
        }
        "/faults/timeout" => {
            tokio::time::sleep(Duration::from_secs(10)).await;
            json_response(StatusCode::OK, json!({"late": true}))
        }
        "/faults/500" => json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": "database password is hunter2"}),
        ),
        "/faults/flaky" => {
            if shared.flaky.fetch_add(1, Ordering::SeqCst) < 2 {
                json_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({"error": "try later"}),
                )
            } else {
                json_response(StatusCode::OK, json!({"ok": true}))
            }
        }
        "/faults/malformed" => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            "{\"score\": ",
        )
            .into_response(),
        "/faults/html" => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/html")],
            "<html><body>maintenance</body></html>",
        )
            .into_response(),
        "/faults/big" => {
            let big = format!("{{\"blob\": \"{}\"}}", "x".repeat(10 << 20));
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                big,
            )
                .into_response()
        }
        // Answers, then closes the connection (`Connection: close`).
        "/faults/close" => (
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CONNECTION, "close"),
            ],
            "{\"closing\": true}",
        )
            .into_response(),
        // 11 MiB in chunks, without a `Content-Length`.
        "/faults/bigstream" => {
            let chunks = (0..11).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b' '; 1 << 20])));
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                Body::from_stream(futures::stream::iter(chunks)),
            )
                .into_response()
        }
        "/faults/drip" => {
            let stream = futures::stream::unfold(0u32, |n| async move {
                if n >= 50 {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                let chunk = if n == 0 {
                    Bytes::from_static(b"{\"a\": \"")
                } else {
                    Bytes::from_static(b"x")
                };
                Some((Ok::<_, std::io::Error>(chunk), n + 1))
            });
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                Body::from_stream(stream),
            )
                .into_response()
        }
        "/faults/redirect" => (
            StatusCode::FOUND,
            [(header::LOCATION, "http://127.0.0.1:1/elsewhere")],
            "",
        )
            .into_response(),
        // A batch endpoint: the products whose ids are in `?id=` (repeated) or the body's
        // `ids`, last asked first, without ids of 1000 and above (unknown products).
        "/products" => {
            let mut ids: Vec<Value> = parts
                .uri
                .query()
                .unwrap_or_default()
                .split('&')
                .filter_map(|kv| kv.strip_prefix("id="))
                .filter_map(|id| id.parse::<u64>().ok())
                .map(Value::from)
                .collect();
            if let Some(body) = seen.body.get("ids").and_then(Value::as_array) {
                ids.extend(body.iter().cloned());
            }
            let products: Vec<Value> = ids
                .iter()
                .rev()
                .filter(|id| id.as_u64().is_some_and(|n| n < 1000))
                .map(|id| json!({"id": id.to_string(), "name": format!("product {id}")}))
                .collect();
            json_response(StatusCode::OK, json!({"products": products}))
        }
        // Feast, answering row by row (some servers do) with a missing feature for 9999.
        "/rows/get-online-features" => {
            let ids = seen
                .body
                .pointer("/entities/customer_id")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let results: Vec<Value> = ids
                .iter()
                .map(|id| {
                    let found = id != &json!(9999);
                    json!({
                        "values": [id, if found { json!(3) } else { Value::Null }, if found { json!(12.5) } else { Value::Null }],
                        "statuses": ["PRESENT", if found { "PRESENT" } else { "NOT_FOUND" }, if found { "PRESENT" } else { "OUTSIDE_MAX_AGE" }]
                    })
                })
                .collect();
            json_response(
                StatusCode::OK,
                json!({
                    "metadata": {"feature_names": ["customer_id", "num_orders", "total_spend"]},
                    "results": results
                }),
            )
        }
        // TF Serving: `instances` rows → one prediction per row.
        "/v1/models/churn:predict" => {
            let n = seen
                .body
                .get("instances")
                .or_else(|| seen.body.pointer("/inputs/tenure"))
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let preds: Vec<Value> = (0..n)
                .map(|i| json!([0.25 * (i as f64 + 1.0), 1.0 - 0.25 * (i as f64 + 1.0)]))
                .collect();
            json_response(StatusCode::OK, json!({"predictions": preds}))
        }
        // MLflow 1.x answers a bare list, 2.x wraps it.
        "/mlflow1/invocations" | "/mlflow2/invocations" => {
            let n = seen
                .body
                .pointer("/dataframe_split/data")
                .or_else(|| seen.body.get("dataframe_records"))
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let preds: Vec<Value> = (0..n).map(|i| json!(i as f64 / 10.0)).collect();
            if path.starts_with("/mlflow1") {
                json_response(StatusCode::OK, json!(preds))
            } else {
                json_response(StatusCode::OK, json!({"predictions": preds}))
            }
        }
        // Open Inference Protocol metadata of a model the config gets wrong.
        "/v2/models/fraud" => json_response(
            StatusCode::OK,
            json!({
                "name": "fraud", "versions": ["1"], "platform": "onnxruntime_onnx",
                "inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, 2]}],
                "outputs": [{"name": "score", "datatype": "FP32", "shape": [-1, 1]}]
            }),
        ),
        p if p.starts_with("/invalid/") => {
            json_response(StatusCode::BAD_REQUEST, json!({"error": "ids are numbers"}))
        }
        p if p.starts_with("/missing/") => {
            json_response(StatusCode::NOT_FOUND, json!({"detail": "no such item"}))
        }
        _ => json_response(
            StatusCode::OK,
            json!({
                "method": seen.method,
                "target": seen.target,
                "body": seen.body,
                "score": 712,
                "data": {"score": 712, "band": "A"}
            }),
        ),
    }
}
