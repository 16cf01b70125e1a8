//! A real Prometheus scrapes the demo server's `/metrics`: after a known number of requests its
//! query API returns the request counter and a source latency histogram with the expected
//! labels. Runs when `ORCHESTRATOR_TEST_PROMETHEUS` names the `prometheus` binary (Debian's
//! package; `.ci/prometheus` installs it and prints the variable).

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{demo_config, start_server};

const REQUESTS: usize = 5;

/// The result vector of an instant query.
async fn query(client: &reqwest::Client, prometheus: &str, promql: &str) -> Vec<Value> {
    let url =
        reqwest::Url::parse_with_params(&format!("{prometheus}/api/v1/query"), [("query", promql)])
            .unwrap();
    let Ok(response) = client.get(url).send().await else {
        return Vec::new();
    };
    let Ok(body) = response.bytes().await else {
        return Vec::new();
    };
    serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.pointer("/data/result").and_then(Value::as_array).cloned())
        .unwrap_or_default()
}

/// The sample value of a one-series result.
fn value(result: &[Value]) -> Option<f64> {
    result.first()?.pointer("/value/1")?.as_str()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_requests_and_source_latencies() {
    let Some(binary) = std::env::var_os("ORCHESTRATOR_TEST_PROMETHEUS") else {
        println!(
            "skipped: the Prometheus scrape test; set ORCHESTRATOR_TEST_PROMETHEUS=/usr/bin/prometheus (`.ci/prometheus` installs it)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = demo_config(dir.path());
    let (_server, base) = start_server(&config, &[]).await;
    let client = reqwest::Client::new();
    for _ in 0..REQUESTS {
        let r = client
            .get(format!("{base}/api/customers/get_customer_360/1"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }

    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let target = base.trim_start_matches("http://");
    let scrape = dir.path().join("prometheus.yml");
    std::fs::write(
        &scrape,
        format!(
            "global: {{scrape_interval: 1s}}\nscrape_configs:\n  - job_name: orchestrator\n    metrics_path: /metrics\n    static_configs: [{{targets: [\"{target}\"]}}]\n"
        ),
    )
    .unwrap();
    let mut prometheus = tokio::process::Command::new(&binary)
        .arg(format!("--config.file={}", scrape.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{} does not start: {e}", binary.to_string_lossy()));
    let prometheus_url = format!("http://127.0.0.1:{port}");

    // Wait for a scrape that has seen every request.
    let requests =
        r#"orchestrator_requests_total{endpoint="get_customer_360",method="GET",status="200"}"#;
    let mut seen = None;
    for _ in 0..120 {
        if let Ok(Some(status)) = prometheus.try_wait() {
            panic!("prometheus exited: {status}");
        }
        seen = value(&query(&client, &prometheus_url, requests).await);
        if seen == Some(REQUESTS as f64) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        seen,
        Some(REQUESTS as f64),
        "{requests} as Prometheus has it"
    );

    let histogram = query(
        &client,
        &prometheus_url,
        r#"orchestrator_source_duration_seconds_bucket{endpoint="get_customer_360",source="profile"}"#,
    )
    .await;
    assert!(histogram.len() > 2, "buckets: {histogram:?}");
    for series in &histogram {
        let labels = &series["metric"];
        assert_eq!(labels["kind"], "database", "{series}");
        assert_eq!(labels["job"], "orchestrator", "{series}");
        assert!(labels["le"].is_string(), "{series}");
    }
    let count = query(
        &client,
        &prometheus_url,
        r#"orchestrator_source_duration_seconds_count{endpoint="get_customer_360",source="profile",kind="database"}"#,
    )
    .await;
    assert_eq!(value(&count), Some(REQUESTS as f64));
    let p99 = query(
        &client,
        &prometheus_url,
        r#"histogram_quantile(0.99, sum by (le, source) (orchestrator_source_duration_seconds_bucket{endpoint="get_customer_360"}))"#,
    )
    .await;
    assert!(p99.len() >= 2, "one p99 per source: {p99:?}");
}
