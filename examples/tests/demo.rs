//! The demo server as a user runs it: the example binary, started on a copy of the shipped
//! config with its stand-ins, answering every example endpoint over HTTP.

use std::path::Path;

use serde_json::{Value, json};

mod support;

use support::{copy_dir, start_server};

struct Demo {
    child: tokio::process::Child,
    base: String,
    client: reqwest::Client,
}

impl Demo {
    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (
            status,
            serde_json::from_str(&r.text().await.unwrap()).unwrap_or(Value::Null),
        )
    }

    async fn ok(&self, path: &str) -> Value {
        let (status, body) = self.get(path).await;
        assert_eq!(status, 200, "{path}: {body}");
        body
    }
}

async fn start(config: &Path) -> Demo {
    let (child, base) = start_server(config, &[]).await;
    Demo {
        child,
        base: format!("{base}/api"),
        client: reqwest::Client::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_endpoint_answers() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("config"),
        dir.path(),
        // The server seeds its own database.
        &["data"],
    );
    let mut demo = start(dir.path()).await;
    assert!(
        dir.path().join("data/customer360.db").exists(),
        "the database was seeded"
    );

    let profile = demo.ok("/customers/get_customer/1").await;
    assert_eq!(profile["name"], "Ada Lovelace");
    assert_eq!(profile["is_active"], true);
    let credit = demo.ok("/customers/get_credit_score/1").await;
    assert_eq!(credit["bureau"], "demo-bureau");
    assert!(credit["credit_score"].as_i64().unwrap() >= 560);
    let features = demo.ok("/customers/get_customer_features/1").await;
    assert_eq!(features["customer_lifetime_value"], 1520.75);

    let c360 = demo.ok("/customers/get_customer_360/1").await;
    assert_eq!(c360["customer_id"], 1);
    assert_eq!(
        c360["personal_info"],
        json!({"name": "Ada Lovelace", "email": "ada@example.com", "city": "London", "country": "UK"})
    );
    assert_eq!(c360["account_info"]["segment"], "gold");
    assert_eq!(c360["account_info"]["credit_score"], credit["credit_score"]);
    assert_eq!(c360["behavior"]["order_count"], 3);
    assert_eq!(c360["behavior"]["total_spent"], 405.49);
    assert_eq!(c360["recent_orders"][0]["order_id"], 103);
    let churn = c360["predictions"]["churn_probability"].as_f64().unwrap();
    assert!((0.0..0.5).contains(&churn), "{churn}");
    assert_eq!(c360["predictions"]["will_churn"], 0);

    let orders = demo.ok("/customers/get_customer_orders/1").await;
    assert_eq!(orders["order_count"], 2);
    assert_eq!(orders["total_spent"], 370.49);
    let summary = demo.ok("/customers/get_customer_summary/3").await;
    assert_eq!(
        summary,
        json!({"name": "Grace Hopper", "segment": "standard", "order_count": 1, "last_order_id": 106})
    );

    let risk = demo.ok("/risk/1").await;
    assert_eq!(risk["name"], "Ada Lovelace");
    assert!(["low", "medium", "high"].contains(&risk["risk_band"].as_str().unwrap()));
    assert_eq!(risk["key_factors"]["credit_score"], credit["credit_score"]);
    let scored = demo
        .client
        .post(format!("{}/risk/score", demo.base))
        .header("content-type", "application/json")
        .body(json!({"credit_score": 700, "debt_ratio": 0.2, "late_payments": 0}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(scored.status(), 200);
    let scored: Value = serde_json::from_str(&scored.text().await.unwrap()).unwrap();
    assert_eq!(scored["risk_band"], "medium");

    let recs = demo.ok("/recommendations/5?category=books").await;
    assert_eq!(
        recs["recommendations"],
        json!(["book-rust", "book-sql", "book-ml"])
    );
    assert_eq!(recs["scores"].as_array().unwrap().len(), 3);

    let overview = demo.ok("/credit-overview/2?currency=EUR").await;
    assert_eq!(
        overview["customer"],
        json!({"id": 2, "name": "Alan Turing", "segment": "silver"})
    );
    assert_eq!(overview["currency"], "EUR");
    assert_eq!(overview["spending"]["orders"], 2);
    assert_eq!(overview["credit"]["bureau"], "demo-bureau");

    // A missing customer is "not found" on every mapping endpoint (`required: true`), not an
    // answer made of nulls and defaults.
    for path in [
        "/customers/get_customer_360/999",
        "/customers/get_customer_orders/999",
        "/customers/get_customer_summary/999",
        "/risk/999",
        "/recommendations/999",
        "/credit-overview/999",
    ] {
        let (status, problem) = demo.get(path).await;
        assert_eq!(status, 404, "{path}: {problem}");
        assert_eq!(
            problem["type"], "urn:orchestrator:problem:no-result",
            "{path}"
        );
    }

    // Declared inputs guard every new endpoint.
    let (status, problem) = demo.get("/risk/not-a-number").await;
    assert_eq!(status, 400, "{problem}");

    // The docs and the document list every endpoint.
    let doc = demo.ok("/openapi.json").await;
    for path in [
        "/customers/get_customer_360/{customer_id}",
        "/risk/{customer_id}",
        "/risk/score",
        "/recommendations/{customer_id}",
        "/credit-overview/{customer_id}",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is not documented");
    }
    let docs = demo
        .client
        .get(format!("{}/docs/", demo.base))
        .send()
        .await
        .unwrap();
    assert_eq!(docs.status(), 200);

    // The operator routes, mounted apart at /api/admin: the executions above, newest first.
    let recent = demo.ok("/admin/executions").await;
    let executions = recent["executions"].as_array().unwrap();
    assert!(
        executions
            .iter()
            .any(|e| e["endpoint"] == "customer_credit_overview"),
        "{recent}"
    );

    demo.child.kill().await.unwrap();
}

/// Swagger UI's "Try it out" on the demo's `/api/docs/`: headless Chromium expands the
/// customer 360 operation, clicks "Try it out", fills `customer_id`, clicks "Execute" and
/// reads the status and the request URL the page shows (a content script does the clicking;
/// the page itself is the one the server serves). Needs `ORCHESTRATOR_TEST_CHROMIUM`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_it_out_in_the_docs_page_calls_the_mounted_api() {
    let Some(chromium) = std::env::var_os("ORCHESTRATOR_TEST_CHROMIUM").filter(|v| !v.is_empty())
    else {
        eprintln!(
            "skipped: the Swagger UI \"Try it out\" check; set ORCHESTRATOR_TEST_CHROMIUM (`eval \"$(.ci/chromium)\"` installs it)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = support::demo_config(dir.path());
    let demo = start(&config).await;

    let extension = dir.path().join("try-it-out");
    std::fs::create_dir_all(&extension).unwrap();
    std::fs::write(
        extension.join("manifest.json"),
        r#"{"manifest_version": 3, "name": "try-it-out", "version": "1",
            "content_scripts": [{"matches": ["http://127.0.0.1/*"], "js": ["click.js"], "run_at": "document_idle"}]}"#,
    )
    .unwrap();
    std::fs::write(extension.join("click.js"), TRY_IT_OUT).unwrap();
    let profile = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
            "--virtual-time-budget=30000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--load-extension={}", extension.display()))
        .arg(format!("{}/docs/", demo.base))
        .kill_on_drop(true)
        .output()
        .await
        .expect("chromium");
    drop(demo);
    let dom = String::from_utf8_lossy(&out.stdout);
    let result = dom
        .split("<pre id=\"try-it-out\">")
        .nth(1)
        .and_then(|rest| rest.split("</pre>").next())
        .unwrap_or_else(|| {
            panic!(
                "the content script left no result (stderr: {}):\n{dom}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
        .replace("&quot;", "\"")
        .replace("&amp;", "&");
    let result: Value = serde_json::from_str(&result).unwrap_or_else(|e| panic!("{e}: {result}"));
    assert_eq!(result["status"], "200", "{result}");
    let url = result["url"].as_str().unwrap_or_default();
    assert!(
        url.ends_with("/api/customers/get_customer_360/1"),
        "Swagger UI called {url}"
    );
}

/// The content script: waits for each element it needs, then writes `{status, url}` (or
/// `{error}`) into `<pre id="try-it-out">` at the end of the page.
const TRY_IT_OUT: &str = r#"
(async () => {
  const sleep = ms => new Promise(r => setTimeout(r, ms));
  const until = async (find, what) => {
    for (let i = 0; i < 300; i++) { const found = find(); if (found) return found; await sleep(50); }
    throw new Error('no ' + what);
  };
  const out = document.createElement('pre');
  out.id = 'try-it-out';
  try {
    const op = await until(() => document.getElementById('operations-customers-get_customer_360_get_by_id'), 'operation');
    (op.querySelector('.opblock-summary-control') || op.querySelector('.opblock-summary')).click();
    (await until(() => op.querySelector('button.try-out__btn'), 'Try it out button')).click();
    await sleep(300);
    const input = await until(() => op.querySelector('tr[data-param-name="customer_id"] input'), 'customer_id input');
    // Typed, as a user does: the page's own handlers see the input events.
    input.focus();
    document.execCommand('insertText', false, '1');
    // The page debounces typing (300 ms) before it takes the value.
    await sleep(1000);
    (await until(() => op.querySelector('button.execute'), 'Execute button')).click();
    const status = await until(() => [...op.querySelectorAll('.live-responses-table .response-col_status')]
      .find(cell => /^\d{3}/.test(cell.textContent.trim())), 'response');
    const url = op.querySelector('.request-url pre');
    out.textContent = JSON.stringify({status: status.textContent.trim().slice(0, 3), url: url ? url.textContent.trim() : null});
  } catch (e) {
    const op = document.getElementById('operations-customers-get_customer_360_get_by_id');
    const row = op && op.querySelector('tr[data-param-name="customer_id"]');
    out.textContent = JSON.stringify({error: String(e), row: row ? row.outerHTML.slice(0, 3000) : null});
  }
  document.body.appendChild(out);
})();
"#;

/// `server --prepare --check` on a copy of the demo config: the committed snapshot matches
/// what the seeded database and the stand-ins answer (CI's guard against a stale snapshot),
/// and a snapshot that no longer matches (a column renamed in it) exits 1 naming the change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_snapshot_matches_the_demo_sources() {
    let dir = tempfile::tempdir().unwrap();
    let config = support::demo_config(dir.path());
    let run = |config: &Path| {
        std::process::Command::new(support::server_binary())
            .args([
                "--config",
                &config.display().to_string(),
                "--prepare",
                "--check",
            ])
            .current_dir(config)
            .env("RUST_LOG", "warn")
            .env_remove("CREDIT_API_URL")
            .env_remove("FEAST_URL")
            .env_remove("MODEL_SERVER_URL")
            .env_remove("DEMO_DATABASE_URL")
            .output()
            .expect("the demo server runs")
    };
    let out = run(&config);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("matches the live sources"), "{stdout}");

    let snapshot = config.join(".orchestrator/schema.json");
    let text = std::fs::read_to_string(&snapshot).unwrap();
    std::fs::write(
        &snapshot,
        text.replacen("\"signup_date\"", "\"joined_on\"", 1),
    )
    .unwrap();
    let out = run(&config);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("differs from the live sources")
            && stderr.contains("database operation `get_customer` changed"),
        "{stderr}"
    );
}
