//! What the original Python service's configs rely on, in process over real sockets: the
//! defaults of `performance:` and `execution:`, `cache: off`, `required` sources, bearer
//! tokens and their claims, endpoint names shared by domains, whole-value params and the
//! original's ML call (`predict` with `model_id` and `features`) to an absolute endpoint.

use std::time::{SystemTime, UNIX_EPOCH};

use api_orchestrator::config::{ConfigFiles, Loader};
use api_orchestrator::engine::{ExecuteError, Outcome};
use api_orchestrator::web::{Api, Body};
use api_orchestrator::{Orchestrator, RequestContext};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tests::upstream::Upstream;

fn orchestrator(files: &[(&str, &str)]) -> Orchestrator {
    let files = files.iter().fold(ConfigFiles::new(), |f, (path, text)| {
        f.with_file(*path, *text)
    });
    let plan = Loader::new().load(&files).unwrap_or_else(|e| panic!("{e}"));
    Orchestrator::builder()
        .build(plan)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn api_service(base: &str) -> String {
    format!(
        "api:\n  sources:\n    up:\n      base_url: \"{base}\"\n      operations:\n        item: {{path: \"/items/{{id}}\"}}\n        flaky: {{path: \"/faults/flaky\"}}\n"
    )
}

#[tokio::test]
async fn performance_cache_enabled_caches_every_read_unless_a_source_says_off() {
    let up = Upstream::start().await;
    let o = orchestrator(&[
        (
            "config.yaml",
            "performance: {cache_enabled: true, cache_ttl_seconds: 60}",
        ),
        ("integrations/api_sources.yaml", &api_service(&up.url())),
        (
            "domains/shop.yaml",
            r#"
endpoints:
  cached:
    data_sources:
      - {name: it, type: api, operation: item, params: {id: "$request.id"}}
  uncached:
    data_sources:
      - {name: it, type: api, operation: item, params: {id: "$request.id"}, cache: off}
"#,
        ),
    ]);
    let req = RequestContext::new().with_path_param("id", "7");
    for _ in 0..3 {
        o.execute("cached", req.clone()).await.unwrap();
    }
    assert_eq!(up.calls("/items/7"), 1, "answers are cached by default");
    for _ in 0..2 {
        o.execute("uncached", req.clone()).await.unwrap();
    }
    assert_eq!(up.calls("/items/7"), 3, "`cache: off` opts out");
}

#[tokio::test]
async fn execution_retries_is_the_default_of_every_source_call() {
    let up = Upstream::start().await;
    let o = orchestrator(&[
        ("config.yaml", "execution: {timeout: 10, retries: 2}"),
        ("integrations/api_sources.yaml", &api_service(&up.url())),
        (
            "domains/shop.yaml",
            "endpoints:\n  flaky:\n    data_sources:\n      - {name: f, type: api, operation: flaky}\n",
        ),
    ]);
    // The upstream fails twice, then answers: two retries make it.
    let exec = o.execute("flaky", RequestContext::new()).await.unwrap();
    assert_eq!(exec.response, json!({"ok": true}));
    assert_eq!(exec.trace.sources[0].attempts, 3);
    assert_eq!(
        o.plan().settings.endpoint_timeout,
        std::time::Duration::from_secs(10)
    );
}

#[tokio::test]
async fn a_required_source_that_finds_nothing_is_not_found() {
    let o = orchestrator(&[(
        "domains/shop.yaml",
        r#"
endpoints:
  lookup:
    data_sources:
      - {name: found, type: direct, params: {id: "$request.id"}}
      - {name: customer, type: direct, params: "$request.body", required: true}
      - {name: later, type: direct, condition: "$customer.name != null", params: {n: "$customer.name"}}
    response_mapping: {id: "$found.id", name: "$later.n"}
  gated:
    data_sources:
      - {name: customer, type: direct, condition: "$request.id == '1'", params: {id: "$request.id"}, required: true}
    response_mapping: {id: "$customer.id"}
"#,
    )]);
    let with = |body: Value| {
        RequestContext::new()
            .with_path_param("id", "1")
            .with_body(body)
    };
    let ok = o
        .execute("lookup", with(json!({"name": "Ada"})))
        .await
        .unwrap();
    assert_eq!(ok.response, json!({"id": "1", "name": "Ada"}));
    // An empty object (and no body at all) is "nothing found": 404, and nothing after it runs.
    for body in [json!({}), Value::Null] {
        match o.execute("lookup", with(body)).await {
            Err(ExecuteError::NotFound {
                source_name, trace, ..
            }) => {
                assert_eq!(source_name, "customer");
                assert_eq!(trace.sources[2].outcome, Outcome::NotRun);
            }
            other => panic!("{other:?}"),
        }
    }
    // Skipped by its condition counts as nothing found too.
    assert!(o.execute("gated", with(Value::Null)).await.is_ok());
    let other = RequestContext::new().with_path_param("id", "2");
    assert!(matches!(
        o.execute("gated", other).await,
        Err(ExecuteError::NotFound { .. })
    ));
}

fn token(secret: &str, claims: &Value) -> String {
    let enc = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    let signed = format!("{}.{}", enc(&json!({"alg": "HS256"})), enc(claims));
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(ring::hmac::sign(&key, signed.as_bytes()).as_ref());
    format!("{signed}.{sig}")
}

#[tokio::test]
async fn bearer_tokens_guard_the_routes_and_their_claims_reach_the_plans() {
    let secret = "a-long-enough-test-secret";
    let o = orchestrator(&[
        (
            "config.yaml",
            &format!("auth: {{enabled: true, jwt_secret: {secret}, token_expiry_minutes: 30}}"),
        ),
        (
            "domains/me.yaml",
            "endpoints:\n  whoami:\n    data_sources:\n      - {name: me, type: direct, params: {user: \"$request.auth.sub\", tenant: \"$request.auth.tenant\"}}\n",
        ),
    ]);
    let api = Api::new(&o);
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let call = |auth: Option<String>| {
        let api = api.clone();
        async move {
            let mut req = http::Request::get("/me/whoami");
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            api.handle(req.body(Body::Empty).unwrap()).await
        }
    };
    let good = token(secret, &json!({"sub": "ada", "tenant": "acme", "exp": exp}));
    let r = call(Some(format!("Bearer {good}"))).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        serde_json::from_slice::<Value>(r.body()).unwrap(),
        json!({"user": "ada", "tenant": "acme"})
    );
    let r = call(None).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let problem: Value = serde_json::from_slice(r.body()).unwrap();
    assert_eq!(problem["type"], "urn:orchestrator:problem:unauthorized");
    let forged = token("not-the-secret-at-all", &json!({"sub": "eve", "exp": exp}));
    assert_eq!(call(Some(format!("Bearer {forged}"))).await.status(), 401);
    let expired = token(secret, &json!({"sub": "ada", "exp": exp - 7200}));
    assert_eq!(call(Some(format!("Bearer {expired}"))).await.status(), 401);
    // The token is never handed to the sources as a header.
    assert_eq!(call(Some(format!("Basic {good}"))).await.status(), 401);
}

#[tokio::test]
async fn domains_share_endpoint_names_and_the_original_routes_find_them() {
    let up = Upstream::start().await;
    let ml = format!(
        "ml:\n  sources:\n    scoring:\n      base_url: \"http://127.0.0.1:1\"\n      models:\n        a: {{endpoint: \"{}/score/a\", headers: {{X-Key: k}}}}\n        b: {{endpoint: /never}}\n",
        up.url()
    );
    let domain = |model: &str| {
        format!(
            "description: scores {model}\nendpoints:\n  predict:\n    data_sources:\n      - name: p\n        type: ml\n        operation: predict\n        source_id: scoring\n        params: {{model_id: {model}, features: {{x: \"$request.x\"}}}}\n    primary_source: p\n"
        )
    };
    let (a, b) = (domain("a"), domain("a"));
    let o = orchestrator(&[
        ("integrations/ml.yaml", &ml),
        ("domains/model_scoring_first.yaml", &a),
        ("domains/model_scoring_second.yaml", &b),
    ]);
    // Two `predict`s: the bare name is ambiguous, the qualified names are not.
    assert!(matches!(
        o.execute("predict", RequestContext::new()).await,
        Err(ExecuteError::UnknownEndpoint(_))
    ));
    let req = RequestContext::new().with_query_param("x", "3");
    o.execute("model_scoring_first/predict", req.clone())
        .await
        .unwrap();
    // The original's wire body, posted to the model's absolute endpoint with its headers.
    let seen = up.last();
    assert_eq!(seen.target, "/score/a");
    assert_eq!(seen.body, json!({"features": {"x": "3"}}));
    assert_eq!(seen.headers["x-key"], "k");

    let api = Api::new(&o);
    let get = |path: &'static str| {
        let api = api.clone();
        async move {
            let r = api
                .handle(http::Request::get(path).body(Body::Empty).unwrap())
                .await;
            let body: Value = serde_json::from_slice(r.body()).unwrap_or_default();
            (r.status().as_u16(), body)
        }
    };
    let (status, _) = get("/orchestrator/model_scoring/second?x=1").await;
    assert_eq!(status, 200);
    assert_eq!(up.last().body, json!({"features": {"x": "1"}}));
    let (status, _) = get("/orchestrator/model_scoring_first/predict/42").await;
    assert_eq!(status, 200);
    let (_, domains) = get("/orchestrator/domains").await;
    assert_eq!(
        domains,
        json!(["model_scoring_first", "model_scoring_second"])
    );
    let (_, models) = get("/orchestrator/model_scoring").await;
    assert_eq!(models["models"][1]["model_name"], "second");
    assert_eq!(models["models"][1]["description"], "scores a");
    assert_eq!(get("/orchestrator/nothing/here").await.0, 404);
}
