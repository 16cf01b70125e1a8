//! The production policies against a real upstream over sockets: the source cache (with
//! coalescing and `stale_if_error`), the shared cache in the real Redis, circuit breakers,
//! bulkheads, endpoint load limits and degraded answers.
//!
//! Time-to-live and open-time checks move tokio's clock by hand (pause, advance, resume)
//! rather than waiting; the upstream still answers over real sockets.

use std::time::Duration;

use api_orchestrator::config::{ConfigFiles, Loader};
use api_orchestrator::engine::{ExecuteError, Outcome, SourceTrace};
use api_orchestrator::source::{CacheStatus, CircuitState, SourceErrorKind};
use api_orchestrator::web::Api;
use api_orchestrator::{Orchestrator, RequestContext, ValidPlan};
use serde_json::{Value, json};
use tests::upstream::Upstream;

/// The plan of `domain` (as `domains/test.yaml`), `api` (`integrations/api_sources.yaml`)
/// and `config` (`config.yaml`).
fn plan(config: &str, api: &str, domain: &str) -> ValidPlan {
    let mut files = ConfigFiles::new()
        .with_file("integrations/api_sources.yaml", api)
        .with_file("domains/test.yaml", domain);
    if !config.is_empty() {
        files = files.with_file("config.yaml", config);
    }
    Loader::new().load(&files).unwrap_or_else(|e| panic!("{e}"))
}

fn orchestrator(config: &str, api: &str, domain: &str) -> Orchestrator {
    Orchestrator::builder()
        .build(plan(config, api, domain))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// An API service `up` at `base`, with `extra` (indented YAML) added to the service.
fn service(base: &str, extra: &str) -> String {
    format!(
        "api:\n  sources:\n    up:\n      base_url: \"{base}\"\n      timeout: 5s\n{extra}      operations:\n        item: {{path: \"/items/{{id}}\"}}\n        post_item: {{method: POST, path: \"/items/{{id}}\"}}\n        slow: {{path: \"/slow\", query: {{ms: \"{{ms}}\"}}}}\n"
    )
}

fn id(id: &str) -> RequestContext {
    RequestContext::new().with_path_param("id", id)
}

/// The trace entry of the only source.
fn only(trace: &api_orchestrator::engine::Trace) -> &SourceTrace {
    &trace.sources[0]
}

/// Moves tokio's clock `d` ahead at once (the test's runtime is current-thread).
async fn skip(d: Duration) {
    tokio::time::pause();
    tokio::time::advance(d).await;
    tokio::time::resume();
}

const CACHED_ITEM: &str = r#"
endpoints:
  item:
    data_sources:
      - {name: thing, type: api, operation: item, params: {id: "$request.id"}, cache: 30s}
"#;

#[tokio::test]
async fn a_cached_source_is_called_once_within_its_ttl_and_again_after() {
    let up = Upstream::start().await;
    let o = orchestrator("", &service(&up.url(), ""), CACHED_ITEM);
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let exec = o.execute("item", id("7")).await.unwrap();
        assert_eq!(exec.response["target"], "/items/7");
        statuses.push(only(&exec.trace).cache);
    }
    assert_eq!(
        up.calls("/items/7"),
        1,
        "one call for five identical requests"
    );
    assert_eq!(statuses[0], Some(CacheStatus::Miss));
    assert!(statuses[1..].iter().all(|s| *s == Some(CacheStatus::Hit)));
    assert_eq!(
        only(&o.execute("item", id("7")).await.unwrap().trace).attempts,
        0
    );

    // Other params are another entry.
    o.execute("item", id("8")).await.unwrap();
    assert_eq!(up.calls("/items/8"), 1);

    skip(Duration::from_secs(31)).await;
    let exec = o.execute("item", id("7")).await.unwrap();
    assert_eq!(only(&exec.trace).cache, Some(CacheStatus::Miss));
    assert_eq!(
        up.calls("/items/7"),
        2,
        "called again once the ttl has passed"
    );
}

#[tokio::test]
async fn a_service_cache_applies_to_its_reads_only() {
    let up = Upstream::start().await;
    let domain = r#"
endpoints:
  item:
    data_sources:
      - {name: thing, type: api, operation: item, params: {id: "$request.id"}}
  post:
    data_sources:
      - {name: thing, type: api, operation: post_item, params: {id: "$request.id"}}
  post_cached:
    data_sources:
      - {name: thing, type: api, operation: post_item, params: {id: "$request.id"}, cache: 1m}
"#;
    let api = service(&up.url(), "      cache: {ttl: 1m}\n");
    let o = orchestrator("", &api, domain);
    o.execute("item", id("1")).await.unwrap();
    let exec = o.execute("item", id("1")).await.unwrap();
    assert_eq!(only(&exec.trace).cache, Some(CacheStatus::Hit));
    assert_eq!(up.calls("/items/1"), 1);
    // A POST is not cached by the service's `cache:`…
    for _ in 0..2 {
        let exec = o.execute("post", id("2")).await.unwrap();
        assert_eq!(only(&exec.trace).cache, None);
    }
    assert_eq!(up.calls("/items/2"), 2);
    // …only by its step's own.
    for _ in 0..2 {
        o.execute("post_cached", id("2")).await.unwrap();
    }
    assert_eq!(up.calls("/items/2"), 3);
}

#[tokio::test]
async fn a_reload_that_changes_the_definition_never_serves_old_entries() {
    let up = Upstream::start().await;
    let api = service(&up.url(), "      cache: {ttl: 1m}\n");
    let domain = CACHED_ITEM.replace(", cache: 30s", "");
    let dir = tests::config_dir(&[
        ("integrations/api_sources.yaml", &api),
        ("domains/test.yaml", &domain),
    ]);
    let o = Orchestrator::builder().load_dir(dir.path()).unwrap();
    o.execute("item", id("1")).await.unwrap();
    assert_eq!(up.calls("/items/1"), 1);

    // The service's headers change: its calls are other calls, so the entry is not served.
    let changed = service(
        &up.url(),
        "      cache: {ttl: 1m}\n      headers: {X-Tenant: b}\n",
    );
    std::fs::write(dir.path().join("integrations/api_sources.yaml"), &changed).unwrap();
    o.reload().unwrap();
    let exec = o.execute("item", id("1")).await.unwrap();
    assert_eq!(only(&exec.trace).cache, Some(CacheStatus::Miss));
    assert_eq!(up.calls("/items/1"), 2);

    // Back to the first definition: its entry survived the reloads.
    std::fs::write(dir.path().join("integrations/api_sources.yaml"), &api).unwrap();
    o.reload().unwrap();
    let exec = o.execute("item", id("1")).await.unwrap();
    assert_eq!(only(&exec.trace).cache, Some(CacheStatus::Hit));
    assert_eq!(up.calls("/items/1"), 2);
}

const SLOW: &str = r#"
endpoints:
  slow:
    data_sources:
      - {name: slow, type: api, operation: slow, params: {ms: "$request.ms"}, cache: 1m}
"#;

#[tokio::test]
async fn two_hundred_concurrent_identical_requests_make_one_upstream_call() {
    let up = Upstream::start().await;
    let o = orchestrator("", &service(&up.url(), ""), SLOW);
    let calls =
        (0..200).map(|_| o.execute("slow", RequestContext::new().with_query_param("ms", "300")));
    let results = futures::future::join_all(calls).await;
    assert_eq!(up.calls("/slow"), 1);
    let mut misses = 0;
    for r in &results {
        let exec = r.as_ref().unwrap();
        assert_eq!(exec.response["slow"], true);
        match only(&exec.trace).cache {
            Some(CacheStatus::Miss) => misses += 1,
            Some(CacheStatus::Coalesced | CacheStatus::Hit) => {}
            other => panic!("unexpected cache status {other:?}"),
        }
    }
    assert_eq!(misses, 1, "one caller led, the others shared its answer");
}

#[tokio::test]
async fn a_cancelled_first_caller_does_not_fail_the_waiters() {
    let up = Upstream::start().await;
    let o = orchestrator("", &service(&up.url(), ""), SLOW);
    let request = || RequestContext::new().with_query_param("ms", "400");
    let first = tokio::spawn({
        let o = o.clone();
        async move { o.execute("slow", request()).await }
    });
    while up.calls("/slow") == 0 {
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let waiters: Vec<_> = (0..10)
        .map(|_| {
            let o = o.clone();
            tokio::spawn(async move { o.execute("slow", request()).await })
        })
        .collect();
    // Let the waiters join the call in flight, then cancel its leader.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    for w in waiters {
        let exec = w
            .await
            .unwrap()
            .expect("a waiter answers despite the cancelled leader");
        assert_eq!(exec.response["slow"], true);
    }
    assert!(
        up.calls("/slow") <= 2,
        "the waiters made one call between them"
    );
}

#[tokio::test]
async fn an_expired_answer_stands_in_for_a_failure_within_stale_if_error() {
    let up = Upstream::start().await;
    let domain = r#"
endpoints:
  item:
    data_sources:
      - {name: thing, type: api, operation: item, params: {id: "$request.id"}, cache: {ttl: 10s, stale_if_error: 1m}}
  strict:
    on_degraded: fail
    data_sources:
      - {name: thing, type: api, operation: item, params: {id: "$request.id"}, cache: {ttl: 10s, stale_if_error: 1m}}
"#;
    let o = orchestrator("", &service(&up.url(), ""), domain);
    o.execute("item", id("5")).await.unwrap();
    o.execute("strict", id("5")).await.unwrap();
    up.set_down(true);
    skip(Duration::from_secs(11)).await;

    let exec = o.execute("item", id("5")).await.unwrap();
    assert_eq!(exec.response["target"], "/items/5");
    let t = only(&exec.trace);
    assert_eq!(t.outcome, Outcome::Stale);
    assert_eq!(t.cache, Some(CacheStatus::Stale));
    assert_eq!(
        t.error.as_ref().unwrap().kind,
        SourceErrorKind::Upstream { status: 503 }
    );
    assert_eq!(t.degraded(), Some("stale"));

    let err = o.execute("strict", id("5")).await.unwrap_err();
    assert!(matches!(err, ExecuteError::SourceFailed { .. }), "{err}");

    // Past the stale window the failure stands.
    skip(Duration::from_secs(60)).await;
    let err = o.execute("item", id("5")).await.unwrap_err();
    assert!(matches!(err, ExecuteError::SourceFailed { .. }), "{err}");
}

#[tokio::test]
async fn failures_are_cached_only_when_asked() {
    let up = Upstream::start().await;
    let domain = r#"
endpoints:
  plain:
    data_sources:
      - {name: thing, type: api, operation: item, params: {id: "$request.id"}, cache: 1m}
  errors:
    data_sources:
      - {name: thing, type: api, operation: item, params: {id: "$request.id"}, cache: {ttl: 1m, error_ttl: 5s}}
"#;
    let o = orchestrator("", &service(&up.url(), ""), domain);
    up.set_down(true);
    o.execute("plain", id("3")).await.unwrap_err();
    o.execute("errors", id("30")).await.unwrap_err();
    up.set_down(false);
    // Not cached: the next call reaches the (recovered) upstream.
    o.execute("plain", id("3")).await.unwrap();
    // Cached for 5 s: the failure is answered without a call…
    assert_eq!(up.calls("/items/3"), 2);
    let err = o.execute("errors", id("30")).await.unwrap_err();
    let trace = err.trace().unwrap();
    assert_eq!(only(trace).cache, Some(CacheStatus::Hit));
    assert_eq!(up.calls("/items/30"), 1);
    // …and after them the upstream is asked again.
    skip(Duration::from_secs(6)).await;
    o.execute("errors", id("30")).await.unwrap();
    assert_eq!(up.calls("/items/30"), 2);
}

#[tokio::test]
async fn the_circuit_opens_after_the_threshold_probes_after_the_open_time_and_closes() {
    let up = Upstream::start().await;
    let api = service(
        &up.url(),
        "      circuit_breaker: {failures: 3, open_for: 30s}\n",
    );
    let o = orchestrator("", &api, CACHED_ITEM.replace(", cache: 30s", "").as_str());
    up.set_down(true);
    for _ in 0..3 {
        let err = o.execute("item", id("1")).await.unwrap_err();
        assert_eq!(
            only(err.trace().unwrap()).circuit,
            Some(CircuitState::Closed)
        );
    }
    assert_eq!(up.calls("/items/1"), 3);
    for _ in 0..5 {
        let err = o.execute("item", id("1")).await.unwrap_err();
        let t = only(err.trace().unwrap());
        assert_eq!(t.circuit, Some(CircuitState::Open));
        let error = t.error.as_ref().unwrap();
        assert_eq!(error.kind, SourceErrorKind::Unavailable);
        // The service is named, its URL (which may carry credentials) is not.
        assert!(error.message.contains("`api/up`"), "{}", error.message);
        assert!(!error.message.contains("127.0.0.1"), "{}", error.message);
    }
    assert_eq!(
        up.calls("/items/1"),
        3,
        "no call reaches the upstream while open"
    );

    up.set_down(false);
    skip(Duration::from_secs(31)).await;
    let exec = o.execute("item", id("1")).await.unwrap();
    assert_eq!(only(&exec.trace).circuit, Some(CircuitState::HalfOpen));
    assert_eq!(up.calls("/items/1"), 4, "one probe");
    let exec = o.execute("item", id("1")).await.unwrap();
    assert_eq!(only(&exec.trace).circuit, Some(CircuitState::Closed));
}

#[tokio::test]
async fn a_failed_probe_opens_the_circuit_again() {
    let up = Upstream::start().await;
    let api = service(
        &up.url(),
        "      retries: {max: 3, backoff: 1ms}\n      circuit_breaker: {failures: 2, open_for: 10s}\n",
    );
    let o = orchestrator("", &api, CACHED_ITEM.replace(", cache: 30s", "").as_str());
    up.set_down(true);
    // Each attempt counts: the retries of one request open the circuit, and the refusal is
    // not retried.
    let err = o.execute("item", id("1")).await.unwrap_err();
    assert_eq!(only(err.trace().unwrap()).circuit, Some(CircuitState::Open));
    assert_eq!(up.calls("/items/1"), 2);
    skip(Duration::from_secs(11)).await;
    o.execute("item", id("1")).await.unwrap_err();
    assert_eq!(up.calls("/items/1"), 3, "one probe, which failed");
    let err = o.execute("item", id("1")).await.unwrap_err();
    assert_eq!(only(err.trace().unwrap()).circuit, Some(CircuitState::Open));
    assert_eq!(up.calls("/items/1"), 3);
}

#[tokio::test]
async fn a_service_bulkhead_refuses_calls_past_max_concurrent() {
    let up = Upstream::start().await;
    let api = service(&up.url(), "      max_concurrent: 1\n");
    let o = orchestrator("", &api, &SLOW.replace(", cache: 1m", ""));
    let slow = |ms: &str| o.execute("slow", RequestContext::new().with_query_param("ms", ms));
    let (a, b) = tokio::join!(slow("300"), slow("301"));
    let refused = [&a, &b].iter().filter(|r| r.is_err()).count();
    assert_eq!(refused, 1, "{a:?} {b:?}");
    let err = a.err().or(b.err()).unwrap();
    let t = only(err.trace().unwrap());
    assert_eq!(t.error.as_ref().unwrap().kind, SourceErrorKind::Unavailable);
    assert_eq!(up.calls("/slow"), 1);
}

/// Serves `o` under `/api` on a loopback port; returns its base URL.
async fn serve(o: &Orchestrator) -> String {
    let app = axum::Router::new().nest_service("/api", Api::new(o));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/api")
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

#[tokio::test]
async fn past_max_in_flight_a_request_gets_503_with_retry_after_at_once() {
    let up = Upstream::start().await;
    let domain = r#"
endpoints:
  slow:
    max_in_flight: 4
    data_sources:
      - {name: slow, type: api, operation: slow, params: {ms: "$request.ms"}}
"#;
    let o = orchestrator("", &service(&up.url(), ""), domain);
    let base = serve(&o).await;
    let http = client();
    let held: Vec<_> = (0..4)
        .map(|_| tokio::spawn(http.get(format!("{base}/test/slow?ms=5000")).send()))
        .collect();
    while up.calls("/slow") < 4 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let fifth = http
        .get(format!("{base}/test/slow?ms=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(fifth.status(), 503);
    assert_eq!(fifth.headers()["retry-after"], "1");
    assert_eq!(fifth.headers()["content-type"], "application/problem+json");
    assert!(
        held.iter().all(|h| !h.is_finished()),
        "answered while the four still run"
    );
    assert_eq!(up.calls("/slow"), 4, "nothing queued behind them");
    for h in held {
        h.abort();
    }
}

#[tokio::test]
async fn a_queue_admits_waiting_requests_in_turn() {
    let domain = r#"
endpoints:
  nap:
    max_in_flight: {limit: 1, queue: 1}
    data_sources:
      - {name: nap, type: sleep, params: {ms: 200}}
"#;
    let o = tests::orchestrator(domain);
    let (a, b, c) = tokio::join!(
        o.execute("nap", RequestContext::new()),
        o.execute("nap", RequestContext::new()),
        o.execute("nap", RequestContext::new()),
    );
    assert!(a.is_ok() && b.is_ok(), "one ran, one waited its turn");
    assert!(matches!(c, Err(ExecuteError::Overloaded { .. })));
}

#[tokio::test]
async fn a_rate_limit_answers_429_with_retry_after_per_key() {
    let domain = r#"
endpoints:
  hello:
    rate_limit: {rate: 2/s, key: "header:x-api-key"}
    data_sources:
      - {name: hi, type: direct, params: {a: 1}}
"#;
    let o = tests::orchestrator(domain);
    let base = serve(&o).await;
    let http = client();
    let get = |key: &'static str| {
        http.get(format!("{base}/test/hello"))
            .header("x-api-key", key)
            .send()
    };
    assert_eq!(get("a").await.unwrap().status(), 200);
    assert_eq!(get("a").await.unwrap().status(), 200);
    let third = get("a").await.unwrap();
    assert_eq!(third.status(), 429);
    assert_eq!(third.headers()["retry-after"], "1");
    let body: Value = serde_json::from_slice(&third.bytes().await.unwrap()).unwrap();
    assert_eq!(body["type"], "urn:orchestrator:problem:rate-limited");
    assert_eq!(
        get("b").await.unwrap().status(),
        200,
        "another key has its own count"
    );
    // The OpenAPI document lists the answer.
    let doc = http
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .unwrap();
    let doc: Value = serde_json::from_slice(&doc.bytes().await.unwrap()).unwrap();
    let responses = &doc["paths"]["/test/hello"]["get"]["responses"];
    assert!(responses["429"].is_object(), "{responses}");
    assert!(responses.get("503").is_none(), "{responses}");
}

#[tokio::test]
async fn degraded_answers_say_so_in_a_header_and_can_fail_instead() {
    let domain = r#"
endpoints:
  lenient:
    data_sources:
      - {name: ok, type: direct, params: {a: 1}}
      - {name: score, type: flaky, on_error: skip}
      - {name: band, type: flaky, fallback: {value: {band: C}}}
    response_mapping: {a: "$ok.a", score: "$score.attempt", band: "$band.band"}
  strict:
    on_degraded: fail
    data_sources:
      - {name: ok, type: direct, params: {a: 1}}
      - {name: score, type: flaky, on_error: skip}
    response_mapping: {a: "$ok.a", score: "$score.attempt"}
"#;
    let o = tests::orchestrator(domain);
    let base = serve(&o).await;
    let http = client();
    let lenient = http
        .get(format!("{base}/test/lenient"))
        .send()
        .await
        .unwrap();
    assert_eq!(lenient.status(), 200);
    assert_eq!(lenient.headers()["x-degraded"], "score=skip, band=fallback");
    assert_eq!(
        serde_json::from_slice::<Value>(&lenient.bytes().await.unwrap()).unwrap(),
        json!({"a": 1, "score": null, "band": "C"})
    );
    let strict = http
        .get(format!("{base}/test/strict"))
        .send()
        .await
        .unwrap();
    assert_eq!(strict.status(), 502);
    assert!(strict.headers().get("x-degraded").is_some());
    let fine = http.get(format!("{base}/test/strict")).send().await;
    assert_eq!(
        fine.unwrap().status(),
        502,
        "every degraded answer fails it"
    );
}

#[tokio::test]
async fn the_server_timing_header_says_what_the_cache_did() {
    let up = Upstream::start().await;
    let o = orchestrator("", &service(&up.url(), ""), CACHED_ITEM);
    let base = serve(&o).await;
    let http = client();
    let timing = |r: &reqwest::Response| r.headers()["server-timing"].to_str().unwrap().to_owned();
    let first = http
        .get(format!("{base}/test/item/9"))
        .send()
        .await
        .unwrap();
    assert!(
        timing(&first).contains("desc=\"api\";cache=miss"),
        "{}",
        timing(&first)
    );
    let second = http
        .get(format!("{base}/test/item/9"))
        .send()
        .await
        .unwrap();
    assert!(
        timing(&second).contains(";cache=hit"),
        "{}",
        timing(&second)
    );
}

#[test]
fn bad_policy_keys_name_the_key_and_the_fix() {
    let cases = [
        (
            "cache:\n  store: redis\n",
            "",
            "`store: redis` needs the server's `url`",
        ),
        (
            "cache:\n  store: memcached\n",
            "",
            "unknown value `memcached`",
        ),
        (
            "cache:\n  max_entries: 10\n  max_bytes: 1000\n",
            "",
            "`max_entries` or by `max_bytes`, not both",
        ),
        (
            "cache:\n  url: redis://x\n",
            "",
            "`url` is for `store: redis`",
        ),
        ("", "    rate_limit: fast\n", "`fast` is not a rate"),
        (
            "",
            "    rate_limit: {rate: 5/s, key: ip}\n",
            "unknown rate limit key `ip`",
        ),
        ("", "    max_in_flight: 0\n", "`0` is not allowed here"),
        ("", "    on_degraded: maybe\n", "unknown value `maybe`"),
        ("", "    cach: 5s\n", "unknown key `cach`"),
    ];
    for (config, endpoint_extra, expected) in cases {
        let domain = format!(
            "endpoints:\n  e:\n{endpoint_extra}    data_sources:\n      - {{name: a, type: direct, params: {{x: 1}}, cache: {{ttl: 0s}}}}\n"
        );
        let files = ConfigFiles::new()
            .with_file("config.yaml", config)
            .with_file("domains/test.yaml", &domain);
        let err = Loader::new().load(&files).unwrap_err().to_string();
        assert!(err.contains(expected), "{expected:?} not in:\n{err}");
        assert!(err.contains("is not a positive duration"), "{err}");
    }
}

/// `ORCHESTRATOR_TEST_REDIS_URL`, or `None` after saying what was skipped.
fn redis_url() -> Option<String> {
    tests::db::server_url(
        "ORCHESTRATOR_TEST_REDIS_URL",
        "Redis cache",
        "redis://127.0.0.1:6379/15",
    )
}

fn redis_config(url: &str) -> String {
    format!("cache:\n  store: redis\n  url: \"{url}\"\n  timeout: 1s\n")
}

#[tokio::test]
async fn replicas_share_hits_through_redis() {
    let Some(url) = redis_url() else { return };
    let up = Upstream::start().await;
    let api = service(&up.url(), "");
    let first = orchestrator(&redis_config(&url), &api, CACHED_ITEM);
    let second = orchestrator(&redis_config(&url), &api, CACHED_ITEM);
    // A fresh id per run: entries of earlier runs live in the same Redis.
    let key = format!("{}", std::process::id());
    let exec = first.execute("item", id(&key)).await.unwrap();
    assert_eq!(only(&exec.trace).cache, Some(CacheStatus::Miss));
    // The write does not hold up the answer: wait (boundedly) for it to land.
    let mut status = None;
    for _ in 0..200 {
        let exec = second.execute("item", id(&key)).await.unwrap();
        status = only(&exec.trace).cache;
        if status == Some(CacheStatus::Hit) {
            assert_eq!(exec.response["target"], format!("/items/{key}"));
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(status, Some(CacheStatus::Hit), "the second replica hits");
    assert!(up.calls(&format!("/items/{key}")) >= 1);
    let before = up.calls(&format!("/items/{key}"));
    second.execute("item", id(&key)).await.unwrap();
    assert_eq!(
        up.calls(&format!("/items/{key}")),
        before,
        "hits call nothing"
    );
}

#[tokio::test]
async fn with_redis_unreachable_requests_are_answered_by_the_source() {
    // Whether or not a Redis runs here: this one points at a closed port.
    let up = Upstream::start().await;
    let o = orchestrator(
        &redis_config("redis://127.0.0.1:1/0"),
        &service(&up.url(), ""),
        CACHED_ITEM,
    );
    for n in 1..=3 {
        let exec = o.execute("item", id("4")).await.unwrap();
        assert_eq!(exec.response["target"], "/items/4");
        assert_eq!(only(&exec.trace).cache, Some(CacheStatus::Miss));
        assert_eq!(up.calls("/items/4"), n);
    }
}

#[tokio::test]
async fn the_source_span_says_what_the_cache_did() {
    let up = Upstream::start().await;
    let o = orchestrator("", &service(&up.url(), ""), CACHED_ITEM);
    let out = tests::Captured::new();
    o.execute("item", id("warm-up")).await.unwrap();
    let _guard = out.capture();
    o.execute("item", id("11")).await.unwrap();
    o.execute("item", id("11")).await.unwrap();
    let log = out.text();
    let spans: Vec<&str> = log.lines().filter(|l| l.contains("source{")).collect();
    assert!(
        spans
            .iter()
            .any(|l| l.contains("cache=\"miss\"") || l.contains("cache=miss")),
        "{log}"
    );
    assert!(
        spans
            .iter()
            .any(|l| l.contains("cache=\"hit\"") || l.contains("cache=hit")),
        "{log}"
    );
}

/// A TCP proxy to `target` that, while `open` is false, drops every connection at once: Redis
/// down, then back, without touching the real server.
async fn switchable_proxy(
    target: String,
    open: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
                return;
            };
            if !open.load(std::sync::atomic::Ordering::SeqCst) {
                continue;
            }
            let target = target.clone();
            tokio::spawn(async move {
                if let Ok(mut out) = tokio::net::TcpStream::connect(&target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn the_cache_warns_once_per_redis_outage_and_resumes_when_redis_is_back() {
    let Some(url) = redis_url() else { return };
    // redis://host:port/db → host:port and /db.
    let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
    let (target, db) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let open = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let proxy = switchable_proxy(target.to_owned(), open.clone()).await;
    let up = Upstream::start().await;
    let o = orchestrator(
        &redis_config(&format!("redis://{proxy}{db}")),
        &service(&up.url(), ""),
        CACHED_ITEM,
    );
    let key = format!("resume-{}", std::process::id());
    let out = tests::Captured::new();
    let _guard = out.capture();
    for n in 1..=3 {
        let exec = o.execute("item", id(&key)).await.unwrap();
        assert_eq!(only(&exec.trace).cache, Some(CacheStatus::Miss));
        assert_eq!(
            up.calls(&format!("/items/{key}")),
            n,
            "answered by the source"
        );
    }
    let log = out.text();
    assert_eq!(
        log.matches("the Redis cache is unreachable").count(),
        1,
        "one warning per outage:\n{log}"
    );

    open.store(true, std::sync::atomic::Ordering::SeqCst);
    // Past the reconnection interval (tokio's clock, moved by hand).
    skip(Duration::from_secs(2)).await;
    let mut status = None;
    for _ in 0..400 {
        let exec = o.execute("item", id(&key)).await.unwrap();
        status = only(&exec.trace).cache;
        if status == Some(CacheStatus::Hit) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        status,
        Some(CacheStatus::Hit),
        "Redis is used again once it is back"
    );
    assert!(
        out.text().contains("the Redis cache is back"),
        "{}",
        out.text()
    );
}
