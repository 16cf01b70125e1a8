//! The `api`, `feast` and `ml` sources against a local upstream (`tests::upstream`) that
//! records exactly what it received: templating, auth, request id and `traceparent`, the fault
//! matrix, path injection, and the TF Serving / MLflow / row-oriented Feast wire shapes.

use api_orchestrator::engine::{ExecuteError, Outcome};
use api_orchestrator::source::{SourceError, SourceErrorKind};
use api_orchestrator::{Orchestrator, RequestContext};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};
use tests::config_dir;
use tests::upstream::Upstream;

fn api_config(base: &str) -> String {
    let host = base.trim_start_matches("http://");
    format!(
        r#"
api:
  sources:
    credit:
      base_url: "{base}/api/v1"
      timeout: 2s
      headers: {{Accept: application/json}}
      auth: {{type: bearer, token: "${{env:CREDIT_TOKEN}}"}}
      operations:
        score:
          path: "/customers/{{customer_id}}/credit-score"
          query: {{region: "{{region}}", fixed: 1}}
          headers: {{X-Tenant: "tenant-{{tenant}}"}}
        score_extracted:
          path: "/customers/{{customer_id}}/score"
          extract: /data/score
        create:
          method: POST
          path: "/applications"
          body: {{customer: "{{customer_id}}", note: "for {{customer_id}}", tags: ["{{tags}}"]}}
    keyed_header:
      base_url: "{base}"
      auth: {{type: api_key, header: X-API-Key, key: "k-123"}}
      operations:
        keyed: {{path: "/keyed"}}
    keyed_query:
      base_url: "{base}"
      auth: {{type: api_key, query: api_key, key: "q-456"}}
      operations:
        keyed_q: {{path: "/keyed"}}
    basic:
      base_url: "{base}"
      auth: {{type: basic, username: ada, password: "s3cret"}}
      operations:
        basic_auth: {{path: "/basic"}}
    userinfo:
      base_url: "http://ada:s3cret@{host}"
      operations:
        userinfo_auth: {{path: "/basic"}}
    faults:
      base_url: "{base}/faults"
      timeout: 500ms
      retries: {{max: 3, backoff: 10ms}}
      operations:
        slow: {{path: "/timeout"}}
        fail500: {{path: "/500"}}
        flaky: {{path: "/flaky"}}
        malformed: {{path: "/malformed"}}
        html: {{path: "/html"}}
        big: {{path: "/big"}}
        drip: {{path: "/drip"}}
        redirect: {{path: "/redirect"}}
        closing: {{path: "/close"}}
        bigstream: {{path: "/bigstream"}}
    refused:
      base_url: "http://127.0.0.1:1"
      operations:
        nothing: {{path: "/x"}}
"#
    )
}

const API_ENDPOINTS: &str = r#"
endpoints:
  score:
    data_sources:
      - name: credit
        type: api
        operation: score
        params: {customer_id: "$request.customer_id", region: "$request.region", tenant: "$request.tenant"}
  score_extracted:
    data_sources:
      - {name: s, type: api, operation: score_extracted, params: {customer_id: "$request.customer_id"}}
  create:
    data_sources:
      - {name: c, type: api, operation: create, params: {customer_id: "$request.customer_id", tags: "$request.tags"}}
  keyed:
    data_sources: [{name: k, type: api, operation: keyed}]
  keyed_q:
    data_sources: [{name: k, type: api, operation: keyed_q}]
  basic_auth:
    data_sources: [{name: b, type: api, operation: basic_auth}]
  userinfo_auth:
    data_sources: [{name: b, type: api, operation: userinfo_auth}]
  slow:
    data_sources: [{name: f, type: api, operation: slow, retries: 0}]
  fail500:
    data_sources: [{name: f, type: api, operation: fail500, retries: 0}]
  flaky:
    data_sources: [{name: f, type: api, operation: flaky}]
  malformed:
    data_sources: [{name: f, type: api, operation: malformed}]
  html:
    data_sources: [{name: f, type: api, operation: html}]
  big:
    data_sources: [{name: f, type: api, operation: big}]
  drip:
    data_sources: [{name: f, type: api, operation: drip, retries: 0}]
  redirect:
    data_sources: [{name: f, type: api, operation: redirect}]
  nothing:
    data_sources: [{name: f, type: api, operation: nothing, retries: 0}]
  closing:
    data_sources: [{name: f, type: api, operation: closing}]
  bigstream:
    data_sources: [{name: f, type: api, operation: bigstream}]
  two_calls:
    primary_source: a
    data_sources:
      - {name: a, type: api, operation: keyed}
      - {name: b, type: api, operation: basic_auth}
"#;

fn api_orchestrator(up: &Upstream) -> (tempfile::TempDir, Orchestrator) {
    let api = api_config(&up.url());
    let dir = config_dir(&[
        ("integrations/api_sources.yaml", &api),
        ("domains/credit.yaml", API_ENDPOINTS),
    ]);
    let o = Orchestrator::builder()
        .env(|name| (name == "CREDIT_TOKEN").then(|| "tok-789".to_owned()))
        .load_dir(dir.path())
        .unwrap_or_else(|e| panic!("{e}"));
    (dir, o)
}

/// The trace id, span id and flags of a `traceparent` header.
fn traceparent(seen: &tests::upstream::Seen) -> (String, String, String) {
    let tp = seen.headers["traceparent"].to_str().unwrap();
    let fields: Vec<&str> = tp.split('-').collect();
    assert_eq!(fields.len(), 4, "{tp}");
    assert_eq!(fields[0], "00", "{tp}");
    assert_eq!((fields[1].len(), fields[2].len()), (32, 16), "{tp}");
    (
        fields[1].to_owned(),
        fields[2].to_owned(),
        fields[3].to_owned(),
    )
}

/// The `traceparent`s of the last two calls the upstream saw.
fn last_two(up: &Upstream) -> [(String, String, String); 2] {
    let seen = up.seen();
    [
        traceparent(&seen[seen.len() - 2]),
        traceparent(&seen[seen.len() - 1]),
    ]
}

#[tokio::test]
async fn the_calls_of_one_execution_share_a_trace() {
    let up = Upstream::start().await;
    let (_dir, o) = api_orchestrator(&up);

    // No incoming trace: both calls carry the same new, sampled trace, each its own span.
    o.execute("two_calls", RequestContext::new()).await.unwrap();
    let [(t1, s1, f1), (t2, s2, f2)] = last_two(&up);
    assert_eq!(t1, t2);
    assert_ne!(s1, s2);
    assert_eq!((f1.as_str(), f2.as_str()), ("01", "01"));
    assert_ne!(t1, "0".repeat(32));

    // The next execution is another trace.
    o.execute("two_calls", RequestContext::new()).await.unwrap();
    let [(t3, ..), _] = last_two(&up);
    assert_ne!(t3, t1);

    // An incoming trace is continued by every call, with its sampling decision.
    let incoming = "4bf92f3577b34da6a3ce929d0e0e4736";
    for flags in ["01", "00"] {
        let header = format!("00-{incoming}-00f067aa0ba902b7-{flags}");
        o.execute(
            "two_calls",
            RequestContext::new().with_header("traceparent", header.as_str()),
        )
        .await
        .unwrap();
        for (trace, span, f) in last_two(&up) {
            assert_eq!(trace, incoming, "{header}");
            assert_ne!(span, "00f067aa0ba902b7", "a call is a new span");
            assert_eq!(f, flags, "{header}");
        }
    }

    // An invalid one (upper-case hex) is replaced by a new trace.
    let header = format!("00-{}-00f067aa0ba902b7-01", incoming.to_ascii_uppercase());
    o.execute(
        "two_calls",
        RequestContext::new().with_header("traceparent", header.as_str()),
    )
    .await
    .unwrap();
    let [(ta, ..), (tb, ..)] = last_two(&up);
    assert_eq!(ta, tb);
    assert!(![incoming, &t1, &t3].contains(&ta.as_str()), "{ta}");

    // `tracestate` belongs to the incoming trace: passed on when it is continued, not otherwise.
    let state = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";
    let valid = format!("00-{incoming}-00f067aa0ba902b7-01");
    for (traceparent, forwarded) in [
        (Some(valid.as_str()), true),
        (Some(header.as_str()), false),
        (None, false),
    ] {
        let mut request = RequestContext::new().with_header("tracestate", state);
        if let Some(tp) = traceparent {
            request = request.with_header("traceparent", tp);
        }
        o.execute("two_calls", request).await.unwrap();
        let seen = up.seen();
        for call in &seen[seen.len() - 2..] {
            let sent = call.headers.get("tracestate").map(|v| v.to_str().unwrap());
            assert_eq!(sent, forwarded.then_some(state), "{traceparent:?}");
        }
    }
}

fn request(params: &[(&str, Value)]) -> RequestContext {
    params.iter().fold(RequestContext::new(), |r, (k, v)| {
        r.with_query_param(*k, v.clone())
    })
}

async fn failure(o: &Orchestrator, endpoint: &str) -> (SourceError, u32) {
    match o.execute(endpoint, RequestContext::new()).await {
        Err(ExecuteError::SourceFailed { error, trace, .. }) => (error, trace.sources[0].attempts),
        Err(e) => panic!("{endpoint}: unexpected {e}"),
        Ok(e) => panic!("{endpoint}: should fail, got {}", e.response),
    }
}

#[tokio::test]
async fn templates_auth_and_tracing_headers_reach_the_upstream() {
    let up = Upstream::start().await;
    let (_dir, o) = api_orchestrator(&up);

    let out = o
        .execute(
            "score",
            request(&[
                ("customer_id", json!("42")),
                ("region", json!("eu west")),
                ("tenant", json!(7)),
            ])
            .with_request_id("req-1")
            .with_header(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
        )
        .await
        .unwrap();
    assert_eq!(out.response["score"], 712);
    let seen = up.last();
    assert_eq!(seen.method, "GET");
    assert_eq!(
        seen.target,
        "/api/v1/customers/42/credit-score?fixed=1&region=eu+west"
    );
    assert_eq!(seen.headers["authorization"], "Bearer tok-789");
    assert_eq!(seen.headers["accept"], "application/json");
    assert_eq!(seen.headers["x-tenant"], "tenant-7");
    assert_eq!(seen.headers["x-request-id"], "req-1");
    let tp = seen.headers["traceparent"].to_str().unwrap();
    assert!(
        tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-") && tp.ends_with("-01"),
        "{tp}"
    );

    // A query value that is exactly one placeholder is left out when its param is null.
    o.execute(
        "score",
        request(&[("customer_id", json!(1)), ("tenant", json!("x"))]),
    )
    .await
    .unwrap();
    assert_eq!(up.last().target, "/api/v1/customers/1/credit-score?fixed=1");

    // Extraction by JSON pointer.
    let out = o
        .execute("score_extracted", request(&[("customer_id", json!(5))]))
        .await
        .unwrap();
    assert_eq!(out.response, json!(712));

    // Body templates keep JSON types; placeholders inside text become text.
    o.execute(
        "create",
        request(&[("customer_id", json!(42)), ("tags", json!(["a", "b"]))]),
    )
    .await
    .unwrap();
    let seen = up.last();
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.headers["content-type"], "application/json");
    assert_eq!(
        seen.body,
        json!({"customer": 42, "note": "for 42", "tags": [["a", "b"]]})
    );

    // The other auth kinds.
    o.execute("keyed", RequestContext::new()).await.unwrap();
    assert_eq!(up.last().headers["x-api-key"], "k-123");
    o.execute("keyed_q", RequestContext::new()).await.unwrap();
    assert_eq!(up.last().target, "/keyed?api_key=q-456");
    o.execute("basic_auth", RequestContext::new())
        .await
        .unwrap();
    assert_eq!(up.last().headers["authorization"], "Basic YWRhOnMzY3JldA==");
    // Credentials in the base URL become the same header.
    o.execute("userinfo_auth", RequestContext::new())
        .await
        .unwrap();
    assert_eq!(up.last().headers["authorization"], "Basic YWRhOnMzY3JldA==");
}

#[tokio::test]
async fn request_data_never_changes_host_or_path_structure() {
    let up = Upstream::start().await;
    let (_dir, o) = api_orchestrator(&up);
    for (value, encoded) in [
        ("../admin", "..%2Fadmin"),
        ("%2e%2e/admin", "%252e%252e%2Fadmin"),
        ("x/../../y", "x%2F..%2F..%2Fy"),
        ("a?b=c", "a%3Fb%3Dc"),
        ("a#b", "a%23b"),
        ("@evil.com", "%40evil.com"),
        ("http://evil", "http%3A%2F%2Fevil"),
        ("..%2f..%2fadmin", "..%252f..%252fadmin"),
        ("\r\nHost: evil", "%0D%0AHost%3A%20evil"),
    ] {
        o.execute(
            "score",
            request(&[("customer_id", json!(value)), ("tenant", json!(1))]),
        )
        .await
        .unwrap_or_else(|e| panic!("{value:?}: {e}"));
        let seen = up.last();
        assert_eq!(
            seen.target,
            format!("/api/v1/customers/{encoded}/credit-score?fixed=1"),
            "{value:?}"
        );
        assert_eq!(seen.headers["host"], up.addr.to_string(), "{value:?}");
    }
    // A value that would be a `.` or `..` segment is refused before any request is made.
    let before = up.seen().len();
    for value in ["..", "."] {
        match o
            .execute(
                "score",
                request(&[("customer_id", json!(value)), ("tenant", json!(1))]),
            )
            .await
        {
            // The request alone supplied it: the client's mistake (400 at the HTTP edge).
            Err(ExecuteError::InvalidParameter { param, .. }) => {
                assert_eq!(param, "customer_id")
            }
            other => panic!("{value:?}: expected a rejection, got {other:?}"),
        }
    }
    // A header value with a line break is refused too.
    match o
        .execute(
            "score",
            request(&[
                ("customer_id", json!(1)),
                ("tenant", json!("1\r\nX-Evil: 1")),
            ]),
        )
        .await
    {
        Err(ExecuteError::SourceFailed { error, .. }) => {
            assert_eq!(error.kind, SourceErrorKind::Rejected)
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert_eq!(
        up.seen().len(),
        before,
        "refused requests never reach the upstream"
    );
}

#[tokio::test]
async fn each_fault_has_its_documented_error_kind() {
    let up = Upstream::start().await;
    let (_dir, o) = api_orchestrator(&up);

    let (e, _) = failure(&o, "slow").await;
    assert_eq!(e.kind, SourceErrorKind::Timeout, "{}", e.message);

    let (e, attempts) = failure(&o, "fail500").await;
    assert_eq!(
        e.kind,
        SourceErrorKind::Upstream { status: 500 },
        "{}",
        e.message
    );
    assert_eq!(attempts, 1);

    // 503 twice, then 200: the service's retry policy (GET is idempotent) gets through.
    let out = o.execute("flaky", RequestContext::new()).await.unwrap();
    assert_eq!(out.response, json!({"ok": true}));
    assert_eq!(out.trace.sources[0].attempts, 3);
    assert_eq!(out.trace.sources[0].outcome, Outcome::Ok);

    let (e, attempts) = failure(&o, "malformed").await;
    assert_eq!(e.kind, SourceErrorKind::InvalidResponse, "{}", e.message);
    assert_eq!(attempts, 1, "an unreadable answer is not retried");

    let (e, _) = failure(&o, "html").await;
    assert_eq!(e.kind, SourceErrorKind::InvalidResponse);
    assert!(e.message.contains("text/html"), "{}", e.message);

    let (e, _) = failure(&o, "big").await;
    assert_eq!(e.kind, SourceErrorKind::InvalidResponse);
    assert!(e.message.contains("max_response_bytes"), "{}", e.message);

    let (e, _) = failure(&o, "bigstream").await;
    assert_eq!(e.kind, SourceErrorKind::InvalidResponse);
    assert!(e.message.contains("larger than"), "{}", e.message);

    let (e, _) = failure(&o, "drip").await;
    assert_eq!(e.kind, SourceErrorKind::Timeout, "{}", e.message);

    let (e, _) = failure(&o, "redirect").await;
    assert_eq!(
        e.kind,
        SourceErrorKind::Upstream { status: 302 },
        "redirects are not followed"
    );

    let (e, _) = failure(&o, "nothing").await;
    assert_eq!(e.kind, SourceErrorKind::Unavailable, "{}", e.message);
}

#[tokio::test]
async fn calls_reuse_kept_alive_connections_and_replace_closed_ones() {
    let up = Upstream::start().await;
    let (_dir, o) = api_orchestrator(&up);
    for _ in 0..5 {
        o.execute("keyed", RequestContext::new()).await.unwrap();
    }
    assert_eq!(
        up.connections(),
        1,
        "one service, one kept-alive connection"
    );

    // The upstream closes each connection after answering: each call of that service needs a
    // new one, and none fails for finding its pooled connection closed. The other service's
    // connection stays as it was.
    for _ in 0..3 {
        let out = o.execute("closing", RequestContext::new()).await.unwrap();
        assert_eq!(out.response, json!({"closing": true}));
    }
    assert_eq!(up.connections(), 1 + 3);
    o.execute("keyed", RequestContext::new()).await.unwrap();
    assert_eq!(up.connections(), 4);

    // An answer cut at `max_response_bytes` is not read to its end: its connection is closed,
    // not pooled. An error status read to its end keeps the connection.
    failure(&o, "big").await;
    assert_eq!(up.connections(), 5);
    failure(&o, "fail500").await;
    failure(&o, "fail500").await;
    assert_eq!(up.connections(), 6);
}

/// A server that answers the first request of each connection as if it kept the connection
/// alive (HTTP/1.1, no `Connection: close`), and closes it unanswered when a second request
/// arrives: what a server whose keep-alive timeout has just run out does. A `GET` that meets
/// this goes out again on a new connection; a `POST` fails as `unavailable` (it may have been
/// processed), and its connection is not reused.
#[tokio::test]
async fn a_get_whose_kept_alive_connection_was_closed_goes_out_again() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    async fn read_head(socket: &mut tokio::net::TcpStream) -> bool {
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        true
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    let server = tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                if read_head(&mut socket).await {
                    let body = r#"{"ok":true}"#;
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(answer.as_bytes()).await;
                }
                // The second request is read, then the connection closed unanswered.
                read_head(&mut socket).await;
            });
        }
    });
    let dir = config_dir(&[
        (
            "integrations/api_sources.yaml",
            &format!(
                "api:\n  sources:\n    once:\n      base_url: \"http://{addr}\"\n      operations:\n        ping: {{path: /ping}}\n        post: {{path: /post, method: POST}}\n"
            ),
        ),
        (
            "domains/d.yaml",
            "endpoints:\n  ping:\n    data_sources: [{name: p, type: api, operation: ping, retries: 0}]\n  post:\n    data_sources: [{name: p, type: api, operation: post, retries: 0}]\n",
        ),
    ]);
    let o = Orchestrator::from_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let ping = async || {
        let out = o.execute("ping", RequestContext::new()).await.unwrap();
        assert_eq!(out.response, json!({"ok": true}));
        assert_eq!(
            out.trace.sources[0].attempts, 1,
            "not a retry of the data source"
        );
    };
    ping().await;
    assert_eq!(connections.load(Ordering::SeqCst), 1);
    ping().await;
    assert_eq!(
        connections.load(Ordering::SeqCst),
        2,
        "sent again on a new connection"
    );
    let (e, attempts) = failure(&o, "post").await;
    assert_eq!(e.kind, SourceErrorKind::Unavailable, "{}", e.message);
    assert_eq!(attempts, 1);
    assert_eq!(
        connections.load(Ordering::SeqCst),
        2,
        "a POST is not sent again"
    );
    ping().await;
    assert_eq!(connections.load(Ordering::SeqCst), 3);
    server.abort();
}

#[tokio::test]
async fn non_idempotent_calls_are_not_retried_by_a_service_policy() {
    let up = Upstream::start().await;
    let api = format!(
        "api:\n  sources:\n    faults:\n      base_url: \"{}/faults\"\n      retries: 3\n      operations:\n        post_flaky: {{method: POST, path: /flaky}}\n        post_flaky_retried: {{method: POST, path: /flaky, retries: {{max: 3, backoff: 10ms}}}}\n",
        up.url()
    );
    let dir = config_dir(&[
        ("integrations/api_sources.yaml", &api),
        (
            "domains/f.yaml",
            "endpoints:\n  post_flaky:\n    data_sources: [{name: f, type: api, operation: post_flaky}]\n  post_flaky_retried:\n    data_sources: [{name: f, type: api, operation: post_flaky_retried}]\n",
        ),
    ]);
    let o = Orchestrator::from_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let (e, attempts) = failure(&o, "post_flaky").await;
    assert_eq!(e.kind, SourceErrorKind::Upstream { status: 503 });
    assert_eq!(attempts, 1, "POST is not retried by the service's policy");
    // The operation's own policy applies whatever the method (two 503s were served already).
    let out = o
        .execute("post_flaky_retried", RequestContext::new())
        .await
        .unwrap();
    assert_eq!(out.response, json!({"ok": true}));
}

#[tokio::test]
async fn feast_rows_orientation_and_missing_statuses() {
    let up = Upstream::start().await;
    let feast = format!(
        "feast:\n  sources:\n    rows:\n      url: \"{}/rows\"\n      operations:\n        stats:\n          features: [\"customer_stats:num_orders\", \"customer_stats:total_spend\"]\n          entity_key: customer_id\n        strict:\n          features: [\"customer_stats:num_orders\", \"customer_stats:total_spend\"]\n          entity_key: customer_id\n          on_missing: error\n",
        up.url()
    );
    let dir = config_dir(&[
        ("integrations/feast_config.yaml", &feast),
        (
            "domains/f.yaml",
            "endpoints:\n  stats:\n    data_sources: [{name: s, type: feast, operation: stats, params: {customer_id: \"$request.ids\"}}]\n  strict:\n    data_sources: [{name: s, type: feast, operation: strict, params: {customer_id: \"$request.ids\"}}]\n",
        ),
    ]);
    let o = Orchestrator::from_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let out = o
        .execute("stats", request(&[("ids", json!([1001, 9999]))]))
        .await
        .unwrap();
    assert_eq!(
        out.response,
        json!([
            {"customer_id": 1001, "num_orders": 3, "total_spend": 12.5},
            {"customer_id": 9999, "num_orders": null, "total_spend": null}
        ])
    );
    assert_eq!(
        up.last().body,
        json!({"features": ["customer_stats:num_orders", "customer_stats:total_spend"],
               "entities": {"customer_id": [1001, 9999]}, "full_feature_names": false})
    );
    let notes = &out.trace.sources[0].notes;
    assert!(
        notes
            .iter()
            .any(|n| n.contains("`num_orders` NOT_FOUND for 1 of 2")),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.contains("`total_spend` OUTSIDE_MAX_AGE for 1 of 2")),
        "{notes:?}"
    );

    let one = o
        .execute("stats", request(&[("ids", json!(1001))]))
        .await
        .unwrap();
    assert_eq!(
        one.response,
        json!({"customer_id": 1001, "num_orders": 3, "total_spend": 12.5})
    );

    match o.execute("strict", request(&[("ids", json!(9999))])).await {
        Err(ExecuteError::SourceFailed { error, .. }) => {
            assert_eq!(error.kind, SourceErrorKind::InvalidResponse);
            assert!(error.message.contains("NOT_FOUND"), "{}", error.message);
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}

const MODELS: &str = r#"
ml:
  sources:
    stand_in:
      base_url: "BASE"
      models:
        churn:
          protocol: tfserving
          inputs: [tenure, spend]
          outputs: {stay: "[0]", leave: "[1]"}
        churn_named:
          protocol: tfserving
          endpoint: "/v1/models/churn:predict"
          format: instances_named
          inputs: [tenure, spend]
        mlflow_v1:
          protocol: mlflow
          endpoint: /mlflow1/invocations
          inputs: [tenure, spend]
          outputs: {score: ""}
        mlflow_v2:
          protocol: mlflow
          endpoint: /mlflow2/invocations
          format: dataframe_records
          inputs: [tenure, spend]
          outputs: {score: ""}
        fraud:
          protocol: v2
          inputs: [amount, count, country]
          datatype: FP64
"#;

const MODEL_ENDPOINTS: &str = r#"
endpoints:
  churn:
    data_sources: [{name: m, type: ml, operation: churn, params: {tenure: "$request.tenure", spend: "$request.spend"}}]
  churn_batch:
    data_sources: [{name: m, type: ml, operation: churn, params: {rows: "$request.body.rows"}}]
  churn_named:
    data_sources: [{name: m, type: ml, operation: churn_named, params: {rows: "$request.body.rows"}}]
  mlflow_v1:
    data_sources: [{name: m, type: ml, operation: mlflow_v1, params: {rows: "$request.body.rows"}}]
  mlflow_v2:
    data_sources: [{name: m, type: ml, operation: mlflow_v2, params: {rows: "$request.body.rows"}}]
"#;

#[tokio::test]
async fn tf_serving_and_mlflow_wire_shapes() {
    let up = Upstream::start().await;
    let models = MODELS.replace("BASE", &up.url());
    let dir = config_dir(&[
        ("integrations/ml_config.yaml", &models),
        ("domains/m.yaml", MODEL_ENDPOINTS),
    ]);
    let o = Orchestrator::from_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let rows = json!({"rows": [{"tenure": 3, "spend": "12.5"}, {"tenure": 10, "spend": 99}]});

    let one = o
        .execute(
            "churn",
            request(&[("tenure", json!("3")), ("spend", json!(12.5))]),
        )
        .await
        .unwrap();
    assert_eq!(up.last().target, "/v1/models/churn:predict");
    assert_eq!(up.last().body, json!({"instances": [[3.0, 12.5]]}));
    assert_eq!(one.response, json!({"stay": 0.25, "leave": 0.75}));

    let batch = o
        .execute("churn_batch", RequestContext::new().with_body(rows.clone()))
        .await
        .unwrap();
    assert_eq!(
        up.last().body,
        json!({"instances": [[3.0, 12.5], [10.0, 99.0]]})
    );
    assert_eq!(
        batch.response,
        json!([{"stay": 0.25, "leave": 0.75}, {"stay": 0.5, "leave": 0.5}])
    );

    o.execute("churn_named", RequestContext::new().with_body(rows.clone()))
        .await
        .unwrap();
    assert_eq!(
        up.last().body,
        json!({"instances": [{"tenure": 3.0, "spend": 12.5}, {"tenure": 10.0, "spend": 99.0}]})
    );

    for (endpoint, body) in [
        (
            "mlflow_v1",
            json!({"dataframe_split": {"columns": ["tenure", "spend"], "data": [[3.0, 12.5], [10.0, 99.0]]}}),
        ),
        (
            "mlflow_v2",
            json!({"dataframe_records": [{"tenure": 3.0, "spend": 12.5}, {"tenure": 10.0, "spend": 99.0}]}),
        ),
    ] {
        let out = o
            .execute(endpoint, RequestContext::new().with_body(rows.clone()))
            .await
            .unwrap();
        assert_eq!(up.last().body, body, "{endpoint}");
        assert_eq!(
            out.response,
            json!([{"score": 0.0}, {"score": 0.1}]),
            "{endpoint}"
        );
    }

    // A missing feature is refused before any call.
    let before = up.seen().len();
    match o.execute("churn", request(&[("tenure", json!(3))])).await {
        Err(ExecuteError::SourceFailed { error, .. }) => {
            assert_eq!(error.kind, SourceErrorKind::Rejected);
            assert!(
                error.message.contains("input `spend` is missing"),
                "{}",
                error.message
            );
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert_eq!(up.seen().len(), before);
}

/// A model whose `endpoint` names another authority than its server's `base_url` is called
/// through reqwest, not the lean transport: the same headers go out and the same faults end
/// in the same error kinds.
#[tokio::test]
async fn both_transports_send_the_same_headers_and_map_faults_alike() {
    let up = Upstream::start().await;
    let other = format!("http://localhost:{}", up.addr.port());
    let models = format!(
        r#"
ml:
  sources:
    stand_in:
      base_url: "{base}"
      models:
        lean:
          protocol: tfserving
          endpoint: "/v1/models/churn:predict"
          inputs: [tenure, spend]
        through_reqwest:
          protocol: tfserving
          endpoint: "{other}/v1/models/churn:predict"
          inputs: [tenure, spend]
        html:
          protocol: tfserving
          endpoint: "{other}/faults/html"
          inputs: [tenure, spend]
        fail500:
          protocol: tfserving
          endpoint: "{other}/faults/500"
          inputs: [tenure, spend]
"#,
        base = up.url()
    );
    let endpoints = ["lean", "through_reqwest", "html", "fail500"]
        .map(|m| format!("  {m}:\n    data_sources: [{{name: m, type: ml, operation: {m}, params: {{tenure: 3, spend: 12.5}}}}]\n"))
        .concat();
    let dir = config_dir(&[
        ("integrations/ml_config.yaml", &models),
        ("domains/m.yaml", &format!("endpoints:\n{endpoints}")),
    ]);
    let o = Orchestrator::from_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let mut seen = Vec::new();
    let mut answers = Vec::new();
    for endpoint in ["lean", "through_reqwest"] {
        let out = o
            .execute(endpoint, RequestContext::new().with_request_id("req-9"))
            .await
            .unwrap();
        answers.push(out.response);
        seen.push(up.last());
    }
    assert_eq!(answers[0], answers[1]);
    assert!(answers[0].to_string().contains("0.75"), "{}", answers[0]);
    assert_eq!(seen[1].headers["host"], other.trim_start_matches("http://"));
    for (name, value) in [
        ("accept", "*/*"),
        ("content-type", "application/json"),
        ("x-request-id", "req-9"),
    ] {
        assert_eq!(seen[0].headers[name], value, "{name}");
        assert_eq!(seen[1].headers[name], value, "{name}");
    }
    assert_eq!(seen[0].headers["user-agent"], seen[1].headers["user-agent"]);
    assert_eq!(seen[0].body, seen[1].body);

    let (e, _) = failure(&o, "html").await;
    assert_eq!(e.kind, SourceErrorKind::InvalidResponse, "{}", e.message);
    assert!(e.message.contains("text/html"), "{}", e.message);
    let (e, _) = failure(&o, "fail500").await;
    assert_eq!(
        e.kind,
        SourceErrorKind::Upstream { status: 500 },
        "{}",
        e.message
    );
}

#[tokio::test]
async fn model_metadata_check_reports_mismatches() {
    let up = Upstream::start().await;
    let models = MODELS.replace("BASE", &up.url());
    let dir = config_dir(&[
        ("integrations/ml_config.yaml", &models),
        ("domains/m.yaml", MODEL_ENDPOINTS),
    ]);
    let plan = api_orchestrator::config::load_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let findings = api_orchestrator::source::ml::check_models(&plan).await;
    let messages: Vec<String> = findings.iter().map(|d| d.message.clone()).collect();
    assert_eq!(
        messages,
        [
            "model `fraud` takes FP32, the config sends FP64",
            "model `fraud` takes 2 features per row, the config lists 3 `inputs`"
        ],
        "{findings:#?}"
    );
    assert!(findings.iter().all(|d| d.code.as_str() == "model-metadata"));
}
