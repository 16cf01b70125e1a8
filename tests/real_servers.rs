//! The `feast` and `ml` sources against real servers: a Feast feature server (`feast serve`)
//! over a feature repo built by `.ci/python-servers`, and MLServer serving a scikit-learn model
//! over the Open Inference Protocol. Switched on by `ORCHESTRATOR_TEST_FEAST` and
//! `ORCHESTRATOR_TEST_MLSERVER` (the directories that script prints); each test starts its own
//! server on a free loopback port and stops it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use api_orchestrator::engine::ExecuteError;
use api_orchestrator::source::SourceErrorKind;
use api_orchestrator::{Orchestrator, RequestContext};
use serde_json::{Value, json};
use tests::config_dir;
use tests::db::skipped;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A server process, stopped with SIGTERM (gunicorn stops its workers then) when dropped.
struct Server {
    child: tokio::process::Child,
    port: u16,
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn terminate(&self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
    }

    /// Stops the server and waits until it has exited.
    async fn stop(mut self) {
        self.terminate();
        if tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.terminate();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The status code of `GET path`, or `None` when nothing answers.
async fn get_status(port: u16, path: &str) -> Option<u16> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.ok()?;
    String::from_utf8_lossy(&buf)
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

async fn wait_ready(server: &mut Server, path: &str, what: &str) {
    for _ in 0..600 {
        if get_status(server.port, path).await == Some(200) {
            return;
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!("{what} exited with {status} before it was ready");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} did not become ready within 60 s");
}

fn dir_from_env(var: &str, suite: &str) -> Option<PathBuf> {
    let Some(dir) = std::env::var_os(var).filter(|d| !d.is_empty()) else {
        skipped(&format!(
            "the {suite} suite (run `eval \"$(.ci/python-servers)\"` to install it and set {var})"
        ));
        return None;
    };
    let dir = PathBuf::from(dir);
    assert!(
        dir.is_dir(),
        "{var}={} is set but is not a directory",
        dir.display()
    );
    Some(dir)
}

async fn start_feast(root: &Path) -> Server {
    let port = free_port();
    let child = tokio::process::Command::new(root.join("bin/feast"))
        .args([
            "serve",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "--no-access-log",
        ])
        .current_dir(root.join("repo"))
        .env("FEAST_USAGE", "False")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("feast serve");
    let mut server = Server {
        child,
        port,
        _dir: None,
    };
    wait_ready(&mut server, "/health", "feast serve").await;
    server
}

fn request(params: &[(&str, Value)]) -> RequestContext {
    params.iter().fold(RequestContext::new(), |r, (k, v)| {
        r.with_query_param(*k, v.clone())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feast_feature_server() {
    let Some(root) = dir_from_env("ORCHESTRATOR_TEST_FEAST", "real Feast") else {
        return;
    };
    let server = start_feast(&root).await;
    let feast = format!(
        r#"
feast:
  sources:
    store:
      url: "{}"
      timeout: 5s
      operations:
        stats:
          features: ["customer_stats:total_spend", "customer_stats:num_orders", "customer_stats:avg_basket"]
          entity_key: customer_id
        stats_full:
          features: ["customer_stats:total_spend", "customer_stats:num_orders"]
          entity_key: customer_id
          full_feature_names: true
        overview:
          feature_service: customer_overview
          entity_key: customer_id
        stats_or_table:
          features: ["customer_stats:total_spend", "customer_stats:num_orders"]
          entity_key: customer_id
          database_fallback:
            table: customer_features
            entity_key: customer_id
            mapping: {{"customer_stats:total_spend": spend, "customer_stats:num_orders": orders}}
"#,
        server.url()
    );
    let db_dir = tempfile::tempdir().unwrap();
    let db_path = db_dir.path().join("features.db");
    {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite:{}?mode=rwc", db_path.display()))
            .await
            .unwrap();
        sqlx::raw_sql(
            "CREATE TABLE customer_features (customer_id INTEGER PRIMARY KEY, spend REAL, orders INTEGER);
             INSERT INTO customer_features VALUES (1001, 10.0, 9), (1002, 20.0, 8);",
        )
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
    }
    let database = format!(
        "database:\n  sources:\n    default: {{connection_string: \"sqlite:{}\"}}\n",
        db_path.display()
    );
    let endpoints = r#"
endpoints:
  stats:
    data_sources: [{name: f, type: feast, operation: stats, params: {customer_id: "$request.customer_id"}}]
  stats_full:
    data_sources: [{name: f, type: feast, operation: stats_full, params: {customer_id: "$request.customer_id"}}]
  overview:
    data_sources: [{name: f, type: feast, operation: overview, params: {customer_id: "$request.customer_id"}}]
  stats_or_table:
    data_sources: [{name: f, type: feast, operation: stats_or_table, params: {customer_id: "$request.customer_id"}}]
  batched:
    data_sources:
      - {name: f, type: feast, operation: stats, for_each: "$request.body.ids", batch: {size: 100}, params: {customer_id: "$item"}}
    primary_source: f
"#;
    let dir = config_dir(&[
        ("integrations/feast_config.yaml", &feast),
        ("database.yaml", &database),
        ("domains/features.yaml", endpoints),
    ]);
    let o = Orchestrator::from_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let run = |endpoint: &'static str, id: Value| {
        let o = &o;
        async move {
            o.execute(endpoint, request(&[("customer_id", id)]))
                .await
                .unwrap_or_else(|e| panic!("{endpoint}: {e}"))
        }
    };

    // One entity (a path param arrives as a string; Feast coerces it to the INT64 key).
    let one = run("stats", json!("1001")).await;
    assert_eq!(
        one.response,
        json!({"customer_id": 1001, "total_spend": 10.5, "num_orders": 1, "avg_basket": 1.25})
    );

    // Several, with one the store does not know.
    let many = run("stats", json!([1001, 1002, 9999])).await;
    assert_eq!(
        many.response,
        json!([
            {"customer_id": 1001, "total_spend": 10.5, "num_orders": 1, "avg_basket": 1.25},
            {"customer_id": 1002, "total_spend": 21.0, "num_orders": 2, "avg_basket": 2.5},
            {"customer_id": 9999, "total_spend": null, "num_orders": null, "avg_basket": null}
        ])
    );
    let notes = &many.trace.sources[0].notes;
    assert!(
        notes
            .iter()
            .any(|n| n.contains("`total_spend` NOT_FOUND for 1 of 3")),
        "{notes:?}"
    );

    // A missing entity alone.
    let missing = run("stats", json!(9999)).await;
    assert_eq!(
        missing.response,
        json!({"customer_id": 9999, "total_spend": null, "num_orders": null, "avg_basket": null})
    );

    let full = run("stats_full", json!(1002)).await;
    assert_eq!(
        full.response,
        json!({"customer_id": 1002, "customer_stats__total_spend": 21.0, "customer_stats__num_orders": 2})
    );
    let service = run("overview", json!(1001)).await;
    assert_eq!(
        service.response,
        json!({"customer_id": 1001, "total_spend": 10.5, "num_orders": 1})
    );

    // 1,000 entities in batches of 100: ten lookups, every element mapped back to its own
    // entity in order, the ones the store does not know with null features.
    let ids: Vec<i64> = (1000..2000).collect();
    let batched = o
        .execute(
            "batched",
            RequestContext::new().with_body(json!({"ids": ids})),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let t = &batched.trace.sources[0];
    assert_eq!(t.attempts, 10, "{t:?}");
    assert_eq!(
        t.notes[0], "for_each: 1000 elements, 10 calls in batches of up to 100",
        "{t:?}"
    );
    let rows = batched.response.as_array().unwrap();
    assert_eq!(rows.len(), 1000);
    for (row, id) in rows.iter().zip(&ids) {
        assert_eq!(row["customer_id"], json!(id), "{row}");
        let known = [(1001, 10.5, 1), (1002, 21.0, 2)];
        match known.iter().find(|(k, _, _)| k == id) {
            Some((_, spend, orders)) => {
                assert_eq!(
                    (row["total_spend"].clone(), row["num_orders"].clone()),
                    (json!(spend), json!(orders)),
                    "{row}"
                );
            }
            None if *id == 1003 => assert!(row["total_spend"].is_number(), "{row}"),
            None => assert_eq!(
                (row["total_spend"].clone(), row["num_orders"].clone()),
                (Value::Null, Value::Null),
                "{row}"
            ),
        }
    }

    // While the server runs, the fallback is not used.
    let live = run("stats_or_table", json!(1001)).await;
    assert_eq!(
        live.response,
        json!({"customer_id": 1001, "total_spend": 10.5, "num_orders": 1})
    );
    assert!(live.trace.sources[0].notes.is_empty());

    // Stop the server: the lookup with a fallback is answered from SQLite, the others fail.
    server.stop().await;
    let fallback = run("stats_or_table", json!([1001, 1002, 9999])).await;
    assert_eq!(
        fallback.response,
        json!([
            {"customer_id": 1001, "total_spend": 10.0, "num_orders": 9},
            {"customer_id": 1002, "total_spend": 20.0, "num_orders": 8},
            {"customer_id": 9999, "total_spend": null, "num_orders": null}
        ])
    );
    let notes = &fallback.trace.sources[0].notes;
    assert!(
        notes.iter().any(|n| n.contains("database fallback")),
        "{notes:?}"
    );
    match o
        .execute("stats", request(&[("customer_id", json!(1001))]))
        .await
    {
        Err(ExecuteError::SourceFailed { error, .. }) => assert_eq!(
            error.kind,
            SourceErrorKind::Unavailable,
            "{}",
            error.message
        ),
        other => panic!("expected the stopped server to be unavailable, got {other:?}"),
    }
}

async fn start_mlserver(root: &Path) -> Server {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("churn-lr");
    std::fs::create_dir_all(&model).unwrap();
    for file in ["model.joblib", "model-settings.json"] {
        std::fs::copy(root.join("models/churn-lr").join(file), model.join(file)).unwrap();
    }
    std::fs::write(
        dir.path().join("settings.json"),
        json!({"host": "127.0.0.1", "http_port": port, "grpc_port": free_port(),
               "metrics_endpoint": null, "parallel_workers": 0, "debug": false})
        .to_string(),
    )
    .unwrap();
    let child = tokio::process::Command::new(root.join("bin/mlserver"))
        .args(["start", "."])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("mlserver start");
    let mut server = Server {
        child,
        port,
        _dir: Some(dir),
    };
    wait_ready(&mut server, "/v2/models/churn-lr/ready", "mlserver").await;
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mlserver_open_inference_protocol() {
    let Some(root) = dir_from_env("ORCHESTRATOR_TEST_MLSERVER", "real MLServer") else {
        return;
    };
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("expected.json")).unwrap())
            .unwrap();
    let server = start_mlserver(&root).await;
    let models = format!(
        r#"
ml:
  sources:
    mlserver:
      base_url: "{}"
      timeout: 10s
      models:
        churn-lr:
          protocol: v2
          inputs: [a, b, c]
          datatype: FP64
          outputs: {{probability: "predict_proba[1]", class: predict}}
"#,
        server.url()
    );
    let endpoints = r#"
endpoints:
  score:
    data_sources: [{name: m, type: ml, operation: churn-lr, params: {a: "$request.a", b: "$request.b", c: "$request.c"}}]
  score_batch:
    data_sources: [{name: m, type: ml, operation: churn-lr, params: {rows: "$request.body.rows"}}]
  score_each:
    data_sources: [{name: m, type: ml, operation: churn-lr, for_each: "$request.body.rows", batch: {size: 2}, params: {a: "$item[0]", b: "$item[1]", c: "$item[2]"}}]
    primary_source: m
"#;
    let dir = config_dir(&[
        ("integrations/ml_config.yaml", &models),
        ("domains/models.yaml", endpoints),
    ]);
    let o = Orchestrator::from_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let rows = expected["rows"].as_array().unwrap();
    let close = |got: &Value, want: &Value| {
        let (g, w) = (got.as_f64().unwrap(), want.as_f64().unwrap());
        assert!(
            (g - w).abs() < 1e-9,
            "probability {g} vs the model's own {w}"
        );
    };

    // One row, from separate params (strings, as query params arrive, are cast to FP64).
    let r = &rows[0];
    let one = o
        .execute(
            "score",
            request(&[
                ("a", json!(r[0].to_string())),
                ("b", r[1].clone()),
                ("c", r[2].clone()),
            ]),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    close(
        &one.response["probability"],
        &expected["predict_proba"][0][1],
    );
    assert_eq!(one.response["class"], expected["predict"][0]);

    // A batch.
    let body = json!({"rows": rows.iter().map(|r| json!({"a": r[0], "b": r[1], "c": r[2]})).collect::<Vec<_>>()});
    let batch = o
        .execute("score_batch", RequestContext::new().with_body(body))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let got = batch.response.as_array().unwrap();
    assert_eq!(got.len(), rows.len());
    for (i, row) in got.iter().enumerate() {
        close(&row["probability"], &expected["predict_proba"][i][1]);
        assert_eq!(row["class"], expected["predict"][i]);
    }

    // The rows as `for_each` elements, two per inference: two calls, each element gets its
    // own row's prediction.
    let batched = o
        .execute(
            "score_each",
            RequestContext::new().with_body(json!({"rows": rows})),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        batched.trace.sources[0].attempts, 2,
        "{:?}",
        batched.trace.sources[0]
    );
    let got = batched.response.as_array().unwrap();
    assert_eq!(got.len(), rows.len());
    for (i, row) in got.iter().enumerate() {
        close(&row["probability"], &expected["predict_proba"][i][1]);
        assert_eq!(row["class"], expected["predict"][i]);
    }

    // The signature the model's settings declare agrees with the config.
    let findings = api_orchestrator::source::ml::check_models(&o.plan()).await;
    assert!(findings.is_empty(), "{findings:#?}");

    // The schema snapshot records the tensors MLServer publishes; against it, a typo in a
    // field of the mapped prediction is an error with file:line:col and the right suggestion.
    let snapshot = api_orchestrator::prepare::prepare(&o.plan())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .snapshot;
    let sig = &snapshot.sources.ml["mlserver/churn-lr"];
    let tensors = |ts: &[api_orchestrator::snapshot::Tensor]| {
        ts.iter()
            .map(|t| format!("{} {} {:?}", t.name, t.datatype, t.shape))
            .collect::<Vec<_>>()
    };
    assert_eq!(tensors(&sig.inputs), ["input-0 FP64 [-1, 3]"]);
    assert_eq!(
        tensors(&sig.outputs),
        ["predict_proba FP64 [-1, 2]", "predict INT64 [-1, 1]"]
    );
    let snapshot_path = dir.path().join(api_orchestrator::snapshot::SNAPSHOT_FILE);
    std::fs::create_dir_all(snapshot_path.parent().unwrap()).unwrap();
    std::fs::write(&snapshot_path, snapshot.to_json()).unwrap();
    let mapped = format!(
        "{endpoints}  mapped:\n    data_sources: [{{name: m, type: ml, operation: churn-lr, params: {{a: 1, b: 2, c: 3}}}}]\n    response_mapping:\n      churn: \"$m.probabilty\"\n      class: \"$m.class\"\n"
    );
    std::fs::write(dir.path().join("domains/models.yaml"), &mapped).unwrap();
    let Err(api_orchestrator::config::LoadError::Invalid(d)) =
        api_orchestrator::config::load_dir(dir.path())
    else {
        panic!("a typo in the prediction's fields must not load")
    };
    let text = d.to_string();
    assert!(
        text.contains("error[unknown-field]: `$m` has no field `probabilty`"),
        "{text}"
    );
    assert!(text.contains("did you mean `probability`?"), "{text}");
    assert!(text.contains("--> domains/models.yaml:13:14"), "{text}");
    assert_eq!(
        d.errors(),
        1,
        "`class` is a field of the mapped prediction: {text}"
    );
    server.stop().await;
}
